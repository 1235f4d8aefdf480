//! Unit tests of the Domain engine.
