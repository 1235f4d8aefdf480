//! TAC proper (spec notes §9.5 with its proposal): the score, `closest`, initiate, respond and
//! merge, the fingers, the similarity cache, the overfull-filter check and the acceptance of
//! received descriptors.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::{ClusteringEngine, ClusteringStats};
use crate::identity::NodeIdentity;
use crate::interdomain::blip;
use crate::mail::identity::{IdentityRequest, IdentityUpdate};
use crate::mail::interdomain::BoardSource;
use crate::rng::SplitMix64;
use crate::runtime::Context;
use crate::time::Timestamp;
use crate::wire::{MembershipFilter, NodeDescriptor, Signed};

use super::wire::ClusteringMessage;

/// How far in the future a descriptor's `created` may be (clock skew): 10 minutes.
pub const MAX_FUTURE: Duration = Duration::from_secs(600);

/// One TAC view entry or finger.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) desc: Arc<NodeDescriptor>,
    pub(super) trust: f64,
    /// Gossip rounds since it entered the view.
    pub(super) age: u32,
}

/// A cached similarity to this node.
#[derive(Clone, Copy, Debug)]
pub(super) struct SimEntry {
    peer_version: u64,
    own_version: u64,
    /// Whether a PSI result was used (a new result invalidates the entry).
    exact: bool,
    pub(super) sim: f64,
    pub(super) overfull: bool,
}

/// Whom a ranking is for.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// This node: cached similarities, PSI results.
    Me,
    /// A peer with this filter (a respond).
    Peer(&'a MembershipFilter),
}

/// `period` jittered uniformly in ±25 %.
pub(super) fn jittered(period: Duration, rng: &mut SplitMix64) -> Duration {
    period.mul_f64(0.75 + 0.5 * rng.next_f64())
}

/// §9.5's proposal: `sim^(1−w) · trust^w`, higher is better.
pub(super) fn score(sim: f64, trust: f64, w: f64) -> f64 {
    let w = w.clamp(0.0, 1.0);
    sim.clamp(0.0, 1.0).powf(1.0 - w) * trust.clamp(0.0, 1.0).powf(w)
}

/// Whether `filter` has more bits set than `max_domains` domains can set (after flipping with
/// the filter's own probability), by more than four standard deviations (never with
/// `max_domains` 0: the check is off).
pub fn overfull(filter: &MembershipFilter, max_domains: u32) -> bool {
    if max_domains == 0 {
        return false;
    }
    let m = filter.bits.max(1) as f64;
    let p = blip::filter_flip_probability(filter);
    let kn = filter.hashes as f64 * max_domains as f64;
    let set = 1.0 - (1.0 - 1.0 / m).powf(kn);
    let q = p + (1.0 - 2.0 * p) * set;
    let sd = (m * q * (1.0 - q)).sqrt();
    filter.popcount() as f64 > m * q + 4.0 * sd
}

/// The exact overlap normalised like a cosine of the two sets: `shared / √(|own| · |peer|)`
/// (`|peer|` as the peer stated it in PSI, at least `shared`).
pub fn exact_similarity(shared: u32, own: usize, peer_count: u32) -> f64 {
    if shared == 0 || own == 0 {
        return 0.0;
    }
    let peer = peer_count.max(shared) as f64;
    (shared as f64 / (own as f64 * peer).sqrt()).min(1.0)
}

impl ClusteringEngine {
    /// The sampling views from the board, this node excluded, each node once (highest trust).
    pub(super) fn xview(&self, me: NodeIdentity) -> BTreeMap<NodeIdentity, Entry> {
        let mut out: BTreeMap<NodeIdentity, Entry> = BTreeMap::new();
        for n in self.board.list(BoardSource::Sampling) {
            let node = n.node();
            if node == me {
                continue;
            }
            let better = out.get(&node).is_none_or(|e| {
                n.descriptor.version > e.desc.version || n.trust > e.trust
            });
            if better {
                out.insert(
                    node,
                    Entry {
                        desc: n.descriptor.clone(),
                        trust: n.trust,
                        age: 0,
                    },
                );
            }
        }
        out
    }

    /// Reads the own descriptor from the board; false (counted) without one.
    fn refresh_own(&mut self) -> bool {
        match self.board.own() {
            Some(own) => {
                self.own = Some(own);
                true
            }
            None => {
                ClusteringStats::count(&self.stats.no_own_descriptor);
                false
            }
        }
    }

    /// TAC initiate (one gossip round).
    pub(super) fn initiate(&mut self, ctx: &mut Context) {
        if !self.refresh_own() || self.pending.len() >= self.settings.limits.max_pending {
            return;
        }
        let me = ctx.node();
        let xview = self.xview(me);
        let dst = if !self.view.is_empty() {
            let oldest = self.view.values().map(|e| e.age).max().unwrap_or(0);
            let ties: Vec<NodeIdentity> = self
                .view
                .iter()
                .filter(|(_, e)| e.age == oldest)
                .map(|(n, _)| *n)
                .collect();
            let d = ties[self.rng.below(ties.len() as u64) as usize];
            self.view.remove(&d);
            self.dirty = true;
            d
        } else if !xview.is_empty() {
            let i = self.rng.below(xview.len() as u64) as usize;
            *xview.keys().nth(i).expect("index below the length")
        } else {
            return;
        };
        if self.pending.contains_key(&dst) {
            return;
        }
        for e in self.view.values_mut() {
            e.age = e.age.saturating_add(1);
        }
        let mut pool = self.pool(&xview);
        pool.remove(&dst);
        let n = self.settings.xchg_len.saturating_sub(1);
        let mut descriptors = vec![(*self.own.clone().expect("refreshed")).clone()];
        descriptors.extend(self.closest(&pool, Target::Me, n).into_iter().map(|(_, e)| (*e.desc).clone()));
        let deadline = ctx.now().instant + self.settings.period * 3;
        self.pending.insert(dst, deadline);
        self.send(ctx, dst, &ClusteringMessage::Exchange { descriptors });
    }

    /// TAC respond, then merge.
    pub(super) fn on_exchange(
        &mut self,
        ctx: &mut Context,
        src: NodeIdentity,
        descriptors: Vec<NodeDescriptor>,
    ) {
        if self.answers_left == 0 {
            self.hostile(&self.stats.rate_limited, "an exchange over the rate", Some(src));
            return;
        }
        if descriptors.first().is_none_or(|d| d.node() != src) {
            self.hostile(&self.stats.no_sender_descriptor, "an exchange", Some(src));
            return;
        }
        if !self.refresh_own() {
            return;
        }
        self.answers_left -= 1;
        let me = ctx.node();
        let recvd = self.accept(ctx, descriptors, me);
        let Some(src_desc) = recvd.iter().find(|d| d.node() == src).cloned() else {
            // Its own descriptor failed the checks (counted there).
            return;
        };
        let xview = self.xview(me);
        if !xview.contains_key(&src) && !self.view.contains_key(&src) {
            ctx.identity_request(IdentityRequest::Update(IdentityUpdate::NodeAdvert(
                src_desc.advert.clone(),
            )));
        }
        let sent: BTreeSet<NodeIdentity> = recvd.iter().map(|d| d.node()).collect();
        let mut uview = self.pool(&xview);
        uview.retain(|n, _| !sent.contains(n));
        let own = self.own.clone().expect("refreshed");
        uview.insert(
            me,
            Entry {
                desc: own,
                trust: 1.0,
                age: 0,
            },
        );
        let reply: Vec<NodeDescriptor> = self
            .closest(&uview, Target::Peer(&src_desc.filter), self.settings.xchg_len)
            .into_iter()
            .map(|(_, e)| (*e.desc).clone())
            .collect();
        self.send(ctx, src, &ClusteringMessage::Reply { descriptors: reply });
        self.merge(ctx, src, recvd, xview);
    }

    /// The answer to this node's exchange: merged.
    pub(super) fn on_reply(
        &mut self,
        ctx: &mut Context,
        src: NodeIdentity,
        descriptors: Vec<NodeDescriptor>,
    ) {
        if self.pending.remove(&src).is_none() {
            self.hostile(&self.stats.unsolicited, "a reply", Some(src));
            return;
        }
        if !self.refresh_own() {
            return;
        }
        let me = ctx.node();
        let recvd = self.accept(ctx, descriptors, me);
        let xview = self.xview(me);
        self.merge(ctx, src, recvd, xview);
    }

    /// The candidates this node holds: view, fingers and the sampling views (the newer
    /// descriptor and a locally known trust win).
    fn pool(&self, xview: &BTreeMap<NodeIdentity, Entry>) -> BTreeMap<NodeIdentity, Entry> {
        let mut pool = self.view.clone();
        for (n, e) in &self.fingers {
            pool.entry(*n).or_insert_with(|| e.clone());
        }
        for (n, x) in xview {
            match pool.get_mut(n) {
                Some(e) => {
                    e.trust = x.trust;
                    if x.desc.version > e.desc.version {
                        e.desc = x.desc.clone();
                    }
                }
                None => {
                    pool.insert(*n, x.clone());
                }
            }
        }
        pool
    }

    /// TAC merge of `recvd` from `src`: new view and fingers.
    fn merge(
        &mut self,
        ctx: &mut Context,
        src: NodeIdentity,
        mut recvd: Vec<Arc<NodeDescriptor>>,
        xview: BTreeMap<NodeIdentity, Entry>,
    ) {
        ClusteringStats::count(&self.stats.merged);
        let me = ctx.node();
        let t_src = xview
            .get(&src)
            .or_else(|| self.view.get(&src))
            .or_else(|| self.fingers.get(&src))
            .map(|e| e.trust)
            .unwrap_or(self.settings.limits.stranger_trust);
        recvd.retain(|d| d.node() != me);
        // Truncate to xchg_len random entries (partial Fisher–Yates).
        let keep = self.settings.xchg_len.min(recvd.len());
        for i in 0..keep {
            let j = i + self.rng.below((recvd.len() - i) as u64) as usize;
            recvd.swap(i, j);
        }
        recvd.truncate(keep);
        let mut pool = self.pool(&xview);
        for d in recvd {
            let node = d.node();
            if let Some(x) = xview.get(&node) {
                // A locally known trust wins over the transitive one.
                let e = pool.get_mut(&node).expect("xview is in the pool");
                e.trust = x.trust;
                if d.version > e.desc.version {
                    e.desc = d;
                }
                continue;
            }
            let trust = t_src;
            if trust < self.settings.min_trust {
                continue;
            }
            match pool.get_mut(&node) {
                Some(e) => {
                    e.trust = e.trust.max(trust);
                    if d.version > e.desc.version {
                        e.desc = d;
                    }
                }
                None => {
                    pool.insert(
                        node,
                        Entry {
                            desc: d,
                            trust,
                            age: 0,
                        },
                    );
                }
            }
        }
        let ranked = self.closest(&pool, Target::Me, pool.len());
        let mut view = BTreeMap::new();
        let mut rest = Vec::new();
        for (n, e) in ranked {
            if view.len() < self.settings.view_len && !self.sim_me(&e.desc).overfull {
                view.insert(n, e);
            } else {
                rest.push((n, e));
            }
        }
        let fingers = self.pick_fingers(rest);
        for (n, e) in view.iter().chain(fingers.iter()) {
            let fresh = !self.view.contains_key(n) && !self.fingers.contains_key(n);
            if fresh && !xview.contains_key(n) {
                ctx.identity_request(IdentityRequest::Update(IdentityUpdate::NodeAdvert(
                    e.desc.advert.clone(),
                )));
            }
        }
        self.view = view;
        self.fingers = fingers;
        self.prune_sims();
        self.dirty = true;
    }

    /// The `fingers` most dissimilar of `rest` by `(1 − sim)^(1−w) · trust^w`, overfull filters
    /// and entries below `min_trust` excluded.
    fn pick_fingers(&mut self, rest: Vec<(NodeIdentity, Entry)>) -> BTreeMap<NodeIdentity, Entry> {
        let w = self.settings.trust_weight;
        let mut scored: Vec<(f64, u64, NodeIdentity, Entry)> = Vec::new();
        for (n, e) in rest {
            let s = self.sim_me(&e.desc);
            if s.overfull || e.trust < self.settings.min_trust {
                continue;
            }
            let tie = self.rng.next_u64();
            scored.push((score(1.0 - s.sim, e.trust, w), tie, n, e));
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored
            .into_iter()
            .take(self.settings.fingers)
            .map(|(_, _, n, e)| (n, e))
            .collect()
    }

    /// `pool` ranked for `target`, best first, at most `len`: overfull filters after all
    /// others, then by score, ties broken at random.
    fn closest(
        &mut self,
        pool: &BTreeMap<NodeIdentity, Entry>,
        target: Target<'_>,
        len: usize,
    ) -> Vec<(NodeIdentity, Entry)> {
        let w = self.settings.trust_weight;
        let max_domains = self.settings.limits.max_claimed_domains;
        let mut scored: Vec<(bool, f64, u64, NodeIdentity, &Entry)> = Vec::with_capacity(pool.len());
        for (n, e) in pool {
            let (sim, full) = match target {
                Target::Me => {
                    let s = self.sim_me(&e.desc);
                    (s.sim, s.overfull)
                }
                Target::Peer(f) => {
                    let full = self.sims.get(n).map_or_else(
                        || overfull(&e.desc.filter, max_domains),
                        |s| s.overfull,
                    );
                    (if full { 0.0 } else { blip::similarity(f, &e.desc.filter) }, full)
                }
            };
            let tie = self.rng.next_u64();
            scored.push((full, score(sim, e.trust, w), tie, *n, e));
        }
        scored.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(b.1.total_cmp(&a.1))
                .then(a.2.cmp(&b.2))
        });
        scored
            .into_iter()
            .take(len)
            .map(|(_, _, _, n, e)| (n, e.clone()))
            .collect()
    }

    /// The similarity of `desc`'s node to this node (cached per versions and PSI result).
    pub(super) fn sim_me(&mut self, desc: &NodeDescriptor) -> SimEntry {
        let node = desc.node();
        let Some(own) = self.own.clone() else {
            return SimEntry {
                peer_version: desc.version,
                own_version: 0,
                exact: false,
                sim: 0.0,
                overfull: false,
            };
        };
        let result = self
            .results
            .get(&node)
            .filter(|r| r.matches(own.version, desc.version))
            .map(|r| (r.outcome.shared_count, r.outcome.peer_count));
        if let Some(s) = self.sims.get(&node) {
            if s.peer_version == desc.version
                && s.own_version == own.version
                && s.exact == result.is_some()
            {
                return *s;
            }
        }
        let was_full = self
            .sims
            .get(&node)
            .is_some_and(|s| s.peer_version == desc.version && s.overfull);
        let full = overfull(&desc.filter, self.settings.limits.max_claimed_domains);
        if full && !was_full {
            self.hostile(&self.stats.overfull_filters, "an overfull filter", Some(node));
        }
        let sim = if full {
            0.0
        } else if let Some((shared, peer_count)) = result {
            let own_count = self.own_elements().len();
            exact_similarity(shared, own_count, peer_count)
        } else {
            blip::similarity(&own.filter, &desc.filter)
        };
        let entry = SimEntry {
            peer_version: desc.version,
            own_version: own.version,
            exact: result.is_some(),
            sim,
            overfull: full,
        };
        self.sims.insert(node, entry);
        if self.sims.len() > self.settings.limits.max_cached_sims {
            self.prune_sims();
            if self.sims.len() > self.settings.limits.max_cached_sims {
                let victim = self.sims.keys().find(|n| **n != node).copied();
                if let Some(v) = victim {
                    self.sims.remove(&v);
                }
            }
        }
        entry
    }

    /// The cached similarity of a view member (for the probe).
    pub(super) fn cached_sim(&self, node: &NodeIdentity) -> f64 {
        self.sims.get(node).map_or(0.0, |s| s.sim)
    }

    /// Keeps the similarity cache to the view and fingers when it is over its limit.
    fn prune_sims(&mut self) {
        if self.sims.len() <= self.settings.limits.max_cached_sims {
            return;
        }
        let keep: BTreeSet<NodeIdentity> =
            self.view.keys().chain(self.fingers.keys()).copied().collect();
        self.sims.retain(|n, _| keep.contains(n));
    }

    /// Verifies received descriptors (each node once, this node excluded), reusing the held
    /// copy of one seen before; an older one than held yields the held one.
    fn accept(
        &mut self,
        ctx: &mut Context,
        list: Vec<NodeDescriptor>,
        me: NodeIdentity,
    ) -> Vec<Arc<NodeDescriptor>> {
        let now = ctx.now().wall;
        let mut out: Vec<Arc<NodeDescriptor>> = Vec::with_capacity(list.len());
        let mut seen = BTreeSet::new();
        for d in list {
            let node = d.node();
            if node == me || !seen.insert(node) {
                continue;
            }
            if let Some((held, _)) = self.known.get(&node) {
                if **held == d {
                    out.push(held.clone());
                    continue;
                }
                if held.version >= d.version {
                    ClusteringStats::count(&self.stats.stale_descriptor);
                    out.push(held.clone());
                    continue;
                }
            }
            match self.check(d, now) {
                Ok(d) => {
                    let d = Arc::new(d);
                    self.remember(d.clone());
                    out.push(d);
                }
                Err(why) => {
                    self.hostile(&self.stats.bad_descriptor, why, Some(node));
                }
            }
        }
        out
    }

    /// The descriptor checks: filter parameters equal to this node's, advert not expired,
    /// `created` not beyond [`MAX_FUTURE`], the advert's and the descriptor's signatures.
    fn check(&self, d: NodeDescriptor, now: Timestamp) -> Result<NodeDescriptor, &'static str> {
        ClusteringStats::count(&self.stats.descriptors_verified);
        let own = self.own.as_ref().ok_or("a descriptor before the own one")?;
        if d.filter.bits != own.filter.bits || d.filter.hashes != own.filter.hashes {
            return Err("a descriptor with other filter parameters");
        }
        if d.advert.expired(now) {
            return Err("an expired descriptor");
        }
        if d.created > now.after(MAX_FUTURE) {
            return Err("a descriptor from the future");
        }
        if d.advert.clone().verify().is_err() {
            return Err("a descriptor whose advert does not verify");
        }
        d.verify()
            .map(|v| v.into_inner())
            .map_err(|_| "a descriptor whose signature does not verify")
    }

    fn remember(&mut self, d: Arc<NodeDescriptor>) {
        self.stamp += 1;
        self.known.insert(d.node(), (d, self.stamp));
        if self.known.len() > self.settings.limits.max_known {
            let oldest = self
                .known
                .iter()
                .min_by_key(|(_, (_, s))| *s)
                .map(|(n, _)| *n);
            if let Some(o) = oldest {
                self.known.remove(&o);
            }
        }
    }
}
