//! The pure algorithms of the inter-domain protocols (spec notes §9, issue 15): no engine, no
//! I/O, randomness only from a [`crate::rng::SplitMix64`] the caller passes in, so a seed gives
//! the same results.
//!
//! * [`blip`] — BLIP (§9.6): the membership Bloom filter of a node's domains, flipped bit by bit
//!   for ε-differential privacy, the flip-corrected similarity of two filters, the score that a
//!   filter's owner is a member of a domain, and [`blip::OwnFilter`], which flips once per
//!   membership set.
//! * [`weighted`] — Efraimidis–Spirakis trust-weighted sampling (§9.2) and a truly uniform
//!   sample (the reference's `uniform_sample` is weighted too: the spec's inconsistency).
//! * [`urps`] — the URPS stream sampler (§9.4): a count-min sketch and a bounded memory Γ
//!   that admits frequent (flooded) ids with low probability.
//! * [`psi`] — BFPSI (§9.7): the exact intersection of two nodes' memberships, HMAC-SHA256
//!   and HKDF from `ring`.
//! * [`descriptor`] — making and checking signed [`crate::wire::NodeDescriptor`]s.
//!
//! The engines that use them are `crate::sampling` (TAPS + URPS), `crate::clustering` (TAC,
//! fingers, PSI) and `crate::domain_routing` (greedy lookup by [`blip::domain_score`]).
//! docs/wire.md §12C gives the filter's bytes and the BLIP index hashing.

pub mod blip;
pub mod descriptor;
pub mod psi;
pub mod urps;
pub mod weighted;

#[cfg(test)]
mod tests;
