//! Bad input: forged and replayed join requests and responses, operations from non-members
//! and expelled members, oversized batches, vectors and adverts, digest floods. Each is
//! refused and counted, without a panic.

use super::*;
use crate::domain::wire::{JoinAuth, VectorEntry, MAX_BATCH_OPS, MAX_VECTOR_ENTRIES};
use crate::mail::domain::JoinRefusal;
use crate::wire::advert::MAX_ALLOW_LIST;
use crate::wire::encode_to_vec;

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    DomainStats::get(c)
}

#[test]
fn forged_stale_and_replayed_join_requests_are_refused() {
    let (mut net, d) = domain_net(3, 1, DomainAuth::None, 0, |_| None);
    let now = net.now.wall;
    let k1 = net.nodes[1].key.clone();
    // A forged signature: a field changed after signing.
    let mut forged = JoinRequest::new_signed(&k1, d, 1, now, JoinAuth::None);
    forged.nonce = 2;
    net.deliver_remote(1, 0, DomainMessage::JoinRequest(forged).to_bytes());
    // A request signed by node 1 but sent by node 2.
    let other = JoinRequest::new_signed(&k1, d, 3, now, JoinAuth::None);
    net.deliver_remote(2, 0, DomainMessage::JoinRequest(other).to_bytes());
    assert_eq!(get(&net.stats(0).join_bad_signature), 2);
    assert!(net.take_in_flight().is_empty(), "no answer to forgeries");
    // A stale request.
    let old = Timestamp(now.0 - 10 * 60 * 1000);
    let stale = JoinRequest::new_signed(&k1, d, 4, old, JoinAuth::None);
    net.deliver_remote(1, 0, DomainMessage::JoinRequest(stale).to_bytes());
    assert_eq!(get(&net.stats(0).join_stale), 1);
    // A replay: the same request twice makes one add.
    let req = JoinRequest::new_signed(&k1, d, 5, now, JoinAuth::None);
    let body = DomainMessage::JoinRequest(req).to_bytes();
    net.deliver_remote(1, 0, body.clone());
    net.deliver_remote(1, 0, body);
    assert_eq!(get(&net.stats(0).join_replayed), 1);
    assert_eq!(get(&net.stats(0).joins_approved), 1);
    let answers = net.take_in_flight();
    let refusals = answers
        .iter()
        .filter(|(_, _, b)| {
            matches!(DomainMessage::from_bytes(b),
                Ok(DomainMessage::JoinResponse(r))
                    if r.outcome == JoinOutcome::Refused(JoinRefusal::BadRequest))
        })
        .count();
    assert_eq!(refusals, 2, "the stale request and the replay are refused");
}

#[test]
fn replayed_forged_and_unsolicited_join_responses_are_ignored() {
    let (mut net, d) = domain_net(3, 1, DomainAuth::None, 0, |_| None);
    net.local(
        1,
        DomainMail::Join {
            domain: d,
            advert: None,
        },
    );
    // The request reaches the introducer; catch its response.
    let reqs = net.take_in_flight();
    assert_eq!(reqs.len(), 1);
    let (from, _, body) = reqs.into_iter().next().unwrap();
    net.deliver_remote(from, 0, body);
    let resp = net
        .take_in_flight()
        .into_iter()
        .find(|(_, to, _)| *to == net.nodes[1].id())
        .unwrap()
        .2;
    // A forged copy first: ignored, the join still waits.
    let Ok(DomainMessage::JoinResponse(mut forged)) = DomainMessage::from_bytes(&resp) else {
        panic!()
    };
    forged.outcome = JoinOutcome::Refused(JoinRefusal::DomainFull);
    net.deliver_remote(0, 1, DomainMessage::JoinResponse(forged).to_bytes());
    assert_eq!(get(&net.stats(1).join_response_forged), 1);
    // A genuine response relayed by another node than its approver: refused too.
    net.deliver_remote(2, 1, resp.clone());
    assert_eq!(get(&net.stats(1).join_response_forged), 2);
    assert!(net.last_mail(1).is_none());
    // The genuine one.
    net.deliver_remote(0, 1, resp.clone());
    assert!(matches!(
        net.last_mail(1),
        Some(DomainMail::JoinResult { result: Ok(_), .. })
    ));
    // Replayed: unsolicited now.
    net.deliver_remote(0, 1, resp.clone());
    assert_eq!(get(&net.stats(1).join_response_unsolicited), 1);
    assert!(net.last_mail(1).is_none());
    // A response to a node that never asked.
    net.deliver_remote(0, 2, resp);
    assert_eq!(get(&net.stats(2).join_response_unsolicited), 1);
    assert!(!net.nodes[2].directory.member_here(&d));
}

#[test]
fn operations_of_non_members_and_expelled_members_are_refused() {
    let (mut net, d) = domain_net(3, 1, DomainAuth::None, 0, |_| None);
    accepted_join(&mut net, 1, d);
    net.run(Duration::from_secs(1));
    // Node 2, not a member, adds a friend: held pending, counts for nothing.
    let k2 = net.nodes[2].key.clone();
    let friend = NodeIdentity([8; 32]);
    let op = Op::new_signed(
        &k2,
        d,
        1,
        50,
        OpKind::Add {
            member: friend,
            request: None,
        },
    );
    net.deliver_remote(
        2,
        0,
        DomainMessage::Ops {
            domain: d,
            ops: vec![op],
        }
        .to_bytes(),
    );
    net.run(Duration::from_secs(1));
    // Not a sync peer: the message is ignored whole (nothing held pending).
    assert_eq!(get(&net.stats(0).sync_from_non_member), 1);
    assert_eq!(get(&net.stats(0).ops_pending), 0);
    assert!(!net.members(0, &d).contains(&friend));
    // A forged operation in the name of the introducer.
    let k0 = net.nodes[0].key.clone();
    let mut forged = Op::new_signed(
        &k0,
        d,
        9,
        60,
        OpKind::Add {
            member: friend,
            request: None,
        },
    );
    forged.lamport = 61;
    net.deliver_remote(
        0,
        1,
        DomainMessage::Ops {
            domain: d,
            ops: vec![forged],
        }
        .to_bytes(),
    );
    assert_eq!(get(&net.stats(1).ops_bad_signature), 1);
    // Node 1 is expelled; its later operations are refused.
    net.local(
        0,
        DomainMail::Expel {
            domain: d,
            node: net.nodes[1].id(),
        },
    );
    net.run(Duration::from_secs(2));
    let k1 = net.nodes[1].key.clone();
    let late = Op::new_signed(
        &k1,
        d,
        5,
        100,
        OpKind::Add {
            member: friend,
            request: None,
        },
    );
    // Sent by the expelled node itself: no longer a sync peer, ignored whole.
    let body = DomainMessage::Ops {
        domain: d,
        ops: vec![late.clone()],
    }
    .to_bytes();
    let ignored = get(&net.stats(0).sync_from_non_member);
    net.deliver_remote(1, 0, body);
    assert_eq!(get(&net.stats(0).sync_from_non_member), ignored + 1);
    // Relayed by anyone: the log refuses it as after the expulsion.
    let log = &mut net.nodes[0].engine.domains.get_mut(&d).unwrap().log;
    assert_eq!(
        log.insert(std::sync::Arc::new(late), false, &mut Vec::new()),
        Err(crate::domain::membership::Refused::AfterExpulsion)
    );
    assert!(!net.members(0, &d).contains(&friend));
}

fn accepted_join(net: &mut Net, i: usize, d: DomainIdentity) {
    assert!(matches!(
        join(net, i, d),
        DomainMail::JoinResult { result: Ok(_), .. }
    ));
}

#[test]
fn oversized_batches_vectors_and_adverts_are_refused() {
    let (mut net, d) = domain_net(2, 1, DomainAuth::None, 0, |_| None);
    let k0 = net.nodes[0].key.clone();
    let op = Op::new_signed(&k0, d, 1, 1, OpKind::Update { value: vec![] });
    let big = DomainMessage::Ops {
        domain: d,
        ops: vec![op; MAX_BATCH_OPS + 1],
    };
    net.deliver_remote(1, 0, big.to_bytes());
    let entry = VectorEntry {
        author: net.nodes[0].id(),
        max_seq: 1,
        count: 1,
        hash: 0,
    };
    let vector = DomainMessage::Vector {
        domain: d,
        entries: vec![entry; MAX_VECTOR_ENTRIES + 1],
        reply: true,
    };
    net.deliver_remote(1, 0, vector.to_bytes());
    net.deliver_remote(1, 0, vec![1, 0, 0, 0, 99, 0, 0, 0]);
    assert_eq!(get(&net.stats(0).malformed), 3);
    assert!(net.take_in_flight().is_empty());
    // An advert with an allow-list over the limit, handed in with a join.
    let domain_key = Keypair::generate();
    let mut advert = advert_for(&domain_key, std::slice::from_ref(&k0), DomainAuth::None, 0);
    advert.auth = DomainAuth::AllowList(vec![NodeIdentity([1; 32]); MAX_ALLOW_LIST + 1]);
    let advert = crate::wire::Signed::sign(advert, &domain_key);
    net.local(
        1,
        DomainMail::Join {
            domain: domain_key.domain_identity(),
            advert: Some(encode_to_vec(&advert)),
        },
    );
    assert!(matches!(
        net.last_mail(1),
        Some(DomainMail::JoinResult {
            result: Err(JoinRefusal::BadRequest),
            ..
        })
    ));
    assert_eq!(get(&net.stats(1).adverts_refused), 1);
    // A forged advert, too.
    let mut forged = advert_for(&domain_key, &[k0], DomainAuth::None, 0);
    forged.version = 9;
    net.local(
        1,
        DomainMail::Join {
            domain: domain_key.domain_identity(),
            advert: Some(encode_to_vec(&forged)),
        },
    );
    assert_eq!(get(&net.stats(1).adverts_refused), 2);
    // Local mail that is not mail.
    net.view(0, ViewMail::Watch { domain: d });
    assert_eq!(get(&net.stats(0).local_malformed), 0);
}

#[test]
fn a_member_flooding_digests_is_rate_limited() {
    let (mut net, d) = domain_net(3, 1, DomainAuth::None, 0, |_| None);
    accepted_join(&mut net, 1, d);
    net.run(Duration::from_secs(1));
    net.take_in_flight();
    let flood = DomainMessage::Digest {
        domain: d,
        count: 999,
        hash: [7; 32],
    };
    for _ in 0..50 {
        net.deliver_remote(1, 0, flood.to_bytes());
    }
    let limit = DomainLimits::default().sync_per_peer_s as u64;
    let limited = get(&net.stats(0).sync_rate_limited);
    assert!(limited >= 50 - 2 * limit, "rate limited {limited}");
    let answers = net.take_in_flight().len() as u64;
    assert!(answers <= 2 * limit, "answered {answers} of 50");
    // A non-member's digest is not answered at all.
    net.deliver_remote(2, 0, flood.to_bytes());
    assert_eq!(get(&net.stats(0).sync_from_non_member), 1);
    assert!(net.take_in_flight().is_empty());
}
