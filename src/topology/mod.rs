//! The Topology engine (name [`TOPOLOGY_ENGINE_NAME`], serves `Protocol::TOPOLOGY`): keeps,
//! per domain this node is a member of, a HyParView overlay of the domain's members.
//! (Skeleton: the algorithm follows.)

mod limits;
pub mod wire;

use std::sync::Arc;

pub use crate::mail::domain::{ViewMail, TOPOLOGY_ENGINE_NAME};
use crate::mail::transport::TransportRequest;
use crate::mail::Input;
use crate::rng::SplitMix64;
use crate::runtime::{Context, Engine};
pub use limits::{TopologyLimits, TopologyProbe, TopologyStats, ViewSnapshot};

/// The Topology engine: one HyParView overlay per domain this node is a member of.
pub struct TopologyEngine {
    limits: TopologyLimits,
    stats: Arc<TopologyStats>,
    probe: TopologyProbe,
    #[allow(dead_code)]
    rng: SplitMix64,
}

impl TopologyEngine {
    /// An engine with no domain yet; `seed` seeds every random choice it makes.
    pub fn new(limits: TopologyLimits, stats: Arc<TopologyStats>, seed: u64) -> TopologyEngine {
        TopologyEngine {
            probe: TopologyProbe::new(stats.clone()),
            limits,
            stats,
            rng: SplitMix64::new(seed),
        }
    }

    /// The read-only probe on this engine's overlays and counters (shared: clone it and read
    /// it from another thread, or between simulation steps).
    pub fn probe(&self) -> TopologyProbe {
        self.probe.clone()
    }

    /// The limits this engine was built with.
    pub fn limits(&self) -> &TopologyLimits {
        &self.limits
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Arc<TopologyStats> {
        &self.stats
    }
}

impl Engine for TopologyEngine {
    fn start(&mut self, ctx: &mut Context) {
        ctx.request(TransportRequest::Subscribe);
    }

    fn handle(&mut self, _ctx: &mut Context, _input: Input) {}
}
