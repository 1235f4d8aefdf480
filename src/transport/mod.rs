//! The Transport: connections to other nodes over QUIC, and the requests and notifications
//! local engines exchange with it (spec notes §5.2.1).

pub mod control;
pub mod core;
pub mod frame;
pub(crate) mod quic;
mod raw;
pub(crate) mod tls;
pub(crate) mod udp;

pub use self::core::peers;
pub use raw::raw_bulk_transfer;

pub use tls::ALPN;

use std::net::SocketAddr;
use std::time::Duration;

use crate::identity::NodeIdentity;
use crate::router::RouteHeader;
use crate::wire::TransportPrefs;

/// Limits of the Transport, each with its default and the memory it bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportLimits {
    /// Largest frame (one message) accepted on a stream, checked on the length prefix before
    /// anything is buffered (default 8 MiB).
    pub max_frame_bytes: usize,
    /// Most bytes of incomplete frames buffered for one connection, over all its streams
    /// (default 64 MiB; at least `max_frame_bytes`). Reading a frame frees QUIC flow-control
    /// credit before the frame is complete, so without this a peer could grow partial frames
    /// on many streams without bound; a connection over it is closed as a protocol violation.
    pub max_partial_frame_bytes: usize,
    /// Most connections at once, inbound and outbound (default 1,024).
    pub max_connections: usize,
    /// Most connections from one IP address (default 64).
    pub max_connections_per_ip: usize,
    /// Most bytes of messages waiting for one peer: queued for a connection or sent and not yet
    /// acknowledged (default 32 MiB).
    pub max_peer_queue_bytes: usize,
    /// Most open ordered streams per connection (one per engine pair); the least recently used
    /// is finished when a new pair needs one (default 256).
    pub max_pair_streams: usize,
    /// Depth of the Transport's mailbox (default 65,536).
    pub mailbox_depth: usize,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            max_frame_bytes: 8 << 20,
            max_partial_frame_bytes: 64 << 20,
            max_connections: 1024,
            max_connections_per_ip: 64,
            max_peer_queue_bytes: 32 << 20,
            max_pair_streams: 256,
            mailbox_depth: 65_536,
        }
    }
}

/// How a node's Transport runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// UDP addresses to listen on. With none, the node still dials out from an ephemeral port.
    pub listen: Vec<SocketAddr>,
    /// Whether nodes that are not configured peers may connect (their identity is still proven
    /// by TLS). Default true.
    pub accept_unknown_peers: bool,
    /// Preferences for messages that set none and whose peer record sets none (default
    /// reliable, ordered, direct).
    pub default_tprefs: TransportPrefs,
    /// A connection with no traffic for this long is closed (default 10 s). Permanent
    /// connections send keep-alives at a third of it.
    pub idle_timeout: Duration,
    /// First redial delay after a failure; doubles per attempt (default 100 ms).
    pub backoff_initial: Duration,
    /// Longest redial delay (default 5 s).
    pub backoff_max: Duration,
    /// Limits.
    pub limits: TransportLimits,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            listen: Vec::new(),
            accept_unknown_peers: true,
            default_tprefs: TransportPrefs::RELIABLE_ORDERED,
            idle_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            limits: TransportLimits::default(),
        }
    }
}

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
    Identity(Box<crate::identity_store::IdentityEvent>),
    /// Messages the Router has finished with (admitted and delivered, or dropped): only now are
    /// they acknowledged to the peer that sent them.
    Processed(Vec<Receipt>),
    /// Shut down.
    Stop,
}

/// Identifies one received message frame, so the Router can tell the Transport when it is
/// done with it: the connection, the stream and the frame's position on that stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub(crate) conn: u64,
    pub(crate) stream: u64,
    pub(crate) seq: u64,
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
    #[allow(clippy::result_large_err)] // hands the mail back rather than dropping it
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
