//! Signed advertisements: what a node, an engine or a topic says about itself.
//!
//! * [`NodeAdvert`] — a node's transport addresses, signed by the node key. Nodes exchange them
//!   in configuration files (as one line of text, see [`NodeAdvert::to_line`]) and when they
//!   connect.
//! * [`EngineAdvert`] — binds an engine to the node it runs on, signed by the engine key; nodes
//!   hand them to their peers when they connect and answer lookups with them (one line of text
//!   too, for configuration files: [`EngineAdvert::to_line`]).
//! * [`TopicAdvert`] — a topic's authorized publishers, tags and domain scope, signed by the topic
//!   key.
//!
//! Each advert has a `version`; a store replaces an advert only with a correctly signed one of a
//! higher version (then, for equal versions, a later `created`). Node and engine adverts (format
//! 2) also carry an `expires` time, after which stores refuse and forget them
//! ([`Signed::expired`]); a node re-signs its own before they expire.

use std::net::SocketAddr;
use std::time::Duration;

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use super::{context, decode_list, decode_text, encode_list, encode_text, WireError};
use crate::identity::{
    from_hex, to_hex, CheckedKey, DomainIdentity, EngineIdentity, Keypair, NodeIdentity, Signature,
    TopicIdentity,
};
use crate::time::Timestamp;

pub use super::address::{
    listen_addresses, IpAddress, TransportAddress, TransportKind, QUIC_WEIGHT, TCP_WEIGHT,
};

/// Most addresses in one node advert.
pub const MAX_ADDRS: usize = 16;
/// Longest node or engine name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Most tags on one topic advert.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in bytes.
pub const MAX_TAG_BYTES: usize = 64;
/// Most authorized publishers on one topic advert.
pub const MAX_PUBLISHERS: usize = 64;
/// How long the adverts a running node signs for itself and its engines stay valid by default:
/// 24 hours. The node re-signs them when half of it has passed.
pub const DEFAULT_ADVERT_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How long the adverts printed for configuration files (`netmachine advert`,
/// [`NodeAdvert::for_listen`]) stay valid: 365 days.
pub const CONFIG_ADVERT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// Behaviour shared by signed adverts.
pub trait Signed: Sized {
    /// The domain-separation tag of this advert's signature.
    const CONTEXT: &'static [u8];
    /// The key that must have signed it.
    fn signer(&self) -> [u8; 32];
    /// The signed fields, encoded.
    fn signed_fields(&self) -> Vec<u8>;
    /// The signature.
    fn signature(&self) -> &Signature;
    /// Sets the signature.
    fn set_signature(&mut self, sig: Signature);
    /// `(version, created)`: a higher pair replaces a lower one.
    fn freshness(&self) -> (u64, Timestamp);
    /// When the advert stops being valid, if it can expire.
    fn expires(&self) -> Option<Timestamp> {
        None
    }

    /// Whether the advert has expired at `now` (an advert is valid until, not at, `expires`).
    fn expired(&self, now: Timestamp) -> bool {
        self.expires().is_some_and(|e| e <= now)
    }

    /// Signs with `key`, which must be the signer's key.
    fn sign(mut self, key: &Keypair) -> Self {
        debug_assert_eq!(key.public(), self.signer());
        let sig = key.sign_with_context(Self::CONTEXT, &self.signed_fields(), &mut Vec::new());
        self.set_signature(sig);
        self
    }

    /// Checks the signature (strictly) against the signer's key.
    fn verify(self) -> Result<super::Verified<Self>, AdvertError> {
        let key = CheckedKey::parse(&self.signer()).map_err(|_| AdvertError::BadKey)?;
        if key.verify_strict(
            Self::CONTEXT,
            &self.signed_fields(),
            self.signature(),
            &mut Vec::new(),
        ) {
            Ok(super::message::verified_advert(self))
        } else {
            Err(AdvertError::BadSignature)
        }
    }
}

/// Why an advert was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdvertError {
    /// It could not be decoded.
    Decode(WireError),
    /// Its signer's key is not a valid, strong Ed25519 key.
    BadKey,
    /// Its signature does not verify.
    BadSignature,
    /// The text form does not start with the expected prefix.
    NotAnAdvert,
    /// The text form is of advert format 1, which has no expiry and is no longer accepted.
    OldFormat,
    /// Its `expires` time has passed.
    Expired,
}

impl std::fmt::Display for AdvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdvertError::Decode(e) => write!(f, "advert does not decode: {e}"),
            AdvertError::BadKey => write!(f, "advert signer is not a valid key"),
            AdvertError::BadSignature => write!(f, "advert signature does not verify"),
            AdvertError::NotAnAdvert => write!(
                f,
                "not an advert line (expected '{ADVERT_LINE_PREFIX}<hex>' or \
                 '{ENGINE_ADVERT_LINE_PREFIX}<hex>')"
            ),
            AdvertError::OldFormat => write!(
                f,
                "an advert of format 1 ('nmadvert1:'), which has no expiry: print a new one \
                 with `netmachine advert`"
            ),
            AdvertError::Expired => write!(f, "advert has expired"),
        }
    }
}

impl std::error::Error for AdvertError {}

/// A node's signed statement of where it can be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAdvert {
    /// The node.
    pub id: NodeIdentity,
    /// Its addresses, each with a preference weight (higher is preferred).
    pub addrs: Vec<(TransportAddress, u8)>,
    /// Increases with every change.
    pub version: u64,
    /// When this version was made.
    pub created: Timestamp,
    /// When it stops being valid.
    pub expires: Timestamp,
    /// A human-readable name, if any.
    pub name: Option<String>,
    /// The node key's signature.
    pub sig: Signature,
}

struct NodeAdvertFields<'a>(&'a NodeAdvert);

impl Encode for NodeAdvertFields<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let a = self.0;
        a.id.encode(e)?;
        encode_list(&a.addrs, e)?;
        a.version.encode(e)?;
        a.created.encode(e)?;
        a.expires.encode(e)?;
        match &a.name {
            None => 0u8.encode(e),
            Some(n) => {
                1u8.encode(e)?;
                encode_text(n, e)
            }
        }
    }
}

impl Encode for NodeAdvert {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        NodeAdvertFields(self).encode(e)?;
        self.sig.encode(e)
    }
}

impl Decode<()> for NodeAdvert {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(NodeAdvert {
            id: Decode::decode(d)?,
            addrs: decode_list(d, "addresses", MAX_ADDRS)?,
            version: Decode::decode(d)?,
            created: Decode::decode(d)?,
            expires: Decode::decode(d)?,
            name: decode_option_text(d, "name", MAX_NAME_BYTES)?,
            sig: Decode::decode(d)?,
        })
    }
}

fn decode_option_text<D: Decoder<Context = ()>>(
    d: &mut D,
    what: &'static str,
    max: usize,
) -> Result<Option<String>, DecodeError> {
    match u8::decode(d)? {
        0 => Ok(None),
        1 => Ok(Some(decode_text(d, what, max)?)),
        other => Err(DecodeError::UnexpectedVariant {
            type_name: "Option",
            allowed: &bincode::error::AllowedEnumVariants::Range { min: 0, max: 1 },
            found: other as u32,
        }),
    }
}

impl Signed for NodeAdvert {
    const CONTEXT: &'static [u8] = context::NODE_ADVERT;

    fn signer(&self) -> [u8; 32] {
        self.id.0
    }

    fn signed_fields(&self) -> Vec<u8> {
        super::encode_to_vec(&NodeAdvertFields(self))
    }

    fn signature(&self) -> &Signature {
        &self.sig
    }

    fn set_signature(&mut self, sig: Signature) {
        self.sig = sig;
    }

    fn freshness(&self) -> (u64, Timestamp) {
        (self.version, self.created)
    }

    fn expires(&self) -> Option<Timestamp> {
        Some(self.expires)
    }
}

/// The prefix of a node advert's one-line text form (advert format 2).
pub const ADVERT_LINE_PREFIX: &str = "nmadvert2:";
/// The prefix of format-1 node advert lines, recognised only to refuse them clearly.
pub const OLD_ADVERT_LINE_PREFIX: &str = "nmadvert1:";
/// The prefix of an engine advert's one-line text form.
pub const ENGINE_ADVERT_LINE_PREFIX: &str = "nmengine2:";

/// The bytes of a one-line advert after `prefix`, or why there are none.
pub(super) fn line_bytes(line: &str, prefix: &str) -> Result<Vec<u8>, AdvertError> {
    let line = line.trim();
    if line.starts_with(OLD_ADVERT_LINE_PREFIX) {
        return Err(AdvertError::OldFormat);
    }
    let hex = line.strip_prefix(prefix).ok_or(AdvertError::NotAnAdvert)?;
    from_hex(hex).ok_or(AdvertError::NotAnAdvert)
}

impl NodeAdvert {
    /// A new advert for `key`'s node, signed, valid until `expires`.
    pub fn new_signed(
        key: &Keypair,
        addrs: Vec<(TransportAddress, u8)>,
        version: u64,
        created: Timestamp,
        expires: Timestamp,
        name: Option<String>,
    ) -> NodeAdvert {
        NodeAdvert {
            id: key.node_identity(),
            addrs,
            version,
            created,
            expires,
            name,
            sig: Signature([0; 64]),
        }
        .sign(key)
    }

    /// The advert of `key`'s node listening on `addrs` (equal weights), signed now and valid
    /// for [`CONFIG_ADVERT_LIFETIME`], with the wall clock in milliseconds as its version, so a
    /// node's later adverts replace earlier ones. This is the advert configuration files carry.
    pub fn for_listen(key: &Keypair, addrs: &[SocketAddr], name: Option<String>) -> NodeAdvert {
        NodeAdvert::for_addresses(key, listen_addresses(addrs, &[]), name)
    }

    /// Like [`NodeAdvert::for_listen`], for any addresses with their weights (see
    /// [`listen_addresses`]).
    pub fn for_addresses(
        key: &Keypair,
        addrs: Vec<(TransportAddress, u8)>,
        name: Option<String>,
    ) -> NodeAdvert {
        let now = crate::time::wall_clock();
        NodeAdvert::new_signed(
            key,
            addrs,
            now.0,
            now,
            now.after(CONFIG_ADVERT_LIFETIME),
            name,
        )
    }

    /// One line of text: `nmadvert2:` then the hex of the advert's wire encoding.
    pub fn to_line(&self) -> String {
        format!(
            "{ADVERT_LINE_PREFIX}{}",
            to_hex(&super::encode_to_vec(self))
        )
    }

    /// Parses and verifies the one-line text form (its expiry is not checked here: that
    /// needs the time, see [`Signed::expired`]).
    pub fn from_line(line: &str) -> Result<super::Verified<NodeAdvert>, AdvertError> {
        let bytes = line_bytes(line, ADVERT_LINE_PREFIX)?;
        let advert: NodeAdvert = super::decode_exact(&bytes).map_err(AdvertError::Decode)?;
        advert.verify()
    }
}

/// An engine's signed statement of the node it runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineAdvert {
    /// The engine.
    pub engine: EngineIdentity,
    /// The node it runs on.
    pub node: NodeIdentity,
    /// Its name on that node.
    pub name: String,
    /// Increases with every change.
    pub version: u64,
    /// When this version was made.
    pub created: Timestamp,
    /// When it stops being valid.
    pub expires: Timestamp,
    /// The engine key's signature.
    pub sig: Signature,
}

struct EngineAdvertFields<'a>(&'a EngineAdvert);

impl Encode for EngineAdvertFields<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let a = self.0;
        a.engine.encode(e)?;
        a.node.encode(e)?;
        encode_text(&a.name, e)?;
        a.version.encode(e)?;
        a.created.encode(e)?;
        a.expires.encode(e)
    }
}

impl Encode for EngineAdvert {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        EngineAdvertFields(self).encode(e)?;
        self.sig.encode(e)
    }
}

impl Decode<()> for EngineAdvert {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(EngineAdvert {
            engine: Decode::decode(d)?,
            node: Decode::decode(d)?,
            name: decode_text(d, "name", MAX_NAME_BYTES)?,
            version: Decode::decode(d)?,
            created: Decode::decode(d)?,
            expires: Decode::decode(d)?,
            sig: Decode::decode(d)?,
        })
    }
}

impl Signed for EngineAdvert {
    const CONTEXT: &'static [u8] = context::ENGINE_ADVERT;

    fn signer(&self) -> [u8; 32] {
        self.engine.0
    }

    fn signed_fields(&self) -> Vec<u8> {
        super::encode_to_vec(&EngineAdvertFields(self))
    }

    fn signature(&self) -> &Signature {
        &self.sig
    }

    fn set_signature(&mut self, sig: Signature) {
        self.sig = sig;
    }

    fn freshness(&self) -> (u64, Timestamp) {
        (self.version, self.created)
    }

    fn expires(&self) -> Option<Timestamp> {
        Some(self.expires)
    }
}

impl EngineAdvert {
    /// A new advert of the engine whose key is `key`, named `name` on `node`, signed, valid
    /// until `expires`.
    pub fn new_signed(
        key: &Keypair,
        node: NodeIdentity,
        name: &str,
        version: u64,
        created: Timestamp,
        expires: Timestamp,
    ) -> EngineAdvert {
        EngineAdvert {
            engine: key.engine_identity(),
            node,
            name: name.to_string(),
            version,
            created,
            expires,
            sig: Signature([0; 64]),
        }
        .sign(key)
    }

    /// One line of text: `nmengine2:` then the hex of the advert's wire encoding.
    pub fn to_line(&self) -> String {
        format!(
            "{ENGINE_ADVERT_LINE_PREFIX}{}",
            to_hex(&super::encode_to_vec(self))
        )
    }

    /// Parses and verifies the one-line text form (expiry unchecked, as for node adverts).
    pub fn from_line(line: &str) -> Result<super::Verified<EngineAdvert>, AdvertError> {
        let bytes = line_bytes(line, ENGINE_ADVERT_LINE_PREFIX)?;
        let advert: EngineAdvert = super::decode_exact(&bytes).map_err(AdvertError::Decode)?;
        advert.verify()
    }
}

/// A topic's signed statement of who may publish to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicAdvert {
    /// The topic.
    pub topic: TopicIdentity,
    /// The PubSub engines allowed to publish events (one per publishing node).
    pub publishers: Vec<EngineIdentity>,
    /// Tags for automatic subscription.
    pub tags: Vec<String>,
    /// Increases with every change.
    pub version: u64,
    /// When this version was made.
    pub created: Timestamp,
    /// The domain the topic is scoped to (`RoutingScope::Domain`), if any: only the domain's
    /// members carry, subscribe to and publish its events, and its advert travels only over
    /// the domain's overlay. `None`: an ordinary topic, open to every node.
    pub scope: Option<DomainIdentity>,
    /// The topic key's signature.
    pub sig: Signature,
}

impl TopicAdvert {
    /// The routing scope the advert gives its topic: `Domain(d)` for a domain-scoped topic,
    /// `Any` otherwise.
    pub fn routing_scope(&self) -> super::RoutingScope {
        match self.scope {
            Some(d) => super::RoutingScope::Domain(d),
            None => super::RoutingScope::Any,
        }
    }
}

struct TopicAdvertFields<'a>(&'a TopicAdvert);

impl Encode for TopicAdvertFields<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let a = self.0;
        a.topic.encode(e)?;
        encode_list(&a.publishers, e)?;
        (a.tags.len() as u64).encode(e)?;
        for t in &a.tags {
            encode_text(t, e)?;
        }
        a.version.encode(e)?;
        a.created.encode(e)?;
        a.scope.encode(e)
    }
}

impl Encode for TopicAdvert {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        TopicAdvertFields(self).encode(e)?;
        self.sig.encode(e)
    }
}

/// A tag on the wire, for decoding lists of tags.
struct Tag(String);

impl Decode<()> for Tag {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(Tag(decode_text(d, "tags", MAX_TAG_BYTES)?))
    }
}

impl Decode<()> for TopicAdvert {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(TopicAdvert {
            topic: Decode::decode(d)?,
            publishers: decode_list(d, "publishers", MAX_PUBLISHERS)?,
            tags: decode_list::<_, Tag>(d, "tags", MAX_TAGS)?
                .into_iter()
                .map(|t| t.0)
                .collect(),
            version: Decode::decode(d)?,
            created: Decode::decode(d)?,
            scope: Decode::decode(d)?,
            sig: Decode::decode(d)?,
        })
    }
}

impl Signed for TopicAdvert {
    const CONTEXT: &'static [u8] = context::TOPIC_ADVERT;

    fn signer(&self) -> [u8; 32] {
        self.topic.0
    }

    fn signed_fields(&self) -> Vec<u8> {
        super::encode_to_vec(&TopicAdvertFields(self))
    }

    fn signature(&self) -> &Signature {
        &self.sig
    }

    fn set_signature(&mut self, sig: Signature) {
        self.sig = sig;
    }

    fn freshness(&self) -> (u64, Timestamp) {
        (self.version, self.created)
    }
}

mod domain;
pub use domain::{
    DomainAdvert, DomainAuth, Introducer, DOMAIN_ADVERT_LINE_PREFIX, MAX_ALLOW_LIST,
    MAX_DOMAIN_NODES, MAX_INTRODUCERS,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn advert(key: &Keypair) -> NodeAdvert {
        NodeAdvert::new_signed(
            key,
            vec![(
                TransportAddress::quic("127.0.0.1:7001".parse().unwrap()),
                100,
            )],
            3,
            Timestamp(1_700_000_000_000),
            Timestamp(1_700_000_600_000),
            Some("a".into()),
        )
    }

    #[test]
    fn node_advert_line_round_trip() {
        let key = Keypair::generate();
        let a = advert(&key);
        let line = a.to_line();
        assert!(line.starts_with(ADVERT_LINE_PREFIX));
        let back = NodeAdvert::from_line(&line).unwrap();
        assert_eq!(*back, a);
        assert_eq!(
            back.addrs[0].0.socket_addr(),
            "127.0.0.1:7001".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn forged_advert_is_refused() {
        let key = Keypair::generate();
        let mut a = advert(&key);
        a.version = 4; // changed after signing
        assert_eq!(a.clone().verify().unwrap_err(), AdvertError::BadSignature);
        let other = Keypair::generate();
        a.id = other.node_identity();
        assert_eq!(a.verify().unwrap_err(), AdvertError::BadSignature);
        assert_eq!(
            NodeAdvert::from_line("hello").unwrap_err(),
            AdvertError::NotAnAdvert
        );
        assert_eq!(
            NodeAdvert::from_line("nmadvert1:00").unwrap_err(),
            AdvertError::OldFormat
        );
    }

    #[test]
    fn adverts_expire_at_their_expiry() {
        let key = Keypair::generate();
        let a = advert(&key);
        assert!(!a.expired(Timestamp(1_700_000_599_999)));
        assert!(a.expired(Timestamp(1_700_000_600_000)));
        let e = EngineAdvert::new_signed(
            &key.derive_engine("x"),
            key.node_identity(),
            "x",
            1,
            Timestamp(10),
            Timestamp(20),
        );
        assert!(!e.expired(Timestamp(19)) && e.expired(Timestamp(20)));
        let line = e.to_line();
        assert!(line.starts_with(ENGINE_ADVERT_LINE_PREFIX));
        assert_eq!(*EngineAdvert::from_line(&line).unwrap(), e);
        assert_eq!(
            NodeAdvert::from_line(&line).unwrap_err(),
            AdvertError::NotAnAdvert
        );
        // Changing the expiry after signing breaks the signature.
        let mut longer = e;
        longer.expires = Timestamp(30);
        assert_eq!(longer.verify().unwrap_err(), AdvertError::BadSignature);
    }

    #[test]
    fn topic_advert_signs_and_limits_lists() {
        let topic = Keypair::generate();
        let t = TopicAdvert {
            topic: topic.topic_identity(),
            publishers: vec![EngineIdentity([1; 32])],
            tags: vec!["blocks".into()],
            version: 1,
            created: Timestamp(5),
            scope: None,
            sig: Signature([0; 64]),
        }
        .sign(&topic);
        let bytes = super::super::encode_to_vec(&t);
        let back: TopicAdvert = super::super::decode_exact(&bytes).unwrap();
        assert_eq!(back, t);
        assert!(back.verify().is_ok());
        // A publisher count over the limit is refused before reading the list.
        let mut forged = bytes.clone();
        forged[32..40].copy_from_slice(&(MAX_PUBLISHERS as u64 + 1).to_le_bytes());
        assert!(matches!(
            super::super::decode_exact::<TopicAdvert>(&forged).unwrap_err(),
            WireError::TooLarge {
                what: "publishers",
                ..
            }
        ));
    }

    #[test]
    fn topic_advert_scope_is_signed() {
        let topic = Keypair::generate();
        let d = DomainIdentity([7; 32]);
        let t = TopicAdvert {
            topic: topic.topic_identity(),
            publishers: vec![EngineIdentity([1; 32])],
            tags: vec![],
            version: 1,
            created: Timestamp(5),
            scope: Some(d),
            sig: Signature([0; 64]),
        }
        .sign(&topic);
        assert_eq!(t.routing_scope(), super::super::RoutingScope::Domain(d));
        let bytes = super::super::encode_to_vec(&t);
        let back: TopicAdvert = super::super::decode_exact(&bytes).unwrap();
        assert_eq!(back.scope, Some(d));
        assert!(back.clone().verify().is_ok());
        // Widening (or moving) the scope after signing breaks the signature.
        for scope in [None, Some(DomainIdentity([8; 32]))] {
            let changed = TopicAdvert {
                scope,
                ..back.clone()
            };
            assert_eq!(changed.verify().unwrap_err(), AdvertError::BadSignature);
        }
    }
}
