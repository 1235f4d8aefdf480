//! The domain-routing protocol's messages: the bodies of `Protocol::DOMAIN_ROUTING` messages
//! between DomainRouting engines (docs/wire.md §12D).
//!
//! A body is `u32 version (1) || u32 tag || fields`, in the crate's one bincode configuration.
//! A [`DomainRequest`] is not signed as a whole: every hop sends it in its own signed
//! `EngineMessage`, and each receiver checks that the last node of the path is the
//! authenticated peer it came from. A [`DomainResponse`] is signed by the answering member's
//! **node key** (context [`RESPONSE_CONTEXT`]) over every other field, path included, so no
//! node on the way back can change the answer, the path or who answered.
//!
//! Every length is checked against its limit before anything is allocated: the path against
//! [`MAX_PATH`], bodies against [`MAX_BODY`], refusal texts against [`MAX_REASON`], the
//! domain's advert against [`MAX_ADVERT`].

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use crate::identity::{CheckedKey, DomainIdentity, Keypair, NodeIdentity, Signature};
use crate::wire::{
    decode_bytes, decode_exact, decode_list, decode_text, encode_bytes, encode_list, encode_text,
    encode_to_vec, unknown_version, NodeAdvert, Protocol, WireError,
};

/// The version of the domain-routing protocol this code speaks.
pub const ROUTING_VERSION: u32 = 1;
/// Domain-separation tag of [`DomainResponse`] signatures.
pub const RESPONSE_CONTEXT: &[u8] = b"netmachine/v2/domain-response\0";
/// Most nodes in a path on the wire (a receiver's own hop limit, at most this, applies too).
pub const MAX_PATH: usize = 64;
/// Longest request or answer body, in bytes (64 KiB).
pub const MAX_BODY: usize = 64 << 10;
/// Longest refusal text in a response, in bytes.
pub const MAX_REASON: usize = 256;
/// Longest domain advert (wire form) a response may carry, in bytes (16 KiB).
pub const MAX_ADVERT: usize = 16 << 10;

/// A request on its way to some member of `domain` (spec notes §9.9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainRequest {
    /// Chosen by `src`; with `src` it identifies the request at every hop.
    pub id: u64,
    /// The node that asks.
    pub src: NodeIdentity,
    /// Its signed advert, so that a member it reaches directly can answer it.
    pub src_advert: Option<NodeAdvert>,
    /// The domain.
    pub domain: DomainIdentity,
    /// The nodes the request went through, `src` first; each hop appends itself before
    /// forwarding, so the last one is the node that sent this copy.
    pub path: Vec<NodeIdentity>,
    /// The protocol the member hands the body to.
    pub protocol: Protocol,
    /// The request.
    pub body: Vec<u8>,
}

/// A member's answer, travelling back along the reversed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainResponse {
    /// The request's id.
    pub id: u64,
    /// The domain.
    pub domain: DomainIdentity,
    /// The node that answered (equal to `member`).
    pub src: NodeIdentity,
    /// The node that asked (the request's `src`).
    pub dst: NodeIdentity,
    /// The request's path with the member appended, reversed: the member first, `dst` last.
    /// Each node forwards the response to the node after itself.
    pub path: Vec<NodeIdentity>,
    /// The member that answered; its node key signs the response.
    pub member: NodeIdentity,
    /// The member's signed advert (so the asker can reach it directly next time).
    pub member_advert: Option<NodeAdvert>,
    /// The answer, or why there is none.
    pub result: Result<Vec<u8>, String>,
    /// The domain's advert in wire form, as the member holds it.
    pub advert: Option<Vec<u8>>,
    /// The member's node key signature over `RESPONSE_CONTEXT` and the other fields.
    pub sig: Signature,
}

/// A message between DomainRouting engines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoutingMessage {
    /// A request (tag 0).
    Request(DomainRequest),
    /// A response (tag 1).
    Response(DomainResponse),
}

fn encode_result<E: Encoder>(r: &Result<Vec<u8>, String>, e: &mut E) -> Result<(), EncodeError> {
    match r {
        Ok(b) => {
            0u32.encode(e)?;
            encode_bytes(b, e)
        }
        Err(t) => {
            1u32.encode(e)?;
            encode_text(t, e)
        }
    }
}

fn decode_result<D: Decoder<Context = ()>>(
    d: &mut D,
) -> Result<Result<Vec<u8>, String>, DecodeError> {
    match u32::decode(d)? {
        0 => Ok(Ok(decode_bytes(d, "body", MAX_BODY)?)),
        1 => Ok(Err(decode_text(d, "reason", MAX_REASON)?)),
        other => Err(bad_tag("result", other)),
    }
}

fn bad_tag(type_name: &'static str, found: u32) -> DecodeError {
    DecodeError::UnexpectedVariant {
        type_name,
        allowed: &bincode::error::AllowedEnumVariants::Range { min: 0, max: 1 },
        found,
    }
}

impl Encode for DomainRequest {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.id.encode(e)?;
        self.src.encode(e)?;
        self.src_advert.encode(e)?;
        self.domain.encode(e)?;
        encode_list(&self.path, e)?;
        self.protocol.encode(e)?;
        encode_bytes(&self.body, e)
    }
}

impl Decode<()> for DomainRequest {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(DomainRequest {
            id: Decode::decode(d)?,
            src: Decode::decode(d)?,
            src_advert: Decode::decode(d)?,
            domain: Decode::decode(d)?,
            path: decode_list(d, "list", MAX_PATH)?,
            protocol: Decode::decode(d)?,
            body: decode_bytes(d, "body", MAX_BODY)?,
        })
    }
}

/// The signed fields of a response, in order.
struct ResponseFields<'a>(&'a DomainResponse);

impl Encode for ResponseFields<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let r = self.0;
        r.id.encode(e)?;
        r.domain.encode(e)?;
        r.src.encode(e)?;
        r.dst.encode(e)?;
        encode_list(&r.path, e)?;
        r.member.encode(e)?;
        r.member_advert.encode(e)?;
        encode_result(&r.result, e)?;
        match &r.advert {
            None => 0u8.encode(e),
            Some(a) => {
                1u8.encode(e)?;
                encode_bytes(a, e)
            }
        }
    }
}

impl Encode for DomainResponse {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        ResponseFields(self).encode(e)?;
        self.sig.encode(e)
    }
}

impl Decode<()> for DomainResponse {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        let id = Decode::decode(d)?;
        let domain = Decode::decode(d)?;
        let src = Decode::decode(d)?;
        let dst = Decode::decode(d)?;
        let path = decode_list(d, "list", MAX_PATH + 1)?;
        let member = Decode::decode(d)?;
        let member_advert = Decode::decode(d)?;
        let result = decode_result(d)?;
        let advert = match u8::decode(d)? {
            0 => None,
            1 => Some(decode_bytes(d, "bytes", MAX_ADVERT)?),
            other => return Err(bad_tag("advert option", u32::from(other))),
        };
        Ok(DomainResponse {
            id,
            domain,
            src,
            dst,
            path,
            member,
            member_advert,
            result,
            advert,
            sig: Decode::decode(d)?,
        })
    }
}

impl DomainResponse {
    /// The bytes the member's signature covers (after the context).
    pub fn signed_fields(&self) -> Vec<u8> {
        encode_to_vec(&ResponseFields(self))
    }

    /// Signs with `key`, the member's node key (which must be `member`'s).
    pub fn sign(mut self, key: &Keypair) -> DomainResponse {
        debug_assert_eq!(key.node_identity(), self.member);
        self.sig = key.sign_with_context(RESPONSE_CONTEXT, &self.signed_fields(), &mut Vec::new());
        self
    }

    /// Whether the signature verifies (strictly) under `member`'s node key.
    pub fn verify(&self) -> bool {
        CheckedKey::parse(&self.member.0).is_ok_and(|k| {
            k.verify_strict(
                RESPONSE_CONTEXT,
                &self.signed_fields(),
                &self.sig,
                &mut Vec::new(),
            )
        })
    }

    /// How many hops the request took to reach the member (1: straight from the asker).
    pub fn hops(&self) -> u32 {
        self.path.len().saturating_sub(1) as u32
    }
}

impl Encode for RoutingMessage {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        ROUTING_VERSION.encode(e)?;
        match self {
            RoutingMessage::Request(r) => {
                0u32.encode(e)?;
                r.encode(e)
            }
            RoutingMessage::Response(r) => {
                1u32.encode(e)?;
                r.encode(e)
            }
        }
    }
}

impl Decode<()> for RoutingMessage {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        let version = u32::decode(d)?;
        if version != ROUTING_VERSION {
            return Err(unknown_version(version));
        }
        match u32::decode(d)? {
            0 => Ok(RoutingMessage::Request(Decode::decode(d)?)),
            1 => Ok(RoutingMessage::Response(Decode::decode(d)?)),
            other => Err(bad_tag("RoutingMessage", other)),
        }
    }
}

impl RoutingMessage {
    /// The message body.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_to_vec(self)
    }

    /// Reads a body made by [`Self::to_bytes`]; lengths over their limits, unknown versions and
    /// tags, and trailing bytes are errors.
    pub fn from_bytes(body: &[u8]) -> Result<RoutingMessage, WireError> {
        decode_exact(body)
    }
}
