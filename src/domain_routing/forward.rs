//! Starting requests and forwarding them: the next-hop choice of spec notes §9.9 (a known
//! member, else greedy by BLIP domain score, else a random long link; or the random-walk
//! baseline) and the checks every hop makes on a request's path.

use std::collections::BTreeSet;

use super::wire::{DomainRequest, RoutingMessage, MAX_BODY};
use super::{
    Arrived, DomainRoutingEngine, Pending, Relay, Reply, RoutingMode, RoutingStats, PROBE_ANSWER,
    PROBE_REQUEST,
};
use crate::identity::{DomainIdentity, EngineIdentity, NodeIdentity};
use crate::interdomain::blip;
use crate::mail::identity::{IdentityRequest, IdentityUpdate};
use crate::mail::interdomain::{LinkKind, Neighbour, RoutingMail};
use crate::runtime::{Context, SendOptions};
use crate::wire::{Destination, MembershipFilter, MessageId, Protocol};

/// How a next hop was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hop {
    /// A member known from an earlier answer.
    Member,
    /// The neighbour with the best domain score.
    Greedy,
    /// A random long link: nothing scored above the noise floor, or all alike.
    Fallback,
    /// The random-walk baseline.
    Random,
}

/// Scores within this of each other are a tie.
const TIE: f64 = 1e-9;

/// What a member's own DomainRouting engine answers for `body`.
pub(super) fn probe_answer(body: &[u8]) -> Result<Vec<u8>, String> {
    if body == PROBE_REQUEST {
        Ok(PROBE_ANSWER.to_vec())
    } else {
        Err("unknown request (the domain-routing protocol answers `probe`)".into())
    }
}

impl DomainRoutingEngine {
    /// A local engine asks for some member of `domain` (`RoutingMail::Request`, or a
    /// `Destination::Domain` message the Router handed over).
    pub(super) fn start(
        &mut self,
        ctx: &mut Context,
        asker: EngineIdentity,
        reply_to: MessageId,
        domain: DomainIdentity,
        protocol: Protocol,
        body: Vec<u8>,
    ) {
        RoutingStats::count(&self.stats.started);
        let fail = |e: &mut Self, ctx: &mut Context, why: &str| {
            e.answer(ctx, asker, reply_to, domain, Err(why.into()), None, 0, None)
        };
        if body.len() > MAX_BODY {
            RoutingStats::count(&self.stats.malformed);
            return fail(self, ctx, "request body over 64 KiB");
        }
        if self.delivers(&domain) {
            RoutingStats::count(&self.stats.answered_here);
            let reply = Reply::Local {
                asker,
                reply_to,
                domain,
            };
            return self.deliver_here(ctx, reply, self.me, protocol, body);
        }
        if self.pending.len() >= self.settings.limits.max_pending {
            RoutingStats::count(&self.stats.pending_full);
            return fail(self, ctx, "too many domain requests outstanding");
        }
        let mut id = self.rng.next_u64();
        while self.pending.contains_key(&id) || self.earlier.contains_key(&id) {
            id = self.rng.next_u64();
        }
        let request = DomainRequest {
            id,
            src: self.me,
            src_advert: Some(self.advert()),
            domain,
            path: vec![self.me],
            protocol,
            body,
        };
        let Some((next, hop)) = self.next_hop(&request, &[]) else {
            RoutingStats::count(&self.stats.no_route);
            return fail(self, ctx, "no inter-domain neighbour to route through");
        };
        let direct = hop == Hop::Member;
        if direct {
            RoutingStats::count(&self.stats.started_direct);
        }
        let body = request.body.clone();
        let sent = self.send_remote(ctx, next, &RoutingMessage::Request(request), true);
        let now = ctx.now().instant;
        self.pending.insert(
            id,
            Pending {
                asker,
                reply_to,
                domain,
                protocol,
                body,
                first_hop: next,
                sent,
                direct,
                retried: false,
                deadline: now + self.settings.timeout,
                attempts: 1,
                tried: vec![next],
                next_attempt: now + self.attempt_time(),
            },
        );
    }

    /// How long one attempt waits before the next is sent: `timeout / attempts`.
    fn attempt_time(&self) -> std::time::Duration {
        self.settings.timeout / u32::from(self.settings.attempts.max(1))
    }

    /// Pending request `p` as a request of this node's under `id`, to send again (its body
    /// moves into the request; the caller puts it back).
    fn own_request(&self, id: u64, p: &mut Pending) -> DomainRequest {
        DomainRequest {
            id,
            src: self.me,
            src_advert: Some(self.advert()),
            domain: p.domain,
            path: vec![self.me],
            protocol: p.protocol,
            body: std::mem::take(&mut p.body),
        }
    }

    /// Own request `id` had no answer within an attempt's time: sent again under a fresh id
    /// through a first hop not tried yet, if attempts are left and there is one; the earlier
    /// attempts stay answerable until the request's deadline.
    pub(super) fn reattempt(&mut self, ctx: &mut Context, id: u64) {
        let Some(mut p) = self.pending.remove(&id) else {
            return;
        };
        let now = ctx.now().instant;
        let mut request = self.own_request(id, &mut p);
        let hop = if p.attempts < self.settings.attempts {
            self.next_hop(&request, &p.tried)
        } else {
            None
        };
        let Some((next, hop)) = hop else {
            // No attempt left, or no untried first hop: wait for the deadline.
            p.body = request.body;
            p.next_attempt = p.deadline;
            self.pending.insert(id, p);
            return;
        };
        let mut fresh = self.rng.next_u64();
        while self.pending.contains_key(&fresh) || self.earlier.contains_key(&fresh) {
            fresh = self.rng.next_u64();
        }
        request.id = fresh;
        RoutingStats::count(&self.stats.reattempts);
        if p.direct {
            // A known member that let an attempt go unanswered is not asked first again.
            self.routes.forget(&p.domain, &p.first_hop);
        }
        p.body = request.body.clone();
        p.sent = self.send_remote(ctx, next, &RoutingMessage::Request(request), true);
        self.earlier.insert(id, (fresh, p.first_hop));
        for target in self.earlier.values_mut() {
            if target.0 == id {
                target.0 = fresh;
            }
        }
        p.first_hop = next;
        p.direct = hop == Hop::Member;
        p.attempts += 1;
        p.tried.push(next);
        p.next_attempt = (now + self.attempt_time()).min(p.deadline);
        self.pending.insert(fresh, p);
    }

    /// The first hop of own request `id` could not be reached: a known member is forgotten
    /// and the request routed again once; otherwise, if earlier attempts are still out, the
    /// next attempt is due at once; otherwise the asker is told.
    pub(super) fn first_hop_failed(&mut self, ctx: &mut Context, id: u64, why: &str) {
        let Some(mut p) = self.pending.remove(&id) else {
            return;
        };
        if p.direct {
            self.routes.forget(&p.domain, &p.first_hop);
        }
        if !p.retried {
            let request = self.own_request(id, &mut p);
            if let Some((next, hop)) = self.next_hop(&request, &p.tried) {
                RoutingStats::count(&self.stats.retries);
                p.body = request.body.clone();
                p.sent = self.send_remote(ctx, next, &RoutingMessage::Request(request), true);
                p.first_hop = next;
                p.direct = hop == Hop::Member;
                p.retried = true;
                p.tried.push(next);
                self.pending.insert(id, p);
                return;
            }
            p.body = request.body;
        }
        if p.attempts > 1 {
            // Earlier attempts are still out and answerable: try the next one now, or wait for
            // them until the deadline.
            p.next_attempt = ctx.now().instant;
            self.pending.insert(id, p);
            return;
        }
        let result = Err(format!("first hop unreachable ({why})"));
        self.answer(ctx, p.asker, p.reply_to, p.domain, result, None, 0, None);
    }

    /// A request from peer `via`.
    pub(super) fn on_request(&mut self, ctx: &mut Context, via: NodeIdentity, r: DomainRequest) {
        if !self.settings.forward {
            RoutingStats::count(&self.stats.opted_out);
            return;
        }
        if !self.within_rate(ctx.now().wall.0, via) {
            return self.hostile(&self.stats.rate_limited, "requests over the rate", via);
        }
        if r.path.first() != Some(&r.src) || r.path.last() != Some(&via) {
            return self.hostile(&self.stats.bad_path, "a request with a broken path", via);
        }
        if r.path.len() > self.settings.hop_limit {
            return self.hostile(&self.stats.overlong_path, "an overlong path", via);
        }
        let mut seen = BTreeSet::new();
        if r.path.iter().any(|n| *n == self.me || !seen.insert(*n)) {
            return self.hostile(&self.stats.looping_path, "a looping path", via);
        }
        let key = (r.src, r.id);
        let held = self
            .arrived
            .values()
            .any(|a| matches!(&a.reply, Reply::Remote { id, src, .. } if (*src, *id) == key));
        if held || self.relayed.contains_key(&key) {
            return self.hostile(&self.stats.duplicate, "a request seen before", via);
        }
        if r.path.len() == 1 {
            // Straight from the asker: remember how to reach it.
            if let Some(a) = r.src_advert.clone().filter(|a| a.id == r.src) {
                ctx.identity_request(IdentityRequest::Update(IdentityUpdate::NodeAdvert(a)));
            }
        }
        if self.delivers(&r.domain) {
            let reply = Reply::Remote {
                id: r.id,
                src: r.src,
                domain: r.domain,
                path: r.path,
                prev: via,
            };
            return self.deliver_here(ctx, reply, r.src, r.protocol, r.body);
        }
        self.forward(ctx, via, r);
    }

    fn forward(&mut self, ctx: &mut Context, via: NodeIdentity, mut r: DomainRequest) {
        if r.path.len() + 1 > self.settings.hop_limit {
            RoutingStats::count(&self.stats.hop_limit);
            return;
        }
        let now = ctx.now().instant;
        if self.relayed.len() >= self.settings.limits.max_relayed {
            self.relayed.retain(|_, e| e.deadline > now);
            if self.relayed.len() >= self.settings.limits.max_relayed {
                RoutingStats::count(&self.stats.relay_full);
                return;
            }
        }
        r.path.push(self.me);
        let Some((next, _)) = self.next_hop(&r, &[]) else {
            RoutingStats::count(&self.stats.dead_end);
            return;
        };
        RoutingStats::count(&self.stats.forwarded);
        let key = (r.src, r.id);
        self.send_remote(ctx, next, &RoutingMessage::Request(r), false);
        self.relayed.insert(
            key,
            Relay {
                prev: via,
                next,
                deadline: now + self.settings.timeout,
            },
        );
    }

    /// The next hop for `r` (whose path ends with this node), avoiding `avoid` (first hops
    /// earlier attempts went to), and how it was chosen.
    pub(super) fn next_hop(
        &mut self,
        r: &DomainRequest,
        avoid: &[NodeIdentity],
    ) -> Option<(NodeIdentity, Hop)> {
        let me = self.me;
        let off_path = |n: &NodeIdentity| *n != me && !r.path.contains(n) && !avoid.contains(n);
        if let Some(m) = self
            .routes
            .members(&r.domain)
            .into_iter()
            .find(|m| off_path(&m.node))
        {
            RoutingStats::count(&self.stats.forwarded_to_member);
            return Some((m.node, Hop::Member));
        }
        let candidates: Vec<Neighbour> = self
            .board
            .neighbours()
            .into_iter()
            .filter(|n| off_path(&n.node()))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        if self.settings.mode == RoutingMode::RandomWalk {
            RoutingStats::count(&self.stats.random_hops);
            return Some((self.pick(&candidates), Hop::Random));
        }
        let scores: Vec<Option<f64>> = candidates
            .iter()
            .map(|n| self.score(&n.descriptor.filter, &r.domain))
            .collect();
        let best = scores.iter().flatten().copied().fold(f64::NAN, f64::max);
        let tied: Vec<Neighbour> = candidates
            .iter()
            .zip(&scores)
            .filter(|(_, s)| s.is_some_and(|s| (s - best).abs() <= TIE))
            .map(|(n, _)| n.clone())
            .collect();
        // Nothing above the floor, or every candidate alike: the scores say nothing.
        if tied.is_empty() || (tied.len() == candidates.len() && candidates.len() > 1) {
            let long: Vec<Neighbour> = candidates
                .iter()
                .filter(|n| matches!(n.kind, LinkKind::Random | LinkKind::Finger))
                .cloned()
                .collect();
            let from = if long.is_empty() { &candidates } else { &long };
            RoutingStats::count(&self.stats.fallback_hops);
            return Some((self.pick(from), Hop::Fallback));
        }
        RoutingStats::count(&self.stats.greedy_hops);
        Some((self.pick(&tied), Hop::Greedy))
    }

    /// The estimate that `filter`'s owner is a member of `domain`, if it is above the filter's
    /// noise floor; a filter claiming nearly every domain scores nothing.
    fn score(&self, filter: &MembershipFilter, domain: &DomainIdentity) -> Option<f64> {
        let fill = f64::from(filter.popcount()) / f64::from(filter.bits.max(1));
        if fill > self.settings.limits.max_filter_fill {
            RoutingStats::count(&self.stats.overfull_filter);
            return None;
        }
        let s = blip::domain_score(filter, domain);
        (s > blip::noise_floor(filter)).then_some(s)
    }

    fn pick(&mut self, from: &[Neighbour]) -> NodeIdentity {
        from[self.rng.below(from.len() as u64) as usize].node()
    }

    /// Delivers a request here, this node being a member that answers: `probe` at once, any
    /// other protocol to the local engine serving it.
    pub(super) fn deliver_here(
        &mut self,
        ctx: &mut Context,
        reply: Reply,
        src: NodeIdentity,
        protocol: Protocol,
        body: Vec<u8>,
    ) {
        if protocol == Protocol::DOMAIN_ROUTING {
            return self.finish_arrived(ctx, reply, probe_answer(&body));
        }
        if self.arrived.len() >= self.settings.limits.max_arrived {
            RoutingStats::count(&self.stats.arrived_full);
            let why = "too many domain requests waiting for an answer here".to_string();
            return self.finish_arrived(ctx, reply, Err(why));
        }
        let token = self.next_token;
        self.next_token += 1;
        let domain = match &reply {
            Reply::Remote { domain, .. } | Reply::Local { domain, .. } => *domain,
        };
        let mail = RoutingMail::Arrived {
            token,
            src,
            domain,
            protocol,
            body,
        };
        RoutingStats::count(&self.stats.arrived_sent);
        let msg = ctx.send_with(
            Destination::Node(self.me),
            protocol,
            mail.encode(),
            SendOptions::local_only(),
        );
        self.arrived.insert(
            token,
            Arrived {
                reply,
                protocol,
                msg,
                // Sooner than the asker gives up, so that the error reaches it in time.
                deadline: ctx.now().instant + self.settings.timeout * 3 / 4,
            },
        );
    }
}
