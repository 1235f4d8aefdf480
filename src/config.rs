//! Node configuration files: TOML text → [`Settings`] (validated) → [`NodeBuilder`].
//!
//! The file is read into a raw struct that mirrors the TOML exactly (unknown keys are refused at
//! every level), then [`Settings::load`] turns it into values the node can use — the key read
//! from its file, addresses parsed, peer adverts verified, limits checked — or a
//! [`ConfigError`] that names the file and the offending key. Nothing downstream re-checks.
//!
//! ```toml
//! # Required.
//! key_file = "node1.key"            # PKCS#8 PEM key, relative to this file's directory
//! listen = ["127.0.0.1:7001"]       # UDP addresses for QUIC; may be empty (dial out only)
//!
//! # Optional.
//! name = "node1"                    # carried in this node's advert, at most 64 bytes
//! accept_unknown_peers = true       # let nodes that are not listed below connect (default true)
//!
//! [[peers]]                         # one table per peer
//! advert = "nmadvert1:..."          # the line `netmachine advert --config <its file>` prints
//! permanent = false                 # keep a connection up and redial it (default false)
//!
//! [transport]                       # every key optional; the values shown are the defaults
//! idle_timeout_ms = 10000
//! backoff_initial_ms = 100
//! backoff_max_ms = 5000
//! default_ordering = "ordered"      # or "unordered"
//! default_reliability = "reliable"  # or "unreliable"
//!
//! [limits]                          # every key optional; the values shown are the defaults;
//! max_frame_bytes = 8388608         # none may be zero
//! max_partial_frame_bytes = 67108864  # not below max_frame_bytes
//! max_connections = 1024
//! max_connections_per_ip = 64
//! max_peer_queue_bytes = 33554432
//! max_pair_streams = 256
//! transport_mailbox_depth = 65536
//! mailbox_depth = 4096
//! router_mailbox_depth = 65536
//! identity_records = 100000
//! max_message_lifetime_s = 600
//!
//! [performance]                     # every key optional
//! verifier_threads = 2              # signature-checking threads; default: the cores, at most 4
//! spin_before_park_us = 50          # poll an empty mailbox this long before parking
//! ```
//!
//! The defaults come from [`TransportConfig`],
//! [`TransportLimits`](crate::transport::TransportLimits) and [`NodeLimits`] (a unit test checks
//! that the values above still match them).
//! `limits.mailbox_depth` is the default depth of engine mailboxes, `transport_mailbox_depth` the
//! Transport's, and `max_message_lifetime_s` how far ahead a remote message's expiry may be.
//! `max_frame_bytes` may not exceed the wire's hard limit ([`HARD_LIMIT_BYTES`], 64 MiB).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{AddrParseError, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::identity::{KeyFileError, Keypair, NodeIdentity};
use crate::node::{NodeBuilder, NodeLimits};
use crate::transport::TransportConfig;
use crate::wire::advert::{AdvertError, MAX_NAME_BYTES};
use crate::wire::{NodeAdvert, Ordering, Reliability, HARD_LIMIT_BYTES};

// ---------------------------------------------------------------------------------------------
// Validated settings.

/// A node configuration that has passed every check: ready to build a node from.
#[derive(Debug)]
pub struct Settings {
    /// The node key, read from `key_path`.
    pub key: Keypair,
    /// Where the key was read from (resolved against the configuration file's directory).
    pub key_path: PathBuf,
    /// Addresses to listen on, in file order, without duplicates.
    pub listen: Vec<SocketAddr>,
    /// The name carried in this node's advert.
    pub name: Option<String>,
    /// Peers' verified adverts, each with whether its connection is kept up (`permanent`).
    /// Never contains this node, never the same node twice.
    pub peers: Vec<(NodeAdvert, bool)>,
    /// The Transport's configuration (its `listen` equals [`Settings::listen`]).
    pub transport: TransportConfig,
    /// The node's limits.
    pub limits: NodeLimits,
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

    /// A builder for the node these settings describe: its key, Transport, limits, name and
    /// peers (permanent ones marked so).
    pub fn node_builder(&self) -> NodeBuilder {
        let mut builder = NodeBuilder::new(self.key.clone())
            .transport(self.transport.clone())
            .limits(self.limits);
        if let Some(name) = &self.name {
            builder = builder.name(name);
        }
        for (advert, permanent) in &self.peers {
            builder = builder.peer(advert.clone());
            if *permanent {
                builder = builder.permanent(advert.id);
            }
        }
        builder
    }

    /// This node's advert for its configured listen addresses and name, freshly signed.
    pub fn advert(&self) -> NodeAdvert {
        NodeAdvert::for_listen(&self.key, &self.listen, self.name.clone())
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

        let mut listen = Vec::with_capacity(raw.listen.len());
        for (i, text) in raw.listen.iter().enumerate() {
            let key = format!("listen[{i}]");
            let addr: SocketAddr =
                text.trim()
                    .parse()
                    .map_err(|error| ConfigError::BadAddress {
                        file: file_buf.clone(),
                        key: key.clone(),
                        value: text.clone(),
                        error,
                    })?;
            if listen.contains(&addr) {
                return Err(ConfigError::DuplicateAddress {
                    file: file_buf,
                    key,
                    addr,
                });
            }
            listen.push(addr);
        }

        if let Some(name) = &raw.name {
            if name.is_empty() || name.len() > MAX_NAME_BYTES {
                return Err(ConfigError::BadName {
                    file: file_buf,
                    len: name.len(),
                });
            }
        }

        let mut peers: Vec<(NodeAdvert, bool)> = Vec::with_capacity(raw.peers.len());
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
            peers.push((advert, peer.permanent));
        }

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
            name: raw.name,
            peers,
            transport,
            limits,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// Why a configuration file was refused. The message always names the file, and the key when
/// one is at fault (`listen[1]`, `peers[0].advert`, `limits.mailbox_depth`, …).
#[derive(Debug)]
pub enum ConfigError {
    /// The configuration file could not be read.
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The file is not valid TOML, a key is unknown or missing, or a value has the wrong type.
    /// The message is the TOML parser's; it names the key and shows the line.
    Syntax {
        /// The file.
        file: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The key file could not be read or is not an Ed25519 key.
    KeyFile {
        /// The configuration file.
        file: PathBuf,
        /// The key file, resolved against the configuration file's directory.
        path: PathBuf,
        /// Why.
        error: KeyFileError,
    },
    /// A listen address is not `ip:port`.
    BadAddress {
        /// The file.
        file: PathBuf,
        /// The key, `listen[i]`.
        key: String,
        /// The text given.
        value: String,
        /// Why it does not parse.
        error: AddrParseError,
    },
    /// A listen address appears twice.
    DuplicateAddress {
        /// The file.
        file: PathBuf,
        /// The key of the second occurrence, `listen[i]`.
        key: String,
        /// The address.
        addr: SocketAddr,
    },
    /// The node name is empty or longer than [`MAX_NAME_BYTES`].
    BadName {
        /// The file.
        file: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// A peer advert does not parse or its signature does not verify.
    BadAdvert {
        /// The file.
        file: PathBuf,
        /// The key, `peers[i].advert`.
        key: String,
        /// Why.
        error: AdvertError,
    },
    /// A peer advert is this node's own.
    OwnAdvert {
        /// The file.
        file: PathBuf,
        /// The key, `peers[i].advert`.
        key: String,
    },
    /// Two peer entries are for the same node.
    DuplicatePeer {
        /// The file.
        file: PathBuf,
        /// The key of the second entry.
        key: String,
        /// The key of the first entry.
        first: String,
        /// The node.
        node: NodeIdentity,
    },
    /// A peer marked permanent has no address to dial.
    PermanentWithoutAddress {
        /// The file.
        file: PathBuf,
        /// The key, `peers[i].permanent`.
        key: String,
        /// The node.
        node: NodeIdentity,
    },
    /// A limit or duration is zero.
    Zero {
        /// The file.
        file: PathBuf,
        /// The key, such as `limits.mailbox_depth`.
        key: String,
    },
    /// A limit is above what the node can honour.
    TooLarge {
        /// The file.
        file: PathBuf,
        /// The key.
        key: String,
        /// The largest accepted value.
        max: u64,
    },
    /// `transport.backoff_initial_ms` is above `transport.backoff_max_ms`.
    BackoffOrder {
        /// The file.
        file: PathBuf,
        /// The first redial delay.
        initial: Duration,
        /// The longest redial delay.
        max: Duration,
    },
    /// `limits.max_partial_frame_bytes` is below `limits.max_frame_bytes` (a single frame of the
    /// largest size could not be received).
    PartialFrameLimit {
        /// The file.
        file: PathBuf,
        /// `limits.max_partial_frame_bytes`.
        partial: usize,
        /// `limits.max_frame_bytes`.
        frame: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { file, error } => {
                write!(f, "{}: cannot read configuration: {error}", file.display())
            }
            ConfigError::Syntax { file, message } => {
                write!(f, "{}: {}", file.display(), message.trim_end())
            }
            ConfigError::KeyFile { file, path, error } => write!(
                f,
                "{}: key `key_file`: cannot read key file {}: {error}",
                file.display(),
                path.display()
            ),
            ConfigError::BadAddress {
                file,
                key,
                value,
                error,
            } => write!(
                f,
                "{}: key `{key}`: {value:?} is not a socket address like \
                 \"127.0.0.1:7001\" ({error})",
                file.display()
            ),
            ConfigError::DuplicateAddress { file, key, addr } => write!(
                f,
                "{}: key `{key}`: address {addr} is listed twice",
                file.display()
            ),
            ConfigError::BadName { file, len } => write!(
                f,
                "{}: key `name`: must be 1 to {MAX_NAME_BYTES} bytes, not {len}",
                file.display()
            ),
            ConfigError::BadAdvert { file, key, error } => {
                write!(f, "{}: key `{key}`: {error}", file.display())
            }
            ConfigError::OwnAdvert { file, key } => write!(
                f,
                "{}: key `{key}`: this is the advert of this node itself, not of a peer",
                file.display()
            ),
            ConfigError::DuplicatePeer {
                file,
                key,
                first,
                node,
            } => write!(
                f,
                "{}: key `{key}`: node {} is already listed at `{first}`",
                file.display(),
                node.short()
            ),
            ConfigError::PermanentWithoutAddress { file, key, node } => write!(
                f,
                "{}: key `{key}`: node {} is permanent but its advert has no address",
                file.display(),
                node.short()
            ),
            ConfigError::Zero { file, key } => {
                write!(f, "{}: key `{key}`: must not be zero", file.display())
            }
            ConfigError::TooLarge { file, key, max } => {
                write!(f, "{}: key `{key}`: must be at most {max}", file.display())
            }
            ConfigError::BackoffOrder { file, initial, max } => write!(
                f,
                "{}: key `transport.backoff_initial_ms`: {} ms is above \
                 `transport.backoff_max_ms` ({} ms)",
                file.display(),
                initial.as_millis(),
                max.as_millis()
            ),
            ConfigError::PartialFrameLimit {
                file,
                partial,
                frame,
            } => write!(
                f,
                "{}: key `limits.max_partial_frame_bytes`: {partial} is below \
                 `limits.max_frame_bytes` ({frame})",
                file.display()
            ),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { error, .. } => Some(error),
            ConfigError::KeyFile { error, .. } => Some(error),
            ConfigError::BadAddress { error, .. } => Some(error),
            ConfigError::BadAdvert { error, .. } => Some(error),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The raw file, exactly as written.

/// The top level of the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    key_file: PathBuf,
    listen: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "default_true")]
    accept_unknown_peers: bool,
    #[serde(default)]
    peers: Vec<RawPeer>,
    #[serde(default)]
    transport: RawTransport,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    performance: RawPerformance,
}

/// The `[performance]` table; an absent key keeps the default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPerformance {
    verifier_threads: Option<usize>,
    spin_before_park_us: Option<u64>,
}

fn default_true() -> bool {
    true
}

/// One `[[peers]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    advert: String,
    #[serde(default)]
    permanent: bool,
}

/// The `[transport]` table; an absent key keeps the [`TransportConfig`] default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTransport {
    idle_timeout_ms: Option<u64>,
    backoff_initial_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    default_ordering: Option<RawOrdering>,
    default_reliability: Option<RawReliability>,
}

/// `transport.default_ordering`.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawOrdering {
    Ordered,
    Unordered,
}

impl From<RawOrdering> for Ordering {
    fn from(o: RawOrdering) -> Ordering {
        match o {
            RawOrdering::Ordered => Ordering::Ordered,
            RawOrdering::Unordered => Ordering::Unordered,
        }
    }
}

/// `transport.default_reliability`.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawReliability {
    Reliable,
    Unreliable,
}

impl From<RawReliability> for Reliability {
    fn from(r: RawReliability) -> Reliability {
        match r {
            RawReliability::Reliable => Reliability::Reliable,
            RawReliability::Unreliable => Reliability::Unreliable,
        }
    }
}

/// The `[limits]` table; an absent key keeps the default of the limit it sets.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_frame_bytes: Option<usize>,
    max_partial_frame_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_peer_queue_bytes: Option<usize>,
    max_pair_streams: Option<usize>,
    transport_mailbox_depth: Option<usize>,
    mailbox_depth: Option<usize>,
    router_mailbox_depth: Option<usize>,
    identity_records: Option<usize>,
    max_message_lifetime_s: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::TransportLimits;

    /// A directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            use std::sync::atomic::{AtomicU64, Ordering};
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "netmachine-config-{tag}-{}-{n}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A temp dir with `node.key` written, and the advert line of another node.
    fn setup(tag: &str) -> (TempDir, Keypair, Keypair, String) {
        let dir = TempDir::new(tag);
        let key = Keypair::generate();
        key.write_file(&dir.0.join("node.key")).unwrap();
        let other = Keypair::generate();
        let line =
            NodeAdvert::for_listen(&other, &["127.0.0.1:7002".parse().unwrap()], None).to_line();
        (dir, key, other, line)
    }

    fn minimal(line: &str) -> String {
        format!(
            "key_file = \"node.key\"\nlisten = [\"127.0.0.1:7001\"]\n\n\
             [[peers]]\nadvert = \"{line}\"\n"
        )
    }

    fn load_err(path: &Path) -> String {
        Settings::load(path).unwrap_err().to_string()
    }

    #[test]
    fn minimal_file_works() {
        let (dir, key, other, line) = setup("minimal");
        let path = dir.write("node.toml", &minimal(&line));
        let s = Settings::load(&path).unwrap();
        assert_eq!(s.key.node_identity(), key.node_identity());
        assert_eq!(s.listen, vec!["127.0.0.1:7001".parse().unwrap()]);
        assert_eq!(s.transport.listen, s.listen);
        assert_eq!(s.name, None);
        assert_eq!(s.peers.len(), 1);
        assert_eq!(s.peers[0].0.id, other.node_identity());
        assert!(!s.peers[0].1);
        assert!(s.peer(other.node_identity()).is_some());
        assert!(s.transport.accept_unknown_peers);
        assert_eq!(s.transport.limits, TransportLimits::default());
        assert_eq!(
            s.transport.idle_timeout,
            TransportConfig::default().idle_timeout
        );
        assert_eq!(s.limits.mailbox_depth, NodeLimits::default().mailbox_depth);
        let advert = s.advert();
        assert_eq!(advert.id, key.node_identity());
        let back = NodeAdvert::from_line(&advert.to_line()).unwrap();
        assert_eq!(back.addrs[0].0.socket_addr(), s.listen[0]);
        // The builder accepts what the settings hold.
        let _ = s.node_builder();
    }

    #[test]
    fn every_key_is_applied() {
        let (dir, _key, other, line) = setup("full");
        let text = format!(
            r#"key_file = "node.key"
listen = ["127.0.0.1:7001", "[::1]:7001"]
name = "alpha"
accept_unknown_peers = false

[[peers]]
advert = "{line}"
permanent = true

[transport]
idle_timeout_ms = 3000
backoff_initial_ms = 50
backoff_max_ms = 2000
default_ordering = "unordered"
default_reliability = "unreliable"

[limits]
max_frame_bytes = 1000
max_partial_frame_bytes = 1500
max_connections = 2
max_connections_per_ip = 3
max_peer_queue_bytes = 4000
max_pair_streams = 5
transport_mailbox_depth = 6
mailbox_depth = 7
router_mailbox_depth = 8
identity_records = 9
max_message_lifetime_s = 10

[performance]
verifier_threads = 3
spin_before_park_us = 7
"#
        );
        let s = Settings::load(&dir.write("full.toml", &text)).unwrap();
        assert_eq!(s.listen.len(), 2);
        assert_eq!(s.name.as_deref(), Some("alpha"));
        assert_eq!(s.peers[0].0.id, other.node_identity());
        assert!(s.peers[0].1);
        let t = &s.transport;
        assert!(!t.accept_unknown_peers);
        assert_eq!(t.idle_timeout, Duration::from_millis(3000));
        assert_eq!(t.backoff_initial, Duration::from_millis(50));
        assert_eq!(t.backoff_max, Duration::from_millis(2000));
        assert_eq!(t.default_tprefs.ordering, Ordering::Unordered);
        assert_eq!(t.default_tprefs.reliability, Reliability::Unreliable);
        assert_eq!(
            t.limits,
            TransportLimits {
                max_frame_bytes: 1000,
                max_partial_frame_bytes: 1500,
                max_connections: 2,
                max_connections_per_ip: 3,
                max_peer_queue_bytes: 4000,
                max_pair_streams: 5,
                mailbox_depth: 6,
            }
        );
        assert_eq!(s.limits.mailbox_depth, 7);
        assert_eq!(s.limits.router_mailbox_depth, 8);
        assert_eq!(s.limits.identity_records, 9);
        assert_eq!(s.limits.router.verifier_threads, 3);
        assert_eq!(s.limits.spin_before_park, Duration::from_micros(7));
        assert_eq!(
            s.limits.router.ingress.max_lifetime,
            Duration::from_secs(10)
        );
        assert_eq!(s.advert().name.as_deref(), Some("alpha"));
    }

    #[test]
    fn documented_defaults_match_the_code() {
        let (dir, _key, _other, line) = setup("doc-defaults");
        // The [transport] and [limits] tables of the module documentation.
        let text = format!(
            r#"{}
[transport]
idle_timeout_ms = 10000
backoff_initial_ms = 100
backoff_max_ms = 5000
default_ordering = "ordered"
default_reliability = "reliable"

[limits]
max_frame_bytes = 8388608
max_partial_frame_bytes = 67108864
max_connections = 1024
max_connections_per_ip = 64
max_peer_queue_bytes = 33554432
max_pair_streams = 256
transport_mailbox_depth = 65536
mailbox_depth = 4096
router_mailbox_depth = 65536
identity_records = 100000
max_message_lifetime_s = 600

[performance]
spin_before_park_us = 50
"#,
            minimal(&line)
        );
        let written = Settings::load(&dir.write("doc.toml", &text)).unwrap();
        let defaults = Settings::load(&dir.write("min.toml", &minimal(&line))).unwrap();
        assert_eq!(written.transport, defaults.transport);
        assert_eq!(
            written.transport,
            TransportConfig {
                listen: defaults.listen.clone(),
                ..TransportConfig::default()
            }
        );
        let (w, d) = (written.limits, NodeLimits::default());
        assert_eq!(w.mailbox_depth, d.mailbox_depth);
        assert_eq!(w.router_mailbox_depth, d.router_mailbox_depth);
        assert_eq!(w.identity_records, d.identity_records);
        assert_eq!(w.router.ingress.max_lifetime, d.router.ingress.max_lifetime);
        assert_eq!(w.spin_before_park, d.spin_before_park);
    }

    #[test]
    fn relative_key_path_is_resolved_against_the_config_directory() {
        let (dir, key, _other, line) = setup("relative");
        std::fs::create_dir_all(dir.0.join("conf/keys")).unwrap();
        let nested = dir.0.join("conf/keys/n.key");
        std::fs::rename(dir.0.join("node.key"), &nested).unwrap();
        let text = minimal(&line).replace("\"node.key\"", "\"keys/n.key\"");
        let path = dir.write("conf/node.toml", &text);
        let s = Settings::load(&path).unwrap();
        assert_eq!(s.key_path, dir.0.join("conf").join("keys/n.key"));
        assert_eq!(s.node_identity(), key.node_identity());
        // An absolute path is taken as is.
        let abs = minimal(&line).replace(
            "\"node.key\"",
            &format!("{:?}", nested.display().to_string()),
        );
        let s = Settings::load(&dir.write("abs.toml", &abs)).unwrap();
        assert_eq!(s.key_path, nested);
    }

    #[test]
    fn unknown_top_level_key_is_refused() {
        let (dir, _key, _other, line) = setup("unknown-top");
        let path = dir.write("n.toml", &format!("lisen_extra = 1\n{}", minimal(&line)));
        let e = load_err(&path);
        assert!(e.contains("lisen_extra"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
    }

    #[test]
    fn unknown_peer_key_is_refused() {
        let (dir, _key, _other, line) = setup("unknown-peer");
        let path = dir.write("n.toml", &format!("{}permanant = true\n", minimal(&line)));
        let e = load_err(&path);
        assert!(e.contains("permanant"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
    }

    #[test]
    fn unknown_limits_key_is_refused() {
        let (dir, _key, _other, line) = setup("unknown-limits");
        let path = dir.write(
            "n.toml",
            &format!("{}\n[limits]\nmax_conections = 5\n", minimal(&line)),
        );
        let e = load_err(&path);
        assert!(e.contains("max_conections"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
        // And in [transport], and a bad enum value.
        let path = dir.write(
            "t.toml",
            &format!(
                "{}\n[transport]\ndefault_ordering = \"sorted\"\n",
                minimal(&line)
            ),
        );
        let e = load_err(&path);
        assert!(e.contains("sorted") && e.contains("unordered"), "{e}");
    }

    #[test]
    fn missing_required_key_is_refused() {
        let (dir, _key, _other, _line) = setup("missing");
        let path = dir.write("n.toml", "key_file = \"node.key\"\n");
        let e = load_err(&path);
        assert!(e.contains("listen"), "{e}");
    }

    #[test]
    fn bad_address_names_the_key() {
        let (dir, _key, _other, line) = setup("bad-addr");
        let text = minimal(&line).replace(
            "[\"127.0.0.1:7001\"]",
            "[\"127.0.0.1:7001\", \"localhost:7002\"]",
        );
        let path = dir.write("n.toml", &text);
        let e = load_err(&path);
        assert!(
            e.contains("listen[1]") && e.contains("localhost:7002"),
            "{e}"
        );
        assert!(e.contains(&path.display().to_string()), "{e}");
        let text = minimal(&line).replace(
            "[\"127.0.0.1:7001\"]",
            "[\"127.0.0.1:7001\", \"127.0.0.1:7001\"]",
        );
        let e = load_err(&dir.write("d.toml", &text));
        assert!(e.contains("listen[1]") && e.contains("twice"), "{e}");
    }

    #[test]
    fn tampered_advert_is_refused() {
        let (dir, _key, _other, line) = setup("bad-advert");
        // Change the port (hex digit 104 of the encoding: after the id, the list length and the
        // address and IP tags and the IPv4 octets), keeping the encoding valid.
        let pos = crate::wire::advert::ADVERT_LINE_PREFIX.len() + 104;
        let mut bytes = line.into_bytes();
        bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(bytes).unwrap();
        let path = dir.write("n.toml", &minimal(&tampered));
        let e = load_err(&path);
        assert!(e.contains("peers[0].advert"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(
            matches!(
                Settings::load(&path).unwrap_err(),
                ConfigError::BadAdvert {
                    error: AdvertError::BadSignature,
                    ..
                }
            ),
            "{e}"
        );
        let e = load_err(&dir.write("x.toml", &minimal("hello")));
        assert!(
            e.contains("peers[0].advert") && e.contains("nmadvert1"),
            "{e}"
        );
    }

    #[test]
    fn own_and_duplicate_adverts_are_refused() {
        let (dir, key, _other, line) = setup("own");
        let own = NodeAdvert::for_listen(&key, &[], None).to_line();
        let e = load_err(&dir.write("own.toml", &minimal(&own)));
        assert!(e.contains("peers[0].advert") && e.contains("itself"), "{e}");
        let text = format!("{}\n[[peers]]\nadvert = \"{line}\"\n", minimal(&line));
        let e = load_err(&dir.write("dup.toml", &text));
        assert!(
            e.contains("peers[1].advert") && e.contains("peers[0].advert"),
            "{e}"
        );
    }

    #[test]
    fn zero_and_out_of_range_limits_are_refused() {
        let (dir, _key, _other, line) = setup("zero");
        let path = dir.write(
            "n.toml",
            &format!("{}\n[limits]\nmailbox_depth = 0\n", minimal(&line)),
        );
        let e = load_err(&path);
        assert!(
            e.contains("limits.mailbox_depth") && e.contains("zero"),
            "{e}"
        );
        let path = dir.write(
            "t.toml",
            &format!("{}\n[transport]\nidle_timeout_ms = 0\n", minimal(&line)),
        );
        assert!(load_err(&path).contains("transport.idle_timeout_ms"));
        let path = dir.write(
            "f.toml",
            &format!(
                "{}\n[limits]\nmax_frame_bytes = 100000000\n",
                minimal(&line)
            ),
        );
        assert!(load_err(&path).contains("limits.max_frame_bytes"));
        let path = dir.write(
            "p.toml",
            &format!(
                "{}\n[limits]\nmax_frame_bytes = 2000000\nmax_partial_frame_bytes = 1000000\n",
                minimal(&line)
            ),
        );
        let e = load_err(&path);
        assert!(
            e.contains("limits.max_partial_frame_bytes") && e.contains("below"),
            "{e}"
        );
        let path = dir.write(
            "b.toml",
            &format!(
                "{}\n[transport]\nbackoff_initial_ms = 10000\nbackoff_max_ms = 100\n",
                minimal(&line)
            ),
        );
        assert!(load_err(&path).contains("backoff_initial_ms"));
        let path = dir.write(
            "neg.toml",
            &format!("{}\n[limits]\nmax_connections = -1\n", minimal(&line)),
        );
        assert!(load_err(&path).contains("max_connections"));
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let path = dir.write(
            "name.toml",
            &format!("name = \"{long}\"\n{}", minimal(&line)),
        );
        assert!(load_err(&path).contains("`name`"));
    }

    #[test]
    fn missing_key_file_names_key_file_and_path() {
        let (dir, _key, _other, line) = setup("no-key");
        let text = minimal(&line).replace("\"node.key\"", "\"absent.key\"");
        let path = dir.write("n.toml", &text);
        let e = load_err(&path);
        assert!(e.contains("key_file"), "{e}");
        assert!(
            e.contains(&dir.0.join("absent.key").display().to_string()),
            "{e}"
        );
        assert!(e.contains(&path.display().to_string()), "{e}");
        // A file that is not a key.
        dir.write("junk.key", "not a key\n");
        let text = minimal(&line).replace("\"node.key\"", "\"junk.key\"");
        let e = load_err(&dir.write("j.toml", &text));
        assert!(e.contains("key_file") && e.contains("PRIVATE KEY"), "{e}");
        // A configuration file that does not exist.
        let e = load_err(&dir.0.join("nowhere.toml"));
        assert!(e.contains("nowhere.toml"), "{e}");
    }
}
