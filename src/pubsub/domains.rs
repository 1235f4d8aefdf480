//! Domain-scoped topics (spec notes §5.6, §7.2): a topic whose advert names a domain is carried
//! only among the domain's members, over the domain's overlay.
//!
//! * **Membership** comes from the node's [`DomainDirectory`], published by the Domain engine
//!   and handed over with [`PubSub::with_domains`] / [`PubSub::set_domains`]; without one no
//!   domain is known, so every domain-scoped topic is refused here (never taken as open).
//! * **The overlay** comes from the local Topology engine: PubSub sends it
//!   `ViewMail::Watch { domain }` for each domain it holds a scoped topic of (again every
//!   [`WATCH_RETRY`] while that view is empty), and keeps the view from the
//!   `PeerAddedToView` / `PeerRemovedFromView` it answers with — taken only as local mail.
//!   Adverts and withdrawals of a domain's topics flood to its view peers, not to every
//!   connected peer, and a peer entering the view is sent the domain's routes, as a newly
//!   connected peer is sent those of open topics.
//! * **Checks.** What arrives for such a topic is taken only from a member while this node is
//!   one; what leaves goes only to members (one exception: the refusal of a non-member's
//!   subscription, answered like any refused subscription). A neighbour that leaves the
//!   membership (seen at the next upkeep tick) or the view stops being a child or a parent of
//!   the domain's topics; a node that leaves the domain drops their trees.

use super::*;
use crate::mail::domain::ViewMail;

/// While a watched domain's view is empty (the Topology engine had not started, or had no
/// member connected yet), `Watch` is sent again this often.
pub const WATCH_RETRY: Duration = Duration::from_secs(5);

impl PubSub {
    /// This engine, checking domain-scoped topics against `dir` (the node's directory, shared
    /// with the Domain engine and the Router).
    pub fn with_domains(mut self, dir: DomainDirectory) -> PubSub {
        self.domains = dir;
        self
    }

    /// Sets the directory domain-scoped topics are checked against (see
    /// [`PubSub::with_domains`]).
    pub fn set_domains(&mut self, dir: DomainDirectory) {
        self.domains = dir;
    }

    /// The view peers of `domain` this engine knows from the Topology engine, in order (for
    /// status views and tests).
    pub fn view_of(&self, domain: &DomainIdentity) -> Vec<NodeIdentity> {
        self.views
            .get(domain)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The domain `topic` is scoped to, as its advert held here says.
    pub(super) fn topic_domain(&self, topic: &TopicIdentity) -> Option<DomainIdentity> {
        self.topics.get(topic)?.advert.as_ref()?.scope
    }

    /// Whether a message of a topic scoped to `domain` may pass between this node and `peer`:
    /// both are members.
    pub(super) fn domain_allows(&self, domain: &DomainIdentity, peer: &NodeIdentity) -> bool {
        self.domains.member_here(domain) && self.domains.is_member(domain, peer)
    }

    /// Whether a message of `topic` may pass between this node and `peer` (always, for a topic
    /// that is not domain-scoped or whose advert is not known yet).
    pub(super) fn scope_allows(&self, topic: &TopicIdentity, peer: &NodeIdentity) -> bool {
        self.topic_domain(topic)
            .is_none_or(|d| self.domain_allows(&d, peer))
    }

    /// Whether this node may take part in `topic` at all: it is not domain-scoped, or this node
    /// is a member of its domain.
    pub(super) fn member_for(&self, topic: &TopicIdentity) -> bool {
        self.topic_domain(topic)
            .is_none_or(|d| self.domains.member_here(&d))
    }

    /// The domain of the topic `msg` is about, if it is scoped to one.
    fn msg_domain(&self, msg: &PubSubMessage) -> Option<DomainIdentity> {
        let topic = match msg {
            PubSubMessage::Advert { advert, .. } => return advert.scope,
            PubSubMessage::Subscribe { topic, .. }
            | PubSubMessage::SubscribeAck { topic, .. }
            | PubSubMessage::Unsubscribe { topic }
            | PubSubMessage::UnsubscribeAck { topic }
            | PubSubMessage::EventReq { topic, .. }
            | PubSubMessage::EventResp { topic, .. }
            | PubSubMessage::EventAck { topic, .. } => *topic,
            PubSubMessage::Event(ev) => ev.topic,
            PubSubMessage::Events(events) => events.first()?.topic,
            PubSubMessage::Withdraw(w) => w.topic,
        };
        self.topic_domain(&topic)
    }

    /// Whether `msg` may be sent to `peer`: its topic is not domain-scoped, both are members,
    /// or it only refuses or ends a subscription (answers a non-member may have).
    pub(super) fn may_send(&self, peer: NodeIdentity, msg: &PubSubMessage) -> bool {
        let Some(d) = self.msg_domain(msg) else {
            return true;
        };
        self.domain_allows(&d, &peer)
            || matches!(
                msg,
                PubSubMessage::SubscribeAck {
                    accepted: false,
                    ..
                } | PubSubMessage::Unsubscribe { .. }
                    | PubSubMessage::UnsubscribeAck { .. }
            )
    }

    /// The peers an advert or withdrawal of a topic in `scope` floods to: every connected peer
    /// for an open topic; the member view peers of the domain for a domain-scoped one (none
    /// when this node is not a member).
    pub(super) fn flood_targets(&self, scope: Option<DomainIdentity>) -> Vec<NodeIdentity> {
        match scope {
            None => self.connected.iter().copied().collect(),
            Some(d) if !self.domains.member_here(&d) => Vec::new(),
            Some(d) => self
                .views
                .get(&d)
                .into_iter()
                .flatten()
                .filter(|n| self.domains.is_member(&d, n))
                .copied()
                .collect(),
        }
    }

    /// The topic of `msg` if it is one the domain gate of [`PubSub::handle_remote`] checks:
    /// adverts carry their own scope (checked by `on_advert`), events are checked one by one
    /// (`on_events`), and leaving a subscription is always allowed.
    pub(super) fn gated_topic(msg: &PubSubMessage) -> Option<TopicIdentity> {
        match msg {
            PubSubMessage::Subscribe { topic, .. }
            | PubSubMessage::SubscribeAck { topic, .. }
            | PubSubMessage::EventReq { topic, .. }
            | PubSubMessage::EventResp { topic, .. }
            | PubSubMessage::EventAck { topic, .. } => Some(*topic),
            PubSubMessage::Withdraw(w) => Some(w.topic),
            PubSubMessage::Advert { .. }
            | PubSubMessage::Unsubscribe { .. }
            | PubSubMessage::UnsubscribeAck { .. }
            | PubSubMessage::Event(_)
            | PubSubMessage::Events(_) => None,
        }
    }

    /// A message of a domain-scoped topic from `via`, refused: counted and logged, not held
    /// against the neighbour (its replica of the membership may lag this node's).
    pub(super) fn refuse_not_member(&self, via: NodeIdentity, topic: TopicIdentity, what: &str) {
        self.count(&self.stats.not_member_refusals);
        log::debug!(
            "pubsub: {what} of domain-scoped topic {} from {} refused: {} not a member",
            topic.short(),
            via.short(),
            match self.topic_domain(&topic) {
                Some(d) if !self.domains.member_here(&d) => "this node is",
                _ => "the sender is",
            }
        );
    }

    /// A local request on a domain-scoped topic this node is not a member of, refused.
    pub(super) fn refuse_local(&self, topic: TopicIdentity, what: &str) {
        self.count(&self.stats.not_member_local);
        log::info!(
            "pubsub: {what} of topic {} refused: it is scoped to a domain this node is not a member of",
            topic.short()
        );
    }

    /// Starts watching `domain`'s view, once (the Topology engine answers with its current
    /// view, then reports changes).
    pub(super) fn watch(&mut self, ctx: &mut Context, domain: DomainIdentity) {
        if self.watching.contains_key(&domain) {
            return;
        }
        self.send_watch(ctx, domain);
    }

    fn send_watch(&mut self, ctx: &mut Context, domain: DomainIdentity) {
        self.watching.insert(domain, ctx.now().instant);
        let node = ctx.node();
        ctx.send_with(
            Destination::Node(node),
            Protocol::TOPOLOGY,
            ViewMail::Watch { domain }.encode(),
            SendOptions::local_only(),
        );
    }

    /// Local mail from the Topology engine.
    pub(super) fn on_view_mail(&mut self, ctx: &mut Context, body: &[u8]) {
        let mail = match ViewMail::decode(body) {
            Ok(m) => m,
            Err(e) => {
                self.count(&self.stats.view_ignored);
                log::debug!("pubsub: undecodable view mail ignored: {e}");
                return;
            }
        };
        match mail {
            ViewMail::PeerAddedToView { domain, node } => self.view_added(ctx, domain, node),
            ViewMail::PeerRemovedFromView { domain, node } => self.view_removed(ctx, domain, node),
            other => {
                self.count(&self.stats.view_ignored);
                log::debug!("pubsub: view mail not for PubSub ignored: {other:?}");
            }
        }
    }

    fn view_added(&mut self, ctx: &mut Context, domain: DomainIdentity, node: NodeIdentity) {
        let max = self.limits.max_view_peers;
        if node == ctx.node() || !self.watching.contains_key(&domain) {
            self.count(&self.stats.view_ignored);
            return;
        }
        let view = self.views.entry(domain).or_default();
        if !view.contains(&node) && view.len() >= max {
            self.count(&self.stats.view_ignored);
            log::debug!(
                "pubsub: view of domain {} has {max} peers already: {} not taken",
                domain.short(),
                node.short()
            );
            return;
        }
        if !view.insert(node) {
            return;
        }
        self.count(&self.stats.view_events);
        // The new view peer hears the domain's routes, as a newly connected peer hears those
        // of open topics.
        self.greet(ctx, node, Some(domain));
    }

    /// A member left the view: it is no longer sent the domain's adverts, but it stays a child
    /// or a parent of the domain's topics while it is a member (the view rotates all the time;
    /// a member out of the view is still a good neighbour, reached on demand). Dropping its
    /// routes here made nodes take the next advert they heard, possibly from a neighbour whose
    /// route ran through them, and the parent relation formed cycles (count to infinity: found
    /// by the simulator, where a 30 % crash of a 1,000-member domain made the trees' event
    /// requests loop until the run stalled). A crashed parent is handled as for open topics:
    /// the subscription goes again through the remaining parents.
    fn view_removed(&mut self, _ctx: &mut Context, domain: DomainIdentity, node: NodeIdentity) {
        let removed = self.views.get_mut(&domain).is_some_and(|v| v.remove(&node));
        if !removed {
            self.count(&self.stats.view_ignored);
            return;
        }
        self.count(&self.stats.view_events);
    }

    /// Drops the children and parents of `topic` that `keep` refuses (their routes go when no
    /// parent is left) and brings the subscriptions upstream in line. Returns how many went.
    pub(super) fn prune_topic(
        &mut self,
        ctx: &mut Context,
        topic: TopicIdentity,
        keep: impl Fn(&NodeIdentity) -> bool,
    ) -> u64 {
        let Some(t) = self.topics.get_mut(&topic) else {
            return 0;
        };
        let mut gone = 0u64;
        let before = t.children.len();
        t.children.retain(|n, _| keep(n));
        if t.children.len() != before {
            gone += (before - t.children.len()) as u64;
            t.progress_dirty = true;
        }
        for r in t.routes.values_mut() {
            let before = r.parents.len();
            r.parents.retain(|n| keep(n));
            gone += (before - r.parents.len()) as u64;
        }
        t.routes.retain(|_, r| !r.parents.is_empty());
        // Parents asked before and no longer kept are not told: they may not be members.
        t.asked.retain(|n, _| keep(n));
        if gone > 0 {
            self.stats
                .not_member_pruned
                .fetch_add(gone, Ordering::Relaxed);
            log::debug!(
                "pubsub: {gone} children or parents of domain-scoped topic {} dropped",
                topic.short()
            );
            self.sync_upstream(ctx, topic);
        }
        gone
    }

    /// Upkeep of domain-scoped topics (each tick): neighbours that left the membership go; a
    /// node that left a domain drops its topics' trees; `Watch` again for empty views.
    pub(super) fn tick_domains(&mut self, ctx: &mut Context, now: Instant) {
        let scoped: Vec<(TopicIdentity, DomainIdentity)> = self
            .topics
            .iter()
            .filter_map(|(id, t)| Some((*id, t.advert.as_ref()?.scope?)))
            .collect();
        for (topic, domain) in scoped {
            if self.domains.member_here(&domain) {
                let dir = self.domains.clone();
                self.prune_topic(ctx, topic, |n| dir.is_member(&domain, n));
            } else {
                self.prune_topic(ctx, topic, |_| false);
            }
        }
        let retry: Vec<DomainIdentity> = self
            .watching
            .iter()
            .filter(|(d, since)| {
                self.views.get(d).is_none_or(|v| v.is_empty())
                    && self.domains.member_here(d)
                    && now.saturating_duration_since(**since) >= WATCH_RETRY
            })
            .map(|(d, _)| *d)
            .collect();
        for d in retry {
            self.send_watch(ctx, d);
        }
    }

    /// Sends `peer` what it needs to hear of this node's topics: for each topic with an advert,
    /// the advert as root (if publishing) and per known route, the withdrawals, and a
    /// subscription if `peer` is a parent this node wants events through. `domain`: only that
    /// domain's topics (a new view peer); `None`: open topics, and domain-scoped ones only
    /// where `peer` is in the domain's view (a new connection).
    pub(super) fn greet(
        &mut self,
        ctx: &mut Context,
        peer: NodeIdentity,
        domain: Option<DomainIdentity>,
    ) {
        let me = self.me;
        let mut out: Vec<PubSubMessage> = Vec::new();
        let (views, dir) = (&self.views, &self.domains);
        for (topic, t) in self.topics.iter_mut() {
            let Some(advert) = &t.advert else {
                continue;
            };
            let wanted = match (domain, advert.scope) {
                (Some(d), scope) => scope == Some(d),
                (None, None) => true,
                (None, Some(d)) => views.get(&d).is_some_and(|v| v.contains(&peer)),
            };
            let allowed = advert
                .scope
                .is_none_or(|d| dir.member_here(&d) && dir.is_member(&d, &peer));
            if !wanted || !allowed {
                continue;
            }
            if t.publishing {
                out.push(PubSubMessage::Advert {
                    advert: advert.clone(),
                    publisher: me,
                    hops: 0,
                });
            }
            for (publisher, r) in &t.routes {
                out.push(PubSubMessage::Advert {
                    advert: advert.clone(),
                    publisher: *publisher,
                    hops: r.distance,
                });
            }
            for w in t.withdrawn.values() {
                out.push(PubSubMessage::Withdraw(w.clone()));
            }
            if let Some(publishers) = t.desired(me).remove(&peer) {
                out.push(PubSubMessage::Subscribe {
                    topic: *topic,
                    publishers: publishers.iter().copied().collect(),
                });
                t.asked.insert(peer, publishers);
            }
        }
        for msg in out {
            self.send(ctx, peer, &msg);
        }
    }
}
