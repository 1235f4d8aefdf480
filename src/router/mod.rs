//! The Router: routes every message of its node — between local engines, to the Transport for
//! other nodes, and from other nodes after verification — and runs the local topic service
//! (spec notes §5.1).
//!
//! [`Router`] is a sans-IO state machine; `shell.rs` runs it on its own thread.
//!
//! Drain contract: after any `handle_*` call (and after [`Router::flush`], which the shell calls
//! whenever its mailbox is empty or the ingress batch is full), drain [`Router::poll_output`]
//! until it returns `None`. Call [`Router::handle_timeout`] when [`Router::poll_timeout`] passes.
//!
//! Routing by destination:
//! * `Engine(e)`: a local engine's mailbox; otherwise the node `e` is known to run on (learned
//!   from verified messages, or looked up in the Network Identity Store), through the Transport.
//! * `Node(n)`: for this node, the local engine serving the message's protocol; otherwise the
//!   Transport.
//! * `Topic(t)`: every local subscriber of `t` (not the sender itself).
//! * `Domain(d)`: not routed by this version (`unsupported`).
//!
//! A message with routing scope `Local` never leaves the node. Messages that must leave it are
//! signed by their sending engine's thread before they get here; the Router never signs.

pub mod ingress;
pub mod topics;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::mail::{Bounce, Outbound, RouteHeader};

use crate::identity::{EngineIdentity, NodeIdentity, TopicIdentity};
use crate::mail::identity::{AnyIdentity, IdentityEvent, IdentityRecord, IdentityRequest};
use crate::mail::pubsub::{PubSubNotice, PubSubRequest};
use crate::mail::topic::{TopicEvent, TopicRequest};
use crate::mail::{
    DropReason, Input, Message, Outgoing, Receipt, RemoteSend, System, SystemMail, Undeliverable,
};
use crate::runtime::stats::NodeStats;
use crate::time::Now;
use crate::wire::message::Unverified;
use crate::wire::{Destination, EngineMessage, Protocol, RoutingScope};
use ingress::{Admitted, Ingress, IngressLimits, PendingBatch, VerifiedBatch};
use topics::{TopicAction, TopicTable};

/// Index of a local engine's mailbox in the Router shell.
pub type Slot = usize;

/// What the Router asks its shell to do.
// Outputs are drained at once; boxing the large variant would allocate per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RouterOutput {
    /// Put `input` in the mailbox of the engine at `slot`; if that fails, call
    /// [`Router::bounce`] with `bounce` and the reason.
    Deliver {
        /// The engine.
        slot: Slot,
        /// What to deliver.
        input: Input,
        /// Who to tell on failure.
        bounce: Option<Bounce>,
    },
    /// Put a remote message in the mailbox of the engine at `slot`, with its receipt: the engine's
    /// shell hands the receipt back (through [`Router::handled`]) once the engine has handled the
    /// message. If the delivery fails, count the drop and hand the receipt to
    /// [`Router::handled`] at once.
    DeliverRemote {
        /// The engine.
        slot: Slot,
        /// The message.
        message: Message,
        /// For the Transport, once the engine has handled the message.
        receipt: Receipt,
    },
    /// Hand a signed message to the Transport.
    Transport(RemoteSend),
    /// Send a request to the Network Identity Store.
    Identity(IdentityRequest),
}

/// Limits of the Router.
#[derive(Clone, Copy, Debug)]
pub struct RouterLimits {
    /// The ingress path.
    pub ingress: IngressLimits,
    /// Most remote engine → node bindings remembered (default 65,536; ~100 bytes each).
    pub max_remote_engines: usize,
    /// Most messages waiting for one destination's lookup (default 256).
    pub max_pending_per_destination: usize,
    /// Most destinations waiting for a lookup at once (default 1,024).
    pub max_pending_destinations: usize,
    /// How long a message waits for a lookup answer (default 5 s).
    pub lookup_timeout: Duration,
    /// Threads that check signatures besides the Router's own (default: the machine's cores, at
    /// most 4; 0 = the Router thread verifies everything). Batches of 8 or more go to the
    /// `nm-verify-<i>` threads while the Router keeps decoding, deduplicating and routing;
    /// smaller ones (light load) are verified on the Router thread, which costs no hand-over
    /// latency. Arrival order is kept either way.
    pub verifier_threads: usize,
}

impl Default for RouterLimits {
    fn default() -> Self {
        RouterLimits {
            ingress: IngressLimits::default(),
            max_remote_engines: 65_536,
            max_pending_per_destination: 256,
            max_pending_destinations: 1024,
            lookup_timeout: Duration::from_secs(5),
            verifier_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4),
        }
    }
}

struct LocalEngine {
    slot: Slot,
    name: String,
}

struct PendingLookup {
    since: Instant,
    messages: Vec<(RouteHeader, Vec<u8>)>,
}

/// Most stopped engines remembered for `engine_gone` reports.
const MAX_GONE: usize = 4096;

/// How often idle replay state is swept and drop summaries are logged.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);

/// The Router state machine.
pub struct Router {
    node: NodeIdentity,
    stats: Arc<NodeStats>,
    limits: RouterLimits,
    locals: HashMap<EngineIdentity, LocalEngine>,
    /// Local engines that stopped, so messages to them report `engine_gone` (bounded).
    gone: HashSet<EngineIdentity>,
    slots: Vec<Option<EngineIdentity>>,
    services: HashMap<Protocol, Slot>,
    remote_engines: HashMap<EngineIdentity, NodeIdentity>,
    remote_order: VecDeque<EngineIdentity>,
    topics: TopicTable,
    ingress: Ingress,
    admitted: Vec<Admitted>,
    receipts: Vec<Receipt>,
    /// Whether the node is shutting down.
    stopping: bool,
    pending: HashMap<EngineIdentity, PendingLookup>,
    /// Local engines waiting for PubSub to complete a network subscription, per topic.
    pending_net_subs: HashMap<TopicIdentity, Vec<EngineIdentity>>,
    has_transport: bool,
    outputs: VecDeque<RouterOutput>,
    next_housekeeping: Option<Instant>,
    drops_at_last_summary: u64,
}

impl Router {
    /// A Router for `node`. `has_transport` says whether messages for other nodes can be sent.
    pub fn new(
        node: NodeIdentity,
        stats: Arc<NodeStats>,
        limits: RouterLimits,
        has_transport: bool,
    ) -> Router {
        Router {
            node,
            stats,
            ingress: Ingress::new(limits.ingress),
            limits,
            locals: HashMap::new(),
            gone: HashSet::new(),
            slots: Vec::new(),
            services: HashMap::new(),
            remote_engines: HashMap::new(),
            remote_order: VecDeque::new(),
            topics: TopicTable::default(),
            admitted: Vec::new(),
            receipts: Vec::new(),
            stopping: false,
            pending: HashMap::new(),
            pending_net_subs: HashMap::new(),
            has_transport,
            outputs: VecDeque::new(),
            next_housekeeping: None,
            drops_at_last_summary: 0,
        }
    }

    /// This node.
    pub fn node(&self) -> NodeIdentity {
        self.node
    }

    /// The topic table (for status and tests).
    pub fn topics(&self) -> &TopicTable {
        &self.topics
    }

    /// Registers a local engine; returns its slot. `serves` lists the protocols it answers for
    /// messages addressed to this node.
    pub fn add_local(&mut self, identity: EngineIdentity, name: &str, serves: &[Protocol]) -> Slot {
        let slot = self.slots.len();
        self.slots.push(Some(identity));
        self.gone.remove(&identity);
        self.locals.insert(
            identity,
            LocalEngine {
                slot,
                name: name.to_string(),
            },
        );
        for &p in serves {
            self.services.insert(p, slot);
        }
        slot
    }

    /// Forgets a local engine (it stopped).
    pub fn remove_local(&mut self, slot: Slot) {
        let Some(Some(identity)) = self.slots.get(slot).copied() else {
            return;
        };
        self.slots[slot] = None;
        if self.gone.len() >= MAX_GONE {
            self.gone.clear();
        }
        self.gone.insert(identity);
        if let Some(e) = self.locals.remove(&identity) {
            log::info!("router: engine {} ({}) removed", e.name, identity.short());
        }
        self.services.retain(|_, s| *s != slot);
        self.topics.forget_engine(identity);
    }

    /// The slot of a local engine.
    pub fn slot_of(&self, identity: &EngineIdentity) -> Option<Slot> {
        self.locals.get(identity).map(|e| e.slot)
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<RouterOutput> {
        self.outputs.pop_front()
    }

    /// When [`Router::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_housekeeping
    }

    /// Periodic upkeep: lookups that waited too long, idle replay state, drop summaries.
    pub fn handle_timeout(&mut self, now: Now) {
        let due = self.next_housekeeping.is_none_or(|t| now.instant >= t);
        if !due {
            return;
        }
        self.next_housekeeping = Some(now.instant + HOUSEKEEPING_EVERY);
        self.ingress.sweep(now.instant);
        let timeout = self.limits.lookup_timeout;
        let stale: Vec<EngineIdentity> = self
            .pending
            .iter()
            .filter(|(_, p)| now.instant.saturating_duration_since(p.since) > timeout)
            .map(|(k, _)| *k)
            .collect();
        for key in stale {
            if let Some(p) = self.pending.remove(&key) {
                for (header, _) in p.messages {
                    self.drop_header(&header, DropReason::NoRoute);
                }
            }
        }
        if let Some(oldest) = self.pending.values().map(|p| p.since).min() {
            let due = oldest + timeout;
            self.next_housekeeping = self.next_housekeeping.map(|t| t.min(due));
        }
        let total = self.stats.total_drops();
        if total > self.drops_at_last_summary {
            log::warn!(
                "router: {} messages dropped in the last {}s; totals: {}",
                total - self.drops_at_last_summary,
                HOUSEKEEPING_EVERY.as_secs(),
                self.stats
                    .snapshot()
                    .drops
                    .iter()
                    .map(|(r, n)| format!("{}={n}", r.label()))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            self.drops_at_last_summary = total;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Local traffic.

    /// A message from a local engine.
    pub fn handle_local(&mut self, now: Now, outbound: Outbound) {
        match outbound {
            Outbound::Local(out) => self.route_local(now, out),
            Outbound::Signed { header, wire } => self.route_signed(now, header, wire),
        }
    }

    fn route_local(&mut self, now: Now, out: Outgoing) {
        let Outgoing {
            msg,
            notify_undeliverable: notify,
        } = out;
        let msg: Box<EngineMessage> = msg;
        let bounce = notify.then_some(Bounce {
            src: msg.src,
            id: msg.id,
            dst: msg.dst,
        });
        if msg.is_expired(now.wall) {
            return self.drop_message(bounce, DropReason::Expired, &msg);
        }
        match msg.dst {
            Destination::Engine(e) => match self.locals.get(&e) {
                Some(local) => self.deliver(local.slot, Message::local_boxed(msg), bounce),
                // Unsigned, so its sender's shell kept it on this node: either its scope is
                // `Local`, or the engine was local when it was sent and has stopped since.
                None if msg.scope() == RoutingScope::Local => {
                    self.drop_message(bounce, DropReason::ScopeViolation, &msg)
                }
                None => self.drop_message(bounce, DropReason::EngineGone, &msg),
            },
            Destination::Node(n) if n == self.node => match self.services.get(&msg.protocol) {
                Some(&slot) => self.deliver(slot, Message::local_boxed(msg), bounce),
                None => self.drop_message(bounce, DropReason::NoRoute, &msg),
            },
            Destination::Node(_) if msg.scope() == RoutingScope::Local => {
                self.drop_message(bounce, DropReason::ScopeViolation, &msg)
            }
            Destination::Node(_) => self.drop_message(bounce, DropReason::Unsigned, &msg),
            Destination::Topic(t) => {
                let Some(topic) = self.topics.get(&t) else {
                    return self.drop_message(bounce, DropReason::UnknownTopic, &msg);
                };
                let targets: Vec<Slot> = topic
                    .subscribers
                    .iter()
                    .filter(|s| **s != msg.src)
                    .filter_map(|s| self.locals.get(s).map(|l| l.slot))
                    .collect();
                self.fan_out_message(targets, Message::local_boxed(msg), bounce);
            }
            Destination::Domain(_) => self.drop_message(bounce, DropReason::Unsupported, &msg),
        }
    }

    fn route_signed(&mut self, now: Now, header: RouteHeader, wire: Vec<u8>) {
        if header.expiry.is_some_and(|e| e <= now.wall) {
            return self.drop_header(&header, DropReason::Expired);
        }
        let to_node = match header.dst {
            Destination::Engine(e) if self.locals.contains_key(&e) => None,
            Destination::Engine(e) if self.gone.contains(&e) => {
                return self.drop_header(&header, DropReason::EngineGone)
            }
            Destination::Engine(e) => match self.remote_engines.get(&e) {
                Some(&node) => Some(node),
                None => return self.park_for_lookup(now, e, header, wire),
            },
            Destination::Node(n) if n == self.node => None,
            Destination::Node(n) => Some(n),
            Destination::Topic(_) => None,
            Destination::Domain(_) => return self.drop_header(&header, DropReason::Unsupported),
        };
        match to_node {
            Some(node) => self.send_remote(node, header, wire),
            None => {
                // Signed but for this node after all: decode our own engine's message.
                match Unverified::decode(wire) {
                    Ok(u) => {
                        let out = Outgoing {
                            msg: Box::new(u.message().clone()),
                            notify_undeliverable: header.notify,
                        };
                        self.route_local(now, out);
                    }
                    Err(e) => {
                        debug_assert!(false, "a local engine produced undecodable wire: {e}");
                        self.drop_header(&header, DropReason::Malformed);
                    }
                }
            }
        }
    }

    fn send_remote(&mut self, node: NodeIdentity, header: RouteHeader, wire: Vec<u8>) {
        if header.scope() == RoutingScope::Local {
            return self.drop_header(&header, DropReason::ScopeViolation);
        }
        if !self.has_transport {
            return self.drop_header(&header, DropReason::NoTransport);
        }
        self.stats.sent_remote.fetch_add(1, AtomicOrdering::Relaxed);
        self.outputs
            .push_back(RouterOutput::Transport(RemoteSend { node, header, wire }));
    }

    fn park_for_lookup(
        &mut self,
        now: Now,
        engine: EngineIdentity,
        header: RouteHeader,
        wire: Vec<u8>,
    ) {
        if let Some(p) = self.pending.get_mut(&engine) {
            if p.messages.len() >= self.limits.max_pending_per_destination {
                return self.drop_header(&header, DropReason::PendingFull);
            }
            p.messages.push((header, wire));
            return;
        }
        if self.pending.len() >= self.limits.max_pending_destinations {
            return self.drop_header(&header, DropReason::PendingFull);
        }
        self.pending.insert(
            engine,
            PendingLookup {
                since: now.instant,
                messages: vec![(header, wire)],
            },
        );
        self.outputs
            .push_back(RouterOutput::Identity(IdentityRequest::Lookup(
                AnyIdentity::Engine(engine),
            )));
        let due = now.instant + self.limits.lookup_timeout;
        self.next_housekeeping = Some(self.next_housekeeping.map_or(due, |t| t.min(due)));
    }

    // -----------------------------------------------------------------------------------------
    // Remote traffic.

    /// A wire message from `peer`, as the Transport received it. Cheap checks run now; the
    /// signature is checked when the shell takes the ingress batch (when it is full, or when the
    /// mailbox is empty). `receipt`, if any, is handed back through [`Router::take_receipts`]
    /// once the message has been delivered or dropped.
    pub fn handle_remote(
        &mut self,
        now: Now,
        peer: NodeIdentity,
        wire: Vec<u8>,
        receipt: Option<Receipt>,
    ) {
        self.stats
            .received_remote
            .fetch_add(1, AtomicOrdering::Relaxed);
        if let Err(reason) = self.ingress.accept(now, peer, wire, receipt) {
            self.receipts.extend(receipt);
            self.stats.dropped(reason);
            log::debug!(
                "router: dropped message from {}: {}",
                peer.short(),
                reason.label()
            );
        }
    }

    /// Receipts of remote messages handled since the last call (admitted and delivered, or
    /// dropped), for the Transport to acknowledge.
    pub fn take_receipts(&mut self) -> Vec<Receipt> {
        std::mem::take(&mut self.receipts)
    }

    /// Receipts of remote messages that local engines have handled (or that could not be
    /// delivered to them), for the Transport to acknowledge.
    pub fn handled(&mut self, receipts: impl IntoIterator<Item = Receipt>) {
        self.receipts.extend(receipts);
    }

    /// Receipts of remote messages dropped on their way to a local engine (gone, going, or its
    /// mailbox full): handed back like [`Router::handled`] ones, except once the node is
    /// stopping ([`Router::set_stopping`]), when they are withheld so that the senders send
    /// those messages again to the restarted node.
    pub fn not_handled(&mut self, receipts: impl IntoIterator<Item = Receipt>) {
        if !self.stopping {
            self.receipts.extend(receipts);
        }
    }

    /// The node is shutting down (see [`Router::not_handled`]).
    pub fn set_stopping(&mut self) {
        self.stopping = true;
    }

    /// Receipts that could not be handed over; they go first next time.
    pub fn return_receipts(&mut self, mut back: Vec<Receipt>) {
        back.append(&mut self.receipts);
        self.receipts = back;
    }

    /// Verifier threads configured.
    pub fn verifier_threads(&self) -> usize {
        self.limits.verifier_threads
    }

    /// Checks a batch's signatures on this thread.
    pub fn verify_here(&mut self, batch: PendingBatch) -> VerifiedBatch {
        self.ingress.verify_here(batch)
    }

    /// Whether the ingress batch is full (the shell should verify it now).
    pub fn ingress_batch_full(&self) -> bool {
        self.ingress.batch_full()
    }

    /// Takes the pending ingress batch, to verify on another thread.
    pub fn take_ingress_batch(&mut self) -> Option<PendingBatch> {
        self.ingress.take_batch()
    }

    /// Commits a batch verified elsewhere and routes what passed. Batches must be completed in
    /// the order they were taken.
    pub fn complete_ingress_batch(&mut self, now: Now, batch: VerifiedBatch) {
        let stats = Arc::clone(&self.stats);
        let mut admitted = std::mem::take(&mut self.admitted);
        self.ingress.complete(
            now,
            &stats,
            batch,
            &mut admitted,
            &mut self.receipts,
            |reason, m| {
                stats.dropped(reason);
                log::debug!(
                    "router: dropped message {} from {}: {}",
                    m.id.0,
                    m.src.short(),
                    reason.label()
                );
            },
        );
        for (msg, peer, receipt) in admitted.drain(..) {
            self.route_admitted(now, msg, peer, receipt);
        }
        self.admitted = admitted;
    }

    /// Verifies what ingress has queued on this thread and routes what passes.
    pub fn flush(&mut self, now: Now) {
        if let Some(batch) = self.ingress.take_batch() {
            let verified = self.ingress.verify_here(batch);
            self.complete_ingress_batch(now, verified);
        }
    }

    /// Routes a remote message that passed ingress. A message for one local engine carries its
    /// receipt to that engine (acknowledged once handled); otherwise the receipt is handed back
    /// now, the message having been dropped or delivered to every subscriber's mailbox.
    fn route_admitted(
        &mut self,
        now: Now,
        msg: crate::wire::Verified<EngineMessage>,
        peer: NodeIdentity,
        receipt: Option<Receipt>,
    ) {
        self.learn_remote_engine(msg.src, peer);
        if self.pending.contains_key(&msg.src) {
            self.release_pending(now, msg.src, peer);
        }
        let drop = |router: &mut Router, reason: DropReason| {
            router.not_handled(receipt);
            router.stats.dropped(reason);
            log::debug!(
                "router: dropped remote message {} from {}: {}",
                msg.id.0,
                msg.src.short(),
                reason.label()
            );
        };
        if msg.scope() == RoutingScope::Local {
            return drop(self, DropReason::ScopeViolation);
        }
        match msg.dst {
            Destination::Engine(e) => match self.locals.get(&e) {
                Some(l) => {
                    let slot = l.slot;
                    self.deliver_remote(slot, Message::remote(msg, peer), receipt)
                }
                None => drop(self, DropReason::NotForThisNode),
            },
            Destination::Node(n) if n == self.node => match self.services.get(&msg.protocol) {
                Some(&slot) => self.deliver_remote(slot, Message::remote(msg, peer), receipt),
                None => drop(self, DropReason::NoRoute),
            },
            Destination::Node(_) => drop(self, DropReason::NotForThisNode),
            Destination::Topic(t) => match self.topics.get(&t) {
                None => drop(self, DropReason::UnknownTopic),
                Some(topic) if topic.scope == RoutingScope::Local => {
                    drop(self, DropReason::ScopeViolation)
                }
                Some(topic) => {
                    let targets: Vec<Slot> = topic
                        .subscribers
                        .iter()
                        .filter_map(|s| self.locals.get(s).map(|l| l.slot))
                        .collect();
                    let message = Message::remote(msg, peer);
                    self.fan_out_message(targets, message, None);
                    self.receipts.extend(receipt);
                }
            },
            Destination::Domain(_) => drop(self, DropReason::Unsupported),
        }
    }

    fn learn_remote_engine(&mut self, engine: EngineIdentity, node: NodeIdentity) {
        if let Some(known) = self.remote_engines.get_mut(&engine) {
            *known = node;
            return;
        }
        while self.remote_engines.len() >= self.limits.max_remote_engines {
            match self.remote_order.pop_front() {
                Some(old) => {
                    self.remote_engines.remove(&old);
                }
                None => break,
            }
        }
        self.remote_engines.insert(engine, node);
        self.remote_order.push_back(engine);
    }

    /// The node a remote engine is known to run on.
    pub fn remote_engine_node(&self, engine: &EngineIdentity) -> Option<NodeIdentity> {
        self.remote_engines.get(engine).copied()
    }

    // -----------------------------------------------------------------------------------------
    // Requests and notifications.

    /// The node's PubSub engine, if it runs one.
    fn pubsub(&self) -> Option<(Slot, EngineIdentity)> {
        let slot = *self.services.get(&Protocol::PUBSUB)?;
        Some((slot, self.slots.get(slot).copied().flatten()?))
    }

    fn ask_pubsub(&mut self, req: PubSubRequest) {
        if let Some((slot, _)) = self.pubsub() {
            self.outputs.push_back(RouterOutput::Deliver {
                slot,
                input: Input::System(System(SystemMail::PubSubRequest(Box::new(req)))),
                bounce: None,
            });
        }
    }

    fn answer(&mut self, slot: Slot, event: TopicEvent) {
        self.outputs.push_back(RouterOutput::Deliver {
            slot,
            input: Input::Topic(event),
            bounce: None,
        });
    }

    /// A topic request from the local engine `from`.
    pub fn handle_topic(&mut self, from: EngineIdentity, req: TopicRequest) {
        let Some(slot) = self.slot_of(&from) else {
            return;
        };
        let pubsub = self.pubsub();
        let action = self.topics.handle(from, &req, pubsub.is_some());
        let topic = req.topic();
        match action {
            TopicAction::Answer(r) => self.answer(slot, TopicEvent::answer(&req, r)),
            TopicAction::NetworkSubscribe => {
                let waiters = self.pending_net_subs.entry(topic).or_default();
                if !waiters.contains(&from) {
                    waiters.push(from);
                }
                if waiters.len() == 1 {
                    self.ask_pubsub(PubSubRequest::Subscribe { topic });
                }
            }
            TopicAction::AnswerAndNetworkUnsubscribe => {
                self.answer(slot, TopicEvent::answer(&req, Ok(())));
                self.ask_pubsub(PubSubRequest::Unsubscribe { topic });
            }
            TopicAction::AnswerAndStartAdvert => {
                if let (
                    Some((_, ps)),
                    TopicRequest::Create {
                        advert: Some(advert),
                        ..
                    },
                ) = (pubsub, &req)
                {
                    // PubSub hears local publications as a subscriber of the topic.
                    self.topics.ensure_subscribed(topic, ps);
                    let advert = advert.clone();
                    self.ask_pubsub(PubSubRequest::StartAdvert { advert });
                }
                self.answer(slot, TopicEvent::answer(&req, Ok(())));
            }
            TopicAction::AnswerAndStopAdvert => {
                self.answer(slot, TopicEvent::answer(&req, Ok(())));
                self.ask_pubsub(PubSubRequest::StopAdvert { topic });
            }
        }
    }

    /// System mail from the built-in engine `from`.
    pub fn handle_system(&mut self, from: EngineIdentity, mail: System) {
        match mail.0 {
            SystemMail::PubSubNotice(notice) => self.handle_pubsub(from, *notice),
            SystemMail::PubSubRequest(_) => {
                log::warn!(
                    "router: a pubsub request from engine {} ignored: only the Router sends those",
                    from.short()
                );
            }
        }
    }

    /// A notice from the PubSub engine.
    fn handle_pubsub(&mut self, from: EngineIdentity, notice: PubSubNotice) {
        if self.pubsub().map(|(_, id)| id) != Some(from) {
            log::warn!(
                "router: pubsub notice from {} ignored: not the PubSub engine",
                from.short()
            );
            return;
        }
        match notice {
            PubSubNotice::Subscribed { topic, result } => {
                for waiter in self.pending_net_subs.remove(&topic).unwrap_or_default() {
                    if result.is_ok() {
                        self.topics.network_subscribed(topic, waiter);
                    }
                    if let Some(slot) = self.slot_of(&waiter) {
                        self.answer(slot, TopicEvent::Subscribed { topic, result });
                    }
                }
            }
            PubSubNotice::Unsubscribed { .. } => {}
            PubSubNotice::AdvertReceived { advert } => {
                let waiters = self
                    .pending_net_subs
                    .get(&advert.topic)
                    .cloned()
                    .unwrap_or_default();
                for w in waiters {
                    if let Some(slot) = self.slot_of(&w) {
                        self.answer(
                            slot,
                            TopicEvent::AdvertReceived {
                                advert: Box::new(advert.clone()),
                            },
                        );
                    }
                }
            }
            PubSubNotice::Deliver {
                publisher,
                via,
                message,
            } => {
                let Destination::Topic(t) = message.dst else {
                    return self.stats.dropped(DropReason::Malformed);
                };
                let Some(topic) = self.topics.get(&t) else {
                    return self.stats.dropped(DropReason::UnknownTopic);
                };
                let targets: Vec<Slot> = topic
                    .subscribers
                    .iter()
                    .filter(|s| **s != from)
                    .filter_map(|s| self.locals.get(s).map(|l| l.slot))
                    .collect();
                self.fan_out_message(targets, Message::from_topic(message, publisher, via), None);
            }
            PubSubNotice::Progress {
                topic,
                children,
                published,
            } => {
                let creator = self.topics.get(&topic).and_then(|t| t.creator);
                if let Some(slot) = creator.and_then(|c| self.slot_of(&c)) {
                    self.answer(
                        slot,
                        TopicEvent::Progress {
                            topic,
                            peers: children,
                            published,
                        },
                    );
                }
            }
        }
    }

    /// An answer or notification from the Network Identity Store.
    pub fn handle_identity(&mut self, now: Now, event: IdentityEvent) {
        match event {
            IdentityEvent::Found {
                id: AnyIdentity::Engine(engine),
                record,
            } => {
                let node = match record {
                    Some(IdentityRecord::Engine(r)) => Some(r.node),
                    _ => None,
                };
                // Unknown: the messages stay parked until the binding is learned (from a verified
                // message or a store update) or the lookup times out.
                if let Some(node) = node {
                    self.learn_remote_engine(engine, node);
                    self.release_pending(now, engine, node);
                }
            }
            IdentityEvent::Updated {
                id: AnyIdentity::Engine(engine),
                record: IdentityRecord::Engine(r),
            } => {
                self.learn_remote_engine(engine, r.node);
                self.release_pending(now, engine, r.node);
            }
            _ => {}
        }
    }

    fn release_pending(&mut self, now: Now, engine: EngineIdentity, node: NodeIdentity) {
        let Some(p) = self.pending.remove(&engine) else {
            return;
        };
        for (header, wire) in p.messages {
            if header.expiry.is_some_and(|e| e <= now.wall) {
                self.drop_header(&header, DropReason::Expired);
            } else {
                self.send_remote(node, header, wire);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Delivery and drops.

    fn deliver(&mut self, slot: Slot, message: Message, bounce: Option<Bounce>) {
        self.outputs.push_back(RouterOutput::Deliver {
            slot,
            input: Input::Message(message),
            bounce,
        });
    }

    fn deliver_remote(&mut self, slot: Slot, message: Message, receipt: Option<Receipt>) {
        match receipt {
            Some(receipt) => self.outputs.push_back(RouterOutput::DeliverRemote {
                slot,
                message,
                receipt,
            }),
            None => self.deliver(slot, message, None),
        }
    }

    fn fan_out_message(&mut self, targets: Vec<Slot>, message: Message, bounce: Option<Bounce>) {
        let n = targets.len();
        let mut message = Some(message);
        for (i, slot) in targets.into_iter().enumerate() {
            let m = if i + 1 == n {
                message.take().expect("last target takes the message")
            } else {
                message
                    .clone()
                    .expect("message present until the last target")
            };
            self.deliver(slot, m, bounce);
        }
    }

    /// A delivery the shell could not make: count it, and tell the sender if it asked.
    pub fn bounce(&mut self, bounce: Option<Bounce>, reason: DropReason) {
        self.stats.dropped(reason);
        let Some(b) = bounce else { return };
        if let Some(slot) = self.slot_of(&b.src) {
            self.outputs.push_back(RouterOutput::Deliver {
                slot,
                input: Input::Undeliverable(Undeliverable {
                    id: b.id,
                    dst: b.dst,
                    reason,
                }),
                bounce: None,
            });
        }
    }

    fn drop_message(&mut self, bounce: Option<Bounce>, reason: DropReason, msg: &EngineMessage) {
        log::debug!(
            "router: dropped message {} from {} to {:?}: {}",
            msg.id.0,
            msg.src.short(),
            msg.dst,
            reason.label()
        );
        self.bounce(bounce, reason);
    }

    fn drop_header(&mut self, header: &RouteHeader, reason: DropReason) {
        log::debug!(
            "router: dropped message {} from {} to {:?}: {}",
            header.id.0,
            header.src.short(),
            header.dst,
            reason.label()
        );
        let bounce = header.notify.then_some(Bounce {
            src: header.src,
            id: header.id,
            dst: header.dst,
        });
        self.bounce(bounce, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;
    use crate::wire::MessageId;

    fn remote_wire(from: &Keypair, node: &Keypair, dst: EngineIdentity, id: u64) -> Vec<u8> {
        let mut m = EngineMessage {
            src: from.engine_identity(),
            src_node: node.node_identity(),
            dst: Destination::Engine(dst),
            id: MessageId(id),
            reply_to: None,
            expiry: Some(crate::time::wall_clock().after(Duration::from_secs(60))),
            rprefs: None,
            tprefs: None,
            protocol: Protocol(Protocol::APP_BASE + 1),
            body: b"hello".to_vec(),
            sig: None,
        };
        let mut wire = Vec::new();
        m.sign_into_wire(from, &mut wire, &mut Vec::new());
        wire
    }

    fn receipt(seq: u64) -> Receipt {
        Receipt {
            conn: 1,
            stream: 2,
            seq,
        }
    }

    /// A remote message for a local engine travels with its receipt; the receipt comes back only
    /// through `handled`. A refused one has its receipt back at once.
    #[test]
    fn receipts_wait_for_the_engine_unless_the_message_is_dropped() {
        let stats = Arc::new(NodeStats::default());
        let mut router = Router::new(
            Keypair::generate().node_identity(),
            Arc::clone(&stats),
            RouterLimits::default(),
            true,
        );
        let local = Keypair::generate().engine_identity();
        let slot = router.add_local(local, "app", &[]);
        let peer = Keypair::generate();
        let from = peer.derive_engine("app");
        let now = Now::read();

        router.handle_remote(
            now,
            peer.node_identity(),
            remote_wire(&from, &peer, local, 1),
            Some(receipt(0)),
        );
        router.flush(now);
        match router.poll_output() {
            Some(RouterOutput::DeliverRemote {
                slot: s,
                receipt: r,
                ..
            }) => assert_eq!((s, r), (slot, receipt(0))),
            other => panic!("expected a delivery with its receipt, got {other:?}"),
        }
        assert!(router.take_receipts().is_empty());
        router.handled([receipt(0)]);
        assert_eq!(router.take_receipts(), [receipt(0)]);

        // The same id again: a duplicate, dropped, its receipt handed back at once.
        router.handle_remote(
            now,
            peer.node_identity(),
            remote_wire(&from, &peer, local, 1),
            Some(receipt(1)),
        );
        router.flush(now);
        assert!(router.poll_output().is_none());
        assert_eq!(router.take_receipts(), [receipt(1)]);
        assert_eq!(stats.drops(DropReason::Duplicate), 1);
    }
}
