//! The Transport's connection core, sans IO: every connection policy of the Transport, with no
//! sockets, no quiche, no channels and no clock.
//!
//! It keeps the peers and their queues, the ledger of unacknowledged messages per stream, the
//! acknowledgements (receiver side: the processed prefix of each inbound stream becomes `ACK`
//! frames; sender side: acknowledged messages are freed), resend across connections, placement
//! on ordered streams / per-message streams / datagrams, the hello exchange and version
//! negotiation, duplicate-connection and restart resolution, dial scheduling with backoff and
//! seeded jitter, keep-alives and the acknowledgement probe, expiry of queued messages, the
//! limits, round-robin stream flushing and the parking of frames while the Router is full.
//!
//! # How a connection is reached
//!
//! The core never owns a connection. Each call that works on one takes it as
//! `&mut dyn QuicConn` ([`QuicConn`]: stream send / receive, readable streams, datagrams, the
//! peer's stream credit, close, an ack-eliciting probe, acknowledged bytes, and the handshake's
//! outcome). The real driver implements it over `quiche::Connection`; a simulator implements it
//! over simulated ordered streams and datagrams and drives this very core. Decisions about a
//! connection other than the one in hand (closing an older duplicate, a requested disconnect, a
//! connect timeout) are recorded and applied the next time that connection is serviced; such a
//! connection is marked for service.
//!
//! # Inputs and outputs
//!
//! Inputs are `handle_*` calls, each taking the time as [`Now`]: [`Core::handle_send`],
//! [`Core::handle_request`], [`Core::handle_identity`], [`Core::handle_exchange`] (the identity
//! exchange with peers, see `exchange`), [`Core::handle_processed`], [`Core::handle_incoming`] (after [`Core::may_accept`]), [`Core::handle_activity`] (packets
//! arrived or a timer of the connection fired), [`Core::handle_dial_failed`],
//! [`Core::handle_timeout`], [`Core::handle_refused`], [`Core::handle_closed`],
//! [`Core::handle_cut_off`] (the Router's order to cut a misbehaving peer off; see `refusal`)
//! and [`Core::handle_shutdown`]; [`Core::set_trust`] sets a peer's trust (0 bans it). Servicing a connection, [`Core::service`], is where the core
//! reads and writes through [`QuicConn`].
//!
//! Outputs are drained with [`Core::poll_output`] ([`Output`]: deliveries to the Router,
//! bounces, notifications and answers to engines, adverts to store, the identity exchange for
//! the store, dials to start),
//! [`Core::poll_service`] (the next connection that needs servicing) and
//! [`Core::poll_timeout`] (when to call [`Core::handle_timeout`] next).
//!
//! # Drain contract
//!
//! After any batch of inputs the driver must, in this order:
//! 1. drain [`Core::poll_output`] until `None` — a [`Output::Dial`] creates the connection
//!    the core has already numbered, or reports [`Core::handle_dial_failed`];
//! 2. while [`Core::poll_service`] yields a connection id: call [`Core::service`] with that
//!    connection, transmit what the connection has to send, call [`Core::handle_closed`] if it
//!    is now closed (and drop it), then drain [`Core::poll_output`] again before servicing the
//!    next one;
//! 3. wait until [`Core::poll_timeout`] (or the connections' own timers, or new input).
//!
//! Deliveries must be offered to the Router in output order. If one does not fit, hand it back
//! with [`Core::handle_refused`] together with every later delivery of the same connection in
//! that drain: the core parks them in order, stops reading that connection's message streams,
//! and offers them again when the connection is next serviced (it asks for that service within
//! a millisecond). Datagram deliveries handed back are dropped and counted, as datagrams are
//! unreliable. [`Core::service`] also takes the room left in the Router's mailbox, and stops
//! reading message streams when that many deliveries have been produced, leaving the rest to
//! QUIC flow control.
//!
//! Iteration that decides the order of outputs uses ordered maps, so a run is determined by its
//! inputs and the seed of the injected RNG (`R`), which also draws the node's instance number.

mod conn;
mod exchange;
#[cfg(test)]
mod exchange_tests;
#[cfg(test)]
mod fake;
pub mod peers;
mod placement;
mod recv;
mod refusal;
mod session;
#[cfg(test)]
mod tests;

pub use conn::{Delivery, QuicConn, RecvError, SendError};
pub use exchange::{
    MAX_CONTROL_BACKLOG_FOR_ANSWERS, PEER_ENGINE_ADVERTS_BURST, PEER_ENGINE_ADVERTS_REFILL_PER_S,
    PEER_LOOKUPS_PER_S,
};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use self::conn::Conn;
use self::peers::{ConnId, Peer};
use crate::identity::{EngineIdentity, NodeIdentity};
use crate::mail::identity::{
    ConnectionPrefs, FromPeer, IdentityEvent, IdentityRecord, Measurement, UpdateResult,
};
use crate::runtime::stats::{DropReason, Fault, NodeStats};
use crate::time::Now;
use crate::transport::control::close_code;
use crate::transport::{
    ConnectResult, Receipt, RemoteSend, TransportConfig, TransportEvent, TransportRequest,
};
use crate::wire::{EngineAdvert, NodeAdvert, TransportAddress};

/// Period of peer maintenance.
pub const TICK: Duration = Duration::from_millis(50);
/// How long a connection replaced by a duplicate may drain before it is closed.
pub const RETIRE_GRACE: Duration = Duration::from_secs(2);
/// Longest silence, after sending data, before a connection probes the peer for an
/// acknowledgement (capped at a quarter of the idle timeout).
///
/// quiche backs its probe timeout off exponentially and resets it only when an acknowledgement
/// arrives: after a lossy handshake the timer can reach tens of seconds, past the idle timeout,
/// and a lost hello is then never resent. A tiny ack-eliciting probe every second while data is
/// unanswered keeps loss recovery going at a bounded pace.
pub const PROBE_AFTER: Duration = Duration::from_secs(1);
/// How soon a connection with parked frames is serviced again.
pub const PARK_RETRY: Duration = Duration::from_millis(1);
/// Size of the buffer streams and datagrams are read into.
const READ_BUF: usize = 65_535;

/// A peer with a ready connection ([`Core::ready_peers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadyPeer {
    /// The peer.
    pub node: NodeIdentity,
    /// Its active connection.
    pub conn: ConnId,
    /// Its local trust, if set.
    pub trust: Option<u8>,
    /// Its reputation in the identity store, if set.
    pub reputation: Option<u8>,
}

/// Something the core wants done outside itself (see the drain contract in the module doc).
#[derive(Debug)]
pub enum Output {
    /// Hand a received message to the Router; if it does not fit, give it back with
    /// [`Core::handle_refused`].
    Deliver(Delivery),
    /// A message for a node this Transport has no address for and no connection to: the
    /// Router sends it through a relay if it knows one, and otherwise drops it as `no_route`
    /// (not counted here).
    NoDirectPath(RemoteSend),
    /// A message that cannot be delivered; the sender wants an `Undeliverable` if
    /// `send.header.notify`. Already counted as dropped.
    Bounce {
        /// The message.
        send: RemoteSend,
        /// Why.
        reason: DropReason,
    },
    /// A connection notification for a subscribed engine.
    Notify {
        /// The subscriber.
        to: EngineIdentity,
        /// The notification.
        event: TransportEvent,
    },
    /// An answer to an engine's request.
    Answer {
        /// The engine that asked.
        to: EngineIdentity,
        /// The answer.
        event: TransportEvent,
    },
    /// A peer's advert, received on its connection, to store in the identity store.
    StoreAdvert(NodeAdvert),
    /// Something of the identity exchange for the identity store (engine adverts, lookups and
    /// answers from peers, peers ready, lookups sent).
    Exchange(FromPeer),
    /// Open a QUIC connection to `node` at `addr`, known to the core as `conn`.
    Dial {
        /// The connection's id.
        conn: ConnId,
        /// The node, whose certificate the connection must check.
        node: NodeIdentity,
        /// Where, and over which transport.
        addr: TransportAddress,
    },
}

/// The seeded random source drivers give the core (see [`crate::rng`]).
pub type SeededRng = crate::rng::SplitMix64;

/// The Transport's connection core (see the module doc for its inputs, outputs and drain
/// contract).
pub struct Core<R> {
    node: NodeIdentity,
    advert: NodeAdvert,
    instance: u64,
    config: TransportConfig,
    stats: Arc<NodeStats>,
    rng: R,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    per_ip: BTreeMap<IpAddr, usize>,
    peers: BTreeMap<NodeIdentity, Peer>,
    known: BTreeSet<NodeIdentity>,
    subscribers: BTreeSet<EngineIdentity>,
    dirty: BTreeSet<ConnId>,
    /// Connections with frames parked for the Router, or whose reading is paused for it: kept
    /// so that time passing need not scan every connection.
    parked: BTreeSet<ConnId>,
    next_tick: Option<Instant>,
    outputs: VecDeque<Output>,
    buf: Vec<u8>,
    /// This node's reachable engines' adverts, handed to every peer that connects.
    own_engines: BTreeMap<EngineIdentity, EngineAdvert>,
    /// Receipts of relayed frames whose forwarded frame was acknowledged or dropped, released
    /// once no connection is borrowed (see [`crate::mail::RelayFrame`]).
    released: Vec<Receipt>,
}

impl<R: RngCore> Core<R> {
    /// A core for node `node` with its current `advert`, the configured `peers` (advert and
    /// whether the connection is kept up), and a seeded `rng` that draws the instance number
    /// and every jitter.
    pub fn new(
        node: NodeIdentity,
        advert: NodeAdvert,
        config: TransportConfig,
        peers: Vec<(NodeAdvert, bool)>,
        stats: Arc<NodeStats>,
        mut rng: R,
    ) -> Core<R> {
        let instance = rng.next_u64() | 1;
        let mut core = Core {
            node,
            advert,
            instance,
            config,
            stats,
            rng,
            conns: BTreeMap::new(),
            next_conn: 1,
            per_ip: BTreeMap::new(),
            peers: BTreeMap::new(),
            known: BTreeSet::new(),
            subscribers: BTreeSet::new(),
            dirty: BTreeSet::new(),
            parked: BTreeSet::new(),
            next_tick: None,
            outputs: VecDeque::new(),
            buf: vec![0; READ_BUF],
            own_engines: BTreeMap::new(),
            released: Vec::new(),
        };
        for (advert, permanent) in peers {
            let p = core.peers.entry(advert.id).or_default();
            p.learn_advert(&advert, &core.config.transports);
            p.permanent |= permanent;
            core.known.insert(advert.id);
        }
        core
    }

    /// This node's instance number (random per start; a peer seeing a new one knows we
    /// restarted).
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// Peers with a ready connection: the node, that connection, and the trust configured
    /// for it (if any) — what the driver publishes as relay candidates.
    pub fn ready_peers(&self) -> Vec<ReadyPeer> {
        self.peers
            .iter()
            .filter_map(|(n, p)| {
                let c = p.active?;
                (self.conns.get(&c)?.state == conn::State::Ready).then_some(ReadyPeer {
                    node: *n,
                    conn: c,
                    trust: p.trust,
                    reputation: p.reputation,
                })
            })
            .collect()
    }

    /// The round-trip time the driver measured on connection `conn`: kept for the address an
    /// outbound connection dialled, to order that peer's addresses for later dials.
    pub fn handle_rtt(&mut self, conn: ConnId, rtt: Duration) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if !c.outbound {
            return;
        }
        if let Some(p) = c.node.and_then(|n| self.peers.get_mut(&n)) {
            p.record_rtt(c.peer_addr, rtt);
        }
    }

    /// A measurement of the path to `node` from an earlier run (the identity store's): orders
    /// its addresses until this run measures its own.
    pub fn seed_measurement(&mut self, node: NodeIdentity, m: Measurement) {
        if let Some(p) = self.peers.get_mut(&node) {
            p.seed_rtt(m.address, m.rtt());
        }
    }

    /// The address of connection `conn`: dialled, or accepted from.
    pub fn connection_address(&self, conn: ConnId) -> Option<TransportAddress> {
        self.conns.get(&conn).map(|c| c.peer_addr)
    }

    /// The connections the core knows, with their peer addresses.
    pub fn connections(&self) -> impl Iterator<Item = (ConnId, SocketAddr)> + '_ {
        self.conns
            .iter()
            .map(|(id, c)| (*id, c.peer_addr.socket_addr()))
    }

    // -----------------------------------------------------------------------------------------
    // Outputs.

    /// The next output, in the order the core produced them.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next connection to service (smallest id first), removed from the set.
    pub fn poll_service(&mut self) -> Option<ConnId> {
        self.dirty.pop_first()
    }

    /// When [`Core::handle_timeout`] is next due: the maintenance tick, or within
    /// [`PARK_RETRY`] while frames are parked for the Router.
    pub fn poll_timeout(&self, now: Now) -> Instant {
        let mut next = self.next_tick.unwrap_or(now.instant);
        if !self.parked.is_empty() {
            next = next.min(now.instant + PARK_RETRY);
        }
        next
    }

    // -----------------------------------------------------------------------------------------
    // Inputs from engines.

    /// A message from the Router for another node: queued for its peer (dialling if needed),
    /// or bounced.
    pub fn handle_send(&mut self, now: Now, send: RemoteSend) {
        self.queue_send(now, send);
        self.release_upstream();
    }

    fn queue_send(&mut self, now: Now, send: RemoteSend) {
        let limit = self.config.limits.max_peer_queue_bytes;
        let node = send.node;
        if node == self.node {
            return self.bounce(send, DropReason::NoRoute);
        }
        // One lookup of the peer: a refused peer has an entry (its refusal lives in it).
        let peer = self.peers.entry(node).or_default();
        if peer.refused(now.instant) {
            return self.bounce(send, DropReason::PeerRefused);
        }
        if peer.active.is_none() && peer.dialing.is_none() && peer.addrs.is_empty() {
            if send.relay.is_none() {
                // The Router may reach it through a relay; it counts the drop if not.
                self.outputs.push_back(Output::NoDirectPath(send));
                return;
            }
            return self.bounce(send, DropReason::NoRoute);
        }
        if peer.bytes + send.wire.len() > limit {
            return self.bounce(send, DropReason::QueueFull);
        }
        peer.bytes += send.wire.len();
        peer.queue.push_back(send);
        if let Some(c) = peer.active {
            self.dirty.insert(c);
        } else if peer.should_dial(now.instant) {
            self.dial(now, node);
        }
    }

    /// A request from a local engine.
    pub fn handle_request(&mut self, now: Now, from: EngineIdentity, req: TransportRequest) {
        match req {
            TransportRequest::Connect { node } => {
                let peer = self.peers.entry(node).or_default();
                let result = if peer.refused(now.instant) {
                    ConnectResult::Refused
                } else if peer.active.is_some() {
                    ConnectResult::AlreadyConnected
                } else if peer.dialing.is_some() {
                    ConnectResult::Connecting
                } else if peer.addrs.is_empty() {
                    ConnectResult::NoAddress
                } else {
                    peer.next_dial = None;
                    self.dial(now, node);
                    ConnectResult::Connecting
                };
                self.answer(from, TransportEvent::Connect { node, result });
            }
            TransportRequest::Disconnect { node } => {
                let active = self.peers.get(&node).and_then(|p| p.active);
                let was_connected = match active.and_then(|c| self.conns.get_mut(&c)) {
                    Some(conn) => {
                        conn.close_later(close_code::NORMAL, "disconnect requested");
                        self.dirty.insert(active.expect("checked"));
                        true
                    }
                    None => false,
                };
                self.answer(
                    from,
                    TransportEvent::Disconnect {
                        node,
                        was_connected,
                    },
                );
            }
            TransportRequest::ConnectedNodes => {
                let list = self.connected_nodes();
                self.answer(from, TransportEvent::ConnectedNodes(list));
            }
            TransportRequest::Subscribe => {
                self.subscribers.insert(from);
            }
        }
    }

    /// A notification of the identity store (peer adverts and preferences).
    pub fn handle_identity(&mut self, event: IdentityEvent) {
        match event {
            IdentityEvent::Updated {
                record: IdentityRecord::Node(r),
                ..
            } if r.id != self.node => {
                let peer = self.peers.entry(r.id).or_default();
                if let Some(a) = &r.advert {
                    if peer.advert_version.is_none_or(|v| a.version > v) {
                        peer.learn_advert(a, &self.config.transports);
                    }
                }
                if r.tprefs.is_some() {
                    peer.tprefs = r.tprefs;
                }
                if r.cprefs == Some(ConnectionPrefs::Permanent) {
                    peer.permanent = true;
                }
                // A measurement kept from before a restart orders addresses until this run
                // measures its own.
                if let Some(m) = r.measured {
                    peer.seed_rtt(m.address, m.rtt());
                }
                if r.reputation.is_some() {
                    peer.reputation = r.reputation;
                }
                if let Some(trust) = r.trust {
                    if peer.trust != Some(trust) {
                        self.set_trust(r.id, trust);
                    }
                }
            }
            IdentityEvent::UpdateResult {
                id,
                result: UpdateResult::Refused(e),
            } => {
                self.stats.fault(Fault::ProtocolViolation);
                log::warn!("transport: a peer's advert for {id:?} was refused: {e}");
            }
            _ => {}
        }
    }

    /// Something happened on connection `id` (packets arrived, one of its timers fired):
    /// service it.
    pub fn handle_activity(&mut self, id: ConnId) {
        if self.conns.contains_key(&id) {
            self.dirty.insert(id);
        }
    }

    /// The Router finished with these frames: acknowledge them to their senders.
    pub fn handle_processed(&mut self, receipts: Vec<Receipt>) {
        for r in receipts {
            let Some(conn) = self.conns.get_mut(&r.conn) else {
                continue;
            };
            let Some(stream) = conn.inbound.get_mut(&r.stream) else {
                continue;
            };
            if stream.processed(r.seq) {
                conn.ack_dirty.insert(r.stream);
                self.dirty.insert(r.conn);
            }
        }
    }

    /// Releases the receipts of relayed frames whose forwarded frame is done with.
    pub(crate) fn release_upstream(&mut self) {
        if !self.released.is_empty() {
            let released = std::mem::take(&mut self.released);
            self.handle_processed(released);
        }
    }

    /// A delivery the Router had no room for (see the drain contract): parked on its
    /// connection, or dropped if it came in a datagram.
    pub fn handle_refused(&mut self, delivery: Delivery) {
        if delivery.receipt.is_none() {
            self.stats.dropped(DropReason::MailboxFull);
            return;
        }
        match self.conns.get_mut(&delivery.conn) {
            Some(conn) => {
                self.parked.insert(delivery.conn);
                conn.inbox.push_back(delivery);
            }
            // Closed meanwhile: it was never acknowledged, so its sender sends it again.
            None => log::debug!(
                "transport: a refused delivery's connection {} closed; its sender resends it",
                delivery.conn
            ),
        }
    }

    /// Time passes: runs maintenance every [`TICK`] (dials, expiry, keep-alives, probes,
    /// connect timeouts) and asks for service of connections with parked frames.
    pub fn handle_timeout(&mut self, now: Now) {
        if self.next_tick.is_none_or(|t| now.instant >= t) {
            self.next_tick = Some(now.instant + TICK);
            self.tick(now);
        }
        self.dirty.extend(self.parked.iter().copied());
        self.release_upstream();
    }

    /// Shuts down: closes every connection (`conns` yields each with its id) and bounces
    /// everything unsent or unacknowledged as [`DropReason::Shutdown`].
    pub fn handle_shutdown<'a>(
        &mut self,
        conns: impl IntoIterator<Item = (ConnId, &'a mut dyn QuicConn)>,
    ) {
        for (id, q) in conns {
            if let Some(mut conn) = self.conns.remove(&id) {
                conn.close(q, close_code::NORMAL, "shutdown");
                for m in conn.take_unconfirmed() {
                    self.bounce(m, DropReason::Shutdown);
                }
            }
        }
        self.parked.clear();
        for conn in std::mem::take(&mut self.conns).into_values() {
            let mut conn = conn;
            for m in conn.take_unconfirmed() {
                self.bounce(m, DropReason::Shutdown);
            }
        }
        let nodes: Vec<NodeIdentity> = self.peers.keys().copied().collect();
        for n in nodes {
            let queued: Vec<RemoteSend> = self
                .peers
                .get_mut(&n)
                .map(|p| p.queue.drain(..).collect())
                .unwrap_or_default();
            for m in queued {
                self.bounce(m, DropReason::Shutdown);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Helpers shared by the submodules.

    fn bounce(&mut self, send: RemoteSend, reason: DropReason) {
        if let Some(upstream) = send.relay.as_ref().and_then(|r| r.upstream) {
            self.released.push(upstream);
        }
        self.stats.dropped(reason);
        log::debug!(
            "transport: dropped message {} to {}: {}",
            send.header.id.0,
            send.node.short(),
            reason.label()
        );
        self.outputs.push_back(Output::Bounce { send, reason });
    }

    fn notify(&mut self, event: TransportEvent) {
        for s in &self.subscribers {
            self.outputs.push_back(Output::Notify {
                to: *s,
                event: event.clone(),
            });
        }
    }

    fn answer(&mut self, to: EngineIdentity, event: TransportEvent) {
        self.outputs.push_back(Output::Answer { to, event });
    }

    fn connected_nodes(&self) -> Vec<(NodeIdentity, SocketAddr)> {
        let mut list: Vec<_> = self
            .peers
            .iter()
            .filter_map(|(n, p)| {
                let c = self.conns.get(&p.active?)?;
                Some((*n, c.peer_addr.socket_addr()))
            })
            .collect();
        list.sort();
        list
    }

    /// A uniform value in [0, 1) for backoff jitter.
    fn jitter(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Puts messages back at the front of their peer's queue, in order, counting each as
    /// [`Fault::Resent`].
    fn requeue(&mut self, node: NodeIdentity, messages: Vec<RemoteSend>) {
        if messages.is_empty() {
            return;
        }
        for _ in &messages {
            self.stats.fault(Fault::Resent);
        }
        let peer = self.peers.entry(node).or_default();
        for m in messages.into_iter().rev() {
            peer.queue.push_front(m);
        }
    }
}
