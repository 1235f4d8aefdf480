//! The `pubsub` suite: one publisher, subscribers on three nodes, against the sign rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netmachine::identity::{Keypair, Signature};
use netmachine::identity_store::IdentityUpdate;
use netmachine::pubsub::PUBSUB_ENGINE_NAME;
use netmachine::router::topics::{TopicEvent, TopicRequest};
use netmachine::time::wall_clock;
use netmachine::wire::{Signed, TopicAdvert};
use netmachine::{EngineSpec, Input, NodeBuilder, RoutingScope};

use super::shared::*;
use super::*;

pub(super) fn pubsub_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
    let (_, _, sign) = verify_rates(1.0);
    let subscribers = 3;
    let publisher = NodeBuilder::new(Keypair::generate())
        .listen(localhost())
        .start()
        .map_err(|e| e.to_string())?;
    let counts: Vec<Arc<AtomicU64>> = (0..subscribers)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let topic_key = Keypair::generate();
    let topic = topic_key.topic_identity();
    let mut nodes = Vec::new();
    for c in &counts {
        let n = NodeBuilder::new(Keypair::generate())
            .listen(localhost())
            .peer(publisher.advert().clone())
            .permanent(publisher.identity())
            .engine_with(
                EngineSpec {
                    mailbox_depth: 1 << 16,
                    ..EngineSpec::named("sink")
                },
                Sink {
                    count: Arc::clone(c),
                    credit_every: 0,
                    latencies: None,
                },
            )
            .start()
            .map_err(|e| e.to_string())?;
        publisher.learn(IdentityUpdate::NodeAdvert(n.advert().clone()));
        nodes.push(n);
    }
    let mut pubc = publisher.client("publisher").map_err(|e| e.to_string())?;
    let advert = TopicAdvert {
        topic,
        publishers: vec![publisher
            .engine_identity(PUBSUB_ENGINE_NAME)
            .ok_or("no pubsub")?],
        tags: vec![],
        version: 1,
        created: wall_clock(),
        scope: None,
        sig: Signature([0; 64]),
    }
    .sign(&topic_key);
    pubc.with_context(|ctx| {
        ctx.topic_request(TopicRequest::Create {
            topic,
            scope: RoutingScope::Any,
            advert: Some(advert),
        })
    });
    // The sinks subscribe through clients named after them.
    let mut subs = Vec::new();
    for n in &nodes {
        let mut c = n.client("sub").map_err(|e| e.to_string())?;
        c.subscribe(topic, RoutingScope::Any);
        subs.push(c);
    }
    for c in &mut subs {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match c.recv(Duration::from_millis(100)) {
                Some(Input::Topic(TopicEvent::Subscribed { result: Ok(()), .. })) => break,
                Some(Input::Topic(TopicEvent::Subscribed { result: Err(e), .. })) => {
                    return Err(format!("pubsub: subscription failed: {e:?}"))
                }
                _ if Instant::now() > deadline => {
                    return Err("pubsub: not subscribed in time".into())
                }
                _ => {}
            }
        }
    }
    // Count deliveries at the clients (they are the subscribers).
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut c| {
            let received = Arc::clone(&received);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while stop.load(Ordering::Acquire) == 0 {
                    if let Some(Input::Message(_)) = c.recv(Duration::from_millis(50)) {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Publish with a window: at most 2,048 events ahead of the slowest subscriber.
    let window = 2048u64;
    let mut published = 0u64;
    let t0 = Instant::now();
    let dur = Duration::from_secs_f64(secs);
    while t0.elapsed() < dur {
        let slowest = received.load(Ordering::Acquire) / subscribers as u64;
        while published < slowest + window {
            pubc.publish(topic, DATA, vec![0x33; 256]);
            published += 1;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let delivered = received.load(Ordering::Acquire);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(1, Ordering::Release);
    for r in readers {
        let _ = r.join();
    }
    out(Record {
        suite: "pubsub",
        metric: "deliveries_per_s",
        value: delivered as f64 / elapsed,
        unit: "events/s",
        baseline: Some(("sign", sign)),
    });
    out(Record {
        suite: "pubsub",
        metric: "events_per_s",
        value: delivered as f64 / subscribers as f64 / elapsed,
        unit: "events/s",
        baseline: Some(("sign", sign)),
    });
    drop(pubc);
    publisher.shutdown();
    for n in nodes {
        n.shutdown();
    }
    drop(counts);
    Ok(())
}
