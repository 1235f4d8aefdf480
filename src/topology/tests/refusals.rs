//! Bad input to one Topology engine: malformed bodies, ttls, floods, wrong origins, and the
//! bounds on watchers and domains — refused, counted, never acted on.

use std::collections::BTreeMap;

use super::*;

#[test]
fn bad_bodies_ttls_and_floods_are_refused_and_counted() {
    let mut f = one(TopologyLimits::default(), 5);
    let domain = f.domain;
    f.befriend(node(1));
    f.befriend(node(2));
    f.seen();
    f.remote_bytes(node(1), &[1, 2, 3]);
    assert_eq!(f.stat(|s| &s.malformed), 1);
    let mut v2 = TopologyMessage::Keepalive { domain }.to_bytes();
    v2[0] = 2;
    f.remote_bytes(node(1), &v2);
    assert_eq!(f.stat(|s| &s.unknown_version), 1);
    let mut trailing = TopologyMessage::Keepalive { domain }.to_bytes();
    trailing.push(0);
    f.remote_bytes(node(1), &trailing);
    assert_eq!(f.stat(|s| &s.malformed), 2);
    let big = TopologyMessage::Shuffle {
        domain,
        origin: node(1),
        ttl: 1,
        nodes: (0..17).map(node).collect(),
    };
    f.remote(node(1), big);
    assert_eq!(f.stat(|s| &s.oversized), 1);
    f.remote(
        node(1),
        TopologyMessage::ForwardJoin {
            domain,
            new_node: node(3),
            ttl: 7,
        },
    );
    f.remote(
        node(1),
        TopologyMessage::Shuffle {
            domain,
            origin: node(1),
            ttl: 200,
            nodes: vec![],
        },
    );
    assert_eq!(f.stat(|s| &s.bad_ttl), 2);
    let unasked = (3..=5)
        .map(node)
        .find(|n| !f.engine.overlays[&domain].pending.contains_key(n))
        .unwrap();
    f.seen();
    f.remote(
        unasked,
        TopologyMessage::NeighborReply {
            domain,
            accepted: true,
        },
    );
    assert_eq!(f.stat(|s| &s.unsolicited), 1);
    // It took us in unasked: told to let go.
    assert_eq!(
        f.seen().sent_to(unasked),
        vec![&TopologyMessage::Disconnect { domain }]
    );
    f.seen();
    // A member flooding shuffles: past the burst, refused until its bucket refills.
    let before = f.stat(|s| &s.rate_limited);
    for _ in 0..500 {
        f.remote(
            node(2),
            TopologyMessage::Shuffle {
                domain,
                origin: node(2),
                ttl: 1,
                nodes: vec![node(3)],
            },
        );
    }
    let limited = f.stat(|s| &s.rate_limited) - before;
    assert!((295..=305).contains(&limited), "{limited}");
    let replies = f
        .seen()
        .sent_to(node(2))
        .iter()
        .filter(|m| matches!(m, TopologyMessage::ShuffleReply { .. }))
        .count();
    assert!(replies <= 210, "{replies}");
    // Its keepalives still count (liveness is not rate-limited).
    f.remote(node(2), TopologyMessage::Keepalive { domain });
    assert_eq!(f.stat(|s| &s.rate_limited) - before, limited);
    // Memory stays bounded: the passive view never exceeds its limit.
    assert!(f.engine.passive_view(&domain).len() <= 30);
    // Everything refused shows in the probe's refusal list.
    let refusals: BTreeMap<_, _> = f.engine.probe().stats().refusals().into_iter().collect();
    assert_eq!(refusals["oversized"], 1);
    assert_eq!(refusals["bad_ttl"], 2);
}

/// A remote message through `handle`, signed by the engine `src` of node `node`, arrived over
/// a connection authenticated as `via`.
fn signed(f: &One, node_key: &Keypair, via: NodeIdentity, body: Vec<u8>) -> Input {
    let src = node_key.derive_engine(TOPOLOGY_ENGINE_NAME);
    let mut m = EngineMessage {
        src: src.engine_identity(),
        src_node: node_key.node_identity(),
        dst: Destination::Node(f.me),
        id: MessageId(1),
        reply_to: None,
        expiry: None,
        rprefs: None,
        tprefs: None,
        protocol: Protocol::TOPOLOGY,
        body,
        sig: None,
    };
    let mut wire = Vec::new();
    m.sign_into_wire(&src, &mut wire, &mut Vec::new());
    let key = CheckedKey::parse(src.engine_identity().as_bytes()).unwrap();
    let verified = Unverified::decode(wire)
        .unwrap()
        .verify(&key, &mut Vec::new())
        .unwrap();
    Input::Message(Message::remote(verified, via))
}

#[test]
fn remote_messages_count_only_from_their_own_node() {
    let peer = Keypair::from_seed(&[5; 32]);
    let mut f = one(TopologyLimits::default(), 0);
    let domain = f.domain;
    f.local(
        DOMAIN_ENGINE,
        ViewMail::Members {
            domain,
            here: true,
            added: vec![peer.node_identity()],
            removed: vec![],
            introducers: vec![],
        },
    );
    f.seen();
    let body = TopologyMessage::Neighbor {
        domain,
        high_priority: false,
    }
    .to_bytes();
    // Relayed by another node: refused.
    let input = signed(&f, &peer, node(3), body.clone());
    f.engine.handle(&mut f.ctx, input);
    assert_eq!(f.stat(|s| &s.bad_origin), 1);
    assert!(f.engine.active_view(&domain).is_empty());
    // Straight from it: accepted.
    let input = signed(&f, &peer, peer.node_identity(), body);
    f.engine.handle(&mut f.ctx, input);
    assert_eq!(f.engine.active_view(&domain), vec![peer.node_identity()]);
    // Local mail is acted on only when local: a ViewMail from a remote node is no topology
    // message.
    let fake = ViewMail::Members {
        domain,
        here: false,
        added: vec![],
        removed: vec![],
        introducers: vec![],
    };
    let input = signed(&f, &peer, peer.node_identity(), fake.encode());
    f.engine.handle(&mut f.ctx, input);
    assert_eq!(f.stat(|s| &s.malformed), 1);
    assert_eq!(f.engine.active_view(&domain), vec![peer.node_identity()]);
    // A view event sent to the Topology engine is refused.
    f.local(
        WATCHER,
        ViewMail::PeerAddedToView {
            domain,
            node: node(1),
        },
    );
    assert_eq!(f.stat(|s| &s.unexpected_mail), 1);
}

#[test]
fn watchers_and_domains_are_bounded() {
    let limits = TopologyLimits {
        max_watchers: 2,
        max_domains: 1,
        ..TopologyLimits::default()
    };
    let mut f = one(limits, 2);
    let domain = f.domain;
    for w in 0..4 {
        f.local(EngineIdentity([w; 32]), ViewMail::Watch { domain });
    }
    assert_eq!(f.stat(|s| &s.watchers_full), 2);
    f.local(
        DOMAIN_ENGINE,
        ViewMail::Members {
            domain: DomainIdentity([1; 32]),
            here: true,
            added: vec![node(1)],
            removed: vec![],
            introducers: vec![],
        },
    );
    assert_eq!(f.stat(|s| &s.domains_full), 1);
    assert_eq!(f.engine.probe().domains(), vec![domain]);
}
