//! A fake connection and a small network of cores for the core's tests: connections are
//! in-memory streams and datagrams moved by [`Net::pump`], with an optional byte budget per
//! connection standing in for flow and congestion control.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::conn::{QuicConn, RecvError, SendError};
use super::peers::ConnId;
use super::{Core, Delivery, Output, SeededRng};
use crate::identity::{EngineIdentity, Keypair, NodeIdentity};
use crate::router::RouteHeader;
use crate::runtime::stats::{DropReason, NodeStats};
use crate::time::{Now, Timestamp};
use crate::transport::{RemoteSend, TransportConfig, TransportEvent};
use crate::wire::{Destination, MessageId, NodeAdvert, TransportAddress};

/// One end of an in-memory connection.
#[derive(Debug, Default)]
pub(crate) struct FakeConn {
    pub(crate) established: bool,
    pub(crate) identity: Option<NodeIdentity>,
    /// Our close, if we closed it.
    pub(crate) closed_by_us: Option<(u64, String)>,
    /// The peer's close (or a lost connection).
    pub(crate) closed_by_peer: Option<String>,
    /// Bytes written and not yet moved to the peer, and whether the stream is finished.
    pub(crate) out: BTreeMap<u64, (Vec<u8>, bool)>,
    /// Bytes to read, whether the stream finished, and whether the finish was read.
    pub(crate) inb: BTreeMap<u64, (VecDeque<u8>, bool, bool)>,
    /// Bytes the connection still takes before the next refill; `None` is unlimited.
    pub(crate) budget: Option<usize>,
    /// Our streams the peer stopped, with its code.
    pub(crate) stopped: BTreeMap<u64, u64>,
    /// Peer streams we stopped, with our code (moved to the peer by the pump).
    pub(crate) stops: Vec<(u64, u64)>,
    pub(crate) stops_seen: Vec<(u64, u64)>,
    pub(crate) dgrams_in: VecDeque<Vec<u8>>,
    pub(crate) dgrams_out: Vec<Vec<u8>>,
    pub(crate) probes: usize,
    pub(crate) acked: u64,
}

impl QuicConn for FakeConn {
    fn is_established(&self) -> bool {
        self.established
    }

    fn is_closed(&self) -> bool {
        self.closed_by_us.is_some() || self.closed_by_peer.is_some()
    }

    fn peer_identity(&self) -> Result<NodeIdentity, String> {
        self.identity.ok_or_else(|| "no certificate".into())
    }

    fn readable(&mut self) -> Vec<u64> {
        self.inb
            .iter()
            .filter(|(_, (b, fin, fin_read))| !b.is_empty() || (*fin && !*fin_read))
            .map(|(sid, _)| *sid)
            .collect()
    }

    fn stream_recv(&mut self, sid: u64, buf: &mut [u8]) -> Result<(usize, bool), RecvError> {
        let Some((bytes, fin, fin_read)) = self.inb.get_mut(&sid) else {
            return Err(RecvError::Done);
        };
        if bytes.is_empty() && (!*fin || *fin_read) {
            return Err(RecvError::Done);
        }
        let n = bytes.len().min(buf.len());
        for (i, b) in bytes.drain(..n).enumerate() {
            buf[i] = b;
        }
        let done = *fin && bytes.is_empty();
        if done {
            *fin_read = true;
        }
        Ok((n, done))
    }

    fn stream_send(&mut self, sid: u64, data: &[u8], fin: bool) -> Result<usize, SendError> {
        if let Some(code) = self.stopped.get(&sid) {
            return Err(SendError::Stopped(*code));
        }
        let n = self.budget.map_or(data.len(), |b| b.min(data.len()));
        if n == 0 && !data.is_empty() {
            return Err(SendError::Blocked);
        }
        if let Some(b) = self.budget.as_mut() {
            *b -= n;
        }
        let s = self.out.entry(sid).or_default();
        s.0.extend_from_slice(&data[..n]);
        if fin && n == data.len() {
            s.1 = true;
        }
        Ok(n)
    }

    fn stream_stop(&mut self, sid: u64, code: u64) {
        self.stops.push((sid, code));
        self.inb.remove(&sid);
    }

    fn dgram_max_writable_len(&self) -> Option<usize> {
        Some(1200)
    }

    fn dgram_send(&mut self, data: &[u8]) -> bool {
        self.dgrams_out.push(data.to_vec());
        true
    }

    fn dgram_recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let d = self.dgrams_in.pop_front()?;
        buf[..d.len()].copy_from_slice(&d);
        Some(d.len())
    }

    fn peer_streams_left_uni(&self) -> u64 {
        100
    }

    fn close(&mut self, code: u64, reason: &str) {
        if self.closed_by_us.is_none() {
            self.closed_by_us = Some((code, reason.into()));
        }
    }

    fn send_ack_eliciting(&mut self) {
        self.probes += 1;
    }

    fn acked_bytes(&self) -> u64 {
        self.acked
    }

    fn close_description(&self) -> String {
        self.closed_by_peer
            .clone()
            .unwrap_or_else(|| "closed".into())
    }

    fn identity_mismatch(&self) -> bool {
        false
    }
}

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
                Output::Notify { event, .. } | Output::Answer { event, .. } => {
                    node.events.push(event)
                }
                Output::StoreAdvert(_) => {}
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
                    let theirs = self.nodes[j].core.handle_incoming(self.now, from);
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
