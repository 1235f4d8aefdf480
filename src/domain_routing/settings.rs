//! The DomainRouting engine's settings ([`RoutingSettings`], [`RoutingMode`]), limits
//! ([`RoutingLimits`]), counters ([`RoutingStats`]) and the read-only probe the simulator and
//! the wiring layer read ([`RoutingProbe`]).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

/// How the engine picks the next hop when it knows no member of the domain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RoutingMode {
    /// Greedy by membership similarity (spec notes §9.9): the neighbour whose BLIP filter
    /// scores best for the domain; a random long link when none scores above the noise floor
    /// or all score alike. The default.
    #[default]
    Greedy,
    /// The baseline: a uniformly random neighbour not yet on the path, with the same hop limit.
    RandomWalk,
}

/// What the engine does, and how far it goes.
#[derive(Clone, Debug, PartialEq)]
pub struct RoutingSettings {
    /// Greedy (the default) or the random-walk baseline.
    pub mode: RoutingMode,
    /// Most hops a request takes (nodes after the asker on its path): default 16, at most
    /// [`super::wire::MAX_PATH`]. A request that arrives having taken more is refused
    /// (`overlong_path`); one that would take more is not forwarded (`hop_limit`).
    pub hop_limit: usize,
    /// How long the asker waits for an answer: default 5 s. Relays keep their state for a
    /// request as long; a member waits 3/4 of it for its local engine's answer (then answers
    /// with an error, which still reaches the asker in time).
    pub timeout: Duration,
    /// Into how many attempts the asker splits `timeout` (default 3; 1 = one attempt): when an
    /// attempt has no answer after `timeout / attempts`, the request goes out again, with a
    /// fresh id, through a first hop not tried yet (a request dropped silently — by a colluder,
    /// say — is otherwise lost). The first answer to any attempt answers the asker; one that
    /// was only slow may therefore reach a second member too (at most `attempts` members).
    pub attempts: u8,
    /// Whether this node forwards and answers other nodes' requests (default true). With
    /// `false` (opt out) it still asks for itself, but refuses every request of another node
    /// (`opted_out`).
    pub forward: bool,
    /// The engine's bounds.
    pub limits: RoutingLimits,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            mode: RoutingMode::Greedy,
            hop_limit: 16,
            timeout: Duration::from_secs(5),
            attempts: 3,
            forward: true,
            limits: RoutingLimits::default(),
        }
    }
}

/// Every bound of the DomainRouting engine, with its default and what it costs.
///
/// Worst case at the defaults: the asker's pending requests keep their bodies for a retry
/// (`max_pending` × 64 KiB = 16 MiB, ≈ 100 KiB with 256-byte bodies); relay entries are
/// ≈ 120 bytes (`max_relayed` × 120 B ≈ 0.5 MiB); requests held for a local engine's answer
/// keep their bodies (`max_arrived` × 64 KiB = 4 MiB); rate windows ≈ 64 bytes each
/// (`rate_peers` × 64 B = 256 KiB). Under 21 MiB whatever peers send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoutingLimits {
    /// Most requests this node has asked and waits on: default 256; more are answered at once
    /// with an error (`pending_full`).
    pub max_pending: usize,
    /// Most requests this node forwarded and waits to relay the answer of: default 4,096
    /// (entries live `timeout`); more are not forwarded (`relay_full`).
    pub max_relayed: usize,
    /// Most requests this member handed to a local engine and waits on: default 64; more are
    /// answered at once with an error (`arrived_full`).
    pub max_arrived: usize,
    /// Most requests accepted per peer per second (each second its own window): default 64;
    /// more are refused (`rate_limited`).
    pub requests_per_peer_s: u32,
    /// Most peers whose request rate is tracked at once: default 4,096; a request from a
    /// further peer is refused (`rate_limited`) until windows expire.
    pub rate_peers: usize,
    /// A neighbour whose filter has more than this fraction of its bits set is taken to claim
    /// every domain (the all-ones filter of an attacker): it scores 0 for every domain, so it
    /// cannot attract the traffic (counted `overfull_filter`). Default 0.5 — an honest filter
    /// at the default BLIP parameters (1,024 bits, 3 hashes, ε = 5: flip probability 0.16)
    /// reaches it only for a node in ≈ 160 domains.
    pub max_filter_fill: f64,
}

impl Default for RoutingLimits {
    fn default() -> Self {
        RoutingLimits {
            max_pending: 256,
            max_relayed: 4096,
            max_arrived: 64,
            requests_per_peer_s: 64,
            rate_peers: 4096,
            max_filter_fill: 0.5,
        }
    }
}

crate::runtime::stats::counter_struct! {
    /// Counters of one DomainRouting engine.
    pub struct RoutingStats {
        /// `DomainRequest` messages sent (started here or forwarded).
        sent_requests,
        /// `DomainResponse` messages sent (answered here or relayed).
        sent_responses,
        /// Requests this node started (local `Request` mail or a Router hand-over).
        started,
        /// Of those, sent straight to a member known from an earlier answer.
        started_direct,
        /// Of those, answered here because this node is a member.
        answered_here,
        /// Requests forwarded for other nodes.
        forwarded,
        /// Next hops (of own or forwarded requests) that were a member known from an answer.
        forwarded_to_member,
        /// Forwarded greedily to the best-scoring neighbour.
        greedy_hops,
        /// Forwarded to a random long link (nothing scored above the noise floor, or all alike).
        fallback_hops,
        /// Forwarded by the random-walk baseline.
        random_hops,
        /// Requests this member answered for other nodes.
        member_answers,
        /// Requests handed to a local engine (`RoutingMail::Arrived`).
        arrived_sent,
        /// Responses relayed towards their asker.
        responses_relayed,
        /// Answers received for this node's own requests (signature checked).
        answers,
        /// Own requests that timed out.
        timeouts,
        /// Own requests re-routed after the known member they went to was unreachable.
        retries,
        /// Own requests sent again after an attempt had no answer in time.
        reattempts,
        /// Own requests that failed: no neighbour to send them to.
        no_route,
        /// Direct `Destination::Domain` probes for a domain this node does not answer for (its
        /// membership ended since the asker learnt it): not answered, so the asker times out and
        /// forgets it.
        not_here,
        /// Refused: the body did not decode (or was not local mail this engine takes).
        malformed,
        /// Refused: a protocol version this node does not speak.
        unknown_version,
        /// Refused: a remote message not from a verified engine of its node, or local mail
        /// that is not from this node.
        bad_origin,
        /// Refused: the path does not start at `src`, or does not end at the peer it came from.
        bad_path,
        /// Refused: the path holds this node, or a node twice (a loop).
        looping_path,
        /// Refused: a path longer than the hop limit.
        overlong_path,
        /// Not forwarded: one more hop would pass the hop limit.
        hop_limit,
        /// Not forwarded: no neighbour left that is not on the path.
        dead_end,
        /// Refused: a request already seen (same `src` and `id`).
        duplicate,
        /// Refused: more than `requests_per_peer_s` requests from one peer.
        rate_limited,
        /// Refused: this node opted out (`forward = false`).
        opted_out,
        /// Not forwarded: `max_relayed` relay entries held.
        relay_full,
        /// Own requests refused: `max_pending` outstanding.
        pending_full,
        /// Requests answered with an error: `max_arrived` held for local engines.
        arrived_full,
        /// Refused: a response this node holds no request or relay entry for (unknown id,
        /// wrong sender, or already answered).
        unsolicited,
        /// Refused: a response whose member signature does not verify.
        bad_signature,
        /// Refused: a response whose fields disagree (src ≠ member, path not member … asker,
        /// domain ≠ the request's), or from a member the domain's advert does not list.
        bad_response,
        /// Adverts (member's node advert or the domain's advert) in a response that do not
        /// verify: ignored, the answer kept.
        bad_advert,
        /// Neighbours scored 0 because their filter claims nearly every domain.
        overfull_filter,
        /// `Respond` mail for a token not held (late, or never handed out).
        stale_respond,
        /// Answers that could not be handed to the local engine that asked (undeliverable).
        asker_gone,
    }
}

impl RoutingStats {
    /// Messages sent to other nodes (requests and responses): the routing traffic.
    pub fn sent_total(&self) -> u64 {
        Self::get(&self.sent_requests) + Self::get(&self.sent_responses)
    }
}

/// What the probe shows of the engine's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingSnapshot {
    /// Own requests outstanding.
    pub pending: usize,
    /// Relay entries held.
    pub relayed: usize,
    /// Requests held for a local engine's answer.
    pub arrived: usize,
}

/// A read-only window on a DomainRouting engine, shared (`Arc`): the simulator reads it
/// between steps; cloning shares it. The engine updates it after every input.
#[derive(Clone, Debug, Default)]
pub struct RoutingProbe {
    pub(super) state: Arc<RwLock<RoutingSnapshot>>,
    pub(super) stats: Arc<RoutingStats>,
}

impl RoutingProbe {
    /// The engine's state sizes.
    pub fn snapshot(&self) -> RoutingSnapshot {
        self.state.read().clone()
    }

    /// The engine's counters.
    pub fn stats(&self) -> &RoutingStats {
        &self.stats
    }
}
