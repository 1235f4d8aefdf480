//! Objects as trees of blocks: [`ObjectWriter`] splits a byte stream into leaves of at most
//! [`MAX_BLOCK_DATA`] bytes and builds the tree blocks over them bottom-up as it goes, so an
//! object of any size is split with bounded memory; [`read_object`] walks a tree from its root
//! out of a store and writes the object in order; [`missing_blocks`] says which blocks of a tree
//! a store still lacks (what a fetch must still pull — and, after a lost connection, all it
//! must pull: blocks already held are never asked for again).
//!
//! Shape rules, checked on every walk: the root is a tree block; a tree block of depth `d > 1`
//! has only tree blocks of depth `d − 1` as children, one of depth 1 only leaves; a tree
//! block's `size` is the sum of its children's. Because depth falls by one at every step, a
//! tree cannot loop, and a walk visits at most [`MAX_TREE_DEPTH`] levels.
//!
//! With convergent encryption ([`super::crypt`]) the same writer and walk do the work: the
//! writer seals each leaf and tree block as it makes it, the walk opens them with the keys it
//! finds on the way down; ids, depths and sizes stay in clear, so [`missing_blocks`] needs no
//! key.
//!
//! Memory: the writer holds one partial leaf (≤ 1 MiB) and, per level, the children of the
//! tree block being filled (≤ [`MAX_CHILDREN`] × 41 bytes, ≈ 330 KiB per level); a walk holds
//! one block per level.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};

use super::block::{
    Block, BlockError, BlockId, Child, TreeBlock, VerifiedBlock, KEY_LEN, MAX_BLOCK_DATA,
    MAX_CHILDREN, MAX_TREE_DEPTH,
};
use super::crypt::{self, ChildKeys, ConvergenceSecret};
use super::store::{BlockMeta, BlockStore, StoreError};

/// Why an object could not be split, stored or read.
#[derive(Debug)]
pub enum ObjectError {
    /// A block of the tree is not in the store.
    Missing(BlockId),
    /// A block breaks a block limit.
    Block(BlockError),
    /// The tree breaks a shape rule (the module doc): named.
    Shape(&'static str),
    /// The object has more levels than [`MAX_TREE_DEPTH`] allows.
    TooLarge,
    /// The store failed or refused.
    Store(StoreError),
    /// Reading the input or writing the output failed.
    Io(io::Error),
    /// An encrypted leaf does not open with the key its parent gives: the object's key is
    /// wrong or the ciphertext was tampered with.
    Decrypt(BlockId),
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectError::Missing(id) => write!(f, "block {id} is not held"),
            ObjectError::Block(e) => write!(f, "bad block: {e}"),
            ObjectError::Shape(what) => write!(f, "bad object tree: {what}"),
            ObjectError::TooLarge => write!(f, "object too large for {MAX_TREE_DEPTH} levels"),
            ObjectError::Store(e) => write!(f, "store: {e}"),
            ObjectError::Io(e) => write!(f, "{e}"),
            ObjectError::Decrypt(id) => write!(
                f,
                "block {id} does not decrypt: wrong object key or tampered ciphertext"
            ),
        }
    }
}

impl std::error::Error for ObjectError {}

/// Splits an object into blocks as its bytes come in.
///
/// Call [`ObjectWriter::write`] with the object's bytes in order, taking the blocks it returns
/// (leaves and finished tree blocks, children before their parents), then
/// [`ObjectWriter::finish`] for the last blocks and the root's id. The root is always a tree
/// block (an empty object is one empty leaf under a root of depth 1), so its `size` is the
/// object's.
pub struct ObjectWriter {
    /// Most bytes per leaf and most children per tree block.
    leaf_max: usize,
    fanout: usize,
    /// The leaf being filled.
    leaf: Vec<u8>,
    /// Per level `k`: the children (with their sizes) of the tree block of depth `k + 1` being
    /// filled.
    levels: Vec<Vec<(Child, u64)>>,
    /// Whether any leaf was made (an empty object still gets one).
    any_leaf: bool,
    size: u64,
    /// The convergence secret when the writer encrypts (see [`super::crypt`]).
    secret: Option<ConvergenceSecret>,
}

impl Default for ObjectWriter {
    fn default() -> Self {
        ObjectWriter::new()
    }
}

impl ObjectWriter {
    /// A writer for a new object: leaves of [`MAX_BLOCK_DATA`], up to [`MAX_CHILDREN`]
    /// children per tree block.
    pub fn new() -> ObjectWriter {
        ObjectWriter::with_shape(MAX_BLOCK_DATA, MAX_CHILDREN)
    }

    /// A writer with smaller leaves (1 ..= the limit) or tree blocks (2 ..= the limit): trees of
    /// several levels from small objects, for tests and for callers that want small blocks.
    pub fn with_shape(leaf_max: usize, fanout: usize) -> ObjectWriter {
        ObjectWriter::sealing(leaf_max, fanout, None)
    }

    /// A writer that encrypts with `secret` when one is given (then leaves hold at most
    /// [`crypt::MAX_LEAF_PLAINTEXT`] bytes of plaintext, so their ciphertext fits a block).
    pub(crate) fn sealing(
        leaf_max: usize,
        fanout: usize,
        secret: Option<ConvergenceSecret>,
    ) -> ObjectWriter {
        let most = match secret {
            Some(_) => crypt::MAX_LEAF_PLAINTEXT,
            None => MAX_BLOCK_DATA,
        };
        ObjectWriter {
            leaf_max: leaf_max.clamp(1, most),
            fanout: fanout.clamp(2, MAX_CHILDREN),
            leaf: Vec::new(),
            levels: Vec::new(),
            any_leaf: false,
            size: 0,
            secret,
        }
    }

    /// Takes the next bytes of the object; returns the blocks completed by them.
    pub fn write(&mut self, mut data: &[u8]) -> Result<Vec<VerifiedBlock>, ObjectError> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let take = (self.leaf_max - self.leaf.len()).min(data.len());
            self.leaf.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.size += take as u64;
            if self.leaf.len() == self.leaf_max {
                self.flush_leaf(&mut out)?;
            }
        }
        Ok(out)
    }

    /// The last blocks (the partial leaf, the unfinished tree blocks, the root) and the root's
    /// id and the object's size.
    pub fn finish(self) -> Result<(Vec<VerifiedBlock>, BlockId, u64), ObjectError> {
        let (out, root, size) = self.finish_keyed()?;
        Ok((out, root.id, size))
    }

    /// As [`ObjectWriter::finish`], with the root's key when the writer encrypts.
    pub(crate) fn finish_keyed(mut self) -> Result<(Vec<VerifiedBlock>, Child, u64), ObjectError> {
        let mut out = Vec::new();
        if !self.leaf.is_empty() || !self.any_leaf {
            self.flush_leaf(&mut out)?;
        }
        let mut k = 0;
        loop {
            let top = self.levels[k + 1..].iter().all(Vec::is_empty);
            if top && k > 0 && self.levels[k].len() == 1 {
                let root = self.levels[k][0].0.clone();
                return Ok((out, root, self.size));
            }
            if !self.levels[k].is_empty() {
                self.close_level(k, &mut out)?;
            }
            k += 1;
        }
    }

    fn flush_leaf(&mut self, out: &mut Vec<VerifiedBlock>) -> Result<(), ObjectError> {
        let data = std::mem::take(&mut self.leaf);
        let len = data.len() as u64;
        let (data, key) = match &self.secret {
            Some(secret) => {
                let (sealed, key) = crypt::seal_leaf(secret, data);
                (sealed, Some(key))
            }
            None => (data, None),
        };
        let block = VerifiedBlock::new(Block::Leaf(data)).map_err(ObjectError::Block)?;
        self.any_leaf = true;
        let id = block.id();
        out.push(block);
        self.push(0, Child { id, key }, len, out)
    }

    /// Adds a child to level `k`, closing the level's tree block when it is full.
    fn push(
        &mut self,
        k: usize,
        child: Child,
        size: u64,
        out: &mut Vec<VerifiedBlock>,
    ) -> Result<(), ObjectError> {
        // Level MAX_TREE_DEPTH holds only the root (a block of the deepest allowed depth).
        let top = usize::from(MAX_TREE_DEPTH);
        if k > top || (k == top && self.levels.get(k).is_some_and(|l| !l.is_empty())) {
            return Err(ObjectError::TooLarge);
        }
        while self.levels.len() <= k + 1 {
            self.levels.push(Vec::new());
        }
        self.levels[k].push((child, size));
        if self.levels[k].len() == self.fanout {
            self.close_level(k, out)?;
        }
        Ok(())
    }

    /// Makes the tree block of level `k` from its children and passes it up a level.
    fn close_level(&mut self, k: usize, out: &mut Vec<VerifiedBlock>) -> Result<(), ObjectError> {
        let children = std::mem::take(&mut self.levels[k]);
        let size = children.iter().map(|(_, s)| s).sum();
        let tree = TreeBlock {
            depth: (k + 1) as u8,
            size,
            children: children.into_iter().map(|(c, _)| c).collect(),
        };
        let (tree, key) = match &self.secret {
            Some(secret) => {
                let (sealed, key) = crypt::seal_tree(secret, tree);
                (sealed, Some(key))
            }
            None => (tree, None),
        };
        let block = VerifiedBlock::new(Block::Tree(tree)).map_err(ObjectError::Block)?;
        let id = block.id();
        // Its children are already out: parents always follow their children.
        out.push(block);
        self.push(k + 1, Child { id, key }, size, out)
    }
}

/// Splits everything `input` yields into blocks and stores them in `store` with `meta`;
/// returns the root's id and the object's size. Blocks are stored children first, so a
/// store that holds a tree block holds what came before it.
pub fn put_object(
    store: &dyn BlockStore,
    input: &mut dyn Read,
    meta: BlockMeta,
) -> Result<(BlockId, u64), ObjectError> {
    let (root, size) = store_object(store, input, meta, ObjectWriter::new())?;
    Ok((root.id, size))
}

/// Splits `input` with `w` and stores the blocks, children first; the root and the size.
pub(crate) fn store_object(
    store: &dyn BlockStore,
    input: &mut dyn Read,
    meta: BlockMeta,
    mut w: ObjectWriter,
) -> Result<(Child, u64), ObjectError> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ObjectError::Io(e)),
        };
        for b in w.write(&buf[..n])? {
            store.put(&b, meta).map_err(ObjectError::Store)?;
        }
    }
    let (last, root, size) = w.finish_keyed()?;
    for b in last {
        store.put(&b, meta).map_err(ObjectError::Store)?;
    }
    Ok((root, size))
}

/// The tree block `v`, checked against the depth its parent expects.
fn tree_of(v: &VerifiedBlock, depth: u8) -> Result<&TreeBlock, ObjectError> {
    let Block::Tree(t) = v.block() else {
        return Err(ObjectError::Shape("a leaf where a tree block belongs"));
    };
    if t.depth != depth {
        return Err(ObjectError::Shape(
            "a child's depth is not one below its parent's",
        ));
    }
    Ok(t)
}

fn fetch(store: &dyn BlockStore, id: &BlockId) -> Result<VerifiedBlock, ObjectError> {
    store
        .get(id)
        .map_err(ObjectError::Store)?
        .ok_or(ObjectError::Missing(*id))
}

/// Writes the object whose root is `root` from `store` to `out`, in order, checking the shape
/// rules and that the bytes written add up to every tree block's size (the root's is the
/// object's); returns that size. A tree may list one subtree many times, so a few held blocks
/// can declare a huge object: check the root's `size` against your own limit before reading
/// one that came from a peer. An encrypted object is refused (it needs its key:
/// [`crypt::read_encrypted_object`]).
pub fn read_object(
    store: &dyn BlockStore,
    root: &BlockId,
    out: &mut dyn Write,
) -> Result<u64, ObjectError> {
    read_keyed(store, root, None, out)
}

/// [`read_object`], decrypting with the root's key when one is given.
pub(crate) fn read_keyed(
    store: &dyn BlockStore,
    root: &BlockId,
    key: Option<&[u8; KEY_LEN]>,
    out: &mut dyn Write,
) -> Result<u64, ObjectError> {
    let v = fetch(store, root)?;
    let Block::Tree(t) = v.block() else {
        return Err(ObjectError::Shape("the root is a leaf"));
    };
    read_tree(store, &v, t.depth, key, out)
}

/// Writes the leaves under tree block `v` (expected at `depth`, opened with `key` when the
/// object is encrypted) in order; their total.
fn read_tree(
    store: &dyn BlockStore,
    v: &VerifiedBlock,
    depth: u8,
    key: Option<&[u8; KEY_LEN]>,
    out: &mut dyn Write,
) -> Result<u64, ObjectError> {
    let t = tree_of(v, depth)?;
    let mut keys = key.map(ChildKeys::new);
    let mut total = 0u64;
    for c in &t.children {
        let child_key = match (&mut keys, &c.key) {
            (Some(keys), Some(sealed)) => Some(keys.open(sealed)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ObjectError::Shape(
                    "an encrypted tree block lists a child without its key",
                ))
            }
            (None, Some(_)) => {
                return Err(ObjectError::Shape(
                    "the object is encrypted: reading it needs its key",
                ))
            }
        };
        let child = fetch(store, &c.id)?;
        if depth == 1 {
            let Block::Leaf(data) = child.block() else {
                return Err(ObjectError::Shape("a tree block where a leaf belongs"));
            };
            let plain = match &child_key {
                Some(k) => std::borrow::Cow::Owned(
                    crypt::open_leaf(k, data).ok_or(ObjectError::Decrypt(c.id))?,
                ),
                None => std::borrow::Cow::Borrowed(data),
            };
            out.write_all(&plain).map_err(ObjectError::Io)?;
            total += plain.len() as u64;
        } else {
            total += read_tree(store, &child, depth - 1, child_key.as_ref(), out)?;
        }
    }
    if total != t.size {
        return Err(ObjectError::Shape(
            "a tree block's children do not add up to its size",
        ));
    }
    Ok(total)
}

/// The blocks of the tree under `root` that `store` does not hold (or holds corrupted) and
/// that are known to be needed: the root itself if absent, else every absent child of every
/// held tree block, breadth first, each id once, at most `max` (at least 1). Held tree blocks
/// are read (so checked against their ids and the shape rules; a corrupted one counts as
/// missing); leaves are only looked up, and a corrupted leaf shows when the object is read. An
/// empty answer means the whole object is held.
///
/// A subtree listed twice is walked once: a few hostile tree blocks that list the same child
/// thousands of times cost one visit per distinct block (memory: 32 bytes per distinct id).
pub fn missing_blocks(
    store: &dyn BlockStore,
    root: &BlockId,
    max: usize,
) -> Result<Vec<BlockId>, ObjectError> {
    let max = max.max(1);
    let mut missing = Vec::new();
    let held = |id: &BlockId| -> Result<Option<VerifiedBlock>, ObjectError> {
        match store.get(id) {
            Ok(v) => Ok(v),
            // A block that no longer matches its id is as good as absent: fetch it again.
            Err(StoreError::Corrupt(_)) => Ok(None),
            Err(e) => Err(ObjectError::Store(e)),
        }
    };
    let mut seen = HashSet::from([*root]);
    // Ids, not blocks, wait in the queue: a level of tree blocks may be gigabytes.
    let mut queue = VecDeque::from([(*root, None)]);
    while let Some((id, depth)) = queue.pop_front() {
        let Some(v) = held(&id)? else {
            missing.push(id);
            if missing.len() >= max {
                return Ok(missing);
            }
            continue;
        };
        let depth = match (depth, v.block()) {
            (Some(d), _) => d,
            (None, Block::Tree(t)) => t.depth,
            (None, Block::Leaf(_)) => return Err(ObjectError::Shape("the root is a leaf")),
        };
        let t = tree_of(&v, depth)?;
        for c in &t.children {
            if !seen.insert(c.id) {
                continue;
            }
            if !store.contains(&c.id).map_err(ObjectError::Store)? {
                missing.push(c.id);
                if missing.len() >= max {
                    return Ok(missing);
                }
            } else if depth > 1 {
                queue.push_back((c.id, Some(depth - 1)));
            }
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests;
