//! The Clustering engine's settings ([`ClusteringSettings`]), bounds ([`ClusteringLimits`]),
//! counters ([`ClusteringStats`]) and the read-only probe the simulator reads
//! ([`ClusteringProbe`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::identity::{DomainIdentity, NodeIdentity};
use crate::interdomain::psi::PsiParams;

/// What the Clustering engine does (the protocol's knobs; [`ClusteringLimits`] bounds its cost).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusteringSettings {
    /// Most nodes in the TAC view (cluster links, the most similar): default 10.
    pub view_len: usize,
    /// Most fingers (long links, the most dissimilar): default 3.
    pub fingers: usize,
    /// Descriptors per exchange (the sender's own included): default 8.
    pub xchg_len: usize,
    /// Gossip period: one exchange started per period, jittered uniformly in ±25 %: default 1 s.
    pub period: Duration,
    /// Weight `w` of trust against similarity in the score `sim^(1−w) · trust^w`, in [0, 1]:
    /// default 0.5 (spec notes §9.5's proposal; higher scores are better).
    pub trust_weight: f64,
    /// Received entries whose (transitive) trust is below this are not merged: default 0.1.
    pub min_trust: f64,
    /// Whether to run PSI with cluster neighbours (and answer theirs): default true.
    pub psi: bool,
    /// The engine's bounds.
    pub limits: ClusteringLimits,
}

impl Default for ClusteringSettings {
    fn default() -> Self {
        ClusteringSettings {
            view_len: 10,
            fingers: 3,
            xchg_len: 8,
            period: Duration::from_secs(1),
            trust_weight: 0.5,
            min_trust: 0.1,
            psi: true,
            limits: ClusteringLimits::default(),
        }
    }
}

/// Every bound of the Clustering engine, with its default and what it costs.
///
/// Memory at the limits: the views hold `view_len + fingers` descriptors (≈ 400 bytes each with
/// a 1,024-bit filter, shared `Arc`s); the verified-descriptor cache [`Self::max_known`] = 512
/// descriptors ≈ 200 KiB; the similarity cache [`Self::max_cached_sims`] = 512 entries of
/// ≈ 80 bytes ≈ 40 KiB; PSI results [`Self::max_psi_results`] = 256 of at most
/// `psi.max_elements` = 32 domains ≈ 1.1 KiB each ≈ 290 KiB; [`Self::psi_sessions`] = 8 open
/// sessions of ≈ 1.5 KiB. Under 1 MiB in all, whatever peers send; a message is at most
/// [`Self::max_descriptors`] descriptors (≈ 13 KiB) and is refused whole when longer.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusteringLimits {
    /// Most descriptors in one `Exchange` or `Reply`: default 32; longer lists are refused
    /// whole before decoding (`oversized`).
    pub max_descriptors: usize,
    /// Exchanges answered per gossip period (from all peers together); more are refused
    /// (`rate_limited`): default 32.
    pub answers_per_period: u32,
    /// Exchanges this node started and waits on a `Reply` for: default 4. A `Reply` from a
    /// node not waited on is refused (`unsolicited`); a wait ends after 3 periods.
    pub max_pending: usize,
    /// Verified descriptors remembered, so that one seen again is not verified again: default
    /// 512 (the least recently stored is forgotten).
    pub max_known: usize,
    /// Similarities cached per (peer, its descriptor version, own version): default 512.
    pub max_cached_sims: usize,
    /// The most domains an honest filter can hold, for the overfull check: a filter with more
    /// bits set than `max_claimed_domains` domains set (after flipping) plus four standard
    /// deviations — a node claiming every domain, say — scores 0, ranks after every other
    /// candidate and is never a finger (`overfull_filters`): default 64; 0 turns the check off
    /// (for comparison runs).
    pub max_claimed_domains: u32,
    /// The trust given to a sender this node has no trust value for (neither in the sampling
    /// views nor in the TAC view): default 128/255, the identity store's default trust.
    pub stranger_trust: f64,
    /// PSI sessions open at once (either role): default 8; more offers are refused
    /// (`psi_busy`).
    pub psi_sessions: usize,
    /// PSI offers answered per gossip period: default 8 (`rate_limited`).
    pub psi_offers_per_period: u32,
    /// A PSI session not finished within this long is dropped (`psi_timeouts`): default 5 s.
    pub psi_timeout: Duration,
    /// After a PSI with a peer at a pair of membership versions, another offer from it at the
    /// same versions is refused (`psi_replayed`) for this long: default 60 s. (Later it is
    /// answered: the peer may have lost its result.)
    pub psi_rerun: Duration,
    /// PSI results remembered (one per peer; the oldest is forgotten): default 256.
    pub max_psi_results: usize,
    /// The PSI parameters (every node must use the same): default 32 elements, 2^−32 false
    /// positives.
    pub psi: PsiParams,
}

impl Default for ClusteringLimits {
    fn default() -> Self {
        ClusteringLimits {
            max_descriptors: 32,
            answers_per_period: 32,
            max_pending: 4,
            max_known: 512,
            max_cached_sims: 512,
            max_claimed_domains: 64,
            stranger_trust: 128.0 / 255.0,
            psi_sessions: 8,
            psi_offers_per_period: 8,
            psi_timeout: Duration::from_secs(5),
            psi_rerun: Duration::from_secs(60),
            max_psi_results: 256,
            psi: PsiParams::default(),
        }
    }
}

crate::runtime::stats::counter_struct! {
    /// Counters of one Clustering engine.
    pub struct ClusteringStats {
        /// `Exchange` messages sent.
        sent_exchange,
        /// `Reply` messages sent.
        sent_reply,
        /// `PsiOffer` messages sent.
        sent_psi_offer,
        /// `PsiChallenge` messages sent.
        sent_psi_challenge,
        /// `PsiProof` messages sent.
        sent_psi_proof,
        /// Exchanges and replies merged into the view.
        merged,
        /// Rounds skipped because PeerSampling has made no own descriptor yet.
        no_own_descriptor,
        /// Descriptors verified (signature checks run; cache hits are not counted).
        descriptors_verified,
        /// PSI runs finished as initiator.
        psi_done_initiator,
        /// PSI runs finished as responder.
        psi_done_responder,
        /// PSI sessions dropped unfinished after `psi_timeout`.
        psi_timeouts,
        /// Exchanges that got no `Reply` within 3 periods.
        exchange_timeouts,
        /// Messages this engine sent that were undeliverable.
        undeliverable,
        /// Candidates whose filter was overfull (counted once per node and descriptor version).
        overfull_filters,
        /// Refused: the body did not decode.
        malformed,
        /// Refused: a protocol version this node does not speak.
        unknown_version,
        /// Refused: a list longer than its limit (`max_descriptors`, PSI tags, filter bytes).
        oversized,
        /// Refused: a message not from a verified remote engine of its sending node, a topic
        /// event, or local mail.
        bad_origin,
        /// Descriptors refused: bad signature, expired, from the future, or filter parameters
        /// other than this node's.
        bad_descriptor,
        /// Descriptors older than the one held (the held one is used).
        stale_descriptor,
        /// Refused: an `Exchange` whose first descriptor is not its sender's.
        no_sender_descriptor,
        /// Refused: a `Reply` nothing was asked for.
        unsolicited,
        /// Refused: over `answers_per_period` or `psi_offers_per_period`.
        rate_limited,
        /// Refused: a PSI message while PSI is off.
        psi_disabled,
        /// Refused: a PSI offer naming a descriptor version of this node that is not its
        /// current one.
        psi_stale,
        /// Refused: a PSI offer while `psi_sessions` are open or one with the peer is.
        psi_busy,
        /// Refused: a PSI offer crossing this node's own offer to the same peer (the one from
        /// the smaller node identity goes on).
        psi_collision,
        /// Refused: a PSI message of a finished session, or an offer at versions already run
        /// within `psi_rerun`.
        psi_replayed,
        /// Refused: a PSI challenge or proof for no open session of the right role.
        psi_out_of_order,
        /// Refused: a PSI offer whose filter is misshapen or fuller than `psi.max_fill()`.
        psi_bad_filter,
        /// Refused: a PSI challenge or proof whose tags are too many, unsorted or unknown.
        psi_bad_tags,
    }
}

impl ClusteringStats {
    /// Messages sent to other nodes (the maintenance traffic).
    pub fn sent_total(&self) -> u64 {
        [
            &self.sent_exchange,
            &self.sent_reply,
            &self.sent_psi_offer,
            &self.sent_psi_challenge,
            &self.sent_psi_proof,
        ]
        .iter()
        .map(|c| Self::get(c))
        .sum()
    }
}

/// One TAC view entry or finger as the probe shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterLink {
    /// The node.
    pub node: NodeIdentity,
    /// This node's trust in it.
    pub trust: f64,
    /// The similarity the engine ranks it by (the exact PSI overlap, normalised, once PSI ran).
    pub sim: f64,
    /// The exact number of shared domains, once PSI ran at the current versions.
    pub shared: Option<u32>,
}

/// The outcome of a finished PSI with one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PsiOutcome {
    /// How many domains the two share (what the engine acts on).
    pub shared_count: u32,
    /// Which (for the simulator's check only; the engine publishes only the count).
    pub shared: Vec<DomainIdentity>,
    /// How many domains the peer said it put in (at least `shared_count` when used).
    pub peer_count: u32,
    /// This node's descriptor version the PSI ran at.
    pub own_version: u64,
    /// The peer's descriptor version it ran at.
    pub peer_version: u64,
}

#[derive(Debug, Default)]
pub(super) struct ProbeState {
    pub(super) view: Vec<ClusterLink>,
    pub(super) fingers: Vec<ClusterLink>,
    pub(super) psi: BTreeMap<NodeIdentity, PsiOutcome>,
}

/// A read-only window on a Clustering engine, shared (`Arc`) with whoever built it. Cloning
/// shares it; the engine updates it after every input that changed the views or a PSI result.
#[derive(Clone, Debug, Default)]
pub struct ClusteringProbe {
    pub(super) state: Arc<RwLock<ProbeState>>,
    pub(super) stats: Arc<ClusteringStats>,
}

impl ClusteringProbe {
    /// The TAC view, best score first.
    pub fn view(&self) -> Vec<ClusterLink> {
        self.state.read().view.clone()
    }

    /// The fingers, most dissimilar first.
    pub fn fingers(&self) -> Vec<ClusterLink> {
        self.state.read().fingers.clone()
    }

    /// Every remembered PSI result, by peer.
    pub fn psi(&self) -> BTreeMap<NodeIdentity, PsiOutcome> {
        self.state.read().psi.clone()
    }

    /// The PSI result with `peer`, if any.
    pub fn psi_with(&self, peer: &NodeIdentity) -> Option<PsiOutcome> {
        self.state.read().psi.get(peer).cloned()
    }

    /// The engine's counters.
    pub fn stats(&self) -> &ClusteringStats {
        &self.stats
    }
}
