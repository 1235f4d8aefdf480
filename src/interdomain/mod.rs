//! The pure algorithms of the inter-domain protocols (spec notes §9, issue 15).
//!
//! * [`psi`] — BFPSI (§9.7): the exact intersection of two nodes' memberships.

pub mod psi;
