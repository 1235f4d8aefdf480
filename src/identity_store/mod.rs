//! The Network Identity Store (NIS): what this node knows about other identities — node
//! adverts and local per-node preferences, engine locations, topic and domain adverts — with
//! lookup, update, and `Updated` / `Removed` notifications to subscribers (spec notes §3.7,
//! §5.3).
//!
//! Rules:
//! * An advert replaces a stored one only if its signature verifies (strictly), it has not
//!   expired, and it is fresher: a higher `version`, or the same version with a later `created`.
//! * Node and engine adverts expire ([`crate::wire::Signed::expired`]): an expired one is refused,
//!   and a stored one is forgotten when its expiry passes ([`IdentityStore::handle_timeout`]):
//!   an engine record is removed, a node record loses its advert (and is removed unless it holds
//!   local metadata). Subscribers are told either way.
//! * Local metadata (`trust`, `reputation`, transport and connection preferences) is merged field
//!   by field: a field left `None` in an update keeps its stored value.
//! * Reputation also changes relatively ([`IdentityUpdate::Reputation`]): the Router lowers it
//!   by one for each message from the node that failed verification, saturating at 0.
//! * Every change is announced to subscribers (the Router and the Transport subscribe at start).
//! * [`IdentityRequest::Standing`] lists the nodes whose trust or reputation is set (kept in an
//!   ordered index, a subset of the records and so within the same bound), for status views.
//!
//! Limits: at most `max_records` records ([`IdentityStore::new`], default
//! [`DEFAULT_MAX_RECORDS`]); updates that would add a record beyond it are refused (`Full`). At
//! most `max_engines_per_node` engine records bound to any one node (default
//! [`DEFAULT_MAX_ENGINES_PER_NODE`]), so one peer cannot fill the store with engines it made up.
//! The expiry index holds one entry (~48 bytes) per stored node or engine advert.
//!
//! The store is the state of the node's identity service: [`service::IdentityService`] wraps it
//! with the node's own adverts ([`own::OwnAdverts`]) and lookups of unknown engines with other
//! nodes ([`lookup::Lookups`]). The simulator drives the bare store.
//!
//! Drain contract: call [`IdentityStore::handle`] for each request (and
//! [`IdentityStore::handle_timeout`] when [`IdentityStore::next_expiry`] passes); then drain
//! [`IdentityStore::poll_output`] until `None` and deliver each event to its recipient.

pub mod lookup;
pub mod own;
pub mod persist;
pub mod service;
pub mod stats;

#[cfg(test)]
mod persist_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::mail::identity::{NodeStanding, DEFAULT_REPUTATION, MAX_STANDING};

use crate::identity::{EngineIdentity, NodeIdentity};
pub use crate::mail::identity::{
    AnyIdentity, ConnectionPrefs, EngineAnswer, EngineRecord, FromPeer, IdentityEvent,
    IdentityRecord, IdentityRequest, IdentityUpdate, NodeRecord, Party, ToPeers, UpdateResult,
};
use crate::time::Timestamp;
use crate::wire::advert::AdvertError;
use crate::wire::Signed;
pub use stats::IdentityStats;

/// Records kept at most by default: 100,000 (a node record with a full advert is under 1 KiB,
/// so under 100 MiB in the worst case).
pub const DEFAULT_MAX_RECORDS: usize = 100_000;

/// Engine records bound to one node kept at most by default: 4,096 (under 2 MiB per node).
pub const DEFAULT_MAX_ENGINES_PER_NODE: usize = 4096;

/// Limits and lifetimes of a node's identity service, each with its documented default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityLimits {
    /// Lookups of unknown engines with other nodes ([`lookup::LookupLimits`]).
    pub lookups: lookup::LookupLimits,
    /// How long the node's own adverts are valid
    /// ([`DEFAULT_ADVERT_LIFETIME`](crate::wire::advert::DEFAULT_ADVERT_LIFETIME), 24 h); they are
    /// re-signed when half of it has passed.
    pub advert_lifetime: std::time::Duration,
    /// Most engine records bound to one node ([`DEFAULT_MAX_ENGINES_PER_NODE`]).
    pub max_engines_per_node: usize,
}

impl Default for IdentityLimits {
    fn default() -> Self {
        IdentityLimits {
            lookups: lookup::LookupLimits::default(),
            advert_lifetime: crate::wire::advert::DEFAULT_ADVERT_LIFETIME,
            max_engines_per_node: DEFAULT_MAX_ENGINES_PER_NODE,
        }
    }
}

/// The store's state machine.
#[derive(Debug)]
pub struct IdentityStore {
    /// Looked up by key only; never iterated.
    records: HashMap<AnyIdentity, IdentityRecord>,
    /// Expiry of every stored node and engine advert, soonest first.
    expiry: BTreeSet<(Timestamp, AnyIdentity)>,
    /// Engine records per node (looked up only).
    engines_per_node: HashMap<NodeIdentity, usize>,
    /// Iterated for notifications: ordered, so they go out in the same order every run.
    subscribers: BTreeSet<Party>,
    outputs: VecDeque<(Party, IdentityEvent)>,
    max_records: usize,
    /// Nodes whose trust or reputation is set, for [`IdentityRequest::Standing`].
    rated: BTreeSet<NodeIdentity>,
    max_engines_per_node: usize,
    /// Records changed since they were last taken (`persist`), once tracking is on.
    changed: Option<BTreeSet<AnyIdentity>>,
}

impl IdentityStore {
    /// An empty store holding at most `max_records` records.
    pub fn new(max_records: usize) -> IdentityStore {
        IdentityStore {
            records: HashMap::new(),
            expiry: BTreeSet::new(),
            engines_per_node: HashMap::new(),
            subscribers: BTreeSet::new(),
            outputs: VecDeque::new(),
            max_records,
            rated: BTreeSet::new(),
            max_engines_per_node: DEFAULT_MAX_ENGINES_PER_NODE,
            changed: None,
        }
    }

    /// Sets the most engine records bound to one node.
    pub fn with_max_engines_per_node(mut self, max: usize) -> IdentityStore {
        self.max_engines_per_node = max;
        self
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

    /// Handles a request from `from` at wall-clock time `now`.
    pub fn handle(&mut self, now: Timestamp, from: Party, req: IdentityRequest) {
        match req {
            IdentityRequest::Lookup(id) => {
                let record = self.records.get(&id).cloned();
                self.outputs
                    .push_back((from, IdentityEvent::Found { id, record }));
            }
            IdentityRequest::Update(update) => {
                let id = update.id();
                let result = self.apply(now, update);
                self.outputs
                    .push_back((from, IdentityEvent::UpdateResult { id, result }));
            }
            IdentityRequest::Subscribe => {
                self.subscribers.insert(from);
            }
            IdentityRequest::Unsubscribe => {
                self.subscribers.remove(&from);
            }
            IdentityRequest::Standing => {
                let standing = self.standing();
                self.outputs
                    .push_back((from, IdentityEvent::Standing(standing)));
            }
        }
    }

    /// The nodes whose trust or reputation is set, lowest reputation first (then by identity),
    /// at most [`MAX_STANDING`].
    pub fn standing(&self) -> Vec<NodeStanding> {
        let mut list: Vec<NodeStanding> = self
            .rated
            .iter()
            .filter_map(|id| match self.records.get(&AnyIdentity::Node(*id)) {
                Some(IdentityRecord::Node(r)) => Some(NodeStanding {
                    id: r.id,
                    trust: r.trust,
                    reputation: r.reputation,
                }),
                _ => None,
            })
            .collect();
        list.sort_by_key(|s| (s.reputation.unwrap_or(DEFAULT_REPUTATION), s.id));
        list.truncate(MAX_STANDING);
        list
    }

    /// Applies an update at wall-clock time `now` without answering anyone (configuration
    /// loading); subscribers are still notified of changes.
    pub fn apply(&mut self, now: Timestamp, update: IdentityUpdate) -> UpdateResult {
        let id = update.id();
        let existing = self.records.get(&id);
        if existing.is_none() && self.records.len() >= self.max_records {
            return UpdateResult::Full;
        }
        let new_record = match update {
            IdentityUpdate::NodeAdvert(advert) => {
                let advert = match verified(advert, now) {
                    Ok(a) => a,
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
                let advert = match verified(advert, now) {
                    Ok(a) => a,
                    Err(e) => return UpdateResult::Refused(e),
                };
                let stored = match existing {
                    Some(IdentityRecord::Engine(r)) => r.advert.as_ref(),
                    _ => None,
                };
                if !fresher(&advert, stored) {
                    return UpdateResult::Unchanged;
                }
                if !self.room_for_engine_of(existing, advert.node) {
                    return UpdateResult::TooManyEngines;
                }
                IdentityRecord::Engine(EngineRecord {
                    id: advert.engine,
                    node: advert.node,
                    advert: Some(advert),
                })
            }
            IdentityUpdate::TopicAdvert(advert) => {
                let advert = match verified(advert, now) {
                    Ok(a) => a,
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
                let advert = match verified(advert, now) {
                    Ok(a) => a,
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
                if !self.room_for_engine_of(existing, node) {
                    return UpdateResult::TooManyEngines;
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
            IdentityUpdate::Measured {
                id: node,
                measurement,
            } => {
                let mut record = match existing {
                    Some(IdentityRecord::Node(r)) => r.clone(),
                    _ => empty_node(node),
                };
                if record.measured == Some(measurement) {
                    return UpdateResult::Unchanged;
                }
                record.measured = Some(measurement);
                IdentityRecord::Node(record)
            }
            IdentityUpdate::Reputation { id: node, change } => {
                let mut record = match existing {
                    Some(IdentityRecord::Node(r)) => r.clone(),
                    _ => empty_node(node),
                };
                let old = record.reputation_or_default();
                let new = (i32::from(old) + i32::from(change)).clamp(0, 255) as u8;
                if record.reputation == Some(new) {
                    return UpdateResult::Unchanged;
                }
                record.reputation = Some(new);
                IdentityRecord::Node(record)
            }
        };
        self.store(id, new_record.clone());
        self.notify(IdentityEvent::Updated {
            id,
            record: new_record,
        });
        UpdateResult::Stored
    }

    /// Forgets the record of `engine` if it is bound to `node` (its node withdrew it); returns
    /// whether it did. Subscribers are told ([`IdentityEvent::Removed`]).
    pub fn withdraw_engine(&mut self, engine: EngineIdentity, node: NodeIdentity) -> bool {
        let id = AnyIdentity::Engine(engine);
        match self.records.get(&id) {
            Some(IdentityRecord::Engine(r)) if r.node == node => {
                self.remove(id);
                self.notify(IdentityEvent::Removed { id });
                true
            }
            _ => false,
        }
    }

    /// When the next stored advert expires.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.expiry.first().map(|(t, _)| *t)
    }

    /// Forgets every advert whose expiry is at or before `now`; returns how many.
    pub fn handle_timeout(&mut self, now: Timestamp) -> usize {
        let mut forgotten = 0;
        while let Some(&(t, id)) = self.expiry.first() {
            if t > now {
                break;
            }
            self.expiry.pop_first();
            forgotten += 1;
            match self.records.get(&id).cloned() {
                Some(IdentityRecord::Node(mut r)) => {
                    r.advert = None;
                    let local = r.trust.is_some()
                        || r.reputation.is_some()
                        || r.tprefs.is_some()
                        || r.cprefs.is_some();
                    if local {
                        if let Some(c) = &mut self.changed {
                            c.insert(id);
                        }
                        self.records.insert(id, IdentityRecord::Node(r.clone()));
                        self.notify(IdentityEvent::Updated {
                            id,
                            record: IdentityRecord::Node(r),
                        });
                    } else {
                        self.remove(id);
                        self.notify(IdentityEvent::Removed { id });
                    }
                }
                Some(IdentityRecord::Engine(_)) => {
                    self.remove(id);
                    self.notify(IdentityEvent::Removed { id });
                }
                _ => {}
            }
        }
        forgotten
    }

    /// The next event to deliver.
    pub fn poll_output(&mut self) -> Option<(Party, IdentityEvent)> {
        self.outputs.pop_front()
    }

    // -----------------------------------------------------------------------------------------

    /// Whether an engine record bound to `node` may be stored in place of `existing`.
    fn room_for_engine_of(&self, existing: Option<&IdentityRecord>, node: NodeIdentity) -> bool {
        if matches!(existing, Some(IdentityRecord::Engine(r)) if r.node == node) {
            return true;
        }
        self.engines_per_node.get(&node).copied().unwrap_or(0) < self.max_engines_per_node
    }

    /// Puts `record` in place, keeping the expiry index and the per-node counts.
    fn store(&mut self, id: AnyIdentity, record: IdentityRecord) {
        if let Some(c) = &mut self.changed {
            c.insert(id);
        }
        self.unindex(id);
        if let Some(t) = expiry_of(&record) {
            self.expiry.insert((t, id));
        }
        if let IdentityRecord::Engine(r) = &record {
            *self.engines_per_node.entry(r.node).or_default() += 1;
        }
        if let IdentityRecord::Node(r) = &record {
            if r.trust.is_some() || r.reputation.is_some() {
                self.rated.insert(r.id);
            } else {
                self.rated.remove(&r.id);
            }
        }
        self.records.insert(id, record);
    }

    fn remove(&mut self, id: AnyIdentity) {
        if let Some(c) = &mut self.changed {
            c.insert(id);
        }
        self.unindex(id);
        if let AnyIdentity::Node(n) = id {
            self.rated.remove(&n);
        }
        self.records.remove(&id);
    }

    /// Takes the stored record of `id` out of the expiry index and the per-node counts.
    fn unindex(&mut self, id: AnyIdentity) {
        let Some(old) = self.records.get(&id) else {
            return;
        };
        if let Some(t) = expiry_of(old) {
            self.expiry.remove(&(t, id));
        }
        if let IdentityRecord::Engine(r) = old {
            if let Some(n) = self.engines_per_node.get_mut(&r.node) {
                *n -= 1;
                if *n == 0 {
                    self.engines_per_node.remove(&r.node);
                }
            }
        }
    }

    fn notify(&mut self, event: IdentityEvent) {
        for &party in &self.subscribers {
            self.outputs.push_back((party, event.clone()));
        }
    }
}

fn verified<T: Signed>(advert: T, now: Timestamp) -> Result<T, AdvertError> {
    if advert.expired(now) {
        return Err(AdvertError::Expired);
    }
    Ok(advert.verify()?.into_inner())
}

fn expiry_of(record: &IdentityRecord) -> Option<Timestamp> {
    match record {
        IdentityRecord::Node(r) => r.advert.as_ref().map(|a| a.expires),
        IdentityRecord::Engine(r) => r.advert.as_ref().map(|a| a.expires),
        IdentityRecord::Topic(_) | IdentityRecord::Domain(_) => None,
    }
}

fn empty_node(id: NodeIdentity) -> NodeRecord {
    NodeRecord {
        id,
        advert: None,
        trust: None,
        reputation: None,
        measured: None,
        tprefs: None,
        cprefs: None,
    }
}

fn fresher<T: Signed>(new: &T, stored: Option<&T>) -> bool {
    stored.is_none_or(|s| new.freshness() > s.freshness())
}
