//! Tests of the Topology engine.
