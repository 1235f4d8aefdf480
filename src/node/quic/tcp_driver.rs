//! The Transport thread's TLS-over-TCP half: listening sockets, accepting and dialling TCP
//! connections, pumping them on socket readiness and at their deadlines, and servicing them
//! through the same core as the QUIC connections (the core's drain contract, step 2).
//!
//! Tokens: a TCP listener is `LISTENER_BASE + index`, a TCP connection `CONN_BASE + id` (the
//! core's connection id); UDP sockets keep their index.

use std::cmp::Reverse;
use std::io;
use std::net::SocketAddr;

use mio::net::TcpListener;
use mio::{Interest, Poll, Token};

use super::super::tcp::TcpConn;
use super::Driver;
use crate::identity::NodeIdentity;
use crate::runtime::stats::Fault;
use crate::time::Now;
use crate::transport::core::peers::ConnId;
use crate::wire::TransportAddress;

/// First token of the TCP listeners.
pub(super) const LISTENER_BASE: usize = 1 << 30;
/// First token of the TCP connections.
pub(super) const CONN_BASE: usize = 1 << 31;

/// A TCP connection and its current deadline.
pub(super) struct TcpSlot {
    pub(super) conn: TcpConn,
    pub(super) deadline: Option<std::time::Instant>,
}

/// Binds a non-blocking TCP listener on `addr` and registers it as listener `index`.
pub(super) fn open_listener(
    poll: &Poll,
    addr: SocketAddr,
    index: usize,
) -> io::Result<(TcpListener, SocketAddr)> {
    let mut listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    poll.registry().register(
        &mut listener,
        Token(LISTENER_BASE + index),
        Interest::READABLE,
    )?;
    Ok((listener, local))
}

/// What a ready token is.
pub(super) enum Ready {
    /// A UDP socket, by index.
    Udp(usize),
    /// A TCP listener, by index.
    Listener(usize),
    /// A TCP connection, by core id.
    Tcp(ConnId),
}

/// Which socket `token` names.
pub(super) fn classify(token: Token) -> Ready {
    match token.0 {
        t if t >= CONN_BASE => Ready::Tcp((t - CONN_BASE) as ConnId),
        t if t >= LISTENER_BASE => Ready::Listener(t - LISTENER_BASE),
        t => Ready::Udp(t),
    }
}

impl Driver {
    /// Accepts every pending connection on listener `index` that the core admits.
    pub(super) fn accept_tcp(&mut self, index: usize, now: Now) {
        loop {
            let Some((listener, _)) = self.tcp_listeners.get(index) else {
                return;
            };
            let (stream, from) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.stats.fault(Fault::AcceptFailed);
                    log::warn!("transport: tcp accept on listener {index} failed: {e}");
                    return;
                }
            };
            if !self.core.may_accept(from) {
                continue;
            }
            let idle = self.params.idle_timeout;
            let conn = match TcpConn::accept(&self.tcp_server, stream, from, idle, now.instant) {
                Ok(c) => c,
                Err(e) => {
                    self.stats.fault(Fault::HandshakeFailed);
                    log::debug!("transport: tcp accept from {from} failed: {e}");
                    continue;
                }
            };
            let id = self.core.handle_incoming(now, TransportAddress::tcp(from));
            self.insert_tcp(id, conn, now);
        }
    }

    /// Starts a TCP dial of connection `id` to `node` at `addr`.
    pub(super) fn dial_tcp(
        &mut self,
        id: ConnId,
        node: NodeIdentity,
        addr: SocketAddr,
        now: Now,
    ) -> Result<(), String> {
        let idle = self.params.idle_timeout;
        let conn = TcpConn::dial(&self.tls, node, addr, idle, now.instant)?;
        self.insert_tcp(id, conn, now);
        Ok(())
    }

    fn insert_tcp(&mut self, id: ConnId, mut conn: TcpConn, now: Now) {
        let token = Token(CONN_BASE + id as usize);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(conn.socket(), token, interest)
        {
            log::warn!("transport: cannot poll a tcp connection: {e}");
        }
        self.tcp.insert(
            id,
            TcpSlot {
                conn,
                deadline: None,
            },
        );
        self.pump_tcp(id, now);
    }

    /// Moves a TCP connection's bytes (its socket is ready, or its deadline passed) and asks
    /// the core to service it if anything happened.
    pub(super) fn pump_tcp(&mut self, id: ConnId, now: Now) {
        let Some(slot) = self.tcp.get_mut(&id) else {
            return;
        };
        let changed = slot.conn.pump(now.instant, &mut self.recv_buf);
        if slot.conn.take_violation() {
            self.stats.fault(Fault::ProtocolViolation);
        }
        if changed {
            self.core.handle_activity(id);
        }
        self.schedule_tcp(id);
    }

    fn schedule_tcp(&mut self, id: ConnId) {
        if let Some(slot) = self.tcp.get_mut(&id) {
            let next = slot.conn.deadline();
            if next != slot.deadline {
                slot.deadline = next;
                if let Some(t) = next {
                    self.deadlines.push(Reverse((t, id)));
                }
            }
        }
    }

    /// Services TCP connection `id` (the core reads and writes it), writes out what it has to
    /// send, and reports it to the core if it has closed. Returns false if there is no such
    /// connection.
    pub(super) fn service_tcp(&mut self, id: ConnId, now: Now, room: usize) -> bool {
        let Some(slot) = self.tcp.get_mut(&id) else {
            return false;
        };
        self.core.service(now, id, &mut slot.conn, room);
        let changed = slot.conn.pump(now.instant, &mut self.recv_buf);
        if slot.conn.take_violation() {
            self.stats.fault(Fault::ProtocolViolation);
        }
        if crate::transport::core::QuicConn::is_closed(&slot.conn) {
            self.core.handle_closed(now, id, &slot.conn);
            if let Some(mut slot) = self.tcp.remove(&id) {
                let _ = self.poll.registry().deregister(slot.conn.socket());
            }
        } else {
            if changed {
                self.core.handle_activity(id);
            }
            self.schedule_tcp(id);
        }
        true
    }

    /// Whether `id` is a TCP connection whose deadline `t` is current.
    pub(super) fn tcp_deadline_is(&self, id: ConnId, t: std::time::Instant) -> bool {
        self.tcp.get(&id).is_some_and(|s| s.deadline == Some(t))
    }
}
