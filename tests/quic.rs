//! Nodes over real QUIC on 127.0.0.1: unicast between engines on different nodes, ping,
//! identity checks, restarts, junk and oversized frames.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use netmachine::runtime::stats::Fault;
use netmachine::transport::{TransportConfig, TransportLimits};
use netmachine::wire::{NodeAdvert, Protocol};
use netmachine::{
    Context, DropReason, Engine, EngineIdentity, Input, Keypair, Node, NodeBuilder, Origin,
};

use common::wait_until;

const APP: Protocol = Protocol(Protocol::APP_BASE + 9);

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn advert_for(key: &Keypair, addr: SocketAddr) -> NodeAdvert {
    NodeAdvert::for_listen(key, &[addr], None)
}

/// Counts what it receives per source and answers requests when asked to.
struct Sink {
    log: Arc<Mutex<HashMap<EngineIdentity, Vec<u64>>>>,
    answer: bool,
}

impl Engine for Sink {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        if let Input::Message(m) = input {
            assert!(matches!(m.origin(), Origin::Remote { .. }));
            let seq = u64::from_le_bytes(m.body()[..8].try_into().unwrap());
            self.log
                .lock()
                .entry(m.sender().verified().expect("verified"))
                .or_default()
                .push(seq);
            if self.answer {
                ctx.reply(&m, Vec::new());
            }
        }
    }
}

/// A node with the given transport, one peer, and a `Sink` (not answering) logging into `log`.
fn sink_node(
    key: &Keypair,
    transport: TransportConfig,
    peer: NodeAdvert,
    log: &Arc<Mutex<HashMap<EngineIdentity, Vec<u64>>>>,
) -> Node {
    NodeBuilder::new(key.clone())
        .transport(transport)
        .peer(peer)
        .engine(
            "sink",
            Sink {
                log: Arc::clone(log),
                answer: false,
            },
        )
        .start()
        .unwrap()
}

/// Sends `total` messages to `dst`, at most `window` unanswered.
struct Source {
    dst: EngineIdentity,
    total: u64,
    window: u64,
    sent: u64,
    answered: Arc<Mutex<u64>>,
    undeliverable: Arc<Mutex<Vec<DropReason>>>,
    size: usize,
}

impl Source {
    fn fill(&mut self, ctx: &mut Context) {
        let answered = *self.answered.lock();
        while self.sent < self.total && self.sent - answered < self.window {
            let mut body = self.sent.to_le_bytes().to_vec();
            body.resize(self.size.max(8), 0x5a);
            ctx.send(self.dst, APP, body);
            self.sent += 1;
        }
    }
}

impl Engine for Source {
    fn start(&mut self, ctx: &mut Context) {
        self.fill(ctx);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Message(m) if m.reply_to().is_some() => {
                *self.answered.lock() += 1;
                self.fill(ctx);
            }
            Input::Undeliverable(u) => self.undeliverable.lock().push(u.reason),
            _ => {}
        }
    }
}

fn start_pair(
    a_key: &Keypair,
    b_key: &Keypair,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
) -> (NodeBuilder, NodeBuilder) {
    let a = NodeBuilder::new(a_key.clone())
        .listen(a_addr)
        .peer(advert_for(b_key, b_addr));
    let b = NodeBuilder::new(b_key.clone())
        .listen(b_addr)
        .peer(advert_for(a_key, a_addr));
    (a, b)
}

#[test]
fn ping_across_two_nodes() {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let (pa, pb) = (common::free_port(), common::free_port());
    let (a, b) = start_pair(&ka, &kb, pa, pb);
    let a = a.start().unwrap();
    let b = b.start().unwrap();
    assert_eq!(b.listen_addrs(), &[pb]);
    let mut client = a.client("pinger").unwrap();
    for i in 0..20u32 {
        let id = client.send(b.identity(), Protocol::PING, i.to_le_bytes().to_vec());
        match client.recv(Duration::from_secs(10)) {
            Some(Input::Message(m)) => {
                assert_eq!(m.reply_to(), Some(id));
                assert_eq!(m.body(), i.to_le_bytes());
                assert!(
                    matches!(m.sender(), netmachine::Sender::Engine { node, .. } if node == b.identity())
                );
                assert_eq!(m.origin(), Origin::Remote { via: b.identity() });
            }
            other => panic!("ping {i}: {other:?}\nA: {}\nB: {}", a.status(), b.status()),
        }
    }
    assert_eq!(a.stats().total_drops(), 0, "{}", a.status());
    assert_eq!(b.stats().total_drops(), 0, "{}", b.status());
    drop(client);
    let report = a.shutdown();
    assert!(report.joined.contains(&"nm-transport".to_string()));
    b.shutdown();
}

fn run_unicast(total: u64, nodes: usize) {
    let keys: Vec<Keypair> = (0..nodes).map(|_| Keypair::generate()).collect();
    let addrs: Vec<SocketAddr> = (0..nodes).map(|_| common::free_port()).collect();
    let sink_ids: Vec<EngineIdentity> = keys
        .iter()
        .map(|k| k.derive_engine("sink").engine_identity())
        .collect();
    let logs: Vec<_> = (0..nodes)
        .map(|_| Arc::new(Mutex::new(HashMap::new())))
        .collect();
    let answered: Vec<_> = (0..nodes).map(|_| Arc::new(Mutex::new(0u64))).collect();
    let undeliverable = Arc::new(Mutex::new(Vec::new()));
    let per_source = total / nodes as u64;
    let mut running: Vec<Node> = Vec::new();
    for i in 0..nodes {
        let mut b = NodeBuilder::new(keys[i].clone()).listen(addrs[i]);
        for j in 0..nodes {
            if j != i {
                b = b.peer(advert_for(&keys[j], addrs[j]));
            }
        }
        let next = (i + 1) % nodes;
        b = b
            .engine_location(sink_ids[next], keys[next].node_identity())
            .engine(
                "sink",
                Sink {
                    log: Arc::clone(&logs[i]),
                    answer: true,
                },
            )
            .engine(
                "source",
                Source {
                    dst: sink_ids[next],
                    total: per_source,
                    window: 256,
                    sent: 0,
                    answered: Arc::clone(&answered[i]),
                    undeliverable: Arc::clone(&undeliverable),
                    size: 64,
                },
            );
        running.push(b.start().unwrap());
    }
    let ok = wait_until(Duration::from_secs(120), || {
        answered.iter().all(|a| *a.lock() == per_source)
    });
    let status: Vec<String> = running.iter().map(|n| n.status()).collect();
    assert!(
        ok,
        "answered {:?}\n{}",
        answered.iter().map(|a| *a.lock()).collect::<Vec<_>>(),
        status.join("\n")
    );
    assert!(undeliverable.lock().is_empty());
    for (i, log) in logs.iter().enumerate() {
        let prev = (i + nodes - 1) % nodes;
        let src = keys[prev].derive_engine("source").engine_identity();
        let log = log.lock();
        let seqs = &log[&src];
        let expected: Vec<u64> = (0..per_source).collect();
        assert_eq!(seqs.len() as u64, per_source, "node {i}: count");
        assert_eq!(seqs, &expected, "node {i}: lost, duplicated or reordered");
    }
    for n in &running {
        // A copy of a message resent after a duplicate connection closed is dropped by the
        // replay window (`duplicate`): that is not a loss; anything else would be.
        let s = n.stats();
        assert_eq!(
            s.total_drops() - s.drops(DropReason::Duplicate),
            0,
            "{}",
            n.status()
        );
    }
    for n in running {
        n.shutdown();
    }
}

#[test]
fn two_nodes_100k_unicast_none_lost_or_duplicated() {
    run_unicast(100_000, 2);
}

#[test]
fn three_nodes_in_a_ring() {
    run_unicast(30_000, 3);
}

#[test]
fn a_node_with_the_wrong_identity_is_refused() {
    let (ka, kb, impostor) = (
        Keypair::generate(),
        Keypair::generate(),
        Keypair::generate(),
    );
    let (pa, pb) = (common::free_port(), common::free_port());
    // A believes `impostor` listens at B's address; B answers with its own key.
    let a = NodeBuilder::new(ka.clone())
        .listen(pa)
        .peer(advert_for(&impostor, pb))
        .start()
        .unwrap();
    let b = NodeBuilder::new(kb).listen(pb).start().unwrap();
    let mut client = a.client("c").unwrap();
    client.send(impostor.node_identity(), Protocol::PING, b"x".to_vec());
    assert!(
        wait_until(Duration::from_secs(10), || a
            .stats()
            .faults(Fault::IdentityMismatch)
            >= 1),
        "{}",
        a.status()
    );
    // No connection, so nothing reached B and no reply can come from it.
    assert_eq!(b.stats().connections_established, 0);
    assert_eq!(
        b.stats().received_remote,
        0,
        "nothing reached the impostor's address"
    );
}

#[test]
fn junk_datagrams_disturb_nothing() {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let (pa, pb) = (common::free_port(), common::free_port());
    let (a, b) = start_pair(&ka, &kb, pa, pb);
    let a = a.start().unwrap();
    let b = b.start().unwrap();
    let junk = UdpSocket::bind(localhost()).unwrap();
    let mut x: u64 = 0x1234_5678;
    let mut client = a.client("c").unwrap();
    for round in 0..20u32 {
        for _ in 0..500 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 1 + (x % 1400) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
            let _ = junk.send_to(&bytes, pb);
        }
        let id = client.send(b.identity(), Protocol::PING, round.to_le_bytes().to_vec());
        match client.recv(Duration::from_secs(10)) {
            Some(Input::Message(m)) => assert_eq!(m.reply_to(), Some(id)),
            other => panic!("round {round}: {other:?}\n{}", b.status()),
        }
    }
    assert!(b.stats().faults(Fault::JunkPacket) > 0);
    assert_eq!(b.stats().total_drops(), 0);
}

#[test]
fn an_oversized_frame_closes_only_its_stream() {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let (pa, pb) = (common::free_port(), common::free_port());
    let small = TransportConfig {
        listen: vec![pb],
        limits: TransportLimits {
            max_frame_bytes: 64 << 10,
            ..TransportLimits::default()
        },
        ..TransportConfig::default()
    };
    let a = NodeBuilder::new(ka.clone())
        .listen(pa)
        .peer(advert_for(&kb, pb))
        .engine_location(
            kb.derive_engine("sink").engine_identity(),
            kb.node_identity(),
        )
        .start()
        .unwrap();
    let log = Arc::new(Mutex::new(HashMap::new()));
    let b = sink_node(&kb, small, advert_for(&ka, pa), &log);
    let sink = b.engine_identity("sink").unwrap();
    let mut big = a.client("big").unwrap();
    let mut small_sender = a.client("small").unwrap();
    let mut body = 7u64.to_le_bytes().to_vec();
    body.resize(200 << 10, 1);
    let id = big.send(sink, APP, body);
    match big.recv(Duration::from_secs(10)) {
        Some(Input::Undeliverable(u)) => {
            assert_eq!(u.id, id);
            assert_eq!(u.reason, DropReason::TooLarge);
        }
        other => panic!(
            "expected too_large, got {other:?}\n{}\n{}",
            a.status(),
            b.status()
        ),
    }
    assert!(b.stats().faults(Fault::FrameTooLarge) >= 1);
    // The connection still carries other streams.
    for i in 0..10u64 {
        small_sender.send(sink, APP, i.to_le_bytes().to_vec());
    }
    let from = a.engine_identity("small").unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        log.lock().get(&from).map(|v| v.len()) == Some(10)
    }));
    assert_eq!(
        a.stats().connections_established,
        1,
        "the connection was not replaced"
    );
}

/// Records the sequence numbers (first 8 bytes of the body) of what it receives, in order.
struct Arrivals(Arc<Mutex<Vec<u64>>>);

impl Engine for Arrivals {
    fn handle(&mut self, _ctx: &mut Context, input: Input) {
        if let Input::Message(m) = input {
            let seq = u64::from_le_bytes(m.body()[..8].try_into().unwrap());
            self.0.lock().push(seq);
        }
    }
}

#[test]
fn a_large_message_does_not_hold_up_other_engine_pairs() {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let (pa, pb) = (common::free_port(), common::free_port());
    let sink = kb.derive_engine("sink").engine_identity();
    let a = NodeBuilder::new(ka.clone())
        .listen(pa)
        .peer(advert_for(&kb, pb))
        .engine_location(sink, kb.node_identity())
        .start()
        .unwrap();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let b = NodeBuilder::new(kb.clone())
        .listen(pb)
        .peer(advert_for(&ka, pa))
        .engine("sink", Arrivals(Arc::clone(&arrivals)))
        .start()
        .unwrap();
    let mut big = a.client("big").unwrap();
    let mut small = a.client("small").unwrap();
    // The big sender's stream is opened first, so it has the lower stream id.
    big.send(sink, APP, 0u64.to_le_bytes().to_vec());
    assert!(wait_until(Duration::from_secs(10), || arrivals
        .lock()
        .len()
        == 1));
    let mut body = 1u64.to_le_bytes().to_vec();
    body.resize(3 << 20, 1);
    big.send(sink, APP, body);
    small.send(sink, APP, 2u64.to_le_bytes().to_vec());
    assert!(
        wait_until(Duration::from_secs(20), || arrivals.lock().len() == 3),
        "{}\n{}",
        a.status(),
        b.status()
    );
    // The small message went out beside the 3 MiB one, not after it.
    assert_eq!(*arrivals.lock(), [0, 2, 1]);
    a.shutdown();
    b.shutdown();
}

/// Sends four 900 KiB messages at once, from four engines (four streams that QUIC interleaves),
/// to a node accepting `partial_limit` bytes of incomplete frames per connection. Returns the
/// receiving node's `partial_frame_limit` count and how many messages arrived.
fn four_large_messages_at_once(partial_limit: usize) -> (u64, usize) {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let (pa, pb) = (common::free_port(), common::free_port());
    let sink = kb.derive_engine("sink").engine_identity();
    let a = NodeBuilder::new(ka.clone())
        .listen(pa)
        .peer(advert_for(&kb, pb))
        .engine_location(sink, kb.node_identity())
        .start()
        .unwrap();
    // Sent while B is not running yet: the four wait in A's queue for the dial to succeed, then
    // go on four streams at once, which QUIC interleaves packet by packet.
    let mut senders: Vec<_> = (0..4)
        .map(|i| a.client(&format!("big{i}")).unwrap())
        .collect();
    for (i, s) in senders.iter_mut().enumerate() {
        let mut body = (i as u64).to_le_bytes().to_vec();
        body.resize(900 << 10, i as u8);
        s.send(sink, APP, body);
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(a.stats().connections_established, 0);
    let log = Arc::new(Mutex::new(HashMap::new()));
    let limited = TransportConfig {
        listen: vec![pb],
        limits: TransportLimits {
            max_frame_bytes: 1 << 20,
            max_partial_frame_bytes: partial_limit,
            ..TransportLimits::default()
        },
        ..TransportConfig::default()
    };
    let b = sink_node(&kb, limited, advert_for(&ka, pa), &log);
    let arrived = |log: &HashMap<EngineIdentity, Vec<u64>>| log.values().map(Vec::len).sum();
    let done = wait_until(Duration::from_secs(15), || {
        arrived(&log.lock()) == 4 || b.stats().faults(Fault::PartialFrameLimit) > 0
    });
    assert!(
        done,
        "neither delivered nor refused\n{}\n{}",
        a.status(),
        b.status()
    );
    let result = (
        b.stats().faults(Fault::PartialFrameLimit),
        arrived(&log.lock()),
    );
    a.shutdown();
    b.shutdown();
    result
}

#[test]
fn incomplete_frames_over_the_connection_limit_close_the_connection() {
    // 3.6 MiB of frames in progress at once: over a 1 MiB limit, the connection is closed...
    let (refused, _) = four_large_messages_at_once(1 << 20);
    assert!(refused >= 1);
    // ...and within a 4 MiB one, everything arrives.
    let (refused, arrived) = four_large_messages_at_once(4 << 20);
    assert_eq!((refused, arrived), (0, 4));
}

#[test]
fn a_restarted_peer_gets_what_was_sent_while_it_was_down() {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let (pa, pb) = (common::free_port(), common::free_port());
    let a = NodeBuilder::new(ka.clone())
        .listen(pa)
        .peer(advert_for(&kb, pb))
        .permanent(kb.node_identity())
        .engine_location(
            kb.derive_engine("sink").engine_identity(),
            kb.node_identity(),
        )
        .start()
        .unwrap();
    let start_b = |log: &Arc<Mutex<HashMap<EngineIdentity, Vec<u64>>>>| {
        NodeBuilder::new(kb.clone())
            .listen(pb)
            .peer(advert_for(&ka, pa))
            .permanent(ka.node_identity())
            .engine(
                "sink",
                Sink {
                    log: Arc::clone(log),
                    answer: false,
                },
            )
            .start()
            .unwrap()
    };
    let log = Arc::new(Mutex::new(HashMap::new()));
    let b = start_b(&log);
    let sink = b.engine_identity("sink").unwrap();
    let mut sender = a.client("sender").unwrap();
    let me = sender.identity();
    for i in 0..100u64 {
        sender.send(sink, APP, i.to_le_bytes().to_vec());
    }
    assert!(wait_until(Duration::from_secs(10), || {
        log.lock().get(&me).map(|v| v.len()) == Some(100)
    }));
    b.shutdown();
    // Sent while B is down.
    for i in 100..200u64 {
        sender.send(sink, APP, i.to_le_bytes().to_vec());
    }
    std::thread::sleep(Duration::from_millis(500));
    let log2 = Arc::new(Mutex::new(HashMap::new()));
    let b = start_b(&log2);
    let ok = wait_until(Duration::from_secs(30), || {
        log2.lock().get(&me).map(|v| v.len()) == Some(100)
    });
    assert!(
        ok,
        "after restart got {:?}\n{}\n{}",
        log2.lock().get(&me).map(|v| v.len()),
        a.status(),
        b.status()
    );
    let got = log2.lock()[&me].clone();
    assert_eq!(got, (100..200).collect::<Vec<u64>>());
}
