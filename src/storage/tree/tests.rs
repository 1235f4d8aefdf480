//! Objects split and read back: sizes at and around the block boundaries, several levels,
//! resuming from what a store holds, and trees that break the shape rules.

use super::*;
use crate::storage::store::MemStore;
use crate::time::Timestamp;

const META: BlockMeta = BlockMeta {
    expires: Timestamp(u64::MAX / 2),
    min_trust: 0,
};

fn object(len: usize, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let mut x = (i as u64 ^ seed.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            x ^= x >> 29;
            (x.wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 56) as u8
        })
        .collect()
}

/// Splits `data` with `w` in uneven pieces, storing every block; root and size.
fn split_into(store: &MemStore, mut w: ObjectWriter, data: &[u8]) -> (BlockId, u64, usize) {
    let mut blocks = Vec::new();
    for piece in data.chunks(777) {
        blocks.extend(w.write(piece).unwrap());
    }
    let (last, root, size) = w.finish().unwrap();
    blocks.extend(last);
    let n = blocks.len();
    // Children before parents: every tree block's children were emitted before it.
    let mut seen = std::collections::BTreeSet::new();
    for b in &blocks {
        if let Block::Tree(t) = b.block() {
            assert!(t.children.iter().all(|c| seen.contains(&c.id)));
        }
        seen.insert(b.id());
        store.put(b, META).unwrap();
    }
    (root, size, n)
}

fn read_back(store: &MemStore, root: &BlockId) -> Vec<u8> {
    let mut out = Vec::new();
    read_object(store, root, &mut out).unwrap();
    out
}

#[test]
fn objects_of_every_awkward_size_come_back_byte_for_byte() {
    for (leaf, fanout) in [(16, 2), (16, 3), (100, 4), (MAX_BLOCK_DATA, MAX_CHILDREN)] {
        for len in [
            0,
            1,
            leaf - 1,
            leaf,
            leaf + 1,
            5 * leaf,
            9 * leaf + 3,
            64 * leaf,
        ] {
            if leaf == MAX_BLOCK_DATA && len > 3 * leaf {
                continue; // the full-size shape is covered by the smaller lengths
            }
            let store = MemStore::new(Default::default());
            let data = object(len, len as u64);
            let (root, size, _) = split_into(&store, ObjectWriter::with_shape(leaf, fanout), &data);
            assert_eq!(size, len as u64);
            assert_eq!(
                read_back(&store, &root),
                data,
                "leaf {leaf} fanout {fanout} len {len}"
            );
            assert!(missing_blocks(&store, &root, 100).unwrap().is_empty());
            // The root is a tree block whose size is the object's.
            let Block::Tree(t) = store.get(&root).unwrap().unwrap().block().clone() else {
                panic!("the root is a tree block");
            };
            assert_eq!(t.size, len as u64);
        }
    }
}

#[test]
fn a_small_fanout_builds_several_levels_and_the_same_bytes_give_the_same_root() {
    let data = object(16 * 27, 1);
    let store = MemStore::new(Default::default());
    let (root, _, n) = split_into(&store, ObjectWriter::with_shape(16, 3), &data);
    // 27 leaves, 9 + 3 + 1 tree blocks: depth 3.
    assert_eq!(n, 27 + 13);
    let Block::Tree(t) = store.get(&root).unwrap().unwrap().block().clone() else {
        panic!()
    };
    assert_eq!(t.depth, 3);
    let again = MemStore::new(Default::default());
    assert_eq!(
        split_into(&again, ObjectWriter::with_shape(16, 3), &data).0,
        root
    );
    let other = object(16 * 27, 2);
    assert_ne!(
        split_into(&again, ObjectWriter::with_shape(16, 3), &other).0,
        root
    );
}

#[test]
fn put_object_streams_a_reader_into_the_store() {
    let data = object(3 * MAX_BLOCK_DATA + 12345, 9);
    let store = MemStore::new(Default::default());
    let (root, size) = put_object(&store, &mut &data[..], META).unwrap();
    assert_eq!(size, data.len() as u64);
    assert_eq!(store.status().blocks, 4 + 1);
    assert_eq!(read_back(&store, &root), data);
}

#[test]
fn missing_blocks_lists_what_a_fetch_still_needs_and_nothing_held() {
    let data = object(16 * 9, 3);
    let full = MemStore::new(Default::default());
    let (root, _, _) = split_into(&full, ObjectWriter::with_shape(16, 3), &data);
    let partial = MemStore::new(Default::default());
    // Nothing held: the root is needed first.
    assert_eq!(missing_blocks(&partial, &root, 100).unwrap(), vec![root]);
    // Copy blocks over as a fetch would, asking only for what is missing, until complete.
    let mut rounds = 0;
    let mut fetched = std::collections::BTreeSet::new();
    loop {
        let need = missing_blocks(&partial, &root, 4).unwrap();
        if need.is_empty() {
            break;
        }
        assert!(need.len() <= 4);
        for id in need {
            assert!(fetched.insert(id), "block {id} asked for twice");
            partial.put(&full.get(&id).unwrap().unwrap(), META).unwrap();
        }
        rounds += 1;
        assert!(rounds < 20);
    }
    assert_eq!(fetched.len(), full.status().blocks as usize);
    assert_eq!(read_back(&partial, &root), data);
}

#[test]
fn trees_that_break_the_shape_rules_are_refused() {
    let store = MemStore::new(Default::default());
    let leaf = VerifiedBlock::new(Block::Leaf(b"abc".to_vec())).unwrap();
    store.put(&leaf, META).unwrap();
    let tree = |depth: u8, size: u64, ids: &[BlockId]| {
        let b = VerifiedBlock::new(Block::Tree(TreeBlock {
            depth,
            size,
            children: ids.iter().map(|id| Child { id: *id, key: None }).collect(),
        }))
        .unwrap();
        store.put(&b, META).unwrap();
        b.id()
    };
    let shape = |root: &BlockId| match read_object(&store, root, &mut Vec::new()) {
        Err(ObjectError::Shape(what)) => what,
        other => panic!("{other:?}"),
    };
    // A leaf as the root.
    assert_eq!(shape(&leaf.id()), "the root is a leaf");
    // Depth 2 over a leaf; depth 1 over a tree block.
    let d1 = tree(1, 3, &[leaf.id()]);
    assert!(shape(&tree(2, 3, &[leaf.id()])).contains("leaf where a tree"));
    assert!(shape(&tree(1, 3, &[d1])).contains("tree block where a leaf"));
    // A size that the leaves do not add up to.
    assert!(shape(&tree(1, 4, &[leaf.id()])).contains("add up"));
    assert!(shape(&tree(2, 7, &[d1, d1])).contains("add up"));
    // The same subtree twice is a valid tree (3 + 3 bytes), not a loop.
    let mut out = Vec::new();
    read_object(&store, &tree(2, 6, &[d1, d1]), &mut out).unwrap();
    assert_eq!(out, b"abcabc");
    // A missing child.
    let absent = BlockId([7; 32]);
    let r = read_object(&store, &tree(1, 3, &[absent]), &mut Vec::new());
    assert!(matches!(r, Err(ObjectError::Missing(id)) if id == absent));
}

#[test]
fn an_object_deeper_than_the_limit_is_refused() {
    // Leaves of 1 byte, 2 children per tree block: 2^8 leaves take exactly 8 levels.
    let mut w = ObjectWriter::with_shape(1, 2);
    w.write(&object(256, 4)).unwrap();
    let (_, _, size) = w.finish().expect("exactly 8 levels fit");
    assert_eq!(size, 256);
    // One byte more needs a ninth.
    let mut w = ObjectWriter::with_shape(1, 2);
    w.write(&object(257, 4)).unwrap();
    assert!(matches!(w.finish(), Err(ObjectError::TooLarge)));
}

#[test]
fn missing_blocks_walks_a_repeated_subtree_once_and_names_each_id_once() {
    let store = MemStore::new(Default::default());
    let put = |b: Block| {
        let v = VerifiedBlock::new(b).unwrap();
        store.put(&v, META).unwrap();
        v.id()
    };
    let absent = BlockId([9; 32]);
    // A depth-1 block listing one absent leaf 1,000 times, and a root listing that 1,000 times.
    let x = put(Block::Tree(TreeBlock {
        depth: 1,
        size: 1000,
        children: vec![
            Child {
                id: absent,
                key: None
            };
            1000
        ],
    }));
    let root = put(Block::Tree(TreeBlock {
        depth: 2,
        size: 1_000_000,
        children: vec![Child { id: x, key: None }; 1000],
    }));
    assert_eq!(missing_blocks(&store, &root, 100).unwrap(), vec![absent]);
    // `max` 0 still names one block: an empty answer only ever means complete.
    assert_eq!(missing_blocks(&store, &root, 0).unwrap(), vec![absent]);
}
