//! `netmachine sim`: runs a simulator scenario (many nodes on one thread, seeded faults) and
//! prints its summary — one JSON object per line with `--json`, the last line being the
//! summary.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};

use netmachine::sim::net::LinkFaults;
use netmachine::sim::scenario::{
    run_domain_with, run_interdomain_with, run_pubsub_with, run_relay, run_storage_with,
    run_unicast_with, Common, Crypto, DomainScenario, DomainSummary, InterdomainScenario,
    InterdomainSummary, Progress, PubSubScenario, RelayScenario, StorageScenario, StorageSummary,
    Summary, UnicastScenario,
};

/// Prints a line to stdout; a closed pipe (the reader went away) is not an error worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// What every scenario takes.
#[derive(Args, Clone, Debug)]
pub struct CommonArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Average number of neighbours of a node.
    #[arg(long, default_value_t = 4)]
    degree: usize,
    /// Seed of every random decision (printed; the same seed replays the same run). Default:
    /// drawn from the operating system.
    #[arg(long)]
    seed: Option<u64>,
    /// Probability that a packet is lost (datagrams: lost; streams: resent late).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Probability, per burst of stream data, that a connection is lost.
    #[arg(long, default_value_t = 0.0)]
    conn_loss: f64,
    /// Probability that a datagram is duplicated.
    #[arg(long, default_value_t = 0.0)]
    dup: f64,
    /// One-way link latency, milliseconds.
    #[arg(long, default_value_t = 10.0)]
    latency_ms: f64,
    /// Largest extra delay per packet, milliseconds.
    #[arg(long, default_value_t = 5.0)]
    jitter_ms: f64,
    /// A partition of half the nodes, lasting this many seconds, in the middle of the run.
    #[arg(long, default_value_t = 0.0)]
    partition_s: f64,
    /// Fraction of the nodes that crash (and restart 2 s later) during the run.
    #[arg(long, default_value_t = 0.0)]
    crash: f64,
    /// Seconds the run goes on after the workload, for stragglers.
    #[arg(long, default_value_t = 20.0)]
    drain_s: f64,
    /// Signatures: real Ed25519, or the cheap keyed-hash stand-in for large runs (forgeries
    /// are still rejected; every report names the scheme that ran).
    #[arg(long, value_enum, default_value_t = CryptoArg::Ed25519)]
    crypto: CryptoArg,
    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,
}

/// `--crypto`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CryptoArg {
    /// Real Ed25519 signatures.
    Ed25519,
    /// The keyed-hash stand-in.
    StandIn,
}

/// The scenarios.
#[derive(Subcommand, Clone, Debug)]
pub enum SimCommand {
    /// Publishers publish to one topic (and receive each other's events); every other node
    /// subscribes.
    Pubsub {
        #[command(flatten)]
        common: CommonArgs,
        /// Publishers of the one topic, on different nodes spread over the graph.
        #[arg(long, default_value_t = 1)]
        publishers: usize,
        /// Events per publisher.
        #[arg(long, default_value_t = 100)]
        events: u64,
        /// Seconds over which each publisher spreads its events (default: one every 100 ms).
        #[arg(long)]
        seconds: Option<f64>,
        /// Fraction of the other nodes that are attackers injecting forged events.
        #[arg(long, default_value_t = 0.0)]
        attackers: f64,
        /// The first publisher's node also signs a second, different event for each of its
        /// sequence numbers (equivocation) and sends it to its neighbours.
        #[arg(long)]
        equivocate: bool,
    },
    /// Every node's client sends requests to its neighbours' servers, which answer.
    Unicast {
        #[command(flatten)]
        common: CommonArgs,
        /// Requests per client.
        #[arg(long, default_value_t = 100)]
        requests: u64,
        /// Milliseconds between two requests of a client.
        #[arg(long, default_value_t = 20.0)]
        interval_ms: f64,
        /// Every N-th request goes as an unreliable datagram (0: none).
        #[arg(long, default_value_t = 0)]
        datagram_every: u64,
    },
    /// Edge nodes with no address for each other, linked only to `--relays` relays (of which
    /// `--dropping` acknowledge every layer and drop it), sending each other requests: every
    /// request and answer crosses a relay, and a missing receipt sends it by another.
    Relay {
        #[command(flatten)]
        common: CommonArgs,
        /// Relays (the other nodes are edge nodes).
        #[arg(long, default_value_t = 3)]
        relays: usize,
        /// Relays that drop every layer they should forward.
        #[arg(long, default_value_t = 1)]
        dropping: usize,
        /// Requests per edge node.
        #[arg(long, default_value_t = 30)]
        requests: u64,
    },
    /// A domain formed of `--members` nodes, `--joins` nodes asking to join at once, a topic
    /// scoped to the domain; `--crash F` crashes a fraction of the members at once after the
    /// joins (they stay down), `--partition-s S` splits the participants in two halves during
    /// the joins, `--drain-s` is how long the run goes on after the last of that.
    Domain {
        #[command(flatten)]
        common: CommonArgs,
        /// Members of the domain from the start (genesis; `--nodes` is raised to members +
        /// joins if smaller).
        #[arg(long, default_value_t = 40)]
        members: usize,
        /// Non-members that ask to join at once.
        #[arg(long, default_value_t = 0)]
        joins: usize,
        /// Genesis members named as introducers by the advert.
        #[arg(long, default_value_t = 4)]
        introducers: usize,
        /// Events one member publishes on the domain-scoped topic.
        #[arg(long, default_value_t = 10)]
        events: u64,
        /// Non-members that subscribe to the scoped topic (half scoped to the domain, half
        /// `Any`).
        #[arg(long, default_value_t = 10)]
        outsiders: usize,
        /// Seconds to wait for convergence after the joins (and the heal).
        #[arg(long, default_value_t = 60.0)]
        join_timeout_s: f64,
    },
    /// Inter-domain: Zipf-sized domains (each node in 1–5), colluders pushing only each
    /// other's descriptors, then lookups of foreign domains through greedy domain routing;
    /// with baselines from the same seed (random-walk routing, CYCLON sampling).
    Interdomain {
        #[command(flatten)]
        common: CommonArgs,
        /// Domains (sizes Zipf-distributed).
        #[arg(long, default_value_t = 100)]
        domains: usize,
        /// Zipf exponent of the domains' popularity.
        #[arg(long, default_value_t = 1.0)]
        zipf: f64,
        /// Fraction of the nodes that collude.
        #[arg(long, default_value_t = 0.2)]
        colluders: f64,
        /// Lookups: distinct (honest node, foreign domain) pairs, after the rounds.
        #[arg(long, default_value_t = 1000)]
        lookups: usize,
        /// Sampling rounds (periods) before the views are measured and the lookups start.
        #[arg(long, default_value_t = 100)]
        rounds: u64,
        /// Seconds over which the lookups are spread.
        #[arg(long, default_value_t = 10.0)]
        lookup_window_s: f64,
        /// Skip the random-walk lookup baseline (a second world).
        #[arg(long)]
        no_walk_baseline: bool,
        /// Skip the CYCLON sampling baseline (a third world, sampling only).
        #[arg(long)]
        no_cyclon_baseline: bool,
    },
    /// Storage: every node a member of one domain, running the Storage engine; blocks each held
    /// by `--holders` of the nodes; `--lookups` random-walk lookups from nodes not holding the
    /// block, spread over `--lookup-window-s`.
    Storage {
        #[command(flatten)]
        common: CommonArgs,
        /// Fraction of the nodes holding each block (at least one node).
        #[arg(long, default_value_t = 0.01)]
        holders: f64,
        /// Lookups, each from a node drawn among the block's non-holders.
        #[arg(long, default_value_t = 100)]
        lookups: usize,
        /// Distinct blocks, each with its own holders; lookup i asks for block i mod blocks
        /// (0: one per lookup, so no cache filled by an earlier lookup helps).
        #[arg(long, default_value_t = 0)]
        blocks: usize,
        /// Bytes of each block's data.
        #[arg(long, default_value_t = 1024)]
        block_bytes: usize,
        /// Seconds over which the lookups are spread.
        #[arg(long, default_value_t = 10.0)]
        lookup_window_s: f64,
        /// Random walks per lookup (the Storage engines' `fanout`; default: the engine's).
        #[arg(long)]
        fanout: Option<usize>,
        /// Most hops of a walk (the Storage engines' `hop_limit`; default: the engine's).
        #[arg(long)]
        hop_limit: Option<usize>,
    },
}

fn common(a: &CommonArgs) -> Result<Common, String> {
    for (name, p) in [
        ("loss", a.loss),
        ("dup", a.dup),
        ("crash", a.crash),
        ("conn-loss", a.conn_loss),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(format!("--{name} must be between 0 and 1, not {p}"));
        }
    }
    if a.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let seed = a
        .seed
        .unwrap_or_else(|| netmachine::rng::SplitMix64::from_os().next_u64());
    Ok(Common {
        nodes: a.nodes,
        degree: a.degree.max(2),
        seed,
        faults: LinkFaults {
            latency: Duration::from_secs_f64(a.latency_ms.max(0.0) / 1000.0),
            jitter: Duration::from_secs_f64(a.jitter_ms.max(0.0) / 1000.0),
            loss: a.loss,
            dup: a.dup,
            conn_loss: a.conn_loss,
            ..LinkFaults::default()
        },
        crash: a.crash,
        partition: Duration::from_secs_f64(a.partition_s.max(0.0)),
        drain: Duration::from_secs_f64(a.drain_s.max(0.0)),
        crypto: match a.crypto {
            CryptoArg::Ed25519 => Crypto::Ed25519,
            CryptoArg::StandIn => Crypto::StandIn,
        },
        edges: None,
    })
}

/// Runs the scenario; `Ok(false)` if an invariant broke or something was lost.
pub fn run(cmd: &SimCommand) -> Result<bool, String> {
    let (summary, json) = match cmd {
        SimCommand::Domain {
            common: a,
            members,
            joins,
            introducers,
            events,
            outsiders,
            join_timeout_s,
        } => {
            let mut c = common(a)?;
            if *members == 0 {
                return Err("--members must be at least 1".into());
            }
            if c.nodes < members + joins {
                if !a.json {
                    say!(
                        "--nodes {} raised to members + joins = {}",
                        c.nodes,
                        members + joins
                    );
                }
                c.nodes = members + joins;
            }
            announce(&c, a.json, "domain");
            let s = DomainScenario {
                common: c,
                members: *members,
                joins: *joins,
                introducers: *introducers,
                events: *events,
                outsiders: *outsiders,
                join_timeout: Duration::from_secs_f64(join_timeout_s.max(0.0)),
                ..DomainScenario::default()
            };
            let summary = run_domain_with(&s, &mut reporter(a.json));
            if a.json {
                say!("{}", summary.to_json());
            } else {
                print_domain(&summary);
            }
            return Ok(summary.ok());
        }
        SimCommand::Interdomain {
            common: a,
            domains,
            zipf,
            colluders,
            lookups,
            rounds,
            lookup_window_s,
            no_walk_baseline,
            no_cyclon_baseline,
        } => {
            let c = common(a)?;
            if !(0.0..1.0).contains(colluders) {
                return Err(format!("--colluders must be in [0, 1), not {colluders}"));
            }
            if *domains == 0 {
                return Err("--domains must be at least 1".into());
            }
            if !zipf.is_finite() || *zipf < 0.0 {
                return Err(format!("--zipf must be a non-negative number, not {zipf}"));
            }
            announce(&c, a.json, "interdomain");
            let s = InterdomainScenario {
                common: c,
                domains: *domains,
                zipf: *zipf,
                colluders: *colluders,
                lookups: *lookups,
                rounds: *rounds,
                lookup_window: Duration::from_secs_f64(lookup_window_s.max(0.0)),
                walk_baseline: !no_walk_baseline,
                cyclon_baseline: !no_cyclon_baseline,
                ..InterdomainScenario::default()
            };
            let summary = run_interdomain_with(&s, &mut reporter(a.json));
            if a.json {
                say!("{}", summary.to_json());
            } else {
                print_interdomain(&summary);
            }
            return Ok(summary.ok());
        }
        SimCommand::Relay {
            common: a,
            relays,
            dropping,
            requests,
        } => {
            let c = common(a)?;
            if *relays == 0 || *relays >= c.nodes || *dropping >= *relays {
                return Err(format!(
                    "--relays must be in 1..{} (--nodes) and --dropping below it",
                    c.nodes
                ));
            }
            announce(&c, a.json, "relay");
            let s = RelayScenario {
                common: c,
                relays: *relays,
                dropping: *dropping,
                requests: *requests,
                ..RelayScenario::default()
            };
            let r = run_relay(&s);
            if a.json {
                say!("{}", r.to_json());
            } else {
                print_text(&r.summary);
                say!(
                    "relay layers forwarded {}, receipts {}, retries on another path {}, untracked {}, answers given up (counted) {}",
                    r.forwarded,
                    r.receipts,
                    r.retries,
                    r.untracked,
                    r.answer_dropped
                );
            }
            return Ok(ok(&r.summary));
        }
        SimCommand::Storage {
            common: a,
            holders,
            lookups,
            blocks,
            block_bytes,
            lookup_window_s,
            fanout,
            hop_limit,
        } => {
            let c = common(a)?;
            if !(*holders > 0.0 && *holders < 1.0) {
                return Err(format!("--holders must be in (0, 1), not {holders}"));
            }
            if c.nodes < 2 {
                return Err("--nodes must be at least 2 (a holder and an asker)".into());
            }
            let mut s = StorageScenario {
                common: c,
                holders: *holders,
                lookups: *lookups,
                blocks: *blocks,
                block_bytes: (*block_bytes).clamp(8, netmachine::storage::block::MAX_BLOCK_DATA),
                lookup_window: Duration::from_secs_f64(lookup_window_s.max(0.0)),
                ..StorageScenario::default()
            };
            if let Some(f) = fanout {
                if *f == 0 {
                    return Err("--fanout must be at least 1".into());
                }
                s.settings.fanout = *f;
            }
            if let Some(h) = hop_limit {
                let max = netmachine::storage::wire::MAX_PATH;
                if *h == 0 || *h > max {
                    return Err(format!("--hop-limit must be in 1..={max}, not {h}"));
                }
                s.settings.hop_limit = *h;
            }
            announce(&s.common, a.json, "storage");
            let summary = run_storage_with(&s, &mut reporter(a.json));
            if a.json {
                say!("{}", summary.to_json());
            } else {
                print_storage(&summary);
            }
            return Ok(summary.ok());
        }
        SimCommand::Pubsub {
            common: a,
            publishers,
            events,
            seconds,
            attackers,
            equivocate,
        } => {
            let c = common(a)?;
            announce(&c, a.json, "pubsub");
            let interval = match seconds {
                Some(s) if *events > 0 => Duration::from_secs_f64(s.max(0.0) / *events as f64),
                _ => Duration::from_millis(100),
            };
            let s = PubSubScenario {
                common: c,
                publishers: *publishers,
                events: *events,
                interval,
                attackers: *attackers,
                equivocate: *equivocate,
                ..PubSubScenario::default()
            };
            (run_pubsub_with(&s, &mut reporter(a.json)), a.json)
        }
        SimCommand::Unicast {
            common: a,
            requests,
            interval_ms,
            datagram_every,
        } => {
            let c = common(a)?;
            announce(&c, a.json, "unicast");
            let s = UnicastScenario {
                common: c,
                requests: *requests,
                interval: Duration::from_secs_f64(interval_ms.max(0.0) / 1000.0),
                unreliable_every: *datagram_every,
                ..UnicastScenario::default()
            };
            (run_unicast_with(&s, &mut reporter(a.json)), a.json)
        }
    };
    if json {
        say!("{}", summary.to_json());
    } else {
        print_text(&summary);
    }
    Ok(ok(&summary))
}

/// Prints a JSON progress line every simulated second with `--json`, and every ten in text.
fn reporter(json: bool) -> impl FnMut(&Progress) {
    move |p: &Progress| {
        if json {
            say!("{}", p.to_json());
        } else if (p.sim_s.round() as u64) % 10 == 0 {
            say!(
                "  t = {:>4.0} s simulated, {:>7.1} s wall, {} steps, {} done",
                p.sim_s,
                p.wall_s,
                p.steps,
                p.done
            );
        }
    }
}

fn announce(c: &Common, json: bool, scenario: &str) {
    if json {
        say!(
            "{{\"start\":\"{scenario}\",\"nodes\":{},\"seed\":{}}}",
            c.nodes,
            c.seed
        );
    } else {
        say!("sim {scenario}: {} nodes, seed {}", c.nodes, c.seed);
    }
}

fn ok(s: &Summary) -> bool {
    s.failure.is_none()
        && s.duplicates == 0
        && s.order_violations == 0
        && s.lost == 0
        && s.forged_deliveries == 0
        && (s.scenario != "pubsub" || s.crashes > 0 || s.deliveries == s.deliveries_expected)
}

fn print_domain(s: &DomainSummary) {
    say!(
        "{} simulated seconds in {:.2} s of wall time, {} steps, crypto {}",
        s.sim_s,
        s.wall_s,
        s.steps,
        s.crypto
    );
    say!(
        "members {} ({} genesis, {} live); joins {}: {} accepted, refused {:?}, {} unanswered",
        s.members,
        s.genesis_members,
        s.live_members,
        s.joins,
        s.joins_accepted,
        s.joins_refused,
        s.joins_unanswered
    );
    let secs = |v: Option<f64>| v.map_or("never".to_string(), |v| format!("{v:.1} s"));
    say!(
        "converged {} (first after {}; after the heal {}), anti-entropy rounds per member {}",
        s.converged,
        secs(s.converged_s),
        secs(s.converged_after_heal_s),
        s.anti_entropy_rounds
            .map_or("-".to_string(), |v| format!("{v:.1}"))
    );
    say!(
        "largest component {:.1} % of live members ({} components); {} crashed; share after the crash {:?}",
        s.largest_component_share * 100.0,
        s.components,
        s.crashed,
        s.share_after_crash
    );
    say!(
        "maintenance {:.2} msgs/node/s ({:.2} over the last 10 s) {:?}",
        s.maintenance_msgs_per_node_s,
        s.maintenance_msgs_per_node_s_end,
        s.maintenance_msgs
    );
    say!(
        "scoped topic: {} events, {} of {} member deliveries, {} deliveries to non-members, {} topic messages sent by non-members",
        s.events_published,
        s.member_deliveries,
        s.member_deliveries_expected,
        s.scoped_deliveries_to_non_members,
        s.topic_msgs_by_non_members
    );
    say!("trace hash {} (seed {})", s.trace_hash, s.seed);
    if let Some(f) = &s.failure {
        say!("FAILED: {f}");
    }
}

fn print_interdomain(s: &InterdomainSummary) {
    say!(
        "{} simulated seconds in {:.2} s of wall time ({:?}), {} steps, crypto {}",
        s.sim_s,
        s.wall_s,
        s.wall_by_world,
        s.steps,
        s.crypto
    );
    say!(
        "{} domains ({} with members, largest {}), {} colluders; views measured after {} rounds (settled at round {:?})",
        s.domains,
        s.domains_populated,
        s.largest_domain,
        s.colluders,
        s.rounds,
        s.settled_round
    );
    let l = &s.lookups;
    say!(
        "lookups {}: success {:.4} (domains >= 1 %: {:.4} of {}), hops p50 {} / p99 {}; by size {:?}",
        l.asked,
        l.success,
        l.success_large,
        l.asked_large,
        l.hops_p50,
        l.hops_p99,
        l.by_size
    );
    if let Some(b) = &s.baseline_lookups {
        say!(
            "random-walk baseline: success {:.4} (domains >= 1 %: {:.4}), hops p50 {} / p99 {}",
            b.success,
            b.success_large,
            b.hops_p50,
            b.hops_p99
        );
    }
    say!(
        "colluders: {:.3} of the nodes, {:.3} of honest views ({} eclipsed); CYCLON {:?} ({:?} eclipsed)",
        s.colluder_population_share,
        s.colluder_view_share,
        s.eclipsed_nodes,
        s.baseline_colluder_view_share,
        s.baseline_eclipsed_nodes
    );
    say!(
        "BLIP: similarity error {:.4} (unflipped {:.4}, {} pairs), observer accuracy {:.4} (unflipped {:.4})",
        s.blip_similarity_error,
        s.blip_similarity_error_unflipped,
        s.blip_pairs,
        s.blip_observer_accuracy,
        s.blip_observer_accuracy_unflipped
    );
    say!(
        "PSI: {} results checked, {} wrong; maintenance {:.2} msgs/node/s",
        s.psi_pairs_checked,
        s.psi_errors,
        s.maintenance_msgs_per_node_s
    );
    say!("trace hash {} (seed {})", s.trace_hash, s.seed);
    if let Some(f) = &s.failure {
        say!("FAILED: {f}");
    }
}

fn print_storage(s: &StorageSummary) {
    say!(
        "{} simulated seconds in {:.2} s of wall time, {} steps, crypto {}",
        s.sim_s,
        s.wall_s,
        s.steps,
        s.crypto
    );
    say!(
        "{} blocks, {} holders each; walks: fanout {}, hop limit {}",
        s.blocks,
        s.holders_per_block,
        s.fanout,
        s.hop_limit
    );
    say!(
        "lookups {}: {} found (success {:.4}, {} from a cache), hops p50 {} / p99 {} / max {}; failures {:?}; {} asker crashed",
        s.lookups,
        s.found,
        s.lookup_success,
        s.found_in_cache,
        s.hops_p50,
        s.hops_p99,
        s.hops_max,
        s.failures,
        s.asker_crashed
    );
    say!(
        "storage messages {} ({:.1} per lookup); counters {:?}",
        s.storage_msgs,
        s.msgs_per_lookup,
        s.storage
    );
    say!(
        "drops {:?}; crashes {}, partitions {}",
        s.drops_by_reason,
        s.crashes,
        s.partitions
    );
    say!("trace hash {} (seed {})", s.trace_hash, s.seed);
    if let Some(f) = &s.failure {
        say!("FAILED: {f}");
    }
}

fn print_text(s: &Summary) {
    say!(
        "{} simulated seconds in {:.2} s of wall time ({:.1}× real time), {} steps, crypto {}",
        s.sim_s,
        s.wall_s,
        s.sim_s / s.wall_s.max(1e-9),
        s.steps,
        s.crypto
    );
    if s.scenario == "pubsub" {
        say!(
            "events published {}, deliveries {} of {} expected ({} missing without a counted reason), forged events sent {} and delivered {}",
            s.events_published, s.deliveries, s.deliveries_expected, s.lost, s.forged_sent, s.forged_deliveries
        );
    } else {
        say!(
            "requests {}, answered {}, reported undeliverable {}, answer lost in a crash {}, lost {}; datagrams {} sent, {} handled",
            s.requests, s.answered, s.bounced, s.answer_lost_in_crash, s.lost, s.datagrams_sent, s.datagrams_handled
        );
    }
    say!(
        "duplicates {}, order violations {}, crashes {}, partitions {}",
        s.duplicates,
        s.order_violations,
        s.crashes,
        s.partitions
    );
    let drops: Vec<String> = s
        .drops_by_reason
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    say!(
        "drops: {}",
        if drops.is_empty() {
            "none".into()
        } else {
            drops.join(" ")
        }
    );
    say!("trace hash {} (seed {})", s.trace_hash, s.seed);
    if let Some(f) = &s.failure {
        say!("FAILED: {f}");
    }
}
