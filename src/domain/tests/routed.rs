//! The Domain engine's side of domain routing: it sets each domain's advert and whether this
//! node answers external requests in the directory, and answers `RoutingMail::Arrived` for
//! `Protocol::DOMAIN` (`info`) with `RoutingMail::Respond` to the DomainRouting engine.

use super::*;
use crate::mail::interdomain::RoutingMail;

/// Hands `mail` from the (local) DomainRouting engine to node `i`'s Domain engine; returns
/// the mail sent back to that engine.
fn arrive(net: &mut Net, i: usize, mail: RoutingMail) -> Vec<RoutingMail> {
    let routing = EngineIdentity([0x70; 32]);
    let me = net.nodes[i].id();
    let m = EngineMessage {
        src: routing,
        src_node: me,
        dst: Destination::Node(me),
        id: MessageId(9),
        reply_to: None,
        expiry: None,
        rprefs: Some(crate::wire::RoutingPrefs {
            scope: RoutingScope::Local,
        }),
        tprefs: None,
        protocol: Protocol::DOMAIN,
        body: mail.encode(),
        sig: None,
    };
    let n = &mut net.nodes[i];
    n.engine
        .handle(&mut n.ctx, Input::Message(Message::local(m)));
    n.engine.flush(&mut n.ctx);
    n.ctx
        .take_outputs()
        .into_iter()
        .filter_map(|o| match o {
            Output::Send(out) if out.msg.dst == Destination::Engine(routing) => {
                assert_eq!(out.msg.protocol, Protocol::DOMAIN_ROUTING);
                assert_eq!(out.msg.scope(), RoutingScope::Local);
                Some(RoutingMail::decode(&out.msg.body).unwrap())
            }
            _ => None,
        })
        .collect()
}

fn arrived(d: DomainIdentity, protocol: Protocol, body: &[u8]) -> RoutingMail {
    RoutingMail::Arrived {
        token: 5,
        src: NodeIdentity([9; 32]),
        domain: d,
        protocol,
        body: body.to_vec(),
    }
}

#[test]
fn the_directory_holds_each_advert_and_who_answers() {
    let (net, d) = domain_net(2, 1, DomainAuth::None, 0, |_| None);
    // Node 0 is the introducer, listed as answering external requests; node 1 is no member.
    let e0 = net.nodes[0].directory.entry(&d).unwrap();
    assert!(e0.member_here && e0.external_here);
    let advert: DomainAdvert = crate::wire::decode_exact(e0.advert.as_ref().unwrap()).unwrap();
    assert_eq!(advert.id, d);
    let e1 = net.nodes[1].directory.entry(&d).unwrap();
    assert!(!e1.member_here && !e1.external_here && e1.advert.is_some());
}

#[test]
fn a_routed_info_request_is_answered_like_an_external_one() {
    let (mut net, d) = domain_net(2, 1, DomainAuth::None, 0, |_| None);
    let out = arrive(&mut net, 0, arrived(d, Protocol::DOMAIN, INFO_REQUEST));
    let [RoutingMail::Respond {
        token: 5,
        result: Ok(body),
    }] = out.as_slice()
    else {
        panic!("expected one Respond, got {out:?}");
    };
    let info = DomainInfo::from_bytes(body).unwrap();
    assert_eq!((info.members, info.advert_version), (1, 1));
    assert_eq!(
        DomainStats::get(&net.nodes[0].engine.stats().routed_requests),
        1
    );
    // Another request, a node that is no member, an unknown domain: errors, said plainly.
    let out = arrive(&mut net, 0, arrived(d, Protocol::DOMAIN, b"members"));
    assert!(matches!(
        &out[..],
        [RoutingMail::Respond { result: Err(_), .. }]
    ));
    let out = arrive(&mut net, 1, arrived(d, Protocol::DOMAIN, INFO_REQUEST));
    assert!(
        matches!(&out[..], [RoutingMail::Respond { result: Err(e), .. }] if e.contains("not a member"))
    );
    let other = DomainIdentity([3; 32]);
    let out = arrive(&mut net, 0, arrived(other, Protocol::DOMAIN, INFO_REQUEST));
    assert!(matches!(
        &out[..],
        [RoutingMail::Respond { result: Err(_), .. }]
    ));
    // Routing mail that is not a request is refused.
    let stray = RoutingMail::Respond {
        token: 1,
        result: Ok(vec![]),
    };
    let before = DomainStats::get(&net.nodes[0].engine.stats().local_malformed);
    assert!(arrive(&mut net, 0, stray).is_empty());
    assert_eq!(
        DomainStats::get(&net.nodes[0].engine.stats().local_malformed),
        before + 1
    );
}
