//! `netmachine demo`: a cluster in one process showing unicast request/response between engines
//! and a topic with subscribers, with what was sent, delivered, and how fast.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use netmachine::router::topics::TopicEvent;
use netmachine::wire::Protocol;
use netmachine::{
    Context, Engine, EngineIdentity, Input, Keypair, Node, NodeBuilder, RoutingScope, TopicIdentity,
};

const REQUEST: Protocol = Protocol(Protocol::APP_BASE + 100);
const EVENT: Protocol = Protocol(Protocol::APP_BASE + 101);
/// Tells a requester to start once the nodes know each other.
const GO: Protocol = Protocol(Protocol::APP_BASE + 102);

/// Shared tallies the demo engines write and the demo reads.
#[derive(Default)]
struct Tally {
    replies: u64,
    rtts_us: Vec<u64>,
    events: u64,
    subscribed: u64,
    undeliverable: u64,
}

/// Sends `total` requests round-robin to `targets` with at most `window` outstanding.
struct Requester {
    targets: Vec<EngineIdentity>,
    total: u64,
    window: usize,
    sent: u64,
    in_flight: std::collections::HashMap<netmachine::MessageId, Instant>,
    tally: Arc<Mutex<Tally>>,
}

impl Requester {
    fn fill(&mut self, ctx: &mut Context) {
        while self.sent < self.total && self.in_flight.len() < self.window {
            let dst = self.targets[self.sent as usize % self.targets.len()];
            let id = ctx.send(dst, REQUEST, self.sent.to_le_bytes().to_vec());
            self.in_flight.insert(id, ctx.now().instant);
            self.sent += 1;
        }
    }
}

impl Engine for Requester {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Message(m) if m.protocol() == GO => self.fill(ctx),
            Input::Message(m) => {
                if let Some(sent) = m.reply_to().and_then(|id| self.in_flight.remove(&id)) {
                    let rtt = ctx.now().instant.saturating_duration_since(sent);
                    let mut t = self.tally.lock();
                    t.replies += 1;
                    t.rtts_us.push(rtt.as_micros() as u64);
                }
                self.fill(ctx);
            }
            Input::Undeliverable(u) => {
                self.in_flight.remove(&u.id);
                self.tally.lock().undeliverable += 1;
                self.fill(ctx);
            }
            _ => {}
        }
    }
}

/// Answers each request with its body.
struct Responder;

impl Engine for Responder {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        if let Input::Message(m) = input {
            if m.protocol() == REQUEST && m.reply_to().is_none() {
                let body = m.body().to_vec();
                ctx.reply(&m, body);
            }
        }
    }
}

/// Subscribes to the topic (retrying until it exists) and counts events.
struct Subscriber {
    topic: TopicIdentity,
    scope: RoutingScope,
    tally: Arc<Mutex<Tally>>,
}

impl Engine for Subscriber {
    fn start(&mut self, ctx: &mut Context) {
        ctx.subscribe(self.topic, self.scope);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Topic(TopicEvent::Subscribed { result: Ok(()), .. }) => {
                self.tally.lock().subscribed += 1;
            }
            Input::Topic(TopicEvent::Subscribed { result: Err(_), .. }) => {
                ctx.set_timer_after(0, Duration::from_millis(20));
            }
            Input::Timer(_) => ctx.subscribe(self.topic, self.scope),
            Input::Message(m) if m.protocol() == EVENT => self.tally.lock().events += 1,
            _ => {}
        }
    }
}

/// Options of the demo.
pub struct DemoOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// Requests each node's requester sends.
    pub requests: u64,
    /// Events published to the topic.
    pub events: u64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Runs the demo; returns whether everything sent was delivered.
pub fn run(opts: &DemoOptions) -> Result<bool, String> {
    if opts.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let keys: Vec<Keypair> = (0..opts.nodes).map(|_| Keypair::generate()).collect();
    let responders: Vec<EngineIdentity> = keys
        .iter()
        .map(|k| k.derive_engine("responder").engine_identity())
        .collect();
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let nodes: Vec<Node> = start_nodes(&keys, &responders, topic, opts, &tally)?;
    // Every node learns every other node's advert and where its responder runs.
    for (i, n) in nodes.iter().enumerate() {
        println!(
            "node {i}: {} on {}",
            n.identity(),
            n.listen_addrs()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    crate::cluster::introduce(&nodes, &responders)?;
    let started = Instant::now();
    for n in &nodes {
        let requester = n
            .engine_identity("requester")
            .ok_or("requester not running")?;
        let mut go = n.client("go").map_err(|e| e.to_string())?;
        go.send(requester, GO, Vec::new());
    }

    // The publisher: a client on node 0, publishing once every subscriber is in place.
    let mut publisher = crate::cluster::publisher(&nodes[0], &topic_key, "demo")?;
    let subscribers = opts.nodes as u64;
    let ready = wait_for(Duration::from_secs(10), || {
        tally.lock().subscribed >= subscribers
    });
    if !ready {
        return Err("subscribers did not subscribe within 10 s".into());
    }
    for i in 0..opts.events {
        publisher.publish(topic, EVENT, i.to_le_bytes().to_vec());
    }

    let expected_replies = opts.requests * opts.nodes as u64;
    let expected_events = opts.events * subscribers;
    let done = wait_for(Duration::from_secs(60), || {
        let t = tally.lock();
        t.replies + t.undeliverable >= expected_replies && t.events >= expected_events
    });
    let elapsed = started.elapsed();
    let mut t = tally.lock();
    t.rtts_us.sort_unstable();
    println!(
        "unicast: {} requests sent, {} answered, {} undeliverable; {:.0} round trips/s; rtt p50 {} us, p99 {} us",
        expected_replies,
        t.replies,
        t.undeliverable,
        t.replies as f64 / elapsed.as_secs_f64(),
        percentile(&t.rtts_us, 0.5),
        percentile(&t.rtts_us, 0.99)
    );
    println!(
        "topic:   {} events published, {} of {} deliveries made",
        opts.events, t.events, expected_events
    );
    let ok = done && t.replies == expected_replies && t.events == expected_events;
    drop(t);
    drop(publisher);
    for (i, n) in nodes.into_iter().enumerate() {
        let stats = n.stats();
        println!("node {i}: {stats}");
        n.shutdown();
    }
    println!(
        "{}",
        if ok {
            "all delivered"
        } else {
            "NOT all delivered"
        }
    );
    Ok(ok)
}

fn start_nodes(
    keys: &[Keypair],
    responders: &[EngineIdentity],
    topic: TopicIdentity,
    opts: &DemoOptions,
    tally: &Arc<Mutex<Tally>>,
) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    let localhost: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    for (i, key) in keys.iter().enumerate() {
        let node = NodeBuilder::new(key.clone())
            .name(&format!("demo{i}"))
            .listen(localhost)
            .engine("responder", Responder)
            .engine(
                "subscriber",
                Subscriber {
                    topic,
                    scope: RoutingScope::Any,
                    tally: Arc::clone(tally),
                },
            )
            .engine(
                "requester",
                Requester {
                    targets: responders.to_vec(),
                    total: opts.requests,
                    window: 32,
                    sent: 0,
                    in_flight: Default::default(),
                    tally: Arc::clone(tally),
                },
            )
            .start()
            .map_err(|e| e.to_string())?;
        nodes.push(node);
    }
    Ok(nodes)
}

fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}
