//! The Router's `Destination::Domain` path (anycast): on a member, the local engine serving the
//! protocol; else a member known from DomainRouting's answers, through the Transport; else the
//! DomainRouting engine. From another node: delivered on a member, `not_member` elsewhere.

use super::*;
use crate::identity::DomainIdentity;
use crate::mail::domain::DomainDirectory;
use crate::mail::interdomain::{DomainRoutes, KnownMember};
use crate::mail::Origin;
use crate::time::Timestamp;

const D: DomainIdentity = DomainIdentity([0xd1; 32]);

/// A directory holding `D` with this node a member if `here`.
fn directory(f: &Fixture, here: bool) -> DomainDirectory {
    let dir = DomainDirectory::new();
    let mut set = BTreeSet::new();
    if here {
        set.insert(f.node.node_identity());
    }
    dir.publish(D, set, here);
    dir
}

fn only_delivery(f: &mut Fixture) -> (Slot, Input) {
    let mut d = f.deliveries();
    assert_eq!(d.len(), 1, "{d:?}");
    d.remove(0)
}

#[test]
fn on_a_member_a_domain_message_goes_to_the_engine_serving_its_protocol() {
    let mut f = Fixture::new();
    let (a, _) = f.engine("a", &[]);
    let (_, app) = f.engine("app", &[APP]);
    let (_, routing) = f.engine("domain_routing", &[Protocol::DOMAIN_ROUTING]);
    f.drain();
    f.router.set_domains(directory(&f, true));
    // Signed (as an engine shell sends it) or not, it stays here.
    f.send_signed("a", f.message(a, Destination::Domain(D), RoutingScope::Any));
    let (slot, input) = only_delivery(&mut f);
    assert_eq!(slot, app);
    assert!(matches!(&input, Input::Message(m) if m.dst() == Destination::Domain(D)));
    f.send_local(f.message(a, Destination::Domain(D), RoutingScope::Local));
    assert_eq!(only_delivery(&mut f).0, app);
    assert_ne!(app, routing);
}

#[test]
fn a_known_member_gets_the_message_straight() {
    let mut f = Fixture::new();
    let (a, _) = f.engine("a", &[]);
    f.engine("domain_routing", &[Protocol::DOMAIN_ROUTING]);
    f.drain();
    f.router.set_domains(directory(&f, false));
    let routes = DomainRoutes::new();
    let member = key(7).node_identity();
    routes.learn(
        D,
        KnownMember {
            node: member,
            advert: None,
            last_ok: Timestamp(1),
        },
    );
    f.router.set_domain_routes(routes.clone());
    f.send_signed("a", f.message(a, Destination::Domain(D), RoutingScope::Any));
    match f.drain().as_slice() {
        [RouterOutput::Transport(send)] => assert_eq!(send.node, member),
        other => panic!("expected a send to the member, got {other:?}"),
    }
    // Forgotten (it stopped answering): the DomainRouting engine takes over.
    routes.forget(&D, &member);
    f.send_signed("a", f.message(a, Destination::Domain(D), RoutingScope::Any));
    assert_eq!(only_delivery(&mut f).0, 1);
}

#[test]
fn with_no_member_known_the_domain_routing_engine_takes_the_message() {
    let mut f = Fixture::new();
    let (a, slot_a) = f.engine("a", &[]);
    f.drain();
    // Without a DomainRouting engine: no route, and the sender told.
    f.send_signed("a", f.message(a, Destination::Domain(D), RoutingScope::Any));
    let (slot, input) = only_delivery(&mut f);
    assert_eq!(
        (slot, undeliverable(&input)),
        (slot_a, Some(DropReason::NoRoute))
    );
    let (_, routing) = f.engine("domain_routing", &[Protocol::DOMAIN_ROUTING]);
    f.drain();
    f.send_signed("a", f.message(a, Destination::Domain(D), RoutingScope::Any));
    let (slot, input) = only_delivery(&mut f);
    assert_eq!(slot, routing);
    let Input::Message(m) = input else {
        panic!("a message")
    };
    // As the sender sent it: for the domain, its protocol and body, from the local engine.
    assert_eq!(m.dst(), Destination::Domain(D));
    assert_eq!((m.protocol(), m.body()), (APP, &b"hello"[..]));
    assert_eq!(m.origin(), Origin::Local);
    assert_eq!(m.sender().verified(), Some(a));
    // A `Local`-scoped one cannot leave the node, so it is not routed.
    f.send_local(f.message(a, Destination::Domain(D), RoutingScope::Local));
    let (_, input) = only_delivery(&mut f);
    assert_eq!(undeliverable(&input), Some(DropReason::ScopeViolation));
}

#[test]
fn from_another_node_a_domain_message_is_delivered_only_on_a_member() {
    let peer = key(5);
    let sender = peer.derive_engine("x");
    // One fixture per case: the same message twice would be a replay.
    let arrive = |here: bool| {
        let mut f = Fixture::new();
        let (_, app) = f.engine("app", &[APP]);
        f.drain();
        f.router.set_domains(directory(&f, here));
        let wire = remote_wire(&sender, &peer, Destination::Domain(D), RoutingScope::Any);
        f.router
            .handle_remote(f.now, peer.node_identity(), wire, Some(receipt(0)));
        f.router.flush(f.now);
        (f.drain(), app, f.stats.drops(DropReason::NotMember))
    };
    // Not a member: dropped, acknowledged (not the peer's fault).
    let (outs, _, not_member) = arrive(false);
    assert!(matches!(outs.as_slice(), [RouterOutput::Acknowledge(_)]));
    assert_eq!(not_member, 1);
    // A member: the engine serving the protocol, receipt attached.
    let (outs, app, _) = arrive(true);
    match outs.as_slice() {
        [RouterOutput::Deliver {
            slot,
            receipt: Some(_),
            input: Input::Message(m),
            ..
        }] => {
            assert_eq!(*slot, app);
            assert_eq!(m.dst(), Destination::Domain(D));
        }
        other => panic!("expected a delivery, got {other:?}"),
    }
}
