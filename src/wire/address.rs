//! Transport addresses: how a node is reached (QUIC over UDP, or TLS over TCP), as adverts
//! carry them (docs/wire.md §6.1), and the weights a node advertises its own addresses with.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bincode::{Decode, Encode};

/// An IP address on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum IpAddress {
    /// IPv4.
    V4([u8; 4]),
    /// IPv6.
    V6([u8; 16]),
}

/// How to reach a node. The certificate either kind of address presents is made from the node
/// key, so the node identity is the key that authenticates the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum TransportAddress {
    /// QUIC (TLS 1.3) over UDP.
    Quic {
        /// IP address.
        ip: IpAddress,
        /// UDP port.
        port: u16,
    },
    /// TLS 1.3 over TCP, carrying the same streams and datagrams in netmachine's record layer
    /// (docs/wire.md §6.1.1): the fallback for networks that block UDP.
    Tcp {
        /// IP address.
        ip: IpAddress,
        /// TCP port.
        port: u16,
    },
}

/// The kinds of [`TransportAddress`]: the transport protocol an address is reached with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportKind {
    /// QUIC over UDP.
    Quic,
    /// TLS 1.3 over TCP.
    Tcp,
}

impl TransportKind {
    /// The name used in configuration files and address texts (`quic`, `tcp`).
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Quic => "quic",
            TransportKind::Tcp => "tcp",
        }
    }
}

fn ip_address(addr: SocketAddr) -> IpAddress {
    match addr.ip() {
        IpAddr::V4(v4) => IpAddress::V4(v4.octets()),
        IpAddr::V6(v6) => IpAddress::V6(v6.octets()),
    }
}

impl TransportAddress {
    /// The QUIC address at `addr`.
    pub fn quic(addr: SocketAddr) -> TransportAddress {
        TransportAddress::Quic {
            ip: ip_address(addr),
            port: addr.port(),
        }
    }

    /// The TLS-over-TCP address at `addr`.
    pub fn tcp(addr: SocketAddr) -> TransportAddress {
        TransportAddress::Tcp {
            ip: ip_address(addr),
            port: addr.port(),
        }
    }

    /// The address of `kind` at `addr`.
    pub fn of_kind(kind: TransportKind, addr: SocketAddr) -> TransportAddress {
        match kind {
            TransportKind::Quic => TransportAddress::quic(addr),
            TransportKind::Tcp => TransportAddress::tcp(addr),
        }
    }

    /// The transport protocol the address is reached with.
    pub fn kind(&self) -> TransportKind {
        match self {
            TransportAddress::Quic { .. } => TransportKind::Quic,
            TransportAddress::Tcp { .. } => TransportKind::Tcp,
        }
    }

    /// The socket address (UDP for QUIC, TCP for TLS over TCP).
    pub fn socket_addr(&self) -> SocketAddr {
        let (TransportAddress::Quic { ip, port } | TransportAddress::Tcp { ip, port }) = *self;
        let ip = match ip {
            IpAddress::V4(o) => IpAddr::V4(Ipv4Addr::from(o)),
            IpAddress::V6(o) => IpAddr::V6(Ipv6Addr::from(o)),
        };
        SocketAddr::new(ip, port)
    }
}

impl std::fmt::Display for TransportAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.kind().name(), self.socket_addr())
    }
}

/// The weight a node's adverts give its QUIC addresses.
pub const QUIC_WEIGHT: u8 = 100;
/// The weight a node's adverts give its TLS-over-TCP addresses: lower than QUIC's, so that a
/// peer dials TCP only when QUIC keeps failing or its own preferences put TCP first.
pub const TCP_WEIGHT: u8 = 50;

/// The advertised addresses of a node listening for QUIC on `quic` and for TLS over TCP on
/// `tcp`: QUIC first, each kind with its weight ([`QUIC_WEIGHT`], [`TCP_WEIGHT`]).
pub fn listen_addresses(quic: &[SocketAddr], tcp: &[SocketAddr]) -> Vec<(TransportAddress, u8)> {
    quic.iter()
        .map(|a| (TransportAddress::quic(*a), QUIC_WEIGHT))
        .chain(tcp.iter().map(|a| (TransportAddress::tcp(*a), TCP_WEIGHT)))
        .collect()
}
