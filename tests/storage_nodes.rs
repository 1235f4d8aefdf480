//! Storage on real nodes over QUIC on 127.0.0.1:
//! - three nodes A – B – C (A and C each connected to B only): an object put into A's store is
//!   found by C with a random walk through B and fetched whole; C, told of A, fetches another
//!   from A directly; both read back with the BLAKE3 of the original. C stores a block at A
//!   and gets a receipt that checks;
//! - a `netmachine run` child holding a redb store is sent blocks one after another from a node
//!   in the test process, which keeps each receipt; the child is SIGKILLed in the middle, run
//!   again on the same configuration (its store opens as it is), and serves back every block
//!   that had a receipt.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use netmachine::identity_store::IdentityUpdate;
use netmachine::mail::storage::{Lookup, StoragePrefs};
use netmachine::storage::block::{Block, BlockId, VerifiedBlock};
use netmachine::storage::engine::StorageSettings;
use netmachine::storage::receipt::ChunkCommitment;
use netmachine::storage::store::{BlockMeta, BlockStore, MemStore, RedbStore, StoreLimits};
use netmachine::storage::tree::{put_object, read_object};
use netmachine::time::{wall_clock, Timestamp};
use netmachine::wire::NodeAdvert;
use netmachine::{Keypair, Node};

use common::topics::builder;
use common::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_netmachine");

/// `len` bytes that differ from those of any other `seed`.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn an_hour() -> Timestamp {
    wall_clock().after(Duration::from_secs(3600))
}

/// Settings with short timeouts, so a lost answer costs little.
fn quick() -> StorageSettings {
    StorageSettings {
        get_timeout: Duration::from_secs(2),
        search_timeout: Duration::from_secs(5),
        ..StorageSettings::default()
    }
}

/// Puts `bytes` as an object into `node`'s store; its root.
fn put_into(node: &Node, bytes: &[u8]) -> BlockId {
    let store = node.block_store().unwrap();
    let (root, size) = put_object(&*store, &mut &bytes[..], BlockMeta::public(an_hour())).unwrap();
    assert_eq!(size, bytes.len() as u64);
    root
}

/// Fetches the object `root` into `node`'s store as `lookup` says and reads it back: its
/// BLAKE3 must be `want`.
fn fetch_and_check(node: &Node, root: BlockId, lookup: Lookup, want: blake3::Hash, len: u64) {
    let (result, progress) = node
        .storage_fetch(
            root,
            lookup,
            an_hour(),
            1 << 30,
            Duration::from_secs(20),
            |_| {},
        )
        .unwrap();
    assert_eq!(result, Ok(len), "{progress:?}\n{}", node.status());
    assert_eq!(progress.bytes, len);
    let mut hasher = blake3::Hasher::new();
    let read = read_object(&*node.block_store().unwrap(), &root, &mut hasher).unwrap();
    assert_eq!(read, len);
    assert_eq!(hasher.finalize(), want, "the fetched object differs");
}

#[test]
fn three_nodes_find_fetch_and_store_objects_with_receipts() {
    let keys: Vec<Keypair> = (0..3).map(|_| Keypair::generate()).collect();
    let addrs: Vec<_> = (0..3).map(|_| common::free_port()).collect();
    let edges = [(0, 1), (1, 2)];
    let nodes: Vec<Node> = (0..3)
        .map(|i| {
            builder(&keys, &addrs, &edges, i)
                .storage(Arc::new(MemStore::new(StoreLimits::default())), quick())
                .start()
                .unwrap()
        })
        .collect();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // A random walk from C goes through B (C's only connection) to A.
    let walked = data(1, 2 << 20);
    let root = put_into(a, &walked);
    let mut found = None;
    common::wait_until(Duration::from_secs(20), || {
        found = c
            .storage_get(root, Lookup::random(None))
            .ok()
            .and_then(Result::ok);
        found.is_some()
    });
    let (bytes, at) = found.unwrap_or_else(|| panic!("no walk found it:\n{}", c.status()));
    assert_eq!(BlockId::of(&bytes), root);
    assert_eq!((at.holder, at.hops), (a.identity(), 2), "{at:?}");
    let len = walked.len() as u64;
    fetch_and_check(c, root, Lookup::random(None), blake3::hash(&walked), len);
    assert!(!b.block_store().unwrap().contains(&root).unwrap());

    // C, told of A, fetches from A directly.
    c.learn(IdentityUpdate::NodeAdvert(a.advert()));
    a.learn(IdentityUpdate::NodeAdvert(c.advert()));
    let direct = data(2, (3 << 20) + 12_345);
    let root = put_into(a, &direct);
    let len = direct.len() as u64;
    let from_a = Lookup::from_nodes(vec![a.identity()]);
    fetch_and_check(c, root, from_a, blake3::hash(&direct), len);

    // A remote put from C to A, answered with A's receipt.
    let block = VerifiedBlock::new(Block::Leaf(data(3, 100_000))).unwrap();
    let prefs = StoragePrefs {
        expiry: an_hour(),
        min_trust: 0,
    };
    let receipt = c
        .storage_put(block.bytes().to_vec(), prefs, Some(a.identity()))
        .unwrap()
        .unwrap()
        .expect("a remote put has a receipt");
    let checked = receipt.check(wall_clock()).expect("the receipt checks");
    assert_eq!(checked.block(), block.id());
    assert_eq!(checked.node(), a.identity());
    assert!(checked.until() <= prefs.expiry);
    let held = a.block_store().unwrap().get(&block.id()).unwrap();
    assert_eq!(held.as_ref(), Some(&block));
    for n in nodes {
        n.shutdown();
    }
}

/// A `netmachine run` child, killed if the test ends first; its stdout lines on a channel and
/// its stderr collected.
struct RunChild {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl RunChild {
    fn spawn(config: &std::path::Path) -> RunChild {
        let mut child = Command::new(BIN)
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let run = RunChild {
            child,
            lines,
            stderr: Some(stderr),
        };
        let first = run
            .lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the node printed its listening line");
        assert!(first.contains(" listening on 127.0.0.1:"), "{first}");
        run
    }

    /// Stops the child with `signal` and waits for it; its stderr.
    fn stop(mut self, signal: libc::c_int) -> (std::process::ExitStatus, String) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let status = self.child.wait().unwrap();
        let log = self.stderr.take().map(|h| h.join().unwrap_or_default());
        (status, log.unwrap_or_default())
    }
}

impl Drop for RunChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The block count the child logged for its store when it opened it (`store <path>: N blocks`).
fn logged_blocks(log: &str) -> Option<u64> {
    log.lines().find_map(|l| {
        let rest = &l[l.find("store ")? + 6..];
        let (_, tail) = rest.split_once(": ")?;
        tail.split_once(" blocks")?.0.parse().ok()
    })
}

#[test]
fn a_sigkilled_node_serves_every_block_it_gave_a_receipt_for_after_restart() {
    let dir = TempDir::new("storage-nodes", "kill");
    let child_key = Keypair::generate();
    child_key.write_file(&dir.path("child.key")).unwrap();
    let child_addr = common::free_port();
    let child_advert = NodeAdvert::for_listen(&child_key, &[child_addr], Some("child".into()));
    let child_id = child_key.node_identity();

    let test_addr = common::free_port();
    let test_key = Keypair::generate();
    let node = netmachine::NodeBuilder::new(test_key.clone())
        .listen(test_addr)
        .without_interdomain()
        .peer(child_advert)
        .permanent(child_id)
        .storage(Arc::new(MemStore::new(StoreLimits::default())), quick())
        .start()
        .unwrap();
    let config = dir.path("child.toml");
    let own = NodeAdvert::for_listen(&test_key, &[test_addr], None).to_line();
    std::fs::write(
        &config,
        format!(
            "key_file = \"child.key\"\nlisten = [\"{child_addr}\"]\n\
             [interdomain]\nenabled = false\n\
             [storage]\npath = \"store.redb\"\n\n\
             [[peers]]\nadvert = \"{own}\"\npermanent = true\n"
        ),
    )
    .unwrap();

    let run = RunChild::spawn(&config);
    // Puts one after another, keeping each block with its receipt, until one fails.
    let receipts: Arc<Mutex<Vec<(VerifiedBlock, ChunkCommitment)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let node = Arc::new(node);
    let putter = {
        let (receipts, stop, node) = (Arc::clone(&receipts), Arc::clone(&stop), Arc::clone(&node));
        std::thread::spawn(move || {
            let prefs = StoragePrefs {
                expiry: an_hour(),
                min_trust: 0,
            };
            let mut failures = 0;
            for i in 0.. {
                if stop.load(Ordering::Acquire) {
                    return failures;
                }
                let len = 2048 + (i * 7919) % (200 << 10);
                let block = VerifiedBlock::new(Block::Leaf(data(100 + i as u64, len))).unwrap();
                match node.storage_put(block.bytes().to_vec(), prefs, Some(child_id)) {
                    Ok(Ok(Some(r))) => receipts.lock().unwrap().push((block, r)),
                    _ => failures += 1,
                }
            }
            failures
        })
    };
    let enough = common::wait_until(Duration::from_secs(30), || {
        receipts.lock().unwrap().len() >= 60
    });
    assert!(enough, "too few receipts:\n{}", node.status());
    let (status, _) = run.stop(libc::SIGKILL);
    assert!(!status.success());
    let before = receipts.lock().unwrap().len();
    // Puts after the kill fail; give the one in flight time to end.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    putter.join().unwrap();
    let receipts = std::mem::take(&mut *receipts.lock().unwrap());
    assert!(receipts.len() >= before);

    // Run again on the same configuration: every block with a receipt is served.
    let run = RunChild::spawn(&config);
    let from = Lookup::from_nodes(vec![child_id]);
    let first = &receipts[0].0;
    let back = common::wait_until(Duration::from_secs(20), || {
        matches!(node.storage_get(first.id(), from.clone()), Ok(Ok(_)))
    });
    assert!(
        back,
        "the restarted node serves nothing:\n{}",
        node.status()
    );
    for (i, (block, receipt)) in receipts.iter().enumerate() {
        assert!(receipt.check(wall_clock()).is_ok());
        let (bytes, at) = node
            .storage_get(block.id(), from.clone())
            .unwrap()
            .unwrap_or_else(|e| panic!("block {i} of {} with a receipt: {e}", receipts.len()));
        assert_eq!(bytes, block.bytes(), "block {i}");
        // The block got while waiting may come from this node's cache the second time.
        assert!(at.holder == child_id || (i == 0 && at.cached), "{at:?}");
    }
    let (status, log) = run.stop(libc::SIGTERM);
    assert!(status.success(), "{status:?}\n{log}");
    let opened = logged_blocks(&log).expect("the child logged its store");
    assert!(opened >= receipts.len() as u64, "{opened} blocks\n{log}");
    // Stopped cleanly, the store opens here; its totals agree with what it holds (a put
    // queued while the child was down may have been delivered after the restart).
    let store = RedbStore::open(&dir.path("store.redb"), StoreLimits::default()).unwrap();
    let status = store.status();
    assert!(status.blocks >= opened, "{status:?}, {opened} at restart");
    let ids = store.ids(None, usize::MAX).unwrap();
    let bytes: u64 = ids
        .iter()
        .map(|id| store.get(id).unwrap().unwrap().len() as u64)
        .sum();
    assert_eq!((ids.len() as u64, bytes), (status.blocks, status.bytes));
    drop(Arc::try_unwrap(node).ok().map(Node::shutdown));
}

#[test]
fn logged_blocks_reads_the_store_line() {
    let line = "[INFO netmachine] store /tmp/x/store.redb: 61 blocks, 5.9 MiB";
    assert_eq!(logged_blocks(line), Some(61));
    assert_eq!(logged_blocks("nothing here"), None);
}
