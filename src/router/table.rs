//! The read-only snapshot of a node's local engines that the Router publishes: engine shells
//! read it to decide whether a message stays on the node (and so need not be signed), and the
//! node's handles read it for names and status. The Router's own table is the only one that
//! changes; a reader that sees an older snapshot is corrected by the Router (a signed message for
//! an engine that turned out to be local is delivered locally all the same).

use std::collections::{BTreeMap, BTreeSet};

use crate::identity::{EngineIdentity, NodeIdentity};
use crate::wire::{Destination, EngineMessage, RoutingScope};

/// The local engines of one node: identity → name, and which of them are reachable from other
/// nodes (advertised).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalEngines {
    engines: BTreeMap<EngineIdentity, String>,
    reachable: BTreeSet<EngineIdentity>,
}

impl LocalEngines {
    /// A snapshot of `engines`, none of them reachable.
    pub fn new(engines: BTreeMap<EngineIdentity, String>) -> LocalEngines {
        LocalEngines {
            engines,
            reachable: BTreeSet::new(),
        }
    }

    /// The same snapshot with the engines in `reachable` marked reachable from other nodes.
    pub fn with_reachable(mut self, reachable: BTreeSet<EngineIdentity>) -> LocalEngines {
        self.reachable = reachable
            .into_iter()
            .filter(|e| self.engines.contains_key(e))
            .collect();
        self
    }

    /// The engines reachable from other nodes (identity and name), by identity.
    pub fn reachable(&self) -> Vec<(EngineIdentity, String)> {
        self.reachable
            .iter()
            .filter_map(|e| self.engines.get(e).map(|n| (*e, n.clone())))
            .collect()
    }

    /// Whether `identity` runs on this node.
    pub fn contains(&self, identity: &EngineIdentity) -> bool {
        self.engines.contains_key(identity)
    }

    /// Whether `msg`, sent by an engine of `node`, stays on the node (and so goes to the Router
    /// unsigned): its scope is `Local`, or it is for a local engine, this node, or a topic.
    pub fn keeps(&self, node: NodeIdentity, msg: &EngineMessage) -> bool {
        msg.scope() == RoutingScope::Local
            || match msg.dst {
                Destination::Engine(e) => self.contains(&e),
                Destination::Node(n) => n == node,
                Destination::Topic(_) => true,
                Destination::Domain(_) => false,
            }
    }

    /// The identity of the engine called `name`.
    pub fn find(&self, name: &str) -> Option<EngineIdentity> {
        self.engines
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(id, _)| *id)
    }

    /// Names and identities, sorted by name.
    pub fn list(&self) -> Vec<(String, EngineIdentity)> {
        let mut out: Vec<_> = self
            .engines
            .iter()
            .map(|(id, n)| (n.clone(), *id))
            .collect();
        out.sort();
        out
    }

    /// How many engines run.
    pub fn len(&self) -> usize {
        self.engines.len()
    }

    /// Whether none runs.
    pub fn is_empty(&self) -> bool {
        self.engines.is_empty()
    }
}
