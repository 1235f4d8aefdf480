//! The vocabulary of storage (spec notes §5.5, §8): local mail between an application (or the
//! command line) and the node's Storage engine (`Protocol::STORAGE`, scope `Local`).
//!
//! * Blocks: [`StorageMail::Put`] (into this node's store, or onto another node, which answers
//!   with a signed receipt), [`StorageMail::Get`] (`BlockLookupRequest`: this node's store and
//!   cache first, then known holders, then the searches [`Lookup`] asks for), answered with
//!   [`StorageMail::PutDone`] / [`StorageMail::GetDone`].
//! * Objects: [`StorageMail::Fetch`] pulls every block of an object's tree into this node's
//!   store, in parallel and from several holders; [`StorageMail::FetchProgress`] reports as it
//!   goes and [`StorageMail::FetchDone`] once, at the end. A fetch asked for again (after a lost
//!   connection or a restart) fetches only the blocks the store still lacks.
//!
//! Every answer is a reply to the asking message. Local mail is encoded like every message body
//! (`u32 version || value`, the crate's bincode configuration; version
//! [`STORAGE_MAIL_VERSION`]) and never leaves the node: the engine acts on it only when the
//! message's origin is [`crate::mail::Origin::Local`].

use bincode::{Decode, Encode};

use crate::identity::{DomainIdentity, NodeIdentity, TopicIdentity};
use crate::time::Timestamp;
use crate::wire::receipt::ChunkCommitment;
use crate::wire::BlockId;
use crate::wire::{decode_exact, encode_to_vec, WireError};

/// The name of the node's Storage engine.
pub const STORAGE_ENGINE_NAME: &str = "storage";
/// Version of [`StorageMail`]'s encoding (distinct from the wire protocol's, so a remote
/// message and local mail cannot be confused).
pub const STORAGE_MAIL_VERSION: u32 = 0x5354_0001;

/// `StoragePrefs` (spec notes §5.5.1): how long a block is to be kept and who may be served it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StoragePrefs {
    /// Keep the block until this time (a remote holder's policy may cap it; its receipt says
    /// what it promises).
    pub expiry: Timestamp,
    /// The least trust (the holder's identity-store trust of the requester, 0..=255) a third
    /// party needs to be served the block; 0 serves everyone.
    pub min_trust: u8,
}

/// Where a get looks besides this node (`BlockLookupRequest`'s `topic`, `random`, `domain`),
/// in this order: `from` and the holders this node knows receipts of, one after another, most
/// recently successful first; then, if none has it, the searches, at once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Lookup {
    /// Nodes to ask directly first (known or likely holders).
    pub from: Vec<NodeIdentity>,
    /// Search up this topic's dissemination tree, towards its publishers (`BlockSearchTopic`).
    pub topic: Option<TopicIdentity>,
    /// Search by random walk (`BlockSearchRandom`).
    pub random: bool,
    /// Keep the random walk among this domain's members.
    pub domain: Option<DomainIdentity>,
}

impl Lookup {
    /// A random walk inside `domain` (or, with `None`, over connected nodes).
    pub fn random(domain: Option<DomainIdentity>) -> Lookup {
        Lookup {
            random: true,
            domain,
            ..Lookup::default()
        }
    }

    /// Ask `nodes` directly, and search nowhere else.
    pub fn from_nodes(nodes: Vec<NodeIdentity>) -> Lookup {
        Lookup {
            from: nodes,
            ..Lookup::default()
        }
    }
}

/// How a block was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct FoundAt {
    /// The node that served it (this node's own for a local hit).
    pub holder: NodeIdentity,
    /// Hops from this node to the holder (0: local; 1: a direct get).
    pub hops: u32,
    /// Whether this node's own cache answered. (A search result names as `holder` the node
    /// that answered it, from its store or from its cache: the wire does not say which.)
    pub cached: bool,
}

/// How far a fetch has got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct FetchProgress {
    /// The object's size, once its root block is held.
    pub size: Option<u64>,
    /// Object bytes (leaf data) fetched by this fetch (blocks already held are not counted).
    pub bytes: u64,
    /// Blocks fetched by this fetch.
    pub blocks: u64,
    /// Blocks requested and not yet answered.
    pub in_flight: u32,
    /// Holders that have served blocks to this fetch.
    pub holders: u32,
    /// Encoded bytes fetched by this fetch (what crossed the network).
    pub fetched_bytes: u64,
}

/// Local mail to and from the Storage engine.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum StorageMail {
    /// Store an encoded block: in this node's store (`node` `None`), or at `node`, whose
    /// Storage engine decides by its policy and answers with a receipt.
    Put {
        /// The block's encoded bytes.
        bytes: Vec<u8>,
        /// Expiry and serving rule.
        prefs: StoragePrefs,
        /// The node to store it at (`None`: here).
        node: Option<NodeIdentity>,
    },
    /// Keep a block longer, here (`node` `None`) or at `node` (answered as a put).
    Extend {
        /// The block.
        id: BlockId,
        /// The new expiry.
        until: Timestamp,
        /// Where.
        node: Option<NodeIdentity>,
    },
    /// The answer to `Put` / `Extend`: the holder's verified receipt (for a remote holder; for
    /// this node's own store, `None`), or why not.
    PutDone {
        /// The block.
        id: BlockId,
        /// The receipt, or the refusal.
        result: Result<Option<ChunkCommitment>, String>,
    },
    /// Get a block (`BlockLookupRequest`).
    Get {
        /// The block.
        id: BlockId,
        /// Where to look besides here.
        lookup: Lookup,
    },
    /// The answer to `Get`: the block's encoded bytes (checked against `id`) and where they
    /// came from, or why there are none.
    GetDone {
        /// The block.
        id: BlockId,
        /// The bytes and their source, or the reason.
        result: Result<(Vec<u8>, FoundAt), String>,
    },
    /// Fetch every block of the object whose root is `root` into this node's store, keeping
    /// them until `until`. Objects larger than `max_size` bytes are refused once the root is
    /// read.
    Fetch {
        /// The object's root block.
        root: BlockId,
        /// Where to look for holders (the root is looked up this way; its holder, `from`, and
        /// holders named by receipts serve the rest).
        lookup: Lookup,
        /// How long the fetched blocks are kept.
        until: Timestamp,
        /// The largest object accepted, in bytes.
        max_size: u64,
    },
    /// A fetch's progress (sent a few times a second while it runs).
    FetchProgress {
        /// The object's root.
        root: BlockId,
        /// How far it got.
        progress: FetchProgress,
    },
    /// A fetch ended: the object's size (every block now held), or why not (the blocks fetched
    /// so far stay in the store, so asking again resumes).
    FetchDone {
        /// The object's root.
        root: BlockId,
        /// The size, or the reason.
        result: Result<u64, String>,
        /// The final progress.
        progress: FetchProgress,
    },
}

impl StorageMail {
    /// The message body: `u32 version || value`.
    pub fn encode(&self) -> Vec<u8> {
        encode_to_vec(&(STORAGE_MAIL_VERSION, self))
    }

    /// Reads a body made by [`Self::encode`].
    pub fn decode(body: &[u8]) -> Result<StorageMail, WireError> {
        let (version, mail): (u32, StorageMail) = decode_exact(body)?;
        if version != STORAGE_MAIL_VERSION {
            return Err(WireError::UnknownVersion(version));
        }
        Ok(mail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_round_trips_and_other_versions_are_refused() {
        let m = StorageMail::Get {
            id: BlockId([1; 32]),
            lookup: Lookup::random(Some(DomainIdentity([2; 32]))),
        };
        assert_eq!(StorageMail::decode(&m.encode()).unwrap(), m);
        let other = encode_to_vec(&(1u32, &m));
        assert!(matches!(
            StorageMail::decode(&other),
            Err(WireError::UnknownVersion(1))
        ));
    }
}
