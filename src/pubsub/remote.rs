//! What other nodes' PubSub engines send: adverts, subscriptions and their acknowledgements,
//! events (checked against the advert's publishers and their signatures, deduplicated, delivered
//! in causal order) and requests for missing events.

use super::*;

impl PubSub {
    pub(super) fn handle_remote(&mut self, ctx: &mut Context, via: NodeIdentity, body: &[u8]) {
        let msg = match PubSubMessage::from_bytes(body) {
            Ok(m) => m,
            Err(e) => {
                self.count(&self.stats.malformed);
                return self.bad_peer(ctx, via, &format!("malformed: {e}"));
            }
        };
        match msg {
            PubSubMessage::Advert { advert, hops } => self.on_advert(ctx, via, advert, hops),
            PubSubMessage::Subscribe { topic } => self.on_subscribe(ctx, via, topic),
            PubSubMessage::SubscribeAck {
                topic,
                accepted,
                positions,
            } => self.on_subscribe_ack(ctx, via, topic, accepted, positions),
            PubSubMessage::Unsubscribe { topic } => {
                if let Some(t) = self.topics.get_mut(&topic) {
                    if t.children.remove(&via).is_some() {
                        t.progress_dirty = true;
                    }
                }
                self.send(ctx, via, &PubSubMessage::UnsubscribeAck { topic });
                self.prune(ctx, topic);
            }
            PubSubMessage::UnsubscribeAck { .. } => self.count(&self.stats.unsubscribe_acks),
            PubSubMessage::Event(ev) => self.on_event(ctx, Some(via), ev),
            PubSubMessage::Events(events) => self.on_events(ctx, Some(via), events),
            PubSubMessage::EventReq {
                topic,
                publisher,
                from,
                to,
            } => self.on_event_request(ctx, via, topic, publisher, from, to),
            PubSubMessage::EventResp { .. } => {}
            PubSubMessage::EventAck {
                topic,
                publisher,
                next_seq,
            } => {
                let now = ctx.now().instant;
                if let Some(t) = self.topics.get_mut(&topic) {
                    if let Some(c) = t.children.get_mut(&via) {
                        let e = c.acked.entry(publisher).or_insert(0);
                        if next_seq > *e {
                            *e = next_seq;
                            c.last_progress = now;
                            t.progress_dirty = true;
                        }
                    }
                }
            }
        }
    }

    pub(super) fn on_advert(
        &mut self,
        ctx: &mut Context,
        via: NodeIdentity,
        advert: TopicAdvert,
        hops: u8,
    ) {
        let advert = match advert.verify() {
            Ok(v) => v.into_inner(),
            Err(e) => {
                self.count(&self.stats.bad_advert);
                return self.bad_peer(ctx, via, &format!("advert: {e}"));
            }
        };
        let topic = advert.topic;
        let Some(t) = self.topic_mut(topic) else {
            return;
        };
        let fresher = t
            .advert
            .as_ref()
            .is_none_or(|a| advert.freshness() > a.freshness());
        let same = t
            .advert
            .as_ref()
            .is_some_and(|a| advert.freshness() == a.freshness());
        let distance = hops.saturating_add(1);
        if same {
            if t.publishing || distance > t.distance {
                return;
            }
            if distance == t.distance {
                // A redundant path towards the publisher.
                if t.parents.insert(via) && t.wants_upstream() && t.upstream != Upstream::None {
                    self.send(ctx, via, &PubSubMessage::Subscribe { topic });
                }
                return;
            }
            // A shorter path: it replaces the parents, and the news travels on.
        } else if !fresher || t.publishing {
            return;
        }
        let new_version = t
            .advert
            .as_ref()
            .is_none_or(|a| a.version != advert.version);
        t.advert = Some(advert.clone());
        t.distance = distance;
        t.parents.clear();
        t.parents.insert(via);
        if new_version {
            // A new advert version (a publisher restarted or the publishers changed): sequence
            // numbers start afresh, from the next event or acknowledgement.
            t.streams.clear();
        }
        ctx.identity_request(IdentityRequest::Update(IdentityUpdate::TopicAdvert(
            advert.clone(),
        )));
        ctx.system(SystemMail::PubSubNotice(Box::new(
            PubSubNotice::AdvertReceived {
                advert: advert.clone(),
            },
        )));
        let wants = t.wants_upstream();
        let msg = PubSubMessage::Advert {
            advert,
            hops: distance,
        };
        for peer in self.connected.clone() {
            if peer != via {
                self.send(ctx, peer, &msg);
            }
        }
        if wants {
            self.subscribe_upstream(ctx, topic);
        }
    }

    pub(super) fn on_subscribe(
        &mut self,
        ctx: &mut Context,
        via: NodeIdentity,
        topic: TopicIdentity,
    ) {
        let now = ctx.now().instant;
        let max_children = self.limits.max_children;
        let me = self.me;
        let Some(t) = self.topic_mut(topic) else {
            return self.send(
                ctx,
                via,
                &PubSubMessage::SubscribeAck {
                    topic,
                    accepted: false,
                    positions: Vec::new(),
                },
            );
        };
        if !t.children.contains_key(&via) && t.children.len() >= max_children {
            self.count(&self.stats.children_full);
            return self.send(
                ctx,
                via,
                &PubSubMessage::SubscribeAck {
                    topic,
                    accepted: false,
                    positions: Vec::new(),
                },
            );
        }
        t.children.entry(via).or_insert(Child {
            acked: HashMap::new(),
            last_progress: now,
        });
        t.progress_dirty = true;
        if t.fed() {
            let positions = t.positions(me);
            self.send(
                ctx,
                via,
                &PubSubMessage::SubscribeAck {
                    topic,
                    accepted: true,
                    positions,
                },
            );
        } else {
            if !t.waiting_children.contains(&via) {
                t.waiting_children.push(via);
            }
            if t.upstream == Upstream::None {
                self.subscribe_upstream(ctx, topic);
            }
        }
    }

    pub(super) fn on_subscribe_ack(
        &mut self,
        ctx: &mut Context,
        via: NodeIdentity,
        topic: TopicIdentity,
        accepted: bool,
        positions: Vec<(EngineIdentity, u64)>,
    ) {
        let me = self.me;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if !t.parents.contains(&via) {
            // Only a parent (closer to the publisher) can feed this node.
            return;
        }
        if !accepted {
            log::info!(
                "pubsub: {} refused our subscription to {}",
                via.short(),
                topic.short()
            );
            return;
        }
        if !t.wants_upstream() {
            // We no longer need it: undo.
            return self.send(ctx, via, &PubSubMessage::Unsubscribe { topic });
        }
        t.upstream = Upstream::Acked;
        let now = ctx.now().instant;
        for (publisher, next) in positions {
            if t.authorized(&publisher) {
                let s = t.streams.entry(publisher).or_default();
                if s.next == 0 {
                    s.next = next;
                }
                s.horizon = s.horizon.max(next);
                if s.horizon > s.next {
                    // Events this node missed while it was not fed: fetch them.
                    s.gap_since.get_or_insert(now);
                }
            }
        }
        let waiting = std::mem::take(&mut t.waiting_children);
        let positions = t.positions(me);
        let notify = t.local_interest && !t.notified_subscribed;
        if notify {
            t.notified_subscribed = true;
        }
        for child in waiting {
            self.send(
                ctx,
                child,
                &PubSubMessage::SubscribeAck {
                    topic,
                    accepted: true,
                    positions: positions.clone(),
                },
            );
        }
        if notify {
            ctx.system(SystemMail::PubSubNotice(Box::new(
                PubSubNotice::Subscribed {
                    topic,
                    result: Ok(()),
                },
            )));
        }
    }

    pub(super) fn on_event_request(
        &mut self,
        ctx: &mut Context,
        via: NodeIdentity,
        topic: TopicIdentity,
        publisher: EngineIdentity,
        from: u64,
        to: u64,
    ) {
        if from == 0 || from > to {
            self.count(&self.stats.malformed);
            return self.bad_peer(ctx, via, "event request with an empty range");
        }
        let to = to.min(from.saturating_add(MAX_RESEND - 1));
        let events: Vec<Event> = match self.topics.get(&topic) {
            Some(t) => t
                .cache
                .iter()
                .filter(|e| e.publisher == publisher && e.seq >= from && e.seq <= to)
                .map(|e| Event::clone(e))
                .collect(),
            None => Vec::new(),
        };
        let found = events.len() as u64;
        for ev in events {
            self.count(&self.stats.resent);
            self.queue_event(ctx, via, ev);
        }
        // The answer's events leave before the summary.
        if let Some((events, _)) = self.outbox.remove(&via) {
            self.send_events(ctx, via, events);
        }
        // Missing some: ask closer to the publisher (parents are strictly closer, so requests
        // cannot loop). What arrives is forwarded to the asking child like any event.
        if found < to - from + 1 {
            if let Some(t) = self.topics.get(&topic) {
                if !t.parents.contains(&via) {
                    let parents: Vec<NodeIdentity> = t.parents.iter().copied().collect();
                    let req = PubSubMessage::EventReq {
                        topic,
                        publisher,
                        from,
                        to,
                    };
                    for p in parents {
                        self.count(&self.stats.event_requests);
                        self.send(ctx, p, &req);
                    }
                }
            }
        }
        self.send(
            ctx,
            via,
            &PubSubMessage::EventResp {
                topic,
                publisher,
                from,
                to,
                found,
            },
        );
    }

    /// Accepts (or refuses) an event; forwards and delivers what it accepts. `via` is `None` for
    /// this node's own publications (not verified).
    pub(super) fn on_event(&mut self, ctx: &mut Context, via: Option<NodeIdentity>, ev: Event) {
        self.on_events(ctx, via, vec![ev]);
    }

    /// Accepts (or refuses) events from `via`: cheap checks first, then every signature in one
    /// batch verification; forwards and delivers what it accepts, in order.
    pub(super) fn on_events(
        &mut self,
        ctx: &mut Context,
        via: Option<NodeIdentity>,
        events: Vec<Event>,
    ) {
        let mut candidates: Vec<(Event, EventId)> = Vec::with_capacity(events.len());
        let mut batch_ids = HashSet::new();
        for ev in events {
            let Some(t) = self.topics.get(&ev.topic) else {
                self.count(&self.stats.no_advert);
                continue;
            };
            if t.advert.is_none() {
                self.count(&self.stats.no_advert);
                continue;
            }
            if !t.authorized(&ev.publisher) {
                self.count(&self.stats.unauthorized);
                if let Some(v) = via {
                    self.bad_peer(ctx, v, "event from an unauthorized publisher");
                }
                continue;
            }
            let id = ev.id();
            if self.seen.contains(&id) || !batch_ids.insert(id) {
                self.count(&self.stats.duplicate);
                continue;
            }
            candidates.push((ev, id));
        }
        // Every signature in one batch; an event whose publisher's key does not parse fails.
        let mut keys: Vec<Option<CheckedKey>> = Vec::with_capacity(candidates.len());
        for (ev, _) in &candidates {
            let key = self
                .keys
                .entry(ev.publisher)
                .or_insert_with(|| CheckedKey::parse(ev.publisher.as_bytes()).ok());
            keys.push(key.clone());
        }
        let (keyed, unkeyed): (Vec<_>, Vec<_>) = candidates
            .into_iter()
            .zip(keys)
            .partition(|(_, k)| k.is_some());
        let bad = unkeyed.len();
        let (events, ids): (Vec<Event>, Vec<EventId>) =
            keyed.iter().map(|((e, id), _)| (e.clone(), *id)).unzip();
        let key_refs: Vec<&CheckedKey> = keyed.iter().filter_map(|(_, k)| k.as_ref()).collect();
        let outcomes = wire::verify_events(events, &key_refs);
        let mut refused = bad;
        for (outcome, id) in outcomes.into_iter().zip(ids) {
            match outcome {
                Ok(ev) => self.accept(ctx, via, ev, id),
                Err(_) => refused += 1,
            }
        }
        for _ in 0..refused {
            self.count(&self.stats.bad_signature);
            if let Some(v) = via {
                self.bad_peer(ctx, v, "event with a bad signature");
            }
        }
    }

    /// An event that passed every check: remember, forward, cache, deliver in order.
    pub(super) fn accept(
        &mut self,
        ctx: &mut Context,
        via: Option<NodeIdentity>,
        ev: Verified<Event>,
        id: EventId,
    ) {
        self.remember(id);
        let topic = ev.topic;
        let from = via.unwrap_or_else(|| ctx.node());
        // Forward to children (not back where it came from).
        let children: Vec<NodeIdentity> = self.topics[&topic]
            .children
            .keys()
            .copied()
            .filter(|c| Some(*c) != via)
            .collect();
        for c in children {
            self.count(&self.stats.forwarded);
            self.queue_event(ctx, c, Event::clone(&ev));
        }
        self.cache(&ev);
        if via.is_some() {
            self.sequence(ctx, from, ev);
        }
    }

    /// Queues an event for `peer`; queued events leave as one `Events` message per peer at the
    /// end of the burst (or as soon as a batch is full).
    pub(super) fn queue_event(&mut self, ctx: &mut Context, peer: NodeIdentity, ev: Event) {
        let entry = self.outbox.entry(peer).or_default();
        entry.1 += ev.body.len();
        entry.0.push(ev);
        if entry.0.len() >= wire::MAX_BATCH_EVENTS || entry.1 >= wire::BATCH_BODY_BYTES {
            if let Some((events, _)) = self.outbox.remove(&peer) {
                self.send_events(ctx, peer, events);
            }
        }
    }

    pub(super) fn send_events(
        &self,
        ctx: &mut Context,
        peer: NodeIdentity,
        mut events: Vec<Event>,
    ) {
        let msg = if events.len() == 1 {
            PubSubMessage::Event(events.pop().expect("one event"))
        } else {
            PubSubMessage::Events(events)
        };
        self.send(ctx, peer, &msg);
    }

    /// Sends every queued batch.
    pub(super) fn flush_outbox(&mut self, ctx: &mut Context) {
        let outbox = std::mem::take(&mut self.outbox);
        for (peer, (events, _)) in outbox {
            self.send_events(ctx, peer, events);
        }
    }

    pub(super) fn remember(&mut self, id: EventId) {
        if self.seen.insert(id) {
            self.seen_order.push_back(id);
            while self.seen_order.len() > self.limits.seen_ids {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }

    pub(super) fn cache(&mut self, ev: &Verified<Event>) {
        let max = self.limits.cache_events;
        let Some(t) = self.topics.get_mut(&ev.topic) else {
            return;
        };
        t.cache.push_back(ev.clone());
        self.cache_bytes += ev.body.len();
        while t.cache.len() > max {
            if let Some(old) = t.cache.pop_front() {
                self.cache_bytes = self.cache_bytes.saturating_sub(old.body.len());
            }
        }
        if self.cache_bytes > self.limits.cache_bytes {
            // Evict from the largest caches until under the limit.
            let mut topics: Vec<&mut Topic> = self.topics.values_mut().collect();
            topics.sort_by_key(|t| std::cmp::Reverse(t.cache.len()));
            for t in topics {
                while self.cache_bytes > self.limits.cache_bytes / 2 {
                    match t.cache.pop_front() {
                        Some(old) => {
                            self.cache_bytes = self.cache_bytes.saturating_sub(old.body.len())
                        }
                        None => break,
                    }
                }
            }
        }
    }

    /// Puts a verified event into its publisher's sequence, delivering what is in order.
    pub(super) fn sequence(&mut self, ctx: &mut Context, via: NodeIdentity, ev: Verified<Event>) {
        let now = ctx.now().instant;
        let max_buffered = self.limits.max_buffered;
        let Some(t) = self.topics.get_mut(&ev.topic) else {
            return;
        };
        let s = t.streams.entry(ev.publisher).or_default();
        if s.next == 0 {
            s.next = ev.seq;
        }
        if ev.seq < s.next {
            self.count(&self.stats.stale);
            return;
        }
        if ev.seq > s.next {
            if s.buffer.len() >= max_buffered {
                self.count(&self.stats.buffer_full);
                return;
            }
            s.buffer.insert(ev.seq, ev);
            s.gap_since.get_or_insert(now);
            return;
        }
        let mut ready = vec![ev];
        s.next += 1;
        while let Some(next) = s.buffer.remove(&s.next) {
            ready.push(next);
            s.next += 1;
        }
        s.horizon = s.horizon.max(s.next);
        if s.gap_end().is_none() {
            s.gap_since = None;
        } else {
            s.gap_since = Some(now);
        }
        t.ack_dirty = true;
        let deliver = t.local_interest;
        for ev in ready {
            if deliver {
                self.deliver(ctx, via, ev);
            }
        }
    }

    pub(super) fn deliver(&mut self, ctx: &mut Context, via: NodeIdentity, ev: Verified<Event>) {
        match Message::from_event(&ev, via) {
            Ok(message) => {
                self.count(&self.stats.delivered);
                ctx.system(SystemMail::PubSubNotice(Box::new(PubSubNotice::Deliver {
                    message,
                })));
            }
            Err(e) => {
                self.count(&self.stats.malformed);
                log::debug!(
                    "pubsub: event {} of {} from {} is not delivered: {e}",
                    ev.seq,
                    ev.publisher.short(),
                    via.short()
                );
            }
        }
    }

    /// A local engine published on a topic this node publishes.
    pub(super) fn publish(&mut self, ctx: &mut Context, m: Message) {
        let Destination::Topic(topic) = m.dst() else {
            return;
        };
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if !t.publishing {
            return;
        }
        let mut body = Vec::with_capacity(200 + m.body().len());
        m.as_engine_message().encode_signed_fields(&mut body);
        let deps = t.last_id.into_iter().collect();
        let ev = Event::new_signed(&self.key, topic, t.next_seq, deps, body);
        t.next_seq += 1;
        let id = ev.id();
        t.last_id = Some(id);
        t.progress_dirty = true;
        self.count(&self.stats.published);
        self.accept(ctx, None, ev, id);
    }
}
