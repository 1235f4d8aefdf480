//! The Topology engine (name [`TOPOLOGY_ENGINE_NAME`], serves `Protocol::TOPOLOGY`): keeps,
//! per domain this node is a member of, a HyParView overlay of the domain's members, and tells
//! the engines that watch a domain which members are its neighbours. docs/topology.md
//! describes the algorithm, its parameters and its behaviour under churn and partitions.
//!
//! * **Membership comes from the Domain engine.** `ViewMail::Members { here, added, removed,
//!   introducers }` (local mail) creates, updates or (with `here: false`) tears down a domain's
//!   overlay. Only members enter the views; a remote topology message from a node that is not a
//!   member (per the latest `Members`) is refused (`not_member`), and a member removed from the
//!   membership leaves both views at once.
//! * **Two views.** The *active view* (at most [`TopologyLimits::active_view`], default 5) holds
//!   the connected neighbours: on entry the engine asks the Transport to connect
//!   (`TransportRequest::Connect`) and sends `PeerAddedToView` to every watcher; on exit it sends
//!   `PeerRemovedFromView`, and asks the Transport to disconnect only when the peer is in no
//!   domain's active view and no `Neighbor` request to it is in flight (other engines' traffic
//!   may reconnect it on demand; that is their business). The *passive view* (at most
//!   [`TopologyLimits::passive_view`], default 30) holds members known to be there, to replace
//!   failed neighbours from.
//! * **Joining.** With an empty active view the engine asks a passive member to be its
//!   neighbour with high priority; with none, it sends `Join` to a random introducer (else a
//!   random member), again every [`TopologyLimits::join_retry`]. The contact welcomes it and
//!   sends `ForwardJoin` random walks (length [`TopologyLimits::active_walk_length`]) from its
//!   other neighbours; where a walk ends, that node welcomes it too; at
//!   [`TopologyLimits::passive_walk_length`] hops the walk leaves it in a passive view.
//! * **Fast failure detection.** Every [`TopologyLimits::tick`] the engine sends a `Keepalive`
//!   to each active peer it sent nothing to for [`TopologyLimits::keepalive_interval`], and
//!   removes an active peer it heard nothing from for [`TopologyLimits::failure_timeout`]
//!   (any authenticated message from that node counts, in any domain). The Transport's
//!   `NodeDisconnected` / `NodeConnectFailed` remove a peer at once. A removed peer is replaced
//!   from the passive view: `Neighbor` with high priority when the view is empty, low otherwise;
//!   a refused or unanswered ([`TopologyLimits::neighbor_timeout`]) request tries the next.
//! * **Shuffles and exploration.** Every [`TopologyLimits::shuffle_interval`] (jittered) a node
//!   sends a `Shuffle` walk offering itself and a few active and passive members; where it ends,
//!   the receiver answers with as many of its passive members and both merge what they got into
//!   their passive views. Every [`TopologyLimits::explore_interval`] (jittered) a node asks a
//!   random member of the whole membership to be its neighbour with high priority, swapping out
//!   a random active peer: this keeps a healed partition from staying two overlays.
//! * **Watchers.** `ViewMail::Watch { domain }` from a local engine (at most
//!   [`TopologyLimits::max_watchers`] per domain) is answered at once with one
//!   `PeerAddedToView` per active peer; `Unwatch` ends it; a watcher whose mail is undeliverable
//!   is forgotten.
//! * **Trust.** Local mail is acted on only with `Origin::Local`; topology messages only with
//!   `Origin::Remote { via }` whose verified sender runs on `via`. Malformed bodies, unknown
//!   versions, oversized lists, ttls above their walk length, unknown domains, non-members,
//!   unsolicited answers and members exceeding [`TopologyLimits::exchanges_per_peer_s`] are
//!   refused, counted in [`TopologyStats`] and logged (warnings at most once a second).
//!
//! Drain contract: the engine sets one timer (token [`TICK`]) in `start` and again on every
//! tick; every other output is a message or a transport request recorded in the `Context`.
//! Randomness comes only from the seed given to [`TopologyEngine::new`]; every choice iterates
//! ordered maps, so one seed and one input sequence give one output sequence.
//!
//! Memory: bounded by [`TopologyLimits`] (see its doc: ≈ 1 MiB per domain at the limits, at most
//! [`TopologyLimits::max_domains`] domains).

mod limits;
mod overlay;
mod protocol;
mod upkeep;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::identity::{DomainIdentity, EngineIdentity, NodeIdentity};
pub use crate::mail::domain::{ViewMail, TOPOLOGY_ENGINE_NAME};
use crate::mail::transport::{ConnectResult, TransportEvent, TransportRequest};
use crate::mail::{Input, Message, Origin, Undeliverable};
use crate::rng::SplitMix64;
use crate::runtime::{Context, Engine, SendOptions};
use crate::wire::{Destination, MessageId, Protocol};
pub use limits::{TopologyLimits, TopologyProbe, TopologyStats, ViewSnapshot};
use overlay::{jittered, Overlay, MAX_INTRODUCERS};
use wire::TopologyMessage;

/// The token of the engine's one timer.
pub const TICK: u64 = 1;

/// How a peer leaves an active view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Removal {
    /// Swapped out for another peer: told with `Disconnect`, kept in the passive view.
    Displaced,
    /// It said `Disconnect`, or its connection closed: kept in the passive view.
    Left,
    /// Silent for `failure_timeout`, or its connection failed: told (in case it is not dead)
    /// and forgotten.
    Failed,
    /// No longer a member, or this node leaves the domain: told and forgotten.
    Gone,
}

/// The Topology engine: one HyParView overlay per domain this node is a member of.
pub struct TopologyEngine {
    limits: TopologyLimits,
    stats: Arc<TopologyStats>,
    probe: TopologyProbe,
    rng: SplitMix64,
    overlays: BTreeMap<DomainIdentity, Overlay>,
    watchers: BTreeMap<DomainIdentity, BTreeSet<EngineIdentity>>,
    /// Domains whose views changed in the current call: refilled and published after it.
    touched: BTreeSet<DomainIdentity>,
    dirty: bool,
    last_warn: Option<Instant>,
}

impl TopologyEngine {
    /// An engine with no domain yet; `seed` seeds every random choice it makes.
    pub fn new(limits: TopologyLimits, stats: Arc<TopologyStats>, seed: u64) -> TopologyEngine {
        TopologyEngine {
            probe: TopologyProbe::new(stats.clone()),
            limits,
            stats,
            rng: SplitMix64::new(seed),
            overlays: BTreeMap::new(),
            watchers: BTreeMap::new(),
            touched: BTreeSet::new(),
            dirty: false,
            last_warn: None,
        }
    }

    /// The read-only probe on this engine's overlays and counters (shared: clone it and read
    /// it from another thread, or between simulation steps).
    pub fn probe(&self) -> TopologyProbe {
        self.probe.clone()
    }

    /// The limits this engine was built with.
    pub fn limits(&self) -> &TopologyLimits {
        &self.limits
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Arc<TopologyStats> {
        &self.stats
    }

    /// The active view of `domain`, sorted (empty without an overlay).
    pub fn active_view(&self, domain: &DomainIdentity) -> Vec<NodeIdentity> {
        self.overlays
            .get(domain)
            .map(|o| o.active.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The passive view of `domain`, sorted (empty without an overlay).
    pub fn passive_view(&self, domain: &DomainIdentity) -> Vec<NodeIdentity> {
        self.overlays
            .get(domain)
            .map(|o| o.passive.keys().copied().collect())
            .unwrap_or_default()
    }

    /// A topology message from `via`, as if verified, with the work after an input (for the
    /// test harness, which moves bodies between engines without signing them).
    #[cfg(test)]
    pub(crate) fn deliver_remote(&mut self, ctx: &mut Context, via: NodeIdentity, body: &[u8]) {
        self.on_remote(ctx, via, body);
        self.after(ctx);
    }

    // --- inputs -------------------------------------------------------------------------

    fn on_message(&mut self, ctx: &mut Context, msg: Message) {
        if msg.protocol() != Protocol::TOPOLOGY {
            self.refuse(&self.stats.malformed, "a message of another protocol", None);
            return;
        }
        match msg.origin() {
            Origin::Local => {
                let from = msg.sender().named();
                match ViewMail::decode(msg.body()) {
                    Ok(mail) => self.on_local(ctx, from, mail),
                    Err(e) => {
                        log::debug!("topology: undecodable local mail from {from:?}: {e}");
                        TopologyStats::bump(&self.stats.malformed);
                    }
                }
            }
            Origin::Remote { via } => {
                let sender = msg.sender();
                if sender.verified().is_none() || sender.named_node() != via || via == ctx.node() {
                    self.refuse(
                        &self.stats.bad_origin,
                        "a sender not of its node",
                        Some(via),
                    );
                    return;
                }
                self.on_remote(ctx, via, msg.body());
            }
            Origin::Topic { via, .. } => {
                self.refuse(&self.stats.bad_origin, "a topic event", Some(via));
            }
        }
    }

    fn on_local(&mut self, ctx: &mut Context, from: EngineIdentity, mail: ViewMail) {
        TopologyStats::bump(&self.stats.local_mail);
        match mail {
            ViewMail::Watch { domain } => self.watch(ctx, from, domain),
            ViewMail::Unwatch { domain } => {
                if let Some(w) = self.watchers.get_mut(&domain) {
                    w.remove(&from);
                    if w.is_empty() {
                        self.watchers.remove(&domain);
                    }
                }
            }
            ViewMail::Members {
                domain,
                here,
                added,
                removed,
                introducers,
            } => self.members(ctx, domain, here, added, removed, introducers),
            ViewMail::PeerAddedToView { .. } | ViewMail::PeerRemovedFromView { .. } => {
                log::debug!("topology: view event sent to the Topology engine by {from:?}");
                TopologyStats::bump(&self.stats.unexpected_mail);
            }
        }
    }

    fn watch(&mut self, ctx: &mut Context, from: EngineIdentity, domain: DomainIdentity) {
        let known = self.watchers.contains_key(&domain);
        let full = match self.watchers.get(&domain) {
            Some(w) => !w.contains(&from) && w.len() >= self.limits.max_watchers,
            None => self.watchers.len() >= self.limits.max_domains.max(1) * 2,
        };
        if full {
            log::debug!("topology: watch of {domain:?} by {from:?} refused: too many watchers");
            TopologyStats::bump(&self.stats.watchers_full);
            return;
        }
        if !known {
            self.watchers.insert(domain, BTreeSet::new());
        }
        if let Some(w) = self.watchers.get_mut(&domain) {
            w.insert(from);
        }
        for node in self.active_view(&domain) {
            self.send_view_event(ctx, from, ViewMail::PeerAddedToView { domain, node });
        }
    }

    fn members(
        &mut self,
        ctx: &mut Context,
        domain: DomainIdentity,
        here: bool,
        added: Vec<NodeIdentity>,
        removed: Vec<NodeIdentity>,
        introducers: Vec<NodeIdentity>,
    ) {
        if !here {
            self.teardown(ctx, domain);
            return;
        }
        let now = ctx.now().instant;
        if !self.overlays.contains_key(&domain) {
            if self.overlays.len() >= self.limits.max_domains {
                log::warn!(
                    "topology: no overlay for {domain:?}: already {} domains",
                    self.overlays.len()
                );
                TopologyStats::bump(&self.stats.domains_full);
                return;
            }
            let shuffle = now + jittered(self.limits.shuffle_interval, &mut self.rng);
            let explore = now + jittered(self.limits.explore_interval, &mut self.rng);
            self.overlays.insert(domain, Overlay::new(shuffle, explore));
            self.dirty = true;
        }
        for r in removed {
            self.remove_active(ctx, domain, r, Removal::Gone);
            if let Some(o) = self.overlays.get_mut(&domain) {
                o.members.remove(&r);
                o.forget(&r);
                o.introducers.retain(|i| *i != r);
            }
        }
        let Some(o) = self.overlays.get_mut(&domain) else {
            return;
        };
        for a in added {
            if o.members.len() >= self.limits.max_members && !o.members.contains(&a) {
                TopologyStats::bump(&self.stats.members_over_limit);
                continue;
            }
            o.members.insert(a);
        }
        let mut intro: Vec<NodeIdentity> = Vec::new();
        for i in introducers {
            if !intro.contains(&i) && intro.len() < MAX_INTRODUCERS {
                intro.push(i);
            }
        }
        o.introducers = intro;
        self.touched.insert(domain);
        self.dirty = true;
    }

    fn teardown(&mut self, ctx: &mut Context, domain: DomainIdentity) {
        let peers = self.active_view(&domain);
        for p in peers {
            self.remove_active(ctx, domain, p, Removal::Gone);
        }
        if let Some(o) = self.overlays.remove(&domain) {
            for p in o.pending.keys() {
                self.disconnect_if_unused(ctx, *p);
            }
            self.dirty = true;
        }
    }

    fn on_transport(&mut self, ctx: &mut Context, ev: TransportEvent) {
        let (node, failed) = match ev {
            TransportEvent::NodeDisconnected { node, .. } => (node, false),
            TransportEvent::NodeConnectFailed { node, .. } => (node, true),
            TransportEvent::Connect {
                node,
                result: ConnectResult::NoAddress | ConnectResult::Refused,
            } => (node, true),
            _ => return,
        };
        let domains: Vec<DomainIdentity> = self.overlays.keys().copied().collect();
        for d in domains {
            let Some(o) = self.overlays.get_mut(&d) else {
                continue;
            };
            if failed && o.pending.remove(&node).is_some() {
                o.passive.remove(&node);
                TopologyStats::bump(&self.stats.neighbor_timeouts);
                self.touched.insert(d);
            }
            if o.active.contains_key(&node) {
                log::debug!("topology: {node:?} lost in {d:?} (transport: failed={failed})");
                TopologyStats::bump(&self.stats.transport_failures);
                let how = if failed {
                    Removal::Failed
                } else {
                    Removal::Left
                };
                self.remove_active(ctx, d, node, how);
            }
        }
    }

    fn on_undeliverable(&mut self, ctx: &mut Context, u: Undeliverable) {
        match u.dst {
            Destination::Engine(w) => {
                TopologyStats::bump(&self.stats.watcher_undeliverable);
                log::debug!(
                    "topology: watcher {w:?} unreachable ({:?}); forgotten",
                    u.reason
                );
                for set in self.watchers.values_mut() {
                    set.remove(&w);
                }
                self.watchers.retain(|_, s| !s.is_empty());
            }
            Destination::Node(node) => {
                let domains: Vec<DomainIdentity> = self.overlays.keys().copied().collect();
                for d in domains {
                    let Some(o) = self.overlays.get_mut(&d) else {
                        continue;
                    };
                    if o.pending.get(&node).is_some_and(|p| p.id == u.id) {
                        o.pending.remove(&node);
                        o.passive.remove(&node);
                        TopologyStats::bump(&self.stats.neighbor_timeouts);
                        self.touched.insert(d);
                        self.disconnect_if_unused(ctx, node);
                    }
                }
            }
            _ => {}
        }
    }

    // --- view changes -------------------------------------------------------------------

    /// Puts `node` into the active view of `domain` (swapping out a random peer if full).
    fn add_active(&mut self, ctx: &mut Context, domain: DomainIdentity, node: NodeIdentity) {
        let now = ctx.now().instant;
        let me = ctx.node();
        let max = self.limits.active_view.max(1);
        let victim = {
            let Some(o) = self.overlays.get(&domain) else {
                return;
            };
            if node == me || o.active.contains_key(&node) || !o.is_member(&node) {
                return;
            }
            if o.active.len() >= max {
                o.random_active(&[node], &mut self.rng)
            } else {
                None
            }
        };
        if let Some(v) = victim {
            self.remove_active(ctx, domain, v, Removal::Displaced);
        }
        let Some(o) = self.overlays.get_mut(&domain) else {
            return;
        };
        o.passive.remove(&node);
        o.pending.remove(&node);
        o.active.insert(
            node,
            overlay::Peer {
                last_heard: now,
                last_sent: now,
            },
        );
        TopologyStats::bump(&self.stats.peers_added);
        self.touched.insert(domain);
        self.dirty = true;
        ctx.request(TransportRequest::Connect { node });
        self.tell_watchers(ctx, domain, ViewMail::PeerAddedToView { domain, node });
    }

    /// Takes `node` out of the active view of `domain`; returns whether it was there.
    fn remove_active(
        &mut self,
        ctx: &mut Context,
        domain: DomainIdentity,
        node: NodeIdentity,
        how: Removal,
    ) -> bool {
        let me = ctx.node();
        let Some(o) = self.overlays.get_mut(&domain) else {
            return false;
        };
        if o.active.remove(&node).is_none() {
            return false;
        }
        if matches!(how, Removal::Displaced | Removal::Left) {
            let max = self.limits.passive_view;
            o.add_passive(node, me, max, &[], &mut self.rng);
        }
        TopologyStats::bump(&self.stats.peers_removed);
        self.touched.insert(domain);
        self.dirty = true;
        if how != Removal::Left {
            self.send_remote(ctx, node, &TopologyMessage::Disconnect { domain });
        }
        self.tell_watchers(ctx, domain, ViewMail::PeerRemovedFromView { domain, node });
        self.disconnect_if_unused(ctx, node);
        true
    }

    /// Asks the Transport to disconnect `node` unless some overlay still needs it.
    fn disconnect_if_unused(&mut self, ctx: &mut Context, node: NodeIdentity) {
        let used = self
            .overlays
            .values()
            .any(|o| o.active.contains_key(&node) || o.pending.contains_key(&node));
        if !used {
            ctx.request(TransportRequest::Disconnect { node });
        }
    }

    fn tell_watchers(&mut self, ctx: &mut Context, domain: DomainIdentity, event: ViewMail) {
        let watchers: Vec<EngineIdentity> = self
            .watchers
            .get(&domain)
            .map(|w| w.iter().copied().collect())
            .unwrap_or_default();
        for w in watchers {
            self.send_view_event(ctx, w, event.clone());
        }
    }

    fn send_view_event(&mut self, ctx: &mut Context, to: EngineIdentity, event: ViewMail) {
        TopologyStats::bump(&self.stats.sent_view_events);
        ctx.send_with(
            Destination::Engine(to),
            Protocol::TOPOLOGY,
            event.encode(),
            SendOptions::local_only(),
        );
    }

    // --- sending ------------------------------------------------------------------------

    /// Sends `msg` to `node`'s Topology engine; notes the time for the keepalives.
    fn send_remote(
        &mut self,
        ctx: &mut Context,
        node: NodeIdentity,
        msg: &TopologyMessage,
    ) -> MessageId {
        let s = &self.stats;
        TopologyStats::bump(match msg {
            TopologyMessage::Join { .. } => &s.sent_join,
            TopologyMessage::ForwardJoin { .. } => &s.sent_forward_join,
            TopologyMessage::Neighbor { .. } => &s.sent_neighbor,
            TopologyMessage::NeighborReply { .. } => &s.sent_neighbor_reply,
            TopologyMessage::Disconnect { .. } => &s.sent_disconnect,
            TopologyMessage::Shuffle { .. } => &s.sent_shuffle,
            TopologyMessage::ShuffleReply { .. } => &s.sent_shuffle_reply,
            TopologyMessage::Keepalive { .. } => &s.sent_keepalive,
        });
        let now = ctx.now().instant;
        if let Some(p) = self
            .overlays
            .get_mut(&msg.domain())
            .and_then(|o| o.active.get_mut(&node))
        {
            p.last_sent = now;
        }
        let opts = SendOptions {
            expiry: self.limits.failure_timeout.max(Duration::from_secs(1)) * 2,
            // Only a `Neighbor` request waits on its answer; other losses are the failure
            // detector's business.
            notify_undeliverable: matches!(msg, TopologyMessage::Neighbor { .. }),
            ..SendOptions::default()
        };
        ctx.send_with(
            Destination::Node(node),
            Protocol::TOPOLOGY,
            msg.to_bytes(),
            opts,
        )
    }

    /// Counts a refusal and logs it (a warning at most once a second, else debug).
    fn refuse(
        &self,
        counter: &std::sync::atomic::AtomicU64,
        what: &str,
        from: Option<NodeIdentity>,
    ) {
        TopologyStats::bump(counter);
        log::debug!("topology: refused {what} from {from:?}");
    }

    /// Like [`Self::refuse`], for input only a misbehaving peer sends: a warning, at most
    /// once a second.
    fn refuse_hostile(
        &mut self,
        now: Instant,
        counter: &std::sync::atomic::AtomicU64,
        what: &str,
        from: NodeIdentity,
    ) {
        TopologyStats::bump(counter);
        if self
            .last_warn
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            self.last_warn = Some(now);
            log::warn!(
                "topology: refused {what} from {from:?} (further ones this second at debug)"
            );
        } else {
            log::debug!("topology: refused {what} from {from:?}");
        }
    }

    /// After every input: refills the views that lost peers and publishes the probe.
    fn after(&mut self, ctx: &mut Context) {
        let touched = std::mem::take(&mut self.touched);
        for d in touched {
            self.refill(ctx, d);
        }
        // Refilling may touch again; those are picked up on the next input.
        self.touched.clear();
        if self.dirty {
            self.dirty = false;
            let views = self
                .overlays
                .iter()
                .map(|(d, o)| {
                    (
                        *d,
                        ViewSnapshot {
                            active: o.active.keys().copied().collect(),
                            passive_len: o.passive.len(),
                            members: o.members.len(),
                        },
                    )
                })
                .collect();
            self.probe.publish(views);
        }
    }
}

impl Engine for TopologyEngine {
    fn start(&mut self, ctx: &mut Context) {
        ctx.request(TransportRequest::Subscribe);
        ctx.set_timer_after(TICK, self.limits.tick);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Message(m) => self.on_message(ctx, m),
            Input::Transport(ev) => self.on_transport(ctx, ev),
            Input::Undeliverable(u) => self.on_undeliverable(ctx, u),
            Input::Timer(TICK) => {
                self.on_tick(ctx);
                ctx.set_timer_after(TICK, self.limits.tick);
            }
            _ => {}
        }
        self.after(ctx);
    }

    fn stop(&mut self, ctx: &mut Context) {
        let domains: Vec<DomainIdentity> = self.overlays.keys().copied().collect();
        for d in domains {
            self.teardown(ctx, d);
        }
        self.after(ctx);
    }
}
