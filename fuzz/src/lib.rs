//! The checks behind netmachine's fuzz targets, one public function per target.
//!
//! Each function takes arbitrary bytes as a peer could send them, runs them through one family
//! of decoders, and panics only if netmachine misbehaves: a decoder panics, overflows or
//! allocates without bound (libFuzzer reports those on its own), or a value that decoded does
//! not survive a round trip (re-encoded, it must give back exactly the bytes it came from, and
//! decoding those again must give an equal value), or two paths that must agree do not.
//!
//! This file is shared: the `fuzz_targets/*.rs` binaries call these functions under libFuzzer,
//! and the main crate's `tests/fuzz_corpus.rs` includes this very file (`#[path]`) to replay
//! the committed corpus under plain `cargo test`. It must therefore use nothing but `std` and
//! `netmachine`, and must stay formatted and clippy-clean. See docs/fuzzing.md.

use netmachine::identity::{to_hex, CheckedKey, DomainIdentity};
use netmachine::interdomain::blip::{self, BlipParams};
use netmachine::interdomain::descriptor::{check_descriptor, DescriptorError, MAX_CREATED_AHEAD};
use netmachine::pubsub::wire::MAX_BATCH_EVENTS;
use netmachine::pubsub::{Event, PubSubMessage};
use netmachine::storage::block::{Block, BlockId, VerifiedBlock, MAX_ENCODED_BLOCK};
use netmachine::storage::receipt::ChunkCommitment;
use netmachine::storage::wire::{
    GetAnswer, SearchScope, StorageMessage, MAX_HOLDERS, MAX_PATH, MAX_REASON,
};
use netmachine::time::Timestamp;
use netmachine::transport::control::{self, Ack, EngineAdverts, Found, Hello, Lookup, Withdrawn};
use netmachine::transport::frame::{self, FrameDecoder, FrameError, HEADER_BYTES};
use netmachine::wire::advert::{
    DomainAdvert, EngineAdvert, NodeAdvert, Signed, TopicAdvert, TransportAddress,
};
use netmachine::wire::message::{BatchVerifier, Unverified, MIN_BATCH};
use netmachine::wire::{decode_exact, encode_to_vec, MembershipFilter, NodeDescriptor};

/// Bytes in an Ed25519 signature, the last field of every signed encoding.
const SIGNATURE_BYTES: usize = 64;

/// Target `engine_message`: an `EngineMessage` in wire form (`version || fields || signature`),
/// as the Router's ingress decodes it from a message frame or datagram; and the same bytes as
/// bare signed fields, the form a pub/sub event carries (`Unverified::decode_fields`).
///
/// A message that decodes must re-encode to the same bytes; if its claimed source key is valid,
/// its signature is checked three ways that must agree: over the received bytes
/// (`Unverified::verify`), over a re-encoding (`EngineMessage::verify`), and in a batch of
/// [`MIN_BATCH`] copies (`BatchVerifier`).
pub fn engine_message(data: &[u8]) {
    if let Ok(u) = Unverified::decode(data.to_vec()) {
        assert_eq!(u.wire(), data);
        let mut message = u.message().clone();
        message.sig = Some(*u.signature());
        let _ = (message.scope(), message.is_expired(Timestamp(0)));
        let wire = message
            .to_wire()
            .expect("a message with a signature has a wire form");
        assert_eq!(wire, data, "a decoded message re-encodes to other bytes");
        let again = Unverified::decode(wire).expect("a re-encoded message decodes");
        assert_eq!(again.message(), u.message());
        assert_eq!(again.signature(), u.signature());

        if let Ok(key) = CheckedKey::parse(u.message().src.as_bytes()) {
            let mut scratch = Vec::new();
            let by_wire = u.verify(&key, &mut scratch);
            let by_value = Unverified::decode(message.to_wire().expect("signed"))
                .expect("a re-encoded message decodes")
                .verify(&key, &mut scratch);
            assert_eq!(
                by_wire.is_ok(),
                by_value.is_ok(),
                "the received bytes and their re-encoding verify differently"
            );
            if let Ok(verified) = &by_wire {
                assert_eq!(**verified, message);
            }

            let items = (0..MIN_BATCH)
                .map(|_| {
                    let u = Unverified::decode(data.to_vec()).expect("decoded once already");
                    (u, key.clone())
                })
                .collect();
            let mut outcomes = Vec::new();
            BatchVerifier::new().verify(items, &mut outcomes);
            assert_eq!(outcomes.len(), MIN_BATCH);
            for outcome in outcomes {
                assert_eq!(
                    outcome.is_ok(),
                    by_wire.is_ok(),
                    "a batch and a single check disagree"
                );
            }
        }
    }
    message_fields(data);
}

/// The signed fields of a message alone (the body of a pub/sub event).
fn message_fields(data: &[u8]) {
    if let Ok(message) = Unverified::decode_fields(data) {
        assert!(message.sig.is_none());
        let mut bytes = Vec::new();
        message.encode_signed_fields(&mut bytes);
        assert_eq!(bytes, data, "decoded fields re-encode to other bytes");
        let again = Unverified::decode_fields(&bytes).expect("re-encoded fields decode");
        assert_eq!(again, message);
    }
}

/// Frame limits the `frames` target picks from (by the input's first byte): tiny ones so the
/// too-large path is reached often, and the transport's own (64 KiB control, 16 MiB default).
pub const FRAME_LIMITS: [usize; 8] = [0, 1, 5, 64, 300, 4096, 64 << 10, 16 << 20];

/// Target `frames`: the stream framing (`u32 length || u8 type || payload`) of control and
/// message streams.
///
/// Input: byte 0 picks the frame limit, bytes 1 and 2 are two chunk sizes used alternately
/// (0 pushes an empty slice), the rest is the stream. The stream is pushed in those chunks, as
/// QUIC hands it over, stopping at the first error as the transport does. Checks: every frame is
/// within the limit; chunked and one-shot decoding agree on frames and outcome; the frames,
/// re-encoded with `frame::encode`, are exactly the stream's prefix that was consumed, and decode
/// again to the same frames; what is left over is a partial frame or the oversized header.
pub fn frames(data: &[u8]) {
    let [limit, size_a, size_b, stream @ ..] = data else {
        return;
    };
    let max = FRAME_LIMITS[*limit as usize % FRAME_LIMITS.len()];
    let sizes = [*size_a as usize, *size_b as usize];

    let mut decoder = FrameDecoder::new(max);
    let mut got: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut result = Ok(());
    let mut rest = stream;
    let mut turn = 0;
    while !rest.is_empty() {
        let mut n = sizes[turn % 2].min(rest.len());
        if sizes == [0, 0] {
            n = rest.len();
        }
        let (chunk, tail) = rest.split_at(n);
        result = decoder.push(chunk, |kind, payload| got.push((kind, payload)));
        if result.is_err() {
            break;
        }
        rest = tail;
        turn += 1;
    }

    for (_, payload) in &got {
        assert!(
            payload.len() <= max,
            "a frame of {} bytes passed a limit of {max}",
            payload.len()
        );
    }

    let mut whole = FrameDecoder::new(max);
    let mut got_whole = Vec::new();
    let result_whole = whole.push(stream, |kind, payload| got_whole.push((kind, payload)));
    assert_eq!(got, got_whole, "chunked and one-shot decoding disagree");
    assert_eq!(result, result_whole);
    assert_eq!(decoder.at_boundary(), whole.at_boundary());

    let mut encoded = Vec::new();
    for (kind, payload) in &got {
        frame::encode(*kind, payload, &mut encoded);
    }
    assert!(
        stream.starts_with(&encoded),
        "re-encoded frames are not what was consumed"
    );
    let left = &stream[encoded.len()..];
    let announced = |header: &[u8]| u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    match result {
        Ok(()) if decoder.at_boundary() => assert!(left.is_empty()),
        Ok(()) => {
            assert!(!left.is_empty());
            if left.len() >= HEADER_BYTES {
                let len = announced(left) as usize;
                assert!(len <= max && left.len() < HEADER_BYTES + len);
            }
        }
        Err(FrameError::TooLarge { len, max: m }) => {
            assert_eq!(m, max);
            assert!(left.len() >= HEADER_BYTES);
            assert_eq!(u64::from(announced(left)), len);
            assert!(len > max as u64);
        }
        Err(FrameError::Truncated) => panic!("push reported Truncated"),
    }

    let mut again = FrameDecoder::new(max);
    let mut got_again = Vec::new();
    again
        .push(&encoded, |kind, payload| got_again.push((kind, payload)))
        .expect("re-encoded frames decode");
    assert!(again.at_boundary());
    assert_eq!(got_again, got);
}

/// Decodes `$data` as the control payload `$t`; a value that decodes must round-trip. Evaluates
/// to the value, if any.
macro_rules! round_trip {
    ($t:ty, $data:expr) => {{
        let data: &[u8] = $data;
        control::decode::<$t>(data).ok().map(|value| {
            let bytes = control::encode(&value);
            assert_eq!(
                bytes,
                data,
                "a decoded {} re-encodes to other bytes",
                stringify!($t)
            );
            assert_eq!(control::decode::<$t>(&bytes).as_ref(), Ok(&value));
            value
        })
    }};
}

/// Target `control`: the payloads of control-stream frames: `Hello`, `Ack` and the identity
/// exchange's (`EngineAdverts`, `Withdrawn`, `Lookup`, `Found`).
///
/// A value that decodes must re-encode to the same bytes and decode to an equal value; version
/// negotiation between a decoded Hello and this node's must be symmetric and pick a version in
/// both ranges.
pub fn control(data: &[u8]) {
    if let Ok(hello) = control::decode::<Hello>(data) {
        let bytes = control::encode(&hello);
        assert_eq!(bytes, data, "a decoded Hello re-encodes to other bytes");
        assert_eq!(control::decode::<Hello>(&bytes), Ok(hello));
        let ours = Hello {
            min_version: control::VERSION_MIN,
            max_version: control::VERSION_MAX,
            instance: 1,
            advert_version: 1,
            known_advert_version: None,
        };
        let v = hello.negotiate(&ours);
        assert_eq!(v, ours.negotiate(&hello), "negotiation is not symmetric");
        if let Some(v) = v {
            assert!((hello.min_version..=hello.max_version).contains(&v));
            assert!((ours.min_version..=ours.max_version).contains(&v));
        }
    }
    if let Ok(ack) = control::decode::<Ack>(data) {
        assert!(ack.0.len() <= control::MAX_ACK_ENTRIES);
        let bytes = control::encode(&ack);
        assert_eq!(bytes, data, "a decoded Ack re-encodes to other bytes");
        assert_eq!(control::decode::<Ack>(&bytes), Ok(ack));
    }
    round_trip!(EngineAdverts, data);
    round_trip!(Withdrawn, data);
    round_trip!(Lookup, data);
    if let Some(found) = round_trip!(Found, data) {
        if let Some(a) = found.advert {
            let _ = a.verify();
        }
        if let Some(a) = found.node_advert {
            let _ = a.verify();
        }
    }
}

/// Decodes `$data` as the advert type `$t`; on success checks the round trip and the layout
/// (signed fields, then the signature), runs `Signed::verify`, and evaluates to the advert.
macro_rules! check_advert {
    ($t:ty, $data:expr) => {{
        let data: &[u8] = $data;
        decode_exact::<$t>(data).ok().map(|advert| {
            let bytes = encode_to_vec(&advert);
            assert_eq!(
                bytes,
                data,
                "a decoded {} re-encodes to other bytes",
                stringify!($t)
            );
            let again: $t = decode_exact(&bytes).expect("a re-encoded advert decodes");
            assert_eq!(again, advert);
            let fields = advert.signed_fields();
            assert_eq!(fields.len() + SIGNATURE_BYTES, data.len());
            assert!(data.starts_with(&fields));
            assert_eq!(&data[fields.len()..], &advert.signature().0[..]);
            let _ = advert.freshness();
            let verified = advert.clone().verify();
            if let Ok(v) = &verified {
                assert_eq!(**v, advert);
            }
            (advert, verified.is_ok())
        })
    }};
}

/// Target `adverts`: node, engine, topic and domain adverts in their wire encoding, and a node
/// advert's one-line text form (`nmadvert2:<hex>`, as read from configuration files).
///
/// Each decoded advert must round-trip, and its signature is verified. The text form is tried
/// twice: on the input read as (lossy) UTF-8, and on the input wrapped as `nmadvert2:<hex of
/// input>`, which must be accepted exactly when the binary decode and verification succeed.
pub fn adverts(data: &[u8]) {
    if let Some((advert, verified)) = check_advert!(NodeAdvert, data) {
        for (addr, _weight) in &advert.addrs {
            let socket = addr.socket_addr();
            assert_eq!(TransportAddress::quic(socket), *addr);
            let _ = addr.to_string();
        }
        let line = advert.to_line();
        assert_eq!(NodeAdvert::from_line(&line).is_ok(), verified);
    }
    check_advert!(EngineAdvert, data);
    check_advert!(TopicAdvert, data);
    check_advert!(DomainAdvert, data);

    if let Ok(advert) = NodeAdvert::from_line(&String::from_utf8_lossy(data)) {
        let back = NodeAdvert::from_line(&advert.to_line()).expect("a re-encoded line parses");
        assert_eq!(*back, *advert);
    }
    let binary_ok = decode_exact::<NodeAdvert>(data)
        .ok()
        .is_some_and(|a| a.verify().is_ok());
    let line = format!("nmadvert2:{}", to_hex(data));
    assert_eq!(NodeAdvert::from_line(&line).is_ok(), binary_ok);
}

/// Target `pubsub`: bodies of `Protocol::PUBSUB` messages between PubSub engines.
///
/// A message that decodes must round-trip. For an event (alone or in a batch), its id is
/// computed (and must survive the round trip), its signature is verified under the claimed publisher if that key is valid,
/// and its body goes through the message-fields decoder the PubSub engine applies to it; an
/// advert's signature is verified.
pub fn pubsub(data: &[u8]) {
    let Ok(msg) = PubSubMessage::from_bytes(data) else {
        return;
    };
    let bytes = msg.to_bytes();
    assert_eq!(
        bytes, data,
        "a decoded pub/sub message re-encodes to other bytes"
    );
    let again = PubSubMessage::from_bytes(&bytes).expect("a re-encoded message decodes");
    assert_eq!(again, msg);
    assert_eq!(again.topic(), msg.topic());
    match (&msg, &again) {
        (PubSubMessage::Event(ev), PubSubMessage::Event(ev_again)) => event(ev, ev_again),
        (PubSubMessage::Events(evs), PubSubMessage::Events(evs_again)) => {
            assert!(evs.len() <= MAX_BATCH_EVENTS);
            for (ev, ev_again) in evs.iter().zip(evs_again) {
                event(ev, ev_again);
            }
        }
        (PubSubMessage::Advert { advert, .. }, _) => {
            let _ = advert.clone().verify();
        }
        (PubSubMessage::Withdraw(w), _) => {
            if let Ok(key) = CheckedKey::parse(w.publisher.as_bytes()) {
                let _ = w.verify(&key);
            }
        }
        _ => {}
    }
}

/// One decoded event (`ev`) and its decoding after a round trip (`ev_again`).
fn event(ev: &Event, ev_again: &Event) {
    assert_eq!(ev.id(), ev_again.id());
    if let Ok(key) = CheckedKey::parse(ev.publisher.as_bytes()) {
        assert_eq!(
            ev.clone().verify(&key).is_ok(),
            ev_again.clone().verify(&key).is_ok()
        );
    }
    message_fields(&ev.body);
}

/// Target `descriptor`: a `NodeDescriptor` (docs/wire.md §12C), as PeerSampling and Clustering
/// engines decode them from exchanges, and a bare `MembershipFilter`.
///
/// Each must round-trip; a decoded filter has `bits / 8` bytes, and the BLIP functions give
/// finite scores in [0, 1] on it. A decoded descriptor's encoding is its signed fields then its
/// signature, and `check_descriptor` (at the descriptor's own `created`, with the filter's own
/// parameters) accepts it exactly when the rules it stands for hold one by one: advert not
/// expired, advert signature and descriptor signature valid. Other parameters are always
/// refused as `WrongParams`.
pub fn descriptor(data: &[u8]) {
    if let Ok(filter) = decode_exact::<MembershipFilter>(data) {
        assert_eq!(
            encode_to_vec(&filter),
            data,
            "a filter re-encodes to other bytes"
        );
        check_filter(&filter);
    }
    let Ok(d) = decode_exact::<NodeDescriptor>(data) else {
        return;
    };
    let bytes = encode_to_vec(&d);
    assert_eq!(bytes, data, "a descriptor re-encodes to other bytes");
    let again: NodeDescriptor = decode_exact(&bytes).expect("a re-encoded descriptor decodes");
    assert_eq!(again, d);
    let fields = d.signed_fields();
    assert_eq!(fields.len() + SIGNATURE_BYTES, data.len());
    assert!(data.starts_with(&fields));
    assert_eq!(&data[fields.len()..], &d.signature().0[..]);
    check_filter(&d.filter);

    let params = BlipParams {
        bits: d.filter.bits,
        hashes: d.filter.hashes,
        ..BlipParams::default()
    };
    let now = d.created;
    let expected = !d.advert.expired(now)
        && d.created <= now.after(MAX_CREATED_AHEAD)
        && d.advert.clone().verify().is_ok()
        && d.clone().verify().is_ok();
    let checked = check_descriptor(d.clone(), now, &params);
    assert_eq!(
        checked.is_ok(),
        expected,
        "check_descriptor and its rules disagree"
    );
    if let Ok(v) = &checked {
        assert_eq!(**v, d);
    }
    let other = BlipParams {
        bits: if d.filter.bits == 1024 { 2048 } else { 1024 },
        ..params
    };
    assert!(matches!(
        check_descriptor(d, now, &other),
        Err(DescriptorError::WrongParams { .. })
    ));
}

/// What every decoded filter must satisfy, and the BLIP functions' ranges on it.
fn check_filter(f: &MembershipFilter) {
    assert!(f.bits > 0 && f.bits % 8 == 0);
    assert_eq!(f.bytes.len(), (f.bits / 8) as usize);
    assert!(f.popcount() <= f.bits);
    let unit = |x: f64, what: &str| assert!((0.0..=1.0).contains(&x), "{what} = {x}");
    unit(blip::similarity(f, f), "similarity");
    unit(blip::cosine(f, f), "cosine");
    unit(blip::noise_floor(f), "noise floor");
    unit(
        blip::domain_score(f, &DomainIdentity([7; 32])),
        "domain score",
    );
    assert!(blip::popcount_estimate(f).is_finite());
    assert!(blip::overlap_estimate(f, f).is_finite());
}

/// Target `storage_message`: bodies of `Protocol::STORAGE` messages between Storage engines
/// (docs/wire.md §12F).
///
/// A message that decodes must re-encode to the same bytes and decode to an equal value, and
/// respect every limit (block bytes, path lengths, receipts per answer, refusal texts). What a
/// receiver then checks must not panic and must be consistent: block bytes are checked
/// against the id they come with (a `Put` against their own hash, which must pass exactly when
/// the bytes are a valid block, and re-encode to themselves), and receipts are checked at a
/// time before and after their `until`.
pub fn storage_message(data: &[u8]) {
    let Ok(msg) = StorageMessage::from_bytes(data) else {
        return;
    };
    let bytes = msg.to_bytes();
    assert_eq!(
        bytes, data,
        "a decoded storage message re-encodes to other bytes"
    );
    let again = StorageMessage::from_bytes(&bytes).expect("a re-encoded message decodes");
    assert_eq!(again, msg);
    assert!(!msg.kind().is_empty());
    let reason = |text: &str| assert!(text.len() <= MAX_REASON, "a refusal text over its limit");
    match &msg {
        StorageMessage::Get { .. } | StorageMessage::Extend { .. } => {}
        StorageMessage::GetReply { id, answer } => match answer {
            GetAnswer::Block(b) => block_against(*id, b),
            GetAnswer::Holders(h) => {
                assert!(h.len() <= MAX_HOLDERS);
                h.iter().for_each(receipt);
            }
            GetAnswer::NotFound => {}
            GetAnswer::Refused(r, text) => {
                assert!(!r.label().is_empty());
                reason(text);
            }
        },
        StorageMessage::Put { bytes, .. } => {
            // A put names no id: the receiver checks the bytes against their own hash, so only
            // the decoding can fail.
            let own = BlockId::of(bytes);
            block_against(own, bytes);
            assert_eq!(
                VerifiedBlock::check(own, bytes).is_ok(),
                Block::decode(bytes).is_ok()
            );
        }
        StorageMessage::PutReply { result, .. } => match result {
            Ok(c) => receipt(c),
            Err((r, text)) => {
                assert!(!r.label().is_empty());
                reason(text);
            }
        },
        StorageMessage::Search(s) => {
            assert!(s.path.len() <= MAX_PATH);
            if let SearchScope::Random(Some(d)) = s.scope {
                assert_eq!(d.0.len(), 32);
            }
        }
        StorageMessage::Found(f) => {
            assert!(f.path.len() <= MAX_PATH + 1);
            block_against(f.id, &f.bytes);
            if let Some(a) = &f.holder_advert {
                // What the origin's identity store checks before it keeps the holder's advert.
                let _ = a.clone().verify();
            }
        }
    }
}

/// Block bytes as a receiver checks them against `id`: within the limit, and accepted exactly
/// when they hash to `id` and decode (then the block re-encodes to them).
fn block_against(id: BlockId, bytes: &[u8]) {
    assert!(bytes.len() <= MAX_ENCODED_BLOCK);
    let expected = BlockId::of(bytes) == id && Block::decode(bytes).is_ok();
    let checked = VerifiedBlock::check(id, bytes);
    assert_eq!(
        checked.is_ok(),
        expected,
        "VerifiedBlock::check and its rules disagree"
    );
    if let Ok(v) = checked {
        assert_eq!(v.id(), id);
        assert_eq!(v.block().encode(), bytes, "a block with two encodings");
    }
}

/// A receipt as a receiver checks it: never valid at or after its `until`; before it, valid
/// exactly when the signature verifies under the node it names (the same answer at any time
/// before `until`).
fn receipt(c: &ChunkCommitment) {
    assert!(c.check(c.until).is_err(), "a receipt valid at its own end");
    assert!(c.check(Timestamp(c.until.0.saturating_add(1))).is_err());
    if c.until.0 > 0 {
        let early = c.check(Timestamp(0)).is_ok();
        let late = c.check(Timestamp(c.until.0 - 1)).is_ok();
        assert_eq!(
            early, late,
            "a receipt's signature check depends on the time"
        );
        if let Ok(v) = c.check(Timestamp(0)) {
            assert_eq!((v.block(), v.node(), v.until()), (c.block, c.node, c.until));
        }
    }
}

/// The node a `relay_layer` input is sealed to: seed `03` × 32, node C of docs/wire.md §16.17.
pub const RELAY_NODE_SEED: [u8; 32] = [3; 32];
/// The wall-clock time (ms) `relay_layer` opens its input at: §16.17's layers are valid then.
pub const RELAY_NOW_MS: u64 = 1_700_000_000_000;

/// Target `relay_layer`: a `RELAY` frame's payload as the Router of the node it is sealed to
/// takes it: a receipt record (docs/wire.md §12G.5) when it starts with `81`, otherwise a relay
/// layer opened (§12G.3) with `relay::Opener` under node C's key.
///
/// Whatever opens must keep the layer's promises: a forward names another node and carries a
/// layer at least a minimal one and `FORWARD_OVERHEAD` bytes shorter than its own; a delivery's
/// message is shorter than the layer; the expiry lies within the window the opener allows.
/// The same bytes opened again are refused (`relay_replayed`), and every refusal is one of the
/// `relay_*` reasons.
pub fn relay_layer(data: &[u8]) {
    use netmachine::identity::Keypair;
    use netmachine::relay::layer::{FORWARD_OVERHEAD, HEADER_LEN, TAG_LEN};
    use netmachine::relay::receipt::{decode_record, encode_record, is_receipt_record, layer_id};
    use netmachine::relay::{Opened, Opener, OpenerLimits};
    use netmachine::time::Now;
    // A RELAY frame is a receipt record when it starts with the marker: what decodes encodes
    // back to the same bytes, and what does not is `relay_malformed`.
    if is_receipt_record(data) {
        match decode_record(data) {
            Ok(receipts) => assert_eq!(encode_record(&receipts), data, "a record re-encoded"),
            Err(reason) => assert_eq!(reason, netmachine::DropReason::RelayMalformed),
        }
        return;
    }
    let key = Keypair::from_seed(&RELAY_NODE_SEED);
    let limits = OpenerLimits::default();
    let mut opener = Opener::new(&key, limits);
    let now = Now {
        instant: std::time::Instant::now(),
        wall: Timestamp(RELAY_NOW_MS),
    };
    let expiry_ok = |e: Timestamp| e > now.wall && e <= now.wall.after(limits.max_lifetime);
    match opener.open(now, data.to_vec()) {
        Ok(opened) => {
            match &opened {
                Opened::Forward {
                    next,
                    layer,
                    expiry,
                    id,
                    next_id,
                } => {
                    assert_eq!(*id, layer_id(&data[..HEADER_LEN]));
                    assert_eq!(*next_id, layer_id(&layer[..HEADER_LEN]));
                    assert_ne!(*next, key.node_identity(), "a forward to this node");
                    assert!(layer.len() + FORWARD_OVERHEAD <= data.len());
                    assert!(layer.len() >= HEADER_LEN + TAG_LEN);
                    assert!(expiry_ok(*expiry));
                }
                Opened::Deliver {
                    message,
                    expiry,
                    receipt,
                    ..
                } => {
                    assert_eq!(receipt.id, layer_id(&data[..HEADER_LEN]));
                    assert!(message.len() < data.len());
                    assert!(expiry_ok(*expiry));
                }
            }
            assert_eq!(opener.sessions(), 1);
            let again = opener.open(now, data.to_vec());
            assert_eq!(
                again.map(|_| ()),
                Err(netmachine::DropReason::RelayReplayed),
                "a layer opened twice"
            );
        }
        Err(reason) => {
            assert!(reason.label().starts_with("relay_"), "{reason:?}");
            assert_eq!(opener.sessions(), 0, "a refused layer left a session");
        }
    }
}

/// Target `tcp_records`: what a TLS-over-TCP peer sends, after TLS (docs/wire.md §6.1.1).
/// `data[0]` is the size of the pieces the rest arrives in (1 to 256 bytes, as TLS records and
/// TCP reads split it anywhere); the rest is fed to a listener's record layer with small limits,
/// reading every stream and datagram between pieces, as the Transport's core does. Checks: a
/// refused record ends the connection as a violation and nothing more is taken in; what is held
/// unread stays within the limit plus one piece; every stream read returns at most what was
/// asked; the layer's own output (PONGs, STOPs, credit) stays bounded.
pub fn tcp_records(data: &[u8]) {
    use netmachine::transport::tcp_mux::{Ending, Mux, MuxLimits};
    let Some((&piece, rest)) = data.split_first() else {
        return;
    };
    let limits = MuxLimits {
        max_unread_bytes: 64 * 1024,
        max_unsent_bytes: 64 * 1024,
        max_streams: 8,
    };
    let mut mux = Mux::new(false, limits);
    let now = std::time::Instant::now();
    let mut buf = [0u8; 1000];
    let mut held = 0usize;
    for chunk in rest.chunks(piece as usize + 1) {
        if !mux.wants_input() {
            assert!(mux.ending().is_some(), "input refused without an ending");
            break;
        }
        match mux.handle_input(now, chunk) {
            Ok(()) => assert!(
                !matches!(mux.ending(), Some(Ending::Violation(_))),
                "a violation without an error"
            ),
            Err(e) => {
                assert_eq!(mux.ending(), Some(&Ending::Violation(e)));
                assert!(!mux.wants_input());
                break;
            }
        }
        for sid in mux.readable() {
            // Done or Unknown (ended, stopped) end the reads of this stream.
            while let Ok((n, fin)) = mux.stream_recv(sid, &mut buf) {
                assert!(n <= buf.len());
                held += n;
                if fin || n == 0 {
                    break;
                }
            }
        }
        while let Some(n) = mux.dgram_recv(&mut buf) {
            assert!(n <= buf.len());
        }
        assert!(
            mux.pending_output().len() <= limits.max_unsent_bytes + 4096,
            "the layer's own output is unbounded"
        );
    }
    assert!(held <= rest.len(), "read more stream bytes than arrived");
}
