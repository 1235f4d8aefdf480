//! The QUIC driver: the Transport's thread. A mio poll loop over non-blocking UDP sockets and
//! quiche connections — every quiche call of the crate lives here (quiche reads the clock
//! itself, so this is the one place where engine logic and I/O are not separated).
//!
//! The loop, each turn:
//! 1. polls the sockets and the waker, with the nearest deadline (connection timers, the
//!    maintenance tick, or 1 ms while the Router's mailbox is full) as timeout;
//! 2. drains its mailbox (messages from the Router, requests from engines, identity updates);
//! 3. drains every readable socket until `WouldBlock`, feeding packets to their connections and
//!    accepting new ones within the connection limits;
//! 4. runs `on_timeout` only for connections whose deadline passed (a deadline heap);
//! 5. every [`TICK`]: dials peers that need it (with backoff), drops expired queued messages,
//!    sends keep-alives on permanent connections, abandons dials past [`CONNECT_TIMEOUT`];
//! 6. services every connection touched: handshake completion, the connect exchange, reading
//!    frames, acknowledging them, writing queued frames, and sending packets.
//!
//! Streams: each side opens one unidirectional control stream (see `control`), one
//! unidirectional stream per (source engine, destination) pair for reliable ordered messages,
//! and one per message for reliable unordered ones; unreliable messages go in DATAGRAMs.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use super::control::{self, close_code, Ack, Hello, VERSION_MAX, VERSION_MIN};
use super::frame::{self, kind, FrameDecoder, FrameError};
use super::peers::{ConnId, Peer};
use super::tls::{self, QuicParams, TlsIdentity};
use super::udp::{self, Offload};
use super::{ConnectResult, RemoteSend, TransportConfig, TransportEvent, TransportRequest};
use crate::identity::{EngineIdentity, Keypair, NodeIdentity};
use crate::identity_store::{
    IdentityEvent, IdentityRecord, IdentityRequest, IdentityUpdate, Party, UpdateResult,
};
use crate::mail::{Input, Undeliverable};
use crate::node::directory::Directory;
use crate::node::nis_shell::NisMail;
use crate::node::router_shell::RouterMail;
use crate::node::transport_link::TransportMail;
use crate::runtime::stats::{DropReason, Fault, NodeStats};
use crate::time::wall_clock;
use crate::wire::{Destination, NodeAdvert, Reliability, Security, TransportPrefs};

/// The waker's token; sockets use their index.
const WAKER: Token = Token(usize::MAX);
/// Length of the connection ids this node issues.
const CID_LEN: usize = 16;
/// Period of peer maintenance.
pub const TICK: Duration = Duration::from_millis(50);
/// A dial not ready (TLS and hello) within this long is abandoned and retried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection replaced by a duplicate may drain before it is closed.
const RETIRE_GRACE: Duration = Duration::from_secs(2);
/// Longest silence, after sending data, before a connection probes the peer for an
/// acknowledgement (capped at a quarter of the idle timeout).
///
/// quiche backs its probe timeout off exponentially and resets it only when an acknowledgement
/// arrives: after a lossy handshake the timer can reach tens of seconds, past the idle timeout,
/// and a lost hello is then never resent. A tiny ack-eliciting probe every second while data is
/// unanswered keeps loss recovery going at a bounded pace.
const PROBE_AFTER: Duration = Duration::from_secs(1);
/// Receive buffer: the largest UDP payload.
const RECV_BUF: usize = 65_535;
/// Socket buffer size requested from the kernel.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// TLS handshake in progress.
    Handshake,
    /// TLS done; our hello sent, waiting for the peer's.
    AwaitHello,
    /// Messages flow.
    Ready,
}

/// One of our outgoing streams.
#[derive(Debug)]
struct OutStream {
    buf: Vec<u8>,
    off: usize,
    /// Finish the stream once `buf` is written.
    fin: bool,
    fin_sent: bool,
    /// Whether quiche has accepted a write (the stream exists on the wire).
    opened: bool,
    /// Message frames written so far (the next frame's sequence number).
    frames: u64,
    /// Messages not yet acknowledged, with their sequence numbers.
    unconfirmed: VecDeque<(u64, RemoteSend)>,
    last_used: Instant,
    /// Whether this is the control stream (never finished, never acknowledged).
    control: bool,
}

impl OutStream {
    fn new(now: Instant, control: bool) -> OutStream {
        OutStream {
            buf: Vec::new(),
            off: 0,
            fin: false,
            fin_sent: false,
            opened: false,
            frames: 0,
            unconfirmed: VecDeque::new(),
            last_used: now,
            control,
        }
    }

    fn done(&self) -> bool {
        !self.control && self.fin_sent && self.unconfirmed.is_empty()
    }
}

/// A received frame's stream and position on it.
type FramePos = (u64, u64);

/// One of the peer's streams.
#[derive(Debug)]
struct InStream {
    decoder: FrameDecoder,
    /// Message frames handed to the Router (the next frame's position).
    handed: u64,
    /// Frames the Router has finished with, as a prefix: everything below is acknowledged.
    processed: u64,
    /// Frames finished out of order, above `processed`.
    done: std::collections::BTreeSet<u64>,
    finished: bool,
}

impl InStream {
    /// Records that the Router finished with frame `seq`; returns whether the acknowledged
    /// prefix grew.
    fn processed(&mut self, seq: u64) -> bool {
        if seq < self.processed {
            return false;
        }
        self.done.insert(seq);
        let before = self.processed;
        while self.done.remove(&self.processed) {
            self.processed += 1;
        }
        self.processed > before
    }
}

struct Conn {
    q: quiche::Connection,
    cids: Vec<Vec<u8>>,
    sock: usize,
    peer_addr: SocketAddr,
    outbound: bool,
    node: Option<NodeIdentity>,
    state: State,
    started: Instant,
    instance: Option<u64>,
    next_uni: u64,
    control_out: Option<u64>,
    out: BTreeMap<u64, OutStream>,
    pairs: HashMap<(EngineIdentity, Destination), u64>,
    control_in: FrameDecoder,
    inbound: HashMap<u64, InStream>,
    /// Bytes of incomplete frames held by the `inbound` decoders.
    partial_bytes: usize,
    ack_dirty: HashSet<u64>,
    /// Frames (with their stream and position) waiting for room in the Router's mailbox.
    inbox: VecDeque<(Option<FramePos>, Vec<u8>)>,
    keepalive: Instant,
    /// The stream id at which the next [`Driver::flush_streams`] pass starts.
    flush_from: u64,
    /// Since when data handed to quiche has gone unacknowledged (no progress in quiche's
    /// acknowledged bytes since `acked_mark`).
    unanswered_since: Option<Instant>,
    /// quiche's acknowledged-bytes count when `unanswered_since` was set.
    acked_mark: u64,
    /// When this connection last probed for an acknowledgement.
    last_probe: Instant,
    deadline: Option<Instant>,
    /// A dial given up on: closing, no longer tied to its peer.
    abandoned: bool,
    /// Since when this connection has been replaced by a duplicate and is draining.
    retiring: Option<Instant>,
    /// Why we closed it, if we did.
    close_reason: Option<String>,
}

impl Conn {
    fn peer_control_stream(&self) -> u64 {
        // Client-initiated unidirectional streams are 2 mod 4, server-initiated 3 mod 4.
        if self.outbound {
            3
        } else {
            2
        }
    }

    fn is_peer_uni(&self, sid: u64) -> bool {
        sid % 4 == if self.outbound { 3 } else { 2 }
    }

    fn open_stream(&mut self, now: Instant, control: bool) -> u64 {
        let sid = self.next_uni;
        self.next_uni += 4;
        self.out.insert(sid, OutStream::new(now, control));
        sid
    }

    /// Forgets a stream the peer opened, with whatever partial frame it held.
    fn remove_inbound(&mut self, sid: u64) {
        if let Some(s) = self.inbound.remove(&sid) {
            self.partial_bytes -= s.decoder.buffered();
        }
    }

    fn unopened_streams(&self) -> u64 {
        self.out.values().filter(|s| !s.opened).count() as u64
    }

    fn send_control(&mut self, kind: u8, payload: &[u8]) {
        if let Some(sid) = self.control_out {
            if let Some(s) = self.out.get_mut(&sid) {
                frame::encode(kind, payload, &mut s.buf);
            }
        }
    }

    fn close(&mut self, code: u64, reason: &str) {
        if self.close_reason.is_none() {
            self.close_reason = Some(reason.to_string());
        }
        let _ = self.q.close(true, code, reason.as_bytes());
    }

    /// Takes every unacknowledged message, stream by stream in order.
    fn take_unconfirmed(&mut self) -> Vec<RemoteSend> {
        let mut out = Vec::new();
        for s in self.out.values_mut() {
            out.extend(s.unconfirmed.drain(..).map(|(_, m)| m));
        }
        out
    }

    fn error_text(&self) -> String {
        if let Some(r) = &self.close_reason {
            return r.clone();
        }
        let describe = |who: &str, e: &quiche::ConnectionError| {
            let reason = String::from_utf8_lossy(&e.reason);
            let kind = if e.is_app { "application" } else { "transport" };
            format!(
                "{who} closed it: {kind} error 0x{:x} {reason}",
                e.error_code
            )
        };
        if let Some(e) = self.q.peer_error() {
            return describe("peer", e);
        }
        if let Some(e) = self.q.local_error() {
            return describe("we", e);
        }
        if self.q.is_timed_out() {
            return "idle timeout".into();
        }
        "closed".into()
    }
}

struct Socket {
    udp: UdpSocket,
    local: SocketAddr,
    offload: Offload,
}

/// What the Transport thread needs from the node.
pub(crate) struct DriverParts {
    pub(crate) key: Keypair,
    pub(crate) config: TransportConfig,
    pub(crate) advert: NodeAdvert,
    pub(crate) peers: Vec<(NodeAdvert, bool)>,
    pub(crate) mailbox: Receiver<TransportMail>,
    pub(crate) woken: Arc<AtomicBool>,
    pub(crate) router: Sender<RouterMail>,
    pub(crate) nis: Sender<NisMail>,
    pub(crate) directory: Directory,
    pub(crate) stats: Arc<NodeStats>,
}

/// Binds the listen sockets (before the node's advert can be made) and creates the poll.
pub(crate) struct Bound {
    poll: Poll,
    waker: Arc<Waker>,
    sockets: Vec<Socket>,
}

impl Bound {
    /// Binds every address of `listen` (port 0 picks a free port).
    pub(crate) fn bind(listen: &[SocketAddr]) -> io::Result<Bound> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut bound = Bound {
            poll,
            waker,
            sockets: Vec::new(),
        };
        for addr in listen {
            bound.add_socket(*addr)?;
        }
        Ok(bound)
    }

    fn add_socket(&mut self, addr: SocketAddr) -> io::Result<usize> {
        let std = std::net::UdpSocket::bind(addr)?;
        std.set_nonblocking(true)?;
        set_buffer_sizes(&std);
        let local = std.local_addr()?;
        let mut udp = UdpSocket::from_std(std);
        let index = self.sockets.len();
        self.poll
            .registry()
            .register(&mut udp, Token(index), Interest::READABLE)?;
        let offload = Offload::probe(&udp);
        self.sockets.push(Socket {
            udp,
            local,
            offload,
        });
        Ok(index)
    }

    /// The bound addresses.
    pub(crate) fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|s| s.local).collect()
    }

    /// The waker other threads use.
    pub(crate) fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }
}

#[cfg(target_os = "linux")]
fn set_buffer_sizes(socket: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    let size = SOCKET_BUFFER_BYTES as libc::c_int;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: a valid socket descriptor and a pointer to a c_int of the given length.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            log::debug!(
                "transport: setsockopt buffer size: {}",
                io::Error::last_os_error()
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn set_buffer_sizes(_socket: &std::net::UdpSocket) {}

/// The Transport's state.
pub(crate) struct Driver {
    poll: Poll,
    events: Events,
    sockets: Vec<Socket>,
    mailbox: Receiver<TransportMail>,
    woken: Arc<AtomicBool>,
    router: Sender<RouterMail>,
    nis: Sender<NisMail>,
    directory: Directory,
    stats: Arc<NodeStats>,
    config: TransportConfig,
    params: QuicParams,
    tls: TlsIdentity,
    server_config: quiche::Config,
    node: NodeIdentity,
    advert: NodeAdvert,
    instance: u64,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    by_cid: HashMap<Vec<u8>, ConnId>,
    per_ip: HashMap<IpAddr, usize>,
    deadlines: BinaryHeap<Reverse<(Instant, ConnId)>>,
    peers: HashMap<NodeIdentity, Peer>,
    known: HashSet<NodeIdentity>,
    subscribers: HashSet<EngineIdentity>,
    dirty: Vec<ConnId>,
    next_tick: Instant,
    rng: u64,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
}

impl Driver {
    /// Builds the driver around sockets bound by [`Bound::bind`].
    pub(crate) fn new(bound: Bound, parts: DriverParts) -> Result<Driver, String> {
        let tls = TlsIdentity::new(&parts.key).map_err(|e| e.to_string())?;
        let params = QuicParams {
            idle_timeout: parts.config.idle_timeout,
            ..QuicParams::default()
        };
        let server_config = tls::server_config(&tls, &params).map_err(|e| e.to_string())?;
        let mut seed = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        let instance = u64::from_le_bytes(seed) | 1;
        let mut peers = HashMap::new();
        let mut known = HashSet::new();
        for (advert, permanent) in parts.peers {
            let p: &mut Peer = peers.entry(advert.id).or_default();
            p.learn_advert(&advert);
            p.permanent |= permanent;
            known.insert(advert.id);
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
            node: parts.key.node_identity(),
            advert: parts.advert,
            config: parts.config,
            params,
            tls,
            server_config,
            instance,
            conns: HashMap::new(),
            next_conn: 1,
            by_cid: HashMap::new(),
            per_ip: HashMap::new(),
            deadlines: BinaryHeap::new(),
            peers,
            known,
            subscribers: HashSet::new(),
            dirty: Vec::new(),
            next_tick: Instant::now(),
            rng: instance,
            recv_buf: vec![0; RECV_BUF],
            send_buf: vec![0; RECV_BUF],
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
            let mut stop = false;
            loop {
                match self.mailbox.try_recv() {
                    Ok(mail) => {
                        if self.handle_mail(mail) {
                            stop = true;
                            break;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        stop = true;
                        break;
                    }
                }
            }
            for &s in &ready_sockets {
                self.read_socket(s);
            }
            let now = Instant::now();
            self.fire_timeouts(now);
            if now >= self.next_tick {
                self.next_tick = now + TICK;
                self.tick(now);
            }
            self.service_dirty(now);
            if stop {
                self.shutdown();
                break;
            }
        }
        log::debug!("transport stopped");
    }

    fn poll_timeout(&mut self) -> Duration {
        let now = Instant::now();
        let mut next = self.next_tick;
        while let Some(Reverse((t, id))) = self.deadlines.peek().copied() {
            let live = self.conns.get(&id).is_some_and(|c| c.deadline == Some(t));
            if !live {
                self.deadlines.pop();
                continue;
            }
            next = next.min(t);
            break;
        }
        if self.conns.values().any(|c| !c.inbox.is_empty()) {
            next = next.min(now + Duration::from_millis(1));
        }
        next.saturating_duration_since(now)
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: jitter and connection ids need spread, not secrecy.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn new_cid(&mut self) -> Vec<u8> {
        let mut cid = vec![0u8; CID_LEN];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut cid);
        cid
    }

    // -----------------------------------------------------------------------------------------
    // Mailbox.

    /// Returns true on `Stop`.
    fn handle_mail(&mut self, mail: TransportMail) -> bool {
        match mail {
            TransportMail::Send(send) => self.enqueue(send),
            TransportMail::Request { from, req } => self.handle_request(from, req),
            TransportMail::Identity(event) => self.handle_identity(*event),
            TransportMail::Processed(receipts) => self.processed(receipts),
            TransportMail::Stop => return true,
        }
        false
    }

    fn enqueue(&mut self, send: RemoteSend) {
        let limit = self.config.limits.max_peer_queue_bytes;
        let node = send.node;
        if node == self.node {
            return self.bounce(send, DropReason::NoRoute);
        }
        let peer = self.peers.entry(node).or_default();
        if peer.active.is_none() && peer.dialing.is_none() && peer.addrs.is_empty() {
            return self.bounce(send, DropReason::NoRoute);
        }
        if peer.bytes + send.wire.len() > limit {
            return self.bounce(send, DropReason::QueueFull);
        }
        peer.bytes += send.wire.len();
        peer.queue.push_back(send);
        if let Some(c) = peer.active {
            self.dirty.push(c);
        } else if peer.should_dial(Instant::now()) {
            self.dial(node);
        }
    }

    fn bounce(&self, send: RemoteSend, reason: DropReason) {
        self.stats.dropped(reason);
        log::debug!(
            "transport: dropped message {} to {}: {}",
            send.header.id.0,
            send.node.short(),
            reason.label()
        );
        if send.header.notify {
            let input = Input::Undeliverable(Undeliverable {
                id: send.header.id,
                dst: send.header.dst,
                reason,
            });
            if let Err(r) = self.directory.deliver(&send.header.src, input) {
                self.stats.dropped(r);
            }
        }
    }

    fn notify(&self, event: TransportEvent) {
        for s in &self.subscribers {
            if let Err(r) = self.directory.deliver(s, Input::Transport(event.clone())) {
                log::debug!(
                    "transport: notification to {} dropped: {}",
                    s.short(),
                    r.label()
                );
            }
        }
    }

    fn answer(&self, to: EngineIdentity, event: TransportEvent) {
        if let Err(r) = self.directory.deliver(&to, Input::Transport(event)) {
            log::debug!("transport: answer to {} dropped: {}", to.short(), r.label());
        }
    }

    /// The Router finished with these frames: acknowledge them to their senders.
    fn processed(&mut self, receipts: Vec<super::Receipt>) {
        for r in receipts {
            let Some(conn) = self.conns.get_mut(&r.conn) else {
                continue;
            };
            let Some(stream) = conn.inbound.get_mut(&r.stream) else {
                continue;
            };
            if stream.processed(r.seq) {
                conn.ack_dirty.insert(r.stream);
                self.dirty.push(r.conn);
            }
        }
    }

    fn handle_request(&mut self, from: EngineIdentity, req: TransportRequest) {
        match req {
            TransportRequest::Connect { node } => {
                let peer = self.peers.entry(node).or_default();
                let result = if peer.active.is_some() {
                    ConnectResult::AlreadyConnected
                } else if peer.dialing.is_some() {
                    ConnectResult::Connecting
                } else if peer.addrs.is_empty() {
                    ConnectResult::NoAddress
                } else {
                    peer.next_dial = None;
                    self.dial(node);
                    ConnectResult::Connecting
                };
                self.answer(from, TransportEvent::Connect { node, result });
            }
            TransportRequest::Disconnect { node } => {
                let active = self.peers.get(&node).and_then(|p| p.active);
                let was_connected = match active.and_then(|c| self.conns.get_mut(&c)) {
                    Some(conn) => {
                        conn.close(close_code::NORMAL, "disconnect requested");
                        self.dirty.push(active.expect("checked"));
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

    fn connected_nodes(&self) -> Vec<(NodeIdentity, SocketAddr)> {
        let mut list: Vec<_> = self
            .peers
            .iter()
            .filter_map(|(n, p)| {
                let c = self.conns.get(&p.active?)?;
                Some((*n, c.peer_addr))
            })
            .collect();
        list.sort();
        list
    }

    fn handle_identity(&mut self, event: IdentityEvent) {
        match event {
            IdentityEvent::Updated {
                record: IdentityRecord::Node(r),
                ..
            } => {
                let peer = self.peers.entry(r.id).or_default();
                if let Some(a) = &r.advert {
                    if peer.advert_version.is_none_or(|v| a.version > v) {
                        peer.learn_advert(a);
                    }
                }
                if r.tprefs.is_some() {
                    peer.tprefs = r.tprefs;
                }
                if r.cprefs == Some(crate::identity_store::ConnectionPrefs::Permanent) {
                    peer.permanent = true;
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

    // -----------------------------------------------------------------------------------------
    // Dialling and accepting.

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
        let std = std::net::UdpSocket::bind(any).ok()?;
        std.set_nonblocking(true).ok()?;
        set_buffer_sizes(&std);
        let local = std.local_addr().ok()?;
        let mut udp = UdpSocket::from_std(std);
        let index = self.sockets.len();
        self.poll
            .registry()
            .register(&mut udp, Token(index), Interest::READABLE)
            .ok()?;
        let offload = Offload::probe(&udp);
        self.sockets.push(Socket {
            udp,
            local,
            offload,
        });
        Some(index)
    }

    fn dial(&mut self, node: NodeIdentity) {
        let now = Instant::now();
        let jitter = (self.random() >> 11) as f64 / (1u64 << 53) as f64;
        let (initial, max) = (self.config.backoff_initial, self.config.backoff_max);
        let Some(addr) = self.peers.get_mut(&node).and_then(|p| p.next_address()) else {
            return;
        };
        if self.conns.len() >= self.config.limits.max_connections {
            self.stats.fault(Fault::ConnectionLimit);
            if let Some(p) = self.peers.get_mut(&node) {
                p.failed(now, initial, max, jitter);
            }
            return;
        }
        let Some(sock) = self.socket_for(addr) else {
            log::warn!("transport: no socket to reach {addr}");
            if let Some(p) = self.peers.get_mut(&node) {
                p.failed(now, initial, max, jitter);
            }
            return;
        };
        let scid = self.new_cid();
        let local = self.sockets[sock].local;
        let q = tls::client_config(&self.tls, node, &self.params)
            .map_err(|e| e.to_string())
            .and_then(|mut cfg| {
                quiche::connect(
                    None,
                    &quiche::ConnectionId::from_ref(&scid),
                    local,
                    addr,
                    &mut cfg,
                )
                .map_err(|e| e.to_string())
            });
        let q = match q {
            Ok(q) => q,
            Err(e) => {
                log::error!("transport: cannot dial {addr}: {e}");
                if let Some(p) = self.peers.get_mut(&node) {
                    p.failed(now, initial, max, jitter);
                }
                return;
            }
        };
        let id = self.insert_conn(q, scid, sock, addr, true, Some(node));
        self.stats.dials.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = self.peers.get_mut(&node) {
            p.dialing = Some(id);
        }
        log::debug!("transport: dialling {} at {addr}", node.short());
    }

    fn insert_conn(
        &mut self,
        q: quiche::Connection,
        scid: Vec<u8>,
        sock: usize,
        peer_addr: SocketAddr,
        outbound: bool,
        node: Option<NodeIdentity>,
    ) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        let now = Instant::now();
        self.by_cid.insert(scid.clone(), id);
        if !outbound {
            *self.per_ip.entry(peer_addr.ip()).or_default() += 1;
        }
        self.conns.insert(
            id,
            Conn {
                q,
                cids: vec![scid],
                sock,
                peer_addr,
                outbound,
                node,
                state: State::Handshake,
                started: now,
                instance: None,
                next_uni: if outbound { 2 } else { 3 },
                control_out: None,
                out: BTreeMap::new(),
                pairs: HashMap::new(),
                control_in: FrameDecoder::new(64 << 10),
                inbound: HashMap::new(),
                partial_bytes: 0,
                ack_dirty: HashSet::new(),
                inbox: VecDeque::new(),
                keepalive: now,
                flush_from: 0,
                unanswered_since: None,
                acked_mark: 0,
                last_probe: now,
                deadline: None,
                abandoned: false,
                retiring: None,
                close_reason: None,
            },
        );
        self.dirty.push(id);
        id
    }

    fn read_socket(&mut self, index: usize) {
        let mut buf = std::mem::take(&mut self.recv_buf);
        while let Some(sock) = self.sockets.get(index) {
            match udp::recv(&sock.udp, &sock.offload, &mut buf) {
                Ok((n, from, segment)) => {
                    // A coalesced buffer (GRO) holds several datagrams of `segment` bytes.
                    let mut off = 0;
                    while off < n {
                        let end = (off + segment.max(1)).min(n);
                        self.handle_packet(index, &mut buf[off..end], from);
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

    fn handle_packet(&mut self, sock: usize, packet: &mut [u8], from: SocketAddr) {
        let local = self.sockets[sock].local;
        let hdr = match quiche::Header::from_slice(packet, CID_LEN) {
            Ok(h) => h,
            Err(_) => {
                self.stats.fault(Fault::JunkPacket);
                return;
            }
        };
        let id = match self.by_cid.get(hdr.dcid.as_ref()) {
            Some(&id) => id,
            None => {
                if hdr.ty != quiche::Type::Initial {
                    self.stats.fault(Fault::JunkPacket);
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
                let from_ip = self.per_ip.get(&from.ip()).copied().unwrap_or(0);
                if self.conns.len() >= self.config.limits.max_connections
                    || from_ip >= self.config.limits.max_connections_per_ip
                {
                    self.stats.fault(Fault::ConnectionLimit);
                    log::debug!("transport: refused a connection from {from}: connection limit");
                    return;
                }
                let scid = self.new_cid();
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
                let odcid = hdr.dcid.to_vec();
                let id = self.insert_conn(q, scid, sock, from, false, None);
                // The client resends its first packets to the id it chose until it learns ours.
                self.by_cid.insert(odcid.clone(), id);
                if let Some(c) = self.conns.get_mut(&id) {
                    c.cids.push(odcid);
                }
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
        self.dirty.push(id);
    }

    fn fire_timeouts(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.deadlines.peek().copied() {
            if t > now {
                break;
            }
            self.deadlines.pop();
            if let Some(conn) = self.conns.get_mut(&id) {
                if conn.deadline == Some(t) {
                    conn.deadline = None;
                    conn.q.on_timeout();
                    self.dirty.push(id);
                }
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        let wall = wall_clock();
        let nodes: Vec<NodeIdentity> = self.peers.keys().copied().collect();
        for node in nodes {
            let expired = match self.peers.get_mut(&node) {
                Some(p) => p.take_expired(wall),
                None => continue,
            };
            for m in expired {
                self.bounce(m, DropReason::Expired);
            }
            // A peer without an address (it connected to us once) keeps its queue until the
            // messages expire, in case it connects again.
            if self.peers.get(&node).is_some_and(|p| p.should_dial(now)) {
                self.dial(node);
            }
        }
        let keepalive_every = self.config.idle_timeout / 3;
        let probe_after = PROBE_AFTER.min(self.config.idle_timeout / 4);
        let mut abandon = Vec::new();
        for (&id, conn) in self.conns.iter_mut() {
            let permanent = conn
                .node
                .and_then(|n| self.peers.get(&n))
                .is_some_and(|p| p.permanent && p.active == Some(id));
            if permanent && now.saturating_duration_since(conn.keepalive) >= keepalive_every {
                conn.keepalive = now;
                let _ = conn.q.send_ack_eliciting();
                self.dirty.push(id);
            }
            if conn.unanswered_since.is_some() && conn.q.stats().acked_bytes > conn.acked_mark {
                conn.unanswered_since = None;
            }
            if conn.unanswered_since.is_some_and(|t| {
                now.saturating_duration_since(t) >= probe_after
                    && now.saturating_duration_since(conn.last_probe) >= probe_after
            }) {
                conn.last_probe = now;
                log::trace!("transport: conn {id}: no answer for a while; probing");
                let _ = conn.q.send_ack_eliciting();
                self.dirty.push(id);
            }
            if conn.retiring.is_some() {
                self.dirty.push(id);
            }
            if conn.outbound
                && conn.state != State::Ready
                && !conn.abandoned
                && now.saturating_duration_since(conn.started) > CONNECT_TIMEOUT
            {
                abandon.push(id);
            }
        }
        for id in abandon {
            self.abandon_dial(id, now, "connect timeout");
        }
    }

    /// Gives up on a dial: closes it and records the failure on its peer at once.
    fn abandon_dial(&mut self, id: ConnId, now: Instant, reason: &str) {
        let jitter = (self.random() >> 11) as f64 / (1u64 << 53) as f64;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.abandoned = true;
        conn.close(close_code::NORMAL, reason);
        let addr = conn.peer_addr;
        self.dirty.push(id);
        let Some(node) = conn.node else { return };
        self.stats.fault(Fault::HandshakeFailed);
        if let Some(p) = self.peers.get_mut(&node) {
            if p.dialing == Some(id) {
                p.dialing = None;
                p.failed(
                    now,
                    self.config.backoff_initial,
                    self.config.backoff_max,
                    jitter,
                );
            }
        }
        self.notify(TransportEvent::NodeConnectFailed {
            node,
            addr,
            reason: reason.to_string(),
        });
    }

    // -----------------------------------------------------------------------------------------
    // Servicing connections.

    fn service_dirty(&mut self, now: Instant) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for id in dirty.drain(..) {
            self.service(id, now);
        }
        // Servicing can mark connections again (a peer's queue moved to another connection).
        if !self.dirty.is_empty() {
            let again = std::mem::take(&mut self.dirty);
            for id in again {
                self.service(id, now);
            }
        }
        self.dirty = dirty;
    }

    fn service(&mut self, id: ConnId, now: Instant) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        if conn.state == State::Handshake && conn.q.is_established() && !conn.q.is_closed() {
            self.on_established(id, &mut conn, now);
        }
        if conn.state != State::Handshake && !conn.q.is_closed() {
            self.read_streams(id, &mut conn, now);
            self.read_datagrams(&mut conn);
            if conn.state == State::Ready {
                self.drain_queue(id, &mut conn, now);
            }
            self.send_acks(&mut conn);
            self.flush_streams(&mut conn, now);
        }
        if let Some(since) = conn.retiring {
            let drained = conn
                .out
                .values()
                .all(|s| s.control || (s.unconfirmed.is_empty() && s.off == s.buf.len()));
            if drained || now.saturating_duration_since(since) >= RETIRE_GRACE {
                conn.close(close_code::DUPLICATE, "duplicate connection");
            }
        }
        self.send_packets(&mut conn);
        if conn.q.is_closed() {
            self.on_closed(id, conn, now);
            return;
        }
        conn.deadline = conn.q.timeout_instant();
        if let Some(t) = conn.deadline {
            self.deadlines.push(Reverse((t, id)));
        }
        self.conns.insert(id, conn);
    }

    fn on_established(&mut self, id: ConnId, conn: &mut Conn, now: Instant) {
        if !conn.outbound {
            let identity = conn
                .q
                .peer_cert()
                .ok_or(tls::TlsError::BadDer("no certificate".into()))
                .and_then(|der| tls::peer_identity_from_cert(der, SystemTime::now()));
            match identity {
                Ok(node) => conn.node = Some(node),
                Err(e) => {
                    self.stats.fault(Fault::IdentityMismatch);
                    conn.close(close_code::PROTOCOL_VIOLATION, "bad certificate");
                    log::warn!(
                        "transport: {} presented a bad certificate: {e}",
                        conn.peer_addr
                    );
                    return;
                }
            }
        }
        let Some(node) = conn.node else { return };
        if !conn.outbound && !self.config.accept_unknown_peers && !self.known.contains(&node) {
            self.stats.fault(Fault::UnknownPeerRefused);
            log::info!(
                "transport: refused unknown node {} from {}",
                node.short(),
                conn.peer_addr
            );
            conn.close(close_code::DENIED, "only configured peers may connect");
            return;
        }
        if node == self.node {
            self.stats.fault(Fault::ProtocolViolation);
            conn.close(close_code::PROTOCOL_VIOLATION, "connection to self");
            return;
        }
        conn.state = State::AwaitHello;
        let sid = conn.open_stream(now, true);
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

    fn read_streams(&mut self, id: ConnId, conn: &mut Conn, now: Instant) {
        let mut buf = std::mem::take(&mut self.recv_buf);
        let readable: Vec<u64> = conn.q.readable().collect();
        for sid in readable {
            if sid == conn.peer_control_stream() {
                self.read_control(id, conn, sid, &mut buf, now);
            } else if !conn.is_peer_uni(sid) {
                let _ = conn.q.stream_shutdown(
                    sid,
                    quiche::Shutdown::Read,
                    close_code::PROTOCOL_VIOLATION,
                );
            } else if conn.state == State::Ready && conn.inbox.is_empty() {
                self.read_message_stream(id, conn, sid, &mut buf);
            }
            if conn.q.is_closed() {
                break;
            }
        }
        self.recv_buf = buf;
        self.retry_inbox(id, conn);
    }

    fn read_control(
        &mut self,
        id: ConnId,
        conn: &mut Conn,
        sid: u64,
        buf: &mut [u8],
        now: Instant,
    ) {
        let mut frames = Vec::new();
        loop {
            match conn.q.stream_recv(sid, buf) {
                Ok((n, fin)) => {
                    if let Err(e) = conn.control_in.push(&buf[..n], |k, p| frames.push((k, p))) {
                        self.violation(conn, &format!("control stream: {e}"));
                        return;
                    }
                    if fin {
                        self.violation(conn, "control stream finished");
                        return;
                    }
                }
                Err(quiche::Error::Done) => break,
                Err(e) => {
                    self.violation(conn, &format!("control stream: {e}"));
                    return;
                }
            }
        }
        for (k, payload) in frames {
            match (k, conn.state) {
                (kind::HELLO, State::AwaitHello) => match control::decode::<Hello>(&payload) {
                    Ok(hello) => self.on_hello(id, conn, hello, now),
                    Err(e) => return self.violation(conn, &format!("bad hello: {e}")),
                },
                (kind::HELLO, _) => return self.violation(conn, "second hello"),
                (_, State::AwaitHello) => return self.violation(conn, "frame before hello"),
                (kind::ADVERT, _) => match crate::wire::decode_exact::<NodeAdvert>(&payload) {
                    Ok(advert) if Some(advert.id) == conn.node => {
                        let mail = NisMail::Request {
                            from: Party::Transport,
                            req: IdentityRequest::Update(IdentityUpdate::NodeAdvert(advert)),
                        };
                        if self.nis.try_send(mail).is_err() {
                            log::debug!("transport: identity store busy; peer advert not stored");
                        }
                    }
                    Ok(_) => return self.violation(conn, "advert of another node"),
                    Err(e) => return self.violation(conn, &format!("bad advert: {e}")),
                },
                (kind::ACK, _) => match control::decode::<Ack>(&payload) {
                    Ok(ack) => self.on_ack(conn, ack),
                    Err(e) => return self.violation(conn, &format!("bad ack: {e}")),
                },
                (other, _) => {
                    return self.violation(conn, &format!("unknown control frame {other}"))
                }
            }
            if conn.q.is_closed() {
                return;
            }
        }
    }

    fn violation(&self, conn: &mut Conn, what: &str) {
        self.stats.fault(Fault::ProtocolViolation);
        log::warn!(
            "transport: {} ({}) broke the protocol: {what}; closing",
            conn.node.map(|n| n.short()).unwrap_or_default(),
            conn.peer_addr
        );
        conn.close(close_code::PROTOCOL_VIOLATION, what);
    }

    fn on_hello(&mut self, id: ConnId, conn: &mut Conn, hello: Hello, now: Instant) {
        let ours = Hello {
            min_version: VERSION_MIN,
            max_version: VERSION_MAX,
            instance: self.instance,
            advert_version: self.advert.version,
            known_advert_version: None,
        };
        if ours.negotiate(&hello).is_none() {
            self.stats.fault(Fault::VersionMismatch);
            conn.close(close_code::INCOMPATIBLE, "no common protocol version");
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
            if let Some(other_conn) = self.conns.get_mut(&other) {
                notify = false;
                if other_conn.instance != Some(hello.instance) {
                    self.stats.fault(Fault::StaleConnection);
                    other_conn.close(close_code::STALE, "peer restarted");
                    log::info!(
                        "transport: {} restarted; replacing its connection",
                        node.short()
                    );
                    notify = true;
                } else {
                    // Simultaneous dials: keep the connection opened by the smaller identity.
                    let initiator = |c: &Conn| if c.outbound { self.node } else { node };
                    let keeper = self.node.min(node);
                    self.stats.fault(Fault::DuplicateConnection);
                    if initiator(conn) == keeper {
                        // The older connection retires: nothing new is sent on it, and it
                        // closes once what it carries is acknowledged (or after a grace), so
                        // nothing needs sending twice.
                        other_conn.retiring = Some(now);
                        self.peers.entry(node).or_default().retiring += 1;
                        self.dirty.push(other);
                    } else {
                        // This one has sent nothing yet: close it at once.
                        conn.close(close_code::DUPLICATE, "duplicate connection");
                        self.dirty.push(other);
                        return;
                    }
                }
                if other_conn.retiring.is_none() {
                    let requeue = other_conn.take_unconfirmed();
                    self.dirty.push(other);
                    self.requeue(node, requeue);
                }
            }
        }
        let peer = self.peers.entry(node).or_default();
        if peer.dialing == Some(id) || conn.outbound && peer.dialing.is_some() {
            peer.dialing = None;
        }
        peer.connected(id);
        conn.keepalive = now;
        log::info!(
            "transport: connected to {} at {}",
            node.short(),
            conn.peer_addr
        );
        if notify {
            self.notify(TransportEvent::NodeConnected {
                node,
                addr: conn.peer_addr,
            });
        }
    }

    /// Puts messages back at the front of their peer's queue, in order.
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

    fn on_ack(&mut self, conn: &mut Conn, ack: Ack) {
        let mut freed = 0;
        for (sid, count) in ack.0 {
            let Some(s) = conn.out.get_mut(&sid) else {
                continue;
            };
            while s.unconfirmed.front().is_some_and(|(seq, _)| *seq < count) {
                if let Some((_, m)) = s.unconfirmed.pop_front() {
                    freed += m.wire.len();
                }
            }
            if s.done() {
                conn.out.remove(&sid);
            }
        }
        if let Some(p) = conn.node.and_then(|n| self.peers.get_mut(&n)) {
            p.bytes = p.bytes.saturating_sub(freed);
        }
    }

    fn read_message_stream(&mut self, id: ConnId, conn: &mut Conn, sid: u64, buf: &mut [u8]) {
        let max = self.config.limits.max_frame_bytes;
        // Never below one frame of the largest size (with its header).
        let max_partial = self
            .config
            .limits
            .max_partial_frame_bytes
            .max(max + frame::HEADER_BYTES);
        let Some(node) = conn.node else { return };
        loop {
            if !conn.inbox.is_empty() {
                return;
            }
            let stream = conn.inbound.entry(sid).or_insert_with(|| InStream {
                decoder: FrameDecoder::new(max),
                handed: 0,
                processed: 0,
                done: Default::default(),
                finished: false,
            });
            let (n, fin) = match conn.q.stream_recv(sid, buf) {
                Ok(r) => r,
                Err(quiche::Error::Done) => return,
                Err(e) => {
                    log::debug!("transport: stream {sid} from {}: {e}", node.short());
                    conn.remove_inbound(sid);
                    return;
                }
            };
            let mut frames = Vec::new();
            let before = stream.decoder.buffered();
            let pushed = stream.decoder.push(&buf[..n], |k, p| frames.push((k, p)));
            conn.partial_bytes = (conn.partial_bytes + stream.decoder.buffered()) - before;
            if fin {
                stream.finished = true;
                if !stream.decoder.at_boundary() {
                    // The partial frame will never complete: let it go now.
                    conn.partial_bytes -= stream.decoder.buffered();
                    stream.decoder = FrameDecoder::new(max);
                    self.stats.fault(Fault::ProtocolViolation);
                    log::debug!(
                        "transport: stream {sid} from {}: {}",
                        node.short(),
                        FrameError::Truncated
                    );
                }
            }
            let first = stream.handed;
            stream.handed += frames.len() as u64;
            for (i, (k, payload)) in frames.into_iter().enumerate() {
                if k != kind::MESSAGE {
                    self.stats.fault(Fault::ProtocolViolation);
                    let _ = conn.q.stream_shutdown(
                        sid,
                        quiche::Shutdown::Read,
                        close_code::PROTOCOL_VIOLATION,
                    );
                    conn.remove_inbound(sid);
                    return;
                }
                self.to_router(id, conn, node, Some((sid, first + i as u64)), payload);
            }
            if let Err(e) = pushed {
                self.stats.fault(Fault::FrameTooLarge);
                log::warn!(
                    "transport: stream {sid} from {}: {e}; stopping that stream",
                    node.short()
                );
                let _ = conn.q.stream_shutdown(
                    sid,
                    quiche::Shutdown::Read,
                    close_code::FRAME_TOO_LARGE,
                );
                conn.remove_inbound(sid);
                return;
            }
            if conn.partial_bytes > max_partial {
                self.stats.fault(Fault::PartialFrameLimit);
                log::warn!(
                    "transport: {} has {} bytes of incomplete frames buffered (limit {max_partial}); closing",
                    node.short(),
                    conn.partial_bytes
                );
                conn.close(
                    close_code::PROTOCOL_VIOLATION,
                    "too many bytes of incomplete frames",
                );
                return;
            }
            if fin {
                return;
            }
        }
    }

    /// Hands a received message to the Router (with a receipt: the frame is acknowledged once
    /// the Router is done with it), or parks it while the Router's mailbox is full.
    fn to_router(
        &self,
        id: ConnId,
        conn: &mut Conn,
        node: NodeIdentity,
        pos: Option<FramePos>,
        wire: Vec<u8>,
    ) {
        if !conn.inbox.is_empty() {
            conn.inbox.push_back((pos, wire));
            return;
        }
        if let Err(wire) = self.send_remote_mail(id, node, pos, wire) {
            conn.inbox.push_back((pos, wire));
        }
    }

    /// Tries to put one received message in the Router's mailbox; hands it back if full.
    fn send_remote_mail(
        &self,
        id: ConnId,
        node: NodeIdentity,
        pos: Option<FramePos>,
        wire: Vec<u8>,
    ) -> Result<(), Vec<u8>> {
        let receipt = pos.map(|(stream, seq)| super::Receipt {
            conn: id,
            stream,
            seq,
        });
        let mail = RouterMail::Remote {
            peer: node,
            wire,
            receipt,
        };
        match self.router.try_send(mail) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(RouterMail::Remote { wire, .. })) => Err(wire),
            Err(_) => {
                self.stats.dropped(DropReason::Shutdown);
                Ok(())
            }
        }
    }

    fn retry_inbox(&self, id: ConnId, conn: &mut Conn) {
        let Some(node) = conn.node else { return };
        while let Some((pos, wire)) = conn.inbox.pop_front() {
            if let Err(wire) = self.send_remote_mail(id, node, pos, wire) {
                conn.inbox.push_front((pos, wire));
                return;
            }
        }
    }

    fn read_datagrams(&self, conn: &mut Conn) {
        if conn.state != State::Ready {
            return;
        }
        let Some(node) = conn.node else { return };
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            match conn.q.dgram_recv(&mut buf) {
                Ok(n) if n >= 1 && buf[0] == kind::MESSAGE => {
                    let wire = buf[1..n].to_vec();
                    let mail = RouterMail::Remote {
                        peer: node,
                        wire,
                        receipt: None,
                    };
                    if let Err(TrySendError::Full(_)) = self.router.try_send(mail) {
                        self.stats.dropped(DropReason::MailboxFull);
                    }
                }
                Ok(_) => self.stats.fault(Fault::ProtocolViolation),
                Err(_) => break,
            }
        }
    }

    fn send_acks(&self, conn: &mut Conn) {
        if conn.ack_dirty.is_empty() || conn.control_out.is_none() {
            return;
        }
        let entries: Vec<(u64, u64)> = conn
            .ack_dirty
            .drain()
            .filter_map(|sid| conn.inbound.get(&sid).map(|s| (sid, s.processed)))
            .collect();
        for chunk in entries.chunks(control::MAX_ACK_ENTRIES) {
            conn.send_control(kind::ACK, &control::encode(&Ack(chunk.to_vec())));
        }
        let mut freed = 0;
        conn.inbound.retain(|_, s| {
            let done = s.finished && s.processed == s.handed;
            if done {
                freed += s.decoder.buffered();
            }
            !done
        });
        conn.partial_bytes -= freed;
    }

    /// Moves the peer's queued messages onto the connection's streams.
    fn drain_queue(&mut self, id: ConnId, conn: &mut Conn, now: Instant) {
        let Some(node) = conn.node else { return };
        // Only the peer's active connection takes new messages, and not while an older one is
        // still delivering (see `Peer::retiring`).
        if self
            .peers
            .get(&node)
            .is_none_or(|p| p.active != Some(id) || p.retiring > 0)
        {
            return;
        }
        let default = self.config.default_tprefs;
        let max_pairs = self.config.limits.max_pair_streams;
        let wall = wall_clock();
        loop {
            let Some(peer) = self.peers.get_mut(&node) else {
                return;
            };
            let Some(send) = peer.queue.pop_front() else {
                return;
            };
            if send.header.expiry.is_some_and(|e| e <= wall) {
                peer.bytes = peer.bytes.saturating_sub(send.wire.len());
                self.bounce(send, DropReason::Expired);
                continue;
            }
            let prefs = send.header.tprefs.or(peer.tprefs).unwrap_or(default);
            match place(conn, send, prefs, max_pairs, now) {
                Placed::Stream => {}
                Placed::Datagram(len) => {
                    if let Some(p) = self.peers.get_mut(&node) {
                        p.bytes = p.bytes.saturating_sub(len);
                    }
                }
                Placed::Wait(send) => {
                    if let Some(p) = self.peers.get_mut(&node) {
                        p.queue.push_front(send);
                    }
                    return;
                }
                Placed::Bounce(send, reason) => {
                    if let Some(p) = self.peers.get_mut(&node) {
                        p.bytes = p.bytes.saturating_sub(send.wire.len());
                    }
                    self.bounce(send, reason);
                }
            }
        }
    }

    /// Hands buffered stream data to quiche. quiche takes only what its congestion window allows,
    /// so the stream served first gets the room: each pass starts after the stream that went
    /// first last time, and a large message on one engine pair cannot starve the others.
    fn flush_streams(&mut self, conn: &mut Conn, now: Instant) {
        let mut stopped = Vec::new();
        let start = conn.flush_from;
        let mut first_writer = None;
        let mut wrote = false;
        let q = &mut conn.q;
        let mut flush = |sid: u64, s: &mut OutStream, first_writer: &mut Option<u64>| {
            if s.off == s.buf.len() && (!s.fin || s.fin_sent) {
                return;
            }
            match q.stream_send(sid, &s.buf[s.off..], s.fin) {
                Ok(n) => {
                    s.opened = true;
                    s.off += n;
                    if n > 0 {
                        first_writer.get_or_insert(sid);
                        wrote = true;
                    }
                    if s.off == s.buf.len() {
                        s.buf.clear();
                        s.off = 0;
                        if s.fin {
                            s.fin_sent = true;
                        }
                    }
                }
                Err(quiche::Error::Done) | Err(quiche::Error::StreamLimit) => {}
                Err(quiche::Error::StreamStopped(code)) => stopped.push((sid, code)),
                Err(e) => {
                    log::debug!("transport: stream {sid}: {e}");
                    stopped.push((sid, 0));
                }
            }
        };
        // The control stream takes its turn like the others: served first, its acknowledgements
        // could leave ahead of the replies written in the same pass, and a crash in between
        // would lose acknowledged requests (docs/wire.md §10.3).
        for (&sid, s) in conn.out.range_mut(start..) {
            flush(sid, s, &mut first_writer);
        }
        for (&sid, s) in conn.out.range_mut(..start) {
            flush(sid, s, &mut first_writer);
        }
        if let Some(sid) = first_writer {
            conn.flush_from = sid + 1;
        }
        if wrote && conn.unanswered_since.is_none() {
            conn.unanswered_since = Some(now);
            conn.acked_mark = conn.q.stats().acked_bytes;
        }
        for (sid, code) in stopped {
            if let Some(s) = conn.out.remove(&sid) {
                conn.pairs.retain(|_, v| *v != sid);
                let reason = if code == close_code::FRAME_TOO_LARGE {
                    DropReason::TooLarge
                } else {
                    DropReason::NoRoute
                };
                let mut freed = 0;
                for (_, m) in s.unconfirmed {
                    freed += m.wire.len();
                    self.bounce(m, reason);
                }
                if let Some(p) = conn.node.and_then(|n| self.peers.get_mut(&n)) {
                    p.bytes = p.bytes.saturating_sub(freed);
                }
            }
        }
        conn.out.retain(|_, s| !s.done());
    }

    fn send_packets(&mut self, conn: &mut Conn) {
        let mut out = std::mem::take(&mut self.send_buf);
        let sock = &mut self.sockets[conn.sock];
        if let Err(e) = udp::flush(&mut conn.q, &sock.udp, &mut sock.offload, &mut out) {
            log::warn!("transport: quiche send failed: {e}; closing");
            conn.close(close_code::NORMAL, "internal send error");
        }
        self.send_buf = out;
    }

    fn on_closed(&mut self, id: ConnId, mut conn: Conn, now: Instant) {
        for cid in &conn.cids {
            self.by_cid.remove(cid);
        }
        if !conn.outbound {
            if let Some(n) = self.per_ip.get_mut(&conn.peer_addr.ip()) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&conn.peer_addr.ip());
                }
            }
        }
        let reason = conn.error_text();
        let Some(node) = conn.node else {
            self.stats.fault(Fault::HandshakeFailed);
            log::debug!(
                "transport: connection from {} failed: {reason}",
                conn.peer_addr
            );
            return;
        };
        let unconfirmed = conn.take_unconfirmed();
        self.requeue(node, unconfirmed);
        if conn.retiring.is_some() {
            if let Some(peer) = self.peers.get_mut(&node) {
                peer.retiring = peer.retiring.saturating_sub(1);
                // The kept connection may send again, starting with what this one left.
                if let Some(active) = peer.active {
                    self.dirty.push(active);
                }
            }
        }
        if conn.abandoned {
            return;
        }
        let jitter = (self.random() >> 11) as f64 / (1u64 << 53) as f64;
        let (initial, max) = (self.config.backoff_initial, self.config.backoff_max);
        let was_ready = conn.state == State::Ready;
        let Some(peer) = self.peers.get_mut(&node) else {
            return;
        };
        if peer.active == Some(id) {
            peer.active = None;
            peer.next_dial = Some(now + initial);
            log::info!("transport: disconnected from {} ({reason})", node.short());
            self.notify(TransportEvent::NodeDisconnected {
                node,
                addr: conn.peer_addr,
                reason,
            });
        } else if peer.dialing == Some(id) {
            peer.dialing = None;
            peer.failed(now, initial, max, jitter);
            let mismatch = conn
                .q
                .local_error()
                .is_some_and(|e| !e.is_app && e.error_code == 0x12a);
            self.stats.fault(if mismatch {
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
                addr: conn.peer_addr,
                reason,
            });
        } else if !was_ready {
            self.stats.fault(Fault::HandshakeFailed);
        }
    }

    fn shutdown(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(mut conn) = self.conns.remove(&id) {
                conn.close(close_code::NORMAL, "shutdown");
                self.send_packets(&mut conn);
                let pending = conn.take_unconfirmed();
                for m in pending {
                    self.bounce(m, DropReason::Shutdown);
                }
            }
        }
        let peers: Vec<NodeIdentity> = self.peers.keys().copied().collect();
        for n in peers {
            if let Some(p) = self.peers.get_mut(&n) {
                let queued: Vec<RemoteSend> = p.queue.drain(..).collect();
                for m in queued {
                    self.bounce(m, DropReason::Shutdown);
                }
            }
        }
    }
}

/// Where a message went.
enum Placed {
    /// Queued on a stream (tracked until acknowledged).
    Stream,
    /// Sent as a datagram (not tracked); its length.
    Datagram(usize),
    /// No stream credit now: put it back and try later.
    Wait(RemoteSend),
    /// Cannot be sent: drop with the reason.
    Bounce(RemoteSend, DropReason),
}

/// Puts one message on the connection according to its transport preferences.
fn place(
    conn: &mut Conn,
    send: RemoteSend,
    prefs: TransportPrefs,
    max_pairs: usize,
    now: Instant,
) -> Placed {
    if prefs.security != Security::Direct {
        return Placed::Bounce(send, DropReason::Unsupported);
    }
    if prefs.reliability == Reliability::Unreliable {
        let max = conn.q.dgram_max_writable_len().unwrap_or(0);
        if send.wire.len() + 1 > max {
            return Placed::Bounce(send, DropReason::TooLarge);
        }
        let mut dgram = Vec::with_capacity(send.wire.len() + 1);
        dgram.push(kind::MESSAGE);
        dgram.extend_from_slice(&send.wire);
        let len = send.wire.len();
        return match conn.q.dgram_send(&dgram) {
            Ok(()) => Placed::Datagram(len),
            Err(_) => Placed::Bounce(send, DropReason::QueueFull),
        };
    }
    let ordered = prefs.ordering == crate::wire::Ordering::Ordered;
    let key = (send.header.src, send.header.dst);
    let existing = if ordered {
        conn.pairs.get(&key).copied()
    } else {
        None
    };
    let sid = match existing {
        Some(sid) => sid,
        None => {
            if conn.q.peer_streams_left_uni() <= conn.unopened_streams() {
                return Placed::Wait(send);
            }
            if ordered && conn.pairs.len() >= max_pairs {
                // Finish the least recently used pair stream.
                let lru = conn
                    .pairs
                    .iter()
                    .min_by_key(|(_, sid)| conn.out.get(sid).map(|s| s.last_used))
                    .map(|(k, sid)| (*k, *sid));
                if let Some((k, old)) = lru {
                    conn.pairs.remove(&k);
                    if let Some(s) = conn.out.get_mut(&old) {
                        s.fin = true;
                    }
                }
            }
            let sid = conn.open_stream(now, false);
            if ordered {
                conn.pairs.insert(key, sid);
            }
            sid
        }
    };
    let s = conn.out.get_mut(&sid).expect("stream just found or opened");
    frame::encode(kind::MESSAGE, &send.wire, &mut s.buf);
    s.unconfirmed.push_back((s.frames, send));
    s.frames += 1;
    s.last_used = now;
    if !ordered {
        s.fin = true;
    }
    Placed::Stream
}

/// A raw quiche transfer over loopback, as a baseline for the Transport's own throughput: the
/// same socket setup, UDP path (segmentation offload included) and TLS configuration as the
/// Transport, one stream, `bytes` bytes, no framing, messages, signatures or Router. Returns the
/// bytes moved and the time from the first byte written to the last byte read.
pub fn raw_bulk_transfer(bytes: usize) -> Result<(usize, Duration), String> {
    let server_key = Keypair::generate();
    let client_key = Keypair::generate();
    let params = QuicParams::default();
    let server_tls = TlsIdentity::new(&server_key).map_err(|e| e.to_string())?;
    let client_tls = TlsIdentity::new(&client_key).map_err(|e| e.to_string())?;
    let mut server_cfg = tls::server_config(&server_tls, &params).map_err(|e| e.to_string())?;
    let mut client_cfg = tls::client_config(&client_tls, server_key.node_identity(), &params)
        .map_err(|e| e.to_string())?;
    let any: SocketAddr = "127.0.0.1:0".parse().expect("valid");
    let server = Bound::bind(&[any]).map_err(|e| e.to_string())?;
    let client = Bound::bind(&[any]).map_err(|e| e.to_string())?;
    let server_addr = server.sockets[0].local;
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Instant>(1);

    let server_thread = std::thread::Builder::new()
        .name("nm-raw-server".into())
        .spawn(move || -> Result<(), String> {
            let mut bound = server;
            let mut events = Events::with_capacity(64);
            let mut buf = vec![0u8; RECV_BUF];
            let mut out = vec![0u8; RECV_BUF];
            let mut stream_buf = vec![0u8; RECV_BUF];
            let mut conn: Option<quiche::Connection> = None;
            let mut received = 0usize;
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                let timeout = conn
                    .as_ref()
                    .and_then(|c| c.timeout())
                    .unwrap_or(Duration::from_millis(50));
                bound
                    .poll
                    .poll(&mut events, Some(timeout))
                    .map_err(|e| e.to_string())?;
                let sock = &mut bound.sockets[0];
                let local = sock.local;
                udp::recv_each(&sock.udp, &sock.offload, &mut buf, |packet, from| {
                    if conn.is_none() {
                        let scid = [7u8; CID_LEN];
                        conn = quiche::accept(
                            &quiche::ConnectionId::from_ref(&scid),
                            None,
                            local,
                            from,
                            &mut server_cfg,
                        )
                        .ok();
                    }
                    if let Some(c) = conn.as_mut() {
                        let _ = c.recv(packet, quiche::RecvInfo { from, to: local });
                    }
                })
                .map_err(|e| e.to_string())?;
                let Some(c) = conn.as_mut() else { continue };
                c.on_timeout();
                let readable: Vec<u64> = c.readable().collect();
                for sid in readable {
                    while let Ok((n, _)) = c.stream_recv(sid, &mut stream_buf) {
                        received += n;
                    }
                }
                if received >= bytes {
                    let _ = done_tx.send(Instant::now());
                    let _ = udp::flush(c, &sock.udp, &mut sock.offload, &mut out);
                    return Ok(());
                }
                let _ = udp::flush(c, &sock.udp, &mut sock.offload, &mut out);
            }
            Err("raw transfer: server timed out".into())
        })
        .map_err(|e| e.to_string())?;

    let mut bound = client;
    let local = bound.sockets[0].local;
    let scid = [9u8; CID_LEN];
    let mut c = quiche::connect(
        None,
        &quiche::ConnectionId::from_ref(&scid),
        local,
        server_addr,
        &mut client_cfg,
    )
    .map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; RECV_BUF];
    let mut out = vec![0u8; RECV_BUF];
    let chunk = vec![0x5au8; 64 << 10];
    let mut sent = 0usize;
    let mut started: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = loop {
        if Instant::now() > deadline {
            return Err("raw transfer: client timed out".into());
        }
        if let Ok(t) = done_rx.try_recv() {
            break t;
        }
        {
            let sock = &mut bound.sockets[0];
            udp::flush(&mut c, &sock.udp, &mut sock.offload, &mut out)
                .map_err(|e| e.to_string())?;
        }
        let timeout = c
            .timeout()
            .unwrap_or(Duration::from_millis(5))
            .min(Duration::from_millis(5));
        bound
            .poll
            .poll(&mut events, Some(timeout))
            .map_err(|e| e.to_string())?;
        let sock = &mut bound.sockets[0];
        udp::recv_each(&sock.udp, &sock.offload, &mut buf, |packet, from| {
            let _ = c.recv(packet, quiche::RecvInfo { from, to: local });
        })
        .map_err(|e| e.to_string())?;
        c.on_timeout();
        if c.is_closed() {
            return Err(format!(
                "raw transfer: connection closed: {:?}",
                c.peer_error()
            ));
        }
        if c.is_established() {
            started.get_or_insert_with(Instant::now);
            while sent < bytes {
                let n = (bytes - sent).min(chunk.len());
                match c.stream_send(2, &chunk[..n], sent + n == bytes) {
                    Ok(0) | Err(quiche::Error::Done) => break,
                    Ok(w) => sent += w,
                    Err(e) => return Err(format!("raw transfer: {e}")),
                }
            }
        }
    };
    server_thread
        .join()
        .map_err(|_| "raw transfer: server panicked".to_string())??;
    let start = started.ok_or("raw transfer: never established")?;
    Ok((bytes, finished.saturating_duration_since(start)))
}
