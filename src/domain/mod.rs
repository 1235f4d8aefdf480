//! The Domain engine: domain membership, joins, leaves, expulsions and external requests
//! (spec notes §5.6, issue 12). docs/domains.md describes the design; docs/wire.md §12A the
//! messages.
//!
//! One engine per node (name [`DOMAIN_ENGINE_NAME`], serving `Protocol::DOMAIN`) hosts one
//! *instance* per domain it knows, from a [`DomainSettings`] (the signed [`DomainAdvert`],
//! the PSK if the node has it, whether to join at start) or from a `DomainMail::Join` that
//! carries the advert.
//!
//! * **Membership** is a replicated set: a grow-only set of signed operations (see [`ops`])
//!   from which [`membership::Membership`] derives the members by one deterministic replay.
//!   Set union is the merge, so replicas holding the same operations agree.
//! * **Dissemination**: new operations are pushed once (deduplicated by id) to the active view
//!   the local Topology engine reports (`ViewMail::Watch`, `PeerAddedToView`,
//!   `PeerRemovedFromView`), or to the introducers while the view is empty; and every
//!   [`DomainLimits::digest_interval`] (with seeded jitter) a `Digest` goes to one random view
//!   peer. A mismatch is answered with the version vector and repaired with the missing
//!   operations, one bounded batch at a time (see `sync`).
//! * **Joins** (`join`): a signed `JoinRequest` to an introducer or member, which checks it and
//!   answers with a signed `JoinResponse` carrying the `Add` it made; retried over the
//!   introducers with backoff. **Leave** and **expel** are `Remove` operations.
//! * **External requests** (`ext`): a node sends an `ExtRequest` to a member the advert lists
//!   as accepting them. This engine answers only its own protocol (`Protocol::DOMAIN`, request
//!   `info`); requests for other protocols are answered with an error.
//! * **Domain-routed requests**: the node's DomainRouting engine hands a request that reached
//!   this member as `RoutingMail::Arrived` (local mail, `Protocol::DOMAIN`); it is answered as
//!   an external request (`info`), with `RoutingMail::Respond` to the DomainRouting engine.
//!   Each instance's advert, and whether this node answers external requests for it, is set in
//!   the directory (`DomainDirectory::set_advert`) so DomainRouting knows where to deliver.
//! * Every membership change is published into the shared [`DomainDirectory`] and told to the
//!   local Topology engine (`ViewMail::Members`), at most once per flush; a [`DomainProbe`]
//!   gives the simulator a read-only view.
//!
//! Sans-IO: time from `ctx.now()`, randomness from the seeded [`SplitMix64`] given at
//! construction; every map is ordered, so the same seed and inputs give the same outputs.

mod ext;
mod instance;
mod join;
mod local;
pub mod membership;
pub mod ops;
pub mod stats;
mod sync;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::identity::{DomainIdentity, Keypair, NodeIdentity};
use crate::mail::domain::{DomainDirectory, ViewMail};
use crate::mail::{Input, Origin};
use crate::rng::SplitMix64;
use crate::runtime::{Context, Engine, SendOptions};
use crate::wire::{Destination, Protocol};

pub use crate::mail::domain::DOMAIN_ENGINE_NAME;
pub use crate::wire::advert::{DomainAdvert, DomainAuth, Introducer};
pub use ext::INFO_REQUEST;
use instance::Instance;
pub use membership::{LogLimits, Member, Membership};
pub use ops::{Op, OpId, OpKind};
pub use stats::{DomainProbe, DomainProbeEntry, DomainStats};
pub use wire::{DomainInfo, DomainMessage, JoinAuth, JoinOutcome, JoinRequest, JoinResponse};

/// The timer token of the periodic tick (digests, join and external request timeouts).
const TICK: u64 = 1;

/// One domain this node serves, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainSettings {
    /// The domain's signed advert.
    pub advert: DomainAdvert,
    /// The domain's pre-shared key, if this node has it (needed to join, or to approve joins,
    /// of a domain with auth `psk`).
    pub psk: Option<Vec<u8>>,
    /// Whether to ask to join at start (a node that is an introducer is a member anyway).
    pub join_at_start: bool,
}

/// The Domain engine's limits. Memory per domain is dominated by the operation log:
/// ≈ 300 bytes per stored operation (the operation, its index entries and its share of the
/// version vector), so the defaults bound a domain at ≈ 5 MiB; plus 32 bytes per member in
/// the [`DomainDirectory`] and 100 bytes per member in the derived member set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainLimits {
    /// Most domains served (instances); more are refused (`domains_full`). Default 64.
    pub max_domains: usize,
    /// Most operations stored per domain; more are refused (`ops_store_full`). Default
    /// 16,384.
    pub max_ops: usize,
    /// Most operations stored per author that is not an introducer (`ops_author_full`).
    /// Default 64.
    pub max_ops_per_author: usize,
    /// Most members per domain (the advert's `max_members`, if lower, applies). Default
    /// 8,192.
    pub max_members: usize,
    /// Most operations per domain waiting for their author's add. Default 512.
    pub max_pending: usize,
    /// How far a join request's `created` may be from this node's clock. Default 120 s.
    pub join_window: Duration,
    /// Most join request ids remembered per domain against replays (entries older than
    /// `join_window` are forgotten first). Default 4,096 (≈ 200 KiB).
    pub replay_cache: usize,
    /// How long to wait for the first join response; each retry waits twice as long.
    /// Default 2 s.
    pub join_timeout: Duration,
    /// How many join requests to send (over the introducers in turn) before giving up with
    /// `Timeout`. Default 4.
    pub join_tries: u32,
    /// How often a member sends a digest to one random view peer (±25 % seeded jitter).
    /// Default 1 s.
    pub digest_interval: Duration,
    /// Most `Digest` and `Vector` messages handled per peer per second; more are ignored
    /// (`sync_rate_limited`). Default 8.
    pub sync_per_peer_s: u32,
    /// Most `Ops` messages handled per peer per second; more are ignored
    /// (`ops_rate_limited`). Default 64.
    pub ops_per_peer_s: u32,
    /// Most `JoinRequest` and `ExtRequest` messages handled per peer per second (each its
    /// own window); more are ignored (`join_rate_limited`, `ext_rate_limited`). Default 4.
    pub requests_per_peer_s: u32,
    /// Most peers whose sync rate is tracked at once (the oldest windows are forgotten).
    /// Default 4,096.
    pub rate_peers: usize,
    /// Most nodes kept per domain's view (from the Topology's events). Default 64.
    pub max_view: usize,
    /// Most contacts a push goes to while the view is empty. Default 3.
    pub push_contacts: usize,
    /// Most external requests outstanding from this node. Default 64.
    pub max_outstanding_ext: usize,
    /// How long to wait for an external response. Default 5 s.
    pub ext_timeout: Duration,
}

impl Default for DomainLimits {
    fn default() -> Self {
        DomainLimits {
            max_domains: 64,
            max_ops: 16_384,
            max_ops_per_author: 64,
            max_members: 8_192,
            max_pending: 512,
            join_window: Duration::from_secs(120),
            replay_cache: 4_096,
            join_timeout: Duration::from_secs(2),
            join_tries: 4,
            digest_interval: Duration::from_secs(1),
            sync_per_peer_s: 8,
            ops_per_peer_s: 64,
            requests_per_peer_s: 4,
            rate_peers: 4_096,
            max_view: 64,
            push_contacts: 3,
            max_outstanding_ext: 64,
            ext_timeout: Duration::from_secs(5),
        }
    }
}

impl DomainLimits {
    fn log_limits(&self) -> LogLimits {
        LogLimits {
            max_ops: self.max_ops,
            max_ops_per_author: self.max_ops_per_author,
            max_members: self.max_members,
            max_pending: self.max_pending,
        }
    }
}

/// The message kinds rate-limited per peer, each in its own window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum RateKind {
    /// `Digest` and `Vector`.
    Sync,
    /// `Ops`.
    Ops,
    /// `JoinRequest`.
    Join,
    /// `ExtRequest`.
    Ext,
}

/// The Domain engine (see the module doc).
pub struct DomainEngine {
    key: Keypair,
    me: NodeIdentity,
    directory: DomainDirectory,
    limits: DomainLimits,
    stats: Arc<DomainStats>,
    probe: DomainProbe,
    rng: SplitMix64,
    domains: BTreeMap<DomainIdentity, Instance>,
    /// Per peer and [`RateKind`]: the second its window began, and the messages handled in
    /// it.
    rate: BTreeMap<(NodeIdentity, RateKind), (u64, u32)>,
    next_ext_id: u64,
    started: bool,
}

impl DomainEngine {
    /// A Domain engine for the node whose key is `node_key`, serving the domains of
    /// `settings` (adverts that do not verify are refused and counted), publishing into
    /// `directory`. A node whose identity is among a domain's introducers is a member of it
    /// from the start.
    pub fn new(
        node_key: Keypair,
        settings: Vec<DomainSettings>,
        directory: DomainDirectory,
        limits: DomainLimits,
        stats: Arc<DomainStats>,
        seed: u64,
    ) -> DomainEngine {
        let me = node_key.node_identity();
        let mut engine = DomainEngine {
            key: node_key,
            me,
            directory,
            limits,
            probe: DomainProbe {
                domains: Default::default(),
                stats: stats.clone(),
            },
            stats,
            rng: SplitMix64::new(seed),
            domains: BTreeMap::new(),
            rate: BTreeMap::new(),
            next_ext_id: 1,
            started: false,
        };
        for s in settings {
            if let Err(why) = engine.add_domain(s.advert, s.psk, s.join_at_start) {
                log::warn!("domain engine: configured domain refused: {why}");
            }
        }
        engine
    }

    /// The read-only probe (shared; updated at every flush).
    pub fn probe(&self) -> DomainProbe {
        self.probe.clone()
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Arc<DomainStats> {
        &self.stats
    }

    /// Gives a domain's replica operations from a trusted source — the simulator's genesis,
    /// or an operator's saved log — without checking their signatures; the members follow at
    /// the next flush (or start). Returns how many were stored; operations for a domain not
    /// served, or refused by the log's rules, are not.
    pub fn seed_ops(&mut self, domain: &DomainIdentity, ops: &[Arc<Op>]) -> usize {
        let Some(inst) = self.domains.get_mut(domain) else {
            return 0;
        };
        let mut stored = 0;
        let mut released = Vec::new();
        for op in ops {
            if inst.log.insert(op.clone(), true, &mut released) == Ok(membership::Inserted::New) {
                stored += 1;
            }
        }
        stored + released.len()
    }

    /// The genesis of a formed domain, for the simulator: one `Add` per node of `members`,
    /// signed by the `introducers` (node keys of the advert's introducers) in turn, with
    /// lamports 1, 2, … in `members` order. Give the same operations to every member with
    /// [`DomainEngine::seed_ops`] before start.
    pub fn genesis_ops(
        introducers: &[Keypair],
        domain: DomainIdentity,
        members: &[NodeIdentity],
    ) -> Vec<Arc<Op>> {
        if introducers.is_empty() {
            return Vec::new();
        }
        let mut seqs = vec![0u64; introducers.len()];
        members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let k = i % introducers.len();
                seqs[k] += 1;
                Arc::new(Op::new_signed(
                    &introducers[k],
                    domain,
                    seqs[k],
                    i as u64 + 1,
                    OpKind::Add {
                        member: *m,
                        request: None,
                    },
                ))
            })
            .collect()
    }

    /// Starts serving `advert`'s domain (or takes a fresher advert of one served).
    fn add_domain(
        &mut self,
        advert: DomainAdvert,
        psk: Option<Vec<u8>>,
        join_at_start: bool,
    ) -> Result<(), String> {
        if !advert.within_limits() {
            DomainStats::count(&self.stats.adverts_refused);
            return Err("advert lists exceed their limits".into());
        }
        let advert = match crate::wire::Signed::verify(advert) {
            Ok(a) => a.into_inner(),
            Err(e) => {
                DomainStats::count(&self.stats.adverts_refused);
                return Err(e.to_string());
            }
        };
        if let Some(inst) = self.domains.get_mut(&advert.id) {
            if psk.is_some() {
                inst.psk = psk;
            }
            inst.take_advert(advert);
            return Ok(());
        }
        if self.domains.len() >= self.limits.max_domains {
            DomainStats::count(&self.stats.domains_full);
            return Err("max_domains reached".into());
        }
        let inst = Instance::new(advert, psk, join_at_start, &self.limits);
        self.domains.insert(inst.advert.id, inst);
        Ok(())
    }

    /// Sends a `Protocol::DOMAIN` message to `peer`'s Domain engine, counted by kind.
    fn send_remote(&mut self, ctx: &mut Context, peer: NodeIdentity, msg: &DomainMessage) {
        let s = &self.stats;
        DomainStats::count(match msg {
            DomainMessage::Ops { .. } => &s.sent_ops,
            DomainMessage::Digest { .. } => &s.sent_digest,
            DomainMessage::Vector { .. } => &s.sent_vector,
            DomainMessage::JoinRequest(_) => &s.sent_join_request,
            DomainMessage::JoinResponse(_) => &s.sent_join_response,
            DomainMessage::ExtRequest { .. } => &s.sent_ext_request,
            DomainMessage::ExtResponse { .. } => &s.sent_ext_response,
        });
        let opts = SendOptions {
            notify_undeliverable: false,
            ..SendOptions::default()
        };
        ctx.send_with(
            Destination::Node(peer),
            Protocol::DOMAIN,
            msg.to_bytes(),
            opts,
        );
    }

    /// Local mail to this node's Topology engine.
    fn tell_topology(&self, ctx: &mut Context, mail: &ViewMail) {
        ctx.send_with(
            Destination::Node(self.me),
            Protocol::TOPOLOGY,
            mail.encode(),
            SendOptions::local_only(),
        );
    }

    fn schedule_tick(&mut self, ctx: &mut Context) {
        let base = self.limits.digest_interval.as_millis() as u64;
        let jitter = base / 2;
        let ms = base - base / 4 + self.rng.below(jitter.max(1));
        ctx.set_timer_after(TICK, Duration::from_millis(ms.max(1)));
    }

    /// Publishes every instance whose membership changed, pushes new operations, and
    /// updates the probe.
    fn settle(&mut self, ctx: &mut Context) {
        let ids: Vec<DomainIdentity> = self.domains.keys().copied().collect();
        for d in ids {
            self.settle_one(ctx, d);
        }
    }

    fn settle_one(&mut self, ctx: &mut Context, d: DomainIdentity) {
        let Some(inst) = self.domains.get_mut(&d) else {
            return;
        };
        if inst.log.is_dirty() {
            inst.log.refresh();
            DomainStats::count(&self.stats.replays);
        }
        // A contact (the approver of this node's join) is trusted for sync only until this
        // node is a member, and never once it was expelled.
        let before = inst.contacts.len();
        let here_now = inst.log.is_member(&self.me);
        let log = &inst.log;
        inst.contacts.retain(|c| !here_now && !log.is_expelled(c));
        for _ in inst.contacts.len()..before {
            DomainStats::count(&self.stats.contacts_dropped);
        }
        // Push first: a leave must reach the view before the view is dropped.
        let batches = inst.push_batches(self.me, &self.limits, &mut self.rng);
        for (peer, msg) in batches {
            self.send_remote(ctx, peer, &msg);
        }
        let Some(inst) = self.domains.get_mut(&d) else {
            return;
        };
        let mut mails = Vec::new();
        if inst.log.generation() != inst.published_gen {
            inst.published_gen = inst.log.generation();
            let members = inst.log.member_set();
            let here = members.contains(&self.me);
            let here_changed = here != inst.here;
            // A node that just became a member tells all the members, as the first time.
            let added: Vec<NodeIdentity> = if here && here_changed {
                members.iter().copied().collect()
            } else {
                members.difference(&inst.published).copied().collect()
            };
            let removed: Vec<NodeIdentity> = if here && here_changed {
                Vec::new()
            } else {
                inst.published.difference(&members).copied().collect()
            };
            if here_changed || !added.is_empty() || !removed.is_empty() || !inst.announced {
                self.directory.publish(d, members.clone(), here);
                if here && (here_changed || !inst.announced) {
                    mails.push(ViewMail::Watch { domain: d });
                }
                if here || here_changed {
                    mails.push(ViewMail::Members {
                        domain: d,
                        here,
                        added,
                        removed,
                        introducers: inst.advert.introducer_nodes(),
                    });
                }
                if !here && here_changed {
                    mails.push(ViewMail::Unwatch { domain: d });
                    inst.view.clear();
                }
                inst.announced = true;
            }
            inst.here = here;
            inst.member_digest = inst.log.member_digest();
            inst.published = members;
        }
        // The advert, and whether this node answers external (and domain-routed) requests.
        let external_here = inst.here && inst.advert.accepts_external(&self.me);
        let advert_state = Some((inst.advert.version, external_here));
        if inst.published_advert != advert_state {
            let wire = crate::wire::encode_to_vec(&inst.advert);
            self.directory.set_advert(d, wire, external_here);
            inst.published_advert = advert_state;
        }
        let (count, op_digest) = inst.log.digest();
        let entry = DomainProbeEntry {
            members: inst.published.len(),
            member_digest: inst.member_digest,
            member_here: inst.here,
            ops: count as usize,
            op_digest,
            view: inst.view.len(),
        };
        self.probe.domains.write().insert(d, entry);
        for m in &mails {
            self.tell_topology(ctx, m);
        }
        self.finish_join_if_member(ctx, d);
    }
}

impl Engine for DomainEngine {
    fn start(&mut self, ctx: &mut Context) {
        self.started = true;
        self.settle(ctx);
        let ids: Vec<DomainIdentity> = self.domains.keys().copied().collect();
        for d in ids {
            let Some(inst) = self.domains.get(&d) else {
                continue;
            };
            if inst.join_at_start && !inst.here {
                self.start_join(ctx, d, None);
            }
        }
        self.schedule_tick(ctx);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Message(m) => match (m.origin(), m.protocol()) {
                (Origin::Local, Protocol::TOPOLOGY) => self.on_view_mail(m.body()),
                (Origin::Local, Protocol::DOMAIN) => self.on_local_mail(ctx, &m),
                (Origin::Remote { via }, Protocol::DOMAIN) => {
                    match DomainMessage::from_bytes(m.body()) {
                        Ok(msg) => self.on_remote(ctx, via, msg),
                        Err(e) => {
                            DomainStats::count(&self.stats.malformed);
                            log::debug!("domain: malformed message from {}: {e}", via.short());
                        }
                    }
                }
                _ => DomainStats::count(&self.stats.wrong_origin),
            },
            Input::Timer(TICK) => {
                self.tick(ctx);
                self.schedule_tick(ctx);
            }
            _ => {}
        }
    }

    fn flush(&mut self, ctx: &mut Context) {
        self.settle(ctx);
    }
}

impl DomainEngine {
    fn on_remote(&mut self, ctx: &mut Context, from: NodeIdentity, msg: DomainMessage) {
        match msg {
            DomainMessage::Ops { domain, ops } => self.on_ops(ctx, from, domain, ops),
            DomainMessage::Digest {
                domain,
                count,
                hash,
            } => self.on_digest(ctx, from, domain, count, hash),
            DomainMessage::Vector {
                domain,
                entries,
                reply,
            } => self.on_vector(ctx, from, domain, entries, reply),
            DomainMessage::JoinRequest(r) => self.on_join_request(ctx, from, r),
            DomainMessage::JoinResponse(r) => self.on_join_response(ctx, from, r),
            DomainMessage::ExtRequest {
                id,
                domain,
                protocol,
                body,
            } => self.on_ext_request(ctx, from, id, domain, protocol, body),
            DomainMessage::ExtResponse {
                id,
                domain,
                result,
                advert,
            } => self.on_ext_response(ctx, from, id, domain, result, advert),
        }
    }

    /// The periodic tick: a digest per domain this node is a member of, and timeouts.
    fn tick(&mut self, ctx: &mut Context) {
        let now = ctx.now();
        let ids: Vec<DomainIdentity> = self.domains.keys().copied().collect();
        for d in ids {
            self.join_timeouts(ctx, d);
            self.ext_timeouts(ctx, d);
            let Some(inst) = self.domains.get_mut(&d) else {
                continue;
            };
            inst.forget_old_requests(now.wall, self.limits.join_window);
            // A member syncs; so does a node whose join was accepted but whose replica does
            // not hold its add's chain yet (it has the approver as a contact).
            if !inst.here && inst.contacts.is_empty() {
                continue;
            }
            let Some(peer) = inst.sync_target(self.me, &mut self.rng) else {
                continue;
            };
            let (count, hash) = inst.log.digest();
            let msg = DomainMessage::Digest {
                domain: d,
                count,
                hash,
            };
            self.send_remote(ctx, peer, &msg);
        }
        // Forget the sync windows of peers quiet for more than a second.
        let sec = now.wall.0 / 1000;
        self.rate.retain(|_, (s, _)| *s + 1 >= sec);
    }

    /// Whether a sync message (`Digest`, `Vector`) from `peer` is within its rate (and
    /// counts it).
    fn within_rate(&mut self, now_ms: u64, peer: NodeIdentity) -> bool {
        self.within(now_ms, peer, RateKind::Sync)
    }

    /// Whether a message of `kind` from `peer` is within its per-second rate (and counts
    /// it); a refusal is counted under the kind's counter and logged, rate-limited.
    fn within(&mut self, now_ms: u64, peer: NodeIdentity, kind: RateKind) -> bool {
        let (limit, counter) = match kind {
            RateKind::Sync => (self.limits.sync_per_peer_s, &self.stats.sync_rate_limited),
            RateKind::Ops => (self.limits.ops_per_peer_s, &self.stats.ops_rate_limited),
            RateKind::Join => (
                self.limits.requests_per_peer_s,
                &self.stats.join_rate_limited,
            ),
            RateKind::Ext => (
                self.limits.requests_per_peer_s,
                &self.stats.ext_rate_limited,
            ),
        };
        let sec = now_ms / 1000;
        let key = (peer, kind);
        if !self.rate.contains_key(&key) && self.rate.len() >= self.limits.rate_peers {
            self.rate.retain(|_, (s, _)| *s >= sec);
            if self.rate.len() >= self.limits.rate_peers {
                DomainStats::count(counter);
                return false;
            }
        }
        let e = self.rate.entry(key).or_insert((sec, 0));
        if e.0 != sec {
            *e = (sec, 0);
        }
        e.1 += 1;
        if e.1 > limit {
            if let Some(n) = DomainStats::count_hostile(counter) {
                log::warn!(
                    "domain: {} exceeds {limit} {kind:?} messages per second (seen {n} times)",
                    peer.short(),
                );
            }
            return false;
        }
        true
    }

    fn on_view_mail(&mut self, body: &[u8]) {
        let Ok(mail) = ViewMail::decode(body) else {
            DomainStats::count(&self.stats.local_malformed);
            return;
        };
        match mail {
            ViewMail::PeerAddedToView { domain, node } => match self.domains.get_mut(&domain) {
                Some(inst)
                    if inst.here && node != self.me && inst.view.len() < self.limits.max_view =>
                {
                    inst.view.insert(node);
                }
                Some(_) => DomainStats::count(&self.stats.view_add_dropped),
                None => DomainStats::count(&self.stats.unknown_domain),
            },
            ViewMail::PeerRemovedFromView { domain, node } => {
                if let Some(inst) = self.domains.get_mut(&domain) {
                    inst.view.remove(&node);
                }
            }
            other => {
                DomainStats::count(&self.stats.view_mail_ignored);
                log::debug!("domain: view mail not for this engine ignored: {other:?}");
            }
        }
    }
}
