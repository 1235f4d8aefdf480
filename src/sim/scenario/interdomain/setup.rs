//! The world an inter-domain run starts from, drawn from the seed before any node runs: the
//! domains (Zipf-sized), each node's memberships, the colluders, and the lookups.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::identity::{DomainIdentity, Keypair};
use crate::rng::SplitMix64;

/// One lookup: node `node` asks, at `at`, for some member of domain `domain` (an index into
/// [`Plan::domains`]) — a domain it is not a member of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Lookup {
    pub(super) node: usize,
    pub(super) domain: usize,
    pub(super) at: Duration,
}

/// Everything drawn before the run.
pub(super) struct Plan {
    /// The domains' keys, by popularity rank (rank 1 first).
    pub(super) domain_keys: Vec<Keypair>,
    /// The domains' identities, by rank.
    pub(super) domains: Vec<DomainIdentity>,
    /// Domain index by identity.
    pub(super) domain_index: BTreeMap<DomainIdentity, usize>,
    /// Per domain: its member nodes.
    pub(super) members: Vec<BTreeSet<usize>>,
    /// Per node: the domains it is a member of (indexes, ascending).
    pub(super) memberships: Vec<Vec<usize>>,
    /// Per node: whether it colludes.
    pub(super) colluder: Vec<bool>,
    /// The honest nodes, ascending.
    pub(super) honest: Vec<usize>,
    /// The lookups, by time.
    pub(super) lookups: Vec<Lookup>,
}

/// Cumulative Zipf weights `1 / r^s` over ranks `1..=n`, normalised to end at 1.
fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = (1..=n)
        .map(|r| {
            acc += 1.0 / (r as f64).powf(s);
            acc
        })
        .collect();
    for c in &mut cdf {
        *c /= acc;
    }
    cdf
}

/// A rank drawn from `cdf` (an index into it).
fn draw(cdf: &[f64], rng: &mut SplitMix64) -> usize {
    let u = rng.next_f64();
    cdf.partition_point(|&c| c < u).min(cdf.len() - 1)
}

/// A seeded permutation of `0..n`.
pub(super) fn shuffled(n: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

/// What the plan is drawn from.
pub(super) struct PlanParams {
    pub(super) nodes: usize,
    pub(super) domains: usize,
    /// Zipf exponent of the domains' popularity.
    pub(super) zipf: f64,
    /// Fewest and most domains per node.
    pub(super) per_node: (usize, usize),
    /// Fraction of nodes that collude.
    pub(super) colluders: f64,
    /// Lookups, spread evenly over `[lookups_at, lookups_at + lookup_window)`.
    pub(super) lookups: usize,
    pub(super) lookups_at: Duration,
    pub(super) lookup_window: Duration,
}

/// Draws the plan. Each node is a member of between `per_node.0` and `per_node.1` distinct
/// domains (uniformly many), each drawn with Zipf probability (so domain sizes are
/// Zipf-distributed); colluders are a seeded `colluders` fraction of the nodes; each lookup is
/// a distinct (honest node, domain with at least one member that node is not in) pair, the
/// node and the domain each uniform.
pub(super) fn plan(p: &PlanParams, rng: &mut SplitMix64) -> Plan {
    let n = p.nodes;
    let d = p.domains.max(1);
    let domain_keys: Vec<Keypair> = (0..d).map(|_| Keypair::from_rng(rng)).collect();
    let domains: Vec<DomainIdentity> = domain_keys.iter().map(|k| k.domain_identity()).collect();
    let domain_index = domains.iter().enumerate().map(|(i, d)| (*d, i)).collect();
    let cdf = zipf_cdf(d, p.zipf);
    let (lo, hi) = (p.per_node.0.max(1), p.per_node.1.max(p.per_node.0.max(1)));
    let mut members = vec![BTreeSet::new(); d];
    let mut memberships = Vec::with_capacity(n);
    for node in 0..n {
        let want = (lo + rng.below((hi - lo + 1) as u64) as usize).min(d);
        let mut mine = BTreeSet::new();
        let mut tries = 0;
        while mine.len() < want && tries < 1000 {
            tries += 1;
            mine.insert(draw(&cdf, rng));
        }
        for &k in &mine {
            members[k].insert(node);
        }
        memberships.push(mine.into_iter().collect::<Vec<_>>());
    }
    let order = shuffled(n, rng);
    let k = ((n as f64) * p.colluders.clamp(0.0, 1.0)).round() as usize;
    let mut colluder = vec![false; n];
    for &i in &order[..k.min(n)] {
        colluder[i] = true;
    }
    let honest: Vec<usize> = (0..n).filter(|&i| !colluder[i]).collect();
    let populated: Vec<usize> = (0..d).filter(|&k| !members[k].is_empty()).collect();
    let mut lookups = Vec::with_capacity(p.lookups);
    let mut seen = BTreeSet::new();
    let mut tries = 0;
    while lookups.len() < p.lookups && !honest.is_empty() && !populated.is_empty() {
        tries += 1;
        if tries > p.lookups * 100 + 1000 {
            break;
        }
        let node = honest[rng.below(honest.len() as u64) as usize];
        let domain = populated[rng.below(populated.len() as u64) as usize];
        if members[domain].contains(&node) || !seen.insert((node, domain)) {
            continue;
        }
        let at = p.lookups_at
            + p.lookup_window
                .mul_f64(lookups.len() as f64 / p.lookups.max(1) as f64);
        lookups.push(Lookup { node, domain, at });
    }
    Plan {
        domain_keys,
        domains,
        domain_index,
        members,
        memberships,
        colluder,
        honest,
        lookups,
    }
}

/// The size bucket of a domain of `size` members, for `lookup_success_by_size`: powers of
/// two (`"1"`, `"2-3"`, `"4-7"`, …).
pub(super) fn size_bucket(size: usize) -> (usize, String) {
    let size = size.max(1);
    let lo = 1usize << (usize::BITS - 1 - size.leading_zeros());
    let hi = lo * 2 - 1;
    let name = if lo == hi {
        format!("{lo}")
    } else {
        format!("{lo}-{hi}")
    };
    (lo, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> PlanParams {
        PlanParams {
            nodes: 2000,
            domains: 200,
            zipf: 1.0,
            per_node: (1, 5),
            colluders: 0.2,
            lookups: 500,
            lookups_at: Duration::from_secs(10),
            lookup_window: Duration::from_secs(5),
        }
    }

    #[test]
    fn sizes_follow_zipf_and_memberships_stay_in_bounds() {
        let p = plan(&params(), &mut SplitMix64::new(4));
        assert!(p.memberships.iter().all(|m| (1..=5).contains(&m.len())));
        let total: usize = p.memberships.iter().map(Vec::len).sum();
        assert!((5000..7000).contains(&total), "{total}");
        // Rank 1 about twice rank 2 and ten times rank 10 (Zipf, s = 1).
        let (a, b, c) = (p.members[0].len(), p.members[1].len(), p.members[9].len());
        assert!(a > b && b > c, "{a} {b} {c}");
        assert!((a as f64 / c as f64) > 5.0, "{a} {c}");
        assert_eq!(p.colluder.iter().filter(|&&c| c).count(), 400);
    }

    #[test]
    fn lookups_are_distinct_foreign_pairs_from_honest_nodes() {
        let p = plan(&params(), &mut SplitMix64::new(5));
        assert_eq!(p.lookups.len(), 500);
        let mut seen = BTreeSet::new();
        for l in &p.lookups {
            assert!(!p.colluder[l.node]);
            assert!(!p.members[l.domain].contains(&l.node));
            assert!(!p.members[l.domain].is_empty());
            assert!(seen.insert((l.node, l.domain)));
        }
        let again = plan(&params(), &mut SplitMix64::new(5));
        assert_eq!(again.lookups, p.lookups);
    }

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(size_bucket(1).1, "1");
        assert_eq!(size_bucket(3).1, "2-3");
        assert_eq!(size_bucket(4).1, "4-7");
        assert_eq!(size_bucket(100), (64, "64-127".to_string()));
    }
}
