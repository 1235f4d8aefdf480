//! What other nodes' PubSub engines send, dispatched to the files that handle it; events
//! (checked against the advert's publishers and their signatures, deduplicated, checked for
//! equivocation, validated if asked, forwarded down each publisher's tree, cached) and requests
//! for missing events.

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
        // Domain-scoped topics: only between members (adverts and events are checked where
        // they are handled).
        if let Some(topic) = Self::gated_topic(&msg) {
            if !self.scope_allows(&topic, &via) {
                self.refuse_not_member(via, topic, "a message");
                if let PubSubMessage::Subscribe { .. } = msg {
                    // Answered as any refused subscription.
                    let refuse = PubSubMessage::SubscribeAck {
                        topic,
                        accepted: false,
                        positions: Vec::new(),
                    };
                    self.send(ctx, via, &refuse);
                }
                return;
            }
        }
        match msg {
            PubSubMessage::Advert {
                advert,
                publisher,
                hops,
            } => self.on_advert(ctx, via, advert, publisher, hops),
            PubSubMessage::Subscribe { topic, publishers } => {
                self.on_subscribe(ctx, via, topic, publishers)
            }
            PubSubMessage::SubscribeAck {
                topic,
                accepted,
                positions,
            } => self.on_subscribe_ack(ctx, via, topic, accepted, positions),
            PubSubMessage::Unsubscribe { topic } => self.on_unsubscribe(ctx, via, topic),
            PubSubMessage::UnsubscribeAck { .. } => self.count(&self.stats.unsubscribe_acks),
            PubSubMessage::Event(ev) => self.on_event(ctx, Some(via), ev),
            PubSubMessage::Events(events) => self.on_events(ctx, Some(via), events),
            PubSubMessage::EventReq {
                topic,
                publisher,
                from,
                to,
            } => self.on_event_request(ctx, via, topic, publisher, from, to),
            // Informational: the events it reports came (or not) as `Event` messages already.
            PubSubMessage::EventResp { .. } => self.count(&self.stats.event_resps),
            PubSubMessage::EventAck {
                topic,
                publisher,
                next_seq,
            } => {
                let now = ctx.now().instant;
                let known = self
                    .topics
                    .get(&topic)
                    .is_some_and(|t| t.authorized(&publisher) && t.children.contains_key(&via));
                if !known {
                    // Not a child of this topic, or a publisher the advert does not list: an
                    // acknowledgement this node keeps no state for (bounded by the advert).
                    self.count(&self.stats.acks_ignored);
                    log::debug!(
                        "pubsub: ignored an acknowledgement from {} for topic {}",
                        via.short(),
                        topic.short()
                    );
                    return;
                }
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
            PubSubMessage::Withdraw(w) => self.on_withdraw(ctx, via, w),
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
        // Missing some: ask closer to the publisher (its parents are strictly closer to it, so
        // requests cannot loop). What arrives is forwarded to the asking child like any event.
        if found < to - from + 1 {
            if let Some(r) = self
                .topics
                .get(&topic)
                .and_then(|t| t.routes.get(&publisher))
            {
                if !r.parents.contains(&via) {
                    let parents: Vec<NodeIdentity> = r.parents.iter().copied().collect();
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
            if let Some(v) = via {
                if !self.scope_allows(&ev.topic, &v) {
                    self.refuse_not_member(v, ev.topic, "an event");
                    continue;
                }
            }
            if ev.seq == 0 || ev.seq == u64::MAX {
                // Sequence numbers start at 1; the last one could never be followed.
                self.count(&self.stats.malformed);
                if let Some(v) = via {
                    self.bad_peer(ctx, v, "event with sequence number 0 or 2^64 - 1");
                }
                continue;
            }
            if t.withdrawn.contains_key(&ev.publisher) {
                // In flight when the withdrawal passed: no fault of the sender.
                self.count(&self.stats.after_withdrawal);
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
            if self.seen.contains(&id)
                || self.pending_ids.contains_key(&id)
                || !batch_ids.insert(id)
            {
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

    /// An event that passed every check of `on_events`: a remote one is checked for
    /// equivocation and, if the topic has validators, held for them; then admitted.
    pub(super) fn accept(
        &mut self,
        ctx: &mut Context,
        via: Option<NodeIdentity>,
        ev: Verified<Event>,
        id: EventId,
    ) {
        if let Some(v) = via {
            if self.equivocates(&ev, id) {
                return;
            }
            if self
                .topics
                .get(&ev.topic)
                .is_some_and(|t| !t.validators.is_empty())
            {
                return self.hold_for_validation(ctx, v, ev, id);
            }
        }
        self.admit(ctx, via, ev, id);
    }

    /// An accepted event: remember, forward to the children that want its publisher, cache, and
    /// put in sequence for delivery. `via` is `None` for this node's own publications.
    pub(super) fn admit(
        &mut self,
        ctx: &mut Context,
        via: Option<NodeIdentity>,
        ev: Verified<Event>,
        id: EventId,
    ) {
        self.remember(id);
        let topic = ev.topic;
        let Some(t) = self.topics.get(&topic) else {
            return;
        };
        // Forward to children (not back where it came from); of a domain-scoped topic, to
        // members only.
        let domain = t.advert.as_ref().and_then(|a| a.scope);
        let children: Vec<NodeIdentity> = t
            .children
            .iter()
            .filter(|(c, child)| Some(**c) != via && child.wants(&ev.publisher))
            .map(|(c, _)| *c)
            .filter(|c| domain.is_none_or(|d| self.domain_allows(&d, c)))
            .collect();
        for c in children {
            self.count(&self.stats.forwarded);
            self.queue_event(ctx, c, Event::clone(&ev));
        }
        self.cache(&ev);
        if let Some(via) = via {
            let (publisher, seq) = (ev.publisher, ev.seq);
            self.sequence(
                ctx,
                topic,
                publisher,
                seq,
                Entry::Event {
                    ev: Box::new(ev),
                    id,
                    via,
                },
            );
        }
    }

    /// Queues an event for `peer`; queued events leave as one `Events` message per peer at the
    /// end of the burst (or as soon as a batch is full).
    pub(super) fn queue_event(&mut self, ctx: &mut Context, peer: NodeIdentity, ev: Event) {
        if !self.scope_allows(&ev.topic, &peer) {
            self.count(&self.stats.not_member_withheld);
            return;
        }
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
        if !self.member_for(&topic) {
            return self.refuse_local(topic, "a publication");
        }
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if !t.publishing {
            return;
        }
        let mut body = Vec::with_capacity(200 + m.body().len());
        m.as_engine_message().encode_signed_fields(&mut body);
        // The previous own event first, then the latest event of other publishers delivered
        // here; their positions (the whole frontier) are what receivers wait for.
        let mut deps: Vec<EventId> = t.last_id.into_iter().collect();
        let room = wire::MAX_DEPS - deps.len();
        deps.extend(t.frontier.values().take(room).map(|(_, id)| *id));
        let positions: Vec<(EngineIdentity, u64)> = t
            .frontier
            .iter()
            .take(wire::MAX_DEP_POSITIONS)
            .map(|(p, (seq, _))| (*p, *seq))
            .collect();
        let ev = Event::new_signed_after(&self.key, topic, t.next_seq, deps, positions, body);
        t.next_seq += 1;
        let id = ev.id();
        t.last_id = Some(id);
        t.progress_dirty = true;
        self.count(&self.stats.published);
        self.accept(ctx, None, ev, id);
    }
}
