//! The summary of a storage run and its JSON line.

use std::collections::BTreeMap;

/// The outcome of a storage run: every figure its summary line prints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StorageSummary {
    /// Nodes (all of them members of the one domain).
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
    /// Distinct blocks looked up.
    pub blocks: usize,
    /// Holders of each block (nodes whose store has it from the start).
    pub holders_per_block: usize,
    /// The Storage engines' random walks per lookup and hop limit.
    pub fanout: usize,
    /// See `fanout`.
    pub hop_limit: usize,
    /// Lookups asked by nodes that did not crash before the answer.
    pub lookups: usize,
    /// Of those, found (bytes checked against the id).
    pub found: usize,
    /// `found / lookups`.
    pub lookup_success: f64,
    /// Hops of the found lookups (`FoundAt.hops`): median, 99th percentile (nearest rank), most.
    pub hops_p50: f64,
    /// See `hops_p50`.
    pub hops_p99: f64,
    /// See `hops_p50`.
    pub hops_max: u32,
    /// Found lookups answered from a cache rather than a holder's store.
    pub found_in_cache: usize,
    /// Found lookups not marked `cached` whose `FoundAt.holder` holds no copy in its store (a
    /// cache on a walk's path answered, and the answer does not say so). Must be 0.
    pub misattributed: u64,
    /// Why the others failed: the Storage engine's reason, or `unanswered`.
    pub failures: BTreeMap<String, u64>,
    /// Lookups whose asking node crashed before the answer (not counted in `lookups`).
    pub asker_crashed: usize,
    /// Answers no lookup was waiting for.
    pub unexpected_answers: u64,
    /// Messages the Storage engines sent that left their node, over all nodes.
    pub storage_msgs: u64,
    /// `storage_msgs / lookups` (all asked lookups).
    pub msgs_per_lookup: f64,
    /// Messages that left the nodes, by engine.
    pub msgs_by_engine: BTreeMap<String, u64>,
    /// The Storage engines' counters, summed over every node incarnation.
    pub storage: BTreeMap<String, u64>,
    /// Every drop of every node, by reason.
    pub drops_by_reason: BTreeMap<String, u64>,
    /// Crashes (each followed by a restart).
    pub crashes: u64,
    /// Partitions (each healed).
    pub partitions: u64,
    /// Hash of the whole event trace.
    pub trace_hash: String,
    /// The first invariant broken, if any (the run stopped there).
    pub failure: Option<String>,
}

fn json_map(m: &BTreeMap<String, u64>) -> String {
    let v: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("\"{}\":{v}", k.replace('"', "'")))
        .collect();
    format!("{{{}}}", v.join(","))
}

impl StorageSummary {
    /// The summary as one JSON object.
    pub fn to_json(&self) -> String {
        let mut s = format!(
            "{{\"scenario\":\"storage\",\"nodes\":{},\"seed\":{},\"crypto\":\"{}\",\"sim_s\":{:.3},\"wall_s\":{:.3},\"steps\":{}",
            self.nodes, self.seed, self.crypto, self.sim_s, self.wall_s, self.steps
        );
        s += &format!(
            ",\"blocks\":{},\"holders_per_block\":{},\"fanout\":{},\"hop_limit\":{},\"lookups\":{},\"found\":{},\"lookup_success\":{:.4},\"hops_p50\":{:.1},\"hops_p99\":{:.1},\"hops_max\":{},\"found_in_cache\":{},\"misattributed\":{},\"lookup_failures\":{},\"asker_crashed\":{},\"unexpected_answers\":{}",
            self.blocks,
            self.holders_per_block,
            self.fanout,
            self.hop_limit,
            self.lookups,
            self.found,
            self.lookup_success,
            self.hops_p50,
            self.hops_p99,
            self.hops_max,
            self.found_in_cache,
            self.misattributed,
            json_map(&self.failures),
            self.asker_crashed,
            self.unexpected_answers
        );
        s += &format!(
            ",\"storage_msgs\":{},\"msgs_per_lookup\":{:.1},\"msgs_by_engine\":{},\"storage\":{},\"drops_by_reason\":{},\"crashes\":{},\"partitions\":{},\"trace_hash\":\"{}\"",
            self.storage_msgs,
            self.msgs_per_lookup,
            json_map(&self.msgs_by_engine),
            json_map(&self.storage),
            json_map(&self.drops_by_reason),
            self.crashes,
            self.partitions,
            self.trace_hash
        );
        match &self.failure {
            Some(f) => s += &format!(",\"failure\":\"{}\"}}", f.replace('"', "'")),
            None => s += ",\"failure\":null}",
        }
        s
    }

    /// Whether no invariant broke, no answer came unasked, and every answer named its source
    /// truly.
    pub fn ok(&self) -> bool {
        self.failure.is_none() && self.unexpected_answers == 0 && self.misattributed == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_line_names_the_figures() {
        let s = StorageSummary {
            lookups: 4,
            found: 3,
            lookup_success: 0.75,
            failures: BTreeMap::from([("not \"found\"".to_string(), 1)]),
            ..StorageSummary::default()
        };
        let j = s.to_json();
        assert!(j.contains("\"lookup_success\":0.7500"), "{j}");
        assert!(j.contains("\"hops_p50\":0.0"), "{j}");
        assert!(j.contains("\"not 'found'\":1"), "{j}");
        assert!(j.ends_with("\"failure\":null}"), "{j}");
        assert!(s.ok());
    }
}
