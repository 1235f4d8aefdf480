//! P2P pub/sub over real QUIC on 127.0.0.1: direct subscribers, chains, a tree, redundant
//! paths, forged and unauthorized events, recovery of a lost link, pruning, subscribing
//! before the advert exists; three publishers of one topic on a tree of twenty nodes (every
//! delivery checked: once, in order, in causal order), an equivocating publisher, application
//! validation, and topic deletion withdrawing the advert.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use netmachine::mail::identity::{
    AnyIdentity, IdentityEvent, IdentityRecord, IdentityRequest, DEFAULT_REPUTATION,
};
use netmachine::pubsub::{Event, PubSubLimits, PubSubMessage, PUBSUB_ENGINE_NAME};
use netmachine::router::topics::{TopicEvent, Validation};
use netmachine::transport::{TransportConfig, TransportRequest};
use netmachine::wire::{NodeAdvert, Protocol};
use netmachine::{Client, Input, Keypair, Node, NodeBuilder, RoutingScope};

use common::topics::*;
use common::wait_until;

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

// ---------------------------------------------------------------------------------------------
// Several publishers, equivocation, validation, withdrawal.

#[test]
fn three_publishers_on_a_twenty_node_tree() {
    // A tree: node i's parent is (i - 1) / 3. Publishers on nodes 0, 8 and 19.
    let edges: Vec<(usize, usize)> = (1..20).map(|i| ((i - 1) / 3, i)).collect();
    // Every publisher's path must be in place before a subscription is reported done.
    let c = cluster_with(20, &edges, |_| PubSubLimits {
        subscribe_wait: Duration::from_secs(120),
        ..PubSubLimits::default()
    });
    let publisher_nodes = [0usize, 8, 19];
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let pubs: Vec<&Node> = publisher_nodes.iter().map(|i| &c.nodes[*i]).collect();
    let advert = advert_of(&topic_key, &pubs, 1);
    let mut publishers: Vec<Client> = publisher_nodes
        .iter()
        .map(|i| c.nodes[*i].client("publisher").unwrap())
        .collect();
    for p in &mut publishers {
        create(p, advert.clone());
        // The other publishers' events, as a local subscriber.
        p.subscribe(topic, RoutingScope::Local);
        wait_subscribed(p, Duration::from_secs(5));
    }
    let mut subs: Vec<(usize, Client)> = (0..20)
        .filter(|i| !publisher_nodes.contains(i))
        .map(|i| (i, c.nodes[i].client("sub").unwrap()))
        .collect();
    for (_, s) in &mut subs {
        subscribe(s, topic);
    }
    for (i, s) in &mut subs {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(
            s.recv(deadline.saturating_duration_since(Instant::now())),
            Some(Input::Topic(TopicEvent::Subscribed { result: Ok(()), .. }))
        ) {
            assert!(Instant::now() < deadline, "node {i} not subscribed");
        }
    }
    // Each publisher's neighbours all want its events.
    for (k, p) in publishers.iter_mut().enumerate() {
        let degree = edges
            .iter()
            .filter(|(a, b)| *a == publisher_nodes[k] || *b == publisher_nodes[k])
            .count();
        wait_children(p, degree, Duration::from_secs(30));
    }
    // Round after round, each publisher takes in what arrived, then publishes one event that
    // claims what it had received.
    const N: u64 = 30;
    let mut at_publishers: Vec<Receiver> = (0..3)
        .map(|k| Receiver {
            own: Some(k),
            ..Receiver::default()
        })
        .collect();
    for seq in 0..N {
        for (k, p) in publishers.iter_mut().enumerate() {
            while let Some(input) = p.recv(Duration::ZERO) {
                if let Input::Message(m) = input {
                    at_publishers[k].got(&format!("publisher {k}"), m.body());
                }
            }
            let body = body_of(k as u32, seq, &at_publishers[k].last);
            p.publish(topic, APP, body);
        }
    }
    for (i, s) in &mut subs {
        let mut r = Receiver::default();
        receive_checked(
            s,
            &format!("node {i}"),
            &mut r,
            3 * N as usize,
            Duration::from_secs(60),
        );
        assert_eq!(r.count, 3 * N as usize, "node {i}: {:?}", r.last);
    }
    for (k, p) in publishers.iter_mut().enumerate() {
        let r = &mut at_publishers[k];
        receive_checked(
            p,
            &format!("publisher {k}"),
            r,
            2 * N as usize,
            Duration::from_secs(60),
        );
        assert_eq!(r.count, 2 * N as usize, "publisher {k}: {:?}", r.last);
    }
    // No node delivered anything twice (each PubSub counts what it hands its Router).
    for (i, node) in c.nodes.iter().enumerate() {
        let expected = if publisher_nodes.contains(&i) {
            2 * N
        } else {
            3 * N
        };
        let delivered = node.pubsub_stats().unwrap().delivered.load(Relaxed);
        assert_eq!(delivered, expected, "node {i}");
    }
}

#[test]
fn an_equivocating_publisher_is_caught_at_the_first_hop() {
    // 0 (publisher) → 1 → 2.
    let c = cluster(3, &[(0, 1), (1, 2)]);
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let mut publisher = c.nodes[0].client("publisher").unwrap();
    create(&mut publisher, advert(&topic_key, &c.nodes[0]));
    let mut sub = c.nodes[2].client("sub").unwrap();
    subscribe(&mut sub, topic);
    wait_subscribed(&mut sub, Duration::from_secs(15));
    publish(&mut publisher, topic, 0..3);
    assert_eq!(receive(&mut sub, 3, Duration::from_secs(10)), vec![0, 1, 2]);
    // An engine on the publishing node holds its PubSub key and signs a second event 2.
    let mut attacker = c.nodes[0].client("attacker").unwrap();
    let key = c.keys[0].derive_engine(PUBSUB_ENGINE_NAME);
    let mut m = common::unsigned(
        &c.keys[0].derive_engine("publisher"),
        &c.keys[0],
        netmachine::Destination::Topic(topic),
        99,
        &1000u64.to_le_bytes(),
    );
    m.dst = netmachine::Destination::Topic(topic);
    let mut body = Vec::new();
    m.encode_signed_fields(&mut body);
    let second = Event::new_signed(&key, topic, 2, vec![], body).into_inner();
    attacker.send(
        c.nodes[1].identity(),
        Protocol::PUBSUB,
        PubSubMessage::Event(second).to_bytes(),
    );
    let s1 = c.nodes[1].pubsub_stats().unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        s1.equivocation.load(Relaxed) == 1
    }));
    // Not forwarded: node 2 never saw it; and the real stream goes on.
    publish(&mut publisher, topic, 3..5);
    assert_eq!(receive(&mut sub, 2, Duration::from_secs(10)), vec![3, 4]);
    let s2 = c.nodes[2].pubsub_stats().unwrap();
    assert_eq!(s2.equivocation.load(Relaxed), 0);
    assert_eq!(s2.delivered.load(Relaxed), 5);
}

#[test]
fn a_validator_keeps_rejected_events_from_being_forwarded_or_delivered() {
    // 0 (publisher) → 1 (validator, and a subscriber) → 2 (subscriber, gives gaps up fast).
    let c = cluster_with(3, &[(0, 1), (1, 2)], |i| PubSubLimits {
        give_up_after: if i == 2 {
            Duration::from_millis(500)
        } else {
            PubSubLimits::default().give_up_after
        },
        ..PubSubLimits::default()
    });
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let mut publisher = c.nodes[0].client("publisher").unwrap();
    create(&mut publisher, advert(&topic_key, &c.nodes[0]));
    let mut local = c.nodes[1].client("local").unwrap();
    subscribe(&mut local, topic);
    wait_subscribed(&mut local, Duration::from_secs(15));
    let mut validator = c.nodes[1].client("validator").unwrap();
    validator.with_context(|ctx| ctx.validate_topic(topic, true));
    match validator.recv(Duration::from_secs(5)) {
        Some(Input::Topic(TopicEvent::Validating { result: Ok(()), .. })) => {}
        other => panic!("validate: {other:?}"),
    }
    let mut sub = c.nodes[2].client("sub").unwrap();
    subscribe(&mut sub, topic);
    wait_subscribed(&mut sub, Duration::from_secs(15));
    // The validator answers on its own thread: events 3 and 7 are rejected.
    let validating = std::thread::spawn(move || {
        let mut answered = 0;
        while answered < 10 {
            let Some(input) = validator.recv(Duration::from_secs(20)) else {
                panic!("the validator saw {answered} events");
            };
            if let Input::Topic(TopicEvent::Validate(v)) = input {
                let (token, n) = (
                    v.token,
                    u64::from_le_bytes(v.message.body[..8].try_into().unwrap()),
                );
                let verdict = if n == 3 || n == 7 {
                    Validation::Reject
                } else {
                    Validation::Accept
                };
                validator.with_context(|ctx| ctx.report_validation(topic, token, verdict));
                answered += 1;
            }
        }
    });
    publish(&mut publisher, topic, 0..10);
    let accepted = vec![0, 1, 2, 4, 5, 6, 8, 9];
    assert_eq!(receive(&mut local, 8, Duration::from_secs(20)), accepted);
    assert_eq!(receive(&mut sub, 8, Duration::from_secs(20)), accepted);
    validating.join().unwrap();
    let s1 = c.nodes[1].pubsub_stats().unwrap();
    assert_eq!(s1.validation_accepted.load(Relaxed), 8);
    assert_eq!(s1.validation_rejected.load(Relaxed), 2);
    assert_eq!(s1.rejections(), vec![(c.nodes[0].identity(), 2)]);
    // The neighbour they came from lost two points of reputation on node 1.
    let mut asker = c.nodes[1].client("asker").unwrap();
    let node0 = c.nodes[0].identity();
    let reputation = |asker: &mut Client| {
        asker.with_context(|ctx| {
            ctx.identity_request(IdentityRequest::Lookup(AnyIdentity::Node(node0)))
        });
        loop {
            match asker.recv(Duration::from_secs(5)) {
                Some(Input::Identity(e)) => match *e {
                    IdentityEvent::Found {
                        record: Some(IdentityRecord::Node(r)),
                        ..
                    } => return r.reputation_or_default(),
                    other => panic!("lookup: {other:?}"),
                },
                Some(_) => {}
                None => panic!("the identity store did not answer"),
            }
        }
    };
    assert!(wait_until(Duration::from_secs(5), || reputation(
        &mut asker
    ) == DEFAULT_REPUTATION
        - 2));
    // Node 2 never got them: it gave the two gaps up, counted.
    let s2 = c.nodes[2].pubsub_stats().unwrap();
    assert_eq!(s2.lost.load(Relaxed), 2);
    assert_eq!(s2.delivered.load(Relaxed), 8);
}

#[test]
fn deleting_a_topic_withdraws_it_from_the_other_nodes() {
    // 0 (publisher) → 1 → 2 (subscriber).
    let c = cluster(3, &[(0, 1), (1, 2)]);
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let mut publisher = c.nodes[0].client("publisher").unwrap();
    let advert = advert(&topic_key, &c.nodes[0]);
    create(&mut publisher, advert.clone());
    let mut sub = c.nodes[2].client("sub").unwrap();
    subscribe(&mut sub, topic);
    wait_subscribed(&mut sub, Duration::from_secs(15));
    publish(&mut publisher, topic, 0..3);
    assert_eq!(receive(&mut sub, 3, Duration::from_secs(10)), vec![0, 1, 2]);
    publisher.with_context(|ctx| ctx.delete_topic(topic, RoutingScope::Any));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut withdrawn = false;
    while let Some(input) = sub.recv(deadline.saturating_duration_since(Instant::now())) {
        if let Input::Topic(TopicEvent::Withdrawn { last, .. }) = input {
            assert!(last, "no other publisher");
            withdrawn = true;
            break;
        }
    }
    assert!(withdrawn, "the subscriber was told");
    for i in 1..3 {
        let s = c.nodes[i].pubsub_stats().unwrap();
        assert!(wait_until(Duration::from_secs(5), || s
            .withdrawals
            .load(Relaxed)
            == 1));
    }
    // The same advert again is stale for the nodes that heard the withdrawal.
    create(&mut publisher, advert);
    let s1 = c.nodes[1].pubsub_stats().unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        s1.stale_advert.load(Relaxed) >= 1
    }));
    // Nothing is routed to the old subscriber any more.
    publish(&mut publisher, topic, 3..5);
    let s0 = c.nodes[0].pubsub_stats().unwrap();
    assert!(wait_until(Duration::from_secs(5), || s0
        .published
        .load(Relaxed)
        == 5));
    assert_eq!(s0.forwarded.load(Relaxed), 3);
}
