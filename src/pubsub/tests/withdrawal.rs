//! Topic deletion: a publisher's signed withdrawal, flooded once, drops its routes; stale
//! adverts and forged withdrawals are refused.

use super::*;

#[test]
fn a_withdrawal_drops_the_topic_and_stale_adverts_are_refused() {
    let mut f = fixture();
    f.subscribed();
    let topic = f.topic();
    let p = f.publisher_engine().engine_identity();
    let other = Keypair::generate();
    f.connect(&other);
    f.receive_from_parent(PubSubMessage::Event(f.event(1)));
    f.look();
    let w = Withdrawal::new_signed(&f.publisher_engine(), topic, 1);
    f.receive_from_parent(PubSubMessage::Withdraw(w.clone()));
    let seen = f.look();
    assert!(seen.notices.iter().any(|n| matches!(
        n,
        PubSubNotice::Withdrawn { topic: t, publisher, last: true } if *t == topic && *publisher == p
    )));
    // Flooded on (not back), and the parent is left.
    assert!(seen
        .sent
        .contains(&(other.node_identity(), PubSubMessage::Withdraw(w.clone()))));
    assert!(!seen
        .sent
        .iter()
        .any(|(to, m)| *to == f.parent.node_identity() && matches!(m, PubSubMessage::Withdraw(_))));
    assert!(seen.sent.contains(&(
        f.parent.node_identity(),
        PubSubMessage::Unsubscribe { topic }
    )));
    assert_eq!(f.stat(|s| &s.withdrawals), 1);
    // Once only.
    f.receive(&other, PubSubMessage::Withdraw(w));
    assert!(f.look().sent.is_empty());
    // The publisher's events in flight are dropped.
    f.receive_from_parent(PubSubMessage::Event(f.event(2)));
    assert!(f.look().delivered.is_empty());
    assert_eq!(f.stat(|s| &s.after_withdrawal), 1);
    // Its advert of the withdrawn version is refused and counted: no subscription follows.
    f.receive_from_parent(PubSubMessage::Advert {
        advert: f.advert(),
        publisher: p,
        hops: 0,
    });
    assert!(f.look().sent.is_empty());
    assert_eq!(f.stat(|s| &s.stale_advert), 1);
    // A new version brings the topic back.
    let publisher = f.publisher.clone();
    f.receive_from_parent(PubSubMessage::Advert {
        advert: f.advert_of(&[&publisher], 2),
        publisher: p,
        hops: 0,
    });
    assert!(f.look().sent.contains(&(
        f.parent.node_identity(),
        PubSubMessage::Subscribe {
            topic,
            publishers: vec![p]
        }
    )));
}

#[test]
fn forged_and_stale_withdrawals_are_refused() {
    let mut f = fixture();
    f.subscribed();
    let topic = f.topic();
    let p = f.publisher_engine().engine_identity();
    // Claims the publisher, signed by another key.
    let mut forged = Withdrawal::new_signed(&Keypair::generate(), topic, 1);
    forged.publisher = p;
    f.receive_from_parent(PubSubMessage::Withdraw(forged));
    assert_eq!(f.stat(|s| &s.bad_advert), 1);
    // From a publisher the advert does not list.
    let stranger = Withdrawal::new_signed(&Keypair::generate(), topic, 1);
    f.receive_from_parent(PubSubMessage::Withdraw(stranger));
    assert_eq!(f.stat(|s| &s.unauthorized), 1);
    // For an older version than the advert held.
    let old = Withdrawal::new_signed(&f.publisher_engine(), topic, 0);
    f.receive_from_parent(PubSubMessage::Withdraw(old));
    assert_eq!(f.stat(|s| &s.stale_advert), 1);
    let seen = f.look();
    assert!(
        seen.notices.is_empty() && seen.sent.is_empty(),
        "{:?}",
        seen.sent
    );
    // The topic is still routed.
    f.receive_from_parent(PubSubMessage::Event(f.event(1)));
    assert_eq!(f.look().delivered, vec![(p, 1)]);
}

#[test]
fn deleting_a_published_topic_floods_a_signed_withdrawal() {
    let mut f = fixture();
    let topic = f.topic();
    let me = f.me.clone();
    let peer = Keypair::generate();
    f.connect(&peer);
    f.request(PubSubRequest::StartAdvert {
        advert: f.advert_of(&[&me], 1),
    });
    f.look();
    f.request(PubSubRequest::StopAdvert { topic });
    let seen = f.look();
    let Some((to, PubSubMessage::Withdraw(w))) = seen
        .sent
        .iter()
        .find(|(_, m)| matches!(m, PubSubMessage::Withdraw(_)))
    else {
        panic!("no withdrawal: {:?}", seen.sent);
    };
    assert_eq!(*to, peer.node_identity());
    let key = me.derive_engine(PUBSUB_ENGINE_NAME);
    assert_eq!(
        (w.topic, w.publisher, w.version),
        (topic, key.engine_identity(), 1)
    );
    assert!(w.verify(&CheckedKey::parse(key.engine_identity().as_bytes()).unwrap()));
}
