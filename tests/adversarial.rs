//! Adversarial input over real nodes: forgeries and replays by category, junk at full speed,
//! a slow consumer, a connection flood, a peer forging at full rate over QUIC (cut off, refused
//! during its backoff, back after it) and a banned peer. Every randomized test prints its seed
//! and replays from `NM_SEED`.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netmachine::identity::Keypair;
use netmachine::mail::identity::{
    AnyIdentity, IdentityEvent, IdentityRecord, IdentityRequest, NodeRecord,
};
use netmachine::mail::transport::{TransportEvent, TransportRequest};
use netmachine::mail::RouteHeader;
use netmachine::runtime::stats::Fault;
use netmachine::time::wall_clock;
use netmachine::transport::{TransportConfig, TransportLimits};
use netmachine::wire::{Destination, NodeAdvert, Protocol};
use netmachine::{DropReason, EngineIdentity, Input, NodeBuilder, NodeIdentity, NodeLimits};

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
    // Without the inter-domain engines: their gossip sends messages to the server on its own
    // schedule, and each one may dial again after the server closed the connection — this test
    // counts the dials of permanent connections only.
    let b = NodeBuilder::new(kb.clone())
        .transport(config)
        .without_interdomain()
        .start()
        .unwrap();
    let clients: Vec<_> = (0..10)
        .map(|_| {
            NodeBuilder::new(Keypair::generate())
                .listen("127.0.0.1:0".parse().unwrap())
                .peer(NodeAdvert::for_listen(&kb, &[pb], None))
                .permanent(kb.node_identity())
                .without_interdomain()
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

/// A message from engine `app` of node `from` to `dst`, expiring in `ttl`, with its signature
/// spoiled: a forgery, as a hostile node would send it over its own connection.
fn forgery(from: &Keypair, dst: Destination, id: u64, ttl: Duration) -> (RouteHeader, Vec<u8>) {
    let key = from.derive_engine("app");
    let mut m = unsigned(&key, from, dst, id, &id.to_le_bytes());
    m.expiry = Some(wall_clock().after(ttl));
    let mut wire = Vec::new();
    m.sign_into_wire(&key, &mut wire, &mut Vec::new());
    let n = wire.len();
    wire[n - 1 - (id % 64) as usize] ^= 1;
    (RouteHeader::of(&m, false), wire)
}

/// Waits for a notification that the connection to `node` closed; returns its reason.
fn disconnected_from(client: &mut netmachine::Client, node: NodeIdentity) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(input) = client.recv(deadline.saturating_duration_since(Instant::now())) {
        if let Input::Transport(TransportEvent::NodeDisconnected {
            node: n, reason, ..
        }) = input
        {
            if n == node {
                return Some(reason);
            }
        }
    }
    None
}

/// The record the node's identity store holds for `node`.
fn node_record(on: &netmachine::Node, node: NodeIdentity) -> NodeRecord {
    match on.ask_identity_store(
        IdentityRequest::Lookup(AnyIdentity::Node(node)),
        Duration::from_secs(5),
    ) {
        Some(IdentityEvent::Found {
            record: Some(IdentityRecord::Node(r)),
            ..
        }) => r,
        other => panic!("no node record for {node}: {other:?}"),
    }
}

#[test]
fn a_forging_peer_is_cut_off_and_refused_while_an_honest_peer_is_served() {
    let (ka, kb, kc) = (
        Keypair::generate(),
        Keypair::generate(),
        Keypair::generate(),
    );
    let (pa, pb, pc) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let (a_id, b_id) = (ka.node_identity(), kb.node_identity());
    let backoff = Duration::from_secs(4);
    let mut limits = NodeLimits::default();
    limits.router.conduct.backoff = backoff;
    let threshold = limits.router.conduct.bad_messages_before_disconnect;
    // B, the victim, keeps a permanent connection to the forger A: without the cut-off it would
    // redial A at once. A keeps one to B too, so it keeps trying while it is cut off.
    let b = NodeBuilder::new(kb.clone())
        .listen(pb)
        .peer(NodeAdvert::for_listen(&ka, &[pa], None))
        .peer(NodeAdvert::for_listen(&kc, &[pc], None))
        .permanent(a_id)
        .limits(limits)
        .start()
        .unwrap();
    let a = NodeBuilder::new(ka.clone())
        .listen(pa)
        .peer(NodeAdvert::for_listen(&kb, &[pb], None))
        .permanent(b_id)
        .start()
        .unwrap();
    let sink_id = kb.derive_engine("sink").engine_identity();
    let c = NodeBuilder::new(kc)
        .listen(pc)
        .peer(NodeAdvert::for_listen(&kb, &[pb], None))
        .engine_location(sink_id, b_id)
        .start()
        .unwrap();
    let mut sink = b.client("sink").unwrap();
    let mut watch = a.client("watch").unwrap();
    watch.with_context(|ctx| ctx.transport_request(TransportRequest::Subscribe));
    assert!(wait_until(Duration::from_secs(20), || {
        a.stats().connections_established > 0
    }));

    // A forges at full rate (the Transport's mailbox holds it back) while C sends honestly.
    let stop = Arc::new(AtomicBool::new(false));
    let forged = Arc::new(AtomicU64::new(0));
    let forger = {
        let (stop, forged, egress) = (Arc::clone(&stop), Arc::clone(&forged), a.egress());
        let dst = Destination::Engine(sink_id);
        std::thread::spawn(move || {
            let mut id = 1_000;
            while !stop.load(Ordering::Relaxed) {
                // Short-lived: what A still holds when the backoff ends has expired by then.
                let (header, wire) = forgery(&ka, dst, id, Duration::from_secs(1));
                if !egress.send(b_id, header, wire) {
                    break;
                }
                forged.fetch_add(1, Ordering::Relaxed);
                id += 1;
            }
        })
    };
    const HONEST: u64 = 2_000;
    let mut honest = c.client("honest").unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0..HONEST {
            honest.send(
                sink_id,
                Protocol(Protocol::APP_BASE + 1),
                i.to_le_bytes().to_vec(),
            );
        }
        honest
    });

    assert!(
        wait_until(Duration::from_secs(20), || b
            .stats()
            .faults(Fault::PeerCutOff)
            == 1),
        "not cut off\n{}",
        b.status()
    );
    let cut_at = Instant::now();
    let dials_at_cut = b.stats().dials;
    let a_connections_at_cut = a.stats().connections_established;

    // A, still forging, hears the close code; it redials (permanent) and is refused, twice;
    // B does not dial it.
    let reason = disconnected_from(&mut watch, b_id).expect("A disconnected");
    assert!(reason.contains("error 0x8"), "close reason: {reason}");
    assert!(
        wait_until(Duration::from_secs(10), || b
            .stats()
            .faults(Fault::CutOffPeerRefused)
            >= 2),
        "A's redials were not refused\n{}",
        b.status()
    );
    assert!(
        cut_at.elapsed() < backoff,
        "the check must fall within the backoff"
    );
    assert_eq!(b.stats().dials, dials_at_cut, "B redialled a cut-off peer");
    stop.store(true, Ordering::Relaxed);
    forger.join().unwrap();
    let _honest = sender.join().unwrap();

    // Every honest message arrived, once.
    let mut got = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (got.len() as u64) < HONEST && Instant::now() < deadline {
        for body in drain_bodies(&mut sink, Duration::from_millis(200)) {
            let i = u64::from_le_bytes(body.as_slice().try_into().expect("8 bytes"));
            assert!(i < HONEST, "a forgery was delivered: {i}");
            assert!(got.insert(i), "an honest message twice: {i}");
        }
    }
    assert_eq!(
        got.len() as u64,
        HONEST,
        "honest messages lost\n{}",
        b.status()
    );

    // The forger lost reputation, one point per forgery (down to 0), and the status shows it.
    let expected = || 128u64.saturating_sub(b.stats().drops(DropReason::BadSignature)) as u8;
    assert!(
        wait_until(Duration::from_secs(5), || node_record(&b, a_id).reputation
            == Some(expected())),
        "reputation {:?}, expected {}",
        node_record(&b, a_id).reputation,
        expected()
    );
    assert!(b.stats().drops(DropReason::BadSignature) >= u64::from(threshold));
    let status = b.status();
    assert!(status.contains("peers_cut_off=1"), "{status}");
    let line = format!("{a_id} trust=128 reputation={}", expected());
    assert!(status.contains(&line), "{status}");

    // After the backoff the permanent connection comes back, and nobody is cut off again.
    assert!(
        wait_until(backoff + Duration::from_secs(15), || a
            .stats()
            .connections_established
            > a_connections_at_cut),
        "no connection after the backoff\n{}",
        b.status()
    );
    assert_eq!(b.stats().faults(Fault::PeerCutOff), 1, "{}", b.status());
    eprintln!(
        "forged: {}; victim: {}",
        forged.load(Ordering::Relaxed),
        b.status()
    );
}

#[test]
fn a_banned_peer_is_never_connected() {
    let (kb, kd) = (Keypair::generate(), Keypair::generate());
    let (pb, pd) = (common::free_port(), common::free_port());
    let d_id = kd.node_identity();
    // B bans D (trust 0), yet lists it as permanent: it must still never dial it.
    let b = NodeBuilder::new(kb.clone())
        .listen(pb)
        .peer(NodeAdvert::for_listen(&kd, &[pd], None))
        .permanent(d_id)
        .trust(d_id, 0)
        .start()
        .unwrap();
    let d = NodeBuilder::new(kd)
        .listen(pd)
        .peer(NodeAdvert::for_listen(&kb, &[pb], None))
        .permanent(kb.node_identity())
        .start()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || b
            .stats()
            .faults(Fault::BannedPeerRefused)
            >= 2),
        "D's dials were not refused\n{}",
        b.status()
    );
    assert_eq!(b.stats().dials, 0, "B dialled a banned peer");
    assert_eq!(b.stats().connections_established, 0);
    assert_eq!(d.stats().connections_established, 0);
    assert_eq!(node_record(&b, d_id).trust, Some(0));
    assert!(b
        .status()
        .contains(&format!("{d_id} trust=0 reputation=128")));

    // A message for it is refused at once.
    let mut client = b.client("c").unwrap();
    let id = client.send(d_id, Protocol::PING, b"?".to_vec());
    let deadline = Instant::now() + Duration::from_secs(10);
    let reason = loop {
        match client.recv(deadline.saturating_duration_since(Instant::now())) {
            Some(Input::Undeliverable(u)) if u.id == id => break u.reason,
            Some(_) => {}
            None => panic!("no answer for the message to a banned peer"),
        }
    };
    assert_eq!(reason, DropReason::PeerRefused);
}
