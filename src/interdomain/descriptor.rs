//! Making and checking node descriptors ([`NodeDescriptor`], docs/wire.md §12C): a node's own
//! signed advert and its flipped membership filter, signed together by the node key.
//!
//! [`check_descriptor`] is the one gate a received descriptor passes before an engine keeps it:
//! the cheap checks first (filter parameters, expiry, a `created` time from the future), then
//! the two signatures. Only it yields a `Verified<NodeDescriptor>`. Which of two valid
//! descriptors of one node is newer is the caller's choice (the descriptor's `version`, then
//! `created`: [`crate::wire::Signed::freshness`]).

use std::time::Duration;

use crate::identity::{Keypair, Signature, SIGNATURE_LEN};
use crate::interdomain::blip::BlipParams;
use crate::time::Timestamp;
use crate::wire::advert::AdvertError;
use crate::wire::{MembershipFilter, NodeAdvert, NodeDescriptor, Signed, Verified};

/// How far in the future a descriptor's `created` time may be, for clocks that disagree: 10
/// minutes. A later one is refused ([`DescriptorError::FromTheFuture`]), so a node cannot make
/// a descriptor that stays "newest" by dating it ahead.
pub const MAX_CREATED_AHEAD: Duration = Duration::from_secs(10 * 60);

/// Why a descriptor was refused: one variant per rule a sender can break.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DescriptorError {
    /// The filter's bits or hashes are not the local BLIP parameters (its similarity and
    /// scores could not be compared with ours).
    WrongParams {
        /// The filter's bits.
        bits: u32,
        /// The filter's hashes.
        hashes: u8,
    },
    /// The filter's bytes do not match its bits.
    MalformedFilter,
    /// The advert inside has expired.
    Expired,
    /// `created` is more than [`MAX_CREATED_AHEAD`] after now.
    FromTheFuture,
    /// The node identity is not a valid, strong Ed25519 key.
    BadKey,
    /// The advert's own signature does not verify.
    BadAdvertSignature,
    /// The descriptor's signature does not verify (forged, or altered on the way).
    BadSignature,
}

impl DescriptorError {
    /// A short stable name, for counters and logs.
    pub fn label(&self) -> &'static str {
        match self {
            DescriptorError::WrongParams { .. } => "wrong_params",
            DescriptorError::MalformedFilter => "malformed_filter",
            DescriptorError::Expired => "expired",
            DescriptorError::FromTheFuture => "from_the_future",
            DescriptorError::BadKey => "bad_key",
            DescriptorError::BadAdvertSignature => "bad_advert_signature",
            DescriptorError::BadSignature => "bad_signature",
        }
    }
}

impl std::fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DescriptorError::WrongParams { bits, hashes } => write!(
                f,
                "descriptor filter has {bits} bits and {hashes} hashes, not the local parameters"
            ),
            DescriptorError::MalformedFilter => {
                write!(f, "descriptor filter length does not match its bits")
            }
            DescriptorError::Expired => write!(f, "descriptor advert has expired"),
            DescriptorError::FromTheFuture => write!(
                f,
                "descriptor created more than {} s ahead of the local clock",
                MAX_CREATED_AHEAD.as_secs()
            ),
            DescriptorError::BadKey => write!(f, "descriptor node identity is not a valid key"),
            DescriptorError::BadAdvertSignature => {
                write!(f, "descriptor advert signature does not verify")
            }
            DescriptorError::BadSignature => write!(f, "descriptor signature does not verify"),
        }
    }
}

impl std::error::Error for DescriptorError {}

/// This node's descriptor: `advert` (which must be the node's own, signed by `node_key`) and
/// `filter` under `version`, made at `created`, signed by `node_key`.
pub fn make_descriptor(
    node_key: &Keypair,
    advert: NodeAdvert,
    filter: MembershipFilter,
    version: u64,
    created: Timestamp,
) -> NodeDescriptor {
    debug_assert_eq!(
        advert.id,
        node_key.node_identity(),
        "not the node's own advert"
    );
    NodeDescriptor {
        advert,
        filter,
        version,
        created,
        sig: Signature([0; SIGNATURE_LEN]),
    }
    .sign(node_key)
}

/// Checks a received descriptor at `now` against the local BLIP `params`: the filter's bits
/// and hashes are ours and its bytes match, the advert has not expired, `created` is at most
/// [`MAX_CREATED_AHEAD`] ahead, the advert's own signature verifies and so does the
/// descriptor's (both by the node key the advert names).
pub fn check_descriptor(
    d: NodeDescriptor,
    now: Timestamp,
    params: &BlipParams,
) -> Result<Verified<NodeDescriptor>, DescriptorError> {
    if d.filter.bits != params.bits || d.filter.hashes != params.hashes {
        return Err(DescriptorError::WrongParams {
            bits: d.filter.bits,
            hashes: d.filter.hashes,
        });
    }
    if d.filter.bytes.len() != (d.filter.bits / 8) as usize {
        return Err(DescriptorError::MalformedFilter);
    }
    if d.advert.expired(now) {
        return Err(DescriptorError::Expired);
    }
    if d.created > now.after(MAX_CREATED_AHEAD) {
        return Err(DescriptorError::FromTheFuture);
    }
    d.advert.clone().verify().map_err(|e| match e {
        AdvertError::BadKey => DescriptorError::BadKey,
        _ => DescriptorError::BadAdvertSignature,
    })?;
    d.verify().map_err(|e| match e {
        AdvertError::BadKey => DescriptorError::BadKey,
        _ => DescriptorError::BadSignature,
    })
}
