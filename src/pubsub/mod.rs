//! The PubSub engine: the P2P publish/subscribe protocol between nodes (spec notes §5.4, §7).
//!
//! Local engines never talk to PubSub: they create, subscribe and publish through their Router,
//! which asks PubSub for what needs the network ([`PubSubRequest`]) and hears back
//! ([`PubSubNotice`]). PubSub engines of different nodes exchange [`PubSubMessage`]s as ordinary
//! signed unicast messages (`Destination::Node(peer)`, `Protocol::PUBSUB`).
//!
//! The protocol, per topic:
//! * **Adverts flood once per version**, with the sender's distance from the publisher. A node
//!   that receives a fresher, correctly signed [`TopicAdvert`] stores it, takes the neighbour as
//!   a *parent* (towards the publisher) and its distance plus one as its own, and forwards it to
//!   its other connected peers. The same version from a neighbour as close as the current parents
//!   adds a parent (a redundant path); from a closer one it replaces them. Parents are therefore
//!   always strictly closer to the publisher: the parent relation has no cycles. Newly connected
//!   peers are sent every advert known.
//! * **Subscriptions travel towards publishers.** A node with local subscribers or children
//!   subscribes to all its parents; a parent adds the sender as a *child* and acknowledges once it
//!   is itself fed (it is the publisher, or its own upstream subscription is acknowledged). A
//!   subscription made before the advert is known waits for it. A node left with neither local
//!   subscribers nor children unsubscribes upstream.
//! * **Events travel down.** The publisher's PubSub wraps each local publication in an
//!   [`Event`] — per-publisher sequence number, the previous event as causal dependency, signed
//!   by the publisher — and sends it to its children; every node forwards what it accepts to its
//!   own children. Events from a publisher the current advert does not list, or with a bad
//!   signature, are dropped and not forwarded. Duplicates (redundant paths) are dropped by id.
//! * **Delivery is in causal order.** Each publisher's events are delivered in sequence; later
//!   ones wait in a bounded buffer. A gap is requested from parents with `EventReq`, answered from
//!   a bounded cache of recent events; a parent that lacks some of them asks its own parents, up
//!   to the publisher. Children acknowledge how far they have received, and a parent pushes again
//!   what a child is missing. A gap that cannot be filled within
//!   [`PubSubLimits::give_up_after`] is skipped and counted as lost.
//!
//! * **A restarted neighbour starts over.** A second `NodeConnected` for a peer with no
//!   `NodeDisconnected` between means the peer restarted (its new connection replaced the old):
//!   it is handled as a disconnection followed by a connection, so parents are subscribed to
//!   again and children re-attach (found by the simulator: docs/simulation.md).
//!
//! All state is bounded by [`PubSubLimits`].

mod remote;
mod requests;
mod upkeep;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::identity::{CheckedKey, EngineIdentity, Keypair, NodeIdentity, TopicIdentity};
use crate::mail::identity::{IdentityRequest, IdentityUpdate};
pub use crate::mail::pubsub::{PubSubNotice, PubSubRequest};
use crate::mail::topic::TopicError;
use crate::mail::transport::{TransportEvent, TransportRequest};
use crate::mail::{Input, Message, Origin, SystemMail};
use crate::runtime::{Context, Engine, SendOptions};
use crate::wire::message::Unverified;
use crate::wire::{Destination, EngineMessage, Protocol, Signed, TopicAdvert, Verified};
pub use wire::{Event, EventId, PubSubMessage};

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
    /// Out-of-order events buffered per publisher (default 1,024).
    pub max_buffered: usize,
    /// Recent events kept per topic to answer recovery requests (default 1,024).
    pub cache_events: usize,
    /// Bytes of cached and buffered events in all, before the oldest are evicted (default 64 MiB).
    pub cache_bytes: usize,
    /// Wait before asking for a gap (default 200 ms).
    pub gap_wait: Duration,
    /// A gap not filled after this long is skipped and counted lost (default 5 s).
    pub give_up_after: Duration,
    /// Bad messages from one peer before it is disconnected (default 16).
    pub bad_message_limit: u32,
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
        }
    }
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Counters of one PubSub engine.
        #[derive(Default, Debug)]
        pub struct PubSubStats {
            $($(#[$doc])* pub $name: AtomicU64,)*
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
    /// Adverts whose signature does not verify.
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
    /// `UnsubscribeAck`s received: a parent confirmed that this node left a topic.
    unsubscribe_acks,
}

/// The state of one publisher's events at this node.
#[derive(Debug, Default)]
struct Stream {
    /// Next sequence number to deliver; 0 = not known yet.
    next: u64,
    /// Events below this are known to exist (from a parent's position).
    horizon: u64,
    buffer: BTreeMap<u64, Verified<Event>>,
    gap_since: Option<Instant>,
    /// When the gap was last asked for.
    last_request: Option<Instant>,
}

impl Stream {
    /// The first sequence number after the gap starting at `next`, if there is a gap.
    fn gap_end(&self) -> Option<u64> {
        match self.buffer.keys().next() {
            Some(&first) => Some(first),
            None if self.horizon > self.next && self.next > 0 => Some(self.horizon),
            None => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upstream {
    /// Not subscribed to parents.
    None,
    /// Subscribe sent at this time, no acknowledgement yet.
    Pending(Instant),
    /// A parent acknowledged.
    Acked,
}

#[derive(Debug)]
struct Child {
    /// Per publisher, the next sequence number the child waits for.
    acked: HashMap<EngineIdentity, u64>,
    /// When it last acknowledged progress.
    last_progress: Instant,
}

#[derive(Debug)]
struct Topic {
    advert: Option<TopicAdvert>,
    /// Hops from the publisher (0 at the publisher); meaningful once the advert is known.
    distance: u8,
    parents: BTreeSet<NodeIdentity>,
    children: BTreeMap<NodeIdentity, Child>,
    publishing: bool,
    local_interest: bool,
    notified_subscribed: bool,
    upstream: Upstream,
    waiting_children: Vec<NodeIdentity>,
    next_seq: u64,
    last_id: Option<EventId>,
    streams: BTreeMap<EngineIdentity, Stream>,
    cache: VecDeque<Verified<Event>>,
    ack_dirty: bool,
    progress_dirty: bool,
}

impl Topic {
    fn new() -> Topic {
        Topic {
            advert: None,
            distance: 0,
            parents: BTreeSet::new(),
            children: BTreeMap::new(),
            publishing: false,
            local_interest: false,
            notified_subscribed: false,
            upstream: Upstream::None,
            waiting_children: Vec::new(),
            next_seq: 1,
            last_id: None,
            streams: BTreeMap::new(),
            cache: VecDeque::new(),
            ack_dirty: false,
            progress_dirty: false,
        }
    }

    /// Whether this node needs the topic's events from upstream.
    fn wants_upstream(&self) -> bool {
        !self.publishing && (self.local_interest || !self.children.is_empty())
    }

    fn fed(&self) -> bool {
        self.publishing || self.upstream == Upstream::Acked
    }

    fn positions(&self, me: EngineIdentity) -> Vec<(EngineIdentity, u64)> {
        let mut out: Vec<(EngineIdentity, u64)> = self
            .streams
            .iter()
            .filter(|(_, s)| s.next > 0)
            .map(|(p, s)| (*p, s.next))
            .collect();
        if self.publishing {
            out.push((me, self.next_seq));
        }
        out.truncate(wire::MAX_POSITIONS);
        out
    }

    fn authorized(&self, publisher: &EngineIdentity) -> bool {
        self.advert
            .as_ref()
            .is_some_and(|a| a.publishers.contains(publisher))
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
        }
    }

    fn count(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn send(&self, ctx: &mut Context, peer: NodeIdentity, msg: &PubSubMessage) {
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
    }
}

impl EngineMessage {
    /// Decodes an `EngineMessage`'s signed fields (as carried in an event body); the result has
    /// no signature.
    pub fn decode_unsigned(bytes: &[u8]) -> Result<EngineMessage, crate::wire::WireError> {
        Unverified::decode_fields(bytes)
    }
}
