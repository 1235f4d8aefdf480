//! The validated [`Settings`]: [`Settings::load`] reads the file into the raw structs and checks
//! every value (the key read from its file, addresses parsed, peer adverts verified, limits
//! checked), then [`Settings::node_builder`] hands them to a [`NodeBuilder`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::{DomainLimits, DomainSettings};
use crate::identity::{EngineIdentity, Keypair, NodeIdentity};
use crate::node::{InterdomainSettings, NodeBuilder, NodeLimits};
use crate::topology::TopologyLimits;
use crate::transport::TransportConfig;
use crate::wire::advert::MAX_NAME_BYTES;
use crate::wire::{EngineAdvert, NodeAdvert, HARD_LIMIT_BYTES};

use super::raw::RawConfig;
use super::*;

/// A node configuration that has passed every check: ready to build a node from.
#[derive(Debug)]
pub struct Settings {
    /// The node key, read from `key_path`.
    pub key: Keypair,
    /// Where the key was read from (resolved against the configuration file's directory).
    pub key_path: PathBuf,
    /// UDP addresses to listen on for QUIC, in file order, without duplicates.
    pub listen: Vec<SocketAddr>,
    /// TCP addresses to listen on for TLS over TCP (the fallback for networks that block
    /// UDP), in file order, without duplicates.
    pub listen_tcp: Vec<SocketAddr>,
    /// The name carried in this node's advert.
    pub name: Option<String>,
    /// Peers' verified adverts, each with whether its connection is kept up (`permanent`).
    /// Never contains this node, never the same node twice.
    pub peers: Vec<(NodeAdvert, bool)>,
    /// Trust set in `[[peers]]` tables (`trust = 0..255`; 0 bans the peer), by node, in file
    /// order. Peers without a `trust` key keep the default (128).
    pub trust: Vec<(NodeIdentity, u8)>,
    /// Remote engines from `[[engines]]`, in file order.
    pub engines: Vec<KnownEngine>,
    /// The Transport's configuration (its `listen` equals [`Settings::listen`]).
    pub transport: TransportConfig,
    /// The node's limits.
    pub limits: NodeLimits,
    /// The domains of `[[domains]]`, in file order (never the same domain twice).
    pub domains: Vec<DomainSettings>,
    /// The Domain engine's limits (`[domain]`).
    pub domain_limits: DomainLimits,
    /// The Topology engine's limits (`[topology]`).
    pub topology_limits: TopologyLimits,
    /// The inter-domain engines' settings (`[interdomain]`); `None` when `enabled = false`:
    /// the node opts out of the inter-domain protocols.
    pub interdomain: Option<InterdomainSettings>,
    /// The block store and the Storage engine (`[storage]`); `None` when `enabled = false`:
    /// the node keeps no store and runs no Storage engine.
    pub storage: Option<StorageConfig>,
    /// Whom this node forwards relay messages for (`[relay]`; default nobody).
    pub relay: crate::relay::RelayPolicy,
    /// Where the identity store keeps its records across restarts (`[identity] path`, default
    /// `<name>.identity.redb` beside the file); `None` with `persist = false`.
    pub identity_file: Option<PathBuf>,
}

/// A remote engine the configuration names: where it runs, and its verified advert if given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownEngine {
    /// The engine.
    pub engine: EngineIdentity,
    /// The node it runs on.
    pub node: NodeIdentity,
    /// Its signed advert (verified; its expiry is checked when the node starts).
    pub advert: Option<EngineAdvert>,
}

impl Settings {
    /// Reads, parses and checks the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            file: path.to_path_buf(),
            error,
        })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            file: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Settings::from_raw(raw, path)
    }

    /// A builder for the node these settings describe: its key, Transport, limits, name,
    /// peers (permanent ones marked so), domains and inter-domain engines.
    pub fn node_builder(&self) -> NodeBuilder {
        let mut builder = NodeBuilder::new(self.key.clone())
            .transport(self.transport.clone())
            .limits(self.limits)
            .relay_policy(self.relay.clone());
        if let Some(path) = &self.identity_file {
            builder = builder.identity_store_file(path.clone());
        }
        if let Some(name) = &self.name {
            builder = builder.name(name);
        }
        for (advert, permanent) in &self.peers {
            builder = builder.peer(advert.clone());
            if *permanent {
                builder = builder.permanent(advert.id);
            }
        }
        for &(node, trust) in &self.trust {
            builder = builder.trust(node, trust);
        }
        for e in &self.engines {
            builder = match &e.advert {
                Some(a) => builder.engine_advert(a.clone()),
                None => builder.engine_location(e.engine, e.node),
            };
        }
        for d in &self.domains {
            builder = builder.domain(d.clone());
        }
        builder = builder
            .domain_limits(self.domain_limits)
            .topology_limits(self.topology_limits.clone());
        match &self.interdomain {
            Some(s) => builder.interdomain(s.clone()),
            None => builder.without_interdomain(),
        }
    }

    /// This node's advert for its configured listen addresses (QUIC first, then TCP) and name,
    /// freshly signed, valid for
    /// [`CONFIG_ADVERT_LIFETIME`](crate::wire::advert::CONFIG_ADVERT_LIFETIME).
    pub fn advert(&self) -> NodeAdvert {
        let addrs = crate::wire::advert::listen_addresses(&self.listen, &self.listen_tcp);
        NodeAdvert::for_addresses(&self.key, addrs, self.name.clone())
    }

    /// The advert of this node's engine called `name` (its key derived from the node key),
    /// freshly signed and valid as long as [`Settings::advert`]'s: the line other nodes put in
    /// `[[engines]] advert`. The name must be a valid engine name.
    pub fn engine_advert(&self, name: &str) -> Result<EngineAdvert, crate::node::NodeError> {
        if name.is_empty()
            || name == crate::identity::ROUTER_ENGINE_NAME
            || name.len() > MAX_NAME_BYTES
        {
            return Err(crate::node::NodeError::BadEngineName(name.to_string()));
        }
        let now = crate::time::wall_clock();
        Ok(EngineAdvert::new_signed(
            &self.key.derive_engine(name),
            self.key.node_identity(),
            name,
            now.0,
            now,
            now.after(crate::wire::advert::CONFIG_ADVERT_LIFETIME),
        ))
    }

    /// The identity of the configured node.
    pub fn node_identity(&self) -> NodeIdentity {
        self.key.node_identity()
    }

    /// The configured peer `node`, with whether it is permanent.
    pub fn peer(&self, node: NodeIdentity) -> Option<&(NodeAdvert, bool)> {
        self.peers.iter().find(|(advert, _)| advert.id == node)
    }

    fn from_raw(raw: RawConfig, file: &Path) -> Result<Settings, ConfigError> {
        let file_buf = file.to_path_buf();
        let base = file.parent().unwrap_or_else(|| Path::new(""));
        let key_path = base.join(&raw.key_file);
        let key = Keypair::read_file(&key_path).map_err(|error| ConfigError::KeyFile {
            file: file_buf.clone(),
            path: key_path.clone(),
            error,
        })?;
        let me = key.node_identity();

        let listen = parse_addresses(&file_buf, "listen", &raw.listen)?;
        let listen_tcp = parse_addresses(&file_buf, "listen_tcp", &raw.listen_tcp)?;

        if let Some(name) = &raw.name {
            if name.is_empty() || name.len() > MAX_NAME_BYTES {
                return Err(ConfigError::BadName {
                    file: file_buf,
                    len: name.len(),
                });
            }
        }

        let mut peers: Vec<(NodeAdvert, bool)> = Vec::with_capacity(raw.peers.len());
        let mut trust = Vec::new();
        let mut seen: HashMap<NodeIdentity, usize> = HashMap::new();
        for (i, peer) in raw.peers.into_iter().enumerate() {
            let key = format!("peers[{i}].advert");
            let advert = NodeAdvert::from_line(&peer.advert)
                .map_err(|error| ConfigError::BadAdvert {
                    file: file_buf.clone(),
                    key: key.clone(),
                    error,
                })?
                .into_inner();
            if advert.id == me {
                return Err(ConfigError::OwnAdvert {
                    file: file_buf,
                    key,
                });
            }
            if let Some(first) = seen.insert(advert.id, i) {
                return Err(ConfigError::DuplicatePeer {
                    file: file_buf,
                    key,
                    first: format!("peers[{first}].advert"),
                    node: advert.id,
                });
            }
            if peer.permanent && advert.addrs.is_empty() {
                return Err(ConfigError::PermanentWithoutAddress {
                    file: file_buf,
                    key: format!("peers[{i}].permanent"),
                    node: advert.id,
                });
            }
            if let Some(t) = peer.trust {
                let t = u8::try_from(t).map_err(|_| ConfigError::TooLarge {
                    file: file_buf.clone(),
                    key: format!("peers[{i}].trust"),
                    max: u64::from(u8::MAX),
                })?;
                trust.push((advert.id, t));
            }
            peers.push((advert, peer.permanent));
        }

        let mut engines = Vec::with_capacity(raw.engines.len());
        for (i, e) in raw.engines.into_iter().enumerate() {
            let bad = |what| ConfigError::BadEngine {
                file: file_buf.clone(),
                key: format!("engines[{i}]"),
                what,
            };
            let bad_id = |field: &str, error| ConfigError::BadIdentity {
                file: file_buf.clone(),
                key: format!("engines[{i}].{field}"),
                error,
            };
            let engine = match e.engine.as_deref() {
                Some(t) => Some(
                    t.parse::<EngineIdentity>()
                        .map_err(|x| bad_id("engine", x))?,
                ),
                None => None,
            };
            let node = match e.node.as_deref() {
                Some(t) => Some(t.parse::<NodeIdentity>().map_err(|x| bad_id("node", x))?),
                None => None,
            };
            let advert = match &e.advert {
                None => None,
                Some(line) => Some(
                    EngineAdvert::from_line(line)
                        .map_err(|error| ConfigError::BadAdvert {
                            file: file_buf.clone(),
                            key: format!("engines[{i}].advert"),
                            error,
                        })?
                        .into_inner(),
                ),
            };
            let known = match (engine, node, advert) {
                (Some(engine), Some(node), None) => KnownEngine {
                    engine,
                    node,
                    advert: None,
                },
                (engine, node, Some(a)) => {
                    if engine.is_some_and(|x| x != a.engine) || node.is_some_and(|n| n != a.node) {
                        return Err(bad("`engine` or `node` is not the one its advert names"));
                    }
                    KnownEngine {
                        engine: a.engine,
                        node: a.node,
                        advert: Some(a),
                    }
                }
                _ => return Err(bad("needs `engine` and `node`, or an `advert`")),
            };
            if known.node == me {
                return Err(bad("the engine runs on this node itself"));
            }
            engines.push(known);
        }

        let domains = super::domains::domains(raw.domains, file, base, me)?;
        let domain_limits = super::domains::domain_limits(raw.domain, file)?;
        let topology_limits = super::domains::topology_limits(raw.topology, file)?;
        let interdomain = super::interdomain::interdomain(raw.interdomain, file)?;
        let storage = super::storage::storage(raw.storage, file, base)?;
        let relay = super::relay::relay(raw.relay, file)?;

        let nonzero = |key: &str, value: u64| -> Result<u64, ConfigError> {
            if value == 0 {
                Err(ConfigError::Zero {
                    file: file.to_path_buf(),
                    key: key.to_string(),
                })
            } else {
                Ok(value)
            }
        };
        let nonzero_usize = |key: &str, value: usize| -> Result<usize, ConfigError> {
            nonzero(key, value as u64).map(|_| value)
        };

        let mut transport = TransportConfig {
            listen: listen.clone(),
            listen_tcp: listen_tcp.clone(),
            accept_unknown_peers: raw.accept_unknown_peers,
            ..TransportConfig::default()
        };
        let t = raw.transport;
        if let Some(ms) = t.idle_timeout_ms {
            transport.idle_timeout =
                Duration::from_millis(nonzero("transport.idle_timeout_ms", ms)?);
        }
        if let Some(ms) = t.backoff_initial_ms {
            transport.backoff_initial =
                Duration::from_millis(nonzero("transport.backoff_initial_ms", ms)?);
        }
        if let Some(ms) = t.backoff_max_ms {
            transport.backoff_max = Duration::from_millis(nonzero("transport.backoff_max_ms", ms)?);
        }
        if transport.backoff_initial > transport.backoff_max {
            return Err(ConfigError::BackoffOrder {
                file: file_buf,
                initial: transport.backoff_initial,
                max: transport.backoff_max,
            });
        }
        if let Some(o) = t.default_ordering {
            transport.default_tprefs.ordering = o.into();
        }
        if let Some(r) = t.default_reliability {
            transport.default_tprefs.reliability = r.into();
        }
        if let Some(kinds) = t.transports {
            let bad = |what: &str| ConfigError::BadValue {
                file: file_buf.clone(),
                key: "transport.transports".to_string(),
                what: what.to_string(),
            };
            if kinds.is_empty() {
                return Err(bad(
                    "is empty; list \"quic\", \"tcp\" or both, most preferred first",
                ));
            }
            if kinds
                .iter()
                .enumerate()
                .any(|(i, k)| kinds[..i].contains(k))
            {
                return Err(bad("names a transport twice"));
            }
            transport.transports = kinds.into_iter().map(Into::into).collect();
        }
        if let Some(ms) = t.connect_timeout_ms {
            transport.connect_timeout =
                Duration::from_millis(nonzero("transport.connect_timeout_ms", ms)?);
        }

        let l = raw.limits;
        let tl = &mut transport.limits;
        let mut limits = NodeLimits::default();
        if let Some(v) = l.max_frame_bytes {
            tl.max_frame_bytes = nonzero_usize("limits.max_frame_bytes", v)?;
            if v > HARD_LIMIT_BYTES {
                return Err(ConfigError::TooLarge {
                    file: file_buf,
                    key: "limits.max_frame_bytes".into(),
                    max: HARD_LIMIT_BYTES as u64,
                });
            }
        }
        if let Some(v) = l.max_partial_frame_bytes {
            tl.max_partial_frame_bytes = nonzero_usize("limits.max_partial_frame_bytes", v)?;
        }
        if tl.max_partial_frame_bytes < tl.max_frame_bytes {
            return Err(ConfigError::PartialFrameLimit {
                file: file_buf,
                partial: tl.max_partial_frame_bytes,
                frame: tl.max_frame_bytes,
            });
        }
        if let Some(v) = l.max_connections {
            tl.max_connections = nonzero_usize("limits.max_connections", v)?;
        }
        if let Some(v) = l.max_connections_per_ip {
            tl.max_connections_per_ip = nonzero_usize("limits.max_connections_per_ip", v)?;
        }
        if let Some(v) = l.max_peer_queue_bytes {
            tl.max_peer_queue_bytes = nonzero_usize("limits.max_peer_queue_bytes", v)?;
        }
        if let Some(v) = l.max_pair_streams {
            tl.max_pair_streams = nonzero_usize("limits.max_pair_streams", v)?;
        }
        if let Some(v) = l.transport_mailbox_depth {
            tl.mailbox_depth = nonzero_usize("limits.transport_mailbox_depth", v)?;
        }
        if let Some(v) = l.mailbox_depth {
            limits.mailbox_depth = nonzero_usize("limits.mailbox_depth", v)?;
        }
        if let Some(v) = l.router_mailbox_depth {
            limits.router_mailbox_depth = nonzero_usize("limits.router_mailbox_depth", v)?;
        }
        if let Some(v) = l.identity_records {
            limits.identity_records = nonzero_usize("limits.identity_records", v)?;
        }
        if let Some(s) = l.max_message_lifetime_s {
            limits.router.ingress.max_lifetime =
                Duration::from_secs(nonzero("limits.max_message_lifetime_s", s)?);
        }
        if let Some(n) = l.bad_messages_before_disconnect {
            limits.router.conduct.bad_messages_before_disconnect =
                nonzero("limits.bad_messages_before_disconnect", u64::from(n))? as u32;
        }
        if let Some(s) = l.misbehaving_peer_backoff_s {
            limits.router.conduct.backoff =
                Duration::from_secs(nonzero("limits.misbehaving_peer_backoff_s", s)?);
        }
        let id = raw.identity;
        let il = &mut limits.identity;
        if let Some(s) = id.advert_lifetime_s {
            il.advert_lifetime = Duration::from_secs(nonzero("identity.advert_lifetime_s", s)?);
        }
        if let Some(v) = id.max_lookups {
            il.lookups.max_outstanding = nonzero_usize("identity.max_lookups", v)?;
        }
        if let Some(ms) = id.lookup_timeout_ms {
            il.lookups.timeout = Duration::from_millis(nonzero("identity.lookup_timeout_ms", ms)?);
        }
        if let Some(v) = id.lookup_fanout {
            il.lookups.fanout = nonzero_usize("identity.lookup_fanout", v)?;
        }
        if let Some(s) = id.negative_cache_s {
            il.lookups.negative_ttl = Duration::from_secs(s);
        }
        if let Some(v) = id.max_engines_per_node {
            il.max_engines_per_node = nonzero_usize("identity.max_engines_per_node", v)?;
        }
        let identity_file = match (id.persist.unwrap_or(true), id.path) {
            (false, _) => None,
            (true, Some(p)) if p.as_os_str().is_empty() => {
                return Err(ConfigError::BadValue {
                    file: file_buf.clone(),
                    key: "identity.path".into(),
                    what: "must not be empty".into(),
                })
            }
            (true, Some(p)) => Some(base.join(p)),
            (true, None) => Some(default_identity_file(file)),
        };
        let p = raw.performance;
        if let Some(v) = p.verifier_threads {
            if v > 64 {
                return Err(ConfigError::TooLarge {
                    file: file_buf,
                    key: "performance.verifier_threads".into(),
                    max: 64,
                });
            }
            limits.router.verifier_threads = v;
        }
        if let Some(us) = p.spin_before_park_us {
            if us > 1_000_000 {
                return Err(ConfigError::TooLarge {
                    file: file_buf,
                    key: "performance.spin_before_park_us".into(),
                    max: 1_000_000,
                });
            }
            limits.spin_before_park = Duration::from_micros(us);
        }

        Ok(Settings {
            key,
            key_path,
            listen,
            listen_tcp,
            name: raw.name,
            peers,
            trust,
            engines,
            transport,
            limits,
            domains,
            domain_limits,
            topology_limits,
            interdomain,
            storage,
            relay,
            identity_file,
        })
    }
}

/// What the default identity store file's name ends with: `node1.toml`'s is
/// `node1.identity.redb` beside it.
pub const DEFAULT_IDENTITY_SUFFIX: &str = ".identity.redb";

/// The identity store file when `identity.path` is not set: the configuration file's name
/// without its extension, with [`DEFAULT_IDENTITY_SUFFIX`], in the same directory.
pub fn default_identity_file(config: &Path) -> PathBuf {
    super::storage::beside_config(config, DEFAULT_IDENTITY_SUFFIX)
}

/// The addresses of `texts` (the list at `key`), parsed, in order, refusing duplicates.
fn parse_addresses(
    file: &Path,
    key: &str,
    texts: &[String],
) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut out = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let key = format!("{key}[{i}]");
        let addr: SocketAddr = text
            .trim()
            .parse()
            .map_err(|error| ConfigError::BadAddress {
                file: file.to_path_buf(),
                key: key.clone(),
                value: text.clone(),
                error,
            })?;
        if out.contains(&addr) {
            return Err(ConfigError::DuplicateAddress {
                file: file.to_path_buf(),
                key,
                addr,
            });
        }
        out.push(addr);
    }
    Ok(out)
}
