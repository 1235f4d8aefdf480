//! `netmachine bench SUITE`: performance suites, each measuring its own baseline in the same
//! run on the same machine, and reporting figures as ratios to it.
//!
//! | suite | figure | baseline |
//! | --- | --- | --- |
//! | `verify` | single and batch-of-64 verification, signing (one thread) | single verify |
//! | `router` | remote messages through Router ingress to a local engine | single verify |
//! | `local` | engine → Router → engine msgs/s; one-way latency under light load | a raw two-hop channel pipeline |
//! | `unicast` | signed 256-byte messages between engines on two nodes over QUIC | min(sign, batch verify) |
//! | `bulk` | 1 MiB messages between two nodes | a raw quiche stream on the same sockets |
//! | `rtt` | ping round trips between two nodes | a raw UDP ping-pong |
//! | `pubsub` | 1 publisher → subscribers on 3 nodes | sign rate |
//!
//! With `--json`, one JSON object per line: `suite`, `metric`, `value`, `unit`, and where a
//! baseline applies `baseline`, `baseline_value`, `ratio`.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use netmachine::identity::{CheckedKey, Keypair, Signature};
use netmachine::identity_store::IdentityUpdate;
use netmachine::pubsub::PUBSUB_ENGINE_NAME;
use netmachine::router::topics::{TopicEvent, TopicRequest};
use netmachine::time::wall_clock;
use netmachine::wire::message::{BatchVerifier, Unverified};
use netmachine::wire::{Destination, EngineMessage, MessageId, Protocol, Signed, TopicAdvert};
use netmachine::{
    Context, Engine, EngineIdentity, EngineSpec, Input, Node, NodeBuilder, RoutingScope,
    SendOptions,
};

const DATA: Protocol = Protocol(Protocol::APP_BASE + 0x200);
const CREDIT: Protocol = Protocol(Protocol::APP_BASE + 0x201);

/// The suites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// Signature verification and signing rates.
    Verify,
    /// Router ingress: verification and routing of remote messages.
    Router,
    /// Engine → Router → engine on one node.
    Local,
    /// Signed messages between engines on two nodes over QUIC.
    Unicast,
    /// 1 MiB messages between two nodes.
    Bulk,
    /// Ping round trips between two nodes.
    Rtt,
    /// One publisher, subscribers on three nodes.
    Pubsub,
    /// Every suite, one after another.
    All,
}

/// Options of `bench`.
pub struct BenchOptions {
    /// Which suite.
    pub suite: Suite,
    /// JSON lines instead of text.
    pub json: bool,
    /// Rough duration of each suite's main measurement.
    pub seconds: f64,
}

/// One figure.
struct Record {
    suite: &'static str,
    metric: &'static str,
    value: f64,
    unit: &'static str,
    baseline: Option<(&'static str, f64)>,
}

fn emit(json: bool, r: &Record) {
    if json {
        let mut line = format!(
            "{{\"suite\":\"{}\",\"metric\":\"{}\",\"value\":{:.3},\"unit\":\"{}\"",
            r.suite, r.metric, r.value, r.unit
        );
        if let Some((name, v)) = r.baseline {
            let ratio = if v > 0.0 { r.value / v } else { 0.0 };
            line.push_str(&format!(
                ",\"baseline\":\"{name}\",\"baseline_value\":{v:.3},\"ratio\":{ratio:.3}"
            ));
        }
        line.push('}');
        println!("{line}");
    } else {
        let mut line = format!(
            "{:<8} {:<28} {:>14.1} {}",
            r.suite, r.metric, r.value, r.unit
        );
        if let Some((name, v)) = r.baseline {
            let ratio = if v > 0.0 { r.value / v } else { 0.0 };
            line.push_str(&format!("   = {ratio:.2} x {name} ({v:.1})"));
        }
        println!("{line}");
    }
}

/// Runs the chosen suite(s).
pub fn run(opts: &BenchOptions) -> Result<(), String> {
    if !(opts.seconds > 0.0 && opts.seconds <= 600.0) {
        return Err(format!(
            "--seconds must be in (0, 600], not {}",
            opts.seconds
        ));
    }
    let suites = match opts.suite {
        Suite::All => vec![
            Suite::Verify,
            Suite::Router,
            Suite::Local,
            Suite::Unicast,
            Suite::Bulk,
            Suite::Rtt,
            Suite::Pubsub,
        ],
        s => vec![s],
    };
    let out = |r: Record| emit(opts.json, &r);
    for s in suites {
        match s {
            Suite::Verify => verify_suite(opts.seconds, &out),
            Suite::Router => router_suite(opts.seconds, &out)?,
            Suite::Local => local_suite(opts.seconds, &out)?,
            Suite::Unicast => unicast_suite(opts.seconds, &out)?,
            Suite::Bulk => bulk_suite(opts.seconds, &out)?,
            Suite::Rtt => rtt_suite(opts.seconds, &out)?,
            Suite::Pubsub => pubsub_suite(opts.seconds, &out)?,
            Suite::All => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared pieces.

/// `count` signed messages from engines of `node` (64 engines, ids increasing per engine) to
/// `dst`, with `body_len`-byte bodies, signed on all available cores.
fn presign(node: &Keypair, dst: Destination, count: usize, body_len: usize) -> Vec<Vec<u8>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let engines: Vec<Keypair> = (0..64)
        .map(|i| node.derive_engine(&format!("bench{i}")))
        .collect();
    let expiry = wall_clock().after(Duration::from_secs(600));
    let per = count.div_ceil(threads);
    let chunks: Vec<Vec<Vec<u8>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let engines = &engines;
                s.spawn(move || {
                    let mut out = Vec::with_capacity(per);
                    let mut scratch = Vec::new();
                    for i in t * per..((t + 1) * per).min(count) {
                        let key = &engines[i % engines.len()];
                        let mut m = EngineMessage {
                            src: key.engine_identity(),
                            src_node: node.node_identity(),
                            dst,
                            id: MessageId(1_000_000 + i as u64),
                            reply_to: None,
                            expiry: Some(expiry),
                            rprefs: None,
                            tprefs: None,
                            protocol: DATA,
                            body: vec![0xab; body_len],
                            sig: None,
                        };
                        let mut wire = Vec::new();
                        m.sign_into_wire(key, &mut wire, &mut scratch);
                        out.push(wire);
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("signer"))
            .collect()
    });
    chunks.into_iter().flatten().collect()
}

/// Rates of single verification, batch-of-64 verification and signing on one thread, each
/// measured for about `secs`.
fn verify_rates(secs: f64) -> (f64, f64, f64) {
    let node = Keypair::generate();
    let dst = Destination::Engine(EngineIdentity([7; 32]));
    let wires = presign(&node, dst, 1024, 256);
    let items: Vec<(Unverified, CheckedKey)> = wires
        .iter()
        .map(|w| {
            let u = Unverified::decode(w.clone()).expect("decodes");
            let key = CheckedKey::parse(u.message().src.as_bytes()).expect("key");
            (u, key)
        })
        .collect();
    let dur = Duration::from_secs_f64(secs);
    // Single.
    let mut scratch = Vec::new();
    let mut n = 0u64;
    let t0 = Instant::now();
    while t0.elapsed() < dur {
        for (w, (_, key)) in wires.iter().zip(&items).take(64) {
            let u = Unverified::decode(w.clone()).expect("decodes");
            assert!(u.verify(key, &mut scratch).is_ok());
            n += 1;
        }
    }
    let single = n as f64 / t0.elapsed().as_secs_f64();
    // Batch of 64.
    let mut verifier = BatchVerifier::new();
    let mut out = Vec::with_capacity(64);
    let mut n = 0u64;
    let t0 = Instant::now();
    while t0.elapsed() < dur {
        for chunk in wires.chunks(64).zip(items.chunks(64)) {
            let batch: Vec<(Unverified, CheckedKey)> = chunk
                .0
                .iter()
                .zip(chunk.1)
                .map(|(w, (_, k))| (Unverified::decode(w.clone()).expect("decodes"), k.clone()))
                .collect();
            out.clear();
            verifier.verify(batch, &mut out);
            n += out.iter().filter(|r| r.is_ok()).count() as u64;
        }
    }
    let batch = n as f64 / t0.elapsed().as_secs_f64();
    // Signing.
    let key = node.derive_engine("signer");
    let mut m = Unverified::decode(wires[0].clone())
        .expect("decodes")
        .message()
        .clone();
    m.src = key.engine_identity();
    let mut wire = Vec::new();
    let mut n = 0u64;
    let t0 = Instant::now();
    while t0.elapsed() < dur {
        for _ in 0..64 {
            m.id.0 += 1;
            m.sign_into_wire(&key, &mut wire, &mut scratch);
            n += 1;
        }
    }
    let sign = n as f64 / t0.elapsed().as_secs_f64();
    (single, batch, sign)
}

/// Counts messages; answers every `credit_every`-th with a credit reply carrying the count.
struct Sink {
    count: Arc<AtomicU64>,
    credit_every: u64,
    latencies: Option<(Instant, Arc<Mutex<Vec<u64>>>)>,
}

impl Engine for Sink {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        if let Input::Message(m) = input {
            if m.protocol() != DATA {
                return;
            }
            let n = self.count.fetch_add(1, Ordering::Release) + 1;
            if let Some((epoch, lat)) = &self.latencies {
                let sent = u64::from_le_bytes(m.body()[..8].try_into().unwrap_or([0; 8]));
                let now = epoch.elapsed().as_nanos() as u64;
                lat.lock().push(now.saturating_sub(sent));
            }
            if self.credit_every > 0 && n % self.credit_every == 0 {
                let opts = SendOptions {
                    notify_undeliverable: false,
                    ..SendOptions::default()
                };
                ctx.send_with(m.src(), CREDIT, n.to_le_bytes().to_vec(), opts);
            }
        }
    }
}

/// Sends `body_len`-byte messages to `dst` while fewer than `window` are unacknowledged by
/// credits, until told to stop.
struct Source {
    dst: EngineIdentity,
    body_len: usize,
    window: u64,
    sent: u64,
    credited: u64,
    stop: Arc<AtomicU64>,
    started: bool,
}

impl Source {
    fn fill(&mut self, ctx: &mut Context) {
        if self.stop.load(Ordering::Acquire) != 0 {
            return;
        }
        let opts = SendOptions {
            notify_undeliverable: false,
            ..SendOptions::default()
        };
        while self.sent - self.credited < self.window {
            let mut body = vec![0x42; self.body_len];
            body[..8].copy_from_slice(&self.sent.to_le_bytes());
            ctx.send_with(self.dst, DATA, body, opts);
            self.sent += 1;
        }
    }
}

impl Engine for Source {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Message(m) if m.protocol() == CREDIT => {
                let n = u64::from_le_bytes(m.body()[..8].try_into().unwrap_or([0; 8]));
                self.credited = self.credited.max(n);
                self.fill(ctx);
            }
            Input::Message(m) if m.protocol() == DATA && !self.started => {
                self.started = true;
                self.fill(ctx);
            }
            _ => {}
        }
    }
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("valid")
}

/// Two nodes on 127.0.0.1 with `limits`, `a` keeping a connection to `b`; `b` runs `sink` and
/// `a` runs `source` if given.
fn pair_with(
    sink: Option<Sink>,
    source: Option<Source>,
    limits: netmachine::NodeLimits,
) -> Result<(Node, Node), String> {
    let kb = Keypair::generate();
    let mut b = NodeBuilder::new(kb.clone())
        .limits(limits)
        .listen(localhost());
    if let Some(s) = sink {
        let spec = EngineSpec {
            mailbox_depth: 65_536,
            ..EngineSpec::named("sink")
        };
        b = b.engine_with(spec, s);
    }
    let b = b.start().map_err(|e| e.to_string())?;
    let mut a = NodeBuilder::new(Keypair::generate())
        .limits(limits)
        .listen(localhost())
        .peer(b.advert().clone())
        .permanent(b.identity())
        .engine_location(kb.derive_engine("sink").engine_identity(), b.identity());
    if let Some(s) = source {
        a = a.engine("source", s);
    }
    let a = a.start().map_err(|e| e.to_string())?;
    b.learn(IdentityUpdate::NodeAdvert(a.advert().clone()));
    // Wait for the connection.
    let mut c = a.client("bench-ping").map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        c.send(b.identity(), Protocol::PING, vec![0]);
        if let Some(Input::Message(_)) = c.recv(Duration::from_millis(500)) {
            break;
        }
        if Instant::now() > deadline {
            return Err("the two bench nodes did not connect".into());
        }
    }
    Ok((a, b))
}

/// Like [`pair_with`], with the source's destination set to b's sink.
fn pair_with_sink_target(sink: Sink, mut source: Source) -> Result<(Node, Node), String> {
    let kb = Keypair::generate();
    source.dst = kb.derive_engine("sink").engine_identity();
    let spec = EngineSpec {
        mailbox_depth: 65_536,
        ..EngineSpec::named("sink")
    };
    let b = NodeBuilder::new(kb)
        .listen(localhost())
        .engine_with(spec, sink)
        .start()
        .map_err(|e| e.to_string())?;
    let a = NodeBuilder::new(Keypair::generate())
        .listen(localhost())
        .peer(b.advert().clone())
        .permanent(b.identity())
        .engine_location(source.dst, b.identity())
        .engine("source", source)
        .start()
        .map_err(|e| e.to_string())?;
    b.learn(IdentityUpdate::NodeAdvert(a.advert().clone()));
    Ok((a, b))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

// ---------------------------------------------------------------------------------------------
// Suites.

fn verify_suite(secs: f64, out: &impl Fn(Record)) {
    let (single, batch, sign) = verify_rates((secs / 3.0).max(0.5));
    out(Record {
        suite: "verify",
        metric: "single_verify",
        value: single,
        unit: "sig/s",
        baseline: None,
    });
    out(Record {
        suite: "verify",
        metric: "batch64_verify",
        value: batch,
        unit: "sig/s",
        baseline: Some(("single_verify", single)),
    });
    out(Record {
        suite: "verify",
        metric: "sign",
        value: sign,
        unit: "sig/s",
        baseline: Some(("single_verify", single)),
    });
}

fn router_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
    let (single, _, _) = verify_rates(1.0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut configs = vec![0usize];
    if cores > 1 {
        configs.push(cores);
    }
    for threads in configs {
        let count = Arc::new(AtomicU64::new(0));
        let mut limits = netmachine::NodeLimits::default();
        limits.router.verifier_threads = threads;
        let spec = EngineSpec {
            mailbox_depth: 1 << 20,
            ..EngineSpec::named("sink")
        };
        let node = NodeBuilder::new(Keypair::generate())
            .limits(limits)
            .engine_with(
                spec,
                Sink {
                    count: Arc::clone(&count),
                    credit_every: 0,
                    latencies: None,
                },
            )
            .start()
            .map_err(|e| e.to_string())?;
        let sink = node.engine_identity("sink").ok_or("sink not running")?;
        let peer = Keypair::generate();
        let n = ((single * 2.5 * secs / 2.0) as usize).clamp(20_000, 2_000_000);
        let wires = presign(&peer, Destination::Engine(sink), n, 256);
        let ingress = node.ingress();
        let stats = node.stats_handle();
        let t0 = Instant::now();
        for w in wires {
            ingress.deliver(peer.node_identity(), w);
        }
        let deadline = t0 + Duration::from_secs_f64(secs * 4.0 + 10.0);
        while count.load(Ordering::Acquire) + stats.total_drops() < n as u64 {
            if Instant::now() > deadline {
                return Err("router suite: messages did not arrive in time".into());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let delivered = count.load(Ordering::Acquire);
        if delivered != n as u64 {
            return Err(format!(
                "router suite: {} of {n} delivered: {}",
                delivered,
                node.stats()
            ));
        }
        let metric = if threads == 0 {
            "ingress_inline"
        } else {
            "ingress_verifier_threads"
        };
        out(Record {
            suite: "router",
            metric,
            value: delivered as f64 / elapsed,
            unit: "msg/s",
            baseline: Some(("single_verify", single)),
        });
        node.shutdown();
    }
    Ok(())
}

fn local_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
    // Baseline: the same shape without netmachine — three threads, two bounded channel hops.
    let n = 2_000_000u64;
    let (tx1, rx1) = crossbeam_channel::bounded::<Vec<u8>>(4096);
    let (tx2, rx2) = crossbeam_channel::bounded::<Vec<u8>>(4096);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            for m in rx1 {
                let _ = tx2.send(m);
            }
        });
        s.spawn(move || {
            let mut got = 0;
            for _ in rx2.iter() {
                got += 1;
                if got == n {
                    break;
                }
            }
        });
        for i in 0..n {
            let _ = tx1.send(i.to_le_bytes().to_vec());
        }
        drop(tx1);
    });
    let baseline = n as f64 / t0.elapsed().as_secs_f64();

    // Throughput.
    let count = Arc::new(AtomicU64::new(0));
    let spec = EngineSpec {
        mailbox_depth: 1 << 17,
        ..EngineSpec::named("sink")
    };
    let node = NodeBuilder::new(Keypair::generate())
        .engine_with(
            spec,
            Sink {
                count: Arc::clone(&count),
                credit_every: 0,
                latencies: None,
            },
        )
        .start()
        .map_err(|e| e.to_string())?;
    let sink = node.engine_identity("sink").ok_or("no sink")?;
    let mut client = node.client("source").map_err(|e| e.to_string())?;
    let opts = SendOptions {
        notify_undeliverable: false,
        ..SendOptions::default()
    };
    let burst = 50_000u64;
    let dur = Duration::from_secs_f64(secs / 2.0);
    let stats = node.stats_handle();
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed() < dur {
        for i in 0..burst {
            client.send_with(sink, DATA, i.to_le_bytes().to_vec(), opts);
        }
        sent += burst;
        while count.load(Ordering::Acquire) + stats.total_drops() < sent {
            std::hint::spin_loop();
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    if stats.total_drops() > 0 {
        return Err(format!("local suite dropped messages: {}", node.stats()));
    }
    out(Record {
        suite: "local",
        metric: "throughput",
        value: sent as f64 / elapsed,
        unit: "msg/s",
        baseline: Some(("two_channel_hops", baseline)),
    });
    drop(client);
    node.shutdown();

    // Latency under light load: one message about every 150 µs (a 100 µs sleep), with the
    // default polling before parking and with a latency-tuned node that polls for 1 ms.
    for (spin, p50_name, p99_name) in [
        (
            netmachine::runtime::DEFAULT_SPIN_BEFORE_PARK,
            "latency_p50",
            "latency_p99",
        ),
        (
            Duration::from_millis(1),
            "latency_p50_spin_1ms",
            "latency_p99_spin_1ms",
        ),
    ] {
        let (p50, p99) = local_latency(secs / 4.0, spin)?;
        out(Record {
            suite: "local",
            metric: p50_name,
            value: p50,
            unit: "us",
            baseline: None,
        });
        out(Record {
            suite: "local",
            metric: p99_name,
            value: p99,
            unit: "us",
            baseline: None,
        });
    }
    Ok(())
}

/// One-way latency engine → Router → engine under light load: (p50, p99) in microseconds.
fn local_latency(secs: f64, spin: Duration) -> Result<(f64, f64), String> {
    let opts = SendOptions {
        notify_undeliverable: false,
        ..SendOptions::default()
    };
    let lat = Arc::new(Mutex::new(Vec::new()));
    let epoch = Instant::now();
    let count = Arc::new(AtomicU64::new(0));
    let limits = netmachine::NodeLimits {
        spin_before_park: spin,
        ..netmachine::NodeLimits::default()
    };
    let node = NodeBuilder::new(Keypair::generate())
        .limits(limits)
        .engine(
            "sink",
            Sink {
                count: Arc::clone(&count),
                credit_every: 0,
                latencies: Some((epoch, Arc::clone(&lat))),
            },
        )
        .start()
        .map_err(|e| e.to_string())?;
    let sink = node.engine_identity("sink").ok_or("no sink")?;
    let mut client = node.client("source").map_err(|e| e.to_string())?;
    let samples = (secs * 6_000.0) as u64;
    for _ in 0..samples.clamp(1000, 200_000) {
        let now = epoch.elapsed().as_nanos() as u64;
        client.send_with(sink, DATA, now.to_le_bytes().to_vec(), opts);
        std::thread::sleep(Duration::from_micros(100));
    }
    std::thread::sleep(Duration::from_millis(50));
    let mut v = lat.lock().clone();
    v.sort_unstable();
    drop(client);
    node.shutdown();
    Ok((
        percentile(&v, 0.5) as f64 / 1000.0,
        percentile(&v, 0.99) as f64 / 1000.0,
    ))
}

/// Streams messages from an engine on one node to an engine on another for `secs`; returns
/// messages per second delivered.
fn stream_between_nodes(
    secs: f64,
    body_len: usize,
    window: u64,
    credit_every: u64,
) -> Result<(f64, String), String> {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(0));
    let sink = Sink {
        count: Arc::clone(&count),
        credit_every,
        latencies: None,
    };
    let source = Source {
        dst: EngineIdentity([0; 32]),
        body_len,
        window,
        sent: 0,
        credited: 0,
        stop: Arc::clone(&stop),
        started: false,
    };
    let (a, b) = pair_with_sink_target(sink, source)?;
    let source = a.engine_identity("source").ok_or("no source")?;
    let mut kick = a.client("kick").map_err(|e| e.to_string())?;
    kick.send(source, DATA, vec![0; 8]);
    // Warm up until the first messages arrive, then measure.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count.load(Ordering::Acquire) < 10 * credit_every.max(1) {
        if Instant::now() > deadline {
            return Err(format!(
                "no traffic between the nodes:\n{}\n{}",
                a.status(),
                b.status()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let c0 = count.load(Ordering::Acquire);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let c1 = count.load(Ordering::Acquire);
    let rate = (c1 - c0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(1, Ordering::Release);
    let status = format!("{}\n{}", a.status(), b.status());
    drop(kick);
    a.shutdown();
    b.shutdown();
    Ok((rate, status))
}

fn unicast_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
    let (_, batch, sign) = verify_rates(1.0);
    let limit = batch.min(sign);
    let (rate, status) = stream_between_nodes(secs, 256, 4096, 256)?;
    log::info!("unicast: {status}");
    out(Record {
        suite: "unicast",
        metric: "msgs_256B",
        value: rate,
        unit: "msg/s",
        baseline: Some(("min_sign_batch_verify", limit)),
    });
    Ok(())
}

fn bulk_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
    let mib = 1024.0 * 1024.0;
    let raw_bytes = 256 << 20;
    let (bytes, elapsed) = netmachine::node::quic::raw_bulk_transfer(raw_bytes)?;
    let raw = bytes as f64 / mib / elapsed.as_secs_f64();
    let (rate, status) = stream_between_nodes(secs, 1 << 20, 8, 1)?;
    log::info!("bulk: {status}");
    out(Record {
        suite: "bulk",
        metric: "mib_per_s_1MiB_messages",
        value: rate,
        unit: "MiB/s",
        baseline: Some(("raw_quiche_stream", raw)),
    });
    Ok(())
}

fn rtt_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
    // Baseline: a UDP ping-pong between two threads on 127.0.0.1.
    let a = UdpSocket::bind(localhost()).map_err(|e| e.to_string())?;
    let b = UdpSocket::bind(localhost()).map_err(|e| e.to_string())?;
    let b_addr = b.local_addr().map_err(|e| e.to_string())?;
    let rounds = 5000;
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        for _ in 0..rounds {
            if let Ok((n, from)) = b.recv_from(&mut buf) {
                let _ = b.send_to(&buf[..n], from);
            }
        }
    });
    let mut raw = Vec::with_capacity(rounds);
    let mut buf = [0u8; 64];
    a.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    for _ in 0..rounds {
        let t = Instant::now();
        a.send_to(&[1; 64], b_addr).map_err(|e| e.to_string())?;
        a.recv_from(&mut buf).map_err(|e| e.to_string())?;
        raw.push(t.elapsed().as_nanos() as u64);
    }
    let _ = echo.join();
    raw.sort_unstable();

    let us = |v: u64| v as f64 / 1000.0;
    for (spin, p50_name, p99_name) in [
        (
            netmachine::runtime::DEFAULT_SPIN_BEFORE_PARK,
            "ping_p50",
            "ping_p99",
        ),
        (Duration::ZERO, "ping_p50_no_spin", "ping_p99_no_spin"),
    ] {
        let limits = netmachine::NodeLimits {
            spin_before_park: spin,
            ..netmachine::NodeLimits::default()
        };
        let (a, b) = pair_with(None, None, limits)?;
        let mut client = a.client("pinger").map_err(|e| e.to_string())?;
        let mut rtts = Vec::new();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs_f64(secs / 2.0) && rtts.len() < 100_000 {
            let t = Instant::now();
            let id = client.send(b.identity(), Protocol::PING, vec![7; 64]);
            loop {
                match client.recv(Duration::from_secs(5)) {
                    Some(Input::Message(m)) if m.reply_to() == Some(id) => break,
                    Some(_) => continue,
                    None => return Err("rtt: a ping was not answered".into()),
                }
            }
            rtts.push(t.elapsed().as_nanos() as u64);
        }
        rtts.sort_unstable();
        out(Record {
            suite: "rtt",
            metric: p50_name,
            value: us(percentile(&rtts, 0.5)),
            unit: "us",
            baseline: Some(("raw_udp_p50", us(percentile(&raw, 0.5)))),
        });
        out(Record {
            suite: "rtt",
            metric: p99_name,
            value: us(percentile(&rtts, 0.99)),
            unit: "us",
            baseline: Some(("raw_udp_p99", us(percentile(&raw, 0.99)))),
        });
        drop(client);
        a.shutdown();
        b.shutdown();
    }
    Ok(())
}

fn pubsub_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
    let (_, _, sign) = verify_rates(1.0);
    let subscribers = 3;
    let publisher = NodeBuilder::new(Keypair::generate())
        .listen(localhost())
        .start()
        .map_err(|e| e.to_string())?;
    let counts: Vec<Arc<AtomicU64>> = (0..subscribers)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let mut nodes = Vec::new();
    for c in &counts {
        let n = NodeBuilder::new(Keypair::generate())
            .listen(localhost())
            .peer(publisher.advert().clone())
            .permanent(publisher.identity())
            .engine_with(
                EngineSpec {
                    mailbox_depth: 1 << 16,
                    ..EngineSpec::named("sink")
                },
                Sink {
                    count: Arc::clone(c),
                    credit_every: 0,
                    latencies: None,
                },
            )
            .start()
            .map_err(|e| e.to_string())?;
        publisher.learn(IdentityUpdate::NodeAdvert(n.advert().clone()));
        nodes.push(n);
    }
    let mut pubc = publisher.client("publisher").map_err(|e| e.to_string())?;
    let advert = TopicAdvert {
        topic,
        publishers: vec![publisher
            .engine_identity(PUBSUB_ENGINE_NAME)
            .ok_or("no pubsub")?],
        tags: vec![],
        version: 1,
        created: wall_clock(),
        sig: Signature([0; 64]),
    }
    .sign(&topic_key);
    pubc.with_context(|ctx| {
        ctx.topic_request(TopicRequest::Create {
            topic,
            scope: RoutingScope::Any,
            advert: Some(advert),
        })
    });
    // The sinks subscribe through clients named after them.
    let mut subs = Vec::new();
    for n in &nodes {
        let mut c = n.client("sub").map_err(|e| e.to_string())?;
        c.subscribe(topic, RoutingScope::Any);
        subs.push(c);
    }
    for c in &mut subs {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match c.recv(Duration::from_millis(100)) {
                Some(Input::Topic(TopicEvent::Subscribed { result: Ok(()), .. })) => break,
                Some(Input::Topic(TopicEvent::Subscribed { result: Err(e), .. })) => {
                    return Err(format!("pubsub: subscription failed: {e:?}"))
                }
                _ if Instant::now() > deadline => {
                    return Err("pubsub: not subscribed in time".into())
                }
                _ => {}
            }
        }
    }
    // Count deliveries at the clients (they are the subscribers).
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut c| {
            let received = Arc::clone(&received);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while stop.load(Ordering::Acquire) == 0 {
                    if let Some(Input::Message(_)) = c.recv(Duration::from_millis(50)) {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Publish with a window: at most 2,048 events ahead of the slowest subscriber.
    let window = 2048u64;
    let mut published = 0u64;
    let t0 = Instant::now();
    let dur = Duration::from_secs_f64(secs);
    while t0.elapsed() < dur {
        let slowest = received.load(Ordering::Acquire) / subscribers as u64;
        while published < slowest + window {
            pubc.publish(topic, DATA, vec![0x33; 256]);
            published += 1;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let delivered = received.load(Ordering::Acquire);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(1, Ordering::Release);
    for r in readers {
        let _ = r.join();
    }
    out(Record {
        suite: "pubsub",
        metric: "deliveries_per_s",
        value: delivered as f64 / elapsed,
        unit: "events/s",
        baseline: Some(("sign", sign)),
    });
    out(Record {
        suite: "pubsub",
        metric: "events_per_s",
        value: delivered as f64 / subscribers as f64 / elapsed,
        unit: "events/s",
        baseline: Some(("sign", sign)),
    });
    drop(pubc);
    publisher.shutdown();
    for n in nodes {
        n.shutdown();
    }
    drop(counts);
    Ok(())
}
