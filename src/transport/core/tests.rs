//! Tests of the core without sockets: nodes of [`super::fake::Net`] exchange bytes over fake
//! connections, so each test controls exactly what is written, lost, closed and when.

use std::time::Duration;

use super::fake::{message, Net, TestNode};
use super::{PARK_RETRY, RETIRE_GRACE};
use crate::identity::{EngineIdentity, NodeIdentity};
use crate::runtime::stats::{DropReason, Fault};
use crate::transport::control::close_code;
use crate::transport::frame::{self, kind};
use crate::transport::{TransportConfig, TransportRequest};

/// A body of `len` bytes (at least 9) carrying `tag` and `seq`.
fn body(tag: u8, seq: u64, len: usize) -> Vec<u8> {
    let mut v = vec![tag; len.max(9)];
    v[..8].copy_from_slice(&seq.to_le_bytes());
    v
}

/// The (tag, seq, len) of every message `node` delivered from `from`, in order.
fn received(node: &TestNode, from: NodeIdentity) -> Vec<(u8, u64, usize)> {
    node.delivered
        .iter()
        .filter(|d| d.peer == from)
        .map(|d| {
            let seq = u64::from_le_bytes(d.wire[..8].try_into().expect("8 bytes"));
            (d.wire[8], seq, d.wire.len())
        })
        .collect()
}

fn connect(net: &mut Net, from: usize, to: usize) {
    let node = net.nodes[to].id;
    let now = net.now;
    net.nodes[from].core.handle_request(
        now,
        EngineIdentity([9; 32]),
        TransportRequest::Connect { node },
    );
    net.settle();
    assert_eq!(net.live(from).len(), 1, "connected");
}

#[test]
fn simultaneous_dials_keep_the_smaller_identitys_connection_and_lose_nothing() {
    // Keys are random: run until both orders of the two identities have been seen.
    let mut seen = [false; 2];
    for _ in 0..64 {
        let a_smaller = simultaneous_dials();
        seen[a_smaller as usize] = true;
        if seen == [true, true] {
            return;
        }
    }
    panic!("64 key pairs, all in the same order");
}

/// Both nodes dial each other at once; returns whether the first one's identity is smaller.
fn simultaneous_dials() -> bool {
    let mut net = Net::new(2, TransportConfig::default());
    let (a, b) = (net.nodes[0].id, net.nodes[1].id);
    let now = net.now;
    for k in 0..5 {
        net.nodes[0]
            .core
            .handle_send(now, message(b, 1, k, body(1, k, 50)));
        net.nodes[1]
            .core
            .handle_send(now, message(a, 2, k, body(2, k, 50)));
    }
    net.settle();
    let now = net.now;
    for k in 5..10 {
        net.nodes[0]
            .core
            .handle_send(now, message(b, 1, k, body(1, k, 50)));
        net.nodes[1]
            .core
            .handle_send(now, message(a, 2, k, body(2, k, 50)));
    }
    net.settle();
    net.advance(RETIRE_GRACE + Duration::from_millis(100));
    net.settle();

    assert_eq!(net.links.len(), 2, "both sides dialled");
    for i in 0..2 {
        let live = net.live(i);
        assert_eq!(live.len(), 1, "node {i} keeps exactly one connection");
        let link = net.link_of(i, live[0]).expect("linked");
        let dialer = net.nodes[link.a.0].id;
        assert_eq!(
            dialer,
            a.min(b),
            "the kept connection was opened by the smaller id"
        );
        assert_eq!(
            net.nodes[i].stats.faults(Fault::Resent),
            0,
            "nothing sent twice"
        );
    }
    let duplicates: u64 = (0..2)
        .map(|i| net.nodes[i].stats.faults(Fault::DuplicateConnection))
        .sum();
    assert!(duplicates >= 1, "the duplicate was seen and resolved");
    let want = |tag| (0..10).map(|k| (tag, k, 50)).collect::<Vec<_>>();
    assert_eq!(
        received(&net.nodes[1], a),
        want(1),
        "A→B exactly once, in order"
    );
    assert_eq!(
        received(&net.nodes[0], b),
        want(2),
        "B→A exactly once, in order"
    );
    assert_eq!(
        net.nodes[0].core.peers[&b].bytes, 0,
        "A's ledger freed by acks"
    );
    assert_eq!(
        net.nodes[1].core.peers[&a].bytes, 0,
        "B's ledger freed by acks"
    );
    a < b
}

#[test]
fn a_restarted_peer_replaces_the_old_connection_and_gets_the_unconfirmed_again() {
    let config = TransportConfig::default();
    let mut net = Net::new(2, config.clone());
    let (a, b) = (net.nodes[0].id, net.nodes[1].id);
    connect(&mut net, 0, 1);
    net.nodes[1].process = false; // B receives but never finishes: nothing is acknowledged
    let now = net.now;
    for k in 0..3 {
        net.nodes[0]
            .core
            .handle_send(now, message(b, 1, k, body(1, k, 40)));
    }
    net.settle();
    assert_eq!(received(&net.nodes[1], a).len(), 3);
    let old = net.live(0);

    net.restart(1, config, 77);
    assert_ne!(
        net.nodes[1].core.instance(),
        0,
        "the new instance is drawn from the seeded rng"
    );
    connect(&mut net, 1, 0);

    let node = &net.nodes[0];
    assert_eq!(node.stats.faults(Fault::StaleConnection), 1);
    assert_eq!(node.stats.faults(Fault::Resent), 3);
    let live = net.live(0);
    assert_eq!(live.len(), 1);
    assert_ne!(live, old, "the new connection replaced the old one");
    let stale = node.conns.get(&old[0]).expect("kept by the fake");
    assert_eq!(
        stale.closed_by_us.as_ref().map(|c| c.0),
        Some(close_code::STALE)
    );
    let want: Vec<_> = (0..3).map(|k| (1, k, 40)).collect();
    assert_eq!(
        received(&net.nodes[1], a),
        want,
        "resent in order on the new one"
    );
}

#[test]
fn a_message_cut_by_a_lost_connection_is_resent_whole_and_in_order() {
    let mut net = Net::new(2, TransportConfig::default());
    let (a, b) = (net.nodes[0].id, net.nodes[1].id);
    connect(&mut net, 0, 1);
    let c = net.live(0)[0];
    let theirs = net.live(1)[0];
    net.nodes[0].conns.get_mut(&c).expect("conn").budget = Some(500);
    let now = net.now;
    net.nodes[0]
        .core
        .handle_send(now, message(b, 1, 0, body(1, 0, 1000)));
    net.nodes[0]
        .core
        .handle_send(now, message(b, 1, 1, body(1, 1, 60)));
    net.settle();
    assert!(
        received(&net.nodes[1], a).is_empty(),
        "half a frame delivers nothing"
    );
    let held = net.nodes[1].core.conns[&theirs].partial_bytes;
    assert_eq!(held, 500, "B holds the first half");

    for (i, id) in [(0, c), (1, theirs)] {
        net.nodes[i]
            .conns
            .get_mut(&id)
            .expect("conn")
            .closed_by_peer = Some("lost".into());
        net.nodes[i].core.handle_activity(id);
    }
    net.settle();
    assert!(net.live(0).is_empty());
    assert_eq!(net.nodes[0].stats.faults(Fault::Resent), 2);

    net.advance(Duration::from_millis(300)); // past the first backoff: redial
    net.settle();
    assert_eq!(net.live(0).len(), 1, "reconnected");
    assert_eq!(
        received(&net.nodes[1], a),
        vec![(1, 0, 1000), (1, 1, 60)],
        "both whole, once, in order"
    );
}

#[test]
fn an_oversized_length_prefix_stops_only_its_stream() {
    let mut small = TransportConfig::default();
    small.limits.max_frame_bytes = 1000;
    let mut net = Net::with_configs(vec![TransportConfig::default(), small]);
    let (a, b) = (net.nodes[0].id, net.nodes[1].id);
    connect(&mut net, 0, 1);
    let now = net.now;
    net.nodes[0]
        .core
        .handle_send(now, message(b, 1, 0, body(1, 0, 2000)));
    net.settle();
    net.nodes[0]
        .core
        .handle_send(now, message(b, 2, 1, body(2, 1, 100)));
    net.settle();

    let node = &net.nodes[1];
    assert_eq!(node.stats.faults(Fault::FrameTooLarge), 1);
    let theirs = net.live(1)[0];
    let stops = &node.conns[&theirs].stops_seen;
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].1, close_code::FRAME_TOO_LARGE);
    assert_eq!(
        received(node, a),
        vec![(2, 1, 100)],
        "the other pair still gets through"
    );
    assert_eq!(net.live(0).len(), 1, "the connection stays up");
}

#[test]
fn incomplete_frames_over_the_partial_limit_close_the_connection() {
    let mut small = TransportConfig::default();
    small.limits.max_frame_bytes = 1000;
    small.limits.max_partial_frame_bytes = 1000;
    let mut net = Net::with_configs(vec![TransportConfig::default(), small]);
    connect(&mut net, 0, 1);
    let theirs = net.live(1)[0];
    let mut partial = Vec::new();
    frame::encode(kind::MESSAGE, &[7; 900], &mut partial);
    partial.truncate(800);
    let q = net.nodes[1].conns.get_mut(&theirs).expect("conn");
    // Two of A's message streams (A dialled: client streams, 2 mod 4, after its control 2).
    q.inb
        .insert(6, (partial.iter().copied().collect(), false, false));
    net.nodes[1].core.handle_activity(theirs);
    net.run_node(1);
    assert_eq!(net.live(1).len(), 1, "800 bytes are within the limit");
    let q = net.nodes[1].conns.get_mut(&theirs).expect("conn");
    q.inb
        .insert(10, (partial.iter().copied().collect(), false, false));
    net.nodes[1].core.handle_activity(theirs);
    net.run_node(1);

    let node = &net.nodes[1];
    assert_eq!(node.stats.faults(Fault::PartialFrameLimit), 1);
    let closed = node.conns[&theirs].closed_by_us.clone().expect("closed");
    assert_eq!(closed.0, close_code::PROTOCOL_VIOLATION);
    assert!(node.delivered.is_empty());
}

#[test]
fn a_queued_message_past_its_expiry_bounces_with_notify() {
    let mut net = Net::new(2, TransportConfig::default());
    let b = net.nodes[1].id;
    net.nodes[1].answer_dials = false; // the dial never completes
    let now = net.now;
    let mut m = message(b, 1, 42, body(1, 0, 30));
    m.header.expiry = Some(now.wall.after(Duration::from_millis(100)));
    net.nodes[0].core.handle_send(now, m);
    net.settle();
    net.advance(Duration::from_millis(60));
    net.settle();
    assert!(net.nodes[0].bounced.is_empty(), "not expired yet");
    net.advance(Duration::from_millis(100));
    net.settle();

    let node = &net.nodes[0];
    assert_eq!(node.bounced.len(), 1);
    let (send, reason) = &node.bounced[0];
    assert_eq!(*reason, DropReason::Expired);
    assert_eq!(send.header.id.0, 42);
    assert!(send.header.notify, "the sender hears of it");
    assert_eq!(node.stats.drops(DropReason::Expired), 1);
    assert_eq!(node.core.peers[&b].bytes, 0, "its bytes are freed");
}

#[test]
fn a_large_message_on_one_pair_does_not_starve_another_pair() {
    let mut net = Net::new(2, TransportConfig::default());
    let (a, b) = (net.nodes[0].id, net.nodes[1].id);
    connect(&mut net, 0, 1);
    let c = net.live(0)[0];
    net.nodes[0].conns.get_mut(&c).expect("conn").budget = Some(0);
    let now = net.now;
    net.nodes[0]
        .core
        .handle_send(now, message(b, 1, 0, body(1, 0, 100_000)));
    net.nodes[0]
        .core
        .handle_send(now, message(b, 2, 1, body(2, 1, 100)));
    let mut rounds = 0;
    while received(&net.nodes[1], a).len() < 2 {
        rounds += 1;
        assert!(rounds < 100, "both delivered");
        // The connection takes 10 kB per round, as a congestion window would.
        net.nodes[0].conns.get_mut(&c).expect("conn").budget = Some(10_000);
        net.nodes[0].core.handle_activity(c);
        net.settle();
    }
    assert_eq!(
        received(&net.nodes[1], a),
        vec![(2, 1, 100), (1, 0, 100_000)],
        "the small message of the second pair arrives first"
    );
}

#[test]
fn frames_the_router_has_no_room_for_are_parked_in_order_and_reading_pauses() {
    let mut net = Net::new(2, TransportConfig::default());
    let (a, b) = (net.nodes[0].id, net.nodes[1].id);
    connect(&mut net, 0, 1);
    let theirs = net.live(1)[0];
    net.nodes[1].refuse = true;
    let now = net.now;
    for k in 0..3 {
        net.nodes[0]
            .core
            .handle_send(now, message(b, 1, k, body(1, k, 30)));
    }
    net.settle();
    assert!(net.nodes[1].delivered.is_empty());
    assert_eq!(net.nodes[1].core.conns[&theirs].inbox.len(), 3, "parked");
    net.nodes[0]
        .core
        .handle_send(now, message(b, 1, 3, body(1, 3, 30)));
    net.settle();
    let unread: usize = net.nodes[1].conns[&theirs]
        .inb
        .values()
        .map(|s| s.0.len())
        .sum();
    assert!(unread > 0, "reading paused while frames are parked");
    assert_eq!(net.nodes[1].core.conns[&theirs].inbox.len(), 3);

    net.nodes[1].refuse = false;
    for _ in 0..3 {
        net.advance(PARK_RETRY);
        net.settle();
    }
    let want: Vec<_> = (0..4).map(|k| (1, k, 30)).collect();
    assert_eq!(received(&net.nodes[1], a), want, "once each, in order");
    assert_eq!(net.nodes[0].core.peers[&b].bytes, 0, "all acknowledged");
}

#[test]
fn the_instance_and_the_backoff_jitter_come_from_the_seeded_rng() {
    let schedule = |seed: u64| {
        let mut net = Net::new(2, TransportConfig::default());
        net.restart(0, TransportConfig::default(), seed);
        let b = net.nodes[1].id;
        net.nodes[1].answer_dials = false;
        let now = net.now;
        net.nodes[0]
            .core
            .handle_send(now, message(b, 1, 0, body(1, 0, 10)));
        net.settle();
        let c = net.live(0)[0];
        net.nodes[0].conns.get_mut(&c).expect("conn").closed_by_peer = Some("refused".into());
        net.nodes[0].core.handle_activity(c);
        net.settle();
        let next = net.nodes[0].core.peers[&b]
            .next_dial
            .expect("a redial is scheduled");
        (net.nodes[0].core.instance(), next - now.instant)
    };
    assert_eq!(
        schedule(5),
        schedule(5),
        "same seed, same instance and delay"
    );
    let (i5, d5) = schedule(5);
    let (i6, d6) = schedule(6);
    assert_ne!(i5, i6);
    assert_ne!(d5, d6);
}

#[test]
fn datagrams_before_the_hello_wait_and_a_datagram_of_unknown_type_is_counted() {
    let mut net = Net::new(2, TransportConfig::default());
    let a = net.nodes[0].id;
    let b = net.nodes[1].id;
    let now = net.now;
    net.nodes[0].core.handle_request(
        now,
        EngineIdentity([9; 32]),
        TransportRequest::Connect { node: b },
    );
    // A dials and sends its hello; B's end exists but has not heard the hello yet.
    net.run_node(0);
    let theirs = *net.nodes[1].conns.keys().next().expect("B's end");
    let mut early = vec![kind::MESSAGE];
    early.extend_from_slice(b"early");
    let q = net.nodes[1].conns.get_mut(&theirs).expect("conn");
    q.dgrams_in.push_back(early);
    net.run_node(1);
    let node = &net.nodes[1];
    assert!(node.delivered.is_empty(), "not read before the hello");
    assert_eq!(
        node.conns[&theirs].dgrams_in.len(),
        1,
        "left waiting in QUIC"
    );

    // The hello arrives: the waiting datagram is read and delivered, unacknowledged.
    net.settle();
    let node = &net.nodes[1];
    assert_eq!(node.delivered.len(), 1);
    assert_eq!(node.delivered[0].peer, a);
    assert_eq!(node.delivered[0].wire, b"early");
    assert!(node.delivered[0].receipt.is_none());
    assert_eq!(node.stats.faults(Fault::ProtocolViolation), 0);

    // A datagram of another type, and an empty one, are dropped and counted; the connection
    // stays up.
    for bad in [vec![kind::ACK, 1, 2], Vec::new()] {
        let q = net.nodes[1].conns.get_mut(&theirs).expect("conn");
        q.dgrams_in.push_back(bad);
        net.nodes[1].core.handle_activity(theirs);
        net.run_node(1);
    }
    let node = &net.nodes[1];
    assert_eq!(node.stats.faults(Fault::ProtocolViolation), 2);
    assert_eq!(node.delivered.len(), 1);
    assert_eq!(net.live(1), vec![theirs]);
}
