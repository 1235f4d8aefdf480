//! Workloads for the simulator, with the invariants checked after every event and the summary
//! of a run.
//!
//! * **pubsub**: `publishers` nodes publish `events` events each to one topic (one every
//!   `interval`), every other node subscribes; nodes are linked in a random graph of average
//!   degree `degree` (a ring plus random chords, all from the seed).
//! * **unicast**: every node's client engine sends `requests` requests to the server engines of
//!   its neighbours, which answer each.
//!
//! Invariants, checked on every step (a broken one fails the run with the seed and the step):
//! no message is delivered twice to one incarnation of an engine; per publisher, events arrive
//! in order; per engine pair, reliable ordered requests arrive in order. At the end the summary
//! counts what was expected, what arrived, and every drop by its reason; for unicast, a request
//! of a client that never crashed is `lost` if it was neither answered nor reported
//! undeliverable to its sender (with a counted reason).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

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
    /// Publishing nodes (the first ones).
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
    /// Deliveries expected to subscribers that never crashed (pubsub).
    pub deliveries_expected: u64,
    /// Distinct deliveries to those subscribers (pubsub).
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
    /// The PubSub engines' counters, summed over the nodes running at the end.
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
                ",\"events_published\":{},\"deliveries_expected\":{},\"deliveries\":{},\"missing_without_reason\":{},\"forged_sent\":{},\"forged_deliveries\":{}",
                self.events_published,
                self.deliveries_expected,
                self.deliveries,
                self.lost,
                self.forged_sent,
                self.forged_deliveries
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
struct Reporter<'a> {
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

fn setups(
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

fn sim_transport() -> TransportConfig {
    TransportConfig {
        idle_timeout: Duration::from_secs(10),
        ..TransportConfig::default()
    }
}

/// Schedules the faults of `common` on `world`: crashes spread over `[from, to)`, and one
/// partition of the first half of the nodes in the middle.
fn schedule_faults(world: &mut World, common: &Common, from: Duration, to: Duration) {
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

/// Schedules the faults, then runs `world` until the workload (from `warmup` to `work_end`),
/// the partition and the drain are over. `probe` says after every event how much is done and
/// whether an invariant broke.
fn run_world(
    world: &mut World,
    c: &Common,
    warmup: Duration,
    work_end: Duration,
    started: std::time::Instant,
    report: &mut dyn FnMut(&Progress),
    probe: &mut dyn FnMut() -> (u64, Option<String>),
) -> Result<(), String> {
    schedule_faults(world, c, warmup, work_end.max(warmup + c.partition));
    let end = work_end + c.partition + c.drain;
    let mut reporter = Reporter {
        report,
        next: Duration::ZERO,
        started,
    };
    world.run_until(end, &mut |_, _, _| {}, &mut |w| {
        let (done, violation) = probe();
        reporter.tick(w, done);
        violation.map_or(Ok(()), Err)
    })
}

fn drops(world: &World) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for node in world.nodes.iter().flatten() {
        for (reason, n) in node.stats.snapshot().drops {
            *out.entry(reason.label().to_string()).or_default() += n;
        }
    }
    out
}

fn pubsub_counters(world: &World) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for node in world.nodes.iter().flatten() {
        if let Some(p) = &node.pubsub_stats {
            for (name, n) in p.nonzero() {
                *out.entry(name.to_string()).or_default() += n;
            }
        }
    }
    out
}

fn keys(n: usize, seed: u64) -> Vec<Keypair> {
    let mut rng = SplitMix64::derive(seed, u64::MAX - 2);
    (0..n).map(|_| Keypair::from_rng(&mut rng)).collect()
}

// ---------------------------------------------------------------------------------------------
// pubsub.

/// What subscribers saw, shared by the engines of every node (one thread: no contention).
#[derive(Default)]
struct PubSubLog {
    /// Per (node, incarnation, publisher): the last sequence number delivered.
    last: BTreeMap<(usize, u32, u32), u64>,
    /// Distinct (node, publisher, seq) delivered to nodes, for the count.
    seen: BTreeSet<(usize, u32, u64)>,
    duplicates: u64,
    order_violations: u64,
    first_violation: Option<String>,
    published: u64,
    forged_sent: u64,
    forged_deliveries: u64,
}

/// The publisher index forged events carry in their body.
const FORGED: u32 = u32::MAX;

struct Publisher {
    topic: Keypair,
    advert: TopicAdvert,
    index: u32,
    events: u64,
    interval: Duration,
    warmup: Duration,
    next: u64,
    log: Arc<Mutex<PubSubLog>>,
}

const PUBLISH_TIMER: u64 = 1;

impl Engine for Publisher {
    fn start(&mut self, ctx: &mut Context) {
        ctx.topic_request(TopicRequest::Create {
            topic: self.topic.topic_identity(),
            scope: RoutingScope::Any,
            advert: Some(self.advert.clone()),
        });
        ctx.set_timer_after(PUBLISH_TIMER, self.warmup);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        if let Input::Timer(PUBLISH_TIMER) = input {
            if self.next >= self.events {
                return;
            }
            let mut body = self.index.to_le_bytes().to_vec();
            body.extend_from_slice(&self.next.to_le_bytes());
            ctx.publish(self.topic.topic_identity(), APP, body);
            self.next += 1;
            self.log.lock().published += 1;
            ctx.set_timer_after(PUBLISH_TIMER, self.interval);
        }
    }
}

struct Subscriber {
    topic: crate::identity::TopicIdentity,
    node: usize,
    incarnation: u32,
    log: Arc<Mutex<PubSubLog>>,
}

impl Engine for Subscriber {
    fn start(&mut self, ctx: &mut Context) {
        ctx.subscribe(self.topic, RoutingScope::Any);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Message(m) if matches!(m.origin(), Origin::Topic { .. }) => {
                let b = m.body();
                if b.len() < 12 {
                    return;
                }
                let publisher = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
                let seq = u64::from_le_bytes(b[4..12].try_into().expect("8 bytes"));
                let mut log = self.log.lock();
                if publisher == FORGED {
                    log.forged_deliveries += 1;
                    log.first_violation.get_or_insert_with(|| {
                        format!("node {} got forged event {seq}", self.node)
                    });
                    return;
                }
                let key = (self.node, self.incarnation, publisher);
                match log.last.get(&key).copied() {
                    Some(last) if seq == last => {
                        log.duplicates += 1;
                        log.first_violation.get_or_insert_with(|| {
                            format!("node {} got event {publisher}/{seq} twice", self.node)
                        });
                    }
                    Some(last) if seq < last => {
                        log.order_violations += 1;
                        log.first_violation.get_or_insert_with(|| {
                            format!(
                                "node {} got event {publisher}/{seq} after {publisher}/{last}",
                                self.node
                            )
                        });
                    }
                    _ => {
                        log.last.insert(key, seq);
                        log.seen.insert((self.node, publisher, seq));
                    }
                }
            }
            // A subscription that failed (the advert was not known yet): try again.
            Input::Topic(TopicEvent::Subscribed { result: Err(_), .. }) => {
                ctx.set_timer_after(2, Duration::from_millis(500));
            }
            Input::Timer(2) => ctx.subscribe(self.topic, RoutingScope::Any),
            _ => {}
        }
    }
}

/// An attacker's engine: forged events to its neighbours' PubSub engines.
struct Forger {
    topic: crate::identity::TopicIdentity,
    /// The real publisher's PubSub engine key (its identity is claimed; its secret is used
    /// only to build the claimed event, whose signature is then replaced).
    real: Keypair,
    rogue: Keypair,
    neighbours: Vec<crate::identity::NodeIdentity>,
    interval: Duration,
    warmup: Duration,
    until: u64,
    next: u64,
    log: Arc<Mutex<PubSubLog>>,
}

const FORGE_TIMER: u64 = 3;

impl Forger {
    fn body(&self, ctx: &Context, seq: u64) -> Vec<u8> {
        let mut payload = FORGED.to_le_bytes().to_vec();
        payload.extend_from_slice(&seq.to_le_bytes());
        let m = crate::wire::EngineMessage {
            src: self.real.engine_identity(),
            src_node: ctx.node(),
            dst: Destination::Topic(self.topic),
            id: crate::wire::MessageId(seq),
            reply_to: None,
            expiry: Some(ctx.now().wall.after(Duration::from_secs(60))),
            rprefs: None,
            tprefs: None,
            protocol: APP,
            body: payload,
            sig: None,
        };
        let mut out = Vec::new();
        m.encode_signed_fields(&mut out);
        out
    }
}

impl Engine for Forger {
    fn start(&mut self, ctx: &mut Context) {
        ctx.set_timer_after(FORGE_TIMER, self.warmup);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        if !matches!(input, Input::Timer(FORGE_TIMER)) || self.next >= self.until {
            return;
        }
        use crate::pubsub::{Event, PubSubMessage};
        let seq = self.next;
        self.next += 1;
        // From a publisher the advert does not list, correctly signed by itself.
        let rogue = Event::new_signed(&self.rogue, self.topic, seq, vec![], self.body(ctx, seq));
        // In the real publisher's name, ahead of its sequence, signed by the rogue key.
        let mut claimed = Event::new_signed(
            &self.real,
            self.topic,
            1_000 + seq,
            vec![],
            self.body(ctx, seq),
        );
        claimed.sig = Event::new_signed(
            &self.rogue,
            self.topic,
            1_000 + seq,
            vec![],
            self.body(ctx, seq),
        )
        .sig;
        for n in &self.neighbours {
            for ev in [&rogue, &claimed] {
                let bytes = PubSubMessage::Event(ev.clone()).to_bytes();
                ctx.send(Destination::Node(*n), Protocol::PUBSUB, bytes);
                self.log.lock().forged_sent += 1;
            }
        }
        ctx.set_timer_after(FORGE_TIMER, self.interval);
    }
}

/// Runs a pub/sub scenario.
pub fn run_pubsub(s: &PubSubScenario) -> Summary {
    run_pubsub_with(s, &mut |_| {})
}

/// Runs a pub/sub scenario, reporting progress every simulated second.
pub fn run_pubsub_with(s: &PubSubScenario, report: &mut dyn FnMut(&Progress)) -> Summary {
    let started = std::time::Instant::now();
    let c = &s.common;
    let _crypto = c.crypto.enable();
    let mut rng = SplitMix64::derive(c.seed, u64::MAX - 3);
    let edges = match &c.edges {
        Some(e) => e.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect(),
        None => topology(c.nodes, c.degree, &mut rng),
    };
    let keys = keys(c.nodes, c.seed);
    let setups = setups(&keys, &edges, &sim_transport());
    let topic = Keypair::from_rng(&mut rng);
    let publishers = s.publishers.clamp(1, c.nodes.max(1));
    let advert = TopicAdvert {
        topic: topic.topic_identity(),
        publishers: keys[..publishers]
            .iter()
            .map(|k| k.derive_engine(PUBSUB_ENGINE_NAME).engine_identity())
            .collect(),
        tags: vec!["sim".into()],
        version: 1,
        created: super::WALL_EPOCH,
        sig: Signature([0; 64]),
    }
    .sign(&topic);
    let attackers =
        (((c.nodes - publishers) as f64) * s.attackers.clamp(0.0, 1.0)).round() as usize;
    let first_attacker = c.nodes - attackers;
    let mut neighbours: Vec<Vec<crate::identity::NodeIdentity>> = vec![Vec::new(); c.nodes];
    for &(a, b) in &edges {
        neighbours[a].push(keys[b].node_identity());
        neighbours[b].push(keys[a].node_identity());
    }
    let real = keys[0].derive_engine(PUBSUB_ENGINE_NAME);
    let rogue = Keypair::from_rng(&mut rng);
    let log = Arc::new(Mutex::new(PubSubLog::default()));
    let (scenario, log2) = (s.clone(), Arc::clone(&log));
    let apps: super::AppFactory = Box::new(move |node, incarnation| {
        let engine: Box<dyn Engine> = if node >= first_attacker {
            Box::new(Forger {
                topic: topic.topic_identity(),
                real: real.clone(),
                rogue: rogue.clone(),
                neighbours: neighbours[node].clone(),
                interval: scenario.interval,
                warmup: scenario.warmup,
                until: if incarnation == 0 { scenario.events } else { 0 },
                next: 0,
                log: Arc::clone(&log2),
            })
        } else if node < publishers {
            Box::new(Publisher {
                topic: topic.clone(),
                advert: advert.clone(),
                index: node as u32,
                // A restarted publisher does not publish again: its sequence would restart.
                events: if incarnation == 0 { scenario.events } else { 0 },
                interval: scenario.interval,
                warmup: scenario.warmup,
                next: 0,
                log: Arc::clone(&log2),
            })
        } else {
            Box::new(Subscriber {
                topic: topic.topic_identity(),
                node,
                incarnation,
                log: Arc::clone(&log2),
            })
        };
        vec![EngineSetup {
            name: "app".into(),
            serves: Vec::new(),
            mailbox_depth: 65_536,
            engine,
        }]
    });
    let mut world = World::new(c.seed, setups, apps, c.faults);
    let publish_end = s.warmup + s.interval * s.events as u32;
    let log3 = Arc::clone(&log);
    let result = run_world(
        &mut world,
        c,
        s.warmup,
        publish_end,
        started,
        report,
        &mut || {
            let log = log3.lock();
            (log.seen.len() as u64, log.first_violation.clone())
        },
    );
    let log = log.lock();
    let honest = |n: &usize| *n >= publishers && *n < first_attacker && !world.crashed.contains(n);
    let live_subscribers = (0..c.nodes).filter(honest).count() as u64;
    let deliveries = log.seen.iter().filter(|(n, _, _)| honest(n)).count() as u64;
    // Every event a live subscriber misses must be one its PubSub engine gave up on (counted
    // as `lost`): anything else disappeared without a reason.
    let mut unexplained = 0;
    for n in (0..c.nodes).filter(honest) {
        let mut missing = Vec::new();
        for p in 0..publishers as u32 {
            missing.extend(
                (0..s.events)
                    .filter(|q| !log.seen.contains(&(n, p, *q)))
                    .map(|q| (p, q)),
            );
        }
        let given_up = world.nodes[n]
            .as_ref()
            .and_then(|node| node.pubsub_stats.as_ref())
            .map_or(0, |p| p.lost.load(std::sync::atomic::Ordering::Relaxed));
        if missing.len() as u64 > given_up {
            unexplained += missing.len() as u64 - given_up;
            log::warn!(
                "sim: node {n} never got events {missing:?} (publisher, seq) and gave up on {given_up} (seed {})",
                c.seed
            );
        }
    }
    Summary {
        scenario: "pubsub".into(),
        nodes: c.nodes,
        seed: c.seed,
        crypto: c.crypto.name().into(),
        sim_s: world.elapsed().as_secs_f64(),
        wall_s: started.elapsed().as_secs_f64(),
        steps: world.steps,
        events_published: log.published,
        deliveries_expected: log.published * live_subscribers,
        deliveries,
        lost: unexplained,
        forged_sent: log.forged_sent,
        forged_deliveries: log.forged_deliveries,
        duplicates: log.duplicates,
        order_violations: log.order_violations,
        drops_by_reason: drops(&world),
        pubsub: pubsub_counters(&world),
        crashes: world.crashes,
        partitions: world.partitions,
        trace_hash: world.trace_hash(),
        failure: result.err(),
        ..Summary::default()
    }
}

// ---------------------------------------------------------------------------------------------
// unicast.

#[derive(Default)]
struct UnicastLog {
    /// Reliable requests sent, answered, bounced, as (client node, incarnation, number).
    sent: BTreeSet<(usize, u32, u64)>,
    answered: BTreeSet<(usize, u32, u64)>,
    bounced: BTreeSet<(usize, u32, u64)>,
    /// Per (server node, server incarnation, client node, client incarnation): last request.
    last: BTreeMap<(usize, u32, usize, u32), u64>,
    /// Requests some server handled, as (client node, client incarnation, number).
    handled: BTreeSet<(usize, u32, u64)>,
    /// Unreliable requests sent, and (server node, server incarnation, client, incarnation,
    /// number) of those handled.
    unreliable_sent: u64,
    unreliable_handled: BTreeSet<(usize, u32, usize, u32, u64)>,
    duplicates: u64,
    order_violations: u64,
    first_violation: Option<String>,
}

struct Client {
    node: usize,
    incarnation: u32,
    servers: Vec<crate::identity::NodeIdentity>,
    requests: u64,
    interval: Duration,
    warmup: Duration,
    next: u64,
    unreliable_every: u64,
    /// Request id → request number.
    pending: BTreeMap<u64, u64>,
    log: Arc<Mutex<UnicastLog>>,
}

const REQUEST_TIMER: u64 = 1;

/// Whether request `seq` goes as a datagram.
fn unreliable(seq: u64, every: u64) -> bool {
    every > 0 && seq % every == every - 1
}

impl Engine for Client {
    fn start(&mut self, ctx: &mut Context) {
        if !self.servers.is_empty() {
            ctx.set_timer_after(REQUEST_TIMER, self.warmup);
        }
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(REQUEST_TIMER) if self.next < self.requests => {
                let server = self.servers[(self.next as usize) % self.servers.len()];
                let mut body = (self.node as u32).to_le_bytes().to_vec();
                body.extend_from_slice(&self.incarnation.to_le_bytes());
                body.extend_from_slice(&self.next.to_le_bytes());
                let datagram = unreliable(self.next, self.unreliable_every);
                body.push(datagram as u8);
                let opts = SendOptions {
                    expiry: Duration::from_secs(60),
                    tprefs: datagram.then_some(crate::wire::TransportPrefs {
                        ordering: crate::wire::Ordering::Unordered,
                        reliability: crate::wire::Reliability::Unreliable,
                        security: crate::wire::Security::Direct,
                    }),
                    ..SendOptions::default()
                };
                let id = ctx.send_with(Destination::Node(server), APP, body, opts);
                let mut log = self.log.lock();
                if datagram {
                    log.unreliable_sent += 1;
                } else {
                    self.pending.insert(id.0, self.next);
                    log.sent.insert((self.node, self.incarnation, self.next));
                }
                drop(log);
                self.next += 1;
                ctx.set_timer_after(REQUEST_TIMER, self.interval);
            }
            Input::Message(m) => {
                if let Some(seq) = m.reply_to().and_then(|r| self.pending.remove(&r.0)) {
                    self.log
                        .lock()
                        .answered
                        .insert((self.node, self.incarnation, seq));
                }
            }
            Input::Undeliverable(u) => {
                if let Some(seq) = self.pending.remove(&u.id.0) {
                    log::debug!(
                        "sim: request {seq} of node {} dropped: {:?}",
                        self.node,
                        u.reason
                    );
                    self.log
                        .lock()
                        .bounced
                        .insert((self.node, self.incarnation, seq));
                }
            }
            _ => {}
        }
    }
}

struct Server {
    node: usize,
    incarnation: u32,
    log: Arc<Mutex<UnicastLog>>,
}

impl Engine for Server {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        let Input::Message(m) = input else { return };
        let b = m.body();
        if m.protocol() != APP || b.len() < 17 {
            return;
        }
        let client = u32::from_le_bytes(b[..4].try_into().expect("4 bytes")) as usize;
        let cinc = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
        if b[16] == 1 {
            // A datagram: may be lost or reordered, never handled twice.
            let mut log = self.log.lock();
            if !log
                .unreliable_handled
                .insert((self.node, self.incarnation, client, cinc, seq))
            {
                log.duplicates += 1;
                log.first_violation.get_or_insert_with(|| {
                    format!(
                        "server {} handled datagram request {client}/{seq} twice",
                        self.node
                    )
                });
            }
            return;
        }
        {
            let mut log = self.log.lock();
            log.handled.insert((client, cinc, seq));
            let key = (self.node, self.incarnation, client, cinc);
            match log.last.get(&key).copied() {
                Some(last) if seq == last => {
                    log.duplicates += 1;
                    log.first_violation.get_or_insert_with(|| {
                        format!("server {} handled request {client}/{seq} twice", self.node)
                    });
                }
                Some(last) if seq < last => {
                    log.order_violations += 1;
                    log.first_violation.get_or_insert_with(|| {
                        format!(
                            "server {} got request {client}/{seq} after {client}/{last}",
                            self.node
                        )
                    });
                }
                _ => {
                    log.last.insert(key, seq);
                }
            }
        }
        ctx.reply(&m, b.to_vec());
    }
}

/// Runs a request/response scenario.
pub fn run_unicast(s: &UnicastScenario) -> Summary {
    run_unicast_with(s, &mut |_| {})
}

/// Runs a request/response scenario, reporting progress every simulated second.
pub fn run_unicast_with(s: &UnicastScenario, report: &mut dyn FnMut(&Progress)) -> Summary {
    let started = std::time::Instant::now();
    let c = &s.common;
    let _crypto = c.crypto.enable();
    let mut rng = SplitMix64::derive(c.seed, u64::MAX - 3);
    let edges = match &c.edges {
        Some(e) => e.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect(),
        None => topology(c.nodes, c.degree, &mut rng),
    };
    let keys = keys(c.nodes, c.seed);
    let setups = setups(&keys, &edges, &sim_transport());
    let mut neighbours: Vec<Vec<crate::identity::NodeIdentity>> = vec![Vec::new(); c.nodes];
    for &(a, b) in &edges {
        neighbours[a].push(keys[b].node_identity());
        neighbours[b].push(keys[a].node_identity());
    }
    let log = Arc::new(Mutex::new(UnicastLog::default()));
    let (scenario, log2) = (s.clone(), Arc::clone(&log));
    let apps: super::AppFactory = Box::new(move |node, incarnation| {
        vec![
            EngineSetup {
                name: "server".into(),
                serves: vec![APP],
                mailbox_depth: 65_536,
                engine: Box::new(Server {
                    node,
                    incarnation,
                    log: Arc::clone(&log2),
                }),
            },
            EngineSetup {
                name: "client".into(),
                serves: Vec::new(),
                mailbox_depth: 65_536,
                engine: Box::new(Client {
                    node,
                    incarnation,
                    servers: neighbours[node].clone(),
                    requests: if incarnation == 0 {
                        scenario.requests
                    } else {
                        0
                    },
                    interval: scenario.interval,
                    warmup: scenario.warmup,
                    next: 0,
                    unreliable_every: scenario.unreliable_every,
                    pending: BTreeMap::new(),
                    log: Arc::clone(&log2),
                }),
            },
        ]
    });
    let mut world = World::new(c.seed, setups, apps, c.faults);
    let send_end = s.warmup + s.interval * s.requests as u32;
    let log3 = Arc::clone(&log);
    let result = run_world(
        &mut world,
        c,
        s.warmup,
        send_end,
        started,
        report,
        &mut || {
            let log = log3.lock();
            (log.answered.len() as u64, log.first_violation.clone())
        },
    );
    let log = log.lock();
    let live = |n: &usize| !world.crashed.contains(n);
    let requests = log.sent.iter().filter(|(n, _, _)| live(n)).count() as u64;
    let answered = log.answered.iter().filter(|(n, _, _)| live(n)).count() as u64;
    let bounced = log.bounced.iter().filter(|(n, _, _)| live(n)).count() as u64;
    let mut answer_lost_in_crash = 0;
    let mut lost = 0;
    for &k in log.sent.iter().filter(|(n, _, _)| live(n)) {
        if log.answered.contains(&k) || log.bounced.contains(&k) {
            continue;
        }
        if log.handled.contains(&k) {
            answer_lost_in_crash += 1;
        } else {
            lost += 1;
            log::warn!(
                "sim: request {} of node {} lost (seed {})",
                k.2,
                k.0,
                c.seed
            );
        }
    }
    Summary {
        scenario: "unicast".into(),
        nodes: c.nodes,
        seed: c.seed,
        crypto: c.crypto.name().into(),
        sim_s: world.elapsed().as_secs_f64(),
        wall_s: started.elapsed().as_secs_f64(),
        steps: world.steps,
        requests,
        answered,
        bounced,
        answer_lost_in_crash,
        lost,
        datagrams_sent: log.unreliable_sent,
        datagrams_handled: log.unreliable_handled.len() as u64,
        duplicates: log.duplicates,
        order_violations: log.order_violations,
        drops_by_reason: drops(&world),
        pubsub: pubsub_counters(&world),
        crashes: world.crashes,
        partitions: world.partitions,
        trace_hash: world.trace_hash(),
        failure: result.err(),
        ..Summary::default()
    }
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
