//! Scenarios on the in-memory network (`harness`): 200 members join through one introducer
//! under message loss; 30 % crash at once; a partition in two heals. Each prints its seed and
//! figures (`cargo test --release --lib topology -- --nocapture`).

use std::time::Duration;

use super::harness::Net;
use crate::identity::EngineIdentity;
use crate::rng::SplitMix64;
use crate::topology::{TopologyLimits, ViewMail};

const MEMBERS: usize = 200;
/// The member whose view a watcher follows.
const WATCHED: usize = 17;
const WATCHER: EngineIdentity = EngineIdentity([0xee; 32]);

/// 200 members, node 0 the one introducer, starting 20 ms apart, with `loss`; run to 30 s.
fn joined(seed: u64, loss: f64) -> Net {
    joined_n(MEMBERS, seed, loss)
}

fn joined_n(members: usize, seed: u64, loss: f64) -> Net {
    let mut net = Net::new(members, TopologyLimits::default(), seed);
    net.loss = loss;
    let ids = net.ids();
    let intro = [ids[0]];
    let spacing = 4000 / members as u64;
    for i in 0..members {
        net.run_until(Duration::from_millis(spacing * i as u64));
        net.start(i, &ids, &intro);
        if i == WATCHED {
            let domain = net.domain;
            net.local(i, WATCHER, ViewMail::Watch { domain });
        }
    }
    net.run_until(Duration::from_secs(30));
    net
}

fn check_bounds(net: &Net) {
    let l = TopologyLimits::default();
    for n in &net.nodes {
        let v = n.engine.probe().view(&net.domain).expect("an overlay");
        assert!(v.active.len() <= l.active_view, "{}", v.active.len());
        assert!(v.passive_len <= l.passive_view);
        assert!(!v.active.contains(&n.node));
    }
}

#[test]
fn two_hundred_members_join_through_one_introducer() {
    for seed in [1, 2] {
        let net = joined(seed, 0.01);
        let share = net.largest_component_share(None);
        let degrees: Vec<usize> = net
            .nodes
            .iter()
            .map(|n| n.engine.active_view(&net.domain).len())
            .collect();
        let mean = degrees.iter().sum::<usize>() as f64 / degrees.len() as f64;
        let passive: f64 = net
            .nodes
            .iter()
            .map(|n| n.engine.passive_view(&net.domain).len() as f64)
            .sum::<f64>()
            / MEMBERS as f64;
        println!(
            "seed {seed}: largest component {share:.3}, mean active {mean:.2}, min {}, \
             mean passive {passive:.1}, msgs/node/s {:.2}",
            degrees.iter().min().unwrap(),
            net.sent_total() as f64 / MEMBERS as f64 / 30.0
        );
        assert_eq!(share, 1.0, "seed {seed}");
        assert!(
            degrees.iter().all(|d| *d >= 1),
            "seed {seed}: an isolated member"
        );
        assert!(mean >= 3.5, "seed {seed}: mean active view {mean}");
        assert!(
            passive >= 15.0,
            "seed {seed}: passive views fill ({passive})"
        );
        check_bounds(&net);
        // The watchers' picture matches: the engine's view events replay to its view.
        let n = &net.nodes[WATCHED];
        let mut replay = std::collections::BTreeSet::new();
        for (added, node) in &n.view_events {
            if *added {
                assert!(replay.insert(*node), "added twice");
            } else {
                assert!(replay.remove(node), "removed while not in");
            }
        }
        let view: std::collections::BTreeSet<_> =
            n.engine.active_view(&net.domain).into_iter().collect();
        assert_eq!(replay, view, "seed {seed}");
        assert!(
            net.nodes[WATCHED + 1].view_events.is_empty(),
            "no watcher, no events"
        );
    }
}

#[test]
fn the_overlay_reconnects_within_10_s_after_30_percent_crash() {
    crash_30_percent(MEMBERS, &[(3, 0.01), (4, 0.01), (5, 0.01), (8, 0.10)]);
}

/// The same at 1,000 members: `cargo test --release --lib thousand -- --ignored --nocapture`.
#[test]
#[ignore = "slow in debug builds; prints figures"]
fn a_thousand_members_reconnect_after_30_percent_crash() {
    crash_30_percent(1000, &[(9, 0.01), (10, 0.10)]);
}

fn crash_30_percent(members: usize, runs: &[(u64, f64)]) {
    for &(seed, loss) in runs {
        let mut net = joined_n(members, seed, loss);
        let join_share = net.largest_component_share(None);
        assert_eq!(join_share, 1.0, "seed {seed}: joined");
        let mut rng = SplitMix64::new(seed);
        let mut victims: Vec<usize> = (0..members).collect();
        for i in (1..victims.len()).rev() {
            victims.swap(i, rng.below(i as u64 + 1) as usize);
        }
        victims.truncate(members * 3 / 10);
        let sent_before = net.sent_total();
        for &v in &victims {
            net.crash(v);
        }
        let after_crash = net.largest_component_share(None);
        let mut shares = Vec::new();
        for _ in 0..10 {
            net.run_for(Duration::from_secs(1));
            shares.push(net.largest_component_share(None));
        }
        let live = members - victims.len();
        let per_node_s = (net.sent_total() - sent_before) as f64 / live as f64 / 10.0;
        println!(
            "{members} members, loss {loss}, seed {seed}: right after the crash {after_crash:.3}; each second: {:?}; \
             maintenance {per_node_s:.2} msgs/node/s",
            shares.iter().map(|s| format!("{s:.3}")).collect::<Vec<_>>()
        );
        assert!(shares[9] >= 0.99, "seed {seed}: {shares:?}");
        // No live node keeps a crashed one in its active view after 10 s.
        for (i, n) in net.nodes.iter().enumerate() {
            if !n.alive {
                continue;
            }
            for p in n.engine.active_view(&net.domain) {
                let j = net.index[&p];
                assert!(net.nodes[j].alive, "seed {seed}: {i} keeps crashed {j}");
            }
        }
        check_bounds(&net);
    }
}

#[test]
fn a_partition_in_two_heals_into_one_overlay() {
    for seed in [6, 7] {
        let mut net = joined(seed, 0.01);
        let mut rng = SplitMix64::new(seed);
        let sides: Vec<u8> = (0..MEMBERS).map(|_| rng.below(2) as u8).collect();
        let a: Vec<usize> = (0..MEMBERS).filter(|i| sides[*i] == 0).collect();
        let b: Vec<usize> = (0..MEMBERS).filter(|i| sides[*i] == 1).collect();
        net.sides = Some(sides);
        net.run_for(Duration::from_secs(30));
        let whole = net.largest_component_share(None);
        let (sa, sb) = (
            net.largest_component_share(Some(&a)),
            net.largest_component_share(Some(&b)),
        );
        // Each side is its own overlay; together they are not one.
        assert!(whole <= 0.75, "seed {seed}: partitioned yet {whole}");
        assert!(sa >= 0.99 && sb >= 0.99, "seed {seed}: sides {sa} {sb}");
        net.sides = None;
        let mut healed_at = None;
        for s in 1..=60 {
            net.run_for(Duration::from_secs(1));
            if healed_at.is_none() && net.largest_component_share(None) == 1.0 {
                healed_at = Some(s);
            }
        }
        println!(
            "seed {seed}: during the partition whole {whole:.3}, sides {sa:.3} {sb:.3}; \
             one overlay again {healed_at:?} s after the heal"
        );
        assert_eq!(net.largest_component_share(None), 1.0, "seed {seed}");
        // The halves are not just bridged: many links cross.
        let adj = net.graph();
        let side = net_sides(&a, MEMBERS);
        let crossing = (0..MEMBERS)
            .flat_map(|i| adj[i].iter().map(move |j| (i, *j)))
            .filter(|(i, j)| side[*i] != side[*j])
            .count()
            / 2;
        println!("seed {seed}: {crossing} links cross the old partition after 60 s");
        assert!(crossing >= 5, "seed {seed}: {crossing}");
        check_bounds(&net);
    }
}

fn net_sides(a: &[usize], n: usize) -> Vec<bool> {
    let mut s = vec![false; n];
    for i in a {
        s[*i] = true;
    }
    s
}

/// Steady-state traffic and churn of 200 members, per node per second, by counter:
/// `cargo test --release --lib steady_state -- --ignored --nocapture`.
#[test]
#[ignore = "prints figures"]
fn steady_state_figures() {
    let mut net = joined(1, 0.01);
    let before: Vec<Vec<(&'static str, u64)>> = net
        .nodes
        .iter()
        .map(|n| n.engine.stats().nonzero())
        .collect();
    let _ = before;
    let sum = |net: &Net| {
        let mut m = std::collections::BTreeMap::new();
        for n in &net.nodes {
            for (k, v) in n.engine.stats().nonzero() {
                *m.entry(k).or_insert(0u64) += v;
            }
        }
        m
    };
    let a = sum(&net);
    net.run_for(Duration::from_secs(60));
    let b = sum(&net);
    for (k, v) in &b {
        let d = v - a.get(k).copied().unwrap_or(0);
        println!("{k}: {:.3} per node per s", d as f64 / 200.0 / 60.0);
    }
}
