//! The in-memory block store, for the simulator and unit tests.
//!
//! Holds each [`VerifiedBlock`] as given (so `get` does not re-hash) in a map, with an expiry
//! index for garbage collection. Same quota and expiry rules as the disk store. Memory: the
//! encoded bytes of every block plus about 200 bytes per block.

use std::collections::{BTreeMap, BTreeSet};

use parking_lot::Mutex;

use super::{BlockMeta, BlockStore, PutOutcome, StoreError, StoreLimits, StoreStatus};
use crate::storage::block::{BlockId, VerifiedBlock};
use crate::time::Timestamp;

#[derive(Default)]
struct Inner {
    blocks: BTreeMap<BlockId, (VerifiedBlock, BlockMeta)>,
    by_expiry: BTreeSet<(Timestamp, BlockId)>,
    bytes: u64,
}

/// A [`BlockStore`] in memory.
pub struct MemStore {
    limits: StoreLimits,
    inner: Mutex<Inner>,
}

impl MemStore {
    /// An empty store with the given quotas.
    pub fn new(limits: StoreLimits) -> MemStore {
        MemStore {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore::new(StoreLimits::default())
    }
}

impl Inner {
    /// Moves the expiry of `id` to `until` if later, and then its `min_trust` to `min_trust`
    /// when one is given. `None` if not held.
    fn extend(
        &mut self,
        id: &BlockId,
        until: Timestamp,
        min_trust: Option<u8>,
    ) -> Option<(BlockMeta, bool)> {
        let (_, meta) = self.blocks.get_mut(id)?;
        if until <= meta.expires {
            return Some((*meta, false));
        }
        self.by_expiry.remove(&(meta.expires, *id));
        meta.expires = until;
        if let Some(t) = min_trust {
            meta.min_trust = t;
        }
        self.by_expiry.insert((until, *id));
        Some((*meta, true))
    }

    fn remove(&mut self, id: &BlockId) -> bool {
        match self.blocks.remove(id) {
            Some((b, meta)) => {
                self.by_expiry.remove(&(meta.expires, *id));
                self.bytes -= b.len() as u64;
                true
            }
            None => false,
        }
    }
}

impl BlockStore for MemStore {
    fn put(&self, block: &VerifiedBlock, meta: BlockMeta) -> Result<PutOutcome, StoreError> {
        let mut inner = self.inner.lock();
        let id = block.id();
        if let Some((_, extended)) = inner.extend(&id, meta.expires, Some(meta.min_trust)) {
            return Ok(PutOutcome::Exists { extended });
        }
        let len = block.len() as u64;
        let blocks = inner.blocks.len() as u64;
        if inner.bytes + len > self.limits.max_bytes || blocks + 1 > self.limits.max_blocks {
            return Err(StoreError::Full {
                bytes: inner.bytes,
                max_bytes: self.limits.max_bytes,
                blocks,
                max_blocks: self.limits.max_blocks,
            });
        }
        inner.bytes += len;
        inner.by_expiry.insert((meta.expires, id));
        inner.blocks.insert(id, (block.clone(), meta));
        Ok(PutOutcome::Stored)
    }

    fn get(&self, id: &BlockId) -> Result<Option<VerifiedBlock>, StoreError> {
        Ok(self.inner.lock().blocks.get(id).map(|(b, _)| b.clone()))
    }

    fn contains(&self, id: &BlockId) -> Result<bool, StoreError> {
        Ok(self.inner.lock().blocks.contains_key(id))
    }

    fn meta(&self, id: &BlockId) -> Result<Option<BlockMeta>, StoreError> {
        Ok(self.inner.lock().blocks.get(id).map(|(_, m)| *m))
    }

    fn extend(&self, id: &BlockId, until: Timestamp) -> Result<Option<BlockMeta>, StoreError> {
        Ok(self.inner.lock().extend(id, until, None).map(|(m, _)| m))
    }

    fn remove(&self, id: &BlockId) -> Result<bool, StoreError> {
        Ok(self.inner.lock().remove(id))
    }

    fn collect_garbage(&self, now: Timestamp, max: usize) -> usize {
        let mut inner = self.inner.lock();
        let due: Vec<BlockId> = inner
            .by_expiry
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(max)
            .map(|(_, id)| *id)
            .collect();
        for id in &due {
            inner.remove(id);
        }
        due.len()
    }

    fn ids(&self, after: Option<BlockId>, max: usize) -> Result<Vec<BlockId>, StoreError> {
        let inner = self.inner.lock();
        let iter: Box<dyn Iterator<Item = &BlockId>> = match after {
            Some(a) => Box::new(
                inner
                    .blocks
                    .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
                    .map(|(k, _)| k),
            ),
            None => Box::new(inner.blocks.keys()),
        };
        Ok(iter.take(max).copied().collect())
    }

    fn status(&self) -> StoreStatus {
        let inner = self.inner.lock();
        StoreStatus {
            blocks: inner.blocks.len() as u64,
            bytes: inner.bytes,
            max_bytes: self.limits.max_bytes,
            max_blocks: self.limits.max_blocks,
            next_expiry: inner.by_expiry.first().map(|(t, _)| *t),
        }
    }
}
