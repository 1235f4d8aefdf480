//! The Transport: connections to other nodes, as an engine core — the sans-IO connection core
//! ([`core`]) with every connection policy, the control-stream and frame codecs, and the
//! Transport's configuration and limits (spec notes §5.2.1). The requests and notifications
//! engines exchange with it are in the vocabulary ([`crate::mail::transport`]).
//!
//! [`tcp_mux`] is the record layer that carries the same streams over TLS over TCP.
//!
//! The QUIC driver that moves bytes between sockets, quiche and this core is part of the wiring
//! layer (`node::quic`): quiche reads the clock itself, so no quiche call is made here.

pub mod control;
pub mod core;
pub mod frame;
pub mod tcp_mux;

pub use self::core::peers;

/// The ALPN protocol id of netmachine's node-to-node protocol, version 1 (docs/wire.md).
pub const ALPN: &[u8] = b"netmachine/1";

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::mail::transport::{ConnectResult, TransportEvent, TransportRequest};
pub use crate::mail::{Receipt, RemoteSend};
use crate::wire::{TransportKind, TransportPrefs};

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
    /// UDP addresses to listen on for QUIC. With none, the node still dials out from an
    /// ephemeral port.
    pub listen: Vec<SocketAddr>,
    /// TCP addresses to listen on for TLS over TCP, the fallback for networks that block UDP
    /// (default none; the node still dials TCP addresses of peers).
    pub listen_tcp: Vec<SocketAddr>,
    /// The transports this node dials, most preferred first (default QUIC, then TLS over TCP).
    /// A peer's addresses of other kinds are ignored; a preferred transport gives way to the
    /// next once its addresses are failing (see [`peers`]).
    pub transports: Vec<TransportKind>,
    /// A dial not ready (TLS and hello) within this long is abandoned and counts as a failed
    /// attempt (default 5 s).
    pub connect_timeout: Duration,
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
            listen_tcp: Vec::new(),
            transports: vec![TransportKind::Quic, TransportKind::Tcp],
            connect_timeout: Duration::from_secs(5),
            accept_unknown_peers: true,
            default_tprefs: TransportPrefs::RELIABLE_ORDERED,
            idle_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            limits: TransportLimits::default(),
        }
    }
}
