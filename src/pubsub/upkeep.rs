//! Periodic upkeep: subscription retries, acknowledgements, gap requests and give-ups, pushing
//! again what children miss, progress reports, causal and validation timeouts, forgetting
//! withdrawn topics, domain-scoped topics' members (`domains.rs`); and connections coming and
//! going.

use super::*;

impl PubSub {
    pub(super) fn tick(&mut self, ctx: &mut Context) {
        let now = ctx.now().instant;
        self.expire_validations(ctx, now);
        self.tick_domains(ctx, now);
        let topics: Vec<TopicIdentity> = self.topics.keys().copied().collect();
        for topic in topics {
            self.tick_topic(ctx, topic, now);
            self.release_waiting(ctx, topic, now);
            self.check_subscribed(ctx, topic);
        }
        let keep = self.limits.withdrawn_keep;
        let mut forgotten = Vec::new();
        self.topics.retain(|id, t| {
            let forgettable = !t.local_interest && !t.publishing && t.children.is_empty();
            let forget = forgettable
                && t.closed_since
                    .is_some_and(|since| now.saturating_duration_since(since) >= keep);
            if forget {
                forgotten.push(*id);
            }
            !forget
        });
        for topic in forgotten {
            self.post_parents(topic);
        }
        ctx.set_timer_after(TICK_TOKEN, TICK);
    }

    pub(super) fn tick_topic(&mut self, ctx: &mut Context, topic: TopicIdentity, now: Instant) {
        let me = self.me;
        let limits = self.limits;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        let mut out: Vec<(NodeIdentity, PubSubMessage)> = Vec::new();
        // Subscription retries: every parent of a route whose subscription is not acknowledged.
        let desired = t.desired(me);
        let mut retry: BTreeSet<NodeIdentity> = BTreeSet::new();
        for r in t.routes.values_mut() {
            if let Upstream::Pending(since) = r.upstream {
                if now.saturating_duration_since(since) >= SUBSCRIBE_RETRY {
                    r.upstream = Upstream::Pending(now);
                    retry.extend(r.parents.iter().copied());
                }
            }
        }
        for parent in retry {
            if let Some(publishers) = desired.get(&parent) {
                out.push((
                    parent,
                    PubSubMessage::Subscribe {
                        topic,
                        publishers: publishers.iter().copied().collect(),
                    },
                ));
                t.asked.insert(parent, publishers.clone());
            }
        }
        // Acknowledgements, per publisher, to that publisher's parents.
        if t.ack_dirty {
            t.ack_dirty = false;
            for (publisher, s) in &t.streams {
                let Some(r) = t.routes.get(publisher) else {
                    continue;
                };
                if r.upstream != Upstream::Acked || s.next == 0 {
                    continue;
                }
                for p in &r.parents {
                    out.push((
                        *p,
                        PubSubMessage::EventAck {
                            topic,
                            publisher: *publisher,
                            next_seq: s.next,
                        },
                    ));
                }
            }
        }
        // Gaps: ask the publisher's parents, give up after a while.
        let mut lost: u64 = 0;
        let mut skipped: Vec<(EngineIdentity, u64, Vec<Entry>)> = Vec::new();
        let Topic {
            streams, routes, ..
        } = t;
        for (publisher, s) in streams.iter_mut() {
            let Some(since) = s.gap_since else { continue };
            let waited = now.saturating_duration_since(since);
            let Some(first) = s.gap_end() else {
                s.gap_since = None;
                continue;
            };
            if waited >= limits.give_up_after {
                lost = lost.saturating_add(first - s.next);
                s.next = first;
                s.moved = Some(now);
                let from = first;
                let mut run = Vec::new();
                while let Some(entry) = s.buffer.remove(&s.next) {
                    run.push(entry);
                    s.next += 1;
                }
                s.horizon = s.horizon.max(s.next);
                s.gap_since = s.gap_end().map(|_| now);
                skipped.push((*publisher, from, run));
            } else if waited >= limits.gap_wait
                && s.last_request
                    .is_none_or(|t| now.saturating_duration_since(t) >= limits.gap_wait)
            {
                s.last_request = Some(now);
                let req = PubSubMessage::EventReq {
                    topic,
                    publisher: *publisher,
                    from: s.next,
                    to: first - 1,
                };
                for p in routes
                    .get(publisher)
                    .map(|r| &r.parents)
                    .into_iter()
                    .flatten()
                {
                    out.push((*p, req.clone()));
                }
            }
        }
        if !skipped.is_empty() {
            t.ack_dirty = true;
        }
        // Push to children that lag behind what this node has.
        let mut pushes: Vec<(NodeIdentity, Event)> = Vec::new();
        for (child, c) in t.children.iter_mut() {
            if now.saturating_duration_since(c.last_progress) < CHILD_LAG {
                continue;
            }
            for ev in &t.cache {
                if !c.wants(&ev.publisher) {
                    continue;
                }
                let acked = c.acked.get(&ev.publisher).copied().unwrap_or(0);
                let frontier = if ev.publisher == me {
                    t.next_seq
                } else {
                    t.streams.get(&ev.publisher).map_or(0, |s| s.next)
                };
                if acked > 0
                    && ev.seq >= acked
                    && ev.seq < frontier
                    && (ev.seq - acked) < MAX_RESEND
                {
                    pushes.push((*child, Event::clone(ev)));
                }
            }
            c.last_progress = now;
        }
        // Progress of a topic this node publishes.
        let progress = (t.publishing && t.progress_dirty).then(|| {
            t.progress_dirty = false;
            PubSubNotice::Progress {
                topic,
                children: t
                    .children
                    .iter()
                    .filter(|(_, c)| c.wants(&me))
                    .map(|(n, c)| (*n, c.acked.get(&me).copied().unwrap_or(0)))
                    .collect(),
                published: t.next_seq - 1,
            }
        });
        for (peer, msg) in out {
            if matches!(msg, PubSubMessage::EventReq { .. }) {
                self.count(&self.stats.event_requests);
            }
            self.send(ctx, peer, &msg);
        }
        for (child, ev) in pushes {
            self.count(&self.stats.resent);
            self.queue_event(ctx, child, ev);
        }
        if lost > 0 {
            self.stats.lost.fetch_add(lost, Ordering::Relaxed);
            log::warn!(
                "pubsub: gave up on {lost} events of topic {}",
                topic.short()
            );
        }
        if !skipped.is_empty() {
            for (publisher, from, run) in skipped {
                self.pass_in_order(topic, publisher, from, run, now);
            }
            self.drain_ready(ctx, topic);
        }
        if let Some(p) = progress {
            self.notice(ctx, p);
        }
    }

    /// A connection to `peer` is up. `event` says it came as a `NodeConnected` notification (not
    /// from the list asked for at start): one for a peer already connected means it restarted —
    /// its new instance replaced the old connection — and lost what it knew of us, so it is
    /// treated as a disconnection followed by a connection (children re-attach, parents are
    /// subscribed to again).
    pub(super) fn on_connected(&mut self, ctx: &mut Context, peer: NodeIdentity, event: bool) {
        if self.connected.contains(&peer) {
            if !event {
                return;
            }
            log::info!(
                "pubsub: {} connected again without a disconnection: it restarted",
                peer.short()
            );
            self.on_disconnected(ctx, peer);
        }
        self.connected.insert(peer);
        // Open topics; a domain-scoped topic's routes go to the domain's view peers only.
        self.greet(ctx, peer, None);
    }

    pub(super) fn on_disconnected(&mut self, ctx: &mut Context, peer: NodeIdentity) {
        self.connected.remove(&peer);
        let retry_at = ctx.now().instant - SUBSCRIBE_RETRY;
        let topics: Vec<TopicIdentity> = self.topics.keys().copied().collect();
        for topic in topics {
            let Some(t) = self.topics.get_mut(&topic) else {
                continue;
            };
            if t.children.remove(&peer).is_some() {
                t.progress_dirty = true;
            }
            for r in t.routes.values_mut() {
                if r.parents.contains(&peer) && r.upstream == Upstream::Acked {
                    // Re-subscribe through the remaining parents (and this one when it is back).
                    r.upstream = Upstream::Pending(retry_at);
                }
            }
            self.sync_upstream(ctx, topic);
        }
    }
}
