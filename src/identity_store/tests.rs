//! Tests of the store, the lookups and the identity service, all with an injected clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lookup::LookupLimits;
use super::own::OwnAdverts;
use super::service::{IdentityService, ServiceOutput};
use super::*;
use crate::identity::{EngineIdentity, Keypair};
use crate::time::{Now, Timestamp};
use crate::wire::advert::AdvertError;
use crate::wire::{EngineAdvert, NodeAdvert, TransportAddress};

pub(super) const T0: Timestamp = Timestamp(1_700_000_000_000);
pub(super) const HOUR: Duration = Duration::from_secs(3600);

pub(super) fn advert(key: &Keypair, version: u64, port: u16) -> NodeAdvert {
    NodeAdvert::new_signed(
        key,
        vec![(TransportAddress::quic(([127, 0, 0, 1], port).into()), 1)],
        version,
        Timestamp(T0.0 + version),
        T0.after(HOUR),
        None,
    )
}

pub(super) fn engine_advert(node: &Keypair, name: &str, expires: Timestamp) -> EngineAdvert {
    EngineAdvert::new_signed(
        &node.derive_engine(name),
        node.node_identity(),
        name,
        1,
        T0,
        expires,
    )
}

#[test]
fn only_fresher_verified_adverts_replace() {
    let mut s = IdentityStore::new(10);
    let k = Keypair::generate();
    s.handle(T0, Party::Router, IdentityRequest::Subscribe);
    assert_eq!(
        s.apply(T0, IdentityUpdate::NodeAdvert(advert(&k, 2, 1))),
        UpdateResult::Stored
    );
    assert!(matches!(
        s.poll_output(),
        Some((Party::Router, IdentityEvent::Updated { .. }))
    ));
    assert_eq!(
        s.apply(T0, IdentityUpdate::NodeAdvert(advert(&k, 1, 2))),
        UpdateResult::Unchanged
    );
    assert_eq!(
        s.apply(T0, IdentityUpdate::NodeAdvert(advert(&k, 2, 2))),
        UpdateResult::Unchanged
    );
    let mut forged = advert(&k, 3, 3);
    forged.addrs[0].1 = 9;
    assert_eq!(
        s.apply(T0, IdentityUpdate::NodeAdvert(forged)),
        UpdateResult::Refused(AdvertError::BadSignature)
    );
    assert!(s.poll_output().is_none());
    assert_eq!(
        s.apply(T0, IdentityUpdate::NodeAdvert(advert(&k, 3, 3))),
        UpdateResult::Stored
    );
    let Some(IdentityRecord::Node(r)) = s.get(&AnyIdentity::Node(k.node_identity())) else {
        panic!()
    };
    assert_eq!(r.advert.as_ref().unwrap().version, 3);
}

#[test]
fn local_fields_merge() {
    let mut s = IdentityStore::new(10);
    let id = NodeIdentity([5; 32]);
    let upd = |trust, cprefs| IdentityUpdate::NodeLocal {
        id,
        trust,
        reputation: None,
        tprefs: None,
        cprefs,
    };
    assert_eq!(s.apply(T0, upd(Some(200), None)), UpdateResult::Stored);
    assert_eq!(
        s.apply(T0, upd(None, Some(ConnectionPrefs::Permanent))),
        UpdateResult::Stored
    );
    assert_eq!(s.apply(T0, upd(None, None)), UpdateResult::Unchanged);
    let Some(IdentityRecord::Node(r)) = s.get(&AnyIdentity::Node(id)) else {
        panic!()
    };
    assert_eq!(r.trust, Some(200));
    assert_eq!(r.cprefs, Some(ConnectionPrefs::Permanent));
}

#[test]
fn lookup_answers_the_requester_and_capacity_holds() {
    let mut s = IdentityStore::new(1);
    let a = Keypair::generate();
    let b = Keypair::generate();
    assert_eq!(
        s.apply(T0, IdentityUpdate::NodeAdvert(advert(&a, 1, 1))),
        UpdateResult::Stored
    );
    assert_eq!(
        s.apply(T0, IdentityUpdate::NodeAdvert(advert(&b, 1, 1))),
        UpdateResult::Full
    );
    let who = Party::Engine(EngineIdentity([1; 32]));
    s.handle(
        T0,
        who,
        IdentityRequest::Lookup(AnyIdentity::Node(b.node_identity())),
    );
    assert_eq!(
        s.poll_output(),
        Some((
            who,
            IdentityEvent::Found {
                id: AnyIdentity::Node(b.node_identity()),
                record: None
            }
        ))
    );
}

#[test]
fn expired_adverts_are_refused_and_stored_ones_forgotten_at_their_expiry() {
    let mut s = IdentityStore::new(10);
    s.handle(T0, Party::Router, IdentityRequest::Subscribe);
    let (a, b) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
    let expiry = T0.after(HOUR);
    // Refused at its expiry, stored just before it.
    assert_eq!(
        s.apply(expiry, IdentityUpdate::NodeAdvert(advert(&a, 1, 1))),
        UpdateResult::Refused(AdvertError::Expired)
    );
    let before = Timestamp(expiry.0 - 1);
    for k in [&a, &b] {
        assert_eq!(
            s.apply(before, IdentityUpdate::NodeAdvert(advert(k, 1, 1))),
            UpdateResult::Stored
        );
    }
    // b also has local metadata, which outlives its advert.
    s.apply(
        before,
        IdentityUpdate::NodeLocal {
            id: b.node_identity(),
            trust: Some(7),
            reputation: None,
            tprefs: None,
            cprefs: None,
        },
    );
    let e = engine_advert(&a, "echo", T0.after(2 * HOUR));
    assert_eq!(
        s.apply(before, IdentityUpdate::EngineAdvert(e.clone())),
        UpdateResult::Stored
    );
    while s.poll_output().is_some() {}
    assert_eq!(s.next_expiry(), Some(expiry));
    assert_eq!(s.handle_timeout(before), 0);
    assert_eq!(s.handle_timeout(expiry), 2);
    assert_eq!(s.get(&AnyIdentity::Node(a.node_identity())), None);
    let Some(IdentityRecord::Node(rb)) = s.get(&AnyIdentity::Node(b.node_identity())) else {
        panic!("b's record keeps its local fields")
    };
    assert_eq!((rb.advert.is_none(), rb.trust), (true, Some(7)));
    let events: Vec<_> = std::iter::from_fn(|| s.poll_output()).collect();
    assert!(events.contains(&(
        Party::Router,
        IdentityEvent::Removed {
            id: AnyIdentity::Node(a.node_identity())
        }
    )));
    assert_eq!(events.len(), 2);
    // The engine advert goes at its own expiry.
    assert_eq!(s.next_expiry(), Some(e.expires));
    assert_eq!(s.handle_timeout(e.expires), 1);
    assert_eq!(s.get(&AnyIdentity::Engine(e.engine)), None);
    assert_eq!(s.next_expiry(), None);
}

#[test]
fn engines_are_withdrawn_only_by_their_node_and_limited_per_node() {
    let mut s = IdentityStore::new(100).with_max_engines_per_node(2);
    let (a, b) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
    let far = T0.after(HOUR);
    for name in ["x", "y"] {
        assert_eq!(
            s.apply(
                T0,
                IdentityUpdate::EngineAdvert(engine_advert(&a, name, far))
            ),
            UpdateResult::Stored
        );
    }
    assert_eq!(
        s.apply(
            T0,
            IdentityUpdate::EngineAdvert(engine_advert(&a, "z", far))
        ),
        UpdateResult::TooManyEngines
    );
    assert_eq!(
        s.apply(
            T0,
            IdentityUpdate::EngineLocation {
                engine: EngineIdentity([9; 32]),
                node: a.node_identity()
            }
        ),
        UpdateResult::TooManyEngines
    );
    // Another node's engines are not affected by a's count.
    assert_eq!(
        s.apply(
            T0,
            IdentityUpdate::EngineAdvert(engine_advert(&b, "x", far))
        ),
        UpdateResult::Stored
    );
    let x = a.derive_engine("x").engine_identity();
    assert!(
        !s.withdraw_engine(x, b.node_identity()),
        "b cannot withdraw a's engine"
    );
    assert!(s.get(&AnyIdentity::Engine(x)).is_some());
    assert!(s.withdraw_engine(x, a.node_identity()));
    assert!(s.get(&AnyIdentity::Engine(x)).is_none());
    // Room again for a.
    assert_eq!(
        s.apply(
            T0,
            IdentityUpdate::EngineAdvert(engine_advert(&a, "z", far))
        ),
        UpdateResult::Stored
    );
}

// ---------------------------------------------------------------------------------------------
// The service and its lookups.

struct Fixture {
    now: Now,
    me: Keypair,
    service: IdentityService,
    stats: Arc<IdentityStats>,
}

fn fixture(limits: LookupLimits) -> Fixture {
    let now = Now {
        instant: Instant::now(),
        wall: T0,
    };
    let me = Keypair::from_seed(&[7; 32]);
    let mut store = IdentityStore::new(1000);
    store.handle(now.wall, Party::Router, IdentityRequest::Subscribe);
    let own = OwnAdverts::new(me.clone(), Vec::new(), None, 2 * HOUR, now.wall);
    let stats = Arc::new(IdentityStats::default());
    let mut service = IdentityService::new(now, store, own, Some(limits), Arc::clone(&stats));
    while service.poll_output().is_some() {}
    Fixture {
        now,
        me,
        service,
        stats,
    }
}

impl Fixture {
    fn drain(&mut self) -> Vec<ServiceOutput> {
        std::iter::from_fn(|| self.service.poll_output()).collect()
    }

    fn lookup(&mut self, from: Party, engine: EngineIdentity) -> Vec<ServiceOutput> {
        self.service.handle_request(
            self.now,
            from,
            IdentityRequest::Lookup(AnyIdentity::Engine(engine)),
        );
        self.drain()
    }

    fn peer(&mut self, mail: FromPeer) -> Vec<ServiceOutput> {
        self.service.handle_from_peer(self.now, mail);
        self.drain()
    }
}

fn found(outputs: &[ServiceOutput], party: Party) -> Option<Option<NodeIdentity>> {
    outputs.iter().find_map(|o| match o {
        ServiceOutput::Event(p, IdentityEvent::Found { record, .. }) if *p == party => {
            Some(match record {
                Some(IdentityRecord::Engine(r)) => Some(r.node),
                _ => None,
            })
        }
        _ => None,
    })
}

fn answer(from: NodeIdentity, engine: EngineIdentity, advert: Option<EngineAdvert>) -> FromPeer {
    FromPeer::Answer {
        from,
        answer: Box::new(EngineAnswer {
            engine,
            advert,
            node_advert: None,
        }),
    }
}

fn sent(engine: EngineIdentity, peers: &[NodeIdentity], dialling: bool) -> FromPeer {
    FromPeer::LookupSent {
        engine,
        peers: peers.to_vec(),
        dialling,
    }
}

#[test]
fn a_lookup_is_asked_of_peers_and_answered_with_the_verified_advert() {
    let mut f = fixture(LookupLimits::default());
    let c = Keypair::from_seed(&[3; 32]);
    let (p1, p2) = (NodeIdentity([1; 32]), NodeIdentity([2; 32]));
    let e = engine_advert(&c, "echo", T0.after(HOUR));
    let out = f.lookup(Party::Router, e.engine);
    assert!(matches!(
        out.as_slice(),
        [ServiceOutput::Peers(ToPeers::Lookup { engine, only: None, max_peers: 8 })] if *engine == e.engine
    ));
    // An engine joins the same lookup; nobody is asked twice.
    let waiter = Party::Engine(EngineIdentity([4; 32]));
    assert!(f.lookup(waiter, e.engine).is_empty());
    assert!(f.peer(sent(e.engine, &[p1, p2], false)).is_empty());
    // p1 does not know; p2 answers with the advert and its node's.
    assert!(f.peer(answer(p1, e.engine, None)).is_empty());
    let node_advert = NodeAdvert::new_signed(
        &c,
        vec![(TransportAddress::quic(([127, 0, 0, 1], 9).into()), 1)],
        1,
        T0,
        T0.after(HOUR),
        None,
    );
    let out = f.peer(FromPeer::Answer {
        from: p2,
        answer: Box::new(EngineAnswer {
            engine: e.engine,
            advert: Some(e.clone()),
            node_advert: Some(node_advert),
        }),
    });
    assert_eq!(found(&out, Party::Router), Some(Some(c.node_identity())));
    assert_eq!(found(&out, waiter), Some(Some(c.node_identity())));
    // The node's advert was stored before the engine's.
    let updated: Vec<AnyIdentity> = out
        .iter()
        .filter_map(|o| match o {
            ServiceOutput::Event(Party::Router, IdentityEvent::Updated { id, .. }) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(
        updated,
        vec![
            AnyIdentity::Node(c.node_identity()),
            AnyIdentity::Engine(e.engine)
        ]
    );
    assert_eq!(IdentityStats::get(&f.stats.lookups_found), 1);
    // A late answer is ignored.
    f.peer(answer(p1, e.engine, Some(e)));
    assert_eq!(IdentityStats::get(&f.stats.answers_ignored), 1);
}

#[test]
fn forged_and_mismatched_answers_are_refused_and_unknown_is_cached() {
    let mut f = fixture(LookupLimits::default());
    let c = Keypair::from_seed(&[3; 32]);
    let (p1, p2, p3) = (
        NodeIdentity([1; 32]),
        NodeIdentity([2; 32]),
        NodeIdentity([3; 32]),
    );
    let wanted = c.derive_engine("wanted").engine_identity();
    f.lookup(Party::Router, wanted);
    f.peer(sent(wanted, &[p1, p2, p3], false));
    // p1: the advert of another engine; p2: a forged one; p3: expired.
    f.peer(answer(
        p1,
        wanted,
        Some(engine_advert(&c, "other", T0.after(HOUR))),
    ));
    let mut forged = engine_advert(&c, "wanted", T0.after(HOUR));
    forged.node = NodeIdentity([6; 32]);
    f.peer(answer(p2, wanted, Some(forged)));
    let out = f.peer(answer(p3, wanted, Some(engine_advert(&c, "wanted", T0))));
    assert_eq!(IdentityStats::get(&f.stats.answers_refused), 3);
    assert_eq!(
        found(&out, Party::Router),
        Some(None),
        "unknown once all answered"
    );
    assert_eq!(f.service.store().get(&AnyIdentity::Engine(wanted)), None);
    assert_eq!(IdentityStats::get(&f.stats.lookups_unknown), 1);
    // Asked again: unknown at once from the negative cache, nobody asked.
    let out = f.lookup(Party::Router, wanted);
    assert_eq!(found(&out, Party::Router), Some(None));
    assert!(!out.iter().any(|o| matches!(o, ServiceOutput::Peers(_))));
    assert_eq!(IdentityStats::get(&f.stats.lookups_negative_cached), 1);
    // After its time, the cache lets a new lookup through.
    f.now = f.now.advanced(LookupLimits::default().negative_ttl);
    let out = f.lookup(Party::Router, wanted);
    assert!(matches!(
        out.as_slice(),
        [ServiceOutput::Peers(ToPeers::Lookup { .. })]
    ));
}

#[test]
fn an_unsolicited_answer_is_not_stored() {
    let mut f = fixture(LookupLimits::default());
    let c = Keypair::from_seed(&[3; 32]);
    let e = engine_advert(&c, "echo", T0.after(HOUR));
    let out = f.peer(answer(NodeIdentity([1; 32]), e.engine, Some(e.clone())));
    assert!(out.is_empty());
    assert_eq!(f.service.store().get(&AnyIdentity::Engine(e.engine)), None);
    assert_eq!(IdentityStats::get(&f.stats.answers_ignored), 1);
    // Nor from a peer that was not asked.
    f.lookup(Party::Router, e.engine);
    f.peer(sent(e.engine, &[NodeIdentity([2; 32])], false));
    f.peer(answer(NodeIdentity([1; 32]), e.engine, Some(e.clone())));
    assert_eq!(f.service.store().get(&AnyIdentity::Engine(e.engine)), None);
    assert_eq!(IdentityStats::get(&f.stats.answers_ignored), 2);
}

#[test]
fn a_lookup_waits_for_peers_being_dialled_and_times_out() {
    let mut f = fixture(LookupLimits::default());
    let e = EngineIdentity([8; 32]);
    f.lookup(Party::Router, e);
    // Nobody connected, a dial started: the lookup waits.
    assert!(f.peer(sent(e, &[], true)).is_empty());
    // The peer connects: it is asked.
    let p = NodeIdentity([1; 32]);
    let out = f.peer(FromPeer::Ready { node: p });
    assert!(matches!(
        out.as_slice(),
        [ServiceOutput::Peers(ToPeers::Lookup { only: Some(n), .. })] if *n == p
    ));
    f.peer(sent(e, &[p], false));
    // It does not know, but more dials were under way: still waiting, until the timeout.
    assert!(f.peer(answer(p, e, None)).is_empty());
    let due = f.service.poll_timeout(f.now);
    assert!(due <= f.now.instant + LookupLimits::default().timeout);
    f.now = f.now.advanced(LookupLimits::default().timeout);
    f.service.handle_timeout(f.now);
    let out = f.drain();
    assert_eq!(found(&out, Party::Router), Some(None));
    assert_eq!(IdentityStats::get(&f.stats.lookups_timed_out), 1);
}

#[test]
fn nobody_to_ask_ends_the_lookup_at_once() {
    let mut f = fixture(LookupLimits::default());
    let e = EngineIdentity([8; 32]);
    f.lookup(Party::Router, e);
    let out = f.peer(sent(e, &[], false));
    assert_eq!(found(&out, Party::Router), Some(None));
}

#[test]
fn an_advert_learned_meanwhile_ends_the_lookup() {
    let mut f = fixture(LookupLimits::default());
    let c = Keypair::from_seed(&[3; 32]);
    let e = engine_advert(&c, "echo", T0.after(HOUR));
    f.lookup(Party::Router, e.engine);
    f.peer(sent(e.engine, &[], true));
    let out = f.peer(FromPeer::EngineAdverts {
        from: c.node_identity(),
        adverts: vec![e],
    });
    assert_eq!(found(&out, Party::Router), Some(Some(c.node_identity())));
    assert_eq!(f.service.outstanding_lookups(), 0);
}

#[test]
fn lookups_of_unknown_engines_at_full_rate_stay_bounded_and_are_all_answered() {
    let limits = LookupLimits {
        max_outstanding: 16,
        max_negative: 64,
        ..LookupLimits::default()
    };
    let mut f = fixture(limits);
    let peer = NodeIdentity([1; 32]);
    let mut answered = 0;
    let mut asked = Vec::new();
    for i in 0..10_000u32 {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&i.to_le_bytes());
        let e = EngineIdentity(id);
        let out = f.lookup(Party::Router, e);
        if found(&out, Party::Router).is_some() {
            answered += 1;
        } else {
            asked.push(e);
        }
        assert!(f.service_lookups() <= limits.max_outstanding);
        // Every twentieth round, the peer answers what it was asked: unknown. In between,
        // lookups beyond the limit are refused at once.
        if i % 20 == 19 {
            for e in asked.drain(..) {
                f.peer(sent(e, &[peer], false));
                let out = f.peer(answer(peer, e, None));
                if found(&out, Party::Router).is_some() {
                    answered += 1;
                }
            }
        }
    }
    assert_eq!(answered, 10_000, "every lookup ended in an answer");
    assert_eq!(f.service.outstanding_lookups(), 0);
    assert!(f.service.negative_cached() <= limits.max_negative);
    let refused = IdentityStats::get(&f.stats.lookups_refused_full);
    let unknown = IdentityStats::get(&f.stats.lookups_unknown);
    assert_eq!(refused + unknown, 10_000);
    assert!(refused > 0 && unknown > 0);
}

impl Fixture {
    fn service_lookups(&self) -> usize {
        self.service.outstanding_lookups()
    }
}

#[test]
fn peers_queries_are_answered_from_the_store() {
    let mut f = fixture(LookupLimits::default());
    let c = Keypair::from_seed(&[3; 32]);
    let e = engine_advert(&c, "echo", T0.after(HOUR));
    f.service
        .apply(f.now, IdentityUpdate::EngineAdvert(e.clone()));
    f.drain();
    let asker = NodeIdentity([1; 32]);
    let out = f.peer(FromPeer::Query {
        from: asker,
        engine: e.engine,
    });
    match out.as_slice() {
        [ServiceOutput::Peers(ToPeers::Answer { to, answer })] => {
            assert_eq!(*to, asker);
            assert_eq!(answer.advert.as_ref(), Some(&e));
            assert_eq!(answer.node_advert, None, "c's node advert is not held");
        }
        other => panic!("{other:?}"),
    }
    // A location from configuration has no advert to hand on: unknown.
    let other = EngineIdentity([5; 32]);
    f.service.apply(
        f.now,
        IdentityUpdate::EngineLocation {
            engine: other,
            node: c.node_identity(),
        },
    );
    f.drain();
    let out = f.peer(FromPeer::Query {
        from: asker,
        engine: other,
    });
    assert!(matches!(
        out.as_slice(),
        [ServiceOutput::Peers(ToPeers::Answer { answer, .. })] if answer.advert.is_none()
    ));
    assert_eq!(IdentityStats::get(&f.stats.peer_queries), 2);
    assert_eq!(IdentityStats::get(&f.stats.peer_queries_known), 1);
}

#[test]
fn own_adverts_are_stored_sent_to_peers_and_resigned_before_they_expire() {
    let mut f = fixture(LookupLimits::default());
    let echo = f.me.derive_engine("echo").engine_identity();
    f.service
        .handle_reachable(f.now, &[(echo, "echo".to_string())]);
    let out = f.drain();
    let Some(ServiceOutput::Peers(ToPeers::OwnEngines { adverts, withdrawn })) = out
        .iter()
        .find(|o| matches!(o, ServiceOutput::Peers(ToPeers::OwnEngines { .. })))
    else {
        panic!("{out:?}")
    };
    assert_eq!((adverts.len(), withdrawn.len()), (1, 0));
    assert!(matches!(
        f.service.store().get(&AnyIdentity::Engine(echo)),
        Some(IdentityRecord::Engine(r)) if r.node == f.me.node_identity() && r.advert.is_some()
    ));
    let first = f.service.node_advert().clone();
    // Re-signed at half the lifetime (2 h): the deadline says so, and nothing happens before.
    assert_eq!(f.service.poll_timeout(f.now), f.now.instant + HOUR);
    f.now = f.now.advanced(HOUR - Duration::from_millis(1));
    f.service.handle_timeout(f.now);
    assert!(f.drain().is_empty());
    f.now = f.now.advanced(Duration::from_millis(1));
    f.service.handle_timeout(f.now);
    let out = f.drain();
    let own = out
        .iter()
        .find_map(|o| match o {
            ServiceOutput::OwnAdvert(a) => Some(a.clone()),
            _ => None,
        })
        .expect("a new node advert for the handle");
    assert!(own.version > first.version && own.expires == f.now.wall.after(2 * HOUR));
    assert!(out
        .iter()
        .any(|o| matches!(o, ServiceOutput::Peers(ToPeers::OwnAdvert(a)) if *a == own)));
    assert!(out.iter().any(|o| matches!(
        o,
        ServiceOutput::Peers(ToPeers::OwnEngines { adverts, .. })
            if adverts.len() == 1 && adverts[0].created == f.now.wall
    )));
    // The engine stops: withdrawn from the store and the peers.
    f.service.handle_reachable(f.now, &[]);
    let out = f.drain();
    assert!(out.iter().any(|o| matches!(
        o,
        ServiceOutput::Peers(ToPeers::OwnEngines { withdrawn, .. }) if withdrawn == &vec![echo]
    )));
    assert_eq!(f.service.store().get(&AnyIdentity::Engine(echo)), None);
}

#[test]
fn new_addresses_make_a_new_advert_for_the_peers() {
    let mut f = fixture(LookupLimits::default());
    let addrs = vec![(TransportAddress::quic(([192, 0, 2, 1], 7001).into()), 100)];
    f.service.handle_set_addresses(f.now, addrs.clone());
    let out = f.drain();
    assert!(out
        .iter()
        .any(|o| matches!(o, ServiceOutput::Peers(ToPeers::OwnAdvert(a)) if a.addrs == addrs)));
    assert_eq!(f.service.node_advert().addrs, addrs);
    // The same addresses again: nothing new.
    f.service.handle_set_addresses(f.now, addrs);
    assert!(f.drain().is_empty());
}

#[test]
fn reputation_changes_saturate_and_standing_lists_rated_nodes() {
    let mut s = IdentityStore::new(10);
    let (a, b, c) = (
        NodeIdentity([1; 32]),
        NodeIdentity([2; 32]),
        NodeIdentity([3; 32]),
    );
    let lower = |id, by: i16| IdentityUpdate::Reputation { id, change: -by };
    assert_eq!(s.apply(T0, lower(a, 5)), UpdateResult::Stored);
    let rep = |s: &IdentityStore, id| match s.get(&AnyIdentity::Node(id)) {
        Some(IdentityRecord::Node(r)) => r.reputation,
        _ => None,
    };
    assert_eq!(rep(&s, a), Some(DEFAULT_REPUTATION - 5));
    assert_eq!(s.apply(T0, lower(a, 1000)), UpdateResult::Stored);
    assert_eq!(rep(&s, a), Some(0));
    assert_eq!(s.apply(T0, lower(a, 1)), UpdateResult::Unchanged, "floor");
    assert_eq!(s.apply(T0, lower(b, -1000)), UpdateResult::Stored);
    assert_eq!(rep(&s, b), Some(255));
    // A node with trust only, and one with neither (not listed).
    s.apply(
        T0,
        IdentityUpdate::NodeLocal {
            id: c,
            trust: Some(0),
            reputation: None,
            tprefs: None,
            cprefs: None,
        },
    );
    s.apply(
        T0,
        IdentityUpdate::EngineLocation {
            engine: EngineIdentity([9; 32]),
            node: NodeIdentity([4; 32]),
        },
    );
    s.handle(T0, Party::Node, IdentityRequest::Standing);
    let Some((Party::Node, IdentityEvent::Standing(list))) = s.poll_output() else {
        panic!("answered")
    };
    let order: Vec<_> = list.iter().map(|n| (n.id, n.trust, n.reputation)).collect();
    assert_eq!(
        order,
        vec![(a, None, Some(0)), (c, Some(0), None), (b, None, Some(255))],
        "lowest reputation first"
    );
}
