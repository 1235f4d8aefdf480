//! Threaded tests of one node: engines on their own threads exchanging messages and topics
//! through the Router; panics, full mailboxes and shutdown.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use netmachine::router::topics::{TopicError, TopicEvent};
use netmachine::runtime::Undeliverable;
use netmachine::wire::Protocol;
use netmachine::{
    Context, DropReason, Engine, EngineIdentity, EngineSpec, Input, Keypair, NodeBuilder,
    RoutingScope, SendOptions, TopicIdentity,
};

use common::wait_until;

const APP: Protocol = Protocol(Protocol::APP_BASE + 7);

/// What a peer engine saw.
#[derive(Default)]
struct PeerLog {
    /// Per source, the sequence numbers received, in arrival order.
    received: HashMap<EngineIdentity, Vec<u64>>,
    replies: u64,
    undeliverable: u64,
}

/// Sends `total` requests round-robin to `peers` with at most `window` outstanding; answers
/// every request it receives.
struct Peer {
    peers: Vec<EngineIdentity>,
    total: u64,
    window: u64,
    sent: u64,
    next_seq: HashMap<EngineIdentity, u64>,
    log: Arc<Mutex<PeerLog>>,
}

impl Peer {
    fn send_next(&mut self, ctx: &mut Context) {
        let dst = self.peers[(self.sent as usize) % self.peers.len()];
        let seq = self.next_seq.entry(dst).or_insert(0);
        ctx.send(dst, APP, seq.to_le_bytes().to_vec());
        *seq += 1;
        self.sent += 1;
    }
}

impl Engine for Peer {
    fn start(&mut self, ctx: &mut Context) {
        while self.sent < self.window.min(self.total) {
            self.send_next(ctx);
        }
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Message(m) if m.reply_to().is_some() => {
                self.log.lock().replies += 1;
                if self.sent < self.total {
                    self.send_next(ctx);
                }
            }
            Input::Message(m) => {
                let seq = u64::from_le_bytes(m.body().try_into().unwrap());
                self.log
                    .lock()
                    .received
                    .entry(m.sender().verified().expect("a local sender"))
                    .or_default()
                    .push(seq);
                ctx.reply(&m, Vec::new());
            }
            Input::Undeliverable(_) => self.log.lock().undeliverable += 1,
            _ => {}
        }
    }
}

#[test]
fn eight_engines_exchange_100k_messages_none_lost_or_duplicated() {
    const ENGINES: usize = 8;
    const TOTAL: u64 = 100_000;
    let per_engine = TOTAL / ENGINES as u64;
    let key = Keypair::generate();
    let names: Vec<String> = (0..ENGINES).map(|i| format!("peer{i}")).collect();
    let ids: Vec<EngineIdentity> = names
        .iter()
        .map(|n| key.derive_engine(n).engine_identity())
        .collect();
    let logs: Vec<Arc<Mutex<PeerLog>>> = (0..ENGINES).map(|_| Default::default()).collect();
    let mut builder = NodeBuilder::new(key.clone());
    for i in 0..ENGINES {
        let peers = ids.iter().copied().filter(|p| *p != ids[i]).collect();
        builder = builder.engine(
            &names[i],
            Peer {
                peers,
                total: per_engine,
                window: 64,
                sent: 0,
                next_seq: HashMap::new(),
                log: Arc::clone(&logs[i]),
            },
        );
    }
    let node = builder.start().unwrap();
    let done = wait_until(Duration::from_secs(120), || {
        logs.iter().map(|l| l.lock().replies).sum::<u64>() == TOTAL
    });
    assert!(
        done,
        "replies: {}",
        logs.iter().map(|l| l.lock().replies).sum::<u64>()
    );

    // Each engine received, from each other engine, exactly the sequence 0..n in order.
    let mut received_total = 0;
    for (i, log) in logs.iter().enumerate() {
        let log = log.lock();
        assert_eq!(log.undeliverable, 0);
        for (j, sender) in ids.iter().enumerate() {
            if i == j {
                assert!(!log.received.contains_key(sender));
                continue;
            }
            let seqs = &log.received[sender];
            let expected: Vec<u64> = (0..seqs.len() as u64).collect();
            assert_eq!(
                seqs, &expected,
                "engine {i} from {j}: lost, duplicated or reordered"
            );
            received_total += seqs.len() as u64;
        }
    }
    assert_eq!(received_total, TOTAL);
    let stats = node.stats();
    assert_eq!(stats.total_drops(), 0, "{stats}");
    assert_eq!(stats.delivered_local, 2 * TOTAL);
    assert_eq!(stats.signed, 0, "local messages are not signed");
    let report = node.shutdown();
    assert!(report.hung.is_empty() && report.panicked.is_empty());
    assert!(report.joined.contains(&"nm-router".to_string()));
}

/// Answers topic events and forwards topic messages to the test.
struct TopicUser {
    events: Arc<Mutex<Vec<TopicEvent>>>,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Engine for TopicUser {
    fn handle(&mut self, _ctx: &mut Context, input: Input) {
        match input {
            Input::Topic(e) => self.events.lock().push(e),
            Input::Message(m) => self.bodies.lock().push(m.into_body()),
            _ => {}
        }
    }
}

#[test]
fn local_topics_follow_the_scope_rules() {
    let key = Keypair::generate();
    let events = Arc::new(Mutex::new(Vec::new()));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let node = NodeBuilder::new(key)
        .engine(
            "sub",
            TopicUser {
                events: Arc::clone(&events),
                bodies: Arc::clone(&bodies),
            },
        )
        .start()
        .unwrap();
    let topic = TopicIdentity([42; 32]);
    let mut creator = node.client("creator").unwrap();
    let mut other = node.client("other").unwrap();

    creator.create_topic(topic, RoutingScope::Local);
    assert!(matches!(
        creator.recv(Duration::from_secs(5)),
        Some(Input::Topic(TopicEvent::Created { result: Ok(()), .. }))
    ));
    other.create_topic(topic, RoutingScope::Local);
    assert!(matches!(
        other.recv(Duration::from_secs(5)),
        Some(Input::Topic(TopicEvent::Created {
            result: Err(TopicError::AlreadyExists),
            ..
        }))
    ));

    other.subscribe(topic, RoutingScope::Local);
    assert!(matches!(
        other.recv(Duration::from_secs(5)),
        Some(Input::Topic(TopicEvent::Subscribed { result: Ok(()), .. }))
    ));

    // Publish: the subscriber gets it, the publisher (not subscribed) does not.
    creator.publish(topic, APP, b"one".to_vec());
    let got = common::drain_bodies(&mut other, Duration::from_millis(300));
    assert_eq!(got, vec![b"one".to_vec()]);

    // Only the creator may delete.
    other.with_context(|ctx| ctx.delete_topic(topic, RoutingScope::Local));
    assert!(matches!(
        other.recv(Duration::from_secs(5)),
        Some(Input::Topic(TopicEvent::Deleted {
            result: Err(TopicError::NotCreator),
            ..
        }))
    ));

    // Subscribing locally to an unknown topic fails; with scope Any it needs PubSub.
    let unknown = TopicIdentity([43; 32]);
    other.subscribe(unknown, RoutingScope::Local);
    assert!(matches!(
        other.recv(Duration::from_secs(5)),
        Some(Input::Topic(TopicEvent::Subscribed {
            result: Err(TopicError::UnknownTopic),
            ..
        }))
    ));

    // A Local-scoped topic refuses messages from other nodes.
    let remote_node = Keypair::generate();
    let remote_engine = remote_node.derive_engine("r");
    let wire = common::signed_wire(
        &remote_engine,
        &remote_node,
        netmachine::Destination::Topic(topic),
        1,
        b"from afar",
    );
    node.ingress().deliver(remote_node.node_identity(), wire);
    assert!(wait_until(Duration::from_secs(5), || {
        node.stats().drops(DropReason::ScopeViolation) == 1
    }));
    assert!(common::drain_bodies(&mut other, Duration::from_millis(100)).is_empty());

    // A message with scope Local to another node never leaves: it is dropped and reported.
    let far = netmachine::NodeIdentity([7; 32]);
    let id = other.send_with(far, APP, b"x".to_vec(), SendOptions::local_only());
    match other.recv(Duration::from_secs(5)) {
        Some(Input::Undeliverable(Undeliverable {
            id: got, reason, ..
        })) => {
            assert_eq!(got, id);
            assert_eq!(reason, DropReason::ScopeViolation);
        }
        other => panic!("expected undeliverable, got {other:?}"),
    }
    assert_eq!(node.stats().sent_remote, 0);

    creator.with_context(|ctx| ctx.delete_topic(topic, RoutingScope::Local));
    assert!(matches!(
        creator.recv(Duration::from_secs(5)),
        Some(Input::Topic(TopicEvent::Deleted { result: Ok(()), .. }))
    ));
    assert!(events.lock().is_empty());
    assert!(bodies.lock().is_empty());
}

struct Panicker;

impl Engine for Panicker {
    fn handle(&mut self, _ctx: &mut Context, input: Input) {
        if let Input::Message(m) = input {
            if m.body() == b"boom" {
                panic!("told to panic");
            }
        }
    }
}

#[test]
fn a_panicking_engine_is_reported_and_the_node_keeps_running() {
    let key = Keypair::generate();
    let node = NodeBuilder::new(key)
        .engine("fragile", Panicker)
        .start()
        .unwrap();
    let fragile = node.engine_identity("fragile").unwrap();
    let mut client = node.client("c").unwrap();
    client.send(fragile, APP, b"boom".to_vec());
    assert!(wait_until(Duration::from_secs(5), || node.failures().len() == 1));
    assert_eq!(node.failures()[0].message, "told to panic");
    assert!(wait_until(Duration::from_secs(5), || node
        .engine_identity("fragile")
        .is_none()));
    // Messages to it now bounce as engine_gone.
    client.send(fragile, APP, b"hello?".to_vec());
    match client.recv(Duration::from_secs(5)) {
        Some(Input::Undeliverable(u)) => assert_eq!(u.reason, DropReason::EngineGone),
        other => panic!("expected undeliverable, got {other:?}"),
    }
    // The rest of the node works: ping answers.
    client.send(node.identity(), Protocol::PING, b"p".to_vec());
    match client.recv(Duration::from_secs(5)) {
        Some(Input::Message(m)) => assert_eq!(m.body(), b"p"),
        other => panic!("expected a ping reply, got {other:?}"),
    }
    drop(client);
    let report = node.shutdown();
    assert_eq!(report.panicked.len(), 1);
    assert!(report.hung.is_empty());
}

/// Handles one message per 20 ms.
struct Slow;

impl Engine for Slow {
    fn handle(&mut self, _ctx: &mut Context, _input: Input) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_full_mailbox_drops_with_a_count_and_tells_the_sender() {
    let key = Keypair::generate();
    let spec = EngineSpec {
        mailbox_depth: 8,
        ..EngineSpec::named("slow")
    };
    let node = NodeBuilder::new(key)
        .engine_with(spec, Slow)
        .start()
        .unwrap();
    let slow = node.engine_identity("slow").unwrap();
    let mut client = node.client("c").unwrap();
    for i in 0..200u32 {
        client.send(slow, APP, i.to_le_bytes().to_vec());
    }
    let mut bounced = 0;
    while let Some(input) = client.recv(Duration::from_millis(500)) {
        if let Input::Undeliverable(u) = input {
            assert_eq!(u.reason, DropReason::MailboxFull);
            bounced += 1;
        }
    }
    assert!(bounced > 100, "bounced {bounced}");
    let stats = node.stats();
    assert_eq!(stats.drops(DropReason::MailboxFull), bounced);
    // Everything sent is accounted for: delivered or dropped with a reason.
    assert_eq!(stats.delivered_local + bounced, 200);
}

#[test]
fn engine_names_are_checked() {
    let key = Keypair::generate();
    assert!(NodeBuilder::new(key.clone())
        .engine("router", Slow)
        .start()
        .is_err());
    assert!(NodeBuilder::new(key.clone())
        .engine("a", Slow)
        .engine("a", Slow)
        .start()
        .is_err());
    let node = NodeBuilder::new(key).start().unwrap();
    assert!(node.client("ping").is_err());
}
