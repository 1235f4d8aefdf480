//! The test vectors of docs/wire.md, checked against the code.
//!
//! Every vector in the document sits in a fenced block right after an HTML comment naming it.
//! Each test below finds its vectors by name (a missing or repeated vector fails), compares them
//! with what the code produces from the same fixed inputs, and decodes them again with the
//! crate's decoders. Where it is cheap, the expected bytes are also built a second time from the
//! rules the document states (a reference encoder written here, plain Ed25519, SHA-256 and
//! HMAC-SHA256 from ed25519-dalek and ring, never the crate's own signing-input or digest
//! helpers), so a change of the format fails even if the document were regenerated alongside it.
//!
//! `print_vectors` (ignored) prints the vector section of the document, §16.1 to the end:
//! `cargo test --release --test wire_vectors -- --ignored --nocapture print_vectors`. Its output
//! replaces everything in docs/wire.md from the `### 16.1` heading on.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use netmachine::domain::wire::{DomainMessage, JoinAuth, JoinRequest};
use netmachine::domain::{Op, OpKind};
use netmachine::domain_routing::wire::{
    DomainRequest, DomainResponse, RoutingMessage, RESPONSE_CONTEXT, ROUTING_VERSION,
};
use netmachine::identity::{CheckedKey, Keypair, Signature, ROUTER_ENGINE_NAME};
use netmachine::interdomain::blip::{self, BlipParams};
use netmachine::interdomain::descriptor::{check_descriptor, make_descriptor};
use netmachine::pubsub::wire::{
    Event, EventId, PubSubMessage, Withdrawal, EVENT_CONTEXT, MAX_BATCH_EVENTS, MAX_DEPS,
    MAX_DEP_POSITIONS, MAX_POSITIONS, PUBSUB_VERSION, WITHDRAWAL_CONTEXT,
};
use netmachine::pubsub::PUBSUB_ENGINE_NAME;
use netmachine::router::ingress::{Ingress, IngressLimits};
use netmachine::runtime::stats::NodeStats;
use netmachine::storage::block::{Block, BlockId, Child, TreeBlock, VerifiedBlock};
use netmachine::storage::receipt::{ChunkCommitment, COMMITMENT_CONTEXT};
use netmachine::storage::wire::{
    Found as StorageFound, GetAnswer, Refusal, Search, SearchScope, StorageMessage, STORAGE_VERSION,
};
use netmachine::time::{Now, Timestamp};
use netmachine::topology::wire::{TopologyMessage, TOPOLOGY_VERSION};
use netmachine::topology::TopologyLimits;
use netmachine::transport::control::{self, Ack, EngineAdverts, Found, Hello, Lookup, Withdrawn};
use netmachine::transport::frame::{self, kind, FrameDecoder};
use netmachine::wire::advert::{DomainAuth, Introducer, IpAddress};
use netmachine::wire::message::{BatchVerifier, Unverified};
use netmachine::wire::{
    self, decode_exact, encode_to_vec, DomainAdvert, EngineAdvert, MembershipFilter, NodeAdvert,
    NodeDescriptor, Ordering, Reliability, RoutingPrefs, RoutingScope, Security, Signed,
    TopicAdvert, TransportAddress, TransportPrefs,
};
use netmachine::{
    Destination, DomainIdentity, DropReason, EngineIdentity, EngineMessage, MessageId,
    NodeIdentity, Protocol, TopicIdentity,
};

#[path = "wire_vectors/relay.rs"]
mod relay;
#[path = "wire_vectors/tcp.rs"]
mod tcp;

const DOC: &str = include_str!("../docs/wire.md");

/// Every vector docs/wire.md must contain, and the only ones it may contain.
const VECTORS: &[&str] = &[
    "context-engine-message",
    "context-node-advert",
    "context-engine-advert",
    "context-topic-advert",
    "context-domain-advert",
    "context-event",
    "context-withdrawal",
    "alpn",
    "node-a-seed",
    "node-a-identity",
    "node-b-seed",
    "node-b-identity",
    "engine-a-echo-seed",
    "engine-a-echo-identity",
    "engine-b-ping-seed",
    "engine-b-ping-identity",
    "key-file-der",
    "key-file-pem",
    "node-cert-der",
    "enc-destination-topic",
    "enc-routing-prefs-domain",
    "enc-transport-prefs-datagram",
    "enc-transport-address-tcp",
    "alpn-tcp",
    "tcp-record-stream",
    "tcp-record-stop",
    "tcp-record-stream-end",
    "tcp-record-max-streams",
    "tcp-record-datagram",
    "tcp-record-ping",
    "tcp-record-pong",
    "tcp-record-close",
    "message-signed-fields",
    "message-signing-input",
    "message-signature",
    "message-wire",
    "reply-wire",
    "node-advert-signed-fields",
    "node-advert-signing-input",
    "node-advert-wire",
    "node-advert-line",
    "engine-advert-wire",
    "engine-advert-line",
    "topic-advert-wire",
    "topic-advert-scoped-wire",
    "domain-advert-wire",
    "hello-payload",
    "hello-frame",
    "ack-payload",
    "ack-frame",
    "message-frame",
    "message-datagram",
    "pubsub-advert-body",
    "pubsub-subscribe-body",
    "pubsub-subscribe-ack-body",
    "event-published-message",
    "event-signing-input",
    "event-id",
    "pubsub-event-body",
    "pubsub-event-req-body",
    "pubsub-unsubscribe-body",
    "pubsub-unsubscribe-ack-body",
    "pubsub-event-resp-body",
    "pubsub-event-ack-body",
    "pubsub-events-body",
    "pubsub-withdraw-body",
    "engine-adverts-frame",
    "engine-withdraw-frame",
    "lookup-frame",
    "found-frame",
    "found-unknown-frame",
    "topology-join-body",
    "topology-forward-join-body",
    "topology-neighbor-body",
    "topology-shuffle-body",
    "domain-op-add",
    "domain-join-request",
    "domain-digest-body",
    "context-node-descriptor",
    "blip-index-hash-input",
    "blip-indices",
    "membership-filter-wire",
    "node-descriptor-wire",
    "routing-request-body",
    "routing-response-body",
    "context-chunk-commitment",
    "block-leaf",
    "block-tree",
    "chunk-commitment",
    "block-leaf-id",
    "block-tree-id",
    "storage-get-body",
    "storage-get-reply-block-body",
    "storage-get-reply-holders-body",
    "storage-get-reply-not-found-body",
    "storage-get-reply-refused-body",
    "storage-put-body",
    "storage-extend-body",
    "storage-put-reply-body",
    "storage-put-reply-refused-body",
    "storage-search-random-body",
    "storage-search-topic-body",
    "storage-found-body",
    "relay-node-b-x25519",
    "relay-source-key-a-b",
    "relay-deliver-key",
    "relay-deliver-plaintext",
    "relay-deliver-layer",
    "relay-forward-layer",
    "relay-forward-layer-id",
    "relay-deliver-layer-id",
    "relay-receipt-token",
    "relay-receipt-record",
];

// ---------------------------------------------------------------------------------------------
// Reading the document.

const MARKER_OPEN: &str = "<!-- vector: ";
const MARKER_CLOSE: &str = " -->";

/// The names of every vector marker in the document, in order.
fn doc_markers() -> Vec<&'static str> {
    let mut names = Vec::new();
    let mut rest = DOC;
    while let Some(at) = rest.find(MARKER_OPEN) {
        let after = &rest[at + MARKER_OPEN.len()..];
        let end = after
            .find(MARKER_CLOSE)
            .unwrap_or_else(|| panic!("unterminated vector marker near {:?}", &after[..20]));
        names.push(&after[..end]);
        rest = &after[end..];
    }
    names
}

/// The contents of the fenced block that follows the marker of vector `name`.
fn block(name: &str) -> &'static str {
    let marker = format!("{MARKER_OPEN}{name}{MARKER_CLOSE}");
    let found: Vec<usize> = DOC.match_indices(&marker).map(|(i, _)| i).collect();
    assert!(!found.is_empty(), "docs/wire.md has no vector {name:?}");
    assert_eq!(found.len(), 1, "docs/wire.md has vector {name:?} twice");
    let after = DOC[found[0] + marker.len()..].trim_start_matches([' ', '\t', '\r', '\n']);
    assert!(
        after.starts_with("```"),
        "vector {name:?}: the marker must be followed by a fenced block"
    );
    let body_start = after.find('\n').expect("a newline after the opening fence") + 1;
    let body = &after[body_start..];
    let end = body
        .find("\n```")
        .unwrap_or_else(|| panic!("vector {name:?}: no closing fence"));
    &body[..end]
}

/// A hex vector: whitespace removed, decoded.
fn hex(name: &str) -> Vec<u8> {
    let digits: String = block(name).split_whitespace().collect();
    decode_hex(&digits).unwrap_or_else(|| panic!("vector {name:?} is not hex"))
}

/// A text vector: the block's lines, without the trailing newline.
fn text(name: &str) -> String {
    block(name).trim_end().to_string()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares a vector with the bytes the code produced, showing both in hex on failure.
fn assert_vector(name: &str, produced: &[u8]) {
    let expected = hex(name);
    assert!(
        expected == produced,
        "vector {name:?} differs from the code\n  doc:  {}\n  code: {}",
        to_hex(&expected),
        to_hex(produced)
    );
}

// ---------------------------------------------------------------------------------------------
// A reference encoder written from the document's rules, independent of the crate's codec. Each
// value is a list of named fields so the generator can print the byte tables of the document.

#[derive(Default)]
struct Layout {
    fields: Vec<(String, Vec<u8>)>,
}

impl Layout {
    fn field(mut self, name: impl Into<String>, bytes: impl AsRef<[u8]>) -> Layout {
        self.fields.push((name.into(), bytes.as_ref().to_vec()));
        self
    }

    fn append(mut self, prefix: &str, other: Layout) -> Layout {
        for (name, bytes) in other.fields {
            self.fields.push((format!("{prefix}{name}"), bytes));
        }
        self
    }

    /// Replaces field `name` by the fields of `parts`, which must hold the same bytes.
    fn expand(mut self, name: &str, parts: Layout) -> Layout {
        let at = self
            .fields
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no field {name:?}"));
        assert_eq!(self.fields[at].1, parts.bytes(), "field {name:?}");
        let parts = parts
            .fields
            .into_iter()
            .map(|(n, b)| (format!("{name}: {n}"), b));
        self.fields.splice(at..=at, parts);
        self
    }

    fn bytes(&self) -> Vec<u8> {
        self.fields.iter().flat_map(|(_, b)| b.clone()).collect()
    }

    /// One line per field, long fields wrapped at 32 bytes.
    fn hex_lines(&self) -> String {
        let mut out = String::new();
        for (_, bytes) in &self.fields {
            for chunk in bytes.chunks(32) {
                out.push_str(&to_hex(chunk));
                out.push('\n');
            }
        }
        out
    }

    /// A Markdown table: offset, size, field, bytes.
    fn table(&self) -> String {
        let mut out =
            String::from("| offset | size | field | bytes (hex) |\n|---:|---:|---|---|\n");
        let mut offset = 0;
        for (name, bytes) in &self.fields {
            let shown = if bytes.len() > 32 {
                format!("{}…", to_hex(&bytes[..16]))
            } else {
                to_hex(bytes)
            };
            out.push_str(&format!(
                "| {offset} | {} | {name} | `{shown}` |\n",
                bytes.len()
            ));
            offset += bytes.len();
        }
        out
    }
}

fn u32le(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

fn u64le(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

fn ref_destination(d: &Destination) -> Layout {
    let (tag, key, what) = match d {
        Destination::Engine(e) => (0, e.0, "EngineIdentity"),
        Destination::Node(n) => (1, n.0, "NodeIdentity"),
        Destination::Topic(t) => (2, t.0, "TopicIdentity"),
        Destination::Domain(x) => (3, x.0, "DomainIdentity"),
    };
    Layout::default()
        .field(format!("tag (u32 {tag})"), u32le(tag))
        .field(what, key)
}

fn ref_routing_prefs(p: &RoutingPrefs) -> Layout {
    match p.scope {
        RoutingScope::Local => Layout::default().field("scope tag (u32 0, Local)", u32le(0)),
        RoutingScope::Domain(d) => Layout::default()
            .field("scope tag (u32 1, Domain)", u32le(1))
            .field("scope DomainIdentity", d.0),
        RoutingScope::Any => Layout::default().field("scope tag (u32 2, Any)", u32le(2)),
    }
}

fn ref_transport_prefs(p: &TransportPrefs) -> Layout {
    let ordering = match p.ordering {
        Ordering::Ordered => ("ordering (u32 0, Ordered)", 0),
        Ordering::Unordered => ("ordering (u32 1, Unordered)", 1),
    };
    let reliability = match p.reliability {
        Reliability::Reliable => ("reliability (u32 0, Reliable)", 0),
        Reliability::Unreliable => ("reliability (u32 1, Unreliable)", 1),
    };
    let l = Layout::default()
        .field(ordering.0, u32le(ordering.1))
        .field(reliability.0, u32le(reliability.1));
    match p.security {
        Security::Direct => l.field("security (u32 0, Direct)", u32le(0)),
        Security::OnionRouting(hops) => l
            .field("security (u32 1, OnionRouting)", u32le(1))
            .field("onion hops (u8)", [hops]),
        Security::Mixnet => l.field("security (u32 2, Mixnet)", u32le(2)),
    }
}

fn ref_bytes(name: &str, bytes: &[u8]) -> Layout {
    Layout::default()
        .field(format!("{name} length (u64)"), u64le(bytes.len() as u64))
        .field(name, bytes)
}

/// The signed fields of a message before the body: `src` to `protocol`.
fn ref_message_head(m: &EngineMessage) -> Layout {
    let mut l = Layout::default()
        .field("src (EngineIdentity)", m.src.0)
        .field("src_node (NodeIdentity)", m.src_node.0)
        .append("dst ", ref_destination(&m.dst))
        .field("id (u64)", u64le(m.id.0));
    l = match m.reply_to {
        None => l.field("reply_to: None", [0]),
        Some(r) => l
            .field("reply_to: Some", [1])
            .field("reply_to (u64)", u64le(r.0)),
    };
    l = match m.expiry {
        None => l.field("expiry: None", [0]),
        Some(t) => l
            .field("expiry: Some", [1])
            .field("expiry (u64 ms)", u64le(t.0)),
    };
    l = match &m.rprefs {
        None => l.field("rprefs: None", [0]),
        Some(p) => l
            .field("rprefs: Some", [1])
            .append("rprefs ", ref_routing_prefs(p)),
    };
    l = match &m.tprefs {
        None => l.field("tprefs: None", [0]),
        Some(p) => l
            .field("tprefs: Some", [1])
            .append("tprefs ", ref_transport_prefs(p)),
    };
    l.field("protocol (u32)", u32le(m.protocol.0))
}

/// The signed fields of a message, as they appear on the wire.
fn ref_message_fields(m: &EngineMessage) -> Layout {
    ref_message_head(m).append("", ref_bytes("body", &m.body))
}

/// SHA-256, computed with ring directly.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .try_into()
        .expect("32 bytes")
}

/// What a message's signature covers after the context: the signed fields with the body
/// replaced by its SHA-256 (the body's length stays).
fn ref_message_digested(m: &EngineMessage) -> Layout {
    ref_message_head(m)
        .field("body length (u64)", u64le(m.body.len() as u64))
        .field("SHA-256(body)", sha256(&m.body))
}

/// A message's whole signing input: the context, then [`ref_message_digested`].
fn ref_message_signing_input(m: &EngineMessage) -> Layout {
    Layout::default()
        .field("context", CTX_ENGINE_MESSAGE)
        .append("", ref_message_digested(m))
}

fn ref_message_wire(m: &EngineMessage) -> Layout {
    Layout::default()
        .field("version (u32 1)", u32le(1))
        .append("", ref_message_fields(m))
        .field("signature", m.sig.expect("signed").0)
}

fn ref_transport_address(a: &TransportAddress) -> Layout {
    let (l, ip, port) = match a {
        TransportAddress::Quic { ip, port } => (
            Layout::default().field("tag (u32 0, Quic)", u32le(0)),
            ip,
            port,
        ),
        TransportAddress::Tcp { ip, port } => (
            Layout::default().field("tag (u32 1, Tcp)", u32le(1)),
            ip,
            port,
        ),
    };
    let l = match ip {
        IpAddress::V4(o) => l.field("ip tag (u32 0, V4)", u32le(0)).field("ip", o),
        IpAddress::V6(o) => l.field("ip tag (u32 1, V6)", u32le(1)).field("ip", o),
    };
    l.field("port (u16)", port.to_le_bytes())
}

fn ref_node_advert_fields(a: &NodeAdvert) -> Layout {
    let mut l = Layout::default()
        .field("id (NodeIdentity)", a.id.0)
        .field("addrs count (u64)", u64le(a.addrs.len() as u64));
    for (i, (addr, weight)) in a.addrs.iter().enumerate() {
        l = l
            .append(&format!("addrs[{i}] "), ref_transport_address(addr))
            .field(format!("addrs[{i}] weight (u8)"), [*weight]);
    }
    l = l
        .field("version (u64)", u64le(a.version))
        .field("created (u64 ms)", u64le(a.created.0))
        .field("expires (u64 ms)", u64le(a.expires.0));
    match &a.name {
        None => l.field("name: None", [0]),
        Some(n) => l
            .field("name: Some", [1])
            .append("", ref_bytes("name", n.as_bytes())),
    }
}

fn ref_engine_advert_fields(a: &EngineAdvert) -> Layout {
    Layout::default()
        .field("engine (EngineIdentity)", a.engine.0)
        .field("node (NodeIdentity)", a.node.0)
        .append("", ref_bytes("name", a.name.as_bytes()))
        .field("version (u64)", u64le(a.version))
        .field("created (u64 ms)", u64le(a.created.0))
        .field("expires (u64 ms)", u64le(a.expires.0))
}

fn ref_option(name: &str, inner: Option<Layout>) -> Layout {
    match inner {
        None => Layout::default().field(format!("{name}: None"), [0]),
        Some(l) => Layout::default()
            .field(format!("{name}: Some"), [1])
            .append(&format!("{name}: "), l),
    }
}

fn ref_engine_adverts(adverts: &[EngineAdvert]) -> Layout {
    let mut l = Layout::default().field("count (u64)", u64le(adverts.len() as u64));
    for (i, a) in adverts.iter().enumerate() {
        l = l.append(
            &format!("[{i}] "),
            with_signature(ref_engine_advert_fields(a), &a.sig),
        );
    }
    l
}

fn ref_withdrawn(engines: &[EngineIdentity]) -> Layout {
    let mut l = Layout::default().field("count (u64)", u64le(engines.len() as u64));
    for (i, e) in engines.iter().enumerate() {
        l = l.field(format!("[{i}] (EngineIdentity)"), e.0);
    }
    l
}

fn ref_found(f: &Found) -> Layout {
    Layout::default()
        .field("engine (EngineIdentity)", f.engine.0)
        .append(
            "",
            ref_option(
                "advert",
                f.advert
                    .as_ref()
                    .map(|a| with_signature(ref_engine_advert_fields(a), &a.sig)),
            ),
        )
        .append(
            "",
            ref_option(
                "node_advert",
                f.node_advert
                    .as_ref()
                    .map(|a| with_signature(ref_node_advert_fields(a), &a.sig)),
            ),
        )
}

fn ref_topic_advert_fields(a: &TopicAdvert) -> Layout {
    let mut l = Layout::default()
        .field("topic (TopicIdentity)", a.topic.0)
        .field("publishers count (u64)", u64le(a.publishers.len() as u64));
    for (i, p) in a.publishers.iter().enumerate() {
        l = l.field(format!("publishers[{i}] (EngineIdentity)"), p.0);
    }
    l = l.field("tags count (u64)", u64le(a.tags.len() as u64));
    for (i, t) in a.tags.iter().enumerate() {
        l = l.append("", ref_bytes(&format!("tags[{i}]"), t.as_bytes()));
    }
    l.field("version (u64)", u64le(a.version))
        .field("created (u64 ms)", u64le(a.created.0))
        .append(
            "",
            ref_option(
                "scope",
                a.scope
                    .map(|d| Layout::default().field("(DomainIdentity)", d.0)),
            ),
        )
}

/// The topic advert of the fixture scoped to the fixture's domain, as version 2.
fn scoped_topic_advert(fx: &Fixture) -> TopicAdvert {
    TopicAdvert {
        version: 2,
        scope: Some(fx.domain.domain_identity()),
        ..fx.topic_advert.clone()
    }
    .sign(&fx.topic)
}

fn ref_domain_advert_fields(a: &DomainAdvert) -> Layout {
    let mut l = Layout::default()
        .field("id (DomainIdentity)", a.id.0)
        .field("introducers count (u64)", u64le(a.introducers.len() as u64));
    for (i, intro) in a.introducers.iter().enumerate() {
        l = l
            .field(
                format!("introducers[{i}] node (NodeIdentity)"),
                intro.node.0,
            )
            .field(
                format!("introducers[{i}] addrs count (u64)"),
                u64le(intro.addrs.len() as u64),
            );
        for (j, addr) in intro.addrs.iter().enumerate() {
            l = l.append(
                &format!("introducers[{i}] addrs[{j}] "),
                ref_transport_address(addr),
            );
        }
    }
    l = match &a.auth {
        DomainAuth::None => l.field("auth: None (u32 tag)", u32le(0)),
        DomainAuth::Psk => l.field("auth: Psk (u32 tag)", u32le(1)),
        DomainAuth::AllowList(list) => {
            let mut l = l
                .field("auth: AllowList (u32 tag)", u32le(2))
                .field("allow-list count (u64)", u64le(list.len() as u64));
            for (i, n) in list.iter().enumerate() {
                l = l.field(format!("allow-list[{i}] (NodeIdentity)"), n.0);
            }
            l
        }
    };
    l = l.field("external count (u64)", u64le(a.external.len() as u64));
    for (i, n) in a.external.iter().enumerate() {
        l = l.field(format!("external[{i}] (NodeIdentity)"), n.0);
    }
    l.field("max_members (u64)", u64le(a.max_members))
        .field("version (u64)", u64le(a.version))
        .field("created (u64 ms)", u64le(a.created.0))
}

fn with_signature(fields: Layout, sig: &Signature) -> Layout {
    fields.field("signature", sig.0)
}

fn ref_hello(h: &Hello) -> Layout {
    let l = Layout::default()
        .field("min_version (u32)", u32le(h.min_version))
        .field("max_version (u32)", u32le(h.max_version))
        .field("instance (u64)", u64le(h.instance))
        .field("advert_version (u64)", u64le(h.advert_version));
    match h.known_advert_version {
        None => l.field("known_advert_version: None", [0]),
        Some(v) => l
            .field("known_advert_version: Some", [1])
            .field("known_advert_version (u64)", u64le(v)),
    }
}

fn ref_ack(a: &Ack) -> Layout {
    let mut l = Layout::default().field("count (u64)", u64le(a.0.len() as u64));
    for (i, (sid, n)) in a.0.iter().enumerate() {
        l = l
            .field(format!("[{i}] stream id (u64)"), u64le(*sid))
            .field(format!("[{i}] frames received (u64)"), u64le(*n));
    }
    l
}

fn ref_frame(kind_name: &str, kind: u8, payload: Layout) -> Layout {
    let len = payload.bytes().len() as u32;
    Layout::default()
        .field("length (u32, payload only)", u32le(len))
        .field(format!("type (u8, {kind_name})"), [kind])
        .append("payload: ", payload)
}

/// The fields of an event before the body: `topic` to `deps`.
fn ref_event_head(ev: &Event) -> Layout {
    let mut l = Layout::default()
        .field("topic (TopicIdentity)", ev.topic.0)
        .field("publisher (EngineIdentity)", ev.publisher.0)
        .field("seq (u64)", u64le(ev.seq))
        .field("deps count (u64)", u64le(ev.deps.len() as u64));
    for (i, d) in ev.deps.iter().enumerate() {
        l = l.field(format!("deps[{i}] (EventId)"), d.0);
    }
    l = l.field(
        "dep_positions count (u64)",
        u64le(ev.dep_positions.len() as u64),
    );
    for (i, (p, seq)) in ev.dep_positions.iter().enumerate() {
        l = l
            .field(
                format!("dep_positions[{i}] publisher (EngineIdentity)"),
                p.0,
            )
            .field(format!("dep_positions[{i}] seq (u64)"), u64le(*seq));
    }
    l
}

/// What an event's signature covers after the context: the fields before the body, then the
/// body's length and SHA-256.
fn ref_event_digested(ev: &Event) -> Layout {
    ref_event_head(ev)
        .field("body length (u64)", u64le(ev.body.len() as u64))
        .field("SHA-256(body)", sha256(&ev.body))
}

/// An event's whole signing input: the context, then [`ref_event_digested`].
fn ref_event_signing_input(ev: &Event) -> Layout {
    Layout::default()
        .field("context", CTX_EVENT)
        .append("", ref_event_digested(ev))
}

/// An event's id: SHA-256 of its signing input without the context.
fn ref_event_id(ev: &Event) -> [u8; 32] {
    sha256(&ref_event_digested(ev).bytes())
}

/// An event's encoding: its fields with the whole body, then the signature.
fn ref_event(ev: &Event) -> Layout {
    ref_event_head(ev)
        .append("", ref_bytes("body", &ev.body))
        .field("signature", ev.sig.0)
}

/// What a withdrawal's signature covers after the context.
fn ref_withdrawal_fields(w: &Withdrawal) -> Layout {
    Layout::default()
        .field("topic (TopicIdentity)", w.topic.0)
        .field("publisher (EngineIdentity)", w.publisher.0)
        .field("version (u64)", u64le(w.version))
}

/// The body of a `Protocol::PUBSUB` message: version 1, the variant's tag, its fields.
fn ref_pubsub(m: &PubSubMessage) -> Layout {
    let head = |tag: u32, name: &str| {
        Layout::default()
            .field("version (u32 1)", u32le(1))
            .field(format!("tag (u32 {tag}, {name})"), u32le(tag))
    };
    let topic = |l: Layout, t: &TopicIdentity| l.field("topic (TopicIdentity)", t.0);
    let range = |l: Layout, p: &EngineIdentity, from: u64, to: u64| {
        l.field("publisher (EngineIdentity)", p.0)
            .field("from (u64)", u64le(from))
            .field("to (u64)", u64le(to))
    };
    match m {
        PubSubMessage::Advert {
            advert,
            publisher,
            hops,
        } => head(0, "Advert")
            .append(
                "advert ",
                with_signature(ref_topic_advert_fields(advert), &advert.sig),
            )
            .field("publisher (EngineIdentity)", publisher.0)
            .field("hops (u8)", [*hops]),
        PubSubMessage::Subscribe {
            topic: t,
            publishers,
        } => {
            let mut l = topic(head(1, "Subscribe"), t)
                .field("publishers count (u64)", u64le(publishers.len() as u64));
            for (i, p) in publishers.iter().enumerate() {
                l = l.field(format!("publishers[{i}] (EngineIdentity)"), p.0);
            }
            l
        }
        PubSubMessage::Withdraw(w) => head(10, "Withdraw")
            .append("", ref_withdrawal_fields(w))
            .field("signature", w.sig.0),
        PubSubMessage::SubscribeAck {
            topic: t,
            accepted,
            positions,
        } => {
            let mut l = topic(head(2, "SubscribeAck"), t)
                .field("accepted (bool)", [u8::from(*accepted)])
                .field("positions count (u64)", u64le(positions.len() as u64));
            for (i, (p, next)) in positions.iter().enumerate() {
                l = l
                    .field(format!("positions[{i}] publisher (EngineIdentity)"), p.0)
                    .field(format!("positions[{i}] next seq (u64)"), u64le(*next));
            }
            l
        }
        PubSubMessage::Unsubscribe { topic: t } => topic(head(3, "Unsubscribe"), t),
        PubSubMessage::UnsubscribeAck { topic: t } => topic(head(4, "UnsubscribeAck"), t),
        PubSubMessage::Event(ev) => head(5, "Event").append("", ref_event(ev)),
        PubSubMessage::EventReq {
            topic: t,
            publisher,
            from,
            to,
        } => range(topic(head(6, "EventReq"), t), publisher, *from, *to),
        PubSubMessage::EventResp {
            topic: t,
            publisher,
            from,
            to,
            found,
        } => range(topic(head(7, "EventResp"), t), publisher, *from, *to)
            .field("found (u64)", u64le(*found)),
        PubSubMessage::EventAck {
            topic: t,
            publisher,
            next_seq,
        } => topic(head(8, "EventAck"), t)
            .field("publisher (EngineIdentity)", publisher.0)
            .field("next_seq (u64)", u64le(*next_seq)),
        PubSubMessage::Events(events) => {
            let mut l = head(9, "Events").field("events count (u64)", u64le(events.len() as u64));
            for (i, ev) in events.iter().enumerate() {
                l = l.append(&format!("events[{i}] "), ref_event(ev));
            }
            l
        }
        // A variant added to the code but not yet to the document.
        #[allow(unreachable_patterns)]
        other => panic!("docs/wire.md §12.2 does not define {other:?}"),
    }
}

/// A DER tag and length (X.690 §8.1: short form below 128, else `0x80 | n` and n length bytes).
fn der_header(tag: u8, len: usize) -> Vec<u8> {
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out
}

/// A whole DER value: header, then `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = der_header(tag, content.len());
    out.extend_from_slice(content);
    out
}

/// The node certificate of §7.3, built from the document's rules with a hand-written DER
/// encoder and ed25519-dalek (not rcgen): each part of the certificate is one field.
fn ref_node_certificate(seed: &[u8; 32]) -> Layout {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const INTEGER: u8 = 0x02;
    const BIT_STRING: u8 = 0x03;
    const OID: u8 = 0x06;
    const UTF8_STRING: u8 = 0x0c;
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    let public = ref_public(seed);
    let ed25519 = der(SEQUENCE, &der(OID, &[0x2b, 0x65, 0x70])); // 1.3.101.112, no parameters
    let name = {
        let cn = [
            der(OID, &[0x55, 0x04, 0x03]),
            der(UTF8_STRING, b"netmachine node"),
        ]
        .concat();
        der(SEQUENCE, &der(SET, &der(SEQUENCE, &cn)))
    };
    let mut serial = sha256(&public)[..20].to_vec();
    serial[0] &= 0x7f;
    let serial: Vec<u8> = match serial.iter().position(|b| *b != 0) {
        Some(first) => serial[first..].to_vec(),
        None => vec![0],
    };
    let validity = der(
        SEQUENCE,
        &[
            der(UTC_TIME, b"240101000000Z"),
            der(GENERALIZED_TIME, b"40960101000000Z"),
        ]
        .concat(),
    );
    let mut spki_head = der_header(SEQUENCE, ed25519.len() + 3 + 32);
    spki_head.extend_from_slice(&ed25519);
    spki_head.extend_from_slice(&der_header(BIT_STRING, 33));
    spki_head.push(0); // no unused bits
    let tbs_body = Layout::default()
        .field(
            "version: [0] INTEGER 2 (v3)",
            der(0xa0, &der(INTEGER, &[2])),
        )
        .field(
            "serialNumber: INTEGER, SHA-256(public key)[..20] with the top bit cleared",
            der(INTEGER, &serial),
        )
        .field("signature: AlgorithmIdentifier Ed25519", &ed25519)
        .field("issuer: CN=netmachine node (UTF8String)", &name)
        .field(
            "validity: UTCTime 2024-01-01 00:00:00Z, GeneralizedTime 4096-01-01 00:00:00Z",
            &validity,
        )
        .field("subject: CN=netmachine node (UTF8String)", &name)
        .field(
            "subjectPublicKeyInfo: SEQUENCE, AlgorithmIdentifier Ed25519, BIT STRING header",
            spki_head,
        )
        .field("subjectPublicKey (the node identity)", public);
    let tbs = Layout::default()
        .field(
            "tbsCertificate: SEQUENCE header",
            der_header(SEQUENCE, tbs_body.bytes().len()),
        )
        .append("", tbs_body);
    let tbs_bytes = tbs.bytes();
    let signature = SigningKey::from_bytes(seed).sign(&tbs_bytes).to_bytes();
    let mut sig_head = ed25519.clone();
    sig_head.extend_from_slice(&der_header(BIT_STRING, 65));
    sig_head.push(0);
    let rest = Layout::default()
        .field(
            "signatureAlgorithm: Ed25519; signatureValue: BIT STRING header",
            sig_head,
        )
        .field("signature (Ed25519 over tbsCertificate)", signature);
    let len = tbs_bytes.len() + rest.bytes().len();
    Layout::default()
        .field("Certificate: SEQUENCE header", der_header(SEQUENCE, len))
        .append("", tbs)
        .append("", rest)
}

/// The HKDF-SHA256 of the document, spelled out with HMAC: one block of output.
fn ref_engine_seed(node_seed: &[u8; 32], name: &str) -> [u8; 32] {
    use ring::hmac;
    let salt = hmac::Key::new(hmac::HMAC_SHA256, b"netmachine engine key v1");
    let prk = hmac::sign(&salt, node_seed);
    let prk = hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref());
    let mut info = name.as_bytes().to_vec();
    info.push(0x01);
    hmac::sign(&prk, &info)
        .as_ref()
        .try_into()
        .expect("32 bytes")
}

/// The Ed25519 public key of a 32-byte seed, computed with ed25519-dalek directly.
fn ref_public(seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

/// An Ed25519 signature over `context || fields`, computed with ed25519-dalek directly. For
/// messages and events, `fields` is the digested form ([`ref_message_digested`],
/// [`ref_event_digested`]).
fn ref_sign(seed: &[u8; 32], context: &[u8], fields: &[u8]) -> [u8; 64] {
    let mut input = context.to_vec();
    input.extend_from_slice(fields);
    SigningKey::from_bytes(seed).sign(&input).to_bytes()
}

// ---------------------------------------------------------------------------------------------
// The fixed inputs of every vector.

const NODE_A_SEED: [u8; 32] = [0x01; 32];
const NODE_B_SEED: [u8; 32] = [0x02; 32];
const TOPIC_SEED: [u8; 32] = [0x03; 32];
const DOMAIN_SEED: [u8; 32] = [0x04; 32];
/// 2023-11-14T22:13:20Z.
const T0: Timestamp = Timestamp(1_700_000_000_000);
const CTX_ENGINE_MESSAGE: &[u8] = b"netmachine/v1/engine-message\0";
const CTX_NODE_ADVERT: &[u8] = b"netmachine/v2/node-advert\0";
const CTX_ENGINE_ADVERT: &[u8] = b"netmachine/v2/engine-advert\0";
/// T0 + 24 h: when the vectors' node and engine adverts expire.
const T0_PLUS_DAY: Timestamp = Timestamp(1_700_086_400_000);
const CTX_TOPIC_ADVERT: &[u8] = b"netmachine/v2/topic-advert\0";
const CTX_DOMAIN_ADVERT: &[u8] = b"netmachine/v2/domain-advert\0";
const CTX_EVENT: &[u8] = b"netmachine/v1/event\0";
const CTX_WITHDRAWAL: &[u8] = b"netmachine/v1/withdrawal\0";

struct Fixture {
    node_a: Keypair,
    node_b: Keypair,
    echo: Keypair,
    ping_b: Keypair,
    topic: Keypair,
    domain: Keypair,
    /// A ping from engine `echo` of node A to node B (signed).
    request: EngineMessage,
    /// Node B's ping engine's answer (signed).
    reply: EngineMessage,
    node_advert: NodeAdvert,
    engine_advert: EngineAdvert,
    topic_advert: TopicAdvert,
    domain_advert: DomainAdvert,
    hello: Hello,
    ack: Ack,
    /// The PubSub engines of nodes A and B (the topic's publishers).
    pubsub_a: Keypair,
    pubsub_b: Keypair,
    /// Two messages engine `echo` of node A publishes on the topic (unsigned).
    published: [EngineMessage; 2],
    /// The events node A's PubSub makes of them: sequence numbers 1 and 2.
    events: [Event; 2],
}

fn signed(mut m: EngineMessage, key: &Keypair) -> EngineMessage {
    let mut wire = Vec::new();
    m.sign_into_wire(key, &mut wire, &mut Vec::new());
    m
}

fn fixture() -> Fixture {
    let node_a = Keypair::from_seed(&NODE_A_SEED);
    let node_b = Keypair::from_seed(&NODE_B_SEED);
    let echo = node_a.derive_engine("echo");
    let ping_b = node_b.derive_engine("ping");
    let topic = Keypair::from_seed(&TOPIC_SEED);
    let domain = Keypair::from_seed(&DOMAIN_SEED);
    let request = signed(
        EngineMessage {
            src: echo.engine_identity(),
            src_node: node_a.node_identity(),
            dst: Destination::Node(node_b.node_identity()),
            id: MessageId(1_700_000_000_000_000_001),
            reply_to: None,
            expiry: Some(T0.after(Duration::from_secs(60))),
            rprefs: Some(RoutingPrefs {
                scope: RoutingScope::Any,
            }),
            tprefs: Some(TransportPrefs::RELIABLE_ORDERED),
            protocol: Protocol::PING,
            body: b"ping".to_vec(),
            sig: None,
        },
        &echo,
    );
    let reply = signed(
        EngineMessage {
            src: ping_b.engine_identity(),
            src_node: node_b.node_identity(),
            dst: Destination::Engine(echo.engine_identity()),
            id: MessageId(1_700_000_000_500_000_000),
            reply_to: Some(request.id),
            expiry: Some(Timestamp(T0.0 + 500).after(Duration::from_secs(60))),
            rprefs: None,
            tprefs: Some(TransportPrefs::RELIABLE_ORDERED),
            protocol: Protocol::PING,
            body: b"ping".to_vec(),
            sig: None,
        },
        &ping_b,
    );
    let node_advert = NodeAdvert::new_signed(
        &node_a,
        vec![
            (
                TransportAddress::quic("192.0.2.1:7001".parse().unwrap()),
                100,
            ),
            (
                TransportAddress::quic("[2001:db8::1]:7001".parse().unwrap()),
                50,
            ),
        ],
        3,
        T0,
        T0_PLUS_DAY,
        Some("node-a".into()),
    );
    let engine_advert = EngineAdvert {
        engine: echo.engine_identity(),
        node: node_a.node_identity(),
        name: "echo".into(),
        version: 1,
        created: T0,
        expires: T0_PLUS_DAY,
        sig: Signature([0; 64]),
    }
    .sign(&echo);
    let topic_advert = TopicAdvert {
        topic: topic.topic_identity(),
        publishers: vec![
            node_a.derive_engine("pubsub").engine_identity(),
            node_b.derive_engine("pubsub").engine_identity(),
        ],
        tags: vec!["blocks".into(), "testnet".into()],
        version: 1,
        created: T0,
        scope: None,
        sig: Signature([0; 64]),
    }
    .sign(&topic);
    let domain_advert = DomainAdvert {
        id: domain.domain_identity(),
        introducers: vec![Introducer {
            node: node_a.node_identity(),
            addrs: vec![TransportAddress::quic("127.0.0.1:7001".parse().unwrap())],
        }],
        auth: DomainAuth::AllowList(vec![node_b.node_identity()]),
        external: vec![node_a.node_identity()],
        max_members: 100,
        version: 1,
        created: T0,
        sig: Signature([0; 64]),
    }
    .sign(&domain);
    let hello = Hello {
        min_version: 2,
        max_version: 2,
        instance: 0x0123_4567_89ab_cdef,
        advert_version: 3,
        known_advert_version: Some(5),
    };
    let ack = Ack(vec![(6, 3), (10, 1)]);
    let pubsub_a = node_a.derive_engine(PUBSUB_ENGINE_NAME);
    let pubsub_b = node_b.derive_engine(PUBSUB_ENGINE_NAME);
    let publication = |n: u64| EngineMessage {
        src: echo.engine_identity(),
        src_node: node_a.node_identity(),
        dst: Destination::Topic(topic.topic_identity()),
        id: MessageId(1_700_000_000_000_000_010 + n),
        reply_to: None,
        expiry: Some(T0.after(Duration::from_secs(60))),
        rprefs: None,
        tprefs: None,
        protocol: Protocol(Protocol::APP_BASE),
        body: format!("block {n}").into_bytes(),
        sig: None,
    };
    let published = [publication(1), publication(2)];
    let first = Event::new_signed(
        &pubsub_a,
        topic.topic_identity(),
        1,
        vec![],
        fields_of(&published[0]),
    );
    // Node B's PubSub published its event 4 on the topic (body `b`), which node A delivered
    // before publishing its event 2.
    let of_b = Event::new_signed(&pubsub_b, topic.topic_identity(), 4, vec![], b"b".to_vec());
    let second = Event::new_signed_after(
        &pubsub_a,
        topic.topic_identity(),
        2,
        vec![first.id(), of_b.id()],
        vec![(pubsub_b.engine_identity(), 4)],
        fields_of(&published[1]),
    );
    Fixture {
        node_a,
        node_b,
        echo,
        ping_b,
        topic,
        domain,
        request,
        reply,
        node_advert,
        engine_advert,
        topic_advert,
        domain_advert,
        hello,
        ack,
        pubsub_a,
        pubsub_b,
        published,
        events: [first.into_inner(), second.into_inner()],
    }
}

fn unsigned(m: &EngineMessage) -> EngineMessage {
    EngineMessage {
        sig: None,
        ..m.clone()
    }
}

fn fields_of(m: &EngineMessage) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode_signed_fields(&mut out);
    out
}

fn checked(key: &Keypair) -> CheckedKey {
    CheckedKey::parse(&key.public()).expect("a valid key")
}

// ---------------------------------------------------------------------------------------------
// The checks.

#[test]
fn doc_has_exactly_the_known_vectors() {
    let found = doc_markers();
    for name in &found {
        assert!(
            VECTORS.contains(name),
            "docs/wire.md has vector {name:?}, which no test checks"
        );
    }
    for name in VECTORS {
        let n = found.iter().filter(|f| *f == name).count();
        assert_eq!(n, 1, "vector {name:?} appears {n} times in docs/wire.md");
        assert!(!block(name).trim().is_empty(), "vector {name:?} is empty");
    }
}

#[test]
fn context_and_alpn_vectors() {
    let pairs: [(&str, &[u8], &[u8]); 5] = [
        (
            "context-engine-message",
            wire::context::ENGINE_MESSAGE,
            CTX_ENGINE_MESSAGE,
        ),
        (
            "context-node-advert",
            wire::context::NODE_ADVERT,
            CTX_NODE_ADVERT,
        ),
        (
            "context-engine-advert",
            wire::context::ENGINE_ADVERT,
            CTX_ENGINE_ADVERT,
        ),
        (
            "context-topic-advert",
            wire::context::TOPIC_ADVERT,
            CTX_TOPIC_ADVERT,
        ),
        (
            "context-domain-advert",
            wire::context::DOMAIN_ADVERT,
            CTX_DOMAIN_ADVERT,
        ),
    ];
    for (name, code, literal) in pairs {
        assert_vector(name, code);
        assert_vector(name, literal);
        assert_eq!(code.last(), Some(&0), "{name} ends with a NUL byte");
    }
    assert_vector("alpn", netmachine::transport::ALPN);
    assert_vector("alpn", b"netmachine/1");
}

#[test]
fn identity_vectors() {
    let fx = fixture();
    assert_vector("node-a-seed", &NODE_A_SEED);
    assert_vector("node-b-seed", &NODE_B_SEED);
    assert_vector("node-a-identity", fx.node_a.node_identity().as_bytes());
    assert_vector("node-b-identity", fx.node_b.node_identity().as_bytes());
    assert_vector("node-a-identity", &ref_public(&NODE_A_SEED));
    assert_vector("node-b-identity", &ref_public(&NODE_B_SEED));

    // Engine keys: HKDF-SHA256 of the node seed, salted, with the engine name as info.
    assert_vector("engine-a-echo-seed", &fx.echo.seed());
    assert_vector("engine-a-echo-seed", &ref_engine_seed(&NODE_A_SEED, "echo"));
    assert_vector("engine-a-echo-identity", &fx.echo.public());
    assert_vector(
        "engine-a-echo-identity",
        &ref_public(&ref_engine_seed(&NODE_A_SEED, "echo")),
    );
    assert_vector("engine-b-ping-seed", &fx.ping_b.seed());
    assert_vector("engine-b-ping-seed", &ref_engine_seed(&NODE_B_SEED, "ping"));
    assert_vector("engine-b-ping-identity", &fx.ping_b.public());

    // The engine named "router" is the node itself.
    assert_eq!(
        fx.node_a.derive_engine(ROUTER_ENGINE_NAME).public(),
        fx.node_a.public()
    );
    assert_eq!(
        fx.node_a.node_identity().router(),
        EngineIdentity(fx.node_a.public())
    );

    // The text form of an identity is its lowercase hex; either case parses.
    let text = fx.node_a.node_identity().to_string();
    assert_eq!(text, to_hex(&hex("node-a-identity")));
    assert_eq!(
        text.to_uppercase().parse::<NodeIdentity>().unwrap(),
        fx.node_a.node_identity()
    );
}

#[test]
fn key_file_vectors() {
    let fx = fixture();
    assert_vector("key-file-der", &fx.node_a.to_pkcs8_der());
    let der = hex("key-file-der");
    assert_eq!(der.len(), 48);
    assert_eq!(der[..16], netmachine::identity::PKCS8_ED25519_PREFIX);
    assert_eq!(der[16..], NODE_A_SEED);

    let pem = text("key-file-pem");
    assert_eq!(format!("{pem}\n"), fx.node_a.to_pem());
    let back = Keypair::from_pem(&pem).unwrap();
    assert_eq!(back.public(), fx.node_a.public());
}

#[test]
fn node_certificate_vector() {
    let fx = fixture();
    let cert = netmachine::node::quic::node_certificate_der(&fx.node_a).unwrap();
    assert_vector("node-cert-der", &cert);
    assert_vector("node-cert-der", &ref_node_certificate(&NODE_A_SEED).bytes());
    // The key alone decides the bytes: the same again, and node B's follows the same rules.
    assert_eq!(
        netmachine::node::quic::node_certificate_der(&fx.node_a).unwrap(),
        cert
    );
    assert_eq!(
        netmachine::node::quic::node_certificate_der(&fx.node_b).unwrap(),
        ref_node_certificate(&NODE_B_SEED).bytes()
    );

    // The document's bytes: node A's key at its place, and a signature over the tbsCertificate
    // that verifies under that key.
    let doc = hex("node-cert-der");
    let layout = ref_node_certificate(&NODE_A_SEED);
    let at = |name: &str| {
        let mut offset = 0;
        for (n, b) in &layout.fields {
            if n == name {
                return offset..offset + b.len();
            }
            offset += b.len();
        }
        panic!("no field {name:?}");
    };
    assert_eq!(
        doc[at("subjectPublicKey (the node identity)")],
        hex("node-a-identity")[..]
    );
    let tbs =
        at("tbsCertificate: SEQUENCE header").start..at("subjectPublicKey (the node identity)").end;
    let sig: [u8; 64] = doc[at("signature (Ed25519 over tbsCertificate)")]
        .try_into()
        .unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&fx.node_a.public()).unwrap();
    key.verify_strict(
        &doc[tbs.clone()],
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .expect("the certificate is validly self-signed");
    let mut other = doc[tbs].to_vec();
    let last = other.len() - 1;
    other[last] ^= 1;
    assert!(key
        .verify_strict(&other, &ed25519_dalek::Signature::from_bytes(&sig))
        .is_err());
    // One DER value spanning the whole vector (a 3-byte header: 0x30, then 0x81 and one length
    // byte).
    assert_eq!(doc[..3], der_header(0x30, doc.len() - 3)[..]);
}

#[test]
fn enum_encoding_vectors() {
    let fx = fixture();
    let topic = Destination::Topic(fx.topic.topic_identity());
    assert_vector("enc-destination-topic", &encode_to_vec(&topic));
    assert_vector("enc-destination-topic", &ref_destination(&topic).bytes());
    assert_eq!(
        decode_exact::<Destination>(&hex("enc-destination-topic")).unwrap(),
        topic
    );

    let rprefs = RoutingPrefs {
        scope: RoutingScope::Domain(fx.domain.domain_identity()),
    };
    assert_vector("enc-routing-prefs-domain", &encode_to_vec(&rprefs));
    assert_vector(
        "enc-routing-prefs-domain",
        &ref_routing_prefs(&rprefs).bytes(),
    );
    assert_eq!(
        decode_exact::<RoutingPrefs>(&hex("enc-routing-prefs-domain")).unwrap(),
        rprefs
    );

    let tprefs = TransportPrefs {
        ordering: Ordering::Unordered,
        reliability: Reliability::Unreliable,
        security: Security::OnionRouting(3),
    };
    assert_vector("enc-transport-prefs-datagram", &encode_to_vec(&tprefs));
    assert_vector(
        "enc-transport-prefs-datagram",
        &ref_transport_prefs(&tprefs).bytes(),
    );
    assert_eq!(
        decode_exact::<TransportPrefs>(&hex("enc-transport-prefs-datagram")).unwrap(),
        tprefs
    );

    // Every other tag, against the reference encoder.
    for d in [
        Destination::Engine(EngineIdentity([9; 32])),
        Destination::Node(NodeIdentity([9; 32])),
        Destination::Domain(DomainIdentity([9; 32])),
    ] {
        assert_eq!(encode_to_vec(&d), ref_destination(&d).bytes(), "{d:?}");
    }
    for scope in [RoutingScope::Local, RoutingScope::Any] {
        let p = RoutingPrefs { scope };
        assert_eq!(encode_to_vec(&p), ref_routing_prefs(&p).bytes(), "{p:?}");
    }
    for security in [Security::Direct, Security::Mixnet] {
        let p = TransportPrefs {
            security,
            ..TransportPrefs::RELIABLE_ORDERED
        };
        assert_eq!(encode_to_vec(&p), ref_transport_prefs(&p).bytes(), "{p:?}");
    }
    // An undefined tag is refused.
    let mut bad = hex("enc-destination-topic");
    bad[0] = 4;
    assert!(decode_exact::<Destination>(&bad).is_err());
}

#[test]
fn engine_message_vectors() {
    let fx = fixture();
    let m = &fx.request;
    let fields = fields_of(m);
    assert_vector("message-signed-fields", &fields);
    assert_vector("message-signed-fields", &ref_message_fields(m).bytes());

    // The signing input: the context, the signed fields up to the body's length, the length,
    // and SHA-256 of the body (not the body).
    let mut after_context = Vec::new();
    m.signing_input(&mut after_context);
    let mut input = CTX_ENGINE_MESSAGE.to_vec();
    input.extend_from_slice(&after_context);
    assert_vector("message-signing-input", &input);
    assert_vector(
        "message-signing-input",
        &ref_message_signing_input(m).bytes(),
    );
    // The same, from the document's own bytes: its signed fields with the body's bytes replaced
    // by their digest.
    let doc_fields = hex("message-signed-fields");
    let body_start = doc_fields.len() - m.body.len();
    let mut from_doc = CTX_ENGINE_MESSAGE.to_vec();
    from_doc.extend_from_slice(&doc_fields[..body_start]);
    from_doc.extend_from_slice(&sha256(&doc_fields[body_start..]));
    assert_vector("message-signing-input", &from_doc);

    let sig = m.sig.expect("signed");
    assert_vector("message-signature", &sig.0);
    assert_vector(
        "message-signature",
        &ref_sign(
            &fx.echo.seed(),
            CTX_ENGINE_MESSAGE,
            &ref_message_digested(m).bytes(),
        ),
    );
    // Not a signature over the whole fields (the signing input before the body digest).
    assert_ne!(
        sig.0,
        ref_sign(&fx.echo.seed(), CTX_ENGINE_MESSAGE, &fields)
    );

    let wire = m.to_wire().expect("signed");
    assert_vector("message-wire", &wire);
    assert_vector("message-wire", &ref_message_wire(m).bytes());
    let mut again = unsigned(m);
    let mut out = Vec::new();
    again.sign_into_wire(&fx.echo, &mut out, &mut Vec::new());
    assert_vector("message-wire", &out);

    // Decoding the document's bytes gives the message back, and its signature verifies under
    // the source engine's key only.
    let doc_wire = hex("message-wire");
    let u = Unverified::decode(doc_wire.clone()).unwrap();
    assert_eq!(u.message(), &unsigned(m));
    assert_eq!(u.signature().0, hex("message-signature")[..]);
    assert_eq!(u.wire(), &doc_wire[..]);
    let v = u.verify(&checked(&fx.echo), &mut Vec::new()).unwrap();
    assert_eq!(v.into_inner(), *m);
    let u = Unverified::decode(doc_wire.clone()).unwrap();
    assert!(u.verify(&checked(&fx.node_a), &mut Vec::new()).is_err());

    // Any flipped bit after the version either fails to decode or fails to verify.
    for i in 4..doc_wire.len() {
        let mut bad = doc_wire.clone();
        bad[i] ^= 0x80;
        if let Ok(u) = Unverified::decode(bad) {
            assert!(
                u.verify(&checked(&fx.echo), &mut Vec::new()).is_err(),
                "flip at byte {i} verified"
            );
        }
    }
    // Another version, a truncated message and trailing bytes are refused.
    let mut v2 = doc_wire.clone();
    v2[0] = 2;
    assert_eq!(
        Unverified::decode(v2).unwrap_err(),
        wire::WireError::UnknownVersion(2)
    );
    assert!(Unverified::decode(doc_wire[..doc_wire.len() - 65].to_vec()).is_err());
    let mut long = doc_wire.clone();
    long.insert(doc_wire.len() - 64, 0);
    assert!(Unverified::decode(long).is_err());
}

#[test]
fn reply_vector() {
    let fx = fixture();
    let m = &fx.reply;
    assert_vector("reply-wire", &m.to_wire().unwrap());
    assert_vector("reply-wire", &ref_message_wire(m).bytes());
    let u = Unverified::decode(hex("reply-wire")).unwrap();
    assert_eq!(u.message().reply_to, Some(fx.request.id));
    assert_eq!(
        u.message().dst,
        Destination::Engine(fx.echo.engine_identity())
    );
    assert_eq!(u.message().body, fx.request.body);
    let v = u.verify(&checked(&fx.ping_b), &mut Vec::new()).unwrap();
    assert_eq!(v.into_inner(), *m);
    assert_eq!(
        m.sig.unwrap().0,
        ref_sign(
            &fx.ping_b.seed(),
            CTX_ENGINE_MESSAGE,
            &ref_message_digested(m).bytes()
        )
    );
}

/// Messages signed here with the document's rules (reference encoder, SHA-256 and Ed25519 used
/// directly) verify in the crate, and the crate signs them identically, for bodies of several
/// sizes, with and without `reply_to`, `rprefs` and `tprefs`.
#[test]
fn independently_signed_messages_verify() {
    let fx = fixture();
    let bodies: [Vec<u8>; 4] = [
        Vec::new(),
        b"ping".to_vec(),
        (0..=255).collect(),
        vec![0xa5; 100_000],
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        for base in [&fx.request, &fx.reply, &fx.published[0]] {
            let key = if base.src == fx.ping_b.engine_identity() {
                &fx.ping_b
            } else {
                &fx.echo
            };
            let m = EngineMessage {
                id: MessageId(base.id.0 + i as u64),
                body: body.clone(),
                sig: None,
                ..base.clone()
            };
            let sig = Signature(ref_sign(
                &key.seed(),
                CTX_ENGINE_MESSAGE,
                &ref_message_digested(&m).bytes(),
            ));
            let wire = Layout::default()
                .field("version", u32le(1))
                .append("", ref_message_fields(&m))
                .field("signature", sig.0)
                .bytes();

            let mut ours = m.clone();
            let mut out = Vec::new();
            assert_eq!(ours.sign_into_wire(key, &mut out, &mut Vec::new()), sig);
            let mut again = m.clone();
            again.sign(key, &mut Vec::new());
            assert_eq!(again.sig, Some(sig));
            assert!(Unverified::decode(out.clone())
                .unwrap()
                .verify(&checked(key), &mut Vec::new())
                .is_ok());
            assert_eq!(out, wire, "wire form, body of {} bytes", m.body.len());
            let mut input = Vec::new();
            m.signing_input(&mut input);
            assert_eq!(input, ref_message_digested(&m).bytes());

            let u = Unverified::decode(wire.clone()).unwrap();
            let v = u.verify(&checked(key), &mut Vec::new()).unwrap();
            assert_eq!(
                v.into_inner(),
                EngineMessage {
                    sig: Some(sig),
                    ..m
                }
            );
            // A changed body byte breaks the signature.
            if !body.is_empty() {
                let mut bad = wire;
                let at = bad.len() - 65;
                bad[at] ^= 1;
                let u = Unverified::decode(bad).unwrap();
                assert!(u.verify(&checked(key), &mut Vec::new()).is_err());
            }
        }
    }
}

#[test]
fn batch_verification_accepts_the_vectors() {
    let fx = fixture();
    let mut items = Vec::new();
    for _ in 0..2 {
        items.push((
            Unverified::decode(hex("message-wire")).unwrap(),
            checked(&fx.echo),
        ));
        items.push((
            Unverified::decode(hex("reply-wire")).unwrap(),
            checked(&fx.ping_b),
        ));
    }
    let mut out = Vec::new();
    BatchVerifier::new().verify(items, &mut out);
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|r| r.is_ok()));

    // A batch holding one message whose body was changed finds exactly that one.
    let mut items = Vec::new();
    for i in 0..6 {
        let (name, key) = if i % 2 == 0 {
            ("message-wire", &fx.echo)
        } else {
            ("reply-wire", &fx.ping_b)
        };
        let mut wire = hex(name);
        if i == 3 {
            let at = wire.len() - 65;
            wire[at] ^= 0x20; // "ping" -> "pinG": still decodes
        }
        items.push((Unverified::decode(wire).unwrap(), checked(key)));
    }
    let mut out = Vec::new();
    BatchVerifier::new().verify(items, &mut out);
    let ok: Vec<bool> = out.iter().map(|r| r.is_ok()).collect();
    assert_eq!(ok, [true, true, true, false, true, true]);
}

#[test]
fn receiver_checks_on_the_message_vector() {
    let fx = fixture();
    let wire = hex("message-wire");
    let a = fx.node_a.node_identity();
    let b = fx.node_b.node_identity();
    let expiry = fx.request.expiry.unwrap();
    let at = |wall: Timestamp| Now {
        instant: Instant::now(),
        wall,
    };
    let stats = NodeStats::default();

    // From the node it names, in date: admitted once, then a duplicate.
    let mut ingress = Ingress::new(IngressLimits::default());
    ingress.accept(at(T0), a, wire.clone(), None).unwrap();
    let mut admitted = Vec::new();
    ingress.flush(at(T0), &stats, &mut admitted, &mut Vec::new(), |r, _| {
        panic!("dropped: {r:?}")
    });
    assert_eq!(admitted.len(), 1);
    assert_eq!(admitted[0].1, a);
    assert_eq!(stats.verified.load(AtomicOrdering::Relaxed), 1);
    assert_eq!(
        ingress.accept(at(T0), a, wire.clone(), None),
        Err(DropReason::Duplicate)
    );

    let mut fresh = Ingress::new(IngressLimits::default());
    // From another peer than its source node.
    assert_eq!(
        fresh.accept(at(T0), b, wire.clone(), None),
        Err(DropReason::SourceNodeMismatch)
    );
    // At or after its expiry.
    assert_eq!(
        fresh.accept(at(expiry), a, wire.clone(), None),
        Err(DropReason::Expired)
    );
    // Expiry further ahead than the maximum lifetime (600 s by default).
    let early = Timestamp(expiry.0 - 600_000 - 1);
    assert_eq!(
        fresh.accept(at(early), a, wire.clone(), None),
        Err(DropReason::ExpiryOutOfRange)
    );
    assert!(fresh
        .accept(at(Timestamp(expiry.0 - 600_000)), a, wire.clone(), None)
        .is_ok());
    // Undecodable and unknown-version bytes.
    assert_eq!(
        fresh.accept(at(T0), a, wire[..10].to_vec(), None),
        Err(DropReason::Malformed)
    );
    let mut v2 = wire.clone();
    v2[0] = 2;
    assert_eq!(
        fresh.accept(at(T0), a, v2, None),
        Err(DropReason::UnknownVersion)
    );
}

#[test]
fn node_advert_vectors() {
    let fx = fixture();
    let a = &fx.node_advert;
    let fields = a.signed_fields();
    assert_vector("node-advert-signed-fields", &fields);
    assert_vector(
        "node-advert-signed-fields",
        &ref_node_advert_fields(a).bytes(),
    );
    let mut input = CTX_NODE_ADVERT.to_vec();
    input.extend_from_slice(&fields);
    assert_vector("node-advert-signing-input", &input);
    assert_eq!(
        a.sig.0,
        ref_sign(&NODE_A_SEED, CTX_NODE_ADVERT, &fields),
        "node advert signature"
    );
    assert_vector("node-advert-wire", &encode_to_vec(a));
    assert_vector(
        "node-advert-wire",
        &with_signature(ref_node_advert_fields(a), &a.sig).bytes(),
    );

    let back: NodeAdvert = decode_exact(&hex("node-advert-wire")).unwrap();
    assert_eq!(back, *a);
    assert_eq!(
        back.addrs[0].0.socket_addr(),
        "192.0.2.1:7001".parse().unwrap()
    );
    assert_eq!(
        back.addrs[1].0.socket_addr(),
        "[2001:db8::1]:7001".parse().unwrap()
    );
    assert_eq!(back.clone().verify().unwrap().into_inner(), *a);
    let mut forged = back;
    forged.version += 1;
    assert!(forged.verify().is_err());

    let line = text("node-advert-line");
    assert_eq!(line, a.to_line());
    assert_eq!(
        line,
        format!("nmadvert2:{}", to_hex(&hex("node-advert-wire")))
    );
    assert_eq!(NodeAdvert::from_line(&line).unwrap().into_inner(), *a);
}

#[test]
fn domain_scoped_topic_advert_vector() {
    let fx = fixture();
    let t = scoped_topic_advert(&fx);
    assert_vector("topic-advert-scoped-wire", &encode_to_vec(&t));
    assert_vector(
        "topic-advert-scoped-wire",
        &with_signature(ref_topic_advert_fields(&t), &t.sig).bytes(),
    );
    assert_eq!(
        t.sig.0,
        ref_sign(&TOPIC_SEED, CTX_TOPIC_ADVERT, &t.signed_fields())
    );
    let back: TopicAdvert = decode_exact(&hex("topic-advert-scoped-wire")).unwrap();
    assert_eq!(back.scope, Some(fx.domain.domain_identity()));
    assert_eq!(
        back.routing_scope(),
        RoutingScope::Domain(fx.domain.domain_identity())
    );
    assert_eq!(back.clone().verify().unwrap().into_inner(), t);
    // The scope is signed: the unscoped advert's bytes with the scope flag set do not verify.
    let mut open = back;
    open.scope = None;
    assert!(open.verify().is_err());
}

#[test]
fn engine_topic_and_domain_advert_vectors() {
    let fx = fixture();

    let e = &fx.engine_advert;
    assert_vector("engine-advert-wire", &encode_to_vec(e));
    assert_vector(
        "engine-advert-wire",
        &with_signature(ref_engine_advert_fields(e), &e.sig).bytes(),
    );
    assert_eq!(
        e.sig.0,
        ref_sign(&fx.echo.seed(), CTX_ENGINE_ADVERT, &e.signed_fields())
    );
    let back: EngineAdvert = decode_exact(&hex("engine-advert-wire")).unwrap();
    assert_eq!(back.verify().unwrap().into_inner(), *e);
    let line = text("engine-advert-line");
    assert_eq!(line, e.to_line());
    assert_eq!(
        line,
        format!("nmengine2:{}", to_hex(&hex("engine-advert-wire")))
    );
    assert_eq!(EngineAdvert::from_line(&line).unwrap().into_inner(), *e);

    let t = &fx.topic_advert;
    assert_vector("topic-advert-wire", &encode_to_vec(t));
    assert_vector(
        "topic-advert-wire",
        &with_signature(ref_topic_advert_fields(t), &t.sig).bytes(),
    );
    assert_eq!(
        t.sig.0,
        ref_sign(&TOPIC_SEED, CTX_TOPIC_ADVERT, &t.signed_fields())
    );
    let back: TopicAdvert = decode_exact(&hex("topic-advert-wire")).unwrap();
    assert_eq!(back.verify().unwrap().into_inner(), *t);

    let d = &fx.domain_advert;
    assert_vector("domain-advert-wire", &encode_to_vec(d));
    assert_vector(
        "domain-advert-wire",
        &with_signature(ref_domain_advert_fields(d), &d.sig).bytes(),
    );
    assert_eq!(
        d.sig.0,
        ref_sign(&DOMAIN_SEED, CTX_DOMAIN_ADVERT, &d.signed_fields())
    );
    let back: DomainAdvert = decode_exact(&hex("domain-advert-wire")).unwrap();
    assert_eq!(back.verify().unwrap().into_inner(), *d);
}

#[test]
fn control_vectors() {
    let fx = fixture();
    let hello = control::encode(&fx.hello);
    assert_vector("hello-payload", &hello);
    assert_vector("hello-payload", &ref_hello(&fx.hello).bytes());
    assert_eq!(
        control::decode::<Hello>(&hex("hello-payload")).unwrap(),
        fx.hello
    );
    let none = Hello {
        known_advert_version: None,
        ..fx.hello
    };
    assert_eq!(control::encode(&none), ref_hello(&none).bytes());

    let mut hello_frame = Vec::new();
    frame::encode(kind::HELLO, &hello, &mut hello_frame);
    assert_vector("hello-frame", &hello_frame);
    assert_vector(
        "hello-frame",
        &ref_frame("HELLO", 0x01, ref_hello(&fx.hello)).bytes(),
    );

    let ack = control::encode(&fx.ack);
    assert_vector("ack-payload", &ack);
    assert_vector("ack-payload", &ref_ack(&fx.ack).bytes());
    assert_eq!(control::decode::<Ack>(&hex("ack-payload")).unwrap(), fx.ack);
    let mut ack_frame = Vec::new();
    frame::encode(kind::ACK, &ack, &mut ack_frame);
    assert_vector("ack-frame", &ack_frame);
    assert_vector(
        "ack-frame",
        &ref_frame("ACK", 0x03, ref_ack(&fx.ack)).bytes(),
    );

    // A control stream carrying both frames, split anywhere, yields them in order.
    let mut stream = hex("hello-frame");
    stream.extend_from_slice(&hex("ack-frame"));
    for split in 0..stream.len() {
        let mut d = FrameDecoder::new(64 << 10);
        let mut got = Vec::new();
        d.push(&stream[..split], |k, p| got.push((k, p))).unwrap();
        d.push(&stream[split..], |k, p| got.push((k, p))).unwrap();
        assert_eq!(
            got,
            vec![(0x01, hex("hello-payload")), (0x03, hex("ack-payload"))]
        );
        assert!(d.at_boundary());
    }
    assert_eq!(
        (kind::HELLO, kind::ADVERT, kind::ACK, kind::MESSAGE),
        (0x01, 0x02, 0x03, 0x10)
    );

    // At most 2048 entries in one ACK (§10.3), and the largest ACK fits the control stream's
    // 64 KiB frame limit.
    assert_eq!(control::MAX_ACK_ENTRIES, 2048);
    for n in [2048u64, 2049] {
        let ack = Ack((0..n).map(|i| (4 * i + 2, i)).collect());
        let bytes = ref_ack(&ack).bytes();
        assert_eq!(control::encode(&ack), bytes);
        assert_eq!(
            control::decode::<Ack>(&bytes).is_ok(),
            n <= 2048,
            "{n} entries"
        );
        if n == 2048 {
            assert_eq!(bytes.len(), 32_776);
            let mut f = Vec::new();
            frame::encode(kind::ACK, &bytes, &mut f);
            let mut d = FrameDecoder::new(64 << 10);
            let mut got = 0;
            d.push(&f, |_, _| got += 1).unwrap();
            assert_eq!(got, 1);
        }
    }
}

/// The identity-exchange payloads of §16.10, keyed by vector name, with their frame types.
fn exchange_payloads(fx: &Fixture) -> Vec<(&'static str, &'static str, u8, Vec<u8>, Layout)> {
    let adverts = EngineAdverts(vec![fx.engine_advert.clone()]);
    let withdrawn = Withdrawn(vec![fx.echo.engine_identity()]);
    let lookup = Lookup {
        engine: fx.echo.engine_identity(),
    };
    let found = Found {
        engine: fx.echo.engine_identity(),
        advert: Some(fx.engine_advert.clone()),
        node_advert: Some(fx.node_advert.clone()),
    };
    let unknown = Found {
        engine: fx.echo.engine_identity(),
        advert: None,
        node_advert: None,
    };
    vec![
        (
            "engine-adverts-frame",
            "ENGINE_ADVERTS",
            0x04,
            control::encode(&adverts),
            ref_engine_adverts(&adverts.0),
        ),
        (
            "engine-withdraw-frame",
            "ENGINE_WITHDRAW",
            0x05,
            control::encode(&withdrawn),
            ref_withdrawn(&withdrawn.0),
        ),
        (
            "lookup-frame",
            "LOOKUP",
            0x06,
            control::encode(&lookup),
            Layout::default().field("engine (EngineIdentity)", lookup.engine.0),
        ),
        (
            "found-frame",
            "FOUND",
            0x07,
            control::encode(&found),
            ref_found(&found),
        ),
        (
            "found-unknown-frame",
            "FOUND",
            0x07,
            control::encode(&unknown),
            ref_found(&unknown),
        ),
    ]
}

#[test]
fn identity_exchange_vectors() {
    let fx = fixture();
    for (name, kind_name, k, payload, layout) in exchange_payloads(&fx) {
        assert_eq!(payload, layout.bytes(), "{name}: reference encoding");
        let mut f = Vec::new();
        frame::encode(k, &payload, &mut f);
        assert_vector(name, &f);
        assert_vector(name, &ref_frame(kind_name, k, layout).bytes());
        let mut d = FrameDecoder::new(64 << 10);
        let mut got = Vec::new();
        d.push(&hex(name), |k, p| got.push((k, p))).unwrap();
        assert_eq!(got, vec![(k, payload)], "{name}");
    }
    let found: Found = control::decode(&hex("found-frame")[5..]).unwrap();
    assert_eq!(
        found.advert.unwrap().verify().unwrap().into_inner(),
        fx.engine_advert
    );
    assert_eq!(
        found.node_advert.unwrap().verify().unwrap().into_inner(),
        fx.node_advert
    );
    let lookup: Lookup = control::decode(&hex("lookup-frame")[5..]).unwrap();
    assert_eq!(lookup.engine, fx.echo.engine_identity());
    assert_eq!(
        (
            kind::ENGINE_ADVERTS,
            kind::ENGINE_WITHDRAW,
            kind::LOOKUP,
            kind::FOUND
        ),
        (0x04, 0x05, 0x06, 0x07)
    );
}

#[test]
fn message_frame_and_datagram_vectors() {
    let fx = fixture();
    let wire = fx.request.to_wire().unwrap();
    let mut f = Vec::new();
    frame::encode(kind::MESSAGE, &wire, &mut f);
    assert_vector("message-frame", &f);
    let mut expected = (wire.len() as u32).to_le_bytes().to_vec();
    expected.push(0x10);
    expected.extend_from_slice(&hex("message-wire"));
    assert_vector("message-frame", &expected);

    let mut d = FrameDecoder::new(8 << 20);
    let mut got = Vec::new();
    d.push(&hex("message-frame"), |k, p| got.push((k, p)))
        .unwrap();
    assert_eq!(got, vec![(kind::MESSAGE, hex("message-wire"))]);
    // A length over the limit is refused from the header alone.
    let mut small = FrameDecoder::new(wire.len() - 1);
    assert!(small.push(&hex("message-frame")[..5], |_, _| {}).is_err());

    let mut datagram = vec![kind::MESSAGE];
    datagram.extend_from_slice(&wire);
    assert_vector("message-datagram", &datagram);
    let dg = hex("message-datagram");
    assert_eq!(dg[0], 0x10);
    let u = Unverified::decode(dg[1..].to_vec()).unwrap();
    assert!(u.verify(&checked(&fx.echo), &mut Vec::new()).is_ok());
}

/// The pub/sub bodies of the document, keyed by vector name.
fn pubsub_bodies(fx: &Fixture) -> Vec<(&'static str, PubSubMessage)> {
    let topic = fx.topic.topic_identity();
    vec![
        (
            "pubsub-advert-body",
            PubSubMessage::Advert {
                advert: fx.topic_advert.clone(),
                publisher: fx.pubsub_a.engine_identity(),
                hops: 1,
            },
        ),
        (
            "pubsub-subscribe-body",
            PubSubMessage::Subscribe {
                topic,
                publishers: vec![fx.pubsub_a.engine_identity(), fx.pubsub_b.engine_identity()],
            },
        ),
        (
            "pubsub-subscribe-ack-body",
            PubSubMessage::SubscribeAck {
                topic,
                accepted: true,
                positions: vec![(fx.pubsub_a.engine_identity(), 3)],
            },
        ),
        (
            "pubsub-event-body",
            PubSubMessage::Event(fx.events[1].clone()),
        ),
        (
            "pubsub-event-req-body",
            PubSubMessage::EventReq {
                topic,
                publisher: fx.pubsub_a.engine_identity(),
                from: 1,
                to: 2,
            },
        ),
        (
            "pubsub-unsubscribe-body",
            PubSubMessage::Unsubscribe { topic },
        ),
        (
            "pubsub-unsubscribe-ack-body",
            PubSubMessage::UnsubscribeAck { topic },
        ),
        (
            "pubsub-event-resp-body",
            PubSubMessage::EventResp {
                topic,
                publisher: fx.pubsub_a.engine_identity(),
                from: 1,
                to: 2,
                found: 2,
            },
        ),
        (
            "pubsub-event-ack-body",
            PubSubMessage::EventAck {
                topic,
                publisher: fx.pubsub_a.engine_identity(),
                next_seq: 3,
            },
        ),
        (
            "pubsub-events-body",
            PubSubMessage::Events(fx.events.to_vec()),
        ),
        (
            "pubsub-withdraw-body",
            PubSubMessage::Withdraw(Withdrawal::new_signed(&fx.pubsub_b, topic, 1)),
        ),
    ]
}

#[test]
fn pubsub_body_vectors() {
    let fx = fixture();
    for (name, m) in pubsub_bodies(&fx) {
        assert_vector(name, &m.to_bytes());
        assert_vector(name, &ref_pubsub(&m).bytes());
        let doc = hex(name);
        assert_eq!(PubSubMessage::from_bytes(&doc).unwrap(), m, "{name}");
        // Truncated or extended bodies are refused.
        assert!(PubSubMessage::from_bytes(&doc[..doc.len() - 1]).is_err());
        let mut long = doc.clone();
        long.push(0);
        assert!(PubSubMessage::from_bytes(&long).is_err());
    }

    // The advert inside the advert body is the topic advert of §15.7, and verifies.
    let advert_body = hex("pubsub-advert-body");
    assert_eq!(advert_body[..8], [1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        advert_body[8..advert_body.len() - 33],
        hex("topic-advert-wire")
    );
    match PubSubMessage::from_bytes(&advert_body).unwrap() {
        PubSubMessage::Advert {
            advert,
            publisher,
            hops,
        } => {
            assert_eq!(hops, 1);
            assert_eq!(publisher, fx.pubsub_a.engine_identity());
            assert_eq!(advert.verify().unwrap().into_inner(), fx.topic_advert);
        }
        other => panic!("not an advert: {other:?}"),
    }

    // The withdrawal is signed by node B's PubSub over its fields, with its own context.
    assert_vector("context-withdrawal", WITHDRAWAL_CONTEXT);
    assert_vector("context-withdrawal", CTX_WITHDRAWAL);
    let doc = hex("pubsub-withdraw-body");
    let fields = &doc[8..8 + 72];
    assert_eq!(
        doc[8 + 72..],
        ref_sign(&fx.pubsub_b.seed(), CTX_WITHDRAWAL, fields)
    );
    match PubSubMessage::from_bytes(&doc).unwrap() {
        PubSubMessage::Withdraw(w) => {
            assert!(w.verify(&checked(&fx.pubsub_b)));
            assert!(!w.verify(&checked(&fx.pubsub_a)));
            let mut later = w.clone();
            later.version = 2;
            assert!(!later.verify(&checked(&fx.pubsub_b)));
        }
        other => panic!("not a withdrawal: {other:?}"),
    }

    // The other variants, against the reference encoder.
    let topic = fx.topic.topic_identity();
    let publisher = fx.pubsub_b.engine_identity();
    for m in [
        PubSubMessage::SubscribeAck {
            topic,
            accepted: false,
            positions: vec![],
        },
        PubSubMessage::Subscribe {
            topic,
            publishers: vec![],
        },
        PubSubMessage::Unsubscribe { topic },
        PubSubMessage::UnsubscribeAck { topic },
        PubSubMessage::EventResp {
            topic,
            publisher,
            from: 4,
            to: 9,
            found: 2,
        },
        PubSubMessage::EventAck {
            topic,
            publisher,
            next_seq: 10,
        },
        PubSubMessage::Event(fx.events[0].clone()),
    ] {
        assert_eq!(m.to_bytes(), ref_pubsub(&m).bytes(), "{m:?}");
        assert_eq!(PubSubMessage::from_bytes(&m.to_bytes()).unwrap(), m);
    }

    // Version, tag and boolean are checked.
    assert_eq!(PUBSUB_VERSION, 1);
    let mut bad = hex("pubsub-subscribe-body");
    bad[0] = 2;
    assert_eq!(
        PubSubMessage::from_bytes(&bad).unwrap_err(),
        wire::WireError::UnknownVersion(2)
    );
    let mut bad = hex("pubsub-subscribe-body");
    bad[4..8].copy_from_slice(&u32le(1000));
    assert!(PubSubMessage::from_bytes(&bad).is_err());
    let mut bad = hex("pubsub-subscribe-ack-body");
    bad[8 + 32] = 2;
    assert!(PubSubMessage::from_bytes(&bad).is_err());

    // At most MAX_POSITIONS positions.
    assert_eq!(MAX_POSITIONS, 64);
    for n in [MAX_POSITIONS, MAX_POSITIONS + 1] {
        let m = PubSubMessage::SubscribeAck {
            topic,
            accepted: true,
            positions: vec![(publisher, 1); n],
        };
        let bytes = ref_pubsub(&m).bytes();
        assert_eq!(bytes, m.to_bytes());
        assert_eq!(
            PubSubMessage::from_bytes(&bytes).is_ok(),
            n <= MAX_POSITIONS,
            "{n} positions"
        );
    }

    // The Events body: the events' encodings one after the other, each exactly as in an Event
    // body; at most MAX_BATCH_EVENTS of them.
    let doc = hex("pubsub-events-body");
    assert_eq!(doc[..16], [1, 0, 0, 0, 9, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    let event_body = hex("pubsub-event-body");
    assert_eq!(doc[doc.len() - (event_body.len() - 8)..], event_body[8..]);
    let PubSubMessage::Events(back) = PubSubMessage::from_bytes(&doc).unwrap() else {
        panic!("not an Events body");
    };
    let key = checked(&fx.pubsub_a);
    assert!(back.iter().all(|e| e.clone().verify(&key).is_ok()));
    assert_eq!(back[1].deps[0], back[0].id());
    assert_eq!(MAX_BATCH_EVENTS, 256);
    let small = Event::new_signed(&fx.pubsub_b, topic, 1, Vec::new(), Vec::new()).into_inner();
    for n in [MAX_BATCH_EVENTS, MAX_BATCH_EVENTS + 1] {
        let m = PubSubMessage::Events(vec![small.clone(); n]);
        let bytes = ref_pubsub(&m).bytes();
        assert_eq!(bytes, m.to_bytes());
        assert_eq!(
            PubSubMessage::from_bytes(&bytes).is_ok(),
            n <= MAX_BATCH_EVENTS,
            "{n} events"
        );
    }
    // Tag 9 is the highest: 10 is refused.
    let mut bad = hex("pubsub-unsubscribe-body");
    bad[4..8].copy_from_slice(&u32le(10));
    assert!(PubSubMessage::from_bytes(&bad).is_err());
}

#[test]
fn event_vectors() {
    let fx = fixture();
    let ev = &fx.events[1];
    let key = checked(&fx.pubsub_a);

    assert_vector("context-event", EVENT_CONTEXT);
    assert_vector("context-event", CTX_EVENT);

    // The published message travels as its signed fields, unsigned.
    assert_vector("event-published-message", &ev.body);
    assert_vector("event-published-message", &fields_of(&fx.published[1]));
    assert_vector(
        "event-published-message",
        &ref_message_fields(&fx.published[1]).bytes(),
    );
    let doc_body = hex("event-published-message");
    assert_eq!(
        Unverified::decode_fields(&doc_body).unwrap(),
        fx.published[1]
    );
    assert_eq!(
        EngineMessage::decode_unsigned(&doc_body).unwrap(),
        fx.published[1]
    );

    // Signing input and id, from the reference encoder and from the document's own bytes.
    assert_vector("event-signing-input", &ref_event_signing_input(ev).bytes());
    let doc_input = hex("event-signing-input");
    assert_eq!(doc_input[..CTX_EVENT.len()], *CTX_EVENT);
    let tail = &doc_input[doc_input.len() - 40..];
    assert_eq!(tail[..8], u64le(doc_body.len() as u64));
    assert_eq!(tail[8..], sha256(&doc_body));
    assert_vector("event-id", &ev.id().0);
    assert_vector("event-id", &ref_event_id(ev));
    assert_vector("event-id", &sha256(&doc_input[CTX_EVENT.len()..]));

    // The crate's signature is the reference signature over that input, and verifies there.
    assert_eq!(
        ev.sig.0,
        ref_sign(
            &fx.pubsub_a.seed(),
            CTX_EVENT,
            &ref_event_digested(ev).bytes()
        )
    );
    let sig = ev.sig;
    assert!(key.verify_strict(
        CTX_EVENT,
        &doc_input[CTX_EVENT.len()..],
        &sig,
        &mut Vec::new()
    ));

    // The event body: version, tag 5, the event with its whole body and signature.
    let doc = hex("pubsub-event-body");
    assert_eq!(doc[..8], [1, 0, 0, 0, 5, 0, 0, 0]);
    assert_eq!(doc[8..], ref_event(ev).bytes()[..]);
    let PubSubMessage::Event(back) = PubSubMessage::from_bytes(&doc).unwrap() else {
        panic!("not an event");
    };
    assert_eq!(back, *ev);
    assert!(back.clone().verify(&key).is_ok());
    assert_eq!(back.id().0, hex("event-id")[..]);
    assert!(back.clone().verify(&checked(&fx.pubsub_b)).is_err());

    // It depends on the publisher's first event, which has no dependencies, then on node B's
    // event 4, whose position is its causal frontier.
    let first = &fx.events[0];
    assert_eq!((first.seq, first.deps.len(), ev.seq), (1, 0, 2));
    let of_b = Event::new_signed(
        &fx.pubsub_b,
        fx.topic.topic_identity(),
        4,
        vec![],
        b"b".to_vec(),
    );
    assert_eq!(
        ev.deps,
        vec![EventId(ref_event_id(first)), EventId(ref_event_id(&of_b))]
    );
    assert_eq!(ev.dep_positions, vec![(fx.pubsub_b.engine_identity(), 4)]);
    assert_eq!(ev.publisher, fx.pubsub_a.engine_identity());
    assert!(fx.topic_advert.publishers.contains(&ev.publisher));
    assert!(first.clone().verify(&key).is_ok());

    // Any changed byte of the event either fails to decode or fails to verify.
    for i in 8..doc.len() {
        let mut bad = doc.clone();
        bad[i] ^= 0x01;
        if let Ok(PubSubMessage::Event(e)) = PubSubMessage::from_bytes(&bad) {
            assert!(e.verify(&key).is_err(), "flip at byte {i} verified");
        }
    }

    // At most MAX_DEP_POSITIONS positions.
    assert_eq!(MAX_DEP_POSITIONS, 64);
    for n in [MAX_DEP_POSITIONS, MAX_DEP_POSITIONS + 1] {
        let e = Event::new_signed_after(
            &fx.pubsub_a,
            fx.topic.topic_identity(),
            3,
            vec![ev.id()],
            vec![(fx.pubsub_b.engine_identity(), 9); n],
            Vec::new(),
        );
        let bytes = PubSubMessage::Event(Event::clone(&e)).to_bytes();
        assert_eq!(bytes[8..], ref_event(&e).bytes()[..]);
        assert_eq!(
            PubSubMessage::from_bytes(&bytes).is_ok(),
            n <= MAX_DEP_POSITIONS,
            "{n} positions"
        );
    }

    // At most MAX_DEPS dependencies.
    assert_eq!(MAX_DEPS, 16);
    for n in [MAX_DEPS, MAX_DEPS + 1] {
        let e = Event::new_signed(
            &fx.pubsub_a,
            fx.topic.topic_identity(),
            3,
            vec![ev.id(); n],
            Vec::new(),
        );
        let bytes = PubSubMessage::Event(Event::clone(&e)).to_bytes();
        assert_eq!(bytes[8..], ref_event(&e).bytes()[..]);
        assert_eq!(
            PubSubMessage::from_bytes(&bytes).is_ok(),
            n <= MAX_DEPS,
            "{n} deps"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The generator of the document's vector section.

fn print_hex_vector(name: &str, bytes: &[u8]) {
    let lines: String = bytes
        .chunks(32)
        .map(|c| format!("{}\n", to_hex(c)))
        .collect();
    print_block(name, "hex", &lines);
}

fn print_layout_vector(name: &str, layout: &Layout, table: bool) {
    if table {
        println!("{}", layout.table());
    }
    print_block(name, "hex", &layout.hex_lines());
}

/// Prints a paragraph of prose wrapped at 100 columns, then a blank line.
fn para(text: &str) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > 100 {
            println!("{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    println!("{line}\n");
}

fn print_block(name: &str, lang: &str, body: &str) {
    println!("{MARKER_OPEN}{name}{MARKER_CLOSE}");
    println!("```{lang}");
    print!("{body}");
    println!("```");
    println!();
}

#[test]
#[ignore = "prints the vector section of docs/wire.md"]
fn print_vectors() {
    let fx = fixture();

    println!("### 16.1 Domain-separation contexts and ALPN\n");
    for (name, bytes) in [
        ("context-engine-message", wire::context::ENGINE_MESSAGE),
        ("context-node-advert", wire::context::NODE_ADVERT),
        ("context-engine-advert", wire::context::ENGINE_ADVERT),
        ("context-topic-advert", wire::context::TOPIC_ADVERT),
        ("context-domain-advert", wire::context::DOMAIN_ADVERT),
        ("context-event", EVENT_CONTEXT),
        ("context-withdrawal", WITHDRAWAL_CONTEXT),
        ("alpn", netmachine::transport::ALPN),
    ] {
        println!(
            "`{}`:\n",
            String::from_utf8_lossy(bytes).replace('\0', "\\0")
        );
        print_hex_vector(name, bytes);
    }

    println!("### 16.2 Identities and engine keys\n");
    println!("Node A (seed `01` × 32):\n");
    print_hex_vector("node-a-seed", &NODE_A_SEED);
    print_hex_vector("node-a-identity", fx.node_a.node_identity().as_bytes());
    println!("Node B (seed `02` × 32):\n");
    print_hex_vector("node-b-seed", &NODE_B_SEED);
    print_hex_vector("node-b-identity", fx.node_b.node_identity().as_bytes());
    println!("Engine `echo` of node A: its seed (the HKDF output) and its identity:\n");
    print_hex_vector("engine-a-echo-seed", &fx.echo.seed());
    print_hex_vector("engine-a-echo-identity", &fx.echo.public());
    println!("Engine `ping` of node B:\n");
    print_hex_vector("engine-b-ping-seed", &fx.ping_b.seed());
    print_hex_vector("engine-b-ping-identity", &fx.ping_b.public());
    println!("Other keys used below:\n");
    println!(
        "* topic key, seed `03` × 32: `{}`",
        to_hex(&fx.topic.public())
    );
    println!(
        "* domain key, seed `04` × 32: `{}`",
        to_hex(&fx.domain.public())
    );
    println!(
        "* engine `pubsub` of node A: `{}`",
        fx.node_a.derive_engine("pubsub").engine_identity()
    );
    println!(
        "* engine `pubsub` of node B: `{}`\n",
        fx.node_b.derive_engine("pubsub").engine_identity()
    );

    println!("### 16.3 Key file and node certificate\n");
    println!("Node A's key as PKCS#8 v1 DER, and as the PEM key file:\n");
    print_hex_vector("key-file-der", &fx.node_a.to_pkcs8_der());
    print_block("key-file-pem", "text", &fx.node_a.to_pem());
    para(
        "Node A's certificate (§7.3), DER. It depends on the node key only, so these are the \
         bytes node A presents in every TLS handshake:\n",
    );
    let cert = ref_node_certificate(&NODE_A_SEED);
    println!("{}", cert.table());
    print_hex_vector(
        "node-cert-der",
        &netmachine::node::quic::node_certificate_der(&fx.node_a).unwrap(),
    );

    println!("### 16.4 Enum encodings\n");
    println!("`Destination::Topic(topic)`:\n");
    let topic = Destination::Topic(fx.topic.topic_identity());
    print_layout_vector("enc-destination-topic", &ref_destination(&topic), false);
    println!("`RoutingPrefs {{ scope: Domain(domain) }}`:\n");
    let rprefs = RoutingPrefs {
        scope: RoutingScope::Domain(fx.domain.domain_identity()),
    };
    print_layout_vector(
        "enc-routing-prefs-domain",
        &ref_routing_prefs(&rprefs),
        false,
    );
    para(
        "`TransportPrefs { ordering: Unordered, reliability: Unreliable, \
         security: OnionRouting(3) }`:\n",
    );
    let tprefs = TransportPrefs {
        ordering: Ordering::Unordered,
        reliability: Reliability::Unreliable,
        security: Security::OnionRouting(3),
    };
    print_layout_vector(
        "enc-transport-prefs-datagram",
        &ref_transport_prefs(&tprefs),
        false,
    );

    println!("### 16.5 EngineMessage\n");
    para(&format!(
        "A ping from engine `echo` of node A to node B: `dst = Node(B)`, id {}, no `reply_to`, \
         expiry {} (T0 + 60 s), `rprefs = Some(Any)`, `tprefs = Some(reliable, ordered, direct)`, \
         protocol 1 (ping), body `ping`. Signed by the `echo` engine key.\n",
        fx.request.id.0,
        fx.request.expiry.unwrap().0
    ));
    println!("Signed fields, one field per line:\n");
    print_layout_vector(
        "message-signed-fields",
        &ref_message_fields(&fx.request),
        true,
    );
    para(&format!(
        "Signing input: the context, the signed fields up to and including the body's length, \
         then SHA-256 of the body (SHA-256(\"ping\") = `{}`) in place of the body:\n",
        to_hex(&sha256(&fx.request.body))
    ));
    print_layout_vector(
        "message-signing-input",
        &ref_message_signing_input(&fx.request),
        true,
    );
    println!("Signature:\n");
    print_hex_vector("message-signature", &fx.request.sig.unwrap().0);
    println!("Wire form (version, signed fields, signature):\n");
    print_layout_vector("message-wire", &ref_message_wire(&fx.request), false);
    para(&format!(
        "The ping engine's answer: from engine `ping` of node B to `Engine(echo)`, id {}, \
         `reply_to = Some({})`, expiry {}, no `rprefs`, the request's `tprefs`, protocol 1, \
         body `ping`. Wire form:\n",
        fx.reply.id.0,
        fx.request.id.0,
        fx.reply.expiry.unwrap().0
    ));
    print_layout_vector("reply-wire", &ref_message_wire(&fx.reply), true);

    println!("### 16.6 NodeAdvert\n");
    para(
        "Node A at `192.0.2.1:7001` (weight 100) and `[2001:db8::1]:7001` (weight 50), \
         version 3, created T0, expires T0 + 24 h, name `node-a`, signed by node A's key.\n",
    );
    let a = &fx.node_advert;
    print_layout_vector(
        "node-advert-signed-fields",
        &ref_node_advert_fields(a),
        true,
    );
    println!("Signing input:\n");
    let input = Layout::default()
        .field("context", CTX_NODE_ADVERT)
        .append("", ref_node_advert_fields(a));
    print_layout_vector("node-advert-signing-input", &input, false);
    println!("Wire form (signed fields, then the signature):\n");
    print_layout_vector(
        "node-advert-wire",
        &with_signature(ref_node_advert_fields(a), &a.sig),
        false,
    );
    println!("Its one-line text form:\n");
    print_block("node-advert-line", "text", &format!("{}\n", a.to_line()));

    println!("### 16.7 EngineAdvert, TopicAdvert, DomainAdvert\n");
    para(
        "Engine `echo` runs on node A as `echo`, version 1, created T0, expires T0 + 24 h, \
         signed by the engine key:",
    );
    let e = &fx.engine_advert;
    print_layout_vector(
        "engine-advert-wire",
        &with_signature(ref_engine_advert_fields(e), &e.sig),
        true,
    );
    println!("Its one-line text form:\n");
    print_block("engine-advert-line", "text", &format!("{}\n", e.to_line()));
    para(
        "Topic (seed `03` × 32) with publishers `pubsub` of A and of B, tags `blocks` and \
         `testnet`, version 1, created T0, signed by the topic key:\n",
    );
    let t = &fx.topic_advert;
    print_layout_vector(
        "topic-advert-wire",
        &with_signature(ref_topic_advert_fields(t), &t.sig),
        true,
    );
    para(
        "The same topic scoped to the domain of seed `04` × 32 (`scope: Some`; only the \
         domain's members carry it), version 2, created T0, signed by the topic key:\n",
    );
    let t = scoped_topic_advert(&fx);
    print_layout_vector(
        "topic-advert-scoped-wire",
        &with_signature(ref_topic_advert_fields(&t), &t.sig),
        true,
    );
    para(
        "Domain (seed `04` × 32) with introducer A at `127.0.0.1:7001`, auth allow-list \
         [B], external [A], max_members 100, version 1, created T0, signed by the domain key:",
    );
    let d = &fx.domain_advert;
    print_layout_vector(
        "domain-advert-wire",
        &with_signature(ref_domain_advert_fields(d), &d.sig),
        true,
    );

    println!("### 16.8 Control and message frames\n");
    para(
        "`Hello { min_version: 2, max_version: 2, instance: 0x0123456789abcdef, \
         advert_version: 3, known_advert_version: Some(5) }`:\n",
    );
    print_layout_vector("hello-payload", &ref_hello(&fx.hello), true);
    println!("The same Hello as the first frame of a control stream:\n");
    print_layout_vector(
        "hello-frame",
        &ref_frame("HELLO", 0x01, ref_hello(&fx.hello)),
        false,
    );
    para(
        "`Ack([(6, 3), (10, 1)])` — sent by a server: the client's message streams 6 and 10 \
         have delivered 3 and 1 message frames:\n",
    );
    print_layout_vector("ack-payload", &ref_ack(&fx.ack), true);
    print_layout_vector(
        "ack-frame",
        &ref_frame("ACK", 0x03, ref_ack(&fx.ack)),
        false,
    );
    let wire = fx.request.to_wire().unwrap();
    para(&format!(
        "The ping request as a frame on a message stream (length {} = 0x{:x}):\n",
        wire.len(),
        wire.len()
    ));
    print_layout_vector(
        "message-frame",
        &ref_frame("MESSAGE", 0x10, ref_message_wire(&fx.request)),
        false,
    );
    println!("The ping request as a QUIC DATAGRAM payload:\n");
    let datagram = Layout::default()
        .field("type (u8, MESSAGE)", [0x10])
        .append("", ref_message_wire(&fx.request));
    print_layout_vector("message-datagram", &datagram, false);

    println!("### 16.9 Publish/subscribe\n");
    let bodies = pubsub_bodies(&fx);
    let body = |name: &str| {
        let (_, m) = bodies.iter().find(|(n, _)| *n == name).expect("a body");
        ref_pubsub(m)
    };
    para(
        "The topic advert of §16.7 as node B forwards it after receiving it from the publisher \
         `pubsub` of node A, its neighbour (`hops` 1: B is one hop from that publisher). The \
         advert's bytes are exactly `topic-advert-wire`:\n",
    );
    print_layout_vector("pubsub-advert-body", &body("pubsub-advert-body"), true);
    para(
        "`Subscribe` for the topic, to a neighbour that is a parent towards both publishers, \
         `pubsub` of node A and of node B:\n",
    );
    print_layout_vector(
        "pubsub-subscribe-body",
        &body("pubsub-subscribe-body"),
        true,
    );
    para(
        "`SubscribeAck`: accepted; the sender will forward the events of publisher `pubsub` of \
         node A from sequence number 3:\n",
    );
    print_layout_vector(
        "pubsub-subscribe-ack-body",
        &body("pubsub-subscribe-ack-body"),
        true,
    );
    let published = &fx.published[1];
    para(&format!(
        "Engine `echo` of node A publishes on the topic: id {}, `dst = Topic(topic)`, no \
         `reply_to`, expiry {} (T0 + 60 s), no `rprefs`, no `tprefs`, protocol 0x10000, body \
         `block 2`. Node A's PubSub carries it in an event as the message's signed fields (no \
         version, no signature):\n",
        published.id.0,
        published.expiry.unwrap().0
    ));
    print_layout_vector(
        "event-published-message",
        &ref_message_fields(published),
        true,
    );
    let ev = &fx.events[1];
    para(&format!(
        "The event: topic, publisher `pubsub` of node A, sequence number 2, two dependencies — \
         the id of the publisher's event 1 (which carried message id {} with body `block 1` and \
         had no dependencies), and the id of event 4 of publisher `pubsub` of node B (body `b`, \
         no dependencies), which node A had delivered — with that event's position, `(pubsub of \
         B, 4)`, as the causal frontier; the message above as body. Its signing input (the \
         context, then the fields with the body replaced by its length and SHA-256):\n",
        fx.published[0].id.0
    ));
    print_layout_vector("event-signing-input", &ref_event_signing_input(ev), true);
    println!("Its id, SHA-256 of the signing input without the context:\n");
    print_hex_vector("event-id", &ref_event_id(ev));
    para(
        "The event as a pub/sub body (version, tag 5, the event with its whole body, then the \
         publisher's signature):\n",
    );
    print_layout_vector(
        "pubsub-event-body",
        &body("pubsub-event-body").expand("body", ref_message_fields(published)),
        true,
    );
    para(
        "`EventReq`: a request for events 1 to 2 of publisher `pubsub` of node A, both \
         included:\n",
    );
    print_layout_vector(
        "pubsub-event-req-body",
        &body("pubsub-event-req-body"),
        true,
    );
    para(
        "`EventResp`: the answer to that request, sent after the events it found (both, as \
         `Event` messages):\n",
    );
    print_layout_vector(
        "pubsub-event-resp-body",
        &body("pubsub-event-resp-body"),
        true,
    );
    para(
        "`EventAck`: the sender has received (or given up on) every event of publisher `pubsub` \
         of node A below sequence number 3:\n",
    );
    print_layout_vector(
        "pubsub-event-ack-body",
        &body("pubsub-event-ack-body"),
        true,
    );
    println!("`Unsubscribe` for the topic:\n");
    print_layout_vector(
        "pubsub-unsubscribe-body",
        &body("pubsub-unsubscribe-body"),
        true,
    );
    println!("`UnsubscribeAck` for the topic:\n");
    print_layout_vector(
        "pubsub-unsubscribe-ack-body",
        &body("pubsub-unsubscribe-ack-body"),
        true,
    );
    para(
        "`Events`: the publisher's events 1 and 2 in one message (version, tag 9, the count, then \
         each event encoded as in an `Event` body: fields, whole body, signature). Event 2 is the \
         event of `pubsub-event-body`; event 1 carries the message with body `block 1` and has \
         no dependencies:\n",
    );
    print_layout_vector(
        "pubsub-events-body",
        &body("pubsub-events-body")
            .expand("events[0] body", ref_message_fields(&fx.published[0]))
            .expand("events[1] body", ref_message_fields(&fx.published[1])),
        true,
    );
    para(
        "`Withdraw`: node B's PubSub withdraws from version 1 of the topic's advert (its topic was \
         deleted). The signature is by `pubsub` of node B over the context \
         `netmachine/v1/withdrawal\\0` then the three fields before it:\n",
    );
    print_layout_vector("pubsub-withdraw-body", &body("pubsub-withdraw-body"), true);

    println!("### 16.10 Identity exchange\n");
    let texts = [
        "Node A hands over the advert of its engine `echo` (§16.7) in an `ENGINE_ADVERTS` frame:\n",
        "Node A withdraws engine `echo`:\n",
        "A lookup of engine `echo`:\n",
        "The answer of a node that holds the advert of `echo` and the advert of node A (§16.6):\n",
        "The answer of a node that knows neither:\n",
    ];
    for ((name, kind_name, k, _, layout), text) in exchange_payloads(&fx).into_iter().zip(texts) {
        para(text);
        print_layout_vector(name, &ref_frame(kind_name, k, layout), true);
    }
    print_topology_vectors();
    print_domain_vectors();
    print_interdomain_vectors();
    print_routing_vectors();
    print_storage_vectors();
    print_storage_message_vectors();
    relay::print_relay_vectors();
    tcp::print_tcp_vectors();
}

// ---------------------------------------------------------------------------------------------
// Topology messages (protocol 4), docs/wire.md §16.11.

/// The Topology bodies of §16.11, with their layouts built from the document's rules: domain
/// of the domain key (seed `04` × 32), node A and node B.
fn topology_bodies() -> Vec<(&'static str, TopologyMessage, Layout)> {
    let domain = Keypair::from_seed(&DOMAIN_SEED).domain_identity();
    let a = Keypair::from_seed(&NODE_A_SEED).node_identity();
    let b = Keypair::from_seed(&NODE_B_SEED).node_identity();
    let head = |tag: u32, tag_name: &str| {
        Layout::default()
            .field("version (u32)", u32le(1))
            .field(format!("tag (u32, {tag_name})"), u32le(tag))
            .field("domain (DomainIdentity)", domain.as_bytes())
    };
    vec![
        (
            "topology-join-body",
            TopologyMessage::Join { domain },
            head(1, "Join"),
        ),
        (
            "topology-forward-join-body",
            TopologyMessage::ForwardJoin {
                domain,
                new_node: a,
                ttl: 6,
            },
            head(2, "ForwardJoin")
                .field("new_node (NodeIdentity)", a.as_bytes())
                .field("ttl (u8)", [6]),
        ),
        (
            "topology-neighbor-body",
            TopologyMessage::Neighbor {
                domain,
                high_priority: true,
            },
            head(3, "Neighbor").field("high_priority (bool)", [1]),
        ),
        (
            "topology-shuffle-body",
            TopologyMessage::Shuffle {
                domain,
                origin: b,
                ttl: 5,
                nodes: vec![b, a],
            },
            head(6, "Shuffle")
                .field("origin (NodeIdentity)", b.as_bytes())
                .field("ttl (u8)", [5])
                .field("nodes: count (u64)", u64le(2))
                .field("nodes[0] (NodeIdentity)", b.as_bytes())
                .field("nodes[1] (NodeIdentity)", a.as_bytes()),
        ),
    ]
}

#[test]
fn topology_vectors() {
    for (name, m, layout) in topology_bodies() {
        let bytes = m.to_bytes();
        assert_eq!(
            bytes,
            layout.bytes(),
            "{name}: the code and the document's rules"
        );
        assert_vector(name, &bytes);
        assert_eq!(
            TopologyMessage::from_bytes(&hex(name), TopologyLimits::default().max_shuffle_nodes)
                .unwrap(),
            m,
            "{name}"
        );
    }
    assert_eq!(Protocol::TOPOLOGY, Protocol(4));
    assert_eq!(TOPOLOGY_VERSION, 1);
}

fn print_topology_vectors() {
    println!("### 16.11 Topology messages\n");
    let texts = [
        "`Join` in the domain of the domain key (seed `04` × 32):\n",
        "`ForwardJoin` announcing node A, ttl 6:\n",
        "`Neighbor` with high priority:\n",
        "`Shuffle` started by node B, ttl 5, offering node B and node A:\n",
    ];
    for ((name, _, layout), text) in topology_bodies().into_iter().zip(texts) {
        para(text);
        print_layout_vector(name, &layout, true);
    }
}

// ---------------------------------------------------------------------------------------------
// The domain protocol (§12A, vectors §16.12).

const CTX_DOMAIN_OP: &[u8] = b"netmachine/v1/domain-op\0";
const CTX_JOIN_REQUEST: &[u8] = b"netmachine/v1/domain-join-request\0";
const CTX_PSK_PROOF: &[u8] = b"netmachine/v1/domain-psk-proof\0";

/// The domain protocol's vector inputs: an add by node A of node B, node B's join request with
/// a PSK proof under the key `psk`, and a digest.
fn domain_fixture() -> (Op, JoinRequest, DomainMessage) {
    let node_a = Keypair::from_seed(&NODE_A_SEED);
    let node_b = Keypair::from_seed(&NODE_B_SEED);
    let domain = Keypair::from_seed(&DOMAIN_SEED).domain_identity();
    let op = Op::new_signed(
        &node_a,
        domain,
        1,
        1,
        OpKind::Add {
            member: node_b.node_identity(),
            request: Some([0x11; 32]),
        },
    );
    let nonce = 0x0102_0304_0506_0708;
    let proof = JoinRequest::psk_proof(b"psk", node_b.node_identity(), domain, nonce, T0);
    let req = JoinRequest::new_signed(&node_b, domain, nonce, T0, JoinAuth::PskProof(proof));
    let digest = DomainMessage::Digest {
        domain,
        count: 2,
        hash: [0xab; 32],
    };
    (op, req, digest)
}

fn ref_domain_op_fields(op: &Op) -> Layout {
    let OpKind::Add { member, request } = &op.kind else {
        panic!("the vector is an add")
    };
    let l = Layout::default()
        .field("domain (DomainIdentity)", op.domain.0)
        .field("author (NodeIdentity)", op.author.0)
        .field("seq (u64)", u64le(op.seq))
        .field("lamport (u64)", u64le(op.lamport))
        .field("kind: Add (u32 tag)", u32le(0))
        .field("member (NodeIdentity)", member.0);
    match request {
        None => l.field("request: None", [0]),
        Some(r) => l
            .field("request: Some", [1])
            .field("request (join request id)", r),
    }
}

fn ref_join_request_fields(r: &JoinRequest) -> Layout {
    let JoinAuth::PskProof(mac) = r.auth else {
        panic!("the vector has a PSK proof")
    };
    Layout::default()
        .field("requestor (NodeIdentity)", r.requestor.0)
        .field("domain (DomainIdentity)", r.domain.0)
        .field("nonce (u64)", u64le(r.nonce))
        .field("created (u64 ms)", u64le(r.created.0))
        .field("auth: PskProof (u32 tag)", u32le(1))
        .field("auth proof (HMAC-SHA256)", mac)
}

fn ref_domain_vectors() -> [(&'static str, Layout); 3] {
    let (op, req, _) = domain_fixture();
    let digest = Layout::default()
        .field("version (u32)", u32le(1))
        .field("tag: Digest (u32)", u32le(1))
        .field("domain (DomainIdentity)", op.domain.0)
        .field("count (u64)", u64le(2))
        .field("hash (XOR of op ids)", [0xab; 32]);
    let request = Layout::default()
        .field("version (u32)", u32le(1))
        .field("tag: JoinRequest (u32)", u32le(3))
        .append("", with_signature(ref_join_request_fields(&req), &req.sig));
    [
        (
            "domain-op-add",
            with_signature(ref_domain_op_fields(&op), &op.sig),
        ),
        ("domain-join-request", request),
        ("domain-digest-body", digest),
    ]
}

#[test]
fn domain_protocol_vectors() {
    let (op, req, digest) = domain_fixture();
    assert_vector("domain-op-add", &encode_to_vec(&op));
    assert_vector(
        "domain-join-request",
        &DomainMessage::JoinRequest(req.clone()).to_bytes(),
    );
    assert_vector("domain-digest-body", &digest.to_bytes());
    for (name, layout) in ref_domain_vectors() {
        assert_vector(name, &layout.bytes());
    }
    // Signatures by the rules of §12A.1, with plain Ed25519.
    assert_eq!(
        op.sig.0,
        ref_sign(&NODE_A_SEED, CTX_DOMAIN_OP, &op.signed_fields())
    );
    let fields = ref_join_request_fields(&req).bytes();
    assert_eq!(req.sig.0, ref_sign(&NODE_B_SEED, CTX_JOIN_REQUEST, &fields));
    // The op id is the SHA-256 of the whole encoding; the PSK proof an HMAC-SHA256.
    let id = ring::digest::digest(&ring::digest::SHA256, &hex("domain-op-add"));
    assert_eq!(op.id().0.as_slice(), id.as_ref());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"psk");
    let mut input = CTX_PSK_PROOF.to_vec();
    input.extend_from_slice(&fields[..32 + 32 + 8 + 8]);
    let JoinAuth::PskProof(mac) = req.auth else {
        panic!()
    };
    assert_eq!(ring::hmac::sign(&key, &input).as_ref(), mac.as_slice());
    assert!(req.psk_proof_valid(b"psk") && !req.psk_proof_valid(b"other"));
    // And they decode again, verified.
    let back: Op = decode_exact(&hex("domain-op-add")).unwrap();
    assert!(back.verify(&mut Vec::new()));
    let Ok(DomainMessage::JoinRequest(r)) = DomainMessage::from_bytes(&hex("domain-join-request"))
    else {
        panic!("the request decodes")
    };
    assert!(r.verify());
    assert_eq!(
        DomainMessage::from_bytes(&hex("domain-digest-body")).unwrap(),
        digest
    );
}

fn print_domain_vectors() {
    println!(
        "### 16.12 Domains
"
    );
    let texts = [
        "An `Op`: node A (seq 1, lamport 1) adds node B in the domain of seed `04` × 32, \
         approving the join request whose id is `11` × 32; signed by node A's key over \
         `netmachine/v1/domain-op\\0` then the fields before the signature. Its `OpId` is \
         the SHA-256 of these bytes:\n",
        "A `JoinRequest` body: node B asks to join, nonce `0x0102030405060708`, created T0, \
         with a PSK proof under the key `psk` (HMAC-SHA256 of `netmachine/v1/domain-psk-proof\\0` \
         then requestor, domain, nonce and created); signed by node B's key over \
         `netmachine/v1/domain-join-request\\0` then the fields before the signature:\n",
        "A `Digest` body: 2 operations whose ids XOR to `ab` × 32:\n",
    ];
    for ((name, layout), text) in ref_domain_vectors().into_iter().zip(texts) {
        para(text);
        print_layout_vector(name, &layout, true);
    }
}

// ---------------------------------------------------------------------------------------------
// The inter-domain node descriptor and membership filter (§12C, vectors §16.13).

const CTX_NODE_DESCRIPTOR: &[u8] = b"netmachine/v2/node-descriptor\0";
const BLIP_INDEX_CONTEXT: &[u8] = b"netmachine/v2/blip\0";

/// The BLIP parameters of the vectors: a 64-bit filter with 3 hashes (small enough to read).
fn vector_blip_params() -> BlipParams {
    BlipParams {
        bits: 64,
        hashes: 3,
        epsilon: 5.0,
    }
}

/// Index `i` of `domain` in an `m`-bit filter, from the rule of §12C with ring's SHA-256.
fn ref_blip_index(domain: &DomainIdentity, i: u32, m: u32) -> u32 {
    let mut input = BLIP_INDEX_CONTEXT.to_vec();
    input.extend_from_slice(&domain.0);
    input.extend_from_slice(&i.to_le_bytes());
    let digest = sha256(&input);
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]) % m
}

/// The filter of the vectors: the domain (seed `04` × 32) in 64 bits, k = 3, every bit then
/// inverted as a stand-in for flipping (the flip is random and not part of the format), and
/// `epsilon_milli` 5000.
fn vector_filter() -> MembershipFilter {
    let domain = Keypair::from_seed(&DOMAIN_SEED).domain_identity();
    let mut f = blip::encode(&vector_blip_params(), [&domain]);
    f.bytes[0] ^= 0xff;
    f.epsilon_milli = 5000;
    f
}

fn ref_filter(f: &MembershipFilter) -> Layout {
    Layout::default()
        .field("bits (u32)", u32le(f.bits))
        .field("hashes (u8)", [f.hashes])
        .field("epsilon_milli (u32)", u32le(f.epsilon_milli))
        .append("", ref_bytes("bits", &f.bytes))
}

fn vector_descriptor(fx: &Fixture) -> NodeDescriptor {
    make_descriptor(&fx.node_a, fx.node_advert.clone(), vector_filter(), 1, T0)
}

fn ref_interdomain_vectors(fx: &Fixture) -> [(&'static str, Layout); 3] {
    let domain = fx.domain.domain_identity();
    let input = Layout::default()
        .field("context", BLIP_INDEX_CONTEXT)
        .field("domain (DomainIdentity)", domain.0)
        .field("i (u32)", u32le(0));
    let mut indices = Layout::default();
    for i in 0..3 {
        indices = indices.field(
            format!("index {i} (u32, of 64)"),
            u32le(ref_blip_index(&domain, i, 64)),
        );
    }
    let d = vector_descriptor(fx);
    let descriptor = Layout::default()
        .field(
            "advert (NodeAdvert, vector node-advert-wire)",
            encode_to_vec(&d.advert),
        )
        .append("filter ", ref_filter(&d.filter))
        .field("version (u64)", u64le(d.version))
        .field("created (u64 ms)", u64le(d.created.0))
        .field("signature", d.sig.0);
    [
        ("blip-index-hash-input", input),
        ("blip-indices", indices),
        ("node-descriptor-wire", descriptor),
    ]
}

// Domain routing (protocol 7, §12D, vectors §16.14).

const CTX_DOMAIN_RESPONSE: &[u8] = b"netmachine/v2/domain-response\0";

/// Node A asks for a member of the domain of seed `04` × 32 with a `probe`; node B, a member,
/// answers straight back (path B, A).
fn routing_fixture() -> (DomainRequest, DomainResponse) {
    let a = Keypair::from_seed(&NODE_A_SEED).node_identity();
    let node_b = Keypair::from_seed(&NODE_B_SEED);
    let b = node_b.node_identity();
    let domain = Keypair::from_seed(&DOMAIN_SEED).domain_identity();
    let request = DomainRequest {
        id: 0x0102_0304_0506_0708,
        src: a,
        src_advert: None,
        domain,
        path: vec![a],
        protocol: Protocol::DOMAIN_ROUTING,
        body: b"probe".to_vec(),
    };
    let response = DomainResponse {
        id: request.id,
        domain,
        src: b,
        dst: a,
        path: vec![b, a],
        member: b,
        member_advert: None,
        result: Ok(b"member".to_vec()),
        advert: None,
        sig: Signature([0; 64]),
    }
    .sign(&node_b);
    (request, response)
}

fn ref_routing_response_fields(r: &DomainResponse) -> Layout {
    Layout::default()
        .field("id (u64)", u64le(r.id))
        .field("domain (DomainIdentity)", r.domain.0)
        .field("src (NodeIdentity, the member)", r.src.0)
        .field("dst (NodeIdentity, the asker)", r.dst.0)
        .field("path: count (u64)", u64le(2))
        .field("path[0] (NodeIdentity, the member)", r.path[0].0)
        .field("path[1] (NodeIdentity, the asker)", r.path[1].0)
        .field("member (NodeIdentity)", r.member.0)
        .field("member_advert: None", [0])
        .field("result: Ok (u32 tag)", u32le(0))
        .field("result: count (u64)", u64le(6))
        .field("result (bytes)", b"member")
        .field("advert: None", [0])
}

fn ref_routing_vectors() -> [(&'static str, Layout); 2] {
    let (req, resp) = routing_fixture();
    let request = Layout::default()
        .field("version (u32)", u32le(1))
        .field("tag: Request (u32)", u32le(0))
        .field("id (u64)", u64le(req.id))
        .field("src (NodeIdentity)", req.src.0)
        .field("src_advert: None", [0])
        .field("domain (DomainIdentity)", req.domain.0)
        .field("path: count (u64)", u64le(1))
        .field("path[0] (NodeIdentity)", req.path[0].0)
        .field("protocol (u32)", u32le(7))
        .field("body: count (u64)", u64le(5))
        .field("body (bytes)", b"probe");
    let response = Layout::default()
        .field("version (u32)", u32le(1))
        .field("tag: Response (u32)", u32le(1))
        .append(
            "",
            with_signature(ref_routing_response_fields(&resp), &resp.sig),
        );
    [
        ("routing-request-body", request),
        ("routing-response-body", response),
    ]
}

#[test]
fn interdomain_vectors() {
    let fx = fixture();
    assert_vector("context-node-descriptor", wire::context::NODE_DESCRIPTOR);
    assert_vector("context-node-descriptor", CTX_NODE_DESCRIPTOR);
    assert_vector(
        "context-node-descriptor",
        <NodeDescriptor as Signed>::CONTEXT,
    );
    let domain = fx.domain.domain_identity();
    // The indices: the code's, the reference rule's, and the document's agree.
    let code: Vec<u8> = blip::indices(64, 3, &domain)
        .into_iter()
        .flat_map(u32::to_le_bytes)
        .collect();
    assert_vector("blip-indices", &code);
    for (name, layout) in ref_interdomain_vectors(&fx) {
        assert_vector(name, &layout.bytes());
    }
    let input = hex("blip-index-hash-input");
    assert_eq!(
        u32::from_le_bytes(sha256(&input)[..4].try_into().unwrap()) % 64,
        blip::indices(64, 3, &domain)[0]
    );
    // The filter: the code's encoding and the reference layout; it decodes again.
    let f = vector_filter();
    assert_vector("membership-filter-wire", &encode_to_vec(&f));
    assert_vector("membership-filter-wire", &ref_filter(&f).bytes());
    for i in blip::indices(64, 3, &domain) {
        // Set by the domain; inverted if it falls in the first byte.
        assert_eq!(f.get(i), i >= 8, "bit {i}");
    }
    let back: MembershipFilter = decode_exact(&hex("membership-filter-wire")).unwrap();
    assert_eq!(back, f);
    // The descriptor: the code's encoding, the signature by the rules of §3.4 with plain
    // Ed25519, and the check a receiver makes.
    let d = vector_descriptor(&fx);
    assert_vector("node-descriptor-wire", &encode_to_vec(&d));
    let wire = hex("node-descriptor-wire");
    let fields = &wire[..wire.len() - 64];
    assert_eq!(fields, &d.signed_fields()[..]);
    assert_eq!(d.sig.0, ref_sign(&NODE_A_SEED, CTX_NODE_DESCRIPTOR, fields));
    let back: NodeDescriptor = decode_exact(&wire).unwrap();
    assert_eq!(back, d);
    let params = vector_blip_params();
    let ok = check_descriptor(back.clone(), T0, &params).expect("the vector checks");
    assert_eq!(ok.node(), fx.node_a.node_identity());
    let mut forged = back.clone();
    forged.version += 1;
    assert!(check_descriptor(forged, T0, &params).is_err());
    assert!(check_descriptor(back.clone(), T0_PLUS_DAY, &params).is_err());
    assert!(check_descriptor(back, T0, &BlipParams::default()).is_err());
}

fn print_interdomain_vectors() {
    let fx = fixture();
    println!(
        "### 16.13 Inter-domain: BLIP indices, membership filter, node descriptor
"
    );
    para("The node descriptor's signature context (§12C):");
    print_hex_vector("context-node-descriptor", CTX_NODE_DESCRIPTOR);
    let [(input_name, input), (indices_name, indices), (desc_name, desc)] =
        ref_interdomain_vectors(&fx);
    para(
        "The SHA-256 input of BLIP index 0 of the domain (seed `04` × 32); indices 1 and 2 end \
         in `01000000` and `02000000`:",
    );
    print_layout_vector(input_name, &input, true);
    para(
        "The domain's three indices in a 64-bit filter (k = 3): the first four bytes of each \
         digest, little-endian, modulo 64:",
    );
    print_layout_vector(indices_name, &indices, true);
    para(
        "A `MembershipFilter` of 64 bits and 3 hashes holding that domain, with ε = 5 \
         (`epsilon_milli` 5000). Its first byte is inverted as a stand-in for the flip, which \
         is random and not part of the format:",
    );
    print_layout_vector(
        "membership-filter-wire",
        &ref_filter(&vector_filter()),
        true,
    );
    para(
        "A `NodeDescriptor`: node A's advert (§16.6), that filter, version 1, created T0; \
         signed by node A's key over `netmachine/v2/node-descriptor\\0` then the fields before \
         the signature:",
    );
    print_layout_vector(desc_name, &desc, true);
}

#[test]
fn domain_routing_vectors() {
    let (req, resp) = routing_fixture();
    let messages = [
        RoutingMessage::Request(req),
        RoutingMessage::Response(resp.clone()),
    ];
    for ((name, layout), m) in ref_routing_vectors().into_iter().zip(messages) {
        assert_eq!(
            m.to_bytes(),
            layout.bytes(),
            "{name}: the code and the document's rules"
        );
        assert_vector(name, &m.to_bytes());
        assert_eq!(RoutingMessage::from_bytes(&hex(name)).unwrap(), m, "{name}");
    }
    // The member's signature by the rules of §12D, with plain Ed25519.
    assert_eq!(RESPONSE_CONTEXT, CTX_DOMAIN_RESPONSE);
    let fields = ref_routing_response_fields(&resp).bytes();
    assert_eq!(
        resp.sig.0,
        ref_sign(&NODE_B_SEED, CTX_DOMAIN_RESPONSE, &fields)
    );
    let Ok(RoutingMessage::Response(back)) =
        RoutingMessage::from_bytes(&hex("routing-response-body"))
    else {
        panic!("the response decodes")
    };
    assert!(back.verify());
    assert_eq!(Protocol::DOMAIN_ROUTING, Protocol(7));
    assert_eq!(ROUTING_VERSION, 1);
}

fn print_routing_vectors() {
    println!("### 16.14 Domain routing\n");
    let texts = [
        "A `DomainRequest` body: node A (no advert attached) asks for some member of the domain \
         of seed `04` × 32, request id `0x0102030405060708`, protocol 7 with body `probe`; \
         the path holds node A only (it sends the request itself):\n",
        "The `DomainResponse` body of node B, a member, answering node A directly: path B, A, \
         result `Ok(\"member\")`, no adverts; signed by node B's key over \
         `netmachine/v2/domain-response\\0` then the fields before the signature:\n",
    ];
    for ((name, layout), text) in ref_routing_vectors().into_iter().zip(texts) {
        para(text);
        print_layout_vector(name, &layout, true);
    }
}

// ---------------------------------------------------------------------------------------------
// Storage: blocks and receipts (§12E, vectors §16.15).

const CTX_CHUNK_COMMITMENT: &[u8] = b"netmachine/v1/chunk-commitment\0";

/// The leaf holding `hello`, the tree block over it, and node B's receipt for the leaf.
fn storage_fixture() -> (Block, Block, ChunkCommitment) {
    let leaf = Block::Leaf(b"hello".to_vec());
    let tree = Block::Tree(TreeBlock {
        depth: 1,
        size: 5,
        children: vec![Child {
            id: BlockId::of(&leaf.encode()),
            key: None,
        }],
    });
    let receipt = ChunkCommitment::sign(
        &Keypair::from_seed(&NODE_B_SEED),
        BlockId::of(&leaf.encode()),
        T0_PLUS_DAY,
    );
    (leaf, tree, receipt)
}

fn ref_storage_vectors(leaf: &Block, c: &ChunkCommitment) -> [(&'static str, Layout); 3] {
    let leaf_layout = Layout::default()
        .field("tag: leaf (u8)", [0])
        .field("length (u32)", u32le(5))
        .field("data", b"hello");
    let leaf_id = *blake3::hash(&leaf_layout.bytes()).as_bytes();
    assert_eq!(
        BlockId::of(&leaf.encode()).0,
        leaf_id,
        "the id is BLAKE3 of the encoded leaf"
    );
    let tree_layout = Layout::default()
        .field("tag: tree (u8)", [1])
        .field("depth (u8)", [1])
        .field("size (u64)", u64le(5))
        .field("children: count (u32)", u32le(1))
        .field("children[0].id (BLAKE3 of the leaf)", leaf_id)
        .field("children[0].key: none (u8)", [0]);
    let receipt = ref_commitment(c);
    [
        ("block-leaf", leaf_layout),
        ("block-tree", tree_layout),
        ("chunk-commitment", receipt),
    ]
}

/// A `ChunkCommitment` by the rules of §12E: block, node, until, signature.
fn ref_commitment(c: &ChunkCommitment) -> Layout {
    with_signature(
        Layout::default()
            .field("block (BlockId)", c.block.0)
            .field("node (NodeIdentity, node B)", c.node.0)
            .field("until (u64 ms)", u64le(c.until.0)),
        &c.sig,
    )
}

#[test]
fn storage_vectors() {
    let (leaf, tree, receipt) = storage_fixture();
    assert_vector("context-chunk-commitment", CTX_CHUNK_COMMITMENT);
    assert_vector("context-chunk-commitment", COMMITMENT_CONTEXT);
    for (name, layout) in ref_storage_vectors(&leaf, &receipt) {
        assert_vector(name, &layout.bytes());
    }
    assert_vector("block-leaf", &leaf.encode());
    assert_vector("block-tree", &tree.encode());
    assert_vector("chunk-commitment", &encode_to_vec(&receipt));
    assert_vector("block-leaf-id", &BlockId::of(&leaf.encode()).0);
    assert_vector("block-tree-id", &BlockId::of(&tree.encode()).0);
    // The documented bytes check against the documented ids, and decode to the same blocks.
    let v = VerifiedBlock::check(
        BlockId(hex("block-tree-id").try_into().unwrap()),
        &hex("block-tree"),
    )
    .expect("the tree vector matches its id");
    assert_eq!(v.block(), &tree);
    let back: ChunkCommitment = decode_exact(&hex("chunk-commitment")).unwrap();
    assert!(
        back.check(T0).is_ok(),
        "the receipt verifies before it runs out"
    );
    let mut forged = back;
    forged.until = Timestamp(forged.until.0 + 1);
    assert!(
        forged.check(T0).is_err(),
        "a changed promise does not verify"
    );
}

fn print_storage_vectors() {
    let (leaf, tree, receipt) = storage_fixture();
    println!("### 16.15 Storage: blocks and receipts\n");
    println!("`netmachine/v1/chunk-commitment\\0`:\n");
    print_hex_vector("context-chunk-commitment", COMMITMENT_CONTEXT);
    let texts = [
        "A leaf block holding the 5 bytes `hello`:\n",
        "A tree block of depth 1 over that one leaf (object size 5, no key):\n",
        "Node B's receipt for the leaf, guaranteed until 1,700,086,400,000 ms; signed by node B's \
         key over `netmachine/v1/chunk-commitment\\0` then the fields before the signature:\n",
    ];
    for ((name, layout), text) in ref_storage_vectors(&leaf, &receipt).into_iter().zip(texts) {
        para(text);
        print_layout_vector(name, &layout, true);
    }
    para("The leaf's id, BLAKE3 of its encoding:\n");
    print_hex_vector("block-leaf-id", &BlockId::of(&leaf.encode()).0);
    para("The tree block's id:\n");
    print_hex_vector("block-tree-id", &BlockId::of(&tree.encode()).0);
}

// ---------------------------------------------------------------------------------------------
// Storage messages (protocol 8, §12F, vectors §16.16).

/// The search id of the vectors.
const SEARCH_ID: u64 = 0x0102_0304_0506_0708;

/// The storage messages of §16.16, each with its name, its text in the document, and its
/// layout built from the document's rules. Node A asks, node B holds the leaf of §16.15
/// (`hello`) and signed the receipt of §16.15 for it.
fn storage_messages() -> Vec<(&'static str, &'static str, StorageMessage, Layout)> {
    let (leaf, _, receipt) = storage_fixture();
    let bytes = leaf.encode();
    let id = BlockId::of(&bytes);
    let a = Keypair::from_seed(&NODE_A_SEED).node_identity();
    let b = Keypair::from_seed(&NODE_B_SEED).node_identity();
    let topic = Keypair::from_seed(&TOPIC_SEED).topic_identity();
    let domain = Keypair::from_seed(&DOMAIN_SEED).domain_identity();
    let head = |tag: u32, name: &str| {
        Layout::default()
            .field("version (u32)", u32le(1))
            .field(format!("tag: {name} (u32)"), u32le(tag))
    };
    let block_bytes = |l: Layout, name: &str| {
        l.field(format!("{name}: count (u64)"), u64le(bytes.len() as u64))
            .field(format!("{name} (the leaf of §16.15)"), &bytes)
    };
    let refusal = |l: Layout, tag: u32, name: &str, text: &str| {
        l.field(format!("refusal: {name} (u32)"), u32le(tag))
            .field("text: count (u64)", u64le(text.len() as u64))
            .field("text (UTF-8)", text.as_bytes())
    };
    let trust_text = "trust 10 is below 200";
    let full_text = "store full";
    vec![
        (
            "storage-get-body",
            "A `Get` of the leaf of §16.15, receipts of other holders welcome:\n",
            StorageMessage::Get { id, holders: true },
            head(0, "Get")
                .field("id (BlockId)", id.0)
                .field("holders (bool)", [1]),
        ),
        (
            "storage-get-reply-block-body",
            "Node B's answer with the block:\n",
            StorageMessage::GetReply {
                id,
                answer: GetAnswer::Block(bytes.clone()),
            },
            block_bytes(
                head(1, "GetReply")
                    .field("id (BlockId)", id.0)
                    .field("answer: Block (u32)", u32le(0)),
                "block",
            ),
        ),
        (
            "storage-get-reply-holders-body",
            "The answer of a node that does not hold the block but knows node B's receipt for it \
             (§16.15):\n",
            StorageMessage::GetReply {
                id,
                answer: GetAnswer::Holders(vec![receipt]),
            },
            head(1, "GetReply")
                .field("id (BlockId)", id.0)
                .field("answer: Holders (u32)", u32le(1))
                .field("holders: count (u64)", u64le(1))
                .append("holders[0].", ref_commitment(&receipt)),
        ),
        (
            "storage-get-reply-not-found-body",
            "The answer of a node that knows neither the block nor a holder:\n",
            StorageMessage::GetReply {
                id,
                answer: GetAnswer::NotFound,
            },
            head(1, "GetReply")
                .field("id (BlockId)", id.0)
                .field("answer: NotFound (u32)", u32le(2)),
        ),
        (
            "storage-get-reply-refused-body",
            "The answer of a holder that keeps the block for nodes of trust 200 or more, to a \
             requester it trusts 10:\n",
            StorageMessage::GetReply {
                id,
                answer: GetAnswer::Refused(Refusal::Trust, trust_text.into()),
            },
            refusal(
                head(1, "GetReply")
                    .field("id (BlockId)", id.0)
                    .field("answer: Refused (u32)", u32le(3)),
                0,
                "Trust",
                trust_text,
            ),
        ),
        (
            "storage-put-body",
            "Node A asks node B to keep the leaf until 1,700,086,400,000 ms and serve it to \
             everyone (`min_trust` 0):\n",
            StorageMessage::Put {
                bytes: bytes.clone(),
                until: T0_PLUS_DAY,
                min_trust: 0,
            },
            block_bytes(head(2, "Put"), "bytes")
                .field("until (u64 ms)", u64le(T0_PLUS_DAY.0))
                .field("min_trust (u8)", [0]),
        ),
        (
            "storage-extend-body",
            "Node A asks node B to keep it until 1,700,086,400,000 ms (an `Extend`):\n",
            StorageMessage::Extend {
                id,
                until: T0_PLUS_DAY,
            },
            head(3, "Extend")
                .field("id (BlockId)", id.0)
                .field("until (u64 ms)", u64le(T0_PLUS_DAY.0)),
        ),
        (
            "storage-put-reply-body",
            "Node B's answer to the put: its receipt (§16.15), signed by its node key:\n",
            StorageMessage::PutReply {
                id,
                result: Ok(receipt),
            },
            head(4, "PutReply")
                .field("id (BlockId)", id.0)
                .field("result: Ok (u32)", u32le(0))
                .append("receipt.", ref_commitment(&receipt)),
        ),
        (
            "storage-put-reply-refused-body",
            "The answer of a node whose store is full:\n",
            StorageMessage::PutReply {
                id,
                result: Err((Refusal::Full, full_text.into())),
            },
            refusal(
                head(4, "PutReply")
                    .field("id (BlockId)", id.0)
                    .field("result: Err (u32)", u32le(1)),
                1,
                "Full",
                full_text,
            ),
        ),
        (
            "storage-search-random-body",
            "Node A starts a random walk for the leaf inside the domain of seed `04` × 32, search \
             id `0x0102030405060708`, 63 hops left after this one (hop limit 64); the path holds \
             node A only (it sends the search itself):\n",
            StorageMessage::Search(Search {
                search: SEARCH_ID,
                id,
                scope: SearchScope::Random(Some(domain)),
                ttl: 63,
                path: vec![a],
            }),
            head(5, "Search")
                .field("search (u64)", u64le(SEARCH_ID))
                .field("id (BlockId)", id.0)
                .field("scope: Random (u32)", u32le(1))
                .field("scope.domain: Some", [1])
                .field("scope.domain (DomainIdentity)", domain.0)
                .field("ttl (u8)", [63])
                .field("path: count (u64)", u64le(1))
                .field("path[0] (NodeIdentity, node A)", a.0),
        ),
        (
            "storage-search-topic-body",
            "The same search up the tree of the topic of seed `03` × 32, as node B forwards it \
             (it appended itself: the path's last node is the sender of the copy):\n",
            StorageMessage::Search(Search {
                search: SEARCH_ID,
                id,
                scope: SearchScope::Topic(topic),
                ttl: 62,
                path: vec![a, b],
            }),
            head(5, "Search")
                .field("search (u64)", u64le(SEARCH_ID))
                .field("id (BlockId)", id.0)
                .field("scope: Topic (u32)", u32le(0))
                .field("scope.topic (TopicIdentity)", topic.0)
                .field("ttl (u8)", [62])
                .field("path: count (u64)", u64le(2))
                .field("path[0] (NodeIdentity, node A)", a.0)
                .field("path[1] (NodeIdentity, node B)", b.0),
        ),
        (
            "storage-found-body",
            "Node B holds the leaf and answers node A's random walk, with no advert: the path \
             is the search's (node A) with node B appended, reversed — the holder first, the \
             origin last:\n",
            StorageMessage::Found(StorageFound {
                search: SEARCH_ID,
                origin: a,
                id,
                holder: b,
                holder_advert: None,
                path: vec![b, a],
                min_trust: 0,
                bytes: bytes.clone(),
            }),
            block_bytes(
                head(6, "Found")
                    .field("search (u64)", u64le(SEARCH_ID))
                    .field("origin (NodeIdentity, node A)", a.0)
                    .field("id (BlockId)", id.0)
                    .field("holder (NodeIdentity, node B)", b.0)
                    .field("holder_advert: None", [0])
                    .field("path: count (u64)", u64le(2))
                    .field("path[0] (NodeIdentity, node B, the holder)", b.0)
                    .field("path[1] (NodeIdentity, node A, the origin)", a.0)
                    .field("min_trust (u8)", [0]),
                "bytes",
            ),
        ),
    ]
}

#[test]
fn storage_message_vectors() {
    assert_eq!(Protocol::STORAGE, Protocol(8));
    assert_eq!(STORAGE_VERSION, 1);
    for (name, _, m, layout) in storage_messages() {
        assert_eq!(
            m.to_bytes(),
            layout.bytes(),
            "{name}: the code and the document's rules"
        );
        assert_vector(name, &m.to_bytes());
        let back = StorageMessage::from_bytes(&hex(name)).unwrap();
        assert_eq!(back, m, "{name}");
        // One byte short, or one more, is refused.
        let wire = hex(name);
        assert!(StorageMessage::from_bytes(&wire[..wire.len() - 1]).is_err());
        let mut long = wire.clone();
        long.push(0);
        assert!(StorageMessage::from_bytes(&long).is_err(), "{name}");
    }
    // What a receiver checks in the vectors, by the rules of §12F: the block of a reply, a put
    // and a result against its id; the receipts against the holder's key and the block.
    let (leaf, _, _) = storage_fixture();
    let id = BlockId::of(&leaf.encode());
    let a = Keypair::from_seed(&NODE_A_SEED).node_identity();
    let b = Keypair::from_seed(&NODE_B_SEED).node_identity();
    let Ok(StorageMessage::Found(f)) = StorageMessage::from_bytes(&hex("storage-found-body"))
    else {
        panic!("the result decodes")
    };
    let v = VerifiedBlock::check(f.id, &f.bytes).expect("the result's block matches its id");
    assert_eq!(v.block(), &leaf);
    assert_eq!((f.path[0], f.holder, *f.path.last().unwrap()), (b, b, a));
    let Ok(StorageMessage::Search(s)) =
        StorageMessage::from_bytes(&hex("storage-search-topic-body"))
    else {
        panic!("the search decodes")
    };
    assert_eq!(
        s.path.last(),
        Some(&b),
        "the last node is the forwarding one"
    );
    let Ok(StorageMessage::PutReply {
        id: put_id,
        result: Ok(c),
    }) = StorageMessage::from_bytes(&hex("storage-put-reply-body"))
    else {
        panic!("the receipt decodes")
    };
    assert_eq!((put_id, c.block, c.node), (id, id, b));
    assert!(c.check(T0).is_ok(), "the receipt verifies under node B");
    let wire = hex("storage-put-reply-body");
    assert_eq!(&wire[wire.len() - 136..], &hex("chunk-commitment")[..]);
    let Ok(StorageMessage::GetReply {
        answer: GetAnswer::Holders(h),
        ..
    }) = StorageMessage::from_bytes(&hex("storage-get-reply-holders-body"))
    else {
        panic!("the holders decode")
    };
    assert_eq!(h, vec![c]);
    // A result whose block was changed on the way no longer matches its id.
    let mut tampered = f;
    tampered.bytes[5] ^= 1;
    assert!(VerifiedBlock::check(tampered.id, &tampered.bytes).is_err());
}

fn print_storage_message_vectors() {
    println!("### 16.16 Storage messages\n");
    para(
        "Bodies of `Protocol::STORAGE` messages (§12F). The block is the leaf of §16.15, its id \
         `block-leaf-id`; node A asks, node B holds the block and signed the receipt of §16.15:",
    );
    for (name, text, _, layout) in storage_messages() {
        para(text);
        print_layout_vector(name, &layout, true);
    }
}
