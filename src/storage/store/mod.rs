//! The block store: where a node keeps the blocks it holds, with quotas and expiry.
//!
//! [`BlockStore`] is the one interface; engines receive it as an injected `Arc<dyn BlockStore>`
//! (the agreed exception to "only the wiring layer touches files": the node opens a
//! [`RedbStore`] on disk, the simulator and unit tests use a [`MemStore`]). All methods take
//! `&self` and lock internally, so one store can be shared by the storage engine and the
//! command-line tool's direct reads.
//!
//! Rules common to every implementation:
//! - a `put` that returns `Ok` is acknowledged: for [`RedbStore`] the write is durably committed
//!   (fsync) before `put` returns;
//! - storing a block that is already present never duplicates it; its expiry becomes the later
//!   of the two ([`PutOutcome::Exists`]). The put whose expiry is kept decides the
//!   [`BlockMeta::min_trust`]: a re-put that extends the expiry replaces it, one that does not
//!   leaves it as it was, and [`BlockStore::extend`] never changes it;
//! - a new block that would take the store past [`StoreLimits::max_bytes`] or
//!   [`StoreLimits::max_blocks`] is refused with [`StoreError::Full`]; expired blocks still count
//!   until [`BlockStore::collect_garbage`] removes them (the engine collects, then retries);
//! - [`BlockStore::get`] returns a [`VerifiedBlock`]: [`RedbStore`] re-checks the bytes against
//!   the id on every read (disk corruption becomes [`StoreError::Corrupt`], never a wrong block);
//!   [`MemStore`] keeps the `VerifiedBlock` it was given.

mod mem;
mod redb_store;

pub use mem::MemStore;
pub use redb_store::RedbStore;

use std::fmt;

use crate::storage::block::{BlockId, VerifiedBlock};
use crate::time::Timestamp;

/// Default byte quota of a store: 4 GiB of encoded blocks (enough for a 1 GiB object and its
/// tree with room to spare). A [`MemStore`] at this quota may hold that much memory.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;

/// Default block-count quota of a store: 1,000,000 blocks. Bounds the index (about 100 bytes of
/// index per block on disk; a [`MemStore`]'s per-block overhead is about 200 bytes).
pub const DEFAULT_MAX_BLOCKS: u64 = 1_000_000;

/// The quotas of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most bytes of encoded blocks kept (default [`DEFAULT_MAX_BYTES`]).
    pub max_bytes: u64,
    /// Most blocks kept (default [`DEFAULT_MAX_BLOCKS`]).
    pub max_blocks: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_bytes: DEFAULT_MAX_BYTES,
            max_blocks: DEFAULT_MAX_BLOCKS,
        }
    }
}

/// What the store keeps about a block besides its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockMeta {
    /// The block may be removed once this time has passed.
    pub expires: Timestamp,
    /// The least identity-store trust a third party needs to be served this block
    /// (`StoragePrefs::min_trust` of the put that stored it; 0 = everyone). Kept by the store,
    /// enforced by the engine.
    pub min_trust: u8,
}

impl BlockMeta {
    /// Metadata for a block served to everyone (`min_trust` 0) until `expires`.
    pub fn public(expires: Timestamp) -> BlockMeta {
        BlockMeta {
            expires,
            min_trust: 0,
        }
    }
}

/// What a successful `put` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The block is new and now stored (and, for a durable store, committed).
    Stored,
    /// The block was already present; `extended` says whether its expiry moved later.
    Exists {
        /// Whether the stored expiry was moved to the new, later one.
        extended: bool,
    },
}

/// A snapshot of a store's occupancy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreStatus {
    /// Blocks held.
    pub blocks: u64,
    /// Bytes of encoded blocks held.
    pub bytes: u64,
    /// The byte quota.
    pub max_bytes: u64,
    /// The block quota.
    pub max_blocks: u64,
    /// The earliest expiry among the held blocks, if any.
    pub next_expiry: Option<Timestamp>,
}

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// Storing the block would exceed a quota.
    Full {
        /// Bytes held.
        bytes: u64,
        /// The byte quota.
        max_bytes: u64,
        /// Blocks held.
        blocks: u64,
        /// The block quota.
        max_blocks: u64,
    },
    /// The underlying database failed (disk error, cannot open, ...).
    Io(String),
    /// Stored data does not check out (bytes that do not hash to their id, a bad index entry).
    Corrupt(String),
}

/// Formats a byte count with a binary unit: `1.0 GiB`, `512.0 KiB`, `17 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Full {
                bytes,
                max_bytes,
                blocks,
                max_blocks,
            } => write!(
                f,
                "store full: {} of {} used, {blocks} of {max_blocks} blocks",
                human_bytes(*bytes),
                human_bytes(*max_bytes)
            ),
            StoreError::Io(e) => write!(f, "store I/O error: {e}"),
            StoreError::Corrupt(e) => write!(f, "store corrupt: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A place to keep verified blocks, with quotas and expiry. See the module documentation for
/// the rules every implementation follows.
pub trait BlockStore: Send + Sync {
    /// Stores `block` with `meta`, or extends the expiry of the copy already held (taking
    /// `meta.min_trust` too when it does extend it). `Ok` means acknowledged (durable for a
    /// disk store).
    fn put(&self, block: &VerifiedBlock, meta: BlockMeta) -> Result<PutOutcome, StoreError>;

    /// Stores every block of `blocks` with `meta` as [`BlockStore::put`] would, acknowledged
    /// together (one commit for a disk store); how many were new. If the new blocks would pass
    /// a quota, nothing is stored ([`StoreError::Full`]). The default puts them one by one.
    fn put_many(&self, blocks: &[VerifiedBlock], meta: BlockMeta) -> Result<usize, StoreError> {
        let mut new = 0;
        for b in blocks {
            if self.put(b, meta)? == PutOutcome::Stored {
                new += 1;
            }
        }
        Ok(new)
    }

    /// As [`BlockStore::put_many`], but not made durable before it returns: what is stored is
    /// visible at once and becomes durable with the next [`BlockStore::sync`] (or any durable
    /// write); a crash before that may lose it — never the store's consistency, nor a block
    /// stored durably before. For blocks that can be fetched again (a fetch's), where one fsync
    /// per block would bound the rate by the disk's. The default is `put_many`.
    fn put_many_unsynced(
        &self,
        blocks: &[VerifiedBlock],
        meta: BlockMeta,
    ) -> Result<usize, StoreError> {
        self.put_many(blocks, meta)
    }

    /// Makes every write so far durable (a no-op for a store that is always durable).
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The block with id `id`, if held (expired blocks not yet collected are still returned).
    fn get(&self, id: &BlockId) -> Result<Option<VerifiedBlock>, StoreError>;

    /// Whether the block is held.
    fn contains(&self, id: &BlockId) -> Result<bool, StoreError>;

    /// The block's metadata, if held.
    fn meta(&self, id: &BlockId) -> Result<Option<BlockMeta>, StoreError>;

    /// Moves the block's expiry to `until` if that is later (its `min_trust` stays). Returns
    /// the resulting metadata, or `None` if the block is not held.
    fn extend(&self, id: &BlockId, until: Timestamp) -> Result<Option<BlockMeta>, StoreError>;

    /// Removes the block; returns whether it was held.
    fn remove(&self, id: &BlockId) -> Result<bool, StoreError>;

    /// Removes up to `max` blocks whose expiry is at or before `now`, earliest first; returns
    /// how many were removed. An I/O error stops the collection (it is logged) and the count
    /// so far is returned.
    fn collect_garbage(&self, now: Timestamp, max: usize) -> usize;

    /// Up to `max` held block ids in id order, starting after `after` (for paging through the
    /// store: status listings, invariant checks).
    fn ids(&self, after: Option<BlockId>, max: usize) -> Result<Vec<BlockId>, StoreError>;

    /// Occupancy and quotas.
    fn status(&self) -> StoreStatus;
}

#[cfg(test)]
pub(crate) mod tests;
