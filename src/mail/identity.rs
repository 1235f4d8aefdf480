//! Requests to and events from the Network Identity Store: records of nodes, engines, topics
//! and domains, updates, lookups, and who asked.

use crate::identity::{DomainIdentity, EngineIdentity, NodeIdentity, TopicIdentity};
use crate::wire::advert::{AdvertError, DomainAdvert};
use crate::wire::{EngineAdvert, NodeAdvert, TopicAdvert, TransportPrefs};

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
