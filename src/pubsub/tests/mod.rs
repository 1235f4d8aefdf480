//! Unit tests of the PubSub engine, without threads: the fixture, and the basics of one
//! publisher's tree. `multi` covers several publishers (causal order, equivocation),
//! `validation` the application validation hook, `withdrawal` topic deletion, `domain`
//! domain-scoped topics over a hand-wired net of engines.

mod domain;
mod multi;
mod parents;
mod validation;
mod withdrawal;

use super::*;
use crate::identity::{CheckedKey, Signature};
use crate::mail::{Output, System};
use crate::time::{wall_clock, Now};
use crate::wire::MessageId;

struct Fixture {
    engine: PubSub,
    ctx: Context,
    now: Now,
    /// This node's key.
    me: Keypair,
    parent: Keypair,
    publisher: Keypair,
    topic_key: Keypair,
}

/// What the engine asked for since the last look.
#[derive(Default)]
struct Seen {
    /// Sequence numbers delivered, with their publisher.
    delivered: Vec<(EngineIdentity, u64)>,
    /// PubSub messages sent, with their destination.
    sent: Vec<(NodeIdentity, PubSubMessage)>,
    /// Notices to the Router other than deliveries.
    notices: Vec<PubSubNotice>,
    /// Requests to the identity store.
    identity: Vec<IdentityRequest>,
}

/// A subscriber node's PubSub with one parent (`parent`) and a topic published by
/// `publisher`'s node.
fn fixture() -> Fixture {
    let me = Keypair::generate();
    let key = me.derive_engine(PUBSUB_ENGINE_NAME);
    let now = Now::read();
    let ctx = Context::detached(now, key.engine_identity(), me.node_identity(), "pubsub");
    let engine = PubSub::new(
        key,
        PubSubLimits::default(),
        Arc::new(PubSubStats::default()),
    );
    Fixture {
        engine,
        ctx,
        now,
        me,
        parent: Keypair::generate(),
        publisher: Keypair::generate(),
        topic_key: Keypair::generate(),
    }
}

impl Fixture {
    fn topic(&self) -> TopicIdentity {
        self.topic_key.topic_identity()
    }

    fn publisher_engine(&self) -> Keypair {
        self.publisher.derive_engine(PUBSUB_ENGINE_NAME)
    }

    fn advert(&self) -> TopicAdvert {
        TopicAdvert {
            topic: self.topic(),
            publishers: vec![self.publisher_engine().engine_identity()],
            tags: vec![],
            version: 1,
            created: wall_clock(),
            scope: None,
            sig: Signature([0; 64]),
        }
        .sign(&self.topic_key)
    }

    /// `msg` as it arrives from the parent node, verified.
    fn receive_from_parent(&mut self, msg: PubSubMessage) {
        let parent = self.parent.clone();
        self.receive(&parent, msg);
    }

    /// `msg` as it arrives from the node of `peer` (its node key), verified.
    fn receive(&mut self, peer: &Keypair, msg: PubSubMessage) {
        let sender = peer.derive_engine(PUBSUB_ENGINE_NAME);
        let mut m = EngineMessage {
            src: sender.engine_identity(),
            src_node: peer.node_identity(),
            dst: Destination::Node(self.ctx.node()),
            id: MessageId(1),
            reply_to: None,
            expiry: None,
            rprefs: None,
            tprefs: None,
            protocol: Protocol::PUBSUB,
            body: msg.to_bytes(),
            sig: None,
        };
        let mut wire = Vec::new();
        m.sign_into_wire(&sender, &mut wire, &mut Vec::new());
        let key = CheckedKey::parse(sender.engine_identity().as_bytes()).unwrap();
        let verified = Unverified::decode(wire)
            .unwrap()
            .verify(&key, &mut Vec::new())
            .unwrap();
        let input = Input::Message(Message::remote(verified, peer.node_identity()));
        self.engine.handle(&mut self.ctx, input);
        self.engine.flush(&mut self.ctx);
    }

    fn event(&self, seq: u64) -> Event {
        let publisher = self.publisher.clone();
        self.event_of(&publisher, seq, vec![], b"")
    }

    /// Event `seq` of the PubSub of `node` (a node key), after the events at `after`; `salt`
    /// makes another event with the same sequence number.
    fn event_of(
        &self,
        node: &Keypair,
        seq: u64,
        after: Vec<(EngineIdentity, u64)>,
        salt: &[u8],
    ) -> Event {
        let src = node.derive_engine("app");
        let mut payload = seq.to_le_bytes().to_vec();
        payload.extend_from_slice(salt);
        let m = EngineMessage {
            src: src.engine_identity(),
            src_node: node.node_identity(),
            dst: Destination::Topic(self.topic()),
            id: MessageId(seq),
            reply_to: None,
            expiry: None,
            rprefs: None,
            tprefs: None,
            protocol: Protocol(Protocol::APP_BASE),
            body: payload,
            sig: None,
        };
        let mut body = Vec::new();
        m.encode_signed_fields(&mut body);
        let key = node.derive_engine(PUBSUB_ENGINE_NAME);
        Event::new_signed_after(&key, self.topic(), seq, vec![], after, body).into_inner()
    }

    /// A signed advert of the topic listing the PubSub engines of `nodes`.
    fn advert_of(&self, nodes: &[&Keypair], version: u64) -> TopicAdvert {
        TopicAdvert {
            topic: self.topic(),
            publishers: nodes
                .iter()
                .map(|n| n.derive_engine(PUBSUB_ENGINE_NAME).engine_identity())
                .collect(),
            tags: vec![],
            version,
            created: wall_clock(),
            scope: None,
            sig: Signature([0; 64]),
        }
        .sign(&self.topic_key)
    }

    fn request(&mut self, req: PubSubRequest) {
        self.engine.handle(
            &mut self.ctx,
            Input::System(System(SystemMail::PubSubRequest(Box::new(req)))),
        );
        self.engine.flush(&mut self.ctx);
    }

    fn connect(&mut self, peer: &Keypair) {
        self.engine.handle(
            &mut self.ctx,
            Input::Transport(TransportEvent::NodeConnected {
                node: peer.node_identity(),
                addr: "127.0.0.1:1".parse().unwrap(),
            }),
        );
    }

    /// Everything the engine asked for since the last call.
    fn look(&mut self) -> Seen {
        let mut seen = Seen::default();
        for out in self.ctx.take_outputs() {
            match out {
                Output::System(System(SystemMail::PubSubNotice(n))) => match *n {
                    PubSubNotice::Deliver { message } => {
                        let Origin::Topic { publisher, .. } = message.origin() else {
                            panic!("delivered as {:?}", message.origin());
                        };
                        seen.delivered.push((
                            publisher,
                            u64::from_le_bytes(message.body()[..8].try_into().unwrap()),
                        ))
                    }
                    other => seen.notices.push(other),
                },
                Output::Identity(req) => seen.identity.push(req),
                Output::Send(o) if o.msg.protocol == Protocol::PUBSUB => {
                    let Destination::Node(to) = o.msg.dst else {
                        panic!("pub/sub to {:?}", o.msg.dst)
                    };
                    seen.sent
                        .push((to, PubSubMessage::from_bytes(&o.msg.body).unwrap()))
                }
                _ => {}
            }
        }
        seen
    }

    fn stat(&self, c: impl Fn(&PubSubStats) -> &AtomicU64) -> u64 {
        c(&self.engine.stats).load(Ordering::Relaxed)
    }

    fn tick_after(&mut self, d: Duration) {
        self.now = self.now.advanced(d);
        self.ctx.set_now(self.now);
        self.engine.handle(&mut self.ctx, Input::Timer(TICK_TOKEN));
        self.engine.flush(&mut self.ctx);
    }

    /// Sequence numbers delivered, and the PubSub messages sent, since the last call.
    fn drain(&mut self) -> (Vec<u64>, Vec<PubSubMessage>) {
        let mut delivered = Vec::new();
        let mut sent = Vec::new();
        for out in self.ctx.take_outputs() {
            match out {
                Output::System(System(SystemMail::PubSubNotice(n))) => {
                    if let PubSubNotice::Deliver { message, .. } = *n {
                        delivered.push(u64::from_le_bytes(message.body()[..8].try_into().unwrap()))
                    }
                }
                Output::Send(o) if o.msg.protocol == Protocol::PUBSUB => {
                    sent.push(PubSubMessage::from_bytes(&o.msg.body).unwrap())
                }
                _ => {}
            }
        }
        (delivered, sent)
    }

    /// Subscribes locally and completes the subscription through the parent.
    fn subscribed(&mut self) {
        let topic = self.topic();
        self.engine.handle(
            &mut self.ctx,
            Input::System(System(SystemMail::PubSubRequest(Box::new(
                PubSubRequest::Subscribe { topic },
            )))),
        );
        let publisher = self.publisher_engine().engine_identity();
        self.receive_from_parent(PubSubMessage::Advert {
            advert: self.advert(),
            publisher,
            hops: 0,
        });
        let (_, sent) = self.drain();
        assert!(
            sent.contains(&PubSubMessage::Subscribe {
                topic,
                publishers: vec![publisher]
            }),
            "{sent:?}"
        );
        self.receive_from_parent(PubSubMessage::SubscribeAck {
            topic,
            accepted: true,
            positions: vec![(publisher, 1)],
        });
        self.drain();
    }
}

#[test]
fn a_subscription_waits_for_the_advert() {
    let mut f = fixture();
    let topic = f.topic();
    f.engine.handle(
        &mut f.ctx,
        Input::System(System(SystemMail::PubSubRequest(Box::new(
            PubSubRequest::Subscribe { topic },
        )))),
    );
    let (_, sent) = f.drain();
    assert!(sent.is_empty(), "no parent known yet: {sent:?}");
    let publisher = f.publisher_engine().engine_identity();
    f.receive_from_parent(PubSubMessage::Advert {
        advert: f.advert(),
        publisher,
        hops: 0,
    });
    let (_, sent) = f.drain();
    assert_eq!(
        sent,
        vec![PubSubMessage::Subscribe {
            topic,
            publishers: vec![publisher]
        }]
    );
}

#[test]
fn gaps_are_requested_and_delivery_stays_in_order() {
    let mut f = fixture();
    f.subscribed();
    f.receive_from_parent(PubSubMessage::Event(f.event(1)));
    f.receive_from_parent(PubSubMessage::Event(f.event(3)));
    f.receive_from_parent(PubSubMessage::Event(f.event(4)));
    let (delivered, _) = f.drain();
    assert_eq!(delivered, vec![1], "3 and 4 wait for 2");
    f.tick_after(Duration::from_millis(10));
    let (_, sent) = f.drain();
    assert!(!sent
        .iter()
        .any(|m| matches!(m, PubSubMessage::EventReq { .. })));
    f.tick_after(Duration::from_millis(250));
    let (_, sent) = f.drain();
    let publisher = f.publisher_engine().engine_identity();
    assert!(
        sent.contains(&PubSubMessage::EventReq {
            topic: f.topic(),
            publisher,
            from: 2,
            to: 2
        }),
        "{sent:?}"
    );
    f.receive_from_parent(PubSubMessage::Event(f.event(2)));
    let (delivered, _) = f.drain();
    assert_eq!(delivered, vec![2, 3, 4]);
    // A copy through another path is dropped.
    f.receive_from_parent(PubSubMessage::Event(f.event(3)));
    assert!(f.drain().0.is_empty());
    assert_eq!(f.engine.stats.duplicate.load(Ordering::Relaxed), 1);
}

#[test]
fn a_gap_that_cannot_be_filled_is_skipped_and_counted() {
    let mut f = fixture();
    f.subscribed();
    f.receive_from_parent(PubSubMessage::Event(f.event(1)));
    f.receive_from_parent(PubSubMessage::Event(f.event(5)));
    f.drain();
    f.tick_after(Duration::from_secs(6));
    let (delivered, _) = f.drain();
    assert_eq!(delivered, vec![5]);
    assert_eq!(f.engine.stats.lost.load(Ordering::Relaxed), 3);
}

#[test]
fn unauthorized_and_forged_events_are_neither_delivered_nor_forwarded() {
    let mut f = fixture();
    f.subscribed();
    // A child, to see whether anything is forwarded.
    let child = Keypair::generate().node_identity();
    let topic = f.topic();
    f.engine.on_subscribe(&mut f.ctx, child, topic, vec![]);
    f.drain();
    let rogue = Keypair::generate().derive_engine(PUBSUB_ENGINE_NAME);
    let mut unauthorized = f.event(1);
    unauthorized = Event::new_signed(&rogue, topic, 1, vec![], unauthorized.body).into_inner();
    f.receive_from_parent(PubSubMessage::Event(unauthorized));
    let mut forged = f.event(1);
    forged.body[0] ^= 1;
    f.receive_from_parent(PubSubMessage::Event(forged));
    let (delivered, sent) = f.drain();
    assert!(delivered.is_empty());
    assert!(
        !sent.iter().any(|m| matches!(m, PubSubMessage::Event(_))),
        "{sent:?}"
    );
    assert_eq!(f.engine.stats.unauthorized.load(Ordering::Relaxed), 1);
    assert_eq!(f.engine.stats.bad_signature.load(Ordering::Relaxed), 1);
    // The genuine event is delivered and forwarded.
    f.receive_from_parent(PubSubMessage::Event(f.event(1)));
    let (delivered, sent) = f.drain();
    assert_eq!(delivered, vec![1]);
    assert!(sent.iter().any(|m| matches!(m, PubSubMessage::Event(_))));
}

#[test]
fn a_peer_sending_garbage_is_disconnected() {
    let mut f = fixture();
    for _ in 0..PubSubLimits::default().bad_message_limit {
        f.engine
            .handle_remote(&mut f.ctx, f.parent.node_identity(), b"junk");
    }
    let outs = f.ctx.take_outputs();
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::Transport(TransportRequest::Disconnect { .. }))));
    assert_eq!(f.engine.stats.malformed.load(Ordering::Relaxed), 16);
}

#[test]
fn a_forged_sender_inside_an_authorized_event_is_reported_as_claimed() {
    let mut f = fixture();
    f.subscribed();
    // The publishing node names an engine of an unrelated node as the sender of what it
    // publishes. The event itself is correctly signed by the authorized publisher.
    let victim = Keypair::generate();
    let victim_engine = victim.derive_engine("wallet").engine_identity();
    let m = EngineMessage {
        src: victim_engine,
        src_node: victim.node_identity(),
        dst: Destination::Topic(f.topic()),
        id: MessageId(1),
        reply_to: None,
        expiry: None,
        rprefs: None,
        tprefs: None,
        protocol: Protocol(Protocol::APP_BASE),
        body: b"pay me".to_vec(),
        sig: None,
    };
    let mut body = Vec::new();
    m.encode_signed_fields(&mut body);
    let ev = Event::new_signed(&f.publisher_engine(), f.topic(), 1, vec![], body).into_inner();
    f.receive_from_parent(PubSubMessage::Event(ev));
    let delivered: Vec<Message> = f
        .ctx
        .take_outputs()
        .into_iter()
        .filter_map(|o| match o {
            Output::System(System(SystemMail::PubSubNotice(n))) => match *n {
                PubSubNotice::Deliver { message } => Some(message),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(delivered.len(), 1);
    let sender = delivered[0].sender();
    assert_eq!(
        sender,
        crate::mail::Sender::Publisher {
            publisher: f.publisher_engine().engine_identity(),
            claimed: victim_engine,
            claimed_node: victim.node_identity(),
        }
    );
    assert_eq!(sender.verified(), None, "a claim is not a verified sender");
    assert_eq!(sender.named(), victim_engine);
    assert!(matches!(
        delivered[0].origin(),
        Origin::Topic { publisher, via } if publisher == f.publisher_engine().engine_identity()
            && via == f.parent.node_identity()
    ));
}

#[test]
fn events_with_impossible_sequence_numbers_are_refused() {
    let mut f = fixture();
    f.subscribed();
    let publisher = f.publisher.clone();
    for seq in [0, u64::MAX] {
        let ev = f.event_of(&publisher, seq, vec![], b"");
        f.receive_from_parent(PubSubMessage::Event(ev));
    }
    assert!(f.look().delivered.is_empty());
    assert_eq!(f.stat(|s| &s.malformed), 2);
    // The stream still starts where the parent said.
    f.receive_from_parent(PubSubMessage::Event(f.event(1)));
    assert_eq!(f.look().delivered.len(), 1);
}

#[test]
fn impossible_positions_and_stray_acknowledgements_are_counted_not_kept() {
    let mut f = fixture();
    f.subscribed();
    let topic = f.topic();
    let publisher = f.publisher_engine().engine_identity();
    // A parent claiming the publisher is at the last sequence number (which would make the
    // gap arithmetic overflow) or at 0: refused as malformed, the stream unchanged.
    for next in [u64::MAX, 0] {
        f.receive_from_parent(PubSubMessage::SubscribeAck {
            topic,
            accepted: true,
            positions: vec![(publisher, next)],
        });
    }
    assert_eq!(f.stat(|s| &s.malformed), 2);
    f.tick_after(Duration::from_secs(60));
    f.receive_from_parent(PubSubMessage::Event(f.event(1)));
    let (delivered, _) = f.drain();
    assert_eq!(delivered, vec![1], "the stream still starts at 1");
    // Acknowledgements from a node that is not a child, for a made-up publisher: no state.
    for i in 0..100u8 {
        f.receive_from_parent(PubSubMessage::EventAck {
            topic,
            publisher: EngineIdentity([i; 32]),
            next_seq: 5,
        });
    }
    assert_eq!(f.stat(|s| &s.acks_ignored), 100);
}
