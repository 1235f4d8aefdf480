//! Engines reached by identity across real nodes over QUIC on 127.0.0.1: a node that knows only
//! another node's advert (or only a peer that knows it) reaches an engine there by its identity,
//! first message included, with no `engine_location`; lookups of engines nobody knows end in a
//! counted `no_route`; engines that come and go later are advertised and withdrawn; a node's new
//! addresses reach its connected peers.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use netmachine::identity_store::{AnyIdentity, IdentityRecord};
use netmachine::node::EngineSpec;
use netmachine::wire::{NodeAdvert, Protocol, TransportAddress};
use netmachine::{
    Context, DropReason, Engine, EngineIdentity, Input, Keypair, Node, NodeBuilder, NodeError,
    Origin, Timestamp,
};

use common::{free_port, wait_until};

const APP: Protocol = Protocol(Protocol::APP_BASE + 11);
const WAIT: Duration = Duration::from_secs(20);

/// Answers every message with its body.
struct Echo;

impl Engine for Echo {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        if let Input::Message(m) = input {
            ctx.reply(&m, m.body().to_vec());
        }
    }
}

fn advert(key: &Keypair, addr: SocketAddr) -> NodeAdvert {
    NodeAdvert::for_listen(key, &[addr], None)
}

/// A node listening on `addr` with a reachable `echo` engine.
fn echo_node(key: &Keypair, addr: SocketAddr, peers: &[(NodeAdvert, bool)]) -> Node {
    let mut b = NodeBuilder::new(key.clone())
        .listen(addr)
        .engine_with(EngineSpec::named("echo").reachable(true), Echo);
    for (a, permanent) in peers {
        b = b.peer(a.clone());
        if *permanent {
            b = b.permanent(a.id);
        }
    }
    b.start().unwrap()
}

/// Sends one message to `dst` from a new client of `node` and waits for the echo.
fn round_trip(node: &Node, dst: EngineIdentity, body: &[u8]) -> Result<Duration, String> {
    let mut client = node.client("asker").unwrap();
    let started = Instant::now();
    let id = client.send(dst, APP, body.to_vec());
    match client.recv(WAIT) {
        Some(Input::Message(m)) if m.reply_to() == Some(id) => {
            assert_eq!(m.body(), body);
            assert!(matches!(m.origin(), Origin::Remote { .. }));
            Ok(started.elapsed())
        }
        other => Err(format!("{other:?}")),
    }
}

fn engine_record(node: &Node, engine: EngineIdentity) -> Option<netmachine::NodeIdentity> {
    match node.lookup(AnyIdentity::Engine(engine)).unwrap() {
        Some(IdentityRecord::Engine(r)) => Some(r.node),
        _ => None,
    }
}

#[test]
fn an_engine_is_reached_knowing_only_its_nodes_advert() {
    let (ka, kc) = (Keypair::generate(), Keypair::generate());
    let (pa, pc) = (free_port(), free_port());
    let c = echo_node(&kc, pc, &[]);
    let echo = kc.derive_engine("echo").engine_identity();
    // A knows C's advert and the engine's identity, nothing else; it is not connected yet.
    let a = NodeBuilder::new(ka.clone())
        .listen(pa)
        .peer(advert(&kc, pc))
        .start()
        .unwrap();
    let took = round_trip(&a, echo, b"first")
        .unwrap_or_else(|e| panic!("no answer: {e}\nA: {}\nC: {}", a.status(), c.status()));
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(a.stats().total_drops(), 0, "{}", a.status());
    assert_eq!(engine_record(&a, echo), Some(kc.node_identity()));
    // C advertised echo and pubsub; ping is reached as the node, so it is not advertised.
    assert_eq!(
        c.identity_stats()
            .engine_adverts_signed
            .load(Ordering::Relaxed),
        2
    );
    let ping = kc.derive_engine("ping").engine_identity();
    assert_eq!(engine_record(&a, ping), None);
    a.shutdown();
    c.shutdown();
}

#[test]
fn a_peer_answers_a_lookup_from_its_store() {
    let (ka, kb, kc) = (
        Keypair::generate(),
        Keypair::generate(),
        Keypair::generate(),
    );
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let c = echo_node(&kc, pc, &[]);
    // B keeps a connection to C, so it holds echo's advert and C's.
    let b = NodeBuilder::new(kb.clone())
        .listen(pb)
        .peer(advert(&kc, pc))
        .permanent(kc.node_identity())
        .start()
        .unwrap();
    let echo = kc.derive_engine("echo").engine_identity();
    assert!(
        wait_until(WAIT, || engine_record(&b, echo).is_some()),
        "B never learned echo: {}",
        b.status()
    );
    // A knows only B (not C's advert) and is connected to it.
    let a = NodeBuilder::new(ka.clone())
        .listen(pa)
        .peer(advert(&kb, pb))
        .permanent(kb.node_identity())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || a.stats().connections_established >= 1));
    assert_eq!(
        a.lookup(AnyIdentity::Node(kc.node_identity())).unwrap(),
        None
    );
    round_trip(&a, echo, b"via b").unwrap_or_else(|e| {
        panic!(
            "no answer: {e}\nA: {}\nB: {}\nC: {}",
            a.status(),
            b.status(),
            c.status()
        )
    });
    assert_eq!(a.stats().total_drops(), 0, "{}", a.status());
    let answered = b
        .identity_stats()
        .peer_queries_known
        .load(Ordering::Relaxed);
    assert!(answered >= 1, "B answered no lookup: {}", b.status());
    assert!(
        a.identity_stats().lookups_found.load(Ordering::Relaxed) >= 1,
        "{}",
        a.status()
    );
    // A learned C's advert from B's answer, and dialled C with it.
    assert!(matches!(
        a.lookup(AnyIdentity::Node(kc.node_identity())).unwrap(),
        Some(IdentityRecord::Node(r)) if r.advert.is_some()
    ));
    a.shutdown();
    b.shutdown();
    c.shutdown();
}

#[test]
fn a_lookup_of_an_unknown_engine_ends_in_a_counted_no_route() {
    let (ka, kc) = (Keypair::generate(), Keypair::generate());
    let (pa, pc) = (free_port(), free_port());
    let c = echo_node(&kc, pc, &[]);
    let a = NodeBuilder::new(ka.clone())
        .listen(pa)
        .peer(advert(&kc, pc))
        .permanent(kc.node_identity())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || a.stats().connections_established >= 1));
    let unknown = Keypair::generate().engine_identity();
    let mut client = a.client("asker").unwrap();
    let started = Instant::now();
    let id = client.send(unknown, APP, b"anyone?".to_vec());
    match client.recv(WAIT) {
        Some(Input::Undeliverable(u)) => {
            assert_eq!((u.id, u.reason), (id, DropReason::NoRoute));
        }
        other => panic!("{other:?}\n{}", a.status()),
    }
    // C said "unknown": the lookup ended on its answer, not at its timeout (nor the Router's).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        a.identity_stats().lookups_timed_out.load(Ordering::Relaxed),
        0
    );
    assert_eq!(a.stats().drops(DropReason::NoRoute), 1);
    assert_eq!(
        a.identity_stats().lookups_unknown.load(Ordering::Relaxed),
        1
    );
    // Asked again at once: the negative cache answers.
    client.send(unknown, APP, b"still?".to_vec());
    assert!(matches!(
        client.recv(WAIT),
        Some(Input::Undeliverable(u)) if u.reason == DropReason::NoRoute
    ));
    assert_eq!(
        a.identity_stats()
            .lookups_negative_cached
            .load(Ordering::Relaxed),
        1
    );

    // Many unknown engines at once: every message ends counted (no_route, or pending_full
    // when more destinations wait than the Router keeps), and the node still works.
    let n = 3000u64;
    for _ in 0..n {
        let e = Keypair::generate().engine_identity();
        client.send(e, APP, Vec::new());
    }
    let dropped = || {
        let s = a.stats();
        s.drops(DropReason::NoRoute) + s.drops(DropReason::PendingFull)
    };
    assert!(
        wait_until(WAIT, || dropped() == n + 2),
        "{} of {} counted\n{}",
        dropped(),
        n + 2,
        a.status()
    );
    let echo = kc.derive_engine("echo").engine_identity();
    drop(client);
    round_trip(&a, echo, b"alive").unwrap();
    a.shutdown();
    c.shutdown();
}

#[test]
fn engines_registered_and_stopped_later_are_advertised_and_withdrawn() {
    let (ka, kc) = (Keypair::generate(), Keypair::generate());
    let (pa, pc) = (free_port(), free_port());
    let c = echo_node(&kc, pc, &[]);
    let a = NodeBuilder::new(ka.clone())
        .listen(pa)
        .peer(advert(&kc, pc))
        .permanent(kc.node_identity())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || a.stats().connections_established >= 1));
    let late = c.client_reachable("late").unwrap();
    let id = late.identity();
    assert!(
        wait_until(WAIT, || engine_record(&a, id) == Some(kc.node_identity())),
        "A never heard of the late engine\nA: {}\nC: {}",
        a.status(),
        c.status()
    );
    // A client that is not reachable is not advertised.
    let hidden = c.client("hidden").unwrap();
    drop(late);
    assert!(
        wait_until(WAIT, || engine_record(&a, id).is_none()),
        "A kept the stopped engine\nA: {}",
        a.status()
    );
    assert_eq!(engine_record(&a, hidden.identity()), None);
    assert!(a.identity_stats().engines_withdrawn.load(Ordering::Relaxed) >= 1);
    a.shutdown();
    c.shutdown();
}

#[test]
fn a_node_refuses_to_start_with_an_expired_peer_advert() {
    let stale = NodeAdvert::new_signed(
        &Keypair::generate(),
        vec![(TransportAddress::quic(free_port()), 100)],
        1,
        Timestamp(1),
        Timestamp(2),
        None,
    );
    match NodeBuilder::new(Keypair::generate()).peer(stale).start() {
        Err(NodeError::BadPeerAdvert(e)) => assert!(e.contains("expired"), "{e}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("started with an expired peer advert"),
    }
}

#[test]
fn new_addresses_are_advertised_to_connected_peers() {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let (pa, pb) = (free_port(), free_port());
    let b = NodeBuilder::new(kb.clone()).listen(pb).start().unwrap();
    let a = NodeBuilder::new(ka.clone())
        .listen(pa)
        .peer(advert(&kb, pb))
        .permanent(kb.node_identity())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || a.stats().connections_established >= 1));
    let before = b.advert();
    let public: SocketAddr = "192.0.2.7:7001".parse().unwrap();
    b.set_addresses(&[public, pb]).unwrap();
    let has_public = |n: &Node| match n.lookup(AnyIdentity::Node(kb.node_identity())).unwrap() {
        Some(IdentityRecord::Node(r)) => r.advert.is_some_and(|ad| {
            ad.addrs
                .iter()
                .any(|(t, _)| *t == TransportAddress::quic(public))
        }),
        _ => false,
    };
    assert!(
        wait_until(WAIT, || has_public(&a)),
        "A never got B's new advert\nA: {}\nB: {}",
        a.status(),
        b.status()
    );
    let after = b.advert();
    assert!(after.version > before.version);
    assert_eq!(after.addrs[0].0, TransportAddress::quic(public));
    assert_eq!(
        b.identity_stats()
            .node_adverts_signed
            .load(Ordering::Relaxed),
        2
    );
    a.shutdown();
    b.shutdown();
}
