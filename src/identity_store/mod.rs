//! The Network Identity Store (NIS): what this node knows about other identities — node
//! adverts and local per-node preferences, engine locations, topic and domain adverts — with
//! lookup, update, and `Updated` notifications to subscribers (spec notes §3.7, §5.3).
//!
//! Rules:
//! * An advert replaces a stored one only if its signature verifies (strictly) and it is
//!   fresher: a higher `version`, or the same version with a later `created`.
//! * Local metadata (`trust`, `reputation`, transport and connection preferences) is merged field
//!   by field: a field left `None` in an update keeps its stored value.
//! * Reputation also changes relatively ([`IdentityUpdate::Reputation`]): the Router lowers it
//!   by one for each message from the node that failed verification, saturating at 0.
//! * Every change is announced to subscribers (the Router and the Transport subscribe at start).
//! * [`IdentityRequest::Standing`] lists the nodes whose trust or reputation is set (kept in an
//!   ordered index, a subset of the records and so within the same bound), for status views.
//!
//! The store is bounded by [`IdentityStore::new`]'s `max_records` (default
//! [`DEFAULT_MAX_RECORDS`]); updates that would add a record beyond it are refused.
//!
//! Drain contract: call [`IdentityStore::handle`] for each request; then drain
//! [`IdentityStore::poll_output`] until `None` and deliver each event to its recipient.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::mail::identity::{NodeStanding, DEFAULT_REPUTATION, MAX_STANDING};

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
    /// Nodes whose trust or reputation is set, for [`IdentityRequest::Standing`].
    rated: BTreeSet<NodeIdentity>,
}

impl IdentityStore {
    /// An empty store holding at most `max_records` records.
    pub fn new(max_records: usize) -> IdentityStore {
        IdentityStore {
            records: HashMap::new(),
            subscribers: BTreeSet::new(),
            outputs: VecDeque::new(),
            max_records,
            rated: BTreeSet::new(),
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
        if let IdentityRecord::Node(r) = &new_record {
            if r.trust.is_some() || r.reputation.is_some() {
                self.rated.insert(r.id);
            }
        }
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
    fn reputation_changes_saturate_and_standing_lists_rated_nodes() {
        let mut s = IdentityStore::new(10);
        let (a, b, c) = (
            NodeIdentity([1; 32]),
            NodeIdentity([2; 32]),
            NodeIdentity([3; 32]),
        );
        let lower = |id, by: i16| IdentityUpdate::Reputation { id, change: -by };
        assert_eq!(s.apply(lower(a, 5)), UpdateResult::Stored);
        let rep = |s: &IdentityStore, id| match s.get(&AnyIdentity::Node(id)) {
            Some(IdentityRecord::Node(r)) => r.reputation,
            _ => None,
        };
        assert_eq!(rep(&s, a), Some(DEFAULT_REPUTATION - 5));
        assert_eq!(s.apply(lower(a, 1000)), UpdateResult::Stored);
        assert_eq!(rep(&s, a), Some(0));
        assert_eq!(s.apply(lower(a, 1)), UpdateResult::Unchanged, "floor");
        assert_eq!(s.apply(lower(b, -1000)), UpdateResult::Stored);
        assert_eq!(rep(&s, b), Some(255));
        // A node with trust only, and one with neither (not listed).
        s.apply(IdentityUpdate::NodeLocal {
            id: c,
            trust: Some(0),
            reputation: None,
            tprefs: None,
            cprefs: None,
        });
        s.apply(IdentityUpdate::EngineLocation {
            engine: EngineIdentity([9; 32]),
            node: NodeIdentity([4; 32]),
        });
        s.handle(Party::Node, IdentityRequest::Standing);
        let Some((Party::Node, IdentityEvent::Standing(list))) = s.poll_output() else {
            panic!("answered")
        };
        let order: Vec<_> = list.iter().map(|n| (n.id, n.trust, n.reputation)).collect();
        assert_eq!(
            order,
            vec![(a, None, Some(0)), (c, Some(0), None), (b, None, Some(255))],
            "lowest reputation first"
        );
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
