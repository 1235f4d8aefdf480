//! A deterministic many-node simulator running the very same engines as a real node.
//!
//! Every simulated node ([`node::SimNode`]) is built from the same Router, Network Identity
//! Store, PubSub and engine state machines as a real node, and the same Transport connection
//! core, here driven over simulated connections ([`conn::SimConn`]) instead of quiche. All nodes
//! run on one thread, on a virtual clock, from one event queue ordered by (virtual time,
//! sequence); links have latency, jitter, loss, duplication and reordering, partitions heal,
//! and nodes crash and restart ([`net`] describes each fault). Every random decision — faults,
//! topology, keys, the Transport cores' jitter — comes from the run's seed, so the same seed
//! gives the same run, and the hash of the event trace ([`World::trace_hash`]) proves it.
//!
//! Signatures are real Ed25519 by default: the nodes sign and verify exactly as real nodes do.
//! Large runs may use the cheap stand-in ([`crate::stand_in`]); every report names the scheme.
//!
//! [`scenario`] holds the workloads (`pubsub`, `unicast`) with their invariants, checked after
//! every event; `netmachine sim` runs them from the command line.

pub mod conn;
pub mod net;
pub mod node;
mod queue;
pub mod scenario;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::identity::TopicIdentity;
use crate::mail::domain::DomainDirectory;
use crate::rng::SplitMix64;
use crate::time::{Now, Timestamp};
use crate::wire::NodeAdvert;
use net::{Event, LinkFaults, Net};
use node::{EngineSetup, NodeExtras, NodeSetup, SimNode};

/// The wall clock a simulation starts at (2026-01-01T00:00:00Z), so that expiries and ids do
/// not depend on when it runs.
pub const WALL_EPOCH: Timestamp = Timestamp(1_767_225_600_000);

/// Builds the application engines of node `index` for its `incarnation` (a restarted node
/// gets fresh engines: what was in memory is lost).
pub type AppFactory = Box<dyn FnMut(usize, u32) -> Vec<EngineSetup>>;

/// Builds the built-in engines besides PubSub — the Domain and Topology engines — of node
/// `index` for its `incarnation`, given the node's new (empty) domain directory, which the
/// simulator also hands to the node's Router and PubSub.
pub type BuiltinFactory = Box<dyn FnMut(usize, u32, &DomainDirectory) -> Vec<EngineSetup>>;

/// What the nodes of a world run and know beyond their setups (the domain scenario's needs).
pub struct WorldExtras {
    /// Built-in engines per node and incarnation.
    pub builtins: BuiltinFactory,
    /// Per node (by index; missing: none), adverts of nodes it can find without keeping a
    /// connection to them, learnt when an engine first sends to one or asks to connect to it
    /// ([`NodeExtras::known`]).
    pub known: Vec<Arc<std::collections::BTreeMap<crate::identity::NodeIdentity, NodeAdvert>>>,
    /// A topic whose PubSub messages leaving each node are counted ([`SimNode::topic_sends`]).
    pub watch_topic: Option<TopicIdentity>,
    /// Per node (by index; missing: none), the foreign-domain routes its Router sends
    /// `Destination::Domain` messages by (shared with its DomainRouting engine, which the
    /// builtins build with the same cache). Kept across restarts.
    pub routes: Vec<crate::mail::interdomain::DomainRoutes>,
    /// Per node (by index; missing or `None`: no relaying), the relay policy its Router runs.
    pub relay: Vec<Option<crate::relay::RelayPolicy>>,
}

impl Default for WorldExtras {
    fn default() -> Self {
        WorldExtras {
            builtins: Box::new(|_, _, _| Vec::new()),
            known: Vec::new(),
            watch_topic: None,
            routes: Vec::new(),
            relay: Vec::new(),
        }
    }
}

/// The nodes, the network between them, and the clock.
pub struct World {
    /// The run's seed.
    pub seed: u64,
    /// The nodes, by index; `None` while crashed.
    pub nodes: Vec<Option<SimNode>>,
    setups: Vec<NodeSetup>,
    apps: AppFactory,
    extras: WorldExtras,
    pub(crate) net: Net,
    base: Instant,
    /// Scheduled wake-up of each node, to avoid scheduling the same one twice.
    wakes: Vec<Option<Duration>>,
    rng: SplitMix64,
    trace: u64,
    /// Events handled so far.
    pub steps: u64,
    /// Crashes and restarts so far.
    pub crashes: u64,
    /// Partitions so far.
    pub partitions: u64,
    /// Nodes that crashed at least once.
    pub crashed: BTreeSet<usize>,
    /// The drop counters (by reason label) and PubSub counters of node incarnations that
    /// crashed, kept for the report.
    pub retired_drops: std::collections::BTreeMap<String, u64>,
    /// See `retired_drops`.
    pub retired_pubsub: std::collections::BTreeMap<String, u64>,
    /// Messages that left crashed node incarnations, by the name of the engine that sent them.
    pub retired_sent: std::collections::BTreeMap<String, u64>,
    /// Watched-topic PubSub messages that left crashed node incarnations, by node.
    pub retired_topic_sends: std::collections::BTreeMap<usize, u64>,
    /// The nodes that ran (were settled) during the last event: a per-step check need look at
    /// these only.
    pub touched: Vec<usize>,
    downtime: Duration,
}

impl World {
    /// A world of nodes built from `setups`, with application engines from `apps`, links with
    /// `faults`, and every random decision drawn from `seed`.
    pub fn new(seed: u64, setups: Vec<NodeSetup>, apps: AppFactory, faults: LinkFaults) -> World {
        World::with_extras(seed, setups, apps, faults, WorldExtras::default())
    }

    /// As [`World::new`], with built-in domain engines, known adverts and a watched topic.
    pub fn with_extras(
        seed: u64,
        setups: Vec<NodeSetup>,
        apps: AppFactory,
        faults: LinkFaults,
        extras: WorldExtras,
    ) -> World {
        let mut net = Net::new(faults, SplitMix64::derive(seed, u64::MAX));
        for (i, s) in setups.iter().enumerate() {
            log::debug!("sim: node {i} is {}", s.key.node_identity().short());
            net.by_identity.insert(s.key.node_identity(), i);
            let addr = node_addr(i);
            net.by_addr.insert(addr, i);
            net.addrs.push(addr);
            net.incarnation.push(0);
            net.up.push(true);
        }
        let n = setups.len();
        let mut w = World {
            seed,
            nodes: (0..n).map(|_| None).collect(),
            setups,
            apps,
            extras,
            net,
            base: Instant::now(),
            wakes: vec![None; n],
            rng: SplitMix64::derive(seed, u64::MAX - 1),
            trace: 0xcbf2_9ce4_8422_2325,
            steps: 0,
            crashes: 0,
            partitions: 0,
            crashed: BTreeSet::new(),
            retired_drops: Default::default(),
            retired_pubsub: Default::default(),
            retired_sent: Default::default(),
            retired_topic_sends: Default::default(),
            touched: Vec::new(),
            downtime: Duration::from_secs(2),
        };
        let now = w.now();
        for i in 0..n {
            w.start_node(i, now);
        }
        w
    }

    /// The virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.net.t
    }

    /// The current time, as engines see it.
    pub fn now(&self) -> Now {
        Now {
            instant: self.base + self.net.t,
            wall: WALL_EPOCH.after(self.net.t),
        }
    }

    /// A hex hash of everything that happened so far (events, in order, with their times).
    pub fn trace_hash(&self) -> String {
        format!("{:016x}", self.trace)
    }

    /// Adds `v` to the trace.
    pub(crate) fn trace(&mut self, v: u64) {
        for b in v.to_le_bytes() {
            self.trace ^= b as u64;
            self.trace = self.trace.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The world's own random source (for workloads: which node, which peer).
    pub fn rng(&mut self) -> &mut SplitMix64 {
        &mut self.rng
    }

    /// Events still queued.
    pub fn pending_events(&self) -> usize {
        self.net.queue.len()
    }

    /// Packets lost, datagrams duplicated, and stream packets delayed by loss so far.
    pub fn link_counters(&self) -> (u64, u64, u64) {
        (self.net.lost, self.net.duplicated, self.net.delayed)
    }

    /// How long a crashed node stays down before it restarts (default 2 s).
    pub fn set_downtime(&mut self, d: Duration) {
        self.downtime = d;
    }

    /// Schedules a crash of `node` at `at` (it restarts after the downtime).
    pub fn crash_at(&mut self, at: Duration, node: usize) {
        self.net.queue.push(
            at,
            Event::Crash {
                node,
                restart: true,
            },
        );
    }

    /// Schedules a crash of `node` at `at`, after which it stays down.
    pub fn crash_for_good_at(&mut self, at: Duration, node: usize) {
        self.net.queue.push(
            at,
            Event::Crash {
                node,
                restart: false,
            },
        );
    }

    /// Whether node `i` is up.
    pub fn is_up(&self, i: usize) -> bool {
        self.net.up.get(i).copied().unwrap_or(false)
    }

    /// Whether a partition is in force now.
    pub fn partitioned(&self) -> bool {
        self.net.partition.is_some()
    }

    /// Schedules a partition of `side` from the other nodes from `at` for `len`.
    pub fn partition_at(&mut self, at: Duration, side: BTreeSet<usize>, len: Duration) {
        self.net.queue.push(
            at,
            Event::Partition {
                side,
                heal_at: at + len,
            },
        );
    }

    /// Schedules an application event for `node` (delivered to [`World::run_until`]'s handler).
    pub fn app_at(&mut self, at: Duration, node: usize, token: u64) {
        self.net.queue.push(at, Event::App { node, token });
    }

    fn start_node(&mut self, i: usize, now: Now) {
        let incarnation = self.net.incarnation[i];
        let apps = (self.apps)(i, incarnation);
        let directory = DomainDirectory::new();
        let extras = NodeExtras {
            builtins: (self.extras.builtins)(i, incarnation, &directory),
            directory,
            known: self.extras.known.get(i).cloned().unwrap_or_default(),
            watch_topic: self.extras.watch_topic,
            routes: self.extras.routes.get(i).cloned(),
            relay: self.extras.relay.get(i).cloned().flatten(),
        };
        let rng = SplitMix64::derive(self.seed, ((i as u64) << 20) | incarnation as u64);
        let node = SimNode::with_extras(&self.setups[i], extras, apps, incarnation, rng, now);
        self.nodes[i] = Some(node);
        self.net.up[i] = true;
        self.settle(i);
    }

    /// Runs node `i` until it is idle, then schedules its next deadline.
    fn settle(&mut self, i: usize) {
        if self.touched.last() != Some(&i) {
            self.touched.push(i);
        }
        let now = self.now();
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        node.settle(now, &mut self.net);
        let next = node.next_deadline(now).map(|d| {
            let at = d.saturating_duration_since(self.base);
            at.max(self.net.t + Duration::from_micros(1))
        });
        if let Some(at) = next {
            if self.wakes[i].is_none_or(|w| w <= self.net.t || at < w) {
                self.wakes[i] = Some(at);
                self.net.queue.push(at, Event::Wake { node: i });
            }
        }
    }

    /// Handles events until virtual time `until` (or the queue empties); `app` receives the
    /// application events, and `check` runs after every event: an `Err` stops the run with the
    /// step and the seed.
    pub fn run_until(
        &mut self,
        until: Duration,
        app: &mut dyn FnMut(&mut World, usize, u64),
        check: &mut dyn FnMut(&World) -> Result<(), String>,
    ) -> Result<(), String> {
        // Peeked, not popped and pushed back: an event left for a later call keeps its place
        // among the events due at the same instant, so a run cut into pieces is the same run.
        while self.net.queue.next_at().is_some_and(|at| at <= until) {
            let Some((at, event)) = self.net.queue.pop() else {
                break;
            };
            self.net.t = at;
            self.steps += 1;
            self.touched.clear();
            self.trace(at.as_nanos() as u64);
            self.handle(event, app);
            check(self).map_err(|e| {
                format!(
                    "invariant broken at step {} (t = {:.6} s), seed {}: {e}",
                    self.steps,
                    at.as_secs_f64(),
                    self.seed
                )
            })?;
        }
        self.net.t = until;
        Ok(())
    }

    fn handle(&mut self, event: Event, app: &mut dyn FnMut(&mut World, usize, u64)) {
        let now = self.now();
        match event {
            Event::Open {
                dialer,
                from,
                identity,
                to,
            } => {
                self.trace(1);
                self.trace(to as u64);
                if !self.net.up[to] || !self.net.endpoints.contains_key(&dialer) {
                    return;
                }
                let Some(node) = self.nodes[to].as_mut() else {
                    return;
                };
                match node.accept(now, from) {
                    Some(conn) => {
                        let ep = self.net.accepted(dialer, to, conn, identity);
                        node.conns.insert(conn, ep);
                        node.activity(conn);
                        self.settle(to);
                    }
                    None => {
                        let latency = self.net.faults.latency;
                        self.net
                            .close_later(dialer, latency, "refused: connection limit");
                    }
                }
            }
            Event::Accepted { dialer, listener } => {
                self.trace(2);
                let Some(e) = self.net.endpoints.get_mut(&dialer) else {
                    // The dialer gave up (or crashed) meanwhile: the listener's end hears
                    // nothing more and closes, as QUIC's idle timeout would close it.
                    let idle = self
                        .setups
                        .first()
                        .map_or(Duration::from_secs(10), |s| s.transport.idle_timeout);
                    self.net
                        .close_later(listener, idle, "idle timeout (dialer gone)");
                    return;
                };
                e.q.established = true;
                e.peer = Some(listener);
                let (n, conn) = (e.node, e.conn);
                if let Some(node) = self.nodes[n].as_mut() {
                    node.activity(conn);
                }
                self.settle(n);
            }
            Event::Bytes {
                from,
                to,
                sid,
                data,
                fin,
            } => {
                self.trace(3);
                self.trace(data.len() as u64);
                let Some(e) = self.net.endpoints.get_mut(&to) else {
                    // Nobody there any more: the sender learns it as from a stateless reset.
                    let latency = self.net.faults.latency;
                    if self.net.endpoints.contains_key(&from) {
                        self.net
                            .close_later(from, latency, "stateless reset: peer gone");
                    }
                    return;
                };
                if e.q.closed_by_us.is_some() {
                    return;
                }
                let n = data.len() as u64;
                let s = e.q.inb.entry(sid).or_default();
                s.0.extend(data);
                s.1 |= fin;
                // The sender's QUIC learns of it one latency later; nothing in the core depends
                // on that delay (only on progress), so it is credited now.
                if let Some(sender) = self.net.endpoints.get_mut(&from) {
                    sender.q.acked += n;
                }
                self.touch(to);
            }
            Event::Stop { to, sid, code } => {
                self.trace(4);
                if let Some(e) = self.net.endpoints.get_mut(&to) {
                    e.q.stopped.insert(sid, code);
                    self.touch(to);
                }
            }
            Event::Dgram { to, data } => {
                self.trace(5);
                if let Some(e) = self.net.endpoints.get_mut(&to) {
                    e.q.dgrams_in.push_back(data);
                    self.touch(to);
                }
            }
            Event::Close { to, reason } => {
                self.trace(6);
                let Some(mut e) = self.net.endpoints.remove(&to) else {
                    return;
                };
                if e.q.closed_by_us.is_none() && e.q.closed_by_peer.is_none() {
                    e.q.closed_by_peer = Some(reason);
                }
                let n = e.node;
                if let Some(node) = self.nodes[n].as_mut() {
                    if e.incarnation == node.incarnation {
                        node.closed(now, e.conn, &e.q);
                    }
                }
                self.net.forget(to);
                self.settle(n);
            }
            Event::Wake { node } => {
                if self.wakes[node] == Some(self.net.t) {
                    self.trace(7);
                    self.trace(node as u64);
                    self.wakes[node] = None;
                    self.settle(node);
                }
            }
            Event::Crash { node, restart } => {
                if !self.net.up[node] {
                    return;
                }
                self.touched.push(node);
                self.trace(8);
                self.trace(node as u64);
                self.crashes += 1;
                self.crashed.insert(node);
                if let Some(old) = self.nodes[node].take() {
                    for (reason, n) in old.stats.snapshot().drops {
                        *self
                            .retired_drops
                            .entry(reason.label().to_string())
                            .or_default() += n;
                    }
                    if let Some(p) = &old.pubsub_stats {
                        for (name, n) in p.nonzero() {
                            *self.retired_pubsub.entry(name.to_string()).or_default() += n;
                        }
                    }
                    for (name, n) in old.sent_by_engine() {
                        *self.retired_sent.entry(name).or_default() += n;
                    }
                    *self.retired_topic_sends.entry(node).or_default() += old.topic_sends;
                }
                self.net.up[node] = false;
                self.wakes[node] = None;
                let idle = self.setups[node].transport.idle_timeout;
                for ep in self.net.endpoints_of(node) {
                    if let Some(peer) = self.net.endpoints.get(&ep).and_then(|e| e.peer) {
                        self.net.close_later(peer, idle, "idle timeout");
                    }
                    self.net.forget(ep);
                }
                if restart {
                    let at = self.net.t + self.downtime;
                    self.net.queue.push(at, Event::Restart { node });
                }
            }
            Event::Restart { node } => {
                self.trace(9);
                self.trace(node as u64);
                self.net.incarnation[node] += 1;
                self.start_node(node, now);
            }
            Event::Partition { side, heal_at } => {
                self.trace(10);
                if self.net.partition.is_some() {
                    // One partition at a time: a second one while the first lasts is ignored.
                    log::warn!("sim: a partition while another lasts is ignored");
                    return;
                }
                self.partitions += 1;
                self.net.partition = Some((side, heal_at));
                let idle = self
                    .setups
                    .first()
                    .map_or(Duration::from_secs(10), |s| s.transport.idle_timeout);
                if self.net.t + idle < heal_at {
                    self.net
                        .queue
                        .push(self.net.t + idle, Event::PartitionIdle { heal_at });
                }
                self.net.queue.push(heal_at, Event::Heal { heal_at });
            }
            Event::PartitionIdle { heal_at } => {
                self.trace(11);
                if self.net.partition.as_ref().map(|p| p.1) != Some(heal_at) {
                    return;
                }
                let cut: Vec<u64> = self
                    .net
                    .endpoints
                    .iter()
                    .filter(|(_, e)| {
                        e.peer
                            .and_then(|p| self.net.endpoints.get(&p))
                            .is_some_and(|p| self.net.cut(e.node, p.node))
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for ep in cut {
                    self.net
                        .close_later(ep, Duration::ZERO, "idle timeout (partition)");
                }
            }
            Event::Heal { heal_at } => {
                self.trace(12);
                if self.net.partition.as_ref().map(|p| p.1) == Some(heal_at) {
                    self.net.partition = None;
                }
            }
            Event::App { node, token } => {
                self.trace(13);
                self.trace(node as u64);
                self.trace(token);
                app(self, node, token);
                self.settle(node);
            }
        }
    }

    /// Something arrived for endpoint `ep`: its node services the connection.
    fn touch(&mut self, ep: u64) {
        let Some(e) = self.net.endpoints.get(&ep) else {
            return;
        };
        let (n, conn, inc) = (e.node, e.conn, e.incarnation);
        if let Some(node) = self.nodes[n].as_mut() {
            if node.incarnation == inc {
                node.activity(conn);
                self.settle(n);
            }
        }
    }
}

/// The (label) address of node `i`: no socket is opened for it.
pub fn node_addr(i: usize) -> SocketAddr {
    let i = i as u32 + 1;
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 4000))
}
