//! The Router's services to local engines: topic requests (with the PubSub engine for what
//! needs the network), system mail from the PubSub engine, and engine locations from the
//! Network Identity Store.

use super::topics::TopicAction;
use super::{Router, RouterOutput, Slot};
use crate::identity::{EngineIdentity, NodeIdentity};
use crate::mail::identity::{AnyIdentity, IdentityEvent, IdentityRecord};
use crate::mail::pubsub::{PubSubNotice, PubSubRequest};
use crate::mail::topic::{ToValidate, TopicError, TopicEvent, TopicRequest};
use crate::mail::{DropReason, Input, Origin, System, SystemMail};
use crate::time::Now;
use crate::wire::{Destination, Protocol, RoutingScope};

impl Router {
    /// The node's PubSub engine, if it runs one.
    pub(super) fn pubsub(&self) -> Option<(Slot, EngineIdentity)> {
        let slot = *self.services.get(&Protocol::PUBSUB)?;
        Some((slot, self.slots.get(slot).copied().flatten()?))
    }

    pub(super) fn ask_pubsub(&mut self, req: PubSubRequest) {
        if let Some((slot, _)) = self.pubsub() {
            self.outputs.push_back(RouterOutput::Deliver {
                slot,
                input: Input::System(System(SystemMail::PubSubRequest(Box::new(req)))),
                bounce: None,
                receipt: None,
            });
        }
    }

    pub(super) fn answer(&mut self, slot: Slot, event: TopicEvent) {
        self.outputs.push_back(RouterOutput::Deliver {
            slot,
            input: Input::Topic(event),
            bounce: None,
            receipt: None,
        });
    }

    /// A topic request from the local engine `from`.
    pub fn handle_topic(&mut self, from: EngineIdentity, req: TopicRequest) {
        let Some(slot) = self.slot_of(&from) else {
            return;
        };
        if let Err(e) = self.check_topic_scope(&req) {
            log::debug!(
                "router: topic request for {} from {} refused: {e}",
                req.topic().short(),
                from.short()
            );
            return self.answer(slot, TopicEvent::answer(&req, Err(e)));
        }
        let pubsub = self.pubsub();
        let action = self.topics.handle(from, &req, pubsub.is_some());
        let topic = req.topic();
        match action {
            TopicAction::Answer(r) => self.answer(slot, TopicEvent::answer(&req, r)),
            TopicAction::NetworkSubscribe => {
                let waiters = self.pending_net_subs.entry(topic).or_default();
                if !waiters.contains(&from) {
                    waiters.push(from);
                }
                if waiters.len() == 1 {
                    self.ask_pubsub(PubSubRequest::Subscribe { topic });
                }
            }
            TopicAction::AnswerAndNetworkUnsubscribe => {
                self.answer(slot, TopicEvent::answer(&req, Ok(())));
                self.ask_pubsub(PubSubRequest::Unsubscribe { topic });
            }
            TopicAction::AnswerAndStartAdvert => {
                if let (
                    Some((_, ps)),
                    TopicRequest::Create {
                        advert: Some(advert),
                        ..
                    },
                ) = (pubsub, &req)
                {
                    // PubSub hears local publications as a subscriber of the topic.
                    self.topics.ensure_subscribed(topic, ps);
                    let advert = advert.clone();
                    self.ask_pubsub(PubSubRequest::StartAdvert { advert });
                }
                self.answer(slot, TopicEvent::answer(&req, Ok(())));
            }
            TopicAction::AnswerAndStopAdvert => {
                self.answer(slot, TopicEvent::answer(&req, Ok(())));
                self.ask_pubsub(PubSubRequest::StopAdvert { topic });
            }
            TopicAction::AnswerAndValidator { on } => {
                self.answer(slot, TopicEvent::answer(&req, Ok(())));
                self.ask_pubsub(PubSubRequest::Validator {
                    topic,
                    engine: from,
                    on,
                });
            }
            TopicAction::PassVerdict => {
                if let TopicRequest::Validated { token, verdict, .. } = req {
                    self.ask_pubsub(PubSubRequest::Validated {
                        engine: from,
                        token,
                        verdict,
                    });
                }
            }
        }
    }

    /// The domain rules of topic requests (see "Domain scope" in the module doc): `Create` and
    /// `Subscribe` scoped to a domain need this node to be a member, and a `Create`'s advert
    /// must carry the request's domain as its `scope` (and none for any other scope).
    fn check_topic_scope(&self, req: &TopicRequest) -> Result<(), TopicError> {
        match req {
            TopicRequest::Create { scope, advert, .. } => {
                let wanted = match scope {
                    RoutingScope::Domain(d) => Some(*d),
                    _ => None,
                };
                if wanted.is_some_and(|d| !self.domains.member_here(&d)) {
                    return Err(TopicError::NotMember);
                }
                if advert.as_ref().is_some_and(|a| a.scope != wanted) {
                    return Err(TopicError::ScopeMismatch);
                }
                Ok(())
            }
            TopicRequest::Subscribe {
                scope: RoutingScope::Domain(d),
                ..
            } if !self.domains.member_here(d) => Err(TopicError::NotMember),
            _ => Ok(()),
        }
    }

    /// System mail from the built-in engine `from`.
    pub fn handle_system(&mut self, from: EngineIdentity, mail: System) {
        match mail.0 {
            SystemMail::PubSubNotice(notice) => self.handle_pubsub(from, *notice),
            SystemMail::PubSubRequest(_) => {
                log::warn!(
                    "router: a pubsub request from engine {} ignored: only the Router sends those",
                    from.short()
                );
            }
        }
    }

    /// A notice from the PubSub engine.
    pub(super) fn handle_pubsub(&mut self, from: EngineIdentity, notice: PubSubNotice) {
        if self.pubsub().map(|(_, id)| id) != Some(from) {
            log::warn!(
                "router: pubsub notice from {} ignored: not the PubSub engine",
                from.short()
            );
            return;
        }
        match notice {
            PubSubNotice::Subscribed { topic, result } => {
                let scope = self.net_scopes.remove(&topic);
                for waiter in self.pending_net_subs.remove(&topic).unwrap_or_default() {
                    if result.is_ok() {
                        self.topics.network_subscribed(topic, waiter);
                        if let Some(scope) = scope {
                            self.topics.advert_scope(topic, scope);
                        }
                    }
                    if let Some(slot) = self.slot_of(&waiter) {
                        self.answer(slot, TopicEvent::Subscribed { topic, result });
                    }
                }
            }
            PubSubNotice::Unsubscribed { .. } => {}
            PubSubNotice::AdvertReceived { advert } => {
                // A topic known here through the network takes the advert's domain scope (once
                // its subscription completes, if it is still waiting).
                self.topics
                    .advert_scope(advert.topic, advert.routing_scope());
                if self.pending_net_subs.contains_key(&advert.topic) {
                    self.net_scopes.insert(advert.topic, advert.routing_scope());
                }
                let waiters = self
                    .pending_net_subs
                    .get(&advert.topic)
                    .cloned()
                    .unwrap_or_default();
                for w in waiters {
                    if let Some(slot) = self.slot_of(&w) {
                        self.answer(
                            slot,
                            TopicEvent::AdvertReceived {
                                advert: Box::new(advert.clone()),
                            },
                        );
                    }
                }
            }
            PubSubNotice::Deliver { message } => {
                let Destination::Topic(t) = message.dst() else {
                    return self.stats.dropped(DropReason::Malformed);
                };
                let Some(topic) = self.topics.get(&t) else {
                    return self.stats.dropped(DropReason::UnknownTopic);
                };
                let targets: Vec<Slot> = topic
                    .subscribers
                    .iter()
                    .filter(|s| **s != from)
                    .filter_map(|s| self.locals.get(s).map(|l| l.slot))
                    .collect();
                self.fan_out_message(targets, message, None);
            }
            PubSubNotice::Validate {
                validator,
                token,
                message,
            } => {
                let (Destination::Topic(topic), Origin::Topic { publisher, via }) =
                    (message.dst(), message.origin())
                else {
                    return self.stats.dropped(DropReason::Malformed);
                };
                match self.slot_of(&validator) {
                    Some(slot) => self.answer(
                        slot,
                        TopicEvent::Validate(Box::new(ToValidate {
                            topic,
                            token,
                            publisher,
                            via,
                            message: message.into_engine_message(),
                        })),
                    ),
                    // The validator stopped: PubSub stops waiting for it.
                    None => self.ask_pubsub(PubSubRequest::Validator {
                        topic,
                        engine: validator,
                        on: false,
                    }),
                }
            }
            PubSubNotice::Withdrawn {
                topic,
                publisher,
                last,
            } => {
                let mut told: Vec<EngineIdentity> = self
                    .topics
                    .get(&topic)
                    .map(|t| t.subscribers.clone())
                    .unwrap_or_default();
                told.extend(self.pending_net_subs.get(&topic).into_iter().flatten());
                let mut once = std::collections::BTreeSet::new();
                told.retain(|e| once.insert(*e));
                for engine in told.into_iter().filter(|e| *e != from) {
                    if let Some(slot) = self.slot_of(&engine) {
                        self.answer(
                            slot,
                            TopicEvent::Withdrawn {
                                topic,
                                publisher,
                                last,
                            },
                        );
                    }
                }
            }
            PubSubNotice::Progress {
                topic,
                children,
                published,
            } => {
                let creator = self.topics.get(&topic).and_then(|t| t.creator);
                if let Some(slot) = creator.and_then(|c| self.slot_of(&c)) {
                    self.answer(
                        slot,
                        TopicEvent::Progress {
                            topic,
                            peers: children,
                            published,
                        },
                    );
                }
            }
        }
    }

    /// An answer or notification from the Network Identity Store.
    pub fn handle_identity(&mut self, now: Now, event: IdentityEvent) {
        match event {
            IdentityEvent::Found {
                id: AnyIdentity::Engine(engine),
                record,
            } => {
                match record {
                    Some(IdentityRecord::Engine(r)) if r.node != self.node => {
                        self.learn_remote_engine(engine, r.node);
                        self.release_pending(now, engine, r.node);
                    }
                    // The store answers "unknown" only once its lookup with other nodes has
                    // ended (or none can be made): the messages waiting go as `no_route`.
                    _ => self.lookup_failed(engine),
                }
            }
            IdentityEvent::Updated {
                id: AnyIdentity::Engine(engine),
                record: IdentityRecord::Engine(r),
            } if r.node != self.node => {
                self.learn_remote_engine(engine, r.node);
                self.release_pending(now, engine, r.node);
            }
            IdentityEvent::Removed {
                id: AnyIdentity::Engine(engine),
            } => self.forget_remote_engine(&engine),
            _ => {}
        }
    }

    pub(super) fn release_pending(&mut self, now: Now, engine: EngineIdentity, node: NodeIdentity) {
        let Some(p) = self.pending.remove(&engine) else {
            return;
        };
        for (header, wire) in p.messages {
            if header.expiry.is_some_and(|e| e <= now.wall) {
                self.drop_header(&header, DropReason::Expired);
            } else {
                self.send_remote(now, node, header, wire);
            }
        }
    }
}
