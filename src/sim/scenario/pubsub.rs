//! The pub/sub workload: publishers, subscribers that check every delivery, and attackers
//! that forge events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::*;

/// What subscribers saw, shared by the engines of every node (one thread: no contention).
#[derive(Default)]
struct PubSubLog {
    /// Per (node, incarnation, publisher): the last sequence number delivered.
    last: BTreeMap<(usize, u32, u32), u64>,
    /// Distinct (node, publisher, seq) delivered to nodes, for the count.
    seen: BTreeSet<(usize, u32, u64)>,
    v: Violations,
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
                    log.v
                        .broke(|| format!("node {} got forged event {seq}", self.node));
                    return;
                }
                let key = (self.node, self.incarnation, publisher);
                let node = self.node;
                let PubSubLog { last, v, seen, .. } = &mut *log;
                if v.ordered(last, key, seq, || {
                    format!("node {node} got event {publisher}/{seq}")
                }) {
                    seen.insert((node, publisher, seq));
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
    let advert = TopicAdvert {
        topic: topic.topic_identity(),
        publishers: keys[..publishers]
            .iter()
            .map(|k| k.derive_engine(PUBSUB_ENGINE_NAME).engine_identity())
            .collect(),
        tags: vec!["sim".into()],
        version: 1,
        created: crate::sim::WALL_EPOCH,
        sig: Signature([0; 64]),
    }
    .sign(&topic);
    let attackers =
        (((c.nodes - publishers) as f64) * s.attackers.clamp(0.0, 1.0)).round() as usize;
    let first_attacker = c.nodes - attackers;
    let real = keys[0].derive_engine(PUBSUB_ENGINE_NAME);
    let rogue = Keypair::from_rng(&mut rng);
    let log = Arc::new(Mutex::new(PubSubLog::default()));
    let (scenario, log2) = (s.clone(), Arc::clone(&log));
    let apps: crate::sim::AppFactory = Box::new(move |node, incarnation| {
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
            (log.seen.len() as u64, log.v.first.clone())
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
