//! Key agreement for relay layers: every node's X25519 key is the birational (Edwards →
//! Montgomery) image of its Ed25519 node key, so a node's relay key is known from its identity
//! alone — no advert field, nothing to sign, nothing to look up (docs/wire.md §12G.1).
//!
//! The secret half is the clamped scalar behind the node's signing key
//! (`SigningKey::to_scalar_bytes`, clamped by `mul_clamped`). Points of small order are refused
//! on both sides: a shared secret computed with one would be predictable.

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::montgomery::MontgomeryPoint;

use crate::identity::{Keypair, NodeIdentity};

/// The X25519 public key of `node`, or `None` if its Ed25519 key is not a valid point or is of
/// small order (such a node cannot be relayed to).
pub fn x25519_public(node: &NodeIdentity) -> Option<[u8; 32]> {
    let point = CompressedEdwardsY(node.0).decompress()?;
    if point.is_small_order() {
        return None;
    }
    Some(point.to_montgomery().0)
}

/// A node's X25519 secret, derived from its node key pair.
#[derive(Clone)]
pub struct DhSecret {
    scalar: [u8; 32],
    public: [u8; 32],
}

impl std::fmt::Debug for DhSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DhSecret({})",
            crate::identity::to_hex(&self.public[..4])
        )
    }
}

impl DhSecret {
    /// The relay secret of the node whose key pair is `node_key`.
    pub fn of_node(node_key: &Keypair) -> DhSecret {
        let scalar = node_key.x25519_scalar_bytes();
        DhSecret::from_scalar(scalar)
    }

    /// The secret of the (clamped) scalar `scalar`: ephemeral keys are made this way.
    pub fn from_scalar(scalar: [u8; 32]) -> DhSecret {
        let public = MontgomeryPoint::mul_base_clamped(scalar).0;
        DhSecret { scalar, public }
    }

    /// The public half.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The shared secret with `peer` (an X25519 public key), or `None` if `peer` is of small
    /// order (the result would be all zeros).
    pub fn agree(&self, peer: &[u8; 32]) -> Option<[u8; 32]> {
        let shared = MontgomeryPoint(*peer).mul_clamped(self.scalar).0;
        if shared == [0; 32] {
            return None;
        }
        Some(shared)
    }
}
