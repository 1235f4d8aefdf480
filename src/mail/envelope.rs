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
use crate::wire::event::Event;
use crate::wire::message::Unverified;
use crate::wire::{Destination, EngineMessage, MessageId, Protocol, Verified, WireError};

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
    /// A topic event from another node, signed by `publisher` (an authorized publisher of the
    /// topic; the signature was checked by this node's PubSub engine). The sender the message
    /// names is only claimed: see [`Sender::Publisher`].
    Topic {
        /// The publishing node's PubSub engine.
        publisher: EngineIdentity,
        /// The neighbour the event arrived from.
        via: NodeIdentity,
    },
}

/// Who sent a delivered message, and how far that is vouched for.
///
/// Code that acts on a sender's identity (access control, replies that matter) should take
/// [`Sender::verified`]; a topic event's inner sender is only what its publisher claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// An engine whose identity is established: an engine of this node (its mailbox identified
    /// it), or an engine of another node whose signature over this message was verified with
    /// its own key.
    Engine {
        /// The sending engine.
        engine: EngineIdentity,
        /// The node it runs on (for a remote sender, the authenticated peer it came from).
        node: NodeIdentity,
    },
    /// A topic event: `publisher` (an authorized publisher of the topic) signed the event, and
    /// vouches for nothing more than that it published it. `claimed` and `claimed_node` are
    /// what the published message names as its sender, unchecked: a publishing node can put
    /// any engine there.
    Publisher {
        /// The authorized publisher whose signature was verified.
        publisher: EngineIdentity,
        /// The sender the published message claims.
        claimed: EngineIdentity,
        /// The node the published message claims its sender runs on.
        claimed_node: NodeIdentity,
    },
}

impl Sender {
    /// The sending engine, if its identity was established (not for a topic event's claim).
    pub fn verified(&self) -> Option<EngineIdentity> {
        match self {
            Sender::Engine { engine, .. } => Some(*engine),
            Sender::Publisher { .. } => None,
        }
    }

    /// The engine the message names as its sender: verified for [`Sender::Engine`], only
    /// claimed for [`Sender::Publisher`]. The address to answer, not a proof.
    pub fn named(&self) -> EngineIdentity {
        match self {
            Sender::Engine { engine, .. } => *engine,
            Sender::Publisher { claimed, .. } => *claimed,
        }
    }

    /// The node the message names as its sender's: verified for [`Sender::Engine`], only
    /// claimed for [`Sender::Publisher`].
    pub fn named_node(&self) -> NodeIdentity {
        match self {
            Sender::Engine { node, .. } => *node,
            Sender::Publisher { claimed_node, .. } => *claimed_node,
        }
    }
}

/// A message delivered to an engine: from a local engine, verified, or carried by a verified
/// topic event.
///
/// Only three ways make one, and none takes unverified remote data:
///
/// ```compile_fail,E0308
/// use netmachine::{mail::Message, wire::message::Unverified};
/// fn forge(u: Unverified, via: netmachine::NodeIdentity) -> Message {
///     // An unverified message is not a `Verified<EngineMessage>`…
///     Message::remote(u, via)
/// }
/// ```
///
/// ```compile_fail,E0423
/// use netmachine::{mail::Message, wire::EngineMessage, wire::Verified};
/// fn forge(m: EngineMessage, via: netmachine::NodeIdentity) -> Message {
///     // …and only verification makes a `Verified`.
///     Message::remote(Verified(m), via)
/// }
/// ```
///
/// ```compile_fail,E0308
/// use netmachine::{mail::Message, pubsub::Event};
/// fn forge(e: Event, via: netmachine::NodeIdentity) -> Message {
///     // An event must be verified (against its publisher's key) before it becomes a message.
///     Message::from_event(&e, via).unwrap()
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Message {
    // Boxed so that an `Input` — and so every mailbox slot — stays small.
    inner: Box<EngineMessage>,
    origin: Origin,
}

/// Why a verified event's body is not a message for its topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventBodyError {
    /// The body does not decode as a message's signed fields.
    Malformed(WireError),
    /// The message inside is addressed to something other than the event's topic.
    WrongTopic,
}

impl std::fmt::Display for EventBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventBodyError::Malformed(e) => write!(f, "the body is not a message: {e}"),
            EventBodyError::WrongTopic => f.write_str("the message inside is for another topic"),
        }
    }
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

    /// The message a verified topic event carries, arrived from `via`. Its sender is reported
    /// as [`Sender::Publisher`]: the event's signature vouches for the publisher, not for the
    /// sender the message names.
    pub fn from_event(
        event: &Verified<Event>,
        via: NodeIdentity,
    ) -> Result<Message, EventBodyError> {
        let inner = Unverified::decode_fields(&event.body).map_err(EventBodyError::Malformed)?;
        if inner.dst != Destination::Topic(event.topic) {
            return Err(EventBodyError::WrongTopic);
        }
        Ok(Message {
            inner: Box::new(inner),
            origin: Origin::Topic {
                publisher: event.publisher,
                via,
            },
        })
    }

    /// `msg` signed by `sender` (the key of its `src` engine), encoded, decoded and verified as
    /// a receiving Router would, then delivered as from `via`: for tests that feed engines
    /// remote messages without a Router.
    #[cfg(test)]
    pub(crate) fn signed_remote(
        sender: &crate::identity::Keypair,
        mut msg: EngineMessage,
        via: NodeIdentity,
    ) -> Message {
        let mut wire = Vec::new();
        msg.sign_into_wire(sender, &mut wire, &mut Vec::new());
        let key = crate::identity::CheckedKey::parse(sender.engine_identity().as_bytes())
            .expect("an engine key");
        let verified = Unverified::decode(wire)
            .expect("a message just encoded")
            .verify(&key, &mut Vec::new())
            .expect("a message just signed");
        Message::remote(verified, via)
    }

    /// A message from another node whose signature was checked.
    pub fn remote(verified: Verified<EngineMessage>, via: NodeIdentity) -> Message {
        Message {
            inner: Box::new(verified.into_inner()),
            origin: Origin::Remote { via },
        }
    }

    /// Who sent the message, and how far that is vouched for.
    pub fn sender(&self) -> Sender {
        match self.origin {
            Origin::Local | Origin::Remote { .. } => Sender::Engine {
                engine: self.inner.src,
                node: self.inner.src_node,
            },
            Origin::Topic { publisher, .. } => Sender::Publisher {
                publisher,
                claimed: self.inner.src,
                claimed_node: self.inner.src_node,
            },
        }
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

    /// The whole message, as it was sent. Its `src` and `src_node` are verified only when
    /// [`Message::sender`] says so.
    pub(crate) fn as_engine_message(&self) -> &EngineMessage {
        &self.inner
    }

    /// The whole message, without copying. Its `src` and `src_node` are verified only when
    /// [`Message::sender`] says so.
    pub(crate) fn into_engine_message(self) -> EngineMessage {
        *self.inner
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
