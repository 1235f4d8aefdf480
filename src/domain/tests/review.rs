//! Regression tests of the review findings on the Domain engine (issue 12): each fails
//! without its fix. Hostile inputs first (vectors that claim nothing, huge counters, join and
//! sync floods), then membership rules (expulsions and the adds of the expelled).

use std::sync::Arc;

use super::*;
use crate::domain::membership::{LogLimits, Membership, Refused, MAX_COUNTER};
use crate::domain::ops::{Op, OpKind};
use crate::domain::wire::{JoinAuth, JoinOutcome, JoinRequest, JoinResponse, VectorEntry};
use crate::mail::domain::{DomainMail, JoinRefusal, ViewMail};

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

fn join_request(net: &Net, i: usize, d: DomainIdentity, nonce: u64) -> Vec<u8> {
    let k = net.nodes[i].key.clone();
    DomainMessage::JoinRequest(JoinRequest::new_signed(
        &k,
        d,
        nonce,
        net.now.wall,
        JoinAuth::None,
    ))
    .to_bytes()
}

fn accepted_add(body: &[u8]) -> Option<crate::domain::ops::OpId> {
    match DomainMessage::from_bytes(body) {
        Ok(DomainMessage::JoinResponse(r)) => match r.outcome {
            JoinOutcome::Accepted { op, .. } => Some(op.id()),
            _ => None,
        },
        _ => None,
    }
}

fn ops_of(net: &Net, i: usize, d: &DomainIdentity) -> usize {
    net.nodes[i].engine.probe().domain(d).unwrap().ops
}

/// Finding 3: a member re-asking to join with fresh nonces gets its existing add back and
/// nothing new is signed; join requests over the per-peer rate are ignored and counted.
#[test]
fn a_member_rejoining_gets_its_add_again_and_join_floods_are_limited() {
    let (mut net, d) = domain_net(2, 1, DomainAuth::None, 0, |_| None);
    assert!(matches!(
        join(&mut net, 1, d),
        DomainMail::JoinResult { result: Ok(_), .. }
    ));
    net.run(Duration::from_secs(2));
    let ops_before = ops_of(&net, 0, &d);
    let mut adds = Vec::new();
    for nonce in 100..103 {
        net.now = net.now.advanced(Duration::from_secs(1));
        let body = join_request(&net, 1, d, nonce);
        net.deliver_remote(1, 0, body);
        for (_, _, b) in net.take_in_flight() {
            adds.extend(accepted_add(&b));
        }
    }
    assert_eq!(adds.len(), 3, "each request answered Accepted");
    assert!(adds.iter().all(|a| *a == adds[0]), "with the same add");
    assert_eq!(ops_of(&net, 0, &d), ops_before, "nothing new signed");
    assert_eq!(get(&net.stats(0).join_already_member), 3);
    // A flood within one second: beyond `requests_per_peer_s` (4) ignored.
    net.now = net.now.advanced(Duration::from_secs(1));
    for nonce in 200..210 {
        let body = join_request(&net, 1, d, nonce);
        net.deliver_remote(1, 0, body);
    }
    assert_eq!(get(&net.stats(0).join_rate_limited), 6);
    assert_eq!(ops_of(&net, 0, &d), ops_before);
}

/// Finding 4: `Ops` from a node that is not a sync peer are ignored; a member's flood of
/// `Ops` messages is rate-limited; the pending set evicts its oldest entry when full.
#[test]
fn ops_from_non_members_are_ignored_and_floods_limited() {
    let (mut net, d) = domain_net(3, 1, DomainAuth::None, 0, |_| None);
    assert!(matches!(
        join(&mut net, 1, d),
        DomainMail::JoinResult { result: Ok(_), .. }
    ));
    net.run(Duration::from_secs(2));
    // Junk from fresh keys sent by a non-member: nothing pending.
    let junk: Vec<Op> = keys(5, 20)
        .iter()
        .map(|k| Op::new_signed(k, d, 1, 9, OpKind::Update { value: vec![] }))
        .collect();
    let msg = DomainMessage::Ops {
        domain: d,
        ops: junk.clone(),
    };
    net.deliver_remote(2, 0, msg.to_bytes());
    assert_eq!(get(&net.stats(0).sync_from_non_member), 1);
    assert_eq!(net.nodes[0].engine.domains[&d].log.pending_count(), 0);
    // The same from a member, 100 times in one second: 64 handled, 36 ignored.
    net.now = net.now.advanced(Duration::from_secs(1));
    let one = DomainMessage::Ops {
        domain: d,
        ops: junk[..1].to_vec(),
    }
    .to_bytes();
    for _ in 0..100 {
        net.deliver_remote(1, 0, one.clone());
    }
    assert_eq!(get(&net.stats(0).ops_rate_limited), 36);
    // The pending set, full, evicts its oldest entry.
    let mut limits = log_limits();
    limits.max_pending = 2;
    let ks = keys(77, 1);
    let advert = advert_for(&Keypair::from_seed(&[7; 32]), &ks, DomainAuth::None, 0);
    let mut log = Membership::new(&advert, limits);
    let strangers = keys(6, 3);
    let ops: Vec<Arc<Op>> = strangers
        .iter()
        .map(|k| {
            Arc::new(Op::new_signed(
                k,
                advert.id,
                1,
                1,
                OpKind::Update { value: vec![] },
            ))
        })
        .collect();
    for op in &ops {
        assert_eq!(
            log.insert(op.clone(), false, &mut Vec::new()),
            Err(Refused::UnknownAuthor(true))
        );
    }
    assert_eq!(log.pending_count(), 2);
    assert_eq!(log.pending_evicted(), 1);
    assert!(
        log.pending().any(|o| o.id() == ops[2].id()),
        "the newest is held"
    );
    assert!(
        !log.pending().any(|o| o.id() == ops[0].id()),
        "the oldest went"
    );
}

/// Finding 6: expelling a member keeps the members it approved before its expulsion.
#[test]
fn expelling_an_approver_keeps_those_it_approved() {
    let (ks, mut log) = one_introducer_log(3);
    let d = log.domain();
    let (i, x, y) = (&ks[0], &ks[1], &ks[2]);
    let add_x = Op::new_signed(
        i,
        d,
        1,
        1,
        OpKind::Add {
            member: x.node_identity(),
            request: None,
        },
    );
    let add_y = Op::new_signed(
        x,
        d,
        1,
        2,
        OpKind::Add {
            member: y.node_identity(),
            request: None,
        },
    );
    let expel_x = Op::new_signed(
        i,
        d,
        2,
        3,
        OpKind::Remove {
            member: x.node_identity(),
            observed: vec![add_x.id()],
            cutoff_seq: 1,
        },
    );
    // A later add of x (after the expulsion) stays void.
    let readd_x = Op::new_signed(
        i,
        d,
        3,
        4,
        OpKind::Add {
            member: x.node_identity(),
            request: None,
        },
    );
    for op in [expel_x, add_y, readd_x, add_x] {
        let _ = log.insert(Arc::new(op), false, &mut Vec::new());
    }
    log.refresh();
    assert!(log.is_member(&y.node_identity()), "y stays");
    assert!(!log.is_member(&x.node_identity()), "x is gone for good");
    assert!(log.is_expelled(&x.node_identity()));
}

/// Finding 12: once this node is a member, the approver of its join is no longer trusted as
/// a contact (it is a member or not, like anyone else).
#[test]
fn contacts_are_dropped_once_a_member() {
    let (mut net, d) = domain_net(2, 1, DomainAuth::None, 0, |_| None);
    assert!(matches!(
        join(&mut net, 1, d),
        DomainMail::JoinResult { result: Ok(_), .. }
    ));
    net.run(Duration::from_secs(2));
    assert!(net.nodes[1].directory.member_here(&d));
    assert!(net.nodes[1].engine.domains[&d].contacts.is_empty());
    assert_eq!(get(&net.stats(1).contacts_dropped), 1);
}

/// Finding 16: a refusal of a request sent to an earlier contact does not end the join.
#[test]
fn a_stale_refusal_does_not_abort_the_join() {
    let (mut net, d) = domain_net(3, 2, DomainAuth::None, 0, |_| None);
    net.local(
        2,
        DomainMail::Join {
            domain: d,
            advert: None,
        },
    );
    let first = net.take_in_flight();
    assert_eq!(first.len(), 1);
    let (_, target, body) = first.into_iter().next().unwrap();
    let Ok(DomainMessage::JoinRequest(req)) = DomainMessage::from_bytes(&body) else {
        panic!("a join request")
    };
    // The first try times out; the retry is lost.
    net.loss = 1.0;
    net.now = net.now.advanced(Duration::from_secs(3));
    net.run(Duration::from_millis(200));
    net.loss = 0.0;
    assert_eq!(get(&net.stats(2).join_retries), 1);
    // Now the first contact's (late) refusal arrives.
    let t = net.nodes.iter().position(|n| n.id() == target).unwrap();
    let k = net.nodes[t].key.clone();
    let resp = JoinResponse::new_signed(
        &k,
        &req,
        req.id(),
        JoinOutcome::Refused(JoinRefusal::DomainFull),
    );
    net.deliver_remote(t, 2, DomainMessage::JoinResponse(Box::new(resp)).to_bytes());
    assert_eq!(get(&net.stats(2).join_refusal_stale), 1);
    assert!(net.last_mail(2).is_none(), "the join goes on");
    assert!(net.nodes[2].engine.domains[&d].join.is_some());
}

/// Finding 17: view mail dropped or not for this engine, failed leaves and expulsions, and
/// a join request for an unknown domain (counted once) are all counted.
#[test]
fn dropped_view_mail_and_failed_local_requests_are_counted() {
    let (mut net, d) = domain_net(2, 1, DomainAuth::None, 0, |_| None);
    let n0 = net.nodes[0].id();
    net.view(
        1,
        ViewMail::PeerAddedToView {
            domain: d,
            node: n0,
        },
    );
    assert_eq!(get(&net.stats(1).view_add_dropped), 1, "not a member");
    net.view(0, ViewMail::Watch { domain: d });
    assert_eq!(get(&net.stats(0).view_mail_ignored), 1);
    net.local(0, DomainMail::Leave { domain: d });
    assert_eq!(
        get(&net.stats(0).leave_failed),
        1,
        "an introducer cannot leave"
    );
    net.local(
        1,
        DomainMail::Expel {
            domain: d,
            node: n0,
        },
    );
    assert_eq!(get(&net.stats(1).expel_failed), 1, "not an introducer");
    let other = Keypair::from_seed(&[9; 32]).domain_identity();
    let body = join_request(&net, 1, other, 1);
    net.deliver_remote(1, 0, body);
    assert_eq!(get(&net.stats(0).unknown_domain), 1);
    assert_eq!(get(&net.stats(0).join_not_approver), 0);
}

/// Finding 18: an external request for an unknown domain is counted; a flood is limited.
#[test]
fn ext_requests_for_unknown_domains_are_counted_and_floods_limited() {
    let (mut net, d) = domain_net(2, 1, DomainAuth::None, 0, |_| None);
    let other = Keypair::from_seed(&[9; 32]).domain_identity();
    let ask = |domain| {
        DomainMessage::ExtRequest {
            id: 1,
            domain,
            protocol: Protocol::DOMAIN,
            body: b"info".to_vec(),
        }
        .to_bytes()
    };
    net.deliver_remote(1, 0, ask(other));
    assert_eq!(get(&net.stats(0).unknown_domain), 1);
    net.now = net.now.advanced(Duration::from_secs(1));
    for _ in 0..6 {
        net.deliver_remote(1, 0, ask(d));
    }
    assert_eq!(get(&net.stats(0).ext_rate_limited), 2);
}

/// Finding 8: a member with more live adds than one `Remove` observes (32) leaves for real.
#[test]
fn a_leave_takes_more_than_32_adds() {
    let (mut net, d) = domain_net(2, 1, DomainAuth::None, 0, |_| None);
    assert!(matches!(
        join(&mut net, 1, d),
        DomainMail::JoinResult { result: Ok(_), .. }
    ));
    net.run(Duration::from_secs(2));
    let k0 = net.nodes[0].key.clone();
    let (n0, n1) = (net.nodes[0].id(), net.nodes[1].id());
    let log = &mut net.nodes[1].engine.domains.get_mut(&d).unwrap().log;
    for _ in 0..40 {
        let op = Op::new_signed(
            &k0,
            d,
            log.max_seq_of(&n0) + 1,
            log.max_lamport() + 1,
            OpKind::Add {
                member: n1,
                request: None,
            },
        );
        log.insert(Arc::new(op), false, &mut Vec::new()).unwrap();
    }
    log.refresh();
    assert!(log.live_adds_of(&n1).len() > 40);
    net.local(1, DomainMail::Leave { domain: d });
    assert!(!net.nodes[1].engine.domains[&d].log.is_member(&n1));
    assert!(!net.nodes[1].directory.member_here(&d));
}

/// Finding 19: the operations of an accepted join response are forwarded like pushed ones.
#[test]
fn join_response_ops_are_pushed_on() {
    let (mut net, d) = domain_net(3, 1, DomainAuth::None, 0, |_| None);
    assert!(matches!(
        join(&mut net, 1, d),
        DomainMail::JoinResult { result: Ok(_), .. }
    ));
    net.run(Duration::from_secs(2));
    // Node 2 asks node 1 (not the introducer) only: its add comes from node 1, and node 1's
    // own add in the response is new to node 2.
    net.local(
        2,
        DomainMail::Join {
            domain: d,
            advert: None,
        },
    );
    let sent = net.take_in_flight();
    let (_, _, body) = sent.into_iter().next().unwrap();
    net.deliver_remote(2, 1, body);
    let resp = net
        .take_in_flight()
        .into_iter()
        .find(|(_, to, b)| *to == net.nodes[2].id() && accepted_add(b).is_some())
        .expect("an accepted response")
        .2;
    net.nodes[2]
        .engine
        .domains
        .get_mut(&d)
        .unwrap()
        .view
        .clear();
    net.deliver_remote(1, 2, resp);
    // The new operations went out (to the fallback contacts, the view being empty).
    let out = net.take_in_flight();
    assert!(
        out.iter().any(|(from, _, b)| *from == 2
            && matches!(DomainMessage::from_bytes(b), Ok(DomainMessage::Ops { .. }))),
        "ops pushed on"
    );
}
