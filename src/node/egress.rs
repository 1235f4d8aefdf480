//! [`EgressHandle`] (only with the `testing` feature): wire bytes handed straight to the node's
//! Transport for another node, as
//! they are — the outgoing counterpart of [`IngressHandle`](super::IngressHandle).

use crate::identity::NodeIdentity;
use crate::mail::{RemoteSend, RouteHeader};

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
            Some(t) => t.send(TransportMail::Send(RemoteSend { node, header, wire })),
            None => false,
        }
    }
}
