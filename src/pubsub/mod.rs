//! The PubSub engine: the P2P publish/subscribe protocol between nodes (spec notes §5.4, §7).
//!
//! Local engines never talk to PubSub: they create, subscribe and publish through their Router,
//! which asks PubSub for what needs the network ([`PubSubRequest`]) and hears back
//! ([`PubSubNotice`]). PubSub engines of different nodes exchange [`PubSubMessage`]s as ordinary
//! signed unicast messages (`Destination::Node(peer)`, `Protocol::PUBSUB`).
//!
//! A topic may have several publishers, on different nodes: the advert lists their PubSub
//! engines. The protocol keeps **one tree per publisher** over the same neighbours:
//!
//! * **Adverts flood once per version and publisher**, with the sender's distance from that
//!   publisher (`Advert { advert, publisher, hops }`). Each publishing node floods the advert as
//!   its own root (hops 0). A node that receives a correctly signed advert keeps, for each
//!   publisher, a *route*: the neighbours one hop closer to that publisher (its *parents* for
//!   that publisher) and its distance. A shorter path replaces the parents and travels on; a path
//!   as short adds a parent (a redundant path); a longer one is ignored. A publisher's parents
//!   are always strictly closer to it, so no publisher's parent relation has cycles. A fresher
//!   advert version replaces the routes (every publisher floods it again); an older one is
//!   refused and counted (`stale_advert`). Newly connected peers are sent every route known.
//!   A publisher's sequence numbers start at 1 for each advert version: a publisher that
//!   restarts without its state must publish a new version, or receivers take its new events
//!   for equivocation.
//! * **Subscriptions travel towards every publisher.** A node *wants* a publisher's events when
//!   it delivers the topic (local subscribers, or it publishes the topic itself: a publishing
//!   node receives the other publishers' events too) or a child wants them. It sends each
//!   neighbour `Subscribe { topic, publishers }` naming the publishers for which that neighbour is
//!   a parent — one message per parent, however many publishers it serves. A parent records the
//!   child with those publishers and acknowledges, with a position per publisher, once it is
//!   itself *fed* for it (it is that publisher, or its own subscription towards it is
//!   acknowledged); a publisher it is not fed for yet is acknowledged later, when it is. A node
//!   left wanting nothing from a parent unsubscribes from it. The local subscription is reported
//!   done once every publisher the advert lists is feeding this node, or
//!   [`PubSubLimits::subscribe_wait`] after the first one is (a listed publisher may never come
//!   up).
//! * **Events travel down each publisher's tree.** The publisher's PubSub wraps each local
//!   publication in an [`Event`] — per-publisher sequence number, signed by the publisher — and
//!   sends it to the children that want its events; every node forwards what it accepts to its
//!   own children that want that publisher. Events from a publisher the advert does not list, or
//!   with a bad signature, are dropped and not forwarded; so is the second of two different
//!   events with the same publisher and sequence number (*equivocation*, counted and logged) and
//!   any event in this node's own name that it did not publish. Duplicates (redundant paths)
//!   are dropped by id.
//! * **Delivery is in causal order.** An event carries its publishing node's *causal
//!   frontier*: for each other publisher, the sequence number of the latest of its events that
//!   node had delivered (`dep_positions`; their ids, after the publisher's own previous event,
//!   are its `deps`). Each publisher's events are first put in sequence (later ones wait in a
//!   bounded buffer); an event in sequence is then delivered once this node's stream of every
//!   publisher in its frontier has passed that position — delivered, skipped, given up on, or
//!   begun after it. That is a causal barrier across publishers, transitive because every event
//!   names its publisher's whole frontier, and exact for late joiners: a dependency from before
//!   this node's stream began is known at once never to come. A relay does not wait. An event
//!   still waiting after [`PubSubLimits::give_up_after`], while the streams it waits on have not
//!   moved for as long, is delivered anyway, counted (`causal_timeout`), and those positions no
//!   longer hold back that publisher's later events.
//! * **Recovery is per publisher.** A gap in a publisher's sequence is requested from that
//!   publisher's parents with `EventReq`, answered from a bounded cache of recent events; a
//!   parent that lacks some of them asks its own parents for that publisher, up to the publisher
//!   (parents are strictly closer, so requests cannot loop). Children acknowledge per publisher
//!   how far they have received, to that publisher's parents, and a parent pushes again what a
//!   child is missing. A gap that cannot be filled within [`PubSubLimits::give_up_after`] is
//!   skipped and counted as lost.
//! * **Withdrawal.** When a publishing node's topic is deleted, its PubSub floods a
//!   [`wire::Withdrawal`] signed by its key for the advert's version. Every node verifies it,
//!   drops the routes, sequence state and cached events of that publisher, tells its local
//!   subscribers ([`PubSubNotice::Withdrawn`]) and forwards it once. When no publisher is left it
//!   drops the topic's parents, children and caches; what it keeps (the advert and the signed
//!   withdrawals) makes it refuse the withdrawn publishers' adverts of that version or older
//!   (`stale_advert`), and is forgotten after [`PubSubLimits::withdrawn_keep`] unless a local
//!   subscription remains.
//! * **Application validation** (default off). An engine that asks for validation of a topic
//!   (`TopicRequest::Validate`) sees each remote event before it is forwarded
//!   (`TopicEvent::Validate`) and answers accept, reject or ignore. Accepted events go on as any
//!   event; rejected and ignored ones are neither forwarded nor delivered (their sequence number
//!   is skipped here) and a rejection counts against the neighbour the event came from: it is
//!   counted per neighbour ([`PubSubStats::rejections`]) and lowers the neighbour's reputation
//!   in the identity store by one (reported once per neighbour per burst). At most [`PubSubLimits::max_pending_validation`] events (and
//!   [`PubSubLimits::pending_validation_bytes`] of bodies) wait for answers; one not answered
//!   within [`PubSubLimits::validation_timeout`] is ignored. The cost is one round trip through
//!   the Router's and the validator's mailboxes per event per hop, before forwarding.
//!
//! * **A restarted neighbour starts over.** A second `NodeConnected` for a peer with no
//!   `NodeDisconnected` between means the peer restarted (its new connection replaced the old):
//!   it is handled as a disconnection followed by a connection, so parents are subscribed to
//!   again and children re-attach (found by the simulator: docs/simulation.md).
//!
//! * **Domain-scoped topics** (spec notes §5.6, §7.2). A topic whose advert names a domain
//!   (`TopicAdvert::scope`, signed by the topic key) lives among that domain's members only, as
//!   the node's [`DomainDirectory`] knows them ([`PubSub::with_domains`]). PubSub `Watch`es the
//!   local Topology engine for each such domain and keeps its view (`PeerAddedToView` /
//!   `PeerRemovedFromView`, accepted from local mail only): the topic's adverts and withdrawals
//!   flood to the domain's view peers instead of every connected peer, and only from a member.
//!   An advert, subscription, event or other message of such a topic is refused
//!   (`not_member_refusals`, not held against the sender: membership views lag) unless both
//!   the neighbour and this node are members; nothing of it is sent to a non-member
//!   (`not_member_withheld`) but the answer refusing its subscription. A local subscription,
//!   publication or advert of such a topic on a node that is not a member is refused
//!   (`TopicError::NotMember`, `not_member_local`). A neighbour that leaves the domain's
//!   membership or this node's view of it stops being a child or parent of the domain's
//!   topics (`not_member_pruned`); a node that leaves the domain drops their trees. See
//!   `domains.rs`.
//!
//! * **The parents board.** With [`PubSub::with_topic_parents`], PubSub keeps a
//!   [`crate::mail::pubsub::TopicParents`] board equal to each topic's route parents (the
//!   neighbours one hop closer to a publisher), for the Storage engine's searches up a topic's
//!   tree (`parents.rs`).
//!
//! All state is bounded by [`PubSubLimits`].

mod adverts;
mod domains;
mod order;
mod parents;
mod remote;
mod requests;
mod subscriptions;
mod upkeep;
mod validation;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::identity::{
    CheckedKey, DomainIdentity, EngineIdentity, Keypair, NodeIdentity, TopicIdentity,
};
use crate::mail::domain::DomainDirectory;
use crate::mail::identity::{IdentityRequest, IdentityUpdate};
pub use crate::mail::pubsub::{PubSubNotice, PubSubRequest};
use crate::mail::topic::{TopicError, Validation};
use crate::mail::transport::{TransportEvent, TransportRequest};
use crate::mail::{Input, Message, Origin, SystemMail};
use crate::runtime::{Context, Engine, SendOptions};
use crate::wire::message::Unverified;
use crate::wire::{Destination, EngineMessage, Protocol, Signed, TopicAdvert, Verified};
pub use wire::{Event, EventId, PubSubMessage, Withdrawal};

use order::{Entry, Stream};
use validation::Pending;

/// The name the PubSub engine runs under.
pub const PUBSUB_ENGINE_NAME: &str = "pubsub";

/// Limits of the PubSub engine, with their defaults.
#[derive(Clone, Copy, Debug)]
pub struct PubSubLimits {
    /// Most topics tracked (default 1,024).
    pub max_topics: usize,
    /// Most children per topic (default 64).
    pub max_children: usize,
    /// Event ids remembered for deduplication (default 65,536: about 3 MiB).
    pub seen_ids: usize,
    /// Events held per publisher, out of order or waiting for their causal dependencies
    /// (default 1,024).
    pub max_buffered: usize,
    /// Recent events kept per topic to answer recovery requests (default 1,024); as many
    /// sequence numbers per publisher are remembered with their event id, to detect
    /// equivocation (40 bytes each).
    pub cache_events: usize,
    /// Bytes of cached and buffered events in all, before the oldest are evicted (default 64 MiB).
    pub cache_bytes: usize,
    /// Wait before asking for a gap (default 200 ms).
    pub gap_wait: Duration,
    /// A gap not filled after this long is skipped and counted lost; an event waiting this long
    /// for a causal dependency is delivered without it (default 5 s).
    pub give_up_after: Duration,
    /// Bad messages from one peer before it is disconnected (default 16).
    pub bad_message_limit: u32,
    /// A local subscription is reported done when every publisher the advert lists feeds this
    /// node, or this long after the first one does (default 5 s).
    pub subscribe_wait: Duration,
    /// Most events waiting for an application validator's answer, in all (default 1,024).
    pub max_pending_validation: usize,
    /// Most bytes of event bodies waiting for validation, in all (default 16 MiB).
    pub pending_validation_bytes: usize,
    /// An event not validated within this long is ignored: neither forwarded nor delivered
    /// (default 1 s).
    pub validation_timeout: Duration,
    /// How long a topic whose publishers all withdrew is remembered, to refuse their stale
    /// adverts, when no local subscription keeps it (default 10 min; a few hundred bytes each,
    /// within `max_topics`).
    pub withdrawn_keep: Duration,
    /// Most view peers remembered per domain this node has a domain-scoped topic in (default
    /// 256, well above the Topology engine's active view; 32 bytes each). Further
    /// `PeerAddedToView` are counted (`view_ignored`) and dropped.
    pub max_view_peers: usize,
}

impl Default for PubSubLimits {
    fn default() -> Self {
        PubSubLimits {
            max_topics: 1024,
            max_children: 64,
            seen_ids: 65_536,
            max_buffered: 1024,
            cache_events: 1024,
            cache_bytes: 64 << 20,
            gap_wait: Duration::from_millis(200),
            give_up_after: Duration::from_secs(5),
            bad_message_limit: 16,
            subscribe_wait: Duration::from_secs(5),
            max_pending_validation: 1024,
            pending_validation_bytes: 16 << 20,
            validation_timeout: Duration::from_secs(1),
            withdrawn_keep: Duration::from_secs(600),
            max_view_peers: 256,
        }
    }
}

/// Most neighbours whose rejected events are counted one by one ([`PubSubStats::rejections`]);
/// past it the neighbour with the fewest is forgotten.
pub const MAX_REJECTING_PEERS: usize = 1024;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Counters of one PubSub engine.
        #[derive(Default, Debug)]
        pub struct PubSubStats {
            $($(#[$doc])* pub $name: AtomicU64,)*
            /// Per neighbour, events it sent that a validator rejected.
            rejected_by_peer: Mutex<BTreeMap<NodeIdentity, u64>>,
        }

        impl PubSubStats {
            /// `(name, value)` of every non-zero counter.
            pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
                let mut out = Vec::new();
                $(
                    let v = self.$name.load(Ordering::Relaxed);
                    if v > 0 {
                        out.push((stringify!($name), v));
                    }
                )*
                out
            }
        }
    };
}

counters! {
    /// Events published by this node.
    published,
    /// Events delivered to local subscribers.
    delivered,
    /// Events forwarded to children.
    forwarded,
    /// Events dropped because another path delivered them first.
    duplicate,
    /// Events from a publisher the advert does not list.
    unauthorized,
    /// Events whose signature does not verify.
    bad_signature,
    /// Events for a topic without a known advert.
    no_advert,
    /// Messages that did not decode.
    malformed,
    /// Adverts (or withdrawals) whose signature does not verify.
    bad_advert,
    /// Events older than what was already delivered.
    stale,
    /// Events dropped because a publisher's reorder buffer was full.
    buffer_full,
    /// Events given up on (a gap not filled in time).
    lost,
    /// Recovery requests sent.
    event_requests,
    /// Events sent again (answers to requests, pushes to lagging children).
    resent,
    /// Subscriptions refused because a topic had its maximum of children.
    children_full,
    /// Topics refused because the topic limit was reached.
    topics_full,
    /// Peers disconnected for sending bad messages.
    peers_disconnected,
    /// Second, different events with a publisher's sequence number (or events in this node's
    /// own name that it did not publish): neither delivered nor forwarded.
    equivocation,
    /// Events delivered after waiting for an event of another publisher they depend on.
    causal_waits,
    /// Events delivered without a dependency that did not come within `give_up_after`.
    causal_timeout,
    /// Adverts older than the one held, or from a publisher that withdrew from that version.
    stale_advert,
    /// Withdrawals accepted (a publisher stopped publishing a topic).
    withdrawals,
    /// Events from a publisher that withdrew (in flight when the withdrawal passed, or held
    /// here out of order, waiting for dependencies or for a validator when it did).
    after_withdrawal,
    /// Acknowledgements ignored: from a node that is not a child of the topic, or for a
    /// publisher its advert does not list.
    acks_ignored,
    /// Answers to this node's event requests (the events themselves arrive as events).
    event_resps,
    /// Events an application validator accepted.
    validation_accepted,
    /// Events an application validator rejected: not forwarded, not delivered.
    validation_rejected,
    /// Events an application validator said to ignore: not forwarded, not delivered.
    validation_ignored,
    /// Events not validated in time (ignored).
    validation_timeout,
    /// Events dropped because too many were waiting for validation (not remembered: a copy
    /// may be validated later).
    validation_full,
    /// `UnsubscribeAck`s received: a parent confirmed that this node left a topic.
    unsubscribe_acks,
    /// Messages of a domain-scoped topic refused because the neighbour that sent them, or this
    /// node, is not a member of the domain (adverts, subscriptions — answered with a refusal —,
    /// events, acknowledgements, requests, withdrawals). Not held against the neighbour.
    not_member_refusals,
    /// Local requests on a domain-scoped topic refused because this node is not a member
    /// (subscriptions, answered `TopicError::NotMember`; publications; adverts to start).
    not_member_local,
    /// Messages of a domain-scoped topic not sent because the peer (or this node) is not a
    /// member of the domain.
    not_member_withheld,
    /// Children and parents of domain-scoped topics dropped because they left the domain's
    /// membership or this node's view of it (or this node left the domain).
    not_member_pruned,
    /// View events (`PeerAddedToView`, `PeerRemovedFromView`) taken from the Topology engine.
    view_events,
    /// Local view mail ignored: undecodable, for a domain not watched, a view over
    /// `max_view_peers`, or a kind PubSub does not take.
    view_ignored,
}

impl PubSubStats {
    /// Per neighbour, how many of the events it sent an application validator rejected (at
    /// most [`MAX_REJECTING_PEERS`] neighbours, the most rejected first kept).
    pub fn rejections(&self) -> Vec<(NodeIdentity, u64)> {
        self.rejected_by_peer
            .lock()
            .iter()
            .map(|(n, c)| (*n, *c))
            .collect()
    }

    fn count_rejection(&self, peer: NodeIdentity) {
        let mut m = self.rejected_by_peer.lock();
        if !m.contains_key(&peer) && m.len() >= MAX_REJECTING_PEERS {
            if let Some(least) = m.iter().min_by_key(|(_, c)| **c).map(|(n, _)| *n) {
                m.remove(&least);
            }
        }
        *m.entry(peer).or_insert(0) += 1;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upstream {
    /// Not subscribed towards the publisher.
    None,
    /// Subscribe sent at this time, no acknowledgement yet.
    Pending(Instant),
    /// A parent acknowledged.
    Acked,
}

/// The way towards one publisher of a topic.
#[derive(Debug)]
struct Route {
    /// Hops from the publisher.
    distance: u8,
    /// Neighbours one hop closer to it.
    parents: BTreeSet<NodeIdentity>,
    /// Whether this node's subscription towards it is acknowledged.
    upstream: Upstream,
}

#[derive(Debug)]
struct Child {
    /// Publishers whose events the child asked for (empty: every publisher).
    wants: BTreeSet<EngineIdentity>,
    /// Per publisher, the next sequence number the child waits for.
    acked: HashMap<EngineIdentity, u64>,
    /// When it last acknowledged progress.
    last_progress: Instant,
    /// Publishers whose position the child was sent.
    told: BTreeSet<EngineIdentity>,
}

impl Child {
    fn wants(&self, publisher: &EngineIdentity) -> bool {
        self.wants.is_empty() || self.wants.contains(publisher)
    }
}

#[derive(Debug)]
struct Topic {
    advert: Option<TopicAdvert>,
    /// Per other publisher, the way towards it.
    routes: BTreeMap<EngineIdentity, Route>,
    children: BTreeMap<NodeIdentity, Child>,
    /// The publishers this node last asked each parent for.
    asked: BTreeMap<NodeIdentity, BTreeSet<EngineIdentity>>,
    publishing: bool,
    local_interest: bool,
    notified_subscribed: bool,
    /// When a first publisher fed the local subscription (for `subscribe_wait`).
    fed_since: Option<Instant>,
    next_seq: u64,
    last_id: Option<EventId>,
    /// The latest event (`seq`, id) of each other publisher delivered here: the causal
    /// frontier this node's next publication depends on.
    frontier: BTreeMap<EngineIdentity, (u64, EventId)>,
    /// Per (publisher, other publisher): positions of the other below which the publisher's
    /// events no longer wait (one of them waited for such a position past `give_up_after`).
    /// At most one entry per pair of listed publishers.
    waived: BTreeMap<(EngineIdentity, EngineIdentity), u64>,
    streams: BTreeMap<EngineIdentity, Stream>,
    cache: VecDeque<Verified<Event>>,
    ack_dirty: bool,
    progress_dirty: bool,
    /// Signed withdrawals, by publisher.
    withdrawn: BTreeMap<EngineIdentity, Withdrawal>,
    /// Since when no publisher is left (every route withdrawn).
    closed_since: Option<Instant>,
    /// Local engines that validate the topic's remote events.
    validators: BTreeSet<EngineIdentity>,
}

impl Topic {
    fn new() -> Topic {
        Topic {
            advert: None,
            routes: BTreeMap::new(),
            children: BTreeMap::new(),
            asked: BTreeMap::new(),
            publishing: false,
            local_interest: false,
            notified_subscribed: false,
            fed_since: None,
            next_seq: 1,
            last_id: None,
            frontier: BTreeMap::new(),
            waived: BTreeMap::new(),
            streams: BTreeMap::new(),
            cache: VecDeque::new(),
            ack_dirty: false,
            progress_dirty: false,
            withdrawn: BTreeMap::new(),
            closed_since: None,
            validators: BTreeSet::new(),
        }
    }

    /// Whether this node hands the topic's events to local subscribers.
    fn delivers(&self) -> bool {
        self.local_interest || self.publishing
    }

    /// Whether this node needs `publisher`'s events (for itself or for a child).
    fn wants(&self, publisher: &EngineIdentity, me: EngineIdentity) -> bool {
        *publisher != me
            && self.authorized(publisher)
            && (self.delivers() || self.children.values().any(|c| c.wants(publisher)))
    }

    /// Whether this node has `publisher`'s events to give (it is that publisher, or a parent
    /// towards it acknowledged).
    fn fed_for(&self, publisher: &EngineIdentity, me: EngineIdentity) -> bool {
        (*publisher == me && self.publishing)
            || self
                .routes
                .get(publisher)
                .is_some_and(|r| r.upstream == Upstream::Acked)
    }

    /// The next sequence number of `publisher` this node expects (or will publish), once fed.
    fn position(&self, publisher: &EngineIdentity, me: EngineIdentity) -> Option<u64> {
        if !self.fed_for(publisher, me) {
            return None;
        }
        if *publisher == me {
            return Some(self.next_seq);
        }
        self.streams
            .get(publisher)
            .map(|s| s.next)
            .filter(|n| *n > 0)
    }

    /// Positions of the publishers a child asking for `wants` (empty: all) can be fed now.
    fn positions(
        &self,
        wants: &BTreeSet<EngineIdentity>,
        me: EngineIdentity,
    ) -> Vec<(EngineIdentity, u64)> {
        let mut candidates: Vec<EngineIdentity> = self.routes.keys().copied().collect();
        if self.publishing {
            candidates.push(me);
        }
        let mut out: Vec<(EngineIdentity, u64)> = candidates
            .into_iter()
            .filter(|p| wants.is_empty() || wants.contains(p))
            .filter_map(|p| Some((p, self.position(&p, me)?)))
            .collect();
        out.truncate(wire::MAX_POSITIONS);
        out
    }

    /// Per parent, the publishers this node should ask it for.
    fn desired(&self, me: EngineIdentity) -> BTreeMap<NodeIdentity, BTreeSet<EngineIdentity>> {
        let mut out: BTreeMap<NodeIdentity, BTreeSet<EngineIdentity>> = BTreeMap::new();
        for (p, r) in &self.routes {
            if self.wants(p, me) {
                for parent in &r.parents {
                    out.entry(*parent).or_default().insert(*p);
                }
            }
        }
        out
    }

    /// Whether `publisher` may publish: the advert lists it and it has not withdrawn.
    fn authorized(&self, publisher: &EngineIdentity) -> bool {
        self.advert
            .as_ref()
            .is_some_and(|a| a.publishers.contains(publisher))
            && !self.withdrawn.contains_key(publisher)
    }
}

/// Timer token of the periodic upkeep.
const TICK_TOKEN: u64 = 1;
/// Period of the upkeep: acknowledgements, retries, gap requests, progress.
const TICK: Duration = Duration::from_millis(50);
/// Resend a subscription not acknowledged after this long.
const SUBSCRIBE_RETRY: Duration = Duration::from_secs(1);
/// Push missing events to a child that has not progressed for this long.
const CHILD_LAG: Duration = Duration::from_millis(300);
/// Most events sent in answer to one request or push.
const MAX_RESEND: u64 = 1024;

/// The PubSub engine.
pub struct PubSub {
    key: Keypair,
    me: EngineIdentity,
    limits: PubSubLimits,
    stats: Arc<PubSubStats>,
    topics: BTreeMap<TopicIdentity, Topic>,
    connected: BTreeSet<NodeIdentity>,
    keys: HashMap<EngineIdentity, Option<CheckedKey>>,
    seen: HashSet<EventId>,
    seen_order: VecDeque<EventId>,
    cache_bytes: usize,
    bad: HashMap<NodeIdentity, u32>,
    /// Events waiting to leave, per peer, with their body bytes.
    outbox: BTreeMap<NodeIdentity, (Vec<Event>, usize)>,
    /// Events waiting for validators, by token.
    pending: BTreeMap<u64, Pending>,
    pending_ids: HashMap<EventId, u64>,
    pending_bytes: usize,
    next_token: u64,
    /// Per neighbour, validator rejections not yet reported to the identity store as lost
    /// reputation (reported at the end of each burst: one update per neighbour).
    reputation_loss: BTreeMap<NodeIdentity, i16>,
    /// The memberships domain-scoped topics are checked against (empty until set: every
    /// domain-scoped topic is then refused).
    domains: DomainDirectory,
    /// Per watched domain, the Topology engine's active view (at most `max_view_peers`).
    views: BTreeMap<DomainIdentity, BTreeSet<NodeIdentity>>,
    /// Domains this node has sent `Watch` for, with when it last did.
    watching: BTreeMap<DomainIdentity, Instant>,
    /// Where each topic's route parents are posted for the Storage engine (`parents.rs`).
    parents_board: Option<crate::mail::pubsub::TopicParents>,
}

impl PubSub {
    /// A PubSub engine with `key` (the engine key of the name [`PUBSUB_ENGINE_NAME`]).
    pub fn new(key: Keypair, limits: PubSubLimits, stats: Arc<PubSubStats>) -> PubSub {
        PubSub {
            me: key.engine_identity(),
            key,
            limits,
            stats,
            topics: BTreeMap::new(),
            connected: BTreeSet::new(),
            keys: HashMap::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            cache_bytes: 0,
            bad: HashMap::new(),
            outbox: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_ids: HashMap::new(),
            pending_bytes: 0,
            next_token: 1,
            reputation_loss: BTreeMap::new(),
            domains: DomainDirectory::new(),
            views: BTreeMap::new(),
            watching: BTreeMap::new(),
            parents_board: None,
        }
    }

    fn count(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn send(&self, ctx: &mut Context, peer: NodeIdentity, msg: &PubSubMessage) {
        // A batch of events may mix topics (and membership may have changed since it was
        // queued): each event is checked, the ones the peer may not have are withheld.
        if let PubSubMessage::Events(events) = msg {
            let kept: Vec<_> = events
                .iter()
                .filter(|e| {
                    let ok = self
                        .topic_domain(&e.topic)
                        .is_none_or(|d| self.domain_allows(&d, &peer));
                    if !ok {
                        self.count(&self.stats.not_member_withheld);
                    }
                    ok
                })
                .cloned()
                .collect();
            if kept.len() < events.len() {
                match kept.len() {
                    0 => {}
                    1 => {
                        let one = kept.into_iter().next().expect("one");
                        self.send(ctx, peer, &PubSubMessage::Event(one));
                    }
                    _ => self.send(ctx, peer, &PubSubMessage::Events(kept)),
                }
                return;
            }
        }
        if !self.may_send(peer, msg) {
            self.count(&self.stats.not_member_withheld);
            return;
        }
        let opts = SendOptions {
            notify_undeliverable: false,
            ..SendOptions::default()
        };
        ctx.send_with(
            Destination::Node(peer),
            Protocol::PUBSUB,
            msg.to_bytes(),
            opts,
        );
    }

    fn notice(&self, ctx: &mut Context, notice: PubSubNotice) {
        ctx.system(SystemMail::PubSubNotice(Box::new(notice)));
    }

    fn topic_mut(&mut self, topic: TopicIdentity) -> Option<&mut Topic> {
        if !self.topics.contains_key(&topic) {
            if self.topics.len() >= self.limits.max_topics {
                self.count(&self.stats.topics_full);
                return None;
            }
            self.topics.insert(topic, Topic::new());
        }
        self.topics.get_mut(&topic)
    }

    /// A peer sent something it should not have; past the limit it is disconnected.
    fn bad_peer(&mut self, ctx: &mut Context, peer: NodeIdentity, what: &str) {
        log::debug!("pubsub: bad message from {}: {what}", peer.short());
        let n = self.bad.entry(peer).or_insert(0);
        *n += 1;
        if *n >= self.limits.bad_message_limit {
            self.bad.remove(&peer);
            self.count(&self.stats.peers_disconnected);
            log::warn!(
                "pubsub: disconnecting {} after repeated bad messages ({what})",
                peer.short()
            );
            ctx.transport_request(TransportRequest::Disconnect { node: peer });
        }
    }

    /// Remembers an accepted event id, for deduplication.
    fn remember(&mut self, id: EventId) {
        if self.seen.insert(id) {
            self.seen_order.push_back(id);
            while self.seen_order.len() > self.limits.seen_ids {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }
}

impl Engine for PubSub {
    fn start(&mut self, ctx: &mut Context) {
        ctx.transport_request(TransportRequest::Subscribe);
        ctx.transport_request(TransportRequest::ConnectedNodes);
        ctx.set_timer_after(TICK_TOKEN, TICK);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::System(crate::mail::System(SystemMail::PubSubRequest(req))) => {
                self.handle_request(ctx, *req)
            }
            Input::Message(m) => match m.origin() {
                Origin::Remote { via } if m.protocol() == Protocol::PUBSUB => {
                    self.handle_remote(ctx, via, m.body())
                }
                Origin::Local if matches!(m.dst(), Destination::Topic(_)) => self.publish(ctx, m),
                Origin::Local if m.protocol() == Protocol::TOPOLOGY => {
                    self.on_view_mail(ctx, m.body())
                }
                _ => {}
            },
            Input::Transport(TransportEvent::NodeConnected { node, .. }) => {
                self.on_connected(ctx, node, true)
            }
            Input::Transport(TransportEvent::NodeDisconnected { node, .. }) => {
                self.on_disconnected(ctx, node)
            }
            Input::Transport(TransportEvent::ConnectedNodes(nodes)) => {
                for (node, _) in nodes {
                    self.on_connected(ctx, node, false);
                }
            }
            Input::Timer(TICK_TOKEN) => self.tick(ctx),
            _ => {}
        }
    }

    fn flush(&mut self, ctx: &mut Context) {
        self.flush_outbox(ctx);
        for (id, lost) in std::mem::take(&mut self.reputation_loss) {
            ctx.identity_request(IdentityRequest::Update(IdentityUpdate::Reputation {
                id,
                change: -lost,
            }));
        }
    }
}

impl EngineMessage {
    /// Decodes an `EngineMessage`'s signed fields (as carried in an event body); the result has
    /// no signature.
    pub fn decode_unsigned(bytes: &[u8]) -> Result<EngineMessage, crate::wire::WireError> {
        Unverified::decode_fields(bytes)
    }
}
