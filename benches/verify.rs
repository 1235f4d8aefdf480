//! Signature micro-benchmarks: one `verify_strict` versus a batch of 64 through the Router's
//! [`BatchVerifier`], and signing (which happens on the sending engine's thread).
//!
//! Run: `cargo bench --bench verify`. Compare `verify/single_strict` with `verify/batch64`
//! per element: the batch figure is the Router's per-message verification cost under load.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use netmachine::identity::{CheckedKey, Keypair};
use netmachine::time::Timestamp;
use netmachine::wire::message::{BatchVerifier, Unverified};
use netmachine::wire::{Destination, EngineMessage, MessageId, Protocol};
use netmachine::EngineIdentity;

fn message(key: &Keypair, node: &Keypair, id: u64) -> EngineMessage {
    EngineMessage {
        src: key.engine_identity(),
        src_node: node.node_identity(),
        dst: Destination::Engine(EngineIdentity([7; 32])),
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

fn signed_batch(n: usize) -> Vec<(Vec<u8>, CheckedKey)> {
    let node = Keypair::generate();
    (0..n)
        .map(|i| {
            let key = node.derive_engine(&format!("e{}", i % 16));
            let mut wire = Vec::new();
            message(&key, &node, i as u64).sign_into_wire(&key, &mut wire, &mut Vec::new());
            (
                wire,
                CheckedKey::parse(key.engine_identity().as_bytes()).unwrap(),
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify");
    let batch = signed_batch(64);
    let mut scratch = Vec::new();

    g.throughput(Throughput::Elements(1));
    let (wire, key) = batch[0].clone();
    g.bench_function("single_strict", |b| {
        b.iter_batched(
            || Unverified::decode(wire.clone()).unwrap(),
            |u| assert!(u.verify(&key, &mut scratch).is_ok()),
            BatchSize::SmallInput,
        )
    });

    g.throughput(Throughput::Elements(64));
    let mut verifier = BatchVerifier::new();
    let mut out = Vec::with_capacity(64);
    g.bench_function("batch64", |b| {
        b.iter_batched(
            || {
                batch
                    .iter()
                    .map(|(w, k)| (Unverified::decode(w.clone()).unwrap(), k.clone()))
                    .collect::<Vec<_>>()
            },
            |items| {
                out.clear();
                verifier.verify(items, &mut out);
                assert!(out.iter().all(|r| r.is_ok()));
            },
            BatchSize::SmallInput,
        )
    });

    g.throughput(Throughput::Elements(1));
    let node = Keypair::generate();
    let key = node.derive_engine("e");
    let mut m = message(&key, &node, 1);
    let mut buf = Vec::new();
    g.bench_function("sign", |b| {
        b.iter(|| {
            m.id.0 += 1;
            m.sign_into_wire(&key, &mut buf, &mut scratch);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
