//! Hostile input at the Router's ingress: tampered, forged, weak-keyed, replayed, duplicated,
//! misattributed and malformed messages are each refused with their own reason; honest ones
//! are delivered once.

mod common;

use std::time::Duration;

use netmachine::identity::Keypair;
use netmachine::time::Timestamp;
use netmachine::wire::{Destination, EngineMessage};
use netmachine::{DropReason, EngineIdentity, Input, NodeBuilder, Origin};

use common::{drain_bodies, signed_wire, unsigned, wait_until};

fn sign(mut m: EngineMessage, key: &Keypair) -> Vec<u8> {
    let mut wire = Vec::new();
    m.sign_into_wire(key, &mut wire, &mut Vec::new());
    wire
}

#[test]
fn each_kind_of_bad_message_is_refused_with_its_reason() {
    let node_key = Keypair::generate();
    let node = NodeBuilder::new(node_key).start().unwrap();
    let mut sink = node.client("sink").unwrap();
    let dst = Destination::Engine(sink.identity());
    let ingress = node.ingress();

    let peer = Keypair::generate();
    let remote = peer.derive_engine("app");
    let from = peer.node_identity();

    // An honest message is delivered, marked as remote.
    ingress.deliver(from, signed_wire(&remote, &peer, dst, 1000, b"honest"));
    match sink.recv(Duration::from_secs(5)) {
        Some(Input::Message(m)) => {
            assert_eq!(m.body(), b"honest");
            assert_eq!(m.origin(), Origin::Remote { via: from });
            assert_eq!(m.sender().verified(), Some(remote.engine_identity()));
        }
        other => panic!("expected the honest message, got {other:?}"),
    }

    // Tampered body: the signature no longer matches.
    let mut wire = signed_wire(&remote, &peer, dst, 1001, b"tampered");
    let n = wire.len();
    wire[n - 65] ^= 1;
    ingress.deliver(from, wire);

    // Wrong key: signed by another key while claiming `remote` as source.
    let impostor = Keypair::generate();
    ingress.deliver(
        from,
        sign(unsigned(&remote, &peer, dst, 1002, b"forged"), &impostor),
    );

    // Weak key: the identity point (small order) as source.
    let mut weak = unsigned(&remote, &peer, dst, 1003, b"weak");
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    weak.src = EngineIdentity(identity_point);
    ingress.deliver(from, sign(weak, &remote));

    // Duplicate: the honest message again.
    ingress.deliver(from, signed_wire(&remote, &peer, dst, 1000, b"honest"));

    // Replay: an id far below what the window remembers (after a newer one is accepted).
    ingress.deliver(from, signed_wire(&remote, &peer, dst, 100_000, b"newer"));
    ingress.deliver(from, signed_wire(&remote, &peer, dst, 500, b"old"));

    // Misattributed: claims node `peer` but arrives from another peer.
    ingress.deliver(
        Keypair::generate().node_identity(),
        signed_wire(&remote, &peer, dst, 1004, b"x"),
    );

    // Expired, and too far in the future.
    let mut expired = unsigned(&remote, &peer, dst, 1005, b"late");
    expired.expiry = Some(Timestamp(1));
    ingress.deliver(from, sign(expired, &remote));
    let mut far = unsigned(&remote, &peer, dst, 1006, b"far");
    far.expiry = Some(Timestamp(u64::MAX / 2));
    ingress.deliver(from, sign(far, &remote));

    // Malformed bytes and an unknown version.
    ingress.deliver(from, vec![1, 0, 0, 0, 9, 9, 9]);
    ingress.deliver(from, vec![7, 0, 0, 0]);

    // Not for this node: an engine it does not run.
    let elsewhere = Destination::Engine(EngineIdentity([9; 32]));
    ingress.deliver(from, signed_wire(&remote, &peer, elsewhere, 1007, b"lost"));

    let expect = [
        (DropReason::BadSignature, 2),
        (DropReason::WeakKey, 1),
        (DropReason::Duplicate, 1),
        (DropReason::Replay, 1),
        (DropReason::SourceNodeMismatch, 1),
        (DropReason::Expired, 1),
        (DropReason::ExpiryOutOfRange, 1),
        (DropReason::Malformed, 1),
        (DropReason::UnknownVersion, 1),
        (DropReason::NotForThisNode, 1),
    ];
    let total: u64 = expect.iter().map(|(_, n)| n).sum();
    assert!(wait_until(Duration::from_secs(5), || node
        .stats()
        .total_drops()
        == total));
    let stats = node.stats();
    for (reason, n) in expect {
        assert_eq!(stats.drops(reason), n, "{reason:?}: {stats}");
    }
    // Only the newer honest message got through besides the first.
    assert_eq!(
        drain_bodies(&mut sink, Duration::from_millis(200)),
        vec![b"newer".to_vec()]
    );
}

#[test]
fn ten_thousand_forgeries_and_replays_deliver_nothing_extra() {
    let node = NodeBuilder::new(Keypair::generate()).start().unwrap();
    let mut sink = node.client("sink").unwrap();
    let dst = Destination::Engine(sink.identity());
    let ingress = node.ingress();
    let peer = Keypair::generate();
    let remote = peer.derive_engine("app");
    let from = peer.node_identity();

    // 1,000 honest messages, each followed by 9 forgeries or replays of it.
    let mut scratch_rng: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        scratch_rng ^= scratch_rng << 13;
        scratch_rng ^= scratch_rng >> 7;
        scratch_rng ^= scratch_rng << 17;
        scratch_rng
    };
    for i in 0..1000u64 {
        let wire = signed_wire(&remote, &peer, dst, 10_000 + i, &i.to_le_bytes());
        ingress.deliver(from, wire.clone());
        for k in 0..9 {
            let mut bad = wire.clone();
            if k % 3 == 0 {
                // replay as is
            } else {
                // flip one bit somewhere after the version
                let pos = 4 + (next() as usize) % (bad.len() - 4);
                bad[pos] ^= 1 << (next() % 8);
            }
            ingress.deliver(from, bad);
        }
    }
    let bodies = {
        let mut all = Vec::new();
        while all.len() < 1000 {
            let got = drain_bodies(&mut sink, Duration::from_millis(500));
            if got.is_empty() {
                break;
            }
            all.extend(got);
        }
        all
    };
    let expected: Vec<Vec<u8>> = (0..1000u64).map(|i| i.to_le_bytes().to_vec()).collect();
    assert_eq!(
        bodies, expected,
        "exactly the honest messages, once, in order"
    );
    assert!(wait_until(Duration::from_secs(10), || node
        .stats()
        .total_drops()
        == 9000));
    let s = node.stats();
    assert_eq!(s.verified, 1000, "{s}");
}
