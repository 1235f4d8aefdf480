//! The wire codec: round trips, and limits checked before any descriptor is decoded.

use super::super::wire::{SamplingMessage, MAX_WIRE_DESCRIPTORS, SAMPLING_VERSION, TAG_REPLY};
use super::{descriptor_for, keys};
use crate::time::Timestamp;
use crate::wire::WireError;

#[test]
fn messages_round_trip() {
    let ks = keys(10, 3);
    let now = Timestamp(1_700_000_000_000);
    let descriptors: Vec<_> = ks.iter().map(|k| descriptor_for(k, 4, now)).collect();
    for m in [
        SamplingMessage::Exchange {
            descriptors: descriptors.clone(),
        },
        SamplingMessage::Reply {
            descriptors: descriptors.clone(),
        },
        SamplingMessage::Reply {
            descriptors: vec![],
        },
    ] {
        let bytes = m.to_bytes();
        assert_eq!(&bytes[..4], &SAMPLING_VERSION.to_le_bytes());
        assert_eq!(SamplingMessage::from_bytes(&bytes, 16).unwrap(), m);
    }
}

#[test]
fn oversized_lists_and_bad_headers_are_refused() {
    let ks = keys(11, 1);
    let d = descriptor_for(&ks[0], 1, Timestamp(1));
    let m = SamplingMessage::Exchange {
        descriptors: vec![d.clone(); 5],
    };
    let bytes = m.to_bytes();
    assert!(matches!(
        SamplingMessage::from_bytes(&bytes, 4),
        Err(WireError::TooLarge { len: 5, max: 4, .. })
    ));
    // A count far beyond the bytes present is refused from the header alone.
    let mut lie = Vec::new();
    lie.extend_from_slice(&SAMPLING_VERSION.to_le_bytes());
    lie.extend_from_slice(&TAG_REPLY.to_le_bytes());
    lie.extend_from_slice(&(u64::MAX).to_le_bytes());
    assert!(matches!(
        SamplingMessage::from_bytes(&lie, MAX_WIRE_DESCRIPTORS),
        Err(WireError::TooLarge { .. })
    ));
    let mut other = bytes.clone();
    other[..4].copy_from_slice(&2u32.to_le_bytes());
    assert!(matches!(
        SamplingMessage::from_bytes(&other, 16),
        Err(WireError::UnknownVersion(2))
    ));
    let mut tag = bytes.clone();
    tag[4..8].copy_from_slice(&9u32.to_le_bytes());
    assert!(SamplingMessage::from_bytes(&tag, 16).is_err());
    assert!(SamplingMessage::from_bytes(&bytes[..bytes.len() - 1], 16).is_err());
    let mut trailing = bytes;
    trailing.push(0);
    assert!(SamplingMessage::from_bytes(&trailing, 16).is_err());
}
