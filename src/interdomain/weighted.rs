//! Sampling without replacement (spec notes §9.2).
//!
//! * [`weighted_sample`] is the reference's trust-weighted sample, Efraimidis–Spirakis: each
//!   item gets the key `−ln(u)/w` with `u` uniform in (0, 1] and its weight `w`; the `n`
//!   smallest keys win. An item's chance to come first is proportional to its weight; items of
//!   weight ≤ 0 (or NaN) are never chosen.
//! * [`uniform_sample`] is truly uniform (a partial Fisher–Yates shuffle). The reference's
//!   `uniform_sample` uses the weighted formula too, the spec's **\[inconsistency\]**; this one
//!   does what its name says.
//!
//! Both cost O(len) memory for indices or keys, and draw from the caller's seeded generator, so
//! a seed gives the same sample.

use crate::rng::SplitMix64;

/// Up to `n` items drawn without replacement with probability proportional to `weight`
/// (Efraimidis–Spirakis, in ascending key order: the first is the most "won"). Items whose
/// weight is ≤ 0 or NaN are never chosen, so the result is shorter than `n` when fewer items
/// have a positive weight. Ties (an infinite weight, say) keep the items' order.
pub fn weighted_sample<T: Clone>(
    items: &[T],
    weight: impl Fn(&T) -> f64,
    n: usize,
    rng: &mut SplitMix64,
) -> Vec<T> {
    let mut keyed: Vec<(f64, usize)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let w = weight(item);
        // Draw for every item, chosen or not, so the stream does not depend on the weights'
        // signs (a seed gives the same draws for the same list length).
        let u = 1.0 - rng.next_f64(); // in (0, 1]
        if w > 0.0 {
            keyed.push((-u.ln() / w, i));
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed
        .into_iter()
        .take(n)
        .map(|(_, i)| items[i].clone())
        .collect()
}

/// `min(n, len)` items drawn uniformly without replacement (a partial Fisher–Yates shuffle:
/// every subset of that size, in every order, is equally likely).
pub fn uniform_sample<T: Clone>(items: &[T], n: usize, rng: &mut SplitMix64) -> Vec<T> {
    let n = n.min(items.len());
    let mut idx: Vec<usize> = (0..items.len()).collect();
    for i in 0..n {
        let j = i + rng.below((items.len() - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx[..n].iter().map(|&i| items[i].clone()).collect()
}
