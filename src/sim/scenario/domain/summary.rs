//! The summary of a domain run and its JSON line.

use std::collections::BTreeMap;

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
    /// Simulated seconds from the joins (without joins: the start of phase 3) until that first
    /// held.
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
    /// Of the subscribing members that never crashed, those whose subscription was confirmed
    /// only after the first event was published (or never): PubSub does not replay a topic's
    /// history, so they may miss the first events.
    pub member_subscriptions_late: u64,
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
    /// The live members' replicas at the end, grouped by member set: `(members in the set,
    /// nodes holding it)`, largest group first (one group when converged).
    pub replica_groups: Vec<(usize, usize)>,
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
            ",\"events_published\":{},\"member_deliveries_expected\":{},\"member_deliveries\":{},\"member_subscriptions_late\":{},\"scoped_deliveries_to_non_members\":{},\"topic_msgs_by_non_members\":{},\"topic_msgs_by_members\":{},\"outsider_subscriptions\":{},\"duplicates\":{}",
            self.events_published,
            self.member_deliveries_expected,
            self.member_deliveries,
            self.member_subscriptions_late,
            self.scoped_deliveries_to_non_members,
            self.topic_msgs_by_non_members,
            self.topic_msgs_by_members,
            json_map(&self.outsider_subscriptions),
            self.duplicates
        );
        s += &format!(
            ",\"replica_groups\":[{}],\"drops_by_reason\":{},\"domain\":{},\"topology\":{},\"pubsub\":{},\"partitions\":{},\"trace_hash\":\"{}\"",
            self.replica_groups
                .iter()
                .map(|(m, k)| format!("[{m},{k}]"))
                .collect::<Vec<_>>()
                .join(","),
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
