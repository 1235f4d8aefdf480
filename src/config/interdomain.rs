//! The `[interdomain]` table: whether the node runs the inter-domain engines (PeerSampling,
//! Clustering, DomainRouting) and their settings, checked into an
//! [`InterdomainSettings`] for the node builder (`None` when `enabled = false`: the node opts
//! out and neither gossips nor forwards). Every key is optional; the defaults are the engines'
//! own ([`SamplingSettings`](crate::sampling::SamplingSettings),
//! [`ClusteringSettings`](crate::clustering::ClusteringSettings),
//! [`RoutingSettings`](crate::domain_routing::RoutingSettings)).

use std::path::Path;
use std::time::Duration;

use crate::node::InterdomainSettings;
use crate::sampling::SamplerMode;
use crate::wire::descriptor::{MAX_FILTER_BITS, MAX_FILTER_HASHES};

use super::raw::{RawInterdomain, RawNumber, RawSamplerMode};
use super::ConfigError;

/// Largest `interdomain.view` and `interdomain.cluster_view`: each entry holds a descriptor of
/// ≈ 300 bytes plus the filter (128 bytes at the default 1,024 bits), and is sent in exchanges.
pub const MAX_INTERDOMAIN_VIEW: usize = 256;
/// Largest `interdomain.fingers`.
pub const MAX_FINGERS: usize = 64;
/// Largest `interdomain.urps_memory` (the sampler memory Γ, one descriptor per slot).
pub const MAX_URPS_MEMORY: usize = 4096;
/// Largest `interdomain.attempts`: each attempt may reach one more member.
pub const MAX_ATTEMPTS: usize = 8;
/// Largest `interdomain.hop_limit`: a request carries its path, one node identity per hop, and
/// DomainRouting refuses longer paths ([`MAX_PATH`](crate::domain_routing::wire::MAX_PATH)).
pub const MAX_HOP_LIMIT: usize = crate::domain_routing::wire::MAX_PATH;
/// Shortest exchange period (`period_ms`, `cluster_period_ms`): shorter would be a flood.
pub const MIN_PERIOD_MS: u64 = 50;
/// Longest exchange period and request timeout: one hour.
pub const MAX_PERIOD_MS: u64 = 3_600_000;

/// Checks the `[interdomain]` table of `file`.
pub(super) fn interdomain(
    raw: RawInterdomain,
    file: &Path,
) -> Result<Option<InterdomainSettings>, ConfigError> {
    let bad = |key: &str, what: String| ConfigError::BadValue {
        file: file.to_path_buf(),
        key: format!("interdomain.{key}"),
        what,
    };
    let count = |key: &str, v: Option<usize>, default: usize, min: usize, max: usize| match v {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(v) => Err(bad(key, format!("{v} is not in {min}..={max}"))),
    };
    let period = |key: &str, v: Option<u64>, default: Duration| match v {
        None => Ok(default),
        Some(ms) if (MIN_PERIOD_MS..=MAX_PERIOD_MS).contains(&ms) => Ok(Duration::from_millis(ms)),
        Some(ms) => Err(bad(
            key,
            format!("{ms} ms is not in {MIN_PERIOD_MS}..={MAX_PERIOD_MS} ms"),
        )),
    };
    // A fraction in [lo, hi], each end open or closed.
    let fraction = |key: &str,
                    v: Option<RawNumber>,
                    default: f64,
                    (lo, lo_open): (f64, bool),
                    (hi, hi_open): (f64, bool)| {
        let Some(v) = v.map(RawNumber::value) else {
            return Ok(default);
        };
        let above = if lo_open { v > lo } else { v >= lo };
        let below = if hi_open { v < hi } else { v <= hi };
        if v.is_finite() && above && below {
            Ok(v)
        } else {
            Err(bad(
                key,
                format!(
                    "{v} is not in {}{lo}, {hi}{}",
                    if lo_open { "(" } else { "[" },
                    if hi_open { ")" } else { "]" }
                ),
            ))
        }
    };

    let mut s = InterdomainSettings::default();
    let enabled = raw.enabled.unwrap_or(true);

    let sa = &mut s.sampling;
    if let Some(m) = raw.mode {
        sa.mode = match m {
            RawSamplerMode::Taps => SamplerMode::Taps,
            RawSamplerMode::Cyclon => SamplerMode::Cyclon,
        };
    }
    sa.view_len = count("view", raw.view, sa.view_len, 1, MAX_INTERDOMAIN_VIEW)?;
    let max_sent = sa.limits.max_descriptors;
    sa.xchg_len = count("exchange", raw.exchange, sa.xchg_len, 1, max_sent)?;
    if sa.xchg_len > sa.view_len + 1 {
        return Err(bad(
            "exchange",
            format!(
                "{} is above `interdomain.view` + 1 ({}): an exchange sends this node's \
                 descriptor and view entries",
                sa.xchg_len,
                sa.view_len + 1
            ),
        ));
    }
    sa.period = period("period_ms", raw.period_ms, sa.period)?;
    let min_trust = fraction(
        "min_trust",
        raw.min_trust,
        sa.min_trust,
        (0.0, false),
        (1.0, false),
    )?;
    sa.min_trust = min_trust;
    s.clustering.min_trust = min_trust;
    sa.urps.memory = count(
        "urps_memory",
        raw.urps_memory,
        sa.urps.memory,
        1,
        MAX_URPS_MEMORY,
    )?;
    sa.urps.epsilon = fraction(
        "urps_epsilon",
        raw.urps_epsilon,
        sa.urps.epsilon,
        (0.0, true),
        (1.0, false),
    )?;
    sa.urps.delta = fraction(
        "urps_delta",
        raw.urps_delta,
        sa.urps.delta,
        (0.0, true),
        (1.0, true),
    )?;
    if let Some(bits) = raw.blip_bits {
        if bits == 0 || bits % 8 != 0 || bits > MAX_FILTER_BITS {
            return Err(bad(
                "blip_bits",
                format!("{bits} is not a multiple of 8 from 8 to {MAX_FILTER_BITS}"),
            ));
        }
        sa.blip.bits = bits;
    }
    if let Some(k) = raw.blip_hashes {
        if k == 0 || k > MAX_FILTER_HASHES {
            return Err(bad(
                "blip_hashes",
                format!("{k} is not in 1..={MAX_FILTER_HASHES}"),
            ));
        }
        sa.blip.hashes = k;
    }
    sa.blip.epsilon = fraction(
        "blip_epsilon",
        raw.blip_epsilon,
        sa.blip.epsilon,
        (0.0, true),
        (f64::MAX, false),
    )?;

    let cl = &mut s.clustering;
    cl.view_len = count(
        "cluster_view",
        raw.cluster_view,
        cl.view_len,
        1,
        MAX_INTERDOMAIN_VIEW,
    )?;
    cl.xchg_len = count(
        "cluster_exchange",
        raw.cluster_exchange,
        cl.xchg_len,
        1,
        max_sent,
    )?;
    cl.period = period("cluster_period_ms", raw.cluster_period_ms, cl.period)?;
    cl.fingers = count("fingers", raw.fingers, cl.fingers, 0, MAX_FINGERS)?;
    cl.trust_weight = fraction(
        "trust_weight",
        raw.trust_weight,
        cl.trust_weight,
        (0.0, false),
        (1.0, false),
    )?;
    if let Some(psi) = raw.psi {
        cl.psi = psi;
    }

    let ro = &mut s.routing;
    ro.hop_limit = count("hop_limit", raw.hop_limit, ro.hop_limit, 1, MAX_HOP_LIMIT)?;
    if let Some(ms) = raw.request_timeout_ms {
        if ms == 0 || ms > MAX_PERIOD_MS {
            return Err(bad(
                "request_timeout_ms",
                format!("{ms} ms is not in 1..={MAX_PERIOD_MS} ms"),
            ));
        }
        ro.timeout = Duration::from_millis(ms);
    }
    let attempts = count(
        "attempts",
        raw.attempts,
        ro.attempts.into(),
        1,
        MAX_ATTEMPTS,
    )?;
    ro.attempts = attempts as u8;
    if let Some(f) = raw.forward {
        ro.forward = f;
    }
    Ok(enabled.then_some(s))
}
