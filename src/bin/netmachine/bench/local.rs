//! The `local` suite: engine → Router → engine on one node, throughput against a raw two-hop
//! channel pipeline and one-way latency under light load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use netmachine::identity::Keypair;
use netmachine::{EngineSpec, NodeBuilder, SendOptions};

use super::shared::*;
use super::*;

pub(super) fn local_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
    // Baseline: the same shape without netmachine — three threads, two bounded channel hops.
    let n = 2_000_000u64;
    let (tx1, rx1) = crossbeam_channel::bounded::<Vec<u8>>(4096);
    let (tx2, rx2) = crossbeam_channel::bounded::<Vec<u8>>(4096);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            for m in rx1 {
                let _ = tx2.send(m);
            }
        });
        s.spawn(move || {
            let mut got = 0;
            for _ in rx2.iter() {
                got += 1;
                if got == n {
                    break;
                }
            }
        });
        for i in 0..n {
            let _ = tx1.send(i.to_le_bytes().to_vec());
        }
        drop(tx1);
    });
    let baseline = n as f64 / t0.elapsed().as_secs_f64();

    // Throughput.
    let count = Arc::new(AtomicU64::new(0));
    let spec = EngineSpec {
        mailbox_depth: 1 << 17,
        ..EngineSpec::named("sink")
    };
    let node = NodeBuilder::new(Keypair::generate())
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
    let sink = node.engine_identity("sink").ok_or("no sink")?;
    let mut client = node.client("source").map_err(|e| e.to_string())?;
    let opts = SendOptions {
        notify_undeliverable: false,
        ..SendOptions::default()
    };
    let burst = 50_000u64;
    let dur = Duration::from_secs_f64(secs / 2.0);
    let stats = node.stats_handle();
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed() < dur {
        for i in 0..burst {
            client.send_with(sink, DATA, i.to_le_bytes().to_vec(), opts);
        }
        sent += burst;
        while count.load(Ordering::Acquire) + stats.total_drops() < sent {
            std::hint::spin_loop();
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    if stats.total_drops() > 0 {
        return Err(format!("local suite dropped messages: {}", node.stats()));
    }
    out(Record {
        suite: "local",
        metric: "throughput",
        value: sent as f64 / elapsed,
        unit: "msg/s",
        baseline: Some(("two_channel_hops", baseline)),
    });
    drop(client);
    node.shutdown();

    // Latency under light load: one message about every 150 µs (a 100 µs sleep), with the
    // default polling before parking and with a latency-tuned node that polls for 1 ms.
    for (spin, p50_name, p99_name) in [
        (
            netmachine::runtime::DEFAULT_SPIN_BEFORE_PARK,
            "latency_p50",
            "latency_p99",
        ),
        (
            Duration::from_millis(1),
            "latency_p50_spin_1ms",
            "latency_p99_spin_1ms",
        ),
    ] {
        let (p50, p99) = local_latency(secs / 4.0, spin)?;
        out(Record {
            suite: "local",
            metric: p50_name,
            value: p50,
            unit: "us",
            baseline: None,
        });
        out(Record {
            suite: "local",
            metric: p99_name,
            value: p99,
            unit: "us",
            baseline: None,
        });
    }
    Ok(())
}

/// One-way latency engine → Router → engine under light load: (p50, p99) in microseconds.
fn local_latency(secs: f64, spin: Duration) -> Result<(f64, f64), String> {
    let opts = SendOptions {
        notify_undeliverable: false,
        ..SendOptions::default()
    };
    let lat = Arc::new(Mutex::new(Vec::new()));
    let epoch = Instant::now();
    let count = Arc::new(AtomicU64::new(0));
    let limits = netmachine::NodeLimits {
        spin_before_park: spin,
        ..netmachine::NodeLimits::default()
    };
    let node = NodeBuilder::new(Keypair::generate())
        .limits(limits)
        .engine(
            "sink",
            Sink {
                count: Arc::clone(&count),
                credit_every: 0,
                latencies: Some((epoch, Arc::clone(&lat))),
            },
        )
        .start()
        .map_err(|e| e.to_string())?;
    let sink = node.engine_identity("sink").ok_or("no sink")?;
    let mut client = node.client("source").map_err(|e| e.to_string())?;
    let samples = (secs * 6_000.0) as u64;
    for _ in 0..samples.clamp(1000, 200_000) {
        let now = epoch.elapsed().as_nanos() as u64;
        client.send_with(sink, DATA, now.to_le_bytes().to_vec(), opts);
        std::thread::sleep(Duration::from_micros(100));
    }
    std::thread::sleep(Duration::from_millis(50));
    let mut v = lat.lock().clone();
    v.sort_unstable();
    drop(client);
    node.shutdown();
    Ok((
        percentile(&v, 0.5) as f64 / 1000.0,
        percentile(&v, 0.99) as f64 / 1000.0,
    ))
}
