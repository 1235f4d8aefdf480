//! One domain's overlay state: the membership copy, the active and passive views, the
//! `Neighbor` requests in flight and the per-member rate buckets. Pure data and the random
//! choices over it; what the changes mean (events to watchers, transport requests, messages)
//! is in the engine (`mod.rs`, `protocol.rs`, `upkeep.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::identity::NodeIdentity;
use crate::rng::SplitMix64;
use crate::wire::MessageId;

/// Most introducers remembered per domain.
pub const MAX_INTRODUCERS: usize = 64;

/// An active peer: a connected member this node exchanges keepalives with.
#[derive(Clone, Copy, Debug)]
pub(super) struct Peer {
    /// When anything was last heard from it.
    pub last_heard: Instant,
    /// When anything was last sent to it (for this domain).
    pub last_sent: Instant,
}

/// Why a `Neighbor` request was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ask {
    /// To fill an active view below its size (or empty: high priority).
    Refill,
    /// To take in a member whose `Join` or `ForwardJoin` walk ended here (high priority).
    Welcome,
    /// The periodic exploration of a random member (high priority).
    Explore,
}

/// A `Neighbor` request waiting for its answer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    pub sent_at: Instant,
    pub ask: Ask,
    pub id: MessageId,
}

/// A token bucket limiting one member's view exchanges.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One domain's overlay.
#[derive(Debug)]
pub(super) struct Overlay {
    /// The members, as the Domain engine last said (this node included or not).
    pub members: BTreeSet<NodeIdentity>,
    /// The advert's introducers (at most [`MAX_INTRODUCERS`]).
    pub introducers: Vec<NodeIdentity>,
    /// The active view.
    pub active: BTreeMap<NodeIdentity, Peer>,
    /// The passive view: each member with the time until which it is not asked again with
    /// low priority (it refused).
    pub passive: BTreeMap<NodeIdentity, Option<Instant>>,
    /// `Neighbor` requests in flight.
    pub pending: BTreeMap<NodeIdentity, Pending>,
    /// Rate buckets of the members that sent view exchanges.
    pub buckets: BTreeMap<NodeIdentity, Bucket>,
    /// The last shuffle this node started: when, and the members it offered.
    pub shuffle_sent: Option<(Instant, Vec<NodeIdentity>)>,
    /// When the next shuffle starts.
    pub next_shuffle: Instant,
    /// When the next exploration is made.
    pub next_explore: Instant,
    /// When the last `Join` was sent.
    pub join_sent: Option<Instant>,
    /// When the last low-priority refill request was sent.
    pub last_refill: Option<Instant>,
}

impl Overlay {
    pub fn new(next_shuffle: Instant, next_explore: Instant) -> Overlay {
        Overlay {
            members: BTreeSet::new(),
            introducers: Vec::new(),
            active: BTreeMap::new(),
            passive: BTreeMap::new(),
            pending: BTreeMap::new(),
            buckets: BTreeMap::new(),
            shuffle_sent: None,
            next_shuffle,
            next_explore,
            join_sent: None,
            last_refill: None,
        }
    }

    pub fn is_member(&self, node: &NodeIdentity) -> bool {
        self.members.contains(node)
    }

    /// Puts `node` into the passive view unless it is `me`, active, already there or not a
    /// member; when the view is full, evicts one of `prefer_evict` that is in it, else a
    /// random entry. Returns whether it was added.
    pub fn add_passive(
        &mut self,
        node: NodeIdentity,
        me: NodeIdentity,
        max: usize,
        prefer_evict: &[NodeIdentity],
        rng: &mut SplitMix64,
    ) -> bool {
        if max == 0
            || node == me
            || self.active.contains_key(&node)
            || self.passive.contains_key(&node)
            || !self.members.contains(&node)
        {
            return false;
        }
        while self.passive.len() >= max {
            let victim = prefer_evict
                .iter()
                .find(|n| self.passive.contains_key(n))
                .copied()
                .or_else(|| pick(self.passive.keys(), rng));
            match victim {
                Some(v) => {
                    self.passive.remove(&v);
                }
                None => break,
            }
        }
        self.passive.insert(node, None);
        true
    }

    /// Takes one token from `peer`'s bucket; false when it has none left.
    pub fn take_token(
        &mut self,
        peer: NodeIdentity,
        now: Instant,
        per_s: u32,
        burst: u32,
        max_buckets: usize,
    ) -> bool {
        if !self.buckets.contains_key(&peer) && self.buckets.len() >= max_buckets {
            // Forget the bucket refilled longest ago (it is the fullest anyway).
            if let Some(oldest) = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(n, _)| *n)
            {
                self.buckets.remove(&oldest);
            }
        }
        let b = self.buckets.entry(peer).or_insert(Bucket {
            tokens: burst as f64,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_s as f64).min(burst as f64);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets everything about `node` but its membership.
    pub fn forget(&mut self, node: &NodeIdentity) {
        self.passive.remove(node);
        self.pending.remove(node);
        self.buckets.remove(node);
    }

    /// A random active peer other than those in `not`.
    pub fn random_active(
        &self,
        not: &[NodeIdentity],
        rng: &mut SplitMix64,
    ) -> Option<NodeIdentity> {
        pick(self.active.keys().filter(|n| !not.contains(n)), rng)
    }

    /// Up to `n` distinct random members of `from`, in random order.
    pub fn sample<'a>(
        from: impl Iterator<Item = &'a NodeIdentity>,
        n: usize,
        rng: &mut SplitMix64,
    ) -> Vec<NodeIdentity> {
        let mut all: Vec<NodeIdentity> = from.copied().collect();
        let mut out = Vec::with_capacity(n.min(all.len()));
        while out.len() < n && !all.is_empty() {
            let i = rng.below(all.len() as u64) as usize;
            out.push(all.swap_remove(i));
        }
        out
    }
}

/// A uniformly random item of `items` (in their deterministic order), or `None`.
pub(super) fn pick<'a>(
    items: impl Iterator<Item = &'a NodeIdentity>,
    rng: &mut SplitMix64,
) -> Option<NodeIdentity> {
    let all: Vec<&NodeIdentity> = items.collect();
    if all.is_empty() {
        return None;
    }
    Some(*all[rng.below(all.len() as u64) as usize])
}

/// `d` jittered uniformly in [0.5 d, 1.5 d).
pub(super) fn jittered(d: Duration, rng: &mut SplitMix64) -> Duration {
    d.mul_f64(0.5 + rng.next_f64())
}
