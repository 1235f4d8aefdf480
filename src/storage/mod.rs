//! Storage (§5.5): content-addressed blocks, objects split into trees of blocks, convergent
//! encryption, storage receipts, and the block store with quotas and expiry.
//!
//! - [`block`]: [`block::BlockId`], [`block::Block`] and [`block::VerifiedBlock`] (the only
//!   proof that bytes match an id), with the size and shape limits;
//! - [`receipt`]: [`receipt::ChunkCommitment`], a holder's signed promise to keep a block;
//! - [`store`]: the [`store::BlockStore`] trait, [`store::MemStore`] and [`store::RedbStore`].
//!
//! See docs/storage.md ("Blocks, objects and the store") and docs/wire.md §12E.

pub mod block;
pub mod receipt;
pub mod store;
