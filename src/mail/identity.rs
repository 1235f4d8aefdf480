//! Requests to and events from the Network Identity Store: records of nodes, engines, topics
//! and domains, updates, lookups, and who asked — and the identity exchange between nodes that
//! the store runs through the Transport ([`ToPeers`], [`FromPeer`]): its own node's and
//! engines' adverts, and lookups of engines it does not know.

use crate::identity::{DomainIdentity, EngineIdentity, NodeIdentity, TopicIdentity};
use crate::time::Timestamp;
use crate::wire::advert::{AdvertError, DomainAdvert};
use crate::wire::{EngineAdvert, NodeAdvert, TopicAdvert, TransportAddress, TransportPrefs};

/// Any identity the store keeps records for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnyIdentity {
    /// A node.
    Node(NodeIdentity),
    /// An engine.
    Engine(EngineIdentity),
    /// A topic.
    Topic(TopicIdentity),
    /// A domain.
    Domain(DomainIdentity),
}

/// Whether a connection to a node is kept up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionPrefs {
    /// Opened when needed, closed when idle, not restored after loss.
    Ephemeral,
    /// Opened at start and re-established whenever it drops.
    Permanent,
}

/// Trust of a node whose record sets none: 128 (spec notes §3.7). Trust 0 bans a node: it is
/// never dialled and its connections are refused.
pub const DEFAULT_TRUST: u8 = 128;

/// Reputation of a node whose record sets none: 128, the middle of the scale. Each message from
/// the node that fails verification lowers it by one (down to 0).
pub const DEFAULT_REPUTATION: u8 = 128;

/// What is known about a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    /// The node.
    pub id: NodeIdentity,
    /// Its latest verified advert.
    pub advert: Option<NodeAdvert>,
    /// Local trust, 0 (banned) .. 255 (fully trusted); `None` means [`DEFAULT_TRUST`].
    pub trust: Option<u8>,
    /// Local reputation, 0 .. 255, lowered by misbehaviour; `None` means
    /// [`DEFAULT_REPUTATION`].
    pub reputation: Option<u8>,
    /// Transport preferences for messages to this node.
    pub tprefs: Option<TransportPrefs>,
    /// Whether the connection is kept up.
    pub cprefs: Option<ConnectionPrefs>,
    /// The Transport's latest measurement of the path to the node.
    pub measured: Option<Measurement>,
}

/// What the Transport last measured on a connection to a node: kept in the identity store
/// (and across restarts), so a restarted node orders the node's addresses by it before it has
/// measured anything itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measurement {
    /// The address the connection was made to (or accepted from, for an inbound one).
    pub address: TransportAddress,
    /// The smoothed round-trip time, in microseconds: QUIC's estimate, or over TLS over TCP the
    /// record layer's PING/PONG.
    pub rtt_us: u32,
    /// Packets declared lost per million sent on the connection so far (QUIC; always 0 over
    /// TCP, which hides its losses).
    pub loss_ppm: u32,
    /// When it was taken (wall clock).
    pub at: Timestamp,
}

impl Measurement {
    /// The round-trip time.
    pub fn rtt(&self) -> std::time::Duration {
        std::time::Duration::from_micros(u64::from(self.rtt_us))
    }
}

impl NodeRecord {
    /// The node's trust, or [`DEFAULT_TRUST`] when none is set.
    pub fn trust_or_default(&self) -> u8 {
        self.trust.unwrap_or(DEFAULT_TRUST)
    }

    /// The node's reputation, or [`DEFAULT_REPUTATION`] when none is set.
    pub fn reputation_or_default(&self) -> u8 {
        self.reputation.unwrap_or(DEFAULT_REPUTATION)
    }
}

/// A node's trust and reputation, as the store holds them (for status views).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeStanding {
    /// The node.
    pub id: NodeIdentity,
    /// Its trust, if set.
    pub trust: Option<u8>,
    /// Its reputation, if set.
    pub reputation: Option<u8>,
}

/// What is known about an engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineRecord {
    /// The engine.
    pub id: EngineIdentity,
    /// The node it runs on.
    pub node: NodeIdentity,
    /// Its verified advert, if the binding came from one.
    pub advert: Option<EngineAdvert>,
}

/// A stored record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityRecord {
    /// A node.
    Node(NodeRecord),
    /// An engine.
    Engine(EngineRecord),
    /// A topic and its advert.
    Topic(TopicAdvert),
    /// A domain and its advert.
    Domain(DomainAdvert),
}

/// A change to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityUpdate {
    /// A node advert (verified by the store).
    NodeAdvert(NodeAdvert),
    /// An engine advert (verified by the store).
    EngineAdvert(EngineAdvert),
    /// A topic advert (verified by the store).
    TopicAdvert(TopicAdvert),
    /// A domain advert (verified by the store).
    DomainAdvert(DomainAdvert),
    /// A binding of an engine to its node from local configuration (not signed; trusted as
    /// local configuration is). A verified engine advert for the engine replaces it.
    EngineLocation {
        /// The engine.
        engine: EngineIdentity,
        /// The node it runs on.
        node: NodeIdentity,
    },
    /// Local metadata about a node; `None` fields keep their stored value.
    NodeLocal {
        /// The node.
        id: NodeIdentity,
        /// Trust.
        trust: Option<u8>,
        /// Reputation.
        reputation: Option<u8>,
        /// Transport preferences.
        tprefs: Option<TransportPrefs>,
        /// Connection preferences.
        cprefs: Option<ConnectionPrefs>,
    },
    /// What the Transport measured on a connection to a node (replaces the stored one).
    Measured {
        /// The node.
        id: NodeIdentity,
        /// The measurement.
        measurement: Measurement,
    },
    /// Raises (`change` > 0) or lowers a node's reputation by `change`, from its stored value
    /// or [`DEFAULT_REPUTATION`], saturating at 0 and 255. The Router lowers it for messages
    /// that fail verification.
    Reputation {
        /// The node.
        id: NodeIdentity,
        /// By how much.
        change: i16,
    },
}

impl IdentityUpdate {
    /// The identity the update is about.
    pub fn id(&self) -> AnyIdentity {
        match self {
            IdentityUpdate::NodeAdvert(a) => AnyIdentity::Node(a.id),
            IdentityUpdate::EngineAdvert(a) => AnyIdentity::Engine(a.engine),
            IdentityUpdate::TopicAdvert(a) => AnyIdentity::Topic(a.topic),
            IdentityUpdate::DomainAdvert(a) => AnyIdentity::Domain(a.id),
            IdentityUpdate::NodeLocal { id, .. } => AnyIdentity::Node(*id),
            IdentityUpdate::Reputation { id, .. } => AnyIdentity::Node(*id),
            IdentityUpdate::Measured { id, .. } => AnyIdentity::Node(*id),
            IdentityUpdate::EngineLocation { engine, .. } => AnyIdentity::Engine(*engine),
        }
    }
}

/// A request to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityRequest {
    /// Answered with [`IdentityEvent::Found`].
    Lookup(AnyIdentity),
    /// Answered with [`IdentityEvent::UpdateResult`].
    Update(IdentityUpdate),
    /// Receive [`IdentityEvent::Updated`] for every change from now on.
    Subscribe,
    /// Stop receiving them.
    Unsubscribe,
    /// Answered with [`IdentityEvent::Standing`]: the nodes whose trust or reputation is set.
    Standing,
}

/// The outcome of an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateResult {
    /// Stored; subscribers were notified.
    Stored,
    /// Not fresher than the stored advert, or no field changed; nothing done.
    Unchanged,
    /// The advert's signature or key was refused.
    Refused(AdvertError),
    /// The store is full.
    Full,
    /// The engine's node already has the most engine records the store keeps per node.
    TooManyEngines,
}

/// What the store sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityEvent {
    /// Answer to a lookup.
    Found {
        /// What was looked up.
        id: AnyIdentity,
        /// The record, if any.
        record: Option<IdentityRecord>,
    },
    /// Answer to an update.
    UpdateResult {
        /// What was updated.
        id: AnyIdentity,
        /// The outcome.
        result: UpdateResult,
    },
    /// Notification: a record changed.
    Updated {
        /// The identity.
        id: AnyIdentity,
        /// Its new record.
        record: IdentityRecord,
    },
    /// Answer to [`IdentityRequest::Standing`]: the nodes whose trust or reputation is set,
    /// lowest reputation first, at most [`MAX_STANDING`].
    Standing(Vec<NodeStanding>),
    /// Notification: a record was forgotten (an engine's node withdrew it, or its advert
    /// expired).
    Removed {
        /// The identity.
        id: AnyIdentity,
    },
}

/// Most nodes in one [`IdentityEvent::Standing`]: 256.
pub const MAX_STANDING: usize = 256;

/// Who a request came from, and so where the answer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Party {
    /// The node's Router.
    Router,
    /// The node's Transport.
    Transport,
    /// A local engine.
    Engine(EngineIdentity),
    /// The node itself (configuration loaded at run time); answers are discarded.
    Node,
}

/// What the identity store asks the Transport to do in its exchange with other nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToPeers {
    /// This node's advert changed (re-signed, or new addresses): use it from now on and send it
    /// to every connected peer.
    OwnAdvert(NodeAdvert),
    /// This node's reachable engines changed: send the new or re-signed `adverts` and the
    /// `withdrawn` engines to every connected peer, and hand the whole set to every peer that
    /// connects from now on.
    OwnEngines {
        /// Adverts of engines that started or were re-signed.
        adverts: Vec<EngineAdvert>,
        /// Engines that stopped.
        withdrawn: Vec<EngineIdentity>,
    },
    /// Ask connected peers where `engine` runs: `only` that peer, or up to `max_peers` of them
    /// (dialling known peers if fewer are connected). Answered with [`FromPeer::LookupSent`].
    Lookup {
        /// The engine.
        engine: EngineIdentity,
        /// Ask this peer only.
        only: Option<NodeIdentity>,
        /// Most peers to ask.
        max_peers: usize,
    },
    /// Answer a peer's [`FromPeer::Query`].
    Answer {
        /// The peer that asked.
        to: NodeIdentity,
        /// The answer.
        answer: Box<EngineAnswer>,
    },
}

/// An answer to a lookup of an engine between two nodes' identity stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineAnswer {
    /// The engine asked about.
    pub engine: EngineIdentity,
    /// Its advert; `None` means "unknown".
    pub advert: Option<EngineAdvert>,
    /// The advert of the node the engine runs on, if the answering store holds one.
    pub node_advert: Option<NodeAdvert>,
}

/// What the Transport hands the identity store from its exchange with other nodes. `from` is
/// always the peer the connection authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromPeer {
    /// A connection to `node` completed the connect exchange.
    Ready {
        /// The peer.
        node: NodeIdentity,
    },
    /// Adverts of engines that run on `from` (the Transport checked that each names `from`).
    EngineAdverts {
        /// The peer.
        from: NodeIdentity,
        /// The adverts, not yet verified.
        adverts: Vec<EngineAdvert>,
    },
    /// Engines of `from` that stopped.
    Withdrawn {
        /// The peer.
        from: NodeIdentity,
        /// The engines.
        engines: Vec<EngineIdentity>,
    },
    /// The outcome of a [`ToPeers::Lookup`]: the peers asked, and whether dials were started to
    /// ask more once connected.
    LookupSent {
        /// The engine.
        engine: EngineIdentity,
        /// Peers a lookup was sent to.
        peers: Vec<NodeIdentity>,
        /// Dials started to reach more peers.
        dialling: bool,
    },
    /// `from` asks where `engine` runs.
    Query {
        /// The peer.
        from: NodeIdentity,
        /// The engine.
        engine: EngineIdentity,
    },
    /// `from` answered a lookup (its adverts not yet verified).
    Answer {
        /// The peer.
        from: NodeIdentity,
        /// The answer.
        answer: Box<EngineAnswer>,
    },
}
