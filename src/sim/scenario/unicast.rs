//! The request/response workload: clients that number their requests, servers that check
//! each one and answer it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::*;

#[derive(Default)]
struct UnicastLog {
    /// Reliable requests sent, answered, bounced, as (client node, incarnation, number).
    sent: BTreeSet<(usize, u32, u64)>,
    answered: BTreeSet<(usize, u32, u64)>,
    bounced: BTreeSet<(usize, u32, u64)>,
    /// Per (server node, server incarnation, client node, client incarnation): last request.
    last: BTreeMap<(usize, u32, usize, u32), u64>,
    /// Requests some server handled, as (client node, client incarnation, number).
    handled: BTreeSet<(usize, u32, u64)>,
    /// Unreliable requests sent, and (server node, server incarnation, client, incarnation,
    /// number) of those handled.
    unreliable_sent: u64,
    unreliable_handled: BTreeSet<(usize, u32, usize, u32, u64)>,
    v: Violations,
}

struct Client {
    node: usize,
    incarnation: u32,
    servers: Vec<crate::identity::NodeIdentity>,
    requests: u64,
    interval: Duration,
    warmup: Duration,
    next: u64,
    unreliable_every: u64,
    /// Request id → request number.
    pending: BTreeMap<u64, u64>,
    log: Arc<Mutex<UnicastLog>>,
}

const REQUEST_TIMER: u64 = 1;

/// Whether request `seq` goes as a datagram.
fn unreliable(seq: u64, every: u64) -> bool {
    every > 0 && seq % every == every - 1
}

impl Engine for Client {
    fn start(&mut self, ctx: &mut Context) {
        if !self.servers.is_empty() {
            ctx.set_timer_after(REQUEST_TIMER, self.warmup);
        }
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(REQUEST_TIMER) if self.next < self.requests => {
                let server = self.servers[(self.next as usize) % self.servers.len()];
                let mut body = (self.node as u32).to_le_bytes().to_vec();
                body.extend_from_slice(&self.incarnation.to_le_bytes());
                body.extend_from_slice(&self.next.to_le_bytes());
                let datagram = unreliable(self.next, self.unreliable_every);
                body.push(datagram as u8);
                let opts = SendOptions {
                    expiry: Duration::from_secs(60),
                    tprefs: datagram.then_some(crate::wire::TransportPrefs {
                        ordering: crate::wire::Ordering::Unordered,
                        reliability: crate::wire::Reliability::Unreliable,
                        security: crate::wire::Security::Direct,
                    }),
                    ..SendOptions::default()
                };
                let id = ctx.send_with(Destination::Node(server), APP, body, opts);
                let mut log = self.log.lock();
                if datagram {
                    log.unreliable_sent += 1;
                } else {
                    self.pending.insert(id.0, self.next);
                    log.sent.insert((self.node, self.incarnation, self.next));
                }
                drop(log);
                self.next += 1;
                ctx.set_timer_after(REQUEST_TIMER, self.interval);
            }
            Input::Message(m) => {
                if let Some(seq) = m.reply_to().and_then(|r| self.pending.remove(&r.0)) {
                    self.log
                        .lock()
                        .answered
                        .insert((self.node, self.incarnation, seq));
                }
            }
            Input::Undeliverable(u) => {
                if let Some(seq) = self.pending.remove(&u.id.0) {
                    log::debug!(
                        "sim: request {seq} of node {} dropped: {:?}",
                        self.node,
                        u.reason
                    );
                    self.log
                        .lock()
                        .bounced
                        .insert((self.node, self.incarnation, seq));
                }
            }
            _ => {}
        }
    }
}

struct Server {
    node: usize,
    incarnation: u32,
    log: Arc<Mutex<UnicastLog>>,
}

impl Engine for Server {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        let Input::Message(m) = input else { return };
        let b = m.body();
        if m.protocol() != APP || b.len() < 17 {
            return;
        }
        let client = u32::from_le_bytes(b[..4].try_into().expect("4 bytes")) as usize;
        let cinc = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
        if b[16] == 1 {
            // A datagram: may be lost or reordered, never handled twice.
            let mut log = self.log.lock();
            if !log
                .unreliable_handled
                .insert((self.node, self.incarnation, client, cinc, seq))
            {
                let node = self.node;
                log.v
                    .duplicate(|| format!("server {node} handled datagram request {client}/{seq}"));
            }
            return;
        }
        {
            let mut log = self.log.lock();
            log.handled.insert((client, cinc, seq));
            let key = (self.node, self.incarnation, client, cinc);
            let node = self.node;
            let UnicastLog { last, v, .. } = &mut *log;
            v.ordered(last, key, seq, || {
                format!("server {node} got request {client}/{seq}")
            });
        }
        ctx.reply(&m, b.to_vec());
    }
}

/// Runs a request/response scenario.
pub fn run_unicast(s: &UnicastScenario) -> Summary {
    run_unicast_with(s, &mut |_| {})
}

/// Runs a request/response scenario, reporting progress every simulated second.
pub fn run_unicast_with(s: &UnicastScenario, report: &mut dyn FnMut(&Progress)) -> Summary {
    let started = std::time::Instant::now();
    let c = &s.common;
    let _crypto = c.crypto.enable();
    let Network {
        setups, neighbours, ..
    } = network(c);
    let log = Arc::new(Mutex::new(UnicastLog::default()));
    let (scenario, log2) = (s.clone(), Arc::clone(&log));
    let apps: crate::sim::AppFactory = Box::new(move |node, incarnation| {
        vec![
            EngineSetup {
                name: "server".into(),
                serves: vec![APP],
                mailbox_depth: 65_536,
                engine: Box::new(Server {
                    node,
                    incarnation,
                    log: Arc::clone(&log2),
                }),
            },
            EngineSetup {
                name: "client".into(),
                serves: Vec::new(),
                mailbox_depth: 65_536,
                engine: Box::new(Client {
                    node,
                    incarnation,
                    servers: neighbours[node].clone(),
                    requests: if incarnation == 0 {
                        scenario.requests
                    } else {
                        0
                    },
                    interval: scenario.interval,
                    warmup: scenario.warmup,
                    next: 0,
                    unreliable_every: scenario.unreliable_every,
                    pending: BTreeMap::new(),
                    log: Arc::clone(&log2),
                }),
            },
        ]
    });
    let mut world = World::new(c.seed, setups, apps, c.faults);
    let send_end = s.warmup + s.interval * s.requests as u32;
    let log3 = Arc::clone(&log);
    let result = run_world(
        &mut world,
        c,
        s.warmup,
        send_end,
        started,
        report,
        &mut |_| {
            let log = log3.lock();
            (log.answered.len() as u64, log.v.first.clone())
        },
    );
    let log = log.lock();
    let live = |n: &usize| !world.crashed.contains(n);
    let requests = log.sent.iter().filter(|(n, _, _)| live(n)).count() as u64;
    let answered = log.answered.iter().filter(|(n, _, _)| live(n)).count() as u64;
    let bounced = log.bounced.iter().filter(|(n, _, _)| live(n)).count() as u64;
    let mut answer_lost_in_crash = 0;
    let mut lost = 0;
    for &k in log.sent.iter().filter(|(n, _, _)| live(n)) {
        if log.answered.contains(&k) || log.bounced.contains(&k) {
            continue;
        }
        if log.handled.contains(&k) {
            answer_lost_in_crash += 1;
        } else {
            lost += 1;
            log::warn!(
                "sim: request {} of node {} lost (seed {})",
                k.2,
                k.0,
                c.seed
            );
        }
    }
    Summary {
        scenario: "unicast".into(),
        nodes: c.nodes,
        seed: c.seed,
        crypto: c.crypto.name().into(),
        sim_s: world.elapsed().as_secs_f64(),
        wall_s: started.elapsed().as_secs_f64(),
        steps: world.steps,
        requests,
        answered,
        bounced,
        answer_lost_in_crash,
        lost,
        datagrams_sent: log.unreliable_sent,
        datagrams_handled: log.unreliable_handled.len() as u64,
        duplicates: log.v.duplicates,
        order_violations: log.v.order_violations,
        drops_by_reason: drops(&world),
        pubsub: pubsub_counters(&world),
        crashes: world.crashes,
        partitions: world.partitions,
        trace_hash: world.trace_hash(),
        failure: result.err(),
        ..Summary::default()
    }
}
