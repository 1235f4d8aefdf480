//! The storage workload (issue 13): `nodes` nodes, all members of one domain, blocks each held
//! by a fraction `holders` of the nodes, and random-walk lookups of them from random nodes that
//! do not hold them.
//!
//! The membership is given directly, not formed by Domain engines (none run): before a node's
//! engines start, its [`DomainDirectory`] gets the one domain with every node as a member
//! ([`DomainDirectory::publish`], `here` true) — what the Storage engine's random walk reads
//! its next hops from. Every node can learn every node's advert when it first sends to it (the
//! walk's next hop is any member, not only a graph neighbour); the random graph of `--degree`
//! still gives each node its permanent connections, as in the other workloads.
//!
//! Every node runs the Storage engine exactly as a real node does, over a [`MemStore`] that
//! outlives the node's incarnations (a restarted node finds its blocks again, as with its disk
//! store). Before the run, each block (a seeded leaf of `block_bytes` bytes) is put into the
//! stores of its holders, drawn uniformly. Each lookup is a (node, block) pair, the node drawn
//! uniformly among the non-holders of the block; lookup `i` asks for block `i mod blocks`
//! (with `blocks` = `lookups`, the default, every lookup asks for a block nobody has looked up
//! yet, so no cache filled by an earlier lookup helps). An asking node's engine
//! ([`apps::Asker`]) sends `StorageMail::Get { id, lookup: Lookup::random(Some(domain)) }` at
//! the lookup's time — the lookups are spread evenly over `lookup_window` after `warmup` — and
//! records the `GetDone`.
//!
//! Checked after every event (a broken one fails the run): every block a lookup gets hashes to
//! the id asked for; no block is found after more than the hop limit; no store gains a block
//! (gets fill caches, never stores). Counted, and failing the summary's `ok`: an answer not
//! marked `cached` that names as its holder a node whose store does not hold the block.

mod apps;
mod summary;

pub use summary::StorageSummary;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{drops, network, run_world, Common, Progress};
use crate::identity::{Keypair, NodeIdentity};
use crate::mail::domain::DomainDirectory;
use crate::mail::storage::STORAGE_ENGINE_NAME;
use crate::rng::SplitMix64;
use crate::sim::node::EngineSetup;
use crate::sim::{World, WorldExtras, WALL_EPOCH};
use crate::storage::block::{Block, VerifiedBlock};
use crate::storage::engine::{StorageEngine, StorageSettings, StorageStats};
use crate::storage::store::{BlockMeta, BlockStore, MemStore, StoreLimits};
use crate::wire::{NodeAdvert, Protocol};
use apps::{Ask, AskLog, Asker, Outcome, Truth, ASKER_ENGINE_NAME};

/// A storage run.
#[derive(Clone, Debug)]
pub struct StorageScenario {
    /// What every scenario shares (`drain` is raised to the Storage engines' lookup timeout if
    /// shorter, so that every lookup is answered before the run ends).
    pub common: Common,
    /// Fraction of the nodes holding each block (0.01; at least one node, at most all but one).
    pub holders: f64,
    /// Lookups.
    pub lookups: usize,
    /// Distinct blocks (each with its own holders); 0: one per lookup.
    pub blocks: usize,
    /// Bytes of each block's data (1,024).
    pub block_bytes: usize,
    /// When the lookups start (the permanent connections come up first; 2 s).
    pub warmup: Duration,
    /// The lookups are spread evenly over this long (10 s).
    pub lookup_window: Duration,
    /// The Storage engines' settings (fanout, hop limit, timeouts, bounds).
    pub settings: StorageSettings,
}

impl Default for StorageScenario {
    fn default() -> Self {
        StorageScenario {
            common: Common {
                nodes: 200,
                ..Common::default()
            },
            holders: 0.01,
            lookups: 100,
            blocks: 0,
            block_bytes: 1024,
            warmup: Duration::from_secs(2),
            lookup_window: Duration::from_secs(10),
            settings: StorageSettings::default(),
        }
    }
}

/// Everything drawn before the run.
struct Plan {
    truth: Truth,
    blocks: Vec<VerifiedBlock>,
    /// Per block: its holders (node indexes).
    holders: Vec<Vec<usize>>,
    /// Per node: its lookups, by time.
    asks: Vec<Vec<Ask>>,
    /// Lookups in all.
    lookups: usize,
}

/// A seeded permutation of `0..n`.
fn shuffled(n: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

fn plan(s: &StorageScenario, identities: &[NodeIdentity]) -> Plan {
    let n = identities.len();
    let mut rng = SplitMix64::derive(s.common.seed, 0x5107_0000);
    let domain = Keypair::from_rng(&mut rng).domain_identity();
    let nblocks = if s.blocks == 0 { s.lookups } else { s.blocks }.max(1);
    let per_block = ((n as f64 * s.holders).round() as usize).clamp(1, n.saturating_sub(1).max(1));
    let len = s.block_bytes.min(crate::storage::block::MAX_BLOCK_DATA);
    let mut blocks = Vec::with_capacity(nblocks);
    let mut holders = Vec::with_capacity(nblocks);
    for b in 0..nblocks {
        let mut data = vec![0u8; len];
        for chunk in data.chunks_mut(8) {
            let v = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        // Distinct even if the data were not: the block's index leads.
        data.splice(0..0, (b as u64).to_le_bytes());
        data.truncate(len.max(8));
        match VerifiedBlock::new(Block::Leaf(data)) {
            Ok(v) => blocks.push(v),
            Err(e) => {
                log::error!("sim storage: block {b} is not a block: {e}");
                continue;
            }
        }
        let mut h: Vec<usize> = shuffled(n, &mut rng).into_iter().take(per_block).collect();
        h.sort_unstable();
        holders.push(h);
    }
    let mut asks = vec![Vec::new(); n];
    let mut lookups = 0;
    for i in 0..s.lookups {
        let b = i % blocks.len().max(1);
        let Some(hs) = holders.get(b) else { break };
        let others = n - hs.len();
        if others == 0 {
            break;
        }
        // The k-th node that does not hold the block.
        let k = rng.below(others as u64) as usize;
        let node = (0..n)
            .filter(|x| hs.binary_search(x).is_err())
            .nth(k)
            .unwrap_or(0);
        let at = s.warmup + s.lookup_window.mul_f64(i as f64 / s.lookups.max(1) as f64);
        asks[node].push(Ask {
            index: i,
            at,
            block: b,
        });
        lookups += 1;
    }
    let truth = Truth {
        domain,
        ids: blocks.iter().map(VerifiedBlock::id).collect(),
        holders: holders
            .iter()
            .map(|h| h.iter().map(|&i| identities[i]).collect())
            .collect(),
        hop_limit: s.settings.hop_limit as u32,
    };
    Plan {
        truth,
        blocks,
        holders,
        asks,
        lookups,
    }
}

/// The `q`-quantile (0..=1) of `v` (sorted here), nearest rank; 0 for none.
fn quantile(v: &mut [u32], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let k = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[k] as f64
}

fn engine(
    name: &str,
    serves: Vec<Protocol>,
    engine: Box<dyn crate::runtime::Engine>,
) -> EngineSetup {
    EngineSetup {
        name: name.into(),
        serves,
        mailbox_depth: 65_536,
        engine,
    }
}

/// Runs a storage scenario.
pub fn run_storage(s: &StorageScenario) -> StorageSummary {
    run_storage_with(s, &mut |_| {})
}

/// Runs a storage scenario, reporting progress every simulated second.
pub fn run_storage_with(s: &StorageScenario, report: &mut dyn FnMut(&Progress)) -> StorageSummary {
    let started = std::time::Instant::now();
    let _crypto = s.common.crypto.enable();
    let mut c = s.common.clone();
    let lookup_time = s.settings.search_timeout + s.settings.get_timeout + Duration::from_secs(1);
    c.drain = c.drain.max(lookup_time);
    let n = c.nodes;
    let net = network(&c);
    let identities: Vec<NodeIdentity> = net.keys.iter().map(|k| k.node_identity()).collect();
    let plan = plan(s, &identities);
    let expires = WALL_EPOCH.after(Duration::from_secs(30 * 24 * 3600));
    let stores: Vec<Arc<MemStore>> = (0..n)
        .map(|_| Arc::new(MemStore::new(StoreLimits::default())))
        .collect();
    for (b, hs) in plan.holders.iter().enumerate() {
        for &h in hs {
            if let Err(e) = stores[h].put(
                &plan.blocks[b],
                BlockMeta {
                    expires,
                    min_trust: 0,
                },
            ) {
                log::error!("sim storage: node {h} cannot store block {b}: {e}");
            }
        }
    }
    let initial: Vec<u64> = stores.iter().map(|st| st.status().blocks).collect();
    let members: BTreeSet<NodeIdentity> = identities.iter().copied().collect();
    let log = Arc::new(Mutex::new(AskLog::default()));
    let stats: Arc<Mutex<Vec<Arc<StorageStats>>>> = Arc::default();
    let truth = Arc::new(plan.truth);
    let builtins: crate::sim::BuiltinFactory = {
        let (log, stats, truth, stores) = (
            Arc::clone(&log),
            Arc::clone(&stats),
            Arc::clone(&truth),
            stores.clone(),
        );
        let keys = net.keys.clone();
        let asks = plan.asks.clone();
        let settings = s.settings.clone();
        let seed = c.seed;
        Box::new(move |node, incarnation, directory: &DomainDirectory| {
            directory.publish(truth.domain, members.clone(), true);
            let mut seeds = SplitMix64::derive(
                seed,
                0x5107_1000 ^ ((node as u64) << 20) ^ incarnation as u64,
            );
            let st = Arc::new(StorageStats::default());
            stats.lock().push(Arc::clone(&st));
            let store: Arc<dyn BlockStore> = stores[node].clone();
            let mut out = vec![engine(
                STORAGE_ENGINE_NAME,
                vec![Protocol::STORAGE],
                Box::new(StorageEngine::new(
                    keys[node].clone(),
                    store,
                    directory.clone(),
                    settings.clone(),
                    st,
                    seeds.next_u64(),
                )),
            )];
            if !asks[node].is_empty() {
                if incarnation > 0 {
                    // What the crashed incarnation asked died with it.
                    let mut l = log.lock();
                    for a in &asks[node] {
                        if let Some(o @ Outcome::Waiting) = l.outcomes.get_mut(&a.index) {
                            *o = Outcome::AskerCrashed;
                        }
                    }
                }
                out.push(engine(
                    ASKER_ENGINE_NAME,
                    Vec::new(),
                    Box::new(Asker {
                        node,
                        plan: asks[node].clone(),
                        next: 0,
                        log: Arc::clone(&log),
                        truth: Arc::clone(&truth),
                        waiting: BTreeMap::new(),
                    }),
                ));
            }
            out
        })
    };
    // Every node can find every other (the walk's next hop is any member).
    let all: Arc<BTreeMap<NodeIdentity, NodeAdvert>> = Arc::new(
        identities
            .iter()
            .zip(&net.setups)
            .map(|(i, st)| (*i, st.advert.clone()))
            .collect(),
    );
    let extras = WorldExtras {
        builtins,
        known: (0..n).map(|_| Arc::clone(&all)).collect(),
        watch_topic: None,
        routes: Vec::new(),
        relay: Vec::new(),
    };
    let mut setups = net.setups;
    for st in &mut setups {
        st.pubsub = false;
    }
    let apps: crate::sim::AppFactory = Box::new(|_, _| Vec::new());
    let mut world = World::with_extras(c.seed, setups, apps, c.faults, extras);
    let work_end = s.warmup + s.lookup_window;
    let probe_log = Arc::clone(&log);
    let result = run_world(
        &mut world,
        &c,
        s.warmup,
        work_end,
        started,
        report,
        &mut |w: &World| {
            let l = probe_log.lock();
            let done = l
                .outcomes
                .values()
                .filter(|o| !matches!(o, Outcome::Waiting))
                .count() as u64;
            if let Some(v) = &l.violation {
                return (done, Some(v.clone()));
            }
            for &i in &w.touched {
                let held = stores[i].status().blocks;
                if held > initial[i] {
                    return (
                        done,
                        Some(format!(
                            "node {i}: its store holds {held} blocks, {} given (a get stored a block)",
                            initial[i]
                        )),
                    );
                }
            }
            (done, None)
        },
    );
    let (log, stats) = (log.lock(), stats.lock());
    summarise(
        s,
        &c,
        &world,
        &log,
        &stats,
        &plan.holders,
        plan.lookups,
        result,
        started,
    )
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    s: &StorageScenario,
    c: &Common,
    world: &World,
    log: &AskLog,
    stats: &[Arc<StorageStats>],
    holders: &[Vec<usize>],
    asked_planned: usize,
    result: Result<(), String>,
    started: std::time::Instant,
) -> StorageSummary {
    let mut hops = Vec::new();
    let mut failures = BTreeMap::new();
    let (mut lookups, mut found, mut cached, mut crashed) = (0, 0, 0, 0);
    for o in log.outcomes.values() {
        match o {
            Outcome::AskerCrashed => {
                crashed += 1;
                continue;
            }
            Outcome::Found(at) => {
                found += 1;
                cached += usize::from(at.cached);
                hops.push(at.hops);
            }
            Outcome::Failed(e) => *failures.entry(e.clone()).or_insert(0) += 1,
            Outcome::Waiting => *failures.entry("unanswered".to_string()).or_insert(0) += 1,
        }
        lookups += 1;
    }
    // Lookups never asked (their node was down at the time) count as failed.
    let never = asked_planned.saturating_sub(log.outcomes.len());
    if never > 0 {
        failures.insert("never_asked".into(), never as u64);
        lookups += never;
    }
    let mut msgs = world.retired_sent.clone();
    for node in world.nodes.iter().flatten() {
        for (k, v) in node.sent_by_engine() {
            *msgs.entry(k).or_default() += v;
        }
    }
    let storage_msgs = msgs.get(STORAGE_ENGINE_NAME).copied().unwrap_or(0);
    let mut counters = BTreeMap::new();
    for st in stats {
        for (k, v) in st.nonzero() {
            *counters.entry(k.to_string()).or_default() += v;
        }
    }
    StorageSummary {
        nodes: c.nodes,
        seed: c.seed,
        crypto: c.crypto.name().into(),
        sim_s: world.elapsed().as_secs_f64(),
        wall_s: started.elapsed().as_secs_f64(),
        steps: world.steps,
        blocks: holders.len(),
        holders_per_block: holders.first().map_or(0, Vec::len),
        fanout: s.settings.fanout,
        hop_limit: s.settings.hop_limit,
        lookups,
        found,
        lookup_success: found as f64 / lookups.max(1) as f64,
        hops_p50: quantile(&mut hops, 0.5),
        hops_p99: quantile(&mut hops, 0.99),
        hops_max: hops.iter().copied().max().unwrap_or(0),
        found_in_cache: cached,
        path_cache_answers: log.path_cache_answers,
        failures,
        asker_crashed: crashed,
        unexpected_answers: log.unexpected,
        storage_msgs,
        msgs_per_lookup: storage_msgs as f64 / (lookups + crashed).max(1) as f64,
        msgs_by_engine: msgs,
        storage: counters,
        drops_by_reason: drops(world),
        crashes: world.crashes,
        partitions: world.partitions,
        trace_hash: world.trace_hash(),
        failure: result.err(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_asks_non_holders_and_replays_from_its_seed() {
        let s = StorageScenario {
            lookups: 40,
            holders: 0.05,
            ..StorageScenario::default()
        };
        let ids: Vec<NodeIdentity> = super::super::keys(100, 3)
            .iter()
            .map(|k| k.node_identity())
            .collect();
        let p = plan(&s, &ids);
        assert_eq!(p.lookups, 40);
        assert_eq!(p.blocks.len(), 40, "one block per lookup by default");
        assert!(p.holders.iter().all(|h| h.len() == 5));
        let mut asked = 0;
        for (node, asks) in p.asks.iter().enumerate() {
            for a in asks {
                assert!(!p.holders[a.block].contains(&node));
                assert!(a.at >= s.warmup && a.at < s.warmup + s.lookup_window);
                asked += 1;
            }
        }
        assert_eq!(asked, 40);
        let q = plan(&s, &ids);
        assert_eq!(q.holders, p.holders);
        assert_eq!(q.asks, p.asks);
        assert_eq!(q.truth.ids, p.truth.ids);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut v: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(quantile(&mut v, 0.5), 50.0);
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut [], 0.5), 0.0);
    }
}
