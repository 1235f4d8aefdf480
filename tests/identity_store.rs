//! The identity store's file: records learnt at run time (a peer's advert, its lowered
//! reputation) survive SIGKILL of the node and come back at the next start; a damaged file or
//! one of another format is a clear error, never a panic or a silent fresh start.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netmachine::mail::identity::{
    AnyIdentity, IdentityEvent, IdentityRecord, IdentityRequest, DEFAULT_REPUTATION,
};
use netmachine::mail::RouteHeader;
use netmachine::node::identity_file::IdentityFile;
use netmachine::transport::TransportConfig;
use netmachine::wire::{Destination, NodeAdvert};
use netmachine::{Keypair, NodeBuilder, NodeError};

/// The environment variable that turns this binary into the node to kill, naming its file.
const CHILD_ENV: &str = "NETMACHINE_IDENTITY_CHILD_FILE";

/// The node to kill: listens, prints `ADVERT <line>`, then every 50 ms the standing of the
/// nodes whose reputation it lowered (`STANDING <node> <reputation>`) and `TICK`, until killed.
#[test]
fn identity_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // Run normally: nothing to do (the parent test runs this as a child).
    };
    let mut transport = TransportConfig::default();
    transport.listen.push("127.0.0.1:0".parse().unwrap());
    let node = NodeBuilder::new(Keypair::generate())
        .transport(transport)
        .identity_store_file(&path)
        .without_interdomain()
        .without_domains()
        .start()
        .unwrap();
    println!("ADVERT {}", node.advert().to_line());
    loop {
        if let Some(IdentityEvent::Standing(list)) =
            node.ask_identity_store(IdentityRequest::Standing, Duration::from_secs(1))
        {
            for s in list {
                if let Some(r) = s.reputation {
                    println!("STANDING {} {r}", s.id);
                }
            }
        }
        // A heartbeat, so the parent never waits long for a line.
        println!("TICK");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn learnt_records_survive_sigkill_and_come_back_at_the_next_start() {
    let dir = common::TempDir::new("identity", "kill");
    let path = dir.path("a.identity.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "identity_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let advert = loop {
        let line = lines.next().expect("the child prints its advert").unwrap();
        // The test harness may print `test identity_child ... ` on the same line first.
        if let Some(at) = line.find("ADVERT ") {
            break NodeAdvert::from_line(&line[at + 7..]).unwrap().into_inner();
        }
    };
    // B connects to A (A learns B's advert from the connect exchange), then sends A messages
    // whose signatures fail: A lowers B's reputation.
    let kb = Keypair::generate();
    let b = NodeBuilder::new(kb.clone())
        .transport(TransportConfig::default())
        .peer(advert.clone())
        .permanent(advert.id)
        .without_interdomain()
        .without_domains()
        .start()
        .unwrap();
    let engine = kb.derive_engine("forger");
    let egress = b.egress();
    let started = Instant::now();
    let lowered = loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "A never lowered B's reputation; B: {}",
            b.stats()
        );
        let mut wire = common::signed_wire(
            &engine,
            &kb,
            Destination::Node(advert.id),
            started.elapsed().as_micros() as u64 + 1,
            b"forged",
        );
        let n = wire.len();
        wire[n - 1] ^= 1; // the signature's last byte
        let msg = common::unsigned(&engine, &kb, Destination::Node(advert.id), 1, b"");
        egress.send(advert.id, RouteHeader::of(&msg, false), wire);
        if let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.strip_prefix(&format!("STANDING {} ", kb.node_identity())) {
                let rep: u8 = rest.parse().unwrap();
                if rep < DEFAULT_REPUTATION {
                    break rep;
                }
            }
        }
    };
    // The store writes what changed at most once a second: give it two.
    std::thread::sleep(Duration::from_secs(2));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    b.shutdown();

    // The file opens without repair and holds B: its advert and the lowered reputation.
    let (file, records) = IdentityFile::open(&path).unwrap();
    let record = records
        .iter()
        .find_map(|r| match r {
            IdentityRecord::Node(n) if n.id == kb.node_identity() => Some(n.clone()),
            _ => None,
        })
        .expect("B's record survived");
    assert_eq!(
        record.advert.as_ref().map(|a| a.id),
        Some(kb.node_identity())
    );
    let stored = record.reputation.expect("a reputation");
    assert!(
        stored < DEFAULT_REPUTATION && stored <= lowered + 1,
        "{stored} vs {lowered}"
    );
    drop(file);

    // A node started on the file knows B at once, before any connection.
    let a2 = NodeBuilder::new(Keypair::generate())
        .identity_store_file(&path)
        .without_interdomain()
        .without_domains()
        .start()
        .unwrap();
    match a2.lookup(AnyIdentity::Node(kb.node_identity())).unwrap() {
        Some(IdentityRecord::Node(n)) => {
            assert_eq!(n.reputation, Some(stored));
            assert!(n.advert.is_some());
        }
        other => panic!("B is not known after the restart: {other:?}"),
    }
    a2.shutdown();
}

#[test]
fn a_damaged_or_foreign_file_is_a_clear_error() {
    let dir = common::TempDir::new("identity", "damaged");
    let start = |path: &std::path::Path| {
        NodeBuilder::new(Keypair::generate())
            .identity_store_file(path)
            .without_interdomain()
            .without_domains()
            .start()
    };
    // Not a redb file at all.
    let junk = dir.path("junk.redb");
    std::fs::write(&junk, vec![0x5a; 10_000]).unwrap();
    match start(&junk) {
        Err(NodeError::IdentityFile(e)) => {
            let text = e.to_string();
            assert!(
                text.contains("junk.redb") && text.contains("cannot open"),
                "{text}"
            );
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("a junk file was accepted"),
    }
    // A store of another format (an older or newer netmachine).
    let other = dir.path("other.redb");
    {
        let db = redb::Database::create(&other).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("format", 7).unwrap();
        }
        txn.commit().unwrap();
    }
    match start(&other) {
        Err(NodeError::IdentityFile(e)) => {
            assert!(e.to_string().contains("format 7"), "{e}");
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("a foreign format was accepted"),
    }
    // A record that does not decode.
    let bad = dir.path("bad.redb");
    drop(IdentityFile::open(&bad).unwrap());
    {
        let db = redb::Database::create(&bad).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn
                .open_table(redb::TableDefinition::<[u8; 33], &[u8]>::new("records"))
                .unwrap();
            t.insert([0u8; 33], [9u8, 9, 9].as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    match start(&bad) {
        Err(NodeError::IdentityFile(e)) => {
            assert!(e.to_string().contains("does not decode"), "{e}");
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("a bad record was accepted"),
    }
    // Truncated halfway: an error or (if redb recovers it) a store that opens, never a panic.
    let half = dir.path("half.redb");
    {
        let (file, _) = IdentityFile::open(&half).unwrap();
        drop(file);
        let bytes = std::fs::read(&half).unwrap();
        std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    }
    let outcome = std::panic::catch_unwind(|| start(&half).map(|n| n.shutdown()));
    assert!(outcome.is_ok(), "a truncated file made the node panic");
}

/// A file written in format 1 (before measurements were kept) is read, its records whole, and
/// rewritten in format 2 — once: opening it again reads format 2.
#[test]
fn a_format_1_file_is_read_and_upgraded() {
    use netmachine::identity_store::persist::{encode_record, record_id, record_key, FORMAT};
    use netmachine::mail::identity::NodeRecord;
    let dir = common::TempDir::new("identity", "format1");
    let path = dir.path("v1.redb");
    let peer = Keypair::generate();
    let record = IdentityRecord::Node(NodeRecord {
        id: peer.node_identity(),
        advert: None,
        trust: Some(77),
        reputation: Some(12),
        tprefs: None,
        cprefs: None,
        measured: None,
    });
    // Format 1 is format 2 without the final `measured?` flag.
    let v2 = encode_record(&record);
    assert_eq!(v2.last(), Some(&0));
    let v1 = &v2[..v2.len() - 1];
    let meta = redb::TableDefinition::<&str, u64>::new("meta");
    let records = redb::TableDefinition::<[u8; 33], &[u8]>::new("records");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(meta).unwrap().insert("format", 1).unwrap();
        txn.open_table(records)
            .unwrap()
            .insert(record_key(&record_id(&record)), v1)
            .unwrap();
        txn.commit().unwrap();
    }
    let (file, read) = IdentityFile::open(&path).unwrap();
    assert_eq!(read, vec![record.clone()]);
    drop(file);
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let format = txn
            .open_table(meta)
            .unwrap()
            .get("format")
            .unwrap()
            .unwrap();
        assert_eq!(format.value(), FORMAT);
        let t = txn.open_table(records).unwrap();
        let stored = t.get(record_key(&record_id(&record))).unwrap().unwrap();
        assert_eq!(stored.value(), &v2[..], "rewritten in format 2");
    }
    let (_, again) = IdentityFile::open(&path).unwrap();
    assert_eq!(again, vec![record]);
}
