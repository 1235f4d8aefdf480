//! Bad input: looping, broken and overlong paths, replays, forged and unsolicited responses,
//! oversized bodies, floods — each refused, counted, and bounded in memory.

use super::*;

fn send(net: &mut Net, from: usize, to: usize, m: RoutingMessage) {
    net.deliver_remote(from, to, m.to_bytes());
}

/// Three nodes in a line 0 – 1 – 2, none a member of anything.
fn plain() -> Net {
    let mut net = Net::new(3, |_| RoutingSettings::default());
    net.both(0, 1);
    net.both(1, 2);
    net
}

#[test]
fn looping_broken_and_overlong_paths_are_refused() {
    let mut net = plain();
    let d = domain(1);
    // The path holds the receiver: a loop.
    let r = request(&net, 2, d, &[2, 1, 0]);
    send(&mut net, 0, 1, RoutingMessage::Request(r));
    // A node twice.
    let r = request(&net, 2, d, &[2, 0, 2, 0]);
    send(&mut net, 0, 1, RoutingMessage::Request(r));
    assert_eq!(net.counters(1)["looping_path"], 2);
    // The path does not end at the sending peer, or does not start at src.
    let r = request(&net, 2, d, &[2]);
    send(&mut net, 0, 1, RoutingMessage::Request(r));
    let r = request(&net, 2, d, &[0]);
    send(&mut net, 0, 1, RoutingMessage::Request(r));
    let r = request(&net, 2, d, &[]);
    send(&mut net, 0, 1, RoutingMessage::Request(r));
    assert_eq!(net.counters(1)["bad_path"], 3);
    // Longer than the hop limit (16): 17 distinct nodes, ending at the sender.
    let mut long = Net::new(18, |_| RoutingSettings::default());
    let path: Vec<usize> = (2..18).chain([0]).collect();
    let r = request(&long, 2, d, &path);
    send(&mut long, 0, 1, RoutingMessage::Request(r));
    assert_eq!(long.counters(1)["overlong_path"], 1);
    // Exactly at the limit: accepted, but one more hop would pass it, so not forwarded.
    long.both(1, 3);
    let path: Vec<usize> = (4..18).chain([2, 0]).collect();
    let r = request(&long, 4, d, &path);
    send(&mut long, 0, 1, RoutingMessage::Request(r));
    assert_eq!(long.counters(1)["hop_limit"], 1);
    assert!(long.take_in_flight().is_empty());
    // Nothing was forwarded or held.
    assert!(net.take_in_flight().is_empty());
    assert_eq!(net.nodes[1].engine.probe().snapshot().relayed, 0);
}

#[test]
fn a_request_seen_before_is_refused_and_a_dead_end_counted() {
    let mut net = plain();
    let d = domain(1);
    let r = request(&net, 0, d, &[0]);
    send(&mut net, 0, 1, RoutingMessage::Request(r.clone()));
    assert_eq!(net.take_in_flight().len(), 1, "forwarded to 2");
    send(&mut net, 0, 1, RoutingMessage::Request(r));
    assert_eq!(net.counters(1)["duplicate"], 1);
    assert!(net.take_in_flight().is_empty());
    // At node 2 the only neighbour (1) is on the path.
    let r = request(&net, 0, d, &[0, 1]);
    send(&mut net, 1, 2, RoutingMessage::Request(r));
    assert_eq!(net.counters(2)["dead_end"], 1);
}

#[test]
fn forged_unsolicited_and_inconsistent_responses_are_refused() {
    let (mut net, d) = {
        let d = domain(1);
        let mut net = Net::new(4, |_| RoutingSettings::default());
        net.member(2, d, Some(true));
        net.both(0, 1);
        net.both(1, 2);
        (net, d)
    };
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    // The request reaches node 2 through node 1; hold the genuine response.
    let first = net.take_in_flight();
    let (_, _, RoutingMessage::Request(r)) = &first[0] else {
        panic!()
    };
    let id = r.id;
    for (from, to, m) in first {
        send(&mut net, from, to, m);
    }
    let second = net.take_in_flight();
    for (from, to, m) in second {
        send(&mut net, from, to, m);
    }
    let mut genuine = net.take_in_flight();
    assert_eq!(genuine.len(), 1);
    let (from, to, RoutingMessage::Response(resp)) = genuine.remove(0) else {
        panic!("a response")
    };
    assert_eq!((from, to), (2, 1));

    // Node 1 relays; tamper with what it passes on.
    send(&mut net, from, to, RoutingMessage::Response(resp.clone()));
    let (_, _, RoutingMessage::Response(relayed)) = net.take_in_flight().remove(0) else {
        panic!()
    };
    // A forged answer: the result changed after signing.
    let mut forged = relayed.clone();
    forged.result = Ok(b"evil".to_vec());
    send(&mut net, 1, 0, RoutingMessage::Response(forged));
    assert_eq!(net.counters(0)["bad_signature"], 1);
    // Signed by another key than the member it names.
    let mut wrong_key = response(&net, 3, 0, id, d, &[2, 1, 0]);
    wrong_key.member = net.nodes[2].id();
    wrong_key.src = net.nodes[2].id();
    send(&mut net, 1, 0, RoutingMessage::Response(wrong_key));
    assert_eq!(net.counters(0)["bad_signature"], 2);
    // From a node the request did not go to.
    send(&mut net, 2, 0, RoutingMessage::Response(relayed.clone()));
    // For an unknown id.
    let unknown = response(&net, 2, 0, id + 1, d, &[2, 1, 0]);
    send(&mut net, 1, 0, RoutingMessage::Response(unknown));
    assert_eq!(net.counters(0)["unsolicited"], 2);
    // A path that does not start at the member.
    let odd = response(&net, 2, 0, id, d, &[3, 1, 0]);
    send(&mut net, 1, 0, RoutingMessage::Response(odd));
    // For another domain than the request's.
    let other = response(&net, 2, 0, id, domain(9), &[2, 1, 0]);
    send(&mut net, 1, 0, RoutingMessage::Response(other));
    assert_eq!(net.counters(0)["bad_response"], 2);
    assert!(net.nodes[0].answers.is_empty(), "nothing reached the asker");
    assert!(net.nodes[0].routes.members(&d).is_empty(), "nothing learnt");

    // The genuine one still goes through, once.
    send(&mut net, 1, 0, RoutingMessage::Response(relayed.clone()));
    assert_eq!(net.nodes[0].results().len(), 1);
    send(&mut net, 1, 0, RoutingMessage::Response(relayed));
    assert_eq!(net.counters(0)["unsolicited"], 3);
    // A relay passes a response on only once, and only from the node it forwarded to.
    send(&mut net, from, to, RoutingMessage::Response(resp.clone()));
    assert_eq!(net.counters(1)["unsolicited"], 1);
    assert!(net.take_in_flight().is_empty());
}

#[test]
fn a_relay_refuses_a_response_whose_path_does_not_match_its_entry() {
    let d = domain(1);
    let mut net = Net::new(4, |_| RoutingSettings::default());
    net.both(0, 1);
    net.both(1, 2);
    net.member(2, d, Some(true));
    let r = request(&net, 0, d, &[0]);
    send(&mut net, 0, 1, RoutingMessage::Request(r));
    let _ = net.take_in_flight();
    // Node 2 answers with a path that sends the response on to node 3, not 0.
    let bad = response(&net, 2, 0, 77, d, &[2, 1, 3, 0]);
    send(&mut net, 2, 1, RoutingMessage::Response(bad));
    assert_eq!(net.counters(1)["bad_response"], 1);
    assert!(net.take_in_flight().is_empty());
}

#[test]
fn an_answer_from_a_member_the_advert_does_not_list_is_refused() {
    let d_key = Keypair::from_seed(&[0x44; 32]);
    let d = d_key.domain_identity();
    let mut net = Net::new(3, |_| RoutingSettings::default());
    net.both(0, 1);
    net.ask(0, d, Protocol::DOMAIN_ROUTING, PROBE_REQUEST);
    let (_, _, RoutingMessage::Request(r)) = net.take_in_flight().remove(0) else {
        panic!()
    };
    // An advert listing node 2 only as answering external requests.
    let advert = crate::wire::DomainAdvert::new_signed(
        &d_key,
        vec![],
        crate::wire::advert::DomainAuth::None,
        vec![net.nodes[2].id()],
        0,
        1,
        Timestamp(1),
    );
    let mut resp = response(&net, 1, 0, r.id, d, &[1, 0]);
    resp.advert = Some(crate::wire::encode_to_vec(&advert));
    let resp = resp.sign(&net.nodes[1].key.clone());
    send(&mut net, 1, 0, RoutingMessage::Response(resp));
    assert_eq!(net.counters(0)["bad_response"], 1);
    assert!(net.nodes[0].answers.is_empty());
    // An advert that does not verify is ignored; the answer stands.
    let mut resp = response(&net, 1, 0, r.id, d, &[1, 0]);
    resp.advert = Some(b"not an advert".to_vec());
    let resp = resp.sign(&net.nodes[1].key.clone());
    send(&mut net, 1, 0, RoutingMessage::Response(resp));
    assert_eq!(net.counters(0)["bad_advert"], 1);
    assert_eq!(net.nodes[0].results().len(), 1);
}

#[test]
fn floods_are_bounded_by_the_rate_and_the_relay_table() {
    let d = domain(1);
    let limits = RoutingLimits {
        max_relayed: 8,
        requests_per_peer_s: 20,
        ..RoutingLimits::default()
    };
    let mut net = Net::new(3, |_| RoutingSettings {
        limits,
        ..RoutingSettings::default()
    });
    net.both(0, 1);
    net.both(1, 2);
    for id in 0..30 {
        let mut r = request(&net, 0, d, &[0]);
        r.id = id;
        send(&mut net, 0, 1, RoutingMessage::Request(r));
    }
    let c = net.counters(1);
    assert_eq!(c["rate_limited"], 10);
    assert_eq!(c["relay_full"], 12);
    assert_eq!(c["forwarded"], 8);
    assert_eq!(net.nodes[1].engine.probe().snapshot().relayed, 8);
    // A second later the window is fresh, and expired relay entries make room.
    net.take_in_flight();
    net.advance(Duration::from_secs(6));
    let mut r = request(&net, 0, d, &[0]);
    r.id = 1000;
    send(&mut net, 0, 1, RoutingMessage::Request(r));
    assert_eq!(net.counters(1)["forwarded"], 9);
    assert_eq!(net.nodes[1].engine.probe().snapshot().relayed, 1);
}

#[test]
fn own_requests_and_held_requests_are_bounded() {
    let d = domain(1);
    let limits = RoutingLimits {
        max_pending: 3,
        max_arrived: 2,
        ..RoutingLimits::default()
    };
    let mut net = Net::new(2, |_| RoutingSettings {
        limits,
        ..RoutingSettings::default()
    });
    net.member(1, d, Some(true));
    net.both(0, 1);
    for _ in 0..5 {
        net.ask(0, d, APP, b"x");
    }
    assert_eq!(net.counters(0)["pending_full"], 2);
    let r = net.nodes[0].results();
    assert_eq!(r.len(), 2);
    assert!(r
        .iter()
        .all(|(res, _, _)| matches!(res, Err(e) if e.contains("too many"))));
    net.run();
    // The member holds two for its local engine and answers the third with an error at once.
    assert_eq!(net.nodes[1].arrived.len(), 2);
    assert_eq!(net.counters(1)["arrived_full"], 1);
    assert_eq!(net.nodes[0].results().len(), 3);
    // An oversized local request is answered with an error, not sent.
    net.ask(0, d, APP, &vec![0; wire::MAX_BODY + 1]);
    assert!(matches!(&net.nodes[0].results()[3].0, Err(e) if e.contains("64 KiB")));
    assert!(net.take_in_flight().is_empty());
}

#[test]
fn bad_origins_and_bodies_are_refused() {
    let mut net = plain();
    // Undecodable and unknown-version bodies.
    net.deliver_remote(0, 1, vec![1, 2, 3]);
    let mut bytes = RoutingMessage::Request(request(&net, 0, domain(1), &[0])).to_bytes();
    bytes[0] = 9;
    net.deliver_remote(0, 1, bytes);
    let c = net.counters(1);
    assert_eq!((c["malformed"], c["unknown_version"]), (1, 1));
    // Local mail that is not for this engine, or undecodable.
    net.local(
        1,
        RoutingMail::Answer {
            domain: domain(1),
            result: Ok(vec![]),
            member: None,
            hops: 0,
            advert: None,
        },
    );
    net.local_raw(
        1,
        Destination::Node(net.nodes[1].id()),
        Protocol::DOMAIN_ROUTING,
        vec![0xff],
    );
    net.local_raw(1, Destination::Node(net.nodes[1].id()), APP, vec![]);
    assert_eq!(net.counters(1)["malformed"], 4);
    assert!(net.take_in_flight().is_empty());
}
