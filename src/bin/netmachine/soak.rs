//! `netmachine soak --nodes N --minutes M`: nodes in this process exchanging traffic for a long
//! time, with a line each interval of resident memory, open file descriptors, threads and
//! delivered / lost counters — to show that nothing grows and nothing is lost over time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netmachine::router::topics::TopicEvent;
use netmachine::wire::Protocol;
use netmachine::{
    Context, Engine, EngineIdentity, Input, Keypair, MessageId, Node, NodeBuilder, RoutingScope,
};

const REQUEST: Protocol = Protocol(Protocol::APP_BASE + 0x300);
const EVENT: Protocol = Protocol(Protocol::APP_BASE + 0x301);
const TICK: u64 = 1;

/// Counters shared by the soak engines.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    answered: AtomicU64,
    undeliverable: AtomicU64,
    events: AtomicU64,
    subscribed: AtomicU64,
}

/// Sends requests to `targets` round-robin, at most `window` outstanding, topping up every 10 ms.
struct Requester {
    targets: Vec<EngineIdentity>,
    window: usize,
    in_flight: std::collections::HashSet<MessageId>,
    next: usize,
    counters: Arc<Counters>,
}

impl Requester {
    fn fill(&mut self, ctx: &mut Context) {
        while self.in_flight.len() < self.window {
            let dst = self.targets[self.next % self.targets.len()];
            self.next += 1;
            let id = ctx.send(dst, REQUEST, vec![0x11; 200]);
            self.in_flight.insert(id);
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Engine for Requester {
    fn start(&mut self, ctx: &mut Context) {
        ctx.set_timer_after(TICK, Duration::from_millis(500));
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Message(m) => {
                if let Some(id) = m.reply_to() {
                    if self.in_flight.remove(&id) {
                        self.counters.answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Input::Undeliverable(u) if self.in_flight.remove(&u.id) => {
                self.counters.undeliverable.fetch_add(1, Ordering::Relaxed);
            }
            Input::Timer(TICK) => {
                self.fill(ctx);
                ctx.set_timer_after(TICK, Duration::from_millis(10));
            }
            _ => {}
        }
    }
}

/// Answers requests.
struct Responder;

impl Engine for Responder {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        if let Input::Message(m) = input {
            if m.protocol() == REQUEST && m.reply_to().is_none() {
                ctx.reply(&m, Vec::new());
            }
        }
    }
}

/// Subscribes to the topic and counts events.
struct Subscriber {
    topic: netmachine::TopicIdentity,
    counters: Arc<Counters>,
}

impl Engine for Subscriber {
    fn start(&mut self, ctx: &mut Context) {
        ctx.subscribe(self.topic, RoutingScope::Any);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Message(m) if m.protocol() == EVENT => {
                self.counters.events.fetch_add(1, Ordering::Relaxed);
            }
            Input::Topic(TopicEvent::Subscribed { result: Ok(()), .. }) => {
                self.counters.subscribed.fetch_add(1, Ordering::Relaxed);
            }
            Input::Topic(TopicEvent::Subscribed { result: Err(_), .. }) => {
                ctx.set_timer_after(0, Duration::from_millis(100));
            }
            Input::Timer(0) => ctx.subscribe(self.topic, RoutingScope::Any),
            _ => {}
        }
    }
}

/// Reads `key` (in KiB or a count) from /proc/self/status.
fn proc_status(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Options of the soak run.
pub struct SoakOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// How long to run.
    pub minutes: f64,
    /// Seconds between report lines.
    pub interval_s: u64,
    /// Events published per second.
    pub event_rate: u64,
}

/// Runs the soak; returns whether nothing was lost.
pub fn run(opts: &SoakOptions) -> Result<bool, String> {
    if opts.nodes < 2 {
        return Err("--nodes must be at least 2".into());
    }
    if opts.minutes.is_nan() || opts.minutes <= 0.0 {
        return Err("--minutes must be positive".into());
    }
    let keys: Vec<Keypair> = (0..opts.nodes).map(|_| Keypair::generate()).collect();
    let responders: Vec<EngineIdentity> = keys
        .iter()
        .map(|k| k.derive_engine("responder").engine_identity())
        .collect();
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let counters = Arc::new(Counters::default());
    let localhost: SocketAddr = "127.0.0.1:0".parse().expect("valid");
    let mut nodes: Vec<Node> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let others: Vec<EngineIdentity> = responders
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, r)| *r)
            .collect();
        let node = NodeBuilder::new(key.clone())
            .name(&format!("soak{i}"))
            .listen(localhost)
            .engine("responder", Responder)
            .engine(
                "subscriber",
                Subscriber {
                    topic,
                    counters: Arc::clone(&counters),
                },
            )
            .engine(
                "requester",
                Requester {
                    targets: others,
                    window: 16,
                    in_flight: Default::default(),
                    next: 0,
                    counters: Arc::clone(&counters),
                },
            )
            .start()
            .map_err(|e| e.to_string())?;
        nodes.push(node);
    }
    crate::cluster::introduce(&nodes, &responders)?;
    let mut publisher = crate::cluster::publisher(&nodes[0], &topic_key, "soak")?;
    println!(
        "soak: {} nodes, {} min, report every {} s; minute rss_kib fds threads sent answered undeliverable events_published events_delivered drops",
        opts.nodes, opts.minutes, opts.interval_s
    );
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(opts.minutes * 60.0);
    let mut next_report = start + Duration::from_secs(opts.interval_s);
    let mut published = 0u64;
    let event_gap = Duration::from_secs_f64(1.0 / opts.event_rate.max(1) as f64);
    // Publish once every node's subscriber is in place.
    let ready_by = Instant::now() + Duration::from_secs(30);
    while counters.subscribed.load(Ordering::Relaxed) < opts.nodes as u64 {
        if Instant::now() > ready_by {
            return Err("soak: subscribers did not subscribe within 30 s".into());
        }
        while publisher.recv(Duration::from_millis(10)).is_some() {}
    }
    let mut next_event = Instant::now();
    let report = |published: u64| {
        let drops: u64 = nodes.iter().map(|n| n.stats().total_drops()).sum();
        println!(
            "{:>6.1} {:>9} {:>4} {:>4} {:>9} {:>9} {:>4} {:>9} {:>9} {:>6}",
            start.elapsed().as_secs_f64() / 60.0,
            proc_status("VmRSS:"),
            open_fds(),
            proc_status("Threads:"),
            counters.sent.load(Ordering::Relaxed),
            counters.answered.load(Ordering::Relaxed),
            counters.undeliverable.load(Ordering::Relaxed),
            published,
            counters.events.load(Ordering::Relaxed),
            drops
        );
    };
    while Instant::now() < end {
        let now = Instant::now();
        while now >= next_event {
            publisher.publish(topic, EVENT, published.to_le_bytes().to_vec());
            published += 1;
            next_event += event_gap;
        }
        // Drain the publisher's inbox (topic progress notices).
        while publisher.recv(Duration::ZERO).is_some() {}
        if now >= next_report {
            report(published);
            next_report += Duration::from_secs(opts.interval_s);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let in-flight traffic finish, then a final line.
    std::thread::sleep(Duration::from_secs(2));
    report(published);
    let sent = counters.sent.load(Ordering::Relaxed);
    let answered = counters.answered.load(Ordering::Relaxed);
    let undeliverable = counters.undeliverable.load(Ordering::Relaxed);
    let in_flight = sent - answered - undeliverable;
    let expected_events = published * opts.nodes as u64;
    let events = counters.events.load(Ordering::Relaxed);
    let drops: u64 = nodes
        .iter()
        .map(|n| {
            let s = n.stats();
            s.total_drops() - s.drops(netmachine::DropReason::Duplicate)
        })
        .sum();
    println!(
        "soak: requests sent {sent}, answered {answered}, undeliverable {undeliverable}, still in flight {in_flight} (at most {} by the windows); events {events} of {expected_events}; drops other than duplicates {drops}",
        16 * opts.nodes
    );
    drop(publisher);
    for n in nodes {
        n.shutdown();
    }
    Ok(undeliverable == 0
        && in_flight <= 16 * opts.nodes as u64
        && drops == 0
        && events == expected_events)
}
