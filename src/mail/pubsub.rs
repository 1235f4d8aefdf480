//! System mail between a node's Router and its PubSub engine: what local subscriptions and
//! publications need from the network, and what the network brought. Not part of the engine
//! API: applications reach topics through topic requests ([`super::topic`]).

use crate::identity::{EngineIdentity, NodeIdentity, TopicIdentity};
use crate::wire::TopicAdvert;

use super::envelope::Message;

use super::topic::{TopicError, Validation};

/// A request from the Router to its node's PubSub engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PubSubRequest {
    /// Local engines want the topic's events from the network.
    Subscribe {
        /// The topic.
        topic: TopicIdentity,
    },
    /// No local engine wants them any more.
    Unsubscribe {
        /// The topic.
        topic: TopicIdentity,
    },
    /// This node publishes the topic: flood its advert and carry local publications out.
    StartAdvert {
        /// The signed advert (listing this node's PubSub engine as a publisher).
        advert: TopicAdvert,
    },
    /// Stop publishing the topic: PubSub floods this node's withdrawal.
    StopAdvert {
        /// The topic.
        topic: TopicIdentity,
    },
    /// A local engine validates the topic's remote events (`on`), or no longer does.
    Validator {
        /// The topic.
        topic: TopicIdentity,
        /// The validating engine.
        engine: EngineIdentity,
        /// Start or stop.
        on: bool,
    },
    /// A validator's verdict on the event it was shown as `token`.
    Validated {
        /// The validating engine.
        engine: EngineIdentity,
        /// The event's token.
        token: u64,
        /// The verdict.
        verdict: Validation,
    },
}

/// What the PubSub engine tells its Router.
#[derive(Clone, Debug)]
pub enum PubSubNotice {
    /// A network subscription is in place (or failed).
    Subscribed {
        /// The topic.
        topic: TopicIdentity,
        /// OK, or why not.
        result: Result<(), TopicError>,
    },
    /// A network subscription ended.
    Unsubscribed {
        /// The topic.
        topic: TopicIdentity,
    },
    /// A fresher advert arrived.
    AdvertReceived {
        /// The verified advert.
        advert: TopicAdvert,
    },
    /// Deliver an event's message to the topic's local subscribers.
    Deliver {
        /// The published message, built from the verified event (its origin names the
        /// publisher and the neighbour the event came from).
        message: Message,
    },
    /// Show a remote event to a validator before it is forwarded or delivered.
    Validate {
        /// The validating engine.
        validator: EngineIdentity,
        /// Names the event in the verdict.
        token: u64,
        /// The published message, built from the verified event (its destination is the topic;
        /// its origin names the publisher and the neighbour the event came from).
        message: Message,
    },
    /// A publisher withdrew from a topic.
    Withdrawn {
        /// The topic.
        topic: TopicIdentity,
        /// The publisher's PubSub engine.
        publisher: EngineIdentity,
        /// No publisher is left: the topic's routing state is gone.
        last: bool,
    },
    /// For a topic this node publishes: its children and how far each has acknowledged this
    /// node's events (the next sequence number it waits for).
    Progress {
        /// The topic.
        topic: TopicIdentity,
        /// `(child, next sequence number)`.
        children: Vec<(NodeIdentity, u64)>,
        /// Events published so far.
        published: u64,
    },
}

/// The parents of each topic this node is fed through (the neighbours its subscription went
/// to, towards the publishers), published by the PubSub engine and read by the Storage engine
/// to send `BlockSearchTopic` up a topic's tree. Cloning shares the same board.
///
/// Memory: one entry per topic with a route here — 32 bytes per parent (a few parents each).
#[derive(Clone, Debug, Default)]
pub struct TopicParents(
    std::sync::Arc<
        parking_lot::RwLock<std::collections::BTreeMap<TopicIdentity, Vec<NodeIdentity>>>,
    >,
);

impl TopicParents {
    /// An empty board.
    pub fn new() -> TopicParents {
        TopicParents::default()
    }

    /// The parents of `topic` (empty when this node has no route for it, or is a publisher).
    pub fn parents(&self, topic: &TopicIdentity) -> Vec<NodeIdentity> {
        self.0.read().get(topic).cloned().unwrap_or_default()
    }

    /// Sets the parents of `topic` (the PubSub engine's call); an empty list forgets it.
    pub fn set(&self, topic: TopicIdentity, parents: Vec<NodeIdentity>) {
        let mut map = self.0.write();
        if parents.is_empty() {
            map.remove(&topic);
        } else {
            map.insert(topic, parents);
        }
    }
}
