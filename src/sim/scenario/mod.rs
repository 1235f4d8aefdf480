//! Workloads for the simulator, with the invariants checked after every event and the summary
//! of a run.
//!
//! * **pubsub**: `publishers` nodes, spread over the graph, publish `events` events each to one
//!   topic (one every `interval`), and receive each other's; every other node subscribes;
//!   nodes are linked in a random graph of average degree `degree` (a ring plus random chords,
//!   all from the seed).
//! * **unicast**: every node's client engine sends `requests` requests to the server engines of
//!   its neighbours, which answer each.
//! * **domain**: a domain of `members` nodes formed from the start, `joins` nodes asking to
//!   join at once, a partition of its members, a crash of a fraction of them, and a topic
//!   scoped to the domain (see `domain`).
//! * **storage**: every node a member of one domain and running the Storage engine, blocks
//!   each held by a fraction of the nodes, and random-walk lookups of them from nodes that do
//!   not hold them (see `storage`).
//! * **relay**: edge nodes with no address for each other, linked only to relays (some of which
//!   drop what they should forward), sending each other requests (see `relay`).
//!
//! Invariants, checked on every step (a broken one fails the run with the seed and the step):
//! no message is delivered twice to one incarnation of an engine; per publisher, events arrive
//! in order; an event arrives after every event its publisher had received before publishing
//! it (causal order; excused only at a node whose PubSub counted a causal timeout); per engine
//! pair, reliable ordered requests arrive in order; no forged event reaches
//! an honest subscriber. At the end the summary counts what was expected, what arrived, and
//! every drop by its reason, and checks that nothing went missing without one: a request of a
//! client that never crashed is `lost` if it was neither answered, nor reported undeliverable to
//! its sender, nor handled by a server that crashed before answering; an event a live
//! subscriber never got must be one its PubSub engine counted as given up.
//!
//! The workloads themselves are in `pubsub`, `unicast` and `domain`; this module holds what they share:
//! the scenario settings, the summary, the topology, node setups, faults and the run loop.

mod domain;
mod interdomain;
mod pubsub;
mod relay;
mod storage;
mod unicast;

pub use domain::{run_domain, run_domain_with, DomainScenario, DomainSummary};
pub use interdomain::{
    run_interdomain, run_interdomain_with, InterdomainScenario, InterdomainSummary, LookupFigures,
};
pub use pubsub::{run_pubsub, run_pubsub_with};
pub use relay::{run_relay, RelayScenario, RelaySummary};
pub use storage::{run_storage, run_storage_with, StorageScenario, StorageSummary};
pub use unicast::{run_unicast, run_unicast_with};

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::net::LinkFaults;
use super::node::{EngineSetup, NodeSetup};
use super::{node_addr, World};
use crate::identity::{Keypair, Signature};
use crate::mail::topic::{TopicEvent, TopicRequest};
use crate::mail::{Input, Origin};
use crate::pubsub::PUBSUB_ENGINE_NAME;
use crate::rng::SplitMix64;
use crate::runtime::{Context, Engine, SendOptions};
use crate::transport::TransportConfig;
use crate::wire::{
    Destination, NodeAdvert, Protocol, RoutingScope, Signed, TopicAdvert, TransportAddress,
};

/// The protocol of the workloads' application messages.
pub const APP: Protocol = Protocol(Protocol::APP_BASE + 0x51);

/// What every scenario shares.
#[derive(Clone, Debug)]
pub struct Common {
    /// Nodes.
    pub nodes: usize,
    /// Average number of neighbours.
    pub degree: usize,
    /// The seed of every random decision.
    pub seed: u64,
    /// Link behaviour.
    pub faults: LinkFaults,
    /// Fraction of nodes that crash (and restart) during the run.
    pub crash: f64,
    /// A partition of half the nodes lasting this long, in the middle of the run (none: 0).
    pub partition: Duration,
    /// How long after the workload ends the run goes on, for stragglers.
    pub drain: Duration,
    /// Real Ed25519, or the cheap stand-in ([`crate::stand_in`]) for large runs.
    pub crypto: Crypto,
    /// The links, if not the random graph (`(a, b)` with `a < b`).
    pub edges: Option<Vec<(usize, usize)>>,
}

/// Which signatures a run makes and checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Crypto {
    /// Real Ed25519, as real nodes.
    #[default]
    Ed25519,
    /// The keyed-hash stand-in: forgeries still rejected, thousands of times cheaper.
    StandIn,
}

impl Crypto {
    /// The name reports give it.
    pub fn name(self) -> &'static str {
        match self {
            Crypto::Ed25519 => "ed25519",
            Crypto::StandIn => crate::stand_in::NAME,
        }
    }

    fn enable(self) -> Option<crate::stand_in::Enabled> {
        (self == Crypto::StandIn).then(crate::stand_in::enable)
    }
}

impl Default for Common {
    fn default() -> Self {
        Common {
            nodes: 16,
            degree: 4,
            seed: 1,
            faults: LinkFaults::default(),
            crash: 0.0,
            partition: Duration::ZERO,
            drain: Duration::from_secs(20),
            crypto: Crypto::Ed25519,
            edges: None,
        }
    }
}

/// A pub/sub run.
#[derive(Clone, Debug)]
pub struct PubSubScenario {
    /// What every scenario shares.
    pub common: Common,
    /// Publishing nodes of the one topic, spread over the honest nodes (node 0, then every
    /// (honest nodes ÷ publishers)-th); each also receives the others' events.
    pub publishers: usize,
    /// Events per publisher.
    pub events: u64,
    /// Time between two events of a publisher.
    pub interval: Duration,
    /// When publishing starts (the tree forms first).
    pub warmup: Duration,
    /// Fraction of the other nodes that are attackers: they inject forged events (from an
    /// unauthorized publisher, and in the real publisher's name with a bad signature) to their
    /// neighbours' PubSub engines, one every `interval`.
    pub attackers: f64,
    /// The first publisher's node also runs an equivocator: with the node's PubSub key it signs
    /// a second, different event for each of the publisher's sequence numbers and sends it to
    /// the node's neighbours.
    pub equivocate: bool,
}

impl Default for PubSubScenario {
    fn default() -> Self {
        PubSubScenario {
            common: Common::default(),
            publishers: 1,
            events: 20,
            interval: Duration::from_millis(100),
            warmup: Duration::from_secs(3),
            attackers: 0.0,
            equivocate: false,
        }
    }
}

/// A request/response run.
#[derive(Clone, Debug)]
pub struct UnicastScenario {
    /// What every scenario shares.
    pub common: Common,
    /// Requests per client.
    pub requests: u64,
    /// Time between two requests of a client.
    pub interval: Duration,
    /// When requests start.
    pub warmup: Duration,
    /// Every `unreliable_every`-th request (and its answer) goes as an unreliable datagram, which
    /// the links may lose, duplicate and reorder (0: none). They are counted apart: a lost one is
    /// not `lost`, but a duplicate one handled twice is a duplicate.
    pub unreliable_every: u64,
}

impl Default for UnicastScenario {
    fn default() -> Self {
        UnicastScenario {
            common: Common::default(),
            requests: 50,
            interval: Duration::from_millis(20),
            warmup: Duration::from_secs(1),
            unreliable_every: 0,
        }
    }
}

/// The outcome of a run: every figure the summary line prints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// `pubsub` or `unicast`.
    pub scenario: String,
    /// Nodes.
    pub nodes: usize,
    /// The seed.
    pub seed: u64,
    /// The signature scheme that ran.
    pub crypto: String,
    /// Simulated seconds.
    pub sim_s: f64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Events handled.
    pub steps: u64,
    /// Events published (pubsub).
    pub events_published: u64,
    /// Deliveries expected to receivers that never crashed (pubsub): every event to each
    /// subscriber, and every other publisher's event to each publisher.
    pub deliveries_expected: u64,
    /// Distinct deliveries to those receivers (pubsub).
    pub deliveries: u64,
    /// Requests sent by clients that never crashed (unicast).
    pub requests: u64,
    /// Of those, answered (unicast).
    pub answered: u64,
    /// Of those, reported undeliverable to their sender with a reason (unicast).
    pub bounced: u64,
    /// Of those, handled by a server that crashed before its answer left (unicast): the
    /// request was acknowledged once handled; the answer died with the server's memory.
    pub answer_lost_in_crash: u64,
    /// Unicast: requests neither answered, nor reported undeliverable, nor handled — lost.
    /// Pubsub: events a live subscriber never got that its PubSub engine did not count as given
    /// up (`missing_without_reason`). Must be 0 either way.
    pub lost: u64,
    /// A message delivered twice to one incarnation of an engine.
    pub duplicates: u64,
    /// A message that arrived before one sent earlier on the same ordered path.
    pub order_violations: u64,
    /// Every drop of every node, by reason.
    pub drops_by_reason: BTreeMap<String, u64>,
    /// The PubSub engines' counters, summed over every node incarnation (crashed ones too).
    pub pubsub: BTreeMap<String, u64>,
    /// Crashes (each followed by a restart).
    pub crashes: u64,
    /// Partitions (each healed).
    pub partitions: u64,
    /// Hash of the whole event trace.
    pub trace_hash: String,
    /// Unreliable requests sent, and handled by a server (unicast with datagrams).
    pub datagrams_sent: u64,
    /// Of those, handled (the others were lost on the way, which datagrams may be).
    pub datagrams_handled: u64,
    /// Forged events attackers sent (pubsub with attackers).
    pub forged_sent: u64,
    /// Forged events delivered to an honest subscriber: must be 0.
    pub forged_deliveries: u64,
    /// Pubsub: events at the end of a crashed publisher's stream that a live receiver never got
    /// — it crashed before they spread, and with no later event from it nothing could tell
    /// the receiver they exist.
    pub lost_with_publisher: u64,
    /// Second events for a publisher's sequence numbers an equivocator sent (pubsub).
    pub equivocations_sent: u64,
    /// Deliveries out of causal order at nodes whose PubSub counted a causal timeout (it
    /// delivered an event without a dependency that did not come within its wait, and the
    /// dependency's stream was not given up on); anywhere else such a delivery fails the run.
    pub causal_late_excused: u64,
    /// The first invariant broken, if any (the run stopped there).
    pub failure: Option<String>,
}

impl Summary {
    /// The summary as one JSON object.
    pub fn to_json(&self) -> String {
        let drops: Vec<String> = self
            .drops_by_reason
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        let mut s = format!(
            "{{\"scenario\":\"{}\",\"nodes\":{},\"seed\":{},\"crypto\":\"{}\",\"sim_s\":{:.3},\"wall_s\":{:.3},\"steps\":{}",
            self.scenario, self.nodes, self.seed, self.crypto, self.sim_s, self.wall_s, self.steps
        );
        if self.scenario == "pubsub" {
            s += &format!(
                ",\"events_published\":{},\"deliveries_expected\":{},\"deliveries\":{},\"missing_without_reason\":{},\"forged_sent\":{},\"forged_deliveries\":{},\"lost_with_publisher\":{},\"equivocations_sent\":{},\"causal_late_excused\":{}",
                self.events_published,
                self.deliveries_expected,
                self.deliveries,
                self.lost,
                self.forged_sent,
                self.forged_deliveries,
                self.lost_with_publisher,
                self.equivocations_sent,
                self.causal_late_excused
            );
        } else {
            s += &format!(
                ",\"requests\":{},\"answered\":{},\"bounced\":{},\"answer_lost_in_crash\":{},\"lost\":{},\"datagrams_sent\":{},\"datagrams_handled\":{}",
                self.requests,
                self.answered,
                self.bounced,
                self.answer_lost_in_crash,
                self.lost,
                self.datagrams_sent,
                self.datagrams_handled
            );
        }
        s += &format!(
            ",\"duplicates\":{},\"order_violations\":{},\"drops_by_reason\":{{{}}},\"pubsub\":{{{}}},\"crashes\":{},\"partitions\":{},\"trace_hash\":\"{}\"",
            self.duplicates,
            self.order_violations,
            drops.join(","),
            self.pubsub
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect::<Vec<_>>()
                .join(","),
            self.crashes,
            self.partitions,
            self.trace_hash
        );
        match &self.failure {
            Some(f) => s += &format!(",\"failure\":\"{}\"}}", f.replace('"', "'")),
            None => s += ",\"failure\":null}",
        }
        s
    }
}

/// A progress report, every simulated second of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Simulated seconds so far.
    pub sim_s: f64,
    /// Wall-clock seconds so far.
    pub wall_s: f64,
    /// Events handled so far.
    pub steps: u64,
    /// Deliveries (pubsub) or answers (unicast) so far.
    pub done: u64,
}

impl Progress {
    /// As one JSON object.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"sim_s\":{:.3},\"wall_s\":{:.3},\"steps\":{},\"done\":{}}}",
            self.sim_s, self.wall_s, self.steps, self.done
        )
    }
}

/// Calls `report` once per simulated second, from a run's per-step check.
pub(super) struct Reporter<'a> {
    report: &'a mut dyn FnMut(&Progress),
    next: Duration,
    started: std::time::Instant,
}

impl Reporter<'_> {
    fn tick(&mut self, world: &World, done: u64) {
        if world.elapsed() >= self.next {
            self.next = world.elapsed() + Duration::from_secs(1);
            (self.report)(&Progress {
                sim_s: world.elapsed().as_secs_f64(),
                wall_s: self.started.elapsed().as_secs_f64(),
                steps: world.steps,
                done,
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Topology and node setups.

/// The edges of a connected random graph of average degree about `degree`: a ring plus random
/// chords.
pub fn topology(nodes: usize, degree: usize, rng: &mut SplitMix64) -> BTreeSet<(usize, usize)> {
    let mut edges = BTreeSet::new();
    if nodes < 2 {
        return edges;
    }
    for i in 0..nodes {
        let j = (i + 1) % nodes;
        if i != j {
            edges.insert((i.min(j), i.max(j)));
        }
    }
    let chords = (nodes * degree.saturating_sub(2)) / 2;
    let mut tries = 0;
    while edges.len() < nodes + chords && tries < chords * 20 + 100 {
        tries += 1;
        let a = rng.below(nodes as u64) as usize;
        let b = rng.below(nodes as u64) as usize;
        if a != b {
            edges.insert((a.min(b), a.max(b)));
        }
    }
    edges
}

/// The nodes of a run: keys, setups and neighbours, from the seed (or the given edges).
pub(super) struct Network {
    /// What else the workload draws (after the topology).
    pub(super) rng: SplitMix64,
    pub(super) keys: Vec<Keypair>,
    pub(super) setups: Vec<NodeSetup>,
    pub(super) neighbours: Vec<Vec<crate::identity::NodeIdentity>>,
}

pub(super) fn network(c: &Common) -> Network {
    let mut rng = SplitMix64::derive(c.seed, u64::MAX - 3);
    let edges = match &c.edges {
        Some(e) => e.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect(),
        None => topology(c.nodes, c.degree, &mut rng),
    };
    let keys = keys(c.nodes, c.seed);
    let setups = setups(&keys, &edges, &sim_transport());
    let mut neighbours = vec![Vec::new(); c.nodes];
    for &(a, b) in &edges {
        neighbours[a].push(keys[b].node_identity());
        neighbours[b].push(keys[a].node_identity());
    }
    Network {
        rng,
        keys,
        setups,
        neighbours,
    }
}

pub(super) fn setups(
    keys: &[Keypair],
    edges: &BTreeSet<(usize, usize)>,
    transport: &TransportConfig,
) -> Vec<NodeSetup> {
    let adverts: Vec<NodeAdvert> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            NodeAdvert::new_signed(
                k,
                vec![(TransportAddress::quic(node_addr(i)), 1)],
                1,
                super::WALL_EPOCH,
                super::WALL_EPOCH.after(crate::wire::advert::CONFIG_ADVERT_LIFETIME),
                None,
            )
        })
        .collect();
    let mut peers: Vec<Vec<(NodeAdvert, bool)>> = vec![Vec::new(); keys.len()];
    for &(a, b) in edges {
        // The smaller index keeps the connection up; both know each other's advert.
        peers[a].push((adverts[b].clone(), true));
        peers[b].push((adverts[a].clone(), false));
    }
    keys.iter()
        .enumerate()
        .map(|(i, k)| NodeSetup {
            key: k.clone(),
            advert: adverts[i].clone(),
            peers: std::mem::take(&mut peers[i]),
            transport: transport.clone(),
            pubsub: true,
        })
        .collect()
}

pub(super) fn sim_transport() -> TransportConfig {
    TransportConfig {
        idle_timeout: Duration::from_secs(10),
        ..TransportConfig::default()
    }
}

/// Schedules the faults of `common` on `world`: crashes spread over `[from, to)`, and one
/// partition of the first half of the nodes in the middle.
pub(super) fn schedule_faults(world: &mut World, common: &Common, from: Duration, to: Duration) {
    let n = common.nodes;
    let crashes = ((n as f64) * common.crash).round() as usize;
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = world.rng().below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let span = to.saturating_sub(from).max(Duration::from_millis(1));
    for &node in order.iter().take(crashes) {
        let at = from + span.mul_f64(world.rng().next_f64());
        world.crash_at(at, node);
    }
    if !common.partition.is_zero() {
        let side: BTreeSet<usize> = (0..n / 2).collect();
        let at = from + span / 2;
        world.partition_at(at, side, common.partition);
    }
}

/// The invariants a workload's engines check as messages arrive: what broke, and the first
/// break (which stops the run).
#[derive(Default)]
pub(super) struct Violations {
    pub(super) duplicates: u64,
    pub(super) order_violations: u64,
    pub(super) first: Option<String>,
}

impl Violations {
    /// `seq` arrived on the ordered path `key` (`what` names it for the report): whether it is
    /// new and in order after the last one on that path.
    pub(super) fn ordered<K: Ord>(
        &mut self,
        last: &mut BTreeMap<K, u64>,
        key: K,
        seq: u64,
        what: impl Fn() -> String,
    ) -> bool {
        match last.get(&key).copied() {
            Some(l) if seq == l => {
                self.duplicates += 1;
                self.broke(|| format!("{} twice", what()));
                false
            }
            Some(l) if seq < l => {
                self.order_violations += 1;
                self.broke(|| format!("{} after {l}", what()));
                false
            }
            _ => {
                last.insert(key, seq);
                true
            }
        }
    }

    /// A message handled twice (on a path without order).
    pub(super) fn duplicate(&mut self, what: impl FnOnce() -> String) {
        self.duplicates += 1;
        self.broke(|| format!("{} twice", what()));
    }

    /// Any other broken invariant.
    pub(super) fn broke(&mut self, what: impl FnOnce() -> String) {
        self.first.get_or_insert_with(what);
    }
}

/// Schedules the faults, then runs `world` until the workload (from `warmup` to `work_end`),
/// the partition and the drain are over. `probe` says after every event how much is done and
/// whether an invariant broke (it may look at the world: a node's counters).
pub(super) fn run_world(
    world: &mut World,
    c: &Common,
    warmup: Duration,
    work_end: Duration,
    started: std::time::Instant,
    report: &mut dyn FnMut(&Progress),
    probe: &mut dyn FnMut(&World) -> (u64, Option<String>),
) -> Result<(), String> {
    schedule_faults(world, c, warmup, work_end.max(warmup + c.partition));
    let end = work_end + c.partition + c.drain;
    let mut reporter = Reporter {
        report,
        next: Duration::ZERO,
        started,
    };
    world.run_until(end, &mut |_, _, _| {}, &mut |w| {
        let (done, violation) = probe(w);
        reporter.tick(w, done);
        violation.map_or(Ok(()), Err)
    })
}

pub(super) fn drops(world: &World) -> BTreeMap<String, u64> {
    let mut out = world.retired_drops.clone();
    for node in world.nodes.iter().flatten() {
        for (reason, n) in node.stats.snapshot().drops {
            *out.entry(reason.label().to_string()).or_default() += n;
        }
    }
    out
}

pub(super) fn pubsub_counters(world: &World) -> BTreeMap<String, u64> {
    let mut out = world.retired_pubsub.clone();
    for node in world.nodes.iter().flatten() {
        if let Some(p) = &node.pubsub_stats {
            for (name, n) in p.nonzero() {
                *out.entry(name.to_string()).or_default() += n;
            }
        }
    }
    out
}

pub(super) fn keys(n: usize, seed: u64) -> Vec<Keypair> {
    let mut rng = SplitMix64::derive(seed, u64::MAX - 2);
    (0..n).map(|_| Keypair::from_rng(&mut rng)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topology_is_connected_and_seeded() {
        let a = topology(50, 6, &mut SplitMix64::new(3));
        let b = topology(50, 6, &mut SplitMix64::new(3));
        assert_eq!(a, b);
        assert!(a.len() >= 50);
        // Connected: a walk from 0 reaches every node.
        let mut seen = BTreeSet::from([0usize]);
        let mut todo = vec![0usize];
        while let Some(n) = todo.pop() {
            for &(x, y) in &a {
                let other = if x == n {
                    y
                } else if y == n {
                    x
                } else {
                    continue;
                };
                if seen.insert(other) {
                    todo.push(other);
                }
            }
        }
        assert_eq!(seen.len(), 50);
    }
}
