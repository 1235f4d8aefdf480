//! The raw file, exactly as written: structs that mirror the TOML, refusing unknown keys at
//! every level, which [`Settings::load`](super::Settings::load) then validates.

use std::path::PathBuf;

use serde::Deserialize;

use crate::wire::{Ordering, Reliability};

/// The top level of the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) key_file: PathBuf,
    pub(super) listen: Vec<String>,
    #[serde(default)]
    pub(super) listen_tcp: Vec<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default = "default_true")]
    pub(super) accept_unknown_peers: bool,
    #[serde(default)]
    pub(super) peers: Vec<RawPeer>,
    #[serde(default)]
    pub(super) engines: Vec<RawEngine>,
    #[serde(default)]
    pub(super) domains: Vec<RawDomain>,
    #[serde(default)]
    pub(super) identity: RawIdentity,
    #[serde(default)]
    pub(super) transport: RawTransport,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) performance: RawPerformance,
    #[serde(default)]
    pub(super) domain: RawDomainLimits,
    #[serde(default)]
    pub(super) topology: RawTopology,
    #[serde(default)]
    pub(super) interdomain: RawInterdomain,
    #[serde(default)]
    pub(super) storage: RawStorage,
    #[serde(default)]
    pub(super) relay: RawRelay,
}

/// The `[relay]` table; an absent key keeps the default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelay {
    pub(super) forward: Option<RawRelayMode>,
    #[serde(default)]
    pub(super) forward_for: Vec<String>,
    pub(super) max_msgs_per_s: Option<u64>,
    pub(super) max_bytes_per_s: Option<u64>,
    pub(super) receipt_timeout_ms: Option<u64>,
    pub(super) attempts: Option<u64>,
}

/// `relay.forward`.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawRelayMode {
    Anyone,
    Listed,
    Never,
}

/// The `[storage]` table (the block store and the Storage engine); an absent key keeps the
/// default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub(super) enabled: Option<bool>,
    pub(super) path: Option<PathBuf>,
    pub(super) max_bytes: Option<u64>,
    pub(super) max_blocks: Option<u64>,
    pub(super) accept_puts: Option<bool>,
    pub(super) put_min_trust: Option<u64>,
    pub(super) max_put_bytes_per_node: Option<u64>,
    pub(super) max_lifetime_s: Option<u64>,
    pub(super) cache_mib: Option<usize>,
    pub(super) fanout: Option<usize>,
    pub(super) hop_limit: Option<usize>,
    pub(super) max_in_flight: Option<usize>,
    pub(super) convergence_secret_file: Option<PathBuf>,
}

/// The `[interdomain]` table (the PeerSampling, Clustering and DomainRouting engines); an
/// absent key keeps the default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInterdomain {
    pub(super) enabled: Option<bool>,
    pub(super) mode: Option<RawSamplerMode>,
    pub(super) view: Option<usize>,
    pub(super) exchange: Option<usize>,
    pub(super) period_ms: Option<u64>,
    pub(super) min_trust: Option<RawNumber>,
    pub(super) urps_memory: Option<usize>,
    pub(super) urps_epsilon: Option<RawNumber>,
    pub(super) urps_delta: Option<RawNumber>,
    pub(super) blip_bits: Option<u32>,
    pub(super) blip_hashes: Option<u8>,
    pub(super) blip_epsilon: Option<RawNumber>,
    pub(super) cluster_view: Option<usize>,
    pub(super) cluster_exchange: Option<usize>,
    pub(super) cluster_period_ms: Option<u64>,
    pub(super) fingers: Option<usize>,
    pub(super) trust_weight: Option<RawNumber>,
    pub(super) psi: Option<bool>,
    pub(super) hop_limit: Option<usize>,
    pub(super) request_timeout_ms: Option<u64>,
    pub(super) attempts: Option<usize>,
    pub(super) forward: Option<bool>,
}

/// `interdomain.mode`.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawSamplerMode {
    Taps,
    Cyclon,
}

/// A number written with or without a decimal point (`trust_weight = 1` as well as `1.0`).
#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(untagged)]
pub(super) enum RawNumber {
    Integer(i64),
    Float(f64),
}

impl RawNumber {
    pub(super) fn value(self) -> f64 {
        match self {
            RawNumber::Integer(i) => i as f64,
            RawNumber::Float(f) => f,
        }
    }
}

/// The `[domain]` table (the Domain engine's limits); an absent key keeps the default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDomainLimits {
    pub(super) max_domains: Option<usize>,
    pub(super) max_members: Option<usize>,
    pub(super) max_ops: Option<usize>,
    pub(super) join_timeout_ms: Option<u64>,
    pub(super) join_tries: Option<u32>,
    pub(super) join_window_s: Option<u64>,
    pub(super) digest_interval_ms: Option<u64>,
    pub(super) ext_timeout_ms: Option<u64>,
}

/// The `[topology]` table (the Topology engine's views and periods); an absent key keeps the
/// default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTopology {
    pub(super) active_view: Option<usize>,
    pub(super) passive_view: Option<usize>,
    pub(super) shuffle_interval_ms: Option<u64>,
    pub(super) keepalive_interval_ms: Option<u64>,
    pub(super) failure_timeout_ms: Option<u64>,
    pub(super) explore_interval_s: Option<u64>,
    pub(super) max_domains: Option<usize>,
    pub(super) max_members: Option<usize>,
}

/// The `[performance]` table; an absent key keeps the default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPerformance {
    pub(super) verifier_threads: Option<usize>,
    pub(super) spin_before_park_us: Option<u64>,
}

fn default_true() -> bool {
    true
}

/// One `[[peers]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    pub(super) advert: String,
    #[serde(default)]
    pub(super) permanent: bool,
    /// 0 (banned) ..= 255; checked in `Settings::load`.
    #[serde(default)]
    pub(super) trust: Option<u64>,
}

/// One `[[engines]]` table: a remote engine and the node it runs on, or its signed advert.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEngine {
    #[serde(default)]
    pub(super) engine: Option<String>,
    #[serde(default)]
    pub(super) node: Option<String>,
    #[serde(default)]
    pub(super) advert: Option<String>,
}

/// One `[[domains]]` table: a domain's signed advert (inline or in a file), its pre-shared key
/// if its members authenticate with one, and whether to ask to join at start.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDomain {
    #[serde(default)]
    pub(super) advert: Option<String>,
    #[serde(default)]
    pub(super) advert_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) psk: Option<String>,
    #[serde(default)]
    pub(super) psk_file: Option<PathBuf>,
    #[serde(default = "default_true")]
    pub(super) join: bool,
}

/// The `[identity]` table; an absent key keeps the default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
    pub(super) advert_lifetime_s: Option<u64>,
    pub(super) max_lookups: Option<usize>,
    pub(super) lookup_timeout_ms: Option<u64>,
    pub(super) lookup_fanout: Option<usize>,
    pub(super) negative_cache_s: Option<u64>,
    pub(super) max_engines_per_node: Option<usize>,
    pub(super) persist: Option<bool>,
    pub(super) path: Option<PathBuf>,
}

/// The `[transport]` table; an absent key keeps the [`TransportConfig`] default.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransport {
    pub(super) idle_timeout_ms: Option<u64>,
    pub(super) backoff_initial_ms: Option<u64>,
    pub(super) backoff_max_ms: Option<u64>,
    pub(super) default_ordering: Option<RawOrdering>,
    pub(super) default_reliability: Option<RawReliability>,
    pub(super) transports: Option<Vec<RawTransportKind>>,
    pub(super) connect_timeout_ms: Option<u64>,
}

/// An entry of `transport.transports`.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawTransportKind {
    Quic,
    Tcp,
}

impl From<RawTransportKind> for crate::wire::TransportKind {
    fn from(k: RawTransportKind) -> Self {
        match k {
            RawTransportKind::Quic => crate::wire::TransportKind::Quic,
            RawTransportKind::Tcp => crate::wire::TransportKind::Tcp,
        }
    }
}

/// `transport.default_ordering`.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawOrdering {
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
pub(super) enum RawReliability {
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
pub(super) struct RawLimits {
    pub(super) max_frame_bytes: Option<usize>,
    pub(super) max_partial_frame_bytes: Option<usize>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_ip: Option<usize>,
    pub(super) max_peer_queue_bytes: Option<usize>,
    pub(super) max_pair_streams: Option<usize>,
    pub(super) transport_mailbox_depth: Option<usize>,
    pub(super) mailbox_depth: Option<usize>,
    pub(super) router_mailbox_depth: Option<usize>,
    pub(super) identity_records: Option<usize>,
    pub(super) max_message_lifetime_s: Option<u64>,
    pub(super) bad_messages_before_disconnect: Option<u32>,
    pub(super) misbehaving_peer_backoff_s: Option<u64>,
}
