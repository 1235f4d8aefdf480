//! One simulated node: the very same Router, Network Identity Store, PubSub and engine state
//! machines as a real node, and the same Transport core, wired together on the simulator's
//! thread instead of by mailboxes and threads. What the engine shells do — signing messages
//! that leave the node on the sender's behalf, handing receipts back after an engine's outputs,
//! refusing input to a full engine mailbox, emptying the mailbox of an engine that stopped — is
//! done here in the same order. The Router's and the Transport's own mailboxes are not modelled:
//! they never refuse here (their refusal paths are covered by the unit tests of the cores).
//!
//! [`SimNode::settle`] runs the node until nothing is left to do at the current instant;
//! [`SimNode::next_deadline`] says when it next has something to do by itself.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::conn::SimConn;
use super::net::{EndpointId, Net};
use crate::identity::{EngineIdentity, Keypair, NodeIdentity, TopicIdentity};
use crate::identity_store::IdentityStore;
use crate::mail::domain::DomainDirectory;
use crate::mail::identity::{IdentityRequest, IdentityUpdate, Party};
use crate::mail::{DropReason, Input, Outbound, Output, Receipt, RouteHeader};
use crate::pubsub::{PubSub, PubSubLimits, PubSubMessage, PubSubStats, PUBSUB_ENGINE_NAME};
use crate::rng::SplitMix64;
use crate::router::{LocalEngines, Router, RouterLimits, RouterOutput, Slot};
use crate::runtime::stats::NodeStats;
use crate::runtime::timers::Timers;
use crate::runtime::{Context, Engine};
use crate::time::Now;
use crate::transport::core::{Core, Output as CoreOutput, QuicConn};
use crate::transport::peers::ConnId;
use crate::transport::TransportConfig;
use crate::wire::{NodeAdvert, Protocol};

/// Most inputs an engine handles before its outputs are carried out (as its thread shell).
const BURST: usize = 256;

/// An engine to run on a simulated node.
pub struct EngineSetup {
    /// Its name (its key is derived from the node key and the name).
    pub name: String,
    /// Protocols it serves for messages to the node.
    pub serves: Vec<Protocol>,
    /// Mailbox depth.
    pub mailbox_depth: usize,
    /// The engine.
    pub engine: Box<dyn Engine>,
}

struct SimEngine {
    name: String,
    key: Keypair,
    engine: Box<dyn Engine>,
    ctx: Context,
    mailbox: VecDeque<(Input, Option<Receipt>)>,
    depth: usize,
    timers: Timers,
    started: bool,
    stopped: bool,
    /// Messages it sent that left the node.
    sent: u64,
}

/// How a simulated node is set up.
#[derive(Clone)]
pub struct NodeSetup {
    /// The node key (what a real node persists, with its configuration).
    pub key: Keypair,
    /// Its advert (the address is a label: no socket is ever opened).
    pub advert: NodeAdvert,
    /// Peers' adverts, and whether the connection is kept up.
    pub peers: Vec<(NodeAdvert, bool)>,
    /// Transport configuration.
    pub transport: TransportConfig,
    /// Whether it runs a PubSub engine.
    pub pubsub: bool,
}

/// What a node runs and knows beyond its [`NodeSetup`], for one incarnation: the domains'
/// built-in engines and the directory they share with the Router and PubSub.
#[derive(Default)]
pub struct NodeExtras {
    /// The node's domain directory (empty unless a Domain engine fills it): handed to the
    /// Router and PubSub, and to whatever built the engines in `builtins`.
    pub directory: DomainDirectory,
    /// Built-in engines besides PubSub (the Domain and Topology engines), registered before
    /// the application engines.
    pub builtins: Vec<EngineSetup>,
    /// Adverts of nodes the node can find without keeping a connection to them: one goes into
    /// its identity store (and so to its Transport) the first time one of its engines sends to
    /// that node or asks the Transport to connect to it — standing in for the lookup a real
    /// node makes, which the simulator does not model. Learnt on demand, not at start, so that
    /// the Transport's peer table holds the peers the node deals with, not the whole network.
    pub known: Arc<BTreeMap<NodeIdentity, NodeAdvert>>,
    /// A topic whose PubSub messages leaving the node are counted ([`SimNode::topic_sends`]).
    pub watch_topic: Option<TopicIdentity>,
    /// The foreign-domain routes the node's Router sends `Destination::Domain` messages by.
    pub routes: Option<crate::mail::interdomain::DomainRoutes>,
    /// The relay policy, if the node's Router relays (its connected peers are its candidates).
    pub relay: Option<crate::relay::RelayPolicy>,
}

/// One simulated node.
pub struct SimNode {
    /// The node's identity.
    pub identity: NodeIdentity,
    /// How many times it has (re)started.
    pub incarnation: u32,
    /// Counters.
    pub stats: Arc<NodeStats>,
    /// PubSub counters, if it runs PubSub.
    pub pubsub_stats: Option<Arc<PubSubStats>>,
    /// The node's domain directory, shared by its Domain engine, Router and PubSub.
    pub directory: DomainDirectory,
    /// PubSub messages about the watched topic ([`NodeExtras::watch_topic`]) that left the node.
    pub topic_sends: u64,
    watch_topic: Option<TopicIdentity>,
    known: Arc<BTreeMap<NodeIdentity, NodeAdvert>>,
    learnt: std::collections::BTreeSet<NodeIdentity>,
    router: Router,
    store: IdentityStore,
    core: Core<SplitMix64>,
    engines: Vec<SimEngine>,
    slots: BTreeMap<Slot, usize>,
    locals: Arc<LocalEngines>,
    /// The simulated connection endpoint behind each of the core's connections.
    pub(crate) conns: BTreeMap<ConnId, EndpointId>,
    wire: Vec<u8>,
    scratch: Vec<u8>,
    /// The relay candidates last given to the Router (its ready peers), if it relays.
    candidates: Option<Vec<crate::relay::Candidate>>,
}

impl SimNode {
    /// Builds a node from `setup` with application engines `apps`, at time `now`, drawing its
    /// Transport core's randomness from `rng`.
    pub fn new(
        setup: &NodeSetup,
        apps: Vec<EngineSetup>,
        incarnation: u32,
        rng: SplitMix64,
        now: Now,
    ) -> SimNode {
        SimNode::with_extras(setup, NodeExtras::default(), apps, incarnation, rng, now)
    }

    /// As [`SimNode::new`], with the built-in domain engines, directory and known adverts of
    /// `extras`.
    pub fn with_extras(
        setup: &NodeSetup,
        extras: NodeExtras,
        apps: Vec<EngineSetup>,
        incarnation: u32,
        rng: SplitMix64,
        now: Now,
    ) -> SimNode {
        let NodeExtras {
            directory,
            builtins,
            known,
            watch_topic,
            routes,
            relay,
        } = extras;
        let identity = setup.key.node_identity();
        let stats = Arc::new(NodeStats::default());
        let limits = RouterLimits {
            verifier_threads: 0,
            ..RouterLimits::default()
        };
        let mut router = Router::new(identity, Arc::clone(&stats), limits, true);
        router.set_domains(directory.clone());
        if let Some(routes) = routes {
            router.set_domain_routes(routes);
        }
        let relaying = relay.is_some();
        if let Some(policy) = relay {
            // Ephemeral relay keys from the node's key and incarnation: seeded, as every
            // random choice of a run.
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&u64::from(incarnation).to_le_bytes());
            router.enable_relay(&setup.key, seed, policy);
        }
        let mut store = IdentityStore::new(crate::identity_store::DEFAULT_MAX_RECORDS);
        store.handle(now.wall, Party::Router, IdentityRequest::Subscribe);
        store.handle(now.wall, Party::Transport, IdentityRequest::Subscribe);
        for (advert, _) in &setup.peers {
            store.apply(now.wall, IdentityUpdate::NodeAdvert(advert.clone()));
        }
        let learnt = setup.peers.iter().map(|(a, _)| a.id).collect();
        let core = Core::new(
            identity,
            setup.advert.clone(),
            setup.transport.clone(),
            setup.peers.clone(),
            Arc::clone(&stats),
            rng,
        );
        let mut all = Vec::new();
        let mut pubsub_stats = None;
        if setup.pubsub {
            let s = Arc::new(PubSubStats::default());
            let key = setup.key.derive_engine(PUBSUB_ENGINE_NAME);
            all.push(EngineSetup {
                name: PUBSUB_ENGINE_NAME.into(),
                serves: vec![Protocol::PUBSUB],
                mailbox_depth: 65_536,
                engine: Box::new(
                    PubSub::new(key, PubSubLimits::default(), Arc::clone(&s))
                        .with_domains(directory.clone()),
                ),
            });
            pubsub_stats = Some(s);
        }
        all.extend(builtins);
        all.extend(apps);
        let mut engines = Vec::new();
        let mut slots = BTreeMap::new();
        for e in all {
            let key = setup.key.derive_engine(&e.name);
            let id = key.engine_identity();
            let Ok(slot) = router.add_local(id, &e.name, &e.serves) else {
                log::warn!("sim: engine {} registered twice; left out", e.name);
                continue;
            };
            slots.insert(slot, engines.len());
            engines.push(SimEngine {
                ctx: Context::detached(now, id, identity, &e.name),
                name: e.name,
                key,
                engine: e.engine,
                mailbox: VecDeque::new(),
                depth: e.mailbox_depth,
                timers: Timers::default(),
                started: false,
                stopped: false,
                sent: 0,
            });
        }
        let mut node = SimNode {
            identity,
            incarnation,
            stats,
            pubsub_stats,
            directory,
            topic_sends: 0,
            watch_topic,
            known,
            learnt,
            router,
            store,
            core,
            engines,
            slots,
            locals: Arc::new(LocalEngines::default()),
            conns: BTreeMap::new(),
            wire: Vec::new(),
            scratch: Vec::new(),
            candidates: relaying.then(Vec::new),
        };
        node.drain_router(now);
        node
    }

    /// The identity of the local engine called `name`.
    pub fn engine_identity(&self, name: &str) -> Option<EngineIdentity> {
        self.locals.find(name)
    }

    /// Messages the engine called `name` sent that left the node (0 for no such engine).
    pub fn sent_by(&self, name: &str) -> u64 {
        self.engines
            .iter()
            .filter(|e| e.name == name)
            .map(|e| e.sent)
            .sum()
    }

    /// Messages that left the node, by the name of the engine that sent them.
    pub fn sent_by_engine(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for e in &self.engines {
            *out.entry(e.name.clone()).or_default() += e.sent;
        }
        out
    }

    /// The Transport core's instance number.
    pub fn instance(&self) -> u64 {
        self.core.instance()
    }

    /// Hands `wire` to this node's Transport core for `node`, as it is — what a real node's
    /// `EgressHandle` does: a simulated node can forge, and its peers judge it.
    pub fn inject(&mut self, now: Now, node: NodeIdentity, header: RouteHeader, wire: Vec<u8>) {
        self.core
            .handle_send(now, crate::mail::RemoteSend::message(node, header, wire));
    }

    /// A new connection from another node arrived at this one (if the core admits it): its id.
    pub(crate) fn accept(&mut self, now: Now, from: std::net::SocketAddr) -> Option<ConnId> {
        if !self.core.may_accept(from) {
            return None;
        }
        // The simulator models QUIC connections only.
        let from = crate::wire::TransportAddress::quic(from);
        Some(self.core.handle_incoming(now, from))
    }

    /// Something arrived on connection `conn` (or it was established).
    pub(crate) fn activity(&mut self, conn: ConnId) {
        self.core.handle_activity(conn);
    }

    /// Connection `conn` closed under us (the peer closed it, or it was lost).
    pub(crate) fn closed(&mut self, now: Now, conn: ConnId, q: &SimConn) {
        self.conns.remove(&conn);
        self.core.handle_closed(now, conn, q);
    }

    /// When the node next has something to do by itself (a timer of an engine, the Router or
    /// the Transport core).
    pub fn next_deadline(&self, now: Now) -> Option<Instant> {
        let mut next = Some(self.core.poll_timeout(now));
        let mut take = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        take(self.router.poll_timeout());
        for e in &self.engines {
            if !e.stopped {
                take(e.timers.next_deadline());
            }
        }
        next
    }

    /// Runs the node at `now` until nothing is left to do: timers that are due, the Router's,
    /// the store's and the Transport core's outputs, connection service, and engine inputs.
    pub fn settle(&mut self, now: Now, net: &mut Net) {
        self.router.handle_timeout(now);
        if self.core.poll_timeout(now) <= now.instant {
            self.core.handle_timeout(now);
        }
        for i in 0..self.engines.len() {
            let e = &mut self.engines[i];
            if e.stopped {
                continue;
            }
            if !e.started {
                e.started = true;
                e.ctx.set_now(now);
                e.engine.start(&mut e.ctx);
                self.carry_out(i, now, Vec::new());
            }
            while let Some(token) = self.engines[i].timers.pop_due(now.instant) {
                let e = &mut self.engines[i];
                e.ctx.set_now(now);
                e.engine.handle(&mut e.ctx, Input::Timer(token));
                self.carry_out(i, now, Vec::new());
            }
        }
        for _ in 0..1_000_000 {
            let mut progress = self.drain_router(now);
            progress |= self.drain_store(now);
            progress |= self.drain_transport(now, net);
            progress |= self.refresh_candidates(now);
            self.router.flush(now);
            progress |= self.drain_router(now);
            progress |= self.run_engines(now);
            if !progress {
                return;
            }
        }
        log::error!("sim: node {} did not settle", self.identity.short());
    }

    /// Gives the Router the ready peers as relay candidates when they changed (what a real
    /// node's driver publishes every 200 ms; the simulator measures no round-trip time).
    fn refresh_candidates(&mut self, now: Now) -> bool {
        let Some(last) = &self.candidates else {
            return false;
        };
        let ready: Vec<crate::relay::Candidate> = self
            .core
            .ready_peers()
            .into_iter()
            .map(|p| crate::relay::Candidate {
                node: p.node,
                trust: p.trust.unwrap_or(crate::mail::identity::DEFAULT_TRUST),
                reputation: p
                    .reputation
                    .unwrap_or(crate::mail::identity::DEFAULT_REPUTATION),
                rtt: None,
                loss_ppm: None,
                transport: crate::wire::TransportKind::Quic,
            })
            .collect();
        if *last == ready {
            return false;
        }
        self.router.set_relay_candidates(now, ready.clone());
        self.candidates = Some(ready);
        true
    }

    fn drain_router(&mut self, now: Now) -> bool {
        let mut any = false;
        while let Some(out) = self.router.poll_output() {
            any = true;
            match out {
                RouterOutput::Deliver {
                    slot,
                    input,
                    bounce,
                    receipt,
                } => {
                    let Some(e) = self.slots.get(&slot).and_then(|&i| self.engines.get_mut(i))
                    else {
                        self.router
                            .delivery_failed(slot, DropReason::EngineGone, bounce, receipt);
                        continue;
                    };
                    if e.stopped {
                        self.router
                            .delivery_failed(slot, DropReason::EngineGone, bounce, receipt);
                    } else if e.mailbox.len() >= e.depth {
                        self.router
                            .delivery_failed(slot, DropReason::MailboxFull, bounce, receipt);
                    } else {
                        if matches!(input, Input::Message(_)) {
                            self.stats
                                .delivered_local
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        e.mailbox.push_back((input, receipt));
                    }
                }
                RouterOutput::Transport(send) => self.core.handle_send(now, send),
                RouterOutput::Identity(req) => self.store.handle(now.wall, Party::Router, req),
                RouterOutput::Published(table) => self.locals = table,
                RouterOutput::Detach(slot) => {
                    if let Some(&i) = self.slots.get(&slot) {
                        self.retire(i);
                    }
                }
                RouterOutput::Acknowledge(receipts) => self.core.handle_processed(receipts),
                RouterOutput::CutOff(cut) => self.core.handle_cut_off(now, cut),
            }
        }
        any
    }

    fn drain_store(&mut self, now: Now) -> bool {
        let mut any = false;
        while let Some((to, event)) = self.store.poll_output() {
            any = true;
            match to {
                Party::Router => self.router.handle_identity(now, event),
                Party::Transport => self.core.handle_identity(event),
                Party::Engine(e) => self
                    .router
                    .handle_for_engine(e, Input::Identity(Box::new(event))),
                Party::Node => {}
            }
        }
        any
    }

    fn drain_core_outputs(&mut self, now: Now, net: &mut Net) -> bool {
        let mut any = false;
        while let Some(out) = self.core.poll_output() {
            any = true;
            match out {
                CoreOutput::Deliver(d) if d.relay => {
                    self.router.handle_relay(now, d.peer, d.wire, d.receipt)
                }
                CoreOutput::Deliver(d) => self.router.handle_remote(now, d.peer, d.wire, d.receipt),
                CoreOutput::NoDirectPath(send) => self.router.handle_no_direct_path(now, send),
                CoreOutput::Bounce { send, reason } => {
                    self.router.handle_bounce(send.header, reason)
                }
                CoreOutput::Notify { to, event } | CoreOutput::Answer { to, event } => {
                    self.router.handle_for_engine(to, Input::Transport(event))
                }
                CoreOutput::StoreAdvert(advert) => self.store.handle(
                    now.wall,
                    Party::Transport,
                    IdentityRequest::Update(IdentityUpdate::NodeAdvert(advert)),
                ),
                // The simulator does not model the identity exchange (engine adverts and lookups
                // between nodes): its scenarios address nodes and topics, not remote engines.
                CoreOutput::Exchange(_) => {}
                CoreOutput::Dial { conn, node, addr } => {
                    match net.dial(
                        now,
                        self.identity,
                        self.incarnation,
                        conn,
                        node,
                        addr.socket_addr(),
                    ) {
                        Some(ep) => {
                            self.conns.insert(conn, ep);
                        }
                        None => self.core.handle_dial_failed(now, conn),
                    }
                }
            }
        }
        any
    }

    fn drain_transport(&mut self, now: Now, net: &mut Net) -> bool {
        let mut any = self.drain_core_outputs(now, net);
        while let Some(id) = self.core.poll_service() {
            any = true;
            let Some(&ep) = self.conns.get(&id) else {
                continue;
            };
            let Some(q) = net.conn_mut(ep) else {
                self.conns.remove(&id);
                continue;
            };
            self.core.service(now, id, q, usize::MAX);
            let closed = q.is_closed();
            net.transmit(now, ep);
            if closed {
                if let Some(q) = net.conn_mut(ep) {
                    self.core.handle_closed(now, id, q);
                }
                self.conns.remove(&id);
                net.forget(ep);
            }
            self.drain_core_outputs(now, net);
        }
        any
    }

    fn run_engines(&mut self, now: Now) -> bool {
        let mut any = false;
        for i in 0..self.engines.len() {
            if self.engines[i].mailbox.is_empty() || self.engines[i].stopped {
                continue;
            }
            any = true;
            let mut receipts = Vec::new();
            let e = &mut self.engines[i];
            e.ctx.set_now(now);
            for _ in 0..BURST {
                let Some((input, receipt)) = e.mailbox.pop_front() else {
                    break;
                };
                e.engine.handle(&mut e.ctx, input);
                receipts.extend(receipt);
            }
            e.engine.flush(&mut e.ctx);
            // After the outputs: receipts go back to the Router behind them.
            self.carry_out(i, now, receipts);
        }
        any
    }

    /// Engine `i` has stopped: as its thread shell does, what is left in its mailbox is counted
    /// as dropped (`engine_gone`) and the receipts of remote messages in it go back to the
    /// Router, so their senders are not left waiting for an acknowledgement.
    fn retire(&mut self, i: usize) {
        let e = &mut self.engines[i];
        e.stopped = true;
        let mut receipts = Vec::new();
        for (input, receipt) in e.mailbox.drain(..) {
            if matches!(input, Input::Message(_)) {
                self.stats.dropped(DropReason::EngineGone);
            }
            receipts.extend(receipt);
        }
        self.router.not_handled(receipts);
    }

    /// Puts `node`'s advert into the identity store (and through it into the Transport) if
    /// this node can know it and has not learnt it yet ([`NodeExtras::known`]).
    fn learn(&mut self, now: Now, node: NodeIdentity) {
        if node == self.identity || self.learnt.contains(&node) {
            return;
        }
        let Some(advert) = self.known.get(&node).cloned() else {
            return;
        };
        self.learnt.insert(node);
        self.store
            .apply(now.wall, IdentityUpdate::NodeAdvert(advert));
        self.drain_store(now);
    }

    /// Carries out engine `i`'s outputs as its thread shell would, then hands `receipts` back.
    fn carry_out(&mut self, i: usize, now: Now, receipts: Vec<Receipt>) {
        let outputs = self.engines[i].ctx.take_outputs();
        let from = self.engines[i].ctx.identity();
        for output in outputs {
            match output {
                Output::Send(out) => {
                    let stays = self.locals.keeps(self.identity, &out.msg);
                    if let (false, crate::wire::Destination::Node(to)) = (stays, &out.msg.dst) {
                        self.learn(now, *to);
                    }
                    if !stays {
                        self.stats
                            .signed
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        self.engines[i].sent += 1;
                        if let Some(topic) = self.watch_topic {
                            if out.msg.protocol == Protocol::PUBSUB
                                && PubSubMessage::from_bytes(&out.msg.body)
                                    .is_ok_and(|m| m.topic() == Some(topic))
                            {
                                self.topic_sends += 1;
                            }
                        }
                    }
                    let e = &self.engines[i];
                    let outbound =
                        Outbound::prepare(out, stays, &e.key, &mut self.wire, &mut self.scratch);
                    self.router.handle_local(now, outbound);
                }
                Output::Topic(req) => self.router.handle_topic(from, req),
                Output::Identity(req) => self.store.handle(now.wall, Party::Engine(from), req),
                Output::Transport(req) => {
                    if let crate::mail::transport::TransportRequest::Connect { node } = &req {
                        self.learn(now, *node);
                    }
                    self.core.handle_request(now, from, req)
                }
                Output::SetTimer { token, at } => self.engines[i].timers.set(token, at),
                Output::CancelTimer { token } => self.engines[i].timers.cancel(token),
                Output::Stop => {
                    if !self.engines[i].stopped {
                        log::debug!("sim: engine {} stopped", self.engines[i].name);
                        self.router.unregister(&from);
                        self.retire(i);
                    }
                }
                Output::System(mail) => self.router.handle_system(from, mail),
            }
        }
        if !receipts.is_empty() {
            self.router.handled(receipts);
        }
    }
}
