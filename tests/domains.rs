//! Domains on real nodes over QUIC on 127.0.0.1: a three-node domain with a pre-shared key (two
//! nodes join through the introducer and all three converge on the same membership), a node
//! with the wrong key refused with `wrong_key` and a member nowhere, and a domain-scoped topic
//! that reaches the members only (a non-member connected to the same peers gets nothing; its
//! scoped subscription is refused at home, and a subscription it sends a member is refused by
//! the member and counted).

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use netmachine::mail::domain::JoinRefusal;
use netmachine::pubsub::PubSubMessage;
use netmachine::router::topics::{TopicError, TopicEvent, TopicRequest};
use netmachine::wire::advert::DomainAuth;
use netmachine::wire::{Protocol, Signed, TopicAdvert};
use netmachine::{Input, Keypair, Node, RoutingScope};

use common::domains::*;
use common::topics::{publish, receive, subscribe, wait_subscribed};
use common::wait_until;

const PSK: &[u8] = b"the members' pre-shared key, 32+";

/// Members 0 (the introducer), 1 and 2 of a PSK domain, joined at start; `extra` more nodes
/// configured by `extra_settings`.
fn psk_domain(
    extra: usize,
    extra_settings: impl Fn(&netmachine::wire::DomainAdvert) -> Vec<netmachine::domain::DomainSettings>,
) -> (Mesh, netmachine::wire::DomainAdvert) {
    let (keys, addrs) = Mesh::plan(3 + extra);
    let domain_key = Keypair::generate();
    let advert = domain_advert(&domain_key, &[(&keys[0], addrs[0])], DomainAuth::Psk);
    let a = advert.clone();
    let mesh = Mesh::start(keys, addrs, move |i| {
        if i < 3 {
            vec![settings(&a, Some(PSK), i > 0)]
        } else {
            extra_settings(&a)
        }
    });
    (mesh, advert)
}

#[test]
fn a_three_node_psk_domain_converges_and_a_wrong_key_is_refused() {
    let (mesh, advert) = psk_domain(1, |a| {
        vec![settings(a, Some(b"not the members' key at all!"), false)]
    });
    let d = advert.id;
    let members = [mesh.id(0), mesh.id(1), mesh.id(2)];
    let three: Vec<&Node> = mesh.nodes[..3].iter().collect();
    assert!(
        wait_until(CONVERGE, || converged(&three, &d, &members)),
        "no convergence:\n{}\n{}\n{}",
        mesh.nodes[0].status(),
        mesh.nodes[1].status(),
        mesh.nodes[2].status()
    );
    // The members as each node lists them: the introducer from epoch 0, approved by itself;
    // the joiners approved by a member.
    for n in &three {
        let list = n.domain_members(d, Duration::from_secs(5)).unwrap();
        assert_eq!(
            list.iter().map(|m| m.node).collect::<Vec<_>>(),
            {
                let mut m = members.to_vec();
                m.sort();
                m
            },
            "{}",
            n.status()
        );
        let intro = list.iter().find(|m| m.node == mesh.id(0)).unwrap();
        assert!(intro.introducer && intro.epoch == 0 && intro.approver == mesh.id(0));
        for m in list.iter().filter(|m| m.node != mesh.id(0)) {
            assert!(!m.introducer && members.contains(&m.approver), "{m:?}");
        }
    }
    let status = mesh.nodes[1].status();
    assert!(
        status.contains(&format!("{d} member members=3")),
        "{status}"
    );

    // The fourth node holds the wrong key: refused with `wrong_key`, a member nowhere.
    let answer = mesh.nodes[3]
        .join_domain(d, None, Duration::from_secs(20))
        .unwrap();
    assert_eq!(answer.result, Err(JoinRefusal::WrongKey), "{answer:?}");
    assert!(answer.approver.is_some_and(|a| members.contains(&a)));
    let wrong_key: u64 = three
        .iter()
        .map(|n| n.domain_stats().unwrap().join_wrong_key.load(Relaxed))
        .sum();
    assert!(wrong_key >= 1, "refusal not counted");
    std::thread::sleep(Duration::from_millis(500));
    for n in &mesh.nodes {
        assert!(!n.domain_directory().is_member(&d, &mesh.id(3)));
    }
    assert!(!mesh.nodes[3].domain_directory().member_here(&d));
    assert!(converged(&three, &d, &members));
}

/// Waits for the answer to a topic request.
fn topic_answer(client: &mut netmachine::Client, timeout: Duration) -> Option<TopicEvent> {
    let deadline = Instant::now() + timeout;
    while let Some(input) = client.recv(deadline.saturating_duration_since(Instant::now())) {
        if let Input::Topic(e @ (TopicEvent::Created { .. } | TopicEvent::Subscribed { .. })) =
            input
        {
            return Some(e);
        }
    }
    None
}

#[test]
fn a_domain_scoped_topic_reaches_members_only() {
    // Node 3 knows nothing of the domain; it is connected to the three members.
    let (mesh, advert) = psk_domain(1, |_| Vec::new());
    let d = advert.id;
    let members = [mesh.id(0), mesh.id(1), mesh.id(2)];
    let three: Vec<&Node> = mesh.nodes[..3].iter().collect();
    assert!(
        wait_until(CONVERGE, || converged(&three, &d, &members)),
        "no convergence"
    );
    // Each member's overlay view holds the other two before the topic is created.
    assert!(
        wait_until(CONVERGE, || three.iter().all(|n| n
            .topology_probe()
            .unwrap()
            .active(&d)
            .len()
            == 2)),
        "views incomplete:\n{}\n{}\n{}",
        mesh.nodes[0].status(),
        mesh.nodes[1].status(),
        mesh.nodes[2].status()
    );

    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let mut publisher = mesh.nodes[0].client("publisher").unwrap();
    let topic_advert = TopicAdvert {
        topic,
        publishers: vec![mesh.nodes[0]
            .engine_identity(netmachine::pubsub::PUBSUB_ENGINE_NAME)
            .unwrap()],
        tags: vec![],
        version: 1,
        created: netmachine::time::wall_clock(),
        scope: Some(d),
        sig: netmachine::identity::Signature([0; 64]),
    }
    .sign(&topic_key);
    publisher.with_context(|ctx| {
        ctx.topic_request(TopicRequest::Create {
            topic,
            scope: RoutingScope::Domain(d),
            advert: Some(topic_advert),
        })
    });
    assert!(
        matches!(
            topic_answer(&mut publisher, Duration::from_secs(5)),
            Some(TopicEvent::Created { result: Ok(()), .. })
        ),
        "create"
    );

    let mut subs: Vec<netmachine::Client> = (1..3)
        .map(|i| mesh.nodes[i].client("sub").unwrap())
        .collect();
    for s in &mut subs {
        subscribe(s, topic);
    }
    for s in &mut subs {
        wait_subscribed(s, Duration::from_secs(15));
    }
    // The non-member: a domain-scoped subscription is refused at once; an open one waits for
    // an advert no member hands it.
    let mut outsider = mesh.nodes[3].client("outsider").unwrap();
    outsider.subscribe(topic, RoutingScope::Domain(d));
    match topic_answer(&mut outsider, Duration::from_secs(5)) {
        Some(TopicEvent::Subscribed {
            result: Err(TopicError::NotMember),
            ..
        }) => {}
        other => panic!("outsider's scoped subscription: {other:?}"),
    }
    let mut lurker = mesh.nodes[3].client("lurker").unwrap();
    subscribe(&mut lurker, topic);

    std::thread::sleep(Duration::from_millis(500));
    publish(&mut publisher, topic, 0..50);
    for (i, s) in subs.iter_mut().enumerate() {
        assert_eq!(
            receive(s, 50, Duration::from_secs(20)),
            (0..50).collect::<Vec<_>>(),
            "member {}",
            i + 1
        );
    }
    let got = common::drain_bodies(&mut lurker, Duration::from_secs(2));
    assert!(
        got.is_empty(),
        "the non-member received {} events",
        got.len()
    );
    let outsider_stats = mesh.nodes[3].pubsub_stats().unwrap();
    assert_eq!(outsider_stats.delivered.load(Relaxed), 0);
    // A subscription sent to a member as the non-member's PubSub would send it is refused by
    // the member, and counted.
    outsider.send(
        mesh.id(0),
        Protocol::PUBSUB,
        PubSubMessage::Subscribe {
            topic,
            publishers: Vec::new(),
        }
        .to_bytes(),
    );
    let refusals = || {
        mesh.nodes[0]
            .pubsub_stats()
            .unwrap()
            .not_member_refusals
            .load(Relaxed)
    };
    assert!(
        wait_until(Duration::from_secs(10), || refusals() >= 1),
        "no refusal counted:\n{}",
        mesh.nodes[0].status()
    );
    assert!(common::drain_bodies(&mut lurker, Duration::from_millis(500)).is_empty());
}
