//! The `netmachine` command: keys, adverts, nodes, pings, pub/sub and the local demo.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use netmachine::Keypair;

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
    /// Run a demo cluster in this process and report what was delivered and how fast.
    Demo {
        /// Number of nodes.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// Requests each node sends.
        #[arg(long, default_value_t = 10_000)]
        requests: u64,
        /// Events published to the demo topic.
        #[arg(long, default_value_t = 1_000)]
        events: u64,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen { out } => keygen(&out),
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
