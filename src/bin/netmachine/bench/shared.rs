//! Pieces the suites share: the benchmark protocols, presigned messages, the verification
//! baselines, the `Sink` and `Source` engines, node pairs over the loopback and percentiles.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use netmachine::identity::{CheckedKey, Keypair};
use netmachine::identity_store::IdentityUpdate;
use netmachine::time::wall_clock;
use netmachine::wire::message::{BatchVerifier, Unverified};
use netmachine::wire::{Destination, EngineMessage, MessageId, Protocol};
use netmachine::{
    Context, Engine, EngineIdentity, EngineSpec, Input, Node, NodeBuilder, SendOptions,
};

pub(super) const DATA: Protocol = Protocol(Protocol::APP_BASE + 0x200);
const CREDIT: Protocol = Protocol(Protocol::APP_BASE + 0x201);

/// `count` signed messages from engines of `node` (64 engines, ids increasing per engine) to
/// `dst`, with `body_len`-byte bodies, signed on all available cores.
pub(super) fn presign(
    node: &Keypair,
    dst: Destination,
    count: usize,
    body_len: usize,
) -> Vec<Vec<u8>> {
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
pub(super) fn verify_rates(secs: f64) -> (f64, f64, f64) {
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
pub(super) struct Sink {
    pub(super) count: Arc<AtomicU64>,
    pub(super) credit_every: u64,
    pub(super) latencies: Option<(Instant, Arc<Mutex<Vec<u64>>>)>,
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
                ctx.send_with(m.sender().named(), CREDIT, n.to_le_bytes().to_vec(), opts);
            }
        }
    }
}

/// Sends `body_len`-byte messages to `dst` while fewer than `window` are unacknowledged by
/// credits, until told to stop.
pub(super) struct Source {
    pub(super) dst: EngineIdentity,
    pub(super) body_len: usize,
    pub(super) window: u64,
    pub(super) sent: u64,
    pub(super) credited: u64,
    pub(super) stop: Arc<AtomicU64>,
    pub(super) started: bool,
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

pub(super) fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("valid")
}

/// Two nodes on 127.0.0.1 with `limits`, `a` keeping a connection to `b`; `b` runs `sink` and
/// `a` runs `source` if given.
pub(super) fn pair_with(
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
pub(super) fn pair_with_sink_target(
    sink: Sink,
    mut source: Source,
) -> Result<(Node, Node), String> {
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

pub(super) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
