//! The Transport: connections to other nodes over QUIC, and the requests and notifications
//! local engines exchange with it (spec notes §5.2.1).

pub(crate) mod tls;

use std::net::SocketAddr;

use crate::identity::NodeIdentity;
use crate::router::RouteHeader;

/// A request from a local engine to the Transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportRequest {
    /// Connect to `node` unless already connected.
    Connect {
        /// The node.
        node: NodeIdentity,
    },
    /// Disconnect from `node` if connected.
    Disconnect {
        /// The node.
        node: NodeIdentity,
    },
    /// List the connected nodes.
    ConnectedNodes,
    /// Receive connection notifications from now on.
    Subscribe,
}

/// How a connect request went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectResult {
    /// Already connected.
    AlreadyConnected,
    /// An address is known; connecting.
    Connecting,
    /// No address is known for the node.
    NoAddress,
}

/// Notifications and answers from the Transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportEvent {
    /// A connection to `node` is up (after TLS and the connect exchange).
    NodeConnected {
        /// The peer.
        node: NodeIdentity,
        /// Its address.
        addr: SocketAddr,
    },
    /// A connection attempt failed.
    NodeConnectFailed {
        /// The peer.
        node: NodeIdentity,
        /// The address tried.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A connection closed.
    NodeDisconnected {
        /// The peer.
        node: NodeIdentity,
        /// Its address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// Answer to [`TransportRequest::Connect`].
    Connect {
        /// The node.
        node: NodeIdentity,
        /// The outcome.
        result: ConnectResult,
    },
    /// Answer to [`TransportRequest::Disconnect`]: whether it was connected.
    Disconnect {
        /// The node.
        node: NodeIdentity,
        /// Whether a connection was closed.
        was_connected: bool,
    },
    /// Answer to [`TransportRequest::ConnectedNodes`].
    ConnectedNodes(Vec<(NodeIdentity, SocketAddr)>),
    /// The node runs no Transport, so the request cannot be served.
    NotRunning,
}

/// A signed message the Router hands to the Transport for another node.
#[derive(Clone, Debug)]
pub struct RemoteSend {
    /// The destination node.
    pub node: NodeIdentity,
    /// Routing metadata (the message itself is in `wire`).
    pub header: RouteHeader,
    /// The message's wire form.
    pub wire: Vec<u8>,
}

/// What the Transport's mailbox carries.
#[derive(Debug)]
pub(crate) enum TransportMail {
    /// A request from a local engine.
    Request {
        /// The engine that asked.
        from: crate::identity::EngineIdentity,
        /// The request.
        req: TransportRequest,
    },
    /// A message from the Router for another node.
    Send(RemoteSend),
    /// A Network Identity Store notification (adverts of peers).
    Identity(crate::identity_store::IdentityEvent),
    /// Shut down.
    Stop,
}

/// A handle to the Transport's mailbox that wakes its poll loop, coalescing wakes: the loop is
/// woken only if it has not been woken since it last drained the mailbox.
#[derive(Clone)]
pub(crate) struct TransportLink {
    tx: crossbeam_channel::Sender<TransportMail>,
    waker: std::sync::Arc<mio::Waker>,
    woken: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TransportLink {
    pub(crate) fn new(
        tx: crossbeam_channel::Sender<TransportMail>,
        waker: std::sync::Arc<mio::Waker>,
        woken: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> TransportLink {
        TransportLink { tx, waker, woken }
    }

    /// Queues `mail` (waiting while the mailbox is full) and wakes the loop if needed.
    /// Returns false if the Transport has stopped.
    pub(crate) fn send(&self, mail: TransportMail) -> bool {
        if self.tx.send(mail).is_err() {
            return false;
        }
        self.wake();
        true
    }

    /// Queues `mail` without waiting. Returns it back if the mailbox is full or closed.
    pub(crate) fn try_send(&self, mail: TransportMail) -> Result<(), TransportMail> {
        match self.tx.try_send(mail) {
            Ok(()) => {
                self.wake();
                Ok(())
            }
            Err(e) => Err(e.into_inner()),
        }
    }

    fn wake(&self) {
        if !self.woken.swap(true, std::sync::atomic::Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                log::error!("transport: wake failed: {e}");
            }
        }
    }
}
