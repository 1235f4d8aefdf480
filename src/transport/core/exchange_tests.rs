//! Tests of the identity exchange in the core: what goes out when a connection is ready and when
//! the node's engines or advert change, lookups fanned out (and dials to reach more peers),
//! answers carried back, the per-connection budget, and an advert of another node refused.

use std::time::Duration;

use super::fake::Net;
use crate::identity::{EngineIdentity, Keypair, NodeIdentity};
use crate::mail::identity::{EngineAnswer, FromPeer, ToPeers};
use crate::runtime::stats::Fault;
use crate::time::Timestamp;
use crate::transport::{TransportConfig, TransportRequest};
use crate::wire::{EngineAdvert, NodeAdvert, TransportAddress};

use super::PEER_LOOKUPS_PER_S;

fn engine_advert(node: &Keypair, name: &str) -> EngineAdvert {
    EngineAdvert::new_signed(
        &node.derive_engine(name),
        node.node_identity(),
        name,
        1,
        Timestamp(1),
        Timestamp(u64::MAX),
    )
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
}

fn exchange(net: &mut Net, i: usize, req: ToPeers) {
    let now = net.now;
    net.nodes[i].core.handle_exchange(now, req);
    net.settle();
}

#[test]
fn engine_adverts_go_to_peers_when_ready_and_when_they_change() {
    let mut net = Net::new(2, TransportConfig::default());
    let (a, b) = (net.nodes[0].id, net.nodes[1].id);
    let echo = engine_advert(&net.keys[0], "echo");
    // Known before any connection: handed over once it is ready.
    exchange(
        &mut net,
        0,
        ToPeers::OwnEngines {
            adverts: vec![echo.clone()],
            withdrawn: Vec::new(),
        },
    );
    assert!(net.nodes[1].exchange.is_empty());
    connect(&mut net, 0, 1);
    assert!(net.nodes[1].exchange.contains(&FromPeer::Ready { node: a }));
    assert!(net.nodes[0].exchange.contains(&FromPeer::Ready { node: b }));
    assert!(net.nodes[1].exchange.contains(&FromPeer::EngineAdverts {
        from: a,
        adverts: vec![echo.clone()],
    }));
    // Later changes go to the connected peer.
    net.nodes[1].exchange.clear();
    let late = engine_advert(&net.keys[0], "late");
    exchange(
        &mut net,
        0,
        ToPeers::OwnEngines {
            adverts: vec![late.clone()],
            withdrawn: vec![echo.engine],
        },
    );
    assert_eq!(
        net.nodes[1].exchange,
        vec![
            FromPeer::EngineAdverts {
                from: a,
                adverts: vec![late],
            },
            FromPeer::Withdrawn {
                from: a,
                engines: vec![echo.engine],
            },
        ]
    );
    // A new node advert goes to the connected peer too.
    let moved = NodeAdvert::new_signed(
        &net.keys[0],
        vec![(TransportAddress::quic("10.9.9.9:1".parse().unwrap()), 1)],
        7,
        Timestamp(2),
        Timestamp(u64::MAX),
        None,
    );
    exchange(&mut net, 0, ToPeers::OwnAdvert(moved.clone()));
    assert_eq!(net.nodes[1].adverts.last(), Some(&moved));
    assert_eq!(net.live(0).len(), 1, "the connection stays up");
}

#[test]
fn an_engine_advert_of_another_node_closes_the_connection() {
    let mut net = Net::new(2, TransportConfig::default());
    // Node 0 hands over an advert that names node 1 as the engine's node.
    let foreign = engine_advert(&net.keys[1], "x");
    exchange(
        &mut net,
        0,
        ToPeers::OwnEngines {
            adverts: vec![foreign],
            withdrawn: Vec::new(),
        },
    );
    connect(&mut net, 0, 1);
    assert!(!net.nodes[1]
        .exchange
        .iter()
        .any(|m| matches!(m, FromPeer::EngineAdverts { .. })));
    assert_eq!(net.nodes[1].stats.faults(Fault::ProtocolViolation), 1);
    assert!(net.live(1).is_empty(), "closed");
}

#[test]
fn a_lookup_goes_to_ready_peers_dials_more_and_the_answer_comes_back() {
    let mut net = Net::new(3, TransportConfig::default());
    let (a, b, c) = (net.nodes[0].id, net.nodes[1].id, net.nodes[2].id);
    connect(&mut net, 0, 1);
    net.nodes[0].exchange.clear();
    let engine = EngineIdentity([5; 32]);
    let now = net.now;
    net.nodes[0].core.handle_exchange(
        now,
        ToPeers::Lookup {
            engine,
            only: None,
            max_peers: 8,
        },
    );
    net.settle();
    // Asked b at once; dialled c, the other known peer.
    assert_eq!(
        net.nodes[0].exchange.first(),
        Some(&FromPeer::LookupSent {
            engine,
            peers: vec![b],
            dialling: true,
        })
    );
    assert!(net.nodes[1]
        .exchange
        .contains(&FromPeer::Query { from: a, engine }));
    assert!(net.nodes[0].exchange.contains(&FromPeer::Ready { node: c }));
    // b answers; the answer reaches a tagged with b.
    let answer = EngineAnswer {
        engine,
        advert: None,
        node_advert: None,
    };
    exchange(
        &mut net,
        1,
        ToPeers::Answer {
            to: a,
            answer: Box::new(answer.clone()),
        },
    );
    assert!(net.nodes[0].exchange.contains(&FromPeer::Answer {
        from: b,
        answer: Box::new(answer),
    }));
    // A lookup for one peer only goes to it, and dials nobody.
    net.nodes[0].exchange.clear();
    exchange(
        &mut net,
        0,
        ToPeers::Lookup {
            engine,
            only: Some(c),
            max_peers: 1,
        },
    );
    assert_eq!(
        net.nodes[0].exchange.first(),
        Some(&FromPeer::LookupSent {
            engine,
            peers: vec![c],
            dialling: false,
        })
    );
    assert!(net.nodes[2]
        .exchange
        .contains(&FromPeer::Query { from: a, engine }));
}

#[test]
fn lookups_over_a_peers_budget_are_dropped_and_counted() {
    let mut net = Net::new(2, TransportConfig::default());
    let b: NodeIdentity = net.nodes[1].id;
    connect(&mut net, 0, 1);
    let queries = |net: &Net| {
        net.nodes[1]
            .exchange
            .iter()
            .filter(|m| matches!(m, FromPeer::Query { .. }))
            .count()
    };
    let burst = PEER_LOOKUPS_PER_S as usize;
    for i in 0..burst + 36 {
        let now = net.now;
        net.nodes[0].core.handle_exchange(
            now,
            ToPeers::Lookup {
                engine: EngineIdentity([i as u8; 32]),
                only: Some(b),
                max_peers: 1,
            },
        );
    }
    net.settle();
    assert_eq!(queries(&net), burst);
    assert_eq!(net.nodes[1].stats.faults(Fault::ExchangeOverRate), 36);
    assert_eq!(net.live(1).len(), 1, "the connection stays up");
    // Half a second later, half the budget is back.
    net.advance(Duration::from_millis(500));
    for i in 0..burst {
        let now = net.now;
        net.nodes[0].core.handle_exchange(
            now,
            ToPeers::Lookup {
                engine: EngineIdentity([i as u8; 32]),
                only: Some(b),
                max_peers: 1,
            },
        );
    }
    net.settle();
    assert_eq!(queries(&net), burst + burst / 2);
}

#[test]
fn answers_wait_at_most_a_bounded_backlog_for_a_peer_that_does_not_read() {
    let mut net = Net::new(2, TransportConfig::default());
    let a = net.nodes[0].id;
    connect(&mut net, 0, 1);
    // Node 1 can no longer write to node 0 (flow control closed).
    let c = net.live(1)[0];
    net.nodes[1].conns.get_mut(&c).expect("conn").budget = Some(0);
    let answer = EngineAnswer {
        engine: EngineIdentity([5; 32]),
        advert: None,
        node_advert: None,
    };
    let one = 5 + crate::transport::control::encode(&crate::transport::control::Found {
        engine: answer.engine,
        advert: None,
        node_advert: None,
    })
    .len();
    let fit = super::MAX_CONTROL_BACKLOG_FOR_ANSWERS.div_ceil(one);
    for _ in 0..fit + 100 {
        let now = net.now;
        net.nodes[1].core.handle_exchange(
            now,
            ToPeers::Answer {
                to: a,
                answer: Box::new(answer.clone()),
            },
        );
    }
    net.settle();
    assert_eq!(net.nodes[1].stats.faults(Fault::ExchangeOverRate), 100);
    assert!(net.nodes[0]
        .exchange
        .iter()
        .all(|m| !matches!(m, FromPeer::Answer { .. })));
}
