//! Whom a node relays for, and how much: the relay policy from the node config (`[relay]`) and
//! per-source rate and byte limits on relay traffic, each refusal counted with its reason.
//!
//! The "source" a relay can see is the previous hop — the authenticated peer the layer came
//! from; the original sender is hidden from it by design. Limits are token buckets per previous
//! hop, refilled continuously, with one second's worth as the burst.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::identity::NodeIdentity;
use crate::mail::DropReason;

/// For whom this node forwards relay messages. Messages relayed *to* this node are always
/// opened (within the rate limits): the policy is about forwarding.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum RelayMode {
    /// Forward for any authenticated peer.
    Anyone,
    /// Forward only for these previous hops.
    Listed(BTreeSet<NodeIdentity>),
    /// Never forward (the default: relaying spends this node's bandwidth for others).
    #[default]
    Never,
}

/// Per-source limits on relay traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Relay messages per second from one previous hop (default 20,000).
    pub msgs_per_s: u32,
    /// Relay bytes per second from one previous hop (default 64 MiB).
    pub bytes_per_s: u64,
    /// Most previous hops with a bucket (default 4,096; about 80 bytes each). Over it, buckets
    /// idle for a second are forgotten; if none is, the table starts again.
    pub max_sources: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            msgs_per_s: 20_000,
            bytes_per_s: 64 << 20,
            max_sources: 4096,
        }
    }
}

/// The relay policy: mode and limits.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RelayPolicy {
    /// For whom to forward.
    pub mode: RelayMode,
    /// How much from each.
    pub limits: RateLimits,
    /// How this node's own relayed messages wait for receipts and are retried.
    pub receipts: super::receipt::ReceiptLimits,
    /// A misbehaving relay, on purpose: for fault tests and the simulator only (no
    /// configuration key sets it).
    pub fault: RelayFault,
}

/// How a relay built for fault tests or the simulator misbehaves: it acknowledges every layer
/// it should forward, as an honest relay does, and then drops it or alters it. The
/// configuration file has no key for it: a deployed node is always [`RelayFault::None`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RelayFault {
    /// Forward honestly.
    #[default]
    None,
    /// Acknowledge, then forward nothing.
    Drop,
    /// Forward with one byte of the layer flipped.
    Corrupt,
}

impl RelayPolicy {
    /// Whether this node forwards for `prev`.
    pub fn forwards_for(&self, prev: &NodeIdentity) -> bool {
        match &self.mode {
            RelayMode::Anyone => true,
            RelayMode::Listed(l) => l.contains(prev),
            RelayMode::Never => false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    msgs: f64,
    bytes: f64,
    at: Instant,
}

/// Token buckets per previous hop.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<NodeIdentity, Bucket>,
}

impl RateLimiter {
    /// Takes one message of `bytes` from `prev`'s bucket, or says which limit it is over.
    pub fn admit(
        &mut self,
        limits: &RateLimits,
        now: Instant,
        prev: NodeIdentity,
        bytes: usize,
    ) -> Result<(), DropReason> {
        if !self.buckets.contains_key(&prev) && self.buckets.len() >= limits.max_sources {
            self.buckets
                .retain(|_, b| now.saturating_duration_since(b.at) < Duration::from_secs(1));
            if self.buckets.len() >= limits.max_sources {
                self.buckets.clear();
            }
        }
        let (max_m, max_b) = (limits.msgs_per_s as f64, limits.bytes_per_s as f64);
        let b = self.buckets.entry(prev).or_insert(Bucket {
            msgs: max_m,
            bytes: max_b,
            at: now,
        });
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        b.at = now;
        b.msgs = (b.msgs + dt * max_m).min(max_m);
        b.bytes = (b.bytes + dt * max_b).min(max_b);
        if b.msgs < 1.0 {
            return Err(DropReason::RelayOverRate);
        }
        if b.bytes < bytes as f64 {
            return Err(DropReason::RelayOverBytes);
        }
        b.msgs -= 1.0;
        b.bytes -= bytes as f64;
        Ok(())
    }

    /// Previous hops with a bucket.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no previous hop has a bucket.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}
