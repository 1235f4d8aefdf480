//! This node's own adverts: its node advert and one engine advert per reachable engine, signed
//! with the node key and the engines' keys (derived from it), re-signed before they expire and
//! whenever what they say changes.
//!
//! * Every advert is valid for `lifetime` (default
//!   [`DEFAULT_ADVERT_LIFETIME`](crate::wire::advert::DEFAULT_ADVERT_LIFETIME), 24 h) from when it
//!   is signed, and is re-signed once half of it has passed ([`OwnAdverts::resign_due`]), so a
//!   peer that last heard from this node just before a re-signing still holds a valid advert for
//!   half a lifetime.
//! * The node advert is re-signed at once when the node's addresses change
//!   ([`OwnAdverts::set_addresses`]).
//! * Engine adverts follow the set of reachable engines ([`OwnAdverts::set_engines`]): a new
//!   engine gets one, an engine that stopped is withdrawn.
//! * Each new version is the wall clock in milliseconds, or one more than the previous version if
//!   that is not later, so versions only grow.
//!
//! Sans IO: every call takes the wall-clock time; the key is given at construction.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::identity::{EngineIdentity, Keypair};
use crate::time::Timestamp;
use crate::wire::{EngineAdvert, NodeAdvert, TransportAddress};

/// The shortest lifetime of the node's own adverts: 2 s.
pub const MIN_LIFETIME: Duration = Duration::from_secs(2);

/// This node's adverts (see the module doc).
pub struct OwnAdverts {
    key: Keypair,
    name: Option<String>,
    lifetime: Duration,
    node: NodeAdvert,
    engines: BTreeMap<EngineIdentity, EngineAdvert>,
}

impl OwnAdverts {
    /// Signs the node's first advert, for `addrs`, at `now`. A `lifetime` under
    /// [`MIN_LIFETIME`] is raised to it (re-signing would otherwise never stop).
    pub fn new(
        key: Keypair,
        addrs: Vec<(TransportAddress, u8)>,
        name: Option<String>,
        lifetime: Duration,
        now: Timestamp,
    ) -> OwnAdverts {
        let lifetime = lifetime.max(MIN_LIFETIME);
        let node =
            NodeAdvert::new_signed(&key, addrs, now.0, now, now.after(lifetime), name.clone());
        OwnAdverts {
            key,
            name,
            lifetime,
            node,
            engines: BTreeMap::new(),
        }
    }

    /// The current node advert.
    pub fn node_advert(&self) -> &NodeAdvert {
        &self.node
    }

    /// The current engine adverts, by engine.
    pub fn engine_adverts(&self) -> impl Iterator<Item = &EngineAdvert> {
        self.engines.values()
    }

    /// The node now has `addrs`: the node advert is re-signed if they differ from the advert's.
    pub fn set_addresses(
        &mut self,
        now: Timestamp,
        addrs: Vec<(TransportAddress, u8)>,
    ) -> Option<NodeAdvert> {
        if addrs == self.node.addrs {
            return None;
        }
        self.sign_node(now, addrs);
        Some(self.node.clone())
    }

    /// The reachable engines are now `reachable` (identity and name): returns the adverts of
    /// the engines that were not advertised yet, and the engines no longer in the set. An entry
    /// whose identity is not the one its name derives from this node's key is skipped (logged).
    pub fn set_engines(
        &mut self,
        now: Timestamp,
        reachable: &[(EngineIdentity, String)],
    ) -> (Vec<EngineAdvert>, Vec<EngineIdentity>) {
        let mut added = Vec::new();
        for (id, name) in reachable {
            if self.engines.contains_key(id) {
                continue;
            }
            let key = self.key.derive_engine(name);
            if key.engine_identity() != *id {
                log::warn!(
                    "identity store: engine {name} ({}) does not have this node's key for its \
                     name; not advertised",
                    id.short()
                );
                continue;
            }
            let advert = self.sign_engine(&key, name, now, 0);
            self.engines.insert(*id, advert.clone());
            added.push(advert);
        }
        let withdrawn: Vec<EngineIdentity> = self
            .engines
            .keys()
            .filter(|id| !reachable.iter().any(|(r, _)| r == *id))
            .copied()
            .collect();
        for id in &withdrawn {
            self.engines.remove(id);
        }
        (added, withdrawn)
    }

    /// When the next advert is due for re-signing (half its lifetime after it was signed).
    pub fn resign_at(&self) -> Timestamp {
        let half = self.lifetime / 2;
        self.engines
            .values()
            .map(|a| a.created.after(half))
            .chain(std::iter::once(self.node.created.after(half)))
            .min()
            .unwrap_or(Timestamp(u64::MAX))
    }

    /// Re-signs every advert due at `now`: the node advert if it is, and the engine adverts that
    /// are.
    pub fn resign_due(&mut self, now: Timestamp) -> (Option<NodeAdvert>, Vec<EngineAdvert>) {
        let half = self.lifetime / 2;
        let node = if self.node.created.after(half) <= now {
            let addrs = self.node.addrs.clone();
            self.sign_node(now, addrs);
            Some(self.node.clone())
        } else {
            None
        };
        let due: Vec<(EngineIdentity, String, u64)> = self
            .engines
            .iter()
            .filter(|(_, a)| a.created.after(half) <= now)
            .map(|(id, a)| (*id, a.name.clone(), a.version))
            .collect();
        let mut engines = Vec::new();
        for (id, name, version) in due {
            let key = self.key.derive_engine(&name);
            let advert = self.sign_engine(&key, &name, now, version);
            self.engines.insert(id, advert.clone());
            engines.push(advert);
        }
        (node, engines)
    }

    fn sign_node(&mut self, now: Timestamp, addrs: Vec<(TransportAddress, u8)>) {
        self.node = NodeAdvert::new_signed(
            &self.key,
            addrs,
            next_version(self.node.version, now),
            now,
            now.after(self.lifetime),
            self.name.clone(),
        );
    }

    fn sign_engine(&self, key: &Keypair, name: &str, now: Timestamp, prev: u64) -> EngineAdvert {
        EngineAdvert::new_signed(
            key,
            self.key.node_identity(),
            name,
            next_version(prev, now),
            now,
            now.after(self.lifetime),
        )
    }
}

/// The wall clock in milliseconds, or one more than `prev` if that is not later.
fn next_version(prev: u64, now: Timestamp) -> u64 {
    now.0.max(prev.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Signed;

    fn addr(port: u16) -> Vec<(TransportAddress, u8)> {
        vec![(TransportAddress::quic(([127, 0, 0, 1], port).into()), 100)]
    }

    #[test]
    fn adverts_are_resigned_at_half_their_lifetime_with_a_higher_version() {
        let key = Keypair::from_seed(&[1; 32]);
        let hour = Duration::from_secs(3600);
        let t0 = Timestamp(1_000_000);
        let mut own = OwnAdverts::new(key.clone(), addr(1), None, 2 * hour, t0);
        let first = own.node_advert().clone();
        assert_eq!((first.version, first.expires), (t0.0, t0.after(2 * hour)));
        assert!(first.clone().verify().is_ok());
        let echo = key.derive_engine("echo").engine_identity();
        let (added, gone) = own.set_engines(t0, &[(echo, "echo".into())]);
        assert_eq!((added.len(), gone.len()), (1, 0));
        assert!(added[0].clone().verify().is_ok());
        assert_eq!(added[0].node, key.node_identity());
        assert_eq!(own.resign_at(), t0.after(hour));

        // Not due a millisecond early; due at half the lifetime.
        let early = Timestamp(t0.after(hour).0 - 1);
        assert_eq!(own.resign_due(early), (None, Vec::new()));
        let t1 = t0.after(hour);
        let (node, engines) = own.resign_due(t1);
        let node = node.expect("node advert re-signed");
        assert!(node.version > first.version && node.expires == t1.after(2 * hour));
        assert_eq!(node.addrs, first.addrs);
        assert!(node.clone().verify().is_ok());
        assert_eq!(engines.len(), 1);
        assert!(engines[0].version > added[0].version && engines[0].created == t1);
        assert!(engines[0].clone().verify().is_ok());
        assert_eq!(own.resign_at(), t1.after(hour));
    }

    #[test]
    fn new_addresses_resign_and_engines_come_and_go() {
        let key = Keypair::from_seed(&[2; 32]);
        let t0 = Timestamp(5_000);
        let mut own = OwnAdverts::new(
            key.clone(),
            addr(1),
            Some("n".into()),
            Duration::from_secs(60),
            t0,
        );
        assert_eq!(own.set_addresses(t0, addr(1)), None);
        // The clock did not move: the version still grows.
        let moved = own.set_addresses(t0, addr(2)).expect("re-signed");
        assert_eq!(moved.version, t0.0 + 1);
        assert_eq!(moved.addrs, addr(2));
        assert_eq!(moved.name.as_deref(), Some("n"));

        let a = key.derive_engine("a").engine_identity();
        let b = key.derive_engine("b").engine_identity();
        let stranger = Keypair::from_seed(&[3; 32])
            .derive_engine("c")
            .engine_identity();
        let (added, _) = own.set_engines(
            t0,
            &[(a, "a".into()), (b, "b".into()), (stranger, "c".into())],
        );
        assert_eq!(added.len(), 2, "the engine with a foreign key is left out");
        let (added, gone) = own.set_engines(t0, &[(b, "b".into())]);
        assert!(added.is_empty());
        assert_eq!(gone, vec![a]);
        assert_eq!(own.engine_adverts().count(), 1);
    }
}
