//! The simulated network: connection endpoints, the links between nodes, and the event queue
//! that carries what one endpoint writes to the other.
//!
//! Faults, all drawn from the run's seed:
//! * **latency and jitter** on every packet: `latency + jitter · u`, `u` uniform in [0, 1);
//! * **streams** are reliable and ordered, as QUIC makes them: a lost packet shows as delay (a
//!   retransmission after `retransmit`, with probability `loss`), never as a gap, and bytes of
//!   one stream never overtake each other;
//! * **connections** are lost with probability `conn_loss` per burst of stream data: both ends
//!   see it closed, and the bytes of that burst are gone;
//! * **datagrams** are lost with probability `loss`, duplicated with probability `dup`, and
//!   reordered by their jitter;
//! * **partitions** cut the nodes of one side from the others: datagrams and new connections
//!   across the cut are lost, stream bytes wait for the heal, and a partition that lasts longer
//!   than the idle timeout closes the connections across it;
//! * **crashes**: a crashed node's endpoints vanish without a word; its peers' ends close after
//!   the idle timeout, or at once when they send to it (as a stateless reset would).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::conn::SimConn;
use super::queue::Queue;
use crate::identity::NodeIdentity;
use crate::rng::SplitMix64;
use crate::time::Now;
use crate::transport::peers::ConnId;

/// Identifies one end of a simulated connection.
pub type EndpointId = u64;

/// How links behave (the same for every link of a run).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkFaults {
    /// One-way delay of every packet.
    pub latency: Duration,
    /// Largest extra delay, drawn uniformly per packet.
    pub jitter: Duration,
    /// Probability that a packet is lost (a datagram: gone; stream data: resent late).
    pub loss: f64,
    /// Probability that a datagram arrives twice.
    pub dup: f64,
    /// Extra delay of stream data whose packet was lost (QUIC's retransmission).
    pub retransmit: Duration,
    /// Probability, per burst of stream data sent, that the connection is lost (both ends see
    /// it closed; what was unacknowledged is sent again on the next connection).
    pub conn_loss: f64,
}

impl Default for LinkFaults {
    fn default() -> Self {
        LinkFaults {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            loss: 0.0,
            dup: 0.0,
            retransmit: Duration::from_millis(60),
            conn_loss: 0.0,
        }
    }
}

/// One end of a simulated connection, as the network keeps it.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) node: usize,
    pub(crate) incarnation: u32,
    pub(crate) conn: ConnId,
    pub(crate) peer: Option<EndpointId>,
    pub(crate) q: SimConn,
}

/// What the queue carries.
#[derive(Debug)]
pub(crate) enum Event {
    /// A dial reaches the listening node.
    Open {
        dialer: EndpointId,
        from: SocketAddr,
        identity: NodeIdentity,
        to: usize,
    },
    /// The listener's answer reaches the dialer: the handshake is done.
    Accepted {
        dialer: EndpointId,
        listener: EndpointId,
    },
    /// Stream bytes arrive.
    Bytes {
        from: EndpointId,
        to: EndpointId,
        sid: u64,
        data: Vec<u8>,
        fin: bool,
    },
    /// The peer stopped one of our streams.
    Stop { to: EndpointId, sid: u64, code: u64 },
    /// A datagram arrives.
    Dgram { to: EndpointId, data: Vec<u8> },
    /// The connection is closed under `to`.
    Close { to: EndpointId, reason: String },
    /// A node's own deadline.
    Wake { node: usize },
    /// A node crashes (and restarts after the downtime if `restart`).
    Crash { node: usize, restart: bool },
    /// A crashed node starts again.
    Restart { node: usize },
    /// The nodes in `side` are cut from the others until `heal_at`.
    Partition {
        side: BTreeSet<usize>,
        heal_at: Duration,
    },
    /// The idle timeout passed during the partition healing at `heal_at`: connections across
    /// it close.
    PartitionIdle { heal_at: Duration },
    /// The partition that heals at `heal_at` heals.
    Heal { heal_at: Duration },
    /// The workload's own event (scenario defined).
    App { node: usize, token: u64 },
}

/// The network state of a run.
pub struct Net {
    pub(crate) queue: Queue<Event>,
    pub(crate) endpoints: BTreeMap<EndpointId, Endpoint>,
    next_endpoint: EndpointId,
    pub(crate) faults: LinkFaults,
    rng: SplitMix64,
    /// Node index by identity and by advertised address.
    pub(crate) by_identity: BTreeMap<NodeIdentity, usize>,
    pub(crate) by_addr: BTreeMap<SocketAddr, usize>,
    /// Each node's advertised address.
    pub(crate) addrs: Vec<SocketAddr>,
    /// Each node's incarnation, and whether it is up.
    pub(crate) incarnation: Vec<u32>,
    pub(crate) up: Vec<bool>,
    /// The current partition: one side and when it heals.
    pub(crate) partition: Option<(BTreeSet<usize>, Duration)>,
    /// When the last byte scheduled on each (endpoint, stream) arrives: later bytes never
    /// arrive earlier.
    stream_last: BTreeMap<(EndpointId, u64), Duration>,
    /// The virtual time of the event being handled.
    pub(crate) t: Duration,
    /// Packets and datagrams lost, duplicated, and stream packets delayed by loss.
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) delayed: u64,
    pub(crate) conns_lost: u64,
}

impl Net {
    /// A network with `faults` whose random decisions come from `rng`.
    pub(crate) fn new(faults: LinkFaults, rng: SplitMix64) -> Net {
        Net {
            queue: Queue::new(),
            endpoints: BTreeMap::new(),
            next_endpoint: 1,
            faults,
            rng,
            by_identity: BTreeMap::new(),
            by_addr: BTreeMap::new(),
            addrs: Vec::new(),
            incarnation: Vec::new(),
            up: Vec::new(),
            partition: None,
            stream_last: BTreeMap::new(),
            t: Duration::ZERO,
            lost: 0,
            duplicated: 0,
            delayed: 0,
            conns_lost: 0,
        }
    }

    /// The connection of endpoint `ep`, if it still exists.
    pub(crate) fn conn_mut(&mut self, ep: EndpointId) -> Option<&mut SimConn> {
        self.endpoints.get_mut(&ep).map(|e| &mut e.q)
    }

    /// Whether `a` and `b` are on different sides of the current partition.
    pub(crate) fn cut(&self, a: usize, b: usize) -> bool {
        match &self.partition {
            Some((side, _)) => side.contains(&a) != side.contains(&b),
            None => false,
        }
    }

    fn delay(&mut self) -> Duration {
        let j = self.faults.jitter.mul_f64(self.rng.next_f64());
        self.faults.latency + j
    }

    fn add_endpoint(&mut self, e: Endpoint) -> EndpointId {
        let ep = self.next_endpoint;
        self.next_endpoint += 1;
        self.endpoints.insert(ep, e);
        ep
    }

    /// Starts a connection from node `from` to the node listening at `addr` (whose identity
    /// is `to`); returns the dialer's endpoint.
    pub(crate) fn dial(
        &mut self,
        _now: Now,
        from: NodeIdentity,
        incarnation: u32,
        conn: ConnId,
        to: NodeIdentity,
        addr: SocketAddr,
    ) -> Option<EndpointId> {
        let &node = self.by_identity.get(&from)?;
        let target = self.by_addr.get(&addr).copied();
        let ep = self.add_endpoint(Endpoint {
            node,
            incarnation,
            conn,
            peer: None,
            q: SimConn::default(),
        });
        // A dial to an address nobody has, to a node that is down, or across a partition is
        // never answered: the core gives up on it after its connect timeout.
        if let Some(t) = target {
            let reachable =
                self.up[t] && !self.cut(node, t) && self.by_identity.get(&to) == Some(&t);
            if reachable {
                let at = self.t + self.delay();
                let from_addr = *self.addrs.get(node)?;
                self.queue.push(
                    at,
                    Event::Open {
                        dialer: ep,
                        from: from_addr,
                        identity: from,
                        to: t,
                    },
                );
            } else {
                self.lost += 1;
            }
        }
        Some(ep)
    }

    /// A listener accepted the dial of `dialer` as its endpoint for connection `conn`.
    pub(crate) fn accepted(
        &mut self,
        dialer: EndpointId,
        node: usize,
        conn: ConnId,
        identity: NodeIdentity,
    ) -> EndpointId {
        let ep = self.add_endpoint(Endpoint {
            node,
            incarnation: self.incarnation[node],
            conn,
            peer: Some(dialer),
            q: SimConn {
                established: true,
                identity: Some(identity),
                ..SimConn::default()
            },
        });
        let at = self.t + self.delay();
        self.queue.push(
            at,
            Event::Accepted {
                dialer,
                listener: ep,
            },
        );
        ep
    }

    /// Closes `to` after `after` (a refused dial, a lost peer).
    pub(crate) fn close_later(&mut self, to: EndpointId, after: Duration, reason: &str) {
        let at = self.t + after;
        self.queue.push(
            at,
            Event::Close {
                to,
                reason: reason.to_string(),
            },
        );
    }

    /// Puts on the wire what endpoint `ep` has written: stream bytes (in order per stream),
    /// stops, datagrams and its close, each with the link's delay and faults.
    pub(crate) fn transmit(&mut self, _now: Now, ep: EndpointId) {
        let Some(e) = self.endpoints.get_mut(&ep) else {
            return;
        };
        let Some(peer) = e.peer else {
            // Not answered yet: what it wrote waits (QUIC would not send 1-RTT data either).
            return;
        };
        let from_node = e.node;
        let out: Vec<(u64, Vec<u8>, bool)> =
            e.q.out
                .iter_mut()
                .filter(|(_, (b, fin))| !b.is_empty() || *fin)
                .map(|(sid, (b, fin))| (*sid, std::mem::take(b), std::mem::take(fin)))
                .collect();
        let stops = std::mem::take(&mut e.q.stops);
        let dgrams = std::mem::take(&mut e.q.dgrams_out);
        let close = match (&e.q.closed_by_us, e.q.close_sent) {
            (Some((code, reason)), false) => {
                e.q.close_sent = true;
                Some(format!("peer closed it: 0x{code:x} {reason}"))
            }
            _ => None,
        };
        let to_node = self.endpoints.get(&peer).map(|p| p.node);
        let heal = match (&self.partition, to_node) {
            (Some((_, heal_at)), Some(t)) if self.cut(from_node, t) => Some(*heal_at),
            _ => None,
        };
        if !out.is_empty()
            && self.faults.conn_loss > 0.0
            && self.rng.next_f64() < self.faults.conn_loss
        {
            self.conns_lost += 1;
            let latency = self.faults.latency;
            self.close_later(ep, latency, "connection lost");
            self.close_later(peer, latency, "connection lost");
            return;
        }
        for (sid, data, fin) in out {
            let mut at = self.t + self.delay();
            if self.rng.next_f64() < self.faults.loss {
                at += self.faults.retransmit;
                self.delayed += 1;
            }
            if let Some(h) = heal {
                at = at.max(h + self.faults.latency);
            }
            let last = self.stream_last.entry((peer, sid)).or_default();
            at = at.max(*last);
            *last = at;
            self.queue.push(
                at,
                Event::Bytes {
                    from: ep,
                    to: peer,
                    sid,
                    data,
                    fin,
                },
            );
            if fin {
                self.stream_last.remove(&(peer, sid));
            }
        }
        for (sid, code) in stops {
            let mut at = self.t + self.delay();
            if let Some(h) = heal {
                at = at.max(h + self.faults.latency);
            }
            self.queue.push(
                at,
                Event::Stop {
                    to: peer,
                    sid,
                    code,
                },
            );
        }
        for data in dgrams {
            if heal.is_some() || self.rng.next_f64() < self.faults.loss {
                self.lost += 1;
                continue;
            }
            if self.rng.next_f64() < self.faults.dup {
                self.duplicated += 1;
                let at = self.t + self.delay();
                self.queue.push(
                    at,
                    Event::Dgram {
                        to: peer,
                        data: data.clone(),
                    },
                );
            }
            let at = self.t + self.delay();
            self.queue.push(at, Event::Dgram { to: peer, data });
        }
        if let Some(reason) = close {
            let mut at = self.t + self.delay();
            if let Some(h) = heal {
                at = at.max(h + self.faults.latency);
            }
            self.queue.push(at, Event::Close { to: peer, reason });
        }
    }

    /// Forgets endpoint `ep` (its connection is closed and the core knows).
    pub(crate) fn forget(&mut self, ep: EndpointId) {
        self.endpoints.remove(&ep);
        let streams: Vec<(EndpointId, u64)> = self
            .stream_last
            .range((ep, 0)..=(ep, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in streams {
            self.stream_last.remove(&k);
        }
    }

    /// The endpoints of `node`.
    pub(crate) fn endpoints_of(&self, node: usize) -> Vec<EndpointId> {
        self.endpoints
            .iter()
            .filter(|(_, e)| e.node == node)
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(faults: LinkFaults) -> (Net, EndpointId, EndpointId) {
        let mut net = Net::new(faults, SplitMix64::new(5));
        let a = net.add_endpoint(Endpoint {
            node: 0,
            incarnation: 0,
            conn: 1,
            peer: None,
            q: SimConn::default(),
        });
        let b = net.add_endpoint(Endpoint {
            node: 1,
            incarnation: 0,
            conn: 1,
            peer: Some(a),
            q: SimConn::default(),
        });
        net.endpoints.get_mut(&a).expect("a").peer = Some(b);
        net.up = vec![true, true];
        (net, a, b)
    }

    fn now() -> Now {
        Now {
            instant: std::time::Instant::now(),
            wall: crate::time::Timestamp(0),
        }
    }

    /// With heavy jitter and loss, bytes of one stream still arrive in the order written, and
    /// loss shows as delay, never as a gap; datagrams are lost and reordered.
    #[test]
    fn streams_stay_ordered_and_whole_while_datagrams_do_not() {
        let (mut net, a, _) = pair(LinkFaults {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(50),
            loss: 0.3,
            dup: 0.0,
            retransmit: Duration::from_millis(60),
            conn_loss: 0.0,
        });
        for i in 0..200u32 {
            net.t = Duration::from_millis(i as u64);
            let q = net.conn_mut(a).expect("a");
            q.out.insert(2, (i.to_le_bytes().to_vec(), false));
            q.dgrams_out.push(i.to_le_bytes().to_vec());
            net.transmit(now(), a);
        }
        let mut stream = Vec::new();
        let mut dgrams = Vec::new();
        while let Some((_, e)) = net.queue.pop() {
            match e {
                Event::Bytes { data, sid: 2, .. } => {
                    stream.push(u32::from_le_bytes(data[..4].try_into().unwrap()))
                }
                Event::Dgram { data, .. } => {
                    dgrams.push(u32::from_le_bytes(data[..4].try_into().unwrap()))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(stream, (0..200).collect::<Vec<_>>(), "whole and in order");
        assert!(net.delayed > 30, "loss shows as delay: {}", net.delayed);
        assert!(dgrams.len() < 180 && dgrams.len() > 100, "{}", dgrams.len());
        assert!(dgrams.windows(2).any(|w| w[0] > w[1]), "datagrams reorder");
    }

    /// Across a partition, stream bytes wait for the heal and datagrams are lost.
    #[test]
    fn a_partition_holds_stream_bytes_until_it_heals() {
        let (mut net, a, _) = pair(LinkFaults::default());
        let heal = Duration::from_secs(5);
        net.partition = Some((BTreeSet::from([0]), heal));
        let q = net.conn_mut(a).expect("a");
        q.out.insert(2, (vec![1, 2, 3], false));
        q.dgrams_out.push(vec![9]);
        net.transmit(now(), a);
        let (at, e) = net.queue.pop().expect("the bytes");
        assert!(matches!(e, Event::Bytes { .. }));
        assert!(at >= heal, "{at:?}");
        assert!(net.queue.pop().is_none(), "the datagram is lost");
        assert_eq!(net.lost, 1);
    }
}
