//! Unit tests of the Domain engine, without threads. `membership` holds the property tests of
//! the membership log; `engines` a multi-engine harness (messages moved between several
//! [`DomainEngine`]s through their detached contexts, with loss and partitions) and the join,
//! leave, expel, anti-entropy and external-request tests; `hostile` the bad-input tests.

mod engines;
mod hostile;
mod membership;
mod review;
mod routed;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::identity::EngineIdentity;
use crate::mail::domain::DomainMail;
use crate::mail::{Message, Output};
use crate::time::{Now, Timestamp};
use crate::wire::{EngineMessage, MessageId, RoutingScope};

/// `n` node keys made from `seed`.
pub(super) fn keys(seed: u64, n: usize) -> Vec<Keypair> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| Keypair::from_rng(&mut rng)).collect()
}

/// An advert of `domain_key`'s domain with `introducers` (node keys), every introducer
/// accepting external requests.
pub(super) fn advert_for(
    domain_key: &Keypair,
    introducers: &[Keypair],
    auth: DomainAuth,
    max_members: u64,
) -> DomainAdvert {
    DomainAdvert::new_signed(
        domain_key,
        introducers
            .iter()
            .map(|k| Introducer {
                node: k.node_identity(),
                addrs: vec![],
            })
            .collect(),
        auth,
        introducers.iter().map(|k| k.node_identity()).collect(),
        max_members,
        1,
        Timestamp(1),
    )
}

/// One node of the harness.
pub(super) struct Node {
    pub key: Keypair,
    pub engine: DomainEngine,
    pub ctx: Context,
    /// Answers to the application's local mail.
    pub mail: Vec<DomainMail>,
    /// Mail to the Topology engine.
    pub topology: Vec<ViewMail>,
    pub timer: Option<Instant>,
    pub directory: DomainDirectory,
    pub up: bool,
}

impl Node {
    pub fn id(&self) -> NodeIdentity {
        self.key.node_identity()
    }
}

/// The application engine the harness's local mail comes from.
pub(super) fn app() -> EngineIdentity {
    EngineIdentity([0xa5; 32])
}

/// Several Domain engines and the messages between them.
pub(super) struct Net {
    pub nodes: Vec<Node>,
    pub now: Now,
    /// Messages in flight: (sender index, receiver, body).
    queue: VecDeque<(usize, NodeIdentity, Vec<u8>)>,
    pub rng: SplitMix64,
    /// Share of remote messages lost.
    pub loss: f64,
    /// Partition: nodes in different groups cannot talk (all in group 0 by default).
    pub group: Vec<u8>,
    /// Remote messages delivered, by kind.
    pub delivered: std::collections::BTreeMap<&'static str, usize>,
}

impl Net {
    /// `n` nodes with the given settings each (`settings(i)`), started.
    pub fn new(keys: &[Keypair], settings: impl Fn(usize) -> Vec<DomainSettings>) -> Net {
        let now = Now::read();
        let nodes = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let directory = DomainDirectory::new();
                let engine_key = k.derive_engine(DOMAIN_ENGINE_NAME);
                Node {
                    key: k.clone(),
                    engine: DomainEngine::new(
                        k.clone(),
                        settings(i),
                        directory.clone(),
                        DomainLimits::default(),
                        Arc::new(DomainStats::default()),
                        i as u64 + 1,
                    ),
                    ctx: Context::detached(
                        now,
                        engine_key.engine_identity(),
                        k.node_identity(),
                        DOMAIN_ENGINE_NAME,
                    ),
                    mail: Vec::new(),
                    topology: Vec::new(),
                    timer: None,
                    directory,
                    up: true,
                }
            })
            .collect();
        Net {
            nodes,
            now,
            queue: VecDeque::new(),
            rng: SplitMix64::new(99),
            loss: 0.0,
            group: vec![0; keys.len()],
            delivered: Default::default(),
        }
    }

    /// Starts every engine.
    pub fn start(&mut self) {
        for i in 0..self.nodes.len() {
            let n = &mut self.nodes[i];
            n.engine.start(&mut n.ctx);
            self.collect(i);
        }
    }

    fn index_of(&self, node: &NodeIdentity) -> Option<usize> {
        self.nodes.iter().position(|n| n.id() == *node)
    }

    /// Moves node `i`'s outputs to where they go.
    fn collect(&mut self, i: usize) {
        let me = self.nodes[i].id();
        let outputs = self.nodes[i].ctx.take_outputs();
        for o in outputs {
            match o {
                Output::Send(out) => {
                    let m = out.msg;
                    let local = m.rprefs.is_some_and(|r| r.scope == RoutingScope::Local);
                    match m.dst {
                        Destination::Node(n) if n == me && m.protocol == Protocol::TOPOLOGY => {
                            assert!(local);
                            let v = ViewMail::decode(&m.body).unwrap();
                            self.nodes[i].topology.push(v);
                        }
                        Destination::Engine(e) => {
                            assert!(local);
                            assert_eq!(e, app());
                            let mail = DomainMail::decode(&m.body).unwrap();
                            self.nodes[i].mail.push(mail);
                        }
                        Destination::Node(n) => {
                            assert_eq!(m.protocol, Protocol::DOMAIN);
                            assert!(!local);
                            self.queue.push_back((i, n, m.body));
                        }
                        other => panic!("unexpected destination {other:?}"),
                    }
                }
                Output::SetTimer { at, .. } => self.nodes[i].timer = Some(at),
                Output::CancelTimer { .. } => self.nodes[i].timer = None,
                other => panic!("unexpected output {other:?}"),
            }
        }
    }

    /// Delivers `body` from node `from` to node `to` as a verified remote message.
    pub fn deliver_remote(&mut self, from: usize, to: usize, body: Vec<u8>) {
        let sender = self.nodes[from].key.derive_engine(DOMAIN_ENGINE_NAME);
        let m = EngineMessage {
            src: sender.engine_identity(),
            src_node: self.nodes[from].id(),
            dst: Destination::Node(self.nodes[to].id()),
            id: MessageId(1),
            reply_to: None,
            expiry: None,
            rprefs: None,
            tprefs: None,
            protocol: Protocol::DOMAIN,
            body,
            sig: None,
        };
        let via = self.nodes[from].id();
        let arrived = Message::signed_remote(&sender, m, via);
        let n = &mut self.nodes[to];
        n.ctx.set_now(self.now);
        n.engine.handle(&mut n.ctx, Input::Message(arrived));
        n.engine.flush(&mut n.ctx);
        self.collect(to);
    }

    /// Sends local mail from the application to node `i`'s Domain engine.
    pub fn local(&mut self, i: usize, mail: DomainMail) {
        self.local_raw(i, Protocol::DOMAIN, mail.encode());
    }

    /// Sends a view event (as the Topology would) to node `i`.
    pub fn view(&mut self, i: usize, mail: ViewMail) {
        self.local_raw(i, Protocol::TOPOLOGY, mail.encode());
    }

    fn local_raw(&mut self, i: usize, protocol: Protocol, body: Vec<u8>) {
        let me = self.nodes[i].id();
        let m = EngineMessage {
            src: app(),
            src_node: me,
            dst: Destination::Node(me),
            id: MessageId(7),
            reply_to: None,
            expiry: None,
            rprefs: None,
            tprefs: None,
            protocol,
            body,
            sig: None,
        };
        let n = &mut self.nodes[i];
        n.ctx.set_now(self.now);
        n.engine
            .handle(&mut n.ctx, Input::Message(Message::local(m)));
        n.engine.flush(&mut n.ctx);
        self.collect(i);
    }

    /// Delivers everything in flight (and what that causes), dropping `loss` of it and what
    /// crosses the partition or goes to a node that is down.
    pub fn drain(&mut self) {
        let mut budget = 1_000_000;
        while let Some((from, to, body)) = self.queue.pop_front() {
            budget -= 1;
            assert!(budget > 0, "messages never stop");
            let Some(j) = self.index_of(&to) else {
                continue;
            };
            if !self.nodes[j].up || !self.nodes[from].up || self.group[from] != self.group[j] {
                continue;
            }
            if self.loss > 0.0 && self.rng.next_f64() < self.loss {
                continue;
            }
            if let Ok(msg) = DomainMessage::from_bytes(&body) {
                *self.delivered.entry(msg.kind()).or_default() += 1;
            }
            self.deliver_remote(from, j, body);
        }
    }

    /// Runs for `dur` of simulated time in steps of 100 ms: timers fire, messages flow.
    pub fn run(&mut self, dur: Duration) {
        let end = self.now.instant + dur;
        while self.now.instant < end {
            self.now = self.now.advanced(Duration::from_millis(100));
            for i in 0..self.nodes.len() {
                let due = self.nodes[i].timer.is_some_and(|t| t <= self.now.instant);
                if due && self.nodes[i].up {
                    self.nodes[i].timer = None;
                    let n = &mut self.nodes[i];
                    n.ctx.set_now(self.now);
                    n.engine.handle(&mut n.ctx, Input::Timer(TICK));
                    n.engine.flush(&mut n.ctx);
                    self.collect(i);
                }
            }
            self.drain();
        }
    }

    /// The member set node `i` holds of `d`.
    pub fn members(&self, i: usize, d: &DomainIdentity) -> BTreeSet<NodeIdentity> {
        self.nodes[i]
            .directory
            .entry(d)
            .map(|e| e.members)
            .unwrap_or_default()
    }

    /// Tells every member in `nodes` that all others in `nodes` are in its view.
    pub fn full_view(&mut self, d: DomainIdentity, nodes: &[usize]) {
        for &i in nodes {
            for &j in nodes {
                if i != j {
                    let node = self.nodes[j].id();
                    self.view(i, ViewMail::PeerAddedToView { domain: d, node });
                }
            }
        }
    }

    /// The last answer node `i`'s application got, removed.
    pub fn last_mail(&mut self, i: usize) -> Option<DomainMail> {
        self.nodes[i].mail.pop()
    }

    pub fn stats(&self, i: usize) -> &DomainStats {
        self.nodes[i].engine.stats()
    }
}

impl Net {
    /// Takes every message in flight (to inspect, change or replay them).
    pub fn take_in_flight(&mut self) -> Vec<(usize, NodeIdentity, Vec<u8>)> {
        self.queue.drain(..).collect()
    }
}

/// A domain whose first `introducers` of `n` nodes introduce it, with auth `auth`, capacity
/// `max_members` and PSK `psk(i)` for node `i`; started, nobody joined yet.
pub(super) fn domain_net(
    n: usize,
    introducers: usize,
    auth: DomainAuth,
    max_members: u64,
    psk: impl Fn(usize) -> Option<Vec<u8>>,
) -> (Net, DomainIdentity) {
    let ks = keys(1234, n);
    let domain_key = Keypair::from_seed(&[42; 32]);
    let advert = advert_for(&domain_key, &ks[..introducers], auth, max_members);
    let d = advert.id;
    let mut net = Net::new(&ks, |i| {
        vec![DomainSettings {
            advert: advert.clone(),
            psk: psk(i),
            join_at_start: false,
        }]
    });
    net.start();
    (net, d)
}

/// Node `i` asks to join `d` and the net runs until it has an answer (at most 60 s).
pub(super) fn join(net: &mut Net, i: usize, d: DomainIdentity) -> DomainMail {
    net.local(
        i,
        DomainMail::Join {
            domain: d,
            advert: None,
        },
    );
    for _ in 0..600 {
        if let Some(m) = net.last_mail(i) {
            return m;
        }
        net.run(Duration::from_millis(100));
    }
    panic!("no answer to the join of node {i}");
}
