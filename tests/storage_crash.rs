//! The disk block store under SIGKILL: a child process (this test binary, run again as the
//! writer) stores blocks and prints the id of each `put` that returned `Ok`; the parent kills it
//! with SIGKILL in the middle of writing, reopens the store and checks that every acknowledged
//! block is there, intact, and that the store's totals agree with what it holds.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use netmachine::storage::block::{Block, BlockId, VerifiedBlock};
use netmachine::storage::store::{BlockMeta, BlockStore, RedbStore, StoreLimits};
use netmachine::time::Timestamp;

/// The environment variable that turns this binary into the writer, naming the store file.
const WRITER_ENV: &str = "NETMACHINE_CRASH_WRITER_STORE";

/// Block `i` of the writer: 4 KiB to 68 KiB of bytes derived from `i`, so every block differs
/// and large writes are in flight when the kill lands.
fn block(i: u64) -> VerifiedBlock {
    let len = 4096 + (i as usize * 7919) % 65536;
    let data: Vec<u8> = (0..len)
        .map(|j| (i.wrapping_mul(31).wrapping_add(j as u64) % 251) as u8)
        .collect();
    VerifiedBlock::new(Block::Leaf(data)).unwrap()
}

/// `ACK <index> <id>`, a whole line (a line cut by the kill does not parse).
fn parse_ack(line: &str) -> Option<(u64, BlockId)> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    let i = parts.next()?.parse().ok()?;
    let id = BlockId::from_str(parts.next()?).ok()?;
    parts.next().is_none().then_some((i, id))
}

/// The writer: stores blocks until killed, printing `ACK <index> <id>` after each acknowledged
/// put.
#[test]
fn crash_writer_child() {
    let Ok(path) = std::env::var(WRITER_ENV) else {
        return; // Run normally: nothing to do (the parent test runs this as a child).
    };
    let store = RedbStore::open(path.as_ref(), StoreLimits::default()).unwrap();
    let expires = Timestamp(u64::MAX / 2);
    for i in 0.. {
        let b = block(i);
        store.put(&b, BlockMeta::public(expires)).unwrap();
        println!("ACK {i} {}", b.id());
    }
}

#[test]
fn a_sigkilled_writer_loses_no_acknowledged_block_and_the_store_reopens() {
    let dir = common::TempDir::new("storage-crash", "kill");
    let path = dir.path("blocks.redb");
    // The highest index any round wrote: the store keeps every round's blocks.
    let mut most = 0;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acknowledged = Vec::new();
        let started = Instant::now();
        // Kill after a number of acknowledged puts that differs per round, mid-stream.
        let kill_after = 40 + round * 37;
        while acknowledged.len() < kill_after {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the writer stalled"
            );
            let Some(Ok(line)) = lines.next() else {
                panic!("the writer stopped after {} puts", acknowledged.len());
            };
            if let Some(ack) = parse_ack(&line) {
                acknowledged.push(ack);
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix.
        child.wait().unwrap();
        // Lines printed before the kill but not yet read were acknowledged too.
        acknowledged.extend(lines.map_while(Result::ok).filter_map(|l| parse_ack(&l)));
        let store = RedbStore::open(&path, StoreLimits::default())
            .expect("the store opens again without repair by hand");
        for (i, id) in &acknowledged {
            let got = store
                .get(id)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged block {i} lost"));
            assert_eq!(got.bytes(), block(*i).bytes(), "block {i} intact");
        }
        // The totals agree with the blocks held: each round restarts from index 0, so the store
        // holds the largest index acknowledged in any round + 1 blocks (at most one more,
        // written but not acknowledged before the kill).
        let status = store.status();
        most = most.max(acknowledged.iter().map(|(i, _)| *i).max().unwrap() + 1);
        assert!(
            status.blocks == most || status.blocks == most + 1,
            "round {round}: {} blocks after {most} acknowledged",
            status.blocks
        );
        let held: u64 = (0..status.blocks).map(|i| block(i).len() as u64).sum();
        assert_eq!(status.bytes, held, "round {round}: byte total");
    }
}
