//! Domain-scoped topics: a small network of PubSub engines wired by hand, where only some nodes
//! are members of the topic's domain and the Topology engine's view events are fed by hand.
//! Members get every event; non-members get nothing of the topic (no advert, no event), and
//! what they send is refused and counted; adverts travel over the view only; a member that
//! leaves the membership or the view stops being a child or parent.

use super::*;
use crate::identity::DomainIdentity;
use crate::mail::domain::{DomainDirectory, ViewMail};
use crate::wire::{RoutingPrefs, RoutingScope};

const D: DomainIdentity = DomainIdentity([0xd0; 32]);

struct Node {
    key: Keypair,
    engine: PubSub,
    ctx: Context,
    /// This node's replica of the membership.
    dir: DomainDirectory,
    /// The Topology engine's active view of `D` here (indices), announced on `Watch`.
    view: Vec<usize>,
    /// Domains this node's PubSub sent `Watch` for.
    watched: Vec<DomainIdentity>,
    /// Payload numbers delivered to local subscribers.
    delivered: Vec<u64>,
    /// Answers to local subscriptions.
    subscribed: Vec<Result<(), TopicError>>,
}

/// Every PubSub message that left a node: (from, to, message).
type Log = Vec<(usize, usize, PubSubMessage)>;

struct Net {
    nodes: Vec<Node>,
    topic_key: Keypair,
    now: Now,
    log: Log,
}

/// `msg` as node `from` would send it to `to`, signed by `from`'s PubSub and verified.
fn remote_input(from: &Keypair, to: NodeIdentity, protocol: Protocol, body: Vec<u8>) -> Input {
    let sender = from.derive_engine(PUBSUB_ENGINE_NAME);
    let mut m = EngineMessage {
        src: sender.engine_identity(),
        src_node: from.node_identity(),
        dst: Destination::Node(to),
        id: MessageId(1),
        reply_to: None,
        expiry: None,
        rprefs: None,
        tprefs: None,
        protocol,
        body,
        sig: None,
    };
    let mut wire = Vec::new();
    m.sign_into_wire(&sender, &mut wire, &mut Vec::new());
    let key = CheckedKey::parse(sender.engine_identity().as_bytes()).unwrap();
    let verified = Unverified::decode(wire)
        .unwrap()
        .verify(&key, &mut Vec::new())
        .unwrap();
    Input::Message(Message::remote(verified, from.node_identity()))
}

impl Net {
    /// `n` nodes, all connected to each other; `members` are the members of `D` (every node's
    /// replica agrees).
    fn new(n: usize, members: &[usize]) -> Net {
        let now = Now::read();
        let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate()).collect();
        let member_ids: BTreeSet<NodeIdentity> =
            members.iter().map(|i| keys[*i].node_identity()).collect();
        let mut nodes: Vec<Node> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let engine_key = key.derive_engine(PUBSUB_ENGINE_NAME);
                let ctx = Context::detached(
                    now,
                    engine_key.engine_identity(),
                    key.node_identity(),
                    "pubsub",
                );
                let dir = DomainDirectory::new();
                dir.publish(D, member_ids.clone(), members.contains(&i));
                let engine = PubSub::new(
                    engine_key,
                    PubSubLimits::default(),
                    Arc::new(PubSubStats::default()),
                )
                .with_domains(dir.clone());
                Node {
                    key: key.clone(),
                    engine,
                    ctx,
                    dir,
                    view: Vec::new(),
                    watched: Vec::new(),
                    delivered: Vec::new(),
                    subscribed: Vec::new(),
                }
            })
            .collect();
        for (i, node) in nodes.iter_mut().enumerate() {
            for (j, peer) in keys.iter().enumerate() {
                if i != j {
                    node.engine.handle(
                        &mut node.ctx,
                        Input::Transport(TransportEvent::NodeConnected {
                            node: peer.node_identity(),
                            addr: "127.0.0.1:1".parse().unwrap(),
                        }),
                    );
                }
            }
        }
        let mut net = Net {
            nodes,
            topic_key: Keypair::generate(),
            now,
            log: Vec::new(),
        };
        net.pump();
        net.log.clear();
        net
    }

    fn id(&self, i: usize) -> NodeIdentity {
        self.nodes[i].key.node_identity()
    }

    fn index(&self, node: NodeIdentity) -> usize {
        self.nodes
            .iter()
            .position(|n| n.key.node_identity() == node)
            .expect("a node of the net")
    }

    fn topic(&self) -> TopicIdentity {
        self.topic_key.topic_identity()
    }

    /// The topic's advert, scoped to `D`, listing `publisher`'s PubSub.
    fn advert(&self, publisher: usize) -> TopicAdvert {
        TopicAdvert {
            topic: self.topic(),
            publishers: vec![self.nodes[publisher]
                .key
                .derive_engine(PUBSUB_ENGINE_NAME)
                .engine_identity()],
            tags: vec![],
            version: 1,
            created: wall_clock(),
            scope: Some(D),
            sig: Signature([0; 64]),
        }
        .sign(&self.topic_key)
    }

    /// Symmetric view edges of `D` (what each node's Topology engine would report).
    fn view(&mut self, edges: &[(usize, usize)]) {
        for &(a, b) in edges {
            self.nodes[a].view.push(b);
            self.nodes[b].view.push(a);
        }
    }

    fn input(&mut self, i: usize, input: Input) {
        let node = &mut self.nodes[i];
        node.engine.handle(&mut node.ctx, input);
        node.engine.flush(&mut node.ctx);
    }

    fn request(&mut self, i: usize, req: PubSubRequest) {
        self.input(
            i,
            Input::System(System(SystemMail::PubSubRequest(Box::new(req)))),
        );
    }

    /// View mail for node `i`'s PubSub, as its Topology engine sends it (local mail).
    fn view_mail(&mut self, i: usize, mail: ViewMail) {
        let node = &self.nodes[i];
        let m = EngineMessage {
            src: node.key.derive_engine("topology").engine_identity(),
            src_node: node.key.node_identity(),
            dst: Destination::Engine(node.ctx.identity()),
            id: MessageId(1),
            reply_to: None,
            expiry: None,
            rprefs: Some(RoutingPrefs {
                scope: RoutingScope::Local,
            }),
            tprefs: None,
            protocol: Protocol::TOPOLOGY,
            body: mail.encode(),
            sig: None,
        };
        self.input(i, Input::Message(Message::local(m)));
    }

    /// A local publication on node `i` with payload `n`.
    fn publish(&mut self, i: usize, n: u64) {
        let node = &self.nodes[i];
        let m = EngineMessage {
            src: node.key.derive_engine("app").engine_identity(),
            src_node: node.key.node_identity(),
            dst: Destination::Topic(self.topic()),
            id: MessageId(n),
            reply_to: None,
            expiry: None,
            rprefs: None,
            tprefs: None,
            protocol: Protocol(Protocol::APP_BASE),
            body: n.to_le_bytes().to_vec(),
            sig: None,
        };
        self.input(i, Input::Message(Message::local(m)));
    }

    /// `msg` arriving at node `to` from node `from` (sent by hand, not through the log).
    fn inject(&mut self, from: usize, to: usize, msg: &PubSubMessage) {
        let input = remote_input(
            &self.nodes[from].key,
            self.id(to),
            Protocol::PUBSUB,
            msg.to_bytes(),
        );
        self.input(to, input);
    }

    /// Carries every output to where it goes until the net is quiet: PubSub messages to their
    /// node, `Watch` answered with the node's view, notices recorded.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut work: Vec<(usize, Input)> = Vec::new();
            let mut quiet = true;
            for i in 0..self.nodes.len() {
                let outs = self.nodes[i].ctx.take_outputs();
                quiet &= outs.is_empty();
                for out in outs {
                    match out {
                        Output::Send(o) if o.msg.protocol == Protocol::PUBSUB => {
                            let Destination::Node(to) = o.msg.dst else {
                                panic!("pub/sub to {:?}", o.msg.dst)
                            };
                            let j = self.index(to);
                            let msg = PubSubMessage::from_bytes(&o.msg.body).unwrap();
                            self.log.push((i, j, msg));
                            let input =
                                remote_input(&self.nodes[i].key, to, Protocol::PUBSUB, o.msg.body);
                            work.push((j, input));
                        }
                        Output::Send(o) if o.msg.protocol == Protocol::TOPOLOGY => {
                            assert_eq!(o.msg.dst, Destination::Node(self.id(i)));
                            assert_eq!(o.msg.scope(), RoutingScope::Local);
                            if let ViewMail::Watch { domain } =
                                ViewMail::decode(&o.msg.body).unwrap()
                            {
                                self.nodes[i].watched.push(domain);
                                for j in self.nodes[i].view.clone() {
                                    let node = self.id(j);
                                    self.view_mail(i, ViewMail::PeerAddedToView { domain, node });
                                }
                            }
                        }
                        Output::System(System(SystemMail::PubSubNotice(n))) => match *n {
                            PubSubNotice::Deliver { message } => self.nodes[i]
                                .delivered
                                .push(u64::from_le_bytes(message.body()[..8].try_into().unwrap())),
                            PubSubNotice::Subscribed { result, .. } => {
                                self.nodes[i].subscribed.push(result)
                            }
                            _ => {}
                        },
                        _ => {}
                    }
                }
            }
            if quiet {
                return;
            }
            for (j, input) in work {
                self.input(j, input);
            }
        }
        panic!("the net did not settle");
    }

    fn tick_all(&mut self, d: Duration) {
        self.now = self.now.advanced(d);
        for i in 0..self.nodes.len() {
            let now = self.now;
            self.nodes[i].ctx.set_now(now);
            self.input(i, Input::Timer(TICK_TOKEN));
        }
        self.pump();
    }

    fn stat(&self, i: usize, c: impl Fn(&PubSubStats) -> &AtomicU64) -> u64 {
        c(&self.nodes[i].engine.stats).load(Ordering::Relaxed)
    }

    /// The nodes that were sent a message matching `what`.
    fn receivers(&self, what: impl Fn(&PubSubMessage) -> bool) -> BTreeSet<usize> {
        self.log
            .iter()
            .filter(|(_, _, m)| what(m))
            .map(|(_, to, _)| *to)
            .collect()
    }
}

fn is_advert(m: &PubSubMessage) -> bool {
    matches!(m, PubSubMessage::Advert { .. })
}

fn is_event(m: &PubSubMessage) -> bool {
    matches!(m, PubSubMessage::Event(_) | PubSubMessage::Events(_))
}

// Nodes of the standard net: P publishes; A and B are members (view P–A–B); X and Y are not.
const P: usize = 0;
const A: usize = 1;
const B: usize = 2;
const X: usize = 3;
const Y: usize = 4;

/// The standard net with every node subscribed and P advertising.
fn domain_net() -> Net {
    let mut net = Net::new(5, &[P, A, B]);
    net.view(&[(P, A), (A, B)]);
    let topic = net.topic();
    for i in [A, B, X, Y] {
        net.request(i, PubSubRequest::Subscribe { topic });
    }
    let advert = net.advert(P);
    net.request(P, PubSubRequest::StartAdvert { advert });
    net.pump();
    net
}

#[test]
fn members_get_every_event_and_non_members_nothing() {
    let mut net = domain_net();
    // Each member watched the domain once it knew a topic of it.
    for i in [P, A, B] {
        assert_eq!(net.nodes[i].watched, vec![D], "node {i}");
    }
    for i in [X, Y] {
        assert!(net.nodes[i].watched.is_empty(), "node {i}");
    }
    // Adverts went over the view only: P to A, A to B (and back), never to X or Y, and P never
    // straight to B although they are connected.
    assert_eq!(net.receivers(is_advert), BTreeSet::from([P, A, B]));
    assert!(!net
        .log
        .iter()
        .any(|(from, to, m)| is_advert(m) && *from == P && *to == B));
    assert_eq!(net.nodes[A].subscribed, vec![Ok(())]);
    assert_eq!(net.nodes[B].subscribed, vec![Ok(())]);

    for n in 1..=5 {
        net.publish(P, n);
        net.pump();
    }
    assert_eq!(net.nodes[A].delivered, vec![1, 2, 3, 4, 5]);
    assert_eq!(net.nodes[B].delivered, vec![1, 2, 3, 4, 5]);
    for i in [X, Y] {
        assert!(net.nodes[i].delivered.is_empty(), "node {i}");
        assert!(net.nodes[i].subscribed.is_empty(), "node {i} still waits");
    }
    // Nothing of the topic was ever sent to a non-member.
    assert!(
        !net.log.iter().any(|(_, to, _)| *to == X || *to == Y),
        "{:?}",
        net.log
    );
    assert_eq!(net.receivers(is_event), BTreeSet::from([A, B]));
    for i in [P, A, B] {
        assert_eq!(net.stat(i, |s| &s.not_member_withheld), 0, "node {i}");
    }
}

#[test]
fn what_non_members_send_is_refused_and_counted() {
    let mut net = domain_net();
    net.publish(P, 1);
    net.pump();
    let topic = net.topic();
    let p_id = net.nodes[P]
        .key
        .derive_engine(PUBSUB_ENGINE_NAME)
        .engine_identity();
    net.log.clear();

    // X asks P for the topic's events: refused as a full parent refuses, and counted.
    net.inject(
        X,
        P,
        &PubSubMessage::Subscribe {
            topic,
            publishers: vec![p_id],
        },
    );
    net.pump();
    assert_eq!(net.stat(P, |s| &s.not_member_refusals), 1);
    assert_eq!(
        net.log,
        vec![(
            P,
            X,
            PubSubMessage::SubscribeAck {
                topic,
                accepted: false,
                positions: vec![]
            }
        )]
    );
    assert!(!net.nodes[P].engine.topics[&topic]
        .children
        .contains_key(&net.id(X)));

    // X relays a genuine event of P to B, and the advert to A: both refused, not blamed.
    let ev = net.nodes[P].engine.topics[&topic].cache[0]
        .clone()
        .into_inner();
    let delivered_before = net.nodes[B].delivered.len();
    net.inject(X, B, &PubSubMessage::Event(ev));
    let advert = net.advert(P);
    net.inject(
        X,
        A,
        &PubSubMessage::Advert {
            advert,
            publisher: p_id,
            hops: 0,
        },
    );
    net.pump();
    assert_eq!(net.nodes[B].delivered.len(), delivered_before);
    assert_eq!(net.stat(B, |s| &s.not_member_refusals), 1);
    assert_eq!(net.stat(A, |s| &s.not_member_refusals), 1);
    assert_eq!(net.stat(A, |s| &s.bad_advert), 0);
    assert!(net.nodes[A].engine.bad.is_empty() && net.nodes[B].engine.bad.is_empty());

    // A member that hands the advert to X (its replica lagging): X, not a member, refuses it
    // and answers its waiting local subscription.
    let advert = net.advert(P);
    net.inject(
        A,
        X,
        &PubSubMessage::Advert {
            advert,
            publisher: p_id,
            hops: 1,
        },
    );
    net.pump();
    assert_eq!(net.stat(X, |s| &s.not_member_refusals), 1);
    assert_eq!(net.nodes[X].subscribed, vec![Err(TopicError::NotMember)]);
    assert!(net.nodes[X].engine.topics[&topic].advert.is_none());
    // Its local publications and adverts for the topic are refused too.
    let advert = net.advert(X);
    net.request(X, PubSubRequest::StartAdvert { advert });
    assert_eq!(net.stat(X, |s| &s.not_member_local), 2);
    assert!(!net.nodes[X].engine.topics[&topic].publishing);
}

#[test]
fn a_local_subscription_on_a_non_member_is_refused() {
    let mut net = domain_net();
    let topic = net.topic();
    // X learns the advert while it is a member, then is no longer one.
    let x = net.id(X);
    let members: BTreeSet<NodeIdentity> = [P, A, B, X].iter().map(|i| net.id(*i)).collect();
    net.nodes[X].dir.publish(D, members, true);
    net.nodes[A]
        .dir
        .publish(D, [P, A, B, X].iter().map(|i| net.id(*i)).collect(), true);
    net.view_mail(A, ViewMail::PeerAddedToView { domain: D, node: x });
    net.pump();
    assert!(net.nodes[X].engine.topics[&topic].advert.is_some());
    assert_eq!(net.nodes[X].subscribed, vec![Ok(())]);
    net.nodes[X]
        .dir
        .publish(D, [P, A, B].iter().map(|i| net.id(*i)).collect(), false);
    net.request(X, PubSubRequest::Unsubscribe { topic });
    net.request(X, PubSubRequest::Subscribe { topic });
    net.pump();
    assert_eq!(
        net.nodes[X].subscribed,
        vec![Ok(()), Err(TopicError::NotMember)]
    );
    assert_eq!(net.stat(X, |s| &s.not_member_local), 1);
}

#[test]
fn a_member_leaving_the_membership_stops_being_child_and_parent_but_not_one_leaving_the_view() {
    let mut net = domain_net();
    let topic = net.topic();
    net.publish(P, 1);
    net.pump();
    assert_eq!(net.nodes[B].delivered, vec![1]);
    let (a, b) = (net.id(A), net.id(B));
    assert!(net.nodes[A].engine.topics[&topic].children.contains_key(&b));

    // B leaves the domain, as A's replica learns: at A's next tick B is no child any more,
    // and nothing more goes to it.
    net.nodes[A]
        .dir
        .publish(D, [P, A].iter().map(|i| net.id(*i)).collect(), true);
    net.tick_all(Duration::from_millis(60));
    assert!(!net.nodes[A].engine.topics[&topic].children.contains_key(&b));
    assert!(net.stat(A, |s| &s.not_member_pruned) >= 1);
    net.log.clear();
    net.publish(P, 2);
    net.pump();
    assert_eq!(net.nodes[A].delivered, vec![1, 2]);
    assert_eq!(net.nodes[B].delivered, vec![1]);
    assert_eq!(net.receivers(is_event), BTreeSet::from([A]));

    // P leaves A's view (and A P's): the views rotate all the time, and a member out of the
    // view stays parent and child while it is a member, so the tree keeps carrying events.
    net.view_mail(
        A,
        ViewMail::PeerRemovedFromView {
            domain: D,
            node: net.id(P),
        },
    );
    net.view_mail(P, ViewMail::PeerRemovedFromView { domain: D, node: a });
    net.pump();
    assert_eq!(net.nodes[A].engine.view_of(&D), vec![b]);
    assert!(!net.nodes[A].engine.topics[&topic].routes.is_empty());
    assert!(net.nodes[P].engine.topics[&topic].children.contains_key(&a));
    net.publish(P, 3);
    net.pump();
    assert_eq!(net.nodes[A].delivered, vec![1, 2, 3]);
    assert_eq!(net.nodes[B].delivered, vec![1]);
}

#[test]
fn view_mail_is_taken_from_local_mail_only() {
    let mut net = domain_net();
    let y = net.id(Y);
    // A PeerAddedToView from another node is not view mail: ignored.
    let body = ViewMail::PeerAddedToView { domain: D, node: y }.encode();
    let input = remote_input(&net.nodes[X].key, net.id(P), Protocol::TOPOLOGY, body);
    net.input(P, input);
    assert_eq!(net.nodes[P].engine.view_of(&D), vec![net.id(A)]);
    // From the local Topology: taken (whatever it says of membership, adverts still go to
    // members only).
    net.log.clear();
    net.view_mail(P, ViewMail::PeerAddedToView { domain: D, node: y });
    net.pump();
    assert!(net.nodes[P].engine.view_of(&D).contains(&y));
    assert!(!net.log.iter().any(|(_, to, _)| *to == Y));
    // A domain not watched is ignored and counted.
    let other = DomainIdentity([1; 32]);
    net.view_mail(
        P,
        ViewMail::PeerAddedToView {
            domain: other,
            node: y,
        },
    );
    assert!(net.nodes[P].engine.view_of(&other).is_empty());
    assert_eq!(net.stat(P, |s| &s.view_ignored), 1);
}

#[test]
fn without_a_directory_a_domain_topic_is_refused() {
    let mut f = fixture();
    let topic = f.topic();
    f.request(PubSubRequest::Subscribe { topic });
    let publisher = f.publisher_engine().engine_identity();
    let advert = TopicAdvert {
        scope: Some(D),
        ..f.advert()
    }
    .sign(&f.topic_key);
    f.receive_from_parent(PubSubMessage::Advert {
        advert,
        publisher,
        hops: 0,
    });
    let seen = f.look();
    assert!(seen.sent.is_empty(), "{:?}", seen.sent);
    assert!(seen.notices.iter().any(|n| matches!(
        n,
        PubSubNotice::Subscribed { topic: t, result: Err(TopicError::NotMember) } if *t == topic
    )));
    assert_eq!(f.stat(|s| &s.not_member_refusals), 1);
    // An open topic is carried as before.
    let open = f.advert();
    f.receive_from_parent(PubSubMessage::Advert {
        advert: open,
        publisher,
        hops: 0,
    });
    assert!(!f.look().identity.is_empty());
}

/// Review finding 14: every event of a batch is checked against the peer's membership (not
/// only the first one); the withheld ones are counted one by one.
#[test]
fn each_event_of_a_batch_is_checked() {
    let mut net = domain_net();
    net.publish(P, 1);
    net.pump();
    let ev = net
        .log
        .iter()
        .find_map(|(_, _, m)| match m {
            PubSubMessage::Event(e) => Some(e.clone()),
            PubSubMessage::Events(es) => es.first().cloned(),
            _ => None,
        })
        .expect("an event was sent");
    let batch = PubSubMessage::Events(vec![ev.clone(), ev]);
    let x = net.id(X);
    let before = net.stat(P, |s| &s.not_member_withheld);
    let n = &mut net.nodes[P];
    let _ = n.ctx.take_outputs();
    n.engine.send(&mut n.ctx, x, &batch);
    assert!(n.ctx.take_outputs().is_empty(), "nothing to the non-member");
    assert_eq!(net.stat(P, |s| &s.not_member_withheld), before + 2);
}
