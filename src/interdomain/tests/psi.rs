//! BFPSI against a naive intersection, and what each side can compute from what it received.

use std::collections::BTreeSet;

use super::*;
use crate::rng::SplitMix64;

fn random32(rng: &mut SplitMix64) -> Bytes32 {
    let mut out = [0u8; 32];
    for c in out.chunks_mut(8) {
        c.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    out
}

fn domain(i: u32) -> DomainIdentity {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&i.to_le_bytes());
    id[31] = 0xd0;
    DomainIdentity(id)
}

/// A random subset of the universe `0..universe`, of 0..=max elements.
fn random_set(rng: &mut SplitMix64, universe: u32, max: u64) -> BTreeSet<DomainIdentity> {
    let n = rng.below(max + 1);
    (0..n)
        .map(|_| domain(rng.below(universe as u64) as u32))
        .collect()
}

struct Transcript {
    offer: Offer,
    challenge: Challenge,
    proof: Proof,
    at_initiator: BTreeSet<DomainIdentity>,
    at_responder: BTreeSet<DomainIdentity>,
}

fn run(
    params: PsiParams,
    x: &BTreeSet<DomainIdentity>,
    y: &BTreeSet<DomainIdentity>,
    rng: &mut SplitMix64,
) -> Transcript {
    let (init, offer) = Initiator::start(params, x, random32(rng));
    let (resp, challenge) =
        Responder::on_offer(params, y, &offer, random32(rng), random32(rng)).unwrap();
    let (at_initiator, proof) = init.on_challenge(&challenge, random32(rng)).unwrap();
    let at_responder = resp.on_proof(&proof).unwrap();
    Transcript {
        offer,
        challenge,
        proof,
        at_initiator,
        at_responder,
    }
}

#[test]
fn the_filter_is_sized_for_the_false_positive_rate() {
    let p = PsiParams::default();
    assert_eq!(p.filter_bits(), 1480);
    assert_eq!(p.hashes(), 32);
    // About half the bits at capacity, plus a margin, and never all of them.
    let fill = p.max_fill();
    assert!(fill > 740 && fill < 830, "{fill}");
    // An honest full set stays under the limit.
    let mut rng = SplitMix64::new(7);
    for _ in 0..20 {
        let set: BTreeSet<DomainIdentity> = (0..32).map(|_| domain(rng.next_u64() as u32)).collect();
        let f = bloom(&p, &random32(&mut rng), &set);
        let ones: u32 = f.iter().map(|b| b.count_ones()).sum();
        assert!(ones <= fill, "{ones} > {fill}");
    }
}

#[test]
fn both_sides_learn_exactly_the_naive_intersection() {
    let seed = 0x9515;
    println!("seed {seed}");
    let mut rng = SplitMix64::new(seed);
    let params = PsiParams::default();
    for round in 0..500 {
        // Small universes make overlaps common; large ones make them rare.
        let universe = [8, 40, 1000][round % 3];
        let x = random_set(&mut rng, universe, 8);
        let y = random_set(&mut rng, universe, 8);
        let naive: BTreeSet<DomainIdentity> = x.intersection(&y).copied().collect();
        let t = run(params, &x, &y, &mut rng);
        assert_eq!(t.at_initiator, naive, "round {round}");
        assert_eq!(t.at_responder, naive, "round {round}");
    }
}

#[test]
fn empty_and_identical_sets() {
    let mut rng = SplitMix64::new(3);
    let p = PsiParams::default();
    let a: BTreeSet<DomainIdentity> = (0..5).map(domain).collect();
    let none = BTreeSet::new();
    assert!(run(p, &a, &none, &mut rng).at_initiator.is_empty());
    assert!(run(p, &none, &a, &mut rng).at_responder.is_empty());
    let t = run(p, &a, &a, &mut rng);
    assert_eq!(t.at_initiator, a);
    assert_eq!(t.at_responder, a);
    // More than max_elements: both clip to the smallest identities, consistently.
    let small = PsiParams {
        max_elements: 3,
        fp_log2: 20,
    };
    let t = run(small, &a, &a, &mut rng);
    assert_eq!(t.at_initiator, (0..5).map(domain).take(3).collect());
    assert_eq!(t.at_initiator, t.at_responder);
}

/// Everything either side can compute from the messages it received, against every domain of
/// the universe (an attacker enumerating public domain identities): the initiator from the
/// challenge (with `ckey`), the responder from the proof (with both random values, so it can
/// derive `rkey`), and anyone from the whole transcript's tags. None of it names a domain
/// outside the intersection. (The offer's filter is the exception BFPSI has: see
/// `the_offer_filter_is_what_the_responder_can_test`.)
#[test]
fn no_tag_reveals_a_domain_outside_the_intersection() {
    let seed = 0xf00d;
    println!("seed {seed}");
    let mut rng = SplitMix64::new(seed);
    let params = PsiParams::default();
    let universe = 300u32;
    for round in 0..60 {
        let x = random_set(&mut rng, universe, 10);
        let y = random_set(&mut rng, universe, 10);
        let t = run(params, &x, &y, &mut rng);
        let salt = t.offer.salt;
        let shared: BTreeSet<DomainIdentity> = x.intersection(&y).copied().collect();
        for d in (0..universe).map(domain) {
            // The initiator tests d against cset with ckey.
            let in_cset = t
                .challenge
                .cset
                .contains(&tag_with(&t.challenge.ckey, &d, &salt));
            // The responder (or anyone with the transcript) tests d against rset with rkey.
            let in_rset = t.proof.rset.contains(&response_tag(
                &salt,
                &t.proof.irand,
                &t.challenge.rrand,
                &d,
            ));
            assert_eq!(in_cset, shared.contains(&d), "round {round}: cset and {d:?}");
            assert_eq!(in_rset, shared.contains(&d), "round {round}: rset and {d:?}");
        }
        // The list lengths say how many are shared and nothing more.
        assert_eq!(t.challenge.cset.len(), shared.len());
        assert_eq!(t.proof.rset.len(), shared.len());
    }
}

/// BFPSI's known limit, pinned so that nobody mistakes it for more: the responder holds a Bloom
/// filter of the initiator's domains under a salt it knows, and can test any domain against it.
/// The engine limits who may ask (cluster neighbours, once per membership version pair);
/// docs/clustering.md says so.
#[test]
fn the_offer_filter_is_what_the_responder_can_test() {
    let mut rng = SplitMix64::new(11);
    let params = PsiParams::default();
    let x: BTreeSet<DomainIdentity> = (0..5).map(domain).collect();
    let (_, offer) = Initiator::start(params, &x, random32(&mut rng));
    let found: BTreeSet<DomainIdentity> = (0..2000)
        .map(domain)
        .filter(|d| bloom_contains(&params, &offer.salt, &offer.filter, d))
        .collect();
    assert_eq!(found, x);
    // A fresh salt gives an unrelated filter: offers cannot be linked by their bits.
    let (_, again) = Initiator::start(params, &x, random32(&mut rng));
    assert_ne!(offer.filter, again.filter);
}

#[test]
fn an_overfull_or_misshapen_offer_is_refused() {
    let mut rng = SplitMix64::new(5);
    let p = PsiParams::default();
    let y: BTreeSet<DomainIdentity> = (0..5).map(domain).collect();
    let all_ones = Offer {
        salt: random32(&mut rng),
        filter: vec![0xff; (p.filter_bits() / 8) as usize],
    };
    let r = Responder::on_offer(p, &y, &all_ones, [1; 32], [2; 32]);
    assert_eq!(r.err(), Some(PsiError::FilterTooFull));
    let short = Offer {
        salt: [0; 32],
        filter: vec![0; 3],
    };
    let r = Responder::on_offer(p, &y, &short, [1; 32], [2; 32]);
    assert_eq!(r.err(), Some(PsiError::FilterSize));
}

#[test]
fn lying_or_oversized_tag_lists_are_refused() {
    let mut rng = SplitMix64::new(9);
    let p = PsiParams::default();
    let x: BTreeSet<DomainIdentity> = (0..4).map(domain).collect();
    let y: BTreeSet<DomainIdentity> = (2..6).map(domain).collect();
    let (init, offer) = Initiator::start(p, &x, random32(&mut rng));
    let (resp, challenge) = Responder::on_offer(p, &y, &offer, [3; 32], [4; 32]).unwrap();
    // Too many tags, or unsorted / repeated.
    let mut big = challenge.clone();
    big.cset = (0..33u8).map(|i| [i; 32]).collect();
    assert_eq!(
        init.clone().on_challenge(&big, [5; 32]).err(),
        Some(PsiError::TooManyTags)
    );
    let mut dup = challenge.clone();
    dup.cset = vec![[1; 32], [1; 32]];
    assert_eq!(
        init.clone().on_challenge(&dup, [5; 32]).err(),
        Some(PsiError::NotCanonical)
    );
    // A proof naming an element the responder never offered.
    let (_, mut proof) = init.on_challenge(&challenge, [5; 32]).unwrap();
    proof.rset.push([0xff; 32]);
    assert_eq!(resp.on_proof(&proof).err(), Some(PsiError::UnknownTag));
}
