//! Regression tests of the review findings on the Domain engine (issue 12): each fails
//! without its fix. Hostile inputs first (vectors that claim nothing, huge counters, join and
//! sync floods), then membership rules (expulsions and the adds of the expelled).

use std::sync::Arc;

use super::*;
use crate::domain::membership::{LogLimits, Membership, Refused, MAX_COUNTER};
use crate::domain::ops::{Op, OpKind};
use crate::domain::wire::{JoinAuth, JoinOutcome, VectorEntry};

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    DomainStats::get(c)
}

fn log_limits() -> LogLimits {
    LogLimits {
        max_ops: 10_000,
        max_ops_per_author: 1_000,
        max_members: 1_000,
        max_pending: 1_000,
    }
}

/// One introducer (`ks[0]`) and a fresh log of its domain.
fn one_introducer_log(n: usize) -> (Vec<Keypair>, Membership) {
    let ks = keys(77, n);
    let domain_key = Keypair::from_seed(&[7; 32]);
    let advert = advert_for(&domain_key, &ks[..1], DomainAuth::None, 0);
    let log = Membership::new(&advert, log_limits());
    (ks, log)
}

/// Finding 1: a vector entry with `max_seq` 0 for an author we hold used to ask for the
/// range `1..=0` and panic; now the peer is sent all of that author's operations.
#[test]
fn vector_entry_claiming_nothing_does_not_panic() {
    let (ks, mut log) = one_introducer_log(2);
    let a = ks[0].node_identity();
    let op = Arc::new(Op::new_signed(
        &ks[0],
        log.domain(),
        1,
        1,
        OpKind::Update { value: vec![1] },
    ));
    log.insert(op.clone(), false, &mut Vec::new()).unwrap();
    for (max_seq, count) in [(0, 3), (0, 0), (5, 0)] {
        let hostile = VectorEntry {
            author: a,
            max_seq,
            count,
            hash: 1,
        };
        let out = log.missing_for(&[hostile]);
        assert_eq!(out.len(), 1, "max_seq {max_seq} count {count}");
        assert_eq!(out[0].id(), op.id());
    }
}

/// Finding 2: an operation with a counter at or over 2^62 is refused (malformed), so a
/// member's next operation cannot overflow.
#[test]
fn huge_lamport_or_seq_is_refused_as_malformed() {
    let (ks, mut log) = one_introducer_log(2);
    let d = log.domain();
    for (seq, lamport) in [
        (1, u64::MAX),
        (1, MAX_COUNTER),
        (MAX_COUNTER, 1),
        (u64::MAX, 1),
    ] {
        let op = Arc::new(Op::new_signed(
            &ks[0],
            d,
            seq,
            lamport,
            OpKind::Update { value: vec![] },
        ));
        assert_eq!(
            log.insert(op, false, &mut Vec::new()),
            Err(Refused::Malformed),
            "seq {seq} lamport {lamport}"
        );
    }
    assert_eq!(log.op_count(), 0);
    let ok = Arc::new(Op::new_signed(
        &ks[0],
        d,
        1,
        MAX_COUNTER - 1,
        OpKind::Update { value: vec![] },
    ));
    assert!(log.insert(ok, false, &mut Vec::new()).is_ok());
    assert_eq!(log.max_lamport().saturating_add(1), MAX_COUNTER);
}
