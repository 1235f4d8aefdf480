//! The engine's behaviour: greedy forwarding, the answer back along the path, the routes
//! cache, delivery to local engines, the Router's hand-over, opt-out, the all-ones filter.

use super::*;

/// A line 0 – 1 – 2 where node 2 is a member of domain 1 (answering external requests).
fn line() -> (Net, DomainIdentity) {
    let d = domain(1);
    let mut net = Net::new(3, |_| RoutingSettings::default());
    net.member(2, d, Some(true));
    net.both(0, 1);
    net.both(1, 2);
    (net, d)
}

#[test]
fn probe_reaches_a_member_two_hops_away_and_the_answer_comes_back() {
    let (mut net, d) = line();
    let asked = net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    net.run();
    let member = net.nodes[2].id();
    assert_eq!(
        net.nodes[0].results(),
        vec![(Ok(PROBE_ANSWER.to_vec()), Some(member), 2)]
    );
    assert_eq!(
        net.nodes[0].answers[0].0,
        Some(asked),
        "the answer replies to the request"
    );
    // The member is learnt, with its advert, and handed to the identity store.
    let known = net.nodes[0].routes.members(&d);
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].node, member);
    assert_eq!(known[0].advert.as_ref().map(|a| a.id), Some(member));
    assert!(net.nodes[0].identity.iter().any(|r| matches!(
        r,
        IdentityRequest::Update(crate::mail::identity::IdentityUpdate::NodeAdvert(a)) if a.id == member
    )));
    let c = net.counters(1);
    assert_eq!((c["forwarded"], c["responses_relayed"]), (1, 1));
    assert_eq!(net.counters(2)["member_answers"], 1);
    // Nothing is held once answered.
    for i in 0..3 {
        let s = net.nodes[i].engine.probe().snapshot();
        assert_eq!((s.pending, s.relayed, s.arrived), (0, 0, 0), "node {i}");
    }

    // The next request goes straight to the known member: one hop.
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    net.run();
    assert_eq!(
        net.nodes[0].results()[1],
        (Ok(PROBE_ANSWER.to_vec()), Some(member), 1)
    );
    assert_eq!(net.counters(0)["started_direct"], 1);
    assert_eq!(
        net.counters(1)["forwarded"],
        1,
        "node 1 was not asked again"
    );
}

#[test]
fn greedy_takes_the_neighbour_whose_filter_scores_best() {
    let d = domain(1);
    let mut net = Net::new(5, |_| RoutingSettings::default());
    net.member(4, d, Some(true));
    // Node 0 sees 1, 2, 3 (non-members of d, members of other domains) and 4 (member).
    net.nodes[1].memberships = vec![domain(2)];
    net.nodes[2].memberships = vec![domain(3), domain(4)];
    for b in 1..5 {
        net.link(0, b, LinkKind::Random);
    }
    for _ in 0..5 {
        net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
        net.run();
    }
    // Only the first goes greedily; the rest go to the member learnt from it.
    assert_eq!(net.requests_at.get(&4), Some(&5));
    assert_eq!(net.requests_at.len(), 1, "{:?}", net.requests_at);
    assert!(net.nodes[0]
        .results()
        .iter()
        .all(|r| r.1 == Some(net.nodes[4].id())));
    let c = net.counters(0);
    assert_eq!((c["greedy_hops"], c["forwarded_to_member"]), (1, 4));
}

#[test]
fn with_no_score_above_the_floor_a_random_long_link_is_taken() {
    let d = domain(1);
    let mut net = Net::new(4, |_| RoutingSettings::default());
    // Node 0 sees a cluster neighbour and a finger, neither a member: the finger is the only
    // long link.
    net.link(0, 1, LinkKind::Cluster);
    net.link(0, 2, LinkKind::Finger);
    // Node 2 sees the member.
    net.member(3, d, Some(true));
    net.link(2, 3, LinkKind::Random);
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    net.run();
    assert_eq!(
        net.requests_at.get(&1),
        None,
        "the cluster link was not taken"
    );
    assert_eq!(net.nodes[0].results()[0].2, 2);
    assert_eq!(net.counters(0)["fallback_hops"], 1);
    assert_eq!(net.counters(2)["greedy_hops"], 1);
}

#[test]
fn the_random_walk_baseline_reaches_a_member_on_a_line() {
    let d = domain(1);
    let mut net = Net::new(4, |_| RoutingSettings {
        mode: RoutingMode::RandomWalk,
        ..RoutingSettings::default()
    });
    net.member(3, d, Some(true));
    for i in 0..3 {
        net.both(i, i + 1);
    }
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    net.run();
    assert_eq!(net.nodes[0].results()[0].2, 3);
    assert_eq!(net.counters(1)["random_hops"], 1);
}

#[test]
fn another_protocol_goes_to_the_local_engine_and_its_answer_back() {
    let (mut net, d) = line();
    net.ask(0, d, APP, b"what is up");
    net.run();
    // Node 2 handed the request to the engine serving APP.
    let (_, protocol, mail) = net.nodes[2].arrived.pop().expect("handed over");
    assert_eq!(protocol, APP);
    let RoutingMail::Arrived {
        token,
        src,
        domain: dd,
        body,
        ..
    } = mail
    else {
        panic!("not an Arrived: {mail:?}");
    };
    assert_eq!(
        (src, dd, body.as_slice()),
        (net.nodes[0].id(), d, &b"what is up"[..])
    );
    assert!(net.nodes[0].answers.is_empty());
    net.local(
        2,
        RoutingMail::Respond {
            token,
            result: Ok(b"all good".to_vec()),
        },
    );
    net.run();
    assert_eq!(
        net.nodes[0].results(),
        vec![(Ok(b"all good".to_vec()), Some(net.nodes[2].id()), 2)]
    );
    // A second Respond for the same token is stale.
    net.local(
        2,
        RoutingMail::Respond {
            token,
            result: Ok(vec![]),
        },
    );
    assert_eq!(net.counters(2)["stale_respond"], 1);
}

#[test]
fn a_protocol_nothing_serves_and_a_silent_engine_are_answered_with_errors() {
    let (mut net, d) = line();
    net.ask(0, d, APP, b"x");
    net.run();
    let (msg, _, _) = net.nodes[2].arrived[0].clone();
    let u = Undeliverable {
        id: msg,
        dst: Destination::Node(net.nodes[2].id()),
        reason: DropReason::NoRoute,
    };
    net.input(2, Input::Undeliverable(u));
    net.run();
    let r = net.nodes[0].results();
    assert!(
        matches!(&r[0].0, Err(e) if e.contains("not served")),
        "{r:?}"
    );

    // An engine that never answers: the member answers with an error after 3/4 of the
    // timeout, before the asker gives up.
    net.ask(0, d, APP, b"y");
    net.run();
    net.advance(Duration::from_millis(3_800));
    let r = net.nodes[0].results();
    assert!(
        matches!(&r[1].0, Err(e) if e.contains("did not answer")),
        "{r:?}"
    );
    assert_eq!(net.counters(0).get("timeouts"), None);
}

#[test]
fn a_timeout_answers_the_asker_and_forgets_the_direct_member() {
    let (mut net, d) = line();
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    net.run();
    assert_eq!(net.nodes[0].routes.members(&d).len(), 1);
    // The member goes silent: requests reach it (direct) but it is down for answers.
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    let _lost = net.take_in_flight();
    net.advance(Duration::from_secs(6));
    let r = net.nodes[0].results();
    assert!(matches!(&r[1].0, Err(e) if e.contains("in time")), "{r:?}");
    assert_eq!(net.counters(0)["timeouts"], 1);
    assert!(
        net.nodes[0].routes.members(&d).is_empty(),
        "the member is forgotten"
    );
    assert_eq!(net.nodes[0].engine.probe().snapshot().pending, 0);
}

#[test]
fn an_unreachable_known_member_is_forgotten_and_the_request_routed_again() {
    let d = domain(1);
    let mut net = Net::new(4, |_| RoutingSettings::default());
    net.member(2, d, Some(true));
    net.member(3, d, Some(true));
    net.both(0, 1);
    net.both(1, 3);
    // Node 0 knows member 2 from an earlier answer; it is down now.
    net.nodes[0].routes.learn(
        d,
        KnownMember {
            node: net.nodes[2].id(),
            advert: None,
            last_ok: Timestamp(1),
        },
    );
    net.down.insert(2);
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    net.run();
    assert_eq!(
        net.nodes[0].results(),
        vec![(Ok(PROBE_ANSWER.to_vec()), Some(net.nodes[3].id()), 2)]
    );
    assert_eq!(net.counters(0)["retries"], 1);
    let known: Vec<NodeIdentity> = net.nodes[0]
        .routes
        .members(&d)
        .iter()
        .map(|m| m.node)
        .collect();
    assert_eq!(known, vec![net.nodes[3].id()]);
}

#[test]
fn a_member_asking_for_its_own_domain_is_answered_here() {
    let (mut net, d) = line();
    net.ask(2, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    assert_eq!(
        net.nodes[2].results(),
        vec![(Ok(PROBE_ANSWER.to_vec()), Some(net.nodes[2].id()), 0)]
    );
    net.ask(2, d, APP, b"q");
    let (_, _, RoutingMail::Arrived { token, .. }) = net.nodes[2].arrived[0].clone() else {
        panic!("handed over");
    };
    net.local(
        2,
        RoutingMail::Respond {
            token,
            result: Ok(b"a".to_vec()),
        },
    );
    assert_eq!(net.nodes[2].results()[1].0, Ok(b"a".to_vec()));
    assert!(net.take_in_flight().is_empty(), "nothing left the node");
}

#[test]
fn a_message_the_router_hands_over_is_routed_and_answered() {
    let (mut net, d) = line();
    let id = net.local_raw(
        0,
        Destination::Domain(d),
        Protocol::DOMAIN_ROUTING,
        PROBE_REQUEST.to_vec(),
    );
    net.run();
    assert_eq!(net.nodes[0].answers[0].0, Some(id));
    assert_eq!(net.nodes[0].results()[0].1, Some(net.nodes[2].id()));
}

#[test]
fn a_member_not_answering_external_requests_forwards_to_one_that_does() {
    let d = domain(1);
    let mut net = Net::new(3, |_| RoutingSettings::default());
    net.member(1, d, Some(false));
    net.member(2, d, Some(true));
    net.both(0, 1);
    net.both(1, 2);
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    net.run();
    assert_eq!(net.nodes[0].results()[0].1, Some(net.nodes[2].id()));
    assert_eq!(net.counters(1).get("member_answers"), None);
}

#[test]
fn a_node_that_opted_out_neither_forwards_nor_answers_but_still_asks() {
    let d = domain(1);
    let mut net = Net::new(3, |i| RoutingSettings {
        forward: i != 1,
        ..RoutingSettings::default()
    });
    net.member(2, d, Some(true));
    net.both(0, 1);
    net.both(1, 2);
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    net.run();
    assert_eq!(net.counters(1)["opted_out"], 1);
    assert!(net.nodes[0].answers.is_empty());
    net.advance(Duration::from_secs(6));
    assert!(net.nodes[0].results()[0].0.is_err());
    // The opted-out node asks for itself.
    net.ask(1, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    net.run();
    assert_eq!(net.nodes[1].results()[0].1, Some(net.nodes[2].id()));
    // A member that opted out does not answer other nodes either.
    let mut net = Net::new(2, |i| RoutingSettings {
        forward: i == 0,
        ..RoutingSettings::default()
    });
    net.member(1, d, Some(true));
    net.both(0, 1);
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    net.run();
    assert!(net.nodes[0].answers.is_empty());
    assert_eq!(net.counters(1)["opted_out"], 1);
}

#[test]
fn a_filter_of_all_ones_does_not_attract_the_traffic() {
    let mut net = Net::new(6, |_| RoutingSettings::default());
    // Node 1 claims every domain; nodes 2..=5 are honest non-members, one of them (5) a member
    // of the domains asked for below.
    let mut all = MembershipFilter::empty(1024, 3);
    all.bytes.iter_mut().for_each(|b| *b = 0xff);
    net.link_with(0, 1, all, LinkKind::Random);
    for d in 0..40u8 {
        net.nodes[5].memberships.push(domain(100 + d));
    }
    for b in 2..6 {
        net.link(0, b, LinkKind::Random);
    }
    // With a member among the neighbours, the greedy choice is the member.
    net.ask(0, domain(100), Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    let sent = net.take_in_flight();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, 5);
    assert!(net.counters(0)["overfull_filter"] >= 1);
    // For domains nobody here is in, the claimant is one random long link among five, not the
    // destination of every request.
    let mut to_claimant = 0;
    for d in 0..100u8 {
        net.ask(
            0,
            domain(200u8.wrapping_add(d)),
            Protocol::DOMAIN_ROUTING,
            PROBE_REQUEST,
        );
        for (_, to, _) in net.take_in_flight() {
            to_claimant += usize::from(to == 1);
        }
    }
    assert!(
        to_claimant < 40,
        "the claimant took {to_claimant} of 100 requests"
    );
}

#[test]
fn one_seed_gives_one_run() {
    let run = || {
        let mut net = Net::new(6, |_| RoutingSettings::default());
        net.member(5, domain(1), Some(true));
        for a in 0..6 {
            for b in 0..6 {
                if a != b && (a + b) % 2 == 1 {
                    net.link(a, b, LinkKind::Random);
                }
            }
        }
        let mut out = Vec::new();
        for _ in 0..4 {
            net.ask(0, domain(2), Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
            out.extend(net.take_in_flight().into_iter().map(|(f, t, _)| (f, t)));
        }
        out
    };
    assert_eq!(run(), run());
}

#[test]
fn a_probe_sent_straight_to_a_known_member_is_answered_with_a_reply() {
    let (mut net, d) = line();
    net.deliver_remote_to(0, 2, Destination::Domain(d), PROBE_REQUEST.to_vec());
    let sender = net.nodes[0]
        .key
        .derive_engine(DOMAIN_ROUTING_ENGINE_NAME)
        .engine_identity();
    assert_eq!(net.nodes[2].replies, vec![(sender, PROBE_ANSWER.to_vec())]);
    // Not a member (any more): no answer; another body: refused.
    net.deliver_remote_to(0, 1, Destination::Domain(d), PROBE_REQUEST.to_vec());
    net.deliver_remote_to(0, 2, Destination::Domain(d), b"x".to_vec());
    assert_eq!(net.counters(1)["not_here"], 1);
    assert_eq!(net.counters(2)["malformed"], 1);
    assert!(net.nodes[1].replies.is_empty() && net.nodes[2].replies.len() == 1);
}

/// A diamond 0 – {1, 2} – 3 where node 3 is a member of domain 1: two first hops to try.
fn diamond(attempts: u8) -> (Net, DomainIdentity) {
    let d = domain(1);
    let mut net = Net::new(4, |_| RoutingSettings {
        attempts,
        ..RoutingSettings::default()
    });
    net.member(3, d, Some(true));
    for (a, b) in [(0, 1), (0, 2), (1, 3), (2, 3)] {
        net.both(a, b);
    }
    (net, d)
}

#[test]
fn a_silently_dropped_attempt_is_sent_again_through_another_first_hop() {
    let (mut net, d) = diamond(3);
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    // The first attempt is lost without a word (a colluder would drop it so).
    let lost = net.take_in_flight();
    assert_eq!(lost.len(), 1);
    let (_, first, _) = lost[0];
    // After a third of the 5 s timeout the request goes out again, through the other hop.
    net.advance(Duration::from_millis(1_700));
    let r = net.nodes[0].results();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].1, Some(net.nodes[3].id()));
    assert_eq!(net.counters(0)["reattempts"], 1);
    assert_eq!(
        net.requests_at.get(&first),
        None,
        "the lost hop saw nothing"
    );
    assert_eq!(net.engine_pending(0), 0);
}

#[test]
fn a_late_answer_to_an_earlier_attempt_counts_and_the_asker_is_answered_once() {
    let (mut net, d) = diamond(3);
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    // The first attempt is only slow: held. The member is away while the second goes out
    // through the other hop, which loses it at the member.
    let first = net.take_in_flight();
    assert_eq!(first.len(), 1);
    net.down.insert(3);
    net.advance(Duration::from_millis(1_700));
    assert_eq!(net.counters(0)["reattempts"], 1);
    assert!(net.nodes[0].answers.is_empty());
    // The first attempt arrives after all and is answered: that answer counts.
    net.down.remove(&3);
    let (from, to, msg) = first.into_iter().next().unwrap();
    net.deliver_remote(from, to, msg.to_bytes());
    net.run();
    let r = net.nodes[0].results();
    assert_eq!(
        r,
        vec![(Ok(PROBE_ANSWER.to_vec()), Some(net.nodes[3].id()), 2)]
    );
    assert_eq!(net.engine_pending(0), 0);

    // Both attempts answered: the asker hears once, the later answer is counted.
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    let first = net.take_in_flight();
    net.advance(Duration::from_millis(1_700));
    assert_eq!(net.nodes[0].results().len(), 2);
    let (from, to, msg) = first.into_iter().next().unwrap();
    net.deliver_remote(from, to, msg.to_bytes());
    net.run();
    assert_eq!(net.nodes[0].results().len(), 2);
    assert_eq!(net.counters(0)["unsolicited"], 1);
}

#[test]
fn with_one_attempt_a_dropped_request_times_out() {
    let (mut net, d) = diamond(1);
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    let _lost = net.take_in_flight();
    net.advance(Duration::from_millis(1_700));
    assert!(net.nodes[0].answers.is_empty());
    net.advance(Duration::from_secs(4));
    let r = net.nodes[0].results();
    assert!(matches!(&r[0].0, Err(e) if e.contains("in time")), "{r:?}");
    assert_eq!(net.counters(0).get("reattempts"), None);
}

#[test]
fn an_unreachable_later_attempt_does_not_fail_a_request_an_earlier_one_may_answer() {
    let (mut net, d) = diamond(3);
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    // The first attempt is only slow: held.
    let first = net.take_in_flight();
    let (from, to, msg) = first.into_iter().next().unwrap();
    // The other first hop is down: the second attempt is refused at once.
    let other = if to == 1 { 2 } else { 1 };
    net.down.insert(other);
    net.advance(Duration::from_millis(1_700));
    assert_eq!(net.counters(0)["reattempts"], 1);
    assert!(
        net.nodes[0].answers.is_empty(),
        "not failed while attempt 1 is out"
    );
    // The first attempt arrives after all and answers.
    net.deliver_remote(from, to, msg.to_bytes());
    net.run();
    let r = net.nodes[0].results();
    assert_eq!(
        r,
        vec![(Ok(PROBE_ANSWER.to_vec()), Some(net.nodes[3].id()), 2)]
    );
}
