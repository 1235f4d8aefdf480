//! A small in-memory network of Topology engines for tests: no Router, no sockets. Messages
//! between engines are delivered after a seeded latency (5–25 ms), lost with a seeded
//! probability, dropped across a partition and to crashed nodes; timers fire on a virtual
//! clock. Everything is determined by the seed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::super::{TopologyEngine, TopologyLimits, TopologyStats, ViewMail, TICK};
use crate::identity::{DomainIdentity, EngineIdentity, NodeIdentity};
use crate::mail::{Input, Message, Output};
use crate::rng::SplitMix64;
use crate::runtime::{Context, Engine};
use crate::time::Now;
use crate::wire::{Destination, EngineMessage, MessageId, Protocol};

/// The engine identity the harness's Domain engines send `Members` from.
pub const DOMAIN_ENGINE: EngineIdentity = EngineIdentity([0xdd; 32]);

pub struct SimNode {
    pub engine: TopologyEngine,
    pub ctx: Context,
    pub node: NodeIdentity,
    pub alive: bool,
    /// The time the engine's tick timer is set for.
    next_tick: Option<Duration>,
    /// View events sent to watchers: `(added, node)`.
    pub view_events: Vec<(bool, NodeIdentity)>,
}

enum Event {
    Deliver {
        to: usize,
        from: NodeIdentity,
        body: Vec<u8>,
    },
    Tick(usize),
}

pub struct Net {
    pub nodes: Vec<SimNode>,
    pub domain: DomainIdentity,
    pub index: BTreeMap<NodeIdentity, usize>,
    queue: BTreeMap<(Duration, u64), Event>,
    seq: u64,
    pub t: Duration,
    base: Now,
    rng: SplitMix64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// When set, the side of each node: messages between sides are dropped.
    pub sides: Option<Vec<u8>>,
    /// Messages delivered so far.
    pub delivered: u64,
}

impl Net {
    /// `n` engines (not started), with node identities drawn from `seed`.
    pub fn new(n: usize, limits: TopologyLimits, seed: u64) -> Net {
        let mut rng = SplitMix64::new(seed);
        let base = Now::read();
        let mut nodes = Vec::with_capacity(n);
        let mut index = BTreeMap::new();
        for i in 0..n {
            let mut id = [0u8; 32];
            for c in id.chunks_mut(8) {
                c.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            let node = NodeIdentity(id);
            index.insert(node, i);
            let engine = TopologyEngine::new(
                limits.clone(),
                Arc::new(TopologyStats::default()),
                SplitMix64::derive(seed, i as u64).next_u64(),
            );
            let ctx = Context::detached(base, EngineIdentity(id), node, "topology");
            nodes.push(SimNode {
                engine,
                ctx,
                node,
                alive: true,
                next_tick: None,
                view_events: Vec::new(),
            });
        }
        Net {
            nodes,
            domain: DomainIdentity([7; 32]),
            index,
            queue: BTreeMap::new(),
            seq: 0,
            t: Duration::ZERO,
            base,
            rng,
            loss: 0.0,
            sides: None,
            delivered: 0,
        }
    }

    pub fn ids(&self) -> Vec<NodeIdentity> {
        self.nodes.iter().map(|n| n.node).collect()
    }

    fn now(&self) -> Now {
        self.base.advanced(self.t)
    }

    /// Starts engine `i` and gives it the membership `members` with `introducers`.
    pub fn start(&mut self, i: usize, members: &[NodeIdentity], introducers: &[NodeIdentity]) {
        let now = self.now();
        let n = &mut self.nodes[i];
        n.ctx.set_now(now);
        n.engine.start(&mut n.ctx);
        let mail = ViewMail::Members {
            domain: self.domain,
            here: true,
            added: members.to_vec(),
            removed: vec![],
            introducers: introducers.to_vec(),
        };
        self.local(i, DOMAIN_ENGINE, mail);
    }

    /// Local mail `mail` to engine `i` from the local engine `from`.
    pub fn local(&mut self, i: usize, from: EngineIdentity, mail: ViewMail) {
        let now = self.now();
        let n = &mut self.nodes[i];
        n.ctx.set_now(now);
        let m = EngineMessage {
            src: from,
            src_node: n.node,
            dst: Destination::Node(n.node),
            id: MessageId(1),
            reply_to: None,
            expiry: None,
            rprefs: None,
            tprefs: None,
            protocol: Protocol::TOPOLOGY,
            body: mail.encode(),
            sig: None,
        };
        n.engine
            .handle(&mut n.ctx, Input::Message(Message::local(m)));
        self.drain(i);
    }

    /// Carries out engine `i`'s outputs.
    fn drain(&mut self, i: usize) {
        let outputs = self.nodes[i].ctx.take_outputs();
        let from = self.nodes[i].node;
        for out in outputs {
            match out {
                Output::Send(o) => match o.msg.dst {
                    Destination::Node(peer) if peer != from => {
                        let Some(&j) = self.index.get(&peer) else {
                            continue;
                        };
                        if self.rng.next_f64() < self.loss {
                            continue;
                        }
                        if let Some(s) = &self.sides {
                            if s[i] != s[j] {
                                continue;
                            }
                        }
                        let latency = Duration::from_millis(5 + self.rng.below(20));
                        self.push(
                            self.t + latency,
                            Event::Deliver {
                                to: j,
                                from,
                                body: o.msg.body,
                            },
                        );
                    }
                    Destination::Engine(_) => {
                        if let Ok(ev) = ViewMail::decode(&o.msg.body) {
                            let n = &mut self.nodes[i];
                            match ev {
                                ViewMail::PeerAddedToView { node, .. } => {
                                    n.view_events.push((true, node))
                                }
                                ViewMail::PeerRemovedFromView { node, .. } => {
                                    n.view_events.push((false, node))
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                },
                Output::SetTimer { token: TICK, at } => {
                    let when = at.saturating_duration_since(self.base.instant);
                    self.nodes[i].next_tick = Some(when);
                    self.push(when, Event::Tick(i));
                }
                _ => {}
            }
        }
    }

    fn push(&mut self, at: Duration, ev: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// Runs every event up to `t`.
    pub fn run_until(&mut self, t: Duration) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > t {
                break;
            }
            let ((at, _), ev) = entry.remove_entry();
            self.t = at;
            let now = self.now();
            match ev {
                Event::Deliver { to, from, body } => {
                    if !self.nodes[to].alive {
                        continue;
                    }
                    self.delivered += 1;
                    let n = &mut self.nodes[to];
                    n.ctx.set_now(now);
                    n.engine.deliver_remote(&mut n.ctx, from, &body);
                    self.drain(to);
                }
                Event::Tick(i) => {
                    let n = &mut self.nodes[i];
                    if !n.alive || n.next_tick != Some(at) {
                        continue;
                    }
                    n.ctx.set_now(now);
                    n.engine.handle(&mut n.ctx, Input::Timer(TICK));
                    self.drain(i);
                }
            }
        }
        self.t = t;
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.t + d;
        self.run_until(t);
    }

    /// Crashes node `i`: it handles nothing from now on.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].alive = false;
    }

    /// The live nodes' active views, by index (edges to crashed nodes left out).
    pub fn graph(&self) -> Vec<Vec<usize>> {
        let mut adj = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.alive {
                continue;
            }
            for p in n.engine.active_view(&self.domain) {
                if let Some(&j) = self.index.get(&p) {
                    if self.nodes[j].alive {
                        adj[i].push(j);
                        adj[j].push(i);
                    }
                }
            }
        }
        adj
    }

    /// The size of the largest connected component of the live nodes' overlay (edges taken
    /// undirected), as a share of the live nodes among `among` (all when `None`).
    pub fn largest_component_share(&self, among: Option<&[usize]>) -> f64 {
        let adj = self.graph();
        let set: Vec<usize> = match among {
            Some(a) => a.iter().copied().filter(|i| self.nodes[*i].alive).collect(),
            None => (0..self.nodes.len())
                .filter(|i| self.nodes[*i].alive)
                .collect(),
        };
        if set.is_empty() {
            return 1.0;
        }
        let inside: Vec<bool> = (0..self.nodes.len()).map(|i| set.contains(&i)).collect();
        let mut seen = vec![false; self.nodes.len()];
        let mut best = 0;
        for &s in &set {
            if seen[s] {
                continue;
            }
            let mut size = 0;
            let mut q = VecDeque::from([s]);
            seen[s] = true;
            while let Some(u) = q.pop_front() {
                size += 1;
                for &v in &adj[u] {
                    if inside[v] && !seen[v] {
                        seen[v] = true;
                        q.push_back(v);
                    }
                }
            }
            best = best.max(size);
        }
        best as f64 / set.len() as f64
    }

    /// Topology messages sent by live-or-dead engines so far, all kinds.
    pub fn sent_total(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| n.engine.stats().sent_total())
            .sum()
    }
}
