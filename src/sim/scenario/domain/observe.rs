//! What the domain workload measures between and during steps: the agreement of the live
//! members' replicas, the overlay's connected components, and the engines' traffic.

use std::collections::BTreeMap;

use super::Probes;
use crate::domain::DOMAIN_ENGINE_NAME;
use crate::identity::{DomainIdentity, NodeIdentity};
use crate::sim::World;
use crate::topology::TOPOLOGY_ENGINE_NAME;

/// The convergence of the live members' replicas, kept up to date from the nodes each step
/// touched.
pub(super) struct Agreement {
    /// Per node: the member digest of its replica, while it is up and a member.
    pub(super) digest: Vec<Option<[u8; 32]>>,
    /// How many live members hold each digest.
    pub(super) count: BTreeMap<[u8; 32], usize>,
    /// Per node: its replica's member count (for the summary).
    pub(super) size: Vec<usize>,
}

impl Agreement {
    pub(super) fn set(&mut self, i: usize, d: Option<[u8; 32]>) {
        if self.digest[i] == d {
            return;
        }
        if let Some(old) = self.digest[i].take() {
            if let Some(c) = self.count.get_mut(&old) {
                *c -= 1;
                if *c == 0 {
                    self.count.remove(&old);
                }
            }
        }
        if let Some(new) = d {
            *self.count.entry(new).or_default() += 1;
        }
        self.digest[i] = d;
    }

    /// `(members in the set, nodes holding it)` per distinct replica, largest group first.
    pub(super) fn groups(&self) -> Vec<(usize, usize)> {
        let mut size_of: BTreeMap<[u8; 32], usize> = BTreeMap::new();
        for (i, d) in self.digest.iter().enumerate() {
            if let Some(d) = d {
                size_of.insert(*d, self.size[i]);
            }
        }
        let mut out: Vec<(usize, usize)> = self
            .count
            .iter()
            .map(|(d, k)| (size_of.get(d).copied().unwrap_or(0), *k))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        out
    }

    pub(super) fn live_members(&self) -> usize {
        self.count.values().sum()
    }
}

/// The largest connected component of the active-view overlay among the live members (an
/// edge wherever one of two members has the other in its view), as a share of them, and the
/// number of components.
pub(super) fn component_share(
    world: &World,
    probes: &[Option<Probes>],
    agreement: &Agreement,
    domain: &DomainIdentity,
    index: &BTreeMap<NodeIdentity, usize>,
) -> (f64, usize) {
    let live: Vec<usize> = (0..probes.len())
        .filter(|&i| world.is_up(i) && agreement.digest[i].is_some())
        .collect();
    if live.is_empty() {
        return (0.0, 0);
    }
    let mut parent: Vec<usize> = (0..probes.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for &i in &live {
        let Some(p) = &probes[i] else { continue };
        for peer in p.topology.active(domain) {
            let Some(&j) = index.get(&peer) else { continue };
            if world.is_up(j) && agreement.digest[j].is_some() {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
    for &i in &live {
        *sizes.entry(find(&mut parent, i)).or_default() += 1;
    }
    let largest = sizes.values().copied().max().unwrap_or(0);
    (largest as f64 / live.len() as f64, sizes.len())
}

/// Domain and Topology messages that left their nodes so far, by engine (crashed nodes'
/// counts kept).
pub(super) fn maintenance(world: &World) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for name in [DOMAIN_ENGINE_NAME, TOPOLOGY_ENGINE_NAME] {
        let live: u64 = world
            .nodes
            .iter()
            .flatten()
            .map(|nd| nd.sent_by(name))
            .sum();
        let gone = world.retired_sent.get(name).copied().unwrap_or(0);
        out.insert(name.to_string(), live + gone);
    }
    out
}

/// A Domain engine counter summed over the nodes (a crashed node's probe keeps its last
/// values).
pub(super) fn domain_counter(probes: &[Option<Probes>], name: &str) -> u64 {
    probes
        .iter()
        .flatten()
        .flat_map(|p| p.domain.stats().nonzero())
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .sum()
}

pub(super) fn engine_counters(
    probes: &[Option<Probes>],
    f: impl Fn(&Probes) -> Vec<(&'static str, u64)>,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for p in probes.iter().flatten() {
        for (k, v) in f(p) {
            *out.entry(k.to_string()).or_default() += v;
        }
    }
    out
}
