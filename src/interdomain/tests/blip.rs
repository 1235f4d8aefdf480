//! BLIP: the flip probability, the empirical flip rate, the corrected similarity against the
//! exact overlap, member / non-member separation by `domain_score`, and `OwnFilter` caching.

use std::collections::BTreeSet;

use crate::identity::DomainIdentity;
use crate::interdomain::blip::*;
use crate::rng::SplitMix64;
use crate::wire::MembershipFilter;

fn domain(rng: &mut SplitMix64) -> DomainIdentity {
    let mut b = [0u8; 32];
    for chunk in b.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    DomainIdentity(b)
}

fn domains(n: usize, rng: &mut SplitMix64) -> Vec<DomainIdentity> {
    (0..n).map(|_| domain(rng)).collect()
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[test]
fn flip_probability_is_the_formula() {
    assert!((flip_probability(0.0, 3) - 0.5).abs() < 1e-12);
    let p = flip_probability(5.0, 3);
    assert!((p - 1.0 / (1.0 + (5.0f64 / 3.0).exp())).abs() < 1e-12);
    assert!((p - 0.158_869).abs() < 1e-5, "p = {p}");
    // More privacy budget, fewer flips; more hashes share it, more flips.
    assert!(flip_probability(10.0, 3) < p);
    assert!(flip_probability(5.0, 6) > p);
    assert!(flip_probability(1e6, 3) < 1e-12);
    // A received filter's p comes from its own epsilon_milli and hashes; unflipped is 0.
    let mut f = MembershipFilter::empty(64, 3);
    assert_eq!(filter_flip_probability(&f), 0.0);
    f.epsilon_milli = 5000;
    assert!((filter_flip_probability(&f) - p).abs() < 1e-12);
    assert_eq!(epsilon_milli(5.0), 5000);
    assert_eq!(epsilon_milli(0.0), 1);
    assert_eq!(epsilon_milli(f64::NAN), 1);
}

#[test]
fn flip_flips_each_bit_with_probability_p() {
    let seed = 11;
    println!("seed {seed}");
    let mut rng = SplitMix64::new(seed);
    // Half the bits set, so both directions are measured.
    let mut plain = MembershipFilter::empty(8192, 3);
    for i in (0..8192).step_by(2) {
        plain.set(i, true);
    }
    let p = flip_probability(5.0, 3);
    let rounds = 20;
    let (mut up, mut down) = (0u64, 0u64);
    for _ in 0..rounds {
        let f = flip(&plain, 5.0, &mut rng);
        assert_eq!(f.epsilon_milli, 5000);
        assert_eq!((f.bits, f.hashes), (plain.bits, plain.hashes));
        for i in 0..8192 {
            match (plain.get(i), f.get(i)) {
                (false, true) => up += 1,
                (true, false) => down += 1,
                _ => {}
            }
        }
    }
    let per_direction = (rounds * 4096) as f64;
    let se = (p * (1.0 - p) / per_direction).sqrt();
    for (what, n) in [("0→1", up), ("1→0", down)] {
        let rate = n as f64 / per_direction;
        assert!(
            (rate - p).abs() < 5.0 * se,
            "{what} flip rate {rate} vs p {p} (se {se})"
        );
    }
    // An already flipped filter is not flipped again.
    let once = flip(&plain, 5.0, &mut rng);
    assert_eq!(flip(&once, 5.0, &mut rng), once);
    // Successive flips differ (fresh noise each call).
    assert_ne!(flip(&plain, 5.0, &mut rng), flip(&plain, 5.0, &mut rng));
}

#[test]
fn indices_are_in_range_deterministic_and_spread() {
    let mut rng = SplitMix64::new(3);
    let ds = domains(500, &mut rng);
    let mut seen = BTreeSet::new();
    for d in &ds {
        let idx = indices(1024, 3, d);
        assert_eq!(idx.len(), 3);
        assert!(idx.iter().all(|&i| i < 1024));
        assert_eq!(idx, indices(1024, 3, d));
        // Index i does not depend on k: more hashes extend the list.
        assert_eq!(idx[..], indices(1024, 5, d)[..3]);
        seen.extend(idx);
    }
    // 1,500 draws over 1,024 bits cover about 1 − e^(−1.46) ≈ 77 % of them.
    assert!(seen.len() > 700, "only {} distinct indices", seen.len());
    assert!(indices(0, 3, &ds[0]).is_empty());
    let f = encode(&BlipParams::default(), &ds[..4]);
    assert_eq!(f.epsilon_milli, 0);
    assert_eq!(f.bytes.len(), 128);
    for d in &ds[..4] {
        assert!(indices(1024, 3, d).iter().all(|&i| f.get(i)));
        assert_eq!(domain_score(&f, d), 1.0);
    }
    assert!(f.popcount() <= 12);
}

#[test]
fn corrected_similarity_tracks_the_exact_overlap_and_raw_cosine_does_not() {
    let seed = 17;
    println!("seed {seed}");
    let mut rng = SplitMix64::new(seed);
    let params = BlipParams::default();
    let shared = domains(10, &mut rng);
    let a_set: Vec<_> = shared
        .iter()
        .copied()
        .chain(domains(10, &mut rng))
        .collect();
    let b_set: Vec<_> = shared
        .iter()
        .copied()
        .chain(domains(10, &mut rng))
        .collect();
    let (a, b) = (encode(&params, &a_set), encode(&params, &b_set));
    let exact_overlap = a
        .bytes
        .iter()
        .zip(&b.bytes)
        .map(|(x, y)| (x & y).count_ones())
        .sum::<u32>() as f64;
    let exact = cosine(&a, &b);
    assert!(
        (similarity(&a, &b) - exact).abs() < 1e-9,
        "unflipped: exact"
    );
    assert!(exact > 0.4 && exact < 0.6, "exact cosine {exact}");

    let trials = 400;
    let (mut overlaps, mut sims, mut raws) = (vec![], vec![], vec![]);
    for _ in 0..trials {
        let fa = flip(&a, params.epsilon, &mut rng);
        let fb = flip(&b, params.epsilon, &mut rng);
        overlaps.push(overlap_estimate(&fa, &fb));
        sims.push(similarity(&fa, &fb));
        raws.push(cosine(&fa, &fb));
    }
    let (o_mean, o_sd) = mean_sd(&overlaps);
    let o_se = o_sd / (trials as f64).sqrt();
    assert!(
        (o_mean - exact_overlap).abs() < 4.0 * o_se,
        "overlap estimate {o_mean} ± {o_se} vs exact {exact_overlap}"
    );
    let (s_mean, _) = mean_sd(&sims);
    let (r_mean, _) = mean_sd(&raws);
    assert!(
        (s_mean - exact).abs() < 0.1,
        "corrected similarity {s_mean} vs exact {exact}"
    );
    assert!(
        (r_mean - exact).abs() > 0.15,
        "raw cosine {r_mean} should be biased away from {exact}"
    );

    // A pair sharing nothing scores lower on average than this pair.
    let c = encode(&params, &domains(20, &mut rng));
    let unrelated: Vec<f64> = (0..100)
        .map(|_| {
            similarity(
                &flip(&a, params.epsilon, &mut rng),
                &flip(&c, params.epsilon, &mut rng),
            )
        })
        .collect();
    assert!(mean_sd(&unrelated).0 < s_mean - 0.2);
}

#[test]
fn similarity_of_incomparable_filters_is_zero() {
    let mut rng = SplitMix64::new(5);
    let ds = domains(5, &mut rng);
    let a = encode(&BlipParams::default(), &ds);
    let other_bits = encode(
        &BlipParams {
            bits: 2048,
            ..BlipParams::default()
        },
        &ds,
    );
    let other_hashes = encode(
        &BlipParams {
            hashes: 4,
            ..BlipParams::default()
        },
        &ds,
    );
    assert_eq!(similarity(&a, &a), 1.0);
    assert_eq!(similarity(&a, &other_bits), 0.0);
    assert_eq!(similarity(&a, &other_hashes), 0.0);
    assert_eq!(cosine(&a, &other_bits), 0.0);
    let empty = MembershipFilter::empty(1024, 3);
    assert_eq!(similarity(&a, &empty), 0.0);
    // A malformed filter (bytes not matching bits) is not compared.
    let mut short = a.clone();
    short.bytes.pop();
    assert_eq!(similarity(&a, &short), 0.0);
    assert_eq!(overlap_estimate(&short, &short), 0.0);
}

#[test]
fn domain_score_separates_members_from_non_members() {
    let seed = 23;
    println!("seed {seed}");
    let mut rng = SplitMix64::new(seed);
    let params = BlipParams::default();
    let universe = domains(40, &mut rng);
    let (mut member, mut non_member) = (vec![], vec![]);
    let (mut member_above, mut non_member_above) = (0usize, 0usize);
    for _ in 0..300 {
        let n = 1 + rng.below(5) as usize;
        let mine: BTreeSet<DomainIdentity> = (0..n)
            .map(|_| universe[rng.below(universe.len() as u64) as usize])
            .collect();
        let f = flip(&encode(&params, &mine), params.epsilon, &mut rng);
        let floor = noise_floor(&f);
        assert!(floor > 0.0 && floor < 0.6, "floor {floor}");
        for d in &universe {
            let s = domain_score(&f, d);
            assert!((0.0..=1.0).contains(&s));
            if mine.contains(d) {
                member.push(s);
                member_above += (s > floor) as usize;
            } else {
                non_member.push(s);
                non_member_above += (s > floor) as usize;
            }
        }
    }
    let (m, _) = mean_sd(&member);
    let (nm, _) = mean_sd(&non_member);
    let m_rate = member_above as f64 / member.len() as f64;
    let nm_rate = non_member_above as f64 / non_member.len() as f64;
    println!("member mean {m} above floor {m_rate}; non-member mean {nm} above floor {nm_rate}");
    assert!(m > 0.8, "member mean score {m}");
    assert!(nm < 0.2, "non-member mean score {nm}");
    assert!(m_rate > 0.85, "members above the noise floor: {m_rate}");
    assert!(
        nm_rate < 0.12,
        "non-members above the noise floor: {nm_rate}"
    );
}

#[test]
fn own_filter_flips_once_per_membership_set() {
    let mut rng = SplitMix64::new(29);
    let ds = domains(3, &mut rng);
    let mut own = OwnFilter::new(BlipParams::default());
    let set: BTreeSet<_> = ds[..2].iter().copied().collect();
    let (v1, f1) = own.current(&set, &mut rng);
    let f1 = f1.clone();
    assert_eq!(v1, 1);
    assert_eq!(f1.epsilon_milli, 5000);
    // Asked again (as every exchange does): the same flip, however the generator moved on.
    for _ in 0..10 {
        rng.next_u64();
        let (v, f) = own.current(&set, &mut rng);
        assert_eq!((v, f), (1, &f1));
    }
    // A new set: a new flip under the next version.
    let bigger: BTreeSet<_> = ds.iter().copied().collect();
    let (v2, f2) = own.current(&bigger, &mut rng);
    assert_eq!(v2, 2);
    assert_ne!(f2, &f1);
    let f2 = f2.clone();
    assert_eq!(own.current(&bigger, &mut rng), (2, &f2));
    // The empty set is a set too.
    assert_eq!(own.current(&BTreeSet::new(), &mut rng).0, 3);
    let mut later = OwnFilter::with_base_version(BlipParams::default(), 1000);
    assert_eq!(later.current(&set, &mut rng).0, 1001);
}

#[test]
fn params_check_refuses_what_the_wire_cannot_carry() {
    assert!(BlipParams::default().check().is_ok());
    for bad in [
        BlipParams {
            bits: 1000 + 4,
            ..BlipParams::default()
        },
        BlipParams {
            bits: 0,
            ..BlipParams::default()
        },
        BlipParams {
            bits: 16384,
            ..BlipParams::default()
        },
        BlipParams {
            hashes: 0,
            ..BlipParams::default()
        },
        BlipParams {
            hashes: 17,
            ..BlipParams::default()
        },
        BlipParams {
            epsilon: 0.0,
            ..BlipParams::default()
        },
        BlipParams {
            epsilon: f64::INFINITY,
            ..BlipParams::default()
        },
    ] {
        assert!(bad.check().is_err(), "{bad:?}");
    }
}
