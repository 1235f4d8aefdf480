//! End-to-end relay receipts between real nodes over QUIC on 127.0.0.1: a relay that
//! acknowledges what it should forward and then drops it, or alters it, is noticed by the
//! source (no receipt comes back) and another relay carries the message; nothing is lost and
//! nothing is delivered twice; relays that return receipts earn reputation.
//!
//! The diamond: relays B1 and B2 listen; A and C dial out to both, so neither has an address for
//! the other. A and C trust B1 more than B2, so B1 is everyone's first choice.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use netmachine::mail::identity::AnyIdentity;
use netmachine::relay::receipt::ReceiptLimits;
use netmachine::relay::{RelayFault, RelayMode, RelayPolicy};
use netmachine::transport::TransportConfig;
use netmachine::wire::Protocol;
use netmachine::{
    Context, DropReason, Engine, EngineIdentity, Input, Keypair, Node, NodeBuilder, NodeIdentity,
};

use common::wait_until;

const APP: Protocol = Protocol(Protocol::APP_BASE + 22);

/// Bodies the echo saw, with how many times each.
type Seen = Arc<Mutex<BTreeMap<Vec<u8>, u32>>>;

struct Echo {
    seen: Seen,
}

impl Engine for Echo {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        if let Input::Message(m) = input {
            *self.seen.lock().entry(m.body().to_vec()).or_default() += 1;
            let body = m.body().to_vec();
            ctx.reply(&m, body);
        }
    }
}

/// Receipts are waited for 300 ms here (2 s by default), so a test notices a bad relay fast.
fn policy(mode: RelayMode, fault: RelayFault) -> RelayPolicy {
    RelayPolicy {
        mode,
        receipts: ReceiptLimits {
            timeout: Duration::from_millis(300),
            ..ReceiptLimits::default()
        },
        fault,
        ..RelayPolicy::default()
    }
}

fn builder(key: &Keypair, listen: bool, policy: RelayPolicy) -> NodeBuilder {
    let mut transport = TransportConfig::default();
    if listen {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        transport.listen.push(any);
    }
    NodeBuilder::new(key.clone())
        .transport(transport)
        .relay_policy(policy)
        .without_interdomain()
        .without_domains()
}

struct Diamond {
    a: Node,
    b1: Node,
    b2: Node,
    c: Node,
    echo: EngineIdentity,
    seen: Seen,
}

fn diamond(b1_fault: RelayFault) -> Diamond {
    let b1 = builder(
        &Keypair::generate(),
        true,
        policy(RelayMode::Anyone, b1_fault),
    )
    .start()
    .unwrap();
    let b2 = builder(
        &Keypair::generate(),
        true,
        policy(RelayMode::Anyone, RelayFault::None),
    )
    .start()
    .unwrap();
    let edge = |b: NodeBuilder| {
        b.peer(b1.advert())
            .permanent(b1.identity())
            .trust(b1.identity(), 200)
            .peer(b2.advert())
            .permanent(b2.identity())
    };
    let seen: Seen = Arc::default();
    let c = edge(builder(
        &Keypair::generate(),
        false,
        policy(RelayMode::Never, RelayFault::None),
    ))
    .engine(
        "echo",
        Echo {
            seen: Arc::clone(&seen),
        },
    )
    .start()
    .unwrap();
    let echo = c.engine_identity("echo").unwrap();
    let a = edge(builder(
        &Keypair::generate(),
        false,
        policy(RelayMode::Never, RelayFault::None),
    ))
    .engine_location(echo, c.identity())
    .start()
    .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        [&a, &c, &b1, &b2]
            .iter()
            .all(|n| n.connected_peers().len() == 2)
    }));
    Diamond {
        a,
        b1,
        b2,
        c,
        echo,
        seen,
    }
}

/// Sends `n` messages tagged `tag` from `client` to `dst` and waits for every echo; returns
/// the bodies answered (each counted once) or the first reason one was undeliverable.
fn round_trips(
    client: &mut netmachine::Client,
    dst: EngineIdentity,
    tag: &str,
    n: usize,
) -> Result<usize, DropReason> {
    let mut answered = std::collections::BTreeSet::new();
    for i in 0..n {
        client.send(dst, APP, format!("{tag} {i}").into_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered.len() < n && Instant::now() < deadline {
        match client.recv(Duration::from_millis(100)) {
            Some(Input::Message(m)) => {
                answered.insert(m.body().to_vec());
            }
            Some(Input::Undeliverable(u)) => return Err(u.reason),
            _ => {}
        }
    }
    Ok(answered.len())
}

/// Every body the echo saw, seen exactly once.
fn each_once(seen: &Seen, tag: &str, n: usize) {
    let seen = seen.lock();
    for i in 0..n {
        let body = format!("{tag} {i}").into_bytes();
        assert_eq!(seen.get(&body), Some(&1), "{tag} {i} seen once");
    }
}

fn reputation(node: &Node, of: NodeIdentity) -> u8 {
    match node.lookup(AnyIdentity::Node(of)).unwrap() {
        Some(netmachine::mail::identity::IdentityRecord::Node(r)) => r.reputation_or_default(),
        _ => netmachine::mail::identity::DEFAULT_REPUTATION,
    }
}

fn no_relay_losses(node: &Node) {
    let s = node.stats();
    assert_eq!(s.drops(DropReason::RelayUnacknowledged), 0, "{s}");
    assert_eq!(s.relay_untracked, 0, "{s}");
}

/// B1 acknowledges every layer it should forward and forwards nothing. A's first message (and
/// C's first answer) find no receipt, B1 becomes suspect and B2 carries everything, once.
#[test]
fn a_relay_that_drops_is_noticed_and_another_path_carries_the_message() {
    let d = diamond(RelayFault::Drop);
    let mut client = d.a.client("app").unwrap();
    assert_eq!(round_trips(&mut client, d.echo, "first", 1), Ok(1));
    let a = d.a.stats();
    assert!(a.relay_retries >= 1, "A tried another path: {a}");
    assert_eq!(d.b1.stats().relayed, 0, "B1 forwarded nothing");
    // From now on B1 is avoided.
    assert_eq!(round_trips(&mut client, d.echo, "more", 200), Ok(200));
    each_once(&d.seen, "first", 1);
    each_once(&d.seen, "more", 200);
    let a = d.a.stats();
    assert!(a.relay_receipts >= 201, "{a}");
    assert_eq!(d.b1.stats().relayed, 0);
    assert!(d.b2.stats().relayed >= 2 * 201, "{}", d.b2.stats());
    no_relay_losses(&d.a);
    no_relay_losses(&d.c);
    // Good service earns reputation: B2 returned over 200 receipts to A (one point per 64).
    assert!(wait_until(Duration::from_secs(5), || reputation(
        &d.a,
        d.b2.identity()
    )
        > netmachine::mail::identity::DEFAULT_REPUTATION));
    assert!(reputation(&d.a, d.b1.identity()) <= netmachine::mail::identity::DEFAULT_REPUTATION);
}

/// B1 forwards every layer with a byte flipped. The next hop refuses it (`relay_bad_mac`,
/// against B1's conduct) and no receipt comes back, so the source tries B2.
#[test]
fn a_relay_that_corrupts_is_detected_downstream_and_avoided_upstream() {
    let d = diamond(RelayFault::Corrupt);
    let mut client = d.a.client("app").unwrap();
    assert_eq!(round_trips(&mut client, d.echo, "first", 1), Ok(1));
    assert_eq!(round_trips(&mut client, d.echo, "more", 100), Ok(100));
    each_once(&d.seen, "first", 1);
    each_once(&d.seen, "more", 100);
    let (a, c) = (d.a.stats(), d.c.stats());
    // A's request through B1 was refused at C; C's answer through B1 at A.
    assert!(c.drops(DropReason::RelayBadMac) >= 1, "{c}");
    assert!(a.drops(DropReason::RelayBadMac) >= 1, "{a}");
    assert!(a.relay_retries >= 1 && c.relay_retries >= 1, "{a}\n{c}");
    assert!(
        d.b1.stats().relayed <= 4,
        "B1 was avoided: {}",
        d.b1.stats()
    );
    no_relay_losses(&d.a);
    no_relay_losses(&d.c);
}

/// With both relays honest, every relayed message is answered by a receipt and none is
/// retried.
#[test]
fn honest_relays_return_a_receipt_for_every_message() {
    let d = diamond(RelayFault::None);
    let mut client = d.a.client("app").unwrap();
    assert_eq!(round_trips(&mut client, d.echo, "m", 300), Ok(300));
    each_once(&d.seen, "m", 300);
    assert!(wait_until(Duration::from_secs(5), || {
        d.a.stats().relay_receipts >= 300 && d.c.stats().relay_receipts >= 300
    }));
    let (a, c) = (d.a.stats(), d.c.stats());
    assert_eq!((a.relay_retries, c.relay_retries), (0, 0), "{a}\n{c}");
    assert_eq!(a.drops(DropReason::RelayUnknownReceipt), 0, "{a}");
    assert_eq!(d.b2.stats().relayed, 0, "B1, trusted more, carried all");
    no_relay_losses(&d.a);
    no_relay_losses(&d.c);
}
