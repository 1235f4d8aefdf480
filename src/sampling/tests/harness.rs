//! A small in-memory network of PeerSampling engines for tests: no Router, no sockets.
//! Messages between engines are delivered after a seeded latency (5–25 ms) and lost with a
//! seeded probability; timers fire on a virtual clock. Some nodes can be *colluders*: no
//! engine, they answer and start exchanges with their own group's descriptors only (the
//! attack of issue 15), built from `sampling::wire` as the simulator's hostile engine is.
//! Everything is determined by the seed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::super::wire::SamplingMessage;
use super::super::{SamplerMode, SamplingEngine, SamplingSettings, SamplingStats, GOSSIP};
use super::{advert, descriptor_for};
use crate::identity::{EngineIdentity, Keypair, NodeIdentity};
use crate::mail::domain::DomainDirectory;
use crate::mail::interdomain::NeighbourBoard;
use crate::mail::{Input, Output};
use crate::rng::SplitMix64;
use crate::runtime::{Context, Engine};
use crate::time::Now;
use crate::wire::{Destination, NodeDescriptor};

pub struct SimNode {
    pub key: Keypair,
    pub node: NodeIdentity,
    /// `None` for a colluder.
    pub engine: Option<SamplingEngine>,
    pub ctx: Context,
    pub board: NeighbourBoard,
    pub directory: DomainDirectory,
    next_timer: Option<Duration>,
}

enum Event {
    Deliver {
        to: usize,
        from: NodeIdentity,
        body: Vec<u8>,
    },
    Timer(usize),
}

pub struct Net {
    pub nodes: Vec<SimNode>,
    pub index: BTreeMap<NodeIdentity, usize>,
    queue: BTreeMap<(Duration, u64), Event>,
    seq: u64,
    pub t: Duration,
    base: Now,
    rng: SplitMix64,
    pub loss: f64,
    /// The colluders' descriptors (what they push).
    colluder_descs: Vec<NodeDescriptor>,
    honest: Vec<NodeIdentity>,
    pub period: Duration,
}

impl Net {
    /// `honest` engines in `mode` with explicit views of `explicit` random other honest nodes
    /// (trust `trust`) plus the next node on a ring (so the explicit graph is connected), and
    /// `colluders` colluding nodes that know every node.
    pub fn new(
        honest: usize,
        colluders: usize,
        explicit: usize,
        trust: f64,
        mode: SamplerMode,
        seed: u64,
    ) -> Net {
        let settings = SamplingSettings {
            mode,
            ..SamplingSettings::default()
        };
        Net::with_settings(honest, colluders, explicit, trust, settings, seed)
    }

    pub fn with_settings(
        honest: usize,
        colluders: usize,
        explicit: usize,
        trust: f64,
        settings: SamplingSettings,
        seed: u64,
    ) -> Net {
        let mut rng = SplitMix64::new(seed);
        let base = Now::read();
        let n = honest + colluders;
        let keys: Vec<Keypair> = (0..n).map(|_| Keypair::from_rng(&mut rng)).collect();
        let adverts: Vec<_> = keys.iter().map(|k| advert(k, base.wall)).collect();
        let mut nodes = Vec::with_capacity(n);
        let mut index = BTreeMap::new();
        for (i, key) in keys.iter().enumerate() {
            let node = key.node_identity();
            index.insert(node, i);
            let board = NeighbourBoard::new();
            let directory = DomainDirectory::new();
            let engine = (i < honest).then(|| {
                let mut xs: BTreeSet<usize> = BTreeSet::new();
                if honest > 1 {
                    xs.insert((i + 1) % honest);
                }
                while xs.len() < explicit.min(honest - 1) {
                    let j = rng.below(honest as u64) as usize;
                    if j != i {
                        xs.insert(j);
                    }
                }
                let xview = xs.iter().map(|&j| (adverts[j].clone(), trust)).collect();
                SamplingEngine::new(
                    key.clone(),
                    adverts[i].clone(),
                    settings.clone(),
                    xview,
                    directory.clone(),
                    board.clone(),
                    Arc::new(SamplingStats::default()),
                    SplitMix64::derive(seed, i as u64).next_u64(),
                )
            });
            let ctx = Context::detached(base, EngineIdentity(node.0), node, "sampling");
            nodes.push(SimNode {
                key: key.clone(),
                node,
                engine,
                ctx,
                board,
                directory,
                next_timer: None,
            });
        }
        let colluder_descs = keys[honest..]
            .iter()
            .map(|k| descriptor_for(k, 1, base.wall))
            .collect();
        let honest_ids = keys[..honest].iter().map(|k| k.node_identity()).collect();
        Net {
            nodes,
            index,
            queue: BTreeMap::new(),
            seq: 0,
            t: Duration::ZERO,
            base,
            rng,
            loss: 0.0,
            colluder_descs,
            honest: honest_ids,
            period: settings.period,
        }
    }

    fn now(&self) -> Now {
        self.base.advanced(self.t)
    }

    /// Starts every engine and every colluder's timer.
    pub fn start(&mut self) {
        for i in 0..self.nodes.len() {
            let now = self.now();
            let n = &mut self.nodes[i];
            n.ctx.set_now(now);
            match &mut n.engine {
                Some(e) => e.start(&mut n.ctx),
                None => {
                    let first = self.period.mul_f64(self.rng.next_f64());
                    n.next_timer = Some(first);
                    self.push(first, Event::Timer(i));
                    continue;
                }
            }
            self.drain(i);
        }
    }

    pub fn is_colluder(&self, node: &NodeIdentity) -> bool {
        self.index
            .get(node)
            .is_some_and(|&i| self.nodes[i].engine.is_none())
    }

    pub fn honest_indices(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].engine.is_some())
            .collect()
    }

    pub fn engine(&self, i: usize) -> &SamplingEngine {
        self.nodes[i].engine.as_ref().expect("an honest node")
    }

    fn colluder_body(&mut self, reply: bool) -> Vec<u8> {
        let n = self.colluder_descs.len().min(8);
        let descriptors =
            crate::interdomain::weighted::uniform_sample(&self.colluder_descs, n, &mut self.rng);
        let m = if reply {
            SamplingMessage::Reply { descriptors }
        } else {
            SamplingMessage::Exchange { descriptors }
        };
        m.to_bytes()
    }

    fn send(&mut self, from: usize, to: NodeIdentity, body: Vec<u8>) {
        let Some(&j) = self.index.get(&to) else {
            return;
        };
        if j == from || self.rng.next_f64() < self.loss {
            return;
        }
        let latency = Duration::from_millis(5 + self.rng.below(20));
        let from = self.nodes[from].node;
        self.push(self.t + latency, Event::Deliver { to: j, from, body });
    }

    /// Carries out engine `i`'s outputs.
    fn drain(&mut self, i: usize) {
        let outputs = self.nodes[i].ctx.take_outputs();
        for out in outputs {
            match out {
                Output::Send(o) => {
                    if let Destination::Node(peer) = o.msg.dst {
                        self.send(i, peer, o.msg.body);
                    }
                }
                Output::SetTimer { token: GOSSIP, at } => {
                    let when = at.saturating_duration_since(self.base.instant);
                    self.nodes[i].next_timer = Some(when);
                    self.push(when, Event::Timer(i));
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
                    let n = &mut self.nodes[to];
                    n.ctx.set_now(now);
                    match &mut n.engine {
                        Some(e) => {
                            e.deliver_remote(&mut n.ctx, from, &body);
                            self.drain(to);
                        }
                        None => {
                            // A colluder answers every exchange with colluders only.
                            if let Ok(SamplingMessage::Exchange { .. }) =
                                SamplingMessage::from_bytes(&body, 64)
                            {
                                let reply = self.colluder_body(true);
                                self.send(to, from, reply);
                            }
                        }
                    }
                }
                Event::Timer(i) => {
                    if self.nodes[i].next_timer != Some(at) {
                        continue;
                    }
                    let n = &mut self.nodes[i];
                    n.ctx.set_now(now);
                    match &mut n.engine {
                        Some(e) => {
                            e.handle(&mut n.ctx, Input::Timer(GOSSIP));
                            self.drain(i);
                        }
                        None => {
                            // A colluder pushes colluders to a random honest node each period.
                            let k = self.rng.below(self.honest.len() as u64) as usize;
                            let to = self.honest[k];
                            let body = self.colluder_body(false);
                            self.send(i, to, body);
                            let next = at + self.period;
                            self.nodes[i].next_timer = Some(next);
                            self.push(next, Event::Timer(i));
                        }
                    }
                }
            }
        }
        self.t = t;
    }

    /// Runs `rounds` more gossip periods.
    pub fn rounds(&mut self, rounds: u32) {
        let t = self.t + self.period * rounds;
        self.run_until(t);
    }

    /// The share of colluders in the honest nodes' dynamic views (all entries together).
    pub fn colluder_view_share(&self) -> f64 {
        let (mut bad, mut all) = (0usize, 0usize);
        for i in self.honest_indices() {
            for n in self.engine(i).view_nodes() {
                all += 1;
                bad += self.is_colluder(&n) as usize;
            }
        }
        bad as f64 / all.max(1) as f64
    }

    /// Honest nodes whose view is at least half colluders.
    pub fn eclipsed(&self) -> usize {
        self.honest_indices()
            .into_iter()
            .filter(|&i| {
                let v = self.engine(i).view_nodes();
                let bad = v.iter().filter(|n| self.is_colluder(n)).count();
                !v.is_empty() && 2 * bad >= v.len()
            })
            .count()
    }

    /// Whether the honest nodes' views (edges taken undirected, colluders left out) connect
    /// every honest node.
    pub fn honest_connected(&self) -> bool {
        let honest = self.honest_indices();
        let mut adj: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &i in &honest {
            for n in self.engine(i).view_nodes() {
                let Some(&j) = self.index.get(&n) else {
                    continue;
                };
                if self.nodes[j].engine.is_some() {
                    adj.entry(i).or_default().push(j);
                    adj.entry(j).or_default().push(i);
                }
            }
        }
        let Some(&s) = honest.first() else {
            return true;
        };
        let mut seen = BTreeSet::from([s]);
        let mut q = VecDeque::from([s]);
        while let Some(u) = q.pop_front() {
            for &v in adj.get(&u).into_iter().flatten() {
                if seen.insert(v) {
                    q.push_back(v);
                }
            }
        }
        seen.len() == honest.len()
    }
}
