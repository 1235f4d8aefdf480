//! The figures of an inter-domain run, computed from what the nodes publish and probe against
//! the truth the plan holds: the colluders' share of honest views, eclipsed nodes, lookup
//! success and hops, BLIP's similarity error and an observer's accuracy, and PSI's exactness.

use std::collections::{BTreeMap, BTreeSet};

use super::setup::{size_bucket, Plan};
use super::summary::LookupFigures;
use crate::identity::DomainIdentity;

/// The colluders' share of the honest nodes' views (all entries pooled) and the honest nodes
/// whose view is at least half colluders (eclipsed). `views`: per honest node, the nodes in
/// its dynamic view (by index).
pub(super) fn view_share(views: &[Vec<usize>], colluder: &[bool]) -> (f64, usize) {
    let (mut bad, mut all, mut eclipsed) = (0usize, 0usize, 0usize);
    for v in views {
        let b = v.iter().filter(|&&j| colluder[j]).count();
        bad += b;
        all += v.len();
        if !v.is_empty() && 2 * b >= v.len() {
            eclipsed += 1;
        }
    }
    (bad as f64 / all.max(1) as f64, eclipsed)
}

/// The `q`-quantile (0..=1) of `v` (sorted here), nearest rank; 0 for none.
pub(super) fn quantile(v: &mut [u32], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let k = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[k] as f64
}

/// One lookup's result as the figures need it.
pub(super) struct Answered {
    pub(super) domain: usize,
    /// Hops, if a true member answered.
    pub(super) hops: Option<u32>,
    /// Why not (for the failures' tally).
    pub(super) why: Option<String>,
    pub(super) advert: bool,
}

/// Lookup success overall, for large domains (≥ 1 % of `nodes`), per size bucket, and hops.
pub(super) fn lookup_figures(answers: &[Answered], plan: &Plan, nodes: usize) -> LookupFigures {
    let large = |d: usize| plan.members[d].len() * 100 >= nodes;
    let mut by_size: BTreeMap<(usize, String), (usize, usize)> = BTreeMap::new();
    let mut hops = Vec::new();
    let mut f = LookupFigures {
        asked: answers.len(),
        ..LookupFigures::default()
    };
    let mut large_ok = 0;
    for a in answers {
        let e = by_size
            .entry(size_bucket(plan.members[a.domain].len()))
            .or_default();
        e.0 += 1;
        if large(a.domain) {
            f.asked_large += 1;
        }
        f.with_advert += a.advert as usize;
        match a.hops {
            Some(h) => {
                f.succeeded += 1;
                e.1 += 1;
                hops.push(h);
                if large(a.domain) {
                    large_ok += 1;
                }
            }
            None => {
                let why = a.why.clone().unwrap_or_else(|| "unanswered".into());
                *f.failures.entry(why).or_default() += 1;
            }
        }
    }
    f.success = f.succeeded as f64 / f.asked.max(1) as f64;
    f.success_large = large_ok as f64 / f.asked_large.max(1) as f64;
    f.by_size = by_size
        .into_iter()
        .map(|((_, name), (n, ok))| (name, (n, ok as f64 / n.max(1) as f64)))
        .collect();
    f.hops_p50 = quantile(&mut hops, 0.5);
    f.hops_p99 = quantile(&mut hops, 0.99);
    f
}

/// The exact similarity of two membership sets: `|A ∩ B| / √(|A| |B|)` (0 if either is empty).
pub(super) fn set_cosine(a: &[usize], b: &[usize]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let sa: BTreeSet<&usize> = a.iter().collect();
    let shared = b.iter().filter(|d| sa.contains(d)).count();
    shared as f64 / ((a.len() * b.len()) as f64).sqrt()
}

/// The best balanced accuracy (mean of the rates of members and of non-members guessed right)
/// of a threshold on `scores`, guessing "member" at or above it: the strongest observer that
/// ranks nodes by one number. `scores`: `(score, is_member)`.
pub(super) fn best_threshold_accuracy(scores: &[(f64, bool)]) -> f64 {
    let pos = scores.iter().filter(|s| s.1).count();
    let neg = scores.len() - pos;
    if pos == 0 || neg == 0 {
        return 1.0;
    }
    let mut v = scores.to_vec();
    // Descending by score; the threshold moves down past each distinct score.
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0usize, 0usize);
    // Threshold above every score: everyone guessed a non-member.
    let mut best: f64 = 0.5;
    let mut i = 0;
    while i < v.len() {
        let s = v[i].0;
        while i < v.len() && v[i].0 == s {
            if v[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let acc = 0.5 * (tp as f64 / pos as f64) + 0.5 * ((neg - fp) as f64 / neg as f64);
        best = best.max(acc);
    }
    best
}

/// One PSI result a node's Clustering engine holds for a peer, against the truth.
pub(super) struct PsiCheck {
    /// The shared count PSI found.
    pub(super) count: u32,
    /// The domains PSI revealed as shared.
    pub(super) revealed: BTreeSet<DomainIdentity>,
    /// The true intersection.
    pub(super) truth: BTreeSet<DomainIdentity>,
}

impl PsiCheck {
    /// Whether the result is exact: the count and the revealed domains are the intersection
    /// (so nothing outside it was revealed).
    pub(super) fn exact(&self) -> bool {
        self.count as usize == self.truth.len() && self.revealed == self.truth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_share_pools_entries_and_counts_half_as_eclipsed() {
        let colluder = [false, false, true, true];
        let views = vec![vec![0, 2], vec![1, 0, 0, 3], vec![]];
        let (share, eclipsed) = view_share(&views, &colluder);
        assert!((share - 2.0 / 6.0).abs() < 1e-9);
        assert_eq!(eclipsed, 1);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&mut v, 0.5), 50.0);
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut [], 0.5), 0.0);
    }

    #[test]
    fn the_observer_finds_the_separating_threshold_and_chance_is_a_half() {
        let separable = [(0.9, true), (0.8, true), (0.2, false), (0.1, false)];
        assert_eq!(best_threshold_accuracy(&separable), 1.0);
        let useless = [(0.5, true), (0.5, false), (0.5, true), (0.5, false)];
        assert_eq!(best_threshold_accuracy(&useless), 0.5);
        let half = [(0.9, true), (0.8, false), (0.2, true), (0.1, false)];
        assert_eq!(best_threshold_accuracy(&half), 0.75);
    }

    #[test]
    fn set_cosine_is_exact_overlap() {
        assert_eq!(set_cosine(&[1, 2], &[1, 2]), 1.0);
        assert_eq!(set_cosine(&[1], &[2]), 0.0);
        assert!((set_cosine(&[1, 2, 3, 4], &[1]) - 0.5).abs() < 1e-9);
        assert_eq!(set_cosine(&[], &[1]), 0.0);
    }
}
