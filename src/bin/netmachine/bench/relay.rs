//! The `relay` suite: signed unicast and ping round trips through one relay (nodes A and C
//! that only reach each other through B), against the same between two directly connected
//! nodes, measured in the same run.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netmachine::identity::Keypair;
use netmachine::relay::{RelayMode, RelayPolicy};
use netmachine::transport::TransportConfig;
use netmachine::wire::Protocol;
use netmachine::{EngineIdentity, EngineSpec, Input, Node, NodeBuilder};

use super::quic::{measure_stream, ping_rtts, stream_between_nodes};
use super::shared::*;
use super::*;

/// A relay B that forwards for anyone, and A and C that dial out to it only (no listening
/// address, so neither can reach the other directly). C runs `sink`, A `source` (aimed at
/// the sink).
fn trio(sink: Option<Sink>, source: Option<Source>) -> Result<(Node, Node, Node), String> {
    let relay = RelayPolicy {
        mode: RelayMode::Anyone,
        ..RelayPolicy::default()
    };
    let b = NodeBuilder::new(Keypair::generate())
        .listen(localhost())
        .relay_policy(relay)
        .start()
        .map_err(|e| e.to_string())?;
    let kc = Keypair::generate();
    let mut c = NodeBuilder::new(kc.clone())
        .transport(TransportConfig::default())
        .peer(b.advert().clone())
        .permanent(b.identity());
    if let Some(s) = sink {
        let spec = EngineSpec {
            mailbox_depth: 65_536,
            ..EngineSpec::named("sink")
        };
        c = c.engine_with(spec, s);
    }
    let c = c.start().map_err(|e| e.to_string())?;
    let sink_id: EngineIdentity = kc.derive_engine("sink").engine_identity();
    let mut a = NodeBuilder::new(Keypair::generate())
        .transport(TransportConfig::default())
        .peer(b.advert().clone())
        .permanent(b.identity())
        .engine_location(sink_id, c.identity());
    if let Some(mut s) = source {
        s.dst = sink_id;
        a = a.engine("source", s);
    }
    let a = a.start().map_err(|e| e.to_string())?;
    // Wait until a ping goes there and back through B.
    let mut probe = a.client("bench-ping").map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        probe.send(c.identity(), Protocol::PING, vec![0]);
        if let Some(Input::Message(_)) = probe.recv(Duration::from_millis(300)) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no path from A to C through the relay:\n{}\n{}\n{}",
                a.status(),
                b.status(),
                c.status()
            ));
        }
    }
    Ok((a, b, c))
}

pub(super) fn relay_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
    // Throughput: the same Source and Sink as `unicast`, directly and through B.
    let (direct, _) = stream_between_nodes(secs, 256, 4096, 256)?;
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(0));
    let sink = Sink {
        count: Arc::clone(&count),
        credit_every: 256,
        latencies: None,
    };
    let source = Source {
        dst: EngineIdentity([0; 32]),
        body_len: 256,
        window: 4096,
        sent: 0,
        credited: 0,
        stop: Arc::clone(&stop),
        started: false,
    };
    let (a, b, c) = trio(Some(sink), Some(source))?;
    let relayed = measure_stream(&a, &count, &stop, secs, 256, &[&a, &b, &c])?;
    log::info!("relay:\n{}\n{}\n{}", a.status(), b.status(), c.status());
    out(Record {
        suite: "relay",
        metric: "relayed_msgs_per_s",
        value: relayed,
        unit: "msg/s",
        baseline: Some(("direct_msgs_per_s", direct)),
    });
    a.shutdown();
    b.shutdown();
    c.shutdown();

    // Round trips: pings directly, then through B (both ways).
    let us = |v: u64| v as f64 / 1000.0;
    let (a, b) = pair_with(None, None, netmachine::NodeLimits::default())?;
    let direct = ping_rtts(&a, b.identity(), secs / 2.0)?;
    a.shutdown();
    b.shutdown();
    let (a, b, c) = trio(None, None)?;
    let relayed = ping_rtts(&a, c.identity(), secs / 2.0)?;
    out(Record {
        suite: "relay",
        metric: "relayed_rtt_p50",
        value: us(percentile(&relayed, 0.5)),
        unit: "us",
        baseline: Some(("direct_rtt_p50", us(percentile(&direct, 0.5)))),
    });
    out(Record {
        suite: "relay",
        metric: "relayed_rtt_p99",
        value: us(percentile(&relayed, 0.99)),
        unit: "us",
        baseline: Some(("direct_rtt_p99", us(percentile(&direct, 0.99)))),
    });
    a.shutdown();
    b.shutdown();
    c.shutdown();
    Ok(())
}
