//! The Storage engine (name [`STORAGE_ENGINE_NAME`], serves `Protocol::STORAGE`): block
//! storage and retrieval for the node's engines and for other nodes (spec notes §5.5, §8).
//! docs/storage.md describes the protocol and its choices; docs/wire.md §12F the messages.
//!
//! * **Local engines** send [`StorageMail`] (`Protocol::STORAGE`, scope `Local`): `Put` into
//!   this node's store or onto another node, `Extend`, `Get` (a `BlockLookupRequest`) and
//!   `Fetch` (a whole object). Each is answered once, with a reply to the asking message.
//! * **Serving** ([`serve`]): a remote `Get` is answered from the store (if the requester's
//!   trust reaches the block's `min_trust`), else from the cache, else with receipts of other
//!   holders, else `NotFound`. A remote `Put` / `Extend` is decided by the [`PutPolicy`] (who
//!   may store, how much, how long) and answered with a signed [`ChunkCommitment`] whose
//!   `until` is what this node promises.
//! * **Looking up** ([`lookup`]): the store, then the cache, then the nodes the lookup names
//!   and the holders this node knows receipts of, one at a time (most recently successful
//!   first, each for `get_timeout`), then the searches the lookup asks for, at once:
//!   `BlockSearchTopic` up the topic's dissemination tree ([`TopicParents`]) and/or
//!   `BlockSearchRandom`, `fanout` random walkers among the domain's members (or the connected
//!   nodes), each for at most `hop_limit` hops. A holder on the way answers with
//!   [`wire::Found`], which travels back along the recorded path; every node on it checks the
//!   block against its id, caches it ([`cache::BlockCache`], bounded) and passes it on only to
//!   the node it got the search from.
//! * **Fetching** ([`fetch`]): an object's blocks are requested in parallel — at most
//!   `max_in_flight` at once, `max_in_flight_per_holder` per holder, spread over every holder
//!   known — checked as they arrive and stored together at the end of each burst of input
//!   ([`Engine::flush`]: one commit for the burst, made durable every 64 MiB and when the fetch
//!   ends — a crash loses at most that, fetched again on resume); what to ask for next is what the store still
//!   lacks ([`crate::storage::tree::missing_blocks`]), so a fetch that lost its connection, or
//!   is asked for again after a restart, never fetches a verified block twice.
//!
//! Trust: local mail is acted on only with `Origin::Local`; storage messages only with
//! `Origin::Remote { via }` whose verified sender runs on `via`. Trust values come from the
//! node's identity store (subscribed at start; a node whose record sets none has
//! [`DEFAULT_TRUST`]). Every refusal is counted in [`StorageStats`]; hostile input is logged
//! at the 1st, 2nd, 4th … occurrence. The store never holds an unverified block: it takes only
//! [`VerifiedBlock`]s.
//!
//! The store is injected (`Arc<dyn BlockStore>`: a [`crate::storage::store::RedbStore`] in a
//! node, a [`crate::storage::store::MemStore`] in tests and the simulator) — the one agreed
//! exception to "engines never touch files": its calls are synchronous and short (one fsync
//! per stored block).
//!
//! Drain contract: `handle` records fetched blocks; `flush` (after each burst) commits them
//! and sends the requests that follow. One timer (token [`TICK`]), set for the earliest deadline held (requests
//! sent, searches, fetch progress reports, the next garbage collection); every other output is
//! a message or an identity/transport request recorded in the `Context`. Randomness comes only
//! from the seed given to [`StorageEngine::new`]; every map iterated is ordered, so one seed
//! and one input sequence give one output sequence.
//!
//! Memory: bounded by [`StorageLimits`] (about 100 MiB worst case at the defaults; see its doc).

mod cache;
mod fetch;
mod lookup;
mod serve;
mod settings;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use crate::identity::{EngineIdentity, Keypair, NodeIdentity};
use crate::mail::domain::DomainDirectory;
use crate::mail::identity::{
    AnyIdentity, IdentityEvent, IdentityRecord, IdentityRequest, DEFAULT_TRUST,
};
use crate::mail::pubsub::TopicParents;
pub use crate::mail::storage::STORAGE_ENGINE_NAME;
use crate::mail::storage::{StorageMail, StoragePrefs};
use crate::mail::transport::{TransportEvent, TransportRequest};
use crate::mail::{Input, Message, Origin, Sender, Undeliverable};
use crate::rng::SplitMix64;
use crate::runtime::{Context, Engine, SendOptions};
use crate::storage::block::{BlockId, VerifiedBlock};
use crate::storage::receipt::ChunkCommitment;
use crate::storage::store::BlockStore;
use crate::storage::wire::{self, StorageMessage};
use crate::wire::{Destination, MessageId, NodeAdvert, Protocol, WireError};
pub use fetch::MAX_FETCH_HOLDERS;
pub use lookup::MAX_LOOKUP_HOLDERS;
pub use settings::{PutPolicy, StorageLimits, StorageSettings, StorageStats};

use cache::{BlockCache, KnownHolders, RateWindows};
use fetch::{Batched, Fetch};
use lookup::{GetOp, Relay};

/// The token of the engine's one timer.
pub const TICK: u64 = 1;
/// Requests given up on (timed out) whose late replies are told from unsolicited ones: the
/// most recent 4,096 (≈ 200 KiB).
const MAX_GIVEN_UP: usize = 4096;

/// What a request this node sent to another node was for (kept until its answer, its
/// undeliverable notice or its deadline).
#[derive(Clone, Copy, Debug)]
enum Sent {
    /// A direct get of lookup `op`.
    OpGet { op: u64 },
    /// A block of the fetch of `root`.
    FetchGet { root: BlockId, block: BlockId },
    /// A put or extend of a local engine.
    Put {
        asker: EngineIdentity,
        reply_to: MessageId,
        id: BlockId,
    },
}

/// A request in flight: what it was for, to whom, until when.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    what: Sent,
    node: NodeIdentity,
    deadline: Instant,
}

/// The Storage engine (see the module doc).
pub struct StorageEngine {
    key: Keypair,
    me: NodeIdentity,
    store: Arc<dyn BlockStore>,
    directory: DomainDirectory,
    parents: TopicParents,
    /// This node's current advert (search results carry it, so the origin can reach it).
    advert: Option<Arc<parking_lot::RwLock<NodeAdvert>>>,
    settings: StorageSettings,
    stats: Arc<StorageStats>,
    rng: SplitMix64,
    /// Trust set in the identity store (nodes not here have [`DEFAULT_TRUST`]).
    trust: BTreeMap<NodeIdentity, u8>,
    /// Nodes connected now (for walks with no domain).
    connected: BTreeSet<NodeIdentity>,
    cache: BlockCache,
    holders: KnownHolders,
    /// Gets and puts per peer per second.
    rate: RateWindows,
    /// Searches per peer per second.
    search_rate: RateWindows,
    /// Encoded bytes each node has stored here through remote puts (this run).
    put_bytes: BTreeMap<NodeIdentity, u64>,
    /// Requests sent and not yet answered.
    sent: BTreeMap<MessageId, InFlight>,
    /// Requests given up on, for telling late replies from unsolicited ones.
    given_up: BTreeSet<(MessageId, NodeIdentity)>,
    given_up_order: std::collections::VecDeque<(MessageId, NodeIdentity)>,
    /// Lookups under way, by token.
    ops: BTreeMap<u64, GetOp>,
    /// This node's own searches: search id → lookup token.
    searches: BTreeMap<u64, u64>,
    /// Searches relayed for other nodes: (origin, search) → where results go back.
    relays: BTreeMap<(NodeIdentity, u64), Vec<Relay>>,
    relay_count: usize,
    /// The earliest relay deadline (set when the first entry goes in, recomputed on sweeps).
    relay_sweep: Option<Instant>,
    /// Fetches under way, by root.
    fetches: BTreeMap<BlockId, Fetch>,
    /// Fetched blocks waiting for the burst's commit ([`Engine::flush`]).
    batch: Vec<Batched>,
    /// Bytes of fetched blocks committed without fsync since the last sync.
    unsynced_bytes: u64,
    next_token: u64,
    next_gc: Option<Instant>,
    timer_at: Option<Instant>,
}

impl StorageEngine {
    /// An engine for the node with key `key` (its node key: it signs receipts), serving and
    /// filling `store`, walking among the members `directory` lists, with `settings`,
    /// counting into `stats`, drawing its randomness from `seed`.
    pub fn new(
        key: Keypair,
        store: Arc<dyn BlockStore>,
        directory: DomainDirectory,
        settings: StorageSettings,
        stats: Arc<StorageStats>,
        seed: u64,
    ) -> StorageEngine {
        let limits = settings.limits;
        StorageEngine {
            me: key.node_identity(),
            key,
            store,
            directory,
            parents: TopicParents::new(),
            advert: None,
            stats,
            rng: SplitMix64::new(seed),
            trust: BTreeMap::new(),
            connected: BTreeSet::new(),
            cache: BlockCache::new(limits.cache_bytes),
            holders: KnownHolders::new(limits.max_known_holders),
            rate: RateWindows::new(limits.rate_peers),
            search_rate: RateWindows::new(limits.rate_peers),
            put_bytes: BTreeMap::new(),
            sent: BTreeMap::new(),
            given_up: BTreeSet::new(),
            given_up_order: std::collections::VecDeque::new(),
            ops: BTreeMap::new(),
            searches: BTreeMap::new(),
            relays: BTreeMap::new(),
            relay_count: 0,
            relay_sweep: None,
            fetches: BTreeMap::new(),
            batch: Vec::new(),
            unsynced_bytes: 0,
            next_token: 1,
            next_gc: None,
            timer_at: None,
            settings,
        }
    }

    /// Searches up topics' trees through the parents PubSub publishes on `parents`.
    pub fn with_topic_parents(mut self, parents: TopicParents) -> StorageEngine {
        self.parents = parents;
        self
    }

    /// Puts this node's current advert (the node's shared copy, re-signed as it ages) into the
    /// results of searches it answers, so that their origin can reach it directly.
    pub fn with_advert(mut self, advert: Arc<parking_lot::RwLock<NodeAdvert>>) -> StorageEngine {
        self.advert = Some(advert);
        self
    }

    /// This node's advert, if it has one.
    fn own_advert(&self) -> Option<NodeAdvert> {
        self.advert.as_ref().map(|a| a.read().clone())
    }

    /// The identity-store trust of `node` (the default for a node whose record sets none).
    fn trust_of(&self, node: &NodeIdentity) -> u8 {
        self.trust.get(node).copied().unwrap_or(DEFAULT_TRUST)
    }

    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    fn on_message(&mut self, ctx: &mut Context, m: Message) {
        match m.origin() {
            Origin::Local => self.on_local(ctx, m),
            Origin::Remote { via } => {
                let verified = matches!(m.sender(), Sender::Engine { node, .. } if node == via);
                if !verified {
                    return self.hostile(
                        &self.stats.bad_origin,
                        "a message not from its node",
                        via,
                    );
                }
                match StorageMessage::from_bytes(m.body()) {
                    Ok(msg) => self.on_remote(ctx, &m, via, msg),
                    Err(WireError::UnknownVersion(_)) => {
                        self.hostile(&self.stats.unknown_version, "an unknown version", via)
                    }
                    Err(e) => self.hostile(&self.stats.malformed, &format!("a body ({e})"), via),
                }
            }
            Origin::Topic { via, .. } => self.hostile(&self.stats.bad_origin, "a topic event", via),
        }
    }

    fn on_remote(
        &mut self,
        ctx: &mut Context,
        m: &Message,
        via: NodeIdentity,
        msg: StorageMessage,
    ) {
        match msg {
            StorageMessage::Get { id, holders } => self.serve_get(ctx, m, via, id, holders),
            StorageMessage::Put {
                bytes,
                until,
                min_trust,
            } => self.serve_put(
                ctx,
                m,
                via,
                bytes,
                StoragePrefs {
                    expiry: until,
                    min_trust,
                },
            ),
            StorageMessage::Extend { id, until } => self.serve_extend(ctx, m, via, id, until),
            StorageMessage::Search(s) => self.on_search(ctx, via, s),
            StorageMessage::Found(f) => self.on_found(ctx, via, f),
            StorageMessage::GetReply { id, answer } => match self.take_sent(m.reply_to(), via) {
                Some(Sent::OpGet { op }) if self.ops.get(&op).is_some_and(|o| o.id() == id) => {
                    self.op_reply(ctx, op, via, id, answer)
                }
                Some(Sent::FetchGet { root, block }) if block == id => {
                    self.fetch_reply(ctx, root, via, id, answer)
                }
                Some(what) => self.wrong_reply(ctx, what, via, "a get reply for another request"),
                None => self.unexpected_reply(m.reply_to(), "a get reply", via),
            },
            StorageMessage::PutReply { id, result } => match self.take_sent(m.reply_to(), via) {
                Some(Sent::Put {
                    asker,
                    reply_to,
                    id: asked,
                }) if asked == id => {
                    let result = match result {
                        Ok(c) => self.check_receipt(ctx, c, id, via).map(Some),
                        Err((r, text)) => {
                            Err(format!("{} refused: {text} ({})", via.short(), r.label()))
                        }
                    };
                    self.answer(ctx, asker, reply_to, StorageMail::PutDone { id, result });
                }
                Some(what) => self.wrong_reply(ctx, what, via, "a put reply for another request"),
                None => self.unexpected_reply(m.reply_to(), "a put reply", via),
            },
        }
    }

    /// A reply to a request of this node that answers something else (another block, another
    /// kind): hostile; the request is treated as lost, so whatever waits on it moves on.
    fn wrong_reply(&mut self, ctx: &mut Context, what: Sent, via: NodeIdentity, text: &str) {
        self.hostile(&self.stats.unsolicited, text, via);
        let f = InFlight {
            what,
            node: via,
            deadline: ctx.now().instant,
        };
        self.lost(ctx, f, "it answered for another block");
    }

    /// A reply this node waits for no longer: late (its request timed out or was given up,
    /// counted `late_replies`), or never asked for (hostile, `unsolicited`).
    fn unexpected_reply(&mut self, reply_to: Option<MessageId>, what: &str, via: NodeIdentity) {
        if reply_to.is_some_and(|id| self.given_up.contains(&(id, via))) {
            StorageStats::count(&self.stats.late_replies);
        } else {
            self.hostile(&self.stats.unsolicited, what, via);
        }
    }

    /// Stops waiting for the requests `which` picks (their lookup or fetch ended).
    fn forget_sent(&mut self, which: impl Fn(&Sent) -> bool) {
        let gone: Vec<(MessageId, NodeIdentity)> = self
            .sent
            .iter()
            .filter(|(_, f)| which(&f.what))
            .map(|(id, f)| (*id, f.node))
            .collect();
        for (id, node) in gone {
            self.sent.remove(&id);
            self.give_up(id, node);
        }
    }

    /// Remembers that the request `id` to `node` will not be waited for any more.
    fn give_up(&mut self, id: MessageId, node: NodeIdentity) {
        if self.given_up.len() >= MAX_GIVEN_UP {
            if let Some(old) = self.given_up_order.pop_front() {
                self.given_up.remove(&old);
            }
        }
        if self.given_up.insert((id, node)) {
            self.given_up_order.push_back((id, node));
        }
    }

    /// The request `reply_to` answers, if this node sent it to `via` and still waits.
    fn take_sent(&mut self, reply_to: Option<MessageId>, via: NodeIdentity) -> Option<Sent> {
        let id = reply_to?;
        match self.sent.get(&id) {
            Some(f) if f.node == via => self.sent.remove(&id).map(|f| f.what),
            _ => None,
        }
    }

    /// Checks a receipt `via` gave for `id`; records it.
    fn check_receipt(
        &mut self,
        ctx: &Context,
        c: ChunkCommitment,
        id: BlockId,
        via: NodeIdentity,
    ) -> Result<ChunkCommitment, String> {
        if c.block != id || c.node != via {
            self.hostile(
                &self.stats.bad_receipt,
                "a receipt for another block or node",
                via,
            );
            return Err(format!(
                "{} sent a receipt for another block or node",
                via.short()
            ));
        }
        match c.check(ctx.now().wall) {
            Ok(v) => {
                StorageStats::count(&self.stats.receipts);
                self.holders.add(*v.commitment());
                Ok(c)
            }
            Err(e) => {
                self.hostile(&self.stats.bad_receipt, "a receipt", via);
                Err(format!("{}'s receipt is refused: {e}", via.short()))
            }
        }
    }

    fn on_local(&mut self, ctx: &mut Context, m: Message) {
        let asker = m.sender().named();
        let mail = match StorageMail::decode(m.body()) {
            Ok(mail) => mail,
            Err(e) => {
                StorageStats::count(&self.stats.malformed);
                log::warn!(
                    "storage: local mail from {} does not decode: {e}",
                    asker.short()
                );
                return;
            }
        };
        let reply_to = m.id();
        match mail {
            StorageMail::Put { bytes, prefs, node } => {
                self.local_put(ctx, asker, reply_to, bytes, prefs, node)
            }
            StorageMail::Extend { id, until, node } => {
                self.local_extend(ctx, asker, reply_to, id, until, node)
            }
            StorageMail::Get { id, lookup } => {
                self.start_get(ctx, id, lookup, lookup::Waiter::Local { asker, reply_to })
            }
            StorageMail::Fetch {
                root,
                lookup,
                until,
                max_size,
            } => self.start_fetch(ctx, asker, reply_to, root, lookup, until, max_size),
            // Answers are this engine's own; mail that claims to be one is not acted on.
            StorageMail::PutDone { .. }
            | StorageMail::GetDone { .. }
            | StorageMail::FetchProgress { .. }
            | StorageMail::FetchDone { .. } => StorageStats::count(&self.stats.malformed),
        }
    }

    fn local_put(
        &mut self,
        ctx: &mut Context,
        asker: EngineIdentity,
        reply_to: MessageId,
        bytes: Vec<u8>,
        prefs: StoragePrefs,
        node: Option<NodeIdentity>,
    ) {
        let id = BlockId::of(&bytes);
        let block = match VerifiedBlock::check(id, &bytes) {
            Ok(b) => b,
            Err(e) => {
                let result = Err(format!("not a valid block: {e}"));
                return self.answer(ctx, asker, reply_to, StorageMail::PutDone { id, result });
            }
        };
        match node {
            Some(n) if n != self.me => {
                let msg = StorageMessage::Put {
                    bytes,
                    until: prefs.expiry,
                    min_trust: prefs.min_trust,
                };
                self.request(
                    ctx,
                    n,
                    &msg,
                    Sent::Put {
                        asker,
                        reply_to,
                        id,
                    },
                );
            }
            _ => {
                let meta = serve::meta_of(prefs.expiry, prefs.min_trust);
                let result = match self.store.put(&block, meta) {
                    Ok(_) => {
                        StorageStats::count(&self.stats.local_puts);
                        Ok(None)
                    }
                    Err(e) => Err(e.to_string()),
                };
                self.answer(ctx, asker, reply_to, StorageMail::PutDone { id, result });
            }
        }
    }

    fn local_extend(
        &mut self,
        ctx: &mut Context,
        asker: EngineIdentity,
        reply_to: MessageId,
        id: BlockId,
        until: crate::time::Timestamp,
        node: Option<NodeIdentity>,
    ) {
        match node {
            Some(n) if n != self.me => {
                let msg = StorageMessage::Extend { id, until };
                self.request(
                    ctx,
                    n,
                    &msg,
                    Sent::Put {
                        asker,
                        reply_to,
                        id,
                    },
                );
            }
            _ => {
                let result = match self.store.extend(&id, until) {
                    Ok(Some(_)) => Ok(None),
                    Ok(None) => Err(format!("block {id} is not held here")),
                    Err(e) => Err(e.to_string()),
                };
                self.answer(ctx, asker, reply_to, StorageMail::PutDone { id, result });
            }
        }
    }

    /// Sends a request to `node`, remembering what it was for until its answer.
    fn request(&mut self, ctx: &mut Context, node: NodeIdentity, msg: &StorageMessage, what: Sent) {
        let timeout = self.settings.get_timeout;
        let id = self.send_remote(ctx, node, msg, true, None);
        self.sent.insert(
            id,
            InFlight {
                what,
                node,
                deadline: ctx.now().instant + timeout,
            },
        );
    }

    /// Sends a storage message to `peer`.
    fn send_remote(
        &mut self,
        ctx: &mut Context,
        peer: NodeIdentity,
        msg: &StorageMessage,
        notify: bool,
        reply_to: Option<MessageId>,
    ) -> MessageId {
        StorageStats::count(&self.stats.sent);
        let opts = SendOptions {
            notify_undeliverable: notify,
            reply_to,
            expiry: self.settings.search_timeout,
            ..SendOptions::default()
        };
        ctx.send_with(
            Destination::Node(peer),
            Protocol::STORAGE,
            msg.to_bytes(),
            opts,
        )
    }

    /// Answers a local engine (a reply to its request).
    fn answer(
        &mut self,
        ctx: &mut Context,
        asker: EngineIdentity,
        reply_to: MessageId,
        mail: StorageMail,
    ) {
        let opts = SendOptions {
            reply_to: Some(reply_to),
            notify_undeliverable: true,
            ..SendOptions::local_only()
        };
        ctx.send_with(
            Destination::Engine(asker),
            Protocol::STORAGE,
            mail.encode(),
            opts,
        );
    }

    fn on_undeliverable(&mut self, ctx: &mut Context, u: Undeliverable) {
        if let Some(f) = self.sent.remove(&u.id) {
            return self.lost(ctx, f, &format!("undeliverable ({})", u.reason.label()));
        }
        if let Destination::Engine(gone) = u.dst {
            StorageStats::count(&self.stats.asker_gone);
            // A fetch whose asker is gone would only fill the store for nobody: stop it.
            let orphans: Vec<BlockId> = self
                .fetches
                .iter()
                .filter(|(_, f)| f.asker() == gone)
                .map(|(r, _)| *r)
                .collect();
            for root in orphans {
                self.fetch_end(ctx, root, Err("the asker is gone".into()));
            }
        }
    }

    /// A request that will not be answered: its answer's waiter moves on.
    fn lost(&mut self, ctx: &mut Context, f: InFlight, why: &str) {
        match f.what {
            Sent::OpGet { op } => {
                StorageStats::count(&self.stats.get_timeouts);
                self.op_next(ctx, op);
            }
            Sent::FetchGet { root, block } => self.fetch_lost(ctx, root, block, f.node),
            Sent::Put {
                asker,
                reply_to,
                id,
            } => {
                let result = Err(format!("{} did not answer: {why}", f.node.short()));
                self.answer(ctx, asker, reply_to, StorageMail::PutDone { id, result });
            }
        }
    }

    fn on_identity(&mut self, event: IdentityEvent) {
        match event {
            IdentityEvent::Standing(list) => {
                for s in list {
                    self.trust.insert(s.id, s.trust.unwrap_or(DEFAULT_TRUST));
                }
            }
            IdentityEvent::Updated {
                record: IdentityRecord::Node(r),
                ..
            } => {
                if r.trust.is_some() {
                    self.trust.insert(r.id, r.trust_or_default());
                } else {
                    self.trust.remove(&r.id);
                }
            }
            IdentityEvent::Removed {
                id: AnyIdentity::Node(n),
            } => {
                self.trust.remove(&n);
            }
            _ => {}
        }
    }

    fn on_tick(&mut self, ctx: &mut Context) {
        let now = ctx.now().instant;
        let expired: Vec<MessageId> = self
            .sent
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(f) = self.sent.remove(&id) {
                self.give_up(id, f.node);
                self.lost(ctx, f, "timed out");
            }
        }
        self.expire_lookups(ctx);
        self.expire_relays(now);
        self.fetch_tick(ctx);
        if self.next_gc.is_some_and(|t| t <= now) {
            let n = self
                .store
                .collect_garbage(ctx.now().wall, self.settings.limits.gc_batch);
            self.stats
                .collected
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            self.next_gc = Some(now + self.settings.gc_interval);
        }
    }

    /// Sets the one timer for the earliest deadline held.
    fn after(&mut self, ctx: &mut Context) {
        let mut at = self.next_gc;
        let mut earliest = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        for f in self.sent.values() {
            earliest(f.deadline);
        }
        for op in self.ops.values() {
            if let Some(t) = op.search_deadline {
                earliest(t);
            }
        }
        if let Some(t) = self.relay_sweep {
            earliest(t);
        }
        for f in self.fetches.values() {
            earliest(f.next_progress);
        }
        if at != self.timer_at {
            if let Some(t) = at {
                ctx.set_timer(TICK, t);
            }
            self.timer_at = at;
        }
    }

    /// Counts hostile input from `peer` and logs it at powers of two.
    fn hostile(&self, counter: &std::sync::atomic::AtomicU64, what: &str, peer: NodeIdentity) {
        if let Some(n) = StorageStats::count_hostile(counter) {
            log::warn!(
                "storage: refused {what} from {} (seen {n} times)",
                peer.short()
            );
        }
    }
}

impl Engine for StorageEngine {
    fn start(&mut self, ctx: &mut Context) {
        ctx.identity_request(IdentityRequest::Subscribe);
        ctx.identity_request(IdentityRequest::Standing);
        ctx.transport_request(TransportRequest::Subscribe);
        ctx.transport_request(TransportRequest::ConnectedNodes);
        self.next_gc = Some(ctx.now().instant + self.settings.gc_interval);
        self.after(ctx);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Message(m) => self.on_message(ctx, m),
            Input::Undeliverable(u) => self.on_undeliverable(ctx, u),
            Input::Identity(e) => self.on_identity(*e),
            Input::Transport(TransportEvent::NodeConnected { node, .. }) => {
                self.connected.insert(node);
            }
            Input::Transport(TransportEvent::NodeDisconnected { node, .. }) => {
                self.connected.remove(&node);
            }
            Input::Transport(TransportEvent::ConnectedNodes(list)) => {
                self.connected = list.into_iter().map(|(n, _)| n).collect();
            }
            Input::Timer(TICK) => {
                self.timer_at = None;
                self.on_tick(ctx);
            }
            _ => {}
        }
        self.after(ctx);
    }

    fn flush(&mut self, ctx: &mut Context) {
        self.flush_fetched(ctx);
        self.after(ctx);
    }

    fn stop(&mut self, _ctx: &mut Context) {
        self.sync_store();
    }
}

/// The wire module's limits, re-exported for the engine's callers.
pub use wire::{MAX_HOLDERS, MAX_PATH};
