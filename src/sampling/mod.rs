//! The PeerSampling engine (name [`SAMPLING_ENGINE_NAME`], serves `Protocol::SAMPLING`):
//! keeps a small, constantly changing random view of the other nodes running the
//! inter-domain protocols — the long-range links of the small-world overlay (spec notes
//! §9.1) — as signed node descriptors (advert + BLIP-flipped membership filter, §9.2), and
//! publishes it with the explicit (trusted) view on the [`NeighbourBoard`]. docs/sampling.md
//! describes the algorithm, its parameters and how it resists a colluding minority.
//!
//! * **TAPS** ([`SamplerMode::Taps`], the default, §9.3). An explicit view of configured
//!   nodes with local trust, and a dynamic view of at most `view_len` entries. Every period
//!   (jittered) the node picks the view or the explicit view at random (50/50, as §9.3
//!   intends), sends its own descriptor and a uniform sample of `xchg_len − 1` others to
//!   that view's oldest entry, and ages its view; the partner answers the same way. Both
//!   merge what they received: own entry left out, age 0, trust = the local trust for an
//!   explicit node, else `trust(src) × trust_transitivity`; entries below `min_trust` are
//!   not merged; the rest go through URPS; the new view is a trust-weighted sample
//!   (Efraimidis–Spirakis) of `view ∪ xview ∪ sampler outputs`.
//! * **URPS** (§9.4) on the TAPS input stream: every received id updates a count-min sketch
//!   and may enter the sampler memory Γ with probability `min / f̂`; each one is replaced by
//!   a uniform element of Γ, so the merged entries are sampler outputs, not the ids pushed.
//! * **CYCLON** ([`SamplerMode::Cyclon`], §9.8): the baseline, no trust and no URPS. The
//!   node ages its view, removes the oldest entry Q, sends itself and `l − 1` random entries
//!   to Q, which answers with `l` of its own; both fill empty slots, then overwrite the
//!   entries they sent.
//! * **Descriptors.** This node's descriptor is made from `directory.memberships()` through
//!   `blip::OwnFilter` (re-flipped only when the memberships change, checked every period)
//!   and set on the board. A received descriptor is checked (advert and descriptor
//!   signatures, expiry, `created` not in the future, this node's filter parameters) once per
//!   (node, version): the same bytes again are taken from memory; an older version than the
//!   one held or remembered is refused (`stale_version`), other bytes under the same version
//!   too (`conflicting`). The adverts of view members go to the identity store so that the
//!   Router and Transport can reach them.
//! * **Trust of inputs.** Only `Origin::Remote` messages whose verified sender runs on `via`
//!   are acted on. Malformed bodies, unknown versions, lists over
//!   [`SamplingLimits::max_descriptors`], duplicate entries, replies nothing was asked for and
//!   exchanges over the per-peer and per-period rates are refused, counted in
//!   [`SamplingStats`] and logged at powers of two.
//!
//! Drain contract: one timer ([`GOSSIP`]), set in `start` and again every period; every other
//! output is a message or an identity-store update recorded in the `Context`. Randomness
//! comes only from the seed given to [`SamplingEngine::new`] and every choice iterates
//! ordered maps, so one seed and one input sequence give one output sequence.
//!
//! Memory: bounded by [`SamplingLimits`] (≈ 300 KiB at the defaults, see its doc). Work per
//! exchange: at most `max_descriptors` descriptors, each a map lookup and a SHA-256 of its
//! bytes, signatures only for a new (node, version); the URPS update `⌈ln 1/δ⌉ × ⌈e/ε⌉`
//! cells; the merge sorts `view_len + |xview| + xchg_len` entries.

mod known;
mod limits;
mod stats;
mod view;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::identity::{DomainIdentity, Keypair, NodeIdentity};
use crate::interdomain::blip::OwnFilter;
use crate::interdomain::descriptor::{check_descriptor, make_descriptor};
use crate::interdomain::urps::Urps;
use crate::interdomain::weighted::uniform_sample;
use crate::mail::domain::DomainDirectory;
use crate::mail::identity::{IdentityRequest, IdentityUpdate};
pub use crate::mail::interdomain::SAMPLING_ENGINE_NAME;
use crate::mail::interdomain::{BoardSource, LinkKind, Neighbour, NeighbourBoard};
use crate::mail::{Input, Message, Origin, Undeliverable};
use crate::rng::SplitMix64;
use crate::runtime::{Context, Engine};
use crate::wire::{
    Destination, MessageId, NodeAdvert, NodeDescriptor, Protocol, Signed, WireError,
};
use known::{fingerprint, Known, Seen};
pub use limits::{SamplerMode, SamplingLimits, SamplingSettings};
pub use stats::{ProbeEntry, SamplingProbe, SamplingStats};
use view::Entry;
use wire::SamplingMessage;

/// The token of the engine's one timer (the gossip period).
pub const GOSSIP: u64 = 1;

/// The exchange this node started and waits on.
#[derive(Debug)]
struct Pending {
    dst: NodeIdentity,
    id: MessageId,
    /// The entries sent besides this node's own (CYCLON overwrites them with the reply).
    sent: Vec<NodeIdentity>,
}

/// The PeerSampling engine: TAPS + URPS, or the CYCLON baseline (see the module doc).
pub struct SamplingEngine {
    key: Keypair,
    me: NodeIdentity,
    own_advert: NodeAdvert,
    settings: SamplingSettings,
    directory: DomainDirectory,
    board: NeighbourBoard,
    stats: Arc<SamplingStats>,
    probe: SamplingProbe,
    rng: SplitMix64,
    own_filter: OwnFilter,
    filter_version: u64,
    own: Option<Arc<NodeDescriptor>>,
    view: BTreeMap<NodeIdentity, Entry>,
    xview: BTreeMap<NodeIdentity, Entry>,
    explicit_adverts: Vec<NodeAdvert>,
    urps: Urps<(Arc<NodeDescriptor>, f64)>,
    known: Known,
    /// Advert versions handed to the identity store, for the nodes of both views.
    registered: BTreeMap<NodeIdentity, u64>,
    pending: Option<Pending>,
    /// Exchanges accepted per peer in the current period.
    rate: BTreeMap<NodeIdentity, u32>,
    period_exchanges: u32,
    invalid: BTreeMap<&'static str, u64>,
    dirty: bool,
}

impl SamplingEngine {
    /// An engine for `node_key`'s node advertised by `own_advert`, with the explicit view
    /// `explicit` (adverts with their local trust in [0, 1]; at most
    /// [`SamplingLimits::max_explicit`], this node and repeats left out), reading its
    /// memberships from `directory` and publishing on `board`; `seed` seeds every random
    /// choice it makes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node_key: Keypair,
        own_advert: NodeAdvert,
        settings: SamplingSettings,
        explicit: Vec<(NodeAdvert, f64)>,
        directory: DomainDirectory,
        board: NeighbourBoard,
        stats: Arc<SamplingStats>,
        seed: u64,
    ) -> SamplingEngine {
        let me = node_key.node_identity();
        let mut rng = SplitMix64::new(seed);
        let mut xview = BTreeMap::new();
        let mut explicit_adverts = Vec::new();
        let total = explicit.len();
        for (advert, trust) in explicit {
            if advert.id == me || xview.contains_key(&advert.id) {
                continue;
            }
            if xview.len() >= settings.limits.max_explicit {
                log::warn!(
                    "sampling: explicit view limited to {} of {total} nodes",
                    settings.limits.max_explicit
                );
                break;
            }
            let trust = if trust.is_finite() { trust.clamp(0.0, 1.0) } else { 0.0 };
            xview.insert(
                advert.id,
                Entry {
                    node: advert.id,
                    desc: None,
                    trust,
                    known: true,
                    age: 0,
                },
            );
            explicit_adverts.push(advert);
        }
        let urps = Urps::new(settings.urps.clone(), rng.next_u64());
        SamplingEngine {
            me,
            key: node_key,
            own_advert,
            own_filter: OwnFilter::new(settings.blip),
            known: Known::new(settings.limits.max_known),
            settings,
            directory,
            board,
            probe: SamplingProbe::new(stats.clone()),
            stats,
            rng,
            filter_version: 0,
            own: None,
            view: BTreeMap::new(),
            xview,
            explicit_adverts,
            urps,
            registered: BTreeMap::new(),
            pending: None,
            rate: BTreeMap::new(),
            period_exchanges: 0,
            invalid: BTreeMap::new(),
            dirty: true,
        }
    }

    /// The read-only probe on this engine's views and counters (shared: clone it and read it
    /// from another thread, or between simulation steps).
    pub fn probe(&self) -> SamplingProbe {
        self.probe.clone()
    }

    /// The settings this engine was built with.
    pub fn settings(&self) -> &SamplingSettings {
        &self.settings
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Arc<SamplingStats> {
        &self.stats
    }

    /// The dynamic view's nodes, ordered.
    pub fn view_nodes(&self) -> Vec<NodeIdentity> {
        self.view.keys().copied().collect()
    }

    /// This node's current descriptor (made in `start`).
    pub fn own_descriptor(&self) -> Option<Arc<NodeDescriptor>> {
        self.own.clone()
    }

    /// A sampling message from `via`, as if verified, with the work after an input (for the
    /// tests, which move bodies between engines without signing the messages).
    #[cfg(test)]
    pub(crate) fn deliver_remote(&mut self, ctx: &mut Context, via: NodeIdentity, body: &[u8]) {
        self.on_remote(ctx, via, body);
        self.after();
    }

    // --- inputs -------------------------------------------------------------------------

    fn on_message(&mut self, ctx: &mut Context, msg: Message) {
        match msg.origin() {
            Origin::Remote { via } => {
                let sender = msg.sender();
                if msg.protocol() != Protocol::SAMPLING
                    || sender.verified().is_none()
                    || sender.named_node() != via
                    || via == self.me
                {
                    self.hostile(&self.stats.bad_origin, "a message not from its node", via);
                    return;
                }
                self.on_remote(ctx, via, msg.body());
            }
            Origin::Local => {
                self.hostile(&self.stats.bad_origin, "local mail", self.me);
            }
            Origin::Topic { via, .. } => {
                self.hostile(&self.stats.bad_origin, "a topic event", via);
            }
        }
    }

    fn on_remote(&mut self, ctx: &mut Context, src: NodeIdentity, body: &[u8]) {
        let msg = match SamplingMessage::from_bytes(body, self.settings.limits.max_descriptors) {
            Ok(m) => m,
            Err(WireError::TooLarge { .. }) => {
                self.hostile(&self.stats.oversized, "an oversized list", src);
                return;
            }
            Err(WireError::UnknownVersion(v)) => {
                log::debug!("sampling: version {v} body from {src:?}");
                SamplingStats::count(&self.stats.unknown_version);
                return;
            }
            Err(e) => {
                log::debug!("sampling: undecodable body from {src:?}: {e}");
                self.hostile(&self.stats.malformed, "a malformed body", src);
                return;
            }
        };
        match msg {
            SamplingMessage::Exchange { descriptors } => {
                if !self.admit_exchange(src) {
                    return;
                }
                SamplingStats::count(&self.stats.received_exchange);
                let recvd = self.admit(ctx, src, descriptors);
                let sent = self.respond(ctx, src);
                self.merge(recvd, src, &sent);
            }
            SamplingMessage::Reply { descriptors } => {
                let Some(p) = self.pending.take_if(|p| p.dst == src) else {
                    self.hostile(&self.stats.unsolicited, "an unsolicited reply", src);
                    return;
                };
                SamplingStats::count(&self.stats.received_reply);
                let recvd = self.admit(ctx, src, descriptors);
                self.merge(recvd, src, &p.sent);
            }
        }
        self.register_view(ctx);
    }

    /// Whether an exchange from `src` is within the per-peer and per-period rates.
    fn admit_exchange(&mut self, src: NodeIdentity) -> bool {
        let l = &self.settings.limits;
        if self.period_exchanges >= l.max_exchanges_per_period
            || (!self.rate.contains_key(&src) && self.rate.len() >= l.max_rate_entries)
        {
            self.hostile(&self.stats.busy, "an exchange past the period's limit", src);
            return false;
        }
        let n = self.rate.entry(src).or_insert(0);
        *n += 1;
        if *n > l.max_exchanges_per_peer {
            self.hostile(&self.stats.rate_limited, "exchanges past its rate", src);
            return false;
        }
        self.period_exchanges += 1;
        true
    }

    /// The received descriptors that pass their checks, as fresh entries (trust still unset).
    fn admit(
        &mut self,
        ctx: &mut Context,
        src: NodeIdentity,
        descriptors: Vec<NodeDescriptor>,
    ) -> Vec<Entry> {
        let now = ctx.now().wall;
        let mut nodes = BTreeSet::new();
        let mut out = Vec::with_capacity(descriptors.len());
        for d in descriptors {
            SamplingStats::count(&self.stats.descriptors_received);
            let node = d.node();
            if node == self.me {
                SamplingStats::count(&self.stats.own_entries);
                continue;
            }
            if !nodes.insert(node) {
                self.hostile(&self.stats.duplicate, "a repeated descriptor", src);
                continue;
            }
            if d.advert.expired(now) {
                self.hostile(&self.stats.expired, "an expired descriptor", src);
                continue;
            }
            let desc = match self.held(&node) {
                Some(h) if h.version > d.version => {
                    self.hostile(&self.stats.stale_version, "an older descriptor", src);
                    continue;
                }
                Some(h) if h.version == d.version => {
                    if *h != d {
                        self.hostile(&self.stats.conflicting, "a conflicting descriptor", src);
                        continue;
                    }
                    SamplingStats::count(&self.stats.descriptors_cached);
                    h
                }
                _ => match self.check(d, now, src) {
                    Some(d) => d,
                    None => continue,
                },
            };
            if node == src {
                self.register(ctx, &desc.advert);
            }
            out.push(Entry {
                node,
                desc: Some(desc),
                trust: 1.0,
                known: false,
                age: 0,
            });
        }
        out
    }

    /// The descriptor held for `node` in either view.
    fn held(&self, node: &NodeIdentity) -> Option<Arc<NodeDescriptor>> {
        let v = self.view.get(node).and_then(|e| e.desc.clone());
        let x = self.xview.get(node).and_then(|e| e.desc.clone());
        match (v, x) {
            (Some(v), Some(x)) => Some(if x.version > v.version { x } else { v }),
            (v, x) => v.or(x),
        }
    }

    /// A descriptor not held: taken from memory, or checked in full.
    fn check(
        &mut self,
        d: NodeDescriptor,
        now: crate::time::Timestamp,
        src: NodeIdentity,
    ) -> Option<Arc<NodeDescriptor>> {
        let print = fingerprint(&d);
        match self.known.seen(&d, &print) {
            Seen::Same => {
                SamplingStats::count(&self.stats.descriptors_cached);
                Some(Arc::new(d))
            }
            Seen::Stale => {
                self.hostile(&self.stats.stale_version, "an older descriptor", src);
                None
            }
            Seen::Conflicting => {
                self.hostile(&self.stats.conflicting, "a conflicting descriptor", src);
                None
            }
            Seen::New => {
                SamplingStats::count(&self.stats.descriptors_verified);
                match check_descriptor(d, now, &self.settings.blip) {
                    Ok(v) => {
                        let d = v.into_inner();
                        self.known.insert(&d, print);
                        Some(Arc::new(d))
                    }
                    Err(e) => {
                        *self.invalid.entry(e.label()).or_insert(0) += 1;
                        self.dirty = true;
                        self.hostile(&self.stats.invalid, e.label(), src);
                        None
                    }
                }
            }
        }
    }

    fn on_undeliverable(&mut self, u: Undeliverable) {
        if let Some(p) = self.pending.take_if(|p| p.id == u.id) {
            log::debug!("sampling: exchange to {:?} undeliverable: {:?}", p.dst, u.reason);
            SamplingStats::count(&self.stats.undeliverable);
            self.view.remove(&p.dst);
            self.dirty = true;
        }
    }

    // --- the protocol -------------------------------------------------------------------

    fn on_period(&mut self, ctx: &mut Context) {
        self.refresh_own(ctx);
        self.rate.clear();
        self.period_exchanges = 0;
        if let Some(p) = self.pending.take() {
            SamplingStats::count(&self.stats.exchange_timeouts);
            self.view.remove(&p.dst);
            self.dirty = true;
        }
        match self.settings.mode {
            SamplerMode::Taps => self.initiate_taps(ctx),
            SamplerMode::Cyclon => self.initiate_cyclon(ctx),
        }
        self.register_view(ctx);
    }

    /// §9.3 initiate step 1: an empty view takes up to `view_len` random explicit entries.
    fn bootstrap(&mut self) {
        if !self.view.is_empty() || self.xview.is_empty() {
            return;
        }
        let all: Vec<Entry> = self.xview.values().cloned().collect();
        for e in uniform_sample(&all, self.settings.view_len, &mut self.rng) {
            self.view.insert(e.node, e);
        }
        self.dirty = true;
    }

    fn initiate_taps(&mut self, ctx: &mut Context) {
        self.bootstrap();
        let explicit = match (self.view.is_empty(), self.xview.is_empty()) {
            (true, true) => return,
            (false, false) => self.rng.below(2) == 1,
            (view_empty, _) => view_empty,
        };
        let chosen = if explicit { &self.xview } else { &self.view };
        let Some(dst) = view::oldest(chosen.values(), &mut self.rng) else {
            return;
        };
        let others = self.sample(Some(dst), self.settings.xchg_len.saturating_sub(1));
        for e in self.view.values_mut() {
            e.age = e.age.saturating_add(1);
        }
        self.dirty = true;
        self.send_exchange(ctx, dst, others);
    }

    fn initiate_cyclon(&mut self, ctx: &mut Context) {
        self.bootstrap();
        for e in self.view.values_mut() {
            e.age = e.age.saturating_add(1);
        }
        let Some(dst) = view::oldest(self.view.values(), &mut self.rng) else {
            return;
        };
        self.view.remove(&dst);
        self.dirty = true;
        let l = self.settings.xchg_len.saturating_sub(1);
        let others = view::sample_descriptors(self.view.values(), None, l, &mut self.rng);
        self.send_exchange(ctx, dst, others);
    }

    /// A uniform sample of `n` descriptors of `view ∪ xview`, without `exclude`.
    fn sample(&mut self, exclude: Option<NodeIdentity>, n: usize) -> Vec<Arc<NodeDescriptor>> {
        let all = self.view.values().chain(self.xview.values());
        view::sample_descriptors(all, exclude, n, &mut self.rng)
    }

    fn send_exchange(
        &mut self,
        ctx: &mut Context,
        dst: NodeIdentity,
        others: Vec<Arc<NodeDescriptor>>,
    ) {
        let Some(own) = self.own.clone() else {
            return;
        };
        let sent = others.iter().map(|d| d.node()).collect();
        let mut descriptors = vec![(*own).clone()];
        descriptors.extend(others.iter().map(|d| (**d).clone()));
        let body = SamplingMessage::Exchange { descriptors }.to_bytes();
        let id = ctx.send(Destination::Node(dst), Protocol::SAMPLING, body);
        SamplingStats::count(&self.stats.sent_exchange);
        self.pending = Some(Pending { dst, id, sent });
    }

    /// §9.3 respond (own descriptor and `xchg_len − 1` others, not the initiator) or §9.8's
    /// (`l` entries of the view); returns the nodes sent besides this one.
    fn respond(&mut self, ctx: &mut Context, src: NodeIdentity) -> Vec<NodeIdentity> {
        let (own, others) = match self.settings.mode {
            SamplerMode::Taps => (
                self.own.clone(),
                self.sample(Some(src), self.settings.xchg_len.saturating_sub(1)),
            ),
            SamplerMode::Cyclon => {
                let l = self.settings.xchg_len;
                let v = self.view.values();
                (None, view::sample_descriptors(v, Some(src), l, &mut self.rng))
            }
        };
        let sent = others.iter().map(|d| d.node()).collect();
        let descriptors = own
            .iter()
            .chain(others.iter())
            .map(|d| (**d).clone())
            .collect();
        let body = SamplingMessage::Reply { descriptors }.to_bytes();
        ctx.send(Destination::Node(src), Protocol::SAMPLING, body);
        SamplingStats::count(&self.stats.sent_reply);
        sent
    }

    /// Merges admitted entries from `src` (§9.3 merge, or §9.8 steps 5–6 overwriting `sent`).
    fn merge(&mut self, recvd: Vec<Entry>, src: NodeIdentity, sent: &[NodeIdentity]) {
        // Newer descriptors of explicit nodes update the explicit view.
        for e in &recvd {
            if let Some(x) = self.xview.get_mut(&e.node) {
                if e.version() > x.version() {
                    x.desc = e.desc.clone();
                    self.dirty = true;
                }
            }
        }
        self.dirty = true;
        match self.settings.mode {
            SamplerMode::Cyclon => {
                let len = self.settings.view_len;
                view::cyclon_merge(&mut self.view, self.me, recvd, sent, len);
            }
            SamplerMode::Taps => {
                let t_src = self.trust_of(&src);
                let s = &self.settings;
                let (transitivity, min_trust) = (s.trust_transitivity, s.min_trust);
                let mut outputs = Vec::with_capacity(recvd.len());
                for mut e in recvd {
                    if let Some(x) = self.xview.get(&e.node) {
                        e.trust = x.trust;
                        e.known = true;
                    } else {
                        e.trust = t_src * transitivity;
                    }
                    if e.trust < min_trust {
                        SamplingStats::count(&self.stats.below_min_trust);
                        continue;
                    }
                    let Some(desc) = e.desc else { continue };
                    SamplingStats::count(&self.stats.urps_fed);
                    let (node, (desc, trust)) =
                        self.urps.feed(e.node, (desc, e.trust), &mut self.rng);
                    outputs.push(Entry {
                        node,
                        desc: Some(desc),
                        trust,
                        known: false,
                        age: 0,
                    });
                }
                let len = self.settings.view_len;
                self.view = view::taps_resample(
                    &self.view,
                    &self.xview,
                    outputs,
                    self.me,
                    len,
                    &mut self.rng,
                );
            }
        }
    }

    /// This node's trust in `node`: local for an explicit node, else the view's, else
    /// `stranger_trust`.
    fn trust_of(&self, node: &NodeIdentity) -> f64 {
        if let Some(x) = self.xview.get(node) {
            return x.trust;
        }
        match self.view.get(node) {
            Some(e) => e.trust,
            None => self.settings.stranger_trust,
        }
    }

    /// Makes this node's descriptor at start and whenever its memberships changed.
    fn refresh_own(&mut self, ctx: &mut Context) {
        let set: BTreeSet<DomainIdentity> = self.directory.memberships().into_iter().collect();
        let (version, filter) = self.own_filter.current(&set, &mut self.rng);
        if self.own.is_some() && version == self.filter_version {
            return;
        }
        let filter = filter.clone();
        self.filter_version = version;
        let now = ctx.now().wall;
        // Wall-clock versions keep increasing across restarts; +1 across a clock step back.
        let prev = self.own.as_ref().map_or(0, |d| d.version);
        let version = now.0.max(prev + 1);
        let d = make_descriptor(&self.key, self.own_advert.clone(), filter, version, now);
        let d = Arc::new(d);
        self.board.set_own(d.clone());
        self.own = Some(d);
        SamplingStats::count(&self.stats.own_descriptors);
        self.dirty = true;
    }

    /// Hands `advert` to the identity store unless that version already was.
    fn register(&mut self, ctx: &mut Context, advert: &NodeAdvert) {
        if self.registered.get(&advert.id).is_some_and(|v| *v >= advert.version) {
            return;
        }
        self.registered.insert(advert.id, advert.version);
        SamplingStats::count(&self.stats.adverts_registered);
        ctx.identity_request(IdentityRequest::Update(IdentityUpdate::NodeAdvert(
            advert.clone(),
        )));
    }

    /// Registers the adverts of the view's members; forgets those of nodes in neither view.
    fn register_view(&mut self, ctx: &mut Context) {
        let adverts: Vec<NodeAdvert> = self
            .view
            .values()
            .filter_map(|e| e.desc.as_ref().map(|d| d.advert.clone()))
            .collect();
        for a in &adverts {
            self.register(ctx, a);
        }
        let (view, xview) = (&self.view, &self.xview);
        self.registered
            .retain(|n, _| view.contains_key(n) || xview.contains_key(n));
    }

    fn hostile(&self, counter: &std::sync::atomic::AtomicU64, what: &str, from: NodeIdentity) {
        match SamplingStats::count_hostile(counter) {
            Some(n) => log::warn!("sampling: refused {what} from {from:?} ({n} so far)"),
            None => log::debug!("sampling: refused {what} from {from:?}"),
        }
    }

    fn next_period(&mut self) -> Duration {
        let p = self.settings.period;
        let j = self.settings.limits.jitter_percent.min(100) as f64 / 100.0;
        p.mul_f64(1.0 - j + 2.0 * j * self.rng.next_f64())
    }

    /// After every input: publishes the views on the board and the probe if they changed.
    fn after(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let mut list = Vec::with_capacity(self.view.len() + self.xview.len());
        let kinds = [(&self.view, LinkKind::Random), (&self.xview, LinkKind::Explicit)];
        for (entries, kind) in kinds {
            for e in entries.values() {
                if let Some(d) = &e.desc {
                    list.push(Neighbour {
                        descriptor: d.clone(),
                        kind,
                        trust: e.trust,
                        shared: None,
                    });
                }
            }
        }
        self.board.publish(BoardSource::Sampling, list);
        let entry = |e: &Entry| ProbeEntry {
            node: e.node,
            trust: e.trust,
            age: e.age,
            version: e.version(),
        };
        let mut st = self.probe.state.write();
        st.view = self.view.values().map(entry).collect();
        st.explicit = self.xview.values().map(entry).collect();
        st.own_version = self.own.as_ref().map_or(0, |d| d.version);
        st.invalid = self.invalid.clone();
    }
}

impl Engine for SamplingEngine {
    fn start(&mut self, ctx: &mut Context) {
        let adverts = std::mem::take(&mut self.explicit_adverts);
        for a in &adverts {
            self.register(ctx, a);
        }
        self.refresh_own(ctx);
        // The first exchange within one period, so that nodes started together spread out.
        let first = self.settings.period.mul_f64(self.rng.next_f64());
        ctx.set_timer_after(GOSSIP, first);
        self.after();
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Message(m) => self.on_message(ctx, m),
            Input::Undeliverable(u) => self.on_undeliverable(u),
            Input::Timer(GOSSIP) => {
                self.on_period(ctx);
                let next = self.next_period();
                ctx.set_timer_after(GOSSIP, next);
            }
            _ => {}
        }
        self.after();
    }
}
