//! Local throughput: messages from one engine through the Router to another engine on the same
//! node, each on its own thread.
//!
//! Run: `cargo bench --bench local`. Each iteration sends a burst of 10,000 messages and waits
//! until the receiving engine has handled all of them; the figure is messages per second end to
//! end (sender thread → Router thread → receiver thread).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use netmachine::wire::Protocol;
use netmachine::{Context, Engine, EngineSpec, Input, Keypair, NodeBuilder, SendOptions};

const BURST: u64 = 10_000;

struct Counter(Arc<AtomicU64>);

impl Engine for Counter {
    fn handle(&mut self, _ctx: &mut Context, input: Input) {
        if let Input::Message(_) = input {
            self.0.fetch_add(1, Ordering::Release);
        }
    }
}

fn bench(c: &mut Criterion) {
    let count = Arc::new(AtomicU64::new(0));
    // The sink's mailbox holds a whole burst: the Router drops (never waits) on a full mailbox.
    let spec = EngineSpec {
        mailbox_depth: 2 * BURST as usize,
        ..EngineSpec::named("sink")
    };
    let node = NodeBuilder::new(Keypair::generate())
        .engine_with(spec, Counter(Arc::clone(&count)))
        .start()
        .unwrap();
    let sink = node.engine_identity("sink").unwrap();
    let stats = node.stats_handle();
    let mut client = node.client("source").unwrap();
    let opts = SendOptions {
        notify_undeliverable: false,
        ..SendOptions::default()
    };
    let mut g = c.benchmark_group("local");
    g.throughput(Throughput::Elements(BURST));
    g.bench_function("engine_router_engine", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start_count = count.load(Ordering::Acquire);
                let start = Instant::now();
                for i in 0..BURST {
                    client.send_with(
                        sink,
                        Protocol(Protocol::APP_BASE),
                        i.to_le_bytes().to_vec(),
                        opts,
                    );
                }
                while count.load(Ordering::Acquire) < start_count + BURST {
                    assert_eq!(stats.total_drops(), 0, "messages were dropped");
                    std::hint::spin_loop();
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
    assert_eq!(node.stats().total_drops(), 0);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
