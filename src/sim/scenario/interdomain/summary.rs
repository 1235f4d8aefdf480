//! The summary of an inter-domain run and its JSON line.

use std::collections::BTreeMap;

/// What one lookup world measured (the main run, or the random-walk baseline).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LookupFigures {
    /// Lookups asked.
    pub asked: usize,
    /// Answered by a member (the answer named a true member of the domain).
    pub succeeded: usize,
    /// Success over all lookups.
    pub success: f64,
    /// Success over lookups for domains with at least 1 % of the nodes as members.
    pub success_large: f64,
    /// Lookups for such domains.
    pub asked_large: usize,
    /// Per domain-size bucket (members, powers of two: `"1"`, `"2-3"`, …): `(asked, success)`.
    pub by_size: BTreeMap<String, (usize, f64)>,
    /// Hops of the successful lookups: median and 99th percentile.
    pub hops_p50: f64,
    /// See `hops_p50`.
    pub hops_p99: f64,
    /// Why the failed ones failed (the DomainRouting engine's error, or `unanswered`).
    pub failures: BTreeMap<String, u64>,
    /// Answers that carried the domain's advert.
    pub with_advert: usize,
}

/// The outcome of an inter-domain run: every figure its summary line prints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InterdomainSummary {
    /// Nodes.
    pub nodes: usize,
    /// The seed.
    pub seed: u64,
    /// The signature scheme that ran.
    pub crypto: String,
    /// Simulated seconds of the main run.
    pub sim_s: f64,
    /// Wall-clock seconds of the whole command (every world).
    pub wall_s: f64,
    /// Wall-clock seconds of each world: `main`, `walk`, `cyclon`.
    pub wall_by_world: BTreeMap<String, f64>,
    /// Events handled by the main run.
    pub steps: u64,
    /// Domains, and those with at least one member.
    pub domains: usize,
    /// See `domains`.
    pub domains_populated: usize,
    /// Members of the largest domain.
    pub largest_domain: usize,
    /// Colluding nodes.
    pub colluders: usize,
    /// Gossip rounds (sampling periods) before the views are measured and lookups start.
    pub rounds: u64,
    /// The round from which the honest views' colluder share stayed within 0.02 of its value
    /// at `rounds` (the overlay settled).
    pub settled_round: Option<u64>,
    /// The main run's lookups (TAPS + TAC, greedy).
    pub lookups: LookupFigures,
    /// The baseline's lookups (random walk with the same hop limit, same overlay engines).
    pub baseline_lookups: Option<LookupFigures>,
    /// Colluders as a share of the nodes.
    pub colluder_population_share: f64,
    /// Colluders' share of the honest nodes' dynamic views at `rounds` (TAPS + URPS).
    pub colluder_view_share: f64,
    /// The same with plain CYCLON (no URPS, no trust).
    pub baseline_colluder_view_share: Option<f64>,
    /// Honest nodes whose dynamic view is at least half colluders (TAPS).
    pub eclipsed_nodes: usize,
    /// The same with CYCLON.
    pub baseline_eclipsed_nodes: Option<usize>,
    /// The share every 10 rounds (TAPS), and with CYCLON.
    pub view_share_by_round: Vec<f64>,
    /// See `view_share_by_round`.
    pub baseline_view_share_by_round: Vec<f64>,
    /// Mean absolute error of BLIP's flip-corrected similarity of two published (flipped)
    /// filters against the exact set cosine `|A ∩ B| / √(|A| |B|)`.
    pub blip_similarity_error: f64,
    /// The same for the raw cosine of the unflipped filters (the baseline).
    pub blip_similarity_error_unflipped: f64,
    /// Pairs compared.
    pub blip_pairs: usize,
    /// Balanced accuracy of the best-threshold observer guessing membership of the largest
    /// domain from the published (flipped) filters.
    pub blip_observer_accuracy: f64,
    /// The same from the unflipped filters.
    pub blip_observer_accuracy_unflipped: f64,
    /// PSI results checked against the true intersection, and wrong ones (a wrong count, a
    /// revealed domain not in the intersection, or a shared domain missing).
    pub psi_pairs_checked: usize,
    /// See `psi_pairs_checked`.
    pub psi_errors: usize,
    /// Sampling and clustering messages sent per node per simulated second (main run).
    pub maintenance_msgs_per_node_s: f64,
    /// Messages sent in the main run, by engine.
    pub msgs_by_engine: BTreeMap<String, u64>,
    /// The engines' counters, summed over the nodes (main run).
    pub sampling: BTreeMap<String, u64>,
    /// See `sampling`.
    pub clustering: BTreeMap<String, u64>,
    /// See `sampling`.
    pub routing: BTreeMap<String, u64>,
    /// Every drop of every node, by reason (main run).
    pub drops_by_reason: BTreeMap<String, u64>,
    /// Hash of the main run's event trace.
    pub trace_hash: String,
    /// The first invariant broken, if any (the run stopped there).
    pub failure: Option<String>,
}

fn json_map(m: &BTreeMap<String, u64>) -> String {
    let v: Vec<String> = m.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", v.join(","))
}

fn json_fmap(m: &BTreeMap<String, f64>) -> String {
    let v: Vec<String> = m.iter().map(|(k, v)| format!("\"{k}\":{v:.3}")).collect();
    format!("{{{}}}", v.join(","))
}

fn json_list(v: &[f64]) -> String {
    let v: Vec<String> = v.iter().map(|x| format!("{x:.4}")).collect();
    format!("[{}]", v.join(","))
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

fn optf(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.4}"))
}

fn by_size(l: &LookupFigures) -> String {
    let v: Vec<String> = l
        .by_size
        .iter()
        .map(|(k, (_, s))| format!("\"{k}\":{s:.4}"))
        .collect();
    format!("{{{}}}", v.join(","))
}

fn asked_by_size(l: &LookupFigures) -> String {
    let v: Vec<String> = l
        .by_size
        .iter()
        .map(|(k, (n, _))| format!("\"{k}\":{n}"))
        .collect();
    format!("{{{}}}", v.join(","))
}

impl InterdomainSummary {
    /// The summary as one JSON object.
    pub fn to_json(&self) -> String {
        let l = &self.lookups;
        let b = self.baseline_lookups.as_ref();
        let mut s = format!(
            "{{\"scenario\":\"interdomain\",\"nodes\":{},\"seed\":{},\"crypto\":\"{}\",\"sim_s\":{:.3},\"wall_s\":{:.3},\"wall_by_world\":{},\"steps\":{}",
            self.nodes, self.seed, self.crypto, self.sim_s, self.wall_s, json_fmap(&self.wall_by_world), self.steps
        );
        s += &format!(
            ",\"domains\":{},\"domains_populated\":{},\"largest_domain\":{},\"colluders\":{},\"rounds\":{},\"settled_round\":{}",
            self.domains,
            self.domains_populated,
            self.largest_domain,
            self.colluders,
            self.rounds,
            opt(self.settled_round)
        );
        s += &format!(
            ",\"lookups\":{},\"lookups_large\":{},\"lookup_success\":{:.4},\"lookup_success_large\":{:.4},\"lookup_success_by_size\":{},\"lookups_by_size\":{},\"hops_p50\":{:.1},\"hops_p99\":{:.1},\"lookup_failures\":{},\"answers_with_advert\":{}",
            l.asked,
            l.asked_large,
            l.success,
            l.success_large,
            by_size(l),
            asked_by_size(l),
            l.hops_p50,
            l.hops_p99,
            json_map(&l.failures),
            l.with_advert
        );
        s += &format!(
            ",\"baseline_lookup_success\":{},\"baseline_lookup_success_large\":{},\"baseline_lookup_success_by_size\":{},\"baseline_hops_p50\":{},\"baseline_hops_p99\":{},\"baseline_lookup_failures\":{}",
            optf(b.map(|b| b.success)),
            optf(b.map(|b| b.success_large)),
            b.map_or("null".into(), by_size),
            optf(b.map(|b| b.hops_p50)),
            optf(b.map(|b| b.hops_p99)),
            b.map_or("null".into(), |b| json_map(&b.failures)),
        );
        s += &format!(
            ",\"colluder_population_share\":{:.4},\"colluder_view_share\":{:.4},\"baseline_colluder_view_share\":{},\"eclipsed_nodes\":{},\"baseline_eclipsed_nodes\":{},\"view_share_by_round\":{},\"baseline_view_share_by_round\":{}",
            self.colluder_population_share,
            self.colluder_view_share,
            optf(self.baseline_colluder_view_share),
            self.eclipsed_nodes,
            opt(self.baseline_eclipsed_nodes),
            json_list(&self.view_share_by_round),
            json_list(&self.baseline_view_share_by_round)
        );
        s += &format!(
            ",\"blip_similarity_error\":{:.4},\"blip_similarity_error_unflipped\":{:.4},\"blip_pairs\":{},\"blip_observer_accuracy\":{:.4},\"blip_observer_accuracy_unflipped\":{:.4},\"psi_pairs_checked\":{},\"psi_errors\":{}",
            self.blip_similarity_error,
            self.blip_similarity_error_unflipped,
            self.blip_pairs,
            self.blip_observer_accuracy,
            self.blip_observer_accuracy_unflipped,
            self.psi_pairs_checked,
            self.psi_errors
        );
        s += &format!(
            ",\"maintenance_msgs_per_node_s\":{:.3},\"msgs_by_engine\":{},\"sampling\":{},\"clustering\":{},\"routing\":{},\"drops_by_reason\":{},\"trace_hash\":\"{}\"",
            self.maintenance_msgs_per_node_s,
            json_map(&self.msgs_by_engine),
            json_map(&self.sampling),
            json_map(&self.clustering),
            json_map(&self.routing),
            json_map(&self.drops_by_reason),
            self.trace_hash
        );
        match &self.failure {
            Some(f) => s += &format!(",\"failure\":\"{}\"}}", f.replace('"', "'")),
            None => s += ",\"failure\":null}",
        }
        s
    }

    /// Whether no invariant broke and PSI was exact everywhere it was checked.
    pub fn ok(&self) -> bool {
        self.failure.is_none() && self.psi_errors == 0
    }
}
