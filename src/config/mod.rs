//! Node configuration files: TOML text → [`Settings`] (validated) →
//! [`NodeBuilder`](crate::node::NodeBuilder).
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
//! listen_tcp = ["127.0.0.1:7001"]   # TCP addresses for TLS over TCP, the fallback for peers
//!                                   # whose UDP is blocked (default none)
//! name = "node1"                    # carried in this node's advert, at most 64 bytes
//! accept_unknown_peers = true       # let nodes that are not listed below connect (default true)
//!
//! [[peers]]                         # one table per peer
//! advert = "nmadvert2:..."          # the line `netmachine advert --config <its file>` prints
//! permanent = false                 # keep a connection up and redial it (default false)
//! trust = 128                       # 0 (banned: never connected, refused) ..= 255 (default 128)
//!
//! [[engines]]                       # remote engines to route to before anything is heard of
//! engine = "<64 hex>"               # them: the engine's identity and the node it runs on,
//! node = "<64 hex>"                 # and/or its signed advert (`netmachine advert --engine`);
//! advert = "nmengine2:..."          # with only an advert, engine and node are taken from it
//!
//! [[domains]]                       # one table per domain this node belongs to or may join
//! advert = "nmdomain1:..."          # the line `netmachine domain advert` prints, or instead
//! advert_file = "domain.advert"     # a file holding it (relative to this file's directory)
//! psk = "..."                       # the domain's pre-shared key (auth psk; 16 to 1024 bytes),
//! psk_file = "domain.psk"           # or a file holding it (mode 0600; a final newline dropped)
//! join = true                       # ask to join at start when not a member (default true)
//!
//! [domain]                          # the Domain engine; every key optional (defaults shown)
//! max_domains = 64                  # domains served
//! max_members = 8192                # members per domain (the advert's max_members if lower)
//! max_ops = 16384                   # membership operations stored per domain
//! join_timeout_ms = 2000            # wait for a join answer; doubled at each retry
//! join_tries = 4                    # join requests sent (over the introducers) before timeout
//! join_window_s = 120               # how far a join request's time may be from this clock
//! digest_interval_ms = 1000         # anti-entropy: a digest to one view peer this often
//! ext_timeout_ms = 5000             # wait for an external request's answer
//!
//! [topology]                        # the Topology engine's overlay per domain; every key
//! active_view = 5                   # optional (defaults shown): connected members (<= 64),
//! passive_view = 30                 # known members kept as replacements (<= 4096)
//! shuffle_interval_ms = 5000        # passive views are refreshed this often (jittered)
//! keepalive_interval_ms = 1000      # an idle active peer is sent a keepalive
//! failure_timeout_ms = 3000         # a silent active peer is replaced (> keepalive interval)
//! explore_interval_s = 60           # swap in a random member (heals partitions); 0 disables
//! max_domains = 16                  # domains with an overlay
//! max_members = 16384               # members remembered per domain
//!
//! [interdomain]                     # the inter-domain engines; every key optional (defaults
//! enabled = true                    # shown); false opts out: PeerSampling, Clustering and
//!                                   # DomainRouting do not run (no gossip, no forwarding)
//! mode = "taps"                     # peer sampling: "taps" (TAPS + URPS) or "cyclon" (baseline)
//! view = 20                         # TAPS dynamic view (<= 256)
//! exchange = 8                      # descriptors per sampling exchange (<= view + 1)
//! period_ms = 1000                  # one sampling exchange this often (jittered)
//! min_trust = 0.1                   # neighbours trusted less are dropped (0..1; both views)
//! urps_memory = 30                  # URPS sampler memory c (<= 4096)
//! urps_epsilon = 0.1                # count-min sketch error ε, in (0, 1]
//! urps_delta = 0.01                 # count-min sketch failure probability δ, in (0, 1)
//! blip_bits = 1024                  # membership filter bits (multiple of 8, <= 8192) and
//! blip_hashes = 3                   # hashes k (<= 16): the same on every node of the network
//! blip_epsilon = 5.0                # privacy ε: each bit flipped with p = 1 / (1 + e^(ε/k))
//! cluster_view = 10                 # TAC cluster neighbours (<= 256)
//! cluster_exchange = 8              # descriptors per clustering exchange
//! cluster_period_ms = 1000          # one clustering exchange this often (jittered)
//! fingers = 3                       # TAC long links to dissimilar nodes (<= 64)
//! trust_weight = 0.5                # TAC score sim^(1-w) · trust^w, w in [0, 1]
//! psi = true                        # learn exact overlaps with cluster neighbours (PSI)
//! hop_limit = 16                    # a domain request travels at most this many hops (<= 64)
//! request_timeout_ms = 5000         # wait for a domain request's answer
//! attempts = 3                      # split the wait into this many attempts, each via a new first hop
//! forward = true                    # forward and answer other nodes' domain requests
//!
//! [storage]                         # the block store and the Storage engine; every key
//! enabled = true                    # optional (defaults shown); false: no store, no engine
//! path = "node.storage.redb"        # the store's redb file, relative to this file's directory
//!                                   # (default: `<this file's name>.storage.redb`)
//! max_bytes = 4294967296            # store quota: bytes of blocks (1 MiB + 5 ..= 1 PiB)
//! max_blocks = 1000000              # store quota: blocks (1 ..= 2^32)
//! accept_puts = true                # let other nodes store blocks here
//! put_min_trust = 128               # least trust (0..=255) a node needs to store here
//! max_put_bytes_per_node = 1073741824  # bytes one node may store here (<= max_bytes)
//! max_lifetime_s = 604800           # longest a remote block is kept (<= 10 years)
//! cache_mib = 64                    # cache of blocks passing through searches (<= 4096; 0 off)
//! fanout = 8                        # random walks per lookup (<= 64)
//! hop_limit = 96                    # hops a search may travel (<= 255)
//! max_in_flight = 32                # blocks one fetch requests at once (<= 1024)
//! convergence_secret_file = "storage.secret"  # no default: 32 bytes or 64 hex, mode 0600;
//!                                   # needed to put encrypted objects
//!
//! [relay]                           # relaying for other nodes; every key optional (defaults shown)
//! forward = "never"                 # "anyone", "listed" or "never": for whom this node forwards
//! forward_for = []                  # with "listed": the previous hops it forwards for (64 hex)
//! max_msgs_per_s = 20000            # relay messages per second from one previous hop
//! max_bytes_per_s = 67108864        # relay bytes per second from one previous hop (>= 65536)
//! receipt_timeout_ms = 2000         # a relayed message of this node waits this long for its
//!                                   # receipt, then goes by another path (10 ..= 600000)
//! attempts = 3                      # paths tried before it is dropped `relay_unacknowledged`
//!
//! [identity]                        # every key optional; the values shown are the defaults
//! advert_lifetime_s = 86400         # this node's adverts; re-signed at half their lifetime
//! max_lookups = 256                 # lookups of unknown engines with peers at once
//! lookup_timeout_ms = 3000
//! lookup_fanout = 8                 # peers asked per lookup
//! negative_cache_s = 10             # an engine nobody knew is not looked up again meanwhile
//! max_engines_per_node = 4096       # engine records kept per remote node
//! persist = true                    # keep the records across restarts, in a redb file:
//! path = "node.identity.redb"       # relative to this file's directory
//!                                   # (default: `<this file's name>.identity.redb`)
//!
//! [transport]                       # every key optional; the values shown are the defaults
//! idle_timeout_ms = 10000
//! backoff_initial_ms = 100
//! backoff_max_ms = 5000
//! default_ordering = "ordered"      # or "unordered"
//! default_reliability = "reliable"  # or "unreliable"
//! transports = ["quic", "tcp"]      # what is dialled, most preferred first: a peer's TCP
//!                                   # address once its QUIC ones fail twice in a row
//! connect_timeout_ms = 5000         # a dial that is not up by then has failed
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
//! bad_messages_before_disconnect = 16  # messages failing verification before a peer is cut off
//! misbehaving_peer_backoff_s = 300  # a cut-off peer is neither dialled nor accepted this long
//!
//! [performance]                     # every key optional
//! verifier_threads = 2              # signature-checking threads; default: the cores, at most 4
//! spin_before_park_us = 50          # poll an empty mailbox this long before parking
//! ```
//!
//! A `[[domains]]` table needs `advert` or `advert_file`; a domain whose advert authenticates
//! joiners by a pre-shared key needs `psk` or `psk_file` on every node that joins it or
//! introduces it (a key for a domain that uses none is refused, as is `join = true` for a node
//! the domain's allow-list leaves out). The `[domain]` and `[topology]` defaults come from
//! [`DomainLimits`](crate::domain::DomainLimits) and
//! [`TopologyLimits`](crate::topology::TopologyLimits).
//!
//! The defaults come from [`TransportConfig`](crate::transport::TransportConfig),
//! [`TransportLimits`](crate::transport::TransportLimits) and
//! [`NodeLimits`](crate::node::NodeLimits) (a unit test checks that the values above still match
//! them).
//! `limits.mailbox_depth` is the default depth of engine mailboxes, `transport_mailbox_depth` the
//! Transport's, and `max_message_lifetime_s` how far ahead a remote message's expiry may be.
//! `bad_messages_before_disconnect` counts a peer's messages that fail verification in ways only
//! a misbehaving peer can cause (see [`router::conduct`](crate::router::conduct)).
//! `max_frame_bytes` may not exceed the wire's hard limit
//! ([`HARD_LIMIT_BYTES`](crate::wire::HARD_LIMIT_BYTES), 64 MiB).

#[cfg(test)]
mod domain_tests;
mod domains;
mod error;
mod interdomain;
#[cfg(test)]
mod interdomain_tests;
mod raw;
mod relay;
#[cfg(test)]
mod relay_tests;
mod settings;
mod storage;
#[cfg(test)]
mod storage_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transport_tests;

pub use domains::{MAX_ACTIVE_VIEW, MAX_PASSIVE_VIEW, MAX_PSK_BYTES, MIN_PSK_BYTES};
pub use error::ConfigError;
pub use interdomain::{
    MAX_FINGERS, MAX_HOP_LIMIT, MAX_INTERDOMAIN_VIEW, MAX_PERIOD_MS, MAX_URPS_MEMORY, MIN_PERIOD_MS,
};
pub use settings::{KnownEngine, Settings};
pub use storage::{
    default_store_file, StorageConfig, DEFAULT_STORE_SUFFIX, MAX_CACHE_MIB, MAX_FANOUT,
    MAX_IN_FLIGHT, MAX_LIFETIME_S, MAX_STORAGE_HOP_LIMIT, MAX_STORE_BLOCKS, MAX_STORE_BYTES,
    MIN_STORE_BYTES,
};
