//! Relay layers, policy and path choice, on their own.

use std::time::{Duration, Instant};

use super::keys::{x25519_public, DhSecret};
use super::layer::testing::{deliver_plain, forward_plain, seal_raw};
use super::layer::{padded_len, sealed_len};
use super::policy::RateLimiter;
use super::*;
use crate::identity::{Keypair, NodeIdentity};
use crate::mail::DropReason;
use crate::time::{Now, Timestamp};

fn key(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32])
}

fn now() -> Now {
    Now {
        instant: Instant::now(),
        wall: Timestamp(1_800_000_000_000),
    }
}

fn soon(now: Now) -> Timestamp {
    now.wall.after(Duration::from_secs(30))
}

fn sealer(k: &Keypair) -> Sealer {
    Sealer::new(k, [9; 32], SealerLimits::default())
}

fn opener(k: &Keypair) -> Opener {
    Opener::new(k, OpenerLimits::default())
}

#[test]
fn node_keys_agree_through_the_birational_map() {
    let (a, b) = (key(1), key(2));
    let sa = DhSecret::of_node(&a);
    let sb = DhSecret::of_node(&b);
    assert_eq!(Some(sa.public()), x25519_public(&a.node_identity()));
    let ab = sa
        .agree(&x25519_public(&b.node_identity()).unwrap())
        .unwrap();
    let ba = sb
        .agree(&x25519_public(&a.node_identity()).unwrap())
        .unwrap();
    assert_eq!(ab, ba);
    // The identity point (small order) has no relay key.
    let mut ident = [0u8; 32];
    ident[0] = 1;
    assert_eq!(x25519_public(&NodeIdentity(ident)), None);
}

#[test]
fn one_relay_forwards_and_the_destination_delivers_with_the_proven_source() {
    let (a, b, c) = (key(1), key(2), key(3));
    let t = now();
    let path = [b.node_identity(), c.node_identity()];
    let layer = sealer(&a)
        .seal(t, &path, b"signed message", soon(t))
        .unwrap();
    assert_eq!(layer.len(), sealed_len(2, 14));
    let Opened::Forward {
        next, layer: inner, ..
    } = opener(&b).open(t, layer).unwrap()
    else {
        panic!("B forwards");
    };
    assert_eq!(next, c.node_identity());
    let Opened::Deliver {
        src,
        message,
        expiry,
        ..
    } = opener(&c).open(t, inner).unwrap()
    else {
        panic!("C delivers");
    };
    assert_eq!(src, a.node_identity());
    assert_eq!(message, b"signed message");
    assert_eq!(expiry, soon(t));
}

#[test]
fn two_relays_each_learn_only_their_next_hop() {
    let (a, b, c, d) = (key(1), key(2), key(3), key(4));
    let t = now();
    let path = [b.node_identity(), c.node_identity(), d.node_identity()];
    let layer = sealer(&a).seal(t, &path, b"hello", soon(t)).unwrap();
    let Opened::Forward { next, layer, .. } = opener(&b).open(t, layer).unwrap() else {
        panic!()
    };
    assert_eq!(next, c.node_identity());
    // D cannot open what is sealed to C.
    assert_eq!(
        opener(&d).open(t, layer.clone()),
        Err(DropReason::RelayBadMac)
    );
    let Opened::Forward { next, layer, .. } = opener(&c).open(t, layer).unwrap() else {
        panic!()
    };
    assert_eq!(next, d.node_identity());
    assert!(matches!(
        opener(&d).open(t, layer).unwrap(),
        Opened::Deliver { src, .. } if src == a.node_identity()
    ));
}

#[test]
fn any_altered_byte_is_detected_and_nothing_is_remembered() {
    let (a, b, c) = (key(1), key(2), key(3));
    let t = now();
    let path = [b.node_identity(), c.node_identity()];
    let layer = sealer(&a).seal(t, &path, b"do not touch", soon(t)).unwrap();
    let Opened::Forward { layer: inner, .. } = opener(&b).open(t, layer).unwrap() else {
        panic!()
    };
    let mut oc = opener(&c);
    for i in 0..inner.len() {
        let mut bad = inner.clone();
        bad[i] ^= 0x20;
        let got = oc.open(t, bad);
        assert!(
            matches!(
                got,
                Err(DropReason::RelayBadMac) | Err(DropReason::RelayMalformed)
            ),
            "byte {i}: {got:?}"
        );
    }
    assert_eq!(oc.sessions(), 0, "failed layers leave no session");
    assert!(oc.open(t, inner).is_ok(), "the untouched layer still opens");
}

#[test]
fn a_replayed_layer_is_refused() {
    let (a, b, c) = (key(1), key(2), key(3));
    let t = now();
    let mut s = sealer(&a);
    let mut ob = opener(&b);
    let path = [b.node_identity(), c.node_identity()];
    let first = s.seal(t, &path, b"1", soon(t)).unwrap();
    let second = s.seal(t, &path, b"2", soon(t)).unwrap();
    assert!(ob.open(t, second.clone()).is_ok());
    assert!(
        ob.open(t, first.clone()).is_ok(),
        "out of order within the window"
    );
    assert_eq!(ob.open(t, first), Err(DropReason::RelayReplayed));
    assert_eq!(ob.open(t, second), Err(DropReason::RelayReplayed));
    assert_eq!(ob.sessions(), 1);
}

#[test]
fn expired_and_too_distant_expiries_are_refused() {
    let (a, b, c) = (key(1), key(2), key(3));
    let t = now();
    let path = [b.node_identity(), c.node_identity()];
    let past = sealer(&a).seal(t, &path, b"x", t.wall).unwrap();
    assert_eq!(opener(&b).open(t, past), Err(DropReason::RelayExpired));
    let far = t.wall.after(Duration::from_secs(3600));
    let far = sealer(&a).seal(t, &path, b"x", far).unwrap();
    assert_eq!(opener(&b).open(t, far), Err(DropReason::RelayExpired));
}

#[test]
fn a_forged_source_is_refused() {
    // M seals a delivery to C claiming to come from A: it cannot make A's proof.
    let (a, c, m) = (key(1), key(3), key(7));
    let t = now();
    let eph = [5u8; 32];
    let mut plain = deliver_plain(&m, &c.node_identity(), eph, b"forged", soon(t));
    plain[10..42].copy_from_slice(&a.node_identity().0);
    let layer = seal_raw(eph, 0, &c.node_identity(), plain);
    assert_eq!(opener(&c).open(t, layer), Err(DropReason::RelayBadSource));
    // M's own proof passes.
    let plain = deliver_plain(&m, &c.node_identity(), eph, b"honest", soon(t));
    let layer = seal_raw(eph, 1, &c.node_identity(), plain);
    assert!(matches!(
        opener(&c).open(t, layer),
        Ok(Opened::Deliver { src, .. }) if src == m.node_identity()
    ));
}

#[test]
fn one_session_cannot_switch_source() {
    let (c, m, n) = (key(3), key(7), key(8));
    let t = now();
    let eph = [5u8; 32];
    let mut oc = opener(&c);
    let plain = deliver_plain(&m, &c.node_identity(), eph, b"1", soon(t));
    assert!(oc
        .open(t, seal_raw(eph, 0, &c.node_identity(), plain))
        .is_ok());
    let plain = deliver_plain(&n, &c.node_identity(), eph, b"2", soon(t));
    assert_eq!(
        oc.open(t, seal_raw(eph, 1, &c.node_identity(), plain)),
        Err(DropReason::RelayBadSource)
    );
}

#[test]
fn too_deep_and_malformed_layers_are_refused() {
    let (b, c) = (key(2), key(3));
    let t = now();
    let eph = [6u8; 32];
    let plain = forward_plain(&c.node_identity(), MAX_RELAY_DEPTH + 1, &[0; 80], soon(t));
    let layer = seal_raw(eph, 0, &b.node_identity(), plain);
    assert_eq!(opener(&b).open(t, layer), Err(DropReason::RelayTooDeep));
    // A forward layer with depth 1 (a forward must have a node after it).
    let plain = forward_plain(&c.node_identity(), 1, &[0; 80], soon(t));
    let layer = seal_raw(eph, 1, &b.node_identity(), plain);
    assert_eq!(opener(&b).open(t, layer), Err(DropReason::RelayMalformed));
    // A forward to this node itself.
    let plain = forward_plain(&b.node_identity(), 2, &[0; 80], soon(t));
    let layer = seal_raw(eph, 2, &b.node_identity(), plain);
    assert_eq!(opener(&b).open(t, layer), Err(DropReason::RelayMalformed));
    // Every truncation of a good layer, and junk, is refused without a panic.
    let good = sealer(&key(1))
        .seal(t, &[b.node_identity(), c.node_identity()], b"m", soon(t))
        .unwrap();
    let mut ob = opener(&b);
    for n in 0..good.len() {
        assert!(ob.open(t, good[..n].to_vec()).is_err());
    }
    let mut junk = good.clone();
    junk[0] = 2;
    assert_eq!(ob.open(t, junk), Err(DropReason::RelayMalformed));
}

#[test]
fn a_full_session_table_refuses_new_senders_until_sessions_go_idle() {
    let b = key(2);
    let c = key(3);
    let t = now();
    let limits = OpenerLimits {
        max_sessions: 2,
        ..OpenerLimits::default()
    };
    let mut ob = Opener::new(&b, limits);
    let path = [b.node_identity(), c.node_identity()];
    for n in 10..12 {
        let l = sealer(&key(n)).seal(t, &path, b"m", soon(t)).unwrap();
        let got = ob.open(t, l);
        assert!(got.is_ok(), "{got:?}");
    }
    let l = sealer(&key(12)).seal(t, &path, b"m", soon(t)).unwrap();
    assert_eq!(ob.open(t, l), Err(DropReason::RelaySessionsFull));
    assert_eq!(ob.sessions(), 2);
    // Ten minutes later the idle sessions are forgotten and a new sender gets in.
    let later = Now {
        instant: t.instant + Duration::from_secs(601),
        wall: t.wall.after(Duration::from_secs(601)),
    };
    let l = sealer(&key(12))
        .seal(later, &path, b"m", soon(later))
        .unwrap();
    let got = ob.open(later, l);
    assert!(got.is_ok(), "{got:?}");
    assert_eq!(ob.sessions(), 1);
}

#[test]
fn ephemeral_keys_are_renewed_per_epoch() {
    let (a, b, c) = (key(1), key(2), key(3));
    let t = now();
    let mut s = Sealer::new(
        &a,
        [1; 32],
        SealerLimits {
            renew_after_layers: 2,
            ..SealerLimits::default()
        },
    );
    let path = [b.node_identity(), c.node_identity()];
    let l1 = s.seal(t, &path, b"1", soon(t)).unwrap();
    let l2 = s.seal(t, &path, b"2", soon(t)).unwrap();
    let l3 = s.seal(t, &path, b"3", soon(t)).unwrap();
    assert_eq!(l1[1..33], l2[1..33]);
    assert_ne!(l2[1..33], l3[1..33]);
    let mut ob = opener(&b);
    for l in [l1, l2, l3] {
        assert!(ob.open(t, l).is_ok());
    }
    assert_eq!(ob.sessions(), 2);
    // The same seed gives the same keys: sealing is deterministic given its inputs.
    let mut again = Sealer::new(
        &a,
        [1; 32],
        SealerLimits {
            renew_after_layers: 2,
            ..SealerLimits::default()
        },
    );
    let l1b = again.seal(t, &path, b"1", soon(t)).unwrap();
    assert_eq!(l1b[..41], s_first_header(&a, t, &path)[..41]);
}

fn s_first_header(a: &Keypair, t: Now, path: &[NodeIdentity]) -> Vec<u8> {
    Sealer::new(a, [1; 32], SealerLimits::default())
        .seal(t, path, b"1", soon(t))
        .unwrap()
}

#[test]
fn padding_hides_the_size_within_a_class() {
    assert_eq!(padded_len(1), 256);
    assert_eq!(padded_len(256), 256);
    assert_eq!(padded_len(257), 1024);
    assert_eq!(padded_len(1 << 20), 1 << 20);
    assert_eq!(padded_len((1 << 20) + 1), 2 << 20);
    let (a, b, c) = (key(1), key(2), key(3));
    let t = now();
    let path = [b.node_identity(), c.node_identity()];
    let mut s = sealer(&a);
    let short = s.seal(t, &path, &[1; 10], soon(t)).unwrap();
    let long = s.seal(t, &path, &[1; 150], soon(t)).unwrap();
    assert_eq!(short.len(), long.len());
}

#[test]
fn paths_prefer_trust_then_round_trip_time_and_skip_banned_nodes() {
    let n = |b: u8| NodeIdentity([b; 32]);
    let c = |b: u8, trust: u8, rtt_ms: Option<u64>| Candidate {
        node: n(b),
        trust,
        reputation: 128,
        rtt: rtt_ms.map(Duration::from_millis),
        loss_ppm: Some(0),
        transport: crate::wire::TransportKind::Quic,
    };
    let cands = [
        c(1, 128, Some(50)),
        c(2, 128, Some(5)),
        c(3, 200, None),
        c(4, 0, Some(1)),
        c(5, 128, None),
    ];
    let own = n(9);
    assert_eq!(
        choose_path(&cands, &own, &n(8), 1, &[]),
        Some(vec![n(3), n(8)])
    );
    assert_eq!(
        choose_path(&cands, &own, &n(8), 3, &[]),
        Some(vec![n(3), n(2), n(1), n(8)])
    );
    assert_eq!(
        choose_path(&cands, &own, &n(8), 2, &[n(3)]),
        Some(vec![n(2), n(1), n(8)])
    );
    // The destination is never its own relay; banned nodes never relay.
    assert_eq!(
        choose_path(&cands, &own, &n(3), 1, &[]),
        Some(vec![n(2), n(3)])
    );
    assert_eq!(choose_path(&cands, &own, &n(8), 5, &[]), None);
    // A lossy connection ranks after the others of its trust, however fast.
    let mut lossy = cands;
    lossy[1].loss_ppm = Some(super::path::LOSSY_PPM + 1);
    assert_eq!(
        choose_path(&lossy, &own, &n(8), 3, &[]),
        Some(vec![n(3), n(1), n(5), n(8)])
    );
    lossy[1].loss_ppm = Some(super::path::LOSSY_PPM);
    assert_eq!(
        choose_path(&lossy, &own, &n(8), 2, &[]),
        Some(vec![n(3), n(2), n(8)])
    );
    // A low reputation in the identity store ranks after the others of its trust, however
    // fast; it does not outweigh trust.
    let mut disreputable = cands;
    disreputable[1].reputation = super::path::LOW_REPUTATION - 1;
    disreputable[2].reputation = 0;
    assert_eq!(
        choose_path(&disreputable, &own, &n(8), 3, &[]),
        Some(vec![n(3), n(1), n(5), n(8)])
    );
    disreputable[1].reputation = super::path::LOW_REPUTATION;
    assert_eq!(
        choose_path(&disreputable, &own, &n(8), 2, &[]),
        Some(vec![n(3), n(2), n(8)])
    );
}

#[test]
fn rate_limits_refuse_over_the_rate_and_refill() {
    let limits = RateLimits {
        msgs_per_s: 3,
        bytes_per_s: 1000,
        max_sources: 2,
    };
    let mut r = RateLimiter::default();
    let t = Instant::now();
    let p = NodeIdentity([1; 32]);
    for _ in 0..3 {
        r.admit(&limits, t, p, 10).unwrap();
    }
    assert_eq!(r.admit(&limits, t, p, 10), Err(DropReason::RelayOverRate));
    let later = t + Duration::from_secs(1);
    assert_eq!(
        r.admit(&limits, later, p, 2000),
        Err(DropReason::RelayOverBytes)
    );
    r.admit(&limits, later, p, 900).unwrap();
    // Bounded: more sources than the table holds.
    for b in 2..10 {
        let _ = r.admit(&limits, later, NodeIdentity([b; 32]), 1);
        assert!(r.len() <= 2);
    }
    assert!(!RelayPolicy::default().forwards_for(&p));
}
