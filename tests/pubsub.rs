//! P2P pub/sub over real QUIC on 127.0.0.1: direct subscribers, chains, a tree, redundant
//! paths, forged and unauthorized events, recovery of a lost link, pruning, and subscribing
//! before the advert exists.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netmachine::pubsub::{Event, PubSubMessage, PUBSUB_ENGINE_NAME};
use netmachine::router::topics::TopicEvent;
use netmachine::time::wall_clock;
use netmachine::transport::{TransportConfig, TransportRequest};
use netmachine::wire::{NodeAdvert, Protocol, Signed, TopicAdvert};
use netmachine::{Client, Input, Keypair, Node, NodeBuilder, Origin, RoutingScope, TopicIdentity};

use common::wait_until;

const APP: Protocol = Protocol(Protocol::APP_BASE + 21);

/// Nodes connected along `edges` (the lower index dials and keeps the connection up).
struct Cluster {
    keys: Vec<Keypair>,
    nodes: Vec<Node>,
}

fn builder(
    keys: &[Keypair],
    addrs: &[SocketAddr],
    edges: &[(usize, usize)],
    i: usize,
) -> NodeBuilder {
    let mut b = NodeBuilder::new(keys[i].clone()).listen(addrs[i]);
    for &(x, y) in edges {
        let other = if x == i {
            y
        } else if y == i {
            x
        } else {
            continue;
        };
        b = b.peer(NodeAdvert::for_listen(&keys[other], &[addrs[other]], None));
        if i < other {
            b = b.permanent(keys[other].node_identity());
        }
    }
    b
}

fn cluster(n: usize, edges: &[(usize, usize)]) -> Cluster {
    let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate()).collect();
    let addrs: Vec<SocketAddr> = (0..n).map(|_| common::free_port()).collect();
    let nodes = (0..n)
        .map(|i| builder(&keys, &addrs, edges, i).start().unwrap())
        .collect();
    Cluster { keys, nodes }
}

/// The signed advert of a topic published by `publisher`'s node.
fn advert(topic_key: &Keypair, publisher: &Node) -> TopicAdvert {
    TopicAdvert {
        topic: topic_key.topic_identity(),
        publishers: vec![publisher.engine_identity(PUBSUB_ENGINE_NAME).unwrap()],
        tags: vec!["test".into()],
        version: 1,
        created: wall_clock(),
        sig: netmachine::identity::Signature([0; 64]),
    }
    .sign(topic_key)
}

fn create(publisher: &mut Client, advert: TopicAdvert) {
    let topic = advert.topic;
    publisher.with_context(|ctx| {
        ctx.topic_request(netmachine::router::topics::TopicRequest::Create {
            topic,
            scope: RoutingScope::Any,
            advert: Some(advert),
        })
    });
    match publisher.recv(Duration::from_secs(5)) {
        Some(Input::Topic(TopicEvent::Created { result: Ok(()), .. })) => {}
        other => panic!("create: {other:?}"),
    }
}

fn subscribe(client: &mut Client, topic: TopicIdentity) {
    client.subscribe(topic, RoutingScope::Any);
}

fn wait_subscribed(client: &mut Client, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while let Some(input) = client.recv(deadline.saturating_duration_since(Instant::now())) {
        match input {
            Input::Topic(TopicEvent::Subscribed { result: Ok(()), .. }) => return,
            Input::Topic(TopicEvent::Subscribed { result: Err(e), .. }) => {
                panic!("subscribe: {e:?}")
            }
            _ => {}
        }
    }
    panic!("not subscribed within {timeout:?}");
}

/// Reads `n` event bodies (as u64) from a subscriber, checking they came through PubSub.
fn receive(client: &mut Client, n: usize, timeout: Duration) -> Vec<u64> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n {
        let Some(input) = client.recv(deadline.saturating_duration_since(Instant::now())) else {
            break;
        };
        if let Input::Message(m) = input {
            assert!(
                matches!(m.origin(), Origin::Topic { .. }),
                "{:?}",
                m.origin()
            );
            got.push(u64::from_le_bytes(m.body()[..8].try_into().unwrap()));
        }
    }
    // That nothing more arrives afterwards (no duplicate) is not waited for here: the
    // simulator checks it after every event of its runs (tests/sim.rs).
    got
}

fn publish(client: &mut Client, topic: TopicIdentity, range: std::ops::Range<u64>) {
    for i in range {
        client.publish(topic, APP, i.to_le_bytes().to_vec());
    }
}

fn wait_children(publisher: &mut Client, k: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while let Some(input) = publisher.recv(deadline.saturating_duration_since(Instant::now())) {
        if let Input::Topic(TopicEvent::Progress { peers, .. }) = input {
            if peers.len() >= k {
                return;
            }
        }
    }
    panic!("fewer than {k} subscribing peers within {timeout:?}");
}

#[test]
fn one_publisher_three_direct_subscribers() {
    let c = cluster(4, &[(0, 1), (0, 2), (0, 3)]);
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let mut publisher = c.nodes[0].client("publisher").unwrap();
    create(&mut publisher, advert(&topic_key, &c.nodes[0]));
    let mut subs: Vec<Client> = (1..4).map(|i| c.nodes[i].client("sub").unwrap()).collect();
    for s in &mut subs {
        subscribe(s, topic);
    }
    for s in &mut subs {
        wait_subscribed(s, Duration::from_secs(10));
    }
    wait_children(&mut publisher, 3, Duration::from_secs(10));
    publish(&mut publisher, topic, 0..200);
    for (i, s) in subs.iter_mut().enumerate() {
        let got = receive(s, 200, Duration::from_secs(20));
        assert_eq!(got, (0..200).collect::<Vec<_>>(), "subscriber {}", i + 1);
    }
}

#[test]
fn a_chain_of_four_and_unsubscribe_prunes_upstream() {
    let c = cluster(4, &[(0, 1), (1, 2), (2, 3)]);
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let mut publisher = c.nodes[0].client("publisher").unwrap();
    create(&mut publisher, advert(&topic_key, &c.nodes[0]));
    let mut sub = c.nodes[3].client("sub").unwrap();
    subscribe(&mut sub, topic);
    wait_subscribed(&mut sub, Duration::from_secs(15));
    publish(&mut publisher, topic, 0..100);
    assert_eq!(
        receive(&mut sub, 100, Duration::from_secs(20)),
        (0..100).collect::<Vec<_>>()
    );
    // The brokers forwarded without local subscribers.
    for i in 1..3 {
        let p = c.nodes[i].pubsub_stats().unwrap();
        assert!(p.forwarded.load(std::sync::atomic::Ordering::Relaxed) >= 100);
    }
    // Unsubscribe: the chain prunes back to the publisher.
    sub.with_context(|ctx| ctx.unsubscribe(topic, RoutingScope::Any));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pruned = false;
    while let Some(input) = publisher.recv(deadline.saturating_duration_since(Instant::now())) {
        if let Input::Topic(TopicEvent::Progress { peers, .. }) = input {
            if peers.is_empty() {
                pruned = true;
                break;
            }
        }
    }
    assert!(pruned, "the publisher still has children");
}

#[test]
fn a_ten_node_tree() {
    // 0 → 1, 2, 3; 1 → 4, 5; 2 → 6, 7; 3 → 8, 9.
    let edges = [
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 4),
        (1, 5),
        (2, 6),
        (2, 7),
        (3, 8),
        (3, 9),
    ];
    let c = cluster(10, &edges);
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let mut publisher = c.nodes[0].client("publisher").unwrap();
    create(&mut publisher, advert(&topic_key, &c.nodes[0]));
    let mut subs: Vec<Client> = (1..10).map(|i| c.nodes[i].client("sub").unwrap()).collect();
    for s in &mut subs {
        subscribe(s, topic);
    }
    for s in &mut subs {
        wait_subscribed(s, Duration::from_secs(20));
    }
    wait_children(&mut publisher, 3, Duration::from_secs(10));
    publish(&mut publisher, topic, 0..100);
    for (i, s) in subs.iter_mut().enumerate() {
        assert_eq!(
            receive(s, 100, Duration::from_secs(30)),
            (0..100).collect::<Vec<_>>(),
            "node {}",
            i + 1
        );
    }
}

#[test]
fn redundant_paths_deliver_exactly_once() {
    // A diamond: 0 → 1 → 3 and 0 → 2 → 3.
    let c = cluster(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]);
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let mut publisher = c.nodes[0].client("publisher").unwrap();
    create(&mut publisher, advert(&topic_key, &c.nodes[0]));
    let mut sub = c.nodes[3].client("sub").unwrap();
    subscribe(&mut sub, topic);
    wait_subscribed(&mut sub, Duration::from_secs(15));
    // Give the second path time to be acknowledged too.
    std::thread::sleep(Duration::from_millis(500));
    publish(&mut publisher, topic, 0..200);
    assert_eq!(
        receive(&mut sub, 200, Duration::from_secs(20)),
        (0..200).collect::<Vec<_>>()
    );
    // The second path's copies may still be on their way when the last event arrives by the
    // first: wait (bounded) until some have been dropped as duplicates.
    let stats = c.nodes[3].pubsub_stats().unwrap();
    let dup = || stats.duplicate.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        wait_until(Duration::from_secs(10), || dup() > 0),
        "both paths carried events (duplicates dropped: {})",
        dup()
    );
}

#[test]
fn forged_and_unauthorized_events_are_dropped_and_not_forwarded() {
    // 0 (publisher) → 1 → 2.
    let c = cluster(3, &[(0, 1), (1, 2)]);
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let mut publisher = c.nodes[0].client("publisher").unwrap();
    create(&mut publisher, advert(&topic_key, &c.nodes[0]));
    let mut sub = c.nodes[2].client("sub").unwrap();
    subscribe(&mut sub, topic);
    wait_subscribed(&mut sub, Duration::from_secs(15));
    publish(&mut publisher, topic, 0..5);
    assert_eq!(
        receive(&mut sub, 5, Duration::from_secs(10)),
        (0..5).collect::<Vec<_>>()
    );

    // An attacker engine on node 0 sends events straight to node 1's PubSub.
    let mut attacker = c.nodes[0].client("attacker").unwrap();
    let rogue = Keypair::generate().derive_engine("pubsub");
    let real = c.keys[0].derive_engine(PUBSUB_ENGINE_NAME);
    let body = |i: u64| {
        let mut m = common::unsigned(
            &c.keys[0].derive_engine("publisher"),
            &c.keys[0],
            netmachine::Destination::Topic(topic),
            i,
            &i.to_le_bytes(),
        );
        m.dst = netmachine::Destination::Topic(topic);
        let mut out = Vec::new();
        m.encode_signed_fields(&mut out);
        out
    };
    for i in 0..10u64 {
        // Unauthorized publisher, correctly signed by itself.
        let ev = Event::new_signed(&rogue, topic, 100 + i, vec![], body(1000 + i));
        attacker.send(
            c.nodes[1].identity(),
            Protocol::PUBSUB,
            PubSubMessage::Event(ev.into_inner()).to_bytes(),
        );
        // Claims the real publisher, but the signature is the rogue's.
        let mut forged =
            Event::new_signed(&real, topic, 6 + i, vec![], body(2000 + i)).into_inner();
        forged.sig = Event::new_signed(&rogue, topic, 6 + i, vec![], body(2000 + i)).sig;
        attacker.send(
            c.nodes[1].identity(),
            Protocol::PUBSUB,
            PubSubMessage::Event(forged).to_bytes(),
        );
    }
    let s1 = c.nodes[1].pubsub_stats().unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        s1.unauthorized.load(std::sync::atomic::Ordering::Relaxed) == 10
            && s1.bad_signature.load(std::sync::atomic::Ordering::Relaxed) == 10
    }));
    // Repeated bad messages got the sending node disconnected.
    assert!(
        s1.peers_disconnected
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    // Nothing reached node 2 (not forwarded) and nothing was delivered.
    let s2 = c.nodes[2].pubsub_stats().unwrap();
    assert_eq!(
        s2.unauthorized.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(
        s2.bad_signature.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // The subscriber on node 2 got the five real events and nothing else (the simulator's
    // attacker run checks this after every event: tests/sim.rs).
    assert_eq!(s2.delivered.load(std::sync::atomic::Ordering::Relaxed), 5);
    // Honest events still flow (the link comes back).
    publish(&mut publisher, topic, 5..10);
    assert_eq!(
        receive(&mut sub, 5, Duration::from_secs(20)),
        (5..10).collect::<Vec<_>>()
    );
}

#[test]
fn a_lost_link_is_recovered_by_event_requests() {
    // 0 (publisher) → 1 → 2; node 2 redials slowly, so events published while its link is down
    // never reach it until it asks.
    let keys: Vec<Keypair> = (0..3).map(|_| Keypair::generate()).collect();
    let addrs: Vec<SocketAddr> = (0..3).map(|_| common::free_port()).collect();
    let n0 = builder(&keys, &addrs, &[(0, 1)], 0).start().unwrap();
    // Node 1 knows node 2 but never dials it.
    let n1 = builder(&keys, &addrs, &[(0, 1)], 1)
        .peer(NodeAdvert::for_listen(&keys[2], &[addrs[2]], None))
        .start()
        .unwrap();
    // Node 2 dials node 1 itself (permanent) with a slow redial.
    let slow = TransportConfig {
        listen: vec![addrs[2]],
        backoff_initial: Duration::from_secs(2),
        backoff_max: Duration::from_secs(2),
        ..TransportConfig::default()
    };
    let n2 = NodeBuilder::new(keys[2].clone())
        .transport(slow)
        .peer(NodeAdvert::for_listen(&keys[1], &[addrs[1]], None))
        .permanent(keys[1].node_identity())
        .start()
        .unwrap();
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let mut publisher = n0.client("publisher").unwrap();
    create(&mut publisher, advert(&topic_key, &n0));
    let mut sub = n2.client("sub").unwrap();
    subscribe(&mut sub, topic);
    wait_subscribed(&mut sub, Duration::from_secs(15));
    publish(&mut publisher, topic, 0..10);
    assert_eq!(
        receive(&mut sub, 10, Duration::from_secs(10)),
        (0..10).collect::<Vec<_>>()
    );
    // Let the acknowledgements of those ten reach the parent first (as the 200 ms after each
    // `receive` used to), so that what goes missing while the link is cut is recovered by
    // request rather than pushed again.
    std::thread::sleep(Duration::from_millis(200));
    // Cut the link 1 — 2 and publish while it is down.
    sub.with_context(|ctx| {
        ctx.transport_request(TransportRequest::Disconnect {
            node: keys[1].node_identity(),
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    publish(&mut publisher, topic, 10..20);
    std::thread::sleep(Duration::from_millis(300));
    let got = receive(&mut sub, 10, Duration::from_secs(20));
    assert_eq!(
        got,
        (10..20).collect::<Vec<_>>(),
        "in order, once\n{}\n{}\n{}",
        n0.status(),
        n1.status(),
        n2.status()
    );
    let s2 = n2.pubsub_stats().unwrap();
    assert!(
        s2.event_requests.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "recovered by request: {:?}",
        s2.nonzero()
    );
    drop(n1);
}

#[test]
fn subscribing_before_the_advert_exists() {
    let c = cluster(3, &[(0, 1), (1, 2)]);
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let mut sub = c.nodes[2].client("sub").unwrap();
    subscribe(&mut sub, topic);
    std::thread::sleep(Duration::from_millis(500));
    let mut publisher = c.nodes[0].client("publisher").unwrap();
    create(&mut publisher, advert(&topic_key, &c.nodes[0]));
    wait_subscribed(&mut sub, Duration::from_secs(15));
    publish(&mut publisher, topic, 0..20);
    assert_eq!(
        receive(&mut sub, 20, Duration::from_secs(10)),
        (0..20).collect::<Vec<_>>()
    );
}
