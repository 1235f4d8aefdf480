//! The PeerSampling engine's counters ([`SamplingStats`]) and the read-only probe the
//! simulator reads ([`SamplingProbe`]).
//!
//! Every refused input is counted here with its reason; messages sent are counted by kind.
//! Relaxed atomics written by the engine's thread and read by anyone.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::identity::NodeIdentity;

crate::runtime::stats::counter_struct! {
    /// The PeerSampling engine's counters (see the module doc).
    pub struct SamplingStats {
        /// `Exchange` messages sent (one per period, to the oldest entry).
        sent_exchange,
        /// `Reply` messages sent.
        sent_reply,
        /// `Exchange` messages accepted and answered.
        received_exchange,
        /// `Reply` messages accepted and merged.
        received_reply,
        /// Descriptors received in accepted messages (before any check).
        descriptors_received,
        /// Descriptors whose signatures were checked (a new node or a newer version).
        descriptors_verified,
        /// Descriptors taken without checking their signatures again: the same bytes as the
        /// verified (node, version) held or remembered.
        descriptors_cached,
        /// This node's own descriptor (or one claiming its identity) in a received list:
        /// left out, as §9.3 says.
        own_entries,
        /// Received entries below `min_trust` after trust transitivity: not merged.
        below_min_trust,
        /// Entries an initiator pushed besides its own descriptor, not merged (`pull_only`).
        pushed_ignored,
        /// Ids fed to the URPS sampler.
        urps_fed,
        /// Descriptors this node made for itself (at start and at each membership change).
        own_descriptors,
        /// Adverts of view members handed to the identity store.
        adverts_registered,
        /// Exchanges that got no reply by the next period (the partner left the view).
        exchange_timeouts,
        /// Exchanges the Router could not deliver (the partner left the view).
        undeliverable,
        /// Refused: a remote message not from a verified engine of its sending node, local
        /// mail, or a topic event.
        bad_origin,
        /// Refused: the body did not decode.
        malformed,
        /// Refused: the body is of a protocol version this node does not speak.
        unknown_version,
        /// Refused: more than `max_descriptors` descriptors in one message.
        oversized,
        /// Refused: a `Reply` from a node no exchange was sent to (or sent late).
        unsolicited,
        /// Refused: a peer's exchanges past `max_exchanges_per_peer` in a period.
        rate_limited,
        /// Refused: exchanges past `max_exchanges_per_period`, or from more than
        /// `max_rate_entries` peers, in a period.
        busy,
        /// Refused: a second descriptor of the same node in one message.
        duplicate,
        /// Refused: the descriptor's advert has expired.
        expired,
        /// Refused: the descriptor failed its checks (forged signature, advert signature, a
        /// `created` time far in the future, other filter parameters); by reason in
        /// [`SamplingProbe::invalid_by_reason`].
        invalid,
        /// Refused: an older version than the one held or remembered (a replay).
        stale_version,
        /// Refused: the same (node, version) as the one held, with other bytes.
        conflicting,
    }
}

impl SamplingStats {
    /// Messages sent to other nodes (the engine's maintenance traffic).
    pub fn sent_total(&self) -> u64 {
        Self::get(&self.sent_exchange) + Self::get(&self.sent_reply)
    }

    /// Every refusal, by reason: `(reason, count)` in a fixed order.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        let l = Self::get;
        vec![
            ("bad_origin", l(&self.bad_origin)),
            ("malformed", l(&self.malformed)),
            ("unknown_version", l(&self.unknown_version)),
            ("oversized", l(&self.oversized)),
            ("unsolicited", l(&self.unsolicited)),
            ("rate_limited", l(&self.rate_limited)),
            ("busy", l(&self.busy)),
            ("duplicate", l(&self.duplicate)),
            ("expired", l(&self.expired)),
            ("invalid", l(&self.invalid)),
            ("stale_version", l(&self.stale_version)),
            ("conflicting", l(&self.conflicting)),
        ]
    }
}

/// One entry of a view as the probe shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeEntry {
    /// The node.
    pub node: NodeIdentity,
    /// This node's trust in it, in [0, 1] (1 in CYCLON mode).
    pub trust: f64,
    /// Gossip rounds since it entered the view.
    pub age: u32,
    /// Its descriptor's version (0: no descriptor heard yet, an explicit entry).
    pub version: u64,
}

#[derive(Debug, Default)]
pub(super) struct ProbeState {
    pub view: Vec<ProbeEntry>,
    pub explicit: Vec<ProbeEntry>,
    pub own_version: u64,
    pub invalid: BTreeMap<&'static str, u64>,
}

/// A read-only window on a PeerSampling engine, shared (`Arc`) with whoever built it: the
/// simulator reads it between steps (view shares, eclipsed nodes, traffic). Cloning shares
/// the same probe; the engine publishes after every input that changed something.
#[derive(Clone, Debug, Default)]
pub struct SamplingProbe {
    pub(super) state: Arc<RwLock<ProbeState>>,
    pub(super) stats: Arc<SamplingStats>,
}

impl SamplingProbe {
    pub(super) fn new(stats: Arc<SamplingStats>) -> SamplingProbe {
        SamplingProbe {
            state: Arc::default(),
            stats,
        }
    }

    /// The dynamic view, ordered by node.
    pub fn view(&self) -> Vec<ProbeEntry> {
        self.state.read().view.clone()
    }

    /// The dynamic view's nodes, ordered.
    pub fn view_nodes(&self) -> Vec<NodeIdentity> {
        self.state.read().view.iter().map(|e| e.node).collect()
    }

    /// The explicit (configured, trusted) view, ordered by node.
    pub fn explicit(&self) -> Vec<ProbeEntry> {
        self.state.read().explicit.clone()
    }

    /// The version of this node's own current descriptor (0 before the engine started).
    pub fn own_version(&self) -> u64 {
        self.state.read().own_version
    }

    /// Descriptors refused as `invalid`, by the reason the check gave.
    pub fn invalid_by_reason(&self) -> BTreeMap<&'static str, u64> {
        self.state.read().invalid.clone()
    }

    /// The engine's counters.
    pub fn stats(&self) -> &SamplingStats {
        &self.stats
    }
}
