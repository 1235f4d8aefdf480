//! The Router's domain scope: `Domain(d)` messages leave and arrive only between members of
//! `d` (as the node's `DomainDirectory` has them), local delivery is unaffected, and topic
//! requests scoped to a domain need this node to be a member.

use super::*;
use crate::identity::DomainIdentity;
use crate::mail::domain::DomainDirectory;
use crate::mail::topic::TopicError;
use crate::wire::{Signed, TopicAdvert};

const D: DomainIdentity = DomainIdentity([0xd0; 32]);

/// A directory where this node (`f.node`, if `here`) and `members` are the members of `D`.
fn directory(f: &Fixture, members: &[NodeIdentity], here: bool) -> DomainDirectory {
    let dir = DomainDirectory::new();
    let mut set: BTreeSet<NodeIdentity> = members.iter().copied().collect();
    if here {
        set.insert(f.node.node_identity());
    }
    dir.publish(D, set, here);
    dir
}

/// Tells the Router that `engine` runs on `node`.
fn engine_on(f: &mut Fixture, engine: EngineIdentity, node: NodeIdentity) {
    f.router.handle_identity(
        f.now,
        IdentityEvent::Updated {
            id: AnyIdentity::Engine(engine),
            record: IdentityRecord::Engine(EngineRecord {
                id: engine,
                node,
                advert: None,
            }),
        },
    );
}

/// The nodes the outputs send to, and the drop reasons reported to senders.
fn sent_and_bounced(outs: Vec<RouterOutput>) -> (Vec<NodeIdentity>, Vec<DropReason>) {
    let mut sent = Vec::new();
    let mut bounced = Vec::new();
    for o in outs {
        match o {
            RouterOutput::Transport(s) => sent.push(s.node),
            RouterOutput::Deliver { input, .. } => bounced.extend(undeliverable(&input)),
            _ => {}
        }
    }
    (sent, bounced)
}

#[test]
fn domain_scoped_messages_leave_only_between_members() {
    let mut f = Fixture::new();
    let (a, _) = f.engine("a", &[]);
    f.drain();
    let member = key(2).node_identity();
    let outsider = key(3).node_identity();
    let scoped = |f: &Fixture, dst| f.message(a, dst, RoutingScope::Domain(D));

    // No directory yet: no domain is known, so nothing scoped to one leaves.
    f.send_signed("a", scoped(&f, Destination::Node(member)));
    assert_eq!(
        sent_and_bounced(f.drain()),
        (vec![], vec![DropReason::NotMember])
    );

    f.router.set_domains(directory(&f, &[member], true));
    f.send_signed("a", scoped(&f, Destination::Node(member)));
    assert_eq!(sent_and_bounced(f.drain()), (vec![member], vec![]));
    f.send_signed("a", scoped(&f, Destination::Node(outsider)));
    assert_eq!(
        sent_and_bounced(f.drain()),
        (vec![], vec![DropReason::NotMember])
    );
    // The same message with scope Any goes anywhere.
    f.send_signed(
        "a",
        f.message(a, Destination::Node(outsider), RoutingScope::Any),
    );
    assert_eq!(sent_and_bounced(f.drain()), (vec![outsider], vec![]));

    // To an engine: checked against the node it runs on, known already or looked up.
    let on_member = key(2).derive_engine("x").engine_identity();
    let on_outsider = key(3).derive_engine("x").engine_identity();
    engine_on(&mut f, on_member, member);
    f.drain();
    f.send_signed("a", scoped(&f, Destination::Engine(on_member)));
    assert_eq!(sent_and_bounced(f.drain()), (vec![member], vec![]));
    f.send_signed("a", scoped(&f, Destination::Engine(on_outsider)));
    assert!(matches!(
        f.drain().as_slice(),
        [RouterOutput::Identity(IdentityRequest::Lookup(_))]
    ));
    f.router.handle_identity(
        f.now,
        IdentityEvent::Found {
            id: AnyIdentity::Engine(on_outsider),
            record: Some(IdentityRecord::Engine(EngineRecord {
                id: on_outsider,
                node: outsider,
                advert: None,
            })),
        },
    );
    assert_eq!(
        sent_and_bounced(f.drain()),
        (vec![], vec![DropReason::NotMember])
    );

    // This node left the domain: nothing scoped to it leaves, even for a member.
    f.router.set_domains(directory(&f, &[member], false));
    f.send_signed("a", scoped(&f, Destination::Node(member)));
    assert_eq!(
        sent_and_bounced(f.drain()),
        (vec![], vec![DropReason::NotMember])
    );
    assert_eq!(f.stats.drops(DropReason::NotMember), 4);
}

#[test]
fn local_delivery_of_a_domain_scoped_message_is_unaffected() {
    let mut f = Fixture::new();
    let (a, _) = f.engine("a", &[]);
    let (b, slot_b) = f.engine("b", &[APP]);
    f.drain();
    // Not a member of anything: messages between local engines are delivered all the same.
    f.send_local(f.message(a, Destination::Engine(b), RoutingScope::Domain(D)));
    let node = f.node.node_identity();
    f.send_local(f.message(a, Destination::Node(node), RoutingScope::Domain(D)));
    let d = f.deliveries();
    assert_eq!(d.len(), 2);
    assert!(d
        .iter()
        .all(|(s, i)| *s == slot_b && matches!(i, Input::Message(_))));
    assert_eq!(f.stats.drops(DropReason::NotMember), 0);
}

#[test]
fn domain_scoped_messages_arrive_only_from_members() {
    let mut f = Fixture::new();
    let (local, slot) = f.engine("app", &[]);
    f.drain();
    let (member, outsider) = (key(4), key(5));
    f.router
        .set_domains(directory(&f, &[member.node_identity()], true));
    let arrive = |f: &mut Fixture, peer: &Keypair, seq: u64| {
        let wire = remote_wire(
            &peer.derive_engine("p"),
            peer,
            Destination::Engine(local),
            RoutingScope::Domain(D),
        );
        f.router
            .handle_remote(f.now, peer.node_identity(), wire, Some(receipt(seq)));
        f.router.flush(f.now);
        f.drain()
    };
    match arrive(&mut f, &member, 0).as_slice() {
        [RouterOutput::Deliver {
            slot: s,
            receipt: Some(r),
            ..
        }] => assert_eq!((*s, *r), (slot, receipt(0))),
        other => panic!("expected the member's message delivered, got {other:?}"),
    }
    // From a non-member: dropped, its receipt handed back, not held against the peer.
    match arrive(&mut f, &outsider, 1).as_slice() {
        [RouterOutput::Acknowledge(r)] => assert_eq!(r, &[receipt(1)]),
        other => panic!("expected only the receipt back, got {other:?}"),
    }
    assert_eq!(f.stats.drops(DropReason::NotMember), 1);
    assert_eq!(f.router.bad_messages(&outsider.node_identity()), None);

    // Once this node is no longer a member, not even a member's message is admitted.
    f.router
        .set_domains(directory(&f, &[member.node_identity()], false));
    let wire = remote_wire(
        &member.derive_engine("q"),
        &member,
        Destination::Engine(local),
        RoutingScope::Domain(D),
    );
    f.router
        .handle_remote(f.now, member.node_identity(), wire, Some(receipt(2)));
    f.router.flush(f.now);
    assert!(matches!(
        f.drain().as_slice(),
        [RouterOutput::Acknowledge(_)]
    ));
    assert_eq!(f.stats.drops(DropReason::NotMember), 2);
}

fn advert(topic_key: &Keypair, scope: Option<DomainIdentity>) -> TopicAdvert {
    TopicAdvert {
        topic: topic_key.topic_identity(),
        publishers: vec![],
        tags: vec![],
        version: 1,
        created: crate::time::Timestamp(1),
        scope,
        sig: crate::identity::Signature([0; 64]),
    }
    .sign(topic_key)
}

/// The results of the topic answers among `outs`.
fn topic_results(outs: Vec<(Slot, Input)>) -> Vec<Result<(), TopicError>> {
    outs.into_iter()
        .filter_map(|(_, i)| match i {
            Input::Topic(
                TopicEvent::Created { result, .. } | TopicEvent::Subscribed { result, .. },
            ) => Some(result),
            _ => None,
        })
        .collect()
}

#[test]
fn domain_scoped_topic_requests_need_membership_and_a_matching_advert() {
    let mut f = Fixture::new();
    let (a, _) = f.engine("a", &[]);
    let (b, slot_b) = f.engine("b", &[]);
    f.drain();
    let topic_key = key(6);
    let topic = topic_key.topic_identity();
    let create = |scope, advert| TopicRequest::Create {
        topic,
        scope,
        advert,
    };

    // Not a member: refused.
    f.router.handle_topic(
        a,
        create(RoutingScope::Domain(D), Some(advert(&topic_key, Some(D)))),
    );
    f.router.handle_topic(
        b,
        TopicRequest::Subscribe {
            topic,
            scope: RoutingScope::Domain(D),
        },
    );
    assert_eq!(
        topic_results(f.deliveries()),
        vec![Err(TopicError::NotMember), Err(TopicError::NotMember)]
    );

    f.router.set_domains(directory(&f, &[], true));
    // The advert must carry the request's domain, and only a domain request may carry one.
    f.router.handle_topic(
        a,
        create(RoutingScope::Domain(D), Some(advert(&topic_key, None))),
    );
    f.router.handle_topic(
        a,
        create(RoutingScope::Any, Some(advert(&topic_key, Some(D)))),
    );
    f.router.handle_topic(
        a,
        create(RoutingScope::Domain(D), Some(advert(&topic_key, Some(D)))),
    );
    f.router.handle_topic(
        b,
        TopicRequest::Subscribe {
            topic,
            scope: RoutingScope::Domain(D),
        },
    );
    assert_eq!(
        topic_results(f.deliveries()),
        vec![
            Err(TopicError::ScopeMismatch),
            Err(TopicError::ScopeMismatch),
            Ok(()),
            Ok(())
        ]
    );
    assert_eq!(
        f.router.topics().get(&topic).unwrap().scope,
        RoutingScope::Domain(D)
    );

    // Publishing on the domain's topic: delivered while a member, refused once not.
    f.send_local(f.message(a, Destination::Topic(topic), RoutingScope::Any));
    let d = f.deliveries();
    assert!(matches!(d.as_slice(), [(s, Input::Message(_))] if *s == slot_b));
    f.router.set_domains(directory(&f, &[], false));
    f.send_local(f.message(a, Destination::Topic(topic), RoutingScope::Any));
    assert_eq!(
        undeliverable(&f.deliveries()[0].1),
        Some(DropReason::NotMember)
    );
}

#[test]
fn a_network_subscription_takes_the_domain_scope_of_its_advert() {
    use crate::mail::pubsub::PubSubNotice;
    let mut f = Fixture::new();
    let (pubsub, _) = f.engine("pubsub", &[Protocol::PUBSUB]);
    let (b, slot_b) = f.engine("b", &[]);
    f.drain();
    let member = key(4);
    f.router
        .set_domains(directory(&f, &[member.node_identity()], true));
    let topic_key = key(6);
    let topic = topic_key.topic_identity();
    f.router.handle_topic(
        b,
        TopicRequest::Subscribe {
            topic,
            scope: RoutingScope::Domain(D),
        },
    );
    f.drain();
    f.router.handle_pubsub(
        pubsub,
        PubSubNotice::AdvertReceived {
            advert: advert(&topic_key, Some(D)),
        },
    );
    f.router.handle_pubsub(
        pubsub,
        PubSubNotice::Subscribed {
            topic,
            result: Ok(()),
        },
    );
    f.drain();
    assert_eq!(
        f.router.topics().get(&topic).unwrap().scope,
        RoutingScope::Domain(D)
    );
    // A message sent straight to the topic is taken from a member only.
    for (peer, seq) in [(&member, 0), (&key(5), 1)] {
        let wire = remote_wire(
            &peer.derive_engine("p"),
            peer,
            Destination::Topic(topic),
            RoutingScope::Any,
        );
        f.router
            .handle_remote(f.now, peer.node_identity(), wire, Some(receipt(seq)));
        f.router.flush(f.now);
    }
    let delivered: Vec<Slot> = f.deliveries().into_iter().map(|(s, _)| s).collect();
    assert_eq!(delivered, vec![slot_b]);
    assert_eq!(f.stats.drops(DropReason::NotMember), 1);
}
