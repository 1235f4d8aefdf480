//! URPS: the sketch never underestimates and stays within its ε bound; Γ is a bounded set; a
//! flooded stream leaves the flooders' share of Γ and of the output far below their share of
//! the stream, and near uniform with a finer sketch.

use std::collections::{BTreeMap, BTreeSet};

use crate::identity::NodeIdentity;
use crate::interdomain::urps::*;
use crate::rng::SplitMix64;

fn id(n: u64) -> NodeIdentity {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b[8] = 0xa5;
    NodeIdentity(b)
}

#[test]
fn params_give_the_sketch_dimensions() {
    let p = UrpsParams::default();
    assert_eq!((p.memory, p.rows(), p.columns()), (30, 5, 28));
    assert!(p.check().is_ok());
    let tiny = UrpsParams {
        memory: 1,
        epsilon: 1e-12,
        delta: 1e-300,
    };
    assert_eq!(tiny.columns(), MAX_SKETCH_COLUMNS);
    assert!(tiny.rows() <= MAX_SKETCH_ROWS);
    let silly = UrpsParams {
        memory: 0,
        epsilon: f64::NAN,
        delta: 2.0,
    };
    assert!(silly.check().is_err());
    assert_eq!((silly.rows(), silly.columns()), (1, MAX_SKETCH_COLUMNS));
    let s = CountMin::new(0, 0, 1);
    assert_eq!((s.rows(), s.columns()), (1, 1));
}

#[test]
fn count_min_never_underestimates_and_keeps_its_bound() {
    let seed = 61;
    println!("seed {seed}");
    let mut rng = SplitMix64::new(seed);
    let p = UrpsParams::default();
    let mut sketch = CountMin::new(p.rows(), p.columns(), 7);
    let mut exact: BTreeMap<u64, u64> = BTreeMap::new();
    let n = 20_000u64;
    for _ in 0..n {
        // Skewed: small ids far more often.
        let range = 1 + rng.below(500);
        let x = rng.below(range);
        let after = sketch.add(&id(x));
        let e = exact.entry(x).or_default();
        *e += 1;
        assert!(after >= *e);
    }
    let mut beyond = 0usize;
    for (&x, &count) in &exact {
        let est = sketch.estimate(&id(x));
        assert!(est >= count, "id {x}: estimate {est} < count {count}");
        if est as f64 > count as f64 + p.epsilon * n as f64 {
            beyond += 1;
        }
    }
    assert!(
        beyond as f64 <= p.delta * exact.len() as f64 + 1.0,
        "{beyond} of {} estimates beyond ε·N",
        exact.len()
    );
    // An id never fed can still be overestimated (collisions), but not beyond its cells.
    assert!(sketch.min_cell() <= sketch.estimate(&id(1_000_000)));
}

#[test]
fn gamma_is_a_bounded_set_and_the_output_comes_from_it() {
    let mut rng = SplitMix64::new(67);
    let mut urps: Urps<u64> = Urps::new(UrpsParams::default(), 3);
    assert!(urps.is_empty());
    for step in 0..5_000u64 {
        let x = rng.below(200);
        let (out, meta) = urps.feed(id(x), step, &mut rng);
        assert!(urps.len() <= 30);
        let ids: BTreeSet<_> = urps.memory().map(|(j, _)| *j).collect();
        assert_eq!(ids.len(), urps.len(), "no id twice");
        assert!(ids.contains(&out));
        assert_eq!(urps.get(&out), Some(&meta));
    }
    assert_eq!(urps.len(), 30);
    // Fed again, an id in Γ keeps its place with the new metadata.
    let (held, _) = urps.memory().next().cloned().expect("full");
    urps.feed(held, 999_999, &mut rng);
    assert_eq!(urps.get(&held), Some(&999_999));
    urps.forget(&held);
    assert_eq!(urps.get(&held), None);
    assert_eq!(urps.len(), 29);
    // The same seeds give the same run.
    let run = |s: u64| {
        let mut r = SplitMix64::new(s);
        let mut u: Urps<()> = Urps::new(UrpsParams::default(), s);
        (0..500)
            .map(|_| u.feed(id(r.below(100)), (), &mut r).0)
            .collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
}

/// Feeds `len` ids: a `flood` share of them from `sybils` attacker ids, the rest uniformly from
/// `honest` honest ids; returns the attackers' mean share of Γ and of the outputs over the
/// second half of the stream.
fn flooded(
    params: UrpsParams,
    honest: u64,
    sybils: u64,
    flood: f64,
    len: usize,
    seed: u64,
) -> (f64, f64) {
    let mut rng = SplitMix64::new(seed);
    let mut urps: Urps<()> = Urps::new(params, seed ^ 0x5eed);
    let is_sybil =
        |x: &NodeIdentity| u64::from_le_bytes(x.0[..8].try_into().expect("8")) >= 1_000_000;
    let (mut gamma_share, mut out_share, mut samples) = (0.0, 0.0, 0usize);
    for step in 0..len {
        let x = if rng.next_f64() < flood {
            1_000_000 + rng.below(sybils)
        } else {
            rng.below(honest)
        };
        let (out, ()) = urps.feed(id(x), (), &mut rng);
        if step >= len / 2 {
            let bad = urps.memory().filter(|(j, _)| is_sybil(j)).count();
            gamma_share += bad as f64 / urps.len() as f64;
            out_share += is_sybil(&out) as u8 as f64;
            samples += 1;
        }
    }
    (gamma_share / samples as f64, out_share / samples as f64)
}

#[test]
fn a_flooding_attacker_gets_far_less_than_its_stream_share() {
    let seed = 71;
    println!("seed {seed}");
    // 20 attacker ids send 75 % of the stream from the start; 100 honest ids the rest.
    // Uniform over the ids seen would give the attackers 20/120 ≈ 0.17. (With the reference's
    // minimum over all cells, 120 ids leave a cell of the 5 × 28 unhit, m stays 0, and Γ stays
    // frozen on the first 30 ids read: 0.6 attackers. See the module doc's proposal.)
    let uniform = 20.0 / 120.0;
    let (gamma, out) = flooded(UrpsParams::default(), 100, 20, 0.75, 40_000, seed);
    println!("default sketch: attackers hold {gamma:.3} of Γ, {out:.3} of the output");
    assert!(gamma < 0.4, "attackers' share of Γ {gamma} (stream 0.75)");
    assert!(
        out < 0.4,
        "attackers' share of the output {out} (stream 0.75)"
    );
    // A finer sketch (ε = 0.01: 272 columns) estimates frequencies well, and the share comes
    // close to uniform.
    let fine = UrpsParams {
        epsilon: 0.01,
        ..UrpsParams::default()
    };
    let (gamma, out) = flooded(fine, 100, 20, 0.75, 40_000, seed);
    println!("fine sketch: attackers hold {gamma:.3} of Γ, {out:.3} of the output");
    assert!(
        (gamma - uniform).abs() < 0.08,
        "share of Γ {gamma} vs uniform {uniform}"
    );
    assert!(
        (out - uniform).abs() < 0.08,
        "share of output {out} vs uniform {uniform}"
    );
    // Without the flood the same sampler holds the 20 ids at about their uniform share: the
    // test measures the sketch's work, not a bias against those ids.
    let (gamma, _) = flooded(UrpsParams::default(), 100, 20, 20.0 / 120.0, 40_000, seed);
    assert!((gamma - uniform).abs() < 0.08, "unflooded share {gamma}");
}

#[test]
fn a_single_flooding_id_is_rarely_admitted() {
    let seed = 73;
    println!("seed {seed}");
    let mut rng = SplitMix64::new(seed);
    let mut urps: Urps<()> = Urps::new(UrpsParams::default(), 11);
    let flooder = id(1_000_000);
    // Warm up on honest ids until every cell has been hit and Γ is full.
    for _ in 0..5_000 {
        urps.feed(id(rng.below(300)), (), &mut rng);
    }
    assert!(urps.sketch().min_cell() > 0);
    // Then the flooder sends half the stream; count how often its feed admits it while it is
    // out of Γ, against an honest id's admission rate.
    let (mut tries, mut admitted) = (0u64, 0u64);
    let (mut honest_tries, mut honest_admitted) = (0u64, 0u64);
    for _ in 0..20_000 {
        let (x, flood) = if rng.next_f64() < 0.5 {
            (flooder, true)
        } else {
            (id(rng.below(300)), false)
        };
        let before = urps.get(&x).is_some();
        urps.feed(x, (), &mut rng);
        if !before {
            let now = urps.get(&x).is_some() as u64;
            if flood {
                tries += 1;
                admitted += now;
            } else {
                honest_tries += 1;
                honest_admitted += now;
            }
        }
    }
    let rate = admitted as f64 / tries as f64;
    let honest_rate = honest_admitted as f64 / honest_tries as f64;
    println!("flooder admitted {rate:.4} per try, honest {honest_rate:.4}");
    assert!(rate < 0.1, "flooder admission rate {rate}");
    assert!(
        rate < honest_rate / 5.0,
        "flooder {rate} vs honest {honest_rate}"
    );
}
