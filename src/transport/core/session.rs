//! A connection's life in the core: dialling with backoff, accepting within the limits, the
//! servicing pass, the hello exchange with version negotiation, duplicate and restart
//! resolution, closing (resend of what it left unacknowledged), and the maintenance tick.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use rand_core::RngCore;

use super::conn::{Conn, QuicConn, State};
use super::peers::ConnId;
use super::{Core, Output, PROBE_AFTER, RETIRE_GRACE};
use crate::identity::NodeIdentity;
use crate::runtime::stats::Fault;
use crate::time::Now;
use crate::transport::control::{self, close_code, Hello, VERSION_MAX, VERSION_MIN};
use crate::transport::frame::kind;
use crate::transport::TransportEvent;
use crate::wire::TransportAddress;

impl<R: RngCore> Core<R> {
    /// Starts a dial to `node` at its next address: numbers the connection and asks the driver
    /// to open it ([`Output::Dial`]).
    pub(super) fn dial(&mut self, now: Now, node: NodeIdentity) {
        let jitter = self.jitter();
        let (initial, max) = (self.config.backoff_initial, self.config.backoff_max);
        let kinds = &self.config.transports;
        let Some(addr) = self
            .peers
            .get_mut(&node)
            .and_then(|p| p.next_address(now.instant, kinds))
        else {
            return;
        };
        if self.conns.len() >= self.config.limits.max_connections {
            self.stats.fault(Fault::ConnectionLimit);
            if let Some(p) = self.peers.get_mut(&node) {
                p.failed(now.instant, initial, max, jitter);
            }
            return;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns
            .insert(id, Conn::new(addr, true, Some(node), now.instant));
        self.dirty.insert(id);
        self.stats.dials.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = self.peers.get_mut(&node) {
            p.dialing = Some(id);
        }
        log::debug!("transport: dialling {} at {addr}", node.short());
        self.outputs.push_back(Output::Dial {
            conn: id,
            node,
            addr,
        });
    }

    /// The driver could not open the connection of an [`Output::Dial`] (no socket, or the
    /// QUIC library refused): the attempt counts as failed and the next one is scheduled.
    pub fn handle_dial_failed(&mut self, now: Now, conn: ConnId) {
        let jitter = self.jitter();
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.dirty.remove(&conn);
        self.parked.remove(&conn);
        self.stats.dials.fetch_sub(1, Ordering::Relaxed);
        let Some(p) = c.node.and_then(|n| self.peers.get_mut(&n)) else {
            return;
        };
        if p.dialing == Some(conn) {
            p.dialing = None;
        }
        p.failed(
            now.instant,
            self.config.backoff_initial,
            self.config.backoff_max,
            jitter,
        );
    }

    /// Whether a new inbound connection from `from` fits the connection limits (total and per
    /// IP); a refusal is counted as [`Fault::ConnectionLimit`].
    pub fn may_accept(&self, from: SocketAddr) -> bool {
        let from_ip = self.per_ip.get(&from.ip()).copied().unwrap_or(0);
        if self.conns.len() >= self.config.limits.max_connections
            || from_ip >= self.config.limits.max_connections_per_ip
        {
            self.stats.fault(Fault::ConnectionLimit);
            log::debug!("transport: refused a connection from {from}: connection limit");
            return false;
        }
        true
    }

    /// A connection accepted from `from` (after [`Core::may_accept`]); returns its id.
    pub fn handle_incoming(&mut self, now: Now, from: TransportAddress) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        *self.per_ip.entry(from.socket_addr().ip()).or_default() += 1;
        self.conns
            .insert(id, Conn::new(from, false, None, now.instant));
        self.dirty.insert(id);
        id
    }

    /// Services connection `id`: applies a pending close, completes the handshake with the
    /// hello, reads control frames, messages (up to `router_room` deliveries) and datagrams,
    /// moves the peer's queue onto streams, writes acknowledgements, flushes streams round
    /// robin, probes, and closes a drained retiring connection. Afterwards the driver
    /// transmits, and calls [`Core::handle_closed`] if `q` is closed.
    pub fn service(&mut self, now: Now, id: ConnId, q: &mut dyn QuicConn, router_room: usize) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        if let Some((code, reason)) = conn.pending_close.take() {
            conn.close(q, code, &reason);
        } else {
            if conn.state == State::Handshake && q.is_established() && !q.is_closed() {
                self.on_established(id, &mut conn, q, now);
            }
            if conn.state != State::Handshake && !q.is_closed() {
                // Acknowledgements since the last service end the silence the probe watches.
                if conn.unanswered_since.is_some() && q.acked_bytes() > conn.acked_mark {
                    conn.unanswered_since = None;
                }
                self.read_streams(id, &mut conn, q, now, router_room);
                self.read_datagrams(id, &mut conn, q);
                if conn.state == State::Ready {
                    self.drain_queue(id, &mut conn, q, now);
                }
                self.send_acks(&mut conn);
                self.flush_streams(&mut conn, q, now);
                self.keep_alive(id, &mut conn, q, now);
            }
            if let Some(since) = conn.retiring {
                if conn.drained() || now.instant.saturating_duration_since(since) >= RETIRE_GRACE {
                    conn.close(q, close_code::DUPLICATE, "duplicate connection");
                }
            }
        }
        if conn.inbox.is_empty() && !conn.read_blocked {
            self.parked.remove(&id);
        } else {
            self.parked.insert(id);
        }
        self.conns.insert(id, conn);
        self.release_upstream();
    }

    /// Keep-alives due on permanent connections, and the acknowledgement probe.
    fn keep_alive(&mut self, id: ConnId, conn: &mut Conn, q: &mut dyn QuicConn, now: Now) {
        if std::mem::take(&mut conn.keepalive_due) {
            q.send_ack_eliciting();
        }
        if self.probe_due(conn, now) {
            conn.last_probe = now.instant;
            log::trace!("transport: conn {id}: no answer for a while; probing");
            q.send_ack_eliciting();
        }
    }

    fn probe_due(&self, conn: &Conn, now: Now) -> bool {
        let probe_after = PROBE_AFTER.min(self.config.idle_timeout / 4);
        conn.unanswered_since.is_some_and(|t| {
            now.instant.saturating_duration_since(t) >= probe_after
                && now.instant.saturating_duration_since(conn.last_probe) >= probe_after
        })
    }

    fn on_established(&mut self, id: ConnId, conn: &mut Conn, q: &mut dyn QuicConn, now: Now) {
        if !conn.outbound {
            match q.peer_identity() {
                Ok(node) => conn.node = Some(node),
                Err(e) => {
                    self.stats.fault(Fault::IdentityMismatch);
                    conn.close(q, close_code::PROTOCOL_VIOLATION, "bad certificate");
                    log::warn!(
                        "transport: {} presented a bad certificate: {e}",
                        conn.peer_addr
                    );
                    return;
                }
            }
        }
        let Some(node) = conn.node else { return };
        if !conn.outbound && self.refuse_incoming(conn, q, now, node) {
            return;
        }
        if !conn.outbound && !self.config.accept_unknown_peers && !self.known.contains(&node) {
            self.stats.fault(Fault::UnknownPeerRefused);
            log::info!(
                "transport: refused unknown node {} from {}",
                node.short(),
                conn.peer_addr
            );
            conn.close(q, close_code::DENIED, "only configured peers may connect");
            return;
        }
        if node == self.node {
            self.stats.fault(Fault::ProtocolViolation);
            conn.close(q, close_code::PROTOCOL_VIOLATION, "connection to self");
            return;
        }
        conn.state = State::AwaitHello;
        let sid = conn.open_stream(now.instant, true);
        conn.control_out = Some(sid);
        let hello = Hello {
            min_version: VERSION_MIN,
            max_version: VERSION_MAX,
            instance: self.instance,
            advert_version: self.advert.version,
            known_advert_version: self.peers.get(&node).and_then(|p| p.advert_version),
        };
        conn.send_control(kind::HELLO, &control::encode(&hello));
        log::debug!(
            "transport: TLS up with {} ({}), conn {id}",
            node.short(),
            conn.peer_addr
        );
    }

    /// The peer's hello: negotiate, then resolve restarts and duplicates against the peer's
    /// existing connection, and make this one active.
    pub(super) fn on_hello(
        &mut self,
        id: ConnId,
        conn: &mut Conn,
        q: &mut dyn QuicConn,
        hello: Hello,
        now: Now,
    ) {
        let ours = Hello {
            min_version: VERSION_MIN,
            max_version: VERSION_MAX,
            instance: self.instance,
            advert_version: self.advert.version,
            known_advert_version: None,
        };
        if ours.negotiate(&hello).is_none() {
            self.stats.fault(Fault::VersionMismatch);
            log::info!(
                "transport: {} speaks versions {}..={}, this node {}..={}: closing",
                conn.node
                    .map_or_else(|| "a peer".to_string(), |n| n.short()),
                hello.min_version,
                hello.max_version,
                VERSION_MIN,
                VERSION_MAX
            );
            conn.close(q, close_code::INCOMPATIBLE, "no common protocol version");
            return;
        }
        let Some(node) = conn.node else { return };
        conn.state = State::Ready;
        conn.instance = Some(hello.instance);
        self.stats
            .connections_established
            .fetch_add(1, Ordering::Relaxed);
        if hello
            .known_advert_version
            .is_none_or(|v| v < self.advert.version)
        {
            conn.send_control(kind::ADVERT, &crate::wire::encode_to_vec(&self.advert));
        }
        let existing = self.peers.get(&node).and_then(|p| p.active);
        let mut notify = true;
        if let Some(other) = existing.filter(|o| *o != id) {
            let me = self.node;
            if let Some(other_conn) = self.conns.get_mut(&other) {
                notify = false;
                if other_conn.instance != Some(hello.instance) {
                    self.stats.fault(Fault::StaleConnection);
                    other_conn.close_later(close_code::STALE, "peer restarted");
                    log::info!(
                        "transport: {} restarted; replacing its connection",
                        node.short()
                    );
                    notify = true;
                } else {
                    // Simultaneous dials: keep the connection opened by the smaller identity.
                    let initiator = |c: &Conn| if c.outbound { me } else { node };
                    let keeper = me.min(node);
                    self.stats.fault(Fault::DuplicateConnection);
                    if initiator(conn) == keeper {
                        // The older connection retires: nothing new is sent on it, and it
                        // closes once what it carries is acknowledged (or after a grace), so
                        // nothing needs sending twice.
                        other_conn.retiring = Some(now.instant);
                        self.peers.entry(node).or_default().retiring += 1;
                        self.dirty.insert(other);
                    } else {
                        // This one has sent nothing yet: close it at once.
                        conn.close(q, close_code::DUPLICATE, "duplicate connection");
                        self.dirty.insert(other);
                        return;
                    }
                }
                if other_conn.retiring.is_none() {
                    let requeue = other_conn.take_unconfirmed();
                    self.dirty.insert(other);
                    self.requeue(node, requeue);
                }
            }
        }
        let peer = self.peers.entry(node).or_default();
        if peer.dialing == Some(id) || conn.outbound && peer.dialing.is_some() {
            peer.dialing = None;
        }
        peer.connected(id);
        if conn.outbound {
            peer.dial_worked(conn.peer_addr);
        }
        conn.keepalive = now.instant;
        self.exchange_on_ready(node, conn);
        log::info!(
            "transport: connected to {} at {}",
            node.short(),
            conn.peer_addr
        );
        if notify {
            self.notify(TransportEvent::NodeConnected {
                node,
                addr: conn.peer_addr.socket_addr(),
            });
        }
    }

    /// Connection `id` is closed (`q` says why): its unacknowledged messages go back to the
    /// front of the peer's queue, and the peer is told disconnected or scheduled for a redial.
    pub fn handle_closed(&mut self, now: Now, id: ConnId, q: &dyn QuicConn) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        self.dirty.remove(&id);
        self.parked.remove(&id);
        if !conn.outbound {
            if let Some(n) = self.per_ip.get_mut(&conn.peer_addr.socket_addr().ip()) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&conn.peer_addr.socket_addr().ip());
                }
            }
        }
        let reason = conn
            .close_reason
            .clone()
            .unwrap_or_else(|| q.close_description());
        let Some(node) = conn.node else {
            self.stats.fault(Fault::HandshakeFailed);
            log::debug!(
                "transport: connection from {} failed: {reason}",
                conn.peer_addr
            );
            return;
        };
        let unconfirmed = conn.take_unconfirmed();
        if self.is_refused(now, &node) {
            for m in unconfirmed {
                self.bounce(m, crate::runtime::stats::DropReason::PeerRefused);
            }
        } else {
            self.requeue(node, unconfirmed);
        }
        if conn.retiring.is_some() {
            if let Some(peer) = self.peers.get_mut(&node) {
                peer.retiring = peer.retiring.saturating_sub(1);
                // The kept connection may send again, starting with what this one left.
                if let Some(active) = peer.active {
                    self.dirty.insert(active);
                }
            }
        }
        if conn.abandoned {
            return;
        }
        let jitter = self.jitter();
        let (initial, max) = (self.config.backoff_initial, self.config.backoff_max);
        let was_ready = conn.state == State::Ready;
        let Some(peer) = self.peers.get_mut(&node) else {
            return;
        };
        if peer.active == Some(id) {
            peer.active = None;
            peer.next_dial = Some(now.instant + initial);
            log::info!("transport: disconnected from {} ({reason})", node.short());
            self.notify(TransportEvent::NodeDisconnected {
                node,
                addr: conn.peer_addr.socket_addr(),
                reason,
            });
        } else if peer.dialing == Some(id) {
            peer.dialing = None;
            peer.failed(now.instant, initial, max, jitter);
            self.stats.fault(if q.identity_mismatch() {
                Fault::IdentityMismatch
            } else {
                Fault::HandshakeFailed
            });
            log::info!(
                "transport: could not connect to {} at {}: {reason}",
                node.short(),
                conn.peer_addr
            );
            self.notify(TransportEvent::NodeConnectFailed {
                node,
                addr: conn.peer_addr.socket_addr(),
                reason,
            });
        } else if !was_ready {
            self.stats.fault(Fault::HandshakeFailed);
        }
    }

    /// Maintenance: expiry and dials per peer, keep-alives, probes, retiring connections and
    /// connect timeouts per connection.
    pub(super) fn tick(&mut self, now: Now) {
        let nodes: Vec<NodeIdentity> = self.peers.keys().copied().collect();
        for node in nodes {
            let expired = match self.peers.get_mut(&node) {
                Some(p) => p.take_expired(now.wall),
                None => continue,
            };
            for m in expired {
                self.bounce(m, crate::runtime::stats::DropReason::Expired);
            }
            // What a refused peer's closed connections left unacknowledged is not kept for it.
            if self.is_refused(now, &node) {
                self.bounce_queue(node);
            }
            // A peer without an address (it connected to us once) keeps its queue until the
            // messages expire, in case it connects again.
            if self
                .peers
                .get(&node)
                .is_some_and(|p| p.should_dial(now.instant))
            {
                self.dial(now, node);
            }
        }
        let keepalive_every = self.config.idle_timeout / 3;
        let mut abandon = Vec::new();
        let mut due = Vec::new();
        for (&id, conn) in &self.conns {
            let permanent = conn
                .node
                .and_then(|n| self.peers.get(&n))
                .is_some_and(|p| p.permanent && p.active == Some(id));
            let keepalive = permanent
                && now.instant.saturating_duration_since(conn.keepalive) >= keepalive_every;
            if keepalive || self.probe_due(conn, now) || conn.retiring.is_some() {
                due.push((id, keepalive));
            }
            if conn.outbound
                && conn.state != State::Ready
                && !conn.abandoned
                && now.instant.saturating_duration_since(conn.started) > self.config.connect_timeout
            {
                abandon.push(id);
            }
        }
        for (id, keepalive) in due {
            if let Some(conn) = self.conns.get_mut(&id) {
                if keepalive {
                    conn.keepalive = now.instant;
                    conn.keepalive_due = true;
                }
            }
            self.dirty.insert(id);
        }
        for id in abandon {
            self.abandon_dial(id, now, "connect timeout");
        }
    }

    /// Gives up on a dial: closes it and records the failure on its peer at once.
    fn abandon_dial(&mut self, id: ConnId, now: Now, reason: &str) {
        let jitter = self.jitter();
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.abandoned = true;
        conn.close_later(close_code::NORMAL, reason);
        if conn.close_reason.is_none() {
            conn.close_reason = Some(reason.to_string());
        }
        let addr = conn.peer_addr;
        let node = conn.node;
        self.dirty.insert(id);
        let Some(node) = node else { return };
        self.stats.fault(Fault::HandshakeFailed);
        if let Some(p) = self.peers.get_mut(&node) {
            if p.dialing == Some(id) {
                p.dialing = None;
                p.failed(
                    now.instant,
                    self.config.backoff_initial,
                    self.config.backoff_max,
                    jitter,
                );
            }
        }
        self.notify(TransportEvent::NodeConnectFailed {
            node,
            addr: addr.socket_addr(),
            reason: reason.to_string(),
        });
    }
}
