//! Tests of relay receipts: ids and tokens along a sealed path, the record codec, and the
//! bounds of the relay's and the source's tables.

use std::time::{Duration, Instant};

use super::receipt::*;
use super::{Opened, Opener, OpenerLimits, Sealer, SealerLimits};
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

fn node(n: u8) -> NodeIdentity {
    key(n).node_identity()
}

#[test]
fn ids_chain_along_the_path_and_only_the_destination_can_make_the_token() {
    let (a, b, c, d) = (key(1), key(2), key(3), key(4));
    let t = now();
    let expiry = t.wall.after(Duration::from_secs(30));
    let path = [b.node_identity(), c.node_identity(), d.node_identity()];
    let sealed = Sealer::new(&a, [9; 32], SealerLimits::default())
        .seal_tracked(t, &path, b"m", expiry)
        .unwrap();
    let open = |k: &Keypair, layer: Vec<u8>| {
        Opener::new(k, OpenerLimits::default())
            .open(t, layer)
            .unwrap()
    };
    let Opened::Forward {
        layer,
        id: b_in,
        next_id: b_out,
        ..
    } = open(&b, sealed.layer.clone())
    else {
        panic!("B forwards")
    };
    assert_eq!(b_in, sealed.id, "B knows the layer by the id A keeps");
    let Opened::Forward {
        layer,
        id: c_in,
        next_id: c_out,
        ..
    } = open(&c, layer)
    else {
        panic!("C forwards")
    };
    assert_eq!(c_in, b_out);
    let Opened::Deliver { receipt, .. } = open(&d, layer) else {
        panic!("D delivers")
    };
    assert_eq!(receipt.id, c_out);
    assert_eq!(
        receipt.token, sealed.token,
        "D's token is the one A expects"
    );
    assert_ne!(b_in, c_in);
    assert_ne!(c_in, c_out);
    // Another source sealing to D under the same ephemeral key material has another token.
    let other = Sealer::new(&key(5), [9; 32], SealerLimits::default())
        .seal_tracked(t, &path, b"m", expiry)
        .unwrap();
    assert_ne!(other.token, sealed.token);
}

#[test]
fn records_round_trip_and_malformed_ones_are_refused() {
    let receipts: Vec<Receipt> = (0..MAX_RECEIPTS_PER_RECORD as u8)
        .map(|i| Receipt {
            id: [i; 16],
            token: [!i; 16],
        })
        .collect();
    let record = encode_record(&receipts);
    assert_eq!(record.len(), 2 + 64 * RECEIPT_LEN);
    assert!(is_receipt_record(&record));
    assert_eq!(decode_record(&record).unwrap(), receipts);
    let one = encode_record(&receipts[..1]);
    assert_eq!(decode_record(&one).unwrap(), receipts[..1]);
    let malformed = Err(DropReason::RelayMalformed);
    assert_eq!(decode_record(&one[..one.len() - 1]), malformed);
    let mut longer = one.clone();
    longer.push(0);
    assert_eq!(decode_record(&longer), malformed);
    let mut zero = one.clone();
    zero[1] = 0;
    assert_eq!(decode_record(&zero[..2]), malformed);
    let mut over = record.clone();
    over[1] = 65;
    over.extend_from_slice(&[0; RECEIPT_LEN]);
    assert_eq!(decode_record(&over), malformed);
    assert_eq!(decode_record(&[RECEIPT_MARKER]), malformed);
    assert!(!is_receipt_record(&[1, 1]));
    assert!(!is_receipt_record(&[]));
}

#[test]
fn tokens_compare_whole() {
    let t = [7u8; 16];
    let mut u = t;
    assert!(tokens_match(&t, &u));
    u[15] ^= 1;
    assert!(!tokens_match(&t, &u));
}

#[test]
fn a_circuit_carries_one_receipt_and_is_bounded_in_number_and_time() {
    let t0 = Instant::now();
    let mut c = Circuits::new(CircuitLimits {
        max_circuits: 3,
        ttl: Duration::from_secs(30),
    });
    c.insert(t0, node(2), [1; 16], node(1), [9; 16]);
    // Only the next hop the layer went to can send its receipt back.
    assert_eq!(c.take(node(3), &[1; 16]), None);
    assert_eq!(c.take(node(2), &[1; 16]), Some((node(1), [9; 16])));
    assert_eq!(c.take(node(2), &[1; 16]), None, "one receipt per circuit");
    // The fourth circuit forgets the oldest.
    for i in 10..14u8 {
        c.insert(t0, node(2), [i; 16], node(1), [i; 16]);
    }
    assert!(c.len() <= 3);
    assert_eq!(c.take(node(2), &[10; 16]), None, "the oldest was forgotten");
    assert_eq!(c.take(node(2), &[13; 16]), Some((node(1), [13; 16])));
    // Past the TTL, everything is forgotten at the next insert.
    c.insert(
        t0 + Duration::from_secs(31),
        node(2),
        [20; 16],
        node(1),
        [20; 16],
    );
    assert_eq!(c.len(), 1);
    assert_eq!(c.take(node(2), &[12; 16]), None);
}

fn pending(sent: Instant, bytes: usize, item: u32) -> Pending<u32> {
    Pending {
        token: [0; 16],
        path: vec![node(2), node(3)],
        attempt: 1,
        sent,
        bytes,
        item,
    }
}

#[test]
fn awaiting_expires_in_send_order_and_refuses_over_its_limits() {
    let t0 = Instant::now();
    let limits = ReceiptLimits {
        timeout: Duration::from_secs(2),
        max_messages: 3,
        max_bytes: 1000,
        ..ReceiptLimits::default()
    };
    let mut w: Awaiting<u32> = Awaiting::new(limits);
    assert!(w.insert(node(2), [1; 16], pending(t0, 100, 1)).is_ok());
    assert!(w
        .insert(
            node(2),
            [2; 16],
            pending(t0 + Duration::from_millis(10), 100, 2)
        )
        .is_ok());
    assert_eq!(w.next_deadline(), Some(t0 + Duration::from_secs(2)));
    // Over the bytes.
    assert_eq!(
        w.insert(node(2), [3; 16], pending(t0, 900, 3))
            .unwrap_err()
            .item,
        3
    );
    assert!(w
        .insert(
            node(2),
            [3; 16],
            pending(t0 + Duration::from_millis(20), 100, 3)
        )
        .is_ok());
    // Over the count.
    assert!(w.insert(node(2), [4; 16], pending(t0, 1, 4)).is_err());
    // An answered one does not expire.
    assert_eq!(w.take(node(2), &[2; 16]).unwrap().item, 2);
    assert_eq!(w.take(node(2), &[2; 16]).map(|p| p.item), None);
    assert!(w.expired(t0 + Duration::from_millis(1999)).is_empty());
    let due: Vec<u32> = w
        .expired(t0 + Duration::from_secs(3))
        .into_iter()
        .map(|p| p.item)
        .collect();
    assert_eq!(due, vec![1, 3]);
    assert!(w.is_empty());
    // And room is back.
    assert!(w.insert(node(2), [5; 16], pending(t0, 900, 5)).is_ok());
    assert_eq!(w.drain().len(), 1);
    assert!(w.is_empty());
}
