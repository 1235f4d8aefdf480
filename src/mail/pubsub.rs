//! System mail between a node's Router and its PubSub engine: what local subscriptions and
//! publications need from the network, and what the network brought. Not part of the engine
//! API: applications reach topics through topic requests ([`super::topic`]).

use crate::identity::{NodeIdentity, TopicIdentity};
use crate::wire::TopicAdvert;

use super::envelope::Message;

use super::topic::TopicError;

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
    /// Stop publishing the topic.
    StopAdvert {
        /// The topic.
        topic: TopicIdentity,
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
