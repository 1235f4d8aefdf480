//! Storage (spec notes §5.5, §8): content-addressed blocks (leaves and tree blocks), objects as
//! Merkle trees of blocks with optional convergent encryption, storage receipts, the block
//! store with quotas and expiry, and the Storage engine with its protocol.
//!
//! - [`block`]: [`block::BlockId`], [`block::Block`] and [`block::VerifiedBlock`] (the only
//!   proof that bytes match an id), with the size and shape limits;
//! - [`crypt`]: convergent encryption of objects, [`crypt::ObjectRef`] (root id and key);
//! - [`receipt`]: [`receipt::ChunkCommitment`], a holder's signed promise to keep a block;
//! - [`store`]: the [`store::BlockStore`] trait, [`store::MemStore`] and [`store::RedbStore`];
//! - [`tree`]: splitting objects into blocks, reading them back, what a fetch still needs;
//! - [`wire`]: the messages between Storage engines (`Protocol::STORAGE`);
//! - [`engine`]: the Storage engine — gets, puts with receipts, searches, fetches.
//!
//! See docs/storage.md and docs/wire.md §12E–§12F.

pub mod block;
pub mod crypt;
pub mod engine;
pub mod receipt;
pub mod store;
pub mod tree;
pub mod wire;
