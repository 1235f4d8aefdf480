//! The Router's local topic service: the topic table, the four topic requests and their scope
//! rules (spec notes §5.1.1).
//!
//! * Create: the topic is added with no subscribers; the requester becomes its creator. Fails if
//!   the topic exists.
//! * Delete: only the creator may delete; the topic and its subscriptions are removed.
//! * Subscribe: adds the requester to a known topic. For an unknown topic, a `Local` request
//!   fails; an `Any` request is passed to the PubSub engine (when the node runs one), which
//!   answers once the network subscription is in place.
//! * Unsubscribe: removes the requester; when the topic was subscribed with a non-local scope
//!   and no local subscriber is left, PubSub is told to unsubscribe on the network.
//! * Validate: the requester validates the topic's events from the network (PubSub holds each
//!   one for it); needs a PubSub engine. Its verdicts (`Validated`) go to PubSub unanswered.
//!
//! A topic created with scope `Local` never leaves the node: messages published to it are
//! delivered to local subscribers only, and messages for it arriving from other nodes are refused.

use std::collections::BTreeMap;

use crate::identity::{EngineIdentity, TopicIdentity};
pub use crate::mail::topic::{ToValidate, TopicError, TopicEvent, TopicRequest, Validation};
use crate::wire::RoutingScope;

/// A topic as the Router knows it.
#[derive(Clone, Debug)]
pub struct LocalTopic {
    /// The engine that created it (`None` for topics known only through a network subscription).
    pub creator: Option<EngineIdentity>,
    /// Whether the topic reaches beyond this node.
    pub scope: RoutingScope,
    /// Local subscribers, in subscription order.
    pub subscribers: Vec<EngineIdentity>,
}

/// What the Router must do after the table handled a request.
#[derive(Debug, PartialEq, Eq)]
pub enum TopicAction {
    /// Answer the requester now.
    Answer(Result<(), TopicError>),
    /// Ask PubSub to subscribe on the network; answer when it replies.
    NetworkSubscribe,
    /// Answer now, and tell PubSub that no local subscriber is left.
    AnswerAndNetworkUnsubscribe,
    /// Answer now, and ask PubSub to start advertising.
    AnswerAndStartAdvert,
    /// Answer now, and ask PubSub to stop advertising.
    AnswerAndStopAdvert,
    /// Answer now, and tell PubSub the requester validates the topic (`on`) or stops.
    AnswerAndValidator {
        /// Start or stop.
        on: bool,
    },
    /// Pass a validator's verdict to PubSub; no answer.
    PassVerdict,
}

/// The topic table.
#[derive(Default, Debug)]
pub struct TopicTable {
    topics: BTreeMap<TopicIdentity, LocalTopic>,
}

impl TopicTable {
    /// Looks up a topic.
    pub fn get(&self, topic: &TopicIdentity) -> Option<&LocalTopic> {
        self.topics.get(topic)
    }

    /// Number of topics.
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    /// Whether there are no topics.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// Applies `req` from `from`. `has_pubsub` says whether the node runs a PubSub engine.
    pub fn handle(
        &mut self,
        from: EngineIdentity,
        req: &TopicRequest,
        has_pubsub: bool,
    ) -> TopicAction {
        match *req {
            TopicRequest::Create {
                topic,
                scope,
                ref advert,
            } => {
                if self.topics.contains_key(&topic) {
                    return TopicAction::Answer(Err(TopicError::AlreadyExists));
                }
                self.topics.insert(
                    topic,
                    LocalTopic {
                        creator: Some(from),
                        scope,
                        subscribers: Vec::new(),
                    },
                );
                if scope != RoutingScope::Local && advert.is_some() && has_pubsub {
                    TopicAction::AnswerAndStartAdvert
                } else {
                    TopicAction::Answer(Ok(()))
                }
            }
            TopicRequest::Delete { topic, scope } => {
                let Some(t) = self.topics.get(&topic) else {
                    return TopicAction::Answer(Err(TopicError::UnknownTopic));
                };
                if t.creator != Some(from) {
                    return TopicAction::Answer(Err(TopicError::NotCreator));
                }
                let advertised = t.scope != RoutingScope::Local;
                self.topics.remove(&topic);
                if advertised && scope != RoutingScope::Local && has_pubsub {
                    TopicAction::AnswerAndStopAdvert
                } else {
                    TopicAction::Answer(Ok(()))
                }
            }
            TopicRequest::Subscribe { topic, scope } => match self.topics.get_mut(&topic) {
                Some(t) => {
                    if t.subscribers.contains(&from) {
                        TopicAction::Answer(Err(TopicError::AlreadySubscribed))
                    } else {
                        t.subscribers.push(from);
                        TopicAction::Answer(Ok(()))
                    }
                }
                None if scope == RoutingScope::Local => {
                    TopicAction::Answer(Err(TopicError::UnknownTopic))
                }
                None if !has_pubsub => TopicAction::Answer(Err(TopicError::NoPubSub)),
                None => TopicAction::NetworkSubscribe,
            },
            TopicRequest::Unsubscribe { topic, scope } => {
                let Some(t) = self.topics.get_mut(&topic) else {
                    return TopicAction::Answer(Err(TopicError::NotSubscribed));
                };
                let Some(pos) = t.subscribers.iter().position(|s| *s == from) else {
                    return TopicAction::Answer(Err(TopicError::NotSubscribed));
                };
                t.subscribers.remove(pos);
                let network_only = t.creator.is_none();
                if network_only && t.subscribers.is_empty() {
                    self.topics.remove(&topic);
                    if scope != RoutingScope::Local && has_pubsub {
                        return TopicAction::AnswerAndNetworkUnsubscribe;
                    }
                }
                TopicAction::Answer(Ok(()))
            }
            TopicRequest::Validate { on, .. } if has_pubsub => {
                TopicAction::AnswerAndValidator { on }
            }
            TopicRequest::Validate { .. } => TopicAction::Answer(Err(TopicError::NoPubSub)),
            TopicRequest::Validated { .. } => TopicAction::PassVerdict,
        }
    }

    /// Records a network subscription that PubSub confirmed: the topic now exists here with
    /// `subscriber` subscribed.
    pub fn network_subscribed(&mut self, topic: TopicIdentity, subscriber: EngineIdentity) {
        let t = self.topics.entry(topic).or_insert_with(|| LocalTopic {
            creator: None,
            scope: RoutingScope::Any,
            subscribers: Vec::new(),
        });
        if !t.subscribers.contains(&subscriber) {
            t.subscribers.push(subscriber);
        }
    }

    /// A verified advert of `topic` says its scope is `scope` (`Any` or `Domain(d)`): a topic
    /// known here only through a network subscription takes it. A topic created here keeps the
    /// scope its creator gave it (the Router checked it against the advert then).
    pub fn advert_scope(&mut self, topic: TopicIdentity, scope: RoutingScope) {
        if let Some(t) = self.topics.get_mut(&topic) {
            if t.creator.is_none() {
                t.scope = scope;
            }
        }
    }

    /// Subscribes `engine` to a topic whether or not it exists (the PubSub engine's own local
    /// subscription to the topics it carries).
    pub fn ensure_subscribed(&mut self, topic: TopicIdentity, engine: EngineIdentity) {
        self.network_subscribed(topic, engine);
    }

    /// Removes `engine` from every topic (it stopped). Topics it created stay until deleted.
    pub fn forget_engine(&mut self, engine: EngineIdentity) {
        for t in self.topics.values_mut() {
            t.subscribers.retain(|s| *s != engine);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: EngineIdentity = EngineIdentity([1; 32]);
    const B: EngineIdentity = EngineIdentity([2; 32]);
    const T: TopicIdentity = TopicIdentity([9; 32]);

    fn create(scope: RoutingScope) -> TopicRequest {
        TopicRequest::Create {
            topic: T,
            scope,
            advert: None,
        }
    }

    #[test]
    fn create_twice_fails() {
        let mut t = TopicTable::default();
        assert_eq!(
            t.handle(A, &create(RoutingScope::Local), false),
            TopicAction::Answer(Ok(()))
        );
        assert_eq!(
            t.handle(B, &create(RoutingScope::Local), false),
            TopicAction::Answer(Err(TopicError::AlreadyExists))
        );
    }

    #[test]
    fn only_the_creator_deletes() {
        let mut t = TopicTable::default();
        t.handle(A, &create(RoutingScope::Local), false);
        let del = TopicRequest::Delete {
            topic: T,
            scope: RoutingScope::Local,
        };
        assert_eq!(
            t.handle(B, &del, false),
            TopicAction::Answer(Err(TopicError::NotCreator))
        );
        assert!(t.get(&T).is_some());
        assert_eq!(t.handle(A, &del, false), TopicAction::Answer(Ok(())));
        assert!(t.get(&T).is_none());
        assert_eq!(
            t.handle(A, &del, false),
            TopicAction::Answer(Err(TopicError::UnknownTopic))
        );
    }

    #[test]
    fn subscribe_rules() {
        let mut t = TopicTable::default();
        let sub_local = TopicRequest::Subscribe {
            topic: T,
            scope: RoutingScope::Local,
        };
        let sub_any = TopicRequest::Subscribe {
            topic: T,
            scope: RoutingScope::Any,
        };
        assert_eq!(
            t.handle(B, &sub_local, true),
            TopicAction::Answer(Err(TopicError::UnknownTopic))
        );
        assert_eq!(
            t.handle(B, &sub_any, false),
            TopicAction::Answer(Err(TopicError::NoPubSub))
        );
        assert_eq!(t.handle(B, &sub_any, true), TopicAction::NetworkSubscribe);
        t.handle(A, &create(RoutingScope::Local), false);
        assert_eq!(t.handle(B, &sub_local, false), TopicAction::Answer(Ok(())));
        assert_eq!(
            t.handle(B, &sub_local, false),
            TopicAction::Answer(Err(TopicError::AlreadySubscribed))
        );
        let unsub = TopicRequest::Unsubscribe {
            topic: T,
            scope: RoutingScope::Local,
        };
        assert_eq!(t.handle(B, &unsub, false), TopicAction::Answer(Ok(())));
        assert_eq!(
            t.handle(B, &unsub, false),
            TopicAction::Answer(Err(TopicError::NotSubscribed))
        );
    }

    #[test]
    fn validation_needs_pubsub_and_verdicts_pass_through() {
        let mut t = TopicTable::default();
        let on = TopicRequest::Validate { topic: T, on: true };
        assert_eq!(
            t.handle(A, &on, false),
            TopicAction::Answer(Err(TopicError::NoPubSub))
        );
        assert_eq!(
            t.handle(A, &on, true),
            TopicAction::AnswerAndValidator { on: true }
        );
        let verdict = TopicRequest::Validated {
            topic: T,
            token: 7,
            verdict: Validation::Reject,
        };
        assert_eq!(t.handle(A, &verdict, true), TopicAction::PassVerdict);
        assert!(t.get(&T).is_none(), "validating creates no topic here");
    }

    #[test]
    fn last_network_subscriber_leaving_unsubscribes_upstream() {
        let mut t = TopicTable::default();
        t.network_subscribed(T, A);
        t.network_subscribed(T, B);
        let unsub = TopicRequest::Unsubscribe {
            topic: T,
            scope: RoutingScope::Any,
        };
        assert_eq!(t.handle(A, &unsub, true), TopicAction::Answer(Ok(())));
        assert_eq!(
            t.handle(B, &unsub, true),
            TopicAction::AnswerAndNetworkUnsubscribe
        );
        assert!(t.get(&T).is_none());
    }
}
