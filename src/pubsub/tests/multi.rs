//! Several publishers of one topic: a subscription per parent, causal order across publishers,
//! recovery per publisher, equivocation.

use super::*;

/// A topic published by P (the fixture's publisher, reached through `parent`) and Q (reached
/// through `other`), its advert also listing this node: the local subscription asks each
/// parent for its own publisher, and is reported once both feed this node. Returns Q's and the
/// other parent's node keys.
fn fed_by_two(f: &mut Fixture) -> (Keypair, Keypair) {
    let (q, other) = (Keypair::generate(), Keypair::generate());
    let topic = f.topic();
    let (p_id, q_id) = (
        f.publisher_engine().engine_identity(),
        q.derive_engine(PUBSUB_ENGINE_NAME).engine_identity(),
    );
    let me = f.me.clone();
    let advert = f.advert_of(&[&f.publisher.clone(), &q, &me], 1);
    f.request(PubSubRequest::Subscribe { topic });
    f.receive_from_parent(PubSubMessage::Advert {
        advert: advert.clone(),
        publisher: p_id,
        hops: 0,
    });
    f.receive(
        &other,
        PubSubMessage::Advert {
            advert,
            publisher: q_id,
            hops: 0,
        },
    );
    let seen = f.look();
    let subscribe = |ps: Vec<EngineIdentity>| PubSubMessage::Subscribe {
        topic,
        publishers: ps,
    };
    assert!(seen
        .sent
        .contains(&(f.parent.node_identity(), subscribe(vec![p_id]))));
    assert!(seen
        .sent
        .contains(&(other.node_identity(), subscribe(vec![q_id]))));
    f.receive_from_parent(PubSubMessage::SubscribeAck {
        topic,
        accepted: true,
        positions: vec![(p_id, 1)],
    });
    assert!(
        !f.look()
            .notices
            .iter()
            .any(|n| matches!(n, PubSubNotice::Subscribed { .. })),
        "not before Q feeds this node too"
    );
    f.receive(
        &other,
        PubSubMessage::SubscribeAck {
            topic,
            accepted: true,
            positions: vec![(q_id, 1)],
        },
    );
    assert!(f.look().notices.iter().any(|n| matches!(
        n,
        PubSubNotice::Subscribed { topic: t, result: Ok(()) } if *t == topic
    )));
    (q, other)
}

#[test]
fn each_parent_is_asked_for_its_publishers_and_the_subscription_waits_for_all() {
    let mut f = fixture();
    fed_by_two(&mut f);
}

#[test]
fn an_event_waits_for_the_other_publishers_events_it_depends_on() {
    let mut f = fixture();
    let (q, other) = fed_by_two(&mut f);
    let p_id = f.publisher_engine().engine_identity();
    let q_id = q.derive_engine(PUBSUB_ENGINE_NAME).engine_identity();
    let publisher = f.publisher.clone();
    // Q's first event was published after Q's node had delivered P's second.
    f.receive(
        &other,
        PubSubMessage::Event(f.event_of(&q, 1, vec![(p_id, 2)], b"")),
    );
    assert!(f.look().delivered.is_empty(), "P's events first");
    f.receive_from_parent(PubSubMessage::Event(f.event_of(&publisher, 1, vec![], b"")));
    assert_eq!(f.look().delivered, vec![(p_id, 1)]);
    f.receive_from_parent(PubSubMessage::Event(f.event_of(&publisher, 2, vec![], b"")));
    assert_eq!(f.look().delivered, vec![(p_id, 2), (q_id, 1)]);
    assert_eq!(f.stat(|s| &s.causal_waits), 1);
    // A dependency that does not come holds the event back for `give_up_after` only.
    f.receive(
        &other,
        PubSubMessage::Event(f.event_of(&q, 2, vec![(p_id, 5)], b"")),
    );
    f.tick_after(Duration::from_secs(1));
    assert!(f.look().delivered.is_empty());
    f.tick_after(PubSubLimits::default().give_up_after);
    assert_eq!(f.look().delivered, vec![(q_id, 2)]);
    assert_eq!(f.stat(|s| &s.causal_timeout), 1);
    // P's events keep flowing, in order, and are not held back by anything.
    f.receive_from_parent(PubSubMessage::Event(f.event_of(&publisher, 3, vec![], b"")));
    assert_eq!(f.look().delivered, vec![(p_id, 3)]);
}

#[test]
fn gaps_and_acknowledgements_go_to_that_publishers_parents() {
    let mut f = fixture();
    let (q, other) = fed_by_two(&mut f);
    let topic = f.topic();
    let p_id = f.publisher_engine().engine_identity();
    let q_id = q.derive_engine(PUBSUB_ENGINE_NAME).engine_identity();
    let publisher = f.publisher.clone();
    f.receive_from_parent(PubSubMessage::Event(f.event_of(&publisher, 1, vec![], b"")));
    f.receive_from_parent(PubSubMessage::Event(f.event_of(&publisher, 3, vec![], b"")));
    f.receive(&other, PubSubMessage::Event(f.event_of(&q, 1, vec![], b"")));
    f.look();
    f.tick_after(Duration::from_millis(250));
    let sent = f.look().sent;
    let req = PubSubMessage::EventReq {
        topic,
        publisher: p_id,
        from: 2,
        to: 2,
    };
    assert!(
        sent.contains(&(f.parent.node_identity(), req.clone())),
        "{sent:?}"
    );
    assert!(!sent.contains(&(other.node_identity(), req)));
    let ack = |publisher, next_seq| PubSubMessage::EventAck {
        topic,
        publisher,
        next_seq,
    };
    assert!(sent.contains(&(f.parent.node_identity(), ack(p_id, 2))));
    assert!(sent.contains(&(other.node_identity(), ack(q_id, 2))));
    assert!(!sent.contains(&(f.parent.node_identity(), ack(q_id, 2))));
    assert!(!sent.contains(&(other.node_identity(), ack(p_id, 2))));
}

#[test]
fn a_second_event_with_one_sequence_number_is_neither_delivered_nor_forwarded() {
    let mut f = fixture();
    let (_, other) = fed_by_two(&mut f);
    let topic = f.topic();
    let p_id = f.publisher_engine().engine_identity();
    let publisher = f.publisher.clone();
    let child = Keypair::generate().node_identity();
    f.engine.on_subscribe(&mut f.ctx, child, topic, vec![]);
    f.look();
    let forwarded = |seen: &Seen| {
        seen.sent
            .iter()
            .any(|(to, m)| *to == child && matches!(m, PubSubMessage::Event(_)))
    };
    f.receive_from_parent(PubSubMessage::Event(f.event_of(&publisher, 1, vec![], b"")));
    let seen = f.look();
    assert_eq!(seen.delivered, vec![(p_id, 1)]);
    assert!(forwarded(&seen));
    // P signs another event 1; it arrives through the other neighbour, then again.
    let second = f.event_of(&publisher, 1, vec![], b"other");
    for _ in 0..2 {
        f.receive(&other, PubSubMessage::Event(second.clone()));
        let seen = f.look();
        assert!(seen.delivered.is_empty());
        assert!(!forwarded(&seen));
    }
    assert_eq!(f.stat(|s| &s.equivocation), 1);
    assert_eq!(f.stat(|s| &s.duplicate), 1);
    // An event in this node's own name that it never published.
    let me = f.me.clone();
    f.receive_from_parent(PubSubMessage::Event(f.event_of(&me, 1, vec![], b"")));
    let seen = f.look();
    assert!(seen.delivered.is_empty() && !forwarded(&seen));
    assert_eq!(f.stat(|s| &s.equivocation), 2);
    // The publisher's next event is delivered and forwarded as usual.
    f.receive_from_parent(PubSubMessage::Event(f.event_of(&publisher, 2, vec![], b"")));
    let seen = f.look();
    assert_eq!(seen.delivered, vec![(p_id, 2)]);
    assert!(forwarded(&seen));
}

#[test]
fn a_publishing_node_subscribes_to_the_other_publishers_and_delivers_their_events() {
    let mut f = fixture();
    let topic = f.topic();
    let me = f.me.clone();
    let publisher = f.publisher.clone();
    let p_id = f.publisher_engine().engine_identity();
    let my_id = me.derive_engine(PUBSUB_ENGINE_NAME).engine_identity();
    let advert = f.advert_of(&[&publisher, &me], 1);
    f.connect(&f.parent.clone());
    f.request(PubSubRequest::StartAdvert {
        advert: advert.clone(),
    });
    let sent = f.look().sent;
    assert!(sent.contains(&(
        f.parent.node_identity(),
        PubSubMessage::Advert {
            advert: advert.clone(),
            publisher: my_id,
            hops: 0
        }
    )));
    f.receive_from_parent(PubSubMessage::Advert {
        advert,
        publisher: p_id,
        hops: 0,
    });
    assert!(f.look().sent.contains(&(
        f.parent.node_identity(),
        PubSubMessage::Subscribe {
            topic,
            publishers: vec![p_id]
        }
    )));
    f.receive_from_parent(PubSubMessage::SubscribeAck {
        topic,
        accepted: true,
        positions: vec![(p_id, 1)],
    });
    f.receive_from_parent(PubSubMessage::Event(f.event_of(&publisher, 1, vec![], b"")));
    assert_eq!(f.look().delivered, vec![(p_id, 1)]);
}

#[test]
fn a_dependency_whose_stream_is_moving_is_waited_for_past_the_timeout() {
    let mut f = fixture();
    let (q, other) = fed_by_two(&mut f);
    let p_id = f.publisher_engine().engine_identity();
    let q_id = q.derive_engine(PUBSUB_ENGINE_NAME).engine_identity();
    let publisher = f.publisher.clone();
    // Q's event 1 waits for P's events up to 3, which trickle in (a stream catching up).
    f.receive(
        &other,
        PubSubMessage::Event(f.event_of(&q, 1, vec![(p_id, 3)], b"")),
    );
    let step = PubSubLimits::default().give_up_after * 3 / 4;
    for seq in 1..=2 {
        f.tick_after(step);
        f.receive_from_parent(PubSubMessage::Event(f.event_of(
            &publisher,
            seq,
            vec![],
            b"",
        )));
        assert_eq!(
            f.look().delivered,
            vec![(p_id, seq)],
            "Q's event still waits"
        );
    }
    f.tick_after(step);
    assert!(f.look().delivered.is_empty());
    f.receive_from_parent(PubSubMessage::Event(f.event_of(&publisher, 3, vec![], b"")));
    assert_eq!(f.look().delivered, vec![(p_id, 3), (q_id, 1)]);
    assert_eq!(f.stat(|s| &s.causal_timeout), 0);
}
