//! [`NodeBuilder`] → a running [`Node`]: the threads of one node, and the handles an application
//! uses to talk to it, watch it and stop it.
//!
//! Threads of a node (all named): `nm-router`, `nm-nis` (the Network Identity Store), one
//! `nm-<name>` per engine, and the Transport's when the node listens or has peers. A node with
//! a Transport runs the built-in engines `pubsub`, `domain` and `topology` (see
//! [`NodeBuilder::domain`]) and the inter-domain engines `sampling`, `clustering` and
//! `domain_routing` (see [`NodeBuilder::interdomain`]) besides `ping`, and the `storage`
//! engine when given a store ([`NodeBuilder::storage`]).
//!
//! Shutdown ([`Node::shutdown`], or dropping the node): engines are asked to stop first (their
//! `stop` runs and what it sends is still routed), then the Identity Store, the Transport and the
//! Router. Every thread is joined; an engine that does not stop within
//! [`SHUTDOWN_GRACE`] (stuck inside `handle`) is reported as hung and left detached, since a
//! thread cannot be killed.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use parking_lot::{Mutex, RwLock};

pub mod client;
pub(crate) mod directory;
mod domains;
pub(crate) mod engine_shell;
mod error;
mod identity;
pub mod identity_file;
mod interdomain;
pub(crate) mod mailbox;
pub(crate) mod nis_shell;
pub mod quic;
mod relaying;
pub(crate) mod router_shell;
mod shutdown;
mod status;
mod storage;
#[cfg(feature = "testing")]
mod test_hooks;
pub(crate) mod transport_link;

pub use domains::JoinAnswer;
pub use engine_shell::EngineFailure;
pub use error::NodeError;
pub use interdomain::{DomainAnswer, InterdomainSettings, INTERDOMAIN_MAILBOX_DEPTH};
pub use shutdown::ShutdownReport;
pub use storage::{StorageSetup, STORAGE_MAILBOX_DEPTH};
#[cfg(feature = "testing")]
pub use test_hooks::{EgressHandle, IngressHandle};

use crate::engines::ping::{PingEngine, PING_ENGINE_NAME};
use crate::identity::{EngineIdentity, Keypair, NodeIdentity, ROUTER_ENGINE_NAME};
use crate::identity_store::{IdentityLimits, IdentityStats, DEFAULT_MAX_RECORDS};
use crate::mail::domain::DomainDirectory;
use crate::mail::identity::{IdentityRequest, IdentityUpdate, Party};
use crate::pubsub::{PubSub, PubSubLimits, PubSubStats, PUBSUB_ENGINE_NAME};
use crate::router::{LocalEngines, Router, RouterLimits};
use crate::runtime::stats::{NodeStats, StatsSnapshot};
use crate::runtime::{Context, Engine, DEFAULT_MAILBOX_DEPTH, DEFAULT_ROUTER_MAILBOX_DEPTH};
use crate::time::Now;
use crate::transport::TransportConfig;
use crate::wire::{EngineAdvert, NodeAdvert, Protocol};
use client::Client;
use directory::EnginePost;
use engine_shell::{EngineShell, Links, Outlet};
use mailbox::EngineMail;
use nis_shell::{NisMail, NisShell};
use quic::driver::{Bound, Driver, DriverParts};
use router_shell::{RouterMail, RouterShell};
use transport_link::{TransportLink, TransportMail};

/// How long shutdown waits for engines to stop: 5 s.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How an engine is registered.
#[derive(Clone, Debug)]
pub struct EngineSpec {
    /// Its name, unique on the node; its key is derived from the node key and this name.
    pub name: String,
    /// Protocols it serves for messages addressed to the node itself.
    pub serves: Vec<Protocol>,
    /// Its mailbox depth.
    pub mailbox_depth: usize,
    /// Whether engines on other nodes may reach it by its identity: the node then signs an
    /// engine advert for it, hands it to every peer that connects and answers lookups with it.
    /// Off by default (other nodes learn where an engine runs only from its own messages or
    /// from their configuration).
    pub reachable: bool,
}

impl EngineSpec {
    /// A spec with the default mailbox, no served protocols, not reachable.
    pub fn named(name: &str) -> EngineSpec {
        EngineSpec {
            name: name.to_string(),
            serves: Vec::new(),
            mailbox_depth: DEFAULT_MAILBOX_DEPTH,
            reachable: false,
        }
    }

    /// Makes the engine reachable from other nodes by its identity (see
    /// [`EngineSpec::reachable`](EngineSpec#structfield.reachable)).
    pub fn reachable(mut self, reachable: bool) -> EngineSpec {
        self.reachable = reachable;
        self
    }

    /// Also serve `protocol` for messages addressed to the node.
    pub fn serving(mut self, protocol: Protocol) -> EngineSpec {
        self.serves.push(protocol);
        self
    }
}

/// Limits of a node, each with its documented default.
#[derive(Clone, Copy, Debug)]
pub struct NodeLimits {
    /// The Router's limits.
    pub router: RouterLimits,
    /// Default depth of engine mailboxes ([`DEFAULT_MAILBOX_DEPTH`]).
    pub mailbox_depth: usize,
    /// Depth of the Router's mailbox ([`DEFAULT_ROUTER_MAILBOX_DEPTH`]).
    pub router_mailbox_depth: usize,
    /// Most records in the Network Identity Store ([`DEFAULT_MAX_RECORDS`]).
    pub identity_records: usize,
    /// The identity service's lookups, advert lifetime and per-node engine limit.
    pub identity: IdentityLimits,
    /// How long the Router and engine threads poll an empty mailbox before parking
    /// ([`DEFAULT_SPIN_BEFORE_PARK`](crate::runtime::DEFAULT_SPIN_BEFORE_PARK), 50 µs).
    pub spin_before_park: Duration,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits {
            router: RouterLimits::default(),
            mailbox_depth: DEFAULT_MAILBOX_DEPTH,
            router_mailbox_depth: DEFAULT_ROUTER_MAILBOX_DEPTH,
            identity_records: DEFAULT_MAX_RECORDS,
            identity: IdentityLimits::default(),
            spin_before_park: crate::runtime::DEFAULT_SPIN_BEFORE_PARK,
        }
    }
}

/// Builds a node.
pub struct NodeBuilder {
    key: Keypair,
    engines: Vec<(EngineSpec, Box<dyn Engine>)>,
    peers: Vec<NodeAdvert>,
    permanent: Vec<NodeIdentity>,
    trust: Vec<(NodeIdentity, u8)>,
    locations: Vec<(EngineIdentity, NodeIdentity)>,
    engine_adverts: Vec<EngineAdvert>,
    limits: NodeLimits,
    ping: bool,
    pubsub: Option<PubSubLimits>,
    transport: Option<TransportConfig>,
    name: Option<String>,
    /// The Domain and Topology engines: `None` leaves them out.
    domains: Option<domains::DomainConfig>,
    /// The inter-domain engines: `None` leaves them out (opts out).
    interdomain: Option<InterdomainSettings>,
    /// The Storage engine: `None` (the default) leaves it out.
    storage: Option<StorageSetup>,
    seed: Option<u64>,
    /// Whom this node forwards relay messages for (default: nobody).
    relay: crate::relay::RelayPolicy,
    /// Where the identity store keeps its records across restarts (default: nowhere).
    identity_file: Option<std::path::PathBuf>,
}

impl NodeBuilder {
    /// A node with key `key`, the built-in `ping` engine, and default limits.
    pub fn new(key: Keypair) -> NodeBuilder {
        NodeBuilder {
            key,
            engines: Vec::new(),
            peers: Vec::new(),
            permanent: Vec::new(),
            trust: Vec::new(),
            locations: Vec::new(),
            engine_adverts: Vec::new(),
            limits: NodeLimits::default(),
            ping: true,
            pubsub: Some(PubSubLimits::default()),
            transport: None,
            name: None,
            domains: Some(domains::DomainConfig::default()),
            interdomain: Some(InterdomainSettings::default()),
            storage: None,
            seed: None,
            relay: crate::relay::RelayPolicy::default(),
            identity_file: None,
        }
    }

    /// Runs a Transport listening on `addr` (port 0 picks a free port; see
    /// [`Node::listen_addrs`]). May be called several times.
    pub fn listen(mut self, addr: SocketAddr) -> NodeBuilder {
        self.transport
            .get_or_insert_with(TransportConfig::default)
            .listen
            .push(addr);
        self
    }

    /// Runs a Transport with `config` (replacing addresses given to [`NodeBuilder::listen`]).
    pub fn transport(mut self, config: TransportConfig) -> NodeBuilder {
        self.transport = Some(config);
        self
    }

    /// Keeps a connection to `node` up: dialled at start and redialled whenever it drops.
    /// The node's advert must be given with [`NodeBuilder::peer`].
    pub fn permanent(mut self, node: NodeIdentity) -> NodeBuilder {
        self.permanent.push(node);
        self
    }

    /// Sets the local trust of `node`, stored in the Network Identity Store at start: 0 bans it
    /// (never dialled, its connections refused, messages for it bounced as `peer_refused`),
    /// 128 is the default, 255 full trust.
    pub fn trust(mut self, node: NodeIdentity, trust: u8) -> NodeBuilder {
        self.trust.retain(|(n, _)| *n != node);
        self.trust.push((node, trust));
        self
    }

    /// Records that the remote engine `engine` runs on `node`, so messages to it can be routed
    /// before any message from it has been seen (or learned from another node). Not needed for
    /// engines their node makes reachable: those are learned when connecting, or looked up.
    pub fn engine_location(mut self, engine: EngineIdentity, node: NodeIdentity) -> NodeBuilder {
        self.locations.push((engine, node));
        self
    }

    /// Adds a remote engine's signed advert to the Network Identity Store at start (like
    /// [`NodeBuilder::engine_location`], but verified, and handed on to peers that look it up).
    pub fn engine_advert(mut self, advert: EngineAdvert) -> NodeBuilder {
        self.engine_adverts.push(advert);
        self
    }

    /// A human-readable name carried in this node's advert.
    pub fn name(mut self, name: &str) -> NodeBuilder {
        self.name = Some(name.to_string());
        self
    }

    /// Adds an engine named `name` with the default mailbox.
    pub fn engine(self, name: &str, engine: impl Engine) -> NodeBuilder {
        let depth = self.limits.mailbox_depth;
        self.engine_with(
            EngineSpec {
                mailbox_depth: depth,
                ..EngineSpec::named(name)
            },
            engine,
        )
    }

    /// Adds an engine with a full spec.
    pub fn engine_with(mut self, spec: EngineSpec, engine: impl Engine) -> NodeBuilder {
        self.engines.push((spec, Box::new(engine)));
        self
    }

    /// Adds a peer's advert to the Network Identity Store at start.
    pub fn peer(mut self, advert: NodeAdvert) -> NodeBuilder {
        self.peers.push(advert);
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: NodeLimits) -> NodeBuilder {
        self.limits = limits;
        self
    }

    /// Leaves out the PubSub engine (nodes with a Transport run one by default).
    pub fn without_pubsub(mut self) -> NodeBuilder {
        self.pubsub = None;
        self
    }

    /// Sets the PubSub engine's limits.
    pub fn pubsub_limits(mut self, limits: PubSubLimits) -> NodeBuilder {
        self.pubsub = Some(limits);
        self
    }

    /// Leaves out the built-in `ping` engine.
    pub fn without_ping(mut self) -> NodeBuilder {
        self.ping = false;
        self
    }

    /// Starts the node's threads.
    ///
    /// Built-in engines: `ping` is not reachable by identity (it is reached as the node itself,
    /// `Destination::Node` with `Protocol::PING`); `pubsub` is reachable, since topic adverts
    /// name PubSub engines by identity.
    pub fn start(mut self) -> Result<Node, NodeError> {
        if self.ping {
            let spec = EngineSpec::named(PING_ENGINE_NAME).serving(Protocol::PING);
            self.engines
                .insert(0, (spec, Box::new(PingEngine::default())));
        }
        // One directory of memberships: the Domain engine writes it, the Router and PubSub
        // read it (empty, it keeps every domain-scoped message and topic from this node).
        let domain_directory = DomainDirectory::new();
        let domain_handles = self.add_domain_engines(&domain_directory);
        // PubSub publishes each topic's parents on it; Storage searches up topics' trees by it.
        let topic_parents = crate::mail::pubsub::TopicParents::new();
        let pubsub_stats = match self.pubsub {
            Some(limits) if self.transport.is_some() => {
                let stats = Arc::new(PubSubStats::default());
                let key = self.key.derive_engine(PUBSUB_ENGINE_NAME);
                // Deep enough for bursts of local publications (the Router never waits on it).
                let spec = EngineSpec {
                    mailbox_depth: 65_536,
                    ..EngineSpec::named(PUBSUB_ENGINE_NAME)
                        .serving(Protocol::PUBSUB)
                        .reachable(true)
                };
                let engine = PubSub::new(key, limits, Arc::clone(&stats))
                    .with_domains(domain_directory.clone())
                    .with_topic_parents(topic_parents.clone());
                self.engines.insert(0, (spec, Box::new(engine)));
                Some(stats)
            }
            _ => None,
        };
        let mut names = HashSet::new();
        for (spec, _) in &self.engines {
            if spec.name.is_empty() || spec.name == ROUTER_ENGINE_NAME {
                return Err(NodeError::BadEngineName(spec.name.clone()));
            }
            if !names.insert(spec.name.clone()) {
                return Err(NodeError::DuplicateEngine(spec.name.clone()));
            }
        }
        let node = self.key.node_identity();
        let stats = Arc::new(NodeStats::default());
        let locals = Arc::new(RwLock::new(Arc::new(LocalEngines::default())));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (router_tx, router_rx) = bounded(self.limits.router_mailbox_depth);
        let (nis_tx, nis_rx) = bounded(4096);
        let (done_tx, done_rx) = crossbeam_channel::unbounded();

        // The Transport binds its sockets first: the node's advert names the bound addresses.
        let mut transport_parts = None;
        let mut transport_link = None;
        let mut listen_addrs = Vec::new();
        let mut tcp_listen_addrs = Vec::new();
        let mut advertised = Vec::new();
        if let Some(config) = self.transport.take() {
            let bound = Bound::bind(&config.listen, &config.listen_tcp).map_err(|e| {
                NodeError::Transport(format!(
                    "cannot bind {:?} (UDP) and {:?} (TCP): {e}",
                    config.listen, config.listen_tcp
                ))
            })?;
            listen_addrs = bound.local_addrs();
            tcp_listen_addrs = bound.local_tcp_addrs();
            advertised = bound.advertised();
            if advertised.len() > crate::wire::advert::MAX_ADDRS {
                return Err(NodeError::TooManyAddresses(advertised.len()));
            }
            let (tx, rx) = bounded(config.limits.mailbox_depth);
            let woken = Arc::new(AtomicBool::new(false));
            transport_link = Some(TransportLink::new(tx, bound.waker(), Arc::clone(&woken)));
            transport_parts = Some((bound, config, rx, woken));
        }
        let peer_list: Vec<(NodeAdvert, bool)> = self
            .peers
            .iter()
            .map(|a| (a.clone(), self.permanent.contains(&a.id)))
            .collect();
        let explicit = self.explicit_view();
        let identity_stats = Arc::new(IdentityStats::default());
        let (identity_file, restored) = identity::open_file(self.identity_file.as_deref())?;
        let measured = identity::measurements(&restored);
        let service = identity::service(
            identity::Known {
                key: &self.key,
                name: self.name.clone(),
                addrs: advertised,
                has_transport: transport_link.is_some(),
                locations: self.locations,
                peers: self.peers,
                engine_adverts: self.engine_adverts,
                trust: self.trust.clone(),
                restored,
                persist: identity_file.is_some(),
            },
            &self.limits,
            Arc::clone(&identity_stats),
        )?;
        let advert = service.node_advert().clone();
        let shared_advert = Arc::new(RwLock::new(advert.clone()));
        let storage = match self.storage.take() {
            Some(setup) => {
                let (registration, handles) = storage::engine(
                    &self.key,
                    setup,
                    self.seed,
                    &domain_directory,
                    &topic_parents,
                    &shared_advert,
                );
                self.engines.push(registration);
                Some(handles)
            }
            None => None,
        };
        // The inter-domain engines carry the node's advert in its descriptor: they are made
        // once the Transport has bound the addresses it names.
        let interdomain = match self.interdomain.take() {
            Some(settings) if transport_link.is_some() => {
                let (list, handles) = interdomain::engines(
                    &self.key,
                    &advert,
                    settings,
                    explicit,
                    &domain_directory,
                    self.seed,
                );
                self.engines.extend(list);
                Some(handles)
            }
            _ => None,
        };

        let links = Links {
            node,
            router: router_tx.clone(),
            nis: nis_tx.clone(),
            transport: transport_link.clone(),
            locals: Arc::clone(&locals),
            stats: Arc::clone(&stats),
            failures: Arc::clone(&failures),
            spin: self.limits.spin_before_park,
        };
        let has_transport = transport_link.is_some();
        let mut router = Router::new(node, Arc::clone(&stats), self.limits.router, has_transport);
        router.set_domains(domain_directory.clone());
        if let Some(h) = &interdomain {
            router.set_domain_routes(h.routes.clone());
        }
        let relay_board = crate::relay::RelayBoard::default();
        let status_board = relay_board.clone();
        if has_transport {
            relaying::enable(&mut router, &self.key, self.relay.clone());
        }
        let mut router_shell = RouterShell {
            router,
            mailbox: router_rx,
            engines: Vec::new(),
            published: Arc::clone(&locals),
            nis: nis_tx.clone(),
            transport: transport_link.clone(),
            stats: Arc::clone(&stats),
            spin: self.limits.spin_before_park,
            engines_unsent: None,
            relay_board: has_transport.then(|| (relay_board.clone(), 0)),
        };

        let mut shells = Vec::new();
        let mut engines = Vec::new();
        for (spec, engine) in self.engines {
            let key = self.key.derive_engine(&spec.name);
            let identity = key.engine_identity();
            let (tx, rx) = bounded(spec.mailbox_depth);
            router_shell
                .register(
                    identity,
                    &spec.name,
                    &spec.serves,
                    spec.reachable,
                    tx.clone(),
                )
                .map_err(|_| NodeError::DuplicateEngine(spec.name.clone()))?;
            let ctx = Context::detached(Now::read(), identity, node, &spec.name);
            shells.push(EngineShell {
                name: spec.name.clone(),
                engine,
                ctx,
                outlet: Outlet::new(links.clone(), key),
                mailbox: rx,
                timers: Default::default(),
                own: Default::default(),
                receipts: Vec::new(),
            });
            engines.push(RunningEngine {
                name: spec.name,
                mailbox: tx,
                thread: None,
            });
        }

        let nis_shell = NisShell {
            service,
            mailbox: nis_rx,
            router: router_tx.clone(),
            transport: transport_link.clone(),
            stats: Arc::clone(&stats),
            advert: Arc::clone(&shared_advert),
            reply: None,
            file: identity_file,
            next_flush: std::time::Instant::now(),
        };
        let driver = match transport_parts {
            Some((bound, config, mailbox, woken)) => Some(
                Driver::new(
                    bound,
                    DriverParts {
                        key: self.key.clone(),
                        config,
                        advert: advert.clone(),
                        peers: peer_list,
                        trust: self.trust,
                        measured,
                        mailbox,
                        woken,
                        router: router_tx.clone(),
                        nis: nis_tx.clone(),
                        directory: EnginePost::new(router_tx.clone()),
                        stats: Arc::clone(&stats),
                        relay_board,
                    },
                )
                .map_err(NodeError::Transport)?,
            ),
            None => None,
        };
        let transport_thread = match driver {
            Some(d) => Some(spawn("nm-transport", done_tx.clone(), move || d.run())?),
            None => None,
        };
        let router_thread = spawn("nm-router", done_tx.clone(), move || router_shell.run())?;
        let nis_thread = spawn("nm-nis", done_tx.clone(), move || nis_shell.run())?;
        for (shell, running) in shells.into_iter().zip(engines.iter_mut()) {
            let name = format!("nm-{}", running.name);
            running.thread = Some(spawn(&name, done_tx.clone(), move || shell.run())?);
        }
        log::info!(
            "node {} started with engines: {}",
            node,
            engines
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Node {
            key: self.key,
            identity: node,
            links,
            limits: self.limits,
            engines,
            router_thread: Some(router_thread),
            nis_thread: Some(nis_thread),
            transport_thread,
            done: done_rx,
            stopped: false,
            advert: shared_advert,
            listen_addrs,
            tcp_listen_addrs,
            pubsub_stats,
            identity_stats,
            domain_directory,
            domains: domain_handles,
            interdomain,
            storage,
            client_seq: AtomicU64::new(0),
            relay_board: status_board,
        })
    }
}

fn spawn(
    name: &str,
    done: Sender<String>,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, NodeError> {
    let thread_name = name.to_string();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            f();
            let _ = done.send(thread_name);
        })
        .map_err(NodeError::Spawn)
}

struct RunningEngine {
    name: String,
    mailbox: Sender<EngineMail>,
    thread: Option<JoinHandle<()>>,
}

/// A running node.
pub struct Node {
    key: Keypair,
    identity: NodeIdentity,
    links: Links,
    limits: NodeLimits,
    engines: Vec<RunningEngine>,
    router_thread: Option<JoinHandle<()>>,
    nis_thread: Option<JoinHandle<()>>,
    transport_thread: Option<JoinHandle<()>>,
    done: Receiver<String>,
    stopped: bool,
    /// The current advert, published by the identity store's thread.
    advert: Arc<RwLock<NodeAdvert>>,
    listen_addrs: Vec<SocketAddr>,
    tcp_listen_addrs: Vec<SocketAddr>,
    pubsub_stats: Option<Arc<PubSubStats>>,
    identity_stats: Arc<IdentityStats>,
    domain_directory: DomainDirectory,
    domains: Option<domains::DomainHandles>,
    interdomain: Option<interdomain::InterdomainHandles>,
    storage: Option<storage::StorageHandles>,
    /// Numbers the node's internal clients (`domain-ask-<n>`).
    client_seq: AtomicU64,
    /// The connected peers the Transport publishes as relay candidates, with their RTT and the
    /// transport of their connection.
    relay_board: crate::relay::RelayBoard,
}

impl Node {
    /// This node's current signed advert: its addresses (at start its listen addresses, as
    /// bound; see [`Node::set_addresses`]) and name. It is re-signed before it expires.
    pub fn advert(&self) -> NodeAdvert {
        self.advert.read().clone()
    }

    /// The UDP addresses the Transport listens on for QUIC, as bound (port 0 resolved); empty
    /// without one.
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen_addrs
    }

    /// The TCP addresses the Transport listens on for TLS over TCP, as bound (port 0
    /// resolved); empty unless configured ([`TransportConfig::listen_tcp`]).
    pub fn tcp_listen_addrs(&self) -> &[SocketAddr] {
        &self.tcp_listen_addrs
    }

    /// The node's identity.
    pub fn identity(&self) -> NodeIdentity {
        self.identity
    }

    /// The identity of the local engine called `name`, if it is running.
    pub fn engine_identity(&self, name: &str) -> Option<EngineIdentity> {
        self.links.locals.read().find(name)
    }

    /// Names and identities of the running engines.
    pub fn engines(&self) -> Vec<(String, EngineIdentity)> {
        self.links.locals.read().list()
    }

    /// Registers a [`Client`] named `name`: an engine driven by the calling thread. Returns once
    /// the Router has registered it, so messages to it are routed from then on. It is not
    /// reachable from other nodes by its identity (see [`Node::client_reachable`]).
    pub fn client(&self, name: &str) -> Result<Client, NodeError> {
        self.client_as(name, false)
    }

    /// A [`Client`] like [`Node::client`] that other nodes can reach by its identity: the node
    /// advertises it to its peers while it is registered.
    pub fn client_reachable(&self, name: &str) -> Result<Client, NodeError> {
        self.client_as(name, true)
    }

    fn client_as(&self, name: &str, reachable: bool) -> Result<Client, NodeError> {
        if name.is_empty() || name == ROUTER_ENGINE_NAME {
            return Err(NodeError::BadEngineName(name.to_string()));
        }
        let key = self.key.derive_engine(name);
        let identity = key.engine_identity();
        let (tx, rx) = bounded(self.limits.mailbox_depth);
        let (done, registered) = bounded(1);
        self.links
            .router
            .send(RouterMail::Register {
                identity,
                name: name.to_string(),
                serves: Vec::new(),
                reachable,
                mailbox: tx,
                done: Some(done),
            })
            .map_err(|_| NodeError::Stopped)?;
        // The Router owns the table of local engines: it alone decides whether the name is free.
        match registered.recv() {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(NodeError::DuplicateEngine(name.to_string())),
            Err(_) => return Err(NodeError::Stopped),
        }
        let ctx = Context::detached(Now::read(), identity, self.identity, name);
        Ok(Client::new(ctx, Outlet::new(self.links.clone(), key), rx))
    }

    /// Applies `update` to the Network Identity Store (a peer's advert, an engine's location,
    /// local preferences) while the node runs; subscribers such as the Router and the Transport
    /// are notified as usual. Returns false if the node has stopped.
    pub fn learn(&self, update: IdentityUpdate) -> bool {
        self.links
            .nis
            .send(NisMail::Request {
                from: Party::Node,
                req: IdentityRequest::Update(update),
            })
            .is_ok()
    }

    /// A copy of the node's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.links.stats.snapshot()
    }

    /// The live counters.
    pub fn stats_handle(&self) -> Arc<NodeStats> {
        Arc::clone(&self.links.stats)
    }

    /// The PubSub engine's counters, if the node runs one.
    pub fn pubsub_stats(&self) -> Option<&PubSubStats> {
        self.pubsub_stats.as_deref()
    }

    /// Engines that panicked so far.
    pub fn failures(&self) -> Vec<EngineFailure> {
        self.links.failures.lock().clone()
    }
}
