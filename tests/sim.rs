//! Simulator runs: the same engines as real nodes, many of them on one thread, with seeded
//! faults. Sizes here are CI sizes; `netmachine sim` runs the large ones.

use std::time::Duration;

use netmachine::sim::net::LinkFaults;
use netmachine::sim::scenario::{
    run_domain, run_interdomain, run_pubsub, run_relay, run_storage, run_unicast, Common, Crypto,
    DomainScenario, DomainSummary, InterdomainScenario, InterdomainSummary, PubSubScenario,
    RelayScenario, StorageScenario, UnicastScenario,
};

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
}

/// The issue's scenario at full size: 1,000 nodes, 10 % loss (datagrams lost, stream packets
/// resent late), 5 % duplication, and a partition of half the nodes that outlasts the idle
/// timeout and heals: every live subscriber gets every event once, in order.
#[test]
fn a_thousand_nodes_with_loss_duplication_and_a_partition_deliver_exactly_once_in_order() {
    let s = run_pubsub(&PubSubScenario {
        common: Common {
            nodes: 1000,
            degree: 6,
            seed: seed(),
            faults: LinkFaults {
                loss: 0.10,
                dup: 0.05,
                ..LinkFaults::default()
            },
            partition: Duration::from_secs(12),
            ..Common::default()
        },
        events: 10,
        ..PubSubScenario::default()
    });
    println!("{}", s.to_json());
    assert_eq!(s.failure, None);
    assert_eq!(s.partitions, 1);
    assert_eq!(s.events_published, 10);
    assert_eq!(s.deliveries_expected, 10 * 999);
    assert_eq!(s.deliveries, s.deliveries_expected);
    assert_eq!((s.duplicates, s.order_violations), (0, 0));
}

/// A fifth of the nodes crash and restart while requests flow: every request of a client that
/// did not crash is answered or reported undeliverable with a reason — nothing acknowledged (or
/// not) is lost — and no server handles a request twice or out of order within one life.
#[test]
fn a_fifth_of_the_nodes_crashing_loses_nothing() {
    let s = run_unicast(&UnicastScenario {
        common: Common {
            nodes: 50,
            seed: seed(),
            crash: 0.2,
            faults: LinkFaults {
                loss: 0.05,
                ..LinkFaults::default()
            },
            ..Common::default()
        },
        requests: 40,
        ..UnicastScenario::default()
    });
    println!("{}", s.to_json());
    assert_eq!(s.failure, None);
    assert_eq!(s.crashes, 10);
    assert!(s.requests >= 40 * 40, "{}", s.requests);
    assert_eq!(s.lost, 0);
    assert_eq!(s.answered + s.bounced + s.answer_lost_in_crash, s.requests);
    assert_eq!((s.duplicates, s.order_violations), (0, 0));
}

/// Attackers inject forged events to their neighbours: none reaches an honest subscriber, and
/// the honest ones still get every real event.
#[test]
fn forged_events_reach_no_honest_subscriber() {
    let s = run_pubsub(&PubSubScenario {
        common: Common {
            nodes: 60,
            degree: 6,
            seed: seed(),
            ..Common::default()
        },
        events: 20,
        attackers: 0.1,
        ..PubSubScenario::default()
    });
    println!("{}", s.to_json());
    assert_eq!(s.failure, None);
    assert!(s.forged_sent > 0);
    assert_eq!(s.forged_deliveries, 0);
    assert_eq!(s.deliveries, s.deliveries_expected);
}

/// A diamond (0 → 1 → 3 and 0 → 2 → 3): both paths carry the events, and the subscriber at
/// the bottom still gets each exactly once — checked after every event of the run, not by
/// waiting a while for a duplicate that might come.
#[test]
fn redundant_paths_deliver_exactly_once() {
    let s = run_pubsub(&PubSubScenario {
        common: Common {
            nodes: 4,
            seed: seed(),
            edges: Some(vec![(0, 1), (0, 2), (1, 3), (2, 3)]),
            ..Common::default()
        },
        events: 100,
        interval: Duration::from_millis(5),
        ..PubSubScenario::default()
    });
    println!("{}", s.to_json());
    assert_eq!(s.failure, None);
    assert_eq!(s.deliveries, 300);
    assert_eq!(s.deliveries, s.deliveries_expected);
    assert_eq!(s.duplicates, 0);
    assert!(
        s.pubsub.get("duplicate").copied().unwrap_or(0) > 0,
        "{:?}",
        s.pubsub
    );
}

/// Connections lost under load: what was unacknowledged is sent again on the next connection,
/// the receivers' replay windows drop the copies that had arrived, and nothing is lost or
/// handled twice.
#[test]
fn lost_connections_lose_nothing_and_duplicate_nothing() {
    let s = run_unicast(&UnicastScenario {
        common: Common {
            nodes: 30,
            seed: seed(),
            faults: LinkFaults {
                conn_loss: 0.02,
                ..LinkFaults::default()
            },
            ..Common::default()
        },
        requests: 50,
        ..UnicastScenario::default()
    });
    println!("{}", s.to_json());
    assert_eq!(s.failure, None);
    assert_eq!(s.answered, s.requests);
    assert_eq!((s.lost, s.duplicates, s.order_violations), (0, 0, 0));
    assert!(s.drops_by_reason.get("duplicate").copied().unwrap_or(0) > 0);
}

/// A fifth of the nodes crash while events flow. Seed 4 found that a subscriber whose parent
/// restarted kept waiting on it, unaware (the restarted parent's new connection came as a
/// second `NodeConnected` with no `NodeDisconnected` between), and silently missed the end of
/// the stream. Now every event a live subscriber misses is one its PubSub engine counted as
/// given up.
#[test]
fn pubsub_under_crashes_loses_nothing_silently() {
    for seed in [4, seed()] {
        let s = run_pubsub(&PubSubScenario {
            common: Common {
                nodes: 100,
                degree: 6,
                seed,
                crash: 0.2,
                ..Common::default()
            },
            events: 50,
            ..PubSubScenario::default()
        });
        println!("{}", s.to_json());
        assert_eq!(s.failure, None);
        assert_eq!(s.crashes, 20);
        assert_eq!(s.lost, 0, "missing without a counted reason");
        assert_eq!((s.duplicates, s.order_violations), (0, 0));
    }
}

/// Every third request travels as an unreliable datagram over links that lose 10 % and
/// duplicate 5 % of them: some never arrive (as datagrams may not), the duplicates are dropped by
/// the receiving Router's replay window and counted, and no server handles one twice; the
/// reliable requests beside them are all answered.
#[test]
fn datagrams_lost_and_duplicated_are_never_handled_twice() {
    let s = run_unicast(&UnicastScenario {
        common: Common {
            nodes: 30,
            seed: seed(),
            faults: LinkFaults {
                loss: 0.10,
                dup: 0.05,
                ..LinkFaults::default()
            },
            ..Common::default()
        },
        requests: 60,
        unreliable_every: 3,
        ..UnicastScenario::default()
    });
    println!("{}", s.to_json());
    assert_eq!(s.failure, None);
    assert_eq!(s.datagrams_sent, 30 * 20);
    assert!(
        s.datagrams_handled < s.datagrams_sent,
        "{}",
        s.datagrams_handled
    );
    assert!(
        s.datagrams_handled > s.datagrams_sent / 2,
        "{}",
        s.datagrams_handled
    );
    assert!(s.drops_by_reason.get("duplicate").copied().unwrap_or(0) > 0);
    assert_eq!(s.duplicates, 0);
    assert_eq!(s.answered, s.requests);
    assert_eq!(s.lost, 0);
}

/// Three publishers of one topic, on nodes spread over 1,000, with 10 % loss and 5 %
/// duplication: every subscriber — and every publisher, for the other two's events — gets
/// every event exactly once, in order per publisher, and after every event its publisher had
/// received before publishing it (causal order across publishers), checked after every event of
/// the run. The stand-in signatures keep it to seconds.
#[test]
fn three_publishers_on_a_thousand_lossy_nodes_deliver_once_in_causal_order() {
    let s = run_pubsub(&PubSubScenario {
        common: Common {
            nodes: 1000,
            degree: 6,
            seed: seed(),
            faults: LinkFaults {
                loss: 0.10,
                dup: 0.05,
                ..LinkFaults::default()
            },
            drain: Duration::from_secs(8),
            crypto: Crypto::StandIn,
            ..Common::default()
        },
        publishers: 3,
        events: 10,
        ..PubSubScenario::default()
    });
    println!("{}", s.to_json());
    assert_eq!(s.failure, None);
    assert_eq!(s.crypto, "stand-in:keyed-sha512");
    assert_eq!(s.events_published, 30);
    // 997 subscribers get 30 events; each publisher gets the other two's 20.
    assert_eq!(s.deliveries_expected, 997 * 30 + 3 * 20);
    assert_eq!(s.deliveries, s.deliveries_expected);
    assert_eq!((s.duplicates, s.order_violations), (0, 0));
    assert_eq!(s.causal_late_excused, 0);
    // The barrier held events back for other publishers' events.
    assert!(
        s.pubsub.get("causal_waits").copied().unwrap_or(0) > 0,
        "{:?}",
        s.pubsub
    );
}

/// The first publisher's node also signs a second, different event for each of its sequence
/// numbers and sends it to its neighbours: either version may reach a node first, but no node
/// delivers both, every node gets one version of each, and the second versions are counted.
#[test]
fn an_equivocating_publisher_never_gets_two_versions_delivered() {
    let s = run_pubsub(&PubSubScenario {
        common: Common {
            nodes: 60,
            degree: 6,
            seed: seed(),
            ..Common::default()
        },
        publishers: 3,
        events: 20,
        equivocate: true,
        ..PubSubScenario::default()
    });
    println!("{}", s.to_json());
    assert_eq!(s.failure, None);
    assert_eq!(s.equivocations_sent, 20);
    assert!(
        s.pubsub.get("equivocation").copied().unwrap_or(0) > 0,
        "{:?}",
        s.pubsub
    );
    assert_eq!(s.deliveries, s.deliveries_expected);
    assert_eq!((s.duplicates, s.order_violations), (0, 0));
}

/// Three publishers while a fifth of the nodes crash and restart (a crashed publisher comes
/// back as a subscriber): nothing a live receiver misses goes uncounted, and no delivery breaks
/// causal order except where the node's PubSub counted a causal timeout.
#[test]
fn three_publishers_under_crashes_lose_nothing_silently() {
    let s = run_pubsub(&PubSubScenario {
        common: Common {
            nodes: 100,
            degree: 6,
            seed: seed(),
            crash: 0.2,
            ..Common::default()
        },
        publishers: 3,
        events: 30,
        ..PubSubScenario::default()
    });
    println!("{}", s.to_json());
    assert_eq!(s.failure, None);
    assert_eq!(s.crashes, 20);
    assert_eq!(s.lost, 0, "missing without a counted reason");
    assert_eq!((s.duplicates, s.order_violations), (0, 0));
}

// ---------------------------------------------------------------------------------------------
// Domains: 60 nodes, 40 members, 8 joins (docs/simulation.md, "The domain scenario").

fn domain(seed: u64) -> DomainScenario {
    DomainScenario {
        common: Common {
            nodes: 60,
            degree: 4,
            seed,
            drain: Duration::from_secs(12),
            crypto: Crypto::StandIn,
            ..Common::default()
        },
        members: 40,
        joins: 8,
        events: 10,
        outsiders: 6,
        ..DomainScenario::default()
    }
}

/// What every domain run must show: no invariant broken, every live member agreeing on a
/// membership holding every accepted joiner, nothing of the scoped topic at a non-member.
fn assert_domain_ok(s: &DomainSummary) {
    println!("{}", s.to_json());
    assert_eq!(s.failure, None);
    assert!(s.converged, "the live members did not agree");
    assert_eq!(
        s.joins_accepted, s.joins,
        "every join is accepted (auth none)"
    );
    assert_eq!(s.members, s.genesis_members + s.joins);
    assert_eq!(s.scoped_deliveries_to_non_members, 0);
    assert_eq!(s.duplicates, 0);
}

#[test]
fn domain_joins_converge_and_the_scoped_topic_stays_among_members() {
    let s = run_domain(&domain(seed()));
    assert_domain_ok(&s);
    assert!(s.converged_s.is_some());
    assert!(
        s.largest_component_share >= 0.99,
        "{}",
        s.largest_component_share
    );
    assert_eq!(s.events_published, 10);
    assert_eq!(s.member_deliveries, s.member_deliveries_expected);
    assert_eq!(s.topic_msgs_by_non_members, 0);
    assert!(s.maintenance_msgs_per_node_s > 0.0);
}

#[test]
fn a_third_of_the_members_crashing_leaves_the_overlay_connected() {
    let mut sc = domain(seed());
    sc.common.crash = 0.3;
    let s = run_domain(&sc);
    assert_domain_ok(&s);
    assert_eq!(s.crashed, 14, "30 % of 48 members");
    assert_eq!(s.live_members, 48 - 14);
    assert!(s.share_after_crash.len() >= 10);
    assert!(
        s.largest_component_share >= 0.99,
        "{:?}",
        s.share_after_crash
    );
}

#[test]
fn a_partitioned_domain_converges_after_the_heal() {
    let mut sc = domain(seed());
    sc.common.partition = Duration::from_secs(12);
    let s = run_domain(&sc);
    assert_domain_ok(&s);
    assert_eq!(s.partitions, 1);
    assert!(s.converged_after_heal_s.is_some());
    assert!(
        s.largest_component_share >= 0.99,
        "{:?}",
        s.share_after_heal
    );
}

#[test]
fn joins_under_ten_percent_loss_converge() {
    let mut sc = domain(seed());
    sc.common.faults = LinkFaults {
        loss: 0.1,
        ..LinkFaults::default()
    };
    let s = run_domain(&sc);
    assert_domain_ok(&s);
    assert!(
        s.largest_component_share >= 0.99,
        "{}",
        s.largest_component_share
    );
}

#[test]
fn the_domain_scenario_replays_from_its_seed() {
    let mut sc = domain(5);
    sc.common.crash = 0.2;
    let a = run_domain(&sc);
    let b = run_domain(&sc);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.steps, b.steps);
    sc.common.seed = 6;
    assert_ne!(run_domain(&sc).trace_hash, a.trace_hash);
}

// ---------------------------------------------------------------------------------------------
// Inter-domain: 1,000 nodes, 100 Zipf-sized domains, 20 % colluders (docs/simulation.md, "The
// inter-domain scenario"). One run holds the main world and both baselines, so the goals are
// asserted together.

fn interdomain(nodes: usize, seed: u64) -> InterdomainScenario {
    InterdomainScenario {
        common: Common {
            nodes,
            degree: 4,
            seed,
            crypto: Crypto::StandIn,
            ..Common::default()
        },
        domains: nodes / 10,
        colluders: 0.2,
        lookups: nodes / 2,
        rounds: 20,
        ..InterdomainScenario::default()
    }
}

fn assert_interdomain_ok(s: &InterdomainSummary) {
    println!("{}", s.to_json());
    assert_eq!(s.failure, None);
    assert_eq!(
        s.lookups.asked,
        s.nodes / 2,
        "every planned lookup was asked"
    );
}

/// What the engines must show at 1,000 nodes today: greedy routing beats the random walk,
/// TAPS + URPS keeps colluders out of honest views better than CYCLON, BLIP's flipped filters
/// hide membership better than unflipped ones, and PSI is exact in every pair that ran it.
#[test]
fn interdomain_at_a_thousand_nodes_beats_its_baselines_and_psi_is_exact() {
    let s = run_interdomain(&interdomain(1000, seed()));
    assert_interdomain_ok(&s);
    let l = &s.lookups;
    let walk = s
        .baseline_lookups
        .as_ref()
        .expect("the random-walk baseline ran");
    assert!(
        l.success > walk.success,
        "greedy {} vs random walk {}",
        l.success,
        walk.success
    );
    assert!((s.colluder_population_share - 0.2).abs() < 0.01);
    let cyclon = s
        .baseline_colluder_view_share
        .expect("the CYCLON baseline ran");
    assert!(
        cyclon > s.colluder_view_share,
        "CYCLON {cyclon} vs TAPS {}",
        s.colluder_view_share
    );
    assert!(s.baseline_eclipsed_nodes.expect("CYCLON") >= s.eclipsed_nodes);
    assert!(s.blip_pairs > 1000);
    assert!(s.blip_observer_accuracy_unflipped > s.blip_observer_accuracy);
    assert!(s.psi_pairs_checked > 0, "no PSI ran");
    assert_eq!(s.psi_errors, 0);
    assert!(s.maintenance_msgs_per_node_s > 0.0);
}

/// The issue's goals at 1,000 nodes. Not met yet by the engines (docs/simulation.md, "The
/// inter-domain scenario", gives the figures): run with `--ignored` to check.
#[test]
#[ignore = "the goals are not met yet: see docs/simulation.md, inter-domain figures"]
fn interdomain_meets_the_issue_goals_at_a_thousand_nodes() {
    let s = run_interdomain(&interdomain(1000, seed()));
    assert_interdomain_ok(&s);
    let l = &s.lookups;
    assert!(l.asked_large > 0);
    assert!(
        l.success_large >= 0.99,
        "large domains: {}",
        l.success_large
    );
    assert!(l.success >= 0.90, "all: {}", l.success);
    assert!(
        l.hops_p50 <= 4.0 && l.hops_p99 <= 10.0,
        "{} / {}",
        l.hops_p50,
        l.hops_p99
    );
    assert!(
        s.colluder_view_share <= 1.2 * s.colluder_population_share,
        "view share {} for population share {}",
        s.colluder_view_share,
        s.colluder_population_share
    );
    assert_eq!(s.eclipsed_nodes, 0);
    assert!(
        s.blip_observer_accuracy < 0.75,
        "{}",
        s.blip_observer_accuracy
    );
    assert_eq!(s.psi_errors, 0);
}

#[test]
fn the_interdomain_scenario_replays_from_its_seed() {
    let mut sc = interdomain(150, 3);
    sc.rounds = 10;
    sc.walk_baseline = false;
    sc.cyclon_baseline = false;
    let a = run_interdomain(&sc);
    assert_interdomain_ok(&a);
    let b = run_interdomain(&sc);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.steps, b.steps);
    assert_eq!(a.lookups, b.lookups);
    sc.common.seed = 4;
    assert_ne!(run_interdomain(&sc).trace_hash, a.trace_hash);
}

// ---------------------------------------------------------------------------------------------
// Storage: one domain of every node, blocks held by a few of them, random-walk lookups
// (docs/simulation.md, "The storage scenario").

fn storage(nodes: usize, seed: u64) -> StorageScenario {
    StorageScenario {
        common: Common {
            nodes,
            degree: 4,
            seed,
            crypto: Crypto::StandIn,
            // Raised to the lookups' timeout: the run ends once every lookup is answered.
            drain: Duration::ZERO,
            ..Common::default()
        },
        holders: 0.02,
        lookups: 40,
        lookup_window: Duration::from_secs(5),
        ..StorageScenario::default()
    }
}

#[test]
fn random_walk_lookups_find_blocks_held_by_two_percent_and_replay_from_the_seed() {
    let a = run_storage(&storage(150, seed()));
    println!("{}", a.to_json());
    assert_eq!(a.failure, None);
    assert!(a.ok());
    assert_eq!(a.lookups, 40, "every planned lookup was asked and counted");
    assert_eq!(a.holders_per_block, 3);
    assert!(a.lookup_success >= 0.95, "success {}", a.lookup_success);
    assert!(
        a.hops_p50 >= 1.0,
        "a non-holder cannot find the block locally"
    );
    assert!(a.hops_p99 <= a.hop_limit as f64);
    assert_eq!(
        a.found_in_cache, 0,
        "every lookup asks for a block nobody asked for before"
    );
    assert!(a.storage_msgs > 0 && a.msgs_per_lookup > 1.0);
    let b = run_storage(&storage(150, seed()));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.steps, b.steps);
    assert_eq!(
        (a.found, a.hops_p50, a.hops_p99),
        (b.found, b.hops_p50, b.hops_p99)
    );
    let mut other = storage(150, seed());
    other.common.seed += 1;
    other.lookups = 10;
    assert_ne!(run_storage(&other).trace_hash, a.trace_hash);
}

/// Edge nodes with no address for each other reach each other through relays, one of which
/// acknowledges every layer and drops it: every request and answer still arrives exactly once,
/// the sources noticing by the missing receipts and taking another relay. The same seed gives
/// the same run.
#[test]
fn relayed_requests_survive_a_relay_that_drops_everything() {
    let scenario = RelayScenario {
        common: Common {
            nodes: 10,
            seed: seed(),
            ..Common::default()
        },
        relays: 3,
        dropping: 1,
        requests: 20,
        ..RelayScenario::default()
    };
    let r = run_relay(&scenario);
    let s = &r.summary;
    assert_eq!(s.failure, None, "{}", r.to_json());
    assert_eq!(s.requests, 7 * 20);
    assert_eq!(s.answered, s.requests, "{}", r.to_json());
    assert_eq!(
        (s.lost, s.duplicates, s.bounced),
        (0, 0, 0),
        "{}",
        r.to_json()
    );
    // Every request and every answer crossed a relay, and came back with a receipt.
    assert!(r.forwarded >= 2 * s.requests, "{}", r.to_json());
    assert!(r.receipts >= 2 * s.requests, "{}", r.to_json());
    // The dropping relay was noticed: some messages went again by another path.
    assert!(r.retries >= 1, "{}", r.to_json());
    assert_eq!(
        s.drops_by_reason.get("relay_unacknowledged"),
        None,
        "{}",
        r.to_json()
    );
    assert_eq!(r.untracked, 0);
    let again = run_relay(&scenario);
    assert_eq!(again.summary.trace_hash, s.trace_hash);
    // With no dropping relay nothing is retried.
    let honest = run_relay(&RelayScenario {
        dropping: 0,
        ..scenario
    });
    assert_eq!(honest.summary.answered, honest.summary.requests);
    assert_eq!(honest.retries, 0, "{}", honest.to_json());
}
