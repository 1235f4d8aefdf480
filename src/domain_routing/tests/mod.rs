//! Unit tests of the DomainRouting engine, without threads: a harness ([`Net`]) moves messages
//! between several engines through their detached contexts (signing and verifying each hop
//! like a Router would); `routing` holds the behaviour (greedy forwarding, the answer back,
//! the routes cache, hand-over to local engines, opt-out), `hostile` the bad input, `codec`
//! the wire format's bounds.

mod codec;
mod hostile;
mod routing;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::wire::{DomainRequest, DomainResponse, RoutingMessage};
use super::*;
use crate::interdomain::blip;
use crate::mail::identity::IdentityRequest;
use crate::mail::interdomain::{BoardSource, KnownMember, LinkKind, Neighbour};
use crate::mail::{DropReason, Output};
use crate::time::{Now, Timestamp};
use crate::wire::{
    EngineMessage, MembershipFilter, NodeDescriptor, RoutingPrefs, RoutingScope, Signed,
};

/// The application engine that asks (on every node).
pub(super) fn asker() -> EngineIdentity {
    EngineIdentity([0xa5; 32])
}

/// A protocol an application engine serves.
pub(super) const APP: Protocol = Protocol(Protocol::APP_BASE + 7);

/// `n` node keys made from `seed`.
pub(super) fn keys(seed: u64, n: usize) -> Vec<Keypair> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| Keypair::from_rng(&mut rng)).collect()
}

/// The domain of `i`.
pub(super) fn domain(i: u8) -> DomainIdentity {
    Keypair::from_seed(&[0xd0 ^ i; 32]).domain_identity()
}

/// A node advert valid for a long time.
pub(super) fn advert(key: &Keypair) -> NodeAdvert {
    NodeAdvert::new_signed(key, vec![], 1, Timestamp(1), Timestamp(u64::MAX / 2), None)
}

/// An unflipped membership filter (1,024 bits, 3 hashes) of `domains`.
pub(super) fn filter(domains: &[DomainIdentity]) -> MembershipFilter {
    let mut f = MembershipFilter::empty(1024, 3);
    for d in domains {
        for i in blip::indices(1024, 3, d) {
            f.set(i, true);
        }
    }
    f
}

/// A board entry for `key`'s node with `filter`.
pub(super) fn neighbour(key: &Keypair, filter: MembershipFilter, kind: LinkKind) -> Neighbour {
    let descriptor = NodeDescriptor {
        advert: advert(key),
        filter,
        version: 1,
        created: Timestamp(1),
        sig: crate::identity::Signature([0; 64]),
    }
    .sign(key);
    Neighbour {
        descriptor: Arc::new(descriptor),
        kind,
        trust: 0.5,
        shared: None,
    }
}

/// An answer's `(result, member, hops)`.
pub(super) type Outcome = (Result<Vec<u8>, String>, Option<NodeIdentity>, u32);

/// One node of the harness.
pub(super) struct Node {
    pub key: Keypair,
    pub engine: DomainRoutingEngine,
    pub ctx: Context,
    pub board: NeighbourBoard,
    pub routes: DomainRoutes,
    pub directory: DomainDirectory,
    pub stats: Arc<RoutingStats>,
    /// Answers to the asking application engine, with the message they reply to.
    pub answers: Vec<(Option<MessageId>, RoutingMail)>,
    /// `Arrived` mail handed to local engines, with the message it came in.
    pub arrived: Vec<(MessageId, Protocol, RoutingMail)>,
    /// Identity-store requests.
    pub identity: Vec<IdentityRequest>,
    /// Replies to remote engines (direct probes), with their bodies.
    pub replies: Vec<(EngineIdentity, Vec<u8>)>,
    pub timer: Option<Instant>,
    /// Memberships given to the board as filters (the node's own, for its neighbours' boards).
    pub memberships: Vec<DomainIdentity>,
}

impl Node {
    pub fn id(&self) -> NodeIdentity {
        self.key.node_identity()
    }

    /// The answers' `(result, member, hops)`.
    pub fn results(&self) -> Vec<Outcome> {
        self.answers
            .iter()
            .map(|(_, m)| match m {
                RoutingMail::Answer {
                    result,
                    member,
                    hops,
                    ..
                } => (result.clone(), *member, *hops),
                other => panic!("not an answer: {other:?}"),
            })
            .collect()
    }
}

/// A message in flight: sender index, receiver, body, id, whether the sender wants to hear of
/// its loss.
struct InFlight {
    from: usize,
    to: NodeIdentity,
    body: Vec<u8>,
    id: MessageId,
    notify: bool,
}

/// Several DomainRouting engines and the messages between them.
pub(super) struct Net {
    pub nodes: Vec<Node>,
    pub now: Now,
    queue: VecDeque<InFlight>,
    /// Nodes that are down: messages to them are lost (their senders told if they asked).
    pub down: BTreeSet<usize>,
    /// Requests delivered, per receiving node index.
    pub requests_at: BTreeMap<usize, usize>,
}

impl Net {
    /// `n` nodes, each with `settings(i)`.
    pub fn new(n: usize, settings: impl Fn(usize) -> RoutingSettings) -> Net {
        let now = Now::read();
        let nodes = keys(15, n)
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                let board = NeighbourBoard::new();
                let routes = DomainRoutes::new();
                let directory = DomainDirectory::new();
                let stats = Arc::new(RoutingStats::default());
                let engine_key = k.derive_engine(DOMAIN_ROUTING_ENGINE_NAME);
                Node {
                    engine: DomainRoutingEngine::new(
                        k.clone(),
                        advert(&k),
                        settings(i),
                        directory.clone(),
                        board.clone(),
                        routes.clone(),
                        stats.clone(),
                        i as u64 + 1,
                    ),
                    ctx: Context::detached(
                        now,
                        engine_key.engine_identity(),
                        k.node_identity(),
                        DOMAIN_ROUTING_ENGINE_NAME,
                    ),
                    key: k,
                    board,
                    routes,
                    directory,
                    stats,
                    answers: Vec::new(),
                    arrived: Vec::new(),
                    identity: Vec::new(),
                    replies: Vec::new(),
                    timer: None,
                    memberships: Vec::new(),
                }
            })
            .collect();
        Net {
            nodes,
            now,
            queue: VecDeque::new(),
            down: BTreeSet::new(),
            requests_at: BTreeMap::new(),
        }
    }

    /// Makes node `i` a member of `d`, answering external requests if `external` (the
    /// directory holds an advert then; without one any member answers).
    pub fn member(&mut self, i: usize, d: DomainIdentity, external: Option<bool>) {
        let n = &mut self.nodes[i];
        n.directory.publish(d, [n.id()].into_iter().collect(), true);
        if let Some(ext) = external {
            n.directory.set_advert(d, b"advert".to_vec(), ext);
        }
        n.memberships.push(d);
    }

    /// Puts node `b` on node `a`'s board as a `kind` link (with `b`'s memberships).
    pub fn link(&mut self, a: usize, b: usize, kind: LinkKind) {
        let f = filter(&self.nodes[b].memberships);
        self.link_with(a, b, f, kind);
    }

    /// Puts node `b` on node `a`'s board with `filter`.
    pub fn link_with(&mut self, a: usize, b: usize, filter: MembershipFilter, kind: LinkKind) {
        let entry = neighbour(&self.nodes[b].key, filter, kind);
        let board = &self.nodes[a].board;
        let mut list = board.list(BoardSource::Sampling);
        list.retain(|n| n.node() != entry.node());
        list.push(entry);
        board.publish(BoardSource::Sampling, list);
    }

    /// Links `a` and `b` both ways as random links.
    pub fn both(&mut self, a: usize, b: usize) {
        self.link(a, b, LinkKind::Random);
        self.link(b, a, LinkKind::Random);
    }

    pub fn index_of(&self, node: &NodeIdentity) -> Option<usize> {
        self.nodes.iter().position(|n| n.id() == *node)
    }

    /// Local mail from the asking engine to node `i`'s engine; returns the message id.
    pub fn local(&mut self, i: usize, mail: RoutingMail) -> MessageId {
        self.local_raw(
            i,
            Destination::Node(self.nodes[i].id()),
            Protocol::DOMAIN_ROUTING,
            mail.encode(),
        )
    }

    /// A request for `protocol` / `body` to some member of `d`, from node `i`.
    pub fn ask(
        &mut self,
        i: usize,
        d: DomainIdentity,
        protocol: Protocol,
        body: &[u8],
    ) -> MessageId {
        let mail = RoutingMail::Request {
            domain: d,
            protocol,
            body: body.to_vec(),
        };
        self.local(i, mail)
    }

    /// A local message from the asking engine to node `i`'s engine.
    pub fn local_raw(
        &mut self,
        i: usize,
        dst: Destination,
        protocol: Protocol,
        body: Vec<u8>,
    ) -> MessageId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 40);
        let id = MessageId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let m = EngineMessage {
            src: asker(),
            src_node: self.nodes[i].id(),
            dst,
            id,
            reply_to: None,
            expiry: None,
            rprefs: Some(RoutingPrefs {
                scope: RoutingScope::Local,
            }),
            tprefs: None,
            protocol,
            body,
            sig: None,
        };
        self.input(i, Input::Message(Message::local(m)));
        id
    }

    /// Hands `input` to node `i`'s engine and collects its outputs.
    pub fn input(&mut self, i: usize, input: Input) {
        let n = &mut self.nodes[i];
        n.ctx.set_now(self.now);
        n.engine.handle(&mut n.ctx, input);
        self.collect(i);
    }

    /// Moves node `i`'s outputs to where they go.
    fn collect(&mut self, i: usize) {
        let me = self.nodes[i].id();
        for o in self.nodes[i].ctx.take_outputs() {
            match o {
                Output::Send(out) => {
                    let m = out.msg;
                    let local = m.scope() == RoutingScope::Local;
                    match m.dst {
                        Destination::Engine(e) if !local => {
                            self.nodes[i].replies.push((e, m.body));
                        }
                        Destination::Engine(e) => {
                            assert!(e == asker());
                            let mail = RoutingMail::decode(&m.body).unwrap();
                            self.nodes[i].answers.push((m.reply_to, mail));
                        }
                        Destination::Node(n) if n == me => {
                            assert!(local);
                            let mail = RoutingMail::decode(&m.body).unwrap();
                            self.nodes[i].arrived.push((m.id, m.protocol, mail));
                        }
                        Destination::Node(to) => {
                            assert!(!local && m.protocol == Protocol::DOMAIN_ROUTING);
                            self.queue.push_back(InFlight {
                                from: i,
                                to,
                                body: m.body,
                                id: m.id,
                                notify: out.notify_undeliverable,
                            });
                        }
                        other => panic!("unexpected destination {other:?}"),
                    }
                }
                Output::Identity(r) => self.nodes[i].identity.push(r),
                Output::SetTimer { at, .. } => self.nodes[i].timer = Some(at),
                Output::CancelTimer { .. } => self.nodes[i].timer = None,
                other => panic!("unexpected output {other:?}"),
            }
        }
    }

    /// Delivers `body` from node `from` to node `to` as a verified remote message.
    pub fn deliver_remote(&mut self, from: usize, to: usize, body: Vec<u8>) {
        let dst = Destination::Node(self.nodes[to].id());
        self.deliver_remote_to(from, to, dst, body);
    }

    /// Delivers `body` for `dst` from node `from` to node `to` as a verified remote message.
    pub fn deliver_remote_to(&mut self, from: usize, to: usize, dst: Destination, body: Vec<u8>) {
        let sender = self.nodes[from]
            .key
            .derive_engine(DOMAIN_ROUTING_ENGINE_NAME);
        let m = EngineMessage {
            src: sender.engine_identity(),
            src_node: self.nodes[from].id(),
            dst,
            id: MessageId(1),
            reply_to: None,
            expiry: None,
            rprefs: None,
            tprefs: None,
            protocol: Protocol::DOMAIN_ROUTING,
            body,
            sig: None,
        };
        let via = self.nodes[from].id();
        let arrived = Message::signed_remote(&sender, m, via);
        self.input(to, Input::Message(arrived));
    }

    /// Delivers every message in flight (and what they cause) until none is left.
    pub fn run(&mut self) {
        let mut steps = 0;
        while let Some(f) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "the harness does not settle");
            let Some(to) = self.index_of(&f.to) else {
                panic!("a message to an unknown node");
            };
            if self.down.contains(&to) {
                if f.notify {
                    let u = Undeliverable {
                        id: f.id,
                        dst: Destination::Node(f.to),
                        reason: DropReason::NoRoute,
                    };
                    self.input(f.from, Input::Undeliverable(u));
                }
                continue;
            }
            if matches!(
                RoutingMessage::from_bytes(&f.body),
                Ok(RoutingMessage::Request(_))
            ) {
                *self.requests_at.entry(to).or_default() += 1;
            }
            self.deliver_remote(f.from, to, f.body);
        }
    }

    /// The messages in flight, decoded (for tests that tamper with them), emptying the queue.
    pub fn take_in_flight(&mut self) -> Vec<(usize, usize, RoutingMessage)> {
        let mut out = Vec::new();
        while let Some(f) = self.queue.pop_front() {
            let to = self.index_of(&f.to).unwrap();
            out.push((f.from, to, RoutingMessage::from_bytes(&f.body).unwrap()));
        }
        out
    }

    /// Moves the clock on by `d`, firing every timer that falls due.
    pub fn advance(&mut self, d: Duration) {
        self.now = Now {
            instant: self.now.instant + d,
            wall: self.now.wall.after(d),
        };
        for i in 0..self.nodes.len() {
            if self.nodes[i].timer.is_some_and(|t| t <= self.now.instant) {
                self.nodes[i].timer = None;
                self.input(i, Input::Timer(TICK));
            }
        }
        self.run();
    }

    /// How many own requests node `i` still waits on.
    pub fn engine_pending(&self, i: usize) -> usize {
        self.nodes[i].engine.probe().snapshot().pending
    }

    /// The counters of node `i`, non-zero ones by name.
    pub fn counters(&self, i: usize) -> BTreeMap<&'static str, u64> {
        self.nodes[i].stats.nonzero().into_iter().collect()
    }
}

/// A request as node `from` would send it, with `path`.
pub(super) fn request(net: &Net, src: usize, d: DomainIdentity, path: &[usize]) -> DomainRequest {
    DomainRequest {
        id: 77,
        src: net.nodes[src].id(),
        src_advert: None,
        domain: d,
        path: path.iter().map(|i| net.nodes[*i].id()).collect(),
        protocol: Protocol::DOMAIN_ROUTING,
        body: PROBE_REQUEST.to_vec(),
    }
}

/// A response as member `m` would sign it, for request `id` of `dst` along `path` (member
/// first).
pub(super) fn response(
    net: &Net,
    m: usize,
    dst: usize,
    id: u64,
    d: DomainIdentity,
    path: &[usize],
) -> DomainResponse {
    DomainResponse {
        id,
        domain: d,
        src: net.nodes[m].id(),
        dst: net.nodes[dst].id(),
        path: path.iter().map(|i| net.nodes[*i].id()).collect(),
        member: net.nodes[m].id(),
        member_advert: None,
        result: Ok(PROBE_ANSWER.to_vec()),
        advert: None,
        sig: crate::identity::Signature([0; 64]),
    }
    .sign(&net.nodes[m].key)
}
