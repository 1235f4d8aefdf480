//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) on stable Rust, without libFuzzer.
//!
//! The checks are not copied: `fuzz/src/lib.rs`, whose functions the `cargo fuzz` targets call,
//! is included here as the module `checks`, so the fuzz targets and this replay always run the
//! same code. This file adds the hand-made seeds (valid encodings made by netmachine itself, plus
//! truncated, bit-flipped and forged variants): `seeds_decode_as_expected` checks them in memory,
//! and the ignored `write_seed_corpus` writes them into the corpus. docs/fuzzing.md has the rest.

#[path = "../fuzz/src/lib.rs"]
mod checks;
#[path = "fuzz_corpus/relay.rs"]
mod relay;
#[path = "fuzz_corpus/storage.rs"]
mod storage;
#[path = "fuzz_corpus/tcp.rs"]
mod tcp;

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use netmachine::identity::{CheckedKey, Keypair, Signature};
use netmachine::interdomain::blip::{self, BlipParams};
use netmachine::interdomain::descriptor::{check_descriptor, make_descriptor, DescriptorError};
use netmachine::pubsub::{Event, PubSubMessage, Withdrawal};
use netmachine::time::Timestamp;
use netmachine::transport::control::{self, Ack, EngineAdverts, Found, Hello, Lookup, Withdrawn};
use netmachine::transport::frame::{self, kind};
use netmachine::wire::advert::{
    DomainAdvert, DomainAuth, EngineAdvert, Introducer, NodeAdvert, Signed, TopicAdvert,
};
use netmachine::wire::message::Unverified;
use netmachine::wire::{
    decode_exact, encode_to_vec, Destination, EngineMessage, MembershipFilter, MessageId,
    NodeDescriptor, Ordering, Protocol, Reliability, RoutingPrefs, RoutingScope, Security,
    TransportAddress, TransportPrefs,
};
use netmachine::EngineIdentity;

/// The checks of one fuzz target.
type Check = fn(&[u8]);

/// Every fuzz target (the `[[bin]]`s of fuzz/Cargo.toml) and its checks.
const TARGETS: [(&str, Check); 9] = [
    ("engine_message", checks::engine_message),
    ("frames", checks::frames),
    ("control", checks::control),
    ("adverts", checks::adverts),
    ("pubsub", checks::pubsub),
    ("descriptor", checks::descriptor),
    ("storage_message", checks::storage_message),
    ("relay_layer", checks::relay_layer),
    ("tcp_records", checks::tcp_records),
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

/// The corpus files of `target`, sorted; hidden files (libFuzzer's scratch files) are skipped.
fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = corpus_dir(target);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.is_file()
                && !path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Runs `check` on `data`, turning a panic into the panic message.
fn run(check: Check, data: &[u8]) -> Result<(), String> {
    panic::catch_unwind(AssertUnwindSafe(|| check(data))).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "non-string panic".to_string())
    })
}

#[test]
fn corpus_replays_without_panics() {
    let mut failures = Vec::new();
    for (target, check) in TARGETS {
        let files = corpus_files(target);
        assert!(
            !files.is_empty(),
            "the corpus of fuzz target {target} ({}) is empty",
            corpus_dir(target).display()
        );
        for path in files {
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let Err(message) = run(check, &data) {
                failures.push(format!("{target}: {}: {message}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn seeds_decode_as_expected() {
    let seeds = Seeds::new();
    for (target, check) in TARGETS {
        let list = seeds.for_target(target);
        assert!(!list.is_empty());
        for (name, data) in list {
            if let Err(message) = run(check, &data) {
                panic!("{target}: seed {name}: {message}");
            }
        }
    }
    // Each seed must still fail (or pass) the way its name says, so that the corpus keeps
    // starting from real encodings and from the error paths it was made for.
    for (target, _) in TARGETS {
        for (name, data) in seeds.for_target(target) {
            let got = outcome(target, &data);
            let want = expected_outcome(target, &name);
            assert!(
                got.contains(want),
                "{target}: seed {name}: got {got:?}, expected {want:?}"
            );
        }
    }
}

/// What the target's main decoder makes of `data`, as text for [`expected_outcome`].
fn outcome(target: &str, data: &[u8]) -> String {
    fn verified(ok: bool) -> String {
        if ok { "verifies" } else { "bad signature" }.to_string()
    }
    let mut scratch = Vec::new();
    match target {
        "engine_message" => match (
            Unverified::decode(data.to_vec()),
            Unverified::decode_fields(data),
        ) {
            (Ok(u), _) => match CheckedKey::parse(u.message().src.as_bytes()) {
                Ok(key) => verified(u.verify(&key, &mut scratch).is_ok()),
                Err(e) => format!("{e:?}"),
            },
            (Err(_), Ok(_)) => "fields".to_string(),
            (Err(wire), Err(fields)) => format!("{wire:?} / {fields:?}"),
        },
        "frames" => {
            let [limit, _, _, stream @ ..] = data else {
                return "short".to_string();
            };
            let max = checks::FRAME_LIMITS[*limit as usize % checks::FRAME_LIMITS.len()];
            let mut decoder = frame::FrameDecoder::new(max);
            let mut n = 0;
            let result = decoder.push(stream, |_, _| n += 1);
            format!("{n} frames, {result:?}, boundary {}", decoder.at_boundary())
        }
        "control" => match (control::decode::<Hello>(data), control::decode::<Ack>(data)) {
            (Ok(_), _) => "hello".to_string(),
            (_, Ok(_)) => "ack".to_string(),
            (Err(hello), Err(ack)) => {
                if control::decode::<Lookup>(data).is_ok() {
                    "lookup".to_string()
                } else if let Ok(found) = control::decode::<Found>(data) {
                    verified(found.advert.is_some_and(|a| a.verify().is_ok()))
                } else if control::decode::<Withdrawn>(data).is_ok() {
                    "withdrawn".to_string()
                } else {
                    match control::decode::<EngineAdverts>(data) {
                        Ok(a) => verified(a.0.into_iter().all(|a| a.verify().is_ok())),
                        Err(e) => format!("{hello:?} / {ack:?} / {e:?}"),
                    }
                }
            }
        },
        "adverts" => {
            if let Ok(text) = std::str::from_utf8(data) {
                if text.starts_with("nmadvert2:") {
                    return verified(NodeAdvert::from_line(text).is_ok());
                }
            }
            match (
                decode_exact::<NodeAdvert>(data),
                decode_exact::<EngineAdvert>(data),
                decode_exact::<TopicAdvert>(data),
                decode_exact::<DomainAdvert>(data),
            ) {
                (Ok(a), _, _, _) => verified(a.verify().is_ok()),
                (_, Ok(a), _, _) => verified(a.verify().is_ok()),
                (_, _, Ok(a), _) => verified(a.verify().is_ok()),
                (_, _, _, Ok(a)) => verified(a.verify().is_ok()),
                (Err(node), _, Err(topic), _) => format!("{node:?} / {topic:?}"),
            }
        }
        "pubsub" => match PubSubMessage::from_bytes(data) {
            Ok(PubSubMessage::Event(ev)) => {
                let key = CheckedKey::parse(ev.publisher.as_bytes()).expect("a valid key");
                verified(ev.verify(&key).is_ok())
            }
            Ok(PubSubMessage::Events(evs)) => verified(evs.into_iter().all(|ev| {
                let key = CheckedKey::parse(ev.publisher.as_bytes()).expect("a valid key");
                ev.verify(&key).is_ok()
            })),
            Ok(PubSubMessage::Advert { advert, .. }) => verified(advert.verify().is_ok()),
            Ok(PubSubMessage::Withdraw(w)) => {
                let key = CheckedKey::parse(w.publisher.as_bytes()).expect("a valid key");
                verified(w.verify(&key))
            }
            Ok(_) => "decodes".to_string(),
            Err(e) => format!("{e:?}"),
        },
        "descriptor" => match decode_exact::<NodeDescriptor>(data) {
            Ok(d) => {
                let params = BlipParams {
                    bits: d.filter.bits,
                    hashes: d.filter.hashes,
                    ..BlipParams::default()
                };
                let now = d.created;
                match check_descriptor(d, now, &params) {
                    Ok(_) => "verifies".to_string(),
                    Err(DescriptorError::BadSignature | DescriptorError::BadAdvertSignature) => {
                        "bad signature".to_string()
                    }
                    Err(e) => e.label().to_string(),
                }
            }
            Err(desc) => match decode_exact::<MembershipFilter>(data) {
                Ok(_) => "filter".to_string(),
                Err(filter) => format!("{desc:?} / {filter:?}"),
            },
        },
        "storage_message" => storage::outcome(data),
        "relay_layer" => relay::outcome(data),
        "tcp_records" => tcp::outcome(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// A part of [`outcome`] that the seed called `name` must produce.
fn expected_outcome(target: &str, name: &str) -> &'static str {
    match (target, name) {
        ("storage_message", name) => storage::expected(name),
        ("relay_layer", name) => relay::expected(name),
        ("tcp_records", name) => tcp::expected(name),
        ("engine_message", "valid-fields") => "fields",
        ("engine_message", "weak-source-key") => "Weak",
        ("engine_message", "unknown-version") => "UnknownVersion(2) /",
        ("engine_message", "bad-option-tag") => "BadTag",
        ("engine_message", "forged-body-length") => "TooLarge { what: \"body\"",
        ("engine_message", "body-length-past-end") => "Truncated /",
        ("engine_message", "trailing-byte-fields") => "/ TrailingBytes(1)",
        ("frames", "valid-stream-chunked" | "valid-stream-one-shot") => {
            "5 frames, Ok(()), boundary true"
        }
        ("frames", "valid-stream-empty-pushes") => "5 frames, Ok(()), boundary true",
        ("frames", "too-large-for-limit") => "0 frames, Err(TooLarge { len: 300, max: 64 })",
        ("frames", "huge-length") => "0 frames, Err(TooLarge { len: 4294967295",
        ("frames", "truncated-payload") => "4 frames, Ok(()), boundary false",
        ("frames", "truncated-header") => "0 frames, Ok(()), boundary false",
        ("frames", "zero-limit") => "0 frames, Err(TooLarge",
        ("control", "truncated-hello") => "Truncated /",
        ("control", "hello-bad-option-tag") => "BadTag",
        ("control", "hello-trailing-byte") => "TrailingBytes(1) /",
        ("control", "ack-over-limit") => "/ TooLarge { what: \"list\", len: 2049",
        ("control", "ack-forged-count" | "ack-truncated") => "/ Truncated",
        ("control", "exchange-lookup") => "lookup",
        ("control", "exchange-withdrawn") => "withdrawn",
        ("control", "exchange-found" | "exchange-engine-adverts") => "verifies",
        ("control", "exchange-engine-adverts-over-limit") => "TooLarge { what: \"list\", len: 65",
        ("adverts", "node-advert-truncated") => "Truncated /",
        ("adverts", "node-advert-bad-name-tag") => "BadTag",
        ("adverts", "node-advert-name-not-utf8") => "BadUtf8 /",
        ("adverts", "node-advert-too-many-addresses") => "TooLarge { what: \"addresses\"",
        ("adverts", "topic-advert-too-many-publishers") => "/ TooLarge { what: \"publishers\"",
        ("descriptor", "filter-valid" | "filter-unflipped") => "filter",
        ("descriptor", "descriptor-expired") => "expired",
        ("descriptor", "descriptor-forged-signer") => "bad signature",
        ("descriptor", "filter-bits-not-a-multiple-of-8") => {
            "/ TooLarge { what: \"value\", len: 1028, max: 8192 }"
        }
        ("descriptor", "filter-too-many-hashes") => {
            "/ TooLarge { what: \"value\", len: 17, max: 16 }"
        }
        ("descriptor", "filter-forged-length") => {
            "/ TooLarge { what: \"value\", len: 18446744073709551615, max: 128 }"
        }
        ("descriptor", "filter-short-bytes") => "/ Other",
        ("pubsub", "event-truncated") => "Truncated",
        ("pubsub", "unknown-version") => "UnknownVersion(2)",
        ("pubsub", "unknown-tag" | "subscribe-ack-bad-bool") => "BadTag",
        ("pubsub", "event-too-many-deps" | "subscribe-ack-too-many-positions") => "TooLarge",
        ("pubsub", "events-too-many") => "TooLarge { what: \"list\", len: 257",
        ("pubsub", "subscribe-too-many-publishers") => "TooLarge { what: \"publishers\"",
        ("control", n) if n.starts_with("valid-hello") => "hello",
        ("control", n) if n.starts_with("valid-ack") => "ack",
        ("pubsub", "valid-event-req" | "valid-event-resp" | "valid-event-ack") => "decodes",
        ("pubsub", n) if n.starts_with("valid-sub") || n.starts_with("valid-unsub") => "decodes",
        (_, n) if n.starts_with("valid-") => "verifies",
        (_, n) if n.starts_with("flipped-") || n.contains("-flipped-") => "bad signature",
        (_, n) if n.starts_with("truncated-") => "Truncated",
        (target, name) => panic!("{target}: seed {name} has no expected outcome"),
    }
}

/// Writes the hand-made seeds into `fuzz/corpus/<target>/seed-<name>`, replacing every
/// `seed-*` file there; other corpus files are left alone. Run it after a change to the wire
/// format: `cargo test --release --test fuzz_corpus -- --ignored write_seed_corpus`.
#[test]
#[ignore = "writes into fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    let seeds = Seeds::new();
    for (target, _) in TARGETS {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).unwrap();
        for path in corpus_files(target) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("seed-") {
                fs::remove_file(&path).unwrap();
            }
        }
        for (name, data) in seeds.for_target(target) {
            fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-made seeds. Keys come from fixed seeds and Ed25519 signing is deterministic, so the
// seeds are the same bytes on every run.

/// Valid encodings made by netmachine, from which the variants are derived.
struct Seeds {
    message: Vec<u8>,
    message_minimal: Vec<u8>,
    message_topic: Vec<u8>,
    message_domain: Vec<u8>,
    message_fields: Vec<u8>,
    message_weak_key: Vec<u8>,
    node_advert: NodeAdvert,
    node_advert_bare: NodeAdvert,
    engine_advert: EngineAdvert,
    topic_advert: TopicAdvert,
    domain_advert: DomainAdvert,
    event: Event,
    event_first: Event,
    /// The PubSub key that signed the events.
    publisher: Keypair,
}

fn key(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32])
}

fn sign(mut m: EngineMessage, key: &Keypair) -> Vec<u8> {
    let mut wire = Vec::new();
    m.sign_into_wire(key, &mut wire, &mut Vec::new());
    wire
}

fn truncated(data: &[u8], len: usize) -> Vec<u8> {
    data[..len].to_vec()
}

fn flipped(data: &[u8], at: usize, mask: u8) -> Vec<u8> {
    let mut out = data.to_vec();
    out[at] ^= mask;
    out
}

fn with_u64(data: &[u8], at: usize, value: u64) -> Vec<u8> {
    let mut out = data.to_vec();
    out[at..at + 8].copy_from_slice(&value.to_le_bytes());
    out
}

fn with_byte(data: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut out = data.to_vec();
    out[at] = value;
    out
}

fn appended(data: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    out.extend_from_slice(extra);
    out
}

/// Offset of the reply-to option tag in a message's wire form whose destination is 36 bytes:
/// version 4, src 32, src_node 32, dst 4 + 32, id 8.
const WIRE_REPLY_TO_TAG: usize = 4 + 32 + 32 + 36 + 8;

impl Seeds {
    fn new() -> Seeds {
        let node = key(1);
        let engine = node.derive_engine("app");
        let pubsub = node.derive_engine("pubsub");
        let topic = key(2);
        let domain = key(3);

        let full = EngineMessage {
            src: engine.engine_identity(),
            src_node: node.node_identity(),
            dst: Destination::Engine(EngineIdentity([7; 32])),
            id: MessageId(1_700_000_000_000_000_000),
            reply_to: Some(MessageId(41)),
            expiry: Some(Timestamp(1_700_000_060_000)),
            rprefs: Some(RoutingPrefs {
                scope: RoutingScope::Any,
            }),
            tprefs: Some(TransportPrefs::RELIABLE_ORDERED),
            protocol: Protocol(Protocol::APP_BASE + 1),
            body: b"hello".to_vec(),
            sig: None,
        };
        let minimal = EngineMessage {
            dst: Destination::Node(key(4).node_identity()),
            reply_to: None,
            expiry: None,
            rprefs: None,
            tprefs: None,
            protocol: Protocol::PING,
            body: Vec::new(),
            ..full.clone()
        };
        let to_topic = EngineMessage {
            dst: Destination::Topic(topic.topic_identity()),
            rprefs: Some(RoutingPrefs {
                scope: RoutingScope::Domain(domain.domain_identity()),
            }),
            tprefs: Some(TransportPrefs {
                ordering: Ordering::Unordered,
                reliability: Reliability::Unreliable,
                security: Security::OnionRouting(3),
            }),
            body: vec![0xa5; 200],
            ..full.clone()
        };
        let to_domain = EngineMessage {
            dst: Destination::Domain(domain.domain_identity()),
            rprefs: Some(RoutingPrefs {
                scope: RoutingScope::Local,
            }),
            tprefs: Some(TransportPrefs {
                security: Security::Mixnet,
                ..TransportPrefs::RELIABLE_ORDERED
            }),
            ..full.clone()
        };
        let mut fields = Vec::new();
        full.encode_signed_fields(&mut fields);
        // Identity point (y = 1): a small-order key that CheckedKey refuses.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let weak_key_wire = {
            let mut wire = sign(full.clone(), &engine);
            wire[4..36].copy_from_slice(&weak);
            wire
        };

        let node_advert = NodeAdvert::new_signed(
            &node,
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
            Timestamp(1_700_000_000_000),
            Timestamp(1_700_086_400_000),
            Some("alpha-1".into()),
        );
        let node_advert_bare =
            NodeAdvert::new_signed(&key(4), Vec::new(), 1, Timestamp(0), Timestamp(1), None);
        let engine_advert = EngineAdvert {
            engine: engine.engine_identity(),
            node: node.node_identity(),
            name: "app".into(),
            version: 1,
            created: Timestamp(1_700_000_000_000),
            expires: Timestamp(1_700_086_400_000),
            sig: Signature([0; 64]),
        }
        .sign(&engine);
        let topic_advert = TopicAdvert {
            topic: topic.topic_identity(),
            publishers: vec![pubsub.engine_identity(), EngineIdentity([9; 32])],
            tags: vec!["blocks".into(), "mainnet".into()],
            version: 2,
            created: Timestamp(1_700_000_000_000),
            scope: None,
            sig: Signature([0; 64]),
        }
        .sign(&topic);
        let domain_advert = DomainAdvert {
            id: domain.domain_identity(),
            introducers: vec![Introducer {
                node: node.node_identity(),
                addrs: vec![TransportAddress::quic("127.0.0.1:7001".parse().unwrap())],
            }],
            auth: DomainAuth::AllowList(vec![key(4).node_identity()]),
            external: vec![node.node_identity()],
            max_members: 0,
            version: 1,
            created: Timestamp(1_700_000_000_000),
            sig: Signature([0; 64]),
        }
        .sign(&domain);
        let first = Event::new_signed(
            &pubsub,
            topic.topic_identity(),
            1,
            Vec::new(),
            b"x".to_vec(),
        );
        let event = Event::new_signed(
            &pubsub,
            topic.topic_identity(),
            2,
            vec![first.id()],
            fields.clone(),
        );

        Seeds {
            message: sign(full, &engine),
            message_minimal: sign(minimal, &engine),
            message_topic: sign(to_topic, &engine),
            message_domain: sign(to_domain, &engine),
            message_fields: fields,
            message_weak_key: weak_key_wire,
            node_advert,
            node_advert_bare,
            engine_advert,
            topic_advert,
            domain_advert,
            event: event.into_inner(),
            event_first: first.into_inner(),
            publisher: pubsub,
        }
    }

    /// `(name, bytes)` for one target. Names starting with `valid-` are valid encodings.
    fn for_target(&self, target: &str) -> Vec<(String, Vec<u8>)> {
        let list: Vec<(&str, Vec<u8>)> = match target {
            "engine_message" => self.engine_message(),
            "frames" => self.frames(),
            "control" => self.control(),
            "adverts" => self.adverts(),
            "pubsub" => self.pubsub(),
            "descriptor" => self.descriptor(),
            "storage_message" => storage::seeds(),
            "relay_layer" => relay::seeds(),
            "tcp_records" => tcp::seeds(),
            other => panic!("no seeds for {other}"),
        };
        list.into_iter().map(|(n, d)| (n.to_string(), d)).collect()
    }

    fn engine_message(&self) -> Vec<(&'static str, Vec<u8>)> {
        let m = &self.message;
        let n = m.len();
        // The body ("hello", 5 bytes) is just before the signature, its u64 length before it.
        let body_len_at = n - 64 - 5 - 8;
        vec![
            ("valid-message", m.clone()),
            ("valid-message-minimal", self.message_minimal.clone()),
            ("valid-message-to-topic", self.message_topic.clone()),
            ("valid-message-to-domain", self.message_domain.clone()),
            ("valid-fields", self.message_fields.clone()),
            ("weak-source-key", self.message_weak_key.clone()),
            ("truncated-by-one", truncated(m, n - 1)),
            ("truncated-half", truncated(m, n / 2)),
            ("truncated-version-only", truncated(m, 4)),
            ("flipped-body", flipped(m, n - 64 - 2, 0x01)),
            ("flipped-signature", flipped(m, n - 1, 0x80)),
            ("unknown-version", with_byte(m, 0, 2)),
            ("bad-option-tag", with_byte(m, WIRE_REPLY_TO_TAG, 2)),
            ("forged-body-length", with_u64(m, body_len_at, 1 << 40)),
            ("body-length-past-end", with_u64(m, body_len_at, 6)),
            ("trailing-byte-fields", appended(&self.message_fields, &[0])),
        ]
    }

    fn frames(&self) -> Vec<(&'static str, Vec<u8>)> {
        // Header: limit index (see checks::FRAME_LIMITS), two chunk sizes; then the stream.
        let mut stream = Vec::new();
        frame::encode(kind::HELLO, &control::encode(&hello(None)), &mut stream);
        frame::encode(kind::ADVERT, &encode_to_vec(&self.node_advert), &mut stream);
        frame::encode(
            kind::ACK,
            &control::encode(&Ack(vec![(2, 10)])),
            &mut stream,
        );
        frame::encode(kind::MESSAGE, &self.message, &mut stream);
        frame::encode(kind::MESSAGE, &[], &mut stream);
        let with = |limit: u8, a: u8, b: u8, s: &[u8]| {
            let mut out = vec![limit, a, b];
            out.extend_from_slice(s);
            out
        };
        let mut oversized = Vec::new();
        frame::encode(kind::MESSAGE, &[0; 300], &mut oversized);
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.push(kind::MESSAGE);
        huge.extend_from_slice(&[0; 16]);
        vec![
            ("valid-stream-chunked", with(5, 1, 7, &stream)),
            ("valid-stream-one-shot", with(6, 0, 0, &stream)),
            ("valid-stream-empty-pushes", with(5, 0, 13, &stream)),
            ("too-large-for-limit", with(3, 64, 64, &oversized)),
            ("huge-length", with(7, 3, 200, &huge)),
            (
                "truncated-payload",
                with(5, 9, 1, &stream[..stream.len() - 3]),
            ),
            ("truncated-header", with(5, 2, 2, &stream[..3])),
            ("zero-limit", with(0, 5, 5, &stream)),
        ]
    }

    fn control(&self) -> Vec<(&'static str, Vec<u8>)> {
        let h = control::encode(&hello(None));
        let ack = control::encode(&Ack(vec![(2, 10), (6, 1), (u64::MAX, 0)]));
        let adverts = control::encode(&EngineAdverts(vec![self.engine_advert.clone()]));
        vec![
            ("valid-hello", h.clone()),
            ("valid-hello-known-advert", control::encode(&hello(Some(9)))),
            (
                "valid-hello-range",
                control::encode(&Hello {
                    min_version: 1,
                    max_version: 3,
                    ..hello(None)
                }),
            ),
            ("valid-ack", ack.clone()),
            ("valid-ack-empty", control::encode(&Ack(Vec::new()))),
            ("truncated-hello", truncated(&h, h.len() - 1)),
            ("hello-bad-option-tag", with_byte(&h, h.len() - 1, 2)),
            ("hello-trailing-byte", appended(&h, &[0])),
            ("ack-over-limit", with_u64(&ack, 0, 2049)),
            ("ack-forged-count", with_u64(&ack, 0, 2000)),
            ("ack-truncated", truncated(&ack, ack.len() - 5)),
            (
                "exchange-lookup",
                control::encode(&Lookup {
                    engine: self.engine_advert.engine,
                }),
            ),
            (
                "exchange-withdrawn",
                control::encode(&Withdrawn(vec![self.engine_advert.engine; 2])),
            ),
            (
                "exchange-found",
                control::encode(&Found {
                    engine: self.engine_advert.engine,
                    advert: Some(self.engine_advert.clone()),
                    node_advert: Some(self.node_advert.clone()),
                }),
            ),
            ("exchange-engine-adverts", adverts.clone()),
            (
                "exchange-engine-adverts-over-limit",
                with_u64(&adverts, 0, 65),
            ),
        ]
    }

    fn adverts(&self) -> Vec<(&'static str, Vec<u8>)> {
        let node = encode_to_vec(&self.node_advert);
        let topic = encode_to_vec(&self.topic_advert);
        let n = node.len();
        // Node advert: id 32, address count 8, addresses (V4: 4+4+4+2+1, V6: 4+4+16+2+1),
        // version 8, created 8, expires 8, name tag 1, name length 8, name 7, signature 64 (186
        // bytes; a domain advert is longer, so a mutated seed does not also decode as one).
        let name_tag_at = n - 64 - 7 - 8 - 1;
        vec![
            ("valid-node-advert", node.clone()),
            (
                "valid-node-advert-bare",
                encode_to_vec(&self.node_advert_bare),
            ),
            (
                "valid-node-advert-line",
                self.node_advert.to_line().into_bytes(),
            ),
            ("valid-engine-advert", encode_to_vec(&self.engine_advert)),
            ("valid-topic-advert", topic.clone()),
            ("valid-domain-advert", encode_to_vec(&self.domain_advert)),
            ("node-advert-truncated", truncated(&node, n - 1)),
            (
                "node-advert-flipped-version",
                flipped(&node, n - 64 - 30, 1),
            ),
            ("node-advert-bad-name-tag", with_byte(&node, name_tag_at, 2)),
            (
                "node-advert-name-not-utf8",
                with_byte(&node, n - 64 - 1, 0xff),
            ),
            ("node-advert-too-many-addresses", with_u64(&node, 32, 17)),
            ("topic-advert-too-many-publishers", with_u64(&topic, 32, 65)),
        ]
    }

    fn descriptor(&self) -> Vec<(&'static str, Vec<u8>)> {
        let node = key(1);
        let params = BlipParams::default();
        let domains = [key(3).domain_identity(), key(5).domain_identity()];
        let plain = blip::encode(&params, &domains);
        // A deterministic stand-in for a flip (the real one is random): every third byte
        // inverted.
        let mut flipped_filter = plain.clone();
        for b in flipped_filter.bytes.iter_mut().step_by(3) {
            *b ^= 0xff;
        }
        flipped_filter.epsilon_milli = 5000;
        let created = Timestamp(1_700_000_100_000);
        let good = make_descriptor(
            &node,
            self.node_advert.clone(),
            flipped_filter.clone(),
            2,
            created,
        );
        let wire = encode_to_vec(&good);
        let n = wire.len();
        let expired = make_descriptor(
            &node,
            self.node_advert.clone(),
            flipped_filter.clone(),
            3,
            Timestamp(1_700_086_400_000),
        );
        // Node 1's advert, signed by another key.
        let mut forged = good.clone();
        forged.version = 4;
        forged.sig = key(6).sign_with_context(
            <NodeDescriptor as Signed>::CONTEXT,
            &forged.signed_fields(),
            &mut Vec::new(),
        );
        let filter = encode_to_vec(&flipped_filter);
        // Filter: bits 4, hashes 1, epsilon_milli 4, byte length 8, bytes.
        let mut short = filter.clone();
        short.truncate(filter.len() - 1);
        let short = {
            let mut s = with_u64(&short, 9, 127);
            s.truncate(9 + 8 + 127);
            s
        };
        vec![
            ("valid-descriptor", wire.clone()),
            ("descriptor-expired", encode_to_vec(&expired)),
            ("descriptor-forged-signer", encode_to_vec(&forged)),
            // The version is the 16 bytes of version and created before the signature.
            ("flipped-descriptor-version", flipped(&wire, n - 64 - 16, 1)),
            ("truncated-descriptor", truncated(&wire, n - 1)),
            ("filter-valid", filter.clone()),
            ("filter-unflipped", encode_to_vec(&plain)),
            (
                "filter-bits-not-a-multiple-of-8",
                with_byte(&filter, 0, 0x04),
            ),
            ("filter-too-many-hashes", with_byte(&filter, 4, 17)),
            ("filter-forged-length", with_u64(&filter, 9, u64::MAX)),
            ("filter-short-bytes", short),
        ]
    }

    fn pubsub(&self) -> Vec<(&'static str, Vec<u8>)> {
        let t = self.topic_advert.topic;
        let p = self.event.publisher;
        let event = PubSubMessage::Event(self.event.clone()).to_bytes();
        let ack = PubSubMessage::SubscribeAck {
            topic: t,
            accepted: true,
            positions: vec![(p, 3)],
        }
        .to_bytes();
        let msgs = |m: PubSubMessage| m.to_bytes();
        let events_empty = msgs(PubSubMessage::Events(Vec::new()));
        // SubscribeAck: version 4, tag 4, topic 32, accepted 1, count 8.
        vec![
            (
                "valid-advert",
                msgs(PubSubMessage::Advert {
                    advert: self.topic_advert.clone(),
                    publisher: p,
                    hops: 1,
                }),
            ),
            (
                "valid-subscribe",
                msgs(PubSubMessage::Subscribe {
                    topic: t,
                    publishers: vec![p],
                }),
            ),
            (
                "valid-withdraw",
                msgs(PubSubMessage::Withdraw(Withdrawal::new_signed(
                    &self.publisher,
                    t,
                    1,
                ))),
            ),
            (
                "withdraw-flipped-signature",
                flipped(
                    &msgs(PubSubMessage::Withdraw(Withdrawal::new_signed(
                        &self.publisher,
                        t,
                        1,
                    ))),
                    8 + 72,
                    1,
                ),
            ),
            ("valid-subscribe-ack", ack.clone()),
            (
                "valid-unsubscribe",
                msgs(PubSubMessage::Unsubscribe { topic: t }),
            ),
            (
                "valid-unsubscribe-ack",
                msgs(PubSubMessage::UnsubscribeAck { topic: t }),
            ),
            ("valid-event", event.clone()),
            (
                "valid-event-req",
                msgs(PubSubMessage::EventReq {
                    topic: t,
                    publisher: p,
                    from: 1,
                    to: 9,
                }),
            ),
            (
                "valid-event-resp",
                msgs(PubSubMessage::EventResp {
                    topic: t,
                    publisher: p,
                    from: 1,
                    to: 9,
                    found: 2,
                }),
            ),
            (
                "valid-event-ack",
                msgs(PubSubMessage::EventAck {
                    topic: t,
                    publisher: p,
                    next_seq: 10,
                }),
            ),
            (
                "valid-events",
                msgs(PubSubMessage::Events(vec![
                    self.event.clone(),
                    self.event_first.clone(),
                ])),
            ),
            ("events-too-many", with_u64(&events_empty, 8, 257)),
            ("event-truncated", truncated(&event, event.len() - 1)),
            (
                "event-flipped-body",
                flipped(&event, event.len() - 64 - 1, 4),
            ),
            ("unknown-version", with_byte(&event, 0, 2)),
            ("unknown-tag", with_byte(&event, 4, 200)),
            // Event: version 4, tag 4, topic 32, publisher 32, seq 8, then the deps count.
            ("event-too-many-deps", with_u64(&event, 80, 17)),
            ("subscribe-ack-bad-bool", with_byte(&ack, 40, 2)),
            ("subscribe-ack-too-many-positions", with_u64(&ack, 41, 65)),
            // Subscribe: version 4, tag 4, topic 32, then the publishers count.
            (
                "subscribe-too-many-publishers",
                with_u64(
                    &msgs(PubSubMessage::Subscribe {
                        topic: t,
                        publishers: vec![p],
                    }),
                    40,
                    65,
                ),
            ),
        ]
    }
}

fn hello(known: Option<u64>) -> Hello {
    Hello {
        min_version: control::VERSION_MIN,
        max_version: control::VERSION_MAX,
        instance: 0x1234_5678_9abc_def0,
        advert_version: 1_700_000_000_000,
        known_advert_version: known,
    }
}
