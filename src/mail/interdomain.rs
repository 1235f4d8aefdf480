//! The vocabulary of the inter-domain protocols (spec notes §5.6, §9): what the PeerSampling,
//! Clustering and DomainRouting engines, the Router and applications share on one node.
//!
//! * [`NeighbourBoard`] — the node's inter-domain neighbours (TAPS random links, TAC cluster
//!   links and fingers, each with its flipped membership filter and trust), and the node's own
//!   descriptor. Written by PeerSampling (its view and the own descriptor) and Clustering (its
//!   view), read by DomainRouting to forward greedily. One short write per view change.
//! * [`DomainRoutes`] — members of foreign domains this node has learnt (from the answers to
//!   its domain requests), written by DomainRouting, read by the Router to send
//!   `Destination::Domain` messages straight to a member (anycast).
//! * [`RoutingMail`] — local mail between an application (or the command line, or the Router)
//!   and the DomainRouting engine (`Protocol::DOMAIN_ROUTING`, scope `Local`).
//!
//! Local mail is encoded like every message body (`u32 version || u32 tag || fields`, the
//! crate's bincode configuration; version [`ROUTING_MAIL_VERSION`]) and never leaves the node: a receiver acts on it only when
//! the message's origin is [`crate::mail::Origin::Local`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bincode::{Decode, Encode};
use parking_lot::RwLock;

use crate::identity::{DomainIdentity, NodeIdentity};
use crate::time::Timestamp;
use crate::wire::{decode_exact, encode_to_vec, NodeAdvert, NodeDescriptor, Protocol, WireError};

/// The name of the node's PeerSampling engine (TAPS with URPS, or the CYCLON baseline).
pub const SAMPLING_ENGINE_NAME: &str = "sampling";
/// The name of the node's Clustering engine (TAC, fingers, PSI).
pub const CLUSTERING_ENGINE_NAME: &str = "clustering";
/// The name of the node's DomainRouting engine.
pub const DOMAIN_ROUTING_ENGINE_NAME: &str = "domain_routing";
/// Version of [`RoutingMail`]'s encoding. Distinct from every other local mail's version (1), so
/// that an engine receiving local mail under its own protocol can tell a `RoutingMail::Arrived`
/// from its own mail by trying [`RoutingMail::decode`] first.
pub const ROUTING_MAIL_VERSION: u32 = 0x5244_0001;

/// Which inter-domain view a neighbour comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub enum LinkKind {
    /// The explicit (locally trusted) view of PeerSampling.
    Explicit,
    /// The dynamic TAPS view: random long-range links.
    Random,
    /// The TAC view: the nodes whose memberships are most similar (short-range links).
    Cluster,
    /// A TAC finger: a node whose memberships are most dissimilar (long link).
    Finger,
}

/// Which engine published a list on the [`NeighbourBoard`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BoardSource {
    /// The PeerSampling engine.
    Sampling,
    /// The Clustering engine.
    Clustering,
}

/// One inter-domain neighbour as DomainRouting sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbour {
    /// The neighbour's verified descriptor (advert and flipped membership filter).
    pub descriptor: Arc<NodeDescriptor>,
    /// The view it is in.
    pub kind: LinkKind,
    /// This node's trust in it, in [0, 1] (local, possibly transitive).
    pub trust: f64,
    /// The exact number of domains it shares with this node, once PSI has run with it.
    pub shared: Option<u32>,
}

impl Neighbour {
    /// The neighbour's node.
    pub fn node(&self) -> NodeIdentity {
        self.descriptor.node()
    }
}

#[derive(Debug, Default)]
struct Board {
    own: Option<Arc<NodeDescriptor>>,
    lists: BTreeMap<BoardSource, Vec<Neighbour>>,
    version: u64,
}

/// The node's inter-domain neighbours and its own descriptor, shared read-only with
/// DomainRouting. Cloning shares the same board.
///
/// Memory: one [`Neighbour`] per view entry (the descriptor is shared with the publishing
/// engine's view) — with the default views (TAPS 20, TAC 10 + 3 fingers, explicit up to 64)
/// under 100 entries, ≈ 40 KiB with 1,024-bit filters.
#[derive(Clone, Debug, Default)]
pub struct NeighbourBoard(Arc<RwLock<Board>>);

impl NeighbourBoard {
    /// An empty board.
    pub fn new() -> NeighbourBoard {
        NeighbourBoard::default()
    }

    /// Replaces the list `source` published; bumps the version.
    pub fn publish(&self, source: BoardSource, list: Vec<Neighbour>) {
        let mut b = self.0.write();
        b.lists.insert(source, list);
        b.version += 1;
    }

    /// Sets this node's own current descriptor (PeerSampling's call); bumps the version.
    pub fn set_own(&self, own: Arc<NodeDescriptor>) {
        let mut b = self.0.write();
        b.own = Some(own);
        b.version += 1;
    }

    /// This node's own current descriptor, once PeerSampling has made one.
    pub fn own(&self) -> Option<Arc<NodeDescriptor>> {
        self.0.read().own.clone()
    }

    /// Every neighbour, each node once (the entry from the lowest [`LinkKind`] wins when a node
    /// is in several views, with the largest `shared` of its entries), ordered by node.
    pub fn neighbours(&self) -> Vec<Neighbour> {
        let b = self.0.read();
        let mut by_node: BTreeMap<NodeIdentity, Neighbour> = BTreeMap::new();
        for n in b.lists.values().flatten() {
            match by_node.get_mut(&n.node()) {
                None => {
                    by_node.insert(n.node(), n.clone());
                }
                Some(e) => {
                    let shared = e.shared.max(n.shared);
                    if n.kind < e.kind {
                        *e = n.clone();
                    }
                    e.shared = shared;
                }
            }
        }
        by_node.into_values().collect()
    }

    /// The list one source published.
    pub fn list(&self, source: BoardSource) -> Vec<Neighbour> {
        self.0
            .read()
            .lists
            .get(&source)
            .cloned()
            .unwrap_or_default()
    }

    /// Increases with every change.
    pub fn version(&self) -> u64 {
        self.0.read().version
    }
}

/// A member of a foreign domain, as DomainRouting learnt it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownMember {
    /// The member node.
    pub node: NodeIdentity,
    /// Its advert, if the answer carried one (so the Transport can reach it).
    pub advert: Option<NodeAdvert>,
    /// When it last answered.
    pub last_ok: Timestamp,
}

/// Most foreign domains [`DomainRoutes`] remembers (the least recently learnt is forgotten).
pub const MAX_ROUTE_DOMAINS: usize = 1024;
/// Most members remembered per foreign domain.
pub const MAX_ROUTE_MEMBERS: usize = 4;

#[derive(Debug, Default)]
struct Routes {
    members: BTreeMap<DomainIdentity, Vec<KnownMember>>,
    order: VecDeque<DomainIdentity>,
}

/// Members of foreign domains learnt from answers, most recently successful first, shared
/// read-only with the Router. Cloning shares the same cache.
///
/// Memory: at most [`MAX_ROUTE_DOMAINS`] × [`MAX_ROUTE_MEMBERS`] entries of ≈ 400 bytes
/// (with their adverts) ≈ 1.6 MiB.
#[derive(Clone, Debug, Default)]
pub struct DomainRoutes(Arc<RwLock<Routes>>);

impl DomainRoutes {
    /// An empty cache.
    pub fn new() -> DomainRoutes {
        DomainRoutes::default()
    }

    /// Records that `member` of `domain` answered (DomainRouting's call): it moves to the front
    /// of the domain's list; the list and the number of domains stay within their bounds.
    pub fn learn(&self, domain: DomainIdentity, member: KnownMember) {
        let mut r = self.0.write();
        let fresh = !r.members.contains_key(&domain);
        let list = r.members.entry(domain).or_default();
        let advert = list
            .iter()
            .position(|m| m.node == member.node)
            .and_then(|i| list.remove(i).advert);
        let member = KnownMember {
            advert: member.advert.or(advert),
            ..member
        };
        list.insert(0, member);
        list.truncate(MAX_ROUTE_MEMBERS);
        if fresh {
            r.order.push_back(domain);
            while r.order.len() > MAX_ROUTE_DOMAINS {
                if let Some(old) = r.order.pop_front() {
                    r.members.remove(&old);
                }
            }
        }
    }

    /// Forgets `node` as a member of `domain` (it refused, or did not answer).
    pub fn forget(&self, domain: &DomainIdentity, node: &NodeIdentity) {
        let mut r = self.0.write();
        if let Some(list) = r.members.get_mut(domain) {
            list.retain(|m| &m.node != node);
        }
    }

    /// The known members of `domain`, most recently successful first.
    pub fn members(&self, domain: &DomainIdentity) -> Vec<KnownMember> {
        self.0
            .read()
            .members
            .get(domain)
            .cloned()
            .unwrap_or_default()
    }

    /// How many foreign domains have at least one known member.
    pub fn len(&self) -> usize {
        self.0
            .read()
            .members
            .values()
            .filter(|l| !l.is_empty())
            .count()
    }

    /// Whether no foreign domain has a known member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Local mail to and from the DomainRouting engine (`Protocol::DOMAIN_ROUTING`, scope
/// `Local`). Answers are sent back to the asking engine.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum RoutingMail {
    /// Engine → DomainRouting: deliver `body` for `protocol` to some member of `domain` that
    /// accepts external requests, and send me its answer as an `Answer`.
    Request {
        /// The domain.
        domain: DomainIdentity,
        /// The protocol the member should hand the body to (`Protocol::DOMAIN_ROUTING` with
        /// body `probe` is answered by the member's DomainRouting engine itself).
        protocol: Protocol,
        /// The request.
        body: Vec<u8>,
    },
    /// DomainRouting → engine: the answer to a `Request`, or why there is none.
    Answer {
        /// The domain.
        domain: DomainIdentity,
        /// The member's answer, or why there is none.
        result: Result<Vec<u8>, String>,
        /// The member that answered.
        member: Option<NodeIdentity>,
        /// How many hops the request took to reach it (1: a direct neighbour or a known member).
        hops: u32,
        /// The domain's advert in wire form, if the member sent it.
        advert: Option<Vec<u8>>,
    },
    /// DomainRouting → the engine serving `protocol` at a member: a request that reached this
    /// node because it is a member of `domain`. Answer with `Respond` (same `token`).
    Arrived {
        /// Identifies the request at this node's DomainRouting engine.
        token: u64,
        /// The node that asked.
        src: NodeIdentity,
        /// The domain.
        domain: DomainIdentity,
        /// The protocol.
        protocol: Protocol,
        /// The request.
        body: Vec<u8>,
    },
    /// Engine → DomainRouting at a member: the answer to an `Arrived`.
    Respond {
        /// The `Arrived`'s token.
        token: u64,
        /// The answer, or why there is none.
        result: Result<Vec<u8>, String>,
    },
}

impl RoutingMail {
    /// The message body: `u32 version || value`.
    pub fn encode(&self) -> Vec<u8> {
        encode_to_vec(&(ROUTING_MAIL_VERSION, self))
    }

    /// Reads a body made by [`Self::encode`].
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let (version, mail): (u32, Self) = decode_exact(body)?;
        if version != ROUTING_MAIL_VERSION {
            return Err(WireError::UnknownVersion(version));
        }
        Ok(mail)
    }
}
