//! Anti-entropy: operations received (pushed or sent on request), digests and version
//! vectors.
//!
//! A member sends `Digest { count, hash }` to one random view peer per tick. A receiver whose
//! digest differs answers with its `Vector` (reply requested); the first sends the operations
//! the vector lacks (one bounded batch) and its own vector; the receiver sends what that one
//! lacks. Whatever a batch leaves out the next round sends. New operations are queued to be
//! pushed at the next flush to every view peer but the one they came from, so each is
//! forwarded once by every node (flooding over the overlay).

use std::sync::Arc;

use super::join::count_insert;
use super::membership::Inserted;
use super::ops::Op;
use super::wire::{DomainMessage, VectorEntry, MAX_VECTOR_ENTRIES};
use super::{DomainEngine, DomainStats};
use crate::identity::{DomainIdentity, NodeIdentity};
use crate::runtime::Context;

impl DomainEngine {
    /// Whether `from` may take part in the anti-entropy of `d`: a member, an introducer or a
    /// contact (the approver of this node's join).
    fn sync_peer_ok(&self, d: &DomainIdentity, from: &NodeIdentity) -> bool {
        self.domains.get(d).is_some_and(|i| {
            i.log.is_member(from)
                || i.advert.is_introducer(from)
                || (i.contacts.contains(from) && !i.log.is_expelled(from))
        })
    }

    /// Operations pushed or sent on request: only from a sync peer (a member, an
    /// introducer or a contact), within `ops_per_peer_s`.
    pub(super) fn on_ops(
        &mut self,
        ctx: &mut Context,
        from: NodeIdentity,
        d: DomainIdentity,
        ops: Vec<Op>,
    ) {
        if !self.domains.contains_key(&d) {
            DomainStats::count(&self.stats.unknown_domain);
            return;
        }
        if !self.sync_peer_ok(&d, &from) {
            DomainStats::count(&self.stats.sync_from_non_member);
            log::debug!(
                "domain {}: operations from non-member {} ignored",
                d.short(),
                from.short()
            );
            return;
        }
        if !self.within(ctx.now().wall.0, from, super::RateKind::Ops) {
            return;
        }
        let Some(inst) = self.domains.get_mut(&d) else {
            return;
        };
        let evicted_before = inst.log.pending_evicted();
        let mut released = Vec::new();
        for op in ops {
            DomainStats::count(&self.stats.ops_received);
            let op = Arc::new(op);
            let res = inst.log.insert(op.clone(), false, &mut released);
            if res == Ok(Inserted::New) {
                inst.push.push((op, Some(from)));
            } else if let Err(e) = res {
                log::debug!(
                    "domain {}: operation from {} refused: {e:?}",
                    d.short(),
                    from.short()
                );
            }
            count_insert(&self.stats, res);
        }
        for op in released {
            DomainStats::count(&self.stats.ops_new);
            inst.push.push((op, None));
        }
        let evicted = inst.log.pending_evicted() - evicted_before;
        self.stats
            .ops_pending_evicted
            .fetch_add(evicted, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn on_digest(
        &mut self,
        ctx: &mut Context,
        from: NodeIdentity,
        d: DomainIdentity,
        count: u64,
        hash: [u8; 32],
    ) {
        if !self.domains.contains_key(&d) {
            DomainStats::count(&self.stats.unknown_domain);
            return;
        }
        if !self.sync_peer_ok(&d, &from) {
            DomainStats::count(&self.stats.sync_from_non_member);
            return;
        }
        if !self.within_rate(ctx.now().wall.0, from) {
            return;
        }
        let inst = &self.domains[&d];
        if inst.log.digest() == (count, hash) {
            DomainStats::count(&self.stats.digests_matched);
            return;
        }
        DomainStats::count(&self.stats.digests_mismatched);
        let entries = self.vector_of(&d);
        let msg = DomainMessage::Vector {
            domain: d,
            entries,
            reply: true,
        };
        self.send_remote(ctx, from, &msg);
    }

    fn vector_of(&self, d: &DomainIdentity) -> Vec<VectorEntry> {
        let mut v = self.domains[d].log.vector();
        v.truncate(MAX_VECTOR_ENTRIES);
        v
    }

    pub(super) fn on_vector(
        &mut self,
        ctx: &mut Context,
        from: NodeIdentity,
        d: DomainIdentity,
        entries: Vec<VectorEntry>,
        reply: bool,
    ) {
        if !self.domains.contains_key(&d) {
            DomainStats::count(&self.stats.unknown_domain);
            return;
        }
        if !self.sync_peer_ok(&d, &from) {
            DomainStats::count(&self.stats.sync_from_non_member);
            return;
        }
        if !self.within_rate(ctx.now().wall.0, from) {
            return;
        }
        let missing = self.domains[&d].log.missing_for(&entries);
        if !missing.is_empty() {
            let msg = DomainMessage::Ops {
                domain: d,
                ops: missing.iter().map(|o| (**o).clone()).collect(),
            };
            self.send_remote(ctx, from, &msg);
        }
        if reply {
            let msg = DomainMessage::Vector {
                domain: d,
                entries: self.vector_of(&d),
                reply: false,
            };
            self.send_remote(ctx, from, &msg);
        }
    }
}
