//! The PeerSampling engine's settings ([`SamplingSettings`], [`SamplerMode`]) and bounds
//! ([`SamplingLimits`]).

use std::time::Duration;

use crate::interdomain::blip::BlipParams;
use crate::interdomain::urps::UrpsParams;

/// Which sampler the engine runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SamplerMode {
    /// TAPS (spec notes §9.3) with URPS (§9.4) on its input stream: trust transitivity,
    /// `min_trust`, trust-weighted views built from sampler outputs. The default.
    #[default]
    Taps,
    /// Plain CYCLON (§9.8): no URPS, no trust. The baseline the simulator compares with.
    Cyclon,
}

impl SamplerMode {
    /// The name configuration files and reports use: `taps` or `cyclon`.
    pub fn name(self) -> &'static str {
        match self {
            SamplerMode::Taps => "taps",
            SamplerMode::Cyclon => "cyclon",
        }
    }
}

/// How the engine samples: the algorithm's parameters (the bounds are in
/// [`SamplingSettings::limits`]).
#[derive(Clone, Debug)]
pub struct SamplingSettings {
    /// TAPS + URPS, or the CYCLON baseline: default [`SamplerMode::Taps`].
    pub mode: SamplerMode,
    /// Most entries of the dynamic view (`view_len`): default 20.
    pub view_len: usize,
    /// Descriptors sent in one exchange, this node's own included (`xchg_len`, CYCLON's `l`):
    /// default 8.
    pub xchg_len: usize,
    /// How often this node starts an exchange: default 1 s, each period jittered by
    /// ±[`SamplingLimits::jitter_percent`] from the engine's seed.
    pub period: Duration,
    /// Received entries whose (transitive) trust is below this are not merged: default 0.1.
    pub min_trust: f64,
    /// The factor a received entry's trust takes on top of the sender's trust:
    /// `trust = trust(src) × trust_transitivity` (§9.3 declares it, default 0.9; see
    /// docs/sampling.md for why it stands in for the trust the reference sends).
    pub trust_transitivity: f64,
    /// The trust of a sender that is in neither view (a stranger that started an exchange):
    /// default 128 / 255, the identity store's default trust.
    pub stranger_trust: f64,
    /// The URPS sampler's memory `c` and sketch accuracy `ε`, `δ` (TAPS mode only).
    pub urps: UrpsParams,
    /// The membership filter's size, hashes and flip parameter ε.
    pub blip: BlipParams,
    /// Every bound.
    pub limits: SamplingLimits,
}

impl Default for SamplingSettings {
    fn default() -> Self {
        SamplingSettings {
            mode: SamplerMode::Taps,
            view_len: 20,
            xchg_len: 8,
            period: Duration::from_secs(1),
            min_trust: 0.1,
            trust_transitivity: 0.9,
            stranger_trust: 128.0 / 255.0,
            urps: UrpsParams::default(),
            blip: BlipParams::default(),
            limits: SamplingLimits::default(),
        }
    }
}

/// Every bound of the PeerSampling engine, with its default and what it costs.
///
/// Memory, at the defaults: a descriptor held is ≈ 0.5 KiB (advert ≈ 200–400 bytes, a
/// 1,024-bit filter 128 bytes, signature 64); the engine holds at most `view_len` (20) +
/// URPS `c` (30) + [`SamplingLimits::max_explicit`] (64) of them, ≈ 60 KiB; the
/// verified-descriptor cache ([`SamplingLimits::max_known`]) ≈ 90 bytes per node, ≈ 180 KiB;
/// the per-peer exchange counts ([`SamplingLimits::max_rate_entries`]) ≈ 60 bytes each,
/// ≈ 60 KiB; the count-min sketch `⌈ln 1/δ⌉ × ⌈e/ε⌉` counters (5 × 28 × 8 bytes ≈ 1 KiB).
/// About 300 KiB in all whatever peers send; a message in flight is at most
/// [`SamplingLimits::max_descriptors`] descriptors (≈ 40 KiB with the largest adverts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SamplingLimits {
    /// Most descriptors one `Exchange` or `Reply` may carry: default 16 (twice `xchg_len`).
    /// A larger list is refused whole, before its descriptors are decoded (`oversized`).
    pub max_descriptors: usize,
    /// Most entries of the explicit view: default 64; the rest of the configured list is
    /// left out (logged).
    pub max_explicit: usize,
    /// Most nodes whose last verified descriptor is remembered (node, version and a digest of
    /// the bytes), so that each (node, version) has its signatures checked once: default 2,048
    /// (the oldest entry is forgotten first; a forgotten one is checked again if it comes back).
    pub max_known: usize,
    /// Exchanges accepted from one peer per period: default 4 (an honest peer starts one per
    /// period; replies are not counted). More are refused (`rate_limited`).
    pub max_exchanges_per_peer: u32,
    /// Exchanges accepted from all peers together per period: default 64. More are refused
    /// (`busy`).
    pub max_exchanges_per_period: u32,
    /// Most peers with an exchange count in a period: default 1,024; exchanges from further
    /// peers in that period are refused (`busy`).
    pub max_rate_entries: usize,
    /// Each period is jittered uniformly within ± this percentage of
    /// [`SamplingSettings::period`]: default 20.
    pub jitter_percent: u32,
}

impl Default for SamplingLimits {
    fn default() -> Self {
        SamplingLimits {
            max_descriptors: 16,
            max_explicit: 64,
            max_known: 2048,
            max_exchanges_per_peer: 4,
            max_exchanges_per_period: 64,
            max_rate_entries: 1024,
            jitter_percent: 20,
        }
    }
}
