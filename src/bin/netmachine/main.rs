//! The `netmachine` command: keys, adverts, nodes, pings, publish/subscribe, domains and the local
//! demo.
//!
//! Each subcommand lives in its own module; this file only parses the command line (clap) and
//! maps results to exit codes. Errors go to stderr prefixed with `netmachine:`; exit status 1
//! means the command failed, 2 that the command line was wrong.

mod bench;
mod chaos_cmd;
mod cluster;
mod demo;
mod domain_cmd;
mod domain_request;
mod node_cmd;
mod ping;
mod pubsub_args;
mod pubsub_cmd;
mod signals;
mod sim_cmd;
mod soak;
mod storage_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use netmachine::{Keypair, NodeIdentity, TopicIdentity};

#[derive(Parser)]
#[command(
    name = "netmachine",
    version,
    about = "The Anoma Networking Machine: nodes, keys and tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a new Ed25519 key file (PKCS#8 PEM, mode 0600) and print its identity.
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the signed advert line of the node a configuration file describes, for other
    /// nodes' `[[peers]]` tables (or, with --engine, of one of its engines, for `[[engines]]`).
    Advert {
        /// The node's configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print the advert of this node's engine of that name instead (`nmengine2:…`).
        #[arg(long, value_name = "NAME")]
        engine: Option<String>,
    },
    /// Run the node a configuration file describes until SIGINT or SIGTERM.
    Run {
        /// The node's configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Start the node a configuration file describes and ping one of its peers.
    Ping {
        /// The node's configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The peer to ping: its node identity (64 hex characters); it must be one of the
        /// configuration's peers.
        #[arg(long, value_name = "NODE_ID", value_parser = ping::parse_node)]
        node: NodeIdentity,
        /// Number of pings, sent one after another.
        #[arg(long, value_name = "N", default_value_t = 10, value_parser = ping::parse_count)]
        count: u32,
        /// How long to wait for each reply, in milliseconds.
        #[arg(long = "timeout-ms", value_name = "T", default_value_t = 5000,
              value_parser = ping::parse_timeout_ms)]
        timeout_ms: u64,
        /// Bytes in each ping (at most 65536).
        #[arg(long, value_name = "BYTES", default_value_t = 32, value_parser = ping::parse_size)]
        size: usize,
    },
    /// Start the node a configuration file describes, subscribe to a topic through its peers and
    /// print one line per event received.
    ///
    /// Prints one line starting with `subscribed` once the subscription is in place, then
    /// `event <n> from <publisher> via <peer>: <len> bytes <hex of the first 16 bytes>` per event.
    /// Every configured peer is kept connected.
    Subscribe {
        /// The node's configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The topic: its identity (64 hex characters, as `netmachine keygen` printed for the
        /// topic key).
        #[arg(long, value_name = "TOPIC_ID", value_parser = pubsub_cmd::parse_topic)]
        topic: TopicIdentity,
        /// Exit (status 0) after this many events; without it, run until SIGINT or SIGTERM.
        #[arg(long, value_name = "N", value_parser = pubsub_cmd::parse_count)]
        count: Option<u64>,
        /// Exit with status 1 if the --count events have not all arrived within this many
        /// seconds of the start (subscribing included). Needs --count.
        #[arg(long = "timeout-s", value_name = "S", requires = "count",
              value_parser = pubsub_cmd::parse_timeout_s)]
        timeout_s: Option<u64>,
    },
    /// Start the node a configuration file describes, advertise a topic, wait for subscribing
    /// peers, publish events and wait until every subscribing peer acknowledged them all.
    ///
    /// Each event body is its sequence number (from 0, 8 bytes little-endian) followed by zeros
    /// up to --size. Every configured peer is kept connected. A peer that stops subscribing before
    /// acknowledging everything no longer counts and is reported.
    Publish {
        /// The node's configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The topic key (a key file written by `netmachine keygen`); the topic identity is the
        /// identity `keygen` printed for it.
        #[arg(long = "topic-key", value_name = "KEYFILE")]
        topic_key: PathBuf,
        /// Number of events to publish.
        #[arg(long, value_name = "N", default_value_t = 10, value_parser = pubsub_cmd::parse_count)]
        count: u64,
        /// Bytes in each event (8 to 1048576; the first 8 carry the sequence number).
        #[arg(long, value_name = "BYTES", default_value_t = 64,
              value_parser = pubsub_cmd::parse_size)]
        size: usize,
        /// Subscribing peers (direct neighbours subscribed to the topic) to wait for before
        /// publishing.
        #[arg(long = "wait-subscribers", value_name = "K", default_value_t = 1,
              value_parser = pubsub_cmd::parse_wait_subscribers)]
        wait_subscribers: usize,
        /// Fail (status 1) if the whole run — subscribers, publishing, acknowledgements — takes
        /// longer than this many seconds.
        #[arg(long = "timeout-s", value_name = "S", default_value_t = 30,
              value_parser = pubsub_cmd::parse_timeout_s)]
        timeout_s: u64,
    },
    /// Run a demo cluster in this process and report what was delivered and how fast.
    Demo {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Requests each node sends.
        #[arg(long, default_value_t = 10_000)]
        requests: u64,
        /// Events published to the demo topic.
        #[arg(long, default_value_t = 1_000)]
        events: u64,
    },
    /// Run nodes in this process exchanging traffic for a long time, reporting memory, file
    /// descriptors, threads and delivered / lost counters at each interval.
    Soak {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// How long to run, in minutes.
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// Seconds between report lines.
        #[arg(long, default_value_t = 60)]
        interval_s: u64,
        /// Topic events published per second.
        #[arg(long, default_value_t = 100)]
        event_rate: u64,
    },
    /// Domains: make a domain key, sign its advert, join a domain, list its members, send a
    /// request to a member of a foreign domain.
    #[command(subcommand)]
    Domain(domain_cmd::DomainCommand),
    /// Run a simulator scenario: many nodes on one thread, on a virtual clock, with faults
    /// drawn from a seed (printed; the same seed replays the same run).
    #[command(subcommand)]
    Sim(sim_cmd::SimCommand),
    /// Run a UDP fault proxy in front of a node until SIGINT or SIGTERM: datagrams to --listen
    /// go to --forward and replies come back, with loss, duplication, reordering, delay, jitter,
    /// corruption and blackholes drawn from a seed (printed at start).
    Chaos(chaos_cmd::ChaosArgs),
    /// Store a file in the node's block store (`[storage]`) and print its object id; the
    /// running node then serves it to other nodes.
    Put(storage_cmd::PutArgs),
    /// Start the node and fetch an object from other nodes' stores into its own, in parallel
    /// from every holder found, then write it to --out (progress on a terminal).
    Get(storage_cmd::GetArgs),
    /// The node's block store.
    #[command(subcommand)]
    Store(storage_cmd::StoreCommand),
    /// Run a performance suite; each measures its own baseline in the same run.
    Bench {
        /// Which suite.
        #[arg(value_enum)]
        suite: bench::Suite,
        /// Print one JSON object per figure.
        #[arg(long)]
        json: bool,
        /// Rough duration of each suite's main measurement, in seconds.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A running node logs what it does; the one-shot commands only warn.
    // A simulation runs thousands of nodes: their own warnings (drop summaries) would drown the
    // report, which counts every drop; the simulator's findings are warnings of `netmachine::sim`.
    let default_filter = match cli.command {
        Command::Run { .. } => "info",
        Command::Sim(_) => "error,netmachine::sim=warn",
        _ => "warn",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
        .init();
    match cli.command {
        Command::Keygen { out } => keygen(&out),
        Command::Chaos(args) => chaos_cmd::run(&args),
        Command::Put(args) => storage_cmd::put(&args).unwrap_or_else(|e| fail(&e)),
        Command::Get(args) => storage_cmd::get(&args).unwrap_or_else(|e| fail(&e)),
        Command::Store(cmd) => storage_cmd::store(&cmd).unwrap_or_else(|e| fail(&e)),
        Command::Advert { config, engine } => match node_cmd::advert(&config, engine.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Run { config } => match node_cmd::run(&config) {
            Ok(code) => code,
            Err(e) => fail(&e),
        },
        Command::Ping {
            config,
            node,
            count,
            timeout_ms,
            size,
        } => match ping::run(&ping::PingOptions {
            config,
            node,
            count,
            timeout: Duration::from_millis(timeout_ms),
            size,
        }) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => fail(&e),
        },
        Command::Subscribe {
            config,
            topic,
            count,
            timeout_s,
        } => match pubsub_cmd::subscribe(&pubsub_cmd::SubscribeOptions {
            config,
            topic,
            count,
            timeout: timeout_s.map(Duration::from_secs),
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Publish {
            config,
            topic_key,
            count,
            size,
            wait_subscribers,
            timeout_s,
        } => match pubsub_cmd::publish(&pubsub_cmd::PublishOptions {
            config,
            topic_key,
            count,
            size,
            wait_subscribers,
            timeout: Duration::from_secs(timeout_s),
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Demo {
            nodes,
            requests,
            events,
        } => match demo::run(&demo::DemoOptions {
            nodes,
            requests,
            events,
        }) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => fail(&e),
        },
        Command::Domain(cmd) => match domain_cmd::run(&cmd) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => fail(&e),
        },
        Command::Sim(cmd) => match sim_cmd::run(&cmd) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => fail(&e),
        },
        Command::Soak {
            nodes,
            minutes,
            interval_s,
            event_rate,
        } => match soak::run(&soak::SoakOptions {
            nodes,
            minutes,
            interval_s: interval_s.max(1),
            event_rate,
        }) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => fail(&e),
        },
        Command::Bench {
            suite,
            json,
            seconds,
        } => match bench::run(&bench::BenchOptions {
            suite,
            json,
            seconds,
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
    }
}

fn keygen(out: &std::path::Path) -> ExitCode {
    let key = Keypair::generate();
    match key.write_file(out) {
        Ok(()) => {
            println!("{}", key.node_identity());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("cannot write {}: {e}", out.display())),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("netmachine: {message}");
    ExitCode::FAILURE
}
