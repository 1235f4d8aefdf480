//! The storage protocol's messages: the bodies of `Protocol::STORAGE` messages between Storage
//! engines (docs/wire.md §12F).
//!
//! A body is `u32 version (1) || u32 tag || fields`, in the crate's one bincode configuration.
//! Every message travels in its own signed `EngineMessage`, so the receiver knows which node
//! sent it; what a message carries beyond that is checked by content: a block against its id
//! ([`crate::storage::block::VerifiedBlock::check`]), a receipt against its holder's key
//! ([`ChunkCommitment::check`]). A search's path is checked hop by hop: its last node must be
//! the authenticated peer the copy came from.
//!
//! Every length is checked against its limit before anything is allocated: block bytes against
//! [`MAX_ENCODED_BLOCK`], paths against [`MAX_PATH`], commitment lists against
//! [`MAX_HOLDERS`], refusal texts against [`MAX_REASON`].

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use crate::identity::{DomainIdentity, NodeIdentity, TopicIdentity};
use crate::storage::block::{BlockId, MAX_ENCODED_BLOCK};
use crate::storage::receipt::ChunkCommitment;
use crate::time::Timestamp;
use crate::wire::{
    decode_bytes, decode_exact, decode_list, decode_text, encode_bytes, encode_list, encode_text,
    encode_to_vec, unknown_version, NodeAdvert, WireError,
};

/// The version of the storage protocol this code speaks.
pub const STORAGE_VERSION: u32 = 1;
/// Most nodes in a search's path on the wire (a receiver's own hop limit applies too).
pub const MAX_PATH: usize = 255;
/// Most commitments in one [`GetAnswer::Holders`].
pub const MAX_HOLDERS: usize = 16;
/// Longest refusal text, in bytes.
pub const MAX_REASON: usize = 256;

/// Why a request was refused, as a code a program can act on (the text says more).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub enum Refusal {
    /// The requester's trust is below what the block (or the put policy) asks for.
    Trust,
    /// The store is full, or the requester's share of it is used up.
    Full,
    /// The node does not accept puts from other nodes.
    NotAccepted,
    /// The requester sends more than the node's rate allows.
    Rate,
    /// The request itself is wrong: bytes that are not a valid block, a time in the past.
    Invalid,
    /// The node's store failed.
    Failed,
}

impl Refusal {
    /// A short name, for logs and counters.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Trust => "trust",
            Refusal::Full => "full",
            Refusal::NotAccepted => "not_accepted",
            Refusal::Rate => "rate",
            Refusal::Invalid => "invalid",
            Refusal::Failed => "failed",
        }
    }
}

/// The answer to a [`StorageMessage::Get`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetAnswer {
    /// The block's encoded bytes (tag 0); the receiver checks them against the id.
    Block(Vec<u8>),
    /// The node does not hold the block but knows holders' receipts for it (tag 1), most
    /// recently successful first.
    Holders(Vec<ChunkCommitment>),
    /// Neither the block nor a holder is known here (tag 2).
    NotFound,
    /// The node holds the block but will not serve it to this requester (tag 3).
    Refused(Refusal, String),
}

/// Where a search goes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum SearchScope {
    /// `BlockSearchTopic` (tag 0): up the topic's dissemination tree, towards its publishers.
    Topic(TopicIdentity),
    /// `BlockSearchRandom` (tag 1): a random walk, kept among the members of `domain` when one
    /// is given, else among the nodes connected to each hop.
    Random(Option<DomainIdentity>),
}

/// A search for a block (`BlockSearchTopic` / `BlockSearchRandom`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search {
    /// Chosen by the origin (`path[0]`); with it, identifies the search at every hop.
    pub search: u64,
    /// The block.
    pub id: BlockId,
    /// How the search moves on.
    pub scope: SearchScope,
    /// Hops still allowed after this one (0: a node that does not hold the block drops it).
    pub ttl: u8,
    /// The nodes the search went through, the origin first; each hop appends itself before
    /// forwarding, so the last one is the node that sent this copy.
    pub path: Vec<NodeIdentity>,
}

/// A search's result, travelling back along the reversed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The search's id.
    pub search: u64,
    /// The node that searched (the search path's first node).
    pub origin: NodeIdentity,
    /// The block.
    pub id: BlockId,
    /// The node that held it (from its store or its cache).
    pub holder: NodeIdentity,
    /// The holder's signed advert, so that the origin can reach it directly (a fetch asks it
    /// for the object's other blocks).
    pub holder_advert: Option<NodeAdvert>,
    /// The search's path with the holder appended, reversed: the holder first, the origin last.
    /// Each node forwards the result to the node after itself.
    pub path: Vec<NodeIdentity>,
    /// The block's `StoragePrefs.min_trust` at the holder: nodes on the way that cache the
    /// block serve it only to nodes with at least this trust.
    pub min_trust: u8,
    /// The block's encoded bytes; every hop checks them against `id` before caching or
    /// forwarding.
    pub bytes: Vec<u8>,
}

/// A message between Storage engines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageMessage {
    /// `BlockGet` (tag 0): send me this block. With `holders`, a node that does not hold it may
    /// answer with holders' receipts instead.
    Get {
        /// The block.
        id: BlockId,
        /// Whether receipts of other holders are a welcome answer.
        holders: bool,
    },
    /// The answer to a `Get` (tag 1), a reply to its message.
    GetReply {
        /// The block asked for.
        id: BlockId,
        /// The answer.
        answer: GetAnswer,
    },
    /// `BlockPut` (tag 2): please keep this block until `until` (`StoragePrefs.expiry`), and
    /// serve it only to nodes with at least `min_trust`.
    Put {
        /// The block's encoded bytes.
        bytes: Vec<u8>,
        /// How long the sender asks it be kept.
        until: Timestamp,
        /// `StoragePrefs.min_trust`: the least trust a third party needs to be served it.
        min_trust: u8,
    },
    /// Keep a block already stored here longer (tag 3), before it runs out.
    Extend {
        /// The block.
        id: BlockId,
        /// The new expiry asked for.
        until: Timestamp,
    },
    /// The answer to a `Put` or `Extend` (tag 4), a reply to its message: the signed receipt
    /// (its `until` may be earlier than asked: the holder's policy caps it), or why not.
    PutReply {
        /// The block.
        id: BlockId,
        /// The receipt, or the refusal.
        result: Result<ChunkCommitment, (Refusal, String)>,
    },
    /// A search (tag 5).
    Search(Search),
    /// A search's result (tag 6).
    Found(Found),
}

fn bad_tag(type_name: &'static str, found: u32, max: u32) -> DecodeError {
    DecodeError::OtherString(format!("{type_name}: tag {found} (known: 0..={max})"))
}

fn encode_refusal<E: Encoder>(r: &Refusal, text: &str, e: &mut E) -> Result<(), EncodeError> {
    r.encode(e)?;
    encode_text(text, e)
}

fn decode_refusal<D: Decoder<Context = ()>>(d: &mut D) -> Result<(Refusal, String), DecodeError> {
    Ok((Decode::decode(d)?, decode_text(d, "reason", MAX_REASON)?))
}

impl Encode for GetAnswer {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        match self {
            GetAnswer::Block(b) => {
                0u32.encode(e)?;
                encode_bytes(b, e)
            }
            GetAnswer::Holders(h) => {
                1u32.encode(e)?;
                encode_list(h, e)
            }
            GetAnswer::NotFound => 2u32.encode(e),
            GetAnswer::Refused(r, t) => {
                3u32.encode(e)?;
                encode_refusal(r, t, e)
            }
        }
    }
}

impl Decode<()> for GetAnswer {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        match u32::decode(d)? {
            0 => Ok(GetAnswer::Block(decode_bytes(
                d,
                "block",
                MAX_ENCODED_BLOCK,
            )?)),
            1 => Ok(GetAnswer::Holders(decode_list(d, "holders", MAX_HOLDERS)?)),
            2 => Ok(GetAnswer::NotFound),
            3 => {
                let (r, t) = decode_refusal(d)?;
                Ok(GetAnswer::Refused(r, t))
            }
            other => Err(bad_tag("GetAnswer", other, 3)),
        }
    }
}

impl Encode for Search {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.search.encode(e)?;
        self.id.encode(e)?;
        self.scope.encode(e)?;
        self.ttl.encode(e)?;
        encode_list(&self.path, e)
    }
}

impl Decode<()> for Search {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(Search {
            search: Decode::decode(d)?,
            id: Decode::decode(d)?,
            scope: Decode::decode(d)?,
            ttl: Decode::decode(d)?,
            path: decode_list(d, "path", MAX_PATH)?,
        })
    }
}

impl Encode for Found {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.search.encode(e)?;
        self.origin.encode(e)?;
        self.id.encode(e)?;
        self.holder.encode(e)?;
        self.holder_advert.encode(e)?;
        encode_list(&self.path, e)?;
        self.min_trust.encode(e)?;
        encode_bytes(&self.bytes, e)
    }
}

impl Decode<()> for Found {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(Found {
            search: Decode::decode(d)?,
            origin: Decode::decode(d)?,
            id: Decode::decode(d)?,
            holder: Decode::decode(d)?,
            holder_advert: Decode::decode(d)?,
            path: decode_list(d, "path", MAX_PATH + 1)?,
            min_trust: Decode::decode(d)?,
            bytes: decode_bytes(d, "block", MAX_ENCODED_BLOCK)?,
        })
    }
}

impl Encode for StorageMessage {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        STORAGE_VERSION.encode(e)?;
        match self {
            StorageMessage::Get { id, holders } => {
                0u32.encode(e)?;
                id.encode(e)?;
                holders.encode(e)
            }
            StorageMessage::GetReply { id, answer } => {
                1u32.encode(e)?;
                id.encode(e)?;
                answer.encode(e)
            }
            StorageMessage::Put {
                bytes,
                until,
                min_trust,
            } => {
                2u32.encode(e)?;
                encode_bytes(bytes, e)?;
                until.encode(e)?;
                min_trust.encode(e)
            }
            StorageMessage::Extend { id, until } => {
                3u32.encode(e)?;
                id.encode(e)?;
                until.encode(e)
            }
            StorageMessage::PutReply { id, result } => {
                4u32.encode(e)?;
                id.encode(e)?;
                match result {
                    Ok(c) => {
                        0u32.encode(e)?;
                        c.encode(e)
                    }
                    Err((r, t)) => {
                        1u32.encode(e)?;
                        encode_refusal(r, t, e)
                    }
                }
            }
            StorageMessage::Search(s) => {
                5u32.encode(e)?;
                s.encode(e)
            }
            StorageMessage::Found(f) => {
                6u32.encode(e)?;
                f.encode(e)
            }
        }
    }
}

impl Decode<()> for StorageMessage {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        let version = u32::decode(d)?;
        if version != STORAGE_VERSION {
            return Err(unknown_version(version));
        }
        match u32::decode(d)? {
            0 => Ok(StorageMessage::Get {
                id: Decode::decode(d)?,
                holders: Decode::decode(d)?,
            }),
            1 => Ok(StorageMessage::GetReply {
                id: Decode::decode(d)?,
                answer: Decode::decode(d)?,
            }),
            2 => Ok(StorageMessage::Put {
                bytes: decode_bytes(d, "block", MAX_ENCODED_BLOCK)?,
                until: Decode::decode(d)?,
                min_trust: Decode::decode(d)?,
            }),
            3 => Ok(StorageMessage::Extend {
                id: Decode::decode(d)?,
                until: Decode::decode(d)?,
            }),
            4 => {
                let id = Decode::decode(d)?;
                let result = match u32::decode(d)? {
                    0 => Ok(Decode::decode(d)?),
                    1 => Err(decode_refusal(d)?),
                    other => return Err(bad_tag("PutResult", other, 1)),
                };
                Ok(StorageMessage::PutReply { id, result })
            }
            5 => Ok(StorageMessage::Search(Decode::decode(d)?)),
            6 => Ok(StorageMessage::Found(Decode::decode(d)?)),
            other => Err(bad_tag("StorageMessage", other, 6)),
        }
    }
}

impl StorageMessage {
    /// The message body.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_to_vec(self)
    }

    /// Reads a body made by [`Self::to_bytes`]; lengths over their limits, unknown versions and
    /// tags, and trailing bytes are errors.
    pub fn from_bytes(body: &[u8]) -> Result<StorageMessage, WireError> {
        decode_exact(body)
    }

    /// A short name of the message kind, for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            StorageMessage::Get { .. } => "get",
            StorageMessage::GetReply { .. } => "get_reply",
            StorageMessage::Put { .. } => "put",
            StorageMessage::Extend { .. } => "extend",
            StorageMessage::PutReply { .. } => "put_reply",
            StorageMessage::Search(_) => "search",
            StorageMessage::Found(_) => "found",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    fn all() -> Vec<StorageMessage> {
        let key = Keypair::from_seed(&[7; 32]);
        let id = BlockId([1; 32]);
        let c = ChunkCommitment::sign(&key, id, Timestamp(5_000));
        let n = NodeIdentity([2; 32]);
        vec![
            StorageMessage::Get { id, holders: true },
            StorageMessage::GetReply {
                id,
                answer: GetAnswer::Block(vec![0, 0, 0, 0, 1]),
            },
            StorageMessage::GetReply {
                id,
                answer: GetAnswer::Holders(vec![c]),
            },
            StorageMessage::GetReply {
                id,
                answer: GetAnswer::NotFound,
            },
            StorageMessage::GetReply {
                id,
                answer: GetAnswer::Refused(Refusal::Trust, "trust 10 below 200".into()),
            },
            StorageMessage::Put {
                bytes: vec![9; 40],
                until: Timestamp(77),
                min_trust: 3,
            },
            StorageMessage::Extend {
                id,
                until: Timestamp(78),
            },
            StorageMessage::PutReply { id, result: Ok(c) },
            StorageMessage::PutReply {
                id,
                result: Err((Refusal::Full, "store full".into())),
            },
            StorageMessage::Search(Search {
                search: 9,
                id,
                scope: SearchScope::Random(Some(DomainIdentity([3; 32]))),
                ttl: 4,
                path: vec![n],
            }),
            StorageMessage::Search(Search {
                search: 9,
                id,
                scope: SearchScope::Topic(TopicIdentity([4; 32])),
                ttl: 0,
                path: vec![n, n],
            }),
            StorageMessage::Found(Found {
                search: 9,
                origin: n,
                id,
                holder: n,
                holder_advert: None,
                path: vec![n],
                min_trust: 200,
                bytes: vec![1, 2, 3],
            }),
        ]
    }

    #[test]
    fn every_message_round_trips_and_truncations_fail() {
        for m in all() {
            let b = m.to_bytes();
            assert_eq!(StorageMessage::from_bytes(&b).unwrap(), m, "{}", m.kind());
            for cut in 0..b.len() {
                assert!(
                    StorageMessage::from_bytes(&b[..cut]).is_err(),
                    "{}",
                    m.kind()
                );
            }
            let mut long = b.clone();
            long.push(0);
            assert!(StorageMessage::from_bytes(&long).is_err());
        }
    }

    #[test]
    fn lengths_over_their_limits_and_unknown_tags_are_refused() {
        let mut v = encode_to_vec(&(STORAGE_VERSION, 2u32));
        // A block length claim one past the limit, with nothing behind it.
        encode_into_len(&mut v, MAX_ENCODED_BLOCK as u64 + 1);
        assert!(StorageMessage::from_bytes(&v).is_err());
        let path = vec![NodeIdentity([1; 32]); MAX_PATH + 1];
        let s = StorageMessage::Search(Search {
            search: 1,
            id: BlockId([0; 32]),
            scope: SearchScope::Random(None),
            ttl: 1,
            path,
        });
        assert!(StorageMessage::from_bytes(&s.to_bytes()).is_err());
        let bad = encode_to_vec(&(STORAGE_VERSION, 7u32));
        assert!(StorageMessage::from_bytes(&bad).is_err());
        let bad = encode_to_vec(&(2u32, 0u32));
        assert!(matches!(
            StorageMessage::from_bytes(&bad),
            Err(WireError::UnknownVersion(2))
        ));
    }

    fn encode_into_len(v: &mut Vec<u8>, n: u64) {
        crate::wire::encode_into(&n, v);
    }
}
