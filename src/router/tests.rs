//! Unit tests of the Router core, without threads: routing by destination, scope rules, the
//! lookup timeout, topic fan-out, bounces and receipts. Keys come from fixed seeds.

use super::*;
use crate::identity::Keypair;
use crate::mail::identity::{AnyIdentity, EngineRecord, IdentityEvent, IdentityRecord};
use crate::mail::topic::{TopicEvent, TopicRequest};
use crate::mail::{Outgoing, Receipt};
use crate::wire::{Destination, MessageId, RoutingPrefs, RoutingScope};

mod anycast;
mod domain;

const APP: Protocol = Protocol(Protocol::APP_BASE + 1);

fn key(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32])
}

struct Fixture {
    router: Router,
    stats: Arc<NodeStats>,
    node: Keypair,
    now: Now,
}

impl Fixture {
    fn new() -> Fixture {
        let stats = Arc::new(NodeStats::default());
        let node = key(1);
        let router = Router::new(
            node.node_identity(),
            Arc::clone(&stats),
            RouterLimits::default(),
            true,
        );
        Fixture {
            router,
            stats,
            node,
            now: Now::read(),
        }
    }

    /// Registers an engine named `name`; returns its identity and slot.
    fn engine(&mut self, name: &str, serves: &[Protocol]) -> (EngineIdentity, Slot) {
        let id = self.node.derive_engine(name).engine_identity();
        let slot = self.router.add_local(id, name, serves).expect("registers");
        (id, slot)
    }

    fn drain(&mut self) -> Vec<RouterOutput> {
        std::iter::from_fn(|| self.router.poll_output()).collect()
    }

    /// Deliveries only (the table snapshots and detaches dropped), as (slot, input).
    fn deliveries(&mut self) -> Vec<(Slot, Input)> {
        self.drain()
            .into_iter()
            .filter_map(|o| match o {
                RouterOutput::Deliver { slot, input, .. } => Some((slot, input)),
                _ => None,
            })
            .collect()
    }

    fn message(&self, src: EngineIdentity, dst: Destination, scope: RoutingScope) -> EngineMessage {
        EngineMessage {
            src,
            src_node: self.node.node_identity(),
            dst,
            id: MessageId(7),
            reply_to: None,
            expiry: Some(self.now.wall.after(Duration::from_secs(60))),
            rprefs: Some(RoutingPrefs { scope }),
            tprefs: None,
            protocol: APP,
            body: b"hello".to_vec(),
            sig: None,
        }
    }

    fn send_local(&mut self, msg: EngineMessage) {
        let out = Outgoing {
            msg: Box::new(msg),
            notify_undeliverable: true,
        };
        self.router.handle_local(self.now, Outbound::Local(out));
    }

    fn send_signed(&mut self, name: &str, mut msg: EngineMessage) {
        let header = RouteHeader::of(&msg, true);
        let mut wire = Vec::new();
        msg.sign_into_wire(&self.node.derive_engine(name), &mut wire, &mut Vec::new());
        self.router
            .handle_local(self.now, Outbound::Signed { header, wire });
    }
}

fn undeliverable(input: &Input) -> Option<DropReason> {
    match input {
        Input::Undeliverable(u) => Some(u.reason),
        _ => None,
    }
}

fn remote_wire(from: &Keypair, node: &Keypair, dst: Destination, scope: RoutingScope) -> Vec<u8> {
    let mut m = EngineMessage {
        src: from.engine_identity(),
        src_node: node.node_identity(),
        dst,
        id: MessageId(1),
        reply_to: None,
        expiry: Some(crate::time::wall_clock().after(Duration::from_secs(60))),
        rprefs: Some(RoutingPrefs { scope }),
        tprefs: None,
        protocol: APP,
        body: b"hello".to_vec(),
        sig: None,
    };
    let mut wire = Vec::new();
    m.sign_into_wire(from, &mut wire, &mut Vec::new());
    wire
}

fn receipt(seq: u64) -> Receipt {
    Receipt {
        conn: 1,
        stream: 2,
        seq,
    }
}

#[test]
fn the_router_owns_the_table_and_publishes_it() {
    let mut f = Fixture::new();
    let (a, _) = f.engine("a", &[]);
    let published: Vec<Arc<LocalEngines>> = f
        .drain()
        .into_iter()
        .filter_map(|o| match o {
            RouterOutput::Published(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(published.len(), 1);
    assert!(published[0].contains(&a));
    assert_eq!(published[0].find("a"), Some(a));
    // Names are unique among running engines.
    let other = key(9).engine_identity();
    assert_eq!(
        f.router.add_local(other, "a", &[]),
        Err(RegisterError::DuplicateName("a".into()))
    );
    f.router.unregister(&a);
    let outputs = f.drain();
    assert!(outputs.iter().any(|o| matches!(o, RouterOutput::Detach(0))));
    assert!(outputs
        .iter()
        .any(|o| matches!(o, RouterOutput::Published(t) if t.is_empty())));
}

#[test]
fn routes_by_destination() {
    let mut f = Fixture::new();
    let (a, slot_a) = f.engine("a", &[]);
    let (b, slot_b) = f.engine("b", &[APP]);
    f.drain();

    // To an engine of this node.
    f.send_local(f.message(a, Destination::Engine(b), RoutingScope::Any));
    let d = f.deliveries();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].0, slot_b);
    assert!(matches!(&d[0].1, Input::Message(m) if m.sender().verified() == Some(a)));

    // To this node: the engine serving the protocol.
    let node = f.node.node_identity();
    f.send_local(f.message(a, Destination::Node(node), RoutingScope::Any));
    assert_eq!(f.deliveries()[0].0, slot_b);

    // A protocol nobody serves: dropped as no_route, and the sender told.
    let mut m = f.message(a, Destination::Node(node), RoutingScope::Any);
    m.protocol = Protocol(Protocol::APP_BASE + 99);
    f.send_local(m);
    let d = f.deliveries();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].0, undeliverable(&d[0].1)),
        (slot_a, Some(DropReason::NoRoute))
    );
    assert_eq!(f.stats.drops(DropReason::NoRoute), 1);

    // To another node: signed, handed to the Transport.
    let far = key(2).node_identity();
    f.send_signed("a", f.message(a, Destination::Node(far), RoutingScope::Any));
    match f.drain().as_slice() {
        [RouterOutput::Transport(send)] => assert_eq!(send.node, far),
        other => panic!("expected a send to the Transport, got {other:?}"),
    }

    // Signed for an engine that turned out to be local: delivered here all the same.
    f.send_signed("a", f.message(a, Destination::Engine(b), RoutingScope::Any));
    assert_eq!(f.deliveries()[0].0, slot_b);

    // For some member of a domain, on a node that is none, knows none and runs no
    // DomainRouting engine: no route (tests/anycast.rs has the rest).
    let d = crate::identity::DomainIdentity([5; 32]);
    f.send_local(f.message(a, Destination::Domain(d), RoutingScope::Any));
    assert_eq!(
        undeliverable(&f.deliveries()[0].1),
        Some(DropReason::NoRoute)
    );
}

#[test]
fn scope_local_never_leaves_the_node() {
    let mut f = Fixture::new();
    let (a, slot_a) = f.engine("a", &[]);
    let (b, _) = f.engine("b", &[]);
    f.drain();
    // Unsigned (the sender's shell kept it here because of its scope) for another node.
    let far = key(2).node_identity();
    f.send_local(f.message(a, Destination::Node(far), RoutingScope::Local));
    let d = f.deliveries();
    assert_eq!(
        (d[0].0, undeliverable(&d[0].1)),
        (slot_a, Some(DropReason::ScopeViolation))
    );
    // Signed with scope Local, for a remote engine whose node is known.
    let remote = key(3);
    let remote_engine = remote.derive_engine("x").engine_identity();
    f.router.handle_identity(
        f.now,
        IdentityEvent::Updated {
            id: AnyIdentity::Engine(remote_engine),
            record: IdentityRecord::Engine(EngineRecord {
                id: remote_engine,
                node: remote.node_identity(),
                advert: None,
            }),
        },
    );
    f.send_signed(
        "a",
        f.message(a, Destination::Engine(remote_engine), RoutingScope::Local),
    );
    assert_eq!(
        undeliverable(&f.deliveries()[0].1),
        Some(DropReason::ScopeViolation)
    );
    // From another node with scope Local: refused, its receipt handed back.
    let peer = key(4);
    let wire = remote_wire(
        &peer.derive_engine("p"),
        &peer,
        Destination::Engine(b),
        RoutingScope::Local,
    );
    f.router
        .handle_remote(f.now, peer.node_identity(), wire, Some(receipt(0)));
    f.router.flush(f.now);
    match f.drain().as_slice() {
        [RouterOutput::Acknowledge(r)] => assert_eq!(r, &[receipt(0)]),
        other => panic!("expected only the receipt back, got {other:?}"),
    }
    assert_eq!(f.stats.drops(DropReason::ScopeViolation), 3);
}

#[test]
fn a_lookup_that_is_not_answered_in_time_drops_as_no_route() {
    let mut f = Fixture::new();
    let (a, slot_a) = f.engine("a", &[]);
    f.drain();
    let unknown = key(8).engine_identity();
    f.send_signed(
        "a",
        f.message(a, Destination::Engine(unknown), RoutingScope::Any),
    );
    match f.drain().as_slice() {
        [RouterOutput::Identity(IdentityRequest::Lookup(AnyIdentity::Engine(e)))] => {
            assert_eq!(*e, unknown)
        }
        other => panic!("expected a lookup, got {other:?}"),
    }
    // Parked: nothing yet, and the deadline is the lookup timeout.
    let deadline = f.router.poll_timeout().expect("a deadline");
    assert!(deadline <= f.now.instant + RouterLimits::default().lookup_timeout);
    f.router
        .handle_timeout(f.now.advanced(Duration::from_secs(1)));
    assert!(f.deliveries().is_empty());
    f.router
        .handle_timeout(f.now.advanced(RouterLimits::default().lookup_timeout));
    let d = f.deliveries();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].0, undeliverable(&d[0].1)),
        (slot_a, Some(DropReason::NoRoute))
    );

    // Answered in time: sent to the node the store names.
    let later = key(7);
    let e = later.derive_engine("x").engine_identity();
    f.send_signed("a", f.message(a, Destination::Engine(e), RoutingScope::Any));
    f.drain();
    f.router.handle_identity(
        f.now,
        IdentityEvent::Found {
            id: AnyIdentity::Engine(e),
            record: Some(IdentityRecord::Engine(EngineRecord {
                id: e,
                node: later.node_identity(),
                advert: None,
            })),
        },
    );
    match f.drain().as_slice() {
        [RouterOutput::Transport(send)] => assert_eq!(send.node, later.node_identity()),
        other => panic!("expected the parked message to leave, got {other:?}"),
    }
}

#[test]
fn topics_fan_out_to_every_subscriber_but_the_sender() {
    let mut f = Fixture::new();
    let (a, slot_a) = f.engine("a", &[]);
    let (b, slot_b) = f.engine("b", &[]);
    let (c, slot_c) = f.engine("c", &[]);
    f.drain();
    let topic = key(6).topic_identity();
    f.router.handle_topic(
        a,
        TopicRequest::Create {
            topic,
            scope: RoutingScope::Local,
            advert: None,
        },
    );
    for e in [a, b, c] {
        f.router.handle_topic(
            e,
            TopicRequest::Subscribe {
                topic,
                scope: RoutingScope::Local,
            },
        );
    }
    let answers = f.deliveries();
    assert_eq!(answers.len(), 4);
    assert!(answers.iter().all(|(_, i)| matches!(
        i,
        Input::Topic(TopicEvent::Created { result: Ok(()), .. })
            | Input::Topic(TopicEvent::Subscribed { result: Ok(()), .. })
    )));
    f.send_local(f.message(a, Destination::Topic(topic), RoutingScope::Local));
    let mut slots: Vec<Slot> = f.deliveries().into_iter().map(|(s, _)| s).collect();
    slots.sort();
    assert_eq!(slots, vec![slot_b, slot_c]);
    assert!(!slots.contains(&slot_a));
    // An unknown topic is a counted drop.
    let other = key(10).topic_identity();
    f.send_local(f.message(a, Destination::Topic(other), RoutingScope::Local));
    assert_eq!(
        undeliverable(&f.deliveries()[0].1),
        Some(DropReason::UnknownTopic)
    );
}

#[test]
fn failed_deliveries_and_transport_drops_bounce_to_the_sender() {
    let mut f = Fixture::new();
    let (a, slot_a) = f.engine("a", &[]);
    let (b, slot_b) = f.engine("b", &[]);
    f.drain();
    f.send_local(f.message(a, Destination::Engine(b), RoutingScope::Any));
    let Some(RouterOutput::Deliver { slot, bounce, .. }) = f
        .drain()
        .into_iter()
        .find(|o| matches!(o, RouterOutput::Deliver { .. }))
    else {
        panic!("no delivery")
    };
    assert_eq!(slot, slot_b);

    // The shell found the mailbox full.
    f.router
        .delivery_failed(slot, DropReason::MailboxFull, bounce, None);
    let d = f.deliveries();
    assert_eq!(
        (d[0].0, undeliverable(&d[0].1)),
        (slot_a, Some(DropReason::MailboxFull))
    );
    assert_eq!(f.stats.drops(DropReason::MailboxFull), 1);

    // The shell found it closed: the engine is forgotten, and later messages are engine_gone.
    f.router
        .delivery_failed(slot, DropReason::EngineGone, bounce, None);
    let outputs = f.drain();
    assert!(outputs
        .iter()
        .any(|o| matches!(o, RouterOutput::Detach(s) if *s == slot_b)));
    f.send_signed("a", f.message(a, Destination::Engine(b), RoutingScope::Any));
    assert_eq!(
        undeliverable(&f.deliveries()[0].1),
        Some(DropReason::EngineGone)
    );

    // The Transport refused a send (its mailbox full: the Router's drop), and dropped another
    // (expired in its queue: counted by the Transport): both bounce through the Router.
    let far = key(2).node_identity();
    f.send_signed("a", f.message(a, Destination::Node(far), RoutingScope::Any));
    let Some(RouterOutput::Transport(send)) = f.router.poll_output() else {
        panic!("no send")
    };
    let header = send.header;
    f.router.transport_refused(send);
    assert_eq!(
        undeliverable(&f.deliveries()[0].1),
        Some(DropReason::QueueFull)
    );
    f.router.handle_bounce(header, DropReason::Expired);
    assert_eq!(
        undeliverable(&f.deliveries()[0].1),
        Some(DropReason::Expired)
    );
    assert_eq!(f.stats.drops(DropReason::QueueFull), 1);
    assert_eq!(
        f.stats.drops(DropReason::Expired),
        0,
        "the Transport counts its own"
    );

    // Answers for engines go through the Router too; for a stopped one they are let go (not
    // messages, so not counted as dropped ones).
    f.router.handle_for_engine(a, Input::Timer(1));
    assert_eq!(f.deliveries()[0].0, slot_a);
    f.router.handle_for_engine(b, Input::Timer(1));
    assert!(f.deliveries().is_empty());
    assert_eq!(f.stats.drops(DropReason::EngineGone), 2);
}

/// A remote message for a local engine travels with its receipt; the receipt comes back only
/// through `handled`, after the deliveries. A refused one has its receipt back at once.
#[test]
fn receipts_wait_for_the_engine_unless_the_message_is_dropped() {
    let mut f = Fixture::new();
    let (local, slot) = f.engine("app", &[]);
    f.drain();
    let peer = key(4);
    let from = peer.derive_engine("app");
    let wire = |scope| remote_wire(&from, &peer, Destination::Engine(local), scope);

    f.router.handle_remote(
        f.now,
        peer.node_identity(),
        wire(RoutingScope::Any),
        Some(receipt(0)),
    );
    f.router.flush(f.now);
    match f.drain().as_slice() {
        [RouterOutput::Deliver {
            slot: s,
            receipt: Some(r),
            ..
        }] => assert_eq!((*s, *r), (slot, receipt(0))),
        other => panic!("expected a delivery with its receipt, got {other:?}"),
    }
    f.router.handled([receipt(0)]);
    match f.drain().as_slice() {
        [RouterOutput::Acknowledge(r)] => assert_eq!(r, &[receipt(0)]),
        other => panic!("expected the receipt, got {other:?}"),
    }

    // The same id again: a duplicate, dropped, its receipt handed back at once.
    f.router.handle_remote(
        f.now,
        peer.node_identity(),
        wire(RoutingScope::Any),
        Some(receipt(1)),
    );
    f.router.flush(f.now);
    match f.drain().as_slice() {
        [RouterOutput::Acknowledge(r)] => assert_eq!(r, &[receipt(1)]),
        other => panic!("expected only the receipt, got {other:?}"),
    }
    assert_eq!(f.stats.drops(DropReason::Duplicate), 1);

    // Receipts the Transport could not take come back first next time.
    f.router.handled([receipt(3)]);
    f.router.return_receipts(vec![receipt(2)]);
    match f.drain().as_slice() {
        [RouterOutput::Acknowledge(r)] => assert_eq!(r, &[receipt(2), receipt(3)]),
        other => panic!("expected both receipts in order, got {other:?}"),
    }

    // While stopping, receipts of messages that did not reach their engine are withheld.
    f.router.set_stopping();
    f.router
        .delivery_failed(slot, DropReason::MailboxFull, None, Some(receipt(4)));
    assert!(f
        .drain()
        .iter()
        .all(|o| !matches!(o, RouterOutput::Acknowledge(_))));
}
