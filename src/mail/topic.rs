//! Topic requests from engines to their Router and the Router's answers (spec notes §5.1.1).

use crate::identity::{EngineIdentity, NodeIdentity, TopicIdentity};
use crate::wire::{EngineMessage, RoutingScope, TopicAdvert};

/// An application validator's verdict on a topic event ([`TopicEvent::Validate`]), as gossipsub's
/// `report_message_validation_result`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// Forward and deliver it.
    Accept,
    /// Neither forward nor deliver it, and count it against the neighbour it came from.
    Reject,
    /// Neither forward nor deliver it, without blame.
    Ignore,
}

/// A topic request from a local engine to the Router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicRequest {
    /// Create a topic; with a non-local scope and an advert, PubSub advertises it.
    Create {
        /// The topic.
        topic: TopicIdentity,
        /// Whether it is advertised on the network (`Any`), only among the members of a domain
        /// (`Domain(d)`: this node must be a member, and the advert's `scope` must be
        /// `Some(d)`), or stays local.
        scope: RoutingScope,
        /// The signed advert to send when the scope allows.
        advert: Option<TopicAdvert>,
    },
    /// Delete a topic this engine created.
    Delete {
        /// The topic.
        topic: TopicIdentity,
        /// Whether to stop advertising it on the network too.
        scope: RoutingScope,
    },
    /// Subscribe this engine to a topic.
    Subscribe {
        /// The topic.
        topic: TopicIdentity,
        /// `Local`: only if the topic exists here; `Any`: also subscribe on the network;
        /// `Domain(d)`: as `Any`, refused (`NotMember`) unless this node is a member of `d`.
        scope: RoutingScope,
    },
    /// Unsubscribe this engine from a topic.
    Unsubscribe {
        /// The topic.
        topic: TopicIdentity,
        /// Whether to unsubscribe on the network too when no local subscriber is left.
        scope: RoutingScope,
    },
    /// Validate (`on`) the topic's events from the network before this node forwards or
    /// delivers them, or stop doing so. Each event then comes as [`TopicEvent::Validate`], to be
    /// answered with [`TopicRequest::Validated`]. Answered with [`TopicEvent::Validating`].
    Validate {
        /// The topic.
        topic: TopicIdentity,
        /// Start (true) or stop.
        on: bool,
    },
    /// The verdict on a [`TopicEvent::Validate`] (not answered).
    Validated {
        /// The topic.
        topic: TopicIdentity,
        /// The token of the event.
        token: u64,
        /// The verdict.
        verdict: Validation,
    },
}

impl TopicRequest {
    /// The topic the request is about.
    pub fn topic(&self) -> TopicIdentity {
        match self {
            TopicRequest::Create { topic, .. }
            | TopicRequest::Delete { topic, .. }
            | TopicRequest::Subscribe { topic, .. }
            | TopicRequest::Unsubscribe { topic, .. }
            | TopicRequest::Validate { topic, .. }
            | TopicRequest::Validated { topic, .. } => *topic,
        }
    }
}

/// Why a topic request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicError {
    /// Create: the topic already exists.
    AlreadyExists,
    /// The topic does not exist here (and the request's scope did not allow looking further).
    UnknownTopic,
    /// Delete: only the engine that created the topic may delete it.
    NotCreator,
    /// Subscribe: already subscribed.
    AlreadySubscribed,
    /// Unsubscribe: was not subscribed.
    NotSubscribed,
    /// The request needs the network, and this node runs no PubSub engine.
    NoPubSub,
    /// The network subscription failed or timed out.
    NetworkFailed,
    /// The request is scoped to a domain (`RoutingScope::Domain`, or the topic's advert names
    /// one) and this node is not a member of it, as its replica of the membership knows.
    NotMember,
    /// Create: the request's scope and its advert's `scope` disagree (a domain-scoped topic
    /// needs `scope: Domain(d)` and an advert signed with `scope: Some(d)`, and only then).
    ScopeMismatch,
}

impl std::fmt::Display for TopicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TopicError::AlreadyExists => "the topic already exists",
            TopicError::UnknownTopic => "the topic does not exist on this node",
            TopicError::NotCreator => "only the engine that created the topic may delete it",
            TopicError::AlreadySubscribed => "already subscribed",
            TopicError::NotSubscribed => "not subscribed",
            TopicError::NoPubSub => "this node runs no PubSub engine",
            TopicError::NetworkFailed => "the network subscription failed",
            TopicError::NotMember => "the topic is scoped to a domain this node is not a member of",
            TopicError::ScopeMismatch => {
                "the request's scope and the advert's domain scope disagree"
            }
        })
    }
}

impl std::error::Error for TopicError {}

/// A topic event shown to a validator ([`TopicEvent::Validate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToValidate {
    /// The topic.
    pub topic: TopicIdentity,
    /// Names the event in the answer.
    pub token: u64,
    /// The authorized publisher that signed it.
    pub publisher: EngineIdentity,
    /// The neighbour it arrived from.
    pub via: NodeIdentity,
    /// The published message.
    pub message: EngineMessage,
}

/// The Router's answer to a [`TopicRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicEvent {
    /// Answer to `Create`.
    Created {
        /// The topic.
        topic: TopicIdentity,
        /// OK, or why not.
        result: Result<(), TopicError>,
    },
    /// Answer to `Delete`.
    Deleted {
        /// The topic.
        topic: TopicIdentity,
        /// OK, or why not.
        result: Result<(), TopicError>,
    },
    /// Answer to `Subscribe`.
    Subscribed {
        /// The topic.
        topic: TopicIdentity,
        /// OK, or why not.
        result: Result<(), TopicError>,
    },
    /// Answer to `Unsubscribe`.
    Unsubscribed {
        /// The topic.
        topic: TopicIdentity,
        /// OK, or why not.
        result: Result<(), TopicError>,
    },
    /// A fresher advert for a topic this engine is subscribing to arrived from the network.
    AdvertReceived {
        /// The verified advert.
        advert: Box<TopicAdvert>,
    },
    /// For the creator of a topic this node publishes: the subscribing peers and how far each
    /// has acknowledged this node's events.
    Progress {
        /// The topic.
        topic: TopicIdentity,
        /// `(peer, next sequence number it waits for)`.
        peers: Vec<(crate::identity::NodeIdentity, u64)>,
        /// Events published so far.
        published: u64,
    },
    /// Answer to `Validate`.
    Validating {
        /// The topic.
        topic: TopicIdentity,
        /// OK, or why not.
        result: Result<(), TopicError>,
    },
    /// For a validator of the topic: an event from the network, neither forwarded nor delivered
    /// until every validator accepts it. Answer with [`TopicRequest::Validated`] and its `token`
    /// within the node's validation timeout (1 s by default), after which it is ignored.
    Validate(Box<ToValidate>),
    /// A publisher of a topic this engine subscribes to withdrew (its topic was deleted).
    Withdrawn {
        /// The topic.
        topic: TopicIdentity,
        /// The publisher's PubSub engine.
        publisher: EngineIdentity,
        /// No publisher of the topic is left: this node dropped its routing state.
        last: bool,
    },
}

impl TopicEvent {
    /// The answer to `req` with `result`.
    pub fn answer(req: &TopicRequest, result: Result<(), TopicError>) -> TopicEvent {
        let topic = req.topic();
        match req {
            TopicRequest::Create { .. } => TopicEvent::Created { topic, result },
            TopicRequest::Delete { .. } => TopicEvent::Deleted { topic, result },
            TopicRequest::Subscribe { .. } => TopicEvent::Subscribed { topic, result },
            TopicRequest::Unsubscribe { .. } => TopicEvent::Unsubscribed { topic, result },
            // `Validated` is never answered; were it, it would be as `Validate`.
            TopicRequest::Validate { .. } | TopicRequest::Validated { .. } => {
                TopicEvent::Validating { topic, result }
            }
        }
    }
}
