//! A small network of Clustering engines: each node's sampling view is a fresh random sample
//! of the others every round (as TAPS would give), and the engines gossip among themselves.

use super::*;

const N: u32 = 60;
const COMMUNITIES: u32 = 6;

/// Node `i` is in its community's two domains, and every third node in one more random one.
fn memberships(i: u32, rng: &mut SplitMix64) -> BTreeSet<DomainIdentity> {
    let c = i % COMMUNITIES;
    let mut set = BTreeSet::from([domain(2 * c), domain(2 * c + 1)]);
    if i % 3 == 0 {
        set.insert(domain(100 + rng.below(20) as u32));
    }
    set
}

fn build(seed: u64, settings: ClusteringSettings) -> (Net, SplitMix64) {
    let mut rng = SplitMix64::new(seed);
    let now = Now::read();
    let nodes = (0..N)
        .map(|i| {
            let domains = memberships(i, &mut rng);
            Node::new(i, domains, settings.clone(), now, &mut rng)
        })
        .collect();
    (Net::new(nodes), rng)
}

/// A fresh sampling view of 15 random others (trust 0.8) for every node.
fn resample(net: &mut Net, rng: &mut SplitMix64) {
    let descs: Vec<Arc<NodeDescriptor>> = net.nodes.iter().map(|n| n.desc.clone()).collect();
    for (i, n) in net.nodes.iter().enumerate() {
        let mut list = Vec::new();
        let mut picked = BTreeSet::new();
        while list.len() < 15 {
            let j = rng.below(descs.len() as u64) as usize;
            if j != i && picked.insert(j) {
                list.push((descs[j].clone(), 0.8));
            }
        }
        n.set_sampling(list);
    }
}

fn run(seed: u64, rounds: usize) -> Net {
    let (mut net, mut rng) = build(seed, ClusteringSettings::default());
    for _ in 0..rounds {
        resample(&mut net, &mut rng);
        net.round();
    }
    net
}

fn shared(net: &Net, a: usize, b: &NodeIdentity) -> usize {
    let j = net.index[b];
    net.nodes[a].domains.intersection(&net.nodes[j].domains).count()
}

#[test]
fn tac_converges_to_nodes_sharing_domains_and_fingers_are_dissimilar() {
    let seed = 0x7ac;
    println!("seed {seed}");
    let net = run(seed, 20);
    let (mut view_links, mut view_sharing, mut finger_links, mut finger_sharing) = (0, 0, 0, 0);
    let mut found_each_other = 0;
    for (i, n) in net.nodes.iter().enumerate() {
        let probe = n.engine.probe();
        let view = probe.view();
        assert!(view.len() <= 10 && probe.fingers().len() <= 3);
        let sharing = view.iter().filter(|l| shared(&net, i, &l.node) > 0).count();
        view_links += view.len();
        view_sharing += sharing;
        // A community has 10 members: 9 others to find.
        if sharing >= 8 {
            found_each_other += 1;
        }
        for f in probe.fingers() {
            finger_links += 1;
            finger_sharing += (shared(&net, i, &f.node) > 0) as usize;
        }
    }
    let view_share = view_sharing as f64 / view_links as f64;
    let finger_share = finger_sharing as f64 / finger_links.max(1) as f64;
    println!(
        "view links sharing a domain {view_share:.3}, fingers {finger_share:.3}, \
         nodes with ≥ 8 of 9 community peers {found_each_other}/{N}"
    );
    // A random view shares a domain with about 1/6 of its entries.
    assert!(view_links >= (N as usize) * 9, "{view_links}");
    assert!(view_share > 0.85, "{view_share}");
    assert!(found_each_other as f64 >= 0.9 * N as f64, "{found_each_other}");
    assert!(finger_links >= (N as usize) * 2, "{finger_links}");
    assert!(finger_share < 0.15, "{finger_share}");
}

#[test]
fn psi_gives_the_exact_intersection_with_every_cluster_neighbour() {
    let seed = 0x951;
    println!("seed {seed}");
    let net = run(seed, 20);
    let mut checked = 0;
    let mut published = 0;
    for (i, n) in net.nodes.iter().enumerate() {
        for (peer, outcome) in n.engine.probe().psi() {
            let j = net.index[&peer];
            let truth: Vec<DomainIdentity> = n.domains.intersection(&net.nodes[j].domains).copied().collect();
            assert_eq!(outcome.shared, truth, "node {i} with {peer:?}");
            assert_eq!(outcome.shared_count as usize, truth.len());
            checked += 1;
        }
        for nb in n.board.list(BoardSource::Clustering) {
            if let Some(s) = nb.shared {
                assert_eq!(s as usize, shared(&net, i, &nb.node()));
                published += 1;
            }
        }
        assert_eq!(n.stat(|s| &s.psi_bad_tags) + n.stat(|s| &s.psi_bad_filter), 0);
    }
    println!("PSI results checked {checked}, shared counts on boards {published}");
    assert!(checked >= (N as usize) * 8, "{checked}");
    assert!(published >= (N as usize) * 5, "{published}");
}

#[test]
fn one_seed_gives_one_run() {
    let views = |net: &Net| -> Vec<Vec<NodeIdentity>> {
        net.nodes
            .iter()
            .map(|n| n.engine.probe().view().iter().map(|l| l.node).collect())
            .collect()
    };
    let (a, b) = (run(5, 6), run(5, 6));
    assert_eq!(views(&a), views(&b));
    assert_ne!(views(&a), views(&run(6, 6)));
}

/// Ten nodes claiming every domain (all-ones filters) with full trust, among six honest nodes
/// that share this node's domains and ten that share none: the claimants take no cluster slot
/// and no finger. Without the cap (control) they would take the slots the dissimilar honest
/// nodes get.
#[test]
fn an_all_ones_filter_does_not_take_the_cluster_slots() {
    let run = |max_claimed_domains: u32| -> (Vec<NodeIdentity>, Vec<NodeIdentity>, BTreeSet<NodeIdentity>, u64) {
        let mut rng = SplitMix64::new(77);
        let now = Now::read();
        let settings = ClusteringSettings {
            limits: ClusteringLimits {
                max_claimed_domains,
                ..ClusteringLimits::default()
            },
            ..ClusteringSettings::default()
        };
        let mine = BTreeSet::from([domain(1), domain(2)]);
        let mut me = Node::new(0, mine.clone(), settings, now, &mut rng);
        let mut list = Vec::new();
        for i in 1..=6 {
            let d = descriptor(&key(i), &mine, 1, now.wall, &mut rng);
            list.push((Arc::new(d), 0.5));
        }
        for i in 7..=16 {
            let d = descriptor(&key(i), &BTreeSet::from([domain(50 + i)]), 1, now.wall, &mut rng);
            list.push((Arc::new(d), 0.5));
        }
        let mut attackers = BTreeSet::new();
        let p = BlipParams::default();
        for i in 17..=26 {
            let mut f = crate::wire::MembershipFilter::empty(p.bits, p.hashes);
            f.bytes.iter_mut().for_each(|b| *b = 0xff);
            f.epsilon_milli = blip::epsilon_milli(p.epsilon);
            let d = descriptor_with(&key(i), f, 1, now.wall);
            attackers.insert(d.node());
            list.push((Arc::new(d), 1.0));
        }
        me.set_sampling(list);
        // One exchange from an honest node makes the engine merge its pool.
        let peer = descriptor(&key(1), &mine, 1, now.wall, &mut rng);
        let from = peer.node();
        me.deliver(from, &ClusteringMessage::Exchange { descriptors: vec![peer] }.to_bytes());
        let probe = me.engine.probe();
        let view = probe.view().iter().map(|l| l.node).collect();
        let fingers = probe.fingers().iter().map(|l| l.node).collect();
        (view, fingers, attackers, me.stat(|s| &s.overfull_filters))
    };
    let (view, fingers, attackers, overfull) = run(ClusteringLimits::default().max_claimed_domains);
    assert_eq!(view.len(), 10);
    assert!(view.iter().all(|n| !attackers.contains(n)), "{view:?}");
    assert!(fingers.iter().all(|n| !attackers.contains(n)));
    assert_eq!(overfull, 10);
    // The control: with no cap, the claimants outrank the dissimilar honest nodes.
    let (view, _, attackers, overfull) = run(0);
    assert_eq!(overfull, 0);
    let taken = view.iter().filter(|n| attackers.contains(n)).count();
    assert!(taken >= 3, "the control should let claimants in: {taken}");
}
