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

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::identity::NodeIdentity;
pub use crate::mail::identity::{
    AnyIdentity, ConnectionPrefs, EngineRecord, IdentityEvent, IdentityRecord, IdentityRequest,
    IdentityUpdate, NodeRecord, Party, UpdateResult,
};
use crate::wire::Signed;

/// Records kept at most by default: 100,000 (a node record with a full advert is under 1 KiB,
/// so under 100 MiB in the worst case).
pub const DEFAULT_MAX_RECORDS: usize = 100_000;

/// The store's state machine.
#[derive(Debug)]
pub struct IdentityStore {
    /// Looked up by key only; never iterated.
    records: HashMap<AnyIdentity, IdentityRecord>,
    /// Iterated for notifications: ordered, so they go out in the same order every run.
    subscribers: BTreeSet<Party>,
    outputs: VecDeque<(Party, IdentityEvent)>,
    max_records: usize,
}

impl IdentityStore {
    /// An empty store holding at most `max_records` records.
    pub fn new(max_records: usize) -> IdentityStore {
        IdentityStore {
            records: HashMap::new(),
            subscribers: BTreeSet::new(),
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
    use crate::identity::{EngineIdentity, Keypair};
    use crate::time::Timestamp;
    use crate::wire::advert::AdvertError;
    use crate::wire::NodeAdvert;
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
