//! Encrypted objects: round trips at the awkward sizes, determinism and dedup, wrong keys and
//! tampered blocks refused by name, and fetch planning over an encrypted tree.

use super::*;
use crate::storage::block::{Block, Child};
use crate::storage::store::MemStore;
use crate::storage::tree::{missing_blocks, read_object};
use crate::time::Timestamp;

const META: BlockMeta = BlockMeta {
    expires: Timestamp(u64::MAX / 2),
    min_trust: 0,
};

fn secret(n: u8) -> ConvergenceSecret {
    ConvergenceSecret::new([n; 32])
}

fn object(len: usize, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let mut x = (i as u64 ^ seed.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            x ^= x >> 29;
            (x.wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 56) as u8
        })
        .collect()
}

/// Encrypts `data` with `w` in uneven pieces into `store`; the reference and block count.
fn split_into(store: &MemStore, mut w: EncryptingWriter, data: &[u8]) -> (ObjectRef, usize) {
    let mut blocks = Vec::new();
    for piece in data.chunks(333) {
        blocks.extend(w.write(piece).unwrap());
    }
    let (last, r, size) = w.finish().unwrap();
    assert_eq!(size, data.len() as u64);
    blocks.extend(last);
    for b in &blocks {
        store.put(b, META).unwrap();
    }
    (r, blocks.len())
}

fn read_back(store: &MemStore, r: &ObjectRef) -> Result<Vec<u8>, ObjectError> {
    let mut out = Vec::new();
    let n = read_object_ref(store, r, &mut out)?;
    assert_eq!(n, out.len() as u64);
    Ok(out)
}

#[test]
fn objects_of_every_awkward_size_come_back_byte_for_byte() {
    for (leaf, fanout) in [
        (16, 2),
        (16, 3),
        (100, 4),
        (MAX_LEAF_PLAINTEXT, MAX_CHILDREN),
    ] {
        for len in [0, 1, leaf - 1, leaf, leaf + 1, 9 * leaf + 3, 40 * leaf] {
            if leaf == MAX_LEAF_PLAINTEXT && len > 2 * leaf {
                continue; // the full-size shape is covered by the smaller lengths
            }
            let store = MemStore::new(Default::default());
            let data = object(len, len as u64);
            let w = EncryptingWriter::with_shape(leaf, fanout, secret(1));
            let (r, _) = split_into(&store, w, &data);
            assert!(r.key.is_some());
            assert_eq!(
                read_back(&store, &r).unwrap(),
                data,
                "leaf {leaf} len {len}"
            );
            // Every leaf is ciphertext: no plaintext leaf of the object is stored.
            for id in store.ids(None, usize::MAX).unwrap() {
                if let Block::Leaf(d) = store.get(&id).unwrap().unwrap().block() {
                    assert!(d.len() >= TAG_LEN && d.len() <= leaf + TAG_LEN);
                    if len >= 64 {
                        assert!(!data.windows(d.len().min(32)).any(|w| w == &d[..w.len()]));
                    }
                }
            }
        }
    }
}

#[test]
fn a_full_encrypted_leaf_fits_a_block_and_one_byte_more_starts_another() {
    let store = MemStore::new(Default::default());
    let data = object(MAX_LEAF_PLAINTEXT + 1, 5);
    let (root, key, size) = put_encrypted_object(&store, &mut &data[..], META, &secret(2)).unwrap();
    assert_eq!(size, data.len() as u64);
    // Two leaves (the first exactly MAX_BLOCK_DATA of ciphertext) and the root.
    assert_eq!(store.status().blocks, 3);
    let mut out = Vec::new();
    assert_eq!(
        read_encrypted_object(&store, &root, &key, &mut out).unwrap(),
        size
    );
    assert_eq!(out, data);
    // A shape asking for larger leaves is held to the limit.
    let mut w = EncryptingWriter::with_shape(MAX_BLOCK_DATA, 2, secret(2));
    let blocks = w.write(&data).unwrap();
    assert_eq!(blocks[0].len(), crate::storage::block::MAX_ENCODED_BLOCK);
}

#[test]
fn several_levels_and_the_same_plaintext_and_secret_give_the_same_root() {
    let data = object(16 * 27, 1);
    let store = MemStore::new(Default::default());
    let w = || EncryptingWriter::with_shape(16, 3, secret(1));
    let (r, n) = split_into(&store, w(), &data);
    // 27 leaves, 9 + 3 + 1 tree blocks: depth 3.
    assert_eq!(n, 27 + 13);
    let Block::Tree(t) = store.get(&r.root).unwrap().unwrap().block().clone() else {
        panic!("the root is a tree block");
    };
    assert_eq!((t.depth, t.size), (3, data.len() as u64));
    // Same plaintext, same secret: same blocks (a second put stores nothing new).
    let (again, _) = split_into(&store, w(), &data);
    assert_eq!(again, r);
    assert_eq!(store.status().blocks, 40);
    // Another secret: another root, and no block in common.
    let other_store = MemStore::new(Default::default());
    let (other, _) = split_into(
        &other_store,
        EncryptingWriter::with_shape(16, 3, secret(9)),
        &data,
    );
    assert_ne!(other.root, r.root);
    for id in other_store.ids(None, usize::MAX).unwrap() {
        assert!(!store.contains(&id).unwrap());
    }
    // The encrypted root differs from the plain one too.
    let mut plain = crate::storage::tree::ObjectWriter::with_shape(16, 3);
    plain.write(&data).unwrap();
    assert_ne!(plain.finish().unwrap().1, r.root);
    // Identical leaves within one object deduplicate as well.
    let zeros = vec![0u8; 16 * 8];
    let z = MemStore::new(Default::default());
    let (_, n) = split_into(&z, EncryptingWriter::with_shape(16, 8, secret(1)), &zeros);
    assert_eq!(n, 9);
    assert_eq!(z.status().blocks, 2);
}

#[test]
fn a_wrong_key_is_a_clear_error_whatever_the_depth() {
    for (len, leaf) in [(0, 16), (10, 16), (16 * 27, 16)] {
        let store = MemStore::new(Default::default());
        let (r, _) = split_into(
            &store,
            EncryptingWriter::with_shape(leaf, 3, secret(1)),
            &object(len, 3),
        );
        let mut wrong = r;
        wrong.key.as_mut().unwrap()[0] ^= 1;
        let mut out = Vec::new();
        let e = read_object_ref(&store, &wrong, &mut out).unwrap_err();
        assert!(matches!(e, ObjectError::Decrypt(_)), "{e}");
        assert!(e.to_string().contains("wrong object key or tampered"));
        assert!(
            out.is_empty(),
            "nothing is written before the first leaf opens"
        );
        // Without a key at all, the read says the object needs one.
        let e = read_object(&store, &r.root, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("needs its key"), "{e}");
    }
    // A key given for a plain object is refused as well.
    let store = MemStore::new(Default::default());
    let (root, _) = crate::storage::tree::put_object(&store, &mut &b"plain"[..], META).unwrap();
    let e = read_encrypted_object(&store, &root, &[1; 32], &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("without its key"), "{e}");
}

#[test]
fn a_flipped_ciphertext_bit_is_refused_by_name() {
    let store = MemStore::new(Default::default());
    let data = object(40, 4);
    let (r, _) = split_into(
        &store,
        EncryptingWriter::with_shape(16, 4, secret(1)),
        &data,
    );
    let Block::Tree(root) = store.get(&r.root).unwrap().unwrap().block().clone() else {
        panic!("the root is a tree block");
    };
    // Flip one bit of each leaf in turn and rebuild the root over it: the child keys stay as
    // they were (the keystream does not depend on the ids), so only the AEAD can notice.
    for i in 0..root.children.len() {
        let Block::Leaf(mut ct) = store
            .get(&root.children[i].id)
            .unwrap()
            .unwrap()
            .block()
            .clone()
        else {
            panic!("depth 1: children are leaves");
        };
        ct[3] ^= 0x10;
        let bad = VerifiedBlock::new(Block::Leaf(ct)).unwrap();
        store.put(&bad, META).unwrap();
        let mut tampered = root.clone();
        tampered.children[i] = Child {
            id: bad.id(),
            key: root.children[i].key,
        };
        let t = VerifiedBlock::new(Block::Tree(tampered)).unwrap();
        store.put(&t, META).unwrap();
        let mut out = Vec::new();
        let e = read_object_ref(&store, &ObjectRef { root: t.id(), ..r }, &mut out).unwrap_err();
        assert!(
            matches!(e, ObjectError::Decrypt(id) if id == bad.id()),
            "{e}"
        );
        // The leaves before the tampered one were written; nothing from it on.
        assert_eq!(out, data[..16 * i]);
    }
    // A truncated leaf (shorter than a tag) is refused the same way.
    assert_eq!(open_leaf(&[0; 32], &[1, 2, 3]), None);
    // The untouched object still reads.
    assert_eq!(read_back(&store, &r).unwrap(), data);
}

#[test]
fn missing_blocks_plans_a_fetch_of_an_encrypted_tree_without_its_key() {
    let data = object(16 * 9, 3);
    let full = MemStore::new(Default::default());
    let (r, n) = split_into(&full, EncryptingWriter::with_shape(16, 3, secret(7)), &data);
    let partial = MemStore::new(Default::default());
    let mut fetched = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let need = missing_blocks(&partial, &r.root, 4).unwrap();
        if need.is_empty() {
            break;
        }
        for id in need {
            assert!(fetched.insert(id), "block {id} asked for twice");
            partial.put(&full.get(&id).unwrap().unwrap(), META).unwrap();
        }
    }
    assert_eq!(fetched.len(), n);
    assert_eq!(read_back(&partial, &r).unwrap(), data);
}

#[test]
fn object_refs_print_and_parse() {
    let root = BlockId::of(b"root");
    let plain = ObjectRef::plain(root);
    assert_eq!(plain.to_string(), root.to_string());
    assert_eq!(plain.to_string().parse::<ObjectRef>().unwrap(), plain);
    let keyed = ObjectRef::encrypted(root, [0xab; 32]);
    let s = keyed.to_string();
    assert_eq!(s.len(), 64 + 1 + 64);
    assert_eq!(&s[64..66], ":a");
    assert_eq!(s.parse::<ObjectRef>().unwrap(), keyed);
    for bad in [
        "",
        "zz",
        &s[..64 + 1],
        &s[..s.len() - 1],
        &format!("{s}00"),
        &format!(":{}", &s[65..]),
        &format!("{}:{}:00", &s[..64], &s[65..]),
    ] {
        let e = bad.parse::<ObjectRef>().unwrap_err();
        assert!(e.to_string().contains("64 hexadecimal"), "{bad}");
    }
    // The key never shows in debug output.
    assert!(!format!("{keyed:?}").contains("abab"));
    assert!(!format!("{:?}", secret(0xab)).contains("ab"));
}

#[test]
fn convergence_secrets_parse_from_raw_or_hex_files() {
    let raw = [7u8; 32];
    assert_eq!(
        ConvergenceSecret::parse(&raw).unwrap(),
        ConvergenceSecret::new(raw)
    );
    let hex = format!("{}\n", "07".repeat(32));
    assert_eq!(
        ConvergenceSecret::parse(hex.as_bytes()).unwrap(),
        ConvergenceSecret::new(raw)
    );
    for bad in [&b""[..], &[1u8; 31], &[1u8; 33], "0g".repeat(32).as_bytes()] {
        let e = ConvergenceSecret::parse(bad).unwrap_err();
        assert!(e.contains("32 bytes or 64 hex"), "{e}");
    }
    let dir = std::env::temp_dir().join(format!("netmachine-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("secret");
    std::fs::write(&path, raw).unwrap();
    assert_eq!(
        ConvergenceSecret::from_file(&path).unwrap(),
        ConvergenceSecret::new(raw)
    );
    let e = ConvergenceSecret::from_file(&dir.join("absent")).unwrap_err();
    assert!(e.contains("cannot read"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
