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
//! All state is bounded by [`PubSubLimits`].

pub mod wire;

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
use crate::wire::{Destination, EngineMessage, Protocol, Signed, TopicAdvert};
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
}

/// The state of one publisher's events at this node.
#[derive(Debug, Default)]
struct Stream {
    /// Next sequence number to deliver; 0 = not known yet.
    next: u64,
    /// Events below this are known to exist (from a parent's position).
    horizon: u64,
    buffer: BTreeMap<u64, Event>,
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
    cache: VecDeque<Event>,
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

    // -----------------------------------------------------------------------------------------
    // From the Router.

    fn handle_request(&mut self, ctx: &mut Context, req: PubSubRequest) {
        match req {
            PubSubRequest::StartAdvert { advert } => {
                let topic = advert.topic;
                if !advert.publishers.contains(&self.me) {
                    log::warn!(
                        "pubsub: advert for {} does not list this node's PubSub",
                        topic.short()
                    );
                }
                let Some(t) = self.topic_mut(topic) else {
                    return;
                };
                t.publishing = true;
                t.distance = 0;
                t.parents.clear();
                t.advert = Some(advert.clone());
                t.progress_dirty = true;
                let notify = t.local_interest && !t.notified_subscribed;
                t.notified_subscribed |= notify;
                ctx.identity_request(IdentityRequest::Update(IdentityUpdate::TopicAdvert(
                    advert.clone(),
                )));
                if notify {
                    // A local subscription made before this node started publishing.
                    ctx.system(SystemMail::PubSubNotice(Box::new(
                        PubSubNotice::Subscribed {
                            topic,
                            result: Ok(()),
                        },
                    )));
                }
                let msg = PubSubMessage::Advert { advert, hops: 0 };
                for peer in self.connected.clone() {
                    self.send(ctx, peer, &msg);
                }
            }
            PubSubRequest::StopAdvert { topic } => {
                if let Some(t) = self.topics.get_mut(&topic) {
                    t.publishing = false;
                    t.children.clear();
                }
            }
            PubSubRequest::Subscribe { topic } => {
                let Some(t) = self.topic_mut(topic) else {
                    ctx.system(SystemMail::PubSubNotice(Box::new(
                        PubSubNotice::Subscribed {
                            topic,
                            result: Err(TopicError::NetworkFailed),
                        },
                    )));
                    return;
                };
                t.local_interest = true;
                t.notified_subscribed = false;
                if t.fed() {
                    t.notified_subscribed = true;
                    ctx.system(SystemMail::PubSubNotice(Box::new(
                        PubSubNotice::Subscribed {
                            topic,
                            result: Ok(()),
                        },
                    )));
                } else {
                    self.subscribe_upstream(ctx, topic);
                }
            }
            PubSubRequest::Unsubscribe { topic } => {
                if let Some(t) = self.topics.get_mut(&topic) {
                    t.local_interest = false;
                    t.notified_subscribed = false;
                }
                self.prune(ctx, topic);
                ctx.system(SystemMail::PubSubNotice(Box::new(
                    PubSubNotice::Unsubscribed { topic },
                )));
            }
        }
    }

    /// Sends `Subscribe` to every parent (if the advert is known; otherwise waits for it).
    fn subscribe_upstream(&mut self, ctx: &mut Context, topic: TopicIdentity) {
        let now = ctx.now().instant;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if t.advert.is_none() || t.parents.is_empty() || t.publishing {
            return;
        }
        if t.upstream != Upstream::Acked {
            t.upstream = Upstream::Pending(now);
        }
        let parents: Vec<NodeIdentity> = t.parents.iter().copied().collect();
        for p in parents {
            self.send(ctx, p, &PubSubMessage::Subscribe { topic });
        }
    }

    /// Unsubscribes upstream when nothing here needs the topic any more.
    fn prune(&mut self, ctx: &mut Context, topic: TopicIdentity) {
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if t.wants_upstream() || t.publishing || t.upstream == Upstream::None {
            return;
        }
        t.upstream = Upstream::None;
        // Acknowledge what arrived before leaving, so the parent knows it was received.
        let acks: Vec<PubSubMessage> = if t.ack_dirty {
            t.streams
                .iter()
                .map(|(publisher, s)| PubSubMessage::EventAck {
                    topic,
                    publisher: *publisher,
                    next_seq: s.next,
                })
                .collect()
        } else {
            Vec::new()
        };
        t.ack_dirty = false;
        t.streams.clear();
        let parents: Vec<NodeIdentity> = t.parents.iter().copied().collect();
        for p in parents {
            for ack in &acks {
                self.send(ctx, p, ack);
            }
            self.send(ctx, p, &PubSubMessage::Unsubscribe { topic });
        }
    }

    // -----------------------------------------------------------------------------------------
    // From other nodes.

    fn handle_remote(&mut self, ctx: &mut Context, via: NodeIdentity, body: &[u8]) {
        let msg = match PubSubMessage::from_bytes(body) {
            Ok(m) => m,
            Err(e) => {
                self.count(&self.stats.malformed);
                return self.bad_peer(ctx, via, &format!("malformed: {e}"));
            }
        };
        match msg {
            PubSubMessage::Advert { advert, hops } => self.on_advert(ctx, via, advert, hops),
            PubSubMessage::Subscribe { topic } => self.on_subscribe(ctx, via, topic),
            PubSubMessage::SubscribeAck {
                topic,
                accepted,
                positions,
            } => self.on_subscribe_ack(ctx, via, topic, accepted, positions),
            PubSubMessage::Unsubscribe { topic } => {
                if let Some(t) = self.topics.get_mut(&topic) {
                    if t.children.remove(&via).is_some() {
                        t.progress_dirty = true;
                    }
                }
                self.send(ctx, via, &PubSubMessage::UnsubscribeAck { topic });
                self.prune(ctx, topic);
            }
            PubSubMessage::UnsubscribeAck { .. } => {}
            PubSubMessage::Event(ev) => self.on_event(ctx, Some(via), ev),
            PubSubMessage::Events(events) => self.on_events(ctx, Some(via), events),
            PubSubMessage::EventReq {
                topic,
                publisher,
                from,
                to,
            } => self.on_event_request(ctx, via, topic, publisher, from, to),
            PubSubMessage::EventResp { .. } => {}
            PubSubMessage::EventAck {
                topic,
                publisher,
                next_seq,
            } => {
                let now = ctx.now().instant;
                if let Some(t) = self.topics.get_mut(&topic) {
                    if let Some(c) = t.children.get_mut(&via) {
                        let e = c.acked.entry(publisher).or_insert(0);
                        if next_seq > *e {
                            *e = next_seq;
                            c.last_progress = now;
                            t.progress_dirty = true;
                        }
                    }
                }
            }
        }
    }

    fn on_advert(&mut self, ctx: &mut Context, via: NodeIdentity, advert: TopicAdvert, hops: u8) {
        let advert = match advert.verify() {
            Ok(v) => v.into_inner(),
            Err(e) => {
                self.count(&self.stats.bad_advert);
                return self.bad_peer(ctx, via, &format!("advert: {e}"));
            }
        };
        let topic = advert.topic;
        let Some(t) = self.topic_mut(topic) else {
            return;
        };
        let fresher = t
            .advert
            .as_ref()
            .is_none_or(|a| advert.freshness() > a.freshness());
        let same = t
            .advert
            .as_ref()
            .is_some_and(|a| advert.freshness() == a.freshness());
        let distance = hops.saturating_add(1);
        if same {
            if t.publishing || distance > t.distance {
                return;
            }
            if distance == t.distance {
                // A redundant path towards the publisher.
                if t.parents.insert(via) && t.wants_upstream() && t.upstream != Upstream::None {
                    self.send(ctx, via, &PubSubMessage::Subscribe { topic });
                }
                return;
            }
            // A shorter path: it replaces the parents, and the news travels on.
        } else if !fresher || t.publishing {
            return;
        }
        let new_version = t
            .advert
            .as_ref()
            .is_none_or(|a| a.version != advert.version);
        t.advert = Some(advert.clone());
        t.distance = distance;
        t.parents.clear();
        t.parents.insert(via);
        if new_version {
            // A new advert version (a publisher restarted or the publishers changed): sequence
            // numbers start afresh, from the next event or acknowledgement.
            t.streams.clear();
        }
        ctx.identity_request(IdentityRequest::Update(IdentityUpdate::TopicAdvert(
            advert.clone(),
        )));
        ctx.system(SystemMail::PubSubNotice(Box::new(
            PubSubNotice::AdvertReceived {
                advert: advert.clone(),
            },
        )));
        let wants = t.wants_upstream();
        let msg = PubSubMessage::Advert {
            advert,
            hops: distance,
        };
        for peer in self.connected.clone() {
            if peer != via {
                self.send(ctx, peer, &msg);
            }
        }
        if wants {
            self.subscribe_upstream(ctx, topic);
        }
    }

    fn on_subscribe(&mut self, ctx: &mut Context, via: NodeIdentity, topic: TopicIdentity) {
        let now = ctx.now().instant;
        let max_children = self.limits.max_children;
        let me = self.me;
        let Some(t) = self.topic_mut(topic) else {
            return self.send(
                ctx,
                via,
                &PubSubMessage::SubscribeAck {
                    topic,
                    accepted: false,
                    positions: Vec::new(),
                },
            );
        };
        if !t.children.contains_key(&via) && t.children.len() >= max_children {
            self.count(&self.stats.children_full);
            return self.send(
                ctx,
                via,
                &PubSubMessage::SubscribeAck {
                    topic,
                    accepted: false,
                    positions: Vec::new(),
                },
            );
        }
        t.children.entry(via).or_insert(Child {
            acked: HashMap::new(),
            last_progress: now,
        });
        t.progress_dirty = true;
        if t.fed() {
            let positions = t.positions(me);
            self.send(
                ctx,
                via,
                &PubSubMessage::SubscribeAck {
                    topic,
                    accepted: true,
                    positions,
                },
            );
        } else {
            if !t.waiting_children.contains(&via) {
                t.waiting_children.push(via);
            }
            if t.upstream == Upstream::None {
                self.subscribe_upstream(ctx, topic);
            }
        }
    }

    fn on_subscribe_ack(
        &mut self,
        ctx: &mut Context,
        via: NodeIdentity,
        topic: TopicIdentity,
        accepted: bool,
        positions: Vec<(EngineIdentity, u64)>,
    ) {
        let me = self.me;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if !t.parents.contains(&via) {
            // Only a parent (closer to the publisher) can feed this node.
            return;
        }
        if !accepted {
            log::info!(
                "pubsub: {} refused our subscription to {}",
                via.short(),
                topic.short()
            );
            return;
        }
        if !t.wants_upstream() {
            // We no longer need it: undo.
            return self.send(ctx, via, &PubSubMessage::Unsubscribe { topic });
        }
        t.upstream = Upstream::Acked;
        let now = ctx.now().instant;
        for (publisher, next) in positions {
            if t.authorized(&publisher) {
                let s = t.streams.entry(publisher).or_default();
                if s.next == 0 {
                    s.next = next;
                }
                s.horizon = s.horizon.max(next);
                if s.horizon > s.next {
                    // Events this node missed while it was not fed: fetch them.
                    s.gap_since.get_or_insert(now);
                }
            }
        }
        let waiting = std::mem::take(&mut t.waiting_children);
        let positions = t.positions(me);
        let notify = t.local_interest && !t.notified_subscribed;
        if notify {
            t.notified_subscribed = true;
        }
        for child in waiting {
            self.send(
                ctx,
                child,
                &PubSubMessage::SubscribeAck {
                    topic,
                    accepted: true,
                    positions: positions.clone(),
                },
            );
        }
        if notify {
            ctx.system(SystemMail::PubSubNotice(Box::new(
                PubSubNotice::Subscribed {
                    topic,
                    result: Ok(()),
                },
            )));
        }
    }

    fn on_event_request(
        &mut self,
        ctx: &mut Context,
        via: NodeIdentity,
        topic: TopicIdentity,
        publisher: EngineIdentity,
        from: u64,
        to: u64,
    ) {
        if from == 0 || from > to {
            self.count(&self.stats.malformed);
            return self.bad_peer(ctx, via, "event request with an empty range");
        }
        let to = to.min(from.saturating_add(MAX_RESEND - 1));
        let events: Vec<Event> = match self.topics.get(&topic) {
            Some(t) => t
                .cache
                .iter()
                .filter(|e| e.publisher == publisher && e.seq >= from && e.seq <= to)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let found = events.len() as u64;
        for ev in events {
            self.count(&self.stats.resent);
            self.queue_event(ctx, via, ev);
        }
        // The answer's events leave before the summary.
        if let Some((events, _)) = self.outbox.remove(&via) {
            self.send_events(ctx, via, events);
        }
        // Missing some: ask closer to the publisher (parents are strictly closer, so requests
        // cannot loop). What arrives is forwarded to the asking child like any event.
        if found < to - from + 1 {
            if let Some(t) = self.topics.get(&topic) {
                if !t.parents.contains(&via) {
                    let parents: Vec<NodeIdentity> = t.parents.iter().copied().collect();
                    let req = PubSubMessage::EventReq {
                        topic,
                        publisher,
                        from,
                        to,
                    };
                    for p in parents {
                        self.count(&self.stats.event_requests);
                        self.send(ctx, p, &req);
                    }
                }
            }
        }
        self.send(
            ctx,
            via,
            &PubSubMessage::EventResp {
                topic,
                publisher,
                from,
                to,
                found,
            },
        );
    }

    /// Accepts (or refuses) an event; forwards and delivers what it accepts. `via` is `None` for
    /// this node's own publications (not verified).
    fn on_event(&mut self, ctx: &mut Context, via: Option<NodeIdentity>, ev: Event) {
        self.on_events(ctx, via, vec![ev]);
    }

    /// Accepts (or refuses) events from `via`: cheap checks first, then every signature in one
    /// batch verification; forwards and delivers what it accepts, in order.
    fn on_events(&mut self, ctx: &mut Context, via: Option<NodeIdentity>, events: Vec<Event>) {
        let mut candidates: Vec<(Event, EventId)> = Vec::with_capacity(events.len());
        let mut batch_ids = HashSet::new();
        for ev in events {
            let Some(t) = self.topics.get(&ev.topic) else {
                self.count(&self.stats.no_advert);
                continue;
            };
            if t.advert.is_none() {
                self.count(&self.stats.no_advert);
                continue;
            }
            if !t.authorized(&ev.publisher) {
                self.count(&self.stats.unauthorized);
                if let Some(v) = via {
                    self.bad_peer(ctx, v, "event from an unauthorized publisher");
                }
                continue;
            }
            let id = ev.id();
            if self.seen.contains(&id) || !batch_ids.insert(id) {
                self.count(&self.stats.duplicate);
                continue;
            }
            candidates.push((ev, id));
        }
        let verdicts = match via {
            None => vec![true; candidates.len()],
            Some(_) => {
                let mut keys: Vec<Option<CheckedKey>> = Vec::with_capacity(candidates.len());
                for (ev, _) in &candidates {
                    let key = self
                        .keys
                        .entry(ev.publisher)
                        .or_insert_with(|| CheckedKey::parse(ev.publisher.as_bytes()).ok());
                    keys.push(key.clone());
                }
                let (with_keys, keyed): (Vec<&Event>, Vec<&CheckedKey>) = candidates
                    .iter()
                    .zip(&keys)
                    .filter_map(|((ev, _), k)| Some((ev, k.as_ref()?)))
                    .unzip();
                let mut checked = wire::verify_events(&with_keys, &keyed).into_iter();
                keys.iter()
                    .map(|k| k.is_some() && checked.next().unwrap_or(false))
                    .collect()
            }
        };
        for ((ev, id), ok) in candidates.into_iter().zip(verdicts) {
            if !ok {
                self.count(&self.stats.bad_signature);
                if let Some(v) = via {
                    self.bad_peer(ctx, v, "event with a bad signature");
                }
                continue;
            }
            self.accept(ctx, via, ev, id);
        }
    }

    /// An event that passed every check: remember, forward, cache, deliver in order.
    fn accept(&mut self, ctx: &mut Context, via: Option<NodeIdentity>, ev: Event, id: EventId) {
        self.remember(id);
        let topic = ev.topic;
        let from = via.unwrap_or_else(|| ctx.node());
        // Forward to children (not back where it came from).
        let children: Vec<NodeIdentity> = self.topics[&topic]
            .children
            .keys()
            .copied()
            .filter(|c| Some(*c) != via)
            .collect();
        for c in children {
            self.count(&self.stats.forwarded);
            self.queue_event(ctx, c, ev.clone());
        }
        self.cache(&ev);
        if via.is_some() {
            self.sequence(ctx, from, ev);
        }
    }

    /// Queues an event for `peer`; queued events leave as one `Events` message per peer at the
    /// end of the burst (or as soon as a batch is full).
    fn queue_event(&mut self, ctx: &mut Context, peer: NodeIdentity, ev: Event) {
        let entry = self.outbox.entry(peer).or_default();
        entry.1 += ev.body.len();
        entry.0.push(ev);
        if entry.0.len() >= wire::MAX_BATCH_EVENTS || entry.1 >= wire::BATCH_BODY_BYTES {
            if let Some((events, _)) = self.outbox.remove(&peer) {
                self.send_events(ctx, peer, events);
            }
        }
    }

    fn send_events(&self, ctx: &mut Context, peer: NodeIdentity, mut events: Vec<Event>) {
        let msg = if events.len() == 1 {
            PubSubMessage::Event(events.pop().expect("one event"))
        } else {
            PubSubMessage::Events(events)
        };
        self.send(ctx, peer, &msg);
    }

    /// Sends every queued batch.
    fn flush_outbox(&mut self, ctx: &mut Context) {
        let outbox = std::mem::take(&mut self.outbox);
        for (peer, (events, _)) in outbox {
            self.send_events(ctx, peer, events);
        }
    }

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

    fn cache(&mut self, ev: &Event) {
        let max = self.limits.cache_events;
        let Some(t) = self.topics.get_mut(&ev.topic) else {
            return;
        };
        t.cache.push_back(ev.clone());
        self.cache_bytes += ev.body.len();
        while t.cache.len() > max {
            if let Some(old) = t.cache.pop_front() {
                self.cache_bytes = self.cache_bytes.saturating_sub(old.body.len());
            }
        }
        if self.cache_bytes > self.limits.cache_bytes {
            // Evict from the largest caches until under the limit.
            let mut topics: Vec<&mut Topic> = self.topics.values_mut().collect();
            topics.sort_by_key(|t| std::cmp::Reverse(t.cache.len()));
            for t in topics {
                while self.cache_bytes > self.limits.cache_bytes / 2 {
                    match t.cache.pop_front() {
                        Some(old) => {
                            self.cache_bytes = self.cache_bytes.saturating_sub(old.body.len())
                        }
                        None => break,
                    }
                }
            }
        }
    }

    /// Puts a verified event into its publisher's sequence, delivering what is in order.
    fn sequence(&mut self, ctx: &mut Context, via: NodeIdentity, ev: Event) {
        let now = ctx.now().instant;
        let max_buffered = self.limits.max_buffered;
        let Some(t) = self.topics.get_mut(&ev.topic) else {
            return;
        };
        let s = t.streams.entry(ev.publisher).or_default();
        if s.next == 0 {
            s.next = ev.seq;
        }
        if ev.seq < s.next {
            self.count(&self.stats.stale);
            return;
        }
        if ev.seq > s.next {
            if s.buffer.len() >= max_buffered {
                self.count(&self.stats.buffer_full);
                return;
            }
            s.buffer.insert(ev.seq, ev);
            s.gap_since.get_or_insert(now);
            return;
        }
        let mut ready = vec![ev];
        s.next += 1;
        while let Some(next) = s.buffer.remove(&s.next) {
            ready.push(next);
            s.next += 1;
        }
        s.horizon = s.horizon.max(s.next);
        if s.gap_end().is_none() {
            s.gap_since = None;
        } else {
            s.gap_since = Some(now);
        }
        t.ack_dirty = true;
        let deliver = t.local_interest;
        for ev in ready {
            if deliver {
                self.deliver(ctx, via, ev);
            }
        }
    }

    fn deliver(&mut self, ctx: &mut Context, via: NodeIdentity, ev: Event) {
        match EngineMessage::decode_unsigned(&ev.body) {
            Ok(message) if message.dst == Destination::Topic(ev.topic) => {
                self.count(&self.stats.delivered);
                ctx.system(SystemMail::PubSubNotice(Box::new(PubSubNotice::Deliver {
                    publisher: ev.publisher,
                    via,
                    message,
                })));
            }
            Ok(_) => self.count(&self.stats.malformed),
            Err(e) => {
                self.count(&self.stats.malformed);
                log::debug!(
                    "pubsub: event {} of {} has a bad body: {e}",
                    ev.seq,
                    ev.publisher.short()
                );
            }
        }
    }

    /// A local engine published on a topic this node publishes.
    fn publish(&mut self, ctx: &mut Context, m: Message) {
        let Destination::Topic(topic) = m.dst() else {
            return;
        };
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if !t.publishing {
            return;
        }
        let mut body = Vec::with_capacity(200 + m.body().len());
        m.as_engine_message().encode_signed_fields(&mut body);
        let deps = t.last_id.into_iter().collect();
        let ev = Event::new_signed(&self.key, topic, t.next_seq, deps, body);
        t.next_seq += 1;
        t.last_id = Some(ev.id());
        t.progress_dirty = true;
        self.count(&self.stats.published);
        self.on_event(ctx, None, ev);
    }

    // -----------------------------------------------------------------------------------------
    // Upkeep.

    fn tick(&mut self, ctx: &mut Context) {
        let now = ctx.now().instant;
        let topics: Vec<TopicIdentity> = self.topics.keys().copied().collect();
        for topic in topics {
            self.tick_topic(ctx, topic, now);
        }
        ctx.set_timer_after(TICK_TOKEN, TICK);
    }

    fn tick_topic(&mut self, ctx: &mut Context, topic: TopicIdentity, now: Instant) {
        let me = self.me;
        let limits = self.limits;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        let mut out: Vec<(NodeIdentity, PubSubMessage)> = Vec::new();
        // Subscription retries.
        if t.wants_upstream() && t.advert.is_some() {
            let due = match t.upstream {
                Upstream::None => true,
                Upstream::Pending(since) => now.saturating_duration_since(since) >= SUBSCRIBE_RETRY,
                Upstream::Acked => false,
            };
            if due && !t.parents.is_empty() {
                t.upstream = Upstream::Pending(now);
                for p in &t.parents {
                    out.push((*p, PubSubMessage::Subscribe { topic }));
                }
            }
        }
        // Acknowledgements to parents.
        if t.ack_dirty && t.upstream == Upstream::Acked {
            t.ack_dirty = false;
            for (publisher, s) in &t.streams {
                for p in &t.parents {
                    out.push((
                        *p,
                        PubSubMessage::EventAck {
                            topic,
                            publisher: *publisher,
                            next_seq: s.next,
                        },
                    ));
                }
            }
        }
        // Gaps: ask parents, give up after a while.
        let mut lost = 0;
        let mut skipped: Vec<Event> = Vec::new();
        for (publisher, s) in t.streams.iter_mut() {
            let Some(since) = s.gap_since else { continue };
            let waited = now.saturating_duration_since(since);
            let Some(first) = s.gap_end() else {
                s.gap_since = None;
                continue;
            };
            if waited >= limits.give_up_after {
                lost += first - s.next;
                s.next = first;
                while let Some(ev) = s.buffer.remove(&s.next) {
                    skipped.push(ev);
                    s.next += 1;
                }
                s.gap_since = (!s.buffer.is_empty()).then_some(now);
                t.ack_dirty = true;
            } else if waited >= limits.gap_wait
                && s.last_request
                    .is_none_or(|t| now.saturating_duration_since(t) >= limits.gap_wait)
            {
                s.last_request = Some(now);
                let req = PubSubMessage::EventReq {
                    topic,
                    publisher: *publisher,
                    from: s.next,
                    to: first - 1,
                };
                for p in &t.parents {
                    out.push((*p, req.clone()));
                }
            }
        }
        // Push to children that lag behind what this node has.
        let mut pushes: Vec<(NodeIdentity, Event)> = Vec::new();
        for (child, c) in t.children.iter_mut() {
            if now.saturating_duration_since(c.last_progress) < CHILD_LAG {
                continue;
            }
            for ev in &t.cache {
                let acked = c.acked.get(&ev.publisher).copied().unwrap_or(0);
                let frontier = if ev.publisher == me {
                    t.next_seq
                } else {
                    t.streams.get(&ev.publisher).map_or(0, |s| s.next)
                };
                if acked > 0
                    && ev.seq >= acked
                    && ev.seq < frontier
                    && (ev.seq - acked) < MAX_RESEND
                {
                    pushes.push((*child, ev.clone()));
                }
            }
            c.last_progress = now;
        }
        // Progress of a topic this node publishes.
        let progress = (t.publishing && t.progress_dirty).then(|| {
            t.progress_dirty = false;
            PubSubNotice::Progress {
                topic,
                children: t
                    .children
                    .iter()
                    .map(|(n, c)| (*n, c.acked.get(&me).copied().unwrap_or(0)))
                    .collect(),
                published: t.next_seq - 1,
            }
        });
        let deliver = t.local_interest;
        for (peer, msg) in out {
            if matches!(msg, PubSubMessage::EventReq { .. }) {
                self.count(&self.stats.event_requests);
            }
            self.send(ctx, peer, &msg);
        }
        for (child, ev) in pushes {
            self.count(&self.stats.resent);
            self.queue_event(ctx, child, ev);
        }
        if lost > 0 {
            self.stats.lost.fetch_add(lost, Ordering::Relaxed);
            log::warn!(
                "pubsub: gave up on {lost} events of topic {}",
                topic.short()
            );
        }
        for ev in skipped {
            if deliver {
                let via = ctx.node();
                self.deliver(ctx, via, ev);
            }
        }
        if let Some(p) = progress {
            ctx.system(SystemMail::PubSubNotice(Box::new(p)));
        }
    }

    fn on_connected(&mut self, ctx: &mut Context, peer: NodeIdentity) {
        if !self.connected.insert(peer) {
            return;
        }
        let adverts: Vec<(TopicAdvert, u8)> = self
            .topics
            .values()
            .filter_map(|t| Some((t.advert.clone()?, t.distance)))
            .collect();
        for (advert, hops) in adverts {
            self.send(ctx, peer, &PubSubMessage::Advert { advert, hops });
        }
        let resubscribe: Vec<TopicIdentity> = self
            .topics
            .iter()
            .filter(|(_, t)| t.wants_upstream() && t.parents.contains(&peer))
            .map(|(k, _)| *k)
            .collect();
        for topic in resubscribe {
            self.send(ctx, peer, &PubSubMessage::Subscribe { topic });
        }
    }

    fn on_disconnected(&mut self, ctx: &mut Context, peer: NodeIdentity) {
        self.connected.remove(&peer);
        let topics: Vec<TopicIdentity> = self.topics.keys().copied().collect();
        for topic in topics {
            let Some(t) = self.topics.get_mut(&topic) else {
                continue;
            };
            if t.children.remove(&peer).is_some() {
                t.progress_dirty = true;
            }
            if t.parents.contains(&peer) && t.upstream == Upstream::Acked {
                // Re-subscribe through the remaining parents (and this one when it is back).
                t.upstream = Upstream::Pending(ctx.now().instant - SUBSCRIBE_RETRY);
            }
            self.prune(ctx, topic);
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
                self.on_connected(ctx, node)
            }
            Input::Transport(TransportEvent::NodeDisconnected { node, .. }) => {
                self.on_disconnected(ctx, node)
            }
            Input::Transport(TransportEvent::ConnectedNodes(nodes)) => {
                for (node, _) in nodes {
                    self.on_connected(ctx, node);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{CheckedKey, Signature};
    use crate::mail::{Output, System};
    use crate::time::{wall_clock, Now};
    use crate::wire::MessageId;

    struct Fixture {
        engine: PubSub,
        ctx: Context,
        now: Now,
        parent: Keypair,
        publisher: Keypair,
        topic_key: Keypair,
    }

    /// A subscriber node's PubSub with one parent (`parent`) and a topic published by
    /// `publisher`'s node.
    fn fixture() -> Fixture {
        let me = Keypair::generate();
        let key = me.derive_engine(PUBSUB_ENGINE_NAME);
        let now = Now::read();
        let ctx = Context::detached(now, key.engine_identity(), me.node_identity(), "pubsub");
        let engine = PubSub::new(
            key,
            PubSubLimits::default(),
            Arc::new(PubSubStats::default()),
        );
        Fixture {
            engine,
            ctx,
            now,
            parent: Keypair::generate(),
            publisher: Keypair::generate(),
            topic_key: Keypair::generate(),
        }
    }

    impl Fixture {
        fn topic(&self) -> TopicIdentity {
            self.topic_key.topic_identity()
        }

        fn publisher_engine(&self) -> Keypair {
            self.publisher.derive_engine(PUBSUB_ENGINE_NAME)
        }

        fn advert(&self) -> TopicAdvert {
            TopicAdvert {
                topic: self.topic(),
                publishers: vec![self.publisher_engine().engine_identity()],
                tags: vec![],
                version: 1,
                created: wall_clock(),
                sig: Signature([0; 64]),
            }
            .sign(&self.topic_key)
        }

        /// `msg` as it arrives from the parent node, verified.
        fn receive_from_parent(&mut self, msg: PubSubMessage) {
            let sender = self.parent.derive_engine(PUBSUB_ENGINE_NAME);
            let mut m = EngineMessage {
                src: sender.engine_identity(),
                src_node: self.parent.node_identity(),
                dst: Destination::Node(self.ctx.node()),
                id: MessageId(1),
                reply_to: None,
                expiry: None,
                rprefs: None,
                tprefs: None,
                protocol: Protocol::PUBSUB,
                body: msg.to_bytes(),
                sig: None,
            };
            let mut wire = Vec::new();
            m.sign_into_wire(&sender, &mut wire, &mut Vec::new());
            let key = CheckedKey::parse(sender.engine_identity().as_bytes()).unwrap();
            let verified = Unverified::decode(wire)
                .unwrap()
                .verify(&key, &mut Vec::new())
                .unwrap();
            let input = Input::Message(Message::remote(verified, self.parent.node_identity()));
            self.engine.handle(&mut self.ctx, input);
            self.engine.flush(&mut self.ctx);
        }

        fn event(&self, seq: u64) -> Event {
            let src = self.publisher.derive_engine("app");
            let m = EngineMessage {
                src: src.engine_identity(),
                src_node: self.publisher.node_identity(),
                dst: Destination::Topic(self.topic()),
                id: MessageId(seq),
                reply_to: None,
                expiry: None,
                rprefs: None,
                tprefs: None,
                protocol: Protocol(Protocol::APP_BASE),
                body: seq.to_le_bytes().to_vec(),
                sig: None,
            };
            let mut body = Vec::new();
            m.encode_signed_fields(&mut body);
            Event::new_signed(&self.publisher_engine(), self.topic(), seq, vec![], body)
        }

        fn tick_after(&mut self, d: Duration) {
            self.now = self.now.advanced(d);
            self.ctx.set_now(self.now);
            self.engine.handle(&mut self.ctx, Input::Timer(TICK_TOKEN));
            self.engine.flush(&mut self.ctx);
        }

        /// Sequence numbers delivered, and the PubSub messages sent, since the last call.
        fn drain(&mut self) -> (Vec<u64>, Vec<PubSubMessage>) {
            let mut delivered = Vec::new();
            let mut sent = Vec::new();
            for out in self.ctx.take_outputs() {
                match out {
                    Output::System(System(SystemMail::PubSubNotice(n))) => {
                        if let PubSubNotice::Deliver { message, .. } = *n {
                            delivered
                                .push(u64::from_le_bytes(message.body[..8].try_into().unwrap()))
                        }
                    }
                    Output::Send(o) if o.msg.protocol == Protocol::PUBSUB => {
                        sent.push(PubSubMessage::from_bytes(&o.msg.body).unwrap())
                    }
                    _ => {}
                }
            }
            (delivered, sent)
        }

        /// Subscribes locally and completes the subscription through the parent.
        fn subscribed(&mut self) {
            let topic = self.topic();
            self.engine.handle(
                &mut self.ctx,
                Input::System(System(SystemMail::PubSubRequest(Box::new(
                    PubSubRequest::Subscribe { topic },
                )))),
            );
            self.receive_from_parent(PubSubMessage::Advert {
                advert: self.advert(),
                hops: 0,
            });
            let (_, sent) = self.drain();
            assert!(
                sent.contains(&PubSubMessage::Subscribe { topic }),
                "{sent:?}"
            );
            let publisher = self.publisher_engine().engine_identity();
            self.receive_from_parent(PubSubMessage::SubscribeAck {
                topic,
                accepted: true,
                positions: vec![(publisher, 1)],
            });
            self.drain();
        }
    }

    #[test]
    fn a_subscription_waits_for_the_advert() {
        let mut f = fixture();
        let topic = f.topic();
        f.engine.handle(
            &mut f.ctx,
            Input::System(System(SystemMail::PubSubRequest(Box::new(
                PubSubRequest::Subscribe { topic },
            )))),
        );
        let (_, sent) = f.drain();
        assert!(sent.is_empty(), "no parent known yet: {sent:?}");
        f.receive_from_parent(PubSubMessage::Advert {
            advert: f.advert(),
            hops: 0,
        });
        let (_, sent) = f.drain();
        assert_eq!(sent, vec![PubSubMessage::Subscribe { topic }]);
    }

    #[test]
    fn gaps_are_requested_and_delivery_stays_in_order() {
        let mut f = fixture();
        f.subscribed();
        f.receive_from_parent(PubSubMessage::Event(f.event(1)));
        f.receive_from_parent(PubSubMessage::Event(f.event(3)));
        f.receive_from_parent(PubSubMessage::Event(f.event(4)));
        let (delivered, _) = f.drain();
        assert_eq!(delivered, vec![1], "3 and 4 wait for 2");
        f.tick_after(Duration::from_millis(10));
        let (_, sent) = f.drain();
        assert!(!sent
            .iter()
            .any(|m| matches!(m, PubSubMessage::EventReq { .. })));
        f.tick_after(Duration::from_millis(250));
        let (_, sent) = f.drain();
        let publisher = f.publisher_engine().engine_identity();
        assert!(
            sent.contains(&PubSubMessage::EventReq {
                topic: f.topic(),
                publisher,
                from: 2,
                to: 2
            }),
            "{sent:?}"
        );
        f.receive_from_parent(PubSubMessage::Event(f.event(2)));
        let (delivered, _) = f.drain();
        assert_eq!(delivered, vec![2, 3, 4]);
        // A copy through another path is dropped.
        f.receive_from_parent(PubSubMessage::Event(f.event(3)));
        assert!(f.drain().0.is_empty());
        assert_eq!(f.engine.stats.duplicate.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_gap_that_cannot_be_filled_is_skipped_and_counted() {
        let mut f = fixture();
        f.subscribed();
        f.receive_from_parent(PubSubMessage::Event(f.event(1)));
        f.receive_from_parent(PubSubMessage::Event(f.event(5)));
        f.drain();
        f.tick_after(Duration::from_secs(6));
        let (delivered, _) = f.drain();
        assert_eq!(delivered, vec![5]);
        assert_eq!(f.engine.stats.lost.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn unauthorized_and_forged_events_are_neither_delivered_nor_forwarded() {
        let mut f = fixture();
        f.subscribed();
        // A child, to see whether anything is forwarded.
        let child = Keypair::generate().node_identity();
        let topic = f.topic();
        f.engine.on_subscribe(&mut f.ctx, child, topic);
        f.drain();
        let rogue = Keypair::generate().derive_engine(PUBSUB_ENGINE_NAME);
        let mut unauthorized = f.event(1);
        unauthorized = Event::new_signed(&rogue, topic, 1, vec![], unauthorized.body);
        f.receive_from_parent(PubSubMessage::Event(unauthorized));
        let mut forged = f.event(1);
        forged.body[0] ^= 1;
        f.receive_from_parent(PubSubMessage::Event(forged));
        let (delivered, sent) = f.drain();
        assert!(delivered.is_empty());
        assert!(
            !sent.iter().any(|m| matches!(m, PubSubMessage::Event(_))),
            "{sent:?}"
        );
        assert_eq!(f.engine.stats.unauthorized.load(Ordering::Relaxed), 1);
        assert_eq!(f.engine.stats.bad_signature.load(Ordering::Relaxed), 1);
        // The genuine event is delivered and forwarded.
        f.receive_from_parent(PubSubMessage::Event(f.event(1)));
        let (delivered, sent) = f.drain();
        assert_eq!(delivered, vec![1]);
        assert!(sent.iter().any(|m| matches!(m, PubSubMessage::Event(_))));
    }

    #[test]
    fn a_peer_sending_garbage_is_disconnected() {
        let mut f = fixture();
        for _ in 0..PubSubLimits::default().bad_message_limit {
            f.engine
                .handle_remote(&mut f.ctx, f.parent.node_identity(), b"junk");
        }
        let outs = f.ctx.take_outputs();
        assert!(outs
            .iter()
            .any(|o| matches!(o, Output::Transport(TransportRequest::Disconnect { .. }))));
        assert_eq!(f.engine.stats.malformed.load(Ordering::Relaxed), 16);
    }
}
