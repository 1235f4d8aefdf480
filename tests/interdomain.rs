//! The inter-domain engines on real nodes over QUIC on 127.0.0.1, in a line `asker — relay —
//! member`: a request from a node that is no member (and knows nothing of the domain but its
//! identity) reaches the member two hops away through the relay and the answer comes back;
//! the next request goes straight to the member learnt (one hop). A relay that opts out of the
//! inter-domain protocols (`without_interdomain`) neither gossips nor forwards; one that only
//! refuses to forward (`forward = false`) gossips but refuses the request.
//!
//! The asker trusts only its configured peer (its sampling `trust_transitivity` and
//! `stranger_trust` are 0): it never takes the member into its own views, so the request must
//! go through the relay — exactly two hops.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use netmachine::domain::{DomainInfo, DomainSettings};
use netmachine::mail::interdomain::{
    CLUSTERING_ENGINE_NAME, DOMAIN_ROUTING_ENGINE_NAME, SAMPLING_ENGINE_NAME,
};
use netmachine::node::{DomainAnswer, InterdomainSettings};
use netmachine::time::wall_clock;
use netmachine::wire::advert::{DomainAuth, Introducer};
use netmachine::wire::{DomainAdvert, TransportAddress};
use netmachine::{DomainIdentity, Keypair, Node, NodeBuilder, NodeIdentity, Protocol};

use common::topics::builder;
use common::wait_until;

/// How long the overlay may take to form (a few exchange periods are enough).
const SETTLE: Duration = Duration::from_secs(30);

/// Inter-domain settings with short periods, so that the test's overlay forms in a second.
fn fast() -> InterdomainSettings {
    let mut s = InterdomainSettings::default();
    s.sampling.period = Duration::from_millis(200);
    s.clustering.period = Duration::from_millis(200);
    s
}

/// The asker's settings: it trusts its configured peer only, so neither gossip from it nor a
/// stranger's exchange brings any other node into its views.
fn asker() -> InterdomainSettings {
    let mut s = fast();
    s.sampling.trust_transitivity = 0.0;
    s.sampling.stranger_trust = 0.0;
    s.clustering.min_trust = 1.0;
    s
}

/// A domain introduced by `member` (at `addr`), open to any joiner, whose member answers
/// requests from non-members.
fn domain(member: &Keypair, addr: SocketAddr) -> DomainAdvert {
    DomainAdvert::new_signed(
        &Keypair::generate(),
        vec![Introducer {
            node: member.node_identity(),
            addrs: vec![TransportAddress::quic(addr)],
        }],
        DomainAuth::None,
        vec![member.node_identity()],
        0,
        1,
        wall_clock(),
    )
}

/// Three nodes in a line 0 — 1 — 2: node 0 asks (with [`asker`] settings), node 2 is the
/// domain's only member, node 1 is set up by `relay`.
struct Line {
    keys: Vec<Keypair>,
    nodes: Vec<Node>,
    domain: DomainIdentity,
}

impl Line {
    fn start(relay: impl FnOnce(NodeBuilder) -> NodeBuilder) -> Line {
        let keys: Vec<Keypair> = (0..3).map(|_| Keypair::generate()).collect();
        let addrs: Vec<SocketAddr> = (0..3).map(|_| common::free_port()).collect();
        let edges = [(0, 1), (1, 2)];
        let advert = domain(&keys[2], addrs[2]);
        let b = |i: usize| builder(&keys, &addrs, &edges, i).seed(100 + i as u64);
        let asker = b(0).interdomain(asker()).start().unwrap();
        let relay = relay(b(1)).start().unwrap();
        let member = b(2)
            .interdomain(fast())
            .domain(DomainSettings {
                advert: advert.clone(),
                psk: None,
                join_at_start: true,
            })
            .start()
            .unwrap();
        Line {
            keys,
            nodes: vec![asker, relay, member],
            domain: advert.id,
        }
    }

    fn id(&self, i: usize) -> NodeIdentity {
        self.keys[i].node_identity()
    }

    /// Whether node `i`'s inter-domain neighbours include node `j`.
    fn neighbours(&self, i: usize, j: usize) -> bool {
        self.nodes[i]
            .neighbour_board()
            .is_some_and(|b| b.neighbours().iter().any(|n| n.node() == self.id(j)))
    }

    fn status(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.status())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Node 0's request for the domain, answered.
    fn request(&self, protocol: Protocol, body: &[u8]) -> DomainAnswer {
        self.nodes[0]
            .request_domain(self.domain, protocol, body.to_vec(), None)
            .unwrap_or_else(|e| panic!("no answer: {e}\n{}", self.status()))
    }
}

#[test]
fn a_request_from_a_non_member_reaches_a_member_two_hops_away() {
    let line = Line::start(|b| b.interdomain(fast()));
    let d = line.domain;
    assert!(wait_until(SETTLE, || line.nodes[2]
        .domain_directory()
        .member_here(&d)));
    assert!(!line.nodes[0].domain_directory().knows(&d));
    // The overlay: the relay holds the member's descriptor (made since it became a member),
    // the asker the relay's.
    assert!(
        wait_until(SETTLE, || line.neighbours(1, 2) && line.neighbours(0, 1)),
        "overlay not formed:\n{}",
        line.status()
    );

    let answer = line.request(Protocol::DOMAIN_ROUTING, b"probe");
    assert_eq!(
        answer.result.as_deref(),
        Ok(&b"member"[..]),
        "{answer:?}\n{}",
        line.status()
    );
    assert_eq!(answer.member, Some(line.id(2)), "{answer:?}");
    assert_eq!(answer.hops, 2, "asker → relay → member: {answer:?}");
    let relay = line.nodes[1].routing_stats().unwrap();
    assert!(relay.forwarded.load(Relaxed) >= 1, "{}", line.status());
    assert!(relay.responses_relayed.load(Relaxed) >= 1);
    assert!(
        line.nodes[2]
            .routing_stats()
            .unwrap()
            .member_answers
            .load(Relaxed)
            >= 1,
        "{}",
        line.status()
    );
    // The asker never took the member into its views: the request could only go through the
    // relay.
    assert!(!line.neighbours(0, 2), "{}", line.status());

    // The member is learnt: the next request — to its Domain engine — goes straight to it.
    let routes = line.nodes[0].domain_routes().unwrap();
    assert_eq!(routes.members(&d).first().map(|m| m.node), Some(line.id(2)));
    let info = line.request(Protocol::DOMAIN, netmachine::domain::INFO_REQUEST);
    let body = info
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}\n{}", line.status()));
    let info_body = DomainInfo::from_bytes(body).unwrap();
    assert_eq!(info_body.members, 1, "{info_body:?}");
    assert_eq!(info_body.advert_version, 1);
    assert_eq!((info.member, info.hops), (Some(line.id(2)), 1), "{info:?}");
}

#[test]
fn an_opted_out_node_neither_gossips_nor_forwards() {
    let line = Line::start(|b| b.without_interdomain());
    let relay = &line.nodes[1];
    assert!(!relay.runs_interdomain());
    assert!(relay.sampling_stats().is_none() && relay.neighbour_board().is_none());
    let engines: Vec<String> = relay.engines().into_iter().map(|(n, _)| n).collect();
    for name in [
        SAMPLING_ENGINE_NAME,
        CLUSTERING_ENGINE_NAME,
        DOMAIN_ROUTING_ENGINE_NAME,
    ] {
        assert!(!engines.iter().any(|e| e == name), "{engines:?}");
    }
    // Its neighbours try to exchange with it for a while; it never answers, so neither learns
    // its descriptor, and what they send it is dropped (counted).
    let sent = |i: usize| {
        line.nodes[i]
            .sampling_stats()
            .unwrap()
            .sent_exchange
            .load(Relaxed)
    };
    assert!(
        wait_until(SETTLE, || sent(0) >= 5 && sent(2) >= 5),
        "{}",
        line.status()
    );
    for i in [0, 2] {
        let s = line.nodes[i].sampling_stats().unwrap();
        assert_eq!(s.received_reply.load(Relaxed), 0, "{}", line.status());
        assert!(!line.neighbours(i, 1), "{}", line.status());
    }
    assert!(relay.stats().drops.iter().map(|(_, n)| n).sum::<u64>() > 0);

    // With no neighbour, the asker's request goes nowhere.
    let answer = line.request(Protocol::DOMAIN_ROUTING, b"probe");
    assert!(
        answer.result.is_err() && answer.member.is_none(),
        "{answer:?}"
    );
    assert!(
        line.nodes[0]
            .routing_stats()
            .unwrap()
            .no_route
            .load(Relaxed)
            >= 1
    );
    assert!(line.nodes[0].domain_routes().unwrap().is_empty());
}

#[test]
fn a_node_that_does_not_forward_gossips_but_refuses_others_requests() {
    let line = Line::start(|b| {
        let mut s = fast();
        s.routing.forward = false;
        b.interdomain(s)
    });
    assert!(
        wait_until(SETTLE, || line.neighbours(1, 2) && line.neighbours(0, 1)),
        "overlay not formed:\n{}",
        line.status()
    );
    let answer = line.request(Protocol::DOMAIN_ROUTING, b"probe");
    assert!(answer.result.is_err(), "{answer:?}\n{}", line.status());
    assert_ne!(answer.member, Some(line.id(2)), "{answer:?}");
    let relay = line.nodes[1].routing_stats().unwrap();
    assert!(relay.opted_out.load(Relaxed) >= 1, "{}", line.status());
    assert_eq!(relay.forwarded.load(Relaxed), 0);
    assert_eq!(
        line.nodes[2]
            .routing_stats()
            .unwrap()
            .member_answers
            .load(Relaxed),
        0
    );
}

/// Runs the `netmachine` binary with `args`.
fn netmachine(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_netmachine"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn the_command_line_asks_a_domain_from_a_node_in_none() {
    // The relay and the member run in this process; the asker is `netmachine domain request`
    // with a configuration file whose only peer is the relay.
    let keys: Vec<Keypair> = (0..3).map(|_| Keypair::generate()).collect();
    let addrs: Vec<SocketAddr> = (0..3).map(|_| common::free_port()).collect();
    let edges = [(0, 1), (1, 2)];
    let advert = domain(&keys[2], addrs[2]);
    let _relay = builder(&keys, &addrs, &edges, 1)
        .interdomain(fast())
        .start()
        .unwrap();
    let member = builder(&keys, &addrs, &edges, 2)
        .interdomain(fast())
        .domain(DomainSettings {
            advert: advert.clone(),
            psk: None,
            join_at_start: true,
        })
        .start()
        .unwrap();
    assert!(wait_until(SETTLE, || member
        .domain_directory()
        .member_here(&advert.id)));
    let dir = common::TempDir::new("interdomain", "cli");
    keys[0].write_file(&dir.path("node.key")).unwrap();
    let relay_line =
        netmachine::wire::NodeAdvert::for_listen(&keys[1], &[addrs[1]], None).to_line();
    let config = |name: &str, extra: &str| {
        let path = dir.path(name);
        std::fs::write(
            &path,
            format!(
                "key_file = \"node.key\"\nlisten = [\"{}\"]\n\n[[peers]]\nadvert = \"{relay_line}\"\n\n\
                 [interdomain]\nperiod_ms = 200\n{extra}",
                addrs[0]
            ),
        )
        .unwrap();
        path.to_str().unwrap().to_string()
    };
    let on = config("node.toml", "");
    let d = advert.id.to_string();
    let out = netmachine(&[
        "domain", "request", "--config", &on, "--domain", &d, "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("\"ok\":true")
            && stdout.contains(&format!("\"member\":\"{}\"", keys[2].node_identity()))
            && stdout.contains("\"answer\":\"\\\"member\\\"\""),
        "{stdout}"
    );
    let out = netmachine(&[
        "domain",
        "request",
        "--config",
        &on,
        "--domain",
        &d,
        "--protocol",
        "domain",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.starts_with(&format!("member {}", keys[2].node_identity()))
            && stdout.contains("members=1 advert_version=1"),
        "{stdout}"
    );

    // An opted-out node cannot ask; a bad protocol is a usage error.
    let off = config("off.toml", "enabled = false\n");
    let out = netmachine(&["domain", "request", "--config", &off, "--domain", &d]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("enabled = false"), "{stderr}");
    let out = netmachine(&[
        "domain",
        "request",
        "--config",
        &on,
        "--domain",
        &d,
        "--protocol",
        "pong",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("protocol number"));
}
