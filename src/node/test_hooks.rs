//! Test and benchmark hooks, compiled only with the `testing` feature: [`IngressHandle`] feeds
//! wire messages to the Router as from a trusted peer, [`EgressHandle`] hands wire bytes
//! straight to the Transport for another node. Both bypass what a deployed node relies on (the
//! TLS proof of the peer, signing by the sending engine), so no normal build has them.

use crate::identity::NodeIdentity;
use crate::mail::{RemoteSend, RouteHeader};

use crossbeam_channel::Sender;

use super::router_shell::RouterMail;
use super::transport_link::{TransportLink, TransportMail};

/// Hands wire messages to the node's Transport for another node, as if the Router had routed
/// them: for tests of hostile peers (forgeries, replays, malformed messages sent over real
/// connections), and for custom signers. Nothing checks the bytes on this side — the receiving
/// node judges them, and may cut this node off for them.
#[derive(Clone)]
pub struct EgressHandle {
    transport: Option<TransportLink>,
}

impl EgressHandle {
    pub(super) fn new(transport: Option<TransportLink>) -> EgressHandle {
        EgressHandle { transport }
    }

    /// Queues `wire` for `node`, placed on streams or datagrams by `header`'s preferences and
    /// dropped at its expiry like any message (waits while the Transport's mailbox is full).
    /// Returns false if the node runs no Transport or it has stopped.
    pub fn send(&self, node: NodeIdentity, header: RouteHeader, wire: Vec<u8>) -> bool {
        match &self.transport {
            Some(t) => t.send(TransportMail::Send(RemoteSend::message(node, header, wire))),
            None => false,
        }
    }
}

/// Feeds wire messages to the Router as if the Transport had received them from a peer — for
/// tests and benchmarks only. The peer identity is trusted as authenticated without any proof,
/// so it exists only with the `testing` feature, never in a deployed node.
#[derive(Clone)]
pub struct IngressHandle {
    router: Sender<RouterMail>,
}

impl IngressHandle {
    /// Queues one wire message from `peer` (waits while the Router's mailbox is full). Returns
    /// false if the node has stopped.
    pub fn deliver(&self, peer: NodeIdentity, wire: Vec<u8>) -> bool {
        self.router
            .send(RouterMail::Remote {
                peer,
                wire,
                relay: false,
                receipt: None,
            })
            .is_ok()
    }

    /// Queues one relay layer from `peer`, as if it had arrived in a `RELAY` frame.
    pub fn deliver_relay(&self, peer: NodeIdentity, layer: Vec<u8>) -> bool {
        self.router
            .send(RouterMail::Remote {
                peer,
                wire: layer,
                relay: true,
                receipt: None,
            })
            .is_ok()
    }
}

impl super::Node {
    /// A handle to send wire bytes to other nodes as they are (see [`EgressHandle`]; only
    /// with the `testing` feature).
    pub fn egress(&self) -> EgressHandle {
        EgressHandle::new(self.links.transport.clone())
    }

    /// A handle to feed wire messages into the Router's ingress (see [`IngressHandle`]; only
    /// with the `testing` feature).
    pub fn ingress(&self) -> IngressHandle {
        IngressHandle {
            router: self.links.router.clone(),
        }
    }
}
