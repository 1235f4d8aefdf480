//! Bad input: tampered blocks, forged receipts, bad paths, unsolicited results, floods,
//! malformed bodies. Each is refused with a named counter, nothing unverified is stored, and
//! nothing panics.

use super::*;
use crate::mail::storage::StoragePrefs;
use crate::storage::wire::{Found, GetAnswer, Search, SearchScope};

#[test]
fn a_tampered_block_from_a_holder_is_refused_and_the_next_holder_asked() {
    let mut net = Net::new(3, |_| StorageSettings::default());
    let b = leaf(64, 3);
    let now = net.now.wall;
    keep(&net.nodes[2].store, &b, now);
    let (n1, n2) = (net.nodes[1].id(), net.nodes[2].id());
    net.get(0, b.id(), Lookup::from_nodes(vec![n1, n2]));
    // Node 1 answers with bytes that do not match the id.
    let f = net.queue.pop_front().unwrap();
    assert_eq!(f.to, n1);
    let mut bad = b.bytes().to_vec();
    bad[10] ^= 1;
    let reply = StorageMessage::GetReply {
        id: b.id(),
        answer: GetAnswer::Block(bad),
    };
    net.deliver(1, 0, MessageId(5), Some(f.id), reply.to_bytes());
    net.run();
    assert_eq!(net.counters(0)["bad_block"], 1);
    let (bytes, at) = net.nodes[0].gets()[0].clone().unwrap();
    assert_eq!((bytes.as_slice(), at.holder), (b.bytes(), n2));
}

#[test]
fn a_forged_receipt_is_refused() {
    let mut net = Net::new(2, |_| StorageSettings::default());
    let b = leaf(64, 4);
    let n1 = net.nodes[1].id();
    let prefs = StoragePrefs {
        expiry: net.now.wall.after(Duration::from_secs(600)),
        min_trust: 0,
    };
    net.local(
        0,
        StorageMail::Put {
            bytes: b.bytes().to_vec(),
            prefs,
            node: Some(n1),
        },
    );
    let f = net.queue.pop_front().unwrap();
    // A receipt signed by another key than the holder's.
    let mut c = ChunkCommitment::sign(&Keypair::from_seed(&[9; 32]), b.id(), prefs.expiry);
    c.node = n1;
    let reply = StorageMessage::PutReply {
        id: b.id(),
        result: Ok(c),
    };
    net.deliver(1, 0, MessageId(6), Some(f.id), reply.to_bytes());
    assert!(net.nodes[0].puts()[0]
        .as_ref()
        .unwrap_err()
        .contains("refused"));
    assert_eq!(net.counters(0)["bad_receipt"], 1);
    // A second answer to the same put is unsolicited.
    net.deliver(1, 0, MessageId(7), Some(f.id), reply.to_bytes());
    assert_eq!(net.counters(0)["unsolicited"], 1);
}

#[test]
fn searches_with_bad_paths_and_unsolicited_results_are_refused() {
    let mut net = Net::new(3, |_| StorageSettings::default());
    let (n0, n1, n2) = (net.nodes[0].id(), net.nodes[1].id(), net.nodes[2].id());
    let s = |path: Vec<NodeIdentity>| {
        StorageMessage::Search(Search {
            search: 1,
            id: BlockId([1; 32]),
            scope: SearchScope::Random(Some(domain())),
            ttl: 3,
            path,
        })
        .to_bytes()
    };
    // Not ending at the sender; holding the receiver; looping.
    net.deliver(0, 1, MessageId(1), None, s(vec![n2]));
    net.deliver(0, 1, MessageId(2), None, s(vec![n1, n0]));
    net.deliver(0, 1, MessageId(3), None, s(vec![n0, n2, n0]));
    assert_eq!(net.counters(1)["bad_path"], 3);
    // A result nobody asked for.
    let b = leaf(10, 1);
    let found = StorageMessage::Found(Found {
        search: 99,
        origin: n2,
        id: b.id(),
        holder: n0,
        holder_advert: None,
        path: vec![n0, n1, n2],
        min_trust: 0,
        bytes: b.bytes().to_vec(),
    });
    net.deliver(0, 1, MessageId(4), None, found.to_bytes());
    assert_eq!(net.counters(1)["unsolicited"], 1);
    assert!(net.queue.is_empty(), "nothing forwarded");
}

#[test]
fn a_search_flood_is_rate_limited_and_relays_are_bounded() {
    let mut net = Net::new(3, |_| {
        let mut s = StorageSettings::default();
        s.limits.searches_per_peer_s = 10;
        s.limits.max_relayed = 5;
        s
    });
    let n0 = net.nodes[0].id();
    for i in 0..30 {
        let m = StorageMessage::Search(Search {
            search: i,
            id: BlockId([1; 32]),
            scope: SearchScope::Random(Some(domain())),
            ttl: 3,
            path: vec![n0],
        });
        net.deliver(0, 1, MessageId(i + 1), None, m.to_bytes());
    }
    let c = net.counters(1);
    assert_eq!(c["rate_limited"], 20);
    assert_eq!(c["searches_forwarded"], 5);
    assert_eq!(c["relay_full"], 5);
    assert!(net.nodes[1].engine.relay_count <= 5);
}

#[test]
fn malformed_bodies_and_claimed_answers_are_counted_not_acted_on() {
    let mut net = Net::new(2, |_| StorageSettings::default());
    net.deliver(0, 1, MessageId(1), None, vec![1, 2, 3]);
    net.deliver(
        0,
        1,
        MessageId(2),
        None,
        crate::wire::encode_to_vec(&(9u32, 0u32)),
    );
    let c = net.counters(1);
    assert_eq!((c["malformed"], c["unknown_version"]), (1, 1));
    // Local mail that claims to be an answer is not acted on.
    let claim = StorageMail::GetDone {
        id: BlockId([1; 32]),
        result: Err("x".into()),
    };
    net.local(1, claim);
    assert_eq!(net.counters(1)["malformed"], 2);
    assert!(net.nodes[1].answers.is_empty() && net.queue.is_empty());
    // A put of bytes over the block limit is refused before hashing.
    let n1 = net.nodes[1].id();
    let prefs = StoragePrefs {
        expiry: net.now.wall.after(Duration::from_secs(60)),
        min_trust: 0,
    };
    let huge = vec![0u8; crate::storage::block::MAX_ENCODED_BLOCK + 1];
    net.local(
        0,
        StorageMail::Put {
            bytes: huge,
            prefs,
            node: Some(n1),
        },
    );
    assert!(net.nodes[0].puts()[0].is_err());
}

#[test]
fn a_reply_after_its_timeout_is_late_not_hostile() {
    let mut net = Net::new(2, |_| StorageSettings::default());
    let b = leaf(30, 6);
    let n1 = net.nodes[1].id();
    net.get(0, b.id(), Lookup::from_nodes(vec![n1]));
    let asked = net.queue.pop_front().unwrap();
    net.advance(Duration::from_secs(6));
    assert!(
        net.nodes[0].gets()[0].is_err(),
        "given up after get_timeout"
    );
    let reply = StorageMessage::GetReply {
        id: b.id(),
        answer: GetAnswer::Block(b.bytes().to_vec()),
    };
    net.deliver(1, 0, MessageId(9), Some(asked.id), reply.to_bytes());
    let c = net.counters(0);
    assert_eq!(c["late_replies"], 1);
    assert!(!c.contains_key("unsolicited"));
    // The same reply id from another node is not late: it was never asked of that node.
    net.deliver(
        1,
        0,
        MessageId(10),
        Some(MessageId(12345)),
        reply.to_bytes(),
    );
    assert_eq!(net.counters(0)["unsolicited"], 1);
}

#[test]
fn a_result_or_reply_for_another_block_never_answers_the_lookup() {
    let mut net = Net::new(3, |_| StorageSettings {
        fanout: 1,
        ..StorageSettings::default()
    });
    let (n0, n1, n2) = (net.nodes[0].id(), net.nodes[1].id(), net.nodes[2].id());
    let wanted = leaf(40, 1);
    let other = leaf(40, 2);
    let now = net.now.wall;
    keep(&net.nodes[2].store, &wanted, now);
    // A direct get answered with another (valid) block: refused, the next holder asked.
    net.get(0, wanted.id(), Lookup::from_nodes(vec![n1, n2]));
    let f = net.queue.pop_front().unwrap();
    assert_eq!(f.to, n1);
    let reply = StorageMessage::GetReply {
        id: other.id(),
        answer: GetAnswer::Block(other.bytes().to_vec()),
    };
    net.deliver(1, 0, MessageId(21), Some(f.id), reply.to_bytes());
    net.run();
    let (bytes, at) = net.nodes[0].gets()[0].clone().unwrap();
    assert_eq!((bytes.as_slice(), at.holder), (wanted.bytes(), n2));
    assert_eq!(net.counters(0)["unsolicited"], 1);
    // A walk's result carrying another block than the one searched for: refused.
    net.get(0, BlockId([0x33; 32]), Lookup::random(Some(domain())));
    let s = net.queue.pop_front().unwrap();
    let Ok(StorageMessage::Search(search)) = StorageMessage::from_bytes(&s.body) else {
        panic!("a search")
    };
    let to = net.index_of(&s.to).unwrap();
    let found = StorageMessage::Found(Found {
        search: search.search,
        origin: n0,
        id: other.id(),
        holder: s.to,
        holder_advert: None,
        path: vec![s.to, n0],
        min_trust: 0,
        bytes: other.bytes().to_vec(),
    });
    net.deliver(to, 0, MessageId(22), None, found.to_bytes());
    assert_eq!(net.counters(0)["bad_block"], 1);
    assert_eq!(
        net.nodes[0].gets().len(),
        1,
        "the lookup is not answered with it"
    );
}
