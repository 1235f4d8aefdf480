//! Delivery order: each publisher's events are put in sequence, then delivered in causal order —
//! an event in sequence waits until the events it depends on, of any publisher, have been
//! delivered here. Also the equivocation check (two events with one sequence number).

use super::*;

/// One sequence number of a publisher's stream, once received.
#[derive(Debug)]
pub(super) enum Entry {
    /// An event to deliver, with its id and the neighbour it came from.
    Event {
        ev: Box<Verified<Event>>,
        id: EventId,
        via: NodeIdentity,
    },
    /// A sequence number this node does not deliver: a validator rejected or ignored its event.
    Skip,
}

/// An entry in sequence, waiting for its dependencies.
#[derive(Debug)]
pub(super) struct Ready {
    seq: u64,
    entry: Entry,
    /// When it came into sequence.
    since: Instant,
    /// It waited for a dependency at least once.
    waited: bool,
    /// It waited past `give_up_after`: delivered without its missing dependencies.
    released: bool,
}

/// The state of one publisher's events at this node.
#[derive(Debug, Default)]
pub(super) struct Stream {
    /// Next sequence number to receive in order; 0 = not known yet.
    pub(super) next: u64,
    /// Events below this are known to exist (from a parent's position).
    pub(super) horizon: u64,
    /// Entries received beyond `next`.
    pub(super) buffer: BTreeMap<u64, Entry>,
    pub(super) gap_since: Option<Instant>,
    /// When the gap was last asked for.
    pub(super) last_request: Option<Instant>,
    /// The ids of the most recent sequence numbers received (at most `cache_events`), to detect
    /// equivocation.
    pub(super) received: BTreeMap<u64, EventId>,
    /// Entries in sequence, waiting for their dependencies (nodes that deliver only).
    pub(super) ready: VecDeque<Ready>,
    /// When `next` last moved (the stream began, an event came in order, a gap was given up).
    pub(super) moved: Option<Instant>,
}

impl Stream {
    /// The first sequence number after the gap starting at `next`, if there is a gap.
    pub(super) fn gap_end(&self) -> Option<u64> {
        match self.buffer.keys().next() {
            Some(&first) => Some(first),
            None if self.horizon > self.next && self.next > 0 => Some(self.horizon),
            None => None,
        }
    }

    /// Every sequence number below this has been delivered, skipped, given up on, or was
    /// published before this node's stream began; 0 while the stream has not begun.
    fn passed(&self) -> u64 {
        self.ready.front().map_or(self.next, |r| r.seq)
    }
}

impl Topic {
    /// Whether the dependency at `position` no longer holds an event of `publisher` back.
    fn dep_met(
        &self,
        publisher: &EngineIdentity,
        position: &(EngineIdentity, u64),
        me: EngineIdentity,
    ) -> bool {
        let (q, seq) = position;
        // Its own earlier events come first anyway; this node's own were delivered locally; a
        // publisher that may not publish (any more) has nothing to wait for.
        if q == publisher || *q == me || !self.authorized(q) {
            return true;
        }
        if self.waived.get(&(*publisher, *q)).is_some_and(|w| seq < w) {
            return true;
        }
        self.streams
            .get(q)
            .is_some_and(|s| s.next > 0 && s.passed() > *seq)
    }

    fn deps_met(&self, ev: &Event, me: EngineIdentity) -> bool {
        ev.dep_positions
            .iter()
            .all(|p| self.dep_met(&ev.publisher, p, me))
    }
}

impl PubSub {
    /// Records that a verified remote event holds its publisher's sequence number; whether it
    /// equivocates — another event already holds that number, or it claims this node's own
    /// PubSub as publisher without this node having published it. An equivocating event is
    /// counted and logged, remembered (its copies are duplicates), and must be neither
    /// forwarded nor delivered.
    pub(super) fn equivocates(&mut self, ev: &Event, id: EventId) -> bool {
        let window = self.limits.cache_events;
        let other = if ev.publisher == self.me {
            None
        } else {
            let Some(t) = self.topics.get_mut(&ev.topic) else {
                return false;
            };
            let s = t.streams.entry(ev.publisher).or_default();
            match s.received.get(&ev.seq) {
                Some(other) if *other != id => Some(*other),
                Some(_) => return false,
                None => {
                    s.received.insert(ev.seq, id);
                    while s.received.len() > window {
                        s.received.pop_first();
                    }
                    return false;
                }
            }
        };
        self.count(&self.stats.equivocation);
        match other {
            Some(first) => log::warn!(
                "pubsub: equivocation on topic {}: publisher {} signed two events with sequence number {} ({} kept, {} dropped)",
                ev.topic.short(),
                ev.publisher.short(),
                ev.seq,
                hex_short(&first),
                hex_short(&id)
            ),
            None => log::warn!(
                "pubsub: an event in this node's own name on topic {} (sequence number {}) that it did not publish: dropped",
                ev.topic.short(),
                ev.seq
            ),
        }
        self.remember(id);
        true
    }

    /// Puts an accepted entry into its publisher's sequence; what comes into sequence goes on
    /// to causal delivery.
    pub(super) fn sequence(
        &mut self,
        ctx: &mut Context,
        topic: TopicIdentity,
        publisher: EngineIdentity,
        seq: u64,
        entry: Entry,
    ) {
        let now = ctx.now().instant;
        let max_buffered = self.limits.max_buffered;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        let s = t.streams.entry(publisher).or_default();
        if s.next == 0 {
            s.next = seq;
            s.moved = Some(now);
        }
        if seq < s.next {
            self.count(&self.stats.stale);
            return;
        }
        if s.buffer.len() + s.ready.len() >= max_buffered {
            self.count(&self.stats.buffer_full);
            return;
        }
        if seq > s.next {
            s.buffer.insert(seq, entry);
            s.gap_since.get_or_insert(now);
            return;
        }
        let mut run = vec![entry];
        s.next += 1;
        while let Some(next) = s.buffer.remove(&s.next) {
            run.push(next);
            s.next += 1;
        }
        s.moved = Some(now);
        s.horizon = s.horizon.max(s.next);
        s.gap_since = s.gap_end().map(|_| now);
        t.ack_dirty = true;
        self.pass_in_order(topic, publisher, seq, run, now);
        self.drain_ready(ctx, topic);
    }

    /// Entries now in sequence (`run`, from `first`): queued for causal delivery where this
    /// node delivers the topic, passed at once where it does not.
    pub(super) fn pass_in_order(
        &mut self,
        topic: TopicIdentity,
        publisher: EngineIdentity,
        first: u64,
        run: Vec<Entry>,
        now: Instant,
    ) {
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if !t.delivers() {
            return;
        }
        let s = t.streams.entry(publisher).or_default();
        for (seq, entry) in (first..).zip(run) {
            s.ready.push_back(Ready {
                seq,
                entry,
                since: now,
                waited: false,
                released: false,
            });
        }
    }

    /// Takes the head of `publisher`'s causal queue if it can be delivered now.
    fn take_deliverable(
        &mut self,
        topic: &TopicIdentity,
        publisher: &EngineIdentity,
    ) -> Option<Ready> {
        let me = self.me;
        let t = self.topics.get_mut(topic)?;
        let head = t.streams.get(publisher)?.ready.front()?;
        let ok = match &head.entry {
            Entry::Skip => true,
            Entry::Event { ev, .. } => head.released || t.deps_met(ev, me),
        };
        let s = t.streams.get_mut(publisher)?;
        if ok {
            s.ready.pop_front()
        } else {
            if let Some(head) = s.ready.front_mut() {
                head.waited = true;
            }
            None
        }
    }

    /// Delivers every queued entry whose dependencies are met, across the topic's publishers,
    /// until none is left that can go.
    pub(super) fn drain_ready(&mut self, ctx: &mut Context, topic: TopicIdentity) {
        loop {
            let Some(t) = self.topics.get(&topic) else {
                return;
            };
            let publishers: Vec<EngineIdentity> = t
                .streams
                .iter()
                .filter(|(_, s)| !s.ready.is_empty())
                .map(|(p, _)| *p)
                .collect();
            let mut progress = false;
            for p in publishers {
                while let Some(ready) = self.take_deliverable(&topic, &p) {
                    progress = true;
                    self.pass_ready(ctx, topic, ready);
                }
            }
            if !progress {
                return;
            }
        }
    }

    fn pass_ready(&mut self, ctx: &mut Context, topic: TopicIdentity, ready: Ready) {
        let Entry::Event { ev, id, via } = ready.entry else {
            return;
        };
        let me = self.me;
        if let Some(t) = self.topics.get_mut(&topic) {
            if ev.publisher != me {
                t.frontier.insert(ev.publisher, (ev.seq, id));
            }
        }
        if ready.waited && !ready.released {
            self.count(&self.stats.causal_waits);
        }
        self.deliver(ctx, via, *ev);
    }

    /// Delivers, without their missing dependencies, the queued events that waited for them
    /// past `give_up_after` while the streams they wait on did not move for as long (a stream
    /// catching up, after a partition say, is waited for); those positions no longer hold the
    /// publisher's later events back (the events there are still delivered if they come).
    pub(super) fn release_waiting(
        &mut self,
        ctx: &mut Context,
        topic: TopicIdentity,
        now: Instant,
    ) {
        let give_up = self.limits.give_up_after;
        let me = self.me;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        let mut due: Vec<(EngineIdentity, Vec<(EngineIdentity, u64)>)> = Vec::new();
        for (p, s) in &t.streams {
            let Some(head) = s.ready.front() else {
                continue;
            };
            if let Entry::Event { ev, .. } = &head.entry {
                if !head.released && now.saturating_duration_since(head.since) >= give_up {
                    let missing: Vec<(EngineIdentity, u64)> = ev
                        .dep_positions
                        .iter()
                        .filter(|d| !t.dep_met(&ev.publisher, d, me))
                        .copied()
                        .collect();
                    let stalled = missing.iter().all(|(q, _)| {
                        t.streams
                            .get(q)
                            .and_then(|s| s.moved)
                            .is_none_or(|moved| now.saturating_duration_since(moved) >= give_up)
                    });
                    if !missing.is_empty() && stalled {
                        due.push((*p, missing));
                    }
                }
            }
        }
        if due.is_empty() {
            return;
        }
        for (p, missing) in due {
            self.stats.causal_timeout.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "pubsub: an event of {} on topic {} waited {give_up:?} for {} events of other publishers it depends on: delivered without them",
                p.short(),
                topic.short(),
                missing.len()
            );
            for (q, seq) in missing {
                let w = t.waived.entry((p, q)).or_insert(0);
                *w = (*w).max(seq.saturating_add(1));
            }
            if let Some(head) = t.streams.get_mut(&p).and_then(|s| s.ready.front_mut()) {
                head.released = true;
            }
        }
        self.drain_ready(ctx, topic);
    }
}

/// The first bytes of an event id, for logs.
fn hex_short(id: &EventId) -> String {
    id.0[..4].iter().map(|b| format!("{b:02x}")).collect()
}
