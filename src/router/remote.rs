//! Routing what other nodes send: the ingress path (cheap checks, then signatures in batches)
//! and delivery of what passed, with the receipts that tell the Transport when to acknowledge.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;

use super::ingress::{PendingBatch, VerifiedBatch};
use super::{Router, Slot};
use crate::identity::{EngineIdentity, NodeIdentity};
use crate::mail::{DropReason, Message, Receipt};
use crate::time::Now;
use crate::wire::{Destination, EngineMessage, RoutingScope};

impl Router {
    /// A wire message from `peer`, as the Transport received it. Cheap checks run now; the
    /// signature is checked when the shell takes the ingress batch (when it is full, or when the
    /// mailbox is empty). `receipt`, if any, is handed back in [`super::RouterOutput::Acknowledge`]
    /// once the message has been delivered (and handled) or dropped.
    pub fn handle_remote(
        &mut self,
        now: Now,
        peer: NodeIdentity,
        wire: Vec<u8>,
        receipt: Option<Receipt>,
    ) {
        self.stats
            .received_remote
            .fetch_add(1, AtomicOrdering::Relaxed);
        if let Err(reason) = self.ingress.accept(now, peer, wire, receipt) {
            self.refuse_from_peer(now, peer, receipt, reason, "message");
        }
    }

    /// Drops what `peer` sent (`what`: a message, a relay layer) before it was admitted:
    /// counted, logged, its receipt handed back, and held against the peer if it is misconduct.
    pub(super) fn refuse_from_peer(
        &mut self,
        now: Now,
        peer: NodeIdentity,
        receipt: Option<Receipt>,
        reason: DropReason,
        what: &str,
    ) {
        self.receipts.extend(receipt);
        self.stats.dropped(reason);
        log::debug!(
            "router: dropped {what} from {}: {}",
            peer.short(),
            reason.label()
        );
        self.misbehaved(now, peer, reason);
    }

    /// Verifier threads configured.
    pub fn verifier_threads(&self) -> usize {
        self.limits.verifier_threads
    }

    /// Checks a batch's signatures on this thread.
    pub fn verify_here(&mut self, batch: PendingBatch) -> VerifiedBatch {
        self.ingress.verify_here(batch)
    }

    /// Whether the ingress batch is full (the shell should verify it now).
    pub fn ingress_batch_full(&self) -> bool {
        self.ingress.batch_full()
    }

    /// Takes the pending ingress batch, to verify on another thread.
    pub fn take_ingress_batch(&mut self) -> Option<PendingBatch> {
        self.ingress.take_batch()
    }

    /// Commits a batch verified elsewhere and routes what passed. Batches must be completed in
    /// the order they were taken.
    pub fn complete_ingress_batch(&mut self, now: Now, batch: VerifiedBatch) {
        let stats = Arc::clone(&self.stats);
        let mut admitted = std::mem::take(&mut self.admitted);
        // Ingress admitted to the batch only messages whose source node is the peer they came
        // from, so `src_node` names the peer a failure is held against.
        let mut bad = Vec::new();
        self.ingress.complete(
            now,
            &stats,
            batch,
            &mut admitted,
            &mut self.receipts,
            |reason, m| {
                stats.dropped(reason);
                log::debug!(
                    "router: dropped message {} from {}: {}",
                    m.id.0,
                    m.src.short(),
                    reason.label()
                );
                bad.push((m.src_node, reason));
            },
        );
        for (peer, reason) in bad {
            self.misbehaved(now, peer, reason);
        }
        for (msg, peer, receipt) in admitted.drain(..) {
            self.route_admitted(now, msg, peer, receipt);
        }
        self.admitted = admitted;
    }

    /// Verifies what ingress has queued on this thread and routes what passes.
    pub fn flush(&mut self, now: Now) {
        if let Some(batch) = self.ingress.take_batch() {
            let verified = self.ingress.verify_here(batch);
            self.complete_ingress_batch(now, verified);
        }
    }

    /// Routes a remote message that passed ingress. A message for one local engine carries its
    /// receipt to that engine (acknowledged once handled); otherwise the receipt is handed back
    /// now, the message having been dropped or delivered to every subscriber's mailbox.
    pub(super) fn route_admitted(
        &mut self,
        now: Now,
        msg: crate::wire::Verified<EngineMessage>,
        peer: NodeIdentity,
        receipt: Option<Receipt>,
    ) {
        self.learn_remote_engine(msg.src, peer);
        if self.pending.contains_key(&msg.src) {
            self.release_pending(now, msg.src, peer);
        }
        let drop = |router: &mut Router, reason: DropReason| {
            router.not_handled(receipt);
            router.stats.dropped(reason);
            log::debug!(
                "router: dropped remote message {} from {}: {}",
                msg.id.0,
                msg.src.short(),
                reason.label()
            );
        };
        match msg.scope() {
            RoutingScope::Local => return drop(self, DropReason::ScopeViolation),
            // `peer` is the authenticated source node (ingress checked `src_node` against it).
            // Not misconduct: the peer's replica of the membership may lag this node's.
            RoutingScope::Domain(d) if !self.domain_allows(&d, &peer) => {
                return drop(self, DropReason::NotMember)
            }
            _ => {}
        }
        match msg.dst {
            Destination::Engine(e) => match self.locals.get(&e) {
                Some(l) => {
                    let slot = l.slot;
                    self.deliver_remote(slot, Message::remote(msg, peer), receipt)
                }
                None => drop(self, DropReason::NotForThisNode),
            },
            Destination::Node(n) if n == self.node => match self.services.get(&msg.protocol) {
                Some(&slot) => self.deliver_remote(slot, Message::remote(msg, peer), receipt),
                None => drop(self, DropReason::NoRoute),
            },
            Destination::Node(_) => drop(self, DropReason::NotForThisNode),
            Destination::Topic(t) => match self.topics.get(&t) {
                None => drop(self, DropReason::UnknownTopic),
                Some(topic) if topic.scope == RoutingScope::Local => {
                    drop(self, DropReason::ScopeViolation)
                }
                Some(topic) if matches!(topic.scope, RoutingScope::Domain(d) if !self.domain_allows(&d, &peer)) => {
                    drop(self, DropReason::NotMember)
                }
                Some(topic) => {
                    let targets: Vec<Slot> = topic
                        .subscribers
                        .iter()
                        .filter_map(|s| self.locals.get(s).map(|l| l.slot))
                        .collect();
                    let message = Message::remote(msg, peer);
                    self.fan_out_message(targets, message, None);
                    self.receipts.extend(receipt);
                }
            },
            // Anycast: for this node's engine serving the protocol if it is a member.
            Destination::Domain(d) if self.domains.member_here(&d) => {
                match self.services.get(&msg.protocol) {
                    Some(&slot) => self.deliver_remote(slot, Message::remote(msg, peer), receipt),
                    None => drop(self, DropReason::NoRoute),
                }
            }
            Destination::Domain(_) => drop(self, DropReason::NotMember),
        }
    }

    pub(super) fn learn_remote_engine(&mut self, engine: EngineIdentity, node: NodeIdentity) {
        if let Some(known) = self.remote_engines.get_mut(&engine) {
            *known = node;
            return;
        }
        while self.remote_engines.len() >= self.limits.max_remote_engines {
            match self.remote_order.pop_front() {
                Some(old) => {
                    self.remote_engines.remove(&old);
                }
                None => break,
            }
        }
        self.remote_engines.insert(engine, node);
        self.remote_order.push_back(engine);
    }

    /// Forgets where a remote engine runs (its node withdrew it, or its advert expired): the
    /// next message to it is looked up again.
    pub(super) fn forget_remote_engine(&mut self, engine: &EngineIdentity) {
        if self.remote_engines.remove(engine).is_some() {
            // The order keeps the forgotten entry until it is compacted: at most as many stale
            // entries as live ones.
            if self.remote_order.len() > 2 * self.remote_engines.len().max(64) {
                let live = &self.remote_engines;
                let mut seen = std::collections::HashSet::new();
                self.remote_order
                    .retain(|e| live.contains_key(e) && seen.insert(*e));
            }
        }
    }

    /// The identity store found no node for `engine`: messages waiting for it are dropped as
    /// `no_route` now rather than at the lookup timeout.
    pub(super) fn lookup_failed(&mut self, engine: EngineIdentity) {
        if let Some(p) = self.pending.remove(&engine) {
            log::debug!(
                "router: no node knows engine {}; {} waiting messages dropped",
                engine.short(),
                p.messages.len()
            );
            for (header, _) in p.messages {
                self.drop_header(&header, DropReason::NoRoute);
            }
        }
    }

    /// The node a remote engine is known to run on.
    pub fn remote_engine_node(&self, engine: &EngineIdentity) -> Option<NodeIdentity> {
        self.remote_engines.get(engine).copied()
    }
}
