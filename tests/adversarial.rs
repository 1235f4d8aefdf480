//! Adversarial input over real nodes: forgeries and replays by category, junk at full speed,
//! a slow consumer, and a connection flood. Every randomized test prints its seed and replays
//! from `NM_SEED`.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netmachine::identity::Keypair;
use netmachine::runtime::stats::Fault;
use netmachine::transport::{TransportConfig, TransportLimits};
use netmachine::wire::{Destination, NodeAdvert, Protocol};
use netmachine::{DropReason, EngineIdentity, Input, NodeBuilder};

use common::{drain_bodies, signed_wire, unsigned, wait_until};

fn seed() -> u64 {
    let seed = std::env::var("NM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("seed: {seed} (replay with NM_SEED={seed})");
    seed
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn ten_thousand_forgeries_of_every_kind_are_refused() {
    let mut rng = Rng(seed());
    let node = NodeBuilder::new(Keypair::generate()).start().unwrap();
    let mut sink = node.client("sink").unwrap();
    let dst = Destination::Engine(sink.identity());
    let ingress = node.ingress();
    let peer = Keypair::generate();
    let remote = peer.derive_engine("app");
    let from = peer.node_identity();
    let impostor = Keypair::generate();
    let mut weak_key = [0u8; 32];
    weak_key[0] = 1;
    let mut kinds = [0u64; 5];
    for i in 0..10_000u64 {
        let id = 1_000_000 + i;
        let kind = (rng.next() % 5) as usize;
        kinds[kind] += 1;
        let wire = match kind {
            // A bit flipped in the signature.
            0 => {
                let mut w = signed_wire(&remote, &peer, dst, id, &i.to_le_bytes());
                let n = w.len();
                let pos = n - 64 + (rng.next() % 64) as usize;
                w[pos] ^= 1 << (rng.next() % 8);
                w
            }
            // A bit flipped in the body.
            1 => {
                let mut w = signed_wire(&remote, &peer, dst, id, &i.to_le_bytes());
                let n = w.len();
                let pos = n - 64 - 8 + (rng.next() % 8) as usize;
                w[pos] ^= 1 << (rng.next() % 8);
                w
            }
            // A bit flipped in the source key.
            2 => {
                let mut w = signed_wire(&remote, &peer, dst, id, &i.to_le_bytes());
                let pos = 4 + (rng.next() % 32) as usize;
                w[pos] ^= 1 << (rng.next() % 8);
                w
            }
            // Signed by another key.
            3 => {
                let mut m = unsigned(&remote, &peer, dst, id, &i.to_le_bytes());
                let mut w = Vec::new();
                m.sign_into_wire(&impostor, &mut w, &mut Vec::new());
                w
            }
            // A weak (small-order) source key.
            _ => {
                let mut m = unsigned(&remote, &peer, dst, id, &i.to_le_bytes());
                m.src = EngineIdentity(weak_key);
                let mut w = Vec::new();
                m.sign_into_wire(&remote, &mut w, &mut Vec::new());
                w
            }
        };
        ingress.deliver(from, wire);
    }
    assert!(wait_until(Duration::from_secs(30), || node
        .stats()
        .total_drops()
        == 10_000));
    let s = node.stats();
    assert_eq!(s.verified, 0, "{s}");
    assert_eq!(s.delivered_local, 0, "{s}");
    assert_eq!(s.drops(DropReason::WeakKey), kinds[4], "{s}");
    assert!(drain_bodies(&mut sink, Duration::from_millis(100)).is_empty());
    eprintln!("kinds: {kinds:?}; {s}");
}

#[test]
fn ten_thousand_replays_deliver_nothing_twice() {
    let mut rng = Rng(seed());
    let node = NodeBuilder::new(Keypair::generate()).start().unwrap();
    let mut sink = node.client("sink").unwrap();
    let dst = Destination::Engine(sink.identity());
    let ingress = node.ingress();
    let peer = Keypair::generate();
    let from = peer.node_identity();
    let engines: Vec<Keypair> = (0..8)
        .map(|i| peer.derive_engine(&format!("e{i}")))
        .collect();
    let mut sent: Vec<Vec<u8>> = Vec::new();
    for i in 0..2_000u64 {
        let key = &engines[(i % 8) as usize];
        let w = signed_wire(key, &peer, dst, 5_000 + i, &i.to_le_bytes());
        ingress.deliver(from, w.clone());
        sent.push(w);
    }
    let mut replays = 0;
    while replays < 10_000 {
        let w = sent[(rng.next() % sent.len() as u64) as usize].clone();
        ingress.deliver(from, w);
        replays += 1;
    }
    assert!(wait_until(Duration::from_secs(30), || {
        let s = node.stats();
        s.drops(DropReason::Duplicate) + s.drops(DropReason::Replay) == 10_000
    }));
    let mut got = Vec::new();
    loop {
        let b = drain_bodies(&mut sink, Duration::from_millis(300));
        if b.is_empty() {
            break;
        }
        got.extend(b);
    }
    assert_eq!(got.len(), 2_000, "each honest message exactly once");
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 2_000);
}

#[test]
fn junk_at_full_speed_does_not_stop_honest_traffic() {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let (pa, pb) = (common::free_port(), common::free_port());
    let a = NodeBuilder::new(ka.clone())
        .listen(pa)
        .peer(NodeAdvert::for_listen(&kb, &[pb], None))
        .start()
        .unwrap();
    let b = NodeBuilder::new(kb)
        .listen(pb)
        .peer(NodeAdvert::for_listen(&ka, &[pa], None))
        .start()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let blaster = {
        let stop = Arc::clone(&stop);
        let sent = Arc::clone(&sent);
        let mut rng = Rng(seed());
        std::thread::spawn(move || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                let len = 1 + (rng.next() % 1400) as usize;
                for b in buf[..len].iter_mut() {
                    *b = rng.next() as u8;
                }
                // Some look like QUIC long headers (Initial, version 1), most are noise.
                if rng.next() % 4 == 0 {
                    buf[0] = 0xc0;
                    buf[1..5].copy_from_slice(&1u32.to_be_bytes());
                }
                let _ = s.send_to(&buf[..len], pb);
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut client = a.client("c").unwrap();
    let t0 = Instant::now();
    let mut answered = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        let id = client.send(b.identity(), Protocol::PING, b"still here".to_vec());
        loop {
            match client.recv(Duration::from_secs(10)) {
                Some(Input::Message(m)) if m.reply_to() == Some(id) => break,
                Some(_) => {}
                None => panic!("honest ping lost under junk\n{}", b.status()),
            }
        }
        answered += 1;
    }
    stop.store(true, Ordering::Relaxed);
    blaster.join().unwrap();
    let s = b.stats();
    eprintln!(
        "junk datagrams sent: {}, honest pings answered: {answered}; {s}",
        sent.load(Ordering::Relaxed)
    );
    assert!(answered > 10);
    assert!(s.faults(Fault::JunkPacket) + s.faults(Fault::HandshakeFailed) > 0);
    assert_eq!(s.total_drops(), 0);
}

#[test]
fn a_connection_flood_is_capped() {
    let kb = Keypair::generate();
    let pb = common::free_port();
    let config = TransportConfig {
        listen: vec![pb],
        limits: TransportLimits {
            max_connections_per_ip: 4,
            ..TransportLimits::default()
        },
        ..TransportConfig::default()
    };
    let b = NodeBuilder::new(kb.clone())
        .transport(config)
        .start()
        .unwrap();
    let clients: Vec<_> = (0..10)
        .map(|_| {
            NodeBuilder::new(Keypair::generate())
                .listen("127.0.0.1:0".parse().unwrap())
                .peer(NodeAdvert::for_listen(&kb, &[pb], None))
                .permanent(kb.node_identity())
                .start()
                .unwrap()
        })
        .collect();
    assert!(wait_until(Duration::from_secs(20), || {
        b.stats().faults(Fault::ConnectionLimit) >= 6
    }));
    std::thread::sleep(Duration::from_secs(2));
    let s = b.stats();
    let connected: u64 = clients
        .iter()
        .map(|c| c.stats().connections_established)
        .sum();
    eprintln!("server: {s}; clients connected: {connected}");
    assert!(s.connections_established <= 4, "{s}");
    assert!(
        connected <= 4 + 4,
        "closed connections may have been replaced: {connected}"
    );
    drop(clients);
}
