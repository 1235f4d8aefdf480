//! Unit tests of relay receipts through Routers, without threads: a message from A through
//! relay B to C, the receipt's way back, a forged receipt, and the retry on another relay when
//! no receipt comes. Keys come from fixed seeds; time is stepped by hand.

use std::sync::Arc;
use std::time::Duration;

use super::{Router, RouterLimits, RouterOutput};
use crate::identity::{EngineIdentity, Keypair, NodeIdentity};
use crate::mail::{DropReason, RemoteSend, RouteHeader};
use crate::relay::{Candidate, ReceiptLimits, RelayMode, RelayPolicy};
use crate::runtime::stats::NodeStats;
use crate::time::Now;
use crate::wire::{Destination, MessageId, TransportKind};

fn key(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32])
}

struct Hop {
    router: Router,
    stats: Arc<NodeStats>,
    id: NodeIdentity,
}

fn hop(n: u8, mode: RelayMode, relays: &[u8], now: Now) -> Hop {
    let k = key(n);
    let stats = Arc::new(NodeStats::default());
    let mut router = Router::new(
        k.node_identity(),
        Arc::clone(&stats),
        RouterLimits::default(),
        true,
    );
    let policy = RelayPolicy {
        mode,
        receipts: ReceiptLimits {
            timeout: Duration::from_millis(500),
            attempts: 2,
            ..ReceiptLimits::default()
        },
        ..RelayPolicy::default()
    };
    router.enable_relay(&k, [n; 32], policy);
    let candidates = relays
        .iter()
        .map(|r| Candidate {
            node: key(*r).node_identity(),
            trust: 200 - *r,
            reputation: 128,
            rtt: None,
            loss_ppm: None,
            transport: TransportKind::Quic,
        })
        .collect();
    router.set_relay_candidates(now, candidates);
    Hop {
        router,
        stats,
        id: k.node_identity(),
    }
}

/// The relay frames `hop` hands to the Transport, as (next node, payload).
fn frames(hop: &mut Hop) -> Vec<(NodeIdentity, Vec<u8>)> {
    std::iter::from_fn(|| hop.router.poll_output())
        .filter_map(|o| match o {
            RouterOutput::Transport(s) if s.relay.is_some() => Some((s.node, s.wire)),
            _ => None,
        })
        .collect()
}

fn send_to(a: &mut Hop, dst: NodeIdentity, now: Now) {
    let header = RouteHeader {
        src: EngineIdentity(key(1).derive_engine("app").engine_identity().0),
        dst: Destination::Node(dst),
        id: MessageId(7),
        expiry: Some(now.wall.after(Duration::from_secs(30))),
        rprefs: None,
        tprefs: None,
        notify: false,
    };
    // The Transport has no address for C: the Router relays.
    a.router
        .handle_no_direct_path(now, RemoteSend::message(dst, header, b"signed".to_vec()));
}

#[test]
fn a_receipt_travels_back_through_the_relay_and_a_forged_one_is_refused() {
    let now = Now::read();
    let mut a = hop(1, RelayMode::Never, &[2], now);
    let mut b = hop(2, RelayMode::Anyone, &[], now);
    let mut c = hop(3, RelayMode::Never, &[], now);
    send_to(&mut a, c.id, now);
    let [(to_b, layer)] = frames(&mut a).try_into().unwrap();
    assert_eq!(to_b, b.id);
    assert_eq!(a.router.relay_awaiting_receipts(), 1);
    b.router.handle_relay(now, a.id, layer, None);
    let [(to_c, layer)] = frames(&mut b).try_into().unwrap();
    assert_eq!(to_c, c.id);
    c.router.handle_relay(now, b.id, layer, None);
    let [(back_to_b, record)] = frames(&mut c).try_into().unwrap();
    assert_eq!(
        back_to_b, b.id,
        "the receipt goes to the peer the layer came from"
    );
    // A forged copy (another token) reaching A through B is refused, and A keeps waiting.
    b.router.handle_relay(now, c.id, record.clone(), None);
    let [(back_to_a, record_for_a)] = frames(&mut b).try_into().unwrap();
    assert_eq!(back_to_a, a.id);
    let mut forged = record_for_a.clone();
    *forged.last_mut().unwrap() ^= 1;
    a.router.handle_relay(now, b.id, forged, None);
    assert_eq!(a.stats.snapshot().drops(DropReason::RelayBadReceipt), 1);
    assert_eq!(a.router.relay_awaiting_receipts(), 1);
    // The real one ends the wait.
    a.router.handle_relay(now, b.id, record_for_a.clone(), None);
    assert_eq!(a.stats.snapshot().relay_receipts, 1);
    assert_eq!(a.router.relay_awaiting_receipts(), 0);
    // Once answered, the same receipt again matches nothing, at A and at B.
    a.router.handle_relay(now, b.id, record_for_a, None);
    b.router.handle_relay(now, c.id, record, None);
    assert_eq!(a.stats.snapshot().drops(DropReason::RelayUnknownReceipt), 1);
    assert_eq!(b.stats.snapshot().drops(DropReason::RelayUnknownReceipt), 1);
    assert!(frames(&mut b).is_empty());
    // Nothing was retried.
    let later = Now {
        instant: now.instant + Duration::from_secs(1),
        wall: now.wall.after(Duration::from_secs(1)),
    };
    a.router.handle_timeout(later);
    assert!(frames(&mut a).is_empty());
    assert_eq!(a.stats.snapshot().relay_retries, 0);
}

#[test]
fn no_receipt_means_another_relay_then_a_counted_drop() {
    let now = Now::read();
    // A knows relays 2 (preferred: more trust) and 4.
    let mut a = hop(1, RelayMode::Never, &[2, 4], now);
    let c = key(3).node_identity();
    send_to(&mut a, c, now);
    let [(first, _)] = frames(&mut a).try_into().unwrap();
    assert_eq!(first, key(2).node_identity());
    assert_eq!(
        a.router.poll_timeout(),
        Some(now.instant + Duration::from_millis(500))
    );
    let at = |ms: u64| Now {
        instant: now.instant + Duration::from_millis(ms),
        wall: now.wall.after(Duration::from_millis(ms)),
    };
    a.router.handle_timeout(at(499));
    assert!(frames(&mut a).is_empty(), "not yet due");
    a.router.handle_timeout(at(500));
    let [(second, _)] = frames(&mut a).try_into().unwrap();
    assert_eq!(
        second,
        key(4).node_identity(),
        "the suspect relay is avoided"
    );
    assert_eq!(a.stats.snapshot().relay_retries, 1);
    // The second (last) attempt goes unanswered too: the message is dropped, and counted.
    a.router.handle_timeout(at(1000));
    assert!(frames(&mut a).is_empty());
    assert_eq!(a.stats.snapshot().drops(DropReason::RelayUnacknowledged), 1);
    assert_eq!(a.router.relay_awaiting_receipts(), 0);
    // Both relays are suspect now; a new message still goes (through the best of them) rather
    // than waiting for a relay that is not.
    send_to(&mut a, c, at(1001));
    assert_eq!(frames(&mut a).len(), 1);
}
