//! A peer's addresses are ordered by the round-trip time measured to each: B is reachable at
//! two addresses, one behind the fault proxy adding 40 ms each way; once A has measured both,
//! it dials the fast one, whatever order B's advert gives. The measurement is kept in A's
//! identity store, across a restart.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netmachine::chaos::{Chaos, ChaosConfig, ChaosHandle};
use netmachine::mail::identity::{AnyIdentity, IdentityRecord, Measurement};
use netmachine::mail::transport::{TransportEvent, TransportRequest};
use netmachine::transport::TransportConfig;
use netmachine::wire::{NodeAdvert, TransportAddress};
use netmachine::{Input, Keypair, Node, NodeBuilder, NodeIdentity};

/// Waits for the next `NodeConnected` event of `node` on `client`; returns the address.
fn next_connection(client: &mut netmachine::Client, node: netmachine::NodeIdentity) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(Input::Transport(TransportEvent::NodeConnected { node: n, addr })) =
            client.recv(Duration::from_millis(100))
        {
            if n == node {
                return addr;
            }
        }
    }
    panic!("no connection to {} within 20 s", node.short());
}

/// B listening on one port, reachable through two fault proxies: `slow` adds 40 ms each way,
/// `fast` adds nothing.
fn b_behind_two_proxies(kb: &Keypair) -> (Node, ChaosHandle, ChaosHandle) {
    let pb = common::free_port();
    let b = NodeBuilder::new(kb.clone())
        .without_interdomain()
        .without_domains()
        .transport(TransportConfig {
            listen: vec![pb],
            ..TransportConfig::default()
        })
        .start()
        .unwrap();
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let slow = Chaos::start(ChaosConfig {
        delay_ms: 40,
        ..ChaosConfig::new(local, pb)
    })
    .unwrap();
    let fast = Chaos::start(ChaosConfig::new(local, pb)).unwrap();
    (b, slow, fast)
}

#[test]
fn the_address_measured_fastest_is_dialled() {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let (b, slow, fast) = b_behind_two_proxies(&kb);
    // B's advert lists the slow address first (equal weights: the advert's order decides).
    // Signed after B started, so it is newer than the one B sends when A connects.
    let advert = NodeAdvert::for_listen(&kb, &[slow.listen_addr(), fast.listen_addr()], None);
    assert!(advert.version > b.advert().version);
    let a = NodeBuilder::new(ka)
        .without_interdomain()
        .without_domains()
        .transport(TransportConfig::default())
        .peer(advert)
        .permanent(kb.node_identity())
        .start()
        .unwrap();
    let mut client = a.client("watcher").unwrap();
    client.with_context(|ctx| ctx.transport_request(TransportRequest::Subscribe));
    let mut dialled = Vec::new();
    // The first connection may be up before the subscription: ask for a fresh one each round.
    for _ in 0..4 {
        assert!(common::wait_until(Duration::from_secs(20), || a
            .connected_peers()
            .iter()
            .any(|p| p.node == kb.node_identity() && p.rtt.is_some())));
        // Long enough for the driver to record the connection's RTT (every 200 ms).
        std::thread::sleep(Duration::from_millis(600));
        client.with_context(|ctx| {
            ctx.transport_request(TransportRequest::Disconnect {
                node: kb.node_identity(),
            })
        });
        dialled.push(next_connection(&mut client, kb.node_identity()));
    }
    // Whichever the first connection used, both addresses have been tried by the second
    // reconnection, and from then on only the fast one is dialled.
    assert!(dialled.contains(&fast.listen_addr()), "{dialled:?}");
    assert_eq!(dialled[2], fast.listen_addr(), "{dialled:?}");
    assert_eq!(dialled[3], fast.listen_addr(), "{dialled:?}");
    // And the round-trip time the status shows is the fast address's.
    assert!(
        common::wait_until(Duration::from_secs(5), || a
            .connected_peers()
            .iter()
            .any(|p| p.node == kb.node_identity()
                && p.rtt.is_some_and(|r| r < Duration::from_millis(40)))),
        "{:?}",
        a.connected_peers()
    );
    a.shutdown();
    b.shutdown();
}

/// What `node`'s identity store holds as measured to `peer`.
fn measured(node: &Node, peer: NodeIdentity) -> Option<Measurement> {
    match node.lookup(AnyIdentity::Node(peer)).unwrap() {
        Some(IdentityRecord::Node(r)) => r.measured,
        _ => None,
    }
}

/// A's store keeps what it measured on the slow address it first dialled (the advert lists it
/// first); after a restart on the same file, A dials the fast address first — the one it has
/// not measured — where without the kept measurement it would follow the advert again.
#[test]
fn a_measurement_kept_in_the_identity_store_orders_addresses_after_a_restart() {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let (b, slow, fast) = b_behind_two_proxies(&kb);
    let advert = NodeAdvert::for_listen(&kb, &[slow.listen_addr(), fast.listen_addr()], None);
    let dir = common::TempDir::new("rtt", "kept");
    let a_node = || {
        NodeBuilder::new(ka.clone())
            .without_interdomain()
            .without_domains()
            .transport(TransportConfig::default())
            .identity_store_file(dir.path("a.redb"))
            .peer(advert.clone())
            .permanent(kb.node_identity())
            .start()
            .unwrap()
    };
    let a = a_node();
    let on = |addr: SocketAddr| TransportAddress::quic(addr);
    assert!(common::wait_until(Duration::from_secs(20), || {
        measured(&a, kb.node_identity()).is_some()
    }));
    let m = measured(&a, kb.node_identity()).unwrap();
    assert_eq!(m.address, on(slow.listen_addr()), "{m:?}");
    assert!(m.rtt() >= Duration::from_millis(80), "{m:?}");
    assert!(m.loss_ppm <= 1_000_000, "{m:?}");
    a.shutdown();
    let a = a_node();
    assert!(
        common::wait_until(Duration::from_secs(20), || measured(&a, kb.node_identity())
            .is_some_and(
                |m| m.address == on(fast.listen_addr()) && m.rtt() < Duration::from_millis(40)
            )),
        "{:?}",
        measured(&a, kb.node_identity())
    );
    a.shutdown();
    b.shutdown();
}
