//! Pub/sub helpers for the integration tests: clusters of real nodes along given edges, topic
//! adverts, and receivers that check every delivery (once, in order per publisher, and after
//! what its publisher had received when it published).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netmachine::pubsub::{PubSubLimits, PUBSUB_ENGINE_NAME};
use netmachine::router::topics::TopicEvent;
use netmachine::time::wall_clock;
use netmachine::wire::{NodeAdvert, Protocol, Signed, TopicAdvert};
use netmachine::{Client, Input, Keypair, Node, NodeBuilder, Origin, RoutingScope, TopicIdentity};

pub const APP: Protocol = Protocol(Protocol::APP_BASE + 21);

/// Nodes connected along `edges` (the lower index dials and keeps the connection up).
pub struct Cluster {
    pub keys: Vec<Keypair>,
    pub nodes: Vec<Node>,
}

pub fn builder(
    keys: &[Keypair],
    addrs: &[SocketAddr],
    edges: &[(usize, usize)],
    i: usize,
) -> NodeBuilder {
    // Without the inter-domain engines: their gossip would connect nodes off the given edges,
    // and these tests rely on the topology being exactly `edges`.
    let mut b = NodeBuilder::new(keys[i].clone())
        .listen(addrs[i])
        .without_interdomain();
    for &(x, y) in edges {
        let other = if x == i {
            y
        } else if y == i {
            x
        } else {
            continue;
        };
        b = b.peer(NodeAdvert::for_listen(&keys[other], &[addrs[other]], None));
        if i < other {
            b = b.permanent(keys[other].node_identity());
        }
    }
    b
}

pub fn cluster(n: usize, edges: &[(usize, usize)]) -> Cluster {
    cluster_with(n, edges, |_| PubSubLimits::default())
}

/// A cluster whose node `i` runs PubSub with `limits(i)`.
pub fn cluster_with(
    n: usize,
    edges: &[(usize, usize)],
    limits: impl Fn(usize) -> PubSubLimits,
) -> Cluster {
    let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate()).collect();
    let addrs: Vec<SocketAddr> = (0..n).map(|_| super::free_port()).collect();
    let nodes = (0..n)
        .map(|i| {
            builder(&keys, &addrs, edges, i)
                .pubsub_limits(limits(i))
                .start()
                .unwrap()
        })
        .collect();
    Cluster { keys, nodes }
}

/// The signed advert of a topic published by `publisher`'s node.
pub fn advert(topic_key: &Keypair, publisher: &Node) -> TopicAdvert {
    TopicAdvert {
        topic: topic_key.topic_identity(),
        publishers: vec![publisher.engine_identity(PUBSUB_ENGINE_NAME).unwrap()],
        tags: vec!["test".into()],
        version: 1,
        created: wall_clock(),
        scope: None,
        sig: netmachine::identity::Signature([0; 64]),
    }
    .sign(topic_key)
}

pub fn create(publisher: &mut Client, advert: TopicAdvert) {
    let topic = advert.topic;
    publisher.with_context(|ctx| {
        ctx.topic_request(netmachine::router::topics::TopicRequest::Create {
            topic,
            scope: RoutingScope::Any,
            advert: Some(advert),
        })
    });
    loop {
        match publisher.recv(Duration::from_secs(5)) {
            Some(Input::Topic(TopicEvent::Created { result: Ok(()), .. })) => return,
            // Reports on an earlier topic of this publisher, or answers it did not wait for.
            Some(Input::Topic(TopicEvent::Progress { .. } | TopicEvent::Deleted { .. })) => {}
            other => panic!("create: {other:?}"),
        }
    }
}

pub fn subscribe(client: &mut Client, topic: TopicIdentity) {
    client.subscribe(topic, RoutingScope::Any);
}

pub fn wait_subscribed(client: &mut Client, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while let Some(input) = client.recv(deadline.saturating_duration_since(Instant::now())) {
        match input {
            Input::Topic(TopicEvent::Subscribed { result: Ok(()), .. }) => return,
            Input::Topic(TopicEvent::Subscribed { result: Err(e), .. }) => {
                panic!("subscribe: {e:?}")
            }
            _ => {}
        }
    }
    panic!("not subscribed within {timeout:?}");
}

/// Reads `n` event bodies (as u64) from a subscriber, checking they came through PubSub.
pub fn receive(client: &mut Client, n: usize, timeout: Duration) -> Vec<u64> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n {
        let Some(input) = client.recv(deadline.saturating_duration_since(Instant::now())) else {
            break;
        };
        if let Input::Message(m) = input {
            assert!(
                matches!(m.origin(), Origin::Topic { .. }),
                "{:?}",
                m.origin()
            );
            got.push(u64::from_le_bytes(m.body()[..8].try_into().unwrap()));
        }
    }
    // That nothing more arrives afterwards (no duplicate) is not waited for here: the
    // simulator checks it after every event of its runs (tests/sim.rs).
    got
}

pub fn publish(client: &mut Client, topic: TopicIdentity, range: std::ops::Range<u64>) {
    for i in range {
        client.publish(topic, APP, i.to_le_bytes().to_vec());
    }
}

pub fn wait_children(publisher: &mut Client, k: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while let Some(input) = publisher.recv(deadline.saturating_duration_since(Instant::now())) {
        if let Input::Topic(TopicEvent::Progress { peers, .. }) = input {
            if peers.len() >= k {
                return;
            }
        }
    }
    panic!("fewer than {k} subscribing peers within {timeout:?}");
}

/// The signed advert of a topic published by the nodes `publishers`.
pub fn advert_of(topic_key: &Keypair, publishers: &[&Node], version: u64) -> TopicAdvert {
    TopicAdvert {
        topic: topic_key.topic_identity(),
        publishers: publishers
            .iter()
            .map(|n| n.engine_identity(PUBSUB_ENGINE_NAME).unwrap())
            .collect(),
        tags: vec![],
        version,
        created: wall_clock(),
        scope: None,
        sig: netmachine::identity::Signature([0; 64]),
    }
    .sign(topic_key)
}

/// An event's application body: publisher index, sequence number, and the last sequence number
/// of each other publisher that the publisher had received when it published.
pub fn body_of(index: u32, seq: u64, received: &BTreeMap<u32, u64>) -> Vec<u8> {
    let mut b = index.to_le_bytes().to_vec();
    b.extend_from_slice(&seq.to_le_bytes());
    for (q, s) in received {
        b.extend_from_slice(&q.to_le_bytes());
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// What one receiver got, checked as it arrives.
#[derive(Default)]
pub struct Receiver {
    /// The receiver's own publisher index, if it publishes (its own events are not delivered
    /// to it).
    pub own: Option<u32>,
    /// Per publisher, the last sequence number received.
    pub last: BTreeMap<u32, u64>,
    /// Deliveries so far.
    pub count: usize,
}

impl Receiver {
    /// Checks one delivery: the next of its publisher, after everything its publisher had
    /// received when it published it.
    pub fn got(&mut self, who: &str, body: &[u8]) {
        let index = u32::from_le_bytes(body[..4].try_into().unwrap());
        let seq = u64::from_le_bytes(body[4..12].try_into().unwrap());
        let expected = self.last.get(&index).map_or(0, |l| l + 1);
        assert_eq!(seq, expected, "{who}: event {index}/{seq} once, in order");
        for claim in body[12..].chunks(12) {
            let q = u32::from_le_bytes(claim[..4].try_into().unwrap());
            let s = u64::from_le_bytes(claim[4..].try_into().unwrap());
            assert!(
                Some(q) == self.own || self.last.get(&q).is_some_and(|l| *l >= s),
                "{who}: event {index}/{seq} before {q}/{s}, which its publisher had received"
            );
        }
        self.last.insert(index, seq);
        self.count += 1;
    }
}

/// Every topic message a client has, checked, until it has `n` (or `timeout` passes).
pub fn receive_checked(
    client: &mut Client,
    who: &str,
    r: &mut Receiver,
    n: usize,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    while r.count < n {
        let Some(input) = client.recv(deadline.saturating_duration_since(Instant::now())) else {
            break;
        };
        if let Input::Message(m) = input {
            assert!(matches!(m.origin(), Origin::Topic { .. }), "{who}");
            r.got(who, m.body());
        }
    }
}
