//! The `TopicParents` board follows the routes: a parent appears when a route goes through it,
//! a nearer path replaces it, and a withdrawal (the publisher gone) clears the topic.

use super::*;
use crate::mail::pubsub::TopicParents;

/// The fixture's engine, made again with `board`.
fn with_board(f: &Fixture, board: &TopicParents) -> PubSub {
    PubSub::new(
        f.me.derive_engine(PUBSUB_ENGINE_NAME),
        PubSubLimits::default(),
        Arc::new(PubSubStats::default()),
    )
    .with_topic_parents(board.clone())
}

#[test]
fn the_board_shows_the_route_parents_and_loses_them_with_the_route() {
    let mut f = fixture();
    let board = TopicParents::new();
    f.engine = with_board(&f, &board);
    let topic = f.topic();
    let parent = f.parent.node_identity();
    assert!(board.parents(&topic).is_empty());
    // Subscribed through the parent, which heard the advert from the publisher.
    f.request(PubSubRequest::Subscribe { topic });
    let advert = f.advert();
    let p = f.publisher_engine().engine_identity();
    f.receive_from_parent(PubSubMessage::Advert {
        advert: advert.clone(),
        publisher: p,
        hops: 0,
    });
    f.receive_from_parent(PubSubMessage::SubscribeAck {
        topic,
        accepted: true,
        positions: vec![(p, 1)],
    });
    assert_eq!(
        board.parents(&topic),
        vec![parent],
        "subscribed through the parent"
    );

    // The same advert as near the publisher through another neighbour: a redundant parent.
    let other = Keypair::generate();
    f.connect(&other);
    f.receive(
        &other,
        PubSubMessage::Advert {
            advert,
            publisher: p,
            hops: 0,
        },
    );
    let mut both = vec![parent, other.node_identity()];
    both.sort();
    assert_eq!(board.parents(&topic), both, "a redundant parent");

    // The publisher withdraws: the route goes, and the board forgets the topic.
    let w = Withdrawal::new_signed(&f.publisher_engine(), topic, 1);
    f.receive_from_parent(PubSubMessage::Withdraw(w));
    assert!(
        board.parents(&topic).is_empty(),
        "{:?}",
        board.parents(&topic)
    );
    // A new version of the advert brings the route back, through the neighbour that sent it.
    let publisher = f.publisher.clone();
    f.receive(
        &other,
        PubSubMessage::Advert {
            advert: f.advert_of(&[&publisher], 2),
            publisher: p,
            hops: 0,
        },
    );
    assert_eq!(board.parents(&topic), vec![other.node_identity()]);
}

#[test]
fn a_fresher_advert_replaces_the_parents_and_no_board_is_fine() {
    let mut f = fixture();
    let board = TopicParents::new();
    f.engine = with_board(&f, &board);
    let topic = f.topic();
    f.subscribed();
    assert_eq!(board.parents(&topic), vec![f.parent.node_identity()]);
    // Version 2 of the advert heard first from another neighbour: the old routes (through
    // the parent) are dropped, the new one goes through that neighbour.
    let other = Keypair::generate();
    let publisher = f.publisher.clone();
    let p = f.publisher_engine().engine_identity();
    f.receive(
        &other,
        PubSubMessage::Advert {
            advert: f.advert_of(&[&publisher], 2),
            publisher: p,
            hops: 3,
        },
    );
    assert_eq!(board.parents(&topic), vec![other.node_identity()]);

    // An engine without a board runs as before.
    let mut g = fixture();
    g.subscribed();
    assert!(board.parents(&g.topic()).is_empty());
}
