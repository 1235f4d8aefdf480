//! Storage (§5.5), its foundations so far: content-addressed blocks (leaves and tree blocks),
//! objects as trees of blocks, storage receipts, and the block store with quotas and expiry.
//! The Storage engine with its protocol is being built (docs/storage.md says what exists).
//!
//! - [`block`]: [`block::BlockId`], [`block::Block`] and [`block::VerifiedBlock`] (the only
//!   proof that bytes match an id), with the size and shape limits;
//! - [`crypt`]: convergent encryption of objects, [`crypt::ObjectRef`] (root id and key);
//! - [`receipt`]: [`receipt::ChunkCommitment`], a holder's signed promise to keep a block;
//! - [`store`]: the [`store::BlockStore`] trait, [`store::MemStore`] and [`store::RedbStore`];
//! - [`tree`]: splitting objects into blocks, reading them back, what a fetch still needs.
//!
//! See docs/storage.md ("Blocks, objects and the store") and docs/wire.md §12E.

pub mod block;
pub mod crypt;
pub mod engine;
pub mod receipt;
pub mod store;
pub mod tree;
pub mod wire;
