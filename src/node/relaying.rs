//! The node's side of relaying and of what it learns across restarts: the builder's relay
//! policy and identity-store file, enabling relaying in the Router, and the connected peers
//! (with their measured round-trip times) the Transport publishes.

use super::{Node, NodeBuilder};
use crate::identity::Keypair;
use crate::relay::{Candidate, RelayPolicy};
use crate::router::Router;

impl NodeBuilder {
    /// Keeps the identity store's records (node, engine, topic and domain records, trust and
    /// reputation) in a redb file at `path`, so that they survive a restart (created if
    /// absent). A file that cannot be opened or read fails [`NodeBuilder::start`] with
    /// [`super::NodeError::IdentityFile`]. Without it the store starts empty each time.
    pub fn identity_store_file(mut self, path: impl Into<std::path::PathBuf>) -> NodeBuilder {
        self.identity_file = Some(path.into());
        self
    }

    /// Whom this node forwards relay messages for, and how much (default: nobody; messages
    /// relayed *to* this node and this node's own relayed sends work whatever the policy).
    pub fn relay_policy(mut self, policy: RelayPolicy) -> NodeBuilder {
        self.relay = policy;
        self
    }
}

/// Enables relaying in the node's Router under `policy`. Ephemeral relay keys are secrets: a
/// real node draws their seed from the operating system.
pub(super) fn enable(router: &mut Router, key: &Keypair, policy: RelayPolicy) {
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    router.enable_relay(key, seed, policy);
}

impl Node {
    /// The connected peers as the Transport last published them (about every 200 ms): their
    /// trust and the round-trip time QUIC measures to each — what relays are chosen by.
    pub fn connected_peers(&self) -> Vec<Candidate> {
        self.relay_board.snapshot()
    }
}
