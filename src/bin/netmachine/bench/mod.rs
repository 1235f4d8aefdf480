//! `netmachine bench SUITE`: performance suites, each measuring its own baseline in the same
//! run on the same machine, and reporting figures as ratios to it.
//!
//! | suite | figure | baseline |
//! | --- | --- | --- |
//! | `verify` | single and batch-of-64 verification, signing (one thread) | single verify |
//! | `router` | remote messages through Router ingress to a local engine | single verify |
//! | `local` | engine → Router → engine msgs/s; one-way latency under light load | a raw two-hop channel pipeline |
//! | `unicast` | signed 256-byte messages between engines on two nodes over QUIC | min(sign, batch verify) |
//! | `bulk` | 1 MiB messages between two nodes | a raw quiche stream on the same sockets |
//! | `rtt` | ping round trips between two nodes | a raw UDP ping-pong |
//! | `pubsub` | 1 publisher → subscribers on 3 nodes | sign rate |
//! | `relay` | signed unicast and ping round trips through one relay | the same between two directly connected nodes |
//! | `storage` | an object fetched between two nodes into a disk store; a killed node serving again | `bulk` 1 MiB messages; 1 MiB `put`s on the same disk |
//!
//! With `--json`, one JSON object per line: `suite`, `metric`, `value`, `unit`, and where a
//! baseline applies `baseline`, `baseline_value`, `ratio`.

mod crypto;
mod local;
mod pubsub;
mod quic;
mod relay;
mod router;
mod shared;
mod storage;

use crypto::verify_suite;
use local::local_suite;
use pubsub::pubsub_suite;
use quic::{bulk_suite, rtt_suite, unicast_suite};
use relay::relay_suite;
use router::{router_suite, ROUTER_NEEDS_TESTING};
use storage::storage_suite;

/// The suites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// Signature verification and signing rates.
    Verify,
    /// Router ingress: verification and routing of remote messages.
    Router,
    /// Engine → Router → engine on one node.
    Local,
    /// Signed messages between engines on two nodes over QUIC.
    Unicast,
    /// 1 MiB messages between two nodes.
    Bulk,
    /// Ping round trips between two nodes.
    Rtt,
    /// One publisher, subscribers on three nodes.
    Pubsub,
    /// An object fetched between two nodes into a disk store; restart of a killed node.
    Storage,
    /// Unicast and round trips through one relay, against direct.
    Relay,
    /// Every suite, one after another.
    All,
}

/// Options of `bench`.
pub struct BenchOptions {
    /// Which suite.
    pub suite: Suite,
    /// JSON lines instead of text.
    pub json: bool,
    /// Rough duration of each suite's main measurement.
    pub seconds: f64,
}

/// One figure.
struct Record {
    suite: &'static str,
    metric: &'static str,
    value: f64,
    unit: &'static str,
    baseline: Option<(&'static str, f64)>,
}

fn emit(json: bool, r: &Record) {
    if json {
        let mut line = format!(
            "{{\"suite\":\"{}\",\"metric\":\"{}\",\"value\":{:.3},\"unit\":\"{}\"",
            r.suite, r.metric, r.value, r.unit
        );
        if let Some((name, v)) = r.baseline {
            let ratio = if v > 0.0 { r.value / v } else { 0.0 };
            line.push_str(&format!(
                ",\"baseline\":\"{name}\",\"baseline_value\":{v:.3},\"ratio\":{ratio:.3}"
            ));
        }
        line.push('}');
        println!("{line}");
    } else {
        let mut line = format!(
            "{:<8} {:<28} {:>14.1} {}",
            r.suite, r.metric, r.value, r.unit
        );
        if let Some((name, v)) = r.baseline {
            let ratio = if v > 0.0 { r.value / v } else { 0.0 };
            line.push_str(&format!("   = {ratio:.2} x {name} ({v:.1})"));
        }
        println!("{line}");
    }
}

/// Runs the chosen suite(s).
pub fn run(opts: &BenchOptions) -> Result<(), String> {
    if !(opts.seconds > 0.0 && opts.seconds <= 600.0) {
        return Err(format!(
            "--seconds must be in (0, 600], not {}",
            opts.seconds
        ));
    }
    let suites = match opts.suite {
        Suite::All => vec![
            Suite::Verify,
            Suite::Router,
            Suite::Local,
            Suite::Unicast,
            Suite::Bulk,
            Suite::Rtt,
            Suite::Pubsub,
            Suite::Storage,
            Suite::Relay,
        ],
        s => vec![s],
    };
    let out = |r: Record| emit(opts.json, &r);
    for s in suites {
        match s {
            Suite::Verify => verify_suite(opts.seconds, &out),
            Suite::Router if opts.suite == Suite::All && !cfg!(feature = "testing") => {
                eprintln!("bench: skipping the router suite: {ROUTER_NEEDS_TESTING}")
            }
            Suite::Router => router_suite(opts.seconds, &out)?,
            Suite::Local => local_suite(opts.seconds, &out)?,
            Suite::Unicast => unicast_suite(opts.seconds, &out)?,
            Suite::Bulk => bulk_suite(opts.seconds, &out)?,
            Suite::Rtt => rtt_suite(opts.seconds, &out)?,
            Suite::Pubsub => pubsub_suite(opts.seconds, &out)?,
            Suite::Storage => storage_suite(opts.seconds, &out)?,
            Suite::Relay => relay_suite(opts.seconds, &out)?,
            Suite::All => {}
        }
    }
    Ok(())
}
