//! The `router` suite: remote messages through Router ingress to a local engine, inline and
//! with verifier threads. It needs the `testing` feature, which gives the direct ingress handle.

#[cfg(not(feature = "testing"))]
use super::Record;

#[cfg(feature = "testing")]
pub(super) use with_ingress::router_suite;

/// Without the `testing` feature there is no way to feed Router ingress directly.
#[cfg(not(feature = "testing"))]
pub(super) fn router_suite(_secs: f64, _out: &impl Fn(Record)) -> Result<(), String> {
    Err(ROUTER_NEEDS_TESTING.into())
}

/// Why the router suite is missing from this build.
pub(super) const ROUTER_NEEDS_TESTING: &str = "the router suite feeds Router ingress directly, \
     which only a build with the `testing` feature allows: \
     cargo build --release --features testing";

#[cfg(feature = "testing")]
mod with_ingress {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use netmachine::identity::Keypair;
    use netmachine::wire::Destination;
    use netmachine::{EngineSpec, NodeBuilder};

    use super::super::shared::*;
    use super::super::*;

    pub(in super::super) fn router_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
        let (single, _, _) = verify_rates(1.0);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut configs = vec![0usize];
        if cores > 1 {
            configs.push(cores);
        }
        for threads in configs {
            let count = Arc::new(AtomicU64::new(0));
            let mut limits = netmachine::NodeLimits::default();
            limits.router.verifier_threads = threads;
            let spec = EngineSpec {
                mailbox_depth: 1 << 20,
                ..EngineSpec::named("sink")
            };
            let node = NodeBuilder::new(Keypair::generate())
                .limits(limits)
                .engine_with(
                    spec,
                    Sink {
                        count: Arc::clone(&count),
                        credit_every: 0,
                        latencies: None,
                    },
                )
                .start()
                .map_err(|e| e.to_string())?;
            let sink = node.engine_identity("sink").ok_or("sink not running")?;
            let peer = Keypair::generate();
            let n = ((single * 2.5 * secs / 2.0) as usize).clamp(20_000, 2_000_000);
            let wires = presign(&peer, Destination::Engine(sink), n, 256);
            let ingress = node.ingress();
            let stats = node.stats_handle();
            let t0 = Instant::now();
            for w in wires {
                ingress.deliver(peer.node_identity(), w);
            }
            let deadline = t0 + Duration::from_secs_f64(secs * 4.0 + 10.0);
            while count.load(Ordering::Acquire) + stats.total_drops() < n as u64 {
                if Instant::now() > deadline {
                    return Err("router suite: messages did not arrive in time".into());
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            let elapsed = t0.elapsed().as_secs_f64();
            let delivered = count.load(Ordering::Acquire);
            if delivered != n as u64 {
                return Err(format!(
                    "router suite: {} of {n} delivered: {}",
                    delivered,
                    node.stats()
                ));
            }
            let metric = if threads == 0 {
                "ingress_inline"
            } else {
                "ingress_verifier_threads"
            };
            out(Record {
                suite: "router",
                metric,
                value: delivered as f64 / elapsed,
                unit: "msg/s",
                baseline: Some(("single_verify", single)),
            });
            node.shutdown();
        }
        Ok(())
    }
}
