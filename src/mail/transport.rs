//! Requests from engines to the Transport, and its answers and connection notifications
//! (spec notes §5.2.1).

use std::net::SocketAddr;
use std::time::Duration;

use crate::identity::NodeIdentity;
use crate::mail::DropReason;

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
    /// The node is refused: banned (trust 0) or cut off for misbehaving, for its backoff.
    Refused,
}

/// The Router's order to the Transport to cut a misbehaving peer off: close its connections
/// with `MISBEHAVING` (0x8), and neither dial it nor accept it for `backoff`. Sent once the
/// peer has sent `bad_messages_before_disconnect` messages that failed verification; the
/// Transport counts it (`peers_cut_off`) and logs it unless the peer is cut off already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CutOff {
    /// The peer.
    pub node: NodeIdentity,
    /// Bad messages counted from it since it was last cut off (or first seen).
    pub bad_messages: u32,
    /// Why the last of them failed.
    pub reason: DropReason,
    /// How long it is neither dialled nor accepted.
    pub backoff: Duration,
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
