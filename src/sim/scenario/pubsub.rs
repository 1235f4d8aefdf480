//! The pub/sub workload: publishers of one topic spread over the nodes (each also receiving the
//! others' events), subscribers, attackers that forge events, and optionally an equivocating
//! publisher. Every delivery is checked as it happens: exactly once per incarnation, in order
//! per publisher, and after every event its publisher had received before publishing it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::*;

/// What the receivers saw, shared by the engines of every node (one thread: no contention).
#[derive(Default)]
struct PubSubLog {
    /// Per (node, incarnation, publisher): the last sequence number delivered.
    last: BTreeMap<(usize, u32, u32), u64>,
    /// Per (node, incarnation, publisher): the highest sequence number that an event delivered
    /// earlier depended on and that had not been delivered then. Delivering it (or an earlier
    /// one) afterwards breaks causal order.
    floor: BTreeMap<(usize, u32, u32), u64>,
    /// Deliveries out of causal order, with their node, until the run's check looks at them.
    causal_late: Vec<(usize, String)>,
    /// Of those, at nodes whose PubSub counted a causal timeout (it delivered an event without
    /// a dependency that did not come in time, and says so).
    causal_late_excused: u64,
    /// Distinct (node, publisher, seq) delivered to nodes, for the count.
    seen: BTreeSet<(usize, u32, u64)>,
    v: Violations,
    published: u64,
    /// Events published, per publisher index.
    published_by: BTreeMap<u32, u64>,
    forged_sent: u64,
    forged_deliveries: u64,
    equivocations_sent: u64,
}

/// The publisher index forged events carry in their body.
const FORGED: u32 = u32::MAX;

/// An event's application body: the publisher's index, its sequence number (from 0), and for
/// each other publisher the last sequence number the publisher had received when it published.
fn event_body(index: u32, seq: u64, received: &BTreeMap<u32, u64>) -> Vec<u8> {
    let mut body = index.to_le_bytes().to_vec();
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(&(received.len() as u32).to_le_bytes());
    for (q, s) in received {
        body.extend_from_slice(&q.to_le_bytes());
        body.extend_from_slice(&s.to_le_bytes());
    }
    body
}

/// A publisher index and one of its sequence numbers.
type Position = (u32, u64);

/// What an [`event_body`] says: publisher index, sequence number, and what it had received.
type Body = (u32, u64, Vec<Position>);

/// The parts of [`event_body`]; `None` if it is not one.
fn parse_body(b: &[u8]) -> Option<Body> {
    let u32_at = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
    let u64_at = |i: usize| Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?));
    let (publisher, seq) = (u32_at(0)?, u64_at(4)?);
    let n = u32_at(12).unwrap_or(0) as usize;
    let deps = (0..n.min(64))
        .map(|i| Some((u32_at(16 + 12 * i)?, u64_at(20 + 12 * i)?)))
        .collect::<Option<Vec<_>>>()?;
    Some((publisher, seq, deps))
}

impl PubSubLog {
    /// A delivery to `node` (incarnation `incarnation`): checks it against the invariants and
    /// records it. Returns the publisher and sequence number if it was new and in order.
    fn delivered(&mut self, node: usize, incarnation: u32, body: &[u8]) -> Option<(u32, u64)> {
        let (publisher, seq, deps) = parse_body(body)?;
        if publisher == FORGED {
            self.forged_deliveries += 1;
            self.v
                .broke(|| format!("node {node} got forged event {seq}"));
            return None;
        }
        let key = (node, incarnation, publisher);
        if self.floor.get(&key).is_some_and(|f| seq <= *f) {
            self.causal_late.push((
                node,
                format!(
                    "node {node} got event {publisher}/{seq} after an event that depends on it"
                ),
            ));
        }
        let PubSubLog { last, v, .. } = self;
        if !v.ordered(last, key, seq, || {
            format!("node {node} got event {publisher}/{seq}")
        }) {
            return None;
        }
        for (q, s) in deps {
            let k = (node, incarnation, q);
            if self.last.get(&k).is_none_or(|l| *l < s) {
                let f = self.floor.entry(k).or_insert(s);
                *f = (*f).max(s);
            }
        }
        self.seen.insert((node, publisher, seq));
        Some((publisher, seq))
    }
}

struct Publisher {
    topic: Keypair,
    advert: TopicAdvert,
    index: u32,
    node: usize,
    incarnation: u32,
    events: u64,
    interval: Duration,
    warmup: Duration,
    next: u64,
    /// Per other publisher, the last sequence number received.
    received: BTreeMap<u32, u64>,
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
        // The other publishers' events, as a subscriber on this node.
        ctx.subscribe(self.topic.topic_identity(), RoutingScope::Local);
        ctx.set_timer_after(PUBLISH_TIMER, self.warmup);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(PUBLISH_TIMER) => {
                if self.next >= self.events {
                    return;
                }
                let body = event_body(self.index, self.next, &self.received);
                ctx.publish(self.topic.topic_identity(), APP, body);
                self.next += 1;
                let mut log = self.log.lock();
                log.published += 1;
                *log.published_by.entry(self.index).or_default() += 1;
                ctx.set_timer_after(PUBLISH_TIMER, self.interval);
            }
            Input::Message(m) if matches!(m.origin(), Origin::Topic { .. }) => {
                let got = self
                    .log
                    .lock()
                    .delivered(self.node, self.incarnation, m.body());
                if let Some((p, s)) = got {
                    self.received.insert(p, s);
                }
            }
            _ => {}
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
                self.log
                    .lock()
                    .delivered(self.node, self.incarnation, m.body());
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

/// A message to the topic from `ctx`'s node with `payload`, as an event carries it.
fn topic_message(
    ctx: &Context,
    topic: crate::identity::TopicIdentity,
    src: crate::identity::EngineIdentity,
    id: u64,
    payload: Vec<u8>,
) -> Vec<u8> {
    let m = crate::wire::EngineMessage {
        src,
        src_node: ctx.node(),
        dst: Destination::Topic(topic),
        id: crate::wire::MessageId(id),
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
        let payload = event_body(FORGED, seq, &BTreeMap::new());
        topic_message(ctx, self.topic, self.real.engine_identity(), seq, payload)
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
        let rogue = Event::new_signed(&self.rogue, self.topic, seq, vec![], self.body(ctx, seq))
            .into_inner();
        // In the real publisher's name, ahead of its sequence, signed by the rogue key.
        let mut claimed = Event::new_signed(
            &self.real,
            self.topic,
            1_000 + seq,
            vec![],
            self.body(ctx, seq),
        )
        .into_inner();
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

/// An equivocating publisher: an engine on a publishing node that holds the node's PubSub key
/// and, as the real publisher publishes each event, signs a second, different event with the
/// same sequence number and sends it to the node's neighbours. Either version may reach a
/// node first; no node may deliver both.
struct Equivocator {
    topic: crate::identity::TopicIdentity,
    /// The publishing node's PubSub key.
    key: Keypair,
    index: u32,
    neighbours: Vec<crate::identity::NodeIdentity>,
    interval: Duration,
    warmup: Duration,
    until: u64,
    next: u64,
    log: Arc<Mutex<PubSubLog>>,
}

const EQUIVOCATE_TIMER: u64 = 4;

impl Engine for Equivocator {
    fn start(&mut self, ctx: &mut Context) {
        ctx.set_timer_after(EQUIVOCATE_TIMER, self.warmup);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        if !matches!(input, Input::Timer(EQUIVOCATE_TIMER)) || self.next >= self.until {
            return;
        }
        use crate::pubsub::{Event, PubSubMessage};
        let n = self.next;
        self.next += 1;
        // The application body the real event has (no publisher received anything yet is
        // claimed), in a message with another id: a different event, the same sequence number.
        let payload = event_body(self.index, n, &BTreeMap::new());
        let me = ctx.identity();
        let body = topic_message(ctx, self.topic, me, u64::MAX - n, payload);
        let ev = Event::new_signed(&self.key, self.topic, n + 1, vec![], body).into_inner();
        let bytes = PubSubMessage::Event(ev).to_bytes();
        for peer in &self.neighbours {
            ctx.send(Destination::Node(*peer), Protocol::PUBSUB, bytes.clone());
        }
        self.log.lock().equivocations_sent += 1;
        ctx.set_timer_after(EQUIVOCATE_TIMER, self.interval);
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
    let Network {
        mut rng,
        keys,
        setups,
        neighbours,
    } = network(c);
    let topic = Keypair::from_rng(&mut rng);
    let publishers = s.publishers.clamp(1, c.nodes.max(1));
    let attackers =
        (((c.nodes - publishers) as f64) * s.attackers.clamp(0.0, 1.0)).round() as usize;
    let first_attacker = c.nodes - attackers;
    // Spread over the honest nodes: node 0, then every (honest / publishers)-th node.
    let publisher_nodes: Vec<usize> = (0..publishers)
        .map(|i| i * first_attacker.max(publishers) / publishers)
        .collect();
    let index_of = {
        let nodes = publisher_nodes.clone();
        move |n: usize| nodes.iter().position(|p| *p == n).map(|i| i as u32)
    };
    let advert = TopicAdvert {
        topic: topic.topic_identity(),
        publishers: publisher_nodes
            .iter()
            .map(|n| keys[*n].derive_engine(PUBSUB_ENGINE_NAME).engine_identity())
            .collect(),
        tags: vec!["sim".into()],
        version: 1,
        created: crate::sim::WALL_EPOCH,
        scope: None,
        sig: Signature([0; 64]),
    }
    .sign(&topic);
    let real = keys[publisher_nodes[0]].derive_engine(PUBSUB_ENGINE_NAME);
    let rogue = Keypair::from_rng(&mut rng);
    let log = Arc::new(Mutex::new(PubSubLog::default()));
    let (scenario, log2) = (s.clone(), Arc::clone(&log));
    let index_of2 = index_of.clone();
    let apps: crate::sim::AppFactory = Box::new(move |node, incarnation| {
        let first_life = incarnation == 0;
        let mut engines: Vec<(&str, Box<dyn Engine>)> = Vec::new();
        if node >= first_attacker {
            engines.push((
                "app",
                Box::new(Forger {
                    topic: topic.topic_identity(),
                    real: real.clone(),
                    rogue: rogue.clone(),
                    neighbours: neighbours[node].clone(),
                    interval: scenario.interval,
                    warmup: scenario.warmup,
                    until: if first_life { scenario.events } else { 0 },
                    next: 0,
                    log: Arc::clone(&log2),
                }),
            ));
        } else if let Some(index) = index_of2(node).filter(|_| first_life) {
            // A restarted publisher does not publish again (its sequence numbers would start
            // over under the same advert version, which receivers refuse as equivocation): it
            // comes back as a subscriber.
            engines.push((
                "app",
                Box::new(Publisher {
                    topic: topic.clone(),
                    advert: advert.clone(),
                    index,
                    node,
                    incarnation,
                    events: scenario.events,
                    interval: scenario.interval,
                    warmup: scenario.warmup,
                    next: 0,
                    received: BTreeMap::new(),
                    log: Arc::clone(&log2),
                }),
            ));
            if index == 0 && scenario.equivocate {
                engines.push((
                    "equivocator",
                    Box::new(Equivocator {
                        topic: topic.topic_identity(),
                        key: real.clone(),
                        index,
                        neighbours: neighbours[node].clone(),
                        interval: scenario.interval,
                        warmup: scenario.warmup,
                        until: if first_life { scenario.events } else { 0 },
                        next: 0,
                        log: Arc::clone(&log2),
                    }),
                ));
            }
        } else {
            engines.push((
                "app",
                Box::new(Subscriber {
                    topic: topic.topic_identity(),
                    node,
                    incarnation,
                    log: Arc::clone(&log2),
                }),
            ));
        }
        engines
            .into_iter()
            .map(|(name, engine)| EngineSetup {
                name: name.into(),
                serves: Vec::new(),
                mailbox_depth: 65_536,
                engine,
            })
            .collect()
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
        &mut |w| {
            let mut log = log3.lock();
            // A delivery out of causal order is a failure unless the node's PubSub counted a
            // causal timeout (it delivered an event without a dependency, and said so).
            for (node, what) in std::mem::take(&mut log.causal_late) {
                let timed_out = w.nodes[node]
                    .as_ref()
                    .and_then(|n| n.pubsub_stats.as_ref())
                    .is_some_and(|p| {
                        p.causal_timeout.load(std::sync::atomic::Ordering::Relaxed) > 0
                    });
                if timed_out {
                    log.causal_late_excused += 1;
                } else {
                    log.v.order_violations += 1;
                    log.v.broke(|| what);
                }
            }
            (log.seen.len() as u64, log.v.first.clone())
        },
    );
    let log = log.lock();
    // Receivers: subscribers, and publishers for the other publishers' events.
    let receiver = |n: &usize| *n < first_attacker && !world.crashed.contains(n);
    let expected = |n: usize| -> Vec<(u32, u64)> {
        let own = index_of(n);
        log.published_by
            .iter()
            .filter(|(p, _)| Some(**p) != own)
            .flat_map(|(p, k)| (0..*k).map(move |q| (*p, q)))
            .collect()
    };
    let mut deliveries_expected = 0;
    let mut deliveries = 0;
    // Every event a live receiver misses must be one its PubSub engine gave up on (counted as
    // `lost`): anything else disappeared without a reason.
    let mut unexplained = 0;
    // Events at the end of a crashed publisher's stream that a node never got: with no later
    // event or position from that publisher, nothing could tell the node they exist.
    let mut lost_with_publisher = 0;
    let crashed_publisher = |p: u32| world.crashed.contains(&publisher_nodes[p as usize]);
    for n in (0..c.nodes).filter(receiver) {
        let wanted = expected(n);
        deliveries_expected += wanted.len() as u64;
        let last_got = |p: u32| log.last.get(&(n, 0, p)).copied();
        let (tail, missing): (Vec<Position>, Vec<Position>) = wanted
            .into_iter()
            .filter(|(p, q)| !log.seen.contains(&(n, *p, *q)))
            .partition(|(p, q)| crashed_publisher(*p) && last_got(*p).is_none_or(|l| *q > l));
        lost_with_publisher += tail.len() as u64;
        deliveries += log.seen.iter().filter(|(m, _, _)| *m == n).count() as u64;
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
        deliveries_expected,
        deliveries,
        lost: unexplained,
        lost_with_publisher,
        forged_sent: log.forged_sent,
        forged_deliveries: log.forged_deliveries,
        equivocations_sent: log.equivocations_sent,
        causal_late_excused: log.causal_late_excused,
        duplicates: log.v.duplicates,
        order_violations: log.v.order_violations,
        drops_by_reason: drops(&world),
        pubsub: pubsub_counters(&world),
        crashes: world.crashes,
        partitions: world.partitions,
        trace_hash: world.trace_hash(),
        failure: result.err(),
        ..Summary::default()
    }
}
