//! Tests of the store contract, run against both [`MemStore`] and [`RedbStore`].

use std::path::PathBuf;

use super::*;
use crate::storage::block::Block;

fn leaf(n: u8, len: usize) -> VerifiedBlock {
    VerifiedBlock::new(Block::Leaf(vec![n; len])).unwrap()
}

fn meta(ms: u64) -> BlockMeta {
    BlockMeta::public(Timestamp(ms))
}

/// A fresh directory under /tmp, removed when dropped.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "netmachine-store-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn each_store(limits: StoreLimits, f: impl Fn(&dyn BlockStore)) {
    f(&MemStore::new(limits));
    let dir = TempDir::new("contract");
    let s = RedbStore::open(&dir.0.join("blocks.redb"), limits).unwrap();
    f(&s);
}

#[test]
fn put_get_contains_and_duplicate_put_extends() {
    each_store(StoreLimits::default(), |s| {
        let b = leaf(1, 100);
        assert_eq!(s.put(&b, meta(10)).unwrap(), PutOutcome::Stored);
        assert!(s.contains(&b.id()).unwrap());
        assert_eq!(s.get(&b.id()).unwrap().unwrap(), b);
        assert_eq!(
            s.put(&b, meta(5)).unwrap(),
            PutOutcome::Exists { extended: false }
        );
        assert_eq!(s.meta(&b.id()).unwrap(), Some(meta(10)));
        assert_eq!(
            s.put(&b, meta(20)).unwrap(),
            PutOutcome::Exists { extended: true }
        );
        assert_eq!(s.meta(&b.id()).unwrap(), Some(meta(20)));
        let st = s.status();
        assert_eq!((st.blocks, st.bytes), (1, b.len() as u64));
        assert_eq!(st.next_expiry, Some(Timestamp(20)));
        assert_eq!(s.get(&leaf(2, 1).id()).unwrap(), None);
    });
}

fn trusted(ms: u64, min_trust: u8) -> BlockMeta {
    BlockMeta {
        expires: Timestamp(ms),
        min_trust,
    }
}

#[test]
fn min_trust_is_kept_and_follows_the_put_whose_expiry_is_kept() {
    each_store(StoreLimits::default(), |s| {
        let b = leaf(3, 50);
        s.put(&b, trusted(10, 200)).unwrap();
        assert_eq!(s.meta(&b.id()).unwrap(), Some(trusted(10, 200)));
        // A re-put that does not extend leaves min_trust as it was.
        assert_eq!(
            s.put(&b, trusted(5, 0)).unwrap(),
            PutOutcome::Exists { extended: false }
        );
        assert_eq!(s.meta(&b.id()).unwrap(), Some(trusted(10, 200)));
        // One that extends brings its own.
        assert_eq!(
            s.put(&b, trusted(30, 7)).unwrap(),
            PutOutcome::Exists { extended: true }
        );
        assert_eq!(s.meta(&b.id()).unwrap(), Some(trusted(30, 7)));
        // `extend` never changes it.
        assert_eq!(
            s.extend(&b.id(), Timestamp(40)).unwrap(),
            Some(trusted(40, 7))
        );
        // It goes with the block.
        assert!(s.remove(&b.id()).unwrap());
        s.put(&b, trusted(1, 255)).unwrap();
        assert_eq!(s.meta(&b.id()).unwrap(), Some(trusted(1, 255)));
    });
    // And survives a reopen of the disk store.
    let dir = TempDir::new("trust");
    let path = dir.0.join("blocks.redb");
    let b = leaf(4, 50);
    RedbStore::open(&path, StoreLimits::default())
        .unwrap()
        .put(&b, trusted(9, 128))
        .unwrap();
    let s = RedbStore::open(&path, StoreLimits::default()).unwrap();
    assert_eq!(s.meta(&b.id()).unwrap(), Some(trusted(9, 128)));
}

#[test]
fn quotas_refuse_new_blocks_with_a_clear_message() {
    let one = leaf(0, 1000).len() as u64;
    each_store(
        StoreLimits {
            max_bytes: 2 * one,
            max_blocks: 10,
        },
        |s| {
            s.put(&leaf(1, 1000), meta(1)).unwrap();
            s.put(&leaf(2, 1000), meta(1)).unwrap();
            let e = s.put(&leaf(3, 1000), meta(1)).unwrap_err();
            assert!(matches!(e, StoreError::Full { blocks: 2, .. }), "{e}");
            assert!(e
                .to_string()
                .starts_with("store full: 2.0 KiB of 2.0 KiB used"));
            // An existing block may still be extended when the store is full.
            assert_eq!(
                s.put(&leaf(1, 1000), meta(9)).unwrap(),
                PutOutcome::Exists { extended: true }
            );
        },
    );
    each_store(
        StoreLimits {
            max_bytes: u64::MAX,
            max_blocks: 2,
        },
        |s| {
            s.put(&leaf(1, 1), meta(1)).unwrap();
            s.put(&leaf(2, 1), meta(1)).unwrap();
            assert!(matches!(
                s.put(&leaf(3, 1), meta(1)),
                Err(StoreError::Full { max_blocks: 2, .. })
            ));
            assert_eq!(s.status().blocks, 2);
        },
    );
}

#[test]
fn garbage_collection_removes_expired_blocks_earliest_first_up_to_max() {
    each_store(StoreLimits::default(), |s| {
        for i in 0..5u8 {
            s.put(&leaf(i, 10), meta(100 + i as u64)).unwrap();
        }
        assert_eq!(s.collect_garbage(Timestamp(99), 10), 0);
        assert_eq!(s.collect_garbage(Timestamp(103), 2), 2);
        assert!(!s.contains(&leaf(0, 10).id()).unwrap());
        assert!(!s.contains(&leaf(1, 10).id()).unwrap());
        assert!(s.contains(&leaf(2, 10).id()).unwrap());
        // Extending block 2 past `now` saves it.
        assert_eq!(
            s.extend(&leaf(2, 10).id(), Timestamp(500)).unwrap(),
            Some(meta(500))
        );
        assert_eq!(s.collect_garbage(Timestamp(104), 10), 2);
        let st = s.status();
        assert_eq!(st.blocks, 1);
        assert_eq!(st.bytes, leaf(2, 10).len() as u64);
        assert_eq!(st.next_expiry, Some(Timestamp(500)));
        assert_eq!(s.extend(&leaf(9, 10).id(), Timestamp(1)).unwrap(), None);
    });
}

#[test]
fn remove_and_ids_paging() {
    each_store(StoreLimits::default(), |s| {
        let mut ids: Vec<BlockId> = (0..7u8)
            .map(|i| {
                let b = leaf(i, 3);
                s.put(&b, meta(1)).unwrap();
                b.id()
            })
            .collect();
        ids.sort();
        let first = s.ids(None, 3).unwrap();
        assert_eq!(first, ids[..3]);
        let rest = s.ids(Some(first[2]), 100).unwrap();
        assert_eq!(rest, ids[3..]);
        assert!(s.remove(&ids[0]).unwrap());
        assert!(!s.remove(&ids[0]).unwrap());
        assert_eq!(s.status().blocks, 6);
        assert_eq!(s.status().bytes, 6 * leaf(0, 3).len() as u64);
    });
}

#[test]
fn redb_store_reopens_with_its_blocks_and_totals() {
    let dir = TempDir::new("reopen");
    let path = dir.0.join("blocks.redb");
    let blocks: Vec<_> = (0..20u8).map(|i| leaf(i, 5000)).collect();
    {
        let s = RedbStore::open(&path, StoreLimits::default()).unwrap();
        for b in &blocks {
            s.put(b, meta(7)).unwrap();
        }
        s.remove(&blocks[0].id()).unwrap();
    }
    let s = RedbStore::open(&path, StoreLimits::default()).unwrap();
    let st = s.status();
    assert_eq!(st.blocks, 19);
    assert_eq!(st.bytes, 19 * blocks[1].len() as u64);
    for b in &blocks[1..] {
        assert_eq!(s.get(&b.id()).unwrap().as_ref(), Some(b));
    }
    assert_eq!(s.get(&blocks[0].id()).unwrap(), None);
}

#[test]
fn redb_store_reports_a_corrupted_block_instead_of_returning_it() {
    let dir = TempDir::new("corrupt");
    let path = dir.0.join("blocks.redb");
    let b = leaf(0x5a, 4096);
    {
        let s = RedbStore::open(&path, StoreLimits::default()).unwrap();
        s.put(&b, meta(7)).unwrap();
    }
    // Flip one byte of the block's data in the file.
    let mut file = std::fs::read(&path).unwrap();
    let at = file
        .windows(64)
        .position(|w| w.iter().all(|&x| x == 0x5a))
        .expect("block data in the file");
    file[at + 10] ^= 0xff;
    std::fs::write(&path, &file).unwrap();
    let s = RedbStore::open(&path, StoreLimits::default()).unwrap();
    assert!(matches!(s.get(&b.id()), Err(StoreError::Corrupt(_))));
}

#[test]
fn human_bytes_formats() {
    assert_eq!(human_bytes(17), "17 B");
    assert_eq!(human_bytes(1 << 30), "1.0 GiB");
    assert_eq!(human_bytes(1536), "1.5 KiB");
}
