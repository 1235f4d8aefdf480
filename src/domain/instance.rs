//! One domain as the Domain engine serves it: the advert, the membership replica, the view
//! the Topology reports, operations waiting to be pushed, the join in progress, the replay
//! cache of join requests and the external requests outstanding.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::membership::Membership;
use super::ops::Op;
use super::wire::{DomainMessage, BATCH_OPS_BYTES, MAX_BATCH_OPS};
use super::DomainLimits;
use crate::identity::{EngineIdentity, NodeIdentity};
use crate::rng::SplitMix64;
use crate::time::Timestamp;
use crate::wire::{DomainAdvert, Signed};

/// A join this node has asked for and not yet got an answer to.
#[derive(Debug)]
pub(super) struct JoinAttempt {
    /// The ids of the requests sent (one per try): a response must name one of them.
    pub requests: BTreeSet<[u8; 32]>,
    /// The id of the request of the current try (a refusal of an earlier one is ignored).
    pub current: Option<[u8; 32]>,
    /// Tries made so far.
    pub tries: u32,
    /// When the current try times out.
    pub deadline: Instant,
    /// The nodes asked in turn.
    pub contacts: Vec<NodeIdentity>,
    /// The local engines waiting for the outcome.
    pub waiters: Vec<EngineIdentity>,
}

/// An external request this node sent.
#[derive(Debug)]
pub(super) struct ExtPending {
    /// The local engine that asked.
    pub asker: EngineIdentity,
    /// The member asked.
    pub member: NodeIdentity,
    /// When to give up.
    pub deadline: Instant,
}

/// One domain (see the module doc).
#[derive(Debug)]
pub(super) struct Instance {
    pub advert: DomainAdvert,
    pub psk: Option<Vec<u8>>,
    pub join_at_start: bool,
    pub log: Membership,
    /// Whether this node is a member (as last published).
    pub here: bool,
    /// The active view, from the Topology's events.
    pub view: BTreeSet<NodeIdentity>,
    /// The member set last published.
    pub published: BTreeSet<NodeIdentity>,
    /// The log generation last published.
    pub published_gen: u64,
    /// Whether the instance was published at all.
    pub announced: bool,
    /// SHA-256 of the published member set.
    pub member_digest: [u8; 32],
    /// New operations to push, with the peer each came from.
    pub push: Vec<(Arc<Op>, Option<NodeIdentity>)>,
    pub join: Option<JoinAttempt>,
    /// Join request ids seen, with their `created` (the replay cache), and the same by time.
    pub seen: BTreeMap<[u8; 32], Timestamp>,
    pub seen_by_time: BTreeSet<(Timestamp, [u8; 32])>,
    pub ext: BTreeMap<u64, ExtPending>,
    /// Members learned as contacts (the approver of this node's join).
    pub contacts: Vec<NodeIdentity>,
    /// The advert version and `external_here` last set in the directory.
    pub published_advert: Option<(u64, bool)>,
}

impl Instance {
    pub fn new(
        advert: DomainAdvert,
        psk: Option<Vec<u8>>,
        join_at_start: bool,
        limits: &DomainLimits,
    ) -> Instance {
        let log = Membership::new(&advert, limits.log_limits());
        Instance {
            advert,
            psk,
            join_at_start,
            log,
            here: false,
            view: BTreeSet::new(),
            published: BTreeSet::new(),
            published_gen: u64::MAX,
            announced: false,
            member_digest: [0; 32],
            push: Vec::new(),
            join: None,
            seen: BTreeMap::new(),
            seen_by_time: BTreeSet::new(),
            ext: BTreeMap::new(),
            contacts: Vec::new(),
            published_advert: None,
        }
    }

    /// Takes `advert` if it is fresher than the one held (same domain, already verified).
    pub fn take_advert(&mut self, advert: DomainAdvert) -> bool {
        if advert.id != self.advert.id || advert.freshness() <= self.advert.freshness() {
            return false;
        }
        self.log.set_advert(&advert);
        self.advert = advert;
        true
    }

    /// Remembers a join request id; false if it was seen already. When the cache is full the
    /// oldest entry goes.
    pub fn remember_request(&mut self, id: [u8; 32], created: Timestamp, max: usize) -> bool {
        if self.seen.contains_key(&id) {
            return false;
        }
        while self.seen.len() >= max.max(1) {
            let Some(oldest) = self.seen_by_time.pop_first() else {
                break;
            };
            self.seen.remove(&oldest.1);
        }
        self.seen.insert(id, created);
        self.seen_by_time.insert((created, id));
        true
    }

    /// Forgets request ids older than `window` (they would be refused as stale anyway).
    pub fn forget_old_requests(&mut self, now: Timestamp, window: Duration) {
        let floor = Timestamp(now.0.saturating_sub(window.as_millis() as u64));
        while let Some(first) = self.seen_by_time.first().copied() {
            if first.0 >= floor {
                break;
            }
            self.seen_by_time.pop_first();
            self.seen.remove(&first.1);
        }
    }

    /// Nodes to talk to when the view is empty: the introducers, then the contacts learned,
    /// never this node.
    pub fn fallback_contacts(&self, me: NodeIdentity) -> Vec<NodeIdentity> {
        let mut out: Vec<NodeIdentity> = Vec::new();
        for n in self
            .advert
            .introducers
            .iter()
            .map(|i| i.node)
            .chain(self.contacts.iter().copied())
        {
            if n != me && !out.contains(&n) {
                out.push(n);
            }
        }
        out
    }

    /// One peer for a digest: a random view peer, else a random fallback contact, else a
    /// random other member.
    pub fn sync_target(&self, me: NodeIdentity, rng: &mut SplitMix64) -> Option<NodeIdentity> {
        if !self.view.is_empty() {
            let i = rng.below(self.view.len() as u64) as usize;
            return self.view.iter().nth(i).copied();
        }
        let contacts = self.fallback_contacts(me);
        if !contacts.is_empty() {
            return Some(contacts[rng.below(contacts.len() as u64) as usize]);
        }
        let others = self.published.len().saturating_sub(1);
        if others == 0 {
            return None;
        }
        let i = rng.below(self.published.len() as u64) as usize;
        self.published
            .iter()
            .cycle()
            .skip(i)
            .take(self.published.len())
            .find(|n| **n != me)
            .copied()
    }

    /// The `Ops` messages that push the waiting operations: to every view peer (each the
    /// operations it did not send), or, while the view is empty, to a few fallback contacts.
    pub fn push_batches(
        &mut self,
        me: NodeIdentity,
        limits: &DomainLimits,
        rng: &mut SplitMix64,
    ) -> Vec<(NodeIdentity, DomainMessage)> {
        if self.push.is_empty() {
            return Vec::new();
        }
        let push = std::mem::take(&mut self.push);
        let targets: Vec<NodeIdentity> = if !self.view.is_empty() {
            self.view.iter().copied().collect()
        } else {
            let mut c = self.fallback_contacts(me);
            // A random few, in a seeded order.
            for i in (1..c.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                c.swap(i, j);
            }
            c.truncate(limits.push_contacts);
            c
        };
        let mut out = Vec::new();
        for peer in targets {
            let mut batch: Vec<Op> = Vec::new();
            let mut bytes = 0;
            for (op, from) in &push {
                if *from == Some(peer) || op.author == peer {
                    continue;
                }
                let len = op.wire_len();
                if !batch.is_empty()
                    && (batch.len() >= MAX_BATCH_OPS || bytes + len > BATCH_OPS_BYTES)
                {
                    out.push((
                        peer,
                        DomainMessage::Ops {
                            domain: self.advert.id,
                            ops: std::mem::take(&mut batch),
                        },
                    ));
                    bytes = 0;
                }
                bytes += len;
                batch.push((**op).clone());
            }
            if !batch.is_empty() {
                out.push((
                    peer,
                    DomainMessage::Ops {
                        domain: self.advert.id,
                        ops: batch,
                    },
                ));
            }
        }
        out
    }
}
