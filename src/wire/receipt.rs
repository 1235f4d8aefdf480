//! Storage receipts: a node's signed promise to keep a block until a time (§5.5.1 "chunk
//! commitment").
//!
//! A [`ChunkCommitment`] is signed by the holder's node key over the context
//! [`COMMITMENT_CONTEXT`] followed by the encoding of `(block, node, until)` (see docs/wire.md
//! §12E). Only [`ChunkCommitment::check`] yields a [`VerifiedCommitment`]: a receipt that has a
//! valid signature by the node it names and has not yet expired.

use std::fmt;

use crate::identity::{CheckedKey, Keypair, NodeIdentity, Signature};
use crate::time::Timestamp;
use crate::wire::content::BlockId;
use crate::wire::encode_to_vec;

/// Domain-separation tag of chunk-commitment signatures.
pub const COMMITMENT_CONTEXT: &[u8] = b"netmachine/v1/chunk-commitment\0";

/// Encoded length of a commitment: 32 (block) + 32 (node) + 8 (until) + 64 (signature).
pub const COMMITMENT_LEN: usize = 136;

/// A node's signed promise to store `block` until `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct ChunkCommitment {
    /// The block promised.
    pub block: BlockId,
    /// The node that holds it and signed the promise.
    pub node: NodeIdentity,
    /// The promise holds until this time (the block's expiry in the holder's store).
    pub until: Timestamp,
    /// Ed25519 signature by `node` over [`COMMITMENT_CONTEXT`] ‖ encode(block, node, until).
    pub sig: Signature,
}

/// Why a commitment is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptError {
    /// The signature does not verify under the named node's key (or the key is invalid).
    Forged,
    /// The promise ran out: `until` is not after `now`.
    Expired {
        /// The commitment's end.
        until: Timestamp,
        /// The time of the check.
        now: Timestamp,
    },
}

impl fmt::Display for ReceiptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiptError::Forged => f.write_str("storage receipt signature does not verify"),
            ReceiptError::Expired { until, now } => write!(
                f,
                "storage receipt expired at {} ms (now {} ms)",
                until.0, now.0
            ),
        }
    }
}

impl std::error::Error for ReceiptError {}

impl ChunkCommitment {
    fn signed_fields(&self) -> Vec<u8> {
        encode_to_vec(&(self.block, self.node, self.until))
    }

    /// Signs a promise by `key`'s node to keep `block` until `until`.
    pub fn sign(key: &Keypair, block: BlockId, until: Timestamp) -> ChunkCommitment {
        let mut c = ChunkCommitment {
            block,
            node: key.node_identity(),
            until,
            sig: Signature([0; 64]),
        };
        c.sig = key.sign_with_context(COMMITMENT_CONTEXT, &c.signed_fields(), &mut Vec::new());
        c
    }

    /// Checks the signature (strictly) and that the promise still holds at `now`.
    pub fn check(&self, now: Timestamp) -> Result<VerifiedCommitment, ReceiptError> {
        let key = CheckedKey::parse(&self.node.0).map_err(|_| ReceiptError::Forged)?;
        if !key.verify_strict(
            COMMITMENT_CONTEXT,
            &self.signed_fields(),
            &self.sig,
            &mut Vec::new(),
        ) {
            return Err(ReceiptError::Forged);
        }
        if self.until <= now {
            return Err(ReceiptError::Expired {
                until: self.until,
                now,
            });
        }
        Ok(VerifiedCommitment(*self))
    }
}

/// A commitment whose signature was checked and which had not expired when checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedCommitment(ChunkCommitment);

impl VerifiedCommitment {
    /// The checked commitment.
    pub fn commitment(&self) -> &ChunkCommitment {
        &self.0
    }

    /// The block promised.
    pub fn block(&self) -> BlockId {
        self.0.block
    }

    /// The holder.
    pub fn node(&self) -> NodeIdentity {
        self.0.node
    }

    /// Until when the promise holds.
    pub fn until(&self) -> Timestamp {
        self.0.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_commitment_checks_and_encodes_to_fixed_length() {
        let key = Keypair::from_seed(&[3; 32]);
        let c = ChunkCommitment::sign(&key, BlockId([1; 32]), Timestamp(1_000));
        let v = c.check(Timestamp(999)).unwrap();
        assert_eq!(v.node(), key.node_identity());
        assert_eq!(v.block(), BlockId([1; 32]));
        assert_eq!(encode_to_vec(&c).len(), COMMITMENT_LEN);
        let back: ChunkCommitment = crate::wire::decode_exact(&encode_to_vec(&c)).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn forged_and_expired_are_refused() {
        let key = Keypair::from_seed(&[3; 32]);
        let other = Keypair::from_seed(&[4; 32]);
        let c = ChunkCommitment::sign(&key, BlockId([1; 32]), Timestamp(1_000));
        let mut moved = c;
        moved.until = Timestamp(2_000);
        assert_eq!(moved.check(Timestamp(0)), Err(ReceiptError::Forged));
        let mut other_block = c;
        other_block.block = BlockId([2; 32]);
        assert_eq!(other_block.check(Timestamp(0)), Err(ReceiptError::Forged));
        let mut stolen = c;
        stolen.node = other.node_identity();
        assert_eq!(stolen.check(Timestamp(0)), Err(ReceiptError::Forged));
        assert!(matches!(
            c.check(Timestamp(1_000)),
            Err(ReceiptError::Expired { .. })
        ));
    }
}
