//! The Domain engine between several nodes: joins with a PSK, refusals (wrong key, not on the
//! list, domain full), leave, expel, convergence after a partition heals and under message
//! loss, the Topology mail, member listing, external requests and a genesis-formed domain.

use super::*;
use crate::mail::domain::{JoinRefusal, MemberInfo};

fn psk_all(_: usize) -> Option<Vec<u8>> {
    Some(b"three-node secret".to_vec())
}

fn accepted(m: &DomainMail) -> (u64, Option<NodeIdentity>) {
    match m {
        DomainMail::JoinResult {
            result: Ok(epoch),
            approver,
            ..
        } => (*epoch, *approver),
        other => panic!("join not accepted: {other:?}"),
    }
}

fn refused(m: &DomainMail) -> JoinRefusal {
    match m {
        DomainMail::JoinResult { result: Err(r), .. } => *r,
        other => panic!("join not refused: {other:?}"),
    }
}

/// Whether every node in `nodes` holds the same members of `d`, and returns them.
fn agreed(net: &Net, d: &DomainIdentity, nodes: &[usize]) -> Option<BTreeSet<NodeIdentity>> {
    let first = net.members(nodes[0], d);
    nodes
        .iter()
        .all(|i| net.members(*i, d) == first)
        .then_some(first)
}

#[test]
fn three_node_domain_with_a_psk() {
    let (mut net, d) = domain_net(3, 1, DomainAuth::Psk, 0, psk_all);
    let intro = net.nodes[0].id();
    // The introducer is a member from the start and watches its view.
    assert!(net.nodes[0].directory.member_here(&d));
    assert!(net.nodes[0]
        .topology
        .contains(&ViewMail::Watch { domain: d }));
    let (e1, a1) = accepted(&join(&mut net, 1, d));
    assert_eq!(a1, Some(intro));
    assert!(e1 > 0);
    let (e2, _) = accepted(&join(&mut net, 2, d));
    assert!(e2 > e1, "epochs are lamports: later joins have later ones");
    net.run(Duration::from_secs(3));
    let all = agreed(&net, &d, &[0, 1, 2]).expect("all three agree");
    assert_eq!(all.len(), 3);
    for i in 0..3 {
        assert!(net.nodes[i].directory.member_here(&d));
        let p = net.nodes[i].engine.probe().domain(&d).unwrap();
        assert_eq!(p.members, 3);
        assert!(p.member_here);
    }
    assert_eq!(
        net.nodes[0]
            .engine
            .probe()
            .domain(&d)
            .unwrap()
            .member_digest,
        net.nodes[2]
            .engine
            .probe()
            .domain(&d)
            .unwrap()
            .member_digest
    );
    assert_eq!(DomainStats::get(&net.stats(0).joins_approved), 2);
    // The joiner told its Topology engine about the domain's members.
    let told = net.nodes[2].topology.iter().any(|m| {
        matches!(m, ViewMail::Members { here: true, added, introducers, .. }
            if added.contains(&intro) && introducers == &vec![intro])
    });
    assert!(told, "{:?}", net.nodes[2].topology);
    // Joining again answers at once with the epoch held.
    assert_eq!(accepted(&join(&mut net, 2, d)).0, e2);
}

#[test]
fn a_wrong_psk_is_refused() {
    let (mut net, d) = domain_net(3, 1, DomainAuth::Psk, 0, |i| {
        Some(if i == 2 {
            b"wrong".to_vec()
        } else {
            b"right".to_vec()
        })
    });
    let m = join(&mut net, 2, d);
    assert_eq!(refused(&m), JoinRefusal::WrongKey);
    assert!(
        matches!(m, DomainMail::JoinResult { approver: Some(a), .. } if a == net.nodes[0].id())
    );
    assert_eq!(DomainStats::get(&net.stats(0).join_wrong_key), 1);
    accepted(&join(&mut net, 1, d));
    net.run(Duration::from_secs(2));
    assert_eq!(net.members(0, &d).len(), 2);
    assert!(!net.members(0, &d).contains(&net.nodes[2].id()));
    // No key at all is refused locally.
    let (mut net, d) = domain_net(2, 1, DomainAuth::Psk, 0, |i| {
        (i == 0).then(|| b"k".to_vec())
    });
    assert_eq!(refused(&join(&mut net, 1, d)), JoinRefusal::WrongKey);
}

#[test]
fn the_allow_list_is_enforced() {
    let ks = keys(1234, 3);
    let (mut net, d) = domain_net(
        3,
        1,
        DomainAuth::AllowList(vec![ks[1].node_identity()]),
        0,
        |_| None,
    );
    assert_eq!(refused(&join(&mut net, 2, d)), JoinRefusal::NotOnList);
    assert_eq!(DomainStats::get(&net.stats(0).join_not_on_list), 1);
    accepted(&join(&mut net, 1, d));
}

#[test]
fn a_full_domain_refuses() {
    let (mut net, d) = domain_net(3, 1, DomainAuth::None, 2, |_| None);
    accepted(&join(&mut net, 1, d));
    net.run(Duration::from_secs(1));
    assert_eq!(refused(&join(&mut net, 2, d)), JoinRefusal::DomainFull);
    assert_eq!(DomainStats::get(&net.stats(0).join_domain_full), 1);
    assert_eq!(net.members(0, &d).len(), 2);
}

#[test]
fn a_member_leaves() {
    let (mut net, d) = domain_net(3, 1, DomainAuth::None, 0, |_| None);
    accepted(&join(&mut net, 1, d));
    accepted(&join(&mut net, 2, d));
    net.run(Duration::from_secs(2));
    net.full_view(d, &[0, 1, 2]);
    net.local(1, DomainMail::Leave { domain: d });
    assert_eq!(
        net.last_mail(1),
        Some(DomainMail::Done {
            domain: d,
            result: Ok(())
        })
    );
    net.run(Duration::from_secs(2));
    let left = net.nodes[1].id();
    for i in 0..3 {
        assert!(!net.members(i, &d).contains(&left), "node {i}");
        assert_eq!(net.members(i, &d).len(), 2);
    }
    assert!(!net.nodes[1].directory.member_here(&d));
    assert!(net.nodes[1]
        .topology
        .contains(&ViewMail::Unwatch { domain: d }));
    // An introducer cannot leave; leaving twice is refused.
    net.local(0, DomainMail::Leave { domain: d });
    assert!(matches!(
        net.last_mail(0),
        Some(DomainMail::Done { result: Err(_), .. })
    ));
    net.local(1, DomainMail::Leave { domain: d });
    assert!(matches!(
        net.last_mail(1),
        Some(DomainMail::Done { result: Err(_), .. })
    ));
    // It can join again (add wins over its old leave).
    accepted(&join(&mut net, 1, d));
    net.run(Duration::from_secs(2));
    assert!(net.members(2, &d).contains(&left));
}

#[test]
fn an_introducer_expels() {
    let (mut net, d) = domain_net(4, 1, DomainAuth::None, 0, |_| None);
    for i in 1..4 {
        accepted(&join(&mut net, i, d));
    }
    net.run(Duration::from_secs(2));
    net.full_view(d, &[0, 1, 2, 3]);
    let target = net.nodes[3].id();
    // Only an introducer may.
    net.local(
        1,
        DomainMail::Expel {
            domain: d,
            node: target,
        },
    );
    assert!(matches!(
        net.last_mail(1),
        Some(DomainMail::Done { result: Err(_), .. })
    ));
    net.local(
        0,
        DomainMail::Expel {
            domain: d,
            node: target,
        },
    );
    assert_eq!(
        net.last_mail(0),
        Some(DomainMail::Done {
            domain: d,
            result: Ok(())
        })
    );
    net.run(Duration::from_secs(2));
    for i in 0..4 {
        assert!(!net.members(i, &d).contains(&target), "node {i}");
    }
    // The expelled node may not come back.
    assert_eq!(refused(&join(&mut net, 3, d)), JoinRefusal::Expelled);
}

#[test]
fn membership_converges_after_a_partition_heals() {
    let (mut net, d) = domain_net(8, 2, DomainAuth::None, 0, |_| None);
    for i in 2..6 {
        accepted(&join(&mut net, i, d));
    }
    net.run(Duration::from_secs(2));
    net.full_view(d, &[0, 1, 2, 3, 4, 5]);
    // Two halves, each with an introducer.
    net.group = vec![0, 1, 0, 0, 1, 1, 0, 1];
    let (e6, a6) = accepted(&join(&mut net, 6, d));
    assert_eq!(a6, Some(net.nodes[0].id()));
    let (_, a7) = accepted(&join(&mut net, 7, d));
    assert_eq!(a7, Some(net.nodes[1].id()));
    assert!(e6 > 0);
    net.local(3, DomainMail::Leave { domain: d });
    let expelled = net.nodes[4].id();
    net.local(
        1,
        DomainMail::Expel {
            domain: d,
            node: expelled,
        },
    );
    net.run(Duration::from_secs(2));
    // The halves disagree while apart.
    assert_ne!(net.members(0, &d), net.members(1, &d));
    net.full_view(d, &[0, 6]);
    net.full_view(d, &[1, 7]);
    // Heal.
    net.group = vec![0; 8];
    net.run(Duration::from_secs(8));
    let live = [0, 1, 2, 3, 4, 5, 6, 7];
    let all = agreed(&net, &d, &live).expect("every replica agrees after the heal");
    let expected: BTreeSet<NodeIdentity> = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|i| net.nodes[*i].id())
        .collect();
    assert_eq!(all, expected);
    assert!(DomainStats::get(&net.stats(0).digests_mismatched) > 0);
}

#[test]
fn joins_converge_under_ten_percent_loss() {
    let (mut net, d) = domain_net(10, 2, DomainAuth::None, 0, |_| None);
    net.loss = 0.10;
    let mut joined = vec![0, 1];
    for i in 2..10 {
        if let DomainMail::JoinResult { result: Ok(_), .. } = join(&mut net, i, d) {
            joined.push(i);
        }
        net.full_view(d, &joined);
    }
    assert!(
        joined.len() >= 8,
        "most joins succeed with retries: {joined:?}"
    );
    net.run(Duration::from_secs(15));
    let all = agreed(&net, &d, &joined).expect("converged under loss");
    assert_eq!(all.len(), joined.len());
}

#[test]
fn members_are_listed_with_the_view() {
    let (mut net, d) = domain_net(3, 1, DomainAuth::None, 0, |_| None);
    accepted(&join(&mut net, 1, d));
    accepted(&join(&mut net, 2, d));
    net.run(Duration::from_secs(2));
    let n1 = net.nodes[1].id();
    net.view(
        0,
        ViewMail::PeerAddedToView {
            domain: d,
            node: n1,
        },
    );
    net.local(0, DomainMail::Members { domain: d });
    let Some(DomainMail::MembersAre { members, .. }) = net.last_mail(0) else {
        panic!("no member list")
    };
    assert_eq!(members.len(), 3);
    let info: &MemberInfo = members.iter().find(|m| m.node == n1).unwrap();
    assert!(info.in_view && !info.introducer && info.epoch > 0);
    assert_eq!(info.approver, net.nodes[0].id());
    let intro = members
        .iter()
        .find(|m| m.node == net.nodes[0].id())
        .unwrap();
    assert!(intro.introducer && !intro.in_view);
    assert_eq!(net.nodes[0].engine.probe().domain(&d).unwrap().view, 1);
    net.view(
        0,
        ViewMail::PeerRemovedFromView {
            domain: d,
            node: n1,
        },
    );
    assert_eq!(net.nodes[0].engine.probe().domain(&d).unwrap().view, 0);
    // An unknown domain lists nobody.
    let other = DomainIdentity([3; 32]);
    net.local(0, DomainMail::Members { domain: other });
    assert_eq!(
        net.last_mail(0),
        Some(DomainMail::MembersAre {
            domain: other,
            members: vec![]
        })
    );
}

#[test]
fn a_non_member_asks_an_external_request() {
    let (mut net, d) = domain_net(3, 1, DomainAuth::None, 0, |_| None);
    accepted(&join(&mut net, 1, d));
    net.run(Duration::from_secs(1));
    net.local(
        2,
        DomainMail::ExtRequest {
            domain: d,
            protocol: Protocol::DOMAIN,
            body: b"info".to_vec(),
        },
    );
    net.run(Duration::from_millis(200));
    let Some(DomainMail::ExtReply {
        result: Ok(body),
        member,
        ..
    }) = net.last_mail(2)
    else {
        panic!("no external reply")
    };
    assert_eq!(member, Some(net.nodes[0].id()));
    let info = DomainInfo::from_bytes(&body).unwrap();
    assert_eq!(info.members, 2);
    assert_eq!(info.advert_version, 1);
    // Another protocol is not served here: an error, said plainly.
    net.local(
        2,
        DomainMail::ExtRequest {
            domain: d,
            protocol: Protocol(9000),
            body: vec![],
        },
    );
    net.run(Duration::from_millis(200));
    assert!(matches!(
        net.last_mail(2),
        Some(DomainMail::ExtReply { result: Err(_), .. })
    ));
    assert_eq!(DomainStats::get(&net.stats(0).ext_unknown_protocol), 1);
    // No answer: a timeout.
    net.nodes[0].up = false;
    net.local(
        2,
        DomainMail::ExtRequest {
            domain: d,
            protocol: Protocol::DOMAIN,
            body: b"info".to_vec(),
        },
    );
    net.run(Duration::from_secs(7));
    assert!(matches!(
        net.last_mail(2),
        Some(DomainMail::ExtReply { result: Err(_), .. })
    ));
    assert_eq!(DomainStats::get(&net.stats(2).ext_timeouts), 1);
}

#[test]
fn joins_time_out_over_every_introducer() {
    let (mut net, d) = domain_net(3, 2, DomainAuth::None, 0, |_| None);
    net.nodes[0].up = false;
    net.nodes[1].up = false;
    assert_eq!(refused(&join(&mut net, 2, d)), JoinRefusal::Timeout);
    assert_eq!(DomainStats::get(&net.stats(2).join_retries), 3);
    assert_eq!(DomainStats::get(&net.stats(2).join_timeouts), 1);
    // With one introducer back, a retry reaches it.
    net.nodes[1].up = true;
    accepted(&join(&mut net, 2, d));
}

#[test]
fn a_genesis_formed_domain_starts_agreed() {
    let ks = keys(77, 40);
    let domain_key = Keypair::from_seed(&[77; 32]);
    let advert = advert_for(&domain_key, &ks[..2], DomainAuth::None, 0);
    let d = advert.id;
    let members: Vec<NodeIdentity> = ks[2..].iter().map(|k| k.node_identity()).collect();
    let genesis = DomainEngine::genesis_ops(&ks[..2], d, &members);
    assert_eq!(genesis.len(), 38);
    let mut net = Net::new(&ks, |_| {
        vec![DomainSettings {
            advert: advert.clone(),
            psk: None,
            join_at_start: false,
        }]
    });
    for n in &mut net.nodes {
        assert_eq!(n.engine.seed_ops(&d, &genesis), 38);
    }
    net.start();
    let digest = net.nodes[0]
        .engine
        .probe()
        .domain(&d)
        .unwrap()
        .member_digest;
    for n in &net.nodes {
        let p = n.engine.probe().domain(&d).unwrap();
        assert_eq!(
            (p.members, p.member_here, p.member_digest),
            (40, true, digest)
        );
    }
    // A digest round finds nothing to repair.
    net.run(Duration::from_secs(3));
    let sum = |f: fn(&DomainStats) -> &std::sync::atomic::AtomicU64| {
        (0..net.nodes.len())
            .map(|i| DomainStats::get(f(net.stats(i))))
            .sum::<u64>()
    };
    assert_eq!(sum(|s| &s.digests_mismatched), 0);
    assert!(
        sum(|s| &s.digests_matched) >= 40,
        "every member sent digests"
    );
}
