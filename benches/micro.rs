//! Micro-benchmarks of the hot path's parts: the message codec, a routing decision in the
//! Router state machine, ingress admission (decode, replay window, key cache), and one mailbox
//! hop between threads.
//!
//! Run: `cargo bench --bench micro`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use netmachine::identity::Keypair;
use netmachine::router::{Outbound, Router, RouterLimits, RouterOutput};
use netmachine::runtime::stats::NodeStats;
use netmachine::runtime::Outgoing;
use netmachine::time::{Now, Timestamp};
use netmachine::wire::message::Unverified;
use netmachine::wire::{Destination, EngineMessage, MessageId, Protocol};

fn message(key: &Keypair, node: &Keypair, dst: Destination, id: u64) -> EngineMessage {
    EngineMessage {
        src: key.engine_identity(),
        src_node: node.node_identity(),
        dst,
        id: MessageId(id),
        reply_to: None,
        expiry: Some(Timestamp(u64::MAX / 4)),
        rprefs: None,
        tprefs: None,
        protocol: Protocol(Protocol::APP_BASE),
        body: vec![0xab; 256],
        sig: None,
    }
}

fn codec(c: &mut Criterion) {
    let node = Keypair::generate();
    let key = node.derive_engine("e");
    let mut m = message(&key, &node, Destination::Node(node.node_identity()), 1);
    let mut wire = Vec::new();
    m.sign_into_wire(&key, &mut wire, &mut Vec::new());
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(512);
    g.bench_function("encode_signed_fields_256B", |b| {
        b.iter(|| {
            out.clear();
            m.encode_signed_fields(&mut out);
        })
    });
    g.bench_function("decode_wire_256B", |b| {
        b.iter_batched(
            || wire.clone(),
            |w| Unverified::decode(w).expect("decodes"),
            BatchSize::SmallInput,
        )
    });
    let mut input = Vec::with_capacity(256);
    g.bench_function("signing_input_256B", |b| {
        b.iter(|| m.signing_input(&mut input))
    });
    g.finish();
}

fn routing(c: &mut Criterion) {
    let node = Keypair::generate();
    let stats = Arc::new(NodeStats::default());
    let mut router = Router::new(node.node_identity(), stats, RouterLimits::default(), false);
    // 1,000 local engines; route to one of them.
    let engines: Vec<Keypair> = (0..1000)
        .map(|i| node.derive_engine(&format!("e{i}")))
        .collect();
    for (i, e) in engines.iter().enumerate() {
        router
            .add_local(e.engine_identity(), &format!("e{i}"), &[])
            .expect("unique names");
    }
    let src = &engines[0];
    let dst = Destination::Engine(engines[777].engine_identity());
    let now = Now::read();
    let mut g = c.benchmark_group("router");
    g.throughput(Throughput::Elements(1));
    let mut id = 0;
    g.bench_function("route_local_message", |b| {
        b.iter_batched(
            || {
                id += 1;
                Box::new(message(src, &node, dst, id))
            },
            |msg| {
                router.handle_local(
                    now,
                    Outbound::Local(Outgoing {
                        msg,
                        notify_undeliverable: false,
                    }),
                );
                match router.poll_output() {
                    Some(RouterOutput::Deliver { slot, .. }) => slot,
                    other => panic!("{other:?}"),
                }
            },
            BatchSize::SmallInput,
        )
    });
    // Ingress admission without the signature check: decode, expiry, replay window, key cache.
    let peer = Keypair::generate();
    let remote = peer.derive_engine("r");
    let mut n = 0u64;
    g.bench_function("ingress_admit_before_verify", |b| {
        b.iter_batched(
            || {
                n += 1;
                let mut m = message(&remote, &peer, dst, 10_000_000 + n);
                m.expiry = Some(now.wall.after(Duration::from_secs(60)));
                let mut w = Vec::new();
                m.sign_into_wire(&remote, &mut w, &mut Vec::new());
                w
            },
            |w| {
                router.handle_remote(now, peer.node_identity(), w, None);
                if router.ingress_batch_full() {
                    let _ = router.take_ingress_batch();
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn mailbox(c: &mut Criterion) {
    let mut g = c.benchmark_group("mailbox");
    const N: u64 = 100_000;
    g.throughput(Throughput::Elements(N));
    g.bench_function("hop_between_threads", |b| {
        b.iter(|| {
            let (tx, rx) = crossbeam_channel::bounded::<Box<u64>>(4096);
            let h = std::thread::spawn(move || {
                let mut sum = 0u64;
                for v in rx.iter() {
                    sum += *v;
                }
                sum
            });
            for i in 0..N {
                tx.send(Box::new(i)).expect("receiver alive");
            }
            drop(tx);
            h.join().expect("joined")
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2));
    targets = codec, routing, mailbox
}
criterion_main!(benches);
