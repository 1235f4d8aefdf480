//! The two-node QUIC suites: `unicast` (signed messages between engines), `bulk` (1 MiB messages,
//! against a raw quiche stream) and `rtt` (ping round trips, against a raw UDP ping-pong).

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netmachine::wire::Protocol;
use netmachine::{EngineIdentity, Input};

use super::shared::*;
use super::*;

/// Streams messages from an engine on one node to an engine on another for `secs`; returns
/// messages per second delivered.
pub(super) fn stream_between_nodes(
    secs: f64,
    body_len: usize,
    window: u64,
    credit_every: u64,
) -> Result<(f64, String), String> {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(0));
    let sink = Sink {
        count: Arc::clone(&count),
        credit_every,
        latencies: None,
    };
    let source = Source {
        dst: EngineIdentity([0; 32]),
        body_len,
        window,
        sent: 0,
        credited: 0,
        stop: Arc::clone(&stop),
        started: false,
    };
    let (a, b) = pair_with_sink_target(sink, source)?;
    let rate = measure_stream(&a, &count, &stop, secs, credit_every, &[&a, &b])?;
    let status = format!("{}\n{}", a.status(), b.status());
    a.shutdown();
    b.shutdown();
    Ok((rate, status))
}

/// Starts the `source` engine of node `a`, warms up until the sink has counted some
/// messages, then measures the sink's rate for `secs`; stops the source.
pub(super) fn measure_stream(
    a: &netmachine::Node,
    count: &AtomicU64,
    stop: &AtomicU64,
    secs: f64,
    credit_every: u64,
    nodes: &[&netmachine::Node],
) -> Result<f64, String> {
    let source = a.engine_identity("source").ok_or("no source")?;
    let mut kick = a.client("kick").map_err(|e| e.to_string())?;
    kick.send(source, DATA, vec![0; 8]);
    // Warm up until the first messages arrive, then measure.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count.load(Ordering::Acquire) < 10 * credit_every.max(1) {
        if Instant::now() > deadline {
            let status: Vec<String> = nodes.iter().map(|n| n.status()).collect();
            return Err(format!(
                "no traffic between the nodes:\n{}",
                status.join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let c0 = count.load(Ordering::Acquire);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let c1 = count.load(Ordering::Acquire);
    let rate = (c1 - c0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(1, Ordering::Release);
    Ok(rate)
}

pub(super) fn unicast_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
    let (_, batch, sign) = verify_rates(1.0);
    let limit = batch.min(sign);
    let (rate, status) = stream_between_nodes(secs, 256, 4096, 256)?;
    log::info!("unicast: {status}");
    out(Record {
        suite: "unicast",
        metric: "msgs_256B",
        value: rate,
        unit: "msg/s",
        baseline: Some(("min_sign_batch_verify", limit)),
    });
    Ok(())
}

pub(super) fn bulk_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
    let mib = 1024.0 * 1024.0;
    let raw_bytes = 256 << 20;
    let (bytes, elapsed) = netmachine::node::quic::raw_bulk_transfer(raw_bytes)?;
    let raw = bytes as f64 / mib / elapsed.as_secs_f64();
    let (rate, status) = stream_between_nodes(secs, 1 << 20, 8, 1)?;
    log::info!("bulk: {status}");
    out(Record {
        suite: "bulk",
        metric: "mib_per_s_1MiB_messages",
        value: rate,
        unit: "MiB/s",
        baseline: Some(("raw_quiche_stream", raw)),
    });
    Ok(())
}

pub(super) fn rtt_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
    // Baseline: a UDP ping-pong between two threads on 127.0.0.1.
    let a = UdpSocket::bind(localhost()).map_err(|e| e.to_string())?;
    let b = UdpSocket::bind(localhost()).map_err(|e| e.to_string())?;
    let b_addr = b.local_addr().map_err(|e| e.to_string())?;
    let rounds = 5000;
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        for _ in 0..rounds {
            if let Ok((n, from)) = b.recv_from(&mut buf) {
                let _ = b.send_to(&buf[..n], from);
            }
        }
    });
    let mut raw = Vec::with_capacity(rounds);
    let mut buf = [0u8; 64];
    a.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    for _ in 0..rounds {
        let t = Instant::now();
        a.send_to(&[1; 64], b_addr).map_err(|e| e.to_string())?;
        a.recv_from(&mut buf).map_err(|e| e.to_string())?;
        raw.push(t.elapsed().as_nanos() as u64);
    }
    let _ = echo.join();
    raw.sort_unstable();

    let us = |v: u64| v as f64 / 1000.0;
    for (spin, p50_name, p99_name) in [
        (
            netmachine::runtime::DEFAULT_SPIN_BEFORE_PARK,
            "ping_p50",
            "ping_p99",
        ),
        (Duration::ZERO, "ping_p50_no_spin", "ping_p99_no_spin"),
    ] {
        let limits = netmachine::NodeLimits {
            spin_before_park: spin,
            ..netmachine::NodeLimits::default()
        };
        let (a, b) = pair_with(None, None, limits)?;
        let rtts = ping_rtts(&a, b.identity(), secs / 2.0)?;
        out(Record {
            suite: "rtt",
            metric: p50_name,
            value: us(percentile(&rtts, 0.5)),
            unit: "us",
            baseline: Some(("raw_udp_p50", us(percentile(&raw, 0.5)))),
        });
        out(Record {
            suite: "rtt",
            metric: p99_name,
            value: us(percentile(&rtts, 0.99)),
            unit: "us",
            baseline: Some(("raw_udp_p99", us(percentile(&raw, 0.99)))),
        });
        a.shutdown();
        b.shutdown();
    }
    Ok(())
}

/// Pings `to` from node `a` one round trip at a time for `secs` (at most 100,000 rounds);
/// returns the round-trip times in nanoseconds, sorted.
pub(super) fn ping_rtts(
    a: &netmachine::Node,
    to: netmachine::NodeIdentity,
    secs: f64,
) -> Result<Vec<u64>, String> {
    let mut client = a.client("pinger").map_err(|e| e.to_string())?;
    let mut rtts = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs_f64(secs) && rtts.len() < 100_000 {
        let t = Instant::now();
        let id = client.send(to, Protocol::PING, vec![7; 64]);
        loop {
            match client.recv(Duration::from_secs(5)) {
                Some(Input::Message(m)) if m.reply_to() == Some(id) => break,
                Some(_) => continue,
                None => return Err("rtt: a ping was not answered".into()),
            }
        }
        rtts.push(t.elapsed().as_nanos() as u64);
    }
    rtts.sort_unstable();
    Ok(rtts)
}
