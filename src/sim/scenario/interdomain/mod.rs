//! The inter-domain workload (issue 15): `nodes` nodes, `domains` domains with Zipf-sized
//! memberships (each node in 1–5 of them), a fraction of colluding nodes attacking peer
//! sampling, and lookups of foreign domains after the overlay has settled.
//!
//! Memberships are given directly: each node's [`DomainDirectory`] gets, before its engines
//! start, its own domains ([`DomainDirectory::publish`], with itself as the only member it
//! knows — no engine here reads other members, and whole member sets would cost Σ size² of
//! memory) and each domain's signed advert listing every member as answering external requests,
//! with `external_here` set ([`DomainDirectory::set_advert`]) — for a domain of more members
//! than an advert can list (`MAX_DOMAIN_NODES`, 256) no advert is set, and then any member
//! answers. No Domain or Topology engine runs.
//!
//! Every honest node runs the inter-domain engines exactly as a real node does — PeerSampling,
//! Clustering and DomainRouting sharing one [`NeighbourBoard`], one [`DomainRoutes`] (also
//! given to its Router) and the directory — with its honest neighbours in the random graph as
//! its explicit (trusted) view. Colluders run only [`colluder::Colluder`]: a PeerSampling
//! engine that pushes and answers with colluders' descriptors only, to honest nodes drawn
//! uniformly from all of them; they neither cluster nor route, so a request handed to one is
//! lost (a black hole).
//!
//! Three worlds run from the same seed, so from the same nodes, domains, colluders and lookups:
//!
//! * **main**: TAPS + URPS, TAC, greedy routing; `rounds` sampling periods, then the views are
//!   measured and the lookups go out over `lookup_window`, and the run waits out the routing
//!   timeout;
//! * **walk** (the lookup baseline): the same but `RoutingMode::RandomWalk` with the same hop
//!   limit — up to the first lookup it is the same run event for event;
//! * **cyclon** (the sampling baseline): PeerSampling only, in `SamplerMode::Cyclon` (no URPS,
//!   no trust), for `rounds` rounds, and its views measured.
//!
//! Checked after every event on the nodes that ran in it (a broken one fails the run): every
//! dynamic view within its limit and without the node itself; every lookup answer names a true
//! member of the domain, after at most the hop limit.

mod apps;
mod colluder;
mod figures;
mod metrics;
mod setup;
mod summary;

pub use summary::{InterdomainSummary, LookupFigures};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{drops, network, Common, Network, Progress, Reporter};
use crate::clustering::{ClusteringEngine, ClusteringProbe, ClusteringSettings, ClusteringStats};
use crate::domain_routing::{DomainRoutingEngine, RoutingMode, RoutingSettings, RoutingStats};
use crate::identity::{DomainIdentity, NodeIdentity};
use crate::interdomain::blip;
use crate::mail::domain::DomainDirectory;
use crate::mail::interdomain::{
    DomainRoutes, NeighbourBoard, CLUSTERING_ENGINE_NAME, DOMAIN_ROUTING_ENGINE_NAME,
    SAMPLING_ENGINE_NAME,
};
use crate::rng::SplitMix64;
use crate::runtime::Engine;
use crate::sampling::{
    SamplerMode, SamplingEngine, SamplingProbe, SamplingSettings, SamplingStats,
};
use crate::sim::node::EngineSetup;
use crate::sim::{World, WorldExtras};
use crate::wire::advert::MAX_DOMAIN_NODES;
use crate::wire::{DomainAdvert, NodeAdvert, NodeDescriptor, Protocol};
use apps::{LookupApp, LookupLog, LOOKUP_ENGINE_NAME};
use setup::{plan, Plan, PlanParams};

/// An inter-domain run.
#[derive(Clone, Debug)]
pub struct InterdomainScenario {
    /// What every scenario shares (`degree`: the random graph whose honest edges are the
    /// explicit views; `crash`, `partition` and `drain` are not used).
    pub common: Common,
    /// Domains.
    pub domains: usize,
    /// Zipf exponent of the domains' popularity (1.0).
    pub zipf: f64,
    /// Fewest and most domains a node is a member of ((1, 5)).
    pub per_node: (usize, usize),
    /// Fraction of the nodes that collude (0.2).
    pub colluders: f64,
    /// Honest nodes each colluder pushes to per sampling period (1: as often as an honest node
    /// gossips).
    pub colluder_push: usize,
    /// Lookups (distinct (honest node, foreign domain) pairs).
    pub lookups: usize,
    /// Sampling periods before the views are measured and the lookups start (100).
    pub rounds: u64,
    /// The lookups are spread over this long (10 s).
    pub lookup_window: Duration,
    /// Trust in an explicit (graph) neighbour, in [0, 1] (0.9).
    pub explicit_trust: f64,
    /// The PeerSampling engines' settings (`mode` is set per world).
    pub sampling: SamplingSettings,
    /// The Clustering engines' settings.
    pub clustering: ClusteringSettings,
    /// The DomainRouting engines' settings (`mode` is set per world).
    pub routing: RoutingSettings,
    /// Run the random-walk lookup baseline.
    pub walk_baseline: bool,
    /// Run the CYCLON sampling baseline.
    pub cyclon_baseline: bool,
}

impl Default for InterdomainScenario {
    fn default() -> Self {
        InterdomainScenario {
            common: Common {
                nodes: 200,
                degree: 4,
                ..Common::default()
            },
            domains: 20,
            zipf: 1.0,
            per_node: (1, 5),
            colluders: 0.2,
            colluder_push: 1,
            lookups: 200,
            rounds: 100,
            lookup_window: Duration::from_secs(10),
            explicit_trust: 0.9,
            sampling: SamplingSettings::default(),
            clustering: ClusteringSettings::default(),
            routing: RoutingSettings::default(),
            walk_baseline: true,
            cyclon_baseline: true,
        }
    }
}

/// Which world runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Main,
    Walk,
    Cyclon,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Main => "main",
            Kind::Walk => "walk",
            Kind::Cyclon => "cyclon",
        }
    }
}

/// The probes and boards of one honest node.
#[derive(Clone)]
struct Probes {
    sampling: SamplingProbe,
    clustering: Option<ClusteringProbe>,
    board: NeighbourBoard,
}

/// What one world measured.
#[derive(Default)]
struct Measured {
    lookups: Option<LookupFigures>,
    view_share: f64,
    eclipsed: usize,
    share_by_round: Vec<f64>,
    settled_round: Option<u64>,
    blip_error: f64,
    blip_error_unflipped: f64,
    blip_pairs: usize,
    observer: f64,
    observer_unflipped: f64,
    psi_checked: usize,
    psi_errors: usize,
    maintenance: f64,
    msgs_by_engine: BTreeMap<String, u64>,
    sampling: BTreeMap<String, u64>,
    clustering: BTreeMap<String, u64>,
    routing: BTreeMap<String, u64>,
    drops: BTreeMap<String, u64>,
    trace_hash: String,
    steps: u64,
    sim_s: f64,
    wall_s: f64,
    failure: Option<String>,
}

/// Runs an inter-domain scenario.
pub fn run_interdomain(s: &InterdomainScenario) -> InterdomainSummary {
    run_interdomain_with(s, &mut |_| {})
}

/// Runs an inter-domain scenario, reporting progress every simulated second.
pub fn run_interdomain_with(
    s: &InterdomainScenario,
    report: &mut dyn FnMut(&Progress),
) -> InterdomainSummary {
    let started = std::time::Instant::now();
    let _crypto = s.common.crypto.enable();
    let period = s.sampling.period;
    let lookups_at = period * s.rounds as u32;
    let mut rng = SplitMix64::derive(s.common.seed, 0x1d_0000);
    let plan = plan(
        &PlanParams {
            nodes: s.common.nodes,
            domains: s.domains,
            zipf: s.zipf,
            per_node: s.per_node,
            colluders: s.colluders,
            lookups: s.lookups,
            lookups_at,
            lookup_window: s.lookup_window,
        },
        &mut rng,
    );
    let main = run_world(s, &plan, Kind::Main, report);
    let walk = (s.walk_baseline && main.failure.is_none())
        .then(|| run_world(s, &plan, Kind::Walk, report));
    let cyclon = (s.cyclon_baseline && main.failure.is_none())
        .then(|| run_world(s, &plan, Kind::Cyclon, report));
    let n = s.common.nodes;
    let colluders = plan.colluder.iter().filter(|&&c| c).count();
    let mut wall_by_world = BTreeMap::from([("main".to_string(), main.wall_s)]);
    for (k, w) in [(Kind::Walk, &walk), (Kind::Cyclon, &cyclon)] {
        if let Some(w) = w {
            wall_by_world.insert(k.name().into(), w.wall_s);
        }
    }
    let failure = main.failure.clone().or_else(|| {
        [&walk, &cyclon]
            .into_iter()
            .flatten()
            .find_map(|w| w.failure.clone())
    });
    InterdomainSummary {
        nodes: n,
        seed: s.common.seed,
        crypto: s.common.crypto.name().into(),
        sim_s: main.sim_s,
        wall_s: started.elapsed().as_secs_f64(),
        wall_by_world,
        steps: main.steps,
        domains: plan.domains.len(),
        domains_populated: plan.members.iter().filter(|m| !m.is_empty()).count(),
        largest_domain: plan.members.iter().map(BTreeSet::len).max().unwrap_or(0),
        colluders,
        rounds: s.rounds,
        settled_round: main.settled_round,
        lookups: main.lookups.clone().unwrap_or_default(),
        baseline_lookups: walk.as_ref().and_then(|w| w.lookups.clone()),
        colluder_population_share: colluders as f64 / n.max(1) as f64,
        colluder_view_share: main.view_share,
        baseline_colluder_view_share: cyclon.as_ref().map(|c| c.view_share),
        eclipsed_nodes: main.eclipsed,
        baseline_eclipsed_nodes: cyclon.as_ref().map(|c| c.eclipsed),
        view_share_by_round: every_tenth(&main.share_by_round),
        baseline_view_share_by_round: cyclon
            .as_ref()
            .map_or(Vec::new(), |c| every_tenth(&c.share_by_round)),
        blip_similarity_error: main.blip_error,
        blip_similarity_error_unflipped: main.blip_error_unflipped,
        blip_pairs: main.blip_pairs,
        blip_observer_accuracy: main.observer,
        blip_observer_accuracy_unflipped: main.observer_unflipped,
        psi_pairs_checked: main.psi_checked,
        psi_errors: main.psi_errors,
        maintenance_msgs_per_node_s: main.maintenance,
        msgs_by_engine: main.msgs_by_engine,
        sampling: main.sampling,
        clustering: main.clustering,
        routing: main.routing,
        drops_by_reason: main.drops,
        trace_hash: main.trace_hash,
        failure,
    }
}

/// Rounds 10, 20, … (1-based) of a per-round series, and the last.
fn every_tenth(v: &[f64]) -> Vec<f64> {
    let mut out: Vec<f64> = v.iter().skip(9).step_by(10).copied().collect();
    if v.len() % 10 != 0 {
        out.extend(v.last());
    }
    out
}

/// The first round from which the series stayed within `tol` of its last value.
fn settled(v: &[f64], tol: f64) -> Option<u64> {
    let last = *v.last()?;
    let k = v
        .iter()
        .rposition(|x| (x - last).abs() > tol)
        .map_or(0, |k| k + 1);
    Some(k as u64 + 1)
}

/// The shared, read-only inputs of every node's engine factory.
struct Shared {
    keys: Vec<crate::identity::Keypair>,
    adverts: Vec<NodeAdvert>,
    identities: Vec<NodeIdentity>,
    /// Per node: its explicit view (honest graph neighbours, with trust).
    explicit: Vec<Vec<(NodeAdvert, f64)>>,
    /// Each domain's advert, in wire form (none for a domain too large to list every member
    /// as external).
    domain_adverts: Vec<Option<Arc<Vec<u8>>>>,
    /// Every colluder's descriptor.
    colluder_descriptors: Arc<Vec<NodeDescriptor>>,
    /// Every honest node's identity.
    honest: Arc<Vec<NodeIdentity>>,
    /// Per node: its lookups `(at, domain)`.
    lookups: Vec<Vec<(Duration, DomainIdentity)>>,
}

fn shared(s: &InterdomainScenario, plan: &Plan, net: &Network) -> Shared {
    let n = s.common.nodes;
    let adverts: Vec<NodeAdvert> = net.setups.iter().map(|st| st.advert.clone()).collect();
    let identities: Vec<NodeIdentity> = net.keys.iter().map(|k| k.node_identity()).collect();
    let index: BTreeMap<NodeIdentity, usize> = identities
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    let explicit = (0..n)
        .map(|i| {
            net.neighbours[i]
                .iter()
                .filter_map(|id| index.get(id))
                .filter(|&&j| !plan.colluder[j])
                .map(|&j| (adverts[j].clone(), s.explicit_trust))
                .collect()
        })
        .collect();
    // A domain of at most MAX_DOMAIN_NODES members lists them all as answering external
    // requests; a larger one has no advert here (then any member answers).
    let domain_adverts = plan
        .domain_keys
        .iter()
        .zip(&plan.members)
        .map(|(k, ms)| {
            (ms.len() <= MAX_DOMAIN_NODES).then(|| {
                Arc::new(crate::wire::encode_to_vec(&DomainAdvert::new_signed(
                    k,
                    Vec::new(),
                    crate::wire::advert::DomainAuth::None,
                    ms.iter().map(|&i| identities[i]).collect(),
                    0,
                    1,
                    crate::sim::WALL_EPOCH,
                )))
            })
        })
        .collect();
    let params = &s.sampling.blip;
    let mut flip_rng = SplitMix64::derive(s.common.seed, 0x1d_0001);
    let colluder_descriptors = (0..n)
        .filter(|&i| plan.colluder[i])
        .map(|i| {
            let mine: Vec<DomainIdentity> = plan.memberships[i]
                .iter()
                .map(|&d| plan.domains[d])
                .collect();
            let filter = blip::flip(
                &blip::encode(params, mine.iter()),
                params.epsilon,
                &mut flip_rng,
            );
            crate::interdomain::descriptor::make_descriptor(
                &net.keys[i],
                adverts[i].clone(),
                filter,
                1,
                crate::sim::WALL_EPOCH,
            )
        })
        .collect();
    let mut lookups = vec![Vec::new(); n];
    for l in &plan.lookups {
        lookups[l.node].push((l.at, plan.domains[l.domain]));
    }
    Shared {
        keys: net.keys.clone(),
        adverts,
        identities,
        explicit,
        domain_adverts,
        colluder_descriptors: Arc::new(colluder_descriptors),
        honest: Arc::new(
            plan.honest
                .iter()
                .map(|&i| net.keys[i].node_identity())
                .collect(),
        ),
        lookups,
    }
}

fn engine(name: &str, serves: Vec<Protocol>, engine: Box<dyn Engine>) -> EngineSetup {
    EngineSetup {
        name: name.into(),
        serves,
        mailbox_depth: 65_536,
        engine,
    }
}

/// Builds and runs one world.
fn run_world(
    s: &InterdomainScenario,
    plan: &Plan,
    kind: Kind,
    report: &mut dyn FnMut(&Progress),
) -> Measured {
    let started = std::time::Instant::now();
    let c = &s.common;
    let n = c.nodes;
    let net = network(c);
    let sh = Arc::new(shared(s, plan, &net));
    let probes: Arc<Mutex<Vec<Option<Probes>>>> = Arc::new(Mutex::new(vec![None; n]));
    let stats = Arc::new(Mutex::new((
        Vec::<Arc<SamplingStats>>::new(),
        Vec::<Arc<ClusteringStats>>::new(),
        Vec::<Arc<RoutingStats>>::new(),
    )));
    let log = Arc::new(Mutex::new(LookupLog::default()));
    let routes: Vec<DomainRoutes> = (0..n).map(|_| DomainRoutes::new()).collect();
    let memberships: Arc<Vec<Vec<DomainIdentity>>> = Arc::new(
        plan.memberships
            .iter()
            .map(|m| m.iter().map(|&d| plan.domains[d]).collect())
            .collect(),
    );
    let domain_of: Arc<BTreeMap<DomainIdentity, usize>> = Arc::new(plan.domain_index.clone());
    let truth: Arc<BTreeMap<DomainIdentity, BTreeSet<NodeIdentity>>> = Arc::new(
        plan.members
            .iter()
            .enumerate()
            .map(|(d, ms)| {
                (
                    plan.domains[d],
                    ms.iter().map(|&i| sh.identities[i]).collect(),
                )
            })
            .collect(),
    );
    let builtins: crate::sim::BuiltinFactory = {
        let (sh, probes, stats, log) = (
            Arc::clone(&sh),
            Arc::clone(&probes),
            Arc::clone(&stats),
            Arc::clone(&log),
        );
        let (routes, memberships, domain_of) = (
            routes.clone(),
            Arc::clone(&memberships),
            Arc::clone(&domain_of),
        );
        let colluder = plan.colluder.clone();
        let truth = Arc::clone(&truth);
        let s = s.clone();
        Box::new(move |node, incarnation, directory: &DomainDirectory| {
            let mut seeds = SplitMix64::derive(
                s.common.seed,
                0x1d_1000 ^ ((node as u64) << 20) ^ incarnation as u64,
            );
            let me = sh.identities[node];
            for d in memberships[node].iter() {
                directory.publish(*d, BTreeSet::from([me]), true);
                if let Some(a) = domain_of
                    .get(d)
                    .and_then(|&k| sh.domain_adverts[k].as_ref())
                {
                    directory.set_advert(*d, a.to_vec(), true);
                }
            }
            if colluder[node] {
                return vec![engine(
                    colluder::NAME,
                    vec![Protocol::SAMPLING],
                    Box::new(colluder::Colluder {
                        descriptors: Arc::clone(&sh.colluder_descriptors),
                        targets: Arc::clone(&sh.honest),
                        period: s.sampling.period,
                        xchg_len: s.sampling.xchg_len,
                        push: s.colluder_push,
                        max_descriptors: s.sampling.limits.max_descriptors,
                        rng: SplitMix64::new(seeds.next_u64()),
                    }),
                )];
            }
            let board = NeighbourBoard::new();
            let mut settings = s.sampling.clone();
            settings.mode = if kind == Kind::Cyclon {
                SamplerMode::Cyclon
            } else {
                SamplerMode::Taps
            };
            let sstats = Arc::new(SamplingStats::default());
            let sampler = SamplingEngine::new(
                sh.keys[node].clone(),
                sh.adverts[node].clone(),
                settings,
                sh.explicit[node].clone(),
                directory.clone(),
                board.clone(),
                Arc::clone(&sstats),
                seeds.next_u64(),
            );
            let mut p = Probes {
                sampling: sampler.probe(),
                clustering: None,
                board: board.clone(),
            };
            let mut out = vec![engine(
                SAMPLING_ENGINE_NAME,
                vec![Protocol::SAMPLING],
                Box::new(sampler),
            )];
            stats.lock().0.push(sstats);
            if kind != Kind::Cyclon {
                let cstats = Arc::new(ClusteringStats::default());
                let cl = ClusteringEngine::new(
                    sh.keys[node].clone(),
                    s.clustering.clone(),
                    directory.clone(),
                    board.clone(),
                    Arc::clone(&cstats),
                    seeds.next_u64(),
                );
                p.clustering = Some(cl.probe());
                out.push(engine(
                    CLUSTERING_ENGINE_NAME,
                    vec![Protocol::CLUSTERING],
                    Box::new(cl),
                ));
                let mut rs = s.routing.clone();
                rs.mode = if kind == Kind::Walk {
                    RoutingMode::RandomWalk
                } else {
                    RoutingMode::Greedy
                };
                let rstats = Arc::new(RoutingStats::default());
                let r = DomainRoutingEngine::new(
                    sh.keys[node].clone(),
                    sh.adverts[node].clone(),
                    rs,
                    directory.clone(),
                    board.clone(),
                    routes[node].clone(),
                    Arc::clone(&rstats),
                    seeds.next_u64(),
                );
                out.push(engine(
                    DOMAIN_ROUTING_ENGINE_NAME,
                    vec![Protocol::DOMAIN_ROUTING],
                    Box::new(r),
                ));
                let mut st = stats.lock();
                st.1.push(cstats);
                st.2.push(rstats);
                if !sh.lookups[node].is_empty() {
                    out.push(engine(
                        LOOKUP_ENGINE_NAME,
                        Vec::new(),
                        Box::new(LookupApp {
                            node,
                            plan: sh.lookups[node].clone(),
                            next: 0,
                            log: Arc::clone(&log),
                            members: Arc::clone(&truth),
                            hop_limit: s.routing.hop_limit as u32,
                        }),
                    ));
                }
            }
            probes.lock()[node] = Some(p);
            out
        })
    };
    // Colluders can reach every honest node; honest nodes learn adverts from descriptors.
    let all: Arc<BTreeMap<NodeIdentity, NodeAdvert>> = Arc::new(
        sh.identities
            .iter()
            .zip(&sh.adverts)
            .map(|(i, a)| (*i, a.clone()))
            .collect(),
    );
    let extras = WorldExtras {
        builtins,
        known: (0..n)
            .map(|i| {
                if plan.colluder[i] {
                    Arc::clone(&all)
                } else {
                    Arc::default()
                }
            })
            .collect(),
        watch_topic: None,
        routes: routes.clone(),
        relay: Vec::new(),
    };
    let apps: crate::sim::AppFactory = Box::new(|_, _| Vec::new());
    let mut setups = net.setups;
    for st in &mut setups {
        st.pubsub = false;
    }
    let mut world = World::with_extras(c.seed, setups, apps, c.faults, extras);
    let probes = probes.lock().clone();
    let index: BTreeMap<NodeIdentity, usize> = sh
        .identities
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    let period = s.sampling.period;
    let lookups_at = period * s.rounds as u32;
    let end = match kind {
        Kind::Cyclon => lookups_at,
        _ => lookups_at + s.lookup_window + s.routing.timeout + Duration::from_secs(2),
    };
    let view_len = s.sampling.view_len;
    let mut reporter = Reporter {
        report,
        next: Duration::ZERO,
        started,
    };
    let mut share_by_round = Vec::new();
    let mut measured = Measured::default();
    let mut now = Duration::ZERO;
    let mut result = Ok(());
    let honest_views = |probes: &[Option<Probes>]| -> Vec<Vec<usize>> {
        plan.honest
            .iter()
            .filter_map(|&i| probes[i].as_ref())
            .map(|p| {
                p.sampling
                    .view()
                    .iter()
                    .filter_map(|e| index.get(&e.node).copied())
                    .collect()
            })
            .collect()
    };
    while now < end {
        now = (now + period).min(end);
        let log2 = Arc::clone(&log);
        let r = world.run_until(now, &mut |_, _, _| {}, &mut |w| {
            for &i in &w.touched {
                let Some(p) = &probes[i] else { continue };
                let view = p.sampling.view();
                if view.len() > view_len {
                    return Err(format!(
                        "node {i}: view of {} (limit {view_len})",
                        view.len()
                    ));
                }
                if view.iter().any(|e| e.node == sh.identities[i]) {
                    return Err(format!("node {i} has itself in its view"));
                }
            }
            if let Some(v) = log2.lock().violation.clone() {
                return Err(v);
            }
            reporter.tick(w, 0);
            Ok(())
        });
        if let Err(e) = r {
            result = Err(e);
            break;
        }
        if now <= lookups_at {
            let (share, eclipsed) = metrics::view_share(&honest_views(&probes), &plan.colluder);
            share_by_round.push(share);
            measured.view_share = share;
            measured.eclipsed = eclipsed;
        }
    }
    measured.settled_round = settled(&share_by_round, 0.02);
    measured.share_by_round = share_by_round;
    if kind != Kind::Cyclon {
        measured.lookups = Some(figures::lookup_results(&log.lock(), plan, n));
    }
    if kind == Kind::Main {
        figures::blip_figures(s, plan, &probes, &memberships, &mut measured);
        figures::psi_figures(plan, &probes, &index, &memberships, &mut measured);
    }
    let mut msgs = BTreeMap::new();
    for node in world.nodes.iter().flatten() {
        for (k, v) in node.sent_by_engine() {
            *msgs.entry(k).or_default() += v;
        }
    }
    let honest_n = plan.honest.len().max(1) as f64;
    let maint: u64 = plan
        .honest
        .iter()
        .filter_map(|&i| world.nodes[i].as_ref())
        .map(|nd| nd.sent_by(SAMPLING_ENGINE_NAME) + nd.sent_by(CLUSTERING_ENGINE_NAME))
        .sum();
    measured.maintenance = maint as f64 / honest_n / world.elapsed().as_secs_f64().max(1e-9);
    measured.msgs_by_engine = msgs;
    let st = stats.lock();
    measured.sampling = sum_counters(st.0.iter().map(|s| s.nonzero()));
    measured.clustering = sum_counters(st.1.iter().map(|s| s.nonzero()));
    measured.routing = sum_counters(st.2.iter().map(|s| s.nonzero()));
    measured.drops = drops(&world);
    measured.trace_hash = world.trace_hash();
    measured.steps = world.steps;
    measured.sim_s = world.elapsed().as_secs_f64();
    measured.wall_s = started.elapsed().as_secs_f64();
    measured.failure = result.err().map(|e| format!("{} world: {e}", kind.name()));
    measured
}

fn sum_counters(all: impl Iterator<Item = Vec<(&'static str, u64)>>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for list in all {
        for (k, v) in list {
            *out.entry(k.to_string()).or_default() += v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tenth_keeps_the_last() {
        let v: Vec<f64> = (1..=25).map(|x| x as f64).collect();
        assert_eq!(every_tenth(&v), vec![10.0, 20.0, 25.0]);
        assert_eq!(settled(&[0.5, 0.3, 0.21, 0.2, 0.2], 0.02), Some(3));
        assert_eq!(settled(&[], 0.02), None);
    }
}
