//! The relay workload: edge nodes that have no address for each other and reach each other only
//! through relays, some of which acknowledge what they should forward and then drop it.
//!
//! Nodes `0 .. relays` are relays (forwarding for anyone; the first `dropping` of them drop
//! every layer after acknowledging it); every other node is an edge node linked to every relay
//! and to nothing else. Each edge node's client sends `requests` requests, round robin, to the
//! other edge nodes' servers, which answer each: every request and every answer crosses a
//! relay. Invariants: a server handles each request at most once (a request resent on another
//! path after its receipt did not come must be refused as a duplicate); at the end every
//! request is answered, or reported undeliverable with a reason, or counted lost — which fails
//! the run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::*;
use crate::relay::{ReceiptLimits, RelayFault, RelayMode, RelayPolicy};

/// A relay run.
#[derive(Clone, Debug)]
pub struct RelayScenario {
    /// What every scenario shares (`nodes` counts relays and edge nodes; `degree` and
    /// `edges` are not used: the links are relays × edge nodes).
    pub common: Common,
    /// Relays.
    pub relays: usize,
    /// Of the relays, how many drop every layer they should forward (after acknowledging it).
    pub dropping: usize,
    /// Requests per edge node.
    pub requests: u64,
    /// Time between two requests of a client.
    pub interval: Duration,
    /// When requests start.
    pub warmup: Duration,
}

impl Default for RelayScenario {
    fn default() -> Self {
        RelayScenario {
            common: Common {
                nodes: 12,
                ..Common::default()
            },
            relays: 3,
            dropping: 1,
            requests: 30,
            interval: Duration::from_millis(50),
            warmup: Duration::from_secs(2),
        }
    }
}

#[derive(Default)]
struct RelayLog {
    sent: BTreeSet<(usize, u64)>,
    answered: BTreeSet<(usize, u64)>,
    bounced: BTreeSet<(usize, u64)>,
    /// Per (server, client, request): how many times handled.
    handled: BTreeMap<(usize, usize, u64), u32>,
    v: Violations,
}

const TIMER: u64 = 1;

struct Client {
    node: usize,
    servers: Vec<crate::identity::NodeIdentity>,
    requests: u64,
    interval: Duration,
    warmup: Duration,
    next: u64,
    pending: BTreeMap<u64, u64>,
    log: Arc<Mutex<RelayLog>>,
}

impl Engine for Client {
    fn start(&mut self, ctx: &mut Context) {
        if !self.servers.is_empty() && self.requests > 0 {
            ctx.set_timer_after(TIMER, self.warmup);
        }
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(TIMER) if self.next < self.requests => {
                let server = self.servers[(self.next as usize) % self.servers.len()];
                let mut body = (self.node as u32).to_le_bytes().to_vec();
                body.extend_from_slice(&self.next.to_le_bytes());
                let opts = SendOptions {
                    expiry: Duration::from_secs(60),
                    ..SendOptions::default()
                };
                let id = ctx.send_with(Destination::Node(server), APP, body, opts);
                self.pending.insert(id.0, self.next);
                self.log.lock().sent.insert((self.node, self.next));
                self.next += 1;
                ctx.set_timer_after(TIMER, self.interval);
            }
            Input::Message(m) => {
                if let Some(seq) = m.reply_to().and_then(|r| self.pending.remove(&r.0)) {
                    self.log.lock().answered.insert((self.node, seq));
                }
            }
            Input::Undeliverable(u) => {
                if let Some(seq) = self.pending.remove(&u.id.0) {
                    log::debug!(
                        "sim: relayed request {seq} of node {}: {:?}",
                        self.node,
                        u.reason
                    );
                    self.log.lock().bounced.insert((self.node, seq));
                }
            }
            _ => {}
        }
    }
}

struct Server {
    node: usize,
    log: Arc<Mutex<RelayLog>>,
}

impl Engine for Server {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        let Input::Message(m) = input else { return };
        let b = m.body();
        if m.protocol() != APP || m.reply_to().is_some() || b.len() != 12 {
            return;
        }
        let client = u32::from_le_bytes(b[..4].try_into().expect("4 bytes")) as usize;
        let seq = u64::from_le_bytes(b[4..12].try_into().expect("8 bytes"));
        {
            let mut log = self.log.lock();
            let n = log.handled.entry((self.node, client, seq)).or_default();
            *n += 1;
            if *n > 1 {
                let node = self.node;
                log.v
                    .duplicate(|| format!("server {node} handled request {client}/{seq} twice"));
            }
        }
        ctx.reply(&m, b.to_vec());
    }
}

/// The relay policy of node `i`, `dropping` saying whether it drops (receipts are waited for
/// 500 ms, so the run notices a dropping relay quickly).
fn policy(i: usize, s: &RelayScenario, dropping: bool) -> RelayPolicy {
    RelayPolicy {
        mode: if i < s.relays {
            RelayMode::Anyone
        } else {
            RelayMode::Never
        },
        receipts: ReceiptLimits {
            timeout: Duration::from_millis(500),
            ..ReceiptLimits::default()
        },
        fault: if dropping {
            RelayFault::Drop
        } else {
            RelayFault::None
        },
        ..RelayPolicy::default()
    }
}

/// The outcome of a relay run: the request/response figures, and the relay counters summed
/// over the nodes.
#[derive(Clone, Debug)]
pub struct RelaySummary {
    /// Requests, answers, losses, duplicates, drops by reason, the trace hash.
    pub summary: Summary,
    /// Requests handled whose answer was given up on (`relay_unacknowledged` at the server,
    /// after every attempt): counted, not lost.
    pub answer_dropped: u64,
    /// Relay layers forwarded by the relays.
    pub forwarded: u64,
    /// Receipts that came back to the sources.
    pub receipts: u64,
    /// Messages sealed again for another path (no receipt in time).
    pub retries: u64,
    /// Messages sent without a receipt awaited (the table was full).
    pub untracked: u64,
}

impl RelaySummary {
    /// The summary as one JSON object: the request/response fields, then the relay counters.
    pub fn to_json(&self) -> String {
        let mut json = self.summary.to_json();
        json.pop();
        json.push_str(&format!(
            ",\"answer_dropped\":{},\"forwarded\":{},\"receipts\":{},\"retries\":{},\"untracked\":{}}}",
            self.answer_dropped, self.forwarded, self.receipts, self.retries, self.untracked
        ));
        json
    }
}

/// Runs a relay scenario.
pub fn run_relay(s: &RelayScenario) -> RelaySummary {
    let started = std::time::Instant::now();
    let c = &s.common;
    let _crypto = c.crypto.enable();
    let n = c.nodes;
    assert!(
        s.relays >= 1 && s.relays < n && s.dropping < s.relays,
        "a relay run needs an honest relay and an edge node"
    );
    let keys = keys(n, c.seed);
    let edges: BTreeSet<(usize, usize)> = (0..s.relays)
        .flat_map(|r| (s.relays..n).map(move |e| (r, e)))
        .collect();
    let setups = setups(&keys, &edges, &sim_transport());
    let edge_ids: Vec<_> = (s.relays..n).map(|i| keys[i].node_identity()).collect();
    let log = Arc::new(Mutex::new(RelayLog::default()));
    let (scenario, log2) = (s.clone(), Arc::clone(&log));
    let apps: crate::sim::AppFactory = Box::new(move |node, incarnation| {
        if node < scenario.relays {
            return Vec::new();
        }
        let own = edge_ids[node - scenario.relays];
        vec![
            EngineSetup {
                name: "server".into(),
                serves: vec![APP],
                mailbox_depth: 65_536,
                engine: Box::new(Server {
                    node,
                    log: Arc::clone(&log2),
                }),
            },
            EngineSetup {
                name: "client".into(),
                serves: Vec::new(),
                mailbox_depth: 65_536,
                engine: Box::new(Client {
                    node,
                    servers: edge_ids.iter().copied().filter(|id| *id != own).collect(),
                    requests: if incarnation == 0 {
                        scenario.requests
                    } else {
                        0
                    },
                    interval: scenario.interval,
                    warmup: scenario.warmup,
                    next: 0,
                    pending: BTreeMap::new(),
                    log: Arc::clone(&log2),
                }),
            },
        ]
    });
    // The dropping relays are those every source tries first: with equal trust and no RTT
    // measured in the simulator, the lowest identities.
    let mut by_rank: Vec<usize> = (0..s.relays).collect();
    by_rank.sort_by_key(|&i| keys[i].node_identity().0);
    let dropping: BTreeSet<usize> = by_rank[..s.dropping].iter().copied().collect();
    let extras = crate::sim::WorldExtras {
        relay: (0..n)
            .map(|i| Some(policy(i, s, dropping.contains(&i))))
            .collect(),
        ..crate::sim::WorldExtras::default()
    };
    let mut world = World::with_extras(c.seed, setups, apps, c.faults, extras);
    let send_end = s.warmup + s.interval * s.requests as u32;
    let log3 = Arc::clone(&log);
    let result = run_world(
        &mut world,
        c,
        s.warmup,
        send_end,
        started,
        &mut |_| {},
        &mut |_| {
            let log = log3.lock();
            (log.answered.len() as u64, log.v.first.clone())
        },
    );
    let log = log.lock();
    let live = |n: &usize| !world.crashed.contains(n);
    let drops = drops(&world);
    // An answer given up on (no receipt on any path) is counted `relay_unacknowledged` at the
    // server; its request was handled. Beyond those counted, an unanswered request is lost.
    let given_up = drops.get("relay_unacknowledged").copied().unwrap_or(0);
    let (mut lost, mut answer_dropped) = (0, 0);
    for k in log.sent.iter().filter(|(n, _)| live(n)) {
        if log.answered.contains(k) || log.bounced.contains(k) {
            continue;
        }
        let handled = log.handled.keys().any(|(_, cl, seq)| (*cl, *seq) == *k);
        if handled && answer_dropped < given_up {
            answer_dropped += 1;
        } else {
            lost += 1;
            log::warn!(
                "sim: relayed request {} of node {} lost (seed {})",
                k.1,
                k.0,
                c.seed
            );
        }
    }
    let mut counters = (0, 0, 0, 0);
    for node in world.nodes.iter().flatten() {
        let s = node.stats.snapshot();
        counters.0 += s.relayed;
        counters.1 += s.relay_receipts;
        counters.2 += s.relay_retries;
        counters.3 += s.relay_untracked;
    }
    let summary = Summary {
        scenario: "relay".into(),
        nodes: n,
        seed: c.seed,
        crypto: c.crypto.name().into(),
        sim_s: world.elapsed().as_secs_f64(),
        wall_s: started.elapsed().as_secs_f64(),
        steps: world.steps,
        requests: log.sent.iter().filter(|(n, _)| live(n)).count() as u64,
        answered: log.answered.iter().filter(|(n, _)| live(n)).count() as u64,
        bounced: log.bounced.iter().filter(|(n, _)| live(n)).count() as u64,
        lost,
        duplicates: log.v.duplicates,
        drops_by_reason: drops,
        crashes: world.crashes,
        partitions: world.partitions,
        trace_hash: world.trace_hash(),
        failure: result.err(),
        ..Summary::default()
    };
    RelaySummary {
        summary,
        answer_dropped,
        forwarded: counters.0,
        receipts: counters.1,
        retries: counters.2,
        untracked: counters.3,
    }
}
