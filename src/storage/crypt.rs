//! Convergent encryption of objects (spec notes §5.5.2, after the LOFIRE proposal there).
//!
//! Every block of an encrypted object has its own key, derived from its content, so the same
//! plaintext under the same convergence secret always becomes the same blocks (stores
//! deduplicate it) while nobody without the secret can test a guess of the plaintext:
//!
//! - **a block's key** is the BLAKE3 keyed hash, keyed by the 32-byte [`ConvergenceSecret`], of
//!   the block's *plaintext encoded form* ([`Block::encode`] of the leaf with its plaintext, or
//!   of the tree block with its children's keys in clear). The encoding's tag byte keeps leaf
//!   and tree keys apart;
//! - **a leaf** holds its plaintext sealed with ChaCha20-Poly1305 (`ring`) under its key, nonce
//!   0 and no associated data: a key is only ever used for the one plaintext it was derived
//!   from, so the nonce is never reused with a different message. The 16-byte tag makes a leaf
//!   hold at most [`MAX_LEAF_PLAINTEXT`] bytes of plaintext;
//! - **a tree block** keeps its children's ids, its depth and its plaintext `size` in clear
//!   (so [`missing_blocks`](super::tree::missing_blocks) walks an encrypted tree without a key,
//!   and a fetch can be planned by any holder), and each child's key XORed with 32 bytes of a
//!   keystream: the BLAKE3 extendable output, keyed by the tree block's own key, of
//!   [`CHILD_KEYS_CONTEXT`], child `i` taking bytes `32 i .. 32 i + 32`. The keys need no
//!   authentication of their own: the tree block's id covers its bytes, and a wrong key shows
//!   as a leaf that does not open;
//! - **an object's reference** is its root id and the root's key ([`ObjectRef`], written
//!   `ROOTHEX:KEYHEX`). Anyone holding the reference can read the object; the secret is only
//!   needed to write (and decides who can recognise a known plaintext).
//!
//! What stays visible to a holder: the tree's shape, each subtree's plaintext size, and which
//! blocks are shared between objects encrypted with the same secret.
//!
//! Reading refuses rather than guesses: a leaf that does not open is
//! [`ObjectError::Decrypt`], a tree block without a child key where one belongs (or a key where
//! none does) is [`ObjectError::Shape`]. Leaves are written out as they open, so a leaf
//! tampered with in the middle of an object stops the read after the bytes before it.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

use super::block::{
    BlockId, ParseBlockIdError, TreeBlock, VerifiedBlock, KEY_LEN, MAX_BLOCK_DATA, MAX_CHILDREN,
};
use super::store::{BlockMeta, BlockStore};
use super::tree::{read_keyed, store_object, ObjectError, ObjectWriter};

/// Length of the AEAD tag at the end of every encrypted leaf.
pub const TAG_LEN: usize = 16;

/// Most plaintext bytes per encrypted leaf: [`MAX_BLOCK_DATA`] − [`TAG_LEN`].
pub const MAX_LEAF_PLAINTEXT: usize = MAX_BLOCK_DATA - TAG_LEN;

/// The context string of the keystream that hides a tree block's child keys.
pub const CHILD_KEYS_CONTEXT: &[u8] = b"netmachine storage child keys v1";

/// A block's (or an object's) decryption key.
pub type ObjectKey = [u8; KEY_LEN];

/// The secret that keys the derivation of every block key. Objects encrypted with the same
/// secret deduplicate against each other; with different secrets they share no block.
#[derive(Clone, PartialEq, Eq)]
pub struct ConvergenceSecret([u8; 32]);

impl fmt::Debug for ConvergenceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConvergenceSecret(..)")
    }
}

impl ConvergenceSecret {
    /// The secret with these bytes.
    pub fn new(bytes: [u8; 32]) -> ConvergenceSecret {
        ConvergenceSecret(bytes)
    }

    /// The secret in a file's contents: exactly 32 bytes, or 64 hexadecimal characters
    /// (surrounding white space ignored), e.g. made with `head -c 32 /dev/urandom` or
    /// `openssl rand -hex 32`.
    pub fn parse(contents: &[u8]) -> Result<ConvergenceSecret, String> {
        if let Ok(raw) = <[u8; 32]>::try_from(contents) {
            return Ok(ConvergenceSecret(raw));
        }
        let text = std::str::from_utf8(contents)
            .map(str::trim)
            .map_err(|_| "a convergence secret is 32 bytes or 64 hex characters".to_string())?;
        crate::identity::from_hex(text)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(ConvergenceSecret)
            .ok_or_else(|| {
                format!(
                    "a convergence secret is 32 bytes or 64 hex characters, not {} bytes",
                    contents.len()
                )
            })
    }

    /// Reads the secret from the file at `path` (see [`ConvergenceSecret::parse`]); at most
    /// 1 KiB is read.
    pub fn from_file(path: &Path) -> Result<ConvergenceSecret, String> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut contents = Vec::new();
        file.take(1024)
            .read_to_end(&mut contents)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        ConvergenceSecret::parse(&contents).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The key of a block whose plaintext encoded form `parts` make up, in order.
    fn key_of(&self, parts: &[&[u8]]) -> ObjectKey {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        for p in parts {
            h.update(p);
        }
        *h.finalize().as_bytes()
    }
}

fn aead(key: &ObjectKey) -> LessSafeKey {
    // A 32-byte key is always the right length for ChaCha20-Poly1305.
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key"))
}

/// Encrypts a leaf's `plaintext` (at most [`MAX_LEAF_PLAINTEXT`] bytes); the ciphertext with
/// its tag, and the leaf's key.
pub(crate) fn seal_leaf(
    secret: &ConvergenceSecret,
    mut plaintext: Vec<u8>,
) -> (Vec<u8>, ObjectKey) {
    // The plaintext leaf's encoding: tag 0x00, u32 length, data (see `Block::encode`).
    let len = (plaintext.len() as u32).to_le_bytes();
    let key = secret.key_of(&[&[0u8], &len, &plaintext]);
    aead(&key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::empty(),
            &mut plaintext,
        )
        .expect("a leaf is far below the cipher's length limit");
    (plaintext, key)
}

/// Decrypts a leaf's ciphertext with `key`; `None` if it does not open (wrong key, tampered
/// bytes, shorter than a tag).
pub(crate) fn open_leaf(key: &ObjectKey, ciphertext: &[u8]) -> Option<Vec<u8>> {
    let mut buf = ciphertext.to_vec();
    let n = aead(key)
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::empty(),
            &mut buf,
        )
        .ok()?
        .len();
    buf.truncate(n);
    Some(buf)
}

/// The keystream that hides the child keys of the tree block whose key is given, read in
/// child order: [`ChildKeys::open`] (or sealing) once per child.
pub(crate) struct ChildKeys(blake3::OutputReader);

impl ChildKeys {
    /// The keystream of the tree block with key `tree_key`, at child 0.
    pub(crate) fn new(tree_key: &ObjectKey) -> ChildKeys {
        let mut h = blake3::Hasher::new_keyed(tree_key);
        h.update(CHILD_KEYS_CONTEXT);
        ChildKeys(h.finalize_xof())
    }

    /// The next child's key from its sealed form (XOR is its own inverse: this also seals).
    pub(crate) fn open(&mut self, sealed: &ObjectKey) -> ObjectKey {
        let mut pad = [0u8; KEY_LEN];
        self.0.fill(&mut pad);
        std::array::from_fn(|i| sealed[i] ^ pad[i])
    }
}

/// Seals a tree block whose children carry their keys in clear: its key (of that plaintext
/// form) and the block with the child keys hidden.
pub(crate) fn seal_tree(secret: &ConvergenceSecret, mut tree: TreeBlock) -> (TreeBlock, ObjectKey) {
    let key = secret.key_of(&[&super::block::Block::Tree(tree.clone()).encode()]);
    let mut pads = ChildKeys::new(&key);
    for c in &mut tree.children {
        if let Some(k) = &mut c.key {
            *k = pads.open(k);
        }
    }
    (tree, key)
}

/// Splits an object into encrypted blocks as its bytes come in: [`ObjectWriter`] with every
/// block sealed (the module doc). The same calls: [`EncryptingWriter::write`], then
/// [`EncryptingWriter::finish`], which also gives the root's key.
pub struct EncryptingWriter(ObjectWriter);

impl EncryptingWriter {
    /// A writer with the largest blocks: leaves of [`MAX_LEAF_PLAINTEXT`] plaintext bytes,
    /// [`MAX_CHILDREN`] children per tree block.
    pub fn new(secret: ConvergenceSecret) -> EncryptingWriter {
        EncryptingWriter::with_shape(MAX_LEAF_PLAINTEXT, MAX_CHILDREN, secret)
    }

    /// A writer with smaller leaves (1 ..= [`MAX_LEAF_PLAINTEXT`] plaintext bytes) or tree
    /// blocks (2 ..= [`MAX_CHILDREN`] children).
    pub fn with_shape(leaf_max: usize, fanout: usize, secret: ConvergenceSecret) -> Self {
        EncryptingWriter(ObjectWriter::sealing(leaf_max, fanout, Some(secret)))
    }

    /// Takes the next plaintext bytes; returns the (encrypted) blocks completed by them.
    pub fn write(&mut self, data: &[u8]) -> Result<Vec<VerifiedBlock>, ObjectError> {
        self.0.write(data)
    }

    /// The last blocks, the object's reference (root id and key) and its plaintext size.
    pub fn finish(self) -> Result<(Vec<VerifiedBlock>, ObjectRef, u64), ObjectError> {
        let (out, root, size) = self.0.finish_keyed()?;
        let key = root.key.expect("an encrypting writer keys its root");
        Ok((out, ObjectRef::encrypted(root.id, key), size))
    }
}

/// Encrypts everything `input` yields with `secret`, stores the blocks in `store` with `meta`
/// (children first), and returns the root's id, the root's key and the plaintext size.
pub fn put_encrypted_object(
    store: &dyn BlockStore,
    input: &mut dyn Read,
    meta: BlockMeta,
    secret: &ConvergenceSecret,
) -> Result<(BlockId, ObjectKey, u64), ObjectError> {
    let w = ObjectWriter::sealing(MAX_LEAF_PLAINTEXT, MAX_CHILDREN, Some(secret.clone()));
    let (root, size) = store_object(store, input, meta, w)?;
    let key = root.key.expect("an encrypting writer keys its root");
    Ok((root.id, key, size))
}

/// Decrypts the object with root `root` and key `root_key` from `store` to `out`, checking the
/// shape rules as [`read_object`](super::tree::read_object) does; returns its plaintext size.
/// A wrong key or a tampered leaf is [`ObjectError::Decrypt`].
pub fn read_encrypted_object(
    store: &dyn BlockStore,
    root: &BlockId,
    root_key: &ObjectKey,
    out: &mut dyn Write,
) -> Result<u64, ObjectError> {
    read_keyed(store, root, Some(root_key), out)
}

/// Reads the object `r` names, decrypting it when the reference carries a key.
pub fn read_object_ref(
    store: &dyn BlockStore,
    r: &ObjectRef,
    out: &mut dyn Write,
) -> Result<u64, ObjectError> {
    read_keyed(store, &r.root, r.key.as_ref(), out)
}

/// What names an object: its root's id and, for an encrypted object, the root's key.
///
/// Written `ROOTHEX` (64 hex characters) or `ROOTHEX:KEYHEX` (64 + `:` + 64). The key reads
/// the whole object: its `Debug` form hides it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// The root tree block's id.
    pub root: BlockId,
    /// The root's key, if the object is encrypted.
    pub key: Option<ObjectKey>,
}

impl ObjectRef {
    /// The reference of an unencrypted object.
    pub fn plain(root: BlockId) -> ObjectRef {
        ObjectRef { root, key: None }
    }

    /// The reference of an encrypted object.
    pub fn encrypted(root: BlockId, key: ObjectKey) -> ObjectRef {
        ObjectRef {
            root,
            key: Some(key),
        }
    }
}

impl fmt::Debug for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectRef")
            .field("root", &self.root)
            .field("encrypted", &self.key.is_some())
            .finish()
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.root)?;
        if let Some(k) = &self.key {
            f.write_str(":")?;
            for b in k {
                write!(f, "{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Why a string is not an object reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseObjectRefError;

impl fmt::Display for ParseObjectRefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "an object reference is 64 hexadecimal characters, or 64, ':' and 64 more (root:key)",
        )
    }
}

impl std::error::Error for ParseObjectRefError {}

impl From<ParseBlockIdError> for ParseObjectRefError {
    fn from(_: ParseBlockIdError) -> Self {
        ParseObjectRefError
    }
}

impl FromStr for ObjectRef {
    type Err = ParseObjectRefError;
    fn from_str(s: &str) -> Result<ObjectRef, ParseObjectRefError> {
        let (root, key) = match s.split_once(':') {
            Some((root, key)) => {
                let bytes = crate::identity::from_hex(key).ok_or(ParseObjectRefError)?;
                (
                    root,
                    Some(bytes.try_into().map_err(|_| ParseObjectRefError)?),
                )
            }
            None => (s, None),
        };
        Ok(ObjectRef {
            root: root.parse()?,
            key,
        })
    }
}

#[cfg(test)]
mod tests;
