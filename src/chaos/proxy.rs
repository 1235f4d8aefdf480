//! The proxy itself: [`Chaos::start`] binds the sockets and starts the `nm-chaos` thread (a mio
//! poll over the listen socket and one upstream socket per client), which [`ChaosHandle`]
//! stops and reads the counters of.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use super::counters::LiveCounters;
use super::*;

/// Starts proxies.
pub struct Chaos;

impl Chaos {
    /// Validates `config`, binds the listen socket and starts the proxy's thread (`nm-chaos`).
    /// Fails with `InvalidInput` for a refused configuration, or with the socket or thread
    /// error.
    pub fn start(config: ChaosConfig) -> io::Result<ChaosHandle> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let std_listen = std::net::UdpSocket::bind(config.listen)?;
        std_listen.set_nonblocking(true)?;
        crate::node::quic::udp::set_buffer_sizes(&std_listen, SOCKET_BUFFER_BYTES);
        let listen_addr = std_listen.local_addr()?;
        let mut listen = UdpSocket::from_std(std_listen);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listen, LISTEN, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(LiveCounters::default());
        let mut proxy = Proxy {
            poll,
            listen,
            forward: config.forward,
            settings: config.faults(),
            seed: config.seed,
            start: Instant::now(),
            clients: HashMap::new(),
            by_addr: HashMap::new(),
            next_client: 1,
            queue: BinaryHeap::new(),
            next_seq: 0,
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
            buf: vec![0; MAX_DATAGRAM],
            releases: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("nm-chaos".into())
            .spawn(move || proxy.run())?;
        log::info!(
            "chaos: proxy {listen_addr} -> {} started (seed {})",
            config.forward,
            config.seed
        );
        Ok(ChaosHandle {
            listen: listen_addr,
            forward: config.forward,
            seed: config.seed,
            stop,
            waker,
            counters,
            thread: Some(thread),
        })
    }
}

/// A running proxy. Dropping it stops the proxy.
pub struct ChaosHandle {
    listen: SocketAddr,
    forward: SocketAddr,
    seed: u64,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    counters: Arc<LiveCounters>,
    thread: Option<JoinHandle<()>>,
}

impl ChaosHandle {
    /// The address clients send to, as bound (port 0 resolved).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The address datagrams are relayed to.
    pub fn forward_addr(&self) -> SocketAddr {
        self.forward
    }

    /// The seed of the fault decisions.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A copy of the counters so far.
    pub fn counters(&self) -> ChaosCounters {
        self.counters.snapshot()
    }

    /// Stops the proxy (datagrams still delayed or held are discarded) and returns its final
    /// counters.
    pub fn stop(mut self) -> ChaosCounters {
        self.halt();
        self.counters.snapshot()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            if let Err(e) = self.waker.wake() {
                log::error!("chaos: cannot wake the proxy thread: {e}");
            }
            if t.join().is_err() {
                log::error!("chaos: the proxy thread panicked");
            }
        }
    }
}

impl Drop for ChaosHandle {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One client: its address, its upstream socket and a fault link per direction.
struct Client {
    addr: SocketAddr,
    upstream: UdpSocket,
    links: [FaultLink; 2],
    last_seen: Instant,
}

/// A datagram waiting in the timer queue, ordered by (due time, sequence number) so that
/// datagrams due at the same time leave in the order they were queued.
struct Queued {
    at: Duration,
    seq: u64,
    client: usize,
    direction: Direction,
    datagram: Vec<u8>,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Proxy {
    poll: Poll,
    listen: UdpSocket,
    forward: SocketAddr,
    settings: FaultSettings,
    seed: u64,
    start: Instant,
    /// Clients by number (their token); numbers are never reused.
    clients: HashMap<usize, Client>,
    by_addr: HashMap<SocketAddr, usize>,
    next_client: usize,
    /// Datagrams waiting for their time, earliest first.
    queue: BinaryHeap<Reverse<Queued>>,
    next_seq: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<LiveCounters>,
    buf: Vec<u8>,
    releases: Vec<Release>,
}

impl Proxy {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        while !self.stop.load(Ordering::SeqCst) {
            let timeout = self.poll_timeout(next_sweep);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("chaos: poll failed: {e}");
                break;
            }
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let mut readable: Vec<Token> = events.iter().map(|e| e.token()).collect();
            readable.retain(|t| *t != WAKE);
            for token in readable {
                if token == LISTEN {
                    self.read_listen();
                } else {
                    self.read_upstream(token.0);
                }
            }
            self.release_held();
            self.send_due();
            let now = Instant::now();
            if now >= next_sweep {
                next_sweep = now + SWEEP_EVERY;
                self.sweep(now);
            }
        }
        log::debug!("chaos: proxy stopped");
    }

    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn poll_timeout(&self, next_sweep: Instant) -> Duration {
        let now = self.elapsed();
        let mut next = next_sweep.saturating_duration_since(Instant::now());
        if let Some(Reverse(q)) = self.queue.peek() {
            next = next.min(q.at.saturating_sub(now));
        }
        for c in self.clients.values() {
            for l in &c.links {
                if let Some(d) = l.hold_deadline() {
                    next = next.min(d.saturating_sub(now));
                }
            }
        }
        next
    }

    fn read_listen(&mut self) {
        loop {
            let (n, from) = match self.listen.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors for earlier sends to clients surface here; keep reading.
                    log::debug!("chaos: receive on the listen socket: {e}");
                    continue;
                }
            };
            let datagram = self.buf[..n].to_vec();
            let Some(client) = self.client_for(from) else {
                self.counters
                    .upstream
                    .received
                    .fetch_add(1, Ordering::Relaxed);
                self.counters
                    .upstream
                    .errors
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            };
            self.judge(client, Direction::Upstream, datagram);
        }
    }

    fn read_upstream(&mut self, client: usize) {
        // Bounded: a socket that keeps reporting errors cannot hold the loop.
        for _ in 0..4096 {
            let Some(c) = self.clients.get_mut(&client) else {
                return;
            };
            let n = match c.upstream.recv(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // A refused earlier send (the node is down) is reported on the next call.
                    log::debug!("chaos: receive from {}: {e}", self.forward);
                    continue;
                }
            };
            c.last_seen = Instant::now();
            let datagram = self.buf[..n].to_vec();
            self.judge(client, Direction::Downstream, datagram);
        }
    }

    fn client_for(&mut self, from: SocketAddr) -> Option<usize> {
        if let Some(&id) = self.by_addr.get(&from) {
            if let Some(c) = self.clients.get_mut(&id) {
                c.last_seen = Instant::now();
            }
            return Some(id);
        }
        if self.clients.len() >= MAX_CLIENTS {
            log::warn!("chaos: {MAX_CLIENTS} clients already; dropping datagrams from {from}");
            return None;
        }
        let bind: SocketAddr = match self.forward.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => (Ipv4Addr::LOCALHOST, 0).into(),
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(ip) if ip.is_loopback() => (Ipv6Addr::LOCALHOST, 0).into(),
            IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = std::net::UdpSocket::bind(bind)
            .and_then(|s| s.connect(self.forward).map(|_| s))
            .and_then(|s| s.set_nonblocking(true).map(|_| s));
        let socket = match socket {
            Ok(s) => s,
            Err(e) => {
                log::warn!("chaos: cannot open an upstream socket for {from}: {e}");
                return None;
            }
        };
        crate::node::quic::udp::set_buffer_sizes(&socket, SOCKET_BUFFER_BYTES);
        let mut upstream = UdpSocket::from_std(socket);
        let id = self.next_client;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut upstream, Token(id), Interest::READABLE)
        {
            log::warn!("chaos: cannot poll an upstream socket for {from}: {e}");
            return None;
        }
        self.next_client += 1;
        let number = self.counters.clients.fetch_add(1, Ordering::Relaxed);
        let link = |d: Direction| FaultLink::new(self.settings, stream_seed(self.seed, number, d));
        let links = [link(Direction::Upstream), link(Direction::Downstream)];
        log::debug!(
            "chaos: client {number} at {from} relayed from {:?}",
            upstream.local_addr().ok()
        );
        self.clients.insert(
            id,
            Client {
                addr: from,
                upstream,
                links,
                last_seen: Instant::now(),
            },
        );
        self.by_addr.insert(from, id);
        Some(id)
    }

    fn judge(&mut self, client: usize, direction: Direction, datagram: Vec<u8>) {
        let now = self.elapsed();
        let Some(c) = self.clients.get_mut(&client) else {
            return;
        };
        let mut releases = std::mem::take(&mut self.releases);
        let fate = c.links[direction as usize].on_datagram(now, datagram, &mut releases);
        self.counters.dir(direction).count(fate);
        for r in releases.drain(..) {
            self.enqueue(client, direction, r);
        }
        self.releases = releases;
    }

    fn enqueue(&mut self, client: usize, direction: Direction, r: Release) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Reverse(Queued {
            at: r.at,
            seq,
            client,
            direction,
            datagram: r.datagram,
        }));
    }

    fn release_held(&mut self) {
        let now = self.elapsed();
        let mut out = Vec::new();
        for (&id, c) in self.clients.iter_mut() {
            for (i, l) in c.links.iter_mut().enumerate() {
                if let Some(r) = l.release_expired(now) {
                    let d = if i == 0 {
                        Direction::Upstream
                    } else {
                        Direction::Downstream
                    };
                    out.push((id, d, r));
                }
            }
        }
        for (id, d, r) in out {
            self.enqueue(id, d, r);
        }
    }

    fn send_due(&mut self) {
        let now = self.elapsed();
        while self.queue.peek().is_some_and(|Reverse(q)| q.at <= now) {
            let Some(Reverse(q)) = self.queue.pop() else {
                break;
            };
            let counters = self.counters.dir(q.direction);
            let Some(c) = self.clients.get(&q.client) else {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let sent = match q.direction {
                Direction::Upstream => c.upstream.send(&q.datagram),
                Direction::Downstream => self.listen.send_to(&q.datagram, c.addr),
            };
            match sent {
                Ok(_) => counters.forwarded.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    log::debug!("chaos: send {:?} failed: {e}", q.direction);
                    counters.errors.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    }

    fn sweep(&mut self, now: Instant) {
        let idle: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.last_seen) >= CLIENT_IDLE)
            .map(|(&id, _)| id)
            .collect();
        for id in idle {
            if let Some(mut c) = self.clients.remove(&id) {
                let _ = self.poll.registry().deregister(&mut c.upstream);
                self.by_addr.remove(&c.addr);
                log::debug!("chaos: client {} idle; forgotten", c.addr);
            }
        }
    }
}
