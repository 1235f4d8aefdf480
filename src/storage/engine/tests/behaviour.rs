//! Gets, puts with receipts, searches, fetches and expiry.

use super::*;
use crate::mail::storage::StoragePrefs;
use crate::storage::tree::read_object;

fn long(net: &Net) -> Timestamp {
    net.now.wall.after(Duration::from_secs(3600))
}

#[test]
fn local_put_then_get_is_a_local_hit_and_a_bad_block_is_refused() {
    let mut net = Net::new(1, |_| StorageSettings::default());
    let b = leaf(100, 1);
    let prefs = StoragePrefs {
        expiry: long(&net),
        min_trust: 0,
    };
    net.local(
        0,
        StorageMail::Put {
            bytes: b.bytes().to_vec(),
            prefs,
            node: None,
        },
    );
    assert_eq!(net.nodes[0].puts(), vec![Ok(None)]);
    net.get(0, b.id(), Lookup::default());
    let (bytes, at) = net.nodes[0].gets()[0].clone().unwrap();
    assert_eq!(bytes, b.bytes());
    assert_eq!(
        (at.holder, at.hops, at.cached),
        (net.nodes[0].id(), 0, false)
    );
    net.local(
        0,
        StorageMail::Put {
            bytes: vec![9, 9, 9],
            prefs,
            node: None,
        },
    );
    assert!(net.nodes[0].puts()[1]
        .as_ref()
        .unwrap_err()
        .contains("not a valid block"));
    // Nothing held, nothing to search: a clear error at once.
    net.get(0, BlockId([3; 32]), Lookup::default());
    assert!(net.nodes[0].gets()[1]
        .as_ref()
        .unwrap_err()
        .contains("not held here"));
}

#[test]
fn a_remote_put_is_answered_with_a_receipt_and_holders_are_passed_on() {
    let mut net = Net::new(3, |_| StorageSettings::default());
    let b = leaf(300, 2);
    let holder = net.nodes[1].id();
    let prefs = StoragePrefs {
        expiry: long(&net),
        min_trust: 0,
    };
    net.local(
        0,
        StorageMail::Put {
            bytes: b.bytes().to_vec(),
            prefs,
            node: Some(holder),
        },
    );
    net.run();
    let receipt = net.nodes[0].puts()[0].clone().unwrap().unwrap();
    assert_eq!((receipt.block, receipt.node), (b.id(), holder));
    assert!(
        receipt.check(net.now.wall).is_ok(),
        "anyone can check the receipt"
    );
    assert!(net.nodes[1].store.contains(&b.id()).unwrap());
    // Node 2 asks node 0, which does not hold the block but knows node 1's receipt.
    let n0 = net.nodes[0].id();
    net.get(2, b.id(), Lookup::from_nodes(vec![n0]));
    net.run();
    let (bytes, at) = net.nodes[2].gets()[0].clone().unwrap();
    assert_eq!(bytes, b.bytes());
    assert_eq!(at.holder, holder);
    assert_eq!(net.counters(0)["served_holders"], 1);
}

#[test]
fn the_put_policy_caps_lifetimes_and_refuses_past_shares_and_when_closed() {
    let mut net = Net::new(3, |i| {
        let mut s = StorageSettings::default();
        s.puts.max_lifetime = Duration::from_secs(60);
        s.puts.max_bytes_per_node = 1000;
        s.puts.accept = i != 2;
        s
    });
    let holder = net.nodes[1].id();
    let prefs = StoragePrefs {
        expiry: long(&net),
        min_trust: 0,
    };
    let a = leaf(600, 1);
    let b = leaf(600, 2);
    for blk in [&a, &b] {
        net.local(
            0,
            StorageMail::Put {
                bytes: blk.bytes().to_vec(),
                prefs,
                node: Some(holder),
            },
        );
    }
    net.run();
    let puts = net.nodes[0].puts();
    let r = puts[0].clone().unwrap().unwrap();
    assert!(
        r.until <= net.now.wall.after(Duration::from_secs(60)),
        "capped to the lifetime"
    );
    assert!(
        puts[1].as_ref().unwrap_err().contains("share"),
        "{:?}",
        puts[1]
    );
    let closed = net.nodes[2].id();
    net.local(
        0,
        StorageMail::Put {
            bytes: a.bytes().to_vec(),
            prefs,
            node: Some(closed),
        },
    );
    net.run();
    assert!(net.nodes[0].puts()[2]
        .as_ref()
        .unwrap_err()
        .contains("not_accepted"));
    assert_eq!(net.counters(1)["refused_full"], 1);
    assert_eq!(net.counters(2)["refused_put_policy"], 1);
}

#[test]
fn min_trust_is_honoured_against_the_requesters_trust() {
    let mut net = Net::new(2, |_| StorageSettings::default());
    let b = leaf(50, 5);
    let until = long(&net);
    net.nodes[1]
        .store
        .put(&b, serve::meta_of(until, 200))
        .unwrap();
    let n1 = net.nodes[1].id();
    net.get(0, b.id(), Lookup::from_nodes(vec![n1]));
    net.run();
    assert!(
        net.nodes[0].gets()[0].is_err(),
        "default trust 128 is below 200"
    );
    assert_eq!(net.counters(1)["refused_trust"], 1);
    net.set_trust(1, 0, 220);
    net.get(0, b.id(), Lookup::from_nodes(vec![n1]));
    net.run();
    assert!(net.nodes[0].gets()[1].is_ok());
}

#[test]
fn a_random_walk_in_the_domain_finds_a_rare_block_and_caches_it_on_the_way_back() {
    let mut net = Net::new(40, |_| StorageSettings {
        fanout: 4,
        hop_limit: 40,
        ..StorageSettings::default()
    });
    let b = leaf(200, 7);
    let now = net.now.wall;
    keep(&net.nodes[33].store, &b, now);
    net.get(0, b.id(), Lookup::random(Some(domain())));
    net.run();
    let (bytes, at) = net.nodes[0].gets()[0].clone().unwrap();
    assert_eq!(bytes, b.bytes());
    assert_eq!(at.holder, net.nodes[33].id());
    assert!(at.hops >= 1);
    let relayed: u64 = (0..40)
        .map(|i| net.counters(i).get("found_relayed").copied().unwrap_or(0))
        .sum();
    let cached: u64 = (1..40)
        .filter(|i| *i != 33)
        .map(|i| net.counters(i).get("cached").copied().unwrap_or(0))
        .sum();
    // Every walker that found it sent it back: at least the winner's path was relayed.
    assert!(
        relayed as u32 >= at.hops - 1,
        "{relayed} relays for {} hops",
        at.hops
    );
    assert_eq!(cached, relayed, "every relay cached what it relayed");
    // The origin cached it too: a second get is a cache hit, no message sent.
    let sent = net.counters(0)["sent"];
    net.get(0, b.id(), Lookup::random(Some(domain())));
    let (_, at2) = net.nodes[0].gets()[1].clone().unwrap();
    assert!(at2.cached && at2.hops == 0);
    assert_eq!(net.counters(0)["sent"], sent);
}

#[test]
fn a_search_that_finds_nothing_fails_after_its_timeout() {
    let mut net = Net::new(10, |_| StorageSettings {
        fanout: 2,
        hop_limit: 5,
        ..StorageSettings::default()
    });
    net.get(0, BlockId([8; 32]), Lookup::random(Some(domain())));
    net.run();
    assert!(net.nodes[0].gets().is_empty(), "still searching");
    let walked: u64 = (0..10)
        .map(|i| {
            net.counters(i)
                .get("searches_forwarded")
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert!(walked <= 2 * 4, "two walkers of at most 5 hops: {walked}");
    net.advance(Duration::from_secs(11));
    assert!(net.nodes[0].gets()[0]
        .as_ref()
        .unwrap_err()
        .contains("not found"));
}

fn fetch(net: &mut Net, i: usize, root: BlockId, from: Vec<usize>) {
    let from = from.iter().map(|j| net.nodes[*j].id()).collect();
    let until = long(net);
    net.local(
        i,
        StorageMail::Fetch {
            root,
            lookup: Lookup::from_nodes(from),
            until,
            max_size: 1 << 30,
        },
    );
}

#[test]
fn a_fetch_pulls_every_block_from_several_holders_in_parallel() {
    let mut net = Net::new(3, |_| StorageSettings {
        max_in_flight: 6,
        max_in_flight_per_holder: 3,
        ..StorageSettings::default()
    });
    let (blocks, root) = object(40_000, 1000, 4);
    let now = net.now.wall;
    for b in &blocks {
        keep(&net.nodes[1].store, b, now);
        keep(&net.nodes[2].store, b, now);
    }
    fetch(&mut net, 0, root, vec![1, 2]);
    // Bounded: never more than 6 requests out at once.
    let mut most = 0;
    while !net.queue.is_empty() {
        most = most.max(net.nodes[0].engine.sent.len());
        let f = net.queue.pop_front().unwrap();
        let to = net.index_of(&f.to).unwrap();
        net.deliver(f.from, to, f.id, f.reply_to, f.body);
    }
    assert!(most <= 6, "{most} in flight");
    assert_eq!(net.nodes[0].fetches(), vec![Ok(40_000)]);
    let mut out = Vec::new();
    read_object(net.nodes[0].store.as_ref(), &root, &mut out).unwrap();
    let data: Vec<u8> = (0..40_000).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(out, data);
    let (s1, s2) = (net.counters(1)["served"], net.counters(2)["served"]);
    assert!(s1 > 5 && s2 > 5, "both holders served: {s1} and {s2}");
    assert_eq!(s1 + s2, blocks.len() as u64);
}

#[test]
fn a_fetch_after_a_lost_connection_resumes_without_fetching_a_block_twice() {
    let mut net = Net::new(2, |_| StorageSettings {
        max_in_flight: 2,
        max_in_flight_per_holder: 2,
        ..StorageSettings::default()
    });
    let (blocks, root) = object(30_000, 1000, 8);
    let now = net.now.wall;
    for b in &blocks {
        keep(&net.nodes[1].store, b, now);
    }
    fetch(&mut net, 0, root, vec![1]);
    // Deliver a dozen messages, then the holder goes away.
    for _ in 0..12 {
        let f = net.queue.pop_front().unwrap();
        let to = net.index_of(&f.to).unwrap();
        net.deliver(f.from, to, f.id, f.reply_to, f.body);
    }
    net.down.insert(1);
    net.run();
    net.advance(Duration::from_secs(20));
    net.advance(Duration::from_secs(20));
    let r = net.nodes[0].fetches();
    assert!(r.len() == 1 && r[0].is_err(), "{r:?}");
    let first = net.counters(0)["fetched_blocks"];
    assert!(first > 0 && (first as usize) < blocks.len());
    net.down.clear();
    fetch(&mut net, 0, root, vec![1]);
    net.run();
    assert_eq!(net.nodes[0].fetches()[1], Ok(30_000));
    assert_eq!(
        net.counters(0)["fetched_blocks"] as usize,
        blocks.len(),
        "none twice"
    );
}

#[test]
fn a_fetch_with_no_holder_looks_the_root_up_and_refuses_oversized_objects() {
    let mut net = Net::new(12, |_| StorageSettings {
        fanout: 3,
        hop_limit: 12,
        ..StorageSettings::default()
    });
    let (blocks, root) = object(5_000, 1000, 4);
    let now = net.now.wall;
    for b in &blocks {
        keep(&net.nodes[9].store, b, now);
    }
    let until = long(&net);
    let lookup = Lookup::random(Some(domain()));
    net.local(
        0,
        StorageMail::Fetch {
            root,
            lookup: lookup.clone(),
            until,
            max_size: 1 << 20,
        },
    );
    net.run();
    assert_eq!(net.nodes[0].fetches(), vec![Ok(5_000)]);
    net.local(
        1,
        StorageMail::Fetch {
            root,
            lookup,
            until,
            max_size: 4_000,
        },
    );
    net.run();
    assert!(net.nodes[1].fetches()[0]
        .as_ref()
        .unwrap_err()
        .contains("over the limit"));
}

#[test]
fn expired_blocks_are_collected_and_not_served() {
    let mut net = Net::new(2, |_| StorageSettings::default());
    let b = leaf(10, 1);
    let soon = net.now.wall.after(Duration::from_secs(5));
    net.nodes[1].store.put(&b, serve::meta_of(soon, 0)).unwrap();
    net.advance(Duration::from_secs(6));
    let n1 = net.nodes[1].id();
    net.get(0, b.id(), Lookup::from_nodes(vec![n1]));
    net.run();
    assert!(net.nodes[0].gets()[0].is_err(), "expired: not served");
    net.advance(Duration::from_secs(11));
    assert!(!net.nodes[1].store.contains(&b.id()).unwrap(), "collected");
    assert_eq!(net.counters(1)["collected"], 1);
}

#[test]
fn a_topic_search_climbs_the_parents_towards_the_publisher() {
    let mut net = Net::new(4, |_| StorageSettings::default());
    let topic = crate::identity::TopicIdentity([0x70; 32]);
    // 0's parent is 1, 1's is 2; 2 (next to the publisher) holds the block; 3 is off the tree.
    for (child, parent) in [(0, 1), (1, 2)] {
        let p = net.nodes[parent].id();
        let board = TopicParents::new();
        board.set(topic, vec![p]);
        net.nodes[child].engine.parents = board;
    }
    let b = leaf(80, 9);
    let now = net.now.wall;
    keep(&net.nodes[2].store, &b, now);
    keep(&net.nodes[3].store, &b, now);
    let lookup = Lookup {
        topic: Some(topic),
        ..Lookup::default()
    };
    net.get(0, b.id(), lookup);
    net.run();
    let (bytes, at) = net.nodes[0].gets()[0].clone().unwrap();
    assert_eq!(bytes, b.bytes());
    assert_eq!((at.holder, at.hops), (net.nodes[2].id(), 2));
    assert!(
        !net.counters(3).contains_key("searches_answered"),
        "off the tree"
    );
    assert_eq!(net.counters(1)["found_relayed"], 1);
}
