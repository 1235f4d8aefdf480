//! Topic requests from engines to their Router and the Router's answers (spec notes §5.1.1).

use crate::identity::TopicIdentity;
use crate::wire::{RoutingScope, TopicAdvert};

/// A topic request from a local engine to the Router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicRequest {
    /// Create a topic; with a non-local scope and an advert, PubSub advertises it.
    Create {
        /// The topic.
        topic: TopicIdentity,
        /// Whether it is advertised on the network (`Any`) or stays local.
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
        /// `Local`: only if the topic exists here; `Any`: also subscribe on the network.
        scope: RoutingScope,
    },
    /// Unsubscribe this engine from a topic.
    Unsubscribe {
        /// The topic.
        topic: TopicIdentity,
        /// Whether to unsubscribe on the network too when no local subscriber is left.
        scope: RoutingScope,
    },
}

impl TopicRequest {
    /// The topic the request is about.
    pub fn topic(&self) -> TopicIdentity {
        match self {
            TopicRequest::Create { topic, .. }
            | TopicRequest::Delete { topic, .. }
            | TopicRequest::Subscribe { topic, .. }
            | TopicRequest::Unsubscribe { topic, .. } => *topic,
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
        })
    }
}

impl std::error::Error for TopicError {}

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
        }
    }
}
