//! Membership operations: the signed entries of a domain's membership log.
//!
//! An [`Op`] is `{ domain, author, seq, lamport, kind }` signed by the author's **node key**
//! over `OP_CONTEXT || encoding of those fields`. `seq` counts the author's operations in this
//! domain from 1; `lamport` is one more than the highest lamport the author had seen, so an
//! operation sorts after every operation it could have observed. [`OpId`] is the SHA-256 of
//! the whole signed operation (fields and signature) and names it everywhere: in
//! deduplication, in a `Remove`'s observed adds, in digests.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use crate::identity::{CheckedKey, DomainIdentity, Keypair, NodeIdentity, Signature};
use crate::wire::{decode_list, encode_list, encode_to_vec};

/// Domain-separation tag of membership operation signatures.
pub const OP_CONTEXT: &[u8] = b"netmachine/v1/domain-op\0";
/// Most add operations one `Remove` lists as observed.
pub const MAX_OBSERVED: usize = 32;
/// Longest member value an `Update` sets, in bytes.
pub const MAX_VALUE_BYTES: usize = 256;

/// The name of one operation: SHA-256 of its signed encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct OpId(pub [u8; 32]);

impl OpId {
    /// The first 8 bytes, for logs.
    pub fn short(&self) -> String {
        crate::identity::to_hex(&self.0[..4])
    }
}

/// What an operation does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// `member` joins (wire tag 0). `request` is the id of the join request it answers (none
    /// for members added without one: the genesis members a simulator or an operator adds).
    Add {
        /// The new member.
        member: NodeIdentity,
        /// The SHA-256 id of the `JoinRequest` this approves, if any.
        request: Option<[u8; 32]>,
    },
    /// `member` leaves (the author is the member) or is expelled (the author is an
    /// introducer) (wire tag 1). `observed` are the `Add` operations of the member the author
    /// had seen: a leave removes those only, so a concurrent re-join survives (add wins). An
    /// expulsion is final: the member's operations with `seq > cutoff_seq` are void, and no
    /// later add of it counts.
    Remove {
        /// The member removed.
        member: NodeIdentity,
        /// The add operations of `member` the author had seen (at most [`MAX_OBSERVED`]).
        observed: Vec<OpId>,
        /// For an expulsion: the last of the member's own operations that still counts.
        cutoff_seq: u64,
    },
    /// The author sets its own member value (last writer wins; wire tag 2).
    Update {
        /// The value (at most [`MAX_VALUE_BYTES`]).
        value: Vec<u8>,
    },
}

impl Encode for OpKind {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        match self {
            OpKind::Add { member, request } => {
                0u32.encode(e)?;
                member.encode(e)?;
                request.encode(e)
            }
            OpKind::Remove {
                member,
                observed,
                cutoff_seq,
            } => {
                1u32.encode(e)?;
                member.encode(e)?;
                encode_list(observed, e)?;
                cutoff_seq.encode(e)
            }
            OpKind::Update { value } => {
                2u32.encode(e)?;
                crate::wire::encode_bytes(value, e)
            }
        }
    }
}

impl Decode<()> for OpKind {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        match u32::decode(d)? {
            0 => Ok(OpKind::Add {
                member: Decode::decode(d)?,
                request: Decode::decode(d)?,
            }),
            1 => Ok(OpKind::Remove {
                member: Decode::decode(d)?,
                observed: decode_list(d, "observed", MAX_OBSERVED)?,
                cutoff_seq: Decode::decode(d)?,
            }),
            2 => Ok(OpKind::Update {
                value: crate::wire::decode_bytes(d, "value", MAX_VALUE_BYTES)?,
            }),
            other => Err(DecodeError::UnexpectedVariant {
                type_name: "OpKind",
                allowed: &bincode::error::AllowedEnumVariants::Range { min: 0, max: 2 },
                found: other,
            }),
        }
    }
}

/// One signed membership operation. Its [`OpId`] is computed on decode and on signing and
/// kept alongside (not sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The domain.
    pub domain: DomainIdentity,
    /// The node whose key signed it.
    pub author: NodeIdentity,
    /// The author's operation count in this domain, from 1.
    pub seq: u64,
    /// One more than the highest lamport the author had seen.
    pub lamport: u64,
    /// What it does.
    pub kind: OpKind,
    /// The author's node key signature.
    pub sig: Signature,
    id: OpId,
}

struct OpFields<'a>(&'a Op);

impl Encode for OpFields<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let o = self.0;
        o.domain.encode(e)?;
        o.author.encode(e)?;
        o.seq.encode(e)?;
        o.lamport.encode(e)?;
        o.kind.encode(e)
    }
}

impl Encode for Op {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        OpFields(self).encode(e)?;
        self.sig.encode(e)
    }
}

impl Decode<()> for Op {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        let mut op = Op {
            domain: Decode::decode(d)?,
            author: Decode::decode(d)?,
            seq: Decode::decode(d)?,
            lamport: Decode::decode(d)?,
            kind: Decode::decode(d)?,
            sig: Decode::decode(d)?,
            id: OpId([0; 32]),
        };
        op.id = op.compute_id();
        Ok(op)
    }
}

impl Op {
    /// A new operation signed by `key` (the author's node key).
    pub fn new_signed(
        key: &Keypair,
        domain: DomainIdentity,
        seq: u64,
        lamport: u64,
        kind: OpKind,
    ) -> Op {
        let mut op = Op {
            domain,
            author: key.node_identity(),
            seq,
            lamport,
            kind,
            sig: Signature([0; 64]),
            id: OpId([0; 32]),
        };
        op.sig = key.sign_with_context(OP_CONTEXT, &op.signed_fields(), &mut Vec::new());
        op.id = op.compute_id();
        op
    }

    /// The signed fields, encoded.
    pub fn signed_fields(&self) -> Vec<u8> {
        encode_to_vec(&OpFields(self))
    }

    fn compute_id(&self) -> OpId {
        let d = ring::digest::digest(&ring::digest::SHA256, &encode_to_vec(self));
        let mut id = [0u8; 32];
        id.copy_from_slice(d.as_ref());
        OpId(id)
    }

    /// The operation's id.
    pub fn id(&self) -> OpId {
        self.id
    }

    /// Whether the signature verifies (strictly) under the author's node key.
    pub fn verify(&self, scratch: &mut Vec<u8>) -> bool {
        let Ok(key) = CheckedKey::parse(&self.author.0) else {
            return false;
        };
        key.verify_strict(OP_CONTEXT, &self.signed_fields(), &self.sig, scratch)
    }

    /// The member the operation is about (the author for an `Update`).
    pub fn subject(&self) -> NodeIdentity {
        match &self.kind {
            OpKind::Add { member, .. } | OpKind::Remove { member, .. } => *member,
            OpKind::Update { .. } => self.author,
        }
    }

    /// The encoded size, in bytes.
    pub fn wire_len(&self) -> usize {
        // domain, author, seq, lamport, kind tag, sig, plus the kind's fields.
        32 + 32
            + 8
            + 8
            + 4
            + 64
            + match &self.kind {
                OpKind::Add { request, .. } => 32 + 1 + if request.is_some() { 32 } else { 0 },
                OpKind::Remove { observed, .. } => 32 + 8 + 32 * observed.len() + 8,
                OpKind::Update { value } => 8 + value.len(),
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode_exact;

    #[test]
    fn op_round_trips_verifies_and_ids_differ() {
        let key = Keypair::generate();
        let d = DomainIdentity([7; 32]);
        let op = Op::new_signed(
            &key,
            d,
            1,
            1,
            OpKind::Remove {
                member: key.node_identity(),
                observed: vec![OpId([1; 32])],
                cutoff_seq: 0,
            },
        );
        let bytes = encode_to_vec(&op);
        assert_eq!(bytes.len(), op.wire_len());
        let back: Op = decode_exact(&bytes).unwrap();
        assert_eq!(back, op);
        assert_eq!(back.id(), op.id());
        assert!(back.verify(&mut Vec::new()));
        let mut forged = back.clone();
        forged.seq = 2;
        assert!(!forged.verify(&mut Vec::new()));
        let other = Op::new_signed(&key, d, 2, 2, OpKind::Update { value: vec![1] });
        assert_ne!(other.id(), op.id());
        assert_eq!(encode_to_vec(&other).len(), other.wire_len());
        let add = Op::new_signed(
            &key,
            d,
            3,
            3,
            OpKind::Add {
                member: NodeIdentity([3; 32]),
                request: Some([9; 32]),
            },
        );
        assert_eq!(encode_to_vec(&add).len(), add.wire_len());
    }
}
