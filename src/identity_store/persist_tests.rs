//! The stored form of records, change tracking and restoring.

use super::persist::{decode_record, decode_record_in, encode_record, record_id, record_key};
use super::tests::{advert, engine_advert, HOUR, T0};
use super::*;
use crate::identity::{EngineIdentity, Keypair};
use crate::mail::identity::{ConnectionPrefs, Measurement};
use crate::wire::{TransportAddress, TransportPrefs};

fn records() -> Vec<IdentityRecord> {
    let a = Keypair::from_seed(&[1; 32]);
    let b = Keypair::from_seed(&[2; 32]);
    vec![
        IdentityRecord::Node(NodeRecord {
            id: a.node_identity(),
            advert: Some(advert(&a, 3, 7001)),
            trust: Some(200),
            reputation: Some(90),
            tprefs: Some(TransportPrefs::RELIABLE_ORDERED),
            cprefs: Some(ConnectionPrefs::Permanent),
            measured: Some(Measurement {
                address: TransportAddress::quic("127.0.0.1:7001".parse().unwrap()),
                rtt_us: 1234,
                loss_ppm: 56,
                at: T0,
            }),
        }),
        IdentityRecord::Node(NodeRecord {
            id: b.node_identity(),
            advert: None,
            trust: Some(0),
            reputation: None,
            tprefs: None,
            cprefs: Some(ConnectionPrefs::Ephemeral),
            measured: None,
        }),
        IdentityRecord::Engine(EngineRecord {
            id: b.derive_engine("x").engine_identity(),
            node: b.node_identity(),
            advert: Some(engine_advert(&b, "x", T0.after(HOUR))),
        }),
        IdentityRecord::Engine(EngineRecord {
            id: EngineIdentity([7; 32]),
            node: a.node_identity(),
            advert: None,
        }),
    ]
}

#[test]
fn every_record_kind_round_trips_and_keys_are_distinct() {
    let mut keys = std::collections::BTreeSet::new();
    for r in records() {
        let bytes = encode_record(&r);
        assert_eq!(decode_record(&bytes), Ok(r.clone()));
        assert!(keys.insert(record_key(&record_id(&r))));
    }
}

#[test]
fn format_1_node_records_read_as_unmeasured() {
    for r in records() {
        let IdentityRecord::Node(mut node) = r else {
            continue;
        };
        let v2 = encode_record(&IdentityRecord::Node(node.clone()));
        // Format 1 is format 2 without the measurement: drop its bytes from the end.
        let tail = match node.measured {
            None => 1,
            Some(m) => 1 + 4 + crate::wire::encode_to_vec(&m.address).len() + 4 + 4 + 8,
        };
        let v1 = &v2[..v2.len() - tail];
        node.measured = None;
        assert_eq!(decode_record_in(v1, 1), Ok(IdentityRecord::Node(node)));
        assert!(
            decode_record(v1).is_err(),
            "format 2 needs the measurement flag"
        );
    }
}

#[test]
fn damaged_stored_forms_are_errors_never_panics() {
    for r in records() {
        let bytes = encode_record(&r);
        for n in 0..bytes.len() {
            assert!(decode_record(&bytes[..n]).is_err(), "truncated to {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_record(&longer).is_err());
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x80;
            // Any outcome but a panic: a flipped advert byte decodes, and is caught by
            // verification at restore.
            let _ = decode_record(&flipped);
        }
    }
    assert!(decode_record(&[9]).is_err());
}

#[test]
fn changes_are_tracked_and_taken_once() {
    let mut store = IdentityStore::new(100);
    let a = Keypair::from_seed(&[1; 32]);
    store.apply(T0, IdentityUpdate::NodeAdvert(advert(&a, 1, 7001)));
    assert!(
        store.take_changes().is_empty(),
        "not tracked before track_changes"
    );
    store.track_changes();
    store.apply(T0, IdentityUpdate::NodeAdvert(advert(&a, 2, 7002)));
    store.apply(
        T0,
        IdentityUpdate::Reputation {
            id: a.node_identity(),
            change: -1,
        },
    );
    assert!(store.has_changes());
    let changes = store.take_changes();
    assert_eq!(changes.len(), 1, "one record, changed twice");
    let (id, Some(IdentityRecord::Node(r))) = &changes[0] else {
        panic!("{changes:?}")
    };
    assert_eq!(*id, AnyIdentity::Node(a.node_identity()));
    assert_eq!(r.reputation, Some(DEFAULT_REPUTATION - 1));
    assert!(store.take_changes().is_empty());
    // An advert that expires is a change too: the record keeps its reputation, not the advert.
    store.handle_timeout(T0.after(HOUR).after(HOUR));
    let changes = store.take_changes();
    assert!(
        matches!(&changes[..], [(_, Some(IdentityRecord::Node(r)))] if r.advert.is_none()),
        "{changes:?}"
    );
    // A record with nothing left goes: the change is its removal.
    let b = Keypair::from_seed(&[2; 32]);
    store.apply(T0, IdentityUpdate::NodeAdvert(advert(&b, 1, 7003)));
    store.take_changes();
    store.handle_timeout(T0.after(HOUR).after(HOUR));
    assert_eq!(
        store.take_changes(),
        vec![(AnyIdentity::Node(b.node_identity()), None)]
    );
}

#[test]
fn restore_verifies_again_and_leaves_out_own_and_expired_records() {
    let own = Keypair::from_seed(&[9; 32]);
    let mut list = records();
    list.push(IdentityRecord::Node(NodeRecord {
        id: own.node_identity(),
        advert: Some(advert(&own, 1, 7009)),
        trust: None,
        reputation: None,
        tprefs: None,
        cprefs: None,
        measured: None,
    }));
    // A forged advert: another key's advert under the first record's identity.
    let mut forged = list[0].clone();
    if let IdentityRecord::Node(r) = &mut forged {
        r.id = Keypair::from_seed(&[5; 32]).node_identity();
        r.trust = None;
        r.reputation = None;
        r.tprefs = None;
        r.cprefs = None;
    }
    list.push(forged);
    let mut store = IdentityStore::new(100);
    store.handle(T0, Party::Transport, IdentityRequest::Subscribe);
    let report = store.restore(T0, own.node_identity(), list.clone());
    assert_eq!(report.restored, 4);
    assert_eq!(
        report.skipped, 2,
        "own record, and the forged one left with nothing"
    );
    assert_eq!(report.dropped_adverts, 1);
    assert_eq!(store.get(&record_id(&list[0])), Some(&list[0]));
    let mut told = 0;
    while let Some((to, e)) = store.poll_output() {
        assert_eq!(to, Party::Transport);
        assert!(matches!(e, IdentityEvent::Updated { .. }));
        told += 1;
    }
    assert_eq!(told, 4, "subscribers hear of every restored record");
    // Two hours later the adverts have expired: only records with local metadata remain.
    let mut later = IdentityStore::new(100);
    let report = later.restore(T0.after(HOUR).after(HOUR), own.node_identity(), records());
    assert_eq!(report.dropped_adverts, 2);
    assert_eq!(
        report.restored, 3,
        "both nodes (metadata) and the configured engine binding"
    );
    match later.get(&record_id(&records()[0])) {
        Some(IdentityRecord::Node(r)) => {
            assert!(r.advert.is_none());
            assert_eq!(r.trust, Some(200));
        }
        other => panic!("{other:?}"),
    }
}
