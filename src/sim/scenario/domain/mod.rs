//! The domain workload: a network of `nodes` nodes, `members` of which form one domain from the
//! start (the genesis membership given to every member, the first `introducers` of them named
//! by the advert), `joins` others asking to join at once, and a domain-scoped topic.
//!
//! Every participant (member or joiner) runs the Domain and Topology engines besides PubSub,
//! and can learn every participant's node advert when it first sends to it or connects to it
//! (so its Transport can dial the members its Topology engine picks; the simulator does not
//! model how a real node looks them up). The
//! phases, in simulated time:
//!
//! 1. **formation** (`warmup`): the Topology engines build the overlay; every genesis member
//!    but the publisher subscribes to the topic, scoped to the domain, and so do
//!    `outsiders` non-members (half with scope `Domain`, half with `Any`);
//! 2. **topic**: one member publishes `events` events, one every 100 ms, then 2 s to settle;
//! 3. **joins** (and the partition): with `partition`, the participants are split in two
//!    halves (each half of the members, of the joiners and of the other nodes on one side) for
//!    that long, and the joins go out 1 s into it; the run then waits until every live member
//!    holds the same membership with every accepted joiner in it (`converged`), or
//!    `join_timeout` after the joins (and the heal);
//! 4. **crash**: 1 s after that, a fraction `crash` of the members crash at once and stay down;
//! 5. **observation** (`drain`): the run goes on; the largest connected component of the
//!    overlay is sampled every simulated second.
//!
//! Invariants, checked after every event on the nodes that ran in it (a broken one fails the
//! run): every active and passive view within its limit; no node that is neither a genesis
//! member nor a joiner in any active view, and no such node believing itself a member; no
//! event of the scoped topic delivered to a non-member; no event delivered twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::*;
use crate::domain::{
    DomainAdvert, DomainAuth, DomainEngine, DomainLimits, DomainProbe, DomainSettings, DomainStats,
    Introducer, DOMAIN_ENGINE_NAME,
};
use crate::identity::NodeIdentity;
use crate::topology::TOPOLOGY_ENGINE_NAME;
use crate::topology::{TopologyEngine, TopologyLimits, TopologyProbe, TopologyStats};

/// A domain run.
#[derive(Clone, Debug)]
pub struct DomainScenario {
    /// What every scenario shares. `nodes` is raised to `members + joins` if smaller; `crash`
    /// is the fraction of the members that crash at once (and stay down) after the joins;
    /// `partition` splits the participants in two halves during the joins; `drain` is how
    /// long the run goes on after the last of that.
    pub common: Common,
    /// Members of the domain from the start.
    pub members: usize,
    /// Non-members that ask to join at once.
    pub joins: usize,
    /// Genesis members the advert names as introducers (joins go to them).
    pub introducers: usize,
    /// Events one member publishes on the domain-scoped topic.
    pub events: u64,
    /// Non-members (neither members nor joiners) that subscribe to the scoped topic.
    pub outsiders: usize,
    /// Formation time before the topic's events.
    pub warmup: Duration,
    /// How long after the joins (and the heal) the run waits for convergence.
    pub join_timeout: Duration,
    /// The Topology engines' limits.
    pub topology: TopologyLimits,
    /// The Domain engines' limits.
    pub domain: DomainLimits,
}

impl Default for DomainScenario {
    fn default() -> Self {
        DomainScenario {
            common: Common {
                drain: Duration::from_secs(15),
                ..Common::default()
            },
            members: 12,
            joins: 0,
            introducers: 4,
            events: 10,
            outsiders: 4,
            warmup: Duration::from_secs(5),
            join_timeout: Duration::from_secs(60),
            topology: TopologyLimits::default(),
            domain: DomainLimits::default(),
        }
    }
}

mod apps;
mod observe;
mod summary;

pub use summary::DomainSummary;

use apps::{DomainLog, Joiner, TopicPublisher, TopicSubscriber};
use observe::{component_share, domain_counter, engine_counters, maintenance, Agreement};

/// The probes of one node's domain engines.
#[derive(Clone)]
struct Probes {
    pub(super) domain: DomainProbe,
    pub(super) topology: TopologyProbe,
}

/// The roles of the nodes: a seeded permutation, members first, then joiners, then the rest.
struct Roles {
    genesis: Vec<usize>,
    joiners: Vec<usize>,
    others: Vec<usize>,
    /// Genesis members or joiners.
    participant: Vec<bool>,
}

fn roles(nodes: usize, members: usize, joins: usize, rng: &mut SplitMix64) -> Roles {
    let mut order: Vec<usize> = (0..nodes).collect();
    for i in (1..nodes).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let genesis = order[..members].to_vec();
    let joiners = order[members..members + joins].to_vec();
    let others = order[members + joins..].to_vec();
    let mut participant = vec![false; nodes];
    for &i in genesis.iter().chain(&joiners) {
        participant[i] = true;
    }
    Roles {
        genesis,
        joiners,
        others,
        participant,
    }
}

/// Runs a domain scenario.
pub fn run_domain(s: &DomainScenario) -> DomainSummary {
    run_domain_with(s, &mut |_| {})
}

/// The phase times of a run, fixed before it starts.
struct Timeline {
    publish_at: Duration,
    joins_at: Duration,
    partition_at: Option<Duration>,
    heal_at: Option<Duration>,
    /// The latest time the run waits for convergence before the crash.
    converge_by: Duration,
}

fn timeline(s: &DomainScenario) -> Timeline {
    let publish_at = s.warmup;
    let phase3 = publish_at + Duration::from_millis(100) * s.events as u32 + Duration::from_secs(2);
    let partition = s.common.partition;
    let (partition_at, heal_at, joins_at) = if partition.is_zero() {
        (None, None, phase3)
    } else {
        let into = Duration::from_secs(1).min(partition / 2);
        (Some(phase3), Some(phase3 + partition), phase3 + into)
    };
    let converge_by = heal_at.unwrap_or(joins_at) + s.join_timeout;
    Timeline {
        publish_at,
        joins_at,
        partition_at,
        heal_at,
        converge_by,
    }
}

/// Runs a domain scenario, reporting progress every simulated second.
pub fn run_domain_with(s: &DomainScenario, report: &mut dyn FnMut(&Progress)) -> DomainSummary {
    let started = std::time::Instant::now();
    let mut c = s.common.clone();
    c.nodes = c.nodes.max(s.members + s.joins);
    let _crypto = c.crypto.enable();
    let Network {
        mut rng, setups, ..
    } = network(&c);
    let n = c.nodes;
    let roles = roles(n, s.members, s.joins, &mut rng);
    let index: BTreeMap<NodeIdentity, usize> = setups
        .iter()
        .enumerate()
        .map(|(i, st)| (st.key.node_identity(), i))
        .collect();
    let domain_key = Keypair::from_rng(&mut rng);
    let domain = domain_key.domain_identity();
    let introducers: Vec<usize> = roles
        .genesis
        .iter()
        .copied()
        .take(s.introducers.clamp(1, s.members.max(1)))
        .collect();
    let advert = DomainAdvert::new_signed(
        &domain_key,
        introducers
            .iter()
            .map(|&i| Introducer {
                node: setups[i].key.node_identity(),
                addrs: vec![crate::wire::TransportAddress::quic(node_addr(i))],
            })
            .collect(),
        DomainAuth::None,
        Vec::new(),
        0,
        1,
        crate::sim::WALL_EPOCH,
    );
    let genesis_ops = Arc::new(DomainEngine::genesis_ops(
        &introducers
            .iter()
            .map(|&i| setups[i].key.clone())
            .collect::<Vec<_>>(),
        domain,
        &roles
            .genesis
            .iter()
            .map(|&i| setups[i].key.node_identity())
            .collect::<Vec<_>>(),
    ));
    // The scoped topic, published by the first genesis member.
    let topic = Keypair::from_rng(&mut rng);
    let topic_id = topic.topic_identity();
    let publisher = roles.genesis.first().copied();
    let topic_advert = TopicAdvert {
        topic: topic.topic_identity(),
        publishers: publisher
            .map(|p| {
                setups[p]
                    .key
                    .derive_engine(PUBSUB_ENGINE_NAME)
                    .engine_identity()
            })
            .into_iter()
            .collect(),
        tags: vec!["sim-domain".into()],
        version: 1,
        created: crate::sim::WALL_EPOCH,
        scope: Some(domain),
        sig: Signature([0; 64]),
    }
    .sign(&topic);
    let outsiders: Vec<usize> = roles.others.iter().copied().take(s.outsiders).collect();
    let t = timeline(s);

    // The engines.
    let log = Arc::new(Mutex::new(DomainLog::default()));
    let probes: Arc<Mutex<Vec<Option<Probes>>>> = Arc::new(Mutex::new(vec![None; n]));
    let genesis_set: BTreeSet<usize> = roles.genesis.iter().copied().collect();
    let builtins: crate::sim::BuiltinFactory = {
        let (probes, participant) = (Arc::clone(&probes), roles.participant.clone());
        let (keys, advert, genesis_set, genesis_ops) = (
            setups.iter().map(|s| s.key.clone()).collect::<Vec<_>>(),
            advert.clone(),
            genesis_set.clone(),
            Arc::clone(&genesis_ops),
        );
        let (seed, tl, dl) = (c.seed, s.topology.clone(), s.domain);
        Box::new(move |node, incarnation, directory| {
            if !participant[node] {
                return Vec::new();
            }
            let mut seeds =
                SplitMix64::derive(seed, 0xd0_0000 ^ ((node as u64) << 20) ^ incarnation as u64);
            let mut d = DomainEngine::new(
                keys[node].clone(),
                vec![DomainSettings {
                    advert: advert.clone(),
                    psk: None,
                    join_at_start: false,
                }],
                directory.clone(),
                dl,
                Arc::new(DomainStats::default()),
                seeds.next_u64(),
            );
            if genesis_set.contains(&node) {
                d.seed_ops(&domain, &genesis_ops);
            }
            let topo = TopologyEngine::new(
                tl.clone(),
                Arc::new(TopologyStats::default()),
                seeds.next_u64(),
            );
            probes.lock()[node] = Some(Probes {
                domain: d.probe(),
                topology: topo.probe(),
            });
            vec![
                EngineSetup {
                    name: DOMAIN_ENGINE_NAME.into(),
                    serves: vec![Protocol::DOMAIN],
                    mailbox_depth: 65_536,
                    engine: Box::new(d),
                },
                EngineSetup {
                    name: TOPOLOGY_ENGINE_NAME.into(),
                    serves: vec![Protocol::TOPOLOGY],
                    mailbox_depth: 65_536,
                    engine: Box::new(topo),
                },
            ]
        })
    };
    let apps: crate::sim::AppFactory = {
        let log = Arc::clone(&log);
        let joiners: BTreeSet<usize> = roles.joiners.iter().copied().collect();
        let outsiders: BTreeMap<usize, usize> =
            outsiders.iter().enumerate().map(|(k, &i)| (i, k)).collect();
        let genesis_set = genesis_set.clone();
        let (events, joins_at, publish_at) = (s.events, t.joins_at, t.publish_at);
        Box::new(move |node, _incarnation| {
            let engine: Box<dyn Engine> = if Some(node) == publisher {
                Box::new(TopicPublisher {
                    topic: topic.clone(),
                    advert: topic_advert.clone(),
                    domain,
                    events,
                    start: publish_at,
                    next: 0,
                    log: Arc::clone(&log),
                })
            } else if genesis_set.contains(&node) {
                Box::new(TopicSubscriber {
                    topic: topic.topic_identity(),
                    scope: RoutingScope::Domain(domain),
                    node,
                    member: true,
                    log: Arc::clone(&log),
                })
            } else if joiners.contains(&node) {
                Box::new(Joiner {
                    node,
                    domain,
                    at: joins_at,
                    log: Arc::clone(&log),
                })
            } else if let Some(&k) = outsiders.get(&node) {
                Box::new(TopicSubscriber {
                    topic: topic.topic_identity(),
                    scope: if k % 2 == 0 {
                        RoutingScope::Domain(domain)
                    } else {
                        RoutingScope::Any
                    },
                    node,
                    member: false,
                    log: Arc::clone(&log),
                })
            } else {
                return Vec::new();
            };
            vec![EngineSetup {
                name: "app".into(),
                serves: Vec::new(),
                mailbox_depth: 65_536,
                engine,
            }]
        })
    };
    // Every participant knows every participant's advert.
    let known: Arc<BTreeMap<NodeIdentity, NodeAdvert>> = Arc::new(
        (0..n)
            .filter(|&i| roles.participant[i])
            .map(|i| (setups[i].key.node_identity(), setups[i].advert.clone()))
            .collect(),
    );
    let extras = crate::sim::WorldExtras {
        builtins,
        known: (0..n)
            .map(|i| {
                if roles.participant[i] {
                    Arc::clone(&known)
                } else {
                    Arc::default()
                }
            })
            .collect(),
        watch_topic: Some(topic_id),
        routes: Vec::new(),
        relay: Vec::new(),
    };
    let mut world = World::with_extras(c.seed, setups, apps, c.faults, extras);
    if let (Some(at), Some(heal)) = (t.partition_at, t.heal_at) {
        let half = |v: &[usize]| v[..v.len() / 2].to_vec();
        let side: BTreeSet<usize> = half(&roles.genesis)
            .into_iter()
            .chain(half(&roles.joiners))
            .chain(half(&roles.others))
            .collect();
        world.partition_at(at, side, heal - at);
    }

    // The run, in steps of 100 ms of simulated time.
    let probes = probes.lock().clone();
    let limits = s.topology.clone();
    let mut agreement = Agreement {
        digest: vec![None; n],
        count: BTreeMap::new(),
        size: vec![0; n],
    };
    let joins_total = roles.joiners.len();
    let participant = roles.participant.clone();
    let mut reporter = Reporter {
        report,
        next: Duration::ZERO,
        started,
    };
    let tick = Duration::from_millis(100);
    let mut now = Duration::ZERO;
    let mut end = t.converge_by + c.drain;
    let mut converged_at: Option<Duration> = None;
    let mut converged_after_heal: Option<Duration> = None;
    let mut crash_at: Option<Duration> = None;
    let mut crashed: Vec<usize> = Vec::new();
    let mut share_after_crash = Vec::new();
    let mut share_after_heal = Vec::new();
    let mut share_in_partition: Option<f64> = None;
    let mut next_sample = Duration::from_secs(1);
    let mut node_seconds = 0.0;
    let mut window: std::collections::VecDeque<(Duration, u64, f64)> = Default::default();
    let mut digests_at_joins: Option<u64> = None;
    let mut anti_entropy_rounds = None;
    let mut result = Ok(());
    while now < end {
        now += tick;
        let log2 = Arc::clone(&log);
        let r = world.run_until(now, &mut |_, _, _| {}, &mut |w| {
            for &i in &w.touched {
                let up = w.is_up(i);
                let Some(p) = &probes[i] else {
                    if up
                        && w.nodes[i]
                            .as_ref()
                            .is_some_and(|nd| nd.directory.member_here(&domain))
                    {
                        return Err(format!(
                            "node {i}, not a participant, believes it is a member"
                        ));
                    }
                    continue;
                };
                let entry = if up { p.domain.domain(&domain) } else { None };
                agreement.set(
                    i,
                    entry
                        .as_ref()
                        .filter(|e| e.member_here)
                        .map(|e| e.member_digest),
                );
                if let Some(e) = &entry {
                    agreement.size[i] = e.members;
                }
                if !up {
                    continue;
                }
                if let Some(v) = p.topology.view(&domain) {
                    if v.active.len() > limits.active_view || v.passive_len > limits.passive_view {
                        return Err(format!(
                            "node {i}: active view {} (limit {}), passive view {} (limit {})",
                            v.active.len(),
                            limits.active_view,
                            v.passive_len,
                            limits.passive_view
                        ));
                    }
                    if let Some(bad) = v
                        .active
                        .iter()
                        .find(|m| index.get(*m).is_none_or(|&j| !participant[j]))
                    {
                        return Err(format!(
                            "node {i} has non-member {} in its active view",
                            bad.short()
                        ));
                    }
                }
            }
            let log = log2.lock();
            let converged = log.joins.len() == joins_total
                && agreement.count.len() == 1
                && log.joins.iter().all(|(j, r)| match r {
                    Some(Ok(_)) => !w.is_up(*j) || agreement.digest[*j].is_some(),
                    Some(Err(_)) => true,
                    None => false,
                });
            let since = t.joins_at;
            if converged && w.elapsed() >= since && !w.partitioned() {
                if converged_at.is_none() {
                    converged_at = Some(w.elapsed());
                }
                if t.heal_at.is_some_and(|h| w.elapsed() >= h) && converged_after_heal.is_none() {
                    converged_after_heal = Some(w.elapsed());
                }
            }
            reporter.tick(w, agreement.live_members() as u64);
            log.v.first.clone().map_or(Ok(()), Err)
        });
        if let Err(e) = r {
            result = Err(e);
            break;
        }
        // Node-seconds of live participants, and maintenance traffic, for the rates.
        let live = (0..n).filter(|&i| participant[i] && world.is_up(i)).count();
        node_seconds += live as f64 * tick.as_secs_f64();
        let sent = maintenance(&world).values().sum::<u64>();
        window.push_back((now, sent, node_seconds));
        while window
            .front()
            .is_some_and(|(t0, _, _)| now - *t0 > Duration::from_secs(10))
        {
            window.pop_front();
        }
        if digests_at_joins.is_none() && now >= t.joins_at {
            digests_at_joins = Some(domain_counter(&probes, "sent_digest"));
        }
        if anti_entropy_rounds.is_none() {
            if let (Some(_), Some(d0)) = (converged_at, digests_at_joins) {
                let d = domain_counter(&probes, "sent_digest");
                anti_entropy_rounds =
                    Some((d - d0) as f64 / agreement.live_members().max(1) as f64);
            }
        }
        // The crash, 1 s after convergence (or once the wait is over).
        let settled = match t.heal_at {
            Some(_) => converged_after_heal,
            None => converged_at,
        };
        if crash_at.is_none()
            && c.crash > 0.0
            && (settled.is_some_and(|at| now >= at.max(t.joins_at) + Duration::from_secs(1))
                || now >= t.converge_by)
        {
            let mut live: Vec<usize> = (0..n).filter(|&i| agreement.digest[i].is_some()).collect();
            for i in (1..live.len()).rev() {
                let j = world.rng().below(i as u64 + 1) as usize;
                live.swap(i, j);
            }
            let k = ((live.len() as f64) * c.crash).round() as usize;
            crashed = live[..k].to_vec();
            crashed.sort_unstable();
            for &i in &crashed {
                world.crash_for_good_at(now, i);
            }
            crash_at = Some(now);
            end = now + c.drain.max(Duration::from_secs(10));
            next_sample = now;
        } else if crash_at.is_none() && c.crash == 0.0 {
            let done = match t.heal_at {
                Some(_) => converged_after_heal,
                None if joins_total > 0 => converged_at,
                None => Some(t.joins_at),
            };
            if let Some(at) = done {
                end = end.min(at.max(now) + c.drain);
            }
        }
        if now >= next_sample {
            next_sample = now + Duration::from_secs(1);
            let (share, _) = component_share(&world, &probes, &agreement, &domain, &index);
            if crash_at.is_some_and(|at| now > at) {
                share_after_crash.push(share);
            } else if world.partitioned() {
                share_in_partition = Some(share_in_partition.map_or(share, |s: f64| s.min(share)));
            } else if t.heal_at.is_some_and(|h| now >= h) && crash_at.is_none() {
                share_after_heal.push(share);
            }
        }
    }
    // Crashed nodes stay down: their last state is counted below.
    let (share, components) = component_share(&world, &probes, &agreement, &domain, &index);
    let log = log.lock();
    let mut joins_refused = BTreeMap::new();
    let mut joins_accepted = 0;
    let mut joins_unanswered = joins_total - log.joins.len();
    for r in log.joins.values() {
        match r {
            Some(Ok(_)) => joins_accepted += 1,
            Some(Err(why)) => *joins_refused.entry(why.label().to_string()).or_default() += 1,
            None => joins_unanswered += 1,
        }
    }
    let converged_end = result.is_ok()
        && joins_unanswered == 0
        && agreement.count.len() == 1
        && log.joins.iter().all(|(j, r)| {
            !matches!(r, Some(Ok(_))) || !world.is_up(*j) || agreement.digest[*j].is_some()
        });
    let members = (0..n)
        .filter(|&i| agreement.digest[i].is_some())
        .map(|i| agreement.size[i])
        .max()
        .unwrap_or(0);
    let since = t.joins_at;
    let subscribers: Vec<usize> = roles
        .genesis
        .iter()
        .copied()
        .filter(|i| Some(*i) != publisher && !crashed.contains(i))
        .collect();
    let member_deliveries_expected = log.published * subscribers.len() as u64;
    let member_deliveries = log
        .member_deliveries
        .iter()
        .filter(|(i, _)| subscribers.contains(i))
        .count() as u64;
    let (mut by_members, mut by_others) = (0, 0);
    for (i, &member) in participant.iter().enumerate() {
        let sends = world.nodes[i].as_ref().map_or(0, |nd| nd.topic_sends)
            + world.retired_topic_sends.get(&i).copied().unwrap_or(0);
        if member {
            by_members += sends;
        } else {
            by_others += sends;
        }
    }
    let rate_end = match (window.front(), window.back()) {
        (Some(a), Some(b)) if b.2 > a.2 => (b.1 - a.1) as f64 / (b.2 - a.2),
        _ => 0.0,
    };
    let maintenance_msgs = maintenance(&world);
    // Samples are taken 1 s, 2 s, … after the crash: the first from which every one is ≥ 0.99.
    let recovered_99_s =
        crash_at.and_then(
            |_| match share_after_crash.iter().rposition(|&x| x < 0.99) {
                None if !share_after_crash.is_empty() => Some(1.0),
                Some(k) if k + 1 < share_after_crash.len() => Some((k + 2) as f64),
                _ => None,
            },
        );
    DomainSummary {
        nodes: n,
        seed: c.seed,
        crypto: c.crypto.name().into(),
        sim_s: world.elapsed().as_secs_f64(),
        wall_s: started.elapsed().as_secs_f64(),
        steps: world.steps,
        genesis_members: roles.genesis.len(),
        members,
        live_members: agreement.live_members(),
        joins: joins_total,
        joins_accepted,
        joins_refused,
        joins_unanswered,
        converged: converged_end,
        converged_s: converged_at.map(|at| (at - since).as_secs_f64()),
        converged_after_heal_s: converged_after_heal
            .zip(t.heal_at)
            .map(|(a, h)| (a - h).as_secs_f64()),
        anti_entropy_rounds,
        largest_component_share: share,
        components,
        share_after_crash,
        share_after_heal,
        share_in_partition,
        recovered_99_s,
        crashed: crashed.len(),
        maintenance_msgs_per_node_s: maintenance_msgs.values().sum::<u64>() as f64
            / node_seconds.max(1e-9),
        maintenance_msgs_per_node_s_end: rate_end,
        maintenance_msgs,
        events_published: log.published,
        member_deliveries_expected,
        member_deliveries,
        member_subscriptions_late: subscribers
            .iter()
            .filter(|i| {
                log.subscribed_at
                    .get(i)
                    .zip(log.first_published)
                    .is_none_or(|(at, first)| *at > first)
            })
            .count() as u64,
        scoped_deliveries_to_non_members: log.outsider_deliveries,
        topic_msgs_by_non_members: by_others,
        topic_msgs_by_members: by_members,
        outsider_subscriptions: log.outsider_refusals.clone(),
        duplicates: log.v.duplicates,
        drops_by_reason: drops(&world),
        domain: engine_counters(&probes, |p| p.domain.stats().nonzero()),
        topology: engine_counters(&probes, |p| p.topology.stats().nonzero()),
        pubsub: pubsub_counters(&world),
        replica_groups: agreement.groups(),
        partitions: world.partitions,
        trace_hash: world.trace_hash(),
        failure: result.err(),
    }
}
