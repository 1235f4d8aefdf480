//! Simulator runs: the same engines as real nodes, many of them on one thread, with seeded
//! faults. Sizes here are CI sizes; `netmachine sim` runs the large ones.

use std::time::Duration;

use netmachine::sim::net::LinkFaults;
use netmachine::sim::scenario::{run_pubsub, run_unicast, Common, PubSubScenario, UnicastScenario};

fn seed() -> u64 {
    std::env::var("NM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7)
}

fn pubsub(nodes: usize, seed: u64) -> PubSubScenario {
    PubSubScenario {
        common: Common {
            nodes,
            degree: 4,
            seed,
            ..Common::default()
        },
        events: 10,
        ..PubSubScenario::default()
    }
}

#[test]
fn pubsub_delivers_every_event_once_in_order() {
    let s = run_pubsub(&pubsub(16, seed()));
    println!("{}", s.to_json());
    assert_eq!(s.failure, None);
    assert_eq!(s.events_published, 10);
    assert_eq!(s.deliveries, s.deliveries_expected);
    assert_eq!((s.duplicates, s.order_violations), (0, 0));
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    let a = run_pubsub(&pubsub(8, 11));
    let b = run_pubsub(&pubsub(8, 11));
    let c = run_pubsub(&pubsub(8, 12));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.steps, b.steps);
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn unicast_answers_every_request() {
    let s = run_unicast(&UnicastScenario {
        common: Common {
            nodes: 12,
            seed: seed(),
            faults: LinkFaults {
                loss: 0.05,
                ..LinkFaults::default()
            },
            ..Common::default()
        },
        requests: 20,
        ..UnicastScenario::default()
    });
    println!("{}", s.to_json());
    assert_eq!(s.failure, None);
    assert_eq!(s.requests, 12 * 20);
    assert_eq!(s.answered, s.requests);
    assert_eq!(s.lost, 0);
    let _ = Duration::ZERO;
}
