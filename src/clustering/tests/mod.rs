//! Unit tests of the Clustering engine through `Context::detached`: the wire codec (`codec`),
//! a small in-memory network of engines whose sampling views are set directly on their boards
//! (`network`: TAC convergence, fingers, PSI), and bad input against one engine (`refusals`).

mod codec;
mod network;
mod refusals;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::identity::{DomainIdentity, EngineIdentity, Keypair, Signature};
use crate::interdomain::blip::{self, BlipParams};
use crate::mail::interdomain::{LinkKind, Neighbour};
use crate::mail::Output;
use crate::time::{Now, Timestamp};
use crate::wire::{NodeAdvert, NodeDescriptor, Signed};

pub(super) fn domain(i: u32) -> DomainIdentity {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&i.to_le_bytes());
    id[31] = 0xd0;
    DomainIdentity(id)
}

pub(super) fn key(i: u32) -> Keypair {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    seed[31] = 0x5e;
    Keypair::from_seed(&seed)
}

/// A signed descriptor of `key`'s node whose filter holds `domains`, flipped (ε = 5) unless
/// `plain`.
pub(super) fn descriptor(
    key: &Keypair,
    domains: &BTreeSet<DomainIdentity>,
    version: u64,
    now: Timestamp,
    rng: &mut SplitMix64,
) -> NodeDescriptor {
    let params = BlipParams::default();
    let filter = blip::flip(&blip::encode(&params, domains), params.epsilon, rng);
    descriptor_with(key, filter, version, now)
}

pub(super) fn descriptor_with(
    key: &Keypair,
    filter: crate::wire::MembershipFilter,
    version: u64,
    now: Timestamp,
) -> NodeDescriptor {
    let advert = NodeAdvert::new_signed(
        key,
        vec![],
        1,
        now,
        now.after(Duration::from_secs(3600)),
        None,
    );
    NodeDescriptor {
        advert,
        filter,
        version,
        created: now,
        sig: Signature([0; 64]),
    }
    .sign(key)
}

/// One engine with its board, directory and context.
pub(super) struct Node {
    pub engine: ClusteringEngine,
    pub ctx: Context,
    pub id: NodeIdentity,
    pub board: NeighbourBoard,
    pub directory: DomainDirectory,
    pub domains: BTreeSet<DomainIdentity>,
    pub desc: Arc<NodeDescriptor>,
}

impl Node {
    pub fn new(
        i: u32,
        domains: BTreeSet<DomainIdentity>,
        settings: ClusteringSettings,
        now: Now,
        rng: &mut SplitMix64,
    ) -> Node {
        let k = key(i);
        let id = k.node_identity();
        let board = NeighbourBoard::new();
        let directory = DomainDirectory::new();
        for d in &domains {
            directory.publish(*d, BTreeSet::from([id]), true);
        }
        let desc = Arc::new(descriptor(&k, &domains, 1, now.wall, rng));
        board.set_own(desc.clone());
        let engine = ClusteringEngine::new(
            k,
            settings,
            directory.clone(),
            board.clone(),
            Arc::new(ClusteringStats::default()),
            0xc1 ^ i as u64,
        );
        let ctx = Context::detached(now, EngineIdentity(id.0), id, CLUSTERING_ENGINE_NAME);
        Node {
            engine,
            ctx,
            id,
            board,
            directory,
            domains,
            desc,
        }
    }

    /// Sets the sampling view on the board.
    pub fn set_sampling(&self, list: Vec<(Arc<NodeDescriptor>, f64)>) {
        let list = list
            .into_iter()
            .map(|(descriptor, trust)| Neighbour {
                descriptor,
                kind: LinkKind::Random,
                trust,
                shared: None,
            })
            .collect();
        self.board.publish(BoardSource::Sampling, list);
    }

    pub fn tick(&mut self) {
        self.engine.handle(&mut self.ctx, Input::Timer(TICK));
    }

    pub fn deliver(&mut self, from: NodeIdentity, body: &[u8]) {
        self.engine.deliver_remote(&mut self.ctx, from, body);
    }

    /// Messages sent since the last call: `(to, message)`.
    pub fn sent(&mut self) -> Vec<(NodeIdentity, ClusteringMessage)> {
        let mut out = Vec::new();
        for o in self.ctx.take_outputs() {
            if let Output::Send(s) = o {
                if let Destination::Node(n) = s.msg.dst {
                    let m = ClusteringMessage::from_bytes(&s.msg.body, 1000, 1000).unwrap();
                    out.push((n, m));
                }
            }
        }
        out
    }

    pub fn advance(&mut self, d: Duration) {
        let now = self.ctx.now().advanced(d);
        self.ctx.set_now(now);
    }

    pub fn stat(&self, f: impl Fn(&ClusteringStats) -> &AtomicU64) -> u64 {
        ClusteringStats::get(f(self.engine.stats()))
    }
}

/// Engines that exchange messages at once (FIFO, no loss).
pub(super) struct Net {
    pub nodes: Vec<Node>,
    pub index: BTreeMap<NodeIdentity, usize>,
}

impl Net {
    pub fn new(nodes: Vec<Node>) -> Net {
        let index = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
        Net { nodes, index }
    }

    /// One gossip round: every engine ticks, then messages flow until none is left.
    pub fn round(&mut self) {
        let mut queue: VecDeque<(usize, NodeIdentity, Vec<u8>)> = VecDeque::new();
        for i in 0..self.nodes.len() {
            self.nodes[i].advance(Duration::from_secs(1));
            self.nodes[i].tick();
            self.collect(i, &mut queue);
        }
        while let Some((to, from, body)) = queue.pop_front() {
            self.nodes[to].deliver(from, &body);
            self.collect(to, &mut queue);
        }
    }

    fn collect(&mut self, i: usize, queue: &mut VecDeque<(usize, NodeIdentity, Vec<u8>)>) {
        let from = self.nodes[i].id;
        for (to, m) in self.nodes[i].sent() {
            if let Some(&j) = self.index.get(&to) {
                queue.push_back((j, from, m.to_bytes()));
            }
        }
    }
}
