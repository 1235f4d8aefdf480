//! Blocks: the unit of storage and transfer, and their content ids.
//!
//! A block is either a leaf (up to [`MAX_BLOCK_DATA`] bytes of object data, possibly encrypted)
//! or a tree block listing its children's ids (and, with convergent encryption, their keys).
//! A block's id is the BLAKE3 hash of its *encoded form* ([`Block::encode`]), so checking bytes
//! against an id is one hash. The only ways to obtain a [`VerifiedBlock`] are
//! [`VerifiedBlock::check`] (bytes checked against an id) and [`VerifiedBlock::new`] (the id is
//! computed): holding one is proof that its bytes hash to its id and decode within the limits.
//!
//! Encoding (all integers little-endian; see docs/wire.md §12E):
//! - leaf: tag `0x00`, `u32` data length, the data;
//! - tree: tag `0x01`, `u8` depth (1 = children are leaves), `u64` object size below it,
//!   `u32` child count, then per child its 32-byte id and a key flag `u8` (0 = no key,
//!   1 = a 32-byte key follows).

use std::fmt;

/// Largest payload of a leaf block: 1 MiB. Worst-case memory of one decoded leaf is this much.
pub const MAX_BLOCK_DATA: usize = 1 << 20;

/// Most children a tree block may list: 8,192 (an encoded tree block is then at most
/// 14 + 8,192 × 65 = 532,494 bytes). With 1 MiB leaves one level covers 8 GiB.
pub const MAX_CHILDREN: usize = 8192;

/// Deepest tree a root may head: 8 levels of tree blocks (1 = the children are leaves). The
/// assembler rejects anything deeper; 8 levels of 8,192 children is far beyond any object.
pub const MAX_TREE_DEPTH: u8 = 8;

/// Length of a convergent-encryption key carried in a tree block.
pub const KEY_LEN: usize = 32;

const LEAF_HEADER: usize = 1 + 4;
const TREE_HEADER: usize = 1 + 1 + 8 + 4;
const CHILD_MAX: usize = 32 + 1 + KEY_LEN;

/// The largest encoded block: a full leaf, 1 MiB + 5 bytes (a full tree block is smaller). Bytes
/// longer than this are refused before anything is decoded or allocated.
pub const MAX_ENCODED_BLOCK: usize = LEAF_HEADER + MAX_BLOCK_DATA;

const _: () = assert!(TREE_HEADER + MAX_CHILDREN * CHILD_MAX <= MAX_ENCODED_BLOCK);

const TAG_LEAF: u8 = 0;
const TAG_TREE: u8 = 1;

pub use crate::wire::content::{BlockId, ParseBlockIdError};

/// One child of a tree block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    /// The child block's id.
    pub id: BlockId,
    /// The key that decrypts the child (convergent encryption), if the object is encrypted.
    pub key: Option<[u8; KEY_LEN]>,
}

/// A tree block: the children of one node of an object's tree, in object order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeBlock {
    /// Height above the leaves: 1 means the children are leaves. At most [`MAX_TREE_DEPTH`].
    pub depth: u8,
    /// Bytes of object data below this block (plaintext size).
    pub size: u64,
    /// The children, at most [`MAX_CHILDREN`], at least one.
    pub children: Vec<Child>,
}

/// A decoded block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    /// Object data (or its ciphertext), at most [`MAX_BLOCK_DATA`] bytes.
    Leaf(Vec<u8>),
    /// Interior node of an object's tree.
    Tree(TreeBlock),
}

/// Why bytes are not a valid block (or not the block that was asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The encoded form, or a leaf's data, is longer than its limit.
    TooLarge {
        /// The length found.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes do not decode as a block (truncated, bad tag, trailing bytes, bad flag).
    Malformed(&'static str),
    /// The bytes hash to a different id than the one they were checked against.
    IdMismatch {
        /// The id asked for.
        expected: BlockId,
        /// The id of the bytes.
        actual: BlockId,
    },
    /// A tree block's depth is 0 or above [`MAX_TREE_DEPTH`].
    TooDeep(u8),
    /// A tree block lists more than [`MAX_CHILDREN`] children (or none).
    TooManyChildren(usize),
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::TooLarge { len, max } => write!(f, "block too large: {len} > {max} bytes"),
            BlockError::Malformed(why) => write!(f, "malformed block: {why}"),
            BlockError::IdMismatch { expected, actual } => {
                write!(f, "block bytes hash to {actual}, not {expected}")
            }
            BlockError::TooDeep(d) => write!(f, "tree depth {d} outside 1..={MAX_TREE_DEPTH}"),
            BlockError::TooManyChildren(n) => {
                write!(f, "tree block with {n} children (1..={MAX_CHILDREN})")
            }
        }
    }
}

impl std::error::Error for BlockError {}

impl Block {
    /// The encoded form (the bytes whose BLAKE3 hash is the id). Panics never; a block built
    /// beyond the limits still encodes, and [`Block::decode`] refuses it.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Block::Leaf(data) => {
                let mut out = Vec::with_capacity(LEAF_HEADER + data.len());
                out.push(TAG_LEAF);
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
                out
            }
            Block::Tree(t) => {
                let mut out = Vec::with_capacity(TREE_HEADER + t.children.len() * CHILD_MAX);
                out.push(TAG_TREE);
                out.push(t.depth);
                out.extend_from_slice(&t.size.to_le_bytes());
                out.extend_from_slice(&(t.children.len() as u32).to_le_bytes());
                for c in &t.children {
                    out.extend_from_slice(&c.id.0);
                    match &c.key {
                        None => out.push(0),
                        Some(k) => {
                            out.push(1);
                            out.extend_from_slice(k);
                        }
                    }
                }
                out
            }
        }
    }

    /// Decodes and checks the limits. The length is checked against [`MAX_ENCODED_BLOCK`] first;
    /// allocation is bounded by the input length.
    pub fn decode(bytes: &[u8]) -> Result<Block, BlockError> {
        if bytes.len() > MAX_ENCODED_BLOCK {
            return Err(BlockError::TooLarge {
                len: bytes.len(),
                max: MAX_ENCODED_BLOCK,
            });
        }
        let mut r = Reader(bytes);
        match r.u8()? {
            TAG_LEAF => {
                let len = r.u32()? as usize;
                if len > MAX_BLOCK_DATA {
                    return Err(BlockError::TooLarge {
                        len,
                        max: MAX_BLOCK_DATA,
                    });
                }
                let data = r.take(len)?.to_vec();
                r.end()?;
                Ok(Block::Leaf(data))
            }
            TAG_TREE => {
                let depth = r.u8()?;
                if depth == 0 || depth > MAX_TREE_DEPTH {
                    return Err(BlockError::TooDeep(depth));
                }
                let size = r.u64()?;
                let n = r.u32()? as usize;
                if n == 0 || n > MAX_CHILDREN {
                    return Err(BlockError::TooManyChildren(n));
                }
                // Each child takes at least 33 bytes: bound the allocation by the input.
                if n * 33 > r.0.len() {
                    return Err(BlockError::Malformed("truncated"));
                }
                let mut children = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = BlockId(r.take(32)?.try_into().expect("32 bytes"));
                    let key = match r.u8()? {
                        0 => None,
                        1 => Some(r.take(KEY_LEN)?.try_into().expect("32 bytes")),
                        _ => return Err(BlockError::Malformed("bad key flag")),
                    };
                    children.push(Child { id, key });
                }
                r.end()?;
                Ok(Block::Tree(TreeBlock {
                    depth,
                    size,
                    children,
                }))
            }
            _ => Err(BlockError::Malformed("unknown block tag")),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BlockError> {
        if self.0.len() < n {
            return Err(BlockError::Malformed("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, BlockError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, BlockError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, BlockError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn end(&self) -> Result<(), BlockError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(BlockError::Malformed("trailing bytes"))
        }
    }
}

/// A block whose bytes are known to hash to its id and to decode within the limits.
///
/// Cheap to clone (the bytes are shared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBlock {
    id: BlockId,
    bytes: std::sync::Arc<[u8]>,
    block: std::sync::Arc<Block>,
}

impl VerifiedBlock {
    /// Checks `bytes` against `id`: the length limit first, then the hash, then the decoding.
    pub fn check(id: BlockId, bytes: &[u8]) -> Result<VerifiedBlock, BlockError> {
        if bytes.len() > MAX_ENCODED_BLOCK {
            return Err(BlockError::TooLarge {
                len: bytes.len(),
                max: MAX_ENCODED_BLOCK,
            });
        }
        let actual = BlockId::of(bytes);
        if actual != id {
            return Err(BlockError::IdMismatch {
                expected: id,
                actual,
            });
        }
        let block = Block::decode(bytes)?;
        Ok(VerifiedBlock {
            id,
            bytes: bytes.into(),
            block: std::sync::Arc::new(block),
        })
    }

    /// Encodes `block` and computes its id. Fails if the block is beyond the limits (the same
    /// checks as decoding).
    pub fn new(block: Block) -> Result<VerifiedBlock, BlockError> {
        let bytes = block.encode();
        // Re-decoding checks every limit exactly as a receiver would.
        let checked = Block::decode(&bytes)?;
        debug_assert_eq!(checked, block);
        Ok(VerifiedBlock {
            id: BlockId::of(&bytes),
            bytes: bytes.into(),
            block: std::sync::Arc::new(block),
        })
    }

    /// The block's id.
    pub fn id(&self) -> BlockId {
        self.id
    }

    /// The encoded form.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The decoded block.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// Length of the encoded form in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the encoded form is empty (never: every block has a tag).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(n: usize, depth: u8) -> Block {
        Block::Tree(TreeBlock {
            depth,
            size: 7,
            children: (0..n)
                .map(|i| Child {
                    id: BlockId([i as u8; 32]),
                    key: (i % 2 == 1).then_some([9; 32]),
                })
                .collect(),
        })
    }

    #[test]
    fn leaf_and_tree_round_trip_and_id_is_blake3_of_encoding() {
        for b in [
            Block::Leaf(b"hello".to_vec()),
            Block::Leaf(vec![]),
            tree(3, 1),
        ] {
            let v = VerifiedBlock::new(b.clone()).unwrap();
            assert_eq!(v.id(), BlockId(*blake3::hash(&b.encode()).as_bytes()));
            assert_eq!(Block::decode(v.bytes()).unwrap(), b);
            assert_eq!(VerifiedBlock::check(v.id(), v.bytes()).unwrap(), v);
        }
    }

    #[test]
    fn check_rejects_wrong_id_and_flipped_bit() {
        let v = VerifiedBlock::new(Block::Leaf(vec![1, 2, 3])).unwrap();
        let mut bad = v.bytes().to_vec();
        bad[6] ^= 1;
        assert!(matches!(
            VerifiedBlock::check(v.id(), &bad),
            Err(BlockError::IdMismatch { .. })
        ));
        assert!(matches!(
            VerifiedBlock::check(BlockId([0; 32]), v.bytes()),
            Err(BlockError::IdMismatch { .. })
        ));
    }

    #[test]
    fn limits_are_enforced() {
        let big = vec![0u8; MAX_ENCODED_BLOCK + 1];
        assert!(matches!(
            VerifiedBlock::check(BlockId::of(&big), &big),
            Err(BlockError::TooLarge { .. })
        ));
        // A full leaf is accepted; one byte more is not.
        assert!(VerifiedBlock::new(Block::Leaf(vec![0; MAX_BLOCK_DATA])).is_ok());
        assert!(matches!(
            VerifiedBlock::new(Block::Leaf(vec![0; MAX_BLOCK_DATA + 1])),
            Err(BlockError::TooLarge { .. })
        ));
        assert!(VerifiedBlock::new(tree(MAX_CHILDREN, 1)).is_ok());
        assert_eq!(
            VerifiedBlock::new(tree(MAX_CHILDREN + 1, 1)),
            Err(BlockError::TooManyChildren(MAX_CHILDREN + 1))
        );
        assert_eq!(
            VerifiedBlock::new(tree(0, 1)),
            Err(BlockError::TooManyChildren(0))
        );
        assert_eq!(
            VerifiedBlock::new(tree(1, MAX_TREE_DEPTH + 1)),
            Err(BlockError::TooDeep(MAX_TREE_DEPTH + 1))
        );
        assert_eq!(VerifiedBlock::new(tree(1, 0)), Err(BlockError::TooDeep(0)));
    }

    #[test]
    fn malformed_inputs_are_named() {
        assert_eq!(Block::decode(&[]), Err(BlockError::Malformed("truncated")));
        assert_eq!(
            Block::decode(&[7]),
            Err(BlockError::Malformed("unknown block tag"))
        );
        assert_eq!(
            Block::decode(&[0, 1, 0, 0, 0, 5, 6]),
            Err(BlockError::Malformed("trailing bytes"))
        );
        // A leaf claiming 1 MiB + 1 of data in a short input.
        let mut claim = vec![0u8];
        claim.extend_from_slice(&((MAX_BLOCK_DATA as u32) + 1).to_le_bytes());
        assert!(matches!(
            Block::decode(&claim),
            Err(BlockError::TooLarge { .. })
        ));
        // A tree claiming 8,192 children with no bytes behind the claim.
        let mut t = vec![1u8, 1];
        t.extend_from_slice(&0u64.to_le_bytes());
        t.extend_from_slice(&(MAX_CHILDREN as u32).to_le_bytes());
        assert_eq!(Block::decode(&t), Err(BlockError::Malformed("truncated")));
        let mut enc = tree(1, 1).encode();
        enc[14 + 32] = 2;
        assert_eq!(
            Block::decode(&enc),
            Err(BlockError::Malformed("bad key flag"))
        );
    }

    #[test]
    fn block_id_display_and_parse() {
        let id = BlockId::of(b"x");
        let s = id.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<BlockId>().unwrap(), id);
        assert!("zz".parse::<BlockId>().is_err());
        assert!(s[..62].parse::<BlockId>().is_err());
    }
}
