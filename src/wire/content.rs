//! Content ids on the wire: [`BlockId`], the BLAKE3 hash of a block's encoded form (the block
//! encoding itself, and what checks bytes against an id, are in the storage module's `block`).
//! Here, below the vocabulary, so that the Storage messages and local mail can name blocks.

use std::fmt;
use std::str::FromStr;

/// A block's content id: BLAKE3 of its encoded form.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, bincode::Encode, bincode::Decode, Default,
)]
pub struct BlockId(pub [u8; 32]);

impl BlockId {
    /// The id of `encoded` (the BLAKE3 hash of the bytes).
    pub fn of(encoded: &[u8]) -> BlockId {
        BlockId(*blake3::hash(encoded).as_bytes())
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockId({})", &self.to_string()[..16])
    }
}

/// Why a string is not a block id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseBlockIdError;

impl fmt::Display for ParseBlockIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a block id is 64 hexadecimal characters")
    }
}

impl std::error::Error for ParseBlockIdError {}

impl FromStr for BlockId {
    type Err = ParseBlockIdError;
    fn from_str(s: &str) -> Result<BlockId, ParseBlockIdError> {
        let bytes = crate::identity::from_hex(s).ok_or(ParseBlockIdError)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| ParseBlockIdError)?;
        Ok(BlockId(arr))
    }
}
