//! The `[relay]` table: whom this node forwards relay messages for, and how much from each
//! previous hop (see [`crate::relay`]).

use std::path::Path;

use super::raw::{RawRelay, RawRelayMode};
use super::ConfigError;
use crate::identity::NodeIdentity;
use crate::relay::{RateLimits, ReceiptLimits, RelayMode, RelayPolicy};

/// Turns the raw `[relay]` table into the node's relay policy.
pub(super) fn relay(raw: RawRelay, file: &Path) -> Result<RelayPolicy, ConfigError> {
    let bad = |key: &str, what: String| ConfigError::BadValue {
        file: file.to_path_buf(),
        key: format!("relay.{key}"),
        what,
    };
    let mut listed = std::collections::BTreeSet::new();
    for (i, text) in raw.forward_for.iter().enumerate() {
        let node: NodeIdentity = text
            .trim()
            .parse()
            .map_err(|error| ConfigError::BadIdentity {
                file: file.to_path_buf(),
                key: format!("relay.forward_for[{i}]"),
                error,
            })?;
        listed.insert(node);
    }
    let mode = match raw.forward.unwrap_or(RawRelayMode::Never) {
        RawRelayMode::Anyone => RelayMode::Anyone,
        RawRelayMode::Never => RelayMode::Never,
        RawRelayMode::Listed if listed.is_empty() => {
            return Err(bad(
                "forward_for",
                "`forward = \"listed\"` needs at least one node in `forward_for`".into(),
            ))
        }
        RawRelayMode::Listed => RelayMode::Listed(listed.clone()),
    };
    if !listed.is_empty() && !matches!(mode, RelayMode::Listed(_)) {
        return Err(bad(
            "forward_for",
            "only meaningful with `forward = \"listed\"`".into(),
        ));
    }
    let defaults = RateLimits::default();
    let msgs_per_s = raw.max_msgs_per_s.unwrap_or(defaults.msgs_per_s as u64);
    if msgs_per_s == 0 || msgs_per_s > 10_000_000 {
        return Err(bad(
            "max_msgs_per_s",
            format!("{msgs_per_s} is outside 1 ..= 10000000"),
        ));
    }
    let bytes_per_s = raw.max_bytes_per_s.unwrap_or(defaults.bytes_per_s);
    if bytes_per_s < 64 << 10 {
        return Err(bad(
            "max_bytes_per_s",
            format!("{bytes_per_s} is below 65536 (one relay message may be larger)"),
        ));
    }
    let receipt_defaults = ReceiptLimits::default();
    let timeout_ms = raw
        .receipt_timeout_ms
        .unwrap_or(receipt_defaults.timeout.as_millis() as u64);
    if !(10..=600_000).contains(&timeout_ms) {
        return Err(bad(
            "receipt_timeout_ms",
            format!("{timeout_ms} is outside 10 ..= 600000"),
        ));
    }
    let attempts = raw.attempts.unwrap_or(u64::from(receipt_defaults.attempts));
    if !(1..=16).contains(&attempts) {
        return Err(bad("attempts", format!("{attempts} is outside 1 ..= 16")));
    }
    Ok(RelayPolicy {
        mode,
        limits: RateLimits {
            msgs_per_s: msgs_per_s as u32,
            bytes_per_s,
            ..defaults
        },
        receipts: ReceiptLimits {
            timeout: std::time::Duration::from_millis(timeout_ms),
            attempts: attempts as u8,
            ..receipt_defaults
        },
        ..RelayPolicy::default()
    })
}
