//! `EngineMessage`: the unit of communication between engines, its signature, and the only way
//! to obtain a [`Verified`] message.
//!
//! A message that leaves its node is signed by its source engine over
//! `context::ENGINE_MESSAGE || encoding of every field before the body || body length (u64) ||
//! SHA-256(body)`: every field but the signature, with the body represented by its digest. The
//! digest keeps signing and verifying a large body to one SHA-256 pass (about 1.7 GB/s with the
//! CPU's SHA extensions) instead of Ed25519's two SHA-512 passes (about 0.6 GB/s each). The fields
//! include the source engine's node, so a receiver learns the engine → node binding from the
//! message itself.
//! Messages between engines of one node are neither signed nor verified: the mailbox they came
//! from already says who sent them.
//!
//! On the wire a message is `u32 version (1) || signed fields || 64-byte signature`.

use std::ops::{Deref, Range};

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use super::{context, decode_bytes, encode_bytes, unknown_version, WireError};
use crate::identity::{
    CheckedKey, DomainIdentity, EngineIdentity, Keypair, NodeIdentity, Signature, TopicIdentity,
    SIGNATURE_LEN,
};
use crate::time::Timestamp;

/// The wire version of [`EngineMessage`] this code speaks.
pub const MESSAGE_VERSION: u32 = 1;

/// The protocol and version of a message body, so the receiver knows how to read it.
///
/// Values below [`Protocol::APP_BASE`] are reserved for netmachine's own engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct Protocol(pub u32);

impl Protocol {
    /// Ping requests and their echoes (the built-in `ping` engine).
    pub const PING: Protocol = Protocol(1);
    /// Messages between PubSub engines.
    pub const PUBSUB: Protocol = Protocol(2);
    /// Messages between Domain engines (membership, joins, external requests), and local mail
    /// to a node's Domain engine.
    pub const DOMAIN: Protocol = Protocol(3);
    /// Messages between Topology engines (a domain's overlay), and local mail to and from a
    /// node's Topology engine.
    pub const TOPOLOGY: Protocol = Protocol(4);
    /// Messages between PeerSampling engines (TAPS view exchanges), and local mail to a node's
    /// PeerSampling engine.
    pub const SAMPLING: Protocol = Protocol(5);
    /// Messages between Clustering engines (TAC view exchanges and PSI), and local mail to a
    /// node's Clustering engine.
    pub const CLUSTERING: Protocol = Protocol(6);
    /// Messages between DomainRouting engines (`DomainRequest` / `DomainResponse`), local mail
    /// to and from a node's DomainRouting engine, and its built-in `probe` requests.
    pub const DOMAIN_ROUTING: Protocol = Protocol(7);
    /// Messages between Storage engines (block get / put / search, docs/wire.md §12F), and
    /// local mail to and from a node's Storage engine.
    pub const STORAGE: Protocol = Protocol(8);
    /// The first protocol number free for applications.
    pub const APP_BASE: u32 = 0x1_0000;
}

/// A message id: unique per source engine and increasing.
///
/// An engine's first id is the wall clock in nanoseconds when it started, so ids keep increasing
/// across restarts and receivers can reject replays with a sliding window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct MessageId(pub u64);

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Destination {
    /// One engine instance, local or remote (unicast).
    Engine(EngineIdentity),
    /// A node: its Router hands the message to the local engine that serves the message's
    /// [`Protocol`] (for example the `ping` engine for [`Protocol::PING`]).
    Node(NodeIdentity),
    /// Every subscriber of a topic (multicast).
    Topic(TopicIdentity),
    /// Any member of a domain (anycast; v2, not routed by this version).
    Domain(DomainIdentity),
}

impl From<EngineIdentity> for Destination {
    fn from(e: EngineIdentity) -> Self {
        Destination::Engine(e)
    }
}

impl From<NodeIdentity> for Destination {
    fn from(n: NodeIdentity) -> Self {
        Destination::Node(n)
    }
}

impl From<TopicIdentity> for Destination {
    fn from(t: TopicIdentity) -> Self {
        Destination::Topic(t)
    }
}

/// How far a message may travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum RoutingScope {
    /// Never leaves this node.
    Local,
    /// Stays among members of the domain.
    Domain(DomainIdentity),
    /// May go to any node.
    Any,
}

/// Routing preferences of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub struct RoutingPrefs {
    /// How far the message may travel.
    pub scope: RoutingScope,
}

/// Whether messages of one (source, destination) pair must arrive in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Ordering {
    /// In the order sent (one QUIC stream per engine pair).
    Ordered,
    /// In any order (one QUIC stream per message).
    Unordered,
}

/// Whether a message must be delivered despite loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Reliability {
    /// Retransmitted until delivered or expired (QUIC streams).
    Reliable,
    /// Sent once (QUIC DATAGRAM).
    Unreliable,
}

/// How a message is protected on its way. Only `Direct` is implemented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Security {
    /// A direct, encrypted connection to the destination node.
    Direct,
    /// Onion routing over at least this many hops (v2; refused by this version).
    OnionRouting(u8),
    /// A mixnet (v2; refused by this version).
    Mixnet,
}

/// Transport preferences of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub struct TransportPrefs {
    /// Ordering between messages of the same engine pair.
    pub ordering: Ordering,
    /// Delivery guarantee.
    pub reliability: Reliability,
    /// Path protection.
    pub security: Security,
}

impl TransportPrefs {
    /// Reliable, ordered, direct: the default.
    pub const RELIABLE_ORDERED: TransportPrefs = TransportPrefs {
        ordering: Ordering::Ordered,
        reliability: Reliability::Reliable,
        security: Security::Direct,
    };
}

/// A message from one engine to a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineMessage {
    /// The sending engine.
    pub src: EngineIdentity,
    /// The node the sending engine runs on.
    pub src_node: NodeIdentity,
    /// Where the message goes.
    pub dst: Destination,
    /// Unique per source, increasing.
    pub id: MessageId,
    /// The id of the message this one answers.
    pub reply_to: Option<MessageId>,
    /// After this time the message is dropped instead of sent or delivered.
    pub expiry: Option<Timestamp>,
    /// Routing preferences.
    pub rprefs: Option<RoutingPrefs>,
    /// Transport preferences.
    pub tprefs: Option<TransportPrefs>,
    /// What the body is.
    pub protocol: Protocol,
    /// The body, opaque to netmachine.
    pub body: Vec<u8>,
    /// The source engine's signature over all fields above (the body by its SHA-256); `None` on
    /// messages that stay local.
    pub sig: Option<Signature>,
}

impl EngineMessage {
    /// The routing scope, `Any` when unset.
    pub fn scope(&self) -> RoutingScope {
        self.rprefs.map(|p| p.scope).unwrap_or(RoutingScope::Any)
    }

    /// Whether the message's expiry has passed at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expiry.is_some_and(|e| e <= now)
    }

    /// Encodes the signed fields (everything but `sig`).
    pub fn encode_signed_fields(&self, out: &mut Vec<u8>) {
        super::encode_into(&SignedFields(self), out);
    }

    /// The signing input after the context: the encoded fields before the body, the body's
    /// length and its SHA-256.
    pub fn signing_input(&self, out: &mut Vec<u8>) {
        out.clear();
        let mut fields = Vec::with_capacity(160 + self.body.len());
        self.encode_signed_fields(&mut fields);
        digest_input(&fields, self.body.len(), out);
    }

    /// Signs the message with `key` (which must be the source engine's key) and stores the
    /// signature. `scratch` is reused between calls.
    pub fn sign(&mut self, key: &Keypair, scratch: &mut Vec<u8>) {
        let mut input = Vec::with_capacity(200);
        self.signing_input(&mut input);
        self.sig = Some(key.sign_with_context(context::ENGINE_MESSAGE, &input, scratch));
    }

    /// Signs the message and writes its wire form (`version || fields || signature`) to `out`,
    /// encoding the fields once. Returns the signature.
    pub fn sign_into_wire(
        &mut self,
        key: &Keypair,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Signature {
        out.clear();
        out.extend_from_slice(&MESSAGE_VERSION.to_le_bytes());
        self.encode_signed_fields(out);
        let mut input = Vec::with_capacity(200);
        digest_input(&out[4..], self.body.len(), &mut input);
        let sig = key.sign_with_context(context::ENGINE_MESSAGE, &input, scratch);
        out.extend_from_slice(&sig.0);
        self.sig = Some(sig);
        sig
    }

    /// The wire form of a signed message; `None` if it is not signed.
    pub fn to_wire(&self) -> Option<Vec<u8>> {
        let sig = self.sig?;
        let mut out = Vec::with_capacity(200 + self.body.len());
        out.extend_from_slice(&MESSAGE_VERSION.to_le_bytes());
        self.encode_signed_fields(&mut out);
        out.extend_from_slice(&sig.0);
        Some(out)
    }
}

/// The signed part of a message, for encoding.
struct SignedFields<'a>(&'a EngineMessage);

impl Encode for SignedFields<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let m = self.0;
        m.src.encode(e)?;
        m.src_node.encode(e)?;
        m.dst.encode(e)?;
        m.id.encode(e)?;
        m.reply_to.encode(e)?;
        m.expiry.encode(e)?;
        m.rprefs.encode(e)?;
        m.tprefs.encode(e)?;
        m.protocol.encode(e)?;
        encode_bytes(&m.body, e)
    }
}

/// Appends the signing input (after the context) for encoded signed fields `fields` whose body
/// is the last `body_len` bytes: the fields before the body's length prefix, the length, and the
/// SHA-256 of the body.
pub fn digest_input(fields: &[u8], body_len: usize, out: &mut Vec<u8>) {
    let body_start = fields.len() - body_len;
    let prefix_end = body_start - 8;
    out.extend_from_slice(&fields[..prefix_end]);
    out.extend_from_slice(&(body_len as u64).to_le_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &fields[body_start..]);
    out.extend_from_slice(digest.as_ref());
}

/// Decodes the signed fields; the result has `sig: None`.
struct DecodedFields(EngineMessage);

impl Decode<()> for DecodedFields {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(DecodedFields(EngineMessage {
            src: Decode::decode(d)?,
            src_node: Decode::decode(d)?,
            dst: Decode::decode(d)?,
            id: Decode::decode(d)?,
            reply_to: Decode::decode(d)?,
            expiry: Decode::decode(d)?,
            rprefs: Decode::decode(d)?,
            tprefs: Decode::decode(d)?,
            protocol: Decode::decode(d)?,
            body: decode_bytes(d, "body", super::HARD_LIMIT_BYTES)?,
            sig: None,
        }))
    }
}

/// A message decoded from the wire whose signature has not been checked.
///
/// Keeps the received bytes so that the signing input need not be encoded again.
#[derive(Debug)]
pub struct Unverified {
    message: EngineMessage,
    sig: Signature,
    wire: Vec<u8>,
    fields: Range<usize>,
}

impl Unverified {
    /// Decodes the wire form of a message. The signature is not checked.
    pub fn decode(wire: Vec<u8>) -> Result<Unverified, WireError> {
        if wire.len() < 4 {
            return Err(WireError::Truncated);
        }
        let version = u32::from_le_bytes(wire[..4].try_into().expect("4 bytes"));
        if version != MESSAGE_VERSION {
            return Err(WireError::from(unknown_version(version)));
        }
        let rest = &wire[4..];
        if rest.len() < SIGNATURE_LEN {
            return Err(WireError::Truncated);
        }
        let fields_len = rest.len() - SIGNATURE_LEN;
        let DecodedFields(message) = super::decode_exact(&rest[..fields_len])?;
        let sig = Signature(rest[fields_len..].try_into().expect("64 bytes"));
        Ok(Unverified {
            message,
            sig,
            fields: 4..4 + fields_len,
            wire,
        })
    }

    /// Decodes a message's signed fields alone (no version, no signature): the form events carry.
    pub fn decode_fields(bytes: &[u8]) -> Result<EngineMessage, WireError> {
        let DecodedFields(message) = super::decode_exact(bytes)?;
        Ok(message)
    }

    /// The decoded message (its signature unchecked).
    pub fn message(&self) -> &EngineMessage {
        &self.message
    }

    /// The claimed signature.
    pub fn signature(&self) -> &Signature {
        &self.sig
    }

    /// The wire bytes this was decoded from.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Checks the signature alone with `verify_strict` under `key`, which must be the key of the
    /// message's `src`: a key of any other engine fails, whatever the signature. On failure
    /// hands the message back.
    #[allow(clippy::result_large_err)]
    pub fn verify(
        self,
        key: &CheckedKey,
        scratch: &mut Vec<u8>,
    ) -> Result<Verified<EngineMessage>, Unverified> {
        if !key.is_key_of(self.message.src.as_bytes()) {
            return Err(self);
        }
        let mut input = Vec::with_capacity(200);
        self.digest_input(&mut input);
        if key.verify_strict(context::ENGINE_MESSAGE, &input, &self.sig, scratch) {
            Ok(self.into_verified())
        } else {
            Err(self)
        }
    }

    /// Appends the signing input after the context (see [`digest_input`]).
    fn digest_input(&self, out: &mut Vec<u8>) {
        digest_input(
            &self.wire[self.fields.clone()],
            self.message.body.len(),
            out,
        );
    }

    fn into_verified(self) -> Verified<EngineMessage> {
        let mut message = self.message;
        message.sig = Some(self.sig);
        Verified(message)
    }
}

/// A value whose signature has been checked. Only verification produces one.
#[derive(Debug, Clone)]
pub struct Verified<T>(pub(super) T);

impl<T> Verified<T> {
    /// The verified value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Wraps an advert whose signature `advert::Signed::verify` has just checked.
pub(super) fn verified_advert<T: super::advert::Signed>(advert: T) -> Verified<T> {
    Verified(advert)
}

/// Verifies many signatures at once, reusing its buffers between batches.
///
/// A batch is checked with one multi-scalar multiplication (about twice as fast per signature as
/// single checks). If the batch fails, each message is checked alone with `verify_strict` to find
/// the bad ones. Before batching, each signature's `R` must pass
/// [`crate::identity::signature_r_is_acceptable`], so the batch applies the checks
/// `verify_strict` makes on `R`.
#[derive(Default)]
pub struct BatchVerifier {
    arena: Vec<u8>,
    ranges: Vec<Range<usize>>,
    sigs: Vec<ed25519_dalek::Signature>,
    keys: Vec<ed25519_dalek::VerifyingKey>,
    scratch: Vec<u8>,
}

/// The outcome of verifying one message in a batch.
pub type BatchOutcome = Result<Verified<EngineMessage>, Unverified>;

/// The smallest batch worth a multi-scalar multiplication; smaller ones are checked one by one.
pub const MIN_BATCH: usize = 4;

impl BatchVerifier {
    /// A verifier with empty buffers.
    pub fn new() -> BatchVerifier {
        BatchVerifier::default()
    }

    /// Verifies `items` (each with the checked key of its source) and pushes one outcome per item,
    /// in order, onto `out`. An item whose key is not its message's `src` fails (the batch then
    /// falls back to single checks, which refuse it).
    #[allow(clippy::result_large_err)]
    pub fn verify(&mut self, items: Vec<(Unverified, CheckedKey)>, out: &mut Vec<BatchOutcome>) {
        let one_by_one = items.len() < MIN_BATCH
            || crate::stand_in::is_active()
            || items
                .iter()
                .any(|(u, k)| !k.is_key_of(u.message.src.as_bytes()));
        if one_by_one || !self.batch_ok(&items) {
            for (u, key) in items {
                out.push(u.verify(&key, &mut self.scratch));
            }
            return;
        }
        out.extend(items.into_iter().map(|(u, _)| Ok(u.into_verified())));
    }

    /// Whether the whole batch verifies.
    fn batch_ok(&mut self, items: &[(Unverified, CheckedKey)]) -> bool {
        self.arena.clear();
        self.ranges.clear();
        self.sigs.clear();
        self.keys.clear();
        for (u, key) in items {
            if !crate::identity::signature_r_is_acceptable(&u.sig) {
                return false;
            }
            let start = self.arena.len();
            self.arena.extend_from_slice(context::ENGINE_MESSAGE);
            u.digest_input(&mut self.arena);
            self.ranges.push(start..self.arena.len());
            self.sigs.push(u.sig.to_dalek());
            self.keys.push(*key.dalek());
        }
        let messages: Vec<&[u8]> = self.ranges.iter().map(|r| &self.arena[r.clone()]).collect();
        ed25519_dalek::verify_batch(&messages, &self.sigs, &self.keys).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(key: &Keypair, node: &Keypair, id: u64) -> EngineMessage {
        EngineMessage {
            src: key.engine_identity(),
            src_node: node.node_identity(),
            dst: Destination::Engine(EngineIdentity([3; 32])),
            id: MessageId(id),
            reply_to: Some(MessageId(7)),
            expiry: Some(Timestamp(1_700_000_000_000)),
            rprefs: Some(RoutingPrefs {
                scope: RoutingScope::Any,
            }),
            tprefs: Some(TransportPrefs::RELIABLE_ORDERED),
            protocol: Protocol(0x1_0001),
            body: b"hello".to_vec(),
            sig: None,
        }
    }

    #[test]
    fn wire_round_trip_and_verify() {
        let node = Keypair::generate();
        let key = node.derive_engine("e");
        let mut m = sample(&key, &node, 42);
        let mut wire = Vec::new();
        let mut scratch = Vec::new();
        m.sign_into_wire(&key, &mut wire, &mut scratch);
        assert_eq!(m.to_wire().unwrap(), wire);
        let u = Unverified::decode(wire).unwrap();
        assert_eq!(u.message().body, b"hello");
        let checked = CheckedKey::parse(key.engine_identity().as_bytes()).unwrap();
        let v = u.verify(&checked, &mut scratch).unwrap();
        assert_eq!(*v, m);
    }

    #[test]
    fn tampering_anywhere_fails_verification() {
        let node = Keypair::generate();
        let key = node.derive_engine("e");
        let checked = CheckedKey::parse(key.engine_identity().as_bytes()).unwrap();
        let mut m = sample(&key, &node, 1);
        let mut wire = Vec::new();
        let mut scratch = Vec::new();
        m.sign_into_wire(&key, &mut wire, &mut scratch);
        let mut decoded_ok = 0;
        for i in 4..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 0x01;
            if let Ok(u) = Unverified::decode(bad) {
                decoded_ok += 1;
                // The key is fixed (the true source's): any flip must break the signature.
                assert!(
                    u.verify(&checked, &mut scratch).is_err(),
                    "flip at {i} verified"
                );
            }
        }
        assert!(decoded_ok > wire.len() / 2);
    }

    #[test]
    fn batch_finds_the_bad_one() {
        let node = Keypair::generate();
        let mut items = Vec::new();
        let mut scratch = Vec::new();
        for i in 0..16u64 {
            let key = node.derive_engine(&format!("e{i}"));
            let mut m = sample(&key, &node, i);
            let mut wire = Vec::new();
            m.sign_into_wire(&key, &mut wire, &mut scratch);
            if i == 9 {
                let n = wire.len();
                wire[n - 66] ^= 4; // inside the body: still decodes
            }
            let u = Unverified::decode(wire).unwrap();
            let checked = CheckedKey::parse(key.engine_identity().as_bytes()).unwrap();
            items.push((u, checked));
        }
        let mut out = Vec::new();
        BatchVerifier::new().verify(items, &mut out);
        assert_eq!(out.len(), 16);
        for (i, r) in out.iter().enumerate() {
            assert_eq!(r.is_ok(), i != 9, "item {i}");
        }
    }

    #[test]
    fn verification_needs_the_key_of_src() {
        // A message naming `victim` as its source, signed by `forger` with a valid signature:
        // checked under the forger's key (as a careless caller might), it must still fail.
        let node = Keypair::generate();
        let victim = node.derive_engine("victim");
        let forger = node.derive_engine("forger");
        let mut scratch = Vec::new();
        let forger_key = CheckedKey::parse(forger.engine_identity().as_bytes()).unwrap();
        let mut items = Vec::new();
        for i in 0..8u64 {
            let mut m = sample(&victim, &node, i);
            let mut wire = Vec::new();
            m.sign_into_wire(&forger, &mut wire, &mut scratch);
            let u = Unverified::decode(wire.clone()).unwrap();
            assert_eq!(u.message().src, victim.engine_identity());
            assert!(u.verify(&forger_key, &mut scratch).is_err());
            items.push((Unverified::decode(wire).unwrap(), forger_key.clone()));
        }
        // In a batch (which would pass: every signature is valid under the key given) too.
        let mut out = Vec::new();
        BatchVerifier::new().verify(items, &mut out);
        assert_eq!(out.len(), 8);
        assert!(out.iter().all(|o| o.is_err()));
    }

    #[test]
    fn unknown_version_and_truncation_are_errors() {
        assert_eq!(
            Unverified::decode(vec![1, 0]).unwrap_err(),
            WireError::Truncated
        );
        let mut v = vec![2, 0, 0, 0];
        v.extend_from_slice(&[0; 200]);
        assert_eq!(
            Unverified::decode(v).unwrap_err(),
            WireError::UnknownVersion(2)
        );
    }
}
