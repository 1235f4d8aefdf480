//! `netmachine put`, `netmachine get` and `netmachine store status`: objects in and out of a
//! node's block store (`[storage]` in its configuration).
//!
//! `put` and `store status` open the store file directly, without starting the node; `get`
//! starts the node the configuration describes (its Storage engine fetches the object's blocks
//! from other nodes into the store), then writes the object out. Like the other commands that
//! run a node, they need the configuration not to be in use by a running `netmachine run` (its
//! store file is locked while the node runs).

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use netmachine::config::{Settings, StorageConfig};
use netmachine::mail::storage::{FetchProgress, Lookup};
use netmachine::storage::crypt::{put_encrypted_object, read_object_ref, ObjectRef};
use netmachine::storage::store::{human_bytes, BlockMeta, BlockStore, RedbStore};
use netmachine::storage::tree::put_object;
use netmachine::{DomainIdentity, NodeIdentity, Now};

use crate::domain_cmd::parse_domain;
use crate::ping::parse_node;

/// Options of `netmachine put`.
#[derive(Args)]
pub struct PutArgs {
    /// The file to store.
    pub file: PathBuf,
    /// The node's configuration file (TOML); its store must not be in use.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Keep the object this many days.
    #[arg(long = "ttl-days", value_name = "D", default_value_t = 30)]
    pub ttl_days: u64,
    /// Encrypt it (convergent encryption with `[storage] convergence_secret_file`); the id
    /// printed then carries the key: `ROOT:KEY`.
    #[arg(long)]
    pub encrypt: bool,
    /// Serve it only to nodes this node trusts at least this much (0..=255).
    #[arg(long = "min-trust", value_name = "T", default_value_t = 0)]
    pub min_trust: u8,
}

/// Options of `netmachine get`.
#[derive(Args)]
pub struct GetArgs {
    /// The object: the id `netmachine put` printed (`ROOT` or `ROOT:KEY`).
    pub id: ObjectRef,
    /// The node's configuration file (TOML); it must not be running.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Where to write the object.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// A node to ask first (repeatable; default: the configured peers).
    #[arg(long = "from", value_name = "NODE_ID", value_parser = parse_node)]
    pub from: Vec<NodeIdentity>,
    /// Keep the random-walk search among this domain's members (default: connected nodes).
    #[arg(long, value_name = "DOMAIN_ID", value_parser = parse_domain)]
    pub domain: Option<DomainIdentity>,
    /// Give up when nothing arrives for this many seconds.
    #[arg(long = "timeout-s", value_name = "S", default_value_t = 60)]
    pub timeout_s: u64,
    /// Refuse objects larger than this many bytes.
    #[arg(long = "max-size", value_name = "BYTES", default_value_t = 1 << 40)]
    pub max_size: u64,
    /// Keep the fetched blocks this many days.
    #[arg(long = "ttl-days", value_name = "D", default_value_t = 30)]
    pub ttl_days: u64,
}

/// `netmachine store …`.
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Print what the node's store holds: blocks, bytes, quotas, the next expiry.
    Status {
        /// The node's configuration file (TOML); its store must not be in use.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
}

fn storage_of(config: &Path) -> Result<(Settings, StorageConfig), String> {
    let settings = Settings::load(config).map_err(|e| e.to_string())?;
    let Some(storage) = settings.storage.clone() else {
        return Err(format!(
            "{}: [storage] is disabled (enabled = false)",
            config.display()
        ));
    };
    Ok((settings, storage))
}

fn open(storage: &StorageConfig) -> Result<RedbStore, String> {
    RedbStore::open(&storage.path, storage.store).map_err(|e| {
        format!(
            "cannot open the store {}: {e} (is a node with this configuration running?)",
            storage.path.display()
        )
    })
}

fn days(d: u64) -> Duration {
    Duration::from_secs(d.saturating_mul(86_400))
}

/// `netmachine put FILE --config C`: prints the object's id.
pub fn put(args: &PutArgs) -> Result<ExitCode, String> {
    let (_, storage) = storage_of(&args.config)?;
    let store = open(&storage)?;
    let file = File::open(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let meta = BlockMeta {
        expires: Now::read().wall.after(days(args.ttl_days)),
        min_trust: args.min_trust,
    };
    let before = store.status();
    let started = Instant::now();
    let (reference, size) = if args.encrypt {
        let Some(secret) = &storage.convergence_secret else {
            return Err(
                "--encrypt needs [storage] convergence_secret_file in the configuration".into(),
            );
        };
        let (root, key, size) = put_encrypted_object(&store, &mut input, meta, secret)
            .map_err(|e| format!("cannot store {}: {e}", args.file.display()))?;
        (ObjectRef::encrypted(root, key), size)
    } else {
        let (root, size) = put_object(&store, &mut input, meta)
            .map_err(|e| format!("cannot store {}: {e}", args.file.display()))?;
        (ObjectRef::plain(root), size)
    };
    let after = store.status();
    let secs = started.elapsed().as_secs_f64();
    println!("{reference}");
    eprintln!(
        "stored {} ({} new blocks, {}) in {:.2} s ({:.1} MiB/s); the store holds {} of {}",
        human_bytes(size),
        after.blocks.saturating_sub(before.blocks),
        human_bytes(after.bytes.saturating_sub(before.bytes)),
        secs,
        size as f64 / (1 << 20) as f64 / secs.max(1e-9),
        human_bytes(after.bytes),
        human_bytes(after.max_bytes),
    );
    Ok(ExitCode::SUCCESS)
}

/// Draws fetch progress on a terminal, one line rewritten in place.
struct Bar {
    tty: bool,
    started: Instant,
    last: Instant,
}

impl Bar {
    fn draw(&mut self, p: &FetchProgress, done: bool) {
        if !self.tty || (!done && self.last.elapsed() < Duration::from_millis(200)) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = p.fetched_bytes as f64 / (1 << 20) as f64 / secs;
        let of = match p.size {
            Some(s) if s > 0 => format!(
                " / {} ({:.0}%)",
                human_bytes(s),
                100.0 * p.bytes as f64 / s as f64
            ),
            Some(_) => " / 0 B".to_string(),
            None => String::new(),
        };
        eprint!(
            "\r\x1b[2K{}{of}  {rate:.1} MiB/s  {} blocks ({} in flight)  {} holders",
            human_bytes(p.bytes),
            p.blocks,
            p.in_flight,
            p.holders
        );
        if done {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    }
}

/// `netmachine get ID --config C --out FILE`.
pub fn get(args: &GetArgs) -> Result<ExitCode, String> {
    let (settings, storage) = storage_of(&args.config)?;
    let store = std::sync::Arc::new(open(&storage)?);
    let node = settings
        .node_builder()
        .storage(store.clone(), storage.engine.clone())
        .start()
        .map_err(|e| format!("cannot start the node of {}: {e}", args.config.display()))?;
    let from = if args.from.is_empty() {
        settings.peers.iter().map(|(a, _)| a.id).collect()
    } else {
        args.from.clone()
    };
    let lookup = Lookup {
        from,
        topic: None,
        random: true,
        domain: args.domain,
    };
    let until = Now::read().wall.after(days(args.ttl_days));
    let mut bar = Bar {
        tty: std::io::stderr().is_terminal(),
        started: Instant::now(),
        last: Instant::now() - Duration::from_secs(1),
    };
    let root = args.id.root;
    let timeout = Duration::from_secs(args.timeout_s.max(1));
    let outcome = node.storage_fetch(root, lookup, until, args.max_size, timeout, |p| {
        bar.draw(p, false)
    });
    let secs = bar.started.elapsed().as_secs_f64();
    let (result, progress) = outcome.map_err(|e| format!("the fetch did not finish: {e}"))?;
    bar.draw(&progress, true);
    let size = result.map_err(|e| format!("cannot fetch {root}: {e}"))?;
    let file = File::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    read_object_ref(store.as_ref(), &args.id, &mut out)
        .and_then(|n| {
            out.flush()
                .map(|_| n)
                .map_err(netmachine::storage::tree::ObjectError::Io)
        })
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    eprintln!(
        "fetched {} in {:.2} s ({:.1} MiB/s over the network: {} blocks, {} from {} holders); wrote {}",
        human_bytes(size),
        secs,
        progress.fetched_bytes as f64 / (1 << 20) as f64 / secs.max(1e-9),
        progress.blocks,
        human_bytes(progress.fetched_bytes),
        progress.holders,
        args.out.display()
    );
    let _ = node.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// `netmachine store status --config C`.
pub fn store(cmd: &StoreCommand) -> Result<ExitCode, String> {
    let StoreCommand::Status { config, json } = cmd;
    let (_, storage) = storage_of(config)?;
    let store = open(&storage)?;
    let s = store.status();
    let now = Now::read().wall;
    let next = s.next_expiry.map(|t| {
        let left = t.until(now);
        (t.0, left.as_secs())
    });
    if *json {
        let next_json = match next {
            Some((ms, left)) => format!("{{\"at_ms\":{ms},\"in_s\":{left}}}"),
            None => "null".to_string(),
        };
        println!(
            "{{\"path\":{:?},\"blocks\":{},\"bytes\":{},\"max_blocks\":{},\"max_bytes\":{},\"next_expiry\":{next_json}}}",
            storage.path.display().to_string(),
            s.blocks,
            s.bytes,
            s.max_blocks,
            s.max_bytes
        );
    } else {
        println!("store {}", storage.path.display());
        println!("blocks {} of {}", s.blocks, s.max_blocks);
        println!(
            "bytes  {} of {} ({:.1}%)",
            human_bytes(s.bytes),
            human_bytes(s.max_bytes),
            100.0 * s.bytes as f64 / s.max_bytes.max(1) as f64
        );
        match next {
            Some((_, 0)) => {
                println!("next expiry: now (collected by the running node)")
            }
            Some((_, left)) => println!("next expiry: in {}", human_secs(left)),
            None => println!("next expiry: none (the store is empty)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn human_secs(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}
