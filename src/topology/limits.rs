//! The Topology engine's limits ([`TopologyLimits`]), counters ([`TopologyStats`]) and the
//! read-only probe the simulator and the wiring layer read ([`TopologyProbe`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::identity::{DomainIdentity, NodeIdentity};

/// Every bound of the Topology engine, with its default and what it costs.
///
/// Memory per domain is dominated by the membership copy: 32 bytes per member plus the set's
/// overhead (≈ 64 bytes per member in a `BTreeSet`), so at most ≈ 1 MiB for
/// [`TopologyLimits::max_members`] = 16,384; the views themselves are a few kilobytes
/// (`active_view` peers with a few timestamps each, `passive_view` identities, one rate bucket
/// per member that sent something). With the default [`TopologyLimits::max_domains`] = 16 the
/// engine stays under ≈ 17 MiB whatever its peers send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyLimits {
    /// Most peers in a domain's active view (connected members that exchange keepalives):
    /// default 5 (HyParView's `log(n) + c` for n ≈ 10,000).
    pub active_view: usize,
    /// Most members in a domain's passive view (known, not connected): default 30.
    pub passive_view: usize,
    /// Length of the random walk a `ForwardJoin` makes before the node it reaches takes the
    /// new member into its active view (HyParView's ARWL): default 6. A `ForwardJoin` with a
    /// larger ttl is refused (`bad_ttl`).
    pub active_walk_length: u8,
    /// The ttl at which a `ForwardJoin` also puts the new member into the passive view
    /// (HyParView's PRWL): default 3.
    pub passive_walk_length: u8,
    /// Length of a shuffle's random walk: default 6. A `Shuffle` with a larger ttl is refused.
    pub shuffle_walk_length: u8,
    /// How often a node starts a shuffle (jittered uniformly in ±50 %): default 5 s.
    pub shuffle_interval: Duration,
    /// Active-view members a shuffle carries (besides the sender itself): default 3.
    pub shuffle_active: usize,
    /// Passive-view members a shuffle carries: default 4.
    pub shuffle_passive: usize,
    /// Most members in one `Shuffle` or `ShuffleReply` on the wire: default 16; larger lists
    /// are refused whole (`oversized`).
    pub max_shuffle_nodes: usize,
    /// A keepalive goes to an active peer when nothing else was sent to it for this long:
    /// default 1 s.
    pub keepalive_interval: Duration,
    /// An active peer heard nothing from for this long is taken as failed: removed from the
    /// view and replaced: default 3 s.
    pub failure_timeout: Duration,
    /// A `Neighbor` request not answered within this long is given up, and the next candidate
    /// tried: default 1 s.
    pub neighbor_timeout: Duration,
    /// A node with an empty active view sends a `Join` again after this long: default 2 s.
    pub join_retry: Duration,
    /// How often a node with peers asks a random member (from the whole membership) to become
    /// a neighbour with high priority, swapping out a random active peer — what re-merges the
    /// two halves of a healed partition (jittered ±50 %): default 60 s. Zero disables it.
    pub explore_interval: Duration,
    /// The engine's periodic tick (keepalives, failure detection, timeouts): default 250 ms.
    pub tick: Duration,
    /// Most `Neighbor` requests this node waits on per domain: default 16.
    pub max_pending_neighbors: usize,
    /// Most domains with an overlay: default 16; more `Members` are refused (`domains_full`).
    pub max_domains: usize,
    /// Most members remembered per domain: default 16,384; the rest are not
    /// (`members_over_limit`).
    pub max_members: usize,
    /// Most watching engines per domain: default 16 (`watchers_full`); watchers are kept for
    /// at most `2 × max_domains` domains (a watch may come before the domain's overlay).
    pub max_watchers: usize,
    /// Per member, the view exchanges (`Join`, `ForwardJoin`, `Neighbor`, `Shuffle`,
    /// `ShuffleReply`) accepted per second on average: default 20.
    pub exchanges_per_peer_s: u32,
    /// Per member, the burst of view exchanges accepted at once: default 200 (a contact
    /// node forwards one `ForwardJoin` per joiner to each of its active peers).
    pub exchange_burst: u32,
    /// Most members with a rate bucket per domain: default 1,024 (the least recently used is
    /// forgotten).
    pub max_rate_buckets: usize,
}

impl Default for TopologyLimits {
    fn default() -> Self {
        TopologyLimits {
            active_view: 5,
            passive_view: 30,
            active_walk_length: 6,
            passive_walk_length: 3,
            shuffle_walk_length: 6,
            shuffle_interval: Duration::from_secs(5),
            shuffle_active: 3,
            shuffle_passive: 4,
            max_shuffle_nodes: 16,
            keepalive_interval: Duration::from_secs(1),
            failure_timeout: Duration::from_secs(3),
            neighbor_timeout: Duration::from_secs(1),
            join_retry: Duration::from_secs(2),
            explore_interval: Duration::from_secs(60),
            tick: Duration::from_millis(250),
            max_pending_neighbors: 16,
            max_domains: 16,
            max_members: 16_384,
            max_watchers: 16,
            exchanges_per_peer_s: 20,
            exchange_burst: 200,
            max_rate_buckets: 1024,
        }
    }
}

crate::runtime::stats::counter_struct! {
    /// Counters of one Topology engine (all domains together).
    pub struct TopologyStats {
        /// `Join` messages sent.
        sent_join,
        /// `ForwardJoin` messages sent.
        sent_forward_join,
        /// `Neighbor` messages sent.
        sent_neighbor,
        /// `NeighborReply` messages sent.
        sent_neighbor_reply,
        /// `Disconnect` messages sent.
        sent_disconnect,
        /// `Shuffle` messages sent (started or forwarded).
        sent_shuffle,
        /// `ShuffleReply` messages sent.
        sent_shuffle_reply,
        /// `Keepalive` messages sent.
        sent_keepalive,
        /// View events (`PeerAddedToView` / `PeerRemovedFromView`) sent to watchers.
        sent_view_events,
        /// Topology messages from other nodes that were accepted and acted on.
        received,
        /// Local mail acted on (`Watch`, `Unwatch`, `Members`).
        local_mail,
        /// Peers added to an active view.
        peers_added,
        /// Peers removed from an active view (for any reason).
        peers_removed,
        /// Active peers removed because they were silent for `failure_timeout`.
        failures_detected,
        /// Active peers removed because the Transport reported the connection closed or failed.
        transport_failures,
        /// `Neighbor` requests that got no answer in time.
        neighbor_timeouts,
        /// `Neighbor` requests refused by the peer.
        neighbor_rejected,
        /// Times a node with an empty active view started joining.
        joins_started,
        /// Refused: the sender (or a node a message names) is not a member of the domain.
        not_member,
        /// Refused: a member sent view exchanges faster than `exchanges_per_peer_s`.
        rate_limited,
        /// Refused: the body did not decode.
        malformed,
        /// Refused: the body is of a protocol version this node does not speak.
        unknown_version,
        /// Refused: a list longer than its limit (`max_shuffle_nodes`).
        oversized,
        /// Refused: a ttl above its walk length.
        bad_ttl,
        /// Refused: a message about a domain this node keeps no overlay for.
        unknown_domain,
        /// Refused: a remote message not from a verified remote engine of its sending node, or
        /// local mail that did not come from this node.
        bad_origin,
        /// Refused: a `ShuffleReply` or `NeighborReply` nothing was asked for.
        unsolicited,
        /// Refused: local mail that is not for the Topology engine (`PeerAddedToView` sent to it).
        unexpected_mail,
        /// Refused: a `Watch` past `max_watchers`.
        watchers_full,
        /// Refused: `Members` for a new domain past `max_domains`.
        domains_full,
        /// Members not remembered because the domain had `max_members`.
        members_over_limit,
        /// `Neighbor` requests not sent because `max_pending_neighbors` were waiting.
        pending_full,
        /// View events a watcher could not be sent (undeliverable).
        watcher_undeliverable,
    }
}

impl TopologyStats {
    /// Messages sent to other nodes, by kind: `(kind, count)` in a fixed order.
    pub fn sent_by_kind(&self) -> Vec<(&'static str, u64)> {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("join", l(&self.sent_join)),
            ("forward_join", l(&self.sent_forward_join)),
            ("neighbor", l(&self.sent_neighbor)),
            ("neighbor_reply", l(&self.sent_neighbor_reply)),
            ("disconnect", l(&self.sent_disconnect)),
            ("shuffle", l(&self.sent_shuffle)),
            ("shuffle_reply", l(&self.sent_shuffle_reply)),
            ("keepalive", l(&self.sent_keepalive)),
        ]
    }

    /// All topology messages sent to other nodes (the overlay's maintenance traffic).
    pub fn sent_total(&self) -> u64 {
        self.sent_by_kind().iter().map(|(_, n)| n).sum()
    }

    /// Every refusal, by reason: `(reason, count)` in a fixed order.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("not_member", l(&self.not_member)),
            ("rate_limited", l(&self.rate_limited)),
            ("malformed", l(&self.malformed)),
            ("unknown_version", l(&self.unknown_version)),
            ("oversized", l(&self.oversized)),
            ("bad_ttl", l(&self.bad_ttl)),
            ("unknown_domain", l(&self.unknown_domain)),
            ("bad_origin", l(&self.bad_origin)),
            ("unsolicited", l(&self.unsolicited)),
            ("unexpected_mail", l(&self.unexpected_mail)),
            ("watchers_full", l(&self.watchers_full)),
            ("domains_full", l(&self.domains_full)),
        ]
    }

    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// One domain's overlay as the probe shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewSnapshot {
    /// The active view, sorted.
    pub active: Vec<NodeIdentity>,
    /// How many members the passive view holds.
    pub passive_len: usize,
    /// How many members the engine knows for the domain.
    pub members: usize,
}

/// A read-only window on a Topology engine, shared (`Arc`) with whoever built it: the
/// simulator reads it between steps to draw the overlay graph and count maintenance traffic.
///
/// Cloning shares the same probe. The engine updates the views after every input that changed
/// them (one short write lock); readers take a copy.
#[derive(Clone, Debug, Default)]
pub struct TopologyProbe {
    views: Arc<RwLock<BTreeMap<DomainIdentity, ViewSnapshot>>>,
    stats: Arc<TopologyStats>,
}

impl TopologyProbe {
    pub(crate) fn new(stats: Arc<TopologyStats>) -> TopologyProbe {
        TopologyProbe {
            views: Arc::default(),
            stats,
        }
    }

    /// The domains this engine keeps an overlay for.
    pub fn domains(&self) -> Vec<DomainIdentity> {
        self.views.read().keys().copied().collect()
    }

    /// The overlay of `domain`, if this engine keeps one.
    pub fn view(&self, domain: &DomainIdentity) -> Option<ViewSnapshot> {
        self.views.read().get(domain).cloned()
    }

    /// The active view of `domain` (empty if there is no overlay for it).
    pub fn active(&self, domain: &DomainIdentity) -> Vec<NodeIdentity> {
        self.views
            .read()
            .get(domain)
            .map(|v| v.active.clone())
            .unwrap_or_default()
    }

    /// Every overlay, by domain.
    pub fn views(&self) -> BTreeMap<DomainIdentity, ViewSnapshot> {
        self.views.read().clone()
    }

    /// The engine's counters (messages sent by kind, received, refusals by reason).
    pub fn stats(&self) -> &TopologyStats {
        &self.stats
    }

    pub(crate) fn publish(&self, views: BTreeMap<DomainIdentity, ViewSnapshot>) {
        *self.views.write() = views;
    }
}
