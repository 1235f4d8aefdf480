//! The Clustering protocol's messages: the bodies of `Protocol::CLUSTERING` messages between
//! the Clustering engines of two nodes (docs/clustering.md, "Wire").
//!
//! A body is `u32 version (1) || u32 tag || fields` in the crate's one bincode configuration
//! (little-endian, fixed-width integers, `u64` list lengths). Every list is bounded on decode
//! by the receiver's limit before anything is allocated, so an oversized message costs only the
//! frame that carried it.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use crate::interdomain::psi::{
    Bytes32, Challenge, Offer, Proof, MAX_WIRE_ELEMENTS, MAX_WIRE_FILTER_BYTES,
};
use crate::wire::{
    decode_bytes, decode_list, encode_bytes, encode_list, unknown_version,
    NodeDescriptor, WireError, CONFIG,
};

/// The version of the Clustering protocol this code speaks.
pub const CLUSTERING_VERSION: u32 = 1;
/// Most descriptors any `Exchange` or `Reply` may carry, whatever the receiver's limit.
pub const MAX_WIRE_DESCRIPTORS: usize = 256;

/// Tag of [`ClusteringMessage::Exchange`].
pub const TAG_EXCHANGE: u32 = 1;
/// Tag of [`ClusteringMessage::Reply`].
pub const TAG_REPLY: u32 = 2;
/// Tag of [`ClusteringMessage::PsiOffer`].
pub const TAG_PSI_OFFER: u32 = 3;
/// Tag of [`ClusteringMessage::PsiChallenge`].
pub const TAG_PSI_CHALLENGE: u32 = 4;
/// Tag of [`ClusteringMessage::PsiProof`].
pub const TAG_PSI_PROOF: u32 = 5;

/// A message between two Clustering engines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusteringMessage {
    /// TAC initiate: the sender's own descriptor first, then the entries of its views closest
    /// to it.
    Exchange {
        /// The descriptors.
        descriptors: Vec<NodeDescriptor>,
    },
    /// TAC respond: the entries of the responder's views (itself included) closest to the
    /// initiator.
    Reply {
        /// The descriptors.
        descriptors: Vec<NodeDescriptor>,
    },
    /// PSI step 0 (initiator → responder).
    PsiOffer {
        /// The session, drawn by the initiator.
        session: u64,
        /// The initiator's descriptor version (its membership version).
        initiator_version: u64,
        /// The responder's descriptor version the initiator knows (must be its current one).
        responder_version: u64,
        /// How many domains the initiator puts in (a set's size is no secret in PSI; the
        /// filter's fill tells it anyway).
        count: u32,
        /// The offer.
        offer: Offer,
    },
    /// PSI step 1 (responder → initiator).
    PsiChallenge {
        /// The session.
        session: u64,
        /// How many domains the responder puts in.
        count: u32,
        /// The challenge.
        challenge: Challenge,
    },
    /// PSI step 2 (initiator → responder).
    PsiProof {
        /// The session.
        session: u64,
        /// The proof.
        proof: Proof,
    },
}

impl ClusteringMessage {
    /// The message's tag on the wire.
    pub fn tag(&self) -> u32 {
        match self {
            ClusteringMessage::Exchange { .. } => TAG_EXCHANGE,
            ClusteringMessage::Reply { .. } => TAG_REPLY,
            ClusteringMessage::PsiOffer { .. } => TAG_PSI_OFFER,
            ClusteringMessage::PsiChallenge { .. } => TAG_PSI_CHALLENGE,
            ClusteringMessage::PsiProof { .. } => TAG_PSI_PROOF,
        }
    }

    /// The message body.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::wire::encode_to_vec(&Body(self))
    }

    /// Reads a body, refusing more than `max_descriptors` descriptors or `max_tags` PSI tags
    /// (and anything over the wire maxima) before allocating them.
    pub fn from_bytes(
        body: &[u8],
        max_descriptors: usize,
        max_tags: usize,
    ) -> Result<ClusteringMessage, WireError> {
        let limits = WireLimits {
            descriptors: max_descriptors.min(MAX_WIRE_DESCRIPTORS),
            tags: max_tags.min(MAX_WIRE_ELEMENTS),
        };
        let (m, used) =
            bincode::decode_from_slice_with_context::<_, BodyDecode, _>(body, CONFIG, limits)?;
        if used != body.len() {
            return Err(WireError::TrailingBytes(body.len() - used));
        }
        Ok(m.0)
    }
}

#[derive(Clone, Copy)]
struct WireLimits {
    descriptors: usize,
    tags: usize,
}

struct Body<'a>(&'a ClusteringMessage);

impl Encode for Body<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let m = self.0;
        CLUSTERING_VERSION.encode(e)?;
        m.tag().encode(e)?;
        match m {
            ClusteringMessage::Exchange { descriptors } | ClusteringMessage::Reply { descriptors } => {
                encode_list(descriptors, e)
            }
            ClusteringMessage::PsiOffer {
                session,
                initiator_version,
                responder_version,
                count,
                offer,
            } => {
                session.encode(e)?;
                initiator_version.encode(e)?;
                responder_version.encode(e)?;
                count.encode(e)?;
                offer.salt.encode(e)?;
                encode_bytes(&offer.filter, e)
            }
            ClusteringMessage::PsiChallenge {
                session,
                count,
                challenge,
            } => {
                session.encode(e)?;
                count.encode(e)?;
                challenge.rrand.encode(e)?;
                challenge.ckey.encode(e)?;
                encode_list(&challenge.cset, e)
            }
            ClusteringMessage::PsiProof { session, proof } => {
                session.encode(e)?;
                proof.irand.encode(e)?;
                encode_list(&proof.rset, e)
            }
        }
    }
}

struct BodyDecode(ClusteringMessage);

impl Decode<WireLimits> for BodyDecode {
    fn decode<D: Decoder<Context = WireLimits>>(d: &mut D) -> Result<Self, DecodeError> {
        let limits = *d.context();
        let version = u32::decode(d)?;
        if version != CLUSTERING_VERSION {
            return Err(unknown_version(version));
        }
        let tag = u32::decode(d)?;
        let mut d = d.with_context(());
        let d = &mut d;
        let m = match tag {
            TAG_EXCHANGE => ClusteringMessage::Exchange {
                descriptors: decode_list(d, "list", limits.descriptors)?,
            },
            TAG_REPLY => ClusteringMessage::Reply {
                descriptors: decode_list(d, "list", limits.descriptors)?,
            },
            TAG_PSI_OFFER => ClusteringMessage::PsiOffer {
                session: u64::decode(d)?,
                initiator_version: u64::decode(d)?,
                responder_version: u64::decode(d)?,
                count: u32::decode(d)?,
                offer: Offer {
                    salt: Bytes32::decode(d)?,
                    filter: decode_bytes(d, "bytes", MAX_WIRE_FILTER_BYTES)?,
                },
            },
            TAG_PSI_CHALLENGE => ClusteringMessage::PsiChallenge {
                session: u64::decode(d)?,
                count: u32::decode(d)?,
                challenge: Challenge {
                    rrand: Bytes32::decode(d)?,
                    ckey: Bytes32::decode(d)?,
                    cset: decode_list(d, "list", limits.tags)?,
                },
            },
            TAG_PSI_PROOF => ClusteringMessage::PsiProof {
                session: u64::decode(d)?,
                proof: Proof {
                    irand: Bytes32::decode(d)?,
                    rset: decode_list(d, "list", limits.tags)?,
                },
            },
            other => {
                return Err(DecodeError::UnexpectedVariant {
                    type_name: "ClusteringMessage",
                    allowed: &bincode::error::AllowedEnumVariants::Range { min: 1, max: 5 },
                    found: other,
                })
            }
        };
        Ok(BodyDecode(m))
    }
}

/// Decodes a body with the wire maxima only (for fuzzing and tools).
pub fn decode_any(body: &[u8]) -> Result<ClusteringMessage, WireError> {
    ClusteringMessage::from_bytes(body, MAX_WIRE_DESCRIPTORS, MAX_WIRE_ELEMENTS)
}
