//! Relaying between real nodes over QUIC on 127.0.0.1: nodes with no direct path reach each
//! other through a relay, onion paths of two relays, the relay policy, and tampering detected
//! at the destination.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use netmachine::relay::{
    Opened, Opener, OpenerLimits, RelayMode, RelayPolicy, Sealer, SealerLimits,
};
use netmachine::transport::TransportConfig;
use netmachine::wire::{NodeAdvert, Ordering, Protocol, Reliability, Security, TransportPrefs};
use netmachine::{
    Context, Destination, DropReason, Engine, EngineIdentity, Input, Keypair, Node, NodeBuilder,
    NodeIdentity, Now, Origin, SendOptions, StatsSnapshot,
};

use common::wait_until;

const APP: Protocol = Protocol(Protocol::APP_BASE + 21);

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// What a sink saw: per message, the sending engine and the node it came via.
type Seen = Arc<Mutex<Vec<(EngineIdentity, NodeIdentity, Vec<u8>)>>>;

/// Logs every message and answers it with its own body.
struct Echo {
    seen: Seen,
}

impl Engine for Echo {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        if let Input::Message(m) = input {
            let via = match m.origin() {
                Origin::Remote { via } => via,
                other => panic!("a remote message, not {other:?}"),
            };
            let engine = m.sender().verified().expect("verified sender");
            self.seen.lock().push((engine, via, m.body().to_vec()));
            let body = m.body().to_vec();
            ctx.reply(&m, body);
        }
    }
}

/// A node that listens, forwards for `policy`, and knows `peers` (kept connected).
fn node(key: &Keypair, listen: bool, policy: RelayPolicy, peers: &[NodeAdvert]) -> NodeBuilder {
    let mut transport = TransportConfig::default();
    if listen {
        transport.listen.push(localhost());
    }
    let mut b = NodeBuilder::new(key.clone())
        .transport(transport)
        .relay_policy(policy)
        .without_interdomain()
        .without_domains();
    for p in peers {
        b = b.peer(p.clone()).permanent(p.id);
    }
    b
}

fn anyone() -> RelayPolicy {
    RelayPolicy {
        mode: RelayMode::Anyone,
        ..RelayPolicy::default()
    }
}

fn relay_drops(s: &StatsSnapshot) -> Vec<(DropReason, u64)> {
    s.drops
        .iter()
        .filter(|(r, _)| r.label().starts_with("relay_") || *r == DropReason::NoRelay)
        .copied()
        .collect()
}

fn connected(node: &Node, n: u64) -> bool {
    node.stats().connections_established >= n
}

/// Sends `n` numbered messages from `client` to `dst` with `opts` and waits for every echo;
/// returns how many came back, or the first reason one was undeliverable.
fn round_trips(
    client: &mut netmachine::Client,
    dst: EngineIdentity,
    n: usize,
    opts: &SendOptions,
) -> Result<usize, DropReason> {
    let mut answered = HashMap::new();
    for i in 0..n {
        client.send_with(dst, APP, format!("msg {i}").into_bytes(), *opts);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered.len() < n && Instant::now() < deadline {
        match client.recv(Duration::from_millis(100)) {
            Some(Input::Message(m)) => {
                answered.insert(m.body().to_vec(), ());
            }
            Some(Input::Undeliverable(u)) => return Err(u.reason),
            _ => {}
        }
    }
    Ok(answered.len())
}

/// Waits until one message goes there and back: the relay candidates are published a few
/// times a second, so the first sends may find none (and are refused, which is counted).
fn warm_up(client: &mut netmachine::Client, dst: EngineIdentity, opts: &SendOptions) {
    assert!(wait_until(Duration::from_secs(10), || round_trips(
        client, dst, 1, opts
    ) == Ok(1)));
}

/// A line of three: B listens and forwards under `b_policy`; C (running `Echo`) and A (which
/// knows where C's echo runs) dial out to B only, so neither has an address for the other.
struct Line {
    a: Node,
    b: Node,
    c: Node,
    echo: EngineIdentity,
    seen: Seen,
}

fn line(b_policy: RelayPolicy) -> Line {
    let b = node(&Keypair::generate(), true, b_policy, &[])
        .start()
        .unwrap();
    let seen: Seen = Arc::default();
    let c = node(
        &Keypair::generate(),
        false,
        RelayPolicy::default(),
        &[b.advert()],
    )
    .engine(
        "echo",
        Echo {
            seen: Arc::clone(&seen),
        },
    )
    .start()
    .unwrap();
    let echo = c.engine_identity("echo").unwrap();
    let a = node(
        &Keypair::generate(),
        false,
        RelayPolicy::default(),
        &[b.advert()],
    )
    .engine_location(echo, c.identity())
    .start()
    .unwrap();
    assert!(wait_until(Duration::from_secs(10), || connected(&a, 1)
        && connected(&c, 1)
        && connected(&b, 2)));
    Line {
        a,
        b,
        c,
        echo,
        seen,
    }
}

/// A (dials out only) and C (dials out only) both keep a connection to B; neither has an
/// address for the other. A's engine reaches C's and hears back, through B.
#[test]
fn a_reaches_c_through_b_and_hears_back() {
    let Line {
        a,
        b,
        c,
        echo,
        seen,
    } = line(anyone());
    let mut client = a.client("app").unwrap();
    warm_up(&mut client, echo, &SendOptions::default());
    let before = (a.stats(), b.stats(), c.stats());
    let n = 50;
    assert_eq!(
        round_trips(&mut client, echo, n, &SendOptions::default()),
        Ok(n)
    );

    // C saw A's engine, verified, as coming from A — although it only ever talked to B.
    let seen = seen.lock();
    assert!(seen.len() >= n);
    for (engine, via, _) in seen.iter() {
        assert_eq!(*engine, client.identity());
        assert_eq!(*via, a.identity());
    }
    let (sa, sb, sc) = (a.stats(), b.stats(), c.stats());
    assert!(sa.sent_relayed >= n as u64, "A: {sa}");
    assert!(sc.received_relayed >= n as u64, "C: {sc}");
    // Both directions went through B.
    assert!(sb.relayed >= 2 * n as u64, "B: {sb}");
    assert!(sc.sent_relayed >= n as u64, "C: {sc}");
    for (s, s0) in [(&sa, &before.0), (&sb, &before.1), (&sc, &before.2)] {
        assert_eq!(relay_drops(s), relay_drops(s0), "{s}");
        assert_eq!(
            s.drops(DropReason::NoRoute),
            s0.drops(DropReason::NoRoute),
            "{s}"
        );
    }
    // B is not the destination of anything it relayed.
    assert_eq!(sb.received_relayed, 0);
    // A chose B among its connected peers, with the RTT QUIC measured to it.
    let peers = a.connected_peers();
    assert!(
        peers
            .iter()
            .any(|p| p.node == b.identity() && p.rtt.is_some()),
        "{peers:?}"
    );
}

/// A keeps connections to B and D, C to B and D; `OnionRouting(2)` from A to C goes through
/// both relays, each of which forwards every message once.
#[test]
fn a_two_relay_onion_path_crosses_both_relays() {
    let (ka, kb, kc, kd) = (
        Keypair::generate(),
        Keypair::generate(),
        Keypair::generate(),
        Keypair::generate(),
    );
    let b = node(&kb, true, anyone(), &[]).start().unwrap();
    let d = node(&kd, true, anyone(), &[b.advert()]).start().unwrap();
    let seen: Seen = Arc::default();
    let c = node(
        &kc,
        false,
        RelayPolicy::default(),
        &[b.advert(), d.advert()],
    )
    .engine(
        "echo",
        Echo {
            seen: Arc::clone(&seen),
        },
    )
    .start()
    .unwrap();
    let echo = c.engine_identity("echo").unwrap();
    let a = node(
        &ka,
        false,
        RelayPolicy::default(),
        &[b.advert(), d.advert()],
    )
    .engine_location(echo, c.identity())
    .start()
    .unwrap();
    assert!(wait_until(Duration::from_secs(10), || connected(&a, 2)
        && connected(&c, 2)));
    let onion = SendOptions {
        tprefs: Some(TransportPrefs {
            ordering: Ordering::Ordered,
            reliability: Reliability::Reliable,
            security: Security::OnionRouting(2),
        }),
        ..SendOptions::default()
    };
    let mut client = a.client("app").unwrap();
    warm_up(&mut client, echo, &onion);
    let before: Vec<StatsSnapshot> = [&a, &b, &c, &d].iter().map(|n| n.stats()).collect();
    let (b0, d0) = (b.stats().relayed, d.stats().relayed);
    let n = 30;
    assert_eq!(round_trips(&mut client, echo, n, &onion), Ok(n));
    let (sb, sd) = (b.stats(), d.stats());
    // Each A → C message crossed both relays; the echoes took one relay (B or D).
    let forwarded = (sb.relayed - b0) + (sd.relayed - d0);
    assert!(forwarded >= 3 * n as u64, "B: {sb}\nD: {sd}");
    assert!(sb.relayed - b0 >= n as u64, "B: {sb}");
    assert!(sd.relayed - d0 >= n as u64, "D: {sd}");
    assert_eq!(seen.lock().last().map(|s| s.1), Some(a.identity()));
    let after: Vec<StatsSnapshot> = [&a, &b, &c, &d].iter().map(|n| n.stats()).collect();
    for (s, s0) in after.iter().zip(&before) {
        assert_eq!(relay_drops(s), relay_drops(s0), "{s}");
    }

    // Three relays are asked for, two are known: refused with `no_relay`, and the sender told.
    let three = SendOptions {
        tprefs: Some(TransportPrefs {
            security: Security::OnionRouting(3),
            ..onion.tprefs.unwrap()
        }),
        ..SendOptions::default()
    };
    let refused = a.stats().drops(DropReason::NoRelay);
    let id = client.send_with(echo, APP, b"too deep".to_vec(), three);
    let mut told = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !told && Instant::now() < deadline {
        if let Some(Input::Undeliverable(u)) = client.recv(Duration::from_millis(100)) {
            assert_eq!((u.id, u.reason), (id, DropReason::NoRelay));
            told = true;
        }
    }
    assert!(told);
    assert_eq!(a.stats().drops(DropReason::NoRelay), refused + 1);
}

/// B forwards for nobody: A's messages to C are refused at B and counted there.
#[test]
fn a_relay_that_forwards_for_nobody_refuses_and_counts() {
    // C is kept running (bound, not dropped) so that a refusal at B is the only way to fail.
    let Line {
        a,
        b,
        c: _c,
        echo,
        seen,
    } = line(RelayPolicy::default());
    let mut client = a.client("app").unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        client.send(echo, APP, b"hello".to_vec());
        std::thread::sleep(Duration::from_millis(50));
        b.stats().drops(DropReason::RelayRefused) >= 1
    }));
    assert_eq!(b.stats().relayed, 0);
    assert!(seen.lock().is_empty());
}

/// A layer altered after the relay opened it is detected at C (`relay_bad_mac`), counted, and
/// never reaches the engine; the same layer unaltered is delivered.
#[test]
fn tampering_after_the_relay_is_detected_at_the_destination() {
    let (ka, kb, kc) = (
        Keypair::generate(),
        Keypair::generate(),
        Keypair::generate(),
    );
    let seen: Seen = Arc::default();
    let c = NodeBuilder::new(kc.clone())
        .transport(TransportConfig::default())
        .without_interdomain()
        .without_domains()
        .engine(
            "echo",
            Echo {
                seen: Arc::clone(&seen),
            },
        )
        .start()
        .unwrap();
    let echo = c.engine_identity("echo").unwrap();
    // A's engine signs a message for C's echo; A seals it for the path B → C.
    let engine_key = ka.derive_engine("app");
    let wire = common::signed_wire(&engine_key, &ka, Destination::Engine(echo), 1, b"intact");
    let now = Now::read();
    let expiry = now.wall.after(Duration::from_secs(60));
    let mut sealer = Sealer::new(&ka, [3; 32], SealerLimits::default());
    let layer = sealer
        .seal(
            now,
            &[kb.node_identity(), kc.node_identity()],
            &wire,
            expiry,
        )
        .unwrap();
    // B opens its layer, as its Router would.
    let Opened::Forward {
        next, layer: inner, ..
    } = Opener::new(&kb, OpenerLimits::default())
        .open(now, layer)
        .unwrap()
    else {
        panic!("B forwards");
    };
    assert_eq!(next, kc.node_identity());
    let ingress = c.ingress();
    for i in [0usize, 20, 45, inner.len() / 2, inner.len() - 1] {
        let mut bad = inner.clone();
        bad[i] ^= 1;
        assert!(ingress.deliver_relay(kb.node_identity(), bad));
    }
    assert!(wait_until(Duration::from_secs(5), || {
        let s = c.stats();
        s.drops(DropReason::RelayBadMac) + s.drops(DropReason::RelayMalformed) == 5
    }));
    assert!(seen.lock().is_empty());
    assert!(ingress.deliver_relay(kb.node_identity(), inner.clone()));
    assert!(wait_until(Duration::from_secs(5), || seen.lock().len() == 1));
    assert_eq!(seen.lock()[0].1, ka.node_identity());
    // The same layer again is a replay.
    assert!(ingress.deliver_relay(kb.node_identity(), inner));
    assert!(wait_until(Duration::from_secs(5), || c
        .stats()
        .drops(DropReason::RelayReplayed)
        == 1));
    assert_eq!(seen.lock().len(), 1);
}
