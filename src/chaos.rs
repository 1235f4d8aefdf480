//! A UDP fault proxy: loss, duplication, reordering, delay with jitter, corruption and
//! blackholes between nodes, reproducible from a seed.
//!
//! `tc netem` is not available where netmachine is tested, so faults come from this proxy (design
//! §8). It sits in front of one node: a peer dials the proxy's `listen` address instead of the
//! node's, and the proxy relays every datagram to `forward` and every reply back.
//!
//! ```text
//!   client A ─┐                    ┌─ upstream socket for A ─┐
//!   client C ─┼──► listen ──faults─┼─ upstream socket for C ─┼──► forward (the node)
//!             │   (one socket)     └─────────────────────────┘
//!             └─◄── listen ◄──faults── replies, mapped back to their client
//! ```
//!
//! * **Clients.** Each client address gets its own upstream socket (bound to an ephemeral port
//!   and connected to `forward`), so the node sees one distinct peer address per client and its
//!   replies map back to the right client. At most [`MAX_CLIENTS`] clients at once; a client
//!   silent for [`CLIENT_IDLE`] is forgotten.
//! * **Faults**, in both directions, decided per datagram by a [`FaultLink`] — the sans-IO part,
//!   usable without sockets (for example by a simulator):
//!   blackhole (everything dropped during the `on` part of a repeating `on`/`off` cycle that
//!   starts when the proxy starts), loss (dropped), corruption (1 to 3 random bits flipped),
//!   duplication (sent twice), delay with uniform jitter (released later from a timer queue) and
//!   reordering (held back and released right after the next datagram of the same direction, or
//!   after [`REORDER_MAX_HOLD`] if none comes).
//! * **Replay.** Decisions come from [`SplitMix64`] streams derived from the seed, one per
//!   (client, direction), clients numbered in order of first contact; every datagram consumes
//!   the same number of draws whatever is decided. The n-th datagram of a client in a direction
//!   therefore meets the same fate in every run with the same seed and configuration (timing
//!   still varies from run to run, so blackholes — which follow the clock — and what the nodes
//!   send do not replay exactly).
//! * **Counters** per direction ([`ChaosCounters`]), readable while the proxy runs.
//!
//! The proxy runs on one thread named `nm-chaos` (a mio poll over its sockets). Start it with
//! [`Chaos::start`]; stop it with [`ChaosHandle::stop`] (or by dropping the handle). The
//! `netmachine chaos` command runs one from the command line.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

/// Most clients the proxy relays for at once; datagrams from further clients are dropped and
/// counted as errors.
pub const MAX_CLIENTS: usize = 1024;

/// A client that sent nothing and received nothing for this long is forgotten (its upstream
/// socket closed): 120 s.
pub const CLIENT_IDLE: Duration = Duration::from_secs(120);

/// Longest time a datagram is held back for reordering when no other datagram follows it:
/// 50 ms. It is then released on its own.
pub const REORDER_MAX_HOLD: Duration = Duration::from_millis(50);

/// Largest datagram relayed (the largest UDP payload).
const MAX_DATAGRAM: usize = 65_535;
/// The listen socket's token; clients use their number.
const LISTEN: Token = Token(0);
/// The waker's token.
const WAKE: Token = Token(usize::MAX);
/// How often idle clients are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Socket buffer size requested from the kernel.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

// ---------------------------------------------------------------------------------------------
// Configuration.

/// What the proxy does. Probabilities are per datagram and independent of each other.
#[derive(Clone, Debug, PartialEq)]
pub struct ChaosConfig {
    /// Where clients send their datagrams (port 0 picks a free port; see
    /// [`ChaosHandle::listen_addr`]).
    pub listen: SocketAddr,
    /// Where datagrams are relayed to (the node behind the proxy).
    pub forward: SocketAddr,
    /// Probability that a datagram is dropped, in [0, 1].
    pub loss: f64,
    /// Probability that a datagram is sent twice, in [0, 1].
    pub dup: f64,
    /// Probability that a datagram is held back and released after the next one, in [0, 1].
    pub reorder: f64,
    /// Delay added to every datagram, in milliseconds.
    pub delay_ms: u64,
    /// Jitter: the delay is drawn uniformly from `[delay_ms − jitter_ms, delay_ms + jitter_ms]`
    /// (never below zero), in milliseconds.
    pub jitter_ms: u64,
    /// Probability that 1 to 3 random bits of a datagram are flipped, in [0, 1].
    pub corrupt: f64,
    /// `(on, off)`: drop everything for `on`, then pass for `off`, repeating from the start of
    /// the proxy. Both must be positive.
    pub blackhole: Option<(Duration, Duration)>,
    /// Seed of the fault decisions.
    pub seed: u64,
}

/// Longest delay or jitter accepted: one hour, in milliseconds.
pub const MAX_DELAY_MS: u64 = 3_600_000;

impl ChaosConfig {
    /// A proxy from `listen` to `forward` that injects no fault (seed 0).
    pub fn new(listen: SocketAddr, forward: SocketAddr) -> ChaosConfig {
        ChaosConfig {
            listen,
            forward,
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
            delay_ms: 0,
            jitter_ms: 0,
            corrupt: 0.0,
            blackhole: None,
            seed: 0,
        }
    }

    /// Checks the configuration: probabilities in [0, 1], delays at most [`MAX_DELAY_MS`],
    /// blackhole periods positive, `forward` a usable address that is not the proxy's own.
    pub fn validate(&self) -> Result<(), ChaosError> {
        for (name, p) in [
            ("loss", self.loss),
            ("dup", self.dup),
            ("reorder", self.reorder),
            ("corrupt", self.corrupt),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ChaosError::Probability { name, value: p });
            }
        }
        for (name, ms) in [("delay_ms", self.delay_ms), ("jitter_ms", self.jitter_ms)] {
            if ms > MAX_DELAY_MS {
                return Err(ChaosError::Delay { name, ms });
            }
        }
        if let Some((on, off)) = self.blackhole {
            if on.is_zero() || off.is_zero() {
                return Err(ChaosError::Blackhole { on, off });
            }
        }
        if self.forward.port() == 0 || self.forward.ip().is_unspecified() {
            return Err(ChaosError::Forward(self.forward));
        }
        // Forwarding to the proxy's own socket would loop.
        if self.forward.port() == self.listen.port()
            && (self.forward.ip() == self.listen.ip() || self.listen.ip().is_unspecified())
        {
            return Err(ChaosError::SameAddress(self.listen));
        }
        Ok(())
    }

    /// The fault settings (everything but the addresses and the seed).
    pub fn faults(&self) -> FaultSettings {
        FaultSettings {
            loss: self.loss,
            dup: self.dup,
            reorder: self.reorder,
            delay: Duration::from_millis(self.delay_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            corrupt: self.corrupt,
            blackhole: self.blackhole,
        }
    }
}

/// Why a [`ChaosConfig`] was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum ChaosError {
    /// A probability outside [0, 1] (or not a number).
    Probability {
        /// Which one.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// A delay or jitter over [`MAX_DELAY_MS`].
    Delay {
        /// Which one.
        name: &'static str,
        /// Its value in milliseconds.
        ms: u64,
    },
    /// A blackhole period that is zero.
    Blackhole {
        /// The `on` period.
        on: Duration,
        /// The `off` period.
        off: Duration,
    },
    /// A forward address with port 0 or an unspecified IP.
    Forward(SocketAddr),
    /// `forward` is the proxy's own `listen` address (the same address, or the same port when
    /// listening on every address).
    SameAddress(SocketAddr),
}

impl fmt::Display for ChaosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChaosError::Probability { name, value } => {
                write!(f, "{name} must be a probability in [0, 1], not {value}")
            }
            ChaosError::Delay { name, ms } => {
                write!(f, "{name} must be at most {MAX_DELAY_MS} ms, not {ms}")
            }
            ChaosError::Blackhole { on, off } => write!(
                f,
                "blackhole periods must both be positive, not on {}s off {}s",
                on.as_secs_f64(),
                off.as_secs_f64()
            ),
            ChaosError::Forward(a) => write!(
                f,
                "forward address {a} cannot be sent to (port 0 or unspecified IP)"
            ),
            ChaosError::SameAddress(a) => {
                write!(f, "listen and forward are the same address ({a})")
            }
        }
    }
}

impl std::error::Error for ChaosError {}

// ---------------------------------------------------------------------------------------------
// The pseudo-random generator.

pub use crate::rng::SplitMix64;

/// The seed of an independent stream for `(client, direction)` derived from `seed`.
pub fn stream_seed(seed: u64, client: u64, direction: Direction) -> u64 {
    let lane = client.wrapping_mul(2).wrapping_add(direction as u64);
    let mut g = SplitMix64::new(seed ^ lane.wrapping_mul(0xd1b5_4a32_d192_ed03));
    g.next_u64()
}

// ---------------------------------------------------------------------------------------------
// Fault decisions (sans-IO).

/// Which way a datagram travels through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From a client to `forward`.
    Upstream = 0,
    /// From `forward` back to a client.
    Downstream = 1,
}

/// The faults of one direction of a link: [`ChaosConfig`] without addresses and seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultSettings {
    /// Probability of dropping a datagram.
    pub loss: f64,
    /// Probability of sending a datagram twice.
    pub dup: f64,
    /// Probability of holding a datagram back until the next one.
    pub reorder: f64,
    /// Delay added to every datagram.
    pub delay: Duration,
    /// Half-width of the uniform jitter around `delay`.
    pub jitter: Duration,
    /// Probability of flipping 1 to 3 bits.
    pub corrupt: f64,
    /// `(on, off)` blackhole cycle.
    pub blackhole: Option<(Duration, Duration)>,
}

impl FaultSettings {
    /// No fault at all.
    pub const NONE: FaultSettings = FaultSettings {
        loss: 0.0,
        dup: 0.0,
        reorder: 0.0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        corrupt: 0.0,
        blackhole: None,
    };

    /// Whether `elapsed` (time since the proxy started) falls in an `on` part of the blackhole
    /// cycle.
    pub fn blackholed(&self, elapsed: Duration) -> bool {
        match self.blackhole {
            Some((on, off)) => {
                let cycle = on.as_nanos() + off.as_nanos();
                cycle > 0 && elapsed.as_nanos() % cycle < on.as_nanos()
            }
            None => false,
        }
    }
}

/// What happened to one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Dropped because the blackhole was on.
    Blackholed,
    /// Dropped by random loss.
    Lost,
    /// Passed on (possibly delayed, corrupted, duplicated or held back).
    Passed {
        /// Copies sent: 1, or 2 when duplicated.
        copies: u8,
        /// Bits flipped (0 to 3).
        flipped: u8,
        /// Whether it was held back to be released after the next datagram.
        held: bool,
        /// Whether it got a non-zero delay.
        delayed: bool,
    },
}

/// A datagram to send at a given time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// When to send it, as time since the proxy started.
    pub at: Duration,
    /// The bytes.
    pub datagram: Vec<u8>,
}

/// The fault decisions of one direction of one client's traffic, without any I/O: datagrams
/// in, [`Release`]s out. Time is passed in as the elapsed time since the proxy started, so the
/// logic is deterministic for a given seed and input.
#[derive(Clone, Debug)]
pub struct FaultLink {
    settings: FaultSettings,
    rng: SplitMix64,
    /// A datagram held back for reordering, with when it was held.
    held: Option<(Duration, Vec<u8>)>,
}

impl FaultLink {
    /// A link applying `settings` with decisions drawn from a generator seeded with `seed`.
    pub fn new(settings: FaultSettings, seed: u64) -> FaultLink {
        FaultLink {
            settings,
            rng: SplitMix64::new(seed),
            held: None,
        }
    }

    /// Decides the fate of `datagram`, arriving `now` after the proxy started, and appends what
    /// must be sent (with when) to `out`, in sending order. A datagram held back earlier is
    /// released right after this one when this one passes.
    pub fn on_datagram(
        &mut self,
        now: Duration,
        mut datagram: Vec<u8>,
        out: &mut Vec<Release>,
    ) -> Fate {
        // Always the same draws, whatever is decided, so that the n-th datagram's fate depends
        // only on the seed and n.
        let u_loss = self.rng.next_f64();
        let u_dup = self.rng.next_f64();
        let u_reorder = self.rng.next_f64();
        let u_corrupt = self.rng.next_f64();
        let u_jitter = self.rng.next_f64();
        let bits = self.rng.next_u64();
        let s = self.settings;
        if s.blackholed(now) {
            return Fate::Blackholed;
        }
        if u_loss < s.loss {
            return Fate::Lost;
        }
        let flipped = if u_corrupt < s.corrupt && !datagram.is_empty() {
            corrupt(&mut datagram, bits)
        } else {
            0
        };
        let delay = jittered(s.delay, s.jitter, u_jitter);
        let at = now + delay;
        let copies = if u_dup < s.dup { 2 } else { 1 };
        let hold = u_reorder < s.reorder && self.held.is_none();
        let fate = Fate::Passed {
            copies,
            flipped,
            held: hold,
            delayed: !delay.is_zero(),
        };
        if hold {
            // A duplicated datagram sends its first copy now and holds the second.
            if copies == 2 {
                out.push(Release {
                    at,
                    datagram: datagram.clone(),
                });
            }
            self.held = Some((now, datagram));
            return fate;
        }
        if copies == 2 {
            out.push(Release {
                at,
                datagram: datagram.clone(),
            });
        }
        out.push(Release { at, datagram });
        if let Some((_, held)) = self.held.take() {
            out.push(Release { at, datagram: held });
        }
        fate
    }

    /// When the held datagram (if any) must be released even if no other datagram comes.
    pub fn hold_deadline(&self) -> Option<Duration> {
        self.held.as_ref().map(|(t, _)| *t + REORDER_MAX_HOLD)
    }

    /// Releases the held datagram if its deadline has passed at `now`.
    pub fn release_expired(&mut self, now: Duration) -> Option<Release> {
        if self.hold_deadline().is_some_and(|d| now >= d) {
            let (held_at, datagram) = self.held.take()?;
            let delay = self.settings.delay;
            return Some(Release {
                at: (held_at + delay).max(now),
                datagram,
            });
        }
        None
    }

    /// Takes the held datagram, if any (at shutdown).
    pub fn take_held(&mut self) -> Option<Vec<u8>> {
        self.held.take().map(|(_, d)| d)
    }
}

/// `delay ± jitter`, uniformly, given a uniform `u` in [0, 1); never negative.
fn jittered(delay: Duration, jitter: Duration, u: f64) -> Duration {
    if jitter.is_zero() {
        return delay;
    }
    let lo = delay.as_secs_f64() - jitter.as_secs_f64();
    let t = lo + u * 2.0 * jitter.as_secs_f64();
    if t <= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(t)
    }
}

/// Flips 1 to 3 distinct bits of `datagram` (non-empty) chosen from `bits`; returns how many.
fn corrupt(datagram: &mut [u8], bits: u64) -> u8 {
    let mut g = SplitMix64::new(bits);
    let total_bits = datagram.len() as u64 * 8;
    let wanted = (1 + g.below(3)).min(total_bits);
    let mut chosen: Vec<u64> = Vec::with_capacity(3);
    while (chosen.len() as u64) < wanted {
        let b = g.below(total_bits);
        if !chosen.contains(&b) {
            chosen.push(b);
        }
    }
    for b in &chosen {
        datagram[(b / 8) as usize] ^= 1 << (b % 8);
    }
    chosen.len() as u8
}

// ---------------------------------------------------------------------------------------------
// Counters.

/// What happened to the datagrams of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionCounters {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams sent on (a duplicated datagram counts twice).
    pub forwarded: u64,
    /// Datagrams dropped by random loss.
    pub dropped: u64,
    /// Datagrams sent twice.
    pub duplicated: u64,
    /// Datagrams held back and released after a later one.
    pub reordered: u64,
    /// Datagrams given a non-zero delay.
    pub delayed: u64,
    /// Datagrams with bits flipped.
    pub corrupted: u64,
    /// Datagrams dropped because the blackhole was on.
    pub blackholed: u64,
    /// Datagrams the proxy could not relay: too many clients, or the send failed (full socket
    /// buffer, refused by the destination).
    pub errors: u64,
}

impl fmt::Display for DirectionCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received={} forwarded={} dropped={} duplicated={} reordered={} delayed={} \
             corrupted={} blackholed={} errors={}",
            self.received,
            self.forwarded,
            self.dropped,
            self.duplicated,
            self.reordered,
            self.delayed,
            self.corrupted,
            self.blackholed,
            self.errors
        )
    }
}

/// The proxy's counters, per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChaosCounters {
    /// From clients to `forward`.
    pub upstream: DirectionCounters,
    /// From `forward` back to clients.
    pub downstream: DirectionCounters,
    /// Clients seen since the start.
    pub clients: u64,
}

impl fmt::Display for ChaosCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "clients={}", self.clients)?;
        writeln!(f, "upstream:   {}", self.upstream)?;
        write!(f, "downstream: {}", self.downstream)
    }
}

/// Live counters of one direction.
#[derive(Default)]
struct LiveDirection {
    received: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    delayed: AtomicU64,
    corrupted: AtomicU64,
    blackholed: AtomicU64,
    errors: AtomicU64,
}

impl LiveDirection {
    fn count(&self, fate: Fate) {
        let add = |c: &AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        add(&self.received);
        match fate {
            Fate::Blackholed => add(&self.blackholed),
            Fate::Lost => add(&self.dropped),
            Fate::Passed {
                copies,
                flipped,
                held,
                delayed,
            } => {
                if copies > 1 {
                    add(&self.duplicated);
                }
                if flipped > 0 {
                    add(&self.corrupted);
                }
                if held {
                    add(&self.reordered);
                }
                if delayed {
                    add(&self.delayed);
                }
            }
        }
    }

    fn snapshot(&self) -> DirectionCounters {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirectionCounters {
            received: l(&self.received),
            forwarded: l(&self.forwarded),
            dropped: l(&self.dropped),
            duplicated: l(&self.duplicated),
            reordered: l(&self.reordered),
            delayed: l(&self.delayed),
            corrupted: l(&self.corrupted),
            blackholed: l(&self.blackholed),
            errors: l(&self.errors),
        }
    }
}

#[derive(Default)]
struct LiveCounters {
    upstream: LiveDirection,
    downstream: LiveDirection,
    clients: AtomicU64,
}

impl LiveCounters {
    fn dir(&self, d: Direction) -> &LiveDirection {
        match d {
            Direction::Upstream => &self.upstream,
            Direction::Downstream => &self.downstream,
        }
    }

    fn snapshot(&self) -> ChaosCounters {
        ChaosCounters {
            upstream: self.upstream.snapshot(),
            downstream: self.downstream.snapshot(),
            clients: self.clients.load(Ordering::Relaxed),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy.

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
        set_buffer_sizes(&std_listen);
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
        set_buffer_sizes(&socket);
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
                "chaos: setsockopt buffer size: {}",
                io::Error::last_os_error()
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn set_buffer_sizes(_socket: &std::net::UdpSocket) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> FaultSettings {
        FaultSettings::NONE
    }

    fn run(link: &mut FaultLink, n: u64, len: usize) -> (Vec<Fate>, Vec<Release>) {
        let mut fates = Vec::new();
        let mut out = Vec::new();
        for i in 0..n {
            let mut d = i.to_le_bytes().to_vec();
            d.resize(len.max(8), 0xab);
            fates.push(link.on_datagram(Duration::from_millis(i), d, &mut out));
        }
        (fates, out)
    }

    #[test]
    fn splitmix_matches_the_reference_and_replays() {
        // First outputs of the reference SplitMix64 for seed 0.
        let mut g = SplitMix64::new(0);
        assert_eq!(g.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(g.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let a: Vec<u64> = {
            let mut g = SplitMix64::new(42);
            (0..100).map(|_| g.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut g = SplitMix64::new(42);
            (0..100).map(|_| g.next_u64()).collect()
        };
        assert_eq!(a, b);
        let mut g = SplitMix64::new(43);
        assert_ne!(a[0], g.next_u64());
        let mut g = SplitMix64::new(7);
        for _ in 0..10_000 {
            let x = g.next_f64();
            assert!((0.0..1.0).contains(&x));
            assert!(g.below(3) < 3);
        }
        assert_eq!(g.below(0), 0);
    }

    #[test]
    fn streams_differ_per_client_and_direction() {
        let s = |c, d| stream_seed(9, c, d);
        assert_ne!(s(0, Direction::Upstream), s(0, Direction::Downstream));
        assert_ne!(s(0, Direction::Upstream), s(1, Direction::Upstream));
        assert_eq!(s(3, Direction::Downstream), s(3, Direction::Downstream));
        assert_ne!(
            stream_seed(9, 0, Direction::Upstream),
            stream_seed(10, 0, Direction::Upstream)
        );
    }

    #[test]
    fn no_faults_passes_everything_unchanged_and_in_order() {
        let mut link = FaultLink::new(settings(), 1);
        let (fates, out) = run(&mut link, 1000, 100);
        assert!(fates.iter().all(|f| matches!(
            f,
            Fate::Passed {
                copies: 1,
                flipped: 0,
                held: false,
                delayed: false
            }
        )));
        assert_eq!(out.len(), 1000);
        for (i, r) in out.iter().enumerate() {
            assert_eq!(r.at, Duration::from_millis(i as u64));
            assert_eq!(r.datagram[..8], (i as u64).to_le_bytes());
        }
    }

    #[test]
    fn the_same_seed_decides_the_same_fates() {
        let s = FaultSettings {
            loss: 0.1,
            dup: 0.05,
            reorder: 0.05,
            delay: Duration::from_millis(2),
            jitter: Duration::from_millis(2),
            corrupt: 0.02,
            blackhole: None,
        };
        let (f1, o1) = run(&mut FaultLink::new(s, 77), 5000, 64);
        let (f2, o2) = run(&mut FaultLink::new(s, 77), 5000, 64);
        assert_eq!(f1, f2);
        assert_eq!(o1, o2);
        let (f3, _) = run(&mut FaultLink::new(s, 78), 5000, 64);
        assert_ne!(f1, f3);
    }

    #[test]
    fn loss_and_duplication_rates_match_the_settings() {
        let s = FaultSettings {
            loss: 0.1,
            dup: 0.05,
            ..settings()
        };
        let n = 100_000;
        let (fates, out) = run(&mut FaultLink::new(s, 5), n, 16);
        let lost = fates.iter().filter(|f| **f == Fate::Lost).count() as f64;
        let dup = fates
            .iter()
            .filter(|f| matches!(f, Fate::Passed { copies: 2, .. }))
            .count() as f64;
        assert!((lost / n as f64 - 0.1).abs() < 0.005, "loss {lost}");
        // Duplication is drawn independently of loss: 5 % of the 90 % that pass.
        assert!((dup / n as f64 - 0.045).abs() < 0.004, "dup {dup}");
        assert_eq!(out.len() as f64, n as f64 - lost + dup);
        let all = FaultSettings {
            loss: 1.0,
            ..settings()
        };
        let (fates, out) = run(&mut FaultLink::new(all, 5), 1000, 16);
        assert!(fates.iter().all(|f| *f == Fate::Lost));
        assert!(out.is_empty());
    }

    #[test]
    fn corruption_flips_one_to_three_bits() {
        let s = FaultSettings {
            corrupt: 1.0,
            ..settings()
        };
        let mut link = FaultLink::new(s, 11);
        let mut seen = [0usize; 4];
        for i in 0..3000u64 {
            let original: Vec<u8> = (0..200).map(|j| (i as u8).wrapping_add(j)).collect();
            let mut out = Vec::new();
            let fate = link.on_datagram(Duration::ZERO, original.clone(), &mut out);
            let Fate::Passed { flipped, .. } = fate else {
                panic!("{fate:?}")
            };
            let distance: u32 = original
                .iter()
                .zip(&out[0].datagram)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(distance, flipped as u32);
            assert!((1..=3).contains(&distance), "{distance}");
            seen[distance as usize] += 1;
        }
        assert!(seen[1] > 0 && seen[2] > 0 && seen[3] > 0, "{seen:?}");
        // A one-byte datagram still gets distinct bits; an empty one is left alone.
        let mut out = Vec::new();
        link.on_datagram(Duration::ZERO, vec![0], &mut out);
        assert!((1..=3).contains(&out[0].datagram[0].count_ones()));
        let fate = link.on_datagram(Duration::ZERO, Vec::new(), &mut out);
        assert!(matches!(fate, Fate::Passed { flipped: 0, .. }));
    }

    #[test]
    fn reordering_releases_a_held_datagram_after_the_next_one() {
        let s = FaultSettings {
            reorder: 1.0,
            ..settings()
        };
        let mut link = FaultLink::new(s, 3);
        let mut out = Vec::new();
        let f0 = link.on_datagram(Duration::ZERO, vec![0], &mut out);
        assert!(matches!(f0, Fate::Passed { held: true, .. }));
        assert!(out.is_empty());
        assert_eq!(link.hold_deadline(), Some(REORDER_MAX_HOLD));
        // The next one cannot be held too: it goes, then the held one.
        let f1 = link.on_datagram(Duration::from_millis(1), vec![1], &mut out);
        assert!(matches!(f1, Fate::Passed { held: false, .. }));
        let order: Vec<u8> = out.iter().map(|r| r.datagram[0]).collect();
        assert_eq!(order, vec![1, 0]);
        assert_eq!(out[1].at, Duration::from_millis(1));
        // Over many datagrams: every one comes out exactly once.
        let mut link = FaultLink::new(
            FaultSettings {
                reorder: 0.3,
                ..settings()
            },
            4,
        );
        let (_, mut out) = run(&mut link, 1000, 8);
        if let Some(r) = link.release_expired(Duration::from_secs(10)) {
            out.push(r);
        }
        let mut got: Vec<u64> = out
            .iter()
            .map(|r| u64::from_le_bytes(r.datagram[..8].try_into().unwrap()))
            .collect();
        let in_order = got.windows(2).all(|w| w[0] < w[1]);
        assert!(!in_order, "some were reordered");
        got.sort_unstable();
        assert_eq!(got, (0..1000).collect::<Vec<u64>>());
    }

    #[test]
    fn a_held_datagram_is_released_after_the_longest_hold() {
        let s = FaultSettings {
            reorder: 1.0,
            delay: Duration::from_millis(5),
            ..settings()
        };
        let mut link = FaultLink::new(s, 3);
        let mut out = Vec::new();
        link.on_datagram(Duration::from_millis(10), vec![7], &mut out);
        assert!(link.release_expired(Duration::from_millis(20)).is_none());
        let r = link
            .release_expired(Duration::from_millis(10) + REORDER_MAX_HOLD)
            .unwrap();
        assert_eq!(r.datagram, vec![7]);
        assert_eq!(r.at, Duration::from_millis(10) + REORDER_MAX_HOLD);
        assert!(link.hold_deadline().is_none());
        assert!(link.take_held().is_none());
    }

    #[test]
    fn delay_and_jitter_stay_within_bounds() {
        let s = FaultSettings {
            delay: Duration::from_millis(2),
            jitter: Duration::from_millis(2),
            ..settings()
        };
        let mut link = FaultLink::new(s, 8);
        let mut out = Vec::new();
        let (mut min, mut max, mut zero) = (Duration::MAX, Duration::ZERO, 0);
        for _ in 0..10_000 {
            out.clear();
            let fate = link.on_datagram(Duration::from_secs(1), vec![1], &mut out);
            let d = out[0].at - Duration::from_secs(1);
            assert_eq!(
                matches!(fate, Fate::Passed { delayed: true, .. }),
                !d.is_zero()
            );
            min = min.min(d);
            max = max.max(d);
            zero += d.is_zero() as u32;
        }
        assert!(max <= Duration::from_millis(4), "{max:?}");
        assert!(max > Duration::from_micros(3900), "{max:?}");
        assert!(min < Duration::from_micros(100), "{min:?}");
        assert_eq!(zero, 0, "a delay of exactly zero has probability zero");
        // Jitter larger than the delay is clamped at zero.
        let s = FaultSettings {
            delay: Duration::from_millis(1),
            jitter: Duration::from_millis(10),
            ..settings()
        };
        let mut link = FaultLink::new(s, 8);
        for _ in 0..1000 {
            out.clear();
            link.on_datagram(Duration::ZERO, vec![1], &mut out);
            assert!(out[0].at <= Duration::from_millis(11));
        }
    }

    #[test]
    fn blackhole_follows_the_clock() {
        let s = FaultSettings {
            blackhole: Some((Duration::from_secs(5), Duration::from_secs(2))),
            ..settings()
        };
        for (t, dark) in [
            (0, true),
            (4_999, true),
            (5_000, false),
            (6_999, false),
            (7_000, true),
            (11_999, true),
            (12_000, false),
            (70_000, true),
        ] {
            assert_eq!(s.blackholed(Duration::from_millis(t)), dark, "{t} ms");
            let mut link = FaultLink::new(s, 1);
            let mut out = Vec::new();
            let fate = link.on_datagram(Duration::from_millis(t), vec![1], &mut out);
            assert_eq!(fate == Fate::Blackholed, dark, "{t} ms");
            assert_eq!(out.is_empty(), dark);
        }
        assert!(!settings().blackholed(Duration::from_secs(1)));
    }

    #[test]
    fn configurations_are_validated() {
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let ok = ChaosConfig::new(a, b);
        assert_eq!(ok.validate(), Ok(()));
        let bad = |f: &dyn Fn(&mut ChaosConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(matches!(
            bad(&|c| c.loss = 1.5),
            ChaosError::Probability { name: "loss", .. }
        ));
        assert!(matches!(
            bad(&|c| c.dup = -0.1),
            ChaosError::Probability { name: "dup", .. }
        ));
        assert!(matches!(
            bad(&|c| c.corrupt = f64::NAN),
            ChaosError::Probability {
                name: "corrupt",
                ..
            }
        ));
        assert!(matches!(
            bad(&|c| c.reorder = 2.0),
            ChaosError::Probability {
                name: "reorder",
                ..
            }
        ));
        assert!(matches!(
            bad(&|c| c.jitter_ms = MAX_DELAY_MS + 1),
            ChaosError::Delay { .. }
        ));
        assert!(matches!(
            bad(&|c| c.blackhole = Some((Duration::ZERO, Duration::from_secs(1)))),
            ChaosError::Blackhole { .. }
        ));
        assert_eq!(bad(&|c| c.forward = a), ChaosError::SameAddress(a));
        // Listening on every address at the forward port would relay to itself.
        let any: SocketAddr = "0.0.0.0:4001".parse().unwrap();
        assert_eq!(bad(&|c| c.listen = any), ChaosError::SameAddress(any));
        let other_ip = ChaosConfig::new(a, "127.0.0.2:4000".parse().unwrap());
        assert_eq!(other_ip.validate(), Ok(()));
        assert!(matches!(
            bad(&|c| c.forward = "0.0.0.0:5".parse().unwrap()),
            ChaosError::Forward(_)
        ));
        assert!(matches!(
            bad(&|c| c.forward = "127.0.0.1:0".parse().unwrap()),
            ChaosError::Forward(_)
        ));
        let err = Chaos::start(ChaosConfig {
            loss: 3.0,
            ..ok.clone()
        })
        .err()
        .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("loss"), "{err}");
    }

    /// An echo server behind the proxy: two clients, replies mapped back to each.
    #[test]
    fn relays_between_clients_and_the_server_both_ways() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let server_addr = server.local_addr().unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&done);
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut peers = std::collections::HashSet::new();
            while !stop.load(Ordering::SeqCst) {
                if let Ok((n, from)) = server.recv_from(&mut buf) {
                    peers.insert(from);
                    server.send_to(&buf[..n], from).unwrap();
                }
            }
            peers.len()
        });
        let proxy = Chaos::start(ChaosConfig {
            delay_ms: 1,
            ..ChaosConfig::new("127.0.0.1:0".parse().unwrap(), server_addr)
        })
        .unwrap();
        assert_ne!(proxy.listen_addr().port(), 0);
        assert_eq!(proxy.forward_addr(), server_addr);
        let clients: Vec<std::net::UdpSocket> = (0..2)
            .map(|_| {
                let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                c
            })
            .collect();
        for round in 0..20u8 {
            for (i, c) in clients.iter().enumerate() {
                c.send_to(&[i as u8, round], proxy.listen_addr()).unwrap();
                let mut buf = [0u8; 16];
                let (n, from) = c.recv_from(&mut buf).unwrap();
                assert_eq!(from, proxy.listen_addr());
                assert_eq!(&buf[..n], &[i as u8, round]);
            }
        }
        let counters = proxy.stop();
        done.store(true, Ordering::SeqCst);
        assert_eq!(echo.join().unwrap(), 2, "one upstream socket per client");
        assert_eq!(counters.clients, 2);
        for d in [counters.upstream, counters.downstream] {
            assert_eq!(d.received, 40);
            assert_eq!(d.forwarded, 40);
            assert_eq!(d.delayed, 40);
            assert_eq!(d.dropped + d.errors + d.blackholed, 0);
        }
        assert!(counters.to_string().contains("upstream:   received=40"));
    }
}
