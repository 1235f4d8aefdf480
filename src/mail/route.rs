//! The envelopes of routing: what the Router and the Transport know about a signed message
//! without decoding it, whom to tell when a delivery fails, and the receipt that ties a received
//! frame to its acknowledgement.

use crate::identity::{EngineIdentity, NodeIdentity};
use crate::time::Timestamp;
use crate::wire::{
    Destination, EngineMessage, MessageId, RoutingPrefs, RoutingScope, TransportPrefs,
};

use super::envelope::Outgoing;

/// What the Router and Transport need to know about a signed message without decoding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteHeader {
    /// The sending engine.
    pub src: EngineIdentity,
    /// The destination.
    pub dst: Destination,
    /// The message id.
    pub id: MessageId,
    /// When to give up.
    pub expiry: Option<Timestamp>,
    /// Routing preferences.
    pub rprefs: Option<RoutingPrefs>,
    /// Transport preferences.
    pub tprefs: Option<TransportPrefs>,
    /// Whether the sender wants to hear about a drop.
    pub notify: bool,
}

impl RouteHeader {
    /// The header of `msg`.
    pub fn of(msg: &EngineMessage, notify: bool) -> RouteHeader {
        RouteHeader {
            src: msg.src,
            dst: msg.dst,
            id: msg.id,
            expiry: msg.expiry,
            rprefs: msg.rprefs,
            tprefs: msg.tprefs,
            notify,
        }
    }

    /// The routing scope (`Any` when the message sets none).
    pub fn scope(&self) -> RoutingScope {
        self.rprefs.map(|p| p.scope).unwrap_or(RoutingScope::Any)
    }
}

/// A message from a local engine.
#[derive(Debug)]
pub enum Outbound {
    /// Unsigned: the sender's shell found the destination on this node.
    Local(Outgoing),
    /// Signed by the sender's shell, ready for the wire.
    Signed {
        /// Routing metadata.
        header: RouteHeader,
        /// The wire form.
        wire: Vec<u8>,
    },
}

impl Outbound {
    /// What a sending engine's shell hands to the Router: `out` as it is when it `stays` on the
    /// node, otherwise signed with the engine's `key` into wire form (`wire` is taken, `scratch`
    /// reused) — signing happens on the sender's thread, never on the Router's.
    pub fn prepare(
        mut out: Outgoing,
        stays: bool,
        key: &crate::identity::Keypair,
        wire: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Outbound {
        if stays {
            return Outbound::Local(out);
        }
        let header = RouteHeader::of(&out.msg, out.notify_undeliverable);
        out.msg.sign_into_wire(key, wire, scratch);
        let wire = std::mem::replace(wire, Vec::with_capacity(256));
        Outbound::Signed { header, wire }
    }
}

/// Whom to tell if a delivery fails.
#[derive(Clone, Copy, Debug)]
pub struct Bounce {
    /// The local sender.
    pub src: EngineIdentity,
    /// The message id.
    pub id: MessageId,
    /// Its destination.
    pub dst: Destination,
}

/// A signed message the Router hands to the Transport for another node.
#[derive(Clone, Debug)]
pub struct RemoteSend {
    /// The destination node.
    pub node: NodeIdentity,
    /// Routing metadata (the message itself is in `wire`).
    pub header: RouteHeader,
    /// The message's wire form — or, for a relay frame, the relay layer sealed to `node`.
    pub wire: Vec<u8>,
    /// Set when `wire` is a relay layer (docs/wire.md §12G), sent as a `RELAY` frame on a
    /// reliable ordered stream whatever the header's preferences say. Boxed: relay frames are
    /// the exception, and every slot of the Transport's mailbox holds a `RemoteSend`.
    pub relay: Option<Box<RelayFrame>>,
}

impl RemoteSend {
    /// A signed message for `node`, sent directly.
    pub fn message(node: NodeIdentity, header: RouteHeader, wire: Vec<u8>) -> RemoteSend {
        RemoteSend {
            node,
            header,
            wire,
            relay: None,
        }
    }
}

/// What the Transport needs to know of a relay frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayFrame {
    /// On a relay node, the receipt of the frame this one forwards: the Transport releases it
    /// (so the previous hop is acknowledged) once the next hop has acknowledged this frame, or
    /// once this frame is dropped. Acknowledgements so travel back along the path, and the
    /// source's Transport hears of the destination's, as for a direct message.
    pub upstream: Option<Receipt>,
}

/// Identifies one received message frame, so the Router can tell the Transport when it is
/// done with it: the connection, the stream and the frame's position on that stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub(crate) conn: u64,
    pub(crate) stream: u64,
    pub(crate) seq: u64,
}
