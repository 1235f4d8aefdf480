//! The Router: routes every message of its node — between local engines, to the Transport for
//! other nodes, and from other nodes after verification — and runs the local topic service
//! (spec notes §5.1).
//!
//! [`Router`] is a sans-IO state machine; the wiring layer (`node::router_shell`) runs it on its
//! own thread. It is the one owner of the node's table of local engines: the shell keeps only the
//! mailbox handle of each slot, and everyone else (engine shells deciding whether a message stays
//! on the node, the node's status view) reads the [`LocalEngines`] snapshot the Router publishes.
//!
//! # Drain contract
//!
//! Inputs are the `handle_*` calls (local and remote messages, topic requests, system mail,
//! identity events, answers for engines, bounces reported by the Transport, registrations) and
//! the outcomes of the Router's own outputs: [`Router::delivery_failed`] when a mailbox was full
//! or closed, [`Router::transport_refused`] when the Transport's queue was full,
//! [`Router::return_receipts`] when receipts could not be handed over,
//! [`Router::cut_off_refused`] when the Transport could not take a [`RouterOutput::CutOff`], and
//! [`Router::handled`] / [`Router::not_handled`] for receipts coming back from engines.
//!
//! Remote messages queue in the ingress batch; when the batch is full or the mailbox is empty,
//! the shell takes it ([`Router::take_ingress_batch`]), has it verified (here with
//! [`Router::verify_here`], or on a verifier thread) and hands it back in the order taken
//! ([`Router::complete_ingress_batch`]); [`Router::flush`] does all three on the calling
//! thread. After any input and after each completed batch, drain [`Router::poll_output`] until it
//! returns `None`,
//! carrying each output out in order. Receipts come last ([`RouterOutput::Acknowledge`]): the
//! deliveries before them are in their mailboxes when the Transport acknowledges. Call
//! [`Router::handle_timeout`] when [`Router::poll_timeout`] passes.
//!
//! # Routing by destination
//!
//! * `Engine(e)`: a local engine's mailbox; otherwise the node `e` is known to run on (learned
//!   from verified messages, or looked up in the Network Identity Store), through the Transport.
//! * `Node(n)`: for this node, the local engine serving the message's protocol; otherwise the
//!   Transport.
//! * `Topic(t)`: every local subscriber of `t` (not the sender itself).
//! * `Domain(d)` (anycast to some member of `d`): from a local engine — on a member of `d`,
//!   the local engine serving the message's protocol; else a member of `d` known from an
//!   earlier answer ([`Router::set_domain_routes`]), through the Transport; else the node's
//!   DomainRouting engine (the one serving `Protocol::DOMAIN_ROUTING`), which routes it to a
//!   member and answers the sender with `RoutingMail::Answer` (docs/domain-routing.md); with
//!   none, `no_route`. A `Local`-scoped one is delivered only on a member (`scope_violation`
//!   otherwise). From another node — delivered by protocol on a member, else `not_member`.
//!
//! A message with routing scope `Local` never leaves the node. Messages that must leave it are
//! signed by their sending engine's thread before they get here; the Router never signs.
//!
//! # Domain scope
//!
//! A message with routing scope `Domain(d)` stays among the members of `d`, as the node's
//! [`DomainDirectory`] (published by the Domain engine, handed over with
//! [`Router::set_domains`]) knows them:
//!
//! * leaving the node, it is sent only if this node and the destination node are members (for
//!   `Destination::Engine`, the node the engine was found on, checked when it is known — after a
//!   lookup if need be); otherwise it is dropped `not_member` and its sender told;
//! * arriving from another node, it is admitted only if the sending node (the authenticated
//!   peer) and this node are members; otherwise it is dropped `not_member` — not held against
//!   the peer, whose view of the membership may lag this node's;
//! * between engines of this node it is delivered as any message, except that publishing to a
//!   topic scoped to a domain (by the message or by the topic) needs this node to be a member.
//!
//! Topic requests follow the same rule (spec notes §5.6, §7.2): `Create` and `Subscribe` with
//! scope `Domain(d)` are refused with `TopicError::NotMember` on a node that is not a member,
//! and a `Create` whose advert's `scope` differs from its own scope with `ScopeMismatch`; a
//! topic known through a network subscription takes the scope its advert gives it. Without a
//! directory no domain is known: every domain-scoped message and request is refused, never
//! treated as `Any`.
//!
//! # Misbehaving peers
//!
//! Messages from a peer that fail verification in ways only a misbehaving peer can cause are
//! tallied per peer ([`conduct`]): each lowers the peer's reputation in the identity store
//! (an [`IdentityUpdate::Reputation`] per peer per drain), and the one that brings the tally to
//! `bad_messages_before_disconnect` produces [`RouterOutput::CutOff`] for the Transport.
//!
//! # One bounce path
//!
//! Every message dropped on its way — by the Router itself, by a full or closed mailbox, or by
//! the Transport ([`Router::handle_bounce`]) — is counted once with its reason, and its sender
//! gets an [`Input::Undeliverable`] through [`Router::bounce`] if it asked.

pub mod conduct;
pub mod ingress;
mod local;
mod relay_receipts;
mod relaying;
mod remote;
mod services;
mod table;
pub mod topics;

#[cfg(test)]
mod relay_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::mail::{Bounce, Outbound, RouteHeader};
pub use table::LocalEngines;

use crate::identity::DomainIdentity;
use crate::identity::{EngineIdentity, NodeIdentity, TopicIdentity};
use crate::mail::domain::DomainDirectory;
use crate::mail::identity::{IdentityRequest, IdentityUpdate};
use crate::mail::interdomain::DomainRoutes;
use crate::mail::transport::CutOff;
use crate::mail::{DropReason, Input, Message, Receipt, RemoteSend, Undeliverable};
use crate::runtime::stats::NodeStats;
use crate::time::Now;
use crate::wire::{EngineMessage, Protocol};
use conduct::{Conduct, ConductLimits};
use ingress::{Admitted, Ingress, IngressLimits};
use topics::TopicTable;

/// Index of a local engine's mailbox in the Router shell.
pub type Slot = usize;

/// What the Router asks its shell to do.
// Outputs are drained at once; boxing the large variant would allocate per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RouterOutput {
    /// Put `input` in the mailbox of the engine at `slot` — with `receipt`, if any, for the
    /// engine's shell to hand back (through [`Router::handled`]) once the engine has handled it.
    /// If the mailbox is full or closed, report it with [`Router::delivery_failed`].
    Deliver {
        /// The engine.
        slot: Slot,
        /// What to deliver.
        input: Input,
        /// Who to tell on failure.
        bounce: Option<Bounce>,
        /// For the Transport, once the engine has handled the message.
        receipt: Option<Receipt>,
    },
    /// Hand a signed message to the Transport; if its mailbox is full, report it with
    /// [`Router::transport_refused`].
    Transport(RemoteSend),
    /// Send a request to the Network Identity Store.
    Identity(IdentityRequest),
    /// The table of local engines changed: publish this snapshot to the readers.
    Published(Arc<LocalEngines>),
    /// The engine at `slot` is gone: drop its mailbox handle.
    Detach(Slot),
    /// Hand these receipts to the Transport, which acknowledges the messages to their senders;
    /// if it cannot take them now, give them back with [`Router::return_receipts`].
    Acknowledge(Vec<Receipt>),
    /// Cut a misbehaving peer off (see [`conduct`]); if the Transport's mailbox is full, give
    /// it back with [`Router::cut_off_refused`].
    CutOff(CutOff),
}

/// Why an engine could not be registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// Another running engine has that name.
    DuplicateName(String),
    /// An engine with that identity is already registered.
    DuplicateIdentity(EngineIdentity),
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
    /// Misbehaving peers: when they are cut off and for how long (see [`conduct`]).
    pub conduct: ConductLimits,
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
            conduct: ConductLimits::default(),
        }
    }
}

struct LocalEngine {
    slot: Slot,
    name: String,
    /// Advertised to other nodes.
    reachable: bool,
}

struct PendingLookup {
    since: Instant,
    messages: Vec<(RouteHeader, Vec<u8>)>,
}

/// Most stopped engines remembered for `engine_gone` reports (at most 4,096 × 32 bytes).
const MAX_GONE: usize = 4096;

/// How often idle replay state is swept and drop summaries are logged.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);

/// The Router state machine.
pub struct Router {
    node: NodeIdentity,
    stats: Arc<NodeStats>,
    limits: RouterLimits,
    locals: BTreeMap<EngineIdentity, LocalEngine>,
    /// Local engines that stopped, so messages to them report `engine_gone` (bounded).
    gone: BTreeSet<EngineIdentity>,
    slots: Vec<Option<EngineIdentity>>,
    services: BTreeMap<Protocol, Slot>,
    /// Looked up by key only; never iterated.
    remote_engines: HashMap<EngineIdentity, NodeIdentity>,
    remote_order: VecDeque<EngineIdentity>,
    topics: TopicTable,
    ingress: Ingress,
    conduct: Conduct,
    admitted: Vec<Admitted>,
    receipts: Vec<Receipt>,
    /// Whether the node is shutting down.
    stopping: bool,
    pending: BTreeMap<EngineIdentity, PendingLookup>,
    /// Local engines waiting for PubSub to complete a network subscription, per topic.
    pending_net_subs: BTreeMap<TopicIdentity, Vec<EngineIdentity>>,
    /// The scope the adverts of topics in `pending_net_subs` give them (at most one entry per
    /// waiting topic), applied when the subscription completes.
    net_scopes: BTreeMap<TopicIdentity, crate::wire::RoutingScope>,
    has_transport: bool,
    outputs: VecDeque<RouterOutput>,
    next_housekeeping: Option<Instant>,
    drops_at_last_summary: u64,
    /// The memberships `Domain`-scoped messages are checked against (empty until set).
    domains: DomainDirectory,
    /// Members of foreign domains, learnt by DomainRouting (empty until set).
    domain_routes: DomainRoutes,
    /// Relaying, once enabled ([`Router::enable_relay`]).
    relay: Option<Box<relaying::Relaying>>,
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
            conduct: Conduct::new(limits.conduct),
            limits,
            locals: BTreeMap::new(),
            gone: BTreeSet::new(),
            slots: Vec::new(),
            services: BTreeMap::new(),
            remote_engines: HashMap::new(),
            remote_order: VecDeque::new(),
            topics: TopicTable::default(),
            admitted: Vec::new(),
            receipts: Vec::new(),
            stopping: false,
            pending: BTreeMap::new(),
            pending_net_subs: BTreeMap::new(),
            net_scopes: BTreeMap::new(),
            has_transport,
            outputs: VecDeque::new(),
            next_housekeeping: None,
            drops_at_last_summary: 0,
            domains: DomainDirectory::new(),
            domain_routes: DomainRoutes::new(),
            relay: None,
        }
    }

    /// Gives the Router the node's domain directory (shared with the Domain engine, which
    /// publishes into it): from now on `Domain`-scoped messages and topic requests are checked
    /// against it. Until it is called the directory is empty, so all of them are refused
    /// `not_member`.
    pub fn set_domains(&mut self, dir: DomainDirectory) {
        self.domains = dir;
    }

    /// Gives the Router the node's cache of foreign domains' members (shared with the
    /// DomainRouting engine, which learns into it): `Destination::Domain(d)` messages of local
    /// engines go straight to a known member of `d`. Until it is called none is known, and they
    /// all go to the DomainRouting engine.
    pub fn set_domain_routes(&mut self, routes: DomainRoutes) {
        self.domain_routes = routes;
    }

    /// The directory `Domain`-scoped messages are checked against.
    pub fn domains(&self) -> &DomainDirectory {
        &self.domains
    }

    /// Whether a `Domain(domain)`-scoped message may pass between this node and `node`: both
    /// are members of `domain` as far as this node knows.
    pub(crate) fn domain_allows(&self, domain: &DomainIdentity, node: &NodeIdentity) -> bool {
        self.domains.member_here(domain) && self.domains.is_member(domain, node)
    }

    /// This node.
    pub fn node(&self) -> NodeIdentity {
        self.node
    }

    /// The topic table (for status and tests).
    pub fn topics(&self) -> &TopicTable {
        &self.topics
    }

    // -----------------------------------------------------------------------------------------
    // The table of local engines.

    /// Registers a local engine; returns its slot. `serves` lists the protocols it answers for
    /// messages addressed to this node. Names and identities are unique among running engines.
    /// Publishes the new table ([`RouterOutput::Published`]).
    pub fn add_local(
        &mut self,
        identity: EngineIdentity,
        name: &str,
        serves: &[Protocol],
    ) -> Result<Slot, RegisterError> {
        self.add_local_as(identity, name, serves, false)
    }

    /// [`Router::add_local`], marking the engine reachable from other nodes if `reachable`: the
    /// published table says so, and the node advertises it.
    pub fn add_local_as(
        &mut self,
        identity: EngineIdentity,
        name: &str,
        serves: &[Protocol],
        reachable: bool,
    ) -> Result<Slot, RegisterError> {
        if self.locals.contains_key(&identity) {
            return Err(RegisterError::DuplicateIdentity(identity));
        }
        if self.locals.values().any(|e| e.name == name) {
            return Err(RegisterError::DuplicateName(name.to_string()));
        }
        let slot = self.slots.len();
        self.slots.push(Some(identity));
        self.gone.remove(&identity);
        self.locals.insert(
            identity,
            LocalEngine {
                slot,
                name: name.to_string(),
                reachable,
            },
        );
        for &p in serves {
            self.services.insert(p, slot);
        }
        self.publish();
        Ok(slot)
    }

    /// Forgets a local engine (it stopped, or its mailbox closed) and publishes the new table.
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
        self.outputs.push_back(RouterOutput::Detach(slot));
        self.publish();
    }

    /// A local engine asked to leave the node.
    pub fn unregister(&mut self, identity: &EngineIdentity) {
        if let Some(slot) = self.slot_of(identity) {
            self.remove_local(slot);
        }
    }

    /// The slot of a local engine.
    pub fn slot_of(&self, identity: &EngineIdentity) -> Option<Slot> {
        self.locals.get(identity).map(|e| e.slot)
    }

    /// A snapshot of the local engines, as published.
    pub fn local_engines(&self) -> LocalEngines {
        LocalEngines::new(
            self.locals
                .iter()
                .map(|(id, e)| (*id, e.name.clone()))
                .collect(),
        )
        .with_reachable(
            self.locals
                .iter()
                .filter(|(_, e)| e.reachable)
                .map(|(id, _)| *id)
                .collect(),
        )
    }

    fn publish(&mut self) {
        let table = Arc::new(self.local_engines());
        self.outputs.push_back(RouterOutput::Published(table));
    }

    // -----------------------------------------------------------------------------------------
    // Outputs and time.

    /// The next output to carry out (see the drain contract in the module doc).
    pub fn poll_output(&mut self) -> Option<RouterOutput> {
        if let Some(o) = self.outputs.pop_front() {
            return Some(o);
        }
        if self.flush_receipts() {
            return self.outputs.pop_front();
        }
        if let Some((node, loss)) = self.conduct.take_report() {
            return Some(RouterOutput::Identity(IdentityRequest::Update(
                IdentityUpdate::Reputation {
                    id: node,
                    change: -i16::from(loss),
                },
            )));
        }
        if self.receipts.is_empty() {
            return None;
        }
        Some(RouterOutput::Acknowledge(std::mem::take(
            &mut self.receipts,
        )))
    }

    /// When [`Router::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.next_housekeeping,
            self.relay_waiting_deadline(),
            self.relay_receipt_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether receipts wait to be handed over (the Transport's mailbox was full): the shell
    /// should come back soon, not only at the next mail or housekeeping.
    pub fn has_receipts(&self) -> bool {
        !self.receipts.is_empty()
    }

    /// The node is stopping for good: messages still waiting for a lookup are dropped as
    /// `shutdown` (and their senders told, if they still run).
    pub fn handle_shutdown(&mut self) {
        for (_, p) in std::mem::take(&mut self.pending) {
            for (header, _) in p.messages {
                self.drop_header(&header, DropReason::Shutdown);
            }
        }
    }

    /// Periodic upkeep: lookups that waited too long, idle replay state, drop summaries.
    pub fn handle_timeout(&mut self, now: Now) {
        self.expire_relay_waiting(now);
        self.expire_receipts(now);
        let due = self.next_housekeeping.is_none_or(|t| now.instant >= t);
        if !due {
            return;
        }
        self.next_housekeeping = Some(now.instant + HOUSEKEEPING_EVERY);
        self.ingress.sweep(now.instant);
        self.conduct.sweep(now.instant);
        let timeout = self.limits.lookup_timeout;
        let stale: Vec<EngineIdentity> = self
            .pending
            .iter()
            .filter(|(_, p)| now.instant.saturating_duration_since(p.since) >= timeout)
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
    // Outcomes of outputs, reported back by the shell.

    /// A [`RouterOutput::Deliver`] could not be made: the mailbox was full
    /// ([`DropReason::MailboxFull`]) or closed ([`DropReason::EngineGone`], and the engine is
    /// forgotten). The drop is counted, the sender told if it asked, and a receipt handed back
    /// (or withheld while the node is stopping; see [`Router::not_handled`]).
    pub fn delivery_failed(
        &mut self,
        slot: Slot,
        reason: DropReason,
        bounce: Option<Bounce>,
        receipt: Option<Receipt>,
    ) {
        if reason == DropReason::EngineGone {
            self.remove_local(slot);
        }
        self.bounce(bounce, reason);
        self.not_handled(receipt);
    }

    /// The Transport's mailbox was full: `send` is dropped as `queue_full`.
    pub fn transport_refused(&mut self, send: RemoteSend) {
        self.stats.sent_remote.fetch_sub(1, AtomicOrdering::Relaxed);
        self.drop_header(&send.header, DropReason::QueueFull);
    }

    /// The Transport's mailbox was full: `cut` is ordered again at the peer's next bad message.
    pub fn cut_off_refused(&mut self, cut: CutOff) {
        log::debug!(
            "router: the Transport is busy; cutting off {} waits for its next bad message",
            cut.node.short()
        );
        self.conduct.refused(&cut);
    }

    /// Bad messages counted from `peer` towards its next cut-off, if it has a tally (for status
    /// views and tests).
    pub fn bad_messages(&self, peer: &NodeIdentity) -> Option<u32> {
        self.conduct.bad_messages(peer)
    }

    /// A message from `peer` was dropped for `reason` before it was verified or while being
    /// verified: tallied if it is misconduct (see [`conduct`]).
    fn misbehaved(&mut self, now: Now, peer: NodeIdentity, reason: DropReason) {
        if let Some(cut) = self.conduct.record(now.instant, peer, reason) {
            self.outputs.push_back(RouterOutput::CutOff(cut));
        }
    }

    /// The Transport dropped a message a local engine sent (expired in its queue, queue full,
    /// too large, shutdown, …) and counted it: the sender is told here, if it asked — the one
    /// bounce path of the node.
    pub fn handle_bounce(&mut self, header: RouteHeader, reason: DropReason) {
        if header.notify {
            self.tell_sender(
                Bounce {
                    src: header.src,
                    id: header.id,
                    dst: header.dst,
                },
                reason,
            );
        }
    }

    /// An answer or notification for the local engine `to` from another part of the node (the
    /// Transport's connection events, the identity store's answers). If the engine is no longer
    /// running it is logged and let go: it is not a message (a stopping node's Transport, for
    /// one, still notifies engines that have already stopped).
    pub fn handle_for_engine(&mut self, to: EngineIdentity, input: Input) {
        match self.slot_of(&to) {
            Some(slot) => self.outputs.push_back(RouterOutput::Deliver {
                slot,
                input,
                bounce: None,
                receipt: None,
            }),
            None => log::debug!(
                "router: input for {}, which has stopped, let go",
                to.short()
            ),
        }
    }

    /// Receipts of remote messages that local engines have handled, for the Transport to
    /// acknowledge.
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

    // -----------------------------------------------------------------------------------------
    // Delivery and drops.

    fn deliver(&mut self, slot: Slot, message: Message, bounce: Option<Bounce>) {
        self.outputs.push_back(RouterOutput::Deliver {
            slot,
            input: Input::Message(message),
            bounce,
            receipt: None,
        });
    }

    fn deliver_remote(&mut self, slot: Slot, message: Message, receipt: Option<Receipt>) {
        self.outputs.push_back(RouterOutput::Deliver {
            slot,
            input: Input::Message(message),
            bounce: None,
            receipt,
        });
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

    /// Counts a drop, and tells the sender if it asked.
    pub fn bounce(&mut self, bounce: Option<Bounce>, reason: DropReason) {
        self.stats.dropped(reason);
        if let Some(b) = bounce {
            self.tell_sender(b, reason);
        }
    }

    /// Delivers [`Input::Undeliverable`] to the sender of a dropped message.
    fn tell_sender(&mut self, b: Bounce, reason: DropReason) {
        if let Some(slot) = self.slot_of(&b.src) {
            self.outputs.push_back(RouterOutput::Deliver {
                slot,
                input: Input::Undeliverable(Undeliverable {
                    id: b.id,
                    dst: b.dst,
                    reason,
                }),
                bounce: None,
                receipt: None,
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
