//! Sampling: Efraimidis–Spirakis picks in proportion to weight and never picks weight ≤ 0;
//! `uniform_sample` is uniform and without replacement. Chi-square checks with fixed seeds.

use std::collections::BTreeSet;

use crate::interdomain::weighted::*;
use crate::rng::SplitMix64;

/// Pearson's chi-square statistic of `observed` against `expected` counts.
fn chi_square(observed: &[u64], expected: &[f64]) -> f64 {
    observed
        .iter()
        .zip(expected)
        .map(|(&o, &e)| (o as f64 - e) * (o as f64 - e) / e)
        .sum()
}

#[test]
fn weighted_first_pick_is_proportional_to_weight() {
    let seed = 41;
    println!("seed {seed}");
    let mut rng = SplitMix64::new(seed);
    let items: Vec<usize> = (0..5).collect();
    let weight = |i: &usize| (*i + 1) as f64; // 1..=5, total 15
    let trials = 30_000;
    let mut counts = [0u64; 5];
    for _ in 0..trials {
        let pick = weighted_sample(&items, weight, 1, &mut rng);
        assert_eq!(pick.len(), 1);
        counts[pick[0]] += 1;
    }
    let expected: Vec<f64> = (1..=5).map(|w| trials as f64 * w as f64 / 15.0).collect();
    let chi = chi_square(&counts, &expected);
    // 4 degrees of freedom: 18.47 is the 0.1 % critical value.
    assert!(chi < 18.47, "chi-square {chi}, counts {counts:?}");
    // And a uniform hypothesis is firmly rejected: the weights matter.
    let uniform = vec![trials as f64 / 5.0; 5];
    assert!(chi_square(&counts, &uniform) > 1000.0);
}

#[test]
fn weighted_sample_is_without_replacement_and_skips_non_positive_weights() {
    let mut rng = SplitMix64::new(43);
    let items: Vec<(u32, f64)> = vec![
        (0, 1.0),
        (1, 0.0),
        (2, -3.0),
        (3, f64::NAN),
        (4, 0.5),
        (5, 2.0),
    ];
    for _ in 0..500 {
        let s = weighted_sample(&items, |x| x.1, 10, &mut rng);
        let ids: BTreeSet<u32> = s.iter().map(|x| x.0).collect();
        assert_eq!(ids.len(), s.len(), "no repeats");
        assert_eq!(
            ids,
            BTreeSet::from([0, 4, 5]),
            "only positive weights, all of them"
        );
    }
    assert!(weighted_sample(&items, |x| x.1, 0, &mut rng).is_empty());
    assert!(weighted_sample::<u32>(&[], |_| 1.0, 3, &mut rng).is_empty());
    // The same seed gives the same sample.
    let a = weighted_sample(&items, |x| x.1, 2, &mut SplitMix64::new(9));
    let b = weighted_sample(&items, |x| x.1, 2, &mut SplitMix64::new(9));
    assert_eq!(
        a.iter().map(|x| x.0).collect::<Vec<_>>(),
        b.iter().map(|x| x.0).collect::<Vec<_>>()
    );
}

#[test]
fn weighted_sample_of_several_favours_heavy_items() {
    let seed = 47;
    println!("seed {seed}");
    let mut rng = SplitMix64::new(seed);
    // One heavy item among nine light ones: it is in a sample of 3 far more often than 3/10.
    let items: Vec<usize> = (0..10).collect();
    let weight = |i: &usize| if *i == 0 { 9.0 } else { 1.0 };
    let trials = 10_000;
    let mut heavy = 0u64;
    let mut light = [0u64; 10];
    for _ in 0..trials {
        let s = weighted_sample(&items, weight, 3, &mut rng);
        assert_eq!(s.len(), 3);
        for &i in &s {
            if i == 0 {
                heavy += 1;
            } else {
                light[i] += 1;
            }
        }
    }
    let heavy_rate = heavy as f64 / trials as f64;
    assert!(heavy_rate > 0.85, "heavy item in {heavy_rate} of samples");
    // The light items are exchangeable: uniform among themselves.
    let total: u64 = light.iter().sum();
    let expected = vec![total as f64 / 9.0; 9];
    let chi = chi_square(&light[1..], &expected);
    assert!(chi < 26.12, "chi-square {chi} (8 dof, 0.1 %)");
}

#[test]
fn uniform_sample_is_uniform_without_replacement() {
    let seed = 53;
    println!("seed {seed}");
    let mut rng = SplitMix64::new(seed);
    let items: Vec<usize> = (0..10).collect();
    let trials = 20_000;
    let mut included = [0u64; 10];
    let mut first = [0u64; 10];
    for _ in 0..trials {
        let s = uniform_sample(&items, 3, &mut rng);
        assert_eq!(s.len(), 3);
        assert_eq!(s.iter().collect::<BTreeSet<_>>().len(), 3, "no repeats");
        first[s[0]] += 1;
        for &i in &s {
            included[i] += 1;
        }
    }
    // 9 degrees of freedom: 27.88 is the 0.1 % critical value.
    let chi_in = chi_square(&included, &[trials as f64 * 0.3; 10]);
    let chi_first = chi_square(&first, &[trials as f64 * 0.1; 10]);
    assert!(
        chi_in < 27.88,
        "inclusion chi-square {chi_in}: {included:?}"
    );
    assert!(
        chi_first < 27.88,
        "first-place chi-square {chi_first}: {first:?}"
    );
    // Asking for more than there is gives a permutation of everything.
    let all = uniform_sample(&items, 50, &mut rng);
    assert_eq!(
        all.iter().copied().collect::<BTreeSet<_>>(),
        items.iter().copied().collect()
    );
    assert!(uniform_sample::<u8>(&[], 3, &mut rng).is_empty());
}
