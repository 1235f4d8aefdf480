//! Unit tests of the Storage engine, without threads: a harness ([`Net`]) moves messages
//! between several engines through their detached contexts (signing and verifying each hop
//! like a Router would). `behaviour` holds gets, puts, searches and fetches; `hostile` the bad
//! input.

mod behaviour;
mod hostile;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::identity::DomainIdentity;
use crate::mail::storage::{FoundAt, Lookup};
use crate::mail::{DropReason, Output};
use crate::storage::block::Block;
use crate::storage::store::MemStore;
use crate::storage::tree::ObjectWriter;
use crate::time::{Now, Timestamp};
use crate::wire::{EngineMessage, RoutingPrefs, RoutingScope};

/// The application engine that asks (on every node).
pub(super) fn asker() -> EngineIdentity {
    EngineIdentity([0xa5; 32])
}

/// The domain every harness node is a member of.
pub(super) fn domain() -> DomainIdentity {
    Keypair::from_seed(&[0xd0; 32]).domain_identity()
}

/// One node of the harness.
pub(super) struct Node {
    pub key: Keypair,
    pub engine: StorageEngine,
    pub ctx: Context,
    pub store: Arc<MemStore>,
    pub stats: Arc<StorageStats>,
    /// Answers to the asking application engine, with the message they reply to.
    pub answers: Vec<(Option<MessageId>, StorageMail)>,
    pub timer: Option<Instant>,
}

impl Node {
    pub fn id(&self) -> NodeIdentity {
        self.key.node_identity()
    }

    /// The `GetDone` answers' results.
    pub fn gets(&self) -> Vec<Result<(Vec<u8>, FoundAt), String>> {
        self.answers
            .iter()
            .filter_map(|(_, m)| match m {
                StorageMail::GetDone { result, .. } => Some(result.clone()),
                _ => None,
            })
            .collect()
    }

    /// The `FetchDone` answers' results.
    pub fn fetches(&self) -> Vec<Result<u64, String>> {
        self.answers
            .iter()
            .filter_map(|(_, m)| match m {
                StorageMail::FetchDone { result, .. } => Some(result.clone()),
                _ => None,
            })
            .collect()
    }

    /// The `PutDone` answers' results.
    pub fn puts(&self) -> Vec<Result<Option<ChunkCommitment>, String>> {
        self.answers
            .iter()
            .filter_map(|(_, m)| match m {
                StorageMail::PutDone { result, .. } => Some(result.clone()),
                _ => None,
            })
            .collect()
    }
}

/// A message in flight.
pub(super) struct Wire {
    pub from: usize,
    pub to: NodeIdentity,
    pub body: Vec<u8>,
    pub id: MessageId,
    pub reply_to: Option<MessageId>,
    pub notify: bool,
}

/// Several Storage engines and the messages between them.
pub(super) struct Net {
    pub nodes: Vec<Node>,
    pub now: Now,
    pub queue: VecDeque<Wire>,
    /// Nodes that are down: messages to them are lost (their senders told if they asked).
    pub down: BTreeSet<usize>,
    /// Messages delivered, by kind.
    pub delivered: BTreeMap<&'static str, usize>,
}

impl Net {
    /// `n` nodes, all members of [`domain`], each with `settings(i)`.
    pub fn new(n: usize, settings: impl Fn(usize) -> StorageSettings) -> Net {
        let now = Now::read();
        let mut rng = SplitMix64::new(31);
        let keys: Vec<Keypair> = (0..n).map(|_| Keypair::from_rng(&mut rng)).collect();
        let members: std::collections::BTreeSet<NodeIdentity> =
            keys.iter().map(|k| k.node_identity()).collect();
        let nodes = keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                let store = Arc::new(MemStore::new(Default::default()));
                let directory = DomainDirectory::new();
                directory.publish(domain(), members.clone(), true);
                let stats = Arc::new(StorageStats::default());
                let engine_key = k.derive_engine(STORAGE_ENGINE_NAME);
                let mut node = Node {
                    engine: StorageEngine::new(
                        k.clone(),
                        store.clone(),
                        directory.clone(),
                        settings(i),
                        stats.clone(),
                        i as u64 + 1,
                    ),
                    ctx: Context::detached(
                        now,
                        engine_key.engine_identity(),
                        k.node_identity(),
                        STORAGE_ENGINE_NAME,
                    ),
                    key: k,
                    store,
                    stats,
                    answers: Vec::new(),
                    timer: None,
                };
                node.engine.start(&mut node.ctx);
                node
            })
            .collect();
        let mut net = Net {
            nodes,
            now,
            queue: VecDeque::new(),
            down: BTreeSet::new(),
            delivered: BTreeMap::new(),
        };
        for i in 0..n {
            net.collect(i);
        }
        net
    }

    pub fn index_of(&self, node: &NodeIdentity) -> Option<usize> {
        self.nodes.iter().position(|n| n.id() == *node)
    }

    /// Local mail from the asking engine to node `i`'s engine; returns the message id.
    pub fn local(&mut self, i: usize, mail: StorageMail) -> MessageId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 40);
        let id = MessageId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let m = EngineMessage {
            src: asker(),
            src_node: self.nodes[i].id(),
            dst: Destination::Node(self.nodes[i].id()),
            id,
            reply_to: None,
            expiry: None,
            rprefs: Some(RoutingPrefs {
                scope: RoutingScope::Local,
            }),
            tprefs: None,
            protocol: Protocol::STORAGE,
            body: mail.encode(),
            sig: None,
        };
        self.input(i, Input::Message(Message::local(m)));
        id
    }

    /// A `Get` of `id` from node `i`.
    pub fn get(&mut self, i: usize, id: BlockId, lookup: Lookup) -> MessageId {
        self.local(i, StorageMail::Get { id, lookup })
    }

    /// Hands `input` to node `i`'s engine and collects its outputs.
    pub fn input(&mut self, i: usize, input: Input) {
        let n = &mut self.nodes[i];
        n.ctx.set_now(self.now);
        n.engine.handle(&mut n.ctx, input);
        n.engine.flush(&mut n.ctx);
        self.collect(i);
    }

    /// Moves node `i`'s outputs to where they go.
    fn collect(&mut self, i: usize) {
        for o in self.nodes[i].ctx.take_outputs() {
            match o {
                Output::Send(out) => {
                    let m = out.msg;
                    let local = m.scope() == RoutingScope::Local;
                    match m.dst {
                        Destination::Engine(e) => {
                            assert!(local && e == asker());
                            let mail = StorageMail::decode(&m.body).unwrap();
                            self.nodes[i].answers.push((m.reply_to, mail));
                        }
                        Destination::Node(to) => {
                            assert!(!local && m.protocol == Protocol::STORAGE);
                            self.queue.push_back(Wire {
                                from: i,
                                to,
                                body: m.body,
                                id: m.id,
                                reply_to: m.reply_to,
                                notify: out.notify_undeliverable,
                            });
                        }
                        other => panic!("unexpected destination {other:?}"),
                    }
                }
                Output::SetTimer { at, .. } => self.nodes[i].timer = Some(at),
                Output::CancelTimer { .. } => self.nodes[i].timer = None,
                Output::Identity(_) | Output::Transport(_) => {}
                other => panic!("unexpected output {other:?}"),
            }
        }
    }

    /// Delivers `body` from node `from` to node `to` as a verified remote message.
    pub fn deliver(
        &mut self,
        from: usize,
        to: usize,
        id: MessageId,
        reply_to: Option<MessageId>,
        body: Vec<u8>,
    ) {
        let sender = self.nodes[from].key.derive_engine(STORAGE_ENGINE_NAME);
        let m = EngineMessage {
            src: sender.engine_identity(),
            src_node: self.nodes[from].id(),
            dst: Destination::Node(self.nodes[to].id()),
            id,
            reply_to,
            expiry: None,
            rprefs: None,
            tprefs: None,
            protocol: Protocol::STORAGE,
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
            assert!(steps < 200_000, "the harness does not settle");
            let to = self.index_of(&f.to).expect("a message to an unknown node");
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
            if let Ok(m) = StorageMessage::from_bytes(&f.body) {
                *self.delivered.entry(m.kind()).or_default() += 1;
            }
            self.deliver(f.from, to, f.id, f.reply_to, f.body);
        }
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

    /// The counters of node `i`, non-zero ones by name.
    pub fn counters(&self, i: usize) -> BTreeMap<&'static str, u64> {
        self.nodes[i].stats.nonzero().into_iter().collect()
    }

    /// Makes node `i`'s identity store set `trust` for node `j`.
    pub fn set_trust(&mut self, i: usize, j: usize, trust: u8) {
        let id = self.nodes[j].id();
        let record = crate::mail::identity::NodeRecord {
            id,
            advert: None,
            trust: Some(trust),
            reputation: None,
            tprefs: None,
            cprefs: None,
            measured: None,
        };
        let e = IdentityEvent::Updated {
            id: AnyIdentity::Node(id),
            record: IdentityRecord::Node(record),
        };
        self.input(i, Input::Identity(Box::new(e)));
    }
}

/// A leaf block of `n` bytes of `fill`.
pub(super) fn leaf(n: usize, fill: u8) -> VerifiedBlock {
    VerifiedBlock::new(Block::Leaf(vec![fill; n])).unwrap()
}

/// Keeps `b` in `store` for a long time, served to everyone.
pub(super) fn keep(store: &MemStore, b: &VerifiedBlock, now: Timestamp) {
    store
        .put(b, serve::meta_of(now.after(Duration::from_secs(3600)), 0))
        .unwrap();
}

/// An object of `len` bytes (deterministic content) split with a small shape: its blocks and
/// root.
pub(super) fn object(len: usize, leaf_max: usize, fanout: usize) -> (Vec<VerifiedBlock>, BlockId) {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let mut w = ObjectWriter::with_shape(leaf_max, fanout);
    let mut blocks = w.write(&data).unwrap();
    let (last, root, _) = w.finish().unwrap();
    blocks.extend(last);
    (blocks, root)
}
