//! The domain protocol's messages: the bodies of `Protocol::DOMAIN` messages between Domain
//! engines (docs/wire.md §12A).
//!
//! A body is `u32 version (1) || u32 tag || fields`, in the crate's one bincode configuration.
//! Join requests and responses are signed by the requestor's and the approver's **node key**
//! (contexts [`JOIN_REQUEST_CONTEXT`], [`JOIN_RESPONSE_CONTEXT`]); the operations they and
//! [`DomainMessage::Ops`] carry are signed by their authors (see [`super::ops`]).

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use super::ops::Op;
use crate::identity::{CheckedKey, DomainIdentity, Keypair, NodeIdentity, Signature};
use crate::mail::domain::JoinRefusal;
use crate::time::Timestamp;
use crate::wire::{
    decode_bytes, decode_exact, decode_list, decode_text, encode_bytes, encode_list, encode_text,
    encode_to_vec, unknown_version, DomainAdvert, Protocol, WireError,
};

/// The version of the domain protocol this code speaks.
pub const DOMAIN_VERSION: u32 = 1;
/// Domain-separation tag of join request signatures.
pub const JOIN_REQUEST_CONTEXT: &[u8] = b"netmachine/v1/domain-join-request\0";
/// Domain-separation tag of join response signatures.
pub const JOIN_RESPONSE_CONTEXT: &[u8] = b"netmachine/v1/domain-join-response\0";
/// Domain-separation tag of the HMAC a PSK join proof is made with.
pub const PSK_PROOF_CONTEXT: &[u8] = b"netmachine/v1/domain-psk-proof\0";
/// Most operations in one `Ops` message or one accepted join response.
pub const MAX_BATCH_OPS: usize = 256;
/// A sender closes an `Ops` batch once its operations reach this many bytes (256 KiB).
pub const BATCH_OPS_BYTES: usize = 256 << 10;
/// Most authors in one version vector.
pub const MAX_VECTOR_ENTRIES: usize = 4096;
/// Longest external request or response body, in bytes (64 KiB).
pub const MAX_EXT_BODY: usize = 64 << 10;
/// Longest refusal text in an external response, in bytes.
pub const MAX_REASON_BYTES: usize = 256;

/// How a join request proves the requestor may join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinAuth {
    /// No proof (domains with auth `none`, wire tag 0).
    None,
    /// HMAC-SHA256 with the domain's pre-shared key over `PSK_PROOF_CONTEXT || requestor ||
    /// domain || nonce || created` (wire tag 1).
    PskProof([u8; 32]),
    /// The requestor relies on being on the advert's allow-list (wire tag 2).
    AllowList,
}

impl Encode for JoinAuth {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        match self {
            JoinAuth::None => 0u32.encode(e),
            JoinAuth::PskProof(mac) => {
                1u32.encode(e)?;
                mac.encode(e)
            }
            JoinAuth::AllowList => 2u32.encode(e),
        }
    }
}

impl Decode<()> for JoinAuth {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        match u32::decode(d)? {
            0 => Ok(JoinAuth::None),
            1 => Ok(JoinAuth::PskProof(Decode::decode(d)?)),
            2 => Ok(JoinAuth::AllowList),
            other => Err(bad_variant("JoinAuth", 2, other)),
        }
    }
}

/// An undefined tag `found` of `type_name`, whose tags run from 0 to `_max`.
fn bad_variant(type_name: &'static str, _max: u32, found: u32) -> DecodeError {
    DecodeError::UnexpectedVariant {
        type_name,
        allowed: &bincode::error::AllowedEnumVariants::Range { min: 0, max: 6 },
        found,
    }
}

/// A node's signed request to join a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    /// The node asking; the signer.
    pub requestor: NodeIdentity,
    /// The domain.
    pub domain: DomainIdentity,
    /// A fresh random number (replay protection with `created`).
    pub nonce: u64,
    /// When the request was made.
    pub created: Timestamp,
    /// The proof the auth method needs.
    pub auth: JoinAuth,
    /// The requestor's node key signature.
    pub sig: Signature,
}

impl JoinRequest {
    fn signed_fields(&self) -> Vec<u8> {
        encode_to_vec(&(
            self.requestor,
            self.domain,
            self.nonce,
            self.created,
            self.auth,
        ))
    }

    /// The HMAC-SHA256 proof of holding `psk` for a request with these fields.
    pub fn psk_proof(
        psk: &[u8],
        requestor: NodeIdentity,
        domain: DomainIdentity,
        nonce: u64,
        created: Timestamp,
    ) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, psk);
        let mut input = PSK_PROOF_CONTEXT.to_vec();
        input.extend_from_slice(&encode_to_vec(&(requestor, domain, nonce, created)));
        let tag = ring::hmac::sign(&key, &input);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Whether `self.auth` is a PSK proof made with `psk` (constant-time comparison).
    pub fn psk_proof_valid(&self, psk: &[u8]) -> bool {
        let JoinAuth::PskProof(mac) = self.auth else {
            return false;
        };
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, psk);
        let mut input = PSK_PROOF_CONTEXT.to_vec();
        input.extend_from_slice(&encode_to_vec(&(
            self.requestor,
            self.domain,
            self.nonce,
            self.created,
        )));
        ring::hmac::verify(&key, &input, &mac).is_ok()
    }

    /// A request by `key`'s node, signed.
    pub fn new_signed(
        key: &Keypair,
        domain: DomainIdentity,
        nonce: u64,
        created: Timestamp,
        auth: JoinAuth,
    ) -> JoinRequest {
        let mut r = JoinRequest {
            requestor: key.node_identity(),
            domain,
            nonce,
            created,
            auth,
            sig: Signature([0; 64]),
        };
        r.sig = key.sign_with_context(JOIN_REQUEST_CONTEXT, &r.signed_fields(), &mut Vec::new());
        r
    }

    /// Whether the signature verifies (strictly) under the requestor's node key.
    pub fn verify(&self) -> bool {
        CheckedKey::parse(&self.requestor.0).is_ok_and(|k| {
            k.verify_strict(
                JOIN_REQUEST_CONTEXT,
                &self.signed_fields(),
                &self.sig,
                &mut Vec::new(),
            )
        })
    }

    /// The request's id: SHA-256 of its signed encoding.
    pub fn id(&self) -> [u8; 32] {
        let d = ring::digest::digest(&ring::digest::SHA256, &encode_to_vec(self));
        let mut id = [0u8; 32];
        id.copy_from_slice(d.as_ref());
        id
    }
}

impl Encode for JoinRequest {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        (
            self.requestor,
            self.domain,
            self.nonce,
            self.created,
            self.auth,
        )
            .encode(e)?;
        self.sig.encode(e)
    }
}

impl Decode<()> for JoinRequest {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        let (requestor, domain, nonce, created, auth) = Decode::decode(d)?;
        Ok(JoinRequest {
            requestor,
            domain,
            nonce,
            created,
            auth,
            sig: Decode::decode(d)?,
        })
    }
}

/// The outcome a join response carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinOutcome {
    /// Accepted (wire tag 0): the membership holds from `epoch` (the lamport of `op`, the add
    /// operation the approver made); `ops` is a bounded batch of the approver's current
    /// operations (anti-entropy brings the rest).
    Accepted {
        /// The lamport of the add operation.
        epoch: u64,
        /// The add operation.
        op: Box<Op>,
        /// Other operations of the domain (at most [`MAX_BATCH_OPS`]).
        ops: Vec<Op>,
    },
    /// Refused (wire tag 1), with the reason's tag (the order of [`JoinRefusal`]'s variants).
    Refused(JoinRefusal),
}

fn refusal_tag(r: JoinRefusal) -> u32 {
    match r {
        JoinRefusal::WrongKey => 0,
        JoinRefusal::NotOnList => 1,
        JoinRefusal::DomainFull => 2,
        JoinRefusal::BadRequest => 3,
        JoinRefusal::NotApprover => 4,
        JoinRefusal::Expelled => 5,
        JoinRefusal::Timeout => 6,
    }
}

fn refusal_from_tag(t: u32) -> Option<JoinRefusal> {
    Some(match t {
        0 => JoinRefusal::WrongKey,
        1 => JoinRefusal::NotOnList,
        2 => JoinRefusal::DomainFull,
        3 => JoinRefusal::BadRequest,
        4 => JoinRefusal::NotApprover,
        5 => JoinRefusal::Expelled,
        6 => JoinRefusal::Timeout,
        _ => return None,
    })
}

impl Encode for JoinOutcome {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        match self {
            JoinOutcome::Accepted { epoch, op, ops } => {
                0u32.encode(e)?;
                epoch.encode(e)?;
                op.encode(e)?;
                encode_list(ops, e)
            }
            JoinOutcome::Refused(r) => {
                1u32.encode(e)?;
                refusal_tag(*r).encode(e)
            }
        }
    }
}

impl Decode<()> for JoinOutcome {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        match u32::decode(d)? {
            0 => Ok(JoinOutcome::Accepted {
                epoch: Decode::decode(d)?,
                op: Box::new(Decode::decode(d)?),
                ops: decode_list(d, "ops", MAX_BATCH_OPS)?,
            }),
            1 => {
                let t = u32::decode(d)?;
                refusal_from_tag(t)
                    .map(JoinOutcome::Refused)
                    .ok_or_else(|| bad_variant("JoinRefusal", 6, t))
            }
            other => Err(bad_variant("JoinOutcome", 1, other)),
        }
    }
}

/// An approver's signed answer to a join request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResponse {
    /// The member that answered; the signer.
    pub approver: NodeIdentity,
    /// The node that asked.
    pub requestor: NodeIdentity,
    /// The domain.
    pub domain: DomainIdentity,
    /// The id of the request answered ([`JoinRequest::id`]).
    pub request: [u8; 32],
    /// Accepted or refused.
    pub outcome: JoinOutcome,
    /// The approver's node key signature.
    pub sig: Signature,
}

struct JoinResponseFields<'a>(&'a JoinResponse);

impl Encode for JoinResponseFields<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let r = self.0;
        (r.approver, r.requestor, r.domain, r.request).encode(e)?;
        r.outcome.encode(e)
    }
}

impl JoinResponse {
    /// A response by `key`'s node, signed.
    pub fn new_signed(
        key: &Keypair,
        request: &JoinRequest,
        request_id: [u8; 32],
        outcome: JoinOutcome,
    ) -> JoinResponse {
        let mut r = JoinResponse {
            approver: key.node_identity(),
            requestor: request.requestor,
            domain: request.domain,
            request: request_id,
            outcome,
            sig: Signature([0; 64]),
        };
        r.sig = key.sign_with_context(
            JOIN_RESPONSE_CONTEXT,
            &encode_to_vec(&JoinResponseFields(&r)),
            &mut Vec::new(),
        );
        r
    }

    /// Whether the signature verifies (strictly) under the approver's node key.
    pub fn verify(&self) -> bool {
        CheckedKey::parse(&self.approver.0).is_ok_and(|k| {
            k.verify_strict(
                JOIN_RESPONSE_CONTEXT,
                &encode_to_vec(&JoinResponseFields(self)),
                &self.sig,
                &mut Vec::new(),
            )
        })
    }
}

impl Encode for JoinResponse {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        JoinResponseFields(self).encode(e)?;
        self.sig.encode(e)
    }
}

impl Decode<()> for JoinResponse {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        let (approver, requestor, domain, request) = Decode::decode(d)?;
        Ok(JoinResponse {
            approver,
            requestor,
            domain,
            request,
            outcome: Decode::decode(d)?,
            sig: Decode::decode(d)?,
        })
    }
}

/// One author's entry in a version vector: the highest sequence number held, how many of its
/// operations are held, and the XOR of their ids' first 8 bytes (to notice equivocations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct VectorEntry {
    /// The author.
    pub author: NodeIdentity,
    /// The end of the contiguous run of its operations held from sequence number 1 (0: none).
    pub max_seq: u64,
    /// How many of its operations that run holds (equal to `max_seq` from a netmachine peer).
    pub count: u64,
    /// XOR of the run's operations' ids (first 8 bytes, little-endian).
    pub hash: u64,
}

/// A message between Domain engines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainMessage {
    /// Membership operations (tag 0): pushed when new, or sent because the receiver lacks
    /// them (at most [`MAX_BATCH_OPS`], closed at [`BATCH_OPS_BYTES`]).
    Ops {
        /// The domain.
        domain: DomainIdentity,
        /// The operations.
        ops: Vec<Op>,
    },
    /// A summary of the sender's operation set (tag 1): on a mismatch the receiver answers
    /// with its `Vector`.
    Digest {
        /// The domain.
        domain: DomainIdentity,
        /// How many operations the sender holds.
        count: u64,
        /// XOR of their ids.
        hash: [u8; 32],
    },
    /// The sender's version vector (tag 2): the receiver sends the operations the sender
    /// lacks, and, when `reply` is set, its own vector (with `reply` clear).
    Vector {
        /// The domain.
        domain: DomainIdentity,
        /// One entry per author (at most [`MAX_VECTOR_ENTRIES`]).
        entries: Vec<VectorEntry>,
        /// Whether the receiver should answer with its own vector.
        reply: bool,
    },
    /// A join request (tag 3).
    JoinRequest(JoinRequest),
    /// A join response (tag 4).
    JoinResponse(Box<JoinResponse>),
    /// A request from a node (member or not) to a member that accepts external requests (tag
    /// 5).
    ExtRequest {
        /// The asker's id for it.
        id: u64,
        /// The domain.
        domain: DomainIdentity,
        /// The domain protocol the body is for.
        protocol: Protocol,
        /// The request (at most [`MAX_EXT_BODY`]).
        body: Vec<u8>,
    },
    /// The answer to an `ExtRequest` (tag 6), with the member's latest advert of the domain.
    ExtResponse {
        /// The id of the request.
        id: u64,
        /// The domain.
        domain: DomainIdentity,
        /// The answer, or why there is none (at most [`MAX_REASON_BYTES`]).
        result: Result<Vec<u8>, String>,
        /// The member's advert of the domain.
        advert: Option<Box<DomainAdvert>>,
    },
}

impl Encode for DomainMessage {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        DOMAIN_VERSION.encode(e)?;
        match self {
            DomainMessage::Ops { domain, ops } => {
                0u32.encode(e)?;
                domain.encode(e)?;
                encode_list(ops, e)
            }
            DomainMessage::Digest {
                domain,
                count,
                hash,
            } => {
                1u32.encode(e)?;
                (domain, count, hash).encode(e)
            }
            DomainMessage::Vector {
                domain,
                entries,
                reply,
            } => {
                2u32.encode(e)?;
                domain.encode(e)?;
                encode_list(entries, e)?;
                reply.encode(e)
            }
            DomainMessage::JoinRequest(r) => {
                3u32.encode(e)?;
                r.encode(e)
            }
            DomainMessage::JoinResponse(r) => {
                4u32.encode(e)?;
                r.encode(e)
            }
            DomainMessage::ExtRequest {
                id,
                domain,
                protocol,
                body,
            } => {
                5u32.encode(e)?;
                (id, domain, protocol.0).encode(e)?;
                encode_bytes(body, e)
            }
            DomainMessage::ExtResponse {
                id,
                domain,
                result,
                advert,
            } => {
                6u32.encode(e)?;
                (id, domain).encode(e)?;
                match result {
                    Ok(body) => {
                        0u32.encode(e)?;
                        encode_bytes(body, e)?;
                    }
                    Err(why) => {
                        1u32.encode(e)?;
                        encode_text(why, e)?;
                    }
                }
                match advert {
                    None => 0u8.encode(e),
                    Some(a) => {
                        1u8.encode(e)?;
                        a.encode(e)
                    }
                }
            }
        }
    }
}

impl Decode<()> for DomainMessage {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        let version = u32::decode(d)?;
        if version != DOMAIN_VERSION {
            return Err(unknown_version(version));
        }
        Ok(match u32::decode(d)? {
            0 => DomainMessage::Ops {
                domain: Decode::decode(d)?,
                ops: decode_list(d, "ops", MAX_BATCH_OPS)?,
            },
            1 => {
                let (domain, count, hash) = Decode::decode(d)?;
                DomainMessage::Digest {
                    domain,
                    count,
                    hash,
                }
            }
            2 => DomainMessage::Vector {
                domain: Decode::decode(d)?,
                entries: decode_list(d, "vector", MAX_VECTOR_ENTRIES)?,
                reply: Decode::decode(d)?,
            },
            3 => DomainMessage::JoinRequest(Decode::decode(d)?),
            4 => DomainMessage::JoinResponse(Box::new(Decode::decode(d)?)),
            5 => {
                let (id, domain, protocol): (u64, DomainIdentity, u32) = Decode::decode(d)?;
                DomainMessage::ExtRequest {
                    id,
                    domain,
                    protocol: Protocol(protocol),
                    body: decode_bytes(d, "ext body", MAX_EXT_BODY)?,
                }
            }
            6 => {
                let (id, domain) = Decode::decode(d)?;
                let result = match u32::decode(d)? {
                    0 => Ok(decode_bytes(d, "ext body", MAX_EXT_BODY)?),
                    1 => Err(decode_text(d, "reason", MAX_REASON_BYTES)?),
                    other => return Err(bad_variant("Result", 1, other)),
                };
                let advert = match u8::decode(d)? {
                    0 => None,
                    1 => Some(Box::new(Decode::decode(d)?)),
                    other => return Err(bad_variant("Option", 1, other as u32)),
                };
                DomainMessage::ExtResponse {
                    id,
                    domain,
                    result,
                    advert,
                }
            }
            other => return Err(bad_variant("DomainMessage", 6, other)),
        })
    }
}

impl DomainMessage {
    /// The body of a `Protocol::DOMAIN` message.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_to_vec(self)
    }

    /// Reads a body made by [`DomainMessage::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<DomainMessage, WireError> {
        decode_exact(bytes)
    }

    /// The message's kind, as counters and logs name it.
    pub fn kind(&self) -> &'static str {
        match self {
            DomainMessage::Ops { .. } => "ops",
            DomainMessage::Digest { .. } => "digest",
            DomainMessage::Vector { .. } => "vector",
            DomainMessage::JoinRequest(_) => "join_request",
            DomainMessage::JoinResponse(_) => "join_response",
            DomainMessage::ExtRequest { .. } => "ext_request",
            DomainMessage::ExtResponse { .. } => "ext_response",
        }
    }
}

/// The answer to the built-in external request `info` (`Protocol::DOMAIN`, body `info`):
/// `u64 members || u64 advert_version || u64 ops`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DomainInfo {
    /// How many members the answering member's replica holds.
    pub members: u64,
    /// The version of its advert of the domain.
    pub advert_version: u64,
    /// How many membership operations it stores.
    pub ops: u64,
}

impl DomainInfo {
    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_to_vec(self)
    }

    /// Reads [`DomainInfo::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<DomainInfo, WireError> {
        decode_exact(bytes)
    }
}
