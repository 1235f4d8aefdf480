//! The Topology engine's periodic work, every [`super::TopologyLimits::tick`]: failure
//! detection and keepalives, `Neighbor` requests that went unanswered, shuffles, exploration,
//! and refilling views below their size (also run after every input that shrank a view).

use super::overlay::{jittered, pick, Ask, Overlay};
use super::wire::TopologyMessage;
use super::{Removal, TopologyEngine, TopologyStats};
use crate::identity::{DomainIdentity, NodeIdentity};
use crate::runtime::Context;

impl TopologyEngine {
    pub(super) fn on_tick(&mut self, ctx: &mut Context) {
        let domains: Vec<DomainIdentity> = self.overlays.keys().copied().collect();
        for d in domains {
            self.detect_failures(ctx, d);
            self.send_keepalives(ctx, d);
            self.expire_pending(ctx, d);
            self.maybe_shuffle(ctx, d);
            self.maybe_explore(ctx, d);
            self.refill(ctx, d);
        }
    }

    fn detect_failures(&mut self, ctx: &mut Context, d: DomainIdentity) {
        let now = ctx.now().instant;
        let timeout = self.limits.failure_timeout;
        let Some(o) = self.overlays.get(&d) else {
            return;
        };
        let silent: Vec<NodeIdentity> = o
            .active
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_heard) >= timeout)
            .map(|(n, _)| *n)
            .collect();
        for n in silent {
            log::debug!("topology: {n:?} silent for {timeout:?} in {d:?}: failed");
            TopologyStats::bump(&self.stats.failures_detected);
            self.remove_active(ctx, d, n, Removal::Failed);
        }
    }

    fn send_keepalives(&mut self, ctx: &mut Context, d: DomainIdentity) {
        let now = ctx.now().instant;
        let every = self.limits.keepalive_interval;
        let Some(o) = self.overlays.get(&d) else {
            return;
        };
        let due: Vec<NodeIdentity> = o
            .active
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_sent) >= every)
            .map(|(n, _)| *n)
            .collect();
        for n in due {
            self.send_remote(ctx, n, &TopologyMessage::Keepalive { domain: d });
        }
    }

    fn expire_pending(&mut self, ctx: &mut Context, d: DomainIdentity) {
        let now = ctx.now().instant;
        let timeout = self.limits.neighbor_timeout;
        let window = self.limits.shuffle_interval * 2;
        let Some(o) = self.overlays.get_mut(&d) else {
            return;
        };
        if o.shuffle_sent
            .as_ref()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > window)
        {
            o.shuffle_sent = None;
        }
        let late: Vec<NodeIdentity> = o
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.sent_at) >= timeout)
            .map(|(n, _)| *n)
            .collect();
        for n in &late {
            o.pending.remove(n);
            // Unanswered: most likely gone. It stays a member; shuffles may bring it back.
            o.passive.remove(n);
            TopologyStats::bump(&self.stats.neighbor_timeouts);
        }
        for n in late {
            self.disconnect_if_unused(ctx, n);
        }
    }

    fn maybe_shuffle(&mut self, ctx: &mut Context, d: DomainIdentity) {
        let now = ctx.now().instant;
        let me = ctx.node();
        let l = &self.limits;
        let (ka, kp, ttl, every) = (
            l.shuffle_active,
            l.shuffle_passive,
            l.shuffle_walk_length,
            l.shuffle_interval,
        );
        let max_nodes = l.max_shuffle_nodes;
        let Some(o) = self.overlays.get_mut(&d) else {
            return;
        };
        if now < o.next_shuffle {
            return;
        }
        o.next_shuffle = now + jittered(every, &mut self.rng);
        let Some(target) = o.random_active(&[], &mut self.rng) else {
            return;
        };
        let mut nodes = vec![me];
        let others = o.active.keys().filter(|n| **n != target);
        nodes.extend(Overlay::sample(others, ka, &mut self.rng));
        nodes.extend(Overlay::sample(o.passive.keys(), kp, &mut self.rng));
        nodes.truncate(max_nodes);
        o.shuffle_sent = Some((now, nodes.clone()));
        let msg = TopologyMessage::Shuffle {
            domain: d,
            origin: me,
            ttl,
            nodes,
        };
        self.send_remote(ctx, target, &msg);
    }

    fn maybe_explore(&mut self, ctx: &mut Context, d: DomainIdentity) {
        let now = ctx.now().instant;
        let me = ctx.node();
        let every = self.limits.explore_interval;
        if every.is_zero() {
            return;
        }
        let Some(o) = self.overlays.get_mut(&d) else {
            return;
        };
        if now < o.next_explore {
            return;
        }
        o.next_explore = now + jittered(every, &mut self.rng);
        if o.active.is_empty() {
            return;
        }
        let candidate = pick(
            o.members
                .iter()
                .filter(|n| **n != me && !o.active.contains_key(n) && !o.pending.contains_key(n)),
            &mut self.rng,
        );
        if let Some(c) = candidate {
            log::debug!("topology: exploring {c:?} in {d:?}");
            self.ask_neighbor(ctx, d, c, true, Ask::Explore);
        }
    }

    /// Asks for a neighbour if the active view of `d` is below its size and no refill is in
    /// flight: a passive member (high priority if the view has fewer than two peers), else a
    /// `Join` to an introducer (empty view) or a random member.
    pub(super) fn refill(&mut self, ctx: &mut Context, d: DomainIdentity) {
        let now = ctx.now().instant;
        let me = ctx.node();
        let max = self.limits.active_view.max(1);
        let pace = self.limits.keepalive_interval;
        let join_retry = self.limits.join_retry;
        let slow_pace = self.limits.shuffle_interval;
        let Some(o) = self.overlays.get_mut(&d) else {
            return;
        };
        if o.active.len() >= max || o.pending.values().any(|p| p.ask == Ask::Refill) {
            return;
        }
        let empty = o.active.is_empty();
        // One peer left is one failure from isolation: ask with high priority then too.
        let urgent = o.active.len() < 2;
        if !empty
            && o.last_refill
                .is_some_and(|t| now.saturating_duration_since(t) < pace)
        {
            return;
        }
        let candidate = pick(
            o.passive
                .iter()
                .filter(|(n, refused)| {
                    !o.pending.contains_key(n) && (empty || refused.is_none_or(|t| t <= now))
                })
                .map(|(n, _)| n),
            &mut self.rng,
        );
        if let Some(c) = candidate {
            o.last_refill = Some(now);
            self.ask_neighbor(ctx, d, c, urgent, Ask::Refill);
            return;
        }
        let strangers = |o: &Overlay, n: &NodeIdentity| {
            *n != me && !o.active.contains_key(n) && !o.pending.contains_key(n)
        };
        if empty {
            if o.join_sent
                .is_some_and(|t| now.saturating_duration_since(t) < join_retry)
            {
                return;
            }
            let intro = pick(
                o.introducers
                    .iter()
                    .filter(|n| o.is_member(n) && strangers(o, n)),
                &mut self.rng,
            );
            let contact =
                intro.or_else(|| pick(o.members.iter().filter(|n| strangers(o, n)), &mut self.rng));
            if let Some(c) = contact {
                o.join_sent = Some(now);
                TopologyStats::bump(&self.stats.joins_started);
                log::debug!("topology: joining {d:?} through {c:?}");
                self.send_remote(ctx, c, &TopologyMessage::Join { domain: d });
            }
        } else if o
            .last_refill
            .is_none_or(|t| now.saturating_duration_since(t) >= slow_pace)
        {
            // The passive view has no one left to ask: try the membership, more slowly.
            let c = pick(o.members.iter().filter(|n| strangers(o, n)), &mut self.rng);
            if let Some(c) = c {
                o.last_refill = Some(now);
                self.ask_neighbor(ctx, d, c, urgent, Ask::Refill);
            }
        }
    }
}
