//! The Clustering engine (name [`CLUSTERING_ENGINE_NAME`], serves `Protocol::CLUSTERING`): TAC,
//! trust-aware clustering (spec notes §9.5), keeps the nodes whose domain memberships are most
//! similar to this node's as short-range links, a few of the most dissimilar as long-range
//! "fingers" (UPSYCLE), and learns the exact overlap with its cluster neighbours by PSI
//! (§9.7). docs/clustering.md describes the algorithm, its parameters and its choices.
//!
//! * **Input.** The PeerSampling engine's views, read from the [`NeighbourBoard`]
//!   (`BoardSource::Sampling`: TAC's `xview`, with this node's trust in each), and this node's
//!   own descriptor (`board.own()`; no exchange until PeerSampling has made one).
//! * **Score** (§9.5's proposal, higher is better): `sim^(1−w) · trust^w` with
//!   `w` = [`ClusteringSettings::trust_weight`]. `sim` is the flip-corrected BLIP similarity of
//!   the two filters (`interdomain::blip::similarity`), cached per (peer, its descriptor
//!   version, own version), and replaced by the exact PSI overlap (normalised) once PSI has run
//!   with that peer at those versions. A filter fuller than
//!   [`ClusteringLimits::max_claimed_domains`] domains can make (a node claiming every domain)
//!   scores 0, ranks after every other candidate and is never a finger.
//! * **Gossip.** Every period (jittered) the engine sends `Exchange` (its own descriptor and the
//!   `xchg_len − 1` entries of its views closest to itself) to the oldest entry of its TAC view
//!   (or a random sampling entry when the view is empty), which leaves the view until it
//!   answers. The receiver answers `Reply` with the entries of `view ∪ {itself} ∪ xview` closest
//!   to the *initiator* (minus what it sent), and both merge: received entries (at most
//!   `xchg_len`) get the sender's trust (transitivity; a locally known trust wins) and are
//!   dropped below `min_trust`; the view becomes the `view_len` best of
//!   `view ∪ fingers ∪ xview ∪ received`, the fingers the `fingers` best of the rest by
//!   `(1 − sim)^(1−w) · trust^w`.
//! * **PSI.** With each cluster neighbour, once per pair of descriptor versions, the engine runs
//!   BFPSI (`interdomain::psi`: `PsiOffer` → `PsiChallenge` → `PsiProof`); at most
//!   [`ClusteringLimits::psi_sessions`] at once, each dropped after `psi_timeout`. The result's
//!   count is published on the board (`Neighbour::shared`); which domains stays in the probe.
//! * **Output.** The view (`LinkKind::Cluster`) and fingers (`LinkKind::Finger`) are published
//!   on the board (`BoardSource::Clustering`) after every change; adverts of nodes that enter
//!   them from an exchange (not from the sampling views) go to the identity store so the Router
//!   can reach them.
//! * **Trust in input.** Only messages from a verified remote engine of their sending node are
//!   read; descriptors are verified once (a cache of [`ClusteringLimits::max_known`]) and an
//!   older one never replaces a newer; oversized, malformed, unsolicited, replayed and
//!   out-of-order messages are refused and counted in [`ClusteringStats`] (hostile ones logged
//!   at powers of two).
//!
//! Drain contract: the engine sets one timer (token [`TICK`]) in `start` and again on every
//! tick; every other output is a message or an identity request recorded in the `Context`.
//! Randomness comes only from the seed given to [`ClusteringEngine::new`] (PSI secrets are
//! that randomness keyed by a secret derived from the node key, so peers cannot predict them);
//! every choice iterates ordered maps, so one seed and one input sequence give one output
//! sequence. Memory: bounded by [`ClusteringLimits`] (under 1 MiB at the defaults).

mod limits;
mod session;
mod tac;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::{hkdf, hmac};

use crate::identity::{Keypair, NodeIdentity};
use crate::mail::domain::DomainDirectory;
pub use crate::mail::interdomain::CLUSTERING_ENGINE_NAME;
use crate::mail::interdomain::{BoardSource, LinkKind, Neighbour, NeighbourBoard};
use crate::mail::{Input, Message, Origin, Undeliverable};
use crate::rng::SplitMix64;
use crate::runtime::{Context, Engine, SendOptions};
use crate::wire::{Destination, NodeDescriptor, Protocol, WireError};
pub use limits::{
    ClusterLink, ClusteringLimits, ClusteringProbe, ClusteringSettings, ClusteringStats,
    PsiOutcome,
};
use session::{PsiResult, Session};
use tac::{Entry, SimEntry};
use wire::ClusteringMessage;

/// The token of the engine's one timer.
pub const TICK: u64 = 1;

/// The HKDF info of the key that makes PSI secrets from the seeded randomness.
const PSI_SECRET_INFO: &[u8] = b"netmachine/v2/psi-secret\0";

/// The Clustering engine: TAC view, fingers and PSI with cluster neighbours.
pub struct ClusteringEngine {
    settings: ClusteringSettings,
    directory: DomainDirectory,
    board: NeighbourBoard,
    stats: Arc<ClusteringStats>,
    probe: ClusteringProbe,
    rng: SplitMix64,
    /// Keys the seeded randomness into PSI secrets.
    secret: hmac::Key,
    secrets_drawn: u64,
    /// The own descriptor last read from the board.
    own: Option<Arc<NodeDescriptor>>,
    view: BTreeMap<NodeIdentity, Entry>,
    fingers: BTreeMap<NodeIdentity, Entry>,
    /// Verified descriptors, with the stamp of their storing (for eviction).
    known: BTreeMap<NodeIdentity, (Arc<NodeDescriptor>, u64)>,
    stamp: u64,
    sims: BTreeMap<NodeIdentity, SimEntry>,
    /// Exchanges started and waiting on a `Reply`, with their deadline.
    pending: BTreeMap<NodeIdentity, Instant>,
    sessions: BTreeMap<NodeIdentity, Session>,
    results: BTreeMap<NodeIdentity, PsiResult>,
    /// No new PSI is started with these peers before the instant given.
    psi_backoff: BTreeMap<NodeIdentity, Instant>,
    answers_left: u32,
    offers_left: u32,
    dirty: bool,
    psi_dirty: bool,
}

impl ClusteringEngine {
    /// An engine with empty views; `seed` seeds every random choice it makes, `node_key` keys
    /// its PSI secrets.
    pub fn new(
        node_key: Keypair,
        settings: ClusteringSettings,
        directory: DomainDirectory,
        board: NeighbourBoard,
        stats: Arc<ClusteringStats>,
        seed: u64,
    ) -> ClusteringEngine {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, PSI_SECRET_INFO).extract(&node_key.seed());
        let secret: hmac::Key = prk
            .expand(&[PSI_SECRET_INFO], hmac::HMAC_SHA256)
            .expect("an HMAC-SHA256 key is a valid HKDF-SHA256 output")
            .into();
        ClusteringEngine {
            probe: ClusteringProbe {
                state: Arc::default(),
                stats: stats.clone(),
            },
            answers_left: settings.limits.answers_per_period,
            offers_left: settings.limits.psi_offers_per_period,
            settings,
            directory,
            board,
            stats,
            rng: SplitMix64::new(seed),
            secret,
            secrets_drawn: 0,
            own: None,
            view: BTreeMap::new(),
            fingers: BTreeMap::new(),
            known: BTreeMap::new(),
            stamp: 0,
            sims: BTreeMap::new(),
            pending: BTreeMap::new(),
            sessions: BTreeMap::new(),
            results: BTreeMap::new(),
            psi_backoff: BTreeMap::new(),
            dirty: false,
            psi_dirty: false,
        }
    }

    /// The read-only probe on this engine's views, PSI results and counters (shared: clone it
    /// and read it between simulation steps or from another thread).
    pub fn probe(&self) -> ClusteringProbe {
        self.probe.clone()
    }

    /// The settings this engine was built with.
    pub fn settings(&self) -> &ClusteringSettings {
        &self.settings
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Arc<ClusteringStats> {
        &self.stats
    }

    /// A clustering message from `via`, as if verified, with the work after an input (for the
    /// tests, which move bodies between engines without signing them).
    #[cfg(test)]
    pub(crate) fn deliver_remote(&mut self, ctx: &mut Context, via: NodeIdentity, body: &[u8]) {
        self.on_remote(ctx, via, body);
        self.after();
    }

    // --- inputs -------------------------------------------------------------------------

    fn on_message(&mut self, ctx: &mut Context, msg: Message) {
        if msg.protocol() != Protocol::CLUSTERING {
            self.hostile(&self.stats.malformed, "a message of another protocol", None);
            return;
        }
        match msg.origin() {
            Origin::Remote { via } => {
                let sender = msg.sender();
                if sender.verified().is_none() || sender.named_node() != via || via == ctx.node()
                {
                    self.hostile(&self.stats.bad_origin, "a sender not of its node", Some(via));
                    return;
                }
                self.on_remote(ctx, via, msg.body());
            }
            Origin::Local => {
                log::debug!("clustering: local mail refused (the engine takes none)");
                ClusteringStats::count(&self.stats.bad_origin);
            }
            Origin::Topic { via, .. } => {
                self.hostile(&self.stats.bad_origin, "a topic event", Some(via));
            }
        }
    }

    fn on_remote(&mut self, ctx: &mut Context, via: NodeIdentity, body: &[u8]) {
        let limits = &self.settings.limits;
        let msg = match ClusteringMessage::from_bytes(
            body,
            limits.max_descriptors,
            limits.psi.max_elements,
        ) {
            Ok(m) => m,
            Err(e) => {
                let counter = match e {
                    WireError::TooLarge { .. } => &self.stats.oversized,
                    WireError::UnknownVersion(_) => &self.stats.unknown_version,
                    _ => &self.stats.malformed,
                };
                self.hostile(counter, &format!("a body ({e})"), Some(via));
                return;
            }
        };
        match msg {
            ClusteringMessage::Exchange { descriptors } => {
                self.on_exchange(ctx, via, descriptors)
            }
            ClusteringMessage::Reply { descriptors } => self.on_reply(ctx, via, descriptors),
            ClusteringMessage::PsiOffer {
                session,
                initiator_version,
                responder_version,
                count,
                offer,
            } => self.on_psi_offer(
                ctx,
                via,
                session,
                (initiator_version, responder_version, count),
                offer,
            ),
            ClusteringMessage::PsiChallenge {
                session,
                count,
                challenge,
            } => self.on_psi_challenge(ctx, via, session, count, challenge),
            ClusteringMessage::PsiProof { session, proof } => {
                self.on_psi_proof(ctx, via, session, proof)
            }
        }
    }

    fn on_undeliverable(&mut self, ctx: &mut Context, u: Undeliverable) {
        if let Destination::Node(node) = u.dst {
            ClusteringStats::count(&self.stats.undeliverable);
            log::debug!("clustering: message to {node:?} undeliverable ({:?})", u.reason);
            self.pending.remove(&node);
            if self.sessions.remove(&node).is_some() {
                let retry = ctx.now().instant + self.settings.limits.psi_timeout;
                self.psi_backoff.insert(node, retry);
            }
        }
    }

    fn on_tick(&mut self, ctx: &mut Context) {
        let now = ctx.now().instant;
        self.answers_left = self.settings.limits.answers_per_period;
        self.offers_left = self.settings.limits.psi_offers_per_period;
        let expired: Vec<NodeIdentity> = self
            .pending
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(n, _)| *n)
            .collect();
        for n in expired {
            self.pending.remove(&n);
            ClusteringStats::count(&self.stats.exchange_timeouts);
        }
        self.expire_sessions(now);
        self.initiate(ctx);
        self.schedule_psi(ctx);
    }

    // --- sending ------------------------------------------------------------------------

    fn send(&mut self, ctx: &mut Context, to: NodeIdentity, msg: &ClusteringMessage) {
        let s = &self.stats;
        ClusteringStats::count(match msg {
            ClusteringMessage::Exchange { .. } => &s.sent_exchange,
            ClusteringMessage::Reply { .. } => &s.sent_reply,
            ClusteringMessage::PsiOffer { .. } => &s.sent_psi_offer,
            ClusteringMessage::PsiChallenge { .. } => &s.sent_psi_challenge,
            ClusteringMessage::PsiProof { .. } => &s.sent_psi_proof,
        });
        let opts = SendOptions {
            expiry: (self.settings.period * 3).max(Duration::from_secs(1)),
            // A lost Reply is the exchange timeout's business; a lost request ends its wait.
            notify_undeliverable: !matches!(msg, ClusteringMessage::Reply { .. }),
            ..SendOptions::default()
        };
        ctx.send_with(
            Destination::Node(to),
            Protocol::CLUSTERING,
            msg.to_bytes(),
            opts,
        );
    }

    /// A fresh 32-byte secret: the seeded randomness keyed by the node-key-derived secret.
    fn random32(&mut self) -> [u8; 32] {
        self.secrets_drawn += 1;
        let mut c = hmac::Context::with_key(&self.secret);
        c.update(&self.rng.next_u64().to_le_bytes());
        c.update(&self.secrets_drawn.to_le_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(c.sign().as_ref());
        out
    }

    /// Counts hostile input and logs it at the 1st, 2nd, 4th … occurrence.
    fn hostile(
        &self,
        counter: &std::sync::atomic::AtomicU64,
        what: &str,
        from: Option<NodeIdentity>,
    ) {
        match ClusteringStats::count_hostile(counter) {
            Some(n) => log::warn!("clustering: refused {what} from {from:?} ({n} so far)"),
            None => log::debug!("clustering: refused {what} from {from:?}"),
        }
    }

    /// After every input: publishes the views on the board and the probe if they changed.
    fn after(&mut self) {
        if !self.dirty && !self.psi_dirty {
            return;
        }
        let links = |m: &BTreeMap<NodeIdentity, Entry>, this: &Self| -> Vec<ClusterLink> {
            m.iter()
                .map(|(n, e)| ClusterLink {
                    node: *n,
                    trust: e.trust,
                    sim: this.cached_sim(n),
                    shared: this.shared_now(n, &e.desc),
                })
                .collect()
        };
        if self.dirty {
            let mut list = Vec::with_capacity(self.view.len() + self.fingers.len());
            for (kind, map) in [(LinkKind::Cluster, &self.view), (LinkKind::Finger, &self.fingers)]
            {
                for (n, e) in map {
                    list.push(Neighbour {
                        descriptor: e.desc.clone(),
                        kind,
                        trust: e.trust,
                        shared: self.shared_now(n, &e.desc),
                    });
                }
            }
            self.board.publish(BoardSource::Clustering, list);
        }
        let mut view = links(&self.view, self);
        view.sort_by(|a, b| b.sim.total_cmp(&a.sim).then(a.node.cmp(&b.node)));
        let mut fingers = links(&self.fingers, self);
        fingers.sort_by(|a, b| a.sim.total_cmp(&b.sim).then(a.node.cmp(&b.node)));
        let mut st = self.probe.state.write();
        st.view = view;
        st.fingers = fingers;
        if self.psi_dirty {
            st.psi = self
                .results
                .iter()
                .map(|(n, r)| (*n, r.outcome.clone()))
                .collect();
        }
        drop(st);
        self.dirty = false;
        self.psi_dirty = false;
    }
}

impl Engine for ClusteringEngine {
    fn start(&mut self, ctx: &mut Context) {
        let first = tac::jittered(self.settings.period, &mut self.rng);
        ctx.set_timer_after(TICK, first);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Message(m) => self.on_message(ctx, m),
            Input::Undeliverable(u) => self.on_undeliverable(ctx, u),
            Input::Timer(TICK) => {
                self.on_tick(ctx);
                let next = tac::jittered(self.settings.period, &mut self.rng);
                ctx.set_timer_after(TICK, next);
            }
            _ => {}
        }
        self.after();
    }
}
