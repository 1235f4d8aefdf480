//! The `relay_layer` target's hand-made seeds and what each must open to (docs/wire.md §12G):
//! a forward and a delivery sealed to node C, and what a hostile peer or a broken path sends —
//! cut, altered, another version, expired, too deep, a forward to C itself, a forged source;
//! and receipt records (§12G.5), whole and broken.

use netmachine::identity::Keypair;
use netmachine::relay::layer::testing::{deliver_plain, forward_plain, seal_raw};
use netmachine::relay::receipt::{decode_record, encode_record, is_receipt_record, Receipt};
use netmachine::relay::{Opened, Opener, OpenerLimits};
use netmachine::time::{Now, Timestamp};

use super::{flipped, truncated, with_byte};

const NOW: Timestamp = Timestamp(super::checks::RELAY_NOW_MS);

/// The seeds, `(name, bytes)`; names starting with `valid-` open.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let a = Keypair::from_seed(&[1; 32]);
    let b = Keypair::from_seed(&[2; 32]).node_identity();
    let c = Keypair::from_seed(&super::checks::RELAY_NODE_SEED).node_identity();
    let soon = Timestamp(NOW.0 + 60_000);
    let inner = seal_raw(
        [0x11; 32],
        5,
        &b,
        deliver_plain(&a, &b, [0x11; 32], b"m", soon),
    );
    let forward = seal_raw([0x22; 32], 0, &c, forward_plain(&b, 2, &inner, soon));
    let deliver = seal_raw(
        [0x33; 32],
        0,
        &c,
        deliver_plain(&a, &c, [0x33; 32], b"an EngineMessage wire form", soon),
    );
    let mut forged = deliver_plain(&a, &c, [0x44; 32], b"forged", soon);
    forged[10..42].copy_from_slice(&b.0);
    let n = forward.len();
    let receipts = encode_record(&[
        Receipt {
            id: [0xa1; 16],
            token: [0xb2; 16],
        },
        Receipt {
            id: [0xc3; 16],
            token: [0xd4; 16],
        },
    ]);
    vec![
        ("valid-forward", forward.clone()),
        ("valid-deliver", deliver.clone()),
        ("truncated-header", truncated(&forward, 40)),
        ("truncated-tag", truncated(&forward, n - 1)),
        ("flipped-tag", flipped(&forward, n - 1, 0x01)),
        ("flipped-ciphertext", flipped(&deliver, 60, 0x80)),
        ("flipped-counter", flipped(&forward, 33, 0x01)),
        ("unknown-version", with_byte(&forward, 0, 2)),
        (
            "expired",
            seal_raw([0x55; 32], 0, &c, forward_plain(&b, 2, &inner, NOW)),
        ),
        (
            "too-deep",
            seal_raw([0x66; 32], 0, &c, forward_plain(&b, 9, &inner, soon)),
        ),
        (
            "forward-to-itself",
            seal_raw([0x77; 32], 0, &c, forward_plain(&c, 2, &inner, soon)),
        ),
        ("forged-source", seal_raw([0x44; 32], 0, &c, forged)),
        ("sealed-to-another-node", inner),
        ("valid-receipts", receipts.clone()),
        ("receipts-count-zero", with_byte(&receipts, 1, 0)),
        ("receipts-count-over", with_byte(&receipts, 1, 65)),
        (
            "receipts-truncated",
            truncated(&receipts, receipts.len() - 1),
        ),
    ]
}

/// What node C's Router makes of `data`: a receipt record decoded, or a layer opened.
pub fn outcome(data: &[u8]) -> String {
    if is_receipt_record(data) {
        return match decode_record(data) {
            Ok(r) => format!("{} receipts", r.len()),
            Err(reason) => reason.label().to_string(),
        };
    }
    let key = Keypair::from_seed(&super::checks::RELAY_NODE_SEED);
    let now = Now {
        instant: std::time::Instant::now(),
        wall: NOW,
    };
    match Opener::new(&key, OpenerLimits::default()).open(now, data.to_vec()) {
        Ok(Opened::Forward { next, .. }) => format!("forward to {}", next.short()),
        Ok(Opened::Deliver { src, .. }) => format!("deliver from {}", src.short()),
        Err(reason) => reason.label().to_string(),
    }
}

/// A part of [`outcome`] the seed called `name` must produce.
pub fn expected(name: &str) -> &'static str {
    match name {
        "valid-forward" => "forward to",
        "valid-deliver" => "deliver from",
        "valid-receipts" => "2 receipts",
        "truncated-header"
        | "unknown-version"
        | "forward-to-itself"
        | "receipts-count-zero"
        | "receipts-count-over"
        | "receipts-truncated" => "relay_malformed",
        "truncated-tag"
        | "flipped-tag"
        | "flipped-ciphertext"
        | "flipped-counter"
        | "sealed-to-another-node" => "relay_bad_mac",
        "expired" => "relay_expired",
        "too-deep" => "relay_too_deep",
        "forged-source" => "relay_bad_source",
        other => panic!("relay_layer: seed {other} has no expected outcome"),
    }
}
