//! TLS over TCP, the fallback for networks that block UDP, between real nodes on 127.0.0.1:
//! a node that only dials TCP; a peer whose QUIC address the fault proxy blackholes (UDP
//! blocked on the path), reached over TCP after two failed QUIC dials; a TCP peer presenting the wrong key;
//! junk on the TCP port.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use netmachine::chaos::{Chaos, ChaosConfig};
use netmachine::mail::transport::{TransportEvent, TransportRequest};
use netmachine::runtime::stats::Fault;
use netmachine::transport::TransportConfig;
use netmachine::wire::advert::listen_addresses;
use netmachine::wire::{NodeAdvert, Protocol, TransportKind};
use netmachine::{Client, DropReason, Input, Keypair, Node, NodeBuilder};

use common::wait_until;

const APP: Protocol = Protocol(Protocol::APP_BASE + 11);

/// A node listening on a free UDP port (QUIC) and an ephemeral TCP port, with a `sink` client
/// engine name reserved for the caller.
fn listener(key: &Keypair) -> Node {
    NodeBuilder::new(key.clone())
        .without_interdomain()
        .without_domains()
        .transport(TransportConfig {
            listen: vec![common::free_port()],
            listen_tcp: vec!["127.0.0.1:0".parse().unwrap()],
            ..TransportConfig::default()
        })
        .start()
        .unwrap()
}

/// A dialling node (no listener) knowing `peer`, dialling `transports` with a short connect
/// timeout, that routes to engine `sink` on the peer.
fn dialler(key: &Keypair, peer: NodeAdvert, transports: Vec<TransportKind>, sink: &Node) -> Node {
    NodeBuilder::new(key.clone())
        .without_interdomain()
        .without_domains()
        .transport(TransportConfig {
            transports,
            connect_timeout: Duration::from_millis(400),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(200),
            ..TransportConfig::default()
        })
        .peer(peer)
        .engine_location(
            sink.engine_identity("sink").expect("a sink client"),
            sink.identity(),
        )
        .start()
        .unwrap()
}

/// Waits for the next `NodeConnected` event on `client`; returns the address.
fn next_connection(client: &mut Client) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(Input::Transport(TransportEvent::NodeConnected { addr, .. })) =
            client.recv(Duration::from_millis(100))
        {
            return addr;
        }
    }
    panic!("no connection within 20 s");
}

/// Sends `n` reliable messages from `from` to `to` (sequence numbers as bodies, with `pad`
/// extra bytes) and checks that `to` gets every one exactly once, in order; `status` describes
/// the nodes when it does not.
fn stream_in_order(
    from: &mut Client,
    to: &mut Client,
    n: u64,
    pad: usize,
    status: impl Fn() -> String,
) {
    // In windows of 256, so that the receiving client's mailbox (a bounded queue the test
    // drains) never overflows.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    while (got.len() as u64) < n && Instant::now() < deadline {
        while sent < n && sent < got.len() as u64 + 256 {
            let mut body = sent.to_le_bytes().to_vec();
            body.resize(8 + pad, 0xa5);
            from.send(to.identity(), APP, body);
            sent += 1;
        }
        if let Some(Input::Message(m)) = to.recv(Duration::from_millis(200)) {
            assert_eq!(m.body().len(), 8 + pad);
            got.push(u64::from_le_bytes(m.body()[..8].try_into().unwrap()));
        }
    }
    let expected: Vec<u64> = (0..n).collect();
    assert_eq!(
        got.len() as u64,
        n,
        "received {} of {n}\n{}",
        got.len(),
        status()
    );
    assert_eq!(got, expected, "lost, duplicated or reordered");
    // Nothing more (no duplicate) arrives.
    assert!(common::drain_bodies(to, Duration::from_millis(300)).is_empty());
}

#[test]
fn a_node_dialling_only_tcp_carries_messages_in_order() {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let b = listener(&kb);
    let mut sink = b.client("sink").unwrap();
    let tcp = b.tcp_listen_addrs()[0];
    assert_eq!(b.advert().addrs.len(), 2, "QUIC and TCP advertised");
    let a = dialler(&ka, b.advert(), vec![TransportKind::Tcp], &b);
    let mut watcher = a.client("watcher").unwrap();
    watcher.with_context(|ctx| ctx.transport_request(TransportRequest::Subscribe));
    let mut src = a.client("src").unwrap();
    // Small messages, then ones spanning many records (a record carries at most 16 KiB).
    stream_in_order(&mut src, &mut sink, 5_000, 100, || {
        format!("A: {}\nB: {}", a.status(), b.status())
    });
    stream_in_order(&mut src, &mut sink, 20, 200_000, || {
        format!("A: {}\nB: {}", a.status(), b.status())
    });
    let sa = a.stats();
    assert_eq!(sa.dials, 1, "one dial: {}", a.status());
    assert_eq!(sa.total_drops(), 0, "{}", a.status());
    assert_eq!(b.stats().total_drops(), 0, "{}", b.status());
    // The connection is the TCP one (the QUIC address is never dialled).
    watcher.with_context(|ctx| {
        ctx.transport_request(TransportRequest::Disconnect {
            node: kb.node_identity(),
        })
    });
    src.send(b.identity(), Protocol::PING, b"again".to_vec());
    assert_eq!(next_connection(&mut watcher), tcp);
    assert!(
        matches!(src.recv(Duration::from_secs(10)), Some(Input::Message(m)) if m.body() == b"again")
    );
    // RTT is measured over TCP too (the relay candidates list it).
    assert!(wait_until(Duration::from_secs(5), || a
        .connected_peers()
        .iter()
        .any(|p| p.node == kb.node_identity()
            && p.rtt.is_some()
            && p.transport == TransportKind::Tcp)));
    assert!(a.status().contains(" tcp trust="), "{}", a.status());
    a.shutdown();
    b.shutdown();
}

#[test]
fn a_peer_behind_blocked_udp_is_reached_over_tcp() {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let b = listener(&kb);
    let mut sink = b.client("sink").unwrap();
    // UDP blocked on the path: B's QUIC address is reached through the fault proxy, which
    // drops every datagram.
    let black_hole = Chaos::start(ChaosConfig {
        loss: 1.0,
        ..ChaosConfig::new("127.0.0.1:0".parse().unwrap(), b.listen_addrs()[0])
    })
    .unwrap();
    let tcp = b.tcp_listen_addrs()[0];
    // Signed after B started, so newer than the advert B sends once connected.
    let advert = NodeAdvert::for_addresses(
        &kb,
        listen_addresses(&[black_hole.listen_addr()], &[tcp]),
        None,
    );
    assert!(advert.version > b.advert().version);
    let a = dialler(
        &ka,
        advert,
        vec![TransportKind::Quic, TransportKind::Tcp],
        &b,
    );
    let mut src = a.client("src").unwrap();
    let started = Instant::now();
    src.send(b.identity(), Protocol::PING, b"through".to_vec());
    match src.recv(Duration::from_secs(20)) {
        Some(Input::Message(m)) => assert_eq!(m.body(), b"through"),
        other => panic!("{other:?}\nA: {}\nB: {}", a.status(), b.status()),
    }
    let took = started.elapsed();
    let sa = a.stats();
    // Two QUIC dials timed out (the address is then failing), the third went over TCP.
    assert_eq!(sa.faults(Fault::HandshakeFailed), 2, "{}", a.status());
    assert_eq!(sa.dials, 3, "{}", a.status());
    assert!(
        took >= Duration::from_millis(800),
        "two 400 ms timeouts first: {took:?}"
    );
    let proxy = black_hole.counters();
    assert!(
        proxy.upstream.dropped > 0 && proxy.upstream.forwarded == 0,
        "the QUIC dials went into the black hole: {proxy:?}"
    );
    stream_in_order(&mut src, &mut sink, 2_000, 500, || {
        format!("A: {}\nB: {}", a.status(), b.status())
    });
    assert_eq!(a.stats().total_drops(), 0, "{}", a.status());
    assert_eq!(b.stats().connections_established, 1, "{}", b.status());
    a.shutdown();
    b.shutdown();
}

#[test]
fn a_tcp_peer_with_the_wrong_identity_is_refused() {
    let (ka, kb, impostor) = (
        Keypair::generate(),
        Keypair::generate(),
        Keypair::generate(),
    );
    let b = listener(&kb);
    let _sink = b.client("sink").unwrap();
    // A believes `impostor` listens at B's TCP address; B answers with its own key.
    let advert = NodeAdvert::for_addresses(
        &impostor,
        listen_addresses(&[], &[b.tcp_listen_addrs()[0]]),
        None,
    );
    let a = dialler(&ka, advert, vec![TransportKind::Tcp], &b);
    let mut client = a.client("c").unwrap();
    client.send(impostor.node_identity(), Protocol::PING, b"x".to_vec());
    assert!(
        wait_until(Duration::from_secs(10), || a
            .stats()
            .faults(Fault::IdentityMismatch)
            >= 1),
        "{}",
        a.status()
    );
    assert_eq!(b.stats().connections_established, 0, "{}", b.status());
    assert_eq!(
        b.stats().received_remote,
        0,
        "nothing reached the impostor's address"
    );
    assert_eq!(a.stats().drops(DropReason::Duplicate), 0);
}

#[test]
fn junk_on_the_tcp_port_disturbs_nothing() {
    let (ka, kb) = (Keypair::generate(), Keypair::generate());
    let b = listener(&kb);
    let mut sink = b.client("sink").unwrap();
    let tcp = b.tcp_listen_addrs()[0];
    // Not TLS at all, then a connection that is opened and left silent, then one closed early.
    let mut junk = TcpStream::connect(tcp).unwrap();
    junk.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff]).unwrap();
    junk.write_all(&vec![0x42; 70_000]).unwrap_or(());
    let _silent = TcpStream::connect(tcp).unwrap();
    drop(TcpStream::connect(tcp).unwrap());
    assert!(
        wait_until(Duration::from_secs(10), || b
            .stats()
            .faults(Fault::HandshakeFailed)
            >= 1),
        "{}",
        b.status()
    );
    // B still serves a real node over TCP.
    let a = dialler(&ka, b.advert(), vec![TransportKind::Tcp], &b);
    let mut src = a.client("src").unwrap();
    stream_in_order(&mut src, &mut sink, 100, 10, || {
        format!("A: {}\nB: {}", a.status(), b.status())
    });
    assert_eq!(b.stats().total_drops(), 0, "{}", b.status());
    a.shutdown();
    b.shutdown();
}
