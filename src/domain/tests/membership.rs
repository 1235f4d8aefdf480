//! Property tests of the membership log with a seeded generator: random operation histories
//! from several authors on several replicas, merged in random interleavings, duplications and
//! partitions, give identical members everywhere; expelled members' later operations are void
//! everywhere; forged and non-member operations are refused.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{advert_for, keys};
use crate::domain::membership::{Inserted, LogLimits, Membership, Refused};
use crate::domain::ops::{Op, OpKind, MAX_OBSERVED};
use crate::identity::{Keypair, NodeIdentity};
use crate::rng::SplitMix64;
use crate::wire::advert::DomainAuth;

fn limits() -> LogLimits {
    LogLimits {
        max_ops: 100_000,
        max_ops_per_author: 10_000,
        max_members: 10_000,
        max_pending: 100_000,
    }
}

/// What a replica's members are, with their values, for comparison.
fn state(m: &Membership) -> Vec<(NodeIdentity, u64, NodeIdentity, Option<Vec<u8>>)> {
    m.members()
        .iter()
        .map(|(n, v)| (*n, v.epoch, v.approver, v.value.clone()))
        .collect()
}

fn insert_all(m: &mut Membership, ops: &[Arc<Op>]) {
    let mut released = Vec::new();
    for op in ops {
        let _ = m.insert(op.clone(), false, &mut released);
    }
}

/// One author site: a node key and its own replica.
struct Site {
    key: Keypair,
    log: Membership,
}

impl Site {
    fn sign(&mut self, kind: OpKind) -> Arc<Op> {
        let me = self.key.node_identity();
        let op = Arc::new(Op::new_signed(
            &self.key,
            self.log.domain(),
            self.log.max_seq_of(&me) + 1,
            self.log.max_lamport() + 1,
            kind,
        ));
        let _ = self.log.insert(op.clone(), true, &mut Vec::new());
        self.log.refresh();
        op
    }
}

/// A random history: `steps` actions by random sites, with random partial merges between
/// sites (so that many operations are concurrent). Returns every operation made.
fn history(seed: u64, steps: usize, auth: DomainAuth) -> (Vec<Arc<Op>>, Vec<Keypair>) {
    let mut rng = SplitMix64::new(seed);
    let ks = keys(seed, 10);
    let domain_key = Keypair::from_seed(&[seed as u8; 32]);
    let advert = advert_for(&domain_key, &ks[..2], auth, 0);
    let mut sites: Vec<Site> = ks
        .iter()
        .map(|k| Site {
            key: k.clone(),
            log: Membership::new(&advert, limits()),
        })
        .collect();
    let mut all: Vec<Arc<Op>> = Vec::new();
    for _ in 0..steps {
        let i = rng.below(sites.len() as u64) as usize;
        let me = sites[i].key.node_identity();
        let introducer = i < 2;
        if !sites[i].log.is_member(&me) || rng.below(4) == 0 {
            // Merge a random part of another site's operations into this one.
            let j = rng.below(sites.len() as u64) as usize;
            let theirs: Vec<Arc<Op>> = sites[j]
                .log
                .ops()
                .filter(|_| rng.below(3) != 0)
                .cloned()
                .collect();
            insert_all(&mut sites[i].log, &theirs);
            sites[i].log.refresh();
            continue;
        }
        let target = ks[rng.below(ks.len() as u64) as usize].node_identity();
        let op = match rng.below(10) {
            0..=4 => sites[i].sign(OpKind::Add {
                member: target,
                request: None,
            }),
            5 | 6 if !introducer => {
                let mut observed = sites[i].log.live_adds_of(&me);
                observed.truncate(MAX_OBSERVED);
                sites[i].sign(OpKind::Remove {
                    member: me,
                    observed,
                    cutoff_seq: 0,
                })
            }
            7 if introducer && rng.below(3) == 0 => {
                let cutoff = sites[i].log.max_seq_of(&target);
                let mut observed = sites[i].log.live_adds_of(&target);
                observed.truncate(MAX_OBSERVED);
                sites[i].sign(OpKind::Remove {
                    member: target,
                    observed,
                    cutoff_seq: cutoff,
                })
            }
            _ => sites[i].sign(OpKind::Update {
                value: rng.next_u64().to_le_bytes().to_vec(),
            }),
        };
        all.push(op);
    }
    (all, ks)
}

#[test]
fn replicas_converge_whatever_the_order_duplication_and_partition() {
    for seed in 1..=12u64 {
        let (ops, ks) = history(seed, 300, DomainAuth::None);
        let domain_key = Keypair::from_seed(&[seed as u8; 32]);
        let advert = advert_for(&domain_key, &ks[..2], DomainAuth::None, 0);
        // The reference: every operation, in the order made.
        let mut reference = Membership::new(&advert, limits());
        insert_all(&mut reference, &ops);
        reference.refresh();
        let mut rng = SplitMix64::new(seed ^ 0xfeed);
        for replica in 0..6 {
            let mut m = Membership::new(&advert, limits());
            // Shuffled, with about a third of the operations duplicated.
            let mut order: Vec<Arc<Op>> = ops.clone();
            for _ in 0..ops.len() / 3 {
                order.push(ops[rng.below(ops.len() as u64) as usize].clone());
            }
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            // A partition: the first part arrives, the replica settles, then the rest.
            let cut = rng.below(order.len() as u64) as usize;
            insert_all(&mut m, &order[..cut]);
            m.refresh();
            insert_all(&mut m, &order[cut..]);
            if replica % 2 == 0 {
                // Refreshing at random points must not matter either.
                m.refresh();
            }
            m.refresh();
            assert_eq!(
                state(&m),
                state(&reference),
                "seed {seed} replica {replica}"
            );
            assert_eq!(
                m.digest(),
                reference.digest(),
                "seed {seed} replica {replica}"
            );
            assert_eq!(m.member_digest(), reference.member_digest());
            // Idempotence: everything again changes nothing.
            insert_all(&mut m, &ops);
            m.refresh();
            assert_eq!(state(&m), state(&reference));
            assert_eq!(m.digest(), reference.digest());
        }
        // The histories are not trivial: some members joined, some left or were expelled.
        assert!(reference.members().len() > 2, "seed {seed}");
    }
}

#[test]
fn expelled_members_later_operations_are_void_everywhere() {
    let mut expulsions = 0;
    for seed in 20..=40u64 {
        let (ops, ks) = history(seed, 300, DomainAuth::None);
        let domain_key = Keypair::from_seed(&[seed as u8; 32]);
        let advert = advert_for(&domain_key, &ks[..2], DomainAuth::None, 0);
        let mut m = Membership::new(&advert, limits());
        let mut rev = ops.clone();
        rev.reverse();
        insert_all(&mut m, &rev);
        m.refresh();
        for (node, cutoff) in m.cutoffs().clone() {
            expulsions += 1;
            assert!(
                !m.is_member(&node),
                "seed {seed}: an expelled node is a member"
            );
            assert!(
                m.ops().all(|op| op.author != node || op.seq <= cutoff),
                "seed {seed}: an expelled node's later operation is stored"
            );
            // Its later operations are refused from now on.
            let key = ks.iter().find(|k| k.node_identity() == node).unwrap();
            let late = Arc::new(Op::new_signed(
                key,
                advert.id,
                cutoff + 1,
                m.max_lamport() + 1,
                OpKind::Update { value: vec![1] },
            ));
            assert_eq!(
                m.insert(late, false, &mut Vec::new()),
                Err(Refused::AfterExpulsion)
            );
        }
    }
    assert!(expulsions > 0, "no history had an expulsion");
}

#[test]
fn forged_and_non_member_operations_are_refused() {
    let ks = keys(7, 4);
    let domain_key = Keypair::from_seed(&[7; 32]);
    let advert = advert_for(&domain_key, &ks[..1], DomainAuth::None, 0);
    let mut m = Membership::new(&advert, limits());
    let add = |author: &Keypair, seq, lamport, member: &Keypair| {
        Arc::new(Op::new_signed(
            author,
            advert.id,
            seq,
            lamport,
            OpKind::Add {
                member: member.node_identity(),
                request: None,
            },
        ))
    };
    // A forged signature: a field changed after signing.
    let mut forged = (*add(&ks[0], 1, 1, &ks[1])).clone();
    forged.lamport = 5;
    assert_eq!(
        m.insert(Arc::new(forged), false, &mut Vec::new()),
        Err(Refused::BadSignature)
    );
    // A non-member's add waits (its author is unknown), and counts for nothing.
    let stranger = add(&ks[2], 1, 2, &ks[3]);
    assert_eq!(
        m.insert(stranger.clone(), false, &mut Vec::new()),
        Err(Refused::UnknownAuthor(true))
    );
    m.refresh();
    assert!(!m.is_member(&ks[3].node_identity()));
    assert_eq!(m.op_count(), 0);
    // Another domain, and zero counters.
    let other = Arc::new(Op::new_signed(
        &ks[0],
        crate::identity::DomainIdentity([9; 32]),
        1,
        1,
        OpKind::Update { value: vec![] },
    ));
    assert_eq!(
        m.insert(other, false, &mut Vec::new()),
        Err(Refused::WrongDomain)
    );
    assert_eq!(
        m.insert(add(&ks[0], 0, 1, &ks[1]), false, &mut Vec::new()),
        Err(Refused::Malformed)
    );
    // Once the introducer adds the stranger, its pending add is released and counts.
    let mut released = Vec::new();
    assert_eq!(
        m.insert(add(&ks[0], 1, 1, &ks[2]), false, &mut released),
        Ok(Inserted::New)
    );
    assert_eq!(released, vec![stranger]);
    m.refresh();
    assert!(m.is_member(&ks[2].node_identity()) && m.is_member(&ks[3].node_identity()));
    // A member removing another member (not an introducer) is void.
    let bad_remove = Arc::new(Op::new_signed(
        &ks[2],
        advert.id,
        2,
        10,
        OpKind::Remove {
            member: ks[3].node_identity(),
            observed: m.live_adds_of(&ks[3].node_identity()),
            cutoff_seq: 0,
        },
    ));
    assert_eq!(
        m.insert(bad_remove, false, &mut Vec::new()),
        Ok(Inserted::New)
    );
    m.refresh();
    assert!(m.is_member(&ks[3].node_identity()));
}

#[test]
fn equivocation_keeps_the_lower_id_in_any_order() {
    let ks = keys(8, 2);
    let domain_key = Keypair::from_seed(&[8; 32]);
    let advert = advert_for(&domain_key, &ks[..1], DomainAuth::None, 0);
    let a = Arc::new(Op::new_signed(
        &ks[0],
        advert.id,
        1,
        1,
        OpKind::Update { value: vec![1] },
    ));
    let b = Arc::new(Op::new_signed(
        &ks[0],
        advert.id,
        1,
        1,
        OpKind::Update { value: vec![2] },
    ));
    let (low, high) = if a.id() < b.id() { (a, b) } else { (b, a) };
    let mut x = Membership::new(&advert, limits());
    let mut y = Membership::new(&advert, limits());
    assert_eq!(
        x.insert(low.clone(), false, &mut Vec::new()),
        Ok(Inserted::New)
    );
    assert_eq!(
        x.insert(high.clone(), false, &mut Vec::new()),
        Err(Refused::Equivocation)
    );
    assert_eq!(y.insert(high, false, &mut Vec::new()), Ok(Inserted::New));
    assert_eq!(y.insert(low, false, &mut Vec::new()), Ok(Inserted::New));
    x.refresh();
    y.refresh();
    assert_eq!(x.digest(), y.digest());
    assert_eq!(state(&x), state(&y));
}

#[test]
fn allow_list_and_capacity_bound_the_members() {
    let ks = keys(9, 6);
    let domain_key = Keypair::from_seed(&[9; 32]);
    let listed: Vec<NodeIdentity> = ks[1..4].iter().map(|k| k.node_identity()).collect();
    let advert = advert_for(&domain_key, &ks[..1], DomainAuth::AllowList(listed), 3);
    let mut m = Membership::new(&advert, limits());
    for (i, k) in ks[1..].iter().enumerate() {
        let op = Arc::new(Op::new_signed(
            &ks[0],
            advert.id,
            i as u64 + 1,
            i as u64 + 1,
            OpKind::Add {
                member: k.node_identity(),
                request: None,
            },
        ));
        m.insert(op, false, &mut Vec::new()).unwrap();
    }
    m.refresh();
    // The introducer and the first two listed: capacity 3; the unlisted never.
    let members: BTreeSet<NodeIdentity> = m.member_set();
    let expected: BTreeSet<NodeIdentity> = ks[..3].iter().map(|k| k.node_identity()).collect();
    assert_eq!(members, expected);
    assert!(!m.has_room());
}

#[test]
fn version_vectors_find_what_a_replica_lacks() {
    let (ops, ks) = history(50, 200, DomainAuth::None);
    let domain_key = Keypair::from_seed(&[50; 32]);
    let advert = advert_for(&domain_key, &ks[..2], DomainAuth::None, 0);
    let mut full = Membership::new(&advert, limits());
    insert_all(&mut full, &ops);
    let mut part = Membership::new(&advert, limits());
    let mut rng = SplitMix64::new(3);
    let some: Vec<Arc<Op>> = ops.iter().filter(|_| rng.below(2) == 0).cloned().collect();
    insert_all(&mut part, &some);
    // Rounds of vector exchange until equal; each round one bounded batch each way.
    for _ in 0..20 {
        if part.digest() == full.digest() {
            break;
        }
        let to_part = full.missing_for(&part.vector());
        insert_all(&mut part, &to_part);
        let to_full = part.missing_for(&full.vector());
        insert_all(&mut full, &to_full);
    }
    full.refresh();
    part.refresh();
    assert_eq!(part.digest(), full.digest());
    assert_eq!(state(&part), state(&full));
    assert!(full.missing_for(&full.vector()).is_empty());
}

/// An author with many more operations than one batch, held with a gap (its latest ones came
/// by push before the earlier ones): each exchange fills from the first missing operation, so
/// the gap closes in a few rounds (each batch used to restart at sequence 1, and the
/// operations after the first batch never came).
#[test]
fn a_gap_after_more_than_one_batch_of_one_author_closes() {
    let ks = keys(77, 701);
    let domain_key = Keypair::from_seed(&[77; 32]);
    let advert = advert_for(&domain_key, &ks[..1], DomainAuth::None, 0);
    let ops: Vec<Arc<Op>> = ks[1..]
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Arc::new(Op::new_signed(
                &ks[0],
                advert.id,
                i as u64 + 1,
                i as u64 + 1,
                OpKind::Add {
                    member: k.node_identity(),
                    request: None,
                },
            ))
        })
        .collect();
    let mut full = Membership::new(&advert, limits());
    insert_all(&mut full, &ops);
    let mut part = Membership::new(&advert, limits());
    insert_all(&mut part, &ops[..5]);
    insert_all(&mut part, &ops[650..]);
    let mut rounds = 0;
    while part.digest() != full.digest() {
        rounds += 1;
        assert!(
            rounds <= 4,
            "the gap is still open after {} rounds",
            rounds - 1
        );
        let batch = full.missing_for(&part.vector());
        assert!(!batch.is_empty());
        insert_all(&mut part, &batch);
    }
    full.refresh();
    part.refresh();
    assert_eq!(state(&part), state(&full));
    assert_eq!(part.member_set().len(), 701);
}

#[test]
fn a_thousand_members_and_late_concurrent_joins_cost_one_replay_per_refresh() {
    let ks = keys(60, 4);
    let domain_key = Keypair::from_seed(&[60; 32]);
    let advert = advert_for(&domain_key, &ks[..2], DomainAuth::None, 0);
    let members: Vec<NodeIdentity> = (0..1000u32)
        .map(|i| {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            id[31] = 1;
            NodeIdentity(id)
        })
        .collect();
    let genesis = crate::domain::DomainEngine::genesis_ops(&ks[..2], advert.id, &members);
    // 100 joins approved concurrently by the two introducers, all with the same lamport.
    let joins: Vec<Arc<Op>> = (0..100u32)
        .map(|i| {
            let k = &ks[(i % 2) as usize];
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            id[31] = 2;
            Arc::new(Op::new_signed(
                k,
                advert.id,
                500 + i as u64 / 2 + 1,
                1001,
                OpKind::Add {
                    member: NodeIdentity(id),
                    request: None,
                },
            ))
        })
        .collect();
    let start = std::time::Instant::now();
    let mut m = Membership::new(&advert, limits());
    for op in &genesis {
        m.insert(op.clone(), true, &mut Vec::new()).unwrap();
    }
    assert!(!m.is_dirty(), "genesis in order is applied incrementally");
    // Late, out-of-order arrivals, one refresh (a flush) after each.
    for op in joins.iter().rev() {
        m.insert(op.clone(), true, &mut Vec::new()).unwrap();
        m.refresh();
    }
    let took = start.elapsed();
    assert_eq!(m.members().len(), 1102);
    // 100 full replays of 1,100 operations: well under a second in a release build.
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
}
