//! Periodic upkeep: gap requests and give-ups, pushing again what children miss, progress
//! reports, and pruning topics nobody needs.

use super::*;

impl PubSub {
    pub(super) fn tick(&mut self, ctx: &mut Context) {
        let now = ctx.now().instant;
        let topics: Vec<TopicIdentity> = self.topics.keys().copied().collect();
        for topic in topics {
            self.tick_topic(ctx, topic, now);
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
        // Subscription retries.
        if t.wants_upstream() && t.advert.is_some() {
            let due = match t.upstream {
                Upstream::None => true,
                Upstream::Pending(since) => now.saturating_duration_since(since) >= SUBSCRIBE_RETRY,
                Upstream::Acked => false,
            };
            if due && !t.parents.is_empty() {
                t.upstream = Upstream::Pending(now);
                for p in &t.parents {
                    out.push((*p, PubSubMessage::Subscribe { topic }));
                }
            }
        }
        // Acknowledgements to parents.
        if t.ack_dirty && t.upstream == Upstream::Acked {
            t.ack_dirty = false;
            for (publisher, s) in &t.streams {
                for p in &t.parents {
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
        // Gaps: ask parents, give up after a while.
        let mut lost = 0;
        let mut skipped: Vec<Verified<Event>> = Vec::new();
        for (publisher, s) in t.streams.iter_mut() {
            let Some(since) = s.gap_since else { continue };
            let waited = now.saturating_duration_since(since);
            let Some(first) = s.gap_end() else {
                s.gap_since = None;
                continue;
            };
            if waited >= limits.give_up_after {
                lost += first - s.next;
                s.next = first;
                while let Some(ev) = s.buffer.remove(&s.next) {
                    skipped.push(ev);
                    s.next += 1;
                }
                s.gap_since = (!s.buffer.is_empty()).then_some(now);
                t.ack_dirty = true;
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
                for p in &t.parents {
                    out.push((*p, req.clone()));
                }
            }
        }
        // Push to children that lag behind what this node has.
        let mut pushes: Vec<(NodeIdentity, Event)> = Vec::new();
        for (child, c) in t.children.iter_mut() {
            if now.saturating_duration_since(c.last_progress) < CHILD_LAG {
                continue;
            }
            for ev in &t.cache {
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
                    .map(|(n, c)| (*n, c.acked.get(&me).copied().unwrap_or(0)))
                    .collect(),
                published: t.next_seq - 1,
            }
        });
        let deliver = t.local_interest;
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
        for ev in skipped {
            if deliver {
                let via = ctx.node();
                self.deliver(ctx, via, ev);
            }
        }
        if let Some(p) = progress {
            ctx.system(SystemMail::PubSubNotice(Box::new(p)));
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
        let adverts: Vec<(TopicAdvert, u8)> = self
            .topics
            .values()
            .filter_map(|t| Some((t.advert.clone()?, t.distance)))
            .collect();
        for (advert, hops) in adverts {
            self.send(ctx, peer, &PubSubMessage::Advert { advert, hops });
        }
        let resubscribe: Vec<TopicIdentity> = self
            .topics
            .iter()
            .filter(|(_, t)| t.wants_upstream() && t.parents.contains(&peer))
            .map(|(k, _)| *k)
            .collect();
        for topic in resubscribe {
            self.send(ctx, peer, &PubSubMessage::Subscribe { topic });
        }
    }

    pub(super) fn on_disconnected(&mut self, ctx: &mut Context, peer: NodeIdentity) {
        self.connected.remove(&peer);
        let topics: Vec<TopicIdentity> = self.topics.keys().copied().collect();
        for topic in topics {
            let Some(t) = self.topics.get_mut(&topic) else {
                continue;
            };
            if t.children.remove(&peer).is_some() {
                t.progress_dirty = true;
            }
            if t.parents.contains(&peer) && t.upstream == Upstream::Acked {
                // Re-subscribe through the remaining parents (and this one when it is back).
                t.upstream = Upstream::Pending(ctx.now().instant - SUBSCRIBE_RETRY);
            }
            self.prune(ctx, topic);
        }
    }
}
