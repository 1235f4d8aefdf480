//! `netmachine domain …`: make a domain key, sign a domain advert for `[[domains]]`, and — by
//! starting the node a configuration file describes — ask to join a domain, list its members,
//! or send a request to a member of a foreign domain (`request`, in `domain_request.rs`).
//!
//! `join` and `members` run the node themselves (as `ping` does), so they cannot use the
//! configuration of a node that `netmachine run` is running at the same time: its port is taken.
//! A control socket to ask a running node is a later issue.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};

use netmachine::config::Settings;
use netmachine::mail::domain::MemberInfo;
use netmachine::time::wall_clock;
use netmachine::wire::advert::{DomainAuth, Introducer};
use netmachine::wire::{DomainAdvert, TransportAddress};
use netmachine::{DomainIdentity, Keypair, Node, NodeError, NodeIdentity};

use crate::ping::parse_node;
use crate::signals;

/// The `domain` subcommands.
#[derive(Subcommand)]
pub enum DomainCommand {
    /// Write a new domain key file (PKCS#8 PEM like a node key, mode 0600) and print the domain
    /// identity. Keep it offline: it signs the domain's adverts and nothing else.
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a domain advert with the domain key and print its line (`nmdomain1:…`), for the
    /// `advert` key of every member's `[[domains]]` table.
    Advert(AdvertArgs),
    /// Start the node a configuration file describes, ask to join a domain of its
    /// `[[domains]]`, and print the answer: `accepted` with the epoch and the approving member,
    /// or `refused` with the reason. Exit status 0 if accepted, 1 if not.
    Join {
        /// The node's configuration file (TOML); it must not be running.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The domain (its identity, as `netmachine domain keygen` printed).
        #[arg(long, value_name = "DOMAIN_ID", value_parser = parse_domain)]
        domain: DomainIdentity,
        /// How long to wait for the answer, in seconds.
        #[arg(long = "timeout-s", value_name = "S", default_value_t = 20,
              value_parser = parse_seconds)]
        timeout_s: u64,
    },
    /// Start the node a configuration file describes, wait until its replica of a domain's
    /// membership has settled (or --wait-s passes), and print the members: node, epoch,
    /// approver, whether an introducer, whether in this node's overlay view.
    ///
    /// The node joins at start if its `[[domains]]` table says `join = true` (the default).
    /// Exit status 1 if the node is not a member when the wait ends.
    Members {
        /// The node's configuration file (TOML); it must not be running.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The domain (its identity).
        #[arg(long, value_name = "DOMAIN_ID", value_parser = parse_domain)]
        domain: DomainIdentity,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Longest wait for the membership to settle, in seconds.
        #[arg(long = "wait-s", value_name = "S", default_value_t = 10,
              value_parser = parse_seconds)]
        wait_s: u64,
    },
    /// Start the node a configuration file describes and send one request to some member of a
    /// domain — one this node need not be a member of nor know a member of — through the
    /// inter-domain overlay; print which member answered, after how many hops, and the answer.
    /// Exit status 0 if a member answered, 1 if not.
    Request(crate::domain_request::RequestArgs),
}

/// How joiners authenticate, as `--auth` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthArg {
    /// Any node may join.
    None,
    /// A joiner proves it holds the domain's pre-shared key (`psk` / `psk_file` in
    /// `[[domains]]`).
    Psk,
    /// Only the nodes given with --allow (and the introducers) may join.
    AllowList,
}

/// Options of `netmachine domain advert`.
#[derive(Args)]
pub struct AdvertArgs {
    /// The domain key (a file written by `netmachine domain keygen`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// An introducer — a genesis member that approves joins — as its node identity, optionally
    /// with the addresses joiners dial: `NODE_ID[@IP:PORT[,IP:PORT…]]`. At least one.
    #[arg(long = "introducer", value_name = "NODE[@ADDR]", required = true,
          value_parser = parse_introducer)]
    pub introducers: Vec<Introducer>,
    /// How joiners authenticate.
    #[arg(long, value_enum)]
    pub auth: AuthArg,
    /// A node allowed to join (with `--auth allow-list`); may be repeated.
    #[arg(long = "allow", value_name = "NODE_ID", value_parser = parse_node)]
    pub allow: Vec<NodeIdentity>,
    /// A member that answers requests from non-members; may be repeated (none: the domain
    /// accepts no external requests).
    #[arg(long = "external", value_name = "NODE_ID", value_parser = parse_node)]
    pub external: Vec<NodeIdentity>,
    /// Most members the domain admits (0: no bound but each node's own limit).
    #[arg(long = "max-members", value_name = "N", default_value_t = 0)]
    pub max_members: u64,
    /// The advert's version: a new advert of the domain must have a higher one to replace
    /// the old.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub version: u64,
}

/// Parses `--domain`: a domain identity in hex.
pub fn parse_domain(s: &str) -> Result<DomainIdentity, String> {
    s.parse::<DomainIdentity>().map_err(|_| {
        format!(
            "{s:?} is not a domain identity (64 hex characters, as `netmachine domain keygen` \
             prints)"
        )
    })
}

/// Parses a number of seconds, at least 1.
pub fn parse_seconds(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1 s".into()),
        Ok(n) if n <= 86_400 => Ok(n),
        _ => Err("expected a whole number of seconds from 1 to 86400".into()),
    }
}

/// Parses `--introducer NODE_ID[@IP:PORT[,IP:PORT…]]`.
pub fn parse_introducer(s: &str) -> Result<Introducer, String> {
    let (node, addrs) = match s.split_once('@') {
        Some((n, a)) => (n, Some(a)),
        None => (s, None),
    };
    let node = parse_node(node)?;
    let mut list = Vec::new();
    for a in addrs.into_iter().flat_map(|a| a.split(',')) {
        let addr: SocketAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{a:?} is not an address like 127.0.0.1:7001"))?;
        list.push(TransportAddress::quic(addr));
    }
    if list.len() > netmachine::wire::advert::MAX_ADDRS {
        return Err(format!(
            "at most {} addresses per introducer",
            netmachine::wire::advert::MAX_ADDRS
        ));
    }
    Ok(Introducer { node, addrs: list })
}

/// Runs one `domain` subcommand; `Ok(false)` is a clean "no" (refused, not a member).
pub fn run(cmd: &DomainCommand) -> Result<bool, String> {
    match cmd {
        DomainCommand::Keygen { out } => {
            let key = Keypair::generate();
            key.write_file(out)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!("{}", key.domain_identity());
            Ok(true)
        }
        DomainCommand::Advert(args) => {
            println!("{}", advert(args)?.to_line());
            Ok(true)
        }
        DomainCommand::Join {
            config,
            domain,
            timeout_s,
        } => join(config, *domain, Duration::from_secs(*timeout_s)),
        DomainCommand::Members {
            config,
            domain,
            json,
            wait_s,
        } => members(config, *domain, *json, Duration::from_secs(*wait_s)),
        DomainCommand::Request(args) => crate::domain_request::run(args),
    }
}

/// The advert `args` describe, signed with the domain key.
pub fn advert(args: &AdvertArgs) -> Result<DomainAdvert, String> {
    let key = Keypair::read_file(&args.key)
        .map_err(|e| format!("cannot read the domain key {}: {e}", args.key.display()))?;
    let mut seen = BTreeSet::new();
    for i in &args.introducers {
        if !seen.insert(i.node) {
            return Err(format!("--introducer {} is given twice", i.node));
        }
    }
    let auth = match args.auth {
        AuthArg::None | AuthArg::Psk if !args.allow.is_empty() => {
            return Err("--allow needs --auth allow-list".into());
        }
        AuthArg::None => DomainAuth::None,
        AuthArg::Psk => DomainAuth::Psk,
        AuthArg::AllowList => {
            let list: BTreeSet<NodeIdentity> = args.allow.iter().copied().collect();
            if list.is_empty() {
                eprintln!(
                    "netmachine: warning: the allow-list is empty; only the introducers are \
                     members"
                );
            }
            DomainAuth::AllowList(list.into_iter().collect())
        }
    };
    let external: Vec<NodeIdentity> = args
        .external
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let advert = DomainAdvert::new_signed(
        &key,
        args.introducers.clone(),
        auth,
        external,
        args.max_members,
        args.version,
        wall_clock(),
    );
    if !advert.within_limits() {
        return Err(format!(
            "the advert has more than it may carry: at most {} introducers, {} external \
             members and {} nodes on the allow-list",
            netmachine::wire::advert::MAX_INTRODUCERS,
            netmachine::wire::advert::MAX_DOMAIN_NODES,
            netmachine::wire::advert::MAX_ALLOW_LIST
        ));
    }
    if args.max_members > 0 && (args.introducers.len() as u64) > args.max_members {
        return Err(format!(
            "--max-members {} is below the {} introducers",
            args.max_members,
            args.introducers.len()
        ));
    }
    eprintln!(
        "netmachine: domain {}: {} introducer(s), auth {}, version {}",
        advert.id,
        advert.introducers.len(),
        advert.auth.label(),
        advert.version
    );
    Ok(advert)
}

/// Loads `config`, checks it configures `domain`, and starts its node (joining at start as
/// configured, unless `no_join`).
fn start(config: &Path, domain: DomainIdentity, no_join: bool) -> Result<Node, String> {
    signals::install()?;
    let mut settings = Settings::load(config).map_err(|e| e.to_string())?;
    let Some(d) = settings.domains.iter_mut().find(|d| d.advert.id == domain) else {
        let known: Vec<String> = settings
            .domains
            .iter()
            .map(|d| d.advert.id.to_string())
            .collect();
        return Err(format!(
            "domain {domain} is not in the [[domains]] of {}; add its advert there{}",
            config.display(),
            if known.is_empty() {
                String::new()
            } else {
                format!(". Its domains are:\n  {}", known.join("\n  "))
            }
        ));
    };
    if no_join {
        d.join_at_start = false;
    }
    settings.node_builder().start().map_err(|e| {
        let hint = match e {
            NodeError::Transport(_) => {
                " (this command runs the node itself: is `netmachine run` using the same file?)"
            }
            _ => "",
        };
        format!("cannot start the node of {}: {e}{hint}", config.display())
    })
}

fn stop(node: Node) {
    let report = node.shutdown();
    if !report.hung.is_empty() {
        eprintln!(
            "netmachine: engines did not stop in time: {}",
            report.hung.join(", ")
        );
    }
}

/// `domain join`: the answer to one join request.
fn join(config: &Path, domain: DomainIdentity, timeout: Duration) -> Result<bool, String> {
    let node = start(config, domain, true)?;
    if node.domain_directory().member_here(&domain) {
        println!(
            "already a member of domain {} (node {} is an introducer)",
            domain.short(),
            node.identity().short()
        );
        stop(node);
        return Ok(true);
    }
    let answer = node.join_domain(domain, None, timeout);
    let ok = match answer {
        Ok(a) => match a.result {
            Ok(epoch) => {
                println!(
                    "accepted into domain {} from epoch {epoch} by {}",
                    domain.short(),
                    a.approver.map_or("?".to_string(), |n| n.to_string())
                );
                true
            }
            Err(reason) => {
                println!(
                    "refused by {}: {}",
                    a.approver
                        .map_or("no member".to_string(), |n| n.to_string()),
                    reason.label()
                );
                false
            }
        },
        Err(e) => {
            stop(node);
            return Err(format!("cannot ask the domain engine: {e}"));
        }
    };
    // Give the new membership a moment to reach the approver's view before going offline.
    if ok {
        std::thread::sleep(Duration::from_millis(300));
    }
    stop(node);
    Ok(ok)
}

/// How long the member list must stay unchanged to count as settled.
const SETTLED: Duration = Duration::from_secs(2);

/// `domain members`: waits for the membership to settle, then prints it.
fn members(
    config: &Path,
    domain: DomainIdentity,
    json: bool,
    wait: Duration,
) -> Result<bool, String> {
    let node = start(config, domain, false)?;
    let deadline = Instant::now() + wait;
    let mut last: Option<(Vec<NodeIdentity>, Instant)> = None;
    let list = loop {
        let list = node
            .domain_members(domain, Duration::from_secs(2))
            .map_err(|e| format!("cannot ask the domain engine: {e}"))?;
        let here = node.domain_directory().member_here(&domain);
        let ids: Vec<NodeIdentity> = list.iter().map(|m| m.node).collect();
        let now = Instant::now();
        let since = match &last {
            Some((prev, at)) if *prev == ids => *at,
            _ => now,
        };
        last = Some((ids, since));
        let settled = here && now.duration_since(since) >= SETTLED && !list.is_empty();
        if settled || now >= deadline || signals::stop_requested() {
            break list;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let here = node.domain_directory().member_here(&domain);
    if json {
        println!("{}", members_json(domain, node.identity(), here, &list));
    } else {
        print!("{}", members_table(domain, node.identity(), here, &list));
    }
    stop(node);
    Ok(here)
}

/// The member table a person reads.
pub fn members_table(
    domain: DomainIdentity,
    me: NodeIdentity,
    here: bool,
    list: &[MemberInfo],
) -> String {
    let mut out = format!(
        "domain {domain}: {} members; node {} is {}\n",
        list.len(),
        me.short(),
        if here { "a member" } else { "not a member" }
    );
    out.push_str(&format!(
        "{:<64}  {:>6}  {:<8}  {:<10}  {}\n",
        "node", "epoch", "approver", "introducer", "in view"
    ));
    for m in list {
        out.push_str(&format!(
            "{:<64}  {:>6}  {:<8}  {:<10}  {}\n",
            m.node,
            m.epoch,
            m.approver.short(),
            if m.introducer { "yes" } else { "no" },
            if m.node == me {
                "self"
            } else if m.in_view {
                "yes"
            } else {
                "no"
            }
        ));
    }
    out
}

/// The member list as one JSON object.
pub fn members_json(
    domain: DomainIdentity,
    me: NodeIdentity,
    here: bool,
    list: &[MemberInfo],
) -> String {
    let members: Vec<String> = list
        .iter()
        .map(|m| {
            format!(
                "{{\"node\":\"{}\",\"epoch\":{},\"approver\":\"{}\",\"introducer\":{},\
                 \"in_view\":{}}}",
                m.node, m.epoch, m.approver, m.introducer, m.in_view
            )
        })
        .collect();
    format!(
        "{{\"domain\":\"{domain}\",\"node\":\"{me}\",\"member\":{here},\"count\":{},\
         \"members\":[{}]}}",
        list.len(),
        members.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn introducers_parse_with_and_without_addresses() {
        let id = NodeIdentity([7; 32]);
        let i = parse_introducer(&id.to_string()).unwrap();
        assert_eq!((i.node, i.addrs.len()), (id, 0));
        let i = parse_introducer(&format!("{id}@127.0.0.1:7001,[::1]:7002")).unwrap();
        assert_eq!(i.addrs.len(), 2);
        assert_eq!(
            i.addrs[1].socket_addr(),
            "[::1]:7002".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_introducer(&format!("{id}@nowhere")).is_err());
        assert!(parse_introducer("xyz").unwrap_err().contains("64 hex"));
        assert!(parse_domain("00").is_err());
        assert!(parse_seconds("0").is_err());
    }

    #[test]
    fn the_table_and_json_list_every_member() {
        let (a, b) = (NodeIdentity([1; 32]), NodeIdentity([2; 32]));
        let list = vec![
            MemberInfo {
                node: a,
                epoch: 0,
                approver: a,
                introducer: true,
                in_view: false,
            },
            MemberInfo {
                node: b,
                epoch: 3,
                approver: a,
                introducer: false,
                in_view: true,
            },
        ];
        let d = DomainIdentity([9; 32]);
        let t = members_table(d, a, true, &list);
        assert_eq!(t.lines().count(), 4, "{t}");
        assert!(t.contains("2 members") && t.contains("self"), "{t}");
        let j = members_json(d, a, true, &list);
        assert!(j.starts_with('{') && j.ends_with('}'), "{j}");
        assert!(
            j.contains("\"count\":2") && j.contains("\"epoch\":3"),
            "{j}"
        );
    }
}
