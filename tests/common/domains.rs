//! Domain helpers for the integration tests: a signed domain advert, and nodes on 127.0.0.1
//! connected in a full mesh, each configured with its own `[[domains]]`-like settings.

use std::net::SocketAddr;
use std::time::Duration;

use netmachine::domain::DomainSettings;
use netmachine::time::wall_clock;
use netmachine::wire::advert::{DomainAuth, Introducer};
use netmachine::wire::{DomainAdvert, TransportAddress};
use netmachine::{DomainIdentity, Keypair, Node, NodeIdentity};

use super::topics::builder;

/// A domain with auth `auth`, introduced by the nodes `introducers` (with their addresses).
pub fn domain_advert(
    domain_key: &Keypair,
    introducers: &[(&Keypair, SocketAddr)],
    auth: DomainAuth,
) -> DomainAdvert {
    DomainAdvert::new_signed(
        domain_key,
        introducers
            .iter()
            .map(|(k, a)| Introducer {
                node: k.node_identity(),
                addrs: vec![TransportAddress::quic(*a)],
            })
            .collect(),
        auth,
        Vec::new(),
        0,
        1,
        wall_clock(),
    )
}

/// Nodes connected in a full mesh; node `i` gets the domains `domains(i)`.
pub struct Mesh {
    pub keys: Vec<Keypair>,
    pub addrs: Vec<SocketAddr>,
    pub nodes: Vec<Node>,
}

impl Mesh {
    /// `n` keys and free addresses, for building adverts before the nodes start.
    pub fn plan(n: usize) -> (Vec<Keypair>, Vec<SocketAddr>) {
        (
            (0..n).map(|_| Keypair::generate()).collect(),
            (0..n).map(|_| super::free_port()).collect(),
        )
    }

    /// Starts the nodes of `keys` / `addrs`, all connected to each other.
    pub fn start(
        keys: Vec<Keypair>,
        addrs: Vec<SocketAddr>,
        domains: impl Fn(usize) -> Vec<DomainSettings>,
    ) -> Mesh {
        let n = keys.len();
        let edges: Vec<(usize, usize)> = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .collect();
        let nodes = (0..n)
            .map(|i| {
                let mut b = builder(&keys, &addrs, &edges, i).seed(i as u64 + 1);
                for d in domains(i) {
                    b = b.domain(d);
                }
                b.start().unwrap()
            })
            .collect();
        Mesh { keys, addrs, nodes }
    }

    /// The node identity of node `i`.
    pub fn id(&self, i: usize) -> NodeIdentity {
        self.keys[i].node_identity()
    }
}

/// Settings of a member (or would-be member) of the domain of `advert`.
pub fn settings(advert: &DomainAdvert, psk: Option<&[u8]>, join: bool) -> DomainSettings {
    DomainSettings {
        advert: advert.clone(),
        psk: psk.map(|p| p.to_vec()),
        join_at_start: join,
    }
}

/// Whether every node of `nodes` is a member of `domain` and holds exactly `members`.
pub fn converged(nodes: &[&Node], domain: &DomainIdentity, members: &[NodeIdentity]) -> bool {
    nodes.iter().all(|n| {
        n.domain_directory().entry(domain).is_some_and(|e| {
            e.member_here
                && e.members.len() == members.len()
                && members.iter().all(|m| e.members.contains(m))
        })
    })
}

/// How long the tests wait for a membership to converge.
pub const CONVERGE: Duration = Duration::from_secs(30);
