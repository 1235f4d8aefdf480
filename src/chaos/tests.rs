//! Tests of the fault decisions (replay from a seed, each fault's rate) and of the proxy over
//! real sockets on the loopback.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;

fn settings() -> FaultSettings {
    FaultSettings::NONE
}

fn run(link: &mut FaultLink, n: u64, len: usize) -> (Vec<Fate>, Vec<Release>) {
    let mut fates = Vec::new();
    let mut out = Vec::new();
    for i in 0..n {
        let mut d = i.to_le_bytes().to_vec();
        d.resize(len.max(8), 0xab);
        fates.push(link.on_datagram(Duration::from_millis(i), d, &mut out));
    }
    (fates, out)
}

#[test]
fn splitmix_matches_the_reference_and_replays() {
    // First outputs of the reference SplitMix64 for seed 0.
    let mut g = SplitMix64::new(0);
    assert_eq!(g.next_u64(), 0xe220_a839_7b1d_cdaf);
    assert_eq!(g.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    let a: Vec<u64> = {
        let mut g = SplitMix64::new(42);
        (0..100).map(|_| g.next_u64()).collect()
    };
    let b: Vec<u64> = {
        let mut g = SplitMix64::new(42);
        (0..100).map(|_| g.next_u64()).collect()
    };
    assert_eq!(a, b);
    let mut g = SplitMix64::new(43);
    assert_ne!(a[0], g.next_u64());
    let mut g = SplitMix64::new(7);
    for _ in 0..10_000 {
        let x = g.next_f64();
        assert!((0.0..1.0).contains(&x));
        assert!(g.below(3) < 3);
    }
    assert_eq!(g.below(0), 0);
}

#[test]
fn streams_differ_per_client_and_direction() {
    let s = |c, d| stream_seed(9, c, d);
    assert_ne!(s(0, Direction::Upstream), s(0, Direction::Downstream));
    assert_ne!(s(0, Direction::Upstream), s(1, Direction::Upstream));
    assert_eq!(s(3, Direction::Downstream), s(3, Direction::Downstream));
    assert_ne!(
        stream_seed(9, 0, Direction::Upstream),
        stream_seed(10, 0, Direction::Upstream)
    );
}

#[test]
fn no_faults_passes_everything_unchanged_and_in_order() {
    let mut link = FaultLink::new(settings(), 1);
    let (fates, out) = run(&mut link, 1000, 100);
    assert!(fates.iter().all(|f| matches!(
        f,
        Fate::Passed {
            copies: 1,
            flipped: 0,
            held: false,
            delayed: false
        }
    )));
    assert_eq!(out.len(), 1000);
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r.at, Duration::from_millis(i as u64));
        assert_eq!(r.datagram[..8], (i as u64).to_le_bytes());
    }
}

#[test]
fn the_same_seed_decides_the_same_fates() {
    let s = FaultSettings {
        loss: 0.1,
        dup: 0.05,
        reorder: 0.05,
        delay: Duration::from_millis(2),
        jitter: Duration::from_millis(2),
        corrupt: 0.02,
        blackhole: None,
    };
    let (f1, o1) = run(&mut FaultLink::new(s, 77), 5000, 64);
    let (f2, o2) = run(&mut FaultLink::new(s, 77), 5000, 64);
    assert_eq!(f1, f2);
    assert_eq!(o1, o2);
    let (f3, _) = run(&mut FaultLink::new(s, 78), 5000, 64);
    assert_ne!(f1, f3);
}

#[test]
fn loss_and_duplication_rates_match_the_settings() {
    let s = FaultSettings {
        loss: 0.1,
        dup: 0.05,
        ..settings()
    };
    let n = 100_000;
    let (fates, out) = run(&mut FaultLink::new(s, 5), n, 16);
    let lost = fates.iter().filter(|f| **f == Fate::Lost).count() as f64;
    let dup = fates
        .iter()
        .filter(|f| matches!(f, Fate::Passed { copies: 2, .. }))
        .count() as f64;
    assert!((lost / n as f64 - 0.1).abs() < 0.005, "loss {lost}");
    // Duplication is drawn independently of loss: 5 % of the 90 % that pass.
    assert!((dup / n as f64 - 0.045).abs() < 0.004, "dup {dup}");
    assert_eq!(out.len() as f64, n as f64 - lost + dup);
    let all = FaultSettings {
        loss: 1.0,
        ..settings()
    };
    let (fates, out) = run(&mut FaultLink::new(all, 5), 1000, 16);
    assert!(fates.iter().all(|f| *f == Fate::Lost));
    assert!(out.is_empty());
}

#[test]
fn corruption_flips_one_to_three_bits() {
    let s = FaultSettings {
        corrupt: 1.0,
        ..settings()
    };
    let mut link = FaultLink::new(s, 11);
    let mut seen = [0usize; 4];
    for i in 0..3000u64 {
        let original: Vec<u8> = (0..200).map(|j| (i as u8).wrapping_add(j)).collect();
        let mut out = Vec::new();
        let fate = link.on_datagram(Duration::ZERO, original.clone(), &mut out);
        let Fate::Passed { flipped, .. } = fate else {
            panic!("{fate:?}")
        };
        let distance: u32 = original
            .iter()
            .zip(&out[0].datagram)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(distance, flipped as u32);
        assert!((1..=3).contains(&distance), "{distance}");
        seen[distance as usize] += 1;
    }
    assert!(seen[1] > 0 && seen[2] > 0 && seen[3] > 0, "{seen:?}");
    // A one-byte datagram still gets distinct bits; an empty one is left alone.
    let mut out = Vec::new();
    link.on_datagram(Duration::ZERO, vec![0], &mut out);
    assert!((1..=3).contains(&out[0].datagram[0].count_ones()));
    let fate = link.on_datagram(Duration::ZERO, Vec::new(), &mut out);
    assert!(matches!(fate, Fate::Passed { flipped: 0, .. }));
}

#[test]
fn reordering_releases_a_held_datagram_after_the_next_one() {
    let s = FaultSettings {
        reorder: 1.0,
        ..settings()
    };
    let mut link = FaultLink::new(s, 3);
    let mut out = Vec::new();
    let f0 = link.on_datagram(Duration::ZERO, vec![0], &mut out);
    assert!(matches!(f0, Fate::Passed { held: true, .. }));
    assert!(out.is_empty());
    assert_eq!(link.hold_deadline(), Some(REORDER_MAX_HOLD));
    // The next one cannot be held too: it goes, then the held one.
    let f1 = link.on_datagram(Duration::from_millis(1), vec![1], &mut out);
    assert!(matches!(f1, Fate::Passed { held: false, .. }));
    let order: Vec<u8> = out.iter().map(|r| r.datagram[0]).collect();
    assert_eq!(order, vec![1, 0]);
    assert_eq!(out[1].at, Duration::from_millis(1));
    // Over many datagrams: every one comes out exactly once.
    let mut link = FaultLink::new(
        FaultSettings {
            reorder: 0.3,
            ..settings()
        },
        4,
    );
    let (_, mut out) = run(&mut link, 1000, 8);
    if let Some(r) = link.release_expired(Duration::from_secs(10)) {
        out.push(r);
    }
    let mut got: Vec<u64> = out
        .iter()
        .map(|r| u64::from_le_bytes(r.datagram[..8].try_into().unwrap()))
        .collect();
    let in_order = got.windows(2).all(|w| w[0] < w[1]);
    assert!(!in_order, "some were reordered");
    got.sort_unstable();
    assert_eq!(got, (0..1000).collect::<Vec<u64>>());
}

#[test]
fn a_held_datagram_is_released_after_the_longest_hold() {
    let s = FaultSettings {
        reorder: 1.0,
        delay: Duration::from_millis(5),
        ..settings()
    };
    let mut link = FaultLink::new(s, 3);
    let mut out = Vec::new();
    link.on_datagram(Duration::from_millis(10), vec![7], &mut out);
    assert!(link.release_expired(Duration::from_millis(20)).is_none());
    let r = link
        .release_expired(Duration::from_millis(10) + REORDER_MAX_HOLD)
        .unwrap();
    assert_eq!(r.datagram, vec![7]);
    assert_eq!(r.at, Duration::from_millis(10) + REORDER_MAX_HOLD);
    assert!(link.hold_deadline().is_none());
    assert!(link.take_held().is_none());
}

#[test]
fn delay_and_jitter_stay_within_bounds() {
    let s = FaultSettings {
        delay: Duration::from_millis(2),
        jitter: Duration::from_millis(2),
        ..settings()
    };
    let mut link = FaultLink::new(s, 8);
    let mut out = Vec::new();
    let (mut min, mut max, mut zero) = (Duration::MAX, Duration::ZERO, 0);
    for _ in 0..10_000 {
        out.clear();
        let fate = link.on_datagram(Duration::from_secs(1), vec![1], &mut out);
        let d = out[0].at - Duration::from_secs(1);
        assert_eq!(
            matches!(fate, Fate::Passed { delayed: true, .. }),
            !d.is_zero()
        );
        min = min.min(d);
        max = max.max(d);
        zero += d.is_zero() as u32;
    }
    assert!(max <= Duration::from_millis(4), "{max:?}");
    assert!(max > Duration::from_micros(3900), "{max:?}");
    assert!(min < Duration::from_micros(100), "{min:?}");
    assert_eq!(zero, 0, "a delay of exactly zero has probability zero");
    // Jitter larger than the delay is clamped at zero.
    let s = FaultSettings {
        delay: Duration::from_millis(1),
        jitter: Duration::from_millis(10),
        ..settings()
    };
    let mut link = FaultLink::new(s, 8);
    for _ in 0..1000 {
        out.clear();
        link.on_datagram(Duration::ZERO, vec![1], &mut out);
        assert!(out[0].at <= Duration::from_millis(11));
    }
}

#[test]
fn blackhole_follows_the_clock() {
    let s = FaultSettings {
        blackhole: Some((Duration::from_secs(5), Duration::from_secs(2))),
        ..settings()
    };
    for (t, dark) in [
        (0, true),
        (4_999, true),
        (5_000, false),
        (6_999, false),
        (7_000, true),
        (11_999, true),
        (12_000, false),
        (70_000, true),
    ] {
        assert_eq!(s.blackholed(Duration::from_millis(t)), dark, "{t} ms");
        let mut link = FaultLink::new(s, 1);
        let mut out = Vec::new();
        let fate = link.on_datagram(Duration::from_millis(t), vec![1], &mut out);
        assert_eq!(fate == Fate::Blackholed, dark, "{t} ms");
        assert_eq!(out.is_empty(), dark);
    }
    assert!(!settings().blackholed(Duration::from_secs(1)));
}

#[test]
fn configurations_are_validated() {
    let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:4001".parse().unwrap();
    let ok = ChaosConfig::new(a, b);
    assert_eq!(ok.validate(), Ok(()));
    let bad = |f: &dyn Fn(&mut ChaosConfig)| {
        let mut c = ok.clone();
        f(&mut c);
        c.validate().unwrap_err()
    };
    assert!(matches!(
        bad(&|c| c.loss = 1.5),
        ChaosError::Probability { name: "loss", .. }
    ));
    assert!(matches!(
        bad(&|c| c.dup = -0.1),
        ChaosError::Probability { name: "dup", .. }
    ));
    assert!(matches!(
        bad(&|c| c.corrupt = f64::NAN),
        ChaosError::Probability {
            name: "corrupt",
            ..
        }
    ));
    assert!(matches!(
        bad(&|c| c.reorder = 2.0),
        ChaosError::Probability {
            name: "reorder",
            ..
        }
    ));
    assert!(matches!(
        bad(&|c| c.jitter_ms = MAX_DELAY_MS + 1),
        ChaosError::Delay { .. }
    ));
    assert!(matches!(
        bad(&|c| c.blackhole = Some((Duration::ZERO, Duration::from_secs(1)))),
        ChaosError::Blackhole { .. }
    ));
    assert_eq!(bad(&|c| c.forward = a), ChaosError::SameAddress(a));
    // Listening on every address at the forward port would relay to itself.
    let any: SocketAddr = "0.0.0.0:4001".parse().unwrap();
    assert_eq!(bad(&|c| c.listen = any), ChaosError::SameAddress(any));
    let other_ip = ChaosConfig::new(a, "127.0.0.2:4000".parse().unwrap());
    assert_eq!(other_ip.validate(), Ok(()));
    assert!(matches!(
        bad(&|c| c.forward = "0.0.0.0:5".parse().unwrap()),
        ChaosError::Forward(_)
    ));
    assert!(matches!(
        bad(&|c| c.forward = "127.0.0.1:0".parse().unwrap()),
        ChaosError::Forward(_)
    ));
    let err = Chaos::start(ChaosConfig {
        loss: 3.0,
        ..ok.clone()
    })
    .err()
    .unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("loss"), "{err}");
}

/// An echo server behind the proxy: two clients, replies mapped back to each.
#[test]
fn relays_between_clients_and_the_server_both_ways() {
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut peers = std::collections::HashSet::new();
        while !stop.load(Ordering::SeqCst) {
            if let Ok((n, from)) = server.recv_from(&mut buf) {
                peers.insert(from);
                server.send_to(&buf[..n], from).unwrap();
            }
        }
        peers.len()
    });
    let proxy = Chaos::start(ChaosConfig {
        delay_ms: 1,
        ..ChaosConfig::new("127.0.0.1:0".parse().unwrap(), server_addr)
    })
    .unwrap();
    assert_ne!(proxy.listen_addr().port(), 0);
    assert_eq!(proxy.forward_addr(), server_addr);
    let clients: Vec<std::net::UdpSocket> = (0..2)
        .map(|_| {
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c
        })
        .collect();
    for round in 0..20u8 {
        for (i, c) in clients.iter().enumerate() {
            c.send_to(&[i as u8, round], proxy.listen_addr()).unwrap();
            let mut buf = [0u8; 16];
            let (n, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!(from, proxy.listen_addr());
            assert_eq!(&buf[..n], &[i as u8, round]);
        }
    }
    let counters = proxy.stop();
    done.store(true, Ordering::SeqCst);
    assert_eq!(echo.join().unwrap(), 2, "one upstream socket per client");
    assert_eq!(counters.clients, 2);
    for d in [counters.upstream, counters.downstream] {
        assert_eq!(d.received, 40);
        assert_eq!(d.forwarded, 40);
        assert_eq!(d.delayed, 40);
        assert_eq!(d.dropped + d.errors + d.blackholed, 0);
    }
    assert!(counters.to_string().contains("upstream:   received=40"));
}
