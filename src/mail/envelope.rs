//! What an engine receives ([`Input`]) and what it asks for ([`Output`]), and the message
//! envelopes they carry.
//!
//! These are the one vocabulary every engine speaks: the runtime delivers `Input`s and carries
//! out `Output`s without knowing which engine serves a request. Adding an engine with requests
//! of its own adds its request and event types here (in a module of their own) and a variant to
//! `Input` and `Output`; the runtime does not change.

use std::time::Instant;

use crate::identity::{EngineIdentity, NodeIdentity};
use crate::time::Timestamp;
use crate::wire::{Destination, EngineMessage, MessageId, Protocol, Verified};

use super::identity::{IdentityEvent, IdentityRequest};
use super::pubsub::{PubSubNotice, PubSubRequest};
use super::reason::DropReason;
use super::topic::{TopicEvent, TopicRequest};
use super::transport::{TransportEvent, TransportRequest};

/// Where a delivered message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An engine of this node (not signed; its mailbox identified the sender).
    Local,
    /// Another node, over a connection authenticated as `via`; the signature was verified.
    Remote {
        /// The peer the message arrived from.
        via: NodeIdentity,
    },
    /// A topic event from another node: the message's sender is vouched for by the signature of
    /// `publisher`, an authorized publisher of the topic, checked by this node's PubSub engine.
    Topic {
        /// The publishing node's PubSub engine.
        publisher: EngineIdentity,
        /// The neighbour the event arrived from.
        via: NodeIdentity,
    },
}

/// A message delivered to an engine: either from a local engine, or verified.
#[derive(Clone, Debug)]
pub struct Message {
    // Boxed so that an `Input` — and so every mailbox slot — stays small.
    inner: Box<EngineMessage>,
    origin: Origin,
}

impl Message {
    /// A message from an engine of this node.
    #[cfg(test)]
    pub(crate) fn local(inner: EngineMessage) -> Message {
        Message::local_boxed(Box::new(inner))
    }

    /// A message from an engine of this node, already boxed.
    pub(crate) fn local_boxed(inner: Box<EngineMessage>) -> Message {
        Message {
            inner,
            origin: Origin::Local,
        }
    }

    /// A topic event's message, checked by the PubSub engine.
    pub(crate) fn from_topic(
        inner: EngineMessage,
        publisher: EngineIdentity,
        via: NodeIdentity,
    ) -> Message {
        Message {
            inner: Box::new(inner),
            origin: Origin::Topic { publisher, via },
        }
    }

    /// A message from another node whose signature was checked.
    pub fn remote(verified: Verified<EngineMessage>, via: NodeIdentity) -> Message {
        Message {
            inner: Box::new(verified.into_inner()),
            origin: Origin::Remote { via },
        }
    }

    /// The sending engine.
    pub fn src(&self) -> EngineIdentity {
        self.inner.src
    }

    /// The node the sending engine runs on.
    pub fn src_node(&self) -> NodeIdentity {
        self.inner.src_node
    }

    /// Where the message was addressed.
    pub fn dst(&self) -> Destination {
        self.inner.dst
    }

    /// The sender's id for this message.
    pub fn id(&self) -> MessageId {
        self.inner.id
    }

    /// The id of the message this one answers, if any.
    pub fn reply_to(&self) -> Option<MessageId> {
        self.inner.reply_to
    }

    /// What the body is.
    pub fn protocol(&self) -> Protocol {
        self.inner.protocol
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }

    /// The expiry the sender set.
    pub fn expiry(&self) -> Option<Timestamp> {
        self.inner.expiry
    }

    /// Where the message came from.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The whole message.
    pub fn as_engine_message(&self) -> &EngineMessage {
        &self.inner
    }

    /// The body, without copying.
    pub fn into_body(self) -> Vec<u8> {
        self.inner.body
    }
}

/// A message this engine sent that could not be delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undeliverable {
    /// The id the message was sent with.
    pub id: MessageId,
    /// Where it was going.
    pub dst: Destination,
    /// Why it was dropped.
    pub reason: DropReason,
}

/// Everything an engine can receive.
#[derive(Debug)]
pub enum Input {
    /// A message from another engine.
    Message(Message),
    /// A message this engine sent was dropped (sent with `notify_undeliverable`).
    Undeliverable(Undeliverable),
    /// The Router's answer to a topic request.
    Topic(TopicEvent),
    /// The Network Identity Store's answer to a request, or a change it notifies.
    Identity(Box<IdentityEvent>),
    /// A connection event or answer from the Transport.
    Transport(TransportEvent),
    /// A timer set with `Context::set_timer` expired.
    Timer(u64),
    /// Mail between built-in engines (the Router and the PubSub engine). Opaque: an
    /// application engine never receives it.
    System(System),
}

/// A message an engine asked to send.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The message (unsigned; the shell signs it if it must leave the node). Boxed: it moves
    /// through mailboxes to its destination without being copied.
    pub msg: Box<EngineMessage>,
    /// Whether the sender wants [`Input::Undeliverable`] on failure.
    pub notify_undeliverable: bool,
}

/// What an engine asks its shell to do.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send a message.
    Send(Outgoing),
    /// A topic request to the Router.
    Topic(TopicRequest),
    /// A request to the Network Identity Store.
    Identity(IdentityRequest),
    /// A request to the Transport.
    Transport(TransportRequest),
    /// Fire [`Input::Timer`] with `token` at `at` (replaces an earlier timer with that token).
    SetTimer {
        /// The token the timer fires with.
        token: u64,
        /// When.
        at: Instant,
    },
    /// Cancel the timer with `token`.
    CancelTimer {
        /// The token.
        token: u64,
    },
    /// Stop this engine.
    Stop,
    /// Mail between built-in engines (see [`System`]); only crate code can make it.
    System(System),
}

/// Mail between built-in engines of a node — today the Router's requests to its PubSub engine
/// and PubSub's notices back. It travels through the same mailboxes as everything else but is
/// not part of the engine API: its contents are visible only inside the crate, and only the
/// engines it is meant for receive it.
#[derive(Clone, Debug)]
pub struct System(pub(crate) SystemMail);

/// What [`System`] mail carries.
#[derive(Clone, Debug)]
pub(crate) enum SystemMail {
    /// From the Router to its PubSub engine.
    PubSubRequest(Box<PubSubRequest>),
    /// From the PubSub engine to its Router.
    PubSubNotice(Box<PubSubNotice>),
}

impl From<TopicRequest> for Output {
    fn from(req: TopicRequest) -> Output {
        Output::Topic(req)
    }
}

impl From<IdentityRequest> for Output {
    fn from(req: IdentityRequest) -> Output {
        Output::Identity(req)
    }
}

impl From<TransportRequest> for Output {
    fn from(req: TransportRequest) -> Output {
        Output::Transport(req)
    }
}
