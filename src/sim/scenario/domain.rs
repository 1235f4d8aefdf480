//! The domain workload: a network of `nodes` nodes, `members` of which form one domain from the
//! start (the genesis membership given to every member, the first `introducers` of them named
//! by the advert), `joins` others asking to join at once, and a domain-scoped topic.
//!
//! Every participant (member or joiner) runs the Domain and Topology engines besides PubSub,
//! and knows every participant's node advert (so its Transport can dial the members its
//! Topology engine picks; the simulator does not model how a real node learns them). The
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
use crate::identity::{DomainIdentity, NodeIdentity, TopicIdentity};
use crate::mail::domain::{DomainMail, JoinRefusal};
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

/// The outcome of a domain run: every figure its summary line prints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DomainSummary {
    /// Nodes in the network.
    pub nodes: usize,
    /// The seed.
    pub seed: u64,
    /// The signature scheme that ran.
    pub crypto: String,
    /// Simulated seconds.
    pub sim_s: f64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Events handled.
    pub steps: u64,
    /// Genesis members.
    pub genesis_members: usize,
    /// Members at the end, as the live members' replicas hold them (the most common set's
    /// size), crashed members included (nobody expels them).
    pub members: usize,
    /// Members up at the end.
    pub live_members: usize,
    /// Joins asked, accepted, refused (by reason) and not answered by the end.
    pub joins: usize,
    /// See `joins`.
    pub joins_accepted: usize,
    /// See `joins`.
    pub joins_refused: BTreeMap<String, u64>,
    /// See `joins`.
    pub joins_unanswered: usize,
    /// Whether every live member holds the same membership at the end, with every accepted
    /// joiner in it.
    pub converged: bool,
    /// Simulated seconds from the joins (or, without joins, the start) until that first held.
    pub converged_s: Option<f64>,
    /// With a partition: simulated seconds from the heal until the members agreed again.
    pub converged_after_heal_s: Option<f64>,
    /// Digests (anti-entropy rounds) the live members sent from the joins until convergence,
    /// per live member.
    pub anti_entropy_rounds: Option<f64>,
    /// The largest connected component of the active-view overlay among live members, as a
    /// share of them, at the end.
    pub largest_component_share: f64,
    /// Components of that overlay at the end.
    pub components: usize,
    /// The share every simulated second from the crash (the first value at the crash).
    pub share_after_crash: Vec<f64>,
    /// The share every simulated second from the heal.
    pub share_after_heal: Vec<f64>,
    /// The lowest share sampled during the partition (the overlay of two halves).
    pub share_in_partition: Option<f64>,
    /// Seconds from the crash until the share was at least 0.99 and stayed so.
    pub recovered_99_s: Option<f64>,
    /// Members crashed.
    pub crashed: usize,
    /// Domain and Topology messages sent (leaving their node), per live participant per
    /// simulated second, over the whole run.
    pub maintenance_msgs_per_node_s: f64,
    /// The same over the last 10 simulated seconds (the steady state, or after the crash).
    pub maintenance_msgs_per_node_s_end: f64,
    /// Domain and Topology messages sent, by engine.
    pub maintenance_msgs: BTreeMap<String, u64>,
    /// Scoped-topic events published.
    pub events_published: u64,
    /// Deliveries the subscribing members that never crashed should get.
    pub member_deliveries_expected: u64,
    /// Distinct deliveries to them.
    pub member_deliveries: u64,
    /// Deliveries of the scoped topic at non-members: must be 0.
    pub scoped_deliveries_to_non_members: u64,
    /// PubSub messages about the scoped topic that left non-member nodes (goal 0).
    pub topic_msgs_by_non_members: u64,
    /// PubSub messages about the scoped topic that left member nodes.
    pub topic_msgs_by_members: u64,
    /// Subscriptions of non-members refused, by reason.
    pub outsider_subscriptions: BTreeMap<String, u64>,
    /// Events delivered twice to one node.
    pub duplicates: u64,
    /// Every drop of every node, by reason.
    pub drops_by_reason: BTreeMap<String, u64>,
    /// The Domain engines' counters, summed over the nodes (crashed ones at their crash).
    pub domain: BTreeMap<String, u64>,
    /// The Topology engines' counters, summed.
    pub topology: BTreeMap<String, u64>,
    /// The PubSub engines' counters, summed.
    pub pubsub: BTreeMap<String, u64>,
    /// Partitions.
    pub partitions: u64,
    /// Hash of the whole event trace.
    pub trace_hash: String,
    /// The first invariant broken, if any (the run stopped there).
    pub failure: Option<String>,
}

fn json_map(m: &BTreeMap<String, u64>) -> String {
    let v: Vec<String> = m.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", v.join(","))
}

fn json_opt(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.3}"))
}

fn json_list(v: &[f64]) -> String {
    let v: Vec<String> = v.iter().map(|x| format!("{x:.4}")).collect();
    format!("[{}]", v.join(","))
}

impl DomainSummary {
    /// The summary as one JSON object.
    pub fn to_json(&self) -> String {
        let mut s = format!(
            "{{\"scenario\":\"domain\",\"nodes\":{},\"seed\":{},\"crypto\":\"{}\",\"sim_s\":{:.3},\"wall_s\":{:.3},\"steps\":{}",
            self.nodes, self.seed, self.crypto, self.sim_s, self.wall_s, self.steps
        );
        s += &format!(
            ",\"genesis_members\":{},\"members\":{},\"live_members\":{},\"joins\":{},\"joins_accepted\":{},\"joins_refused\":{},\"joins_unanswered\":{}",
            self.genesis_members,
            self.members,
            self.live_members,
            self.joins,
            self.joins_accepted,
            json_map(&self.joins_refused),
            self.joins_unanswered
        );
        s += &format!(
            ",\"converged\":{},\"converged_s\":{},\"converged_after_heal_s\":{},\"anti_entropy_rounds\":{}",
            self.converged,
            json_opt(self.converged_s),
            json_opt(self.converged_after_heal_s),
            json_opt(self.anti_entropy_rounds)
        );
        s += &format!(
            ",\"largest_component_share\":{:.4},\"components\":{},\"crashed\":{},\"share_after_crash\":{},\"recovered_99_s\":{},\"share_in_partition\":{},\"share_after_heal\":{}",
            self.largest_component_share,
            self.components,
            self.crashed,
            json_list(&self.share_after_crash),
            json_opt(self.recovered_99_s),
            json_opt(self.share_in_partition),
            json_list(&self.share_after_heal)
        );
        s += &format!(
            ",\"maintenance_msgs_per_node_s\":{:.3},\"maintenance_msgs_per_node_s_end\":{:.3},\"maintenance_msgs\":{}",
            self.maintenance_msgs_per_node_s,
            self.maintenance_msgs_per_node_s_end,
            json_map(&self.maintenance_msgs)
        );
        s += &format!(
            ",\"events_published\":{},\"member_deliveries_expected\":{},\"member_deliveries\":{},\"scoped_deliveries_to_non_members\":{},\"topic_msgs_by_non_members\":{},\"topic_msgs_by_members\":{},\"outsider_subscriptions\":{},\"duplicates\":{}",
            self.events_published,
            self.member_deliveries_expected,
            self.member_deliveries,
            self.scoped_deliveries_to_non_members,
            self.topic_msgs_by_non_members,
            self.topic_msgs_by_members,
            json_map(&self.outsider_subscriptions),
            self.duplicates
        );
        s += &format!(
            ",\"drops_by_reason\":{},\"domain\":{},\"topology\":{},\"pubsub\":{},\"partitions\":{},\"trace_hash\":\"{}\"",
            json_map(&self.drops_by_reason),
            json_map(&self.domain),
            json_map(&self.topology),
            json_map(&self.pubsub),
            self.partitions,
            self.trace_hash
        );
        match &self.failure {
            Some(f) => s += &format!(",\"failure\":\"{}\"}}", f.replace('"', "'")),
            None => s += ",\"failure\":null}",
        }
        s
    }

    /// Whether the run is a success: no invariant broke, every live member agrees, and no
    /// scoped event reached a non-member.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
            && self.converged
            && self.scoped_deliveries_to_non_members == 0
            && self.duplicates == 0
    }
}

/// What the nodes' application engines saw, shared by all of them (one thread).
#[derive(Default)]
struct DomainLog {
    /// Per joiner node: the outcome of its join (`None` while unanswered).
    joins: BTreeMap<usize, Option<Result<u64, JoinRefusal>>>,
    /// Distinct (node, seq) deliveries of the scoped topic at members.
    member_deliveries: BTreeSet<(usize, u64)>,
    /// Deliveries at non-members.
    outsider_deliveries: u64,
    /// Refused outsider subscriptions, by reason.
    outsider_refusals: BTreeMap<String, u64>,
    published: u64,
    v: Violations,
}

/// The probes of one node's domain engines.
#[derive(Clone)]
struct Probes {
    domain: DomainProbe,
    topology: TopologyProbe,
}

/// Local mail to this node's Domain engine.
fn to_domain_engine(ctx: &mut Context, mail: &DomainMail) {
    let node = ctx.node();
    ctx.send_with(
        Destination::Node(node),
        Protocol::DOMAIN,
        mail.encode(),
        SendOptions::local_only(),
    );
}

/// A joiner: asks its Domain engine to join at `at` and records the answer.
struct Joiner {
    node: usize,
    domain: DomainIdentity,
    at: Duration,
    log: Arc<Mutex<DomainLog>>,
}

const JOIN_TIMER: u64 = 1;

impl Engine for Joiner {
    fn start(&mut self, ctx: &mut Context) {
        ctx.set_timer_after(JOIN_TIMER, self.at);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(JOIN_TIMER) => {
                self.log.lock().joins.insert(self.node, None);
                to_domain_engine(
                    ctx,
                    &DomainMail::Join {
                        domain: self.domain,
                        advert: None,
                    },
                );
            }
            Input::Message(m) if matches!(m.origin(), Origin::Local) => {
                if let Ok(DomainMail::JoinResult { domain, result, .. }) =
                    DomainMail::decode(m.body())
                {
                    if domain == self.domain {
                        log::debug!("sim: node {} join: {result:?}", self.node);
                        self.log.lock().joins.insert(self.node, Some(result));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The publisher of the scoped topic (a genesis member).
struct TopicPublisher {
    topic: Keypair,
    advert: TopicAdvert,
    domain: DomainIdentity,
    events: u64,
    start: Duration,
    next: u64,
    log: Arc<Mutex<DomainLog>>,
}

const CREATE_TIMER: u64 = 2;
const PUBLISH_TIMER: u64 = 3;
const SUBSCRIBE_TIMER: u64 = 4;

impl Engine for TopicPublisher {
    fn start(&mut self, ctx: &mut Context) {
        ctx.set_timer_after(CREATE_TIMER, Duration::from_millis(500));
        ctx.set_timer_after(PUBLISH_TIMER, self.start);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(CREATE_TIMER) => ctx.topic_request(TopicRequest::Create {
                topic: self.topic.topic_identity(),
                scope: RoutingScope::Domain(self.domain),
                advert: Some(self.advert.clone()),
            }),
            Input::Topic(TopicEvent::Created { result: Err(e), .. }) => {
                log::warn!("sim: the scoped topic was not created: {e}");
                ctx.set_timer_after(CREATE_TIMER, Duration::from_millis(500));
            }
            Input::Timer(PUBLISH_TIMER) if self.next < self.events => {
                ctx.publish(
                    self.topic.topic_identity(),
                    APP,
                    self.next.to_le_bytes().to_vec(),
                );
                self.next += 1;
                self.log.lock().published += 1;
                ctx.set_timer_after(PUBLISH_TIMER, Duration::from_millis(100));
            }
            _ => {}
        }
    }
}

/// A subscriber of the scoped topic: a member, or an outsider (which must get nothing).
struct TopicSubscriber {
    topic: TopicIdentity,
    scope: RoutingScope,
    node: usize,
    member: bool,
    log: Arc<Mutex<DomainLog>>,
}

impl Engine for TopicSubscriber {
    fn start(&mut self, ctx: &mut Context) {
        ctx.set_timer_after(SUBSCRIBE_TIMER, Duration::from_millis(1_000));
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(SUBSCRIBE_TIMER) => ctx.subscribe(self.topic, self.scope),
            Input::Topic(TopicEvent::Subscribed { result: Err(e), .. }) => {
                if self.member {
                    // The advert had not come yet: try again.
                    ctx.set_timer_after(SUBSCRIBE_TIMER, Duration::from_millis(500));
                } else {
                    *self
                        .log
                        .lock()
                        .outsider_refusals
                        .entry(format!("{e:?}"))
                        .or_default() += 1;
                }
            }
            Input::Message(m) if matches!(m.origin(), Origin::Topic { .. }) => {
                let Some(seq) = m
                    .body()
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_le_bytes)
                else {
                    return;
                };
                let mut log = self.log.lock();
                let node = self.node;
                if !self.member {
                    log.outsider_deliveries += 1;
                    log.v.broke(|| {
                        format!("non-member node {node} got event {seq} of the scoped topic")
                    });
                } else if !log.member_deliveries.insert((node, seq)) {
                    log.v.duplicate(|| format!("node {node} got event {seq}"));
                }
            }
            _ => {}
        }
    }
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

/// The convergence of the live members' replicas, kept up to date from the nodes each step
/// touched.
struct Agreement {
    /// Per node: the member digest of its replica, while it is up and a member.
    digest: Vec<Option<[u8; 32]>>,
    /// How many live members hold each digest.
    count: BTreeMap<[u8; 32], usize>,
    /// Per node: its replica's member count (for the summary).
    size: Vec<usize>,
}

impl Agreement {
    fn set(&mut self, i: usize, d: Option<[u8; 32]>) {
        if self.digest[i] == d {
            return;
        }
        if let Some(old) = self.digest[i].take() {
            if let Some(c) = self.count.get_mut(&old) {
                *c -= 1;
                if *c == 0 {
                    self.count.remove(&old);
                }
            }
        }
        if let Some(new) = d {
            *self.count.entry(new).or_default() += 1;
        }
        self.digest[i] = d;
    }

    fn live_members(&self) -> usize {
        self.count.values().sum()
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

/// The largest connected component of the active-view overlay among the live members (an
/// edge wherever one of two members has the other in its view), as a share of them, and the
/// number of components.
fn component_share(
    world: &World,
    probes: &[Option<Probes>],
    agreement: &Agreement,
    domain: &DomainIdentity,
    index: &BTreeMap<NodeIdentity, usize>,
) -> (f64, usize) {
    let live: Vec<usize> = (0..probes.len())
        .filter(|&i| world.is_up(i) && agreement.digest[i].is_some())
        .collect();
    if live.is_empty() {
        return (0.0, 0);
    }
    let mut parent: Vec<usize> = (0..probes.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for &i in &live {
        let Some(p) = &probes[i] else { continue };
        for peer in p.topology.active(domain) {
            let Some(&j) = index.get(&peer) else { continue };
            if world.is_up(j) && agreement.digest[j].is_some() {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
    for &i in &live {
        *sizes.entry(find(&mut parent, i)).or_default() += 1;
    }
    let largest = sizes.values().copied().max().unwrap_or(0);
    (largest as f64 / live.len() as f64, sizes.len())
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
            let since = if joins_total > 0 {
                t.joins_at
            } else {
                Duration::ZERO
            };
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
            && (settled.is_some_and(|at| now >= at + Duration::from_secs(1))
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
    let since = if joins_total > 0 {
        t.joins_at
    } else {
        Duration::ZERO
    };
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
    for i in 0..n {
        let sends = world.nodes[i].as_ref().map_or(0, |nd| nd.topic_sends)
            + world.retired_topic_sends.get(&i).copied().unwrap_or(0);
        if participant[i] {
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
    let recovered_99_s = crash_at.and_then(|_| {
        let last_bad = share_after_crash.iter().rposition(|&x| x < 0.99);
        match last_bad {
            None => Some(0.0),
            Some(k) if k + 1 < share_after_crash.len() => Some((k + 1) as f64),
            Some(_) => None,
        }
    });
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
        scoped_deliveries_to_non_members: log.outsider_deliveries,
        topic_msgs_by_non_members: by_others,
        topic_msgs_by_members: by_members,
        outsider_subscriptions: log.outsider_refusals.clone(),
        duplicates: log.v.duplicates,
        drops_by_reason: drops(&world),
        domain: engine_counters(&probes, |p| p.domain.stats().nonzero()),
        topology: engine_counters(&probes, |p| p.topology.stats().nonzero()),
        pubsub: pubsub_counters(&world),
        partitions: world.partitions,
        trace_hash: world.trace_hash(),
        failure: result.err(),
    }
}

/// Domain and Topology messages that left their nodes so far, by engine (crashed nodes'
/// counts kept).
fn maintenance(world: &World) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for name in [DOMAIN_ENGINE_NAME, TOPOLOGY_ENGINE_NAME] {
        let live: u64 = world
            .nodes
            .iter()
            .flatten()
            .map(|nd| nd.sent_by(name))
            .sum();
        let gone = world.retired_sent.get(name).copied().unwrap_or(0);
        out.insert(name.to_string(), live + gone);
    }
    out
}

/// A Domain engine counter summed over the nodes (a crashed node's probe keeps its last
/// values).
fn domain_counter(probes: &[Option<Probes>], name: &str) -> u64 {
    probes
        .iter()
        .flatten()
        .flat_map(|p| p.domain.stats().nonzero())
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .sum()
}

fn engine_counters(
    probes: &[Option<Probes>],
    f: impl Fn(&Probes) -> Vec<(&'static str, u64)>,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for p in probes.iter().flatten() {
        for (k, v) in f(p) {
            *out.entry(k.to_string()).or_default() += v;
        }
    }
    out
}
