//! The QUIC driver: the Transport's thread. It moves bytes between non-blocking UDP sockets,
//! quiche connections and the sans-IO connection core ([`crate::transport::core`]), which holds every
//! connection policy. Every quiche call of the crate lives here and in `raw.rs` (quiche reads
//! the clock itself, so its connections stay out of the core). TLS-over-TCP connections, the
//! fallback for networks that block UDP, run through the same core and loop (`tcp_driver`).
//!
//! The loop, each turn:
//! 1. polls the sockets and the waker, with the nearest deadline (connection timers, or the
//!    core's [`Core::poll_timeout`]) as timeout;
//! 2. reads the clock once, and drains its mailbox into the core's `handle_*` inputs;
//! 3. drains every readable socket until `WouldBlock`, feeding packets to their connections and
//!    accepting new ones when the core admits them;
//! 4. runs `on_timeout` only for connections whose deadline passed (a deadline heap), then the
//!    core's [`Core::handle_timeout`];
//! 5. follows the core's drain contract: outputs (dials, deliveries, bounces, notifications),
//!    then every connection the core wants serviced — service, send its packets, report it
//!    closed — draining outputs after each.
//!
//! Outputs map onto the node's channels: deliveries onto the Router's mailbox (a full mailbox
//! hands the delivery back to the core, which parks it), adverts onto the identity store's, and
//! bounces, answers and notifications through the Router ([`EnginePost`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use mio::net::TcpListener;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use self::tcp_driver::{Ready, TcpSlot};
use super::tls::{self, QuicParams, TlsIdentity};
use super::udp::{self, Offload};
use crate::identity::{Keypair, NodeIdentity};
use crate::mail::identity::{IdentityRequest, IdentityUpdate, Party};
use crate::mail::Input;
use crate::node::directory::EnginePost;
use crate::node::nis_shell::NisMail;
use crate::node::router_shell::RouterMail;
use crate::node::transport_link::TransportMail;
use crate::relay::RelayBoard;
use crate::runtime::stats::{DropReason, Fault, NodeStats};
use crate::time::Now;
use crate::transport::control::close_code;
use crate::transport::core::peers::ConnId;
use crate::transport::core::{Core, Delivery, Output, QuicConn, RecvError, SeededRng, SendError};
use crate::transport::TransportConfig;
use crate::wire::{NodeAdvert, TransportAddress};

#[path = "measure.rs"]
mod measure;
#[path = "tcp_driver.rs"]
mod tcp_driver;

/// The waker's token; UDP sockets use their index (TCP: see `tcp_driver`).
const WAKER: Token = Token(usize::MAX);
/// Length of the connection ids this node issues.
pub(super) const CID_LEN: usize = 16;
/// Receive buffer: the largest UDP payload.
pub(super) const RECV_BUF: usize = 65_535;
/// Socket buffer size requested from the kernel.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

impl QuicConn for quiche::Connection {
    fn is_established(&self) -> bool {
        quiche::Connection::is_established(self)
    }

    fn is_closed(&self) -> bool {
        quiche::Connection::is_closed(self)
    }

    fn peer_identity(&self) -> Result<NodeIdentity, String> {
        let der = quiche::Connection::peer_cert(self).ok_or("no certificate")?;
        tls::peer_identity_from_cert(der, SystemTime::now()).map_err(|e| e.to_string())
    }

    fn readable(&mut self) -> Vec<u64> {
        quiche::Connection::readable(self).collect()
    }

    fn stream_recv(&mut self, sid: u64, buf: &mut [u8]) -> Result<(usize, bool), RecvError> {
        match quiche::Connection::stream_recv(self, sid, buf) {
            Ok(r) => Ok(r),
            Err(quiche::Error::Done) => Err(RecvError::Done),
            Err(e) => Err(RecvError::Failed(e.to_string())),
        }
    }

    fn stream_send(&mut self, sid: u64, data: &[u8], fin: bool) -> Result<usize, SendError> {
        match quiche::Connection::stream_send(self, sid, data, fin) {
            Ok(n) => Ok(n),
            Err(quiche::Error::Done) | Err(quiche::Error::StreamLimit) => Err(SendError::Blocked),
            Err(quiche::Error::StreamStopped(code)) => Err(SendError::Stopped(code)),
            Err(e) => Err(SendError::Failed(e.to_string())),
        }
    }

    fn stream_stop(&mut self, sid: u64, code: u64) {
        let _ = quiche::Connection::stream_shutdown(self, sid, quiche::Shutdown::Read, code);
    }

    fn dgram_max_writable_len(&self) -> Option<usize> {
        quiche::Connection::dgram_max_writable_len(self)
    }

    fn dgram_send(&mut self, data: &[u8]) -> bool {
        quiche::Connection::dgram_send(self, data).is_ok()
    }

    fn dgram_recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        quiche::Connection::dgram_recv(self, buf).ok()
    }

    fn peer_streams_left_uni(&self) -> u64 {
        quiche::Connection::peer_streams_left_uni(self)
    }

    fn close(&mut self, code: u64, reason: &str) {
        let _ = quiche::Connection::close(self, true, code, reason.as_bytes());
    }

    fn send_ack_eliciting(&mut self) {
        let _ = quiche::Connection::send_ack_eliciting(self);
    }

    fn acked_bytes(&self) -> u64 {
        quiche::Connection::stats(self).acked_bytes
    }

    fn close_description(&self) -> String {
        let describe = |who: &str, e: &quiche::ConnectionError| {
            let reason = String::from_utf8_lossy(&e.reason);
            let kind = if e.is_app { "application" } else { "transport" };
            format!(
                "{who} closed it: {kind} error 0x{:x} {reason}",
                e.error_code
            )
        };
        if let Some(e) = self.peer_error() {
            return describe("peer", e);
        }
        if let Some(e) = self.local_error() {
            return describe("we", e);
        }
        if self.is_timed_out() {
            return "idle timeout".into();
        }
        "closed".into()
    }

    fn identity_mismatch(&self) -> bool {
        // BoringSSL's certificate-verify failure as a TLS alert (0x100 + 42).
        self.local_error()
            .is_some_and(|e| !e.is_app && e.error_code == 0x12a)
    }
}

/// A quiche connection and what the driver keeps with it.
struct QConn {
    q: quiche::Connection,
    cids: Vec<Vec<u8>>,
    sock: usize,
    deadline: Option<Instant>,
}

pub(super) struct Socket {
    pub(super) udp: UdpSocket,
    pub(super) local: SocketAddr,
    pub(super) offload: Offload,
}

/// What the Transport thread needs from the node.
pub(crate) struct DriverParts {
    pub(crate) key: Keypair,
    pub(crate) config: TransportConfig,
    pub(crate) advert: NodeAdvert,
    pub(crate) peers: Vec<(NodeAdvert, bool)>,
    /// Trust set in the configuration, per node (0 bans).
    pub(crate) trust: Vec<(NodeIdentity, u8)>,
    /// Measurements kept in the identity store's file from an earlier run.
    pub(crate) measured: Vec<(NodeIdentity, crate::mail::identity::Measurement)>,
    pub(crate) mailbox: Receiver<TransportMail>,
    pub(crate) woken: Arc<AtomicBool>,
    pub(crate) router: Sender<RouterMail>,
    pub(crate) nis: Sender<NisMail>,
    pub(crate) directory: EnginePost,
    pub(crate) stats: Arc<NodeStats>,
    /// Where connected peers are published as relay candidates, with their measured RTT.
    pub(crate) relay_board: RelayBoard,
}

/// Binds the listen sockets (before the node's advert can be made) and creates the poll.
pub(crate) struct Bound {
    pub(super) poll: Poll,
    waker: Arc<Waker>,
    pub(super) sockets: Vec<Socket>,
    tcp_listeners: Vec<(TcpListener, SocketAddr)>,
}

impl Bound {
    /// Binds every UDP address of `listen` and TCP address of `listen_tcp` (port 0 picks a
    /// free port).
    pub(crate) fn bind(listen: &[SocketAddr], listen_tcp: &[SocketAddr]) -> io::Result<Bound> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut bound = Bound {
            poll,
            waker,
            sockets: Vec::new(),
            tcp_listeners: Vec::new(),
        };
        for addr in listen {
            let socket = open_socket(&bound.poll, *addr, bound.sockets.len())?;
            bound.sockets.push(socket);
        }
        for addr in listen_tcp {
            let index = bound.tcp_listeners.len();
            let listener = tcp_driver::open_listener(&bound.poll, *addr, index)?;
            bound.tcp_listeners.push(listener);
        }
        Ok(bound)
    }

    /// The bound UDP addresses.
    pub(crate) fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|s| s.local).collect()
    }

    /// The bound TCP addresses.
    pub(crate) fn local_tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp_listeners.iter().map(|(_, a)| *a).collect()
    }

    /// Every bound address as advertised: QUIC first, then TCP, with their weights.
    pub(crate) fn advertised(&self) -> Vec<(TransportAddress, u8)> {
        crate::wire::advert::listen_addresses(&self.local_addrs(), &self.local_tcp_addrs())
    }

    /// The waker other threads use.
    pub(crate) fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }
}

/// Binds a non-blocking socket and registers it with `poll` under token `index`.
fn open_socket(poll: &Poll, addr: SocketAddr, index: usize) -> io::Result<Socket> {
    let std = std::net::UdpSocket::bind(addr)?;
    std.set_nonblocking(true)?;
    udp::set_buffer_sizes(&std, SOCKET_BUFFER_BYTES);
    let local = std.local_addr()?;
    let mut udp = UdpSocket::from_std(std);
    poll.registry()
        .register(&mut udp, Token(index), Interest::READABLE)?;
    let offload = Offload::probe(&udp);
    Ok(Socket {
        udp,
        local,
        offload,
    })
}

/// The Transport's thread state: sockets, quiche connections and the core.
pub(crate) struct Driver {
    poll: Poll,
    events: Events,
    sockets: Vec<Socket>,
    mailbox: Receiver<TransportMail>,
    woken: Arc<AtomicBool>,
    router: Sender<RouterMail>,
    nis: Sender<NisMail>,
    directory: EnginePost,
    stats: Arc<NodeStats>,
    params: QuicParams,
    tls: TlsIdentity,
    server_config: quiche::Config,
    core: Core<SeededRng>,
    /// Iterated at shutdown: ordered.
    conns: BTreeMap<ConnId, QConn>,
    /// TLS-over-TCP connections (iterated at shutdown: ordered).
    tcp: BTreeMap<ConnId, TcpSlot>,
    tcp_listeners: Vec<(TcpListener, SocketAddr)>,
    tcp_server: boring::ssl::SslContext,
    /// Looked up by key only.
    by_cid: HashMap<Vec<u8>, ConnId>,
    deadlines: BinaryHeap<Reverse<(Instant, ConnId)>>,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
    relay_board: RelayBoard,
    next_board: Instant,
    /// When each connected peer's measurement was last sent to the identity store.
    measured: HashMap<NodeIdentity, Instant>,
}

impl Driver {
    /// Builds the driver around sockets bound by [`Bound::bind`]. The core's random source is
    /// seeded from the operating system.
    pub(crate) fn new(bound: Bound, parts: DriverParts) -> Result<Driver, String> {
        let tls = TlsIdentity::new(&parts.key).map_err(|e| e.to_string())?;
        let params = QuicParams {
            idle_timeout: parts.config.idle_timeout,
            ..QuicParams::default()
        };
        let server_config = tls::server_config(&tls, &params).map_err(|e| e.to_string())?;
        let tcp_server = tls::tcp_server_context(&tls).map_err(|e| e.to_string())?;
        let seed = rand_core::RngCore::next_u64(&mut rand_core::OsRng);
        let mut core = Core::new(
            parts.key.node_identity(),
            parts.advert,
            parts.config,
            parts.peers,
            Arc::clone(&parts.stats),
            SeededRng::new(seed),
        );
        for (node, trust) in parts.trust {
            core.set_trust(node, trust);
        }
        for (node, m) in parts.measured {
            core.seed_measurement(node, m);
        }
        Ok(Driver {
            poll: bound.poll,
            events: Events::with_capacity(256),
            sockets: bound.sockets,
            mailbox: parts.mailbox,
            woken: parts.woken,
            router: parts.router,
            nis: parts.nis,
            directory: parts.directory,
            stats: parts.stats,
            params,
            tls,
            server_config,
            core,
            conns: BTreeMap::new(),
            tcp: BTreeMap::new(),
            tcp_listeners: bound.tcp_listeners,
            tcp_server,
            by_cid: HashMap::new(),
            deadlines: BinaryHeap::new(),
            recv_buf: vec![0; RECV_BUF],
            send_buf: vec![0; RECV_BUF],
            relay_board: parts.relay_board,
            next_board: Instant::now(),
            measured: HashMap::new(),
        })
    }

    /// Runs until `Stop` or until the mailbox closes.
    pub(crate) fn run(mut self) {
        let mut ready_sockets = Vec::new();
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("transport: poll failed: {e}");
                break;
            }
            ready_sockets.clear();
            for event in self.events.iter() {
                if event.token() != WAKER {
                    ready_sockets.push(event.token().0);
                }
            }
            self.woken.store(false, Ordering::Release);
            let now = Now::read();
            self.directory.flush();
            let mut stop = false;
            loop {
                match self.mailbox.try_recv() {
                    Ok(TransportMail::Stop) | Err(TryRecvError::Disconnected) => {
                        stop = true;
                        break;
                    }
                    Ok(mail) => self.handle_mail(now, mail),
                    Err(TryRecvError::Empty) => break,
                }
            }
            self.drain_outputs(now);
            for &token in &ready_sockets {
                match tcp_driver::classify(Token(token)) {
                    Ready::Udp(s) => self.read_socket(s, now),
                    Ready::Listener(l) => self.accept_tcp(l, now),
                    Ready::Tcp(id) => self.pump_tcp(id, now),
                }
            }
            let now = Now::read();
            self.fire_timeouts(now);
            self.core.handle_timeout(now);
            self.service_all(now);
            self.publish_board(now);
            if stop {
                self.shutdown(now);
                break;
            }
        }
        log::debug!("transport stopped");
    }

    fn poll_timeout(&mut self) -> Duration {
        let now = Now::read();
        let mut next = self.core.poll_timeout(now);
        while let Some(Reverse((t, id))) = self.deadlines.peek().copied() {
            let live = self.conns.get(&id).is_some_and(|c| c.deadline == Some(t))
                || self.tcp_deadline_is(id, t);
            if !live {
                self.deadlines.pop();
                continue;
            }
            next = next.min(t);
            break;
        }
        if self.directory.is_backlogged() {
            next = next.min(now.instant + Duration::from_millis(1));
        }
        next.saturating_duration_since(now.instant)
    }

    fn handle_mail(&mut self, now: Now, mail: TransportMail) {
        match mail {
            TransportMail::Send(send) => self.core.handle_send(now, send),
            TransportMail::Request { from, req } => self.core.handle_request(now, from, req),
            TransportMail::Identity(event) => self.core.handle_identity(*event),
            TransportMail::Processed(receipts) => self.core.handle_processed(receipts),
            TransportMail::CutOff(cut) => self.core.handle_cut_off(now, cut),
            TransportMail::Exchange(req) => self.core.handle_exchange(now, *req),
            TransportMail::Stop => {}
        }
    }

    // -----------------------------------------------------------------------------------------
    // The core's outputs.

    /// Drains the core's outputs onto the node's channels. Once a delivery of a connection does
    /// not fit in the Router's mailbox, it and every later one of that connection are handed
    /// back, so parked frames keep their order.
    fn drain_outputs(&mut self, now: Now) {
        // Looked up only.
        let mut refused: HashSet<ConnId> = HashSet::new();
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Deliver(d) => {
                    if refused.contains(&d.conn) {
                        self.core.handle_refused(d);
                        continue;
                    }
                    let (conn, peer, receipt, relay) = (d.conn, d.peer, d.receipt, d.relay);
                    let mail = RouterMail::Remote {
                        peer,
                        wire: d.wire,
                        relay,
                        receipt,
                    };
                    match self.router.try_send(mail) {
                        Ok(()) => {}
                        Err(TrySendError::Full(RouterMail::Remote { wire, .. })) => {
                            refused.insert(conn);
                            self.core.handle_refused(Delivery {
                                conn,
                                peer,
                                wire,
                                relay,
                                receipt,
                            });
                        }
                        Err(_) => self.stats.dropped(DropReason::Shutdown),
                    }
                }
                Output::NoDirectPath(send) => self.directory.no_direct_path(send),
                // Counted by the core; the sender hears of it through the Router's bounce path.
                Output::Bounce { send, reason } => {
                    if send.header.notify {
                        self.directory.bounced(send.header, reason);
                    }
                }
                Output::Notify { to, event } => {
                    self.directory.deliver(to, Input::Transport(event));
                }
                Output::Answer { to, event } => {
                    self.directory.deliver(to, Input::Transport(event));
                }
                Output::StoreAdvert(advert) => {
                    let mail = NisMail::Request {
                        from: Party::Transport,
                        req: IdentityRequest::Update(IdentityUpdate::NodeAdvert(advert)),
                    };
                    if self.nis.try_send(mail).is_err() {
                        log::debug!("transport: identity store busy; peer advert not stored");
                    }
                }
                // The store never waits on us, nor we on it: what does not fit is counted.
                Output::Exchange(mail) => match self.nis.try_send(NisMail::FromPeer(mail)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        self.stats
                            .fault(crate::runtime::stats::Fault::ExchangeOverRate);
                        log::debug!("transport: identity store busy; identity exchange dropped");
                    }
                    // The store stops before the Transport at shutdown.
                    Err(TrySendError::Disconnected(_)) => {}
                },
                Output::Dial { conn, node, addr } => {
                    let dialled = match addr {
                        TransportAddress::Quic { .. } => self.dial(conn, node, addr.socket_addr()),
                        TransportAddress::Tcp { .. } => {
                            self.dial_tcp(conn, node, addr.socket_addr(), now)
                        }
                    };
                    if let Err(e) = dialled {
                        log::warn!("transport: cannot dial {addr}: {e}");
                        self.core.handle_dial_failed(now, conn);
                    }
                }
            }
        }
    }

    fn dial(&mut self, id: ConnId, node: NodeIdentity, addr: SocketAddr) -> Result<(), String> {
        let sock = self.socket_for(addr).ok_or("no socket for its family")?;
        let scid = new_cid();
        let local = self.sockets[sock].local;
        let mut cfg =
            tls::client_config(&self.tls, node, &self.params).map_err(|e| e.to_string())?;
        let q = quiche::connect(
            None,
            &quiche::ConnectionId::from_ref(&scid),
            local,
            addr,
            &mut cfg,
        )
        .map_err(|e| e.to_string())?;
        self.insert_conn(id, q, vec![scid], sock);
        Ok(())
    }

    fn insert_conn(&mut self, id: ConnId, q: quiche::Connection, cids: Vec<Vec<u8>>, sock: usize) {
        for cid in &cids {
            self.by_cid.insert(cid.clone(), id);
        }
        let conn = QConn {
            q,
            cids,
            sock,
            deadline: None,
        };
        self.conns.insert(id, conn);
    }

    fn socket_for(&mut self, peer: SocketAddr) -> Option<usize> {
        if let Some(i) = self
            .sockets
            .iter()
            .position(|s| s.local.is_ipv4() == peer.is_ipv4())
        {
            return Some(i);
        }
        let any: SocketAddr = if peer.is_ipv4() {
            "0.0.0.0:0".parse().expect("valid")
        } else {
            "[::]:0".parse().expect("valid")
        };
        let index = self.sockets.len();
        let socket = open_socket(&self.poll, any, index).ok()?;
        self.sockets.push(socket);
        Some(index)
    }

    // -----------------------------------------------------------------------------------------
    // Packets and timers.

    fn read_socket(&mut self, index: usize, now: Now) {
        let mut buf = std::mem::take(&mut self.recv_buf);
        while let Some(sock) = self.sockets.get(index) {
            match udp::recv(&sock.udp, &sock.offload, &mut buf) {
                Ok((n, from, segment)) => {
                    // A coalesced buffer (GRO) holds several datagrams of `segment` bytes.
                    let mut off = 0;
                    while off < n {
                        let end = (off + segment.max(1)).min(n);
                        self.handle_packet(index, &mut buf[off..end], from, now);
                        off = end;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("transport: recv on socket {index}: {e}");
                    break;
                }
            }
        }
        self.recv_buf = buf;
    }

    fn handle_packet(&mut self, sock: usize, packet: &mut [u8], from: SocketAddr, now: Now) {
        let local = self.sockets[sock].local;
        let Ok(hdr) = quiche::Header::from_slice(packet, CID_LEN) else {
            self.stats.fault(Fault::JunkPacket);
            log::debug!(
                "transport: junk packet from {from} ({} bytes): no QUIC header",
                packet.len()
            );
            return;
        };
        let id = match self.by_cid.get(hdr.dcid.as_ref()) {
            Some(&id) => id,
            None => {
                if hdr.ty != quiche::Type::Initial {
                    self.stats.fault(Fault::JunkPacket);
                    log::debug!(
                        "transport: junk packet from {from} ({} bytes): {:?} packet for no connection",
                        packet.len(),
                        hdr.ty
                    );
                    return;
                }
                if !quiche::version_is_supported(hdr.version) {
                    let mut out = std::mem::take(&mut self.send_buf);
                    if let Ok(n) = quiche::negotiate_version(&hdr.scid, &hdr.dcid, &mut out) {
                        let _ = self.sockets[sock].udp.send_to(&out[..n], from);
                    }
                    self.send_buf = out;
                    return;
                }
                if !self.core.may_accept(from) {
                    return;
                }
                let scid = new_cid();
                let q = match quiche::accept(
                    &quiche::ConnectionId::from_ref(&scid),
                    None,
                    local,
                    from,
                    &mut self.server_config,
                ) {
                    Ok(q) => q,
                    Err(e) => {
                        self.stats.fault(Fault::HandshakeFailed);
                        log::debug!("transport: accept from {from} failed: {e}");
                        return;
                    }
                };
                let id = self.core.handle_incoming(now, TransportAddress::quic(from));
                // The client resends its first packets to the id it chose until it learns ours.
                self.insert_conn(id, q, vec![scid, hdr.dcid.to_vec()], sock);
                id
            }
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let info = quiche::RecvInfo { from, to: local };
        match conn.q.recv(packet, info) {
            Ok(_) | Err(quiche::Error::Done) => {}
            Err(e) => log::debug!("transport: packet from {from}: {e}"),
        }
        self.core.handle_activity(id);
    }

    fn fire_timeouts(&mut self, now: Now) {
        while let Some(Reverse((t, id))) = self.deadlines.peek().copied() {
            if t > now.instant {
                break;
            }
            self.deadlines.pop();
            if let Some(conn) = self.conns.get_mut(&id) {
                if conn.deadline == Some(t) {
                    conn.deadline = None;
                    conn.q.on_timeout();
                    self.core.handle_activity(id);
                }
            } else if self.tcp_deadline_is(id, t) {
                if let Some(slot) = self.tcp.get_mut(&id) {
                    slot.deadline = None;
                }
                self.pump_tcp(id, now);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Servicing connections (the core's drain contract, step 2).

    fn service_all(&mut self, now: Now) {
        self.drain_outputs(now);
        while let Some(id) = self.core.poll_service() {
            let room = match self.router.capacity() {
                Some(cap) => cap.saturating_sub(self.router.len()),
                None => usize::MAX,
            };
            let Some(conn) = self.conns.get_mut(&id) else {
                if self.service_tcp(id, now, room) {
                    self.drain_outputs(now);
                }
                continue;
            };
            self.core.service(now, id, &mut conn.q, room);
            let sock = &mut self.sockets[conn.sock];
            if let Err(e) = udp::flush(
                &mut conn.q,
                &sock.udp,
                &mut sock.offload,
                &mut self.send_buf,
            ) {
                log::warn!("transport: quiche send failed: {e}; closing");
                QuicConn::close(&mut conn.q, close_code::NORMAL, "internal send error");
            }
            if conn.q.is_closed() {
                self.core.handle_closed(now, id, &conn.q);
                if let Some(conn) = self.conns.remove(&id) {
                    for cid in &conn.cids {
                        self.by_cid.remove(cid);
                    }
                }
            } else {
                conn.deadline = conn.q.timeout_instant();
                if let Some(t) = conn.deadline {
                    self.deadlines.push(Reverse((t, id)));
                }
            }
            self.drain_outputs(now);
        }
    }

    fn shutdown(&mut self, now: Now) {
        let quic = self
            .conns
            .iter_mut()
            .map(|(id, c)| (*id, &mut c.q as &mut dyn QuicConn));
        let tcp = self
            .tcp
            .iter_mut()
            .map(|(id, s)| (*id, &mut s.conn as &mut dyn QuicConn));
        self.core.handle_shutdown(quic.chain(tcp));
        for slot in self.tcp.values_mut() {
            slot.conn.pump(now.instant, &mut self.recv_buf);
        }
        for conn in self.conns.values_mut() {
            let sock = &mut self.sockets[conn.sock];
            let _ = udp::flush(
                &mut conn.q,
                &sock.udp,
                &mut sock.offload,
                &mut self.send_buf,
            );
        }
        self.drain_outputs(now);
    }
}

fn new_cid() -> Vec<u8> {
    let mut cid = vec![0u8; CID_LEN];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut cid);
    cid
}
