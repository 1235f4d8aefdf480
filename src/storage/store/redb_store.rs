//! The disk block store, on redb (design §10).
//!
//! One redb file holds four tables: `blocks` (id → encoded bytes), `meta` (id → (expiry in ms,
//! `min_trust`)),
//! `expiry` ((expiry, id) → (), the garbage-collection index) and `stats` (`"blocks"`,
//! `"bytes"` → totals, updated in the same transaction as every change, so opening a store is
//! O(1) whatever it holds). Every write transaction commits with [`redb::Durability::Immediate`]
//! (fsync) before the call returns: an acknowledged `put` survives a crash. A mutex serialises
//! writers (redb does too) so the quota check and the insert are atomic. Reads re-check every
//! block's bytes against its id ([`VerifiedBlock::check`]); a mismatch is
//! [`StoreError::Corrupt`].

use std::path::Path;

use parking_lot::Mutex;
use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};

use super::{BlockMeta, BlockStore, PutOutcome, StoreError, StoreLimits, StoreStatus};
use crate::storage::block::{BlockId, VerifiedBlock};
use crate::time::Timestamp;

const BLOCKS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("blocks");
/// id → (expiry in ms, min_trust).
const META: TableDefinition<[u8; 32], (u64, u8)> = TableDefinition::new("meta");
const EXPIRY: TableDefinition<(u64, [u8; 32]), ()> = TableDefinition::new("expiry");
const STATS: TableDefinition<&str, u64> = TableDefinition::new("stats");

fn io<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Io(e.into().to_string())
}

/// The metadata of a `meta` table value.
fn meta_of((expires, min_trust): (u64, u8)) -> BlockMeta {
    BlockMeta {
        expires: Timestamp(expires),
        min_trust,
    }
}

#[derive(Clone, Copy, Default)]
struct Totals {
    blocks: u64,
    bytes: u64,
}

/// A [`BlockStore`] in a redb database file.
pub struct RedbStore {
    db: Database,
    limits: StoreLimits,
    /// The committed totals; the lock is held across each write transaction.
    totals: Mutex<Totals>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens (or creates) the store at `path` with the given quotas. Quotas are not stored: a
    /// store reopened with a smaller quota keeps its blocks but refuses new ones while over it.
    pub fn open(path: &Path, limits: StoreLimits) -> Result<RedbStore, StoreError> {
        let db = Database::create(path).map_err(io)?;
        let txn = db.begin_write().map_err(io)?;
        let totals = {
            txn.open_table(BLOCKS).map_err(io)?;
            txn.open_table(META).map_err(io)?;
            txn.open_table(EXPIRY).map_err(io)?;
            let stats = txn.open_table(STATS).map_err(io)?;
            let get = |k: &str| -> Result<u64, StoreError> {
                Ok(stats.get(k).map_err(io)?.map(|v| v.value()).unwrap_or(0))
            };
            Totals {
                blocks: get("blocks")?,
                bytes: get("bytes")?,
            }
        };
        txn.commit().map_err(io)?;
        Ok(RedbStore {
            db,
            limits,
            totals: Mutex::new(totals),
        })
    }

    /// Stores every block of `blocks` with `meta` in one write transaction, committed (one
    /// fsync) before it returns: the fast way to fill a store with many small blocks (a
    /// benchmark's store, a bulk import), where [`BlockStore::put`] commits once per block.
    /// A block already held is treated as by `put` (its expiry and `min_trust` move when
    /// `meta.expires` is later). If the new blocks would take the store past a quota, nothing
    /// is stored and the answer is [`StoreError::Full`]. Returns how many blocks were new.
    /// The whole batch is written in memory by redb before the commit: keep batches to tens
    /// of megabytes.
    fn put_batch(
        &self,
        blocks: &[VerifiedBlock],
        m: BlockMeta,
        durability: Durability,
    ) -> Result<usize, StoreError> {
        let mut totals = self.totals.lock();
        let mut txn = self.write()?;
        txn.set_durability(durability);
        let mut new = *totals;
        let mut stored = 0;
        let full = |t: &Totals| StoreError::Full {
            bytes: t.bytes,
            max_bytes: self.limits.max_bytes,
            blocks: t.blocks,
            max_blocks: self.limits.max_blocks,
        };
        for block in blocks {
            let id = block.id();
            if Self::extend_in(&txn, &id, m.expires, Some(m.min_trust))?.is_some() {
                continue;
            }
            let len = block.len() as u64;
            if new.bytes + len > self.limits.max_bytes || new.blocks + 1 > self.limits.max_blocks {
                txn.abort().map_err(io)?;
                return Err(full(&totals));
            }
            Self::insert_new(&txn, &id, block, m)?;
            new.blocks += 1;
            new.bytes += len;
            stored += 1;
        }
        Self::save_totals(&txn, new)?;
        txn.commit().map_err(io)?;
        *totals = new;
        Ok(stored)
    }

    fn write(&self) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().map_err(io)?;
        txn.set_durability(Durability::Immediate);
        Ok(txn)
    }

    /// Writes a block not held yet, its metadata and its expiry entry.
    fn insert_new(
        txn: &WriteTransaction,
        id: &BlockId,
        block: &VerifiedBlock,
        m: BlockMeta,
    ) -> Result<(), StoreError> {
        txn.open_table(BLOCKS)
            .map_err(io)?
            .insert(id.0, block.bytes())
            .map_err(io)?;
        txn.open_table(META)
            .map_err(io)?
            .insert(id.0, (m.expires.0, m.min_trust))
            .map_err(io)?;
        txn.open_table(EXPIRY)
            .map_err(io)?
            .insert((m.expires.0, id.0), ())
            .map_err(io)?;
        Ok(())
    }

    fn save_totals(txn: &WriteTransaction, t: Totals) -> Result<(), StoreError> {
        let mut stats = txn.open_table(STATS).map_err(io)?;
        stats.insert("blocks", t.blocks).map_err(io)?;
        stats.insert("bytes", t.bytes).map_err(io)?;
        Ok(())
    }

    /// Moves the expiry of `id` to `until` if later, and then its `min_trust` to `min_trust`
    /// when one is given, inside `txn`. `None` if not held.
    fn extend_in(
        txn: &WriteTransaction,
        id: &BlockId,
        until: Timestamp,
        min_trust: Option<u8>,
    ) -> Result<Option<(BlockMeta, bool)>, StoreError> {
        let mut meta = txn.open_table(META).map_err(io)?;
        let old = match meta.get(id.0).map_err(io)? {
            Some(v) => meta_of(v.value()),
            None => return Ok(None),
        };
        if until <= old.expires {
            return Ok(Some((old, false)));
        }
        let new = BlockMeta {
            expires: until,
            min_trust: min_trust.unwrap_or(old.min_trust),
        };
        meta.insert(id.0, (new.expires.0, new.min_trust))
            .map_err(io)?;
        let mut expiry = txn.open_table(EXPIRY).map_err(io)?;
        expiry.remove((old.expires.0, id.0)).map_err(io)?;
        expiry.insert((until.0, id.0), ()).map_err(io)?;
        Ok(Some((new, true)))
    }

    /// Removes `id` inside `txn`, updating `totals`. Returns whether it was held.
    fn remove_in(
        txn: &WriteTransaction,
        id: &BlockId,
        totals: &mut Totals,
    ) -> Result<bool, StoreError> {
        let mut blocks = txn.open_table(BLOCKS).map_err(io)?;
        let len = match blocks.remove(id.0).map_err(io)? {
            Some(v) => v.value().len() as u64,
            None => return Ok(false),
        };
        let mut meta = txn.open_table(META).map_err(io)?;
        if let Some(m) = meta.remove(id.0).map_err(io)? {
            let (exp, _) = m.value();
            txn.open_table(EXPIRY)
                .map_err(io)?
                .remove((exp, id.0))
                .map_err(io)?;
        }
        totals.blocks = totals.blocks.saturating_sub(1);
        totals.bytes = totals.bytes.saturating_sub(len);
        Ok(true)
    }
}

impl BlockStore for RedbStore {
    fn put_many(&self, blocks: &[VerifiedBlock], meta: BlockMeta) -> Result<usize, StoreError> {
        self.put_batch(blocks, meta, Durability::Immediate)
    }

    fn put_many_unsynced(
        &self,
        blocks: &[VerifiedBlock],
        meta: BlockMeta,
    ) -> Result<usize, StoreError> {
        // Committed without fsync: visible at once, made durable by the next durable commit
        // (`sync`, or any put). A crash before that loses these blocks, never consistency.
        self.put_batch(blocks, meta, Durability::None)
    }

    fn sync(&self) -> Result<(), StoreError> {
        let _totals = self.totals.lock();
        let txn = self.write()?;
        txn.commit().map_err(io)
    }

    fn put(&self, block: &VerifiedBlock, m: BlockMeta) -> Result<PutOutcome, StoreError> {
        let mut totals = self.totals.lock();
        let id = block.id();
        let txn = self.write()?;
        if let Some((_, extended)) = Self::extend_in(&txn, &id, m.expires, Some(m.min_trust))? {
            if extended {
                txn.commit().map_err(io)?;
            } else {
                txn.abort().map_err(io)?;
            }
            return Ok(PutOutcome::Exists { extended });
        }
        let len = block.len() as u64;
        if totals.bytes + len > self.limits.max_bytes || totals.blocks + 1 > self.limits.max_blocks
        {
            txn.abort().map_err(io)?;
            return Err(StoreError::Full {
                bytes: totals.bytes,
                max_bytes: self.limits.max_bytes,
                blocks: totals.blocks,
                max_blocks: self.limits.max_blocks,
            });
        }
        let new = Totals {
            blocks: totals.blocks + 1,
            bytes: totals.bytes + len,
        };
        {
            Self::insert_new(&txn, &id, block, m)?;
            Self::save_totals(&txn, new)?;
        }
        txn.commit().map_err(io)?;
        *totals = new;
        Ok(PutOutcome::Stored)
    }

    fn get(&self, id: &BlockId) -> Result<Option<VerifiedBlock>, StoreError> {
        let txn = self.db.begin_read().map_err(io)?;
        let blocks = txn.open_table(BLOCKS).map_err(io)?;
        let Some(v) = blocks.get(id.0).map_err(io)? else {
            return Ok(None);
        };
        VerifiedBlock::check(*id, v.value())
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("block {id}: {e}")))
    }

    fn contains(&self, id: &BlockId) -> Result<bool, StoreError> {
        Ok(self.meta(id)?.is_some())
    }

    fn meta(&self, id: &BlockId) -> Result<Option<BlockMeta>, StoreError> {
        let txn = self.db.begin_read().map_err(io)?;
        let meta = txn.open_table(META).map_err(io)?;
        Ok(meta.get(id.0).map_err(io)?.map(|v| meta_of(v.value())))
    }

    fn extend(&self, id: &BlockId, until: Timestamp) -> Result<Option<BlockMeta>, StoreError> {
        let _totals = self.totals.lock();
        let txn = self.write()?;
        let r = Self::extend_in(&txn, id, until, None)?;
        match r {
            Some((_, true)) => txn.commit().map_err(io)?,
            _ => txn.abort().map_err(io)?,
        }
        Ok(r.map(|(m, _)| m))
    }

    fn remove(&self, id: &BlockId) -> Result<bool, StoreError> {
        let mut totals = self.totals.lock();
        let mut new = *totals;
        let txn = self.write()?;
        if !Self::remove_in(&txn, id, &mut new)? {
            txn.abort().map_err(io)?;
            return Ok(false);
        }
        Self::save_totals(&txn, new)?;
        txn.commit().map_err(io)?;
        *totals = new;
        Ok(true)
    }

    fn collect_garbage(&self, now: Timestamp, max: usize) -> usize {
        let mut totals = self.totals.lock();
        let run = || -> Result<(usize, Totals), StoreError> {
            let mut new = *totals;
            let txn = self.write()?;
            let due: Vec<BlockId> = {
                let expiry = txn.open_table(EXPIRY).map_err(io)?;
                let mut due = Vec::new();
                for entry in expiry.range(..=(now.0, [0xff; 32])).map_err(io)? {
                    if due.len() >= max {
                        break;
                    }
                    let (k, _) = entry.map_err(io)?;
                    due.push(BlockId(k.value().1));
                }
                due
            };
            if due.is_empty() {
                txn.abort().map_err(io)?;
                return Ok((0, new));
            }
            for id in &due {
                Self::remove_in(&txn, id, &mut new)?;
            }
            Self::save_totals(&txn, new)?;
            txn.commit().map_err(io)?;
            Ok((due.len(), new))
        };
        match run() {
            Ok((n, new)) => {
                *totals = new;
                n
            }
            Err(e) => {
                log::warn!("storage: garbage collection failed: {e}");
                0
            }
        }
    }

    fn ids(&self, after: Option<BlockId>, max: usize) -> Result<Vec<BlockId>, StoreError> {
        let txn = self.db.begin_read().map_err(io)?;
        let meta = txn.open_table(META).map_err(io)?;
        let mut out = Vec::new();
        let range = match after {
            Some(a) => meta.range((std::ops::Bound::Excluded(a.0), std::ops::Bound::Unbounded)),
            None => meta.range::<[u8; 32]>(..),
        }
        .map_err(io)?;
        for entry in range {
            if out.len() >= max {
                break;
            }
            out.push(BlockId(entry.map_err(io)?.0.value()));
        }
        Ok(out)
    }

    fn status(&self) -> StoreStatus {
        let totals = *self.totals.lock();
        let next_expiry = (|| -> Result<Option<Timestamp>, StoreError> {
            let txn = self.db.begin_read().map_err(io)?;
            let expiry = txn.open_table(EXPIRY).map_err(io)?;
            let first = expiry
                .first()
                .map_err(io)?
                .map(|(k, _)| Timestamp(k.value().0));
            Ok(first)
        })()
        .unwrap_or_else(|e| {
            log::warn!("storage: cannot read the expiry index: {e}");
            None
        });
        StoreStatus {
            blocks: totals.blocks,
            bytes: totals.bytes,
            max_bytes: self.limits.max_bytes,
            max_blocks: self.limits.max_blocks,
            next_expiry,
        }
    }
}

#[cfg(test)]
mod put_many_tests {
    use super::*;
    use crate::storage::block::Block;
    use crate::storage::store::tests::TempDir;

    fn leaf(i: u32) -> VerifiedBlock {
        VerifiedBlock::new(Block::Leaf(i.to_le_bytes().repeat(16))).unwrap()
    }

    #[test]
    fn put_many_stores_a_batch_in_one_commit_and_refuses_one_over_quota_whole() {
        let dir = TempDir::new("put-many");
        let path = dir.0.join("blocks.redb");
        let limits = StoreLimits {
            max_bytes: u64::MAX,
            max_blocks: 1000,
        };
        let blocks: Vec<_> = (0..600).map(leaf).collect();
        let one = blocks[0].len() as u64;
        {
            let s = RedbStore::open(&path, limits).unwrap();
            s.put(&blocks[0], BlockMeta::public(Timestamp(5))).unwrap();
            // The held block is extended, not counted again; a duplicate in the batch too.
            let mut batch = blocks[..500].to_vec();
            batch.push(blocks[1].clone());
            let meta = BlockMeta {
                expires: Timestamp(9),
                min_trust: 3,
            };
            assert_eq!(s.put_many(&batch, meta), Ok(499));
            assert_eq!(s.meta(&blocks[0].id()).unwrap(), Some(meta));
            // 500 + 600 > 1000 blocks: nothing of this batch is stored.
            let more: Vec<_> = (1000..1600).map(leaf).collect();
            assert!(matches!(
                s.put_many(&more, meta),
                Err(StoreError::Full { blocks: 500, .. })
            ));
            assert!(!s.contains(&more[0].id()).unwrap());
            assert_eq!(s.status().blocks, 500);
        }
        // Reopened: the blocks, their totals and the expiry index are all there.
        let s = RedbStore::open(&path, limits).unwrap();
        let st = s.status();
        assert_eq!((st.blocks, st.bytes), (500, 500 * one));
        assert_eq!(st.next_expiry, Some(Timestamp(9)));
        for b in &blocks[..500] {
            assert_eq!(s.get(&b.id()).unwrap().as_ref(), Some(b));
        }
        assert_eq!(s.collect_garbage(Timestamp(10), 10_000), 500);
        assert_eq!(s.status().blocks, 0);
    }

    #[test]
    fn unsynced_batches_are_visible_at_once_and_durable_after_sync() {
        let dir = TempDir::new("put-many-unsynced");
        let path = dir.0.join("blocks.redb");
        let blocks: Vec<_> = (0..50).map(leaf).collect();
        let meta = BlockMeta::public(Timestamp(9));
        {
            let s = RedbStore::open(&path, StoreLimits::default()).unwrap();
            assert_eq!(s.put_many_unsynced(&blocks[..25], meta), Ok(25));
            assert!(
                s.contains(&blocks[24].id()).unwrap(),
                "visible before any sync"
            );
            assert_eq!(s.put_many_unsynced(&blocks[25..], meta), Ok(25));
            s.sync().unwrap();
        }
        let s = RedbStore::open(&path, StoreLimits::default()).unwrap();
        assert_eq!(s.status().blocks, 50);
        for b in &blocks {
            assert_eq!(s.get(&b.id()).unwrap().as_ref(), Some(b));
        }
    }
}
