//! The figures computed at the end of a world: lookup results from the log, BLIP's error and
//! the observer's accuracy from the published filters, PSI results against the truth.

use std::collections::{BTreeMap, BTreeSet};

use super::apps::LookupLog;
use super::metrics::{self, Answered, PsiCheck};
use super::setup::{self, Plan};
use super::summary::LookupFigures;
use super::{InterdomainScenario, Measured, Probes};
use crate::identity::{DomainIdentity, NodeIdentity};
use crate::interdomain::blip;
use crate::rng::SplitMix64;

pub(super) fn lookup_results(log: &LookupLog, plan: &Plan, n: usize) -> LookupFigures {
    let answers: Vec<Answered> = plan
        .lookups
        .iter()
        .map(|l| {
            let o = log
                .lookups
                .get(&(l.node, plan.domains[l.domain]))
                .cloned()
                .flatten();
            match o {
                Some(o) if o.result.is_ok() => Answered {
                    domain: l.domain,
                    hops: Some(o.hops),
                    why: None,
                    advert: o.advert,
                },
                Some(o) => Answered {
                    domain: l.domain,
                    hops: None,
                    why: o.result.err(),
                    advert: false,
                },
                None => Answered {
                    domain: l.domain,
                    hops: None,
                    why: None,
                    advert: false,
                },
            }
        })
        .collect();
    metrics::lookup_figures(&answers, plan, n)
}

/// Most node pairs the BLIP error is measured on, and most nodes per side of the observer's
/// balanced sample.
const BLIP_PAIRS: usize = 4000;
const OBSERVER_SAMPLE: usize = 2000;

/// BLIP figures from the nodes' published (flipped) filters against the truth.
pub(super) fn blip_figures(
    s: &InterdomainScenario,
    plan: &Plan,
    probes: &[Option<Probes>],
    memberships: &[Vec<DomainIdentity>],
    m: &mut Measured,
) {
    let params = &s.sampling.blip;
    let published: Vec<Option<crate::wire::MembershipFilter>> = probes
        .iter()
        .map(|p| {
            p.as_ref()
                .and_then(|p| p.board.own())
                .map(|d| d.filter.clone())
        })
        .collect();
    let clear: Vec<crate::wire::MembershipFilter> = memberships
        .iter()
        .map(|ds| blip::encode(params, ds.iter()))
        .collect();
    let with: Vec<usize> = (0..published.len())
        .filter(|&i| published[i].is_some())
        .collect();
    let mut rng = SplitMix64::derive(s.common.seed, 0x1d_0002);
    let (mut err, mut err_clear, mut pairs) = (0.0, 0.0, 0usize);
    if with.len() >= 2 {
        for k in 0..BLIP_PAIRS {
            let a = with[rng.below(with.len() as u64) as usize];
            // Half the pairs share a domain (most random pairs share none).
            let b = if k % 2 == 0 {
                let doms = &plan.memberships[a];
                let d = doms[rng.below(doms.len() as u64) as usize];
                let ms: Vec<usize> = plan.members[d]
                    .iter()
                    .copied()
                    .filter(|&j| j != a && published[j].is_some())
                    .collect();
                if ms.is_empty() {
                    continue;
                }
                ms[rng.below(ms.len() as u64) as usize]
            } else {
                with[rng.below(with.len() as u64) as usize]
            };
            if a == b {
                continue;
            }
            let (Some(fa), Some(fb)) = (&published[a], &published[b]) else {
                continue;
            };
            let exact = metrics::set_cosine(&plan.memberships[a], &plan.memberships[b]);
            err += (blip::similarity(fa, fb) - exact).abs();
            err_clear += (blip::cosine(&clear[a], &clear[b]) - exact).abs();
            pairs += 1;
        }
    }
    m.blip_pairs = pairs;
    m.blip_error = err / pairs.max(1) as f64;
    m.blip_error_unflipped = err_clear / pairs.max(1) as f64;
    // The observer: the largest domain, all its members with a filter (up to the sample) and
    // as many non-members.
    let Some((d, _)) = plan.members.iter().enumerate().max_by_key(|(_, m)| m.len()) else {
        return;
    };
    let domain = plan.domains[d];
    let order = setup::shuffled(published.len(), &mut rng);
    let mut ins = Vec::new();
    let mut outs = Vec::new();
    for i in order {
        if published[i].is_none() {
            continue;
        }
        let member = plan.members[d].contains(&i);
        let side = if member { &mut ins } else { &mut outs };
        if side.len() < OBSERVER_SAMPLE {
            side.push(i);
        }
    }
    let k = ins.len().min(outs.len());
    let sample: Vec<(usize, bool)> = ins[..k]
        .iter()
        .map(|&i| (i, true))
        .chain(outs[..k].iter().map(|&i| (i, false)))
        .collect();
    let score = |f: &crate::wire::MembershipFilter| blip::domain_score(f, &domain);
    let flipped: Vec<(f64, bool)> = sample
        .iter()
        .filter_map(|&(i, mem)| published[i].as_ref().map(|f| (score(f), mem)))
        .collect();
    let unflipped: Vec<(f64, bool)> = sample
        .iter()
        .map(|&(i, mem)| (score(&clear[i]), mem))
        .collect();
    m.observer = metrics::best_threshold_accuracy(&flipped);
    m.observer_unflipped = metrics::best_threshold_accuracy(&unflipped);
}

/// Every PSI result the honest nodes' Clustering engines hold, against the true intersection.
pub(super) fn psi_figures(
    _plan: &Plan,
    probes: &[Option<Probes>],
    index: &BTreeMap<NodeIdentity, usize>,
    memberships: &[Vec<DomainIdentity>],
    m: &mut Measured,
) {
    for (i, p) in probes.iter().enumerate() {
        let Some(cp) = p.as_ref().and_then(|p| p.clustering.as_ref()) else {
            continue;
        };
        let mine: BTreeSet<DomainIdentity> = memberships[i].iter().copied().collect();
        for (peer, r) in cp.psi() {
            let Some(&j) = index.get(&peer) else { continue };
            let truth: BTreeSet<DomainIdentity> = memberships[j]
                .iter()
                .filter(|d| mine.contains(d))
                .copied()
                .collect();
            let check = PsiCheck {
                count: r.shared_count,
                revealed: r.shared.iter().copied().collect(),
                truth,
            };
            m.psi_checked += 1;
            if !check.exact() {
                m.psi_errors += 1;
                log::warn!("sim: PSI between nodes {i} and {j} is not exact");
            }
        }
    }
}
