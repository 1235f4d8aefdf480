//! `netmachine advert` and `netmachine run`: commands that take a node configuration file and
//! print its advert or run the node it describes until SIGINT or SIGTERM (printing a line on
//! stdout whenever the membership of one of its `[[domains]]` changes).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use netmachine::config::Settings;
use netmachine::{DomainIdentity, Node};

use crate::signals;

/// How often `run` checks for a stop signal.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// How often `run` logs the node's status.
const STATUS_EVERY: Duration = Duration::from_secs(60);

/// Prints the node's advert line (the only line on stdout); warns on stderr about listen
/// addresses peers could not dial. With `engine`, prints the advert of that engine of the node
/// instead.
pub fn advert(config: &Path, engine: Option<&str>) -> Result<(), String> {
    let settings = Settings::load(config).map_err(|e| e.to_string())?;
    if let Some(name) = engine {
        let advert = settings.engine_advert(name).map_err(|e| e.to_string())?;
        eprintln!(
            "netmachine: engine {name} is {} on node {}",
            advert.engine, advert.node
        );
        println!("{}", advert.to_line());
        return Ok(());
    }
    if settings.listen.is_empty() {
        eprintln!(
            "netmachine: warning: {} lists no listen address; peers cannot dial this node",
            config.display()
        );
    }
    for addr in settings.listen.iter().filter(|a| a.ip().is_unspecified()) {
        eprintln!(
            "netmachine: warning: listen address {addr} is unspecified; peers cannot dial it \
             (list the address they should use)"
        );
    }
    println!("{}", settings.advert().to_line());
    Ok(())
}

/// Runs the node until SIGINT or SIGTERM, then shuts it down. Exit status 1 if an engine hung
/// at shutdown.
pub fn run(config: &Path) -> Result<ExitCode, String> {
    signals::install()?;
    let settings = Settings::load(config).map_err(|e| e.to_string())?;
    let mut builder = settings.node_builder();
    if let Some(storage) = &settings.storage {
        let store = netmachine::storage::store::RedbStore::open(&storage.path, storage.store)
            .map_err(|e| format!("cannot open the store {}: {e}", storage.path.display()))?;
        let s = netmachine::storage::store::BlockStore::status(&store);
        log::info!(
            "store {}: {} blocks, {}",
            storage.path.display(),
            s.blocks,
            netmachine::storage::store::human_bytes(s.bytes)
        );
        builder = builder.storage(std::sync::Arc::new(store), storage.engine.clone());
    }
    let node = builder
        .start()
        .map_err(|e| format!("cannot start the node of {}: {e}", config.display()))?;
    let addrs = node.listen_addrs();
    let addrs = if addrs.is_empty() {
        "no address".to_string()
    } else {
        addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("node {} listening on {addrs}", node.identity());
    // The line is how scripts and tests know the node is up; make sure it leaves now.
    let _ = std::io::stdout().flush();
    log::info!("advert: {}", node.advert().to_line());
    for (advert, permanent) in &settings.peers {
        log::info!(
            "peer {}{}{}",
            advert.id,
            advert
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            if *permanent { ", permanent" } else { "" }
        );
    }

    let mut last_status = Instant::now();
    let mut domains = DomainWatch::default();
    while !signals::stop_requested() {
        std::thread::sleep(POLL_EVERY);
        domains.print_changes(&node, &settings);
        if last_status.elapsed() >= STATUS_EVERY {
            log::info!("status:\n{}", node.status().trim_end());
            last_status = Instant::now();
        }
    }
    signals::restore_default();
    log::info!("stop requested; shutting down");

    let report = node.shutdown();
    for failure in &report.panicked {
        eprintln!(
            "netmachine: engine {} panicked: {}",
            failure.name, failure.message
        );
    }
    if report.hung.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "netmachine: engines did not stop in time: {}",
            report.hung.join(", ")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// What `run` last printed of each configured domain: whether this node is a member, and the
/// members.
#[derive(Default)]
struct DomainWatch(std::collections::BTreeMap<DomainIdentity, (bool, u64)>);

impl DomainWatch {
    /// Prints one line per configured domain whose membership changed since the last call:
    /// `domain <id>: member|not a member, <n> members: <short ids>`.
    fn print_changes(&mut self, node: &Node, settings: &Settings) {
        for d in &settings.domains {
            let id = d.advert.id;
            let Some(entry) = node.domain_directory().entry(&id) else {
                continue;
            };
            let now = (entry.member_here, entry.version);
            if self.0.get(&id) == Some(&now) {
                continue;
            }
            self.0.insert(id, now);
            let ids: Vec<String> = entry.members.iter().map(|m| m.short()).collect();
            println!(
                "domain {id}: {}, {} members: {}",
                if entry.member_here {
                    "member"
                } else {
                    "not a member"
                },
                ids.len(),
                ids.join(" ")
            );
            let _ = std::io::stdout().flush();
        }
    }
}
