//! The wire codec: round trips, limits checked before allocating, versions and tags.

use super::*;
use crate::interdomain::psi::{Challenge, Offer, Proof};

fn samples() -> Vec<ClusteringMessage> {
    let now = Timestamp(1_700_000_000_000);
    let mut rng = SplitMix64::new(1);
    let d = descriptor(&key(1), &BTreeSet::from([domain(1)]), 3, now, &mut rng);
    vec![
        ClusteringMessage::Exchange {
            descriptors: vec![d.clone(), d.clone()],
        },
        ClusteringMessage::Reply {
            descriptors: vec![d],
        },
        ClusteringMessage::PsiOffer {
            session: 7,
            initiator_version: 2,
            responder_version: 3,
            count: 3,
            offer: Offer {
                salt: [9; 32],
                filter: vec![1, 2, 3],
            },
        },
        ClusteringMessage::PsiChallenge {
            session: 7,
            count: 2,
            challenge: Challenge {
                rrand: [1; 32],
                ckey: [2; 32],
                cset: vec![[3; 32], [4; 32]],
            },
        },
        ClusteringMessage::PsiProof {
            session: 7,
            proof: Proof {
                irand: [5; 32],
                rset: vec![[6; 32]],
            },
        },
    ]
}

#[test]
fn every_message_round_trips() {
    for m in samples() {
        let bytes = m.to_bytes();
        assert_eq!(ClusteringMessage::from_bytes(&bytes, 32, 32).unwrap(), m);
        // Truncated anywhere: refused, never a panic.
        for cut in [0, 4, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(ClusteringMessage::from_bytes(&bytes[..cut], 32, 32).is_err());
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            ClusteringMessage::from_bytes(&long, 32, 32),
            Err(WireError::TrailingBytes(1))
        ));
    }
}

#[test]
fn lists_over_the_receivers_limit_are_refused_before_decoding() {
    let m = &samples()[0];
    let bytes = m.to_bytes();
    assert!(matches!(
        ClusteringMessage::from_bytes(&bytes, 1, 32),
        Err(WireError::TooLarge { len: 2, max: 1, .. })
    ));
    // A length prefix claiming 2^40 descriptors in a short body.
    let mut lie = Vec::new();
    lie.extend_from_slice(&wire::CLUSTERING_VERSION.to_le_bytes());
    lie.extend_from_slice(&wire::TAG_EXCHANGE.to_le_bytes());
    lie.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        ClusteringMessage::from_bytes(&lie, 32, 32),
        Err(WireError::TooLarge { .. })
    ));
    let tags = &samples()[3];
    assert!(matches!(
        ClusteringMessage::from_bytes(&tags.to_bytes(), 32, 1),
        Err(WireError::TooLarge { len: 2, max: 1, .. })
    ));
    // A filter over the wire maximum.
    let big = ClusteringMessage::PsiOffer {
        session: 1,
        initiator_version: 1,
        responder_version: 1,
        count: 3,
        offer: Offer {
            salt: [0; 32],
            filter: vec![0; crate::interdomain::psi::MAX_WIRE_FILTER_BYTES + 1],
        },
    };
    assert!(matches!(
        ClusteringMessage::from_bytes(&big.to_bytes(), 32, 32),
        Err(WireError::TooLarge { .. })
    ));
}

#[test]
fn unknown_versions_and_tags_are_refused() {
    let mut bytes = samples()[4].to_bytes();
    bytes[0] = 2;
    assert_eq!(
        ClusteringMessage::from_bytes(&bytes, 32, 32),
        Err(WireError::UnknownVersion(2))
    );
    let mut bytes = samples()[4].to_bytes();
    bytes[4] = 9;
    assert!(matches!(
        ClusteringMessage::from_bytes(&bytes, 32, 32),
        Err(WireError::BadTag(_))
    ));
}
