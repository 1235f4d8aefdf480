//! The Topology engine's handling of remote messages: the checks every message passes (it
//! decodes, its domain has an overlay here, its sender is a member, it is within the sender's
//! rate), then what each message does to the views.

use std::time::Instant;

use super::overlay::{Ask, Overlay, Pending};
use super::wire::TopologyMessage;
use super::{Removal, TopologyEngine, TopologyStats};
use crate::identity::{DomainIdentity, NodeIdentity};
use crate::runtime::Context;
use crate::wire::WireError;

impl TopologyEngine {
    /// A topology message from `via` (the authenticated peer; its verified sender runs there).
    pub(super) fn on_remote(&mut self, ctx: &mut Context, via: NodeIdentity, body: &[u8]) {
        let now = ctx.now().instant;
        let msg = match TopologyMessage::from_bytes(body, self.limits.max_shuffle_nodes) {
            Ok(m) => m,
            Err(WireError::UnknownVersion(v)) => {
                let what = format!("a body of version {v}");
                self.refuse(&self.stats.unknown_version, &what, Some(via));
                return;
            }
            Err(WireError::TooLarge { len, .. }) => {
                let what = format!("a list of {len} members");
                let c = &self.stats.clone().oversized;
                self.refuse_hostile(now, c, &what, via);
                return;
            }
            Err(e) => {
                let what = format!("an undecodable body ({e})");
                let c = &self.stats.clone().malformed;
                self.refuse_hostile(now, c, &what, via);
                return;
            }
        };
        let domain = msg.domain();
        let Some(o) = self.overlays.get_mut(&domain) else {
            self.refuse(&self.stats.unknown_domain, msg.kind(), Some(via));
            return;
        };
        if !o.is_member(&via) {
            let what = format!("{} (not a member of {domain:?})", msg.kind());
            self.refuse(&self.stats.not_member, &what, Some(via));
            return;
        }
        let limited = !matches!(
            msg,
            TopologyMessage::Keepalive { .. }
                | TopologyMessage::Disconnect { .. }
                | TopologyMessage::NeighborReply { .. }
        );
        if limited
            && !o.take_token(
                via,
                now,
                self.limits.exchanges_per_peer_s,
                self.limits.exchange_burst,
                self.limits.max_rate_buckets,
            )
        {
            let c = &self.stats.clone().rate_limited;
            self.refuse_hostile(now, c, msg.kind(), via);
            return;
        }
        TopologyStats::bump(&self.stats.received);
        self.heard(via, now);
        match msg {
            TopologyMessage::Join { domain } => self.on_join(ctx, domain, via),
            TopologyMessage::ForwardJoin {
                domain,
                new_node,
                ttl,
            } => self.on_forward_join(ctx, domain, via, new_node, ttl),
            TopologyMessage::Neighbor {
                domain,
                high_priority,
            } => self.on_neighbor(ctx, domain, via, high_priority),
            TopologyMessage::NeighborReply { domain, accepted } => {
                self.on_neighbor_reply(ctx, domain, via, accepted)
            }
            TopologyMessage::Disconnect { domain } => {
                self.remove_active(ctx, domain, via, Removal::Left);
            }
            TopologyMessage::Shuffle {
                domain,
                origin,
                ttl,
                nodes,
            } => self.on_shuffle(ctx, domain, via, origin, ttl, nodes),
            TopologyMessage::ShuffleReply { domain, nodes } => {
                self.on_shuffle_reply(ctx, domain, via, nodes)
            }
            TopologyMessage::Keepalive { domain } => self.on_keepalive(ctx, domain, via),
        }
    }

    /// Anything authenticated from `node` proves it alive, in every domain.
    fn heard(&mut self, node: NodeIdentity, now: Instant) {
        for o in self.overlays.values_mut() {
            if let Some(p) = o.active.get_mut(&node) {
                p.last_heard = now;
            }
        }
    }

    fn on_join(&mut self, ctx: &mut Context, domain: DomainIdentity, from: NodeIdentity) {
        let walk = self.limits.active_walk_length;
        let others: Vec<NodeIdentity> = match self.overlays.get(&domain) {
            Some(o) => o.active.keys().filter(|n| **n != from).copied().collect(),
            None => return,
        };
        self.welcome(ctx, domain, from);
        for peer in others {
            let fj = TopologyMessage::ForwardJoin {
                domain,
                new_node: from,
                ttl: walk,
            };
            self.send_remote(ctx, peer, &fj);
        }
    }

    fn on_forward_join(
        &mut self,
        ctx: &mut Context,
        domain: DomainIdentity,
        via: NodeIdentity,
        new_node: NodeIdentity,
        ttl: u8,
    ) {
        let now = ctx.now().instant;
        if ttl > self.limits.active_walk_length {
            let c = &self.stats.clone().bad_ttl;
            self.refuse_hostile(now, c, "a ForwardJoin ttl above the walk length", via);
            return;
        }
        let me = ctx.node();
        let passive_max = self.limits.passive_view;
        let prwl = self.limits.passive_walk_length;
        let Some(o) = self.overlays.get_mut(&domain) else {
            return;
        };
        if !o.is_member(&new_node) {
            self.refuse(
                &self.stats.not_member,
                "a ForwardJoin for a non-member",
                Some(via),
            );
            return;
        }
        if new_node == me || o.active.contains_key(&new_node) {
            return;
        }
        if ttl == 0 || o.active.len() <= 1 {
            self.welcome(ctx, domain, new_node);
            return;
        }
        if ttl == prwl {
            o.add_passive(new_node, me, passive_max, &[], &mut self.rng);
        }
        match o.random_active(&[via, new_node], &mut self.rng) {
            Some(next) => {
                let fj = TopologyMessage::ForwardJoin {
                    domain,
                    new_node,
                    ttl: ttl - 1,
                };
                self.send_remote(ctx, next, &fj);
            }
            None => self.welcome(ctx, domain, new_node),
        }
    }

    /// Asks `node` (whose join walk ended here) to be a neighbour, with high priority.
    fn welcome(&mut self, ctx: &mut Context, domain: DomainIdentity, node: NodeIdentity) {
        self.ask_neighbor(ctx, domain, node, true, Ask::Welcome);
    }

    /// Sends `Neighbor` to `node` unless one is in flight to it or too many are.
    pub(super) fn ask_neighbor(
        &mut self,
        ctx: &mut Context,
        domain: DomainIdentity,
        node: NodeIdentity,
        high_priority: bool,
        ask: Ask,
    ) -> bool {
        let now = ctx.now().instant;
        let max = self.limits.max_pending_neighbors;
        let Some(o) = self.overlays.get_mut(&domain) else {
            return false;
        };
        if node == ctx.node() || o.active.contains_key(&node) || o.pending.contains_key(&node) {
            return false;
        }
        if o.pending.len() >= max {
            TopologyStats::bump(&self.stats.pending_full);
            return false;
        }
        let msg = TopologyMessage::Neighbor {
            domain,
            high_priority,
        };
        let id = self.send_remote(ctx, node, &msg);
        if let Some(o) = self.overlays.get_mut(&domain) {
            o.pending.insert(
                node,
                Pending {
                    sent_at: now,
                    ask,
                    id,
                },
            );
        }
        true
    }

    fn on_neighbor(
        &mut self,
        ctx: &mut Context,
        domain: DomainIdentity,
        from: NodeIdentity,
        high: bool,
    ) {
        let me = ctx.node();
        let max = self.limits.active_view.max(1);
        let passive_max = self.limits.passive_view;
        let Some(o) = self.overlays.get_mut(&domain) else {
            return;
        };
        let accept = o.active.contains_key(&from) || high || o.active.len() < max;
        if accept {
            self.add_active(ctx, domain, from);
        } else {
            // It is alive and a member: worth remembering.
            o.add_passive(from, me, passive_max, &[], &mut self.rng);
        }
        let reply = TopologyMessage::NeighborReply {
            domain,
            accepted: accept,
        };
        self.send_remote(ctx, from, &reply);
    }

    fn on_neighbor_reply(
        &mut self,
        ctx: &mut Context,
        domain: DomainIdentity,
        from: NodeIdentity,
        accepted: bool,
    ) {
        let now = ctx.now().instant;
        let backoff = self.limits.shuffle_interval;
        let Some(o) = self.overlays.get_mut(&domain) else {
            return;
        };
        if o.pending.remove(&from).is_none() {
            if !o.active.contains_key(&from) {
                self.refuse(&self.stats.unsolicited, "a NeighborReply", Some(from));
                if accepted {
                    // It took us in; we did not ask (or gave up): say so.
                    self.send_remote(ctx, from, &TopologyMessage::Disconnect { domain });
                }
            }
            return;
        }
        if accepted {
            self.add_active(ctx, domain, from);
        } else {
            TopologyStats::bump(&self.stats.neighbor_rejected);
            if let Some(r) = o.passive.get_mut(&from) {
                *r = Some(now + backoff);
            }
            self.touched.insert(domain);
            self.disconnect_if_unused(ctx, from);
        }
    }

    fn on_keepalive(&mut self, ctx: &mut Context, domain: DomainIdentity, from: NodeIdentity) {
        let now = ctx.now().instant;
        let l = self.limits.clone();
        let Some(o) = self.overlays.get_mut(&domain) else {
            return;
        };
        if o.active.contains_key(&from) || o.pending.contains_key(&from) {
            return;
        }
        // It believes we are neighbours; we are not. Tell it (within its rate).
        if o.take_token(
            from,
            now,
            l.exchanges_per_peer_s,
            l.exchange_burst,
            l.max_rate_buckets,
        ) {
            self.send_remote(ctx, from, &TopologyMessage::Disconnect { domain });
        } else {
            TopologyStats::bump(&self.stats.rate_limited);
        }
    }

    fn on_shuffle(
        &mut self,
        ctx: &mut Context,
        domain: DomainIdentity,
        via: NodeIdentity,
        origin: NodeIdentity,
        ttl: u8,
        nodes: Vec<NodeIdentity>,
    ) {
        let now = ctx.now().instant;
        let me = ctx.node();
        if ttl > self.limits.shuffle_walk_length {
            let c = &self.stats.clone().bad_ttl;
            self.refuse_hostile(now, c, "a Shuffle ttl above the walk length", via);
            return;
        }
        let Some(o) = self.overlays.get_mut(&domain) else {
            return;
        };
        if origin == me {
            return;
        }
        if !o.is_member(&origin) {
            self.refuse(
                &self.stats.not_member,
                "a Shuffle from a non-member",
                Some(via),
            );
            return;
        }
        let ttl = ttl.saturating_sub(1);
        if ttl > 0 && o.active.len() > 1 {
            if let Some(next) = o.random_active(&[via, origin], &mut self.rng) {
                let fwd = TopologyMessage::Shuffle {
                    domain,
                    origin,
                    ttl,
                    nodes,
                };
                self.send_remote(ctx, next, &fwd);
                return;
            }
        }
        let reply_nodes = Overlay::sample(o.passive.keys(), nodes.len(), &mut self.rng);
        let reply = TopologyMessage::ShuffleReply {
            domain,
            nodes: reply_nodes.clone(),
        };
        self.merge_passive(domain, me, via, &nodes, &reply_nodes);
        self.send_remote(ctx, origin, &reply);
    }

    fn on_shuffle_reply(
        &mut self,
        ctx: &mut Context,
        domain: DomainIdentity,
        from: NodeIdentity,
        nodes: Vec<NodeIdentity>,
    ) {
        let now = ctx.now().instant;
        let window = self.limits.shuffle_interval * 2;
        let Some(o) = self.overlays.get_mut(&domain) else {
            return;
        };
        let sent = match o.shuffle_sent.take() {
            Some((at, sent)) if now.saturating_duration_since(at) <= window => sent,
            _ => {
                self.refuse(&self.stats.unsolicited, "a ShuffleReply", Some(from));
                return;
            }
        };
        let me = ctx.node();
        self.merge_passive(domain, me, from, &nodes, &sent);
    }

    /// Merges `nodes` into the passive view, evicting first the members in `prefer_evict`
    /// (what this node sent the other way). Counts a refusal if some were not members.
    fn merge_passive(
        &mut self,
        domain: DomainIdentity,
        me: NodeIdentity,
        from: NodeIdentity,
        nodes: &[NodeIdentity],
        prefer_evict: &[NodeIdentity],
    ) {
        let max = self.limits.passive_view;
        let Some(o) = self.overlays.get_mut(&domain) else {
            return;
        };
        let mut strangers = 0;
        for n in nodes {
            if !o.is_member(n) {
                strangers += 1;
                continue;
            }
            o.add_passive(*n, me, max, prefer_evict, &mut self.rng);
        }
        if strangers > 0 {
            let what = format!("{strangers} non-members in a shuffle");
            self.refuse(&self.stats.not_member, &what, Some(from));
        }
        self.dirty = true;
    }
}
