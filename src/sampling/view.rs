//! View entries and the view operations of §9.2 (union), §9.3 (the TAPS exchange sample and
//! merge) and §9.8 (the CYCLON merge), kept apart from the engine's input handling.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::identity::NodeIdentity;
use crate::interdomain::weighted::{uniform_sample, weighted_sample};
use crate::rng::SplitMix64;
use crate::wire::NodeDescriptor;

/// One view entry (§9.2's node descriptor, local part).
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub node: NodeIdentity,
    /// Its verified descriptor; `None` for an explicit entry not heard from yet.
    pub desc: Option<Arc<NodeDescriptor>>,
    /// This node's trust in it, in [0, 1].
    pub trust: f64,
    /// Whether the trust was set locally (an explicit entry).
    pub known: bool,
    /// Gossip rounds since it entered the view.
    pub age: u32,
}

impl Entry {
    /// Its descriptor's version (0 without one).
    pub fn version(&self) -> u64 {
        self.desc.as_ref().map_or(0, |d| d.version)
    }
}

/// §9.2 union: on a duplicate node keep the entry with the higher version (the held one on a
/// tie); its trust becomes the local trust if either copy is `known`, else the larger.
pub(super) fn union(into: &mut BTreeMap<NodeIdentity, Entry>, e: Entry) {
    match into.get_mut(&e.node) {
        None => {
            into.insert(e.node, e);
        }
        Some(held) => {
            let trust = match (held.known, e.known) {
                (true, _) => held.trust,
                (false, true) => e.trust,
                (false, false) => held.trust.max(e.trust),
            };
            let known = held.known || e.known;
            if e.version() > held.version() {
                *held = e;
            }
            held.trust = trust;
            held.known = known;
        }
    }
}

/// The oldest entry of `entries` (a random one among ties), if any.
pub(super) fn oldest<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    rng: &mut SplitMix64,
) -> Option<NodeIdentity> {
    let mut best: Vec<NodeIdentity> = Vec::new();
    let mut best_age = 0;
    for e in entries {
        if best.is_empty() || e.age > best_age {
            best.clear();
            best_age = e.age;
            best.push(e.node);
        } else if e.age == best_age {
            best.push(e.node);
        }
    }
    if best.is_empty() {
        return None;
    }
    Some(best[rng.below(best.len() as u64) as usize])
}

/// A uniform sample of `n` descriptors from `candidates` (entries without a descriptor
/// cannot be sent and are left out; a node in both lists counts once).
pub(super) fn sample_descriptors<'a>(
    candidates: impl Iterator<Item = &'a Entry>,
    exclude: Option<NodeIdentity>,
    n: usize,
    rng: &mut SplitMix64,
) -> Vec<Arc<NodeDescriptor>> {
    let mut by_node: BTreeMap<NodeIdentity, Arc<NodeDescriptor>> = BTreeMap::new();
    for e in candidates {
        if Some(e.node) == exclude {
            continue;
        }
        if let Some(d) = &e.desc {
            match by_node.get(&e.node) {
                Some(h) if h.version >= d.version => {}
                _ => {
                    by_node.insert(e.node, d.clone());
                }
            }
        }
    }
    let items: Vec<Arc<NodeDescriptor>> = by_node.into_values().collect();
    uniform_sample(&items, n, rng)
}

/// §9.3 merge step 4: the trust-weighted sample (Efraimidis–Spirakis) of `view_len` entries
/// of `view ∪ xview ∪ recvd`, never `me`.
pub(super) fn taps_resample(
    view: &BTreeMap<NodeIdentity, Entry>,
    xview: &BTreeMap<NodeIdentity, Entry>,
    recvd: Vec<Entry>,
    me: NodeIdentity,
    view_len: usize,
    rng: &mut SplitMix64,
) -> BTreeMap<NodeIdentity, Entry> {
    let mut all = view.clone();
    for e in xview.values() {
        union(&mut all, e.clone());
    }
    for e in recvd {
        union(&mut all, e);
    }
    all.remove(&me);
    let items: Vec<Entry> = all.into_values().collect();
    weighted_sample(&items, |e| e.trust, view_len, rng)
        .into_iter()
        .map(|e| (e.node, e))
        .collect()
}

/// §9.8 steps 5–6: leaves out entries for `me` and nodes already held (a held node's
/// descriptor is refreshed if the received one is newer), fills empty slots first, then
/// overwrites the entries that were sent (`sent`, in order) while they are still held.
pub(super) fn cyclon_merge(
    view: &mut BTreeMap<NodeIdentity, Entry>,
    me: NodeIdentity,
    recvd: Vec<Entry>,
    sent: &[NodeIdentity],
    view_len: usize,
) {
    let mut replace = sent.iter();
    for e in recvd {
        if e.node == me {
            continue;
        }
        if let Some(held) = view.get_mut(&e.node) {
            if e.version() > held.version() {
                held.desc = e.desc;
            }
            continue;
        }
        if view.len() < view_len {
            view.insert(e.node, e);
            continue;
        }
        for s in replace.by_ref() {
            if view.remove(s).is_some() {
                view.insert(e.node, e);
                break;
            }
        }
    }
}
