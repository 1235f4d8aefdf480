//! The node descriptor of the inter-domain gossip (spec notes §9.2): a node's signed advert plus
//! its BLIP-flipped membership Bloom filter, signed together by the node key (context
//! `netmachine/v2/node-descriptor\0`). PeerSampling and Clustering exchange lists of them;
//! `age` and `trust` stay local (the spec's proposal). docs/wire.md §12C gives the bytes.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use super::advert::{NodeAdvert, Signed};
use super::{context, decode_bytes, encode_bytes, too_large};
use crate::identity::{NodeIdentity, Signature};
use crate::time::Timestamp;

/// Most bits in a membership filter (1 KiB of filter).
pub const MAX_FILTER_BITS: u32 = 8192;
/// Most hash functions of a membership filter.
pub const MAX_FILTER_HASHES: u8 = 16;

/// A Bloom filter of domain identities, as sent: `bits` bits (a multiple of 8, at most
/// [`MAX_FILTER_BITS`]) set by `hashes` hash functions, each bit then flipped with the
/// probability that `epsilon_milli` (ε × 1000; 0 = not flipped) gives (see
/// `crate::interdomain::blip`). Bit `i` is bit `i % 8` of byte `i / 8`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MembershipFilter {
    /// Number of bits, `m`.
    pub bits: u32,
    /// Number of hash functions, `k`.
    pub hashes: u8,
    /// The differential-privacy parameter ε the bits were flipped with, × 1000 (0: unflipped).
    pub epsilon_milli: u32,
    /// The bits, `bits / 8` bytes.
    pub bytes: Vec<u8>,
}

impl MembershipFilter {
    /// An empty (all-zero, unflipped) filter of `bits` bits and `hashes` hash functions.
    pub fn empty(bits: u32, hashes: u8) -> MembershipFilter {
        MembershipFilter {
            bits,
            hashes,
            epsilon_milli: 0,
            bytes: vec![0; (bits / 8) as usize],
        }
    }

    /// Whether bit `i` is set (false beyond the end).
    pub fn get(&self, i: u32) -> bool {
        self.bytes
            .get((i / 8) as usize)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    /// Sets bit `i` to `on` (ignored beyond the end).
    pub fn set(&mut self, i: u32, on: bool) {
        if let Some(b) = self.bytes.get_mut((i / 8) as usize) {
            if on {
                *b |= 1 << (i % 8);
            } else {
                *b &= !(1 << (i % 8));
            }
        }
    }

    /// The number of set bits.
    pub fn popcount(&self) -> u32 {
        self.bytes.iter().map(|b| b.count_ones()).sum()
    }
}

impl Encode for MembershipFilter {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.bits.encode(e)?;
        self.hashes.encode(e)?;
        self.epsilon_milli.encode(e)?;
        encode_bytes(&self.bytes, e)
    }
}

impl Decode<()> for MembershipFilter {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        let bits = u32::decode(d)?;
        if bits == 0 || bits % 8 != 0 || bits > MAX_FILTER_BITS {
            return Err(too_large(
                "membership filter bits",
                bits as u64,
                MAX_FILTER_BITS as u64,
            ));
        }
        let hashes = u8::decode(d)?;
        if hashes == 0 || hashes > MAX_FILTER_HASHES {
            return Err(too_large(
                "membership filter hashes",
                hashes as u64,
                MAX_FILTER_HASHES as u64,
            ));
        }
        let epsilon_milli = u32::decode(d)?;
        let bytes = decode_bytes(d, "membership filter", (bits / 8) as usize)?;
        if bytes.len() != (bits / 8) as usize {
            return Err(DecodeError::Other(
                "membership filter length does not match its bits",
            ));
        }
        Ok(MembershipFilter {
            bits,
            hashes,
            epsilon_milli,
            bytes,
        })
    }
}

/// A node's signed advert and membership filter: what the inter-domain gossip exchanges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeDescriptor {
    /// The node's own signed advert (its identity and addresses).
    pub advert: NodeAdvert,
    /// Its flipped membership filter.
    pub filter: MembershipFilter,
    /// Increases whenever the node makes a new filter (a membership change); newer replaces
    /// older.
    pub version: u64,
    /// When this version was made.
    pub created: Timestamp,
    /// The node key's signature over the other fields.
    pub sig: Signature,
}

impl NodeDescriptor {
    /// The node it describes.
    pub fn node(&self) -> NodeIdentity {
        self.advert.id
    }
}

struct DescriptorFields<'a>(&'a NodeDescriptor);

impl Encode for DescriptorFields<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.0.advert.encode(e)?;
        self.0.filter.encode(e)?;
        self.0.version.encode(e)?;
        self.0.created.encode(e)
    }
}

impl Encode for NodeDescriptor {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        DescriptorFields(self).encode(e)?;
        self.sig.encode(e)
    }
}

impl Decode<()> for NodeDescriptor {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(NodeDescriptor {
            advert: Decode::decode(d)?,
            filter: Decode::decode(d)?,
            version: Decode::decode(d)?,
            created: Decode::decode(d)?,
            sig: Decode::decode(d)?,
        })
    }
}

impl Signed for NodeDescriptor {
    const CONTEXT: &'static [u8] = context::NODE_DESCRIPTOR;

    fn signer(&self) -> [u8; 32] {
        self.advert.id.0
    }

    fn signed_fields(&self) -> Vec<u8> {
        crate::wire::encode_to_vec(&DescriptorFields(self))
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
        Some(self.advert.expires)
    }
}
