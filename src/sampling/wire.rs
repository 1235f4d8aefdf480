//! The PeerSampling protocol's messages: the bodies of `Protocol::SAMPLING` messages between
//! the PeerSampling engines of two nodes (docs/sampling.md, "Wire").
//!
//! A body is `u32 version (1) || u32 tag || u64 count || count × NodeDescriptor`, in the
//! crate's one bincode configuration (little-endian, fixed-width integers). The count is read
//! and checked against the receiver's limit before any descriptor is decoded, so an oversized
//! list costs nothing but the frame that carried it. The messages are public so that the
//! simulator can build a hostile engine from them.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use crate::wire::{
    decode_exact, decode_list, encode_list, unknown_version, NodeDescriptor, WireError, CONFIG,
};

/// The version of the PeerSampling protocol this code speaks.
pub const SAMPLING_VERSION: u32 = 1;
/// Most descriptors any message may carry on the wire, whatever the receiver's limit: 64.
pub const MAX_WIRE_DESCRIPTORS: usize = 64;

/// Tag of [`SamplingMessage::Exchange`].
pub const TAG_EXCHANGE: u32 = 1;
/// Tag of [`SamplingMessage::Reply`].
pub const TAG_REPLY: u32 = 2;

/// A message between two PeerSampling engines (§9.3's `PeerSamplingView`, with signed node
/// descriptors instead of bare adverts — §9.2's proposal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SamplingMessage {
    /// The initiator's exchange: its own descriptor first, then a sample of its views.
    Exchange {
        /// The descriptors offered.
        descriptors: Vec<NodeDescriptor>,
    },
    /// The partner's answer: its own descriptor (TAPS) and a sample of its views.
    Reply {
        /// The descriptors offered.
        descriptors: Vec<NodeDescriptor>,
    },
}

impl SamplingMessage {
    /// The message's tag on the wire.
    pub fn tag(&self) -> u32 {
        match self {
            SamplingMessage::Exchange { .. } => TAG_EXCHANGE,
            SamplingMessage::Reply { .. } => TAG_REPLY,
        }
    }

    /// The kind as counters and logs name it.
    pub fn kind(&self) -> &'static str {
        match self {
            SamplingMessage::Exchange { .. } => "exchange",
            SamplingMessage::Reply { .. } => "reply",
        }
    }

    /// The descriptors carried.
    pub fn descriptors(&self) -> &[NodeDescriptor] {
        match self {
            SamplingMessage::Exchange { descriptors } | SamplingMessage::Reply { descriptors } => {
                descriptors
            }
        }
    }

    /// The descriptors carried, by value.
    pub fn into_descriptors(self) -> Vec<NodeDescriptor> {
        match self {
            SamplingMessage::Exchange { descriptors } | SamplingMessage::Reply { descriptors } => {
                descriptors
            }
        }
    }

    /// The message body: `u32 version || u32 tag || descriptor list`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 512 * self.descriptors().len());
        bincode::encode_into_std_write(Body(self), &mut out, CONFIG)
            .expect("encoding into a Vec cannot fail");
        out
    }

    /// Reads a body made by [`Self::to_bytes`], refusing a list of more than `max_descriptors`
    /// (and of more than [`MAX_WIRE_DESCRIPTORS`] whatever `max_descriptors` says) before
    /// decoding any descriptor.
    pub fn from_bytes(body: &[u8], max_descriptors: usize) -> Result<SamplingMessage, WireError> {
        let max = max_descriptors.min(MAX_WIRE_DESCRIPTORS);
        if body.len() >= 16 {
            let mut count = [0u8; 8];
            count.copy_from_slice(&body[8..16]);
            let count = u64::from_le_bytes(count);
            // Only when the header is ours: another version's layout may differ.
            let version = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
            if version == SAMPLING_VERSION && count > max as u64 {
                return Err(WireError::TooLarge {
                    what: "list",
                    len: count,
                    max: max as u64,
                });
            }
        }
        let BodyDecode(msg) = decode_exact(body)?;
        Ok(msg)
    }
}

struct Body<'a>(&'a SamplingMessage);

impl Encode for Body<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        SAMPLING_VERSION.encode(e)?;
        self.0.tag().encode(e)?;
        encode_list(self.0.descriptors(), e)
    }
}

struct BodyDecode(SamplingMessage);

impl Decode<()> for BodyDecode {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        let version = u32::decode(d)?;
        if version != SAMPLING_VERSION {
            return Err(unknown_version(version));
        }
        let tag = u32::decode(d)?;
        if tag != TAG_EXCHANGE && tag != TAG_REPLY {
            return Err(DecodeError::UnexpectedVariant {
                type_name: "SamplingMessage",
                allowed: &bincode::error::AllowedEnumVariants::Range { min: 1, max: 2 },
                found: tag,
            });
        }
        let descriptors = decode_list(d, "list", MAX_WIRE_DESCRIPTORS)?;
        Ok(BodyDecode(if tag == TAG_EXCHANGE {
            SamplingMessage::Exchange { descriptors }
        } else {
            SamplingMessage::Reply { descriptors }
        }))
    }
}
