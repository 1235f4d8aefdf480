//! Scenarios on the in-memory network of engines (`harness`): convergence to a connected
//! random view in both modes, determinism, and the colluding-minority attack with TAPS + URPS
//! against the CYCLON baseline.

use super::super::SamplerMode;
use super::harness::Net;

#[test]
fn taps_converges_to_full_connected_views() {
    let mut net = Net::new(40, 0, 2, 0.8, SamplerMode::Taps, 1);
    net.start();
    net.rounds(30);
    assert!(net.honest_connected());
    let mut in_degree = vec![0usize; 40];
    for i in net.honest_indices() {
        let v = net.engine(i).view_nodes();
        assert!(v.len() >= 15, "node {i}: view of {}", v.len());
        assert!(!v.contains(&net.nodes[i].node));
        for n in v {
            in_degree[net.index[&n]] += 1;
        }
    }
    // Random views: every node is known to several others, none to almost all.
    assert!(in_degree.iter().all(|d| *d >= 3), "{in_degree:?}");
    assert!(in_degree.iter().all(|d| *d <= 35), "{in_degree:?}");
    // Each node's own descriptor was verified by most others, but only once each.
    let verified: u64 = net
        .honest_indices()
        .iter()
        .map(|&i| super::super::SamplingStats::get(&net.engine(i).stats().descriptors_verified))
        .sum();
    assert!(verified <= 40 * 39, "{verified} signature checks");
}

#[test]
fn cyclon_converges_to_full_connected_views() {
    let mut net = Net::new(40, 0, 2, 1.0, SamplerMode::Cyclon, 2);
    net.start();
    net.rounds(30);
    assert!(net.honest_connected());
    for i in net.honest_indices() {
        let v = net.engine(i).view_nodes();
        assert!(v.len() >= 10, "node {i}: view of {}", v.len());
    }
}

#[test]
fn views_survive_loss_and_one_seed_gives_one_run() {
    let run = |seed| {
        let mut net = Net::new(30, 0, 2, 0.8, SamplerMode::Taps, seed);
        net.loss = 0.1;
        net.start();
        net.rounds(25);
        assert!(net.honest_connected());
        net.honest_indices()
            .into_iter()
            .map(|i| net.engine(i).view_nodes())
            .collect::<Vec<_>>()
    };
    let a = run(5);
    assert_eq!(a, run(5));
    assert_ne!(a, run(6));
}

#[test]
fn colluders_stay_near_their_share_with_taps_and_urps_not_with_cyclon() {
    // 20 % colluders pushing only each other's ids, every honest node with 3 explicit honest
    // friends.
    let (honest, colluders) = (80, 20);
    let share = colluders as f64 / (honest + colluders) as f64;
    let mut taps = Net::new(honest, colluders, 3, 0.8, SamplerMode::Taps, 9);
    let mut cyclon = Net::new(honest, colluders, 3, 0.8, SamplerMode::Cyclon, 9);
    taps.start();
    cyclon.start();
    taps.rounds(60);
    cyclon.rounds(60);
    let (t, c) = (taps.colluder_view_share(), cyclon.colluder_view_share());
    eprintln!(
        "colluder view share: taps {t:.3} (eclipsed {}), cyclon {c:.3} (eclipsed {})",
        taps.eclipsed(),
        cyclon.eclipsed()
    );
    assert!(t <= 1.3 * share, "taps + urps: {t:.3} of the views");
    assert!(c >= 1.5 * t, "cyclon {c:.3} vs taps {t:.3}");
    assert_eq!(taps.eclipsed(), 0);
    assert!(taps.honest_connected());
}
