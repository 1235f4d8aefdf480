//! A small network of cores for the core's tests: connections are the simulator's in-memory
//! streams and datagrams, moved at once by [`Net::pump`] (no delay, no faults), with an
//! optional byte budget per connection standing in for flow and congestion control.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::conn::QuicConn;
use super::peers::ConnId;
use super::{Core, Delivery, Output, SeededRng};
use crate::identity::{EngineIdentity, Keypair, NodeIdentity};
use crate::mail::identity::FromPeer;
use crate::mail::RouteHeader;
use crate::runtime::stats::{DropReason, NodeStats};
use crate::time::{Now, Timestamp};
use crate::transport::{RemoteSend, TransportConfig, TransportEvent};
use crate::wire::{Destination, MessageId, NodeAdvert, TransportAddress};

/// One end of an in-memory connection: the simulator's connection end, whose `budget`
/// stands in for flow and congestion control.
pub(crate) type FakeConn = crate::sim::conn::SimConn;

/// A node of the test network.
pub(crate) struct TestNode {
    pub(crate) id: NodeIdentity,
    pub(crate) addr: SocketAddr,
    pub(crate) core: Core<SeededRng>,
    pub(crate) stats: Arc<NodeStats>,
    pub(crate) conns: BTreeMap<ConnId, FakeConn>,
    pub(crate) delivered: Vec<Delivery>,
    pub(crate) bounced: Vec<(RemoteSend, DropReason)>,
    pub(crate) events: Vec<TransportEvent>,
    /// What the core handed the identity store.
    pub(crate) exchange: Vec<FromPeer>,
    /// Peers' adverts the core handed the identity store.
    pub(crate) adverts: Vec<NodeAdvert>,
    /// Whether deliveries are processed (and so acknowledged) at once.
    pub(crate) process: bool,
    /// Whether the Router refuses deliveries (mailbox full).
    pub(crate) refuse: bool,
    /// Dials are answered (a connection appears at the peer).
    pub(crate) answer_dials: bool,
}

/// A link between a connection of one node and one of another.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Link {
    pub(crate) a: (usize, ConnId, u32),
    pub(crate) b: (usize, ConnId, u32),
}

/// Nodes, their keys and the links between their connections.
pub(crate) struct Net {
    pub(crate) nodes: Vec<TestNode>,
    pub(crate) keys: Vec<Keypair>,
    pub(crate) generation: Vec<u32>,
    pub(crate) links: Vec<Link>,
    pub(crate) now: Now,
}

pub(crate) fn advert(key: &Keypair, addr: SocketAddr) -> NodeAdvert {
    NodeAdvert::new_signed(
        key,
        vec![(TransportAddress::quic(addr), 1)],
        1,
        Timestamp(1),
        Timestamp(u64::MAX),
        None,
    )
}

/// A message from engine `src` with wire `body`.
pub(crate) fn message(node: NodeIdentity, src: u8, id: u64, body: Vec<u8>) -> RemoteSend {
    RemoteSend {
        node,
        header: RouteHeader {
            src: EngineIdentity([src; 32]),
            dst: Destination::Engine(EngineIdentity([0xee; 32])),
            id: MessageId(id),
            expiry: None,
            rprefs: None,
            tprefs: None,
            notify: true,
        },
        wire: body,
        relay: None,
    }
}

impl Net {
    /// `n` nodes that know each other's adverts, each with `config`.
    pub(crate) fn new(n: usize, config: TransportConfig) -> Net {
        Net::with_configs(vec![config; n])
    }

    /// A node per config, all knowing each other's adverts.
    pub(crate) fn with_configs(configs: Vec<TransportConfig>) -> Net {
        let n = configs.len();
        let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate()).collect();
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|i| format!("10.0.0.{}:4000", i + 1).parse().expect("valid"))
            .collect();
        let now = Now::read();
        let mut net = Net {
            nodes: Vec::new(),
            keys,
            generation: vec![0; n],
            links: Vec::new(),
            now,
        };
        for (i, config) in configs.into_iter().enumerate() {
            let node = net.make_node(i, &addrs, config, i as u64 + 1);
            net.nodes.push(node);
        }
        net
    }

    fn make_node(
        &self,
        i: usize,
        addrs: &[SocketAddr],
        config: TransportConfig,
        seed: u64,
    ) -> TestNode {
        let peers = (0..self.keys.len())
            .filter(|j| *j != i)
            .map(|j| (advert(&self.keys[j], addrs[j]), false))
            .collect();
        let stats = Arc::new(NodeStats::default());
        let id = self.keys[i].node_identity();
        TestNode {
            id,
            addr: addrs[i],
            core: Core::new(
                id,
                advert(&self.keys[i], addrs[i]),
                config,
                peers,
                Arc::clone(&stats),
                SeededRng::new(seed),
            ),
            stats,
            conns: BTreeMap::new(),
            delivered: Vec::new(),
            bounced: Vec::new(),
            events: Vec::new(),
            exchange: Vec::new(),
            adverts: Vec::new(),
            process: true,
            refuse: false,
            answer_dials: true,
        }
    }

    /// Replaces node `i` by a fresh start of it (new instance, empty state); its old
    /// connections go silent.
    pub(crate) fn restart(&mut self, i: usize, config: TransportConfig, seed: u64) {
        let addrs: Vec<SocketAddr> = self.nodes.iter().map(|n| n.addr).collect();
        self.generation[i] += 1;
        self.nodes[i] = self.make_node(i, &addrs, config, seed);
    }

    pub(crate) fn advance(&mut self, d: Duration) {
        self.now = self.now.advanced(d);
        for n in &mut self.nodes {
            n.core.handle_timeout(self.now);
        }
    }

    /// Drains node `i`'s outputs (dials create the peer's end at once).
    fn drain(&mut self, i: usize) {
        let mut refused = Vec::new();
        let mut receipts = Vec::new();
        while let Some(out) = self.nodes[i].core.poll_output() {
            let node = &mut self.nodes[i];
            match out {
                Output::Deliver(d) => {
                    if node.refuse || refused.contains(&d.conn) {
                        refused.push(d.conn);
                        node.core.handle_refused(d);
                    } else {
                        if node.process {
                            receipts.extend(d.receipt);
                        }
                        node.delivered.push(d);
                    }
                }
                Output::Bounce { send, reason } => node.bounced.push((send, reason)),
                // No relays here: what the Router would do without one.
                Output::NoDirectPath(send) => node
                    .bounced
                    .push((send, crate::runtime::stats::DropReason::NoRoute)),
                Output::Notify { event, .. } | Output::Answer { event, .. } => {
                    node.events.push(event)
                }
                Output::StoreAdvert(a) => node.adverts.push(a),
                Output::Exchange(m) => node.exchange.push(m),
                Output::Dial {
                    conn, node: peer, ..
                } => {
                    let Some(j) = self.nodes.iter().position(|n| n.id == peer) else {
                        continue;
                    };
                    self.nodes[i].conns.insert(
                        conn,
                        FakeConn {
                            established: true,
                            ..FakeConn::default()
                        },
                    );
                    if !self.nodes[j].answer_dials {
                        self.nodes[i]
                            .conns
                            .get_mut(&conn)
                            .expect("inserted")
                            .established = false;
                        continue;
                    }
                    let (from, dialer) = (self.nodes[i].addr, self.nodes[i].id);
                    let theirs = self.nodes[j]
                        .core
                        .handle_incoming(self.now, TransportAddress::quic(from));
                    self.nodes[j].conns.insert(
                        theirs,
                        FakeConn {
                            established: true,
                            identity: Some(dialer),
                            ..FakeConn::default()
                        },
                    );
                    self.links.push(Link {
                        a: (i, conn, self.generation[i]),
                        b: (j, theirs, self.generation[j]),
                    });
                }
            }
        }
        if !receipts.is_empty() {
            self.nodes[i].core.handle_processed(receipts);
        }
    }

    /// Services everything node `i` wants serviced.
    pub(crate) fn run_node(&mut self, i: usize) {
        self.drain(i);
        while let Some(id) = self.nodes[i].core.poll_service() {
            let now = self.now;
            let node = &mut self.nodes[i];
            let Some(q) = node.conns.get_mut(&id) else {
                continue;
            };
            node.core.service(now, id, q, usize::MAX);
            if q.is_closed() {
                node.core.handle_closed(now, id, &*q);
            }
            self.drain(i);
        }
    }

    /// Moves bytes, stops and closes across every live link; returns whether anything moved.
    pub(crate) fn pump(&mut self) -> bool {
        let mut moved = false;
        for l in self.links.clone() {
            for (from, to) in [(l.a, l.b), (l.b, l.a)] {
                if self.generation[from.0] != from.2 || self.generation[to.0] != to.2 {
                    continue;
                }
                let Some(mut src) = self.nodes[from.0].conns.remove(&from.1) else {
                    continue;
                };
                if let Some(dst) = self.nodes[to.0].conns.get_mut(&to.1) {
                    let mut any = false;
                    for (sid, (bytes, fin)) in src.out.iter_mut() {
                        let e = dst.inb.entry(*sid).or_default();
                        if !bytes.is_empty() || (*fin && !e.1) {
                            any = true;
                        }
                        src.acked += bytes.len() as u64;
                        e.0.extend(bytes.drain(..));
                        e.1 |= *fin;
                    }
                    for (sid, code) in src.stops.drain(..) {
                        src.stops_seen.push((sid, code));
                        dst.stopped.insert(sid, code);
                        any = true;
                    }
                    dst.dgrams_in.extend(src.dgrams_out.drain(..));
                    if let Some((code, reason)) = &src.closed_by_us {
                        if dst.closed_by_peer.is_none() {
                            dst.closed_by_peer =
                                Some(format!("peer closed it: 0x{code:x} {reason}"));
                            any = true;
                        }
                    }
                    if any {
                        moved = true;
                        self.nodes[to.0].core.handle_activity(to.1);
                        self.nodes[from.0].core.handle_activity(from.1);
                    }
                }
                self.nodes[from.0].conns.insert(from.1, src);
            }
        }
        moved
    }

    /// Runs every node and pumps until nothing moves.
    pub(crate) fn settle(&mut self) {
        for _ in 0..10_000 {
            for i in 0..self.nodes.len() {
                self.run_node(i);
            }
            if !self.pump() {
                for i in 0..self.nodes.len() {
                    self.run_node(i);
                }
                if !self.pump() {
                    return;
                }
            }
        }
        panic!("the network did not settle");
    }

    /// The live connections of node `i` (known to its core and not closed).
    pub(crate) fn live(&self, i: usize) -> Vec<ConnId> {
        let n = &self.nodes[i];
        n.core
            .connections()
            .map(|(id, _)| id)
            .filter(|id| n.conns.get(id).is_some_and(|c| !c.is_closed()))
            .collect()
    }

    /// The link holding connection `conn` of node `i`.
    pub(crate) fn link_of(&self, i: usize, conn: ConnId) -> Option<Link> {
        self.links.iter().copied().find(|l| {
            (l.a.0 == i && l.a.1 == conn && l.a.2 == self.generation[i])
                || (l.b.0 == i && l.b.1 == conn && l.b.2 == self.generation[i])
        })
    }
}
