//! Bad input against one engine: every refusal counted, nothing acted on.

use super::*;
use crate::interdomain::psi::{Initiator, PsiParams};

struct Fixture {
    me: Node,
    rng: SplitMix64,
    now: Now,
}

fn fixture(settings: ClusteringSettings) -> Fixture {
    let mut rng = SplitMix64::new(0x5e5);
    let now = Now::read();
    let me = Node::new(0, BTreeSet::from([domain(1), domain(2), domain(3)]), settings, now, &mut rng);
    Fixture { me, rng, now }
}

impl Fixture {
    fn peer(&mut self, i: u32, domains: &[u32]) -> NodeDescriptor {
        let set = domains.iter().map(|d| domain(*d)).collect();
        descriptor(&key(i), &set, 1, self.now.wall, &mut self.rng)
    }

    fn send(&mut self, from: NodeIdentity, m: &ClusteringMessage) -> Vec<(NodeIdentity, ClusteringMessage)> {
        self.me.deliver(from, &m.to_bytes());
        self.me.sent()
    }

    /// Offers PSI from node `i` over `domains`; returns the initiator state, the session and
    /// what the engine sent back.
    fn offer(&mut self, i: u32, session: u64, domains: &[u32]) -> (Initiator, Vec<(NodeIdentity, ClusteringMessage)>) {
        let set = domains.iter().map(|d| domain(*d)).collect();
        let (init, offer) = Initiator::start(PsiParams::default(), &set, [i as u8; 32]);
        let from = key(i).node_identity();
        let m = ClusteringMessage::PsiOffer {
            session,
            initiator_version: 1,
            responder_version: self.me.desc.version,
            count: 3,
            offer,
        };
        (init, self.send(from, &m))
    }
}

#[test]
fn a_full_psi_as_responder_then_every_replay_is_refused() {
    let mut f = fixture(ClusteringSettings::default());
    let from = key(9).node_identity();
    let (init, out) = f.offer(9, 42, &[2, 3, 4]);
    let [(to, ClusteringMessage::PsiChallenge { session: 42, challenge, .. })] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(*to, from);
    let (mine, proof) = init.on_challenge(challenge, [7; 32]).unwrap();
    assert_eq!(mine, BTreeSet::from([domain(2), domain(3)]));
    let proof_msg = ClusteringMessage::PsiProof { session: 42, proof };
    assert!(f.send(from, &proof_msg).is_empty());
    assert_eq!(f.me.stat(|s| &s.psi_done_responder), 1);
    let outcome = f.me.engine.probe().psi_with(&from).unwrap();
    assert_eq!(outcome.shared, vec![domain(2), domain(3)]);
    // The same proof again, the same offer again, a new offer at the same versions.
    assert!(f.send(from, &proof_msg).is_empty());
    let (_, out) = f.offer(9, 42, &[2, 3, 4]);
    assert!(out.is_empty());
    let (_, out) = f.offer(9, 43, &[2, 3, 4]);
    assert!(out.is_empty());
    assert_eq!(f.me.stat(|s| &s.psi_replayed), 3);
    // After psi_rerun the peer may run it again (it may have lost its result).
    f.me.advance(ClusteringLimits::default().psi_rerun + Duration::from_secs(1));
    let (_, out) = f.offer(9, 44, &[2, 3, 4]);
    assert_eq!(out.len(), 1);
}

#[test]
fn out_of_order_stale_overfull_and_oversized_psi_messages_are_refused() {
    let mut f = fixture(ClusteringSettings::default());
    let from = key(9).node_identity();
    // A challenge and a proof for no session.
    let (init, out) = f.offer(9, 1, &[1]);
    let [(_, ClusteringMessage::PsiChallenge { challenge, .. })] = &out[..] else {
        panic!()
    };
    let stray = ClusteringMessage::PsiChallenge {
        session: 1,
        count: 1,
        challenge: challenge.clone(),
    };
    assert!(f.send(from, &stray).is_empty(), "the engine is the responder of session 1");
    let (_, proof) = init.on_challenge(challenge, [1; 32]).unwrap();
    let wrong = ClusteringMessage::PsiProof { session: 2, proof };
    assert!(f.send(from, &wrong).is_empty());
    assert_eq!(f.me.stat(|s| &s.psi_out_of_order), 2);
    // An offer naming an old version of this node.
    let (_, offer) = Initiator::start(PsiParams::default(), &BTreeSet::new(), [0; 32]);
    let other = key(10).node_identity();
    let stale = ClusteringMessage::PsiOffer {
        session: 5,
        initiator_version: 1,
        responder_version: f.me.desc.version + 1,
        count: 3,
        offer: offer.clone(),
    };
    assert!(f.send(other, &stale).is_empty());
    assert_eq!(f.me.stat(|s| &s.psi_stale), 1);
    // An all-ones filter: it would match every domain of this node.
    let mut full = offer;
    full.filter.iter_mut().for_each(|b| *b = 0xff);
    let m = ClusteringMessage::PsiOffer {
        session: 6,
        initiator_version: 1,
        responder_version: f.me.desc.version,
        count: 3,
        offer: full,
    };
    assert!(f.send(other, &m).is_empty());
    assert_eq!(f.me.stat(|s| &s.psi_bad_filter), 1);
    // Too many tags: refused at decode.
    let m = ClusteringMessage::PsiProof {
        session: 1,
        proof: crate::interdomain::psi::Proof {
            irand: [0; 32],
            rset: (0..40u8).map(|i| [i; 32]).collect(),
        },
    };
    assert!(f.send(from, &m).is_empty());
    assert_eq!(f.me.stat(|s| &s.oversized), 1);
    // The open session times out.
    f.me.advance(Duration::from_secs(6));
    f.me.tick();
    assert_eq!(f.me.stat(|s| &s.psi_timeouts), 1);
}

#[test]
fn psi_sessions_and_offers_are_bounded() {
    let settings = ClusteringSettings {
        limits: ClusteringLimits {
            psi_sessions: 2,
            psi_offers_per_period: 3,
            ..ClusteringLimits::default()
        },
        ..ClusteringSettings::default()
    };
    let mut f = fixture(settings);
    for i in 20..24 {
        f.offer(i, i as u64, &[1]);
    }
    assert_eq!(f.me.stat(|s| &s.psi_busy), 2);
    assert_eq!(f.me.stat(|s| &s.sent_psi_challenge), 2);
    // psi_offers_per_period (3): with room for sessions, the fourth offer of a period is
    // refused by the rate until the next tick.
    f.me.advance(Duration::from_secs(6));
    f.me.tick();
    f.me.sent();
    assert_eq!(f.me.stat(|s| &s.psi_timeouts), 2);
    for i in 30..34 {
        f.offer(i, i as u64, &[1]);
        let now = f.me.ctx.now().instant + Duration::from_secs(10);
        f.me.engine.expire_sessions(now);
    }
    assert_eq!(f.me.stat(|s| &s.sent_psi_challenge), 5);
    assert_eq!(f.me.stat(|s| &s.rate_limited), 1);
    f.me.tick();
    f.offer(40, 40, &[1]);
    assert_eq!(f.me.stat(|s| &s.sent_psi_challenge), 6);
    // Off: every PSI message refused.
    let mut off = fixture(ClusteringSettings {
        psi: false,
        ..ClusteringSettings::default()
    });
    off.offer(9, 1, &[1]);
    assert_eq!(off.me.stat(|s| &s.psi_disabled), 1);
}

#[test]
fn bad_exchanges_are_refused() {
    let settings = ClusteringSettings {
        limits: ClusteringLimits {
            answers_per_period: 2,
            ..ClusteringLimits::default()
        },
        ..ClusteringSettings::default()
    };
    let mut f = fixture(settings);
    let a = f.peer(1, &[1]);
    let from = a.node();
    // The first descriptor is not the sender's.
    let b = f.peer(2, &[2]);
    let out = f.send(from, &ClusteringMessage::Exchange { descriptors: vec![b.clone(), a.clone()] });
    assert!(out.is_empty());
    assert_eq!(f.me.stat(|s| &s.no_sender_descriptor), 1);
    // A forged descriptor (signature over other bits) among good ones: it alone is dropped.
    let mut forged = f.peer(3, &[3]);
    forged.filter.bytes[0] ^= 1;
    let out = f.send(from, &ClusteringMessage::Exchange { descriptors: vec![a.clone(), forged.clone(), b] });
    assert!(matches!(&out[..], [(to, ClusteringMessage::Reply { .. })] if *to == from));
    assert_eq!(f.me.stat(|s| &s.bad_descriptor), 1);
    let view: Vec<NodeIdentity> = f.me.engine.probe().view().iter().map(|l| l.node).collect();
    assert!(!view.contains(&forged.node()));
    assert!(view.contains(&from));
    // Over answers_per_period (2) in one period.
    f.send(from, &ClusteringMessage::Exchange { descriptors: vec![a.clone()] });
    let out = f.send(from, &ClusteringMessage::Exchange { descriptors: vec![a.clone()] });
    assert!(out.is_empty());
    assert_eq!(f.me.stat(|s| &s.rate_limited), 1);
    // A reply nothing asked for.
    f.send(from, &ClusteringMessage::Reply { descriptors: vec![a.clone()] });
    assert_eq!(f.me.stat(|s| &s.unsolicited), 1);
    // 33 descriptors: over max_descriptors (32).
    let many = vec![a.clone(); 33];
    f.me.tick();
    f.me.sent();
    assert!(f.send(from, &ClusteringMessage::Exchange { descriptors: many }).is_empty());
    assert_eq!(f.me.stat(|s| &s.oversized), 1);
    // Garbage and an older descriptor than held.
    f.me.deliver(from, b"\x01\x00\x00\x00garbage");
    assert_eq!(f.me.stat(|s| &s.malformed), 1);
    let mut newer = descriptor(&key(1), &BTreeSet::from([domain(1)]), 5, f.now.wall, &mut f.rng);
    newer = newer.sign(&key(1));
    f.send(from, &ClusteringMessage::Exchange { descriptors: vec![newer] });
    f.send(from, &ClusteringMessage::Exchange { descriptors: vec![a] });
    assert_eq!(f.me.stat(|s| &s.stale_descriptor), 1);
}

#[test]
fn no_exchange_before_peer_sampling_made_the_own_descriptor() {
    let mut f = fixture(ClusteringSettings::default());
    let board = NeighbourBoard::new();
    let mut rng = SplitMix64::new(1);
    let mut engine = ClusteringEngine::new(
        key(0),
        ClusteringSettings::default(),
        f.me.directory.clone(),
        board.clone(),
        Arc::new(ClusteringStats::default()),
        1,
    );
    let d = descriptor(&key(4), &BTreeSet::from([domain(1)]), 1, f.now.wall, &mut rng);
    board.publish(
        BoardSource::Sampling,
        vec![Neighbour {
            descriptor: Arc::new(d),
            kind: LinkKind::Random,
            trust: 0.9,
            shared: None,
        }],
    );
    engine.start(&mut f.me.ctx);
    engine.handle(&mut f.me.ctx, Input::Timer(TICK));
    let sent = f.me.sent();
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(ClusteringStats::get(&engine.stats().no_own_descriptor), 1);
    // With it, the first round goes to the sampling entry.
    board.set_own(f.me.desc.clone());
    engine.handle(&mut f.me.ctx, Input::Timer(TICK));
    let sent = f.me.sent();
    assert!(matches!(&sent[..], [(_, ClusteringMessage::Exchange { descriptors })] if descriptors[0].node() == f.me.id));
}
