//! The `storage` suite: an object fetched between two nodes over QUIC into a disk store, and
//! the time a killed node takes to serve its blocks again.
//!
//! - `fetch_mib_per_s`: node A holds an object (in memory; `NETMACHINE_BENCH_STORAGE_MIB` MiB
//!   of pseudo-random bytes, default [`DEFAULT_OBJECT_MIB`]), node C fetches it from A into a
//!   fresh [`RedbStore`] in a temporary directory (`Node::storage_fetch` with the default
//!   settings), timed from the request to the last block; the object read back from C's store
//!   must have the original's BLAKE3 or the suite fails. Reported twice: against the `bulk`
//!   suite's 1 MiB messages between two nodes measured in the same run (the network path), and
//!   against the rate of `put`s of 1 MiB leaves into a fresh [`RedbStore`] on the same disk
//!   (each committed with fsync, as every block a fetch stores is).
//! - `restart_serving_ms`: a `netmachine run` child whose store holds [`RESTART_BLOCKS`] blocks
//!   (filled with [`RedbStore::put_many`]) is SIGKILLed and run again on the same
//!   configuration; the time from the second spawn until a node in this process is served one
//!   of its blocks (the child opens its store after the unclean stop, starts, connects).
//!
//! Memory: A's [`MemStore`] holds the object twice (each block's bytes and its decoded form:
//! 2 GiB at the default size) and redb's page cache up to 1 GiB of C's store; everything else
//! is streamed (about 4 GiB at peak at the default size).
//! Disk: C's store (the object and its tree) and the restart store (about 110 MiB), removed at
//! the end.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netmachine::identity_store::IdentityUpdate;
use netmachine::mail::storage::Lookup;
use netmachine::storage::block::{Block, BlockId, VerifiedBlock};
use netmachine::storage::engine::StorageSettings;
use netmachine::storage::store::{BlockMeta, BlockStore, MemStore, RedbStore, StoreLimits};
use netmachine::storage::tree::{put_object, read_object};
use netmachine::time::{wall_clock, Timestamp};
use netmachine::wire::{NodeAdvert, Protocol};
use netmachine::{Input, Keypair, Node, NodeBuilder};

use super::quic::stream_between_nodes;
use super::shared::localhost;
use super::Record;

/// The environment variable that sets the fetched object's size in MiB.
pub const OBJECT_MIB_ENV: &str = "NETMACHINE_BENCH_STORAGE_MIB";
/// The fetched object's size when [`OBJECT_MIB_ENV`] is not set: 1 GiB.
pub const DEFAULT_OBJECT_MIB: u64 = 1024;
/// The largest object accepted: 3 GiB (it and its tree must fit the default 4 GiB quota of
/// A's in-memory store, which holds it all in memory).
pub const MAX_OBJECT_MIB: u64 = 3072;
/// Blocks in the restarted node's store.
pub const RESTART_BLOCKS: u64 = 100_000;
/// Bytes of each of those blocks' data.
const RESTART_BLOCK_LEN: usize = 1024;
/// Blocks per [`RedbStore::put_many`] transaction while filling the restart store (10 MiB).
const FILL_BATCH: u64 = 10_000;
/// Most 1 MiB leaves put for the disk-write baseline.
const MAX_WRITE_LEAVES: u64 = 512;
/// Longest wait for a fetch's next answer, or for a restarted node to serve.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long the bench node waits for one get's answer while the restarted node comes up: the
/// resolution of `restart_serving_ms`.
const RESTART_GET_TIMEOUT: Duration = Duration::from_millis(100);

const MIB: f64 = 1024.0 * 1024.0;

/// A directory under the system temporary directory, removed when dropped.
struct BenchDir(PathBuf);

impl BenchDir {
    fn new() -> Result<BenchDir, String> {
        let nanos = wall_clock().0;
        let p = std::env::temp_dir().join(format!(
            "netmachine-bench-storage-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(BenchDir(p))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `left` pseudo-random bytes (xorshift), hashed with BLAKE3 as they are read.
struct Pattern {
    left: u64,
    x: u64,
    hasher: blake3::Hasher,
}

impl Pattern {
    fn new(len: u64, seed: u64) -> Pattern {
        Pattern {
            left: len,
            x: seed | 1,
            hasher: blake3::Hasher::new(),
        }
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize) & !7;
        let n = if n == 0 {
            buf.len().min(self.left as usize)
        } else {
            n
        };
        for chunk in buf[..n].chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            chunk.copy_from_slice(&self.x.to_le_bytes()[..chunk.len()]);
        }
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

fn an_hour() -> Timestamp {
    wall_clock().after(Duration::from_secs(3600))
}

fn object_mib() -> Result<u64, String> {
    match std::env::var(OBJECT_MIB_ENV) {
        Err(_) => Ok(DEFAULT_OBJECT_MIB),
        Ok(v) => match v.parse::<u64>() {
            Ok(n) if (1..=MAX_OBJECT_MIB).contains(&n) => Ok(n),
            _ => Err(format!(
                "{OBJECT_MIB_ENV} must be a whole number of MiB in 1..={MAX_OBJECT_MIB}, not {v:?}"
            )),
        },
    }
}

/// MiB/s of `put`s of 1 MiB leaves into a fresh [`RedbStore`] in `dir`, for about `secs`.
fn store_write_rate(dir: &BenchDir, secs: f64) -> Result<f64, String> {
    let path = dir.path("write.redb");
    let store = RedbStore::open(&path, StoreLimits::default()).map_err(|e| e.to_string())?;
    let mut pattern = Pattern::new(u64::MAX, 0x5eed);
    let meta = BlockMeta::public(an_hour());
    let mut leaf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    let t0 = Instant::now();
    for _ in 0..MAX_WRITE_LEAVES {
        pattern.read_exact(&mut leaf).map_err(|e| e.to_string())?;
        let block = VerifiedBlock::new(Block::Leaf(leaf.clone())).map_err(|e| e.to_string())?;
        store.put(&block, meta).map_err(|e| e.to_string())?;
        bytes += leaf.len() as u64;
        if t0.elapsed().as_secs_f64() >= secs {
            break;
        }
    }
    let rate = bytes as f64 / MIB / t0.elapsed().as_secs_f64();
    drop(store);
    let _ = std::fs::remove_file(&path);
    Ok(rate)
}

/// Waits until `from` answers a ping from `to`.
fn wait_connected(from: &Node, to: &Node) -> Result<(), String> {
    let mut c = from.client("bench-ping").map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        c.send(to.identity(), Protocol::PING, vec![0]);
        if let Some(Input::Message(_)) = c.recv(Duration::from_millis(500)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the bench nodes did not connect".into());
        }
    }
}

/// MiB/s of node C fetching a `mib` MiB object from node A into a [`RedbStore`] in `dir`,
/// checked by BLAKE3.
fn fetch_rate(dir: &BenchDir, mib: u64) -> Result<f64, String> {
    let size = mib << 20;
    let a_store = Arc::new(MemStore::new(StoreLimits::default()));
    let mut object = Pattern::new(size, 0x0b1e_c7ed);
    let (root, put) = put_object(&*a_store, &mut object, BlockMeta::public(an_hour()))
        .map_err(|e| format!("putting the object on A: {e}"))?;
    let want = object.hasher.finalize();
    if put != size {
        return Err(format!("put {put} bytes of {size}"));
    }
    let c_store = Arc::new(
        RedbStore::open(&dir.path("c.redb"), StoreLimits::default()).map_err(|e| e.to_string())?,
    );
    let a = NodeBuilder::new(Keypair::generate())
        .listen(localhost())
        .without_interdomain()
        .storage(a_store, StorageSettings::default())
        .start()
        .map_err(|e| e.to_string())?;
    let c = NodeBuilder::new(Keypair::generate())
        .listen(localhost())
        .without_interdomain()
        .peer(a.advert())
        .permanent(a.identity())
        .storage(c_store.clone(), StorageSettings::default())
        .start()
        .map_err(|e| e.to_string())?;
    a.learn(IdentityUpdate::NodeAdvert(c.advert()));
    wait_connected(&c, &a)?;
    let from_a = Lookup::from_nodes(vec![a.identity()]);
    let t0 = Instant::now();
    let (result, progress) = c
        .storage_fetch(root, from_a, an_hour(), size, PATIENCE, |_| {})
        .map_err(|e| e.to_string())?;
    let elapsed = t0.elapsed();
    match result {
        Ok(n) if n == size => {}
        other => {
            return Err(format!(
                "the fetch ended with {other:?} ({progress:?}):\n{}\n{}",
                c.status(),
                a.status()
            ))
        }
    }
    log::info!("storage: fetch {progress:?} in {elapsed:?}\n{}", c.status());
    let mut hasher = blake3::Hasher::new();
    read_object(&*c_store, &root, &mut hasher).map_err(|e| format!("reading it back: {e}"))?;
    if hasher.finalize() != want {
        return Err("the fetched object's BLAKE3 differs from the original's".into());
    }
    c.shutdown();
    a.shutdown();
    Ok(mib as f64 / elapsed.as_secs_f64())
}

/// Block `i` of the restart store.
fn restart_block(i: u64) -> Result<VerifiedBlock, String> {
    let mut data = vec![0u8; RESTART_BLOCK_LEN];
    Pattern::new(
        RESTART_BLOCK_LEN as u64,
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
    )
    .read_exact(&mut data)
    .map_err(|e| e.to_string())?;
    VerifiedBlock::new(Block::Leaf(data)).map_err(|e| e.to_string())
}

/// Fills the store at `path` with [`RESTART_BLOCKS`] blocks; the id of one of them.
fn fill_restart_store(path: &Path) -> Result<BlockId, String> {
    let store = RedbStore::open(path, StoreLimits::default()).map_err(|e| e.to_string())?;
    let meta = BlockMeta::public(an_hour());
    let t0 = Instant::now();
    for start in (0..RESTART_BLOCKS).step_by(FILL_BATCH as usize) {
        let batch = (start..(start + FILL_BATCH).min(RESTART_BLOCKS))
            .map(restart_block)
            .collect::<Result<Vec<_>, _>>()?;
        store.put_many(&batch, meta).map_err(|e| e.to_string())?;
    }
    log::info!(
        "storage: {RESTART_BLOCKS} blocks stored in {:?}",
        t0.elapsed()
    );
    restart_block(RESTART_BLOCKS / 2).map(|b| b.id())
}

/// A `netmachine run` child, killed when dropped, and when it printed its first line (its
/// listening line: the store is open and the node started).
struct RunChild(Child, std::sync::mpsc::Receiver<Instant>);

impl RunChild {
    fn spawn(config: &Path) -> Result<RunChild, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run the node: {e}"))?;
        // Drain its stdout so it never blocks on a full pipe.
        let out = child.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if let Some(out) = out {
                for _ in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(Instant::now());
                }
            }
        });
        Ok(RunChild(child, rx))
    }

    /// When the child printed its listening line, if it did.
    fn listening(&self) -> Option<Instant> {
        self.1.try_recv().ok()
    }

    fn kill(mut self) {
        let _ = self.0.kill(); // SIGKILL on Unix.
        let _ = self.0.wait();
    }
}

impl Drop for RunChild {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Gets `id` from `holder` until it is served; how long that took.
fn until_served(node: &Node, holder: &NodeAdvert, id: BlockId) -> Result<Duration, String> {
    let t0 = Instant::now();
    let from = Lookup::from_nodes(vec![holder.id]);
    loop {
        if let Ok(Ok((bytes, _))) = node.storage_get(id, from.clone()) {
            if BlockId::of(&bytes) != id {
                return Err("the restarted node served a wrong block".into());
            }
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > PATIENCE {
            return Err(format!(
                "the node did not serve in {PATIENCE:?}:\n{}",
                node.status()
            ));
        }
    }
}

/// Milliseconds from spawning a SIGKILLed node again until it serves one of its
/// [`RESTART_BLOCKS`] blocks to a node in this process.
fn restart_serving(dir: &BenchDir) -> Result<f64, String> {
    let id = fill_restart_store(&dir.path("run.redb"))?;
    let child_key = Keypair::generate();
    child_key
        .write_file(&dir.path("run.key"))
        .map_err(|e| e.to_string())?;
    let child_addr = {
        let s = std::net::UdpSocket::bind(localhost()).map_err(|e| e.to_string())?;
        s.local_addr().map_err(|e| e.to_string())?
    };
    let child = NodeAdvert::for_listen(&child_key, &[child_addr], None);
    let settings = StorageSettings {
        get_timeout: RESTART_GET_TIMEOUT,
        ..StorageSettings::default()
    };
    let node = NodeBuilder::new(Keypair::generate())
        .listen(localhost())
        .without_interdomain()
        .peer(child.clone())
        .permanent(child.id)
        .storage(Arc::new(MemStore::new(StoreLimits::default())), settings)
        .start()
        .map_err(|e| e.to_string())?;
    let config = dir.path("run.toml");
    std::fs::write(
        &config,
        format!(
            "key_file = \"run.key\"\nlisten = [\"{child_addr}\"]\n\
             [interdomain]\nenabled = false\n\
             [storage]\npath = \"run.redb\"\n\n\
             [[peers]]\nadvert = \"{}\"\npermanent = true\n",
            node.advert().to_line()
        ),
    )
    .map_err(|e| e.to_string())?;
    let first = RunChild::spawn(&config)?;
    let cold = until_served(&node, &child, id)?;
    log::info!("storage: the node first served after {cold:?}");
    first.kill();
    let t0 = Instant::now();
    let second = RunChild::spawn(&config)?;
    until_served(&node, &child, id)?;
    let elapsed = t0.elapsed();
    if let Some(at) = second.listening() {
        log::info!(
            "storage: after SIGKILL the node listened after {:?}, served after {elapsed:?}",
            at.duration_since(t0)
        );
    }
    second.kill();
    node.shutdown();
    Ok(elapsed.as_secs_f64() * 1000.0)
}

pub(super) fn storage_suite(secs: f64, out: &impl Fn(Record)) -> Result<(), String> {
    let mib = object_mib()?;
    let dir = BenchDir::new()?;
    let write = store_write_rate(&dir, secs)?;
    let (bulk, status) = stream_between_nodes(secs, 1 << 20, 8, 1)?;
    log::info!("storage: bulk {status}");
    let fetch = fetch_rate(&dir, mib)?;
    for baseline in [
        ("bulk_1MiB_messages", bulk),
        ("store_write_mib_per_s", write),
    ] {
        out(Record {
            suite: "storage",
            metric: "fetch_mib_per_s",
            value: fetch,
            unit: "MiB/s",
            baseline: Some(baseline),
        });
    }
    out(Record {
        suite: "storage",
        metric: "restart_serving_ms",
        value: restart_serving(&dir)?,
        unit: "ms",
        baseline: None,
    });
    Ok(())
}
