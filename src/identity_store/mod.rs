//! The Network Identity Store (NIS): what this node knows about other identities — node
//! adverts and local per-node preferences, engine locations, topic and domain adverts — with
//! lookup, update, and `Updated` notifications to subscribers (spec notes §3.7, §5.3).
//!
//! Rules:
//! * An advert replaces a stored one only if its signature verifies (strictly) and it is
//!   fresher: a higher `version`, or the same version with a later `created`.
//! * Local metadata (`trust`, `reputation`, transport and connection preferences) is merged field
//!   by field: a field left `None` in an update keeps its stored value.
//! * Every change is announced to subscribers (the Router and the Transport subscribe at start).
//!
//! The store is bounded by [`IdentityStore::new`]'s `max_records` (default
//! [`DEFAULT_MAX_RECORDS`]); updates that would add a record beyond it are refused.
//!
//! Drain contract: call [`IdentityStore::handle`] for each request; then drain
//! [`IdentityStore::poll_output`] until `None` and deliver each event to its recipient.

mod shell;

use std::collections::{HashMap, HashSet, VecDeque};

pub(crate) use shell::{NisMail, NisShell};

use crate::identity::{DomainIdentity, EngineIdentity, NodeIdentity, TopicIdentity};
use crate::wire::advert::{AdvertError, DomainAdvert};
use crate::wire::{EngineAdvert, NodeAdvert, Signed, TopicAdvert, TransportPrefs};

/// Records kept at most by default: 100,000 (a node record with a full advert is under 1 KiB,
/// so under 100 MiB in the worst case).
pub const DEFAULT_MAX_RECORDS: usize = 100_000;

/// Any identity the store keeps records for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// What is known about a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    /// The node.
    pub id: NodeIdentity,
    /// Its latest verified advert.
    pub advert: Option<NodeAdvert>,
    /// Local trust, 0 (banned) .. 255 (fully trusted); 128 is the default.
    pub trust: Option<u8>,
    /// Local reputation, 0 .. 255.
    pub reputation: Option<u8>,
    /// Transport preferences for messages to this node.
    pub tprefs: Option<TransportPrefs>,
    /// Whether the connection is kept up.
    pub cprefs: Option<ConnectionPrefs>,
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
}

/// Who a request came from, and so where the answer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// The store's state machine.
#[derive(Debug)]
pub struct IdentityStore {
    records: HashMap<AnyIdentity, IdentityRecord>,
    subscribers: HashSet<Party>,
    outputs: VecDeque<(Party, IdentityEvent)>,
    max_records: usize,
}

impl IdentityStore {
    /// An empty store holding at most `max_records` records.
    pub fn new(max_records: usize) -> IdentityStore {
        IdentityStore {
            records: HashMap::new(),
            subscribers: HashSet::new(),
            outputs: VecDeque::new(),
            max_records,
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// A stored record.
    pub fn get(&self, id: &AnyIdentity) -> Option<&IdentityRecord> {
        self.records.get(id)
    }

    /// Handles a request from `from`.
    pub fn handle(&mut self, from: Party, req: IdentityRequest) {
        match req {
            IdentityRequest::Lookup(id) => {
                let record = self.records.get(&id).cloned();
                self.outputs
                    .push_back((from, IdentityEvent::Found { id, record }));
            }
            IdentityRequest::Update(update) => {
                let id = update.id();
                let result = self.apply(update);
                self.outputs
                    .push_back((from, IdentityEvent::UpdateResult { id, result }));
            }
            IdentityRequest::Subscribe => {
                self.subscribers.insert(from);
            }
            IdentityRequest::Unsubscribe => {
                self.subscribers.remove(&from);
            }
        }
    }

    /// Applies an update without answering anyone (configuration loading); subscribers are
    /// still notified of changes.
    pub fn apply(&mut self, update: IdentityUpdate) -> UpdateResult {
        let id = update.id();
        let existing = self.records.get(&id);
        if existing.is_none() && self.records.len() >= self.max_records {
            return UpdateResult::Full;
        }
        let new_record = match update {
            IdentityUpdate::NodeAdvert(advert) => {
                let advert = match advert.verify() {
                    Ok(v) => v.into_inner(),
                    Err(e) => return UpdateResult::Refused(e),
                };
                let mut record = match existing {
                    Some(IdentityRecord::Node(r)) => r.clone(),
                    _ => empty_node(advert.id),
                };
                if !fresher(&advert, record.advert.as_ref()) {
                    return UpdateResult::Unchanged;
                }
                record.advert = Some(advert);
                IdentityRecord::Node(record)
            }
            IdentityUpdate::EngineAdvert(advert) => {
                let advert = match advert.verify() {
                    Ok(v) => v.into_inner(),
                    Err(e) => return UpdateResult::Refused(e),
                };
                let stored = match existing {
                    Some(IdentityRecord::Engine(r)) => r.advert.as_ref(),
                    _ => None,
                };
                if !fresher(&advert, stored) {
                    return UpdateResult::Unchanged;
                }
                IdentityRecord::Engine(EngineRecord {
                    id: advert.engine,
                    node: advert.node,
                    advert: Some(advert),
                })
            }
            IdentityUpdate::TopicAdvert(advert) => {
                let advert = match advert.verify() {
                    Ok(v) => v.into_inner(),
                    Err(e) => return UpdateResult::Refused(e),
                };
                let stored = match existing {
                    Some(IdentityRecord::Topic(a)) => Some(a),
                    _ => None,
                };
                if !fresher(&advert, stored) {
                    return UpdateResult::Unchanged;
                }
                IdentityRecord::Topic(advert)
            }
            IdentityUpdate::DomainAdvert(advert) => {
                let advert = match advert.verify() {
                    Ok(v) => v.into_inner(),
                    Err(e) => return UpdateResult::Refused(e),
                };
                let stored = match existing {
                    Some(IdentityRecord::Domain(a)) => Some(a),
                    _ => None,
                };
                if !fresher(&advert, stored) {
                    return UpdateResult::Unchanged;
                }
                IdentityRecord::Domain(advert)
            }
            IdentityUpdate::EngineLocation { engine, node } => {
                if let Some(IdentityRecord::Engine(r)) = existing {
                    if r.advert.is_some() || r.node == node {
                        return UpdateResult::Unchanged;
                    }
                }
                IdentityRecord::Engine(EngineRecord {
                    id: engine,
                    node,
                    advert: None,
                })
            }
            IdentityUpdate::NodeLocal {
                id: node,
                trust,
                reputation,
                tprefs,
                cprefs,
            } => {
                let mut record = match existing {
                    Some(IdentityRecord::Node(r)) => r.clone(),
                    _ => empty_node(node),
                };
                let before = record.clone();
                record.trust = trust.or(record.trust);
                record.reputation = reputation.or(record.reputation);
                record.tprefs = tprefs.or(record.tprefs);
                record.cprefs = cprefs.or(record.cprefs);
                if existing.is_some() && record == before {
                    return UpdateResult::Unchanged;
                }
                IdentityRecord::Node(record)
            }
        };
        self.records.insert(id, new_record.clone());
        for &party in &self.subscribers {
            self.outputs.push_back((
                party,
                IdentityEvent::Updated {
                    id,
                    record: new_record.clone(),
                },
            ));
        }
        UpdateResult::Stored
    }

    /// The next event to deliver.
    pub fn poll_output(&mut self) -> Option<(Party, IdentityEvent)> {
        self.outputs.pop_front()
    }
}

fn empty_node(id: NodeIdentity) -> NodeRecord {
    NodeRecord {
        id,
        advert: None,
        trust: None,
        reputation: None,
        tprefs: None,
        cprefs: None,
    }
}

fn fresher<T: Signed>(new: &T, stored: Option<&T>) -> bool {
    stored.is_none_or(|s| new.freshness() > s.freshness())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;
    use crate::time::Timestamp;
    use crate::wire::TransportAddress;

    fn advert(key: &Keypair, version: u64, port: u16) -> NodeAdvert {
        NodeAdvert::new_signed(
            key,
            vec![(TransportAddress::quic(([127, 0, 0, 1], port).into()), 1)],
            version,
            Timestamp(1000 + version),
            None,
        )
    }

    #[test]
    fn only_fresher_verified_adverts_replace() {
        let mut s = IdentityStore::new(10);
        let k = Keypair::generate();
        s.handle(Party::Router, IdentityRequest::Subscribe);
        assert_eq!(
            s.apply(IdentityUpdate::NodeAdvert(advert(&k, 2, 1))),
            UpdateResult::Stored
        );
        assert!(matches!(
            s.poll_output(),
            Some((Party::Router, IdentityEvent::Updated { .. }))
        ));
        assert_eq!(
            s.apply(IdentityUpdate::NodeAdvert(advert(&k, 1, 2))),
            UpdateResult::Unchanged
        );
        assert_eq!(
            s.apply(IdentityUpdate::NodeAdvert(advert(&k, 2, 2))),
            UpdateResult::Unchanged
        );
        let mut forged = advert(&k, 3, 3);
        forged.addrs[0].1 = 9;
        assert_eq!(
            s.apply(IdentityUpdate::NodeAdvert(forged)),
            UpdateResult::Refused(AdvertError::BadSignature)
        );
        assert!(s.poll_output().is_none());
        assert_eq!(
            s.apply(IdentityUpdate::NodeAdvert(advert(&k, 3, 3))),
            UpdateResult::Stored
        );
        let Some(IdentityRecord::Node(r)) = s.get(&AnyIdentity::Node(k.node_identity())) else {
            panic!()
        };
        assert_eq!(r.advert.as_ref().unwrap().version, 3);
    }

    #[test]
    fn local_fields_merge() {
        let mut s = IdentityStore::new(10);
        let id = NodeIdentity([5; 32]);
        let upd = |trust, cprefs| IdentityUpdate::NodeLocal {
            id,
            trust,
            reputation: None,
            tprefs: None,
            cprefs,
        };
        assert_eq!(s.apply(upd(Some(200), None)), UpdateResult::Stored);
        assert_eq!(
            s.apply(upd(None, Some(ConnectionPrefs::Permanent))),
            UpdateResult::Stored
        );
        assert_eq!(s.apply(upd(None, None)), UpdateResult::Unchanged);
        let Some(IdentityRecord::Node(r)) = s.get(&AnyIdentity::Node(id)) else {
            panic!()
        };
        assert_eq!(r.trust, Some(200));
        assert_eq!(r.cprefs, Some(ConnectionPrefs::Permanent));
    }

    #[test]
    fn lookup_answers_the_requester_and_capacity_holds() {
        let mut s = IdentityStore::new(1);
        let a = Keypair::generate();
        let b = Keypair::generate();
        assert_eq!(
            s.apply(IdentityUpdate::NodeAdvert(advert(&a, 1, 1))),
            UpdateResult::Stored
        );
        assert_eq!(
            s.apply(IdentityUpdate::NodeAdvert(advert(&b, 1, 1))),
            UpdateResult::Full
        );
        let who = Party::Engine(EngineIdentity([1; 32]));
        s.handle(
            who,
            IdentityRequest::Lookup(AnyIdentity::Node(b.node_identity())),
        );
        assert_eq!(
            s.poll_output(),
            Some((
                who,
                IdentityEvent::Found {
                    id: AnyIdentity::Node(b.node_identity()),
                    record: None
                }
            ))
        );
    }
}
