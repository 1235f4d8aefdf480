//! The Topology messages' encoding: the layout docs/wire.md states, round trips, and the
//! bounds on decode.

use super::super::wire::*;
use crate::identity::{DomainIdentity, NodeIdentity};
use crate::wire::WireError;

fn all() -> Vec<TopologyMessage> {
    let domain = DomainIdentity([3; 32]);
    let n = |b| NodeIdentity([b; 32]);
    vec![
        TopologyMessage::Join { domain },
        TopologyMessage::ForwardJoin {
            domain,
            new_node: n(1),
            ttl: 6,
        },
        TopologyMessage::Neighbor {
            domain,
            high_priority: true,
        },
        TopologyMessage::NeighborReply {
            domain,
            accepted: false,
        },
        TopologyMessage::Disconnect { domain },
        TopologyMessage::Shuffle {
            domain,
            origin: n(2),
            ttl: 5,
            nodes: vec![n(2), n(4)],
        },
        TopologyMessage::ShuffleReply {
            domain,
            nodes: vec![n(5)],
        },
        TopologyMessage::Keepalive { domain },
    ]
}

#[test]
fn every_message_round_trips_with_its_tag() {
    for (i, m) in all().into_iter().enumerate() {
        let b = m.to_bytes();
        assert_eq!(&b[0..4], &TOPOLOGY_VERSION.to_le_bytes());
        assert_eq!(&b[4..8], &(i as u32 + 1).to_le_bytes(), "{}", m.kind());
        assert_eq!(&b[8..40], &[3; 32]);
        assert_eq!(TopologyMessage::from_bytes(&b, 16).unwrap(), m);
        // Every strict prefix is refused.
        for cut in 0..b.len() {
            assert!(TopologyMessage::from_bytes(&b[..cut], 16).is_err());
        }
    }
}

#[test]
fn the_layout_is_the_documented_one() {
    let m = TopologyMessage::Shuffle {
        domain: DomainIdentity([3; 32]),
        origin: NodeIdentity([2; 32]),
        ttl: 5,
        nodes: vec![NodeIdentity([4; 32])],
    };
    let mut want = vec![1, 0, 0, 0, 6, 0, 0, 0];
    want.extend([3; 32]);
    want.extend([2; 32]);
    want.push(5);
    want.extend(1u64.to_le_bytes());
    want.extend([4; 32]);
    assert_eq!(m.to_bytes(), want);
    let n = TopologyMessage::Neighbor {
        domain: DomainIdentity([3; 32]),
        high_priority: true,
    };
    assert_eq!(n.to_bytes()[40..], [1]);
}

#[test]
fn bad_bodies_are_refused_by_kind() {
    let long = TopologyMessage::ShuffleReply {
        domain: DomainIdentity([3; 32]),
        nodes: vec![NodeIdentity([1; 32]); 17],
    };
    assert!(matches!(
        TopologyMessage::from_bytes(&long.to_bytes(), 16),
        Err(WireError::TooLarge { len: 17, .. })
    ));
    assert!(TopologyMessage::from_bytes(&long.to_bytes(), 17).is_ok());
    // A forged count far beyond the bytes present costs nothing.
    let mut forged = TopologyMessage::ShuffleReply {
        domain: DomainIdentity([3; 32]),
        nodes: vec![],
    }
    .to_bytes();
    forged.truncate(40);
    forged.extend(u64::MAX.to_le_bytes());
    assert!(TopologyMessage::from_bytes(&forged, 16).is_err());
    let mut v = TopologyMessage::Join {
        domain: DomainIdentity([3; 32]),
    }
    .to_bytes();
    v[0] = 9;
    assert_eq!(
        TopologyMessage::from_bytes(&v, 16),
        Err(WireError::UnknownVersion(9))
    );
    let mut t = TopologyMessage::Join {
        domain: DomainIdentity([3; 32]),
    }
    .to_bytes();
    t[4] = 99;
    assert!(matches!(
        TopologyMessage::from_bytes(&t, 16),
        Err(WireError::BadTag(_))
    ));
    let mut b = TopologyMessage::Neighbor {
        domain: DomainIdentity([3; 32]),
        high_priority: true,
    }
    .to_bytes();
    b[40] = 2;
    assert!(TopologyMessage::from_bytes(&b, 16).is_err());
}
