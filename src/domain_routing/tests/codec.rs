//! The wire format's bounds: round trips, lengths over their limits refused before
//! allocating, unknown versions and tags, trailing bytes.

use super::*;
use crate::wire::WireError;

fn sample(net: &Net) -> (DomainRequest, DomainResponse) {
    let mut r = request(net, 0, domain(1), &[0, 1]);
    r.src_advert = Some(advert(&net.nodes[0].key));
    let mut resp = response(net, 2, 0, 5, domain(1), &[2, 1, 0]);
    resp.member_advert = Some(advert(&net.nodes[2].key));
    resp.result = Err("nope".into());
    resp.advert = Some(vec![1, 2, 3]);
    (r, resp.sign(&net.nodes[2].key))
}

#[test]
fn messages_round_trip_and_signatures_cover_every_field() {
    let net = Net::new(3, |_| RoutingSettings::default());
    let (r, resp) = sample(&net);
    for m in [
        RoutingMessage::Request(r),
        RoutingMessage::Response(resp.clone()),
    ] {
        assert_eq!(RoutingMessage::from_bytes(&m.to_bytes()).unwrap(), m);
    }
    assert!(resp.verify());
    assert_eq!(resp.hops(), 2);
    let mut changed = resp.clone();
    changed.path.swap(1, 2);
    assert!(!changed.verify());
    let mut changed = resp.clone();
    changed.advert = None;
    assert!(!changed.verify());
    let mut changed = resp;
    changed.dst = net.nodes[1].id();
    assert!(!changed.verify());
}

#[test]
fn oversized_and_malformed_bodies_are_refused() {
    let net = Net::new(3, |_| RoutingSettings::default());
    let (mut r, _) = sample(&net);
    // A path longer than MAX_PATH.
    r.path = (0..=wire::MAX_PATH as u8)
        .map(|i| NodeIdentity([i; 32]))
        .collect();
    let err = RoutingMessage::from_bytes(&RoutingMessage::Request(r.clone()).to_bytes());
    assert!(matches!(err, Err(WireError::TooLarge { .. })), "{err:?}");
    // A body over 64 KiB.
    r.path.truncate(2);
    r.body = vec![0; wire::MAX_BODY + 1];
    let err = RoutingMessage::from_bytes(&RoutingMessage::Request(r.clone()).to_bytes());
    assert!(matches!(err, Err(WireError::TooLarge { .. })), "{err:?}");
    // A forged count claiming more than the bytes present.
    r.body = vec![];
    let mut bytes = RoutingMessage::Request(r).to_bytes();
    let at = bytes.len() - 8;
    bytes[at..].copy_from_slice(&(1u64 << 15).to_le_bytes());
    assert!(RoutingMessage::from_bytes(&bytes).is_err());
    // Unknown version and tag, trailing bytes.
    let (r, _) = sample(&net);
    let good = RoutingMessage::Request(r).to_bytes();
    let mut v = good.clone();
    v[0] = 2;
    assert_eq!(
        RoutingMessage::from_bytes(&v),
        Err(WireError::UnknownVersion(2))
    );
    let mut t = good.clone();
    t[4] = 7;
    assert!(matches!(
        RoutingMessage::from_bytes(&t),
        Err(WireError::BadTag(_))
    ));
    let mut trailing = good;
    trailing.push(0);
    assert_eq!(
        RoutingMessage::from_bytes(&trailing),
        Err(WireError::TrailingBytes(1))
    );
}
