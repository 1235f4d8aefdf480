//! Application validation of a topic's remote events (gossipsub's
//! `report_message_validation_result`): an event waits, neither forwarded nor delivered, until
//! every validator of its topic accepts it; a rejection or an ignore, or no answer within
//! `validation_timeout`, drops it. Off unless a local engine asks for it.

use super::*;

/// A remote event waiting for its validators.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) topic: TopicIdentity,
    pub(super) event: Verified<Event>,
    id: EventId,
    via: NodeIdentity,
    awaiting: BTreeSet<EngineIdentity>,
    since: Instant,
}

impl PubSub {
    /// A local engine starts (`on`) or stops validating a topic's remote events.
    pub(super) fn set_validator(
        &mut self,
        ctx: &mut Context,
        topic: TopicIdentity,
        engine: EngineIdentity,
        on: bool,
    ) {
        if on {
            if let Some(t) = self.topic_mut(topic) {
                t.validators.insert(engine);
            }
            return;
        }
        if let Some(t) = self.topics.get_mut(&topic) {
            t.validators.remove(&engine);
        }
        // What waited only for this validator goes on as accepted (a rejection or an ignore
        // would have settled it already).
        let settled: Vec<u64> = self
            .pending
            .iter_mut()
            .filter(|(_, p)| p.topic == topic)
            .filter_map(|(token, p)| {
                p.awaiting.remove(&engine);
                p.awaiting.is_empty().then_some(*token)
            })
            .collect();
        for token in settled {
            self.resolve(ctx, token, Validation::Accept);
        }
    }

    /// A verified remote event for a topic with validators: shown to each of them, held until
    /// they answer. Past the limits it is dropped without being remembered, so that a copy can
    /// be validated later.
    pub(super) fn hold_for_validation(
        &mut self,
        ctx: &mut Context,
        via: NodeIdentity,
        ev: Verified<Event>,
        id: EventId,
    ) {
        let topic = ev.topic;
        if self.pending.len() >= self.limits.max_pending_validation
            || self.pending_bytes + ev.body.len() > self.limits.pending_validation_bytes
        {
            self.count(&self.stats.validation_full);
            log::debug!(
                "pubsub: too many events waiting for validation: event {} of {} dropped",
                ev.seq,
                ev.publisher.short()
            );
            return;
        }
        let message = match Message::from_event(&ev, via) {
            Ok(m) => m,
            Err(_) => {
                // Nothing a validator could look at: not forwarded, not delivered.
                self.count(&self.stats.malformed);
                self.remember(id);
                let (publisher, seq) = (ev.publisher, ev.seq);
                return self.sequence(ctx, topic, publisher, seq, Entry::Skip);
            }
        };
        let validators = self
            .topics
            .get(&topic)
            .map(|t| t.validators.clone())
            .unwrap_or_default();
        let token = self.next_token;
        self.next_token += 1;
        for v in &validators {
            self.notice(
                ctx,
                PubSubNotice::Validate {
                    validator: *v,
                    token,
                    message: message.clone(),
                },
            );
        }
        self.pending_bytes += ev.body.len();
        self.pending_ids.insert(id, token);
        self.pending.insert(
            token,
            Pending {
                topic,
                event: ev,
                id,
                via,
                awaiting: validators,
                since: ctx.now().instant,
            },
        );
    }

    /// `engine`'s verdict on the event shown as `token`. A late or unknown answer is ignored.
    pub(super) fn on_validated(
        &mut self,
        ctx: &mut Context,
        engine: EngineIdentity,
        token: u64,
        verdict: Validation,
    ) {
        let Some(p) = self.pending.get_mut(&token) else {
            log::debug!(
                "pubsub: a verdict from {} on event {token}, which no longer waits",
                engine.short()
            );
            return;
        };
        if !p.awaiting.remove(&engine) {
            return;
        }
        if verdict != Validation::Accept || p.awaiting.is_empty() {
            self.resolve(ctx, token, verdict);
        }
    }

    /// Ignores the events whose validators did not answer within `validation_timeout`.
    pub(super) fn expire_validations(&mut self, ctx: &mut Context, now: Instant) {
        let timeout = self.limits.validation_timeout;
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.since) >= timeout)
            .map(|(token, _)| *token)
            .collect();
        for token in due {
            self.count(&self.stats.validation_timeout);
            self.resolve(ctx, token, Validation::Ignore);
        }
    }

    /// Settles a held event: accepted ones go on as any event; the others are remembered (their
    /// copies are duplicates) and their sequence number is skipped here.
    fn resolve(&mut self, ctx: &mut Context, token: u64, verdict: Validation) {
        let Some(p) = self.pending.remove(&token) else {
            return;
        };
        self.pending_ids.remove(&p.id);
        self.pending_bytes = self.pending_bytes.saturating_sub(p.event.body.len());
        if !self.topics.contains_key(&p.topic) {
            // The topic went away while the validator looked.
            self.count(&self.stats.no_advert);
            return;
        }
        match verdict {
            Validation::Accept => {
                self.count(&self.stats.validation_accepted);
                self.admit(ctx, Some(p.via), p.event, p.id);
            }
            Validation::Reject | Validation::Ignore => {
                if verdict == Validation::Reject {
                    self.count(&self.stats.validation_rejected);
                    self.penalize(p.via);
                } else {
                    self.count(&self.stats.validation_ignored);
                }
                self.remember(p.id);
                let (publisher, seq) = (p.event.publisher, p.event.seq);
                self.sequence(ctx, p.topic, publisher, seq, Entry::Skip);
            }
        }
    }

    /// Drops the held events that match (their publisher withdrew), without a verdict.
    pub(super) fn drop_pending(&mut self, which: impl Fn(&Pending) -> bool) {
        let gone: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| which(p))
            .map(|(token, _)| *token)
            .collect();
        for token in gone {
            if let Some(p) = self.pending.remove(&token) {
                self.count(&self.stats.after_withdrawal);
                self.pending_ids.remove(&p.id);
                self.pending_bytes = self.pending_bytes.saturating_sub(p.event.body.len());
            }
        }
    }

    /// A validator rejected an event `peer` sent: counted per peer ([`PubSubStats::rejections`])
    /// and one point of the peer's reputation in the identity store (reported at the end of the
    /// burst, [`Engine::flush`]). The peer is not disconnected: it may have forwarded in good
    /// faith what an application here does not want.
    fn penalize(&mut self, peer: NodeIdentity) {
        let lost = self.reputation_loss.entry(peer).or_insert(0);
        *lost = lost.saturating_add(1);
        self.stats.count_rejection(peer);
        log::info!(
            "pubsub: a validator rejected an event from {}",
            peer.short()
        );
    }
}
