//! The node's identity service as the node builder sets it up (the store loaded with the
//! configured peers and engines, the node's first advert), and the node's handles onto it:
//! new addresses, synchronous lookups, its counters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::bounded;

use super::nis_shell::NisMail;
use super::{Node, NodeError, NodeLimits};
use crate::identity::{EngineIdentity, Keypair, NodeIdentity};
use crate::identity_store::own::OwnAdverts;
use crate::identity_store::service::IdentityService;
use crate::identity_store::{IdentityStats, IdentityStore};
use crate::mail::identity::{
    AnyIdentity, IdentityRecord, IdentityRequest, IdentityUpdate, Measurement, Party, UpdateResult,
};
use crate::time::Now;
use crate::wire::{EngineAdvert, NodeAdvert, TransportAddress};

/// What the node knows at start.
pub(super) struct Known<'a> {
    pub(super) key: &'a Keypair,
    pub(super) name: Option<String>,
    /// The bound addresses, as advertised (with their weights).
    pub(super) addrs: Vec<(TransportAddress, u8)>,
    pub(super) has_transport: bool,
    pub(super) locations: Vec<(EngineIdentity, NodeIdentity)>,
    pub(super) peers: Vec<NodeAdvert>,
    pub(super) engine_adverts: Vec<EngineAdvert>,
    /// Trust per node from configuration.
    pub(super) trust: Vec<(NodeIdentity, u8)>,
    /// Records read back from the identity store's file.
    pub(super) restored: Vec<IdentityRecord>,
    /// Whether changes are written to that file (tracked for the NIS shell).
    pub(super) persist: bool,
}

/// The measurements of the node records read back from the identity store's file: the
/// Transport orders those peers' addresses by them from its first dial.
pub(super) fn measurements(restored: &[IdentityRecord]) -> Vec<(NodeIdentity, Measurement)> {
    restored
        .iter()
        .filter_map(|r| match r {
            IdentityRecord::Node(n) => n.measured.map(|m| (n.id, m)),
            _ => None,
        })
        .collect()
}

/// The node's identity service, loaded with what it knows at start. A peer or engine advert
/// that does not verify, or has expired, is an error.
pub(super) fn service(
    known: Known<'_>,
    limits: &NodeLimits,
    stats: Arc<IdentityStats>,
) -> Result<IdentityService, NodeError> {
    let now = Now::read();
    let mut store = IdentityStore::new(limits.identity_records)
        .with_max_engines_per_node(limits.identity.max_engines_per_node);
    store.handle(now.wall, Party::Router, IdentityRequest::Subscribe);
    if known.has_transport {
        store.handle(now.wall, Party::Transport, IdentityRequest::Subscribe);
    }
    // Restored first: what the configuration sets (trust, peers) is applied over it.
    if !known.restored.is_empty() {
        let n = known.restored.len();
        let report = store.restore(now.wall, known.key.node_identity(), known.restored);
        log::info!(
            "identity store: {} of {n} stored records restored ({} expired or invalid adverts let go, {} left out)",
            report.restored,
            report.dropped_adverts,
            report.skipped
        );
    }
    if known.persist {
        store.track_changes();
    }
    let addrs = known.addrs;
    let own = OwnAdverts::new(
        known.key.clone(),
        addrs,
        known.name,
        limits.identity.advert_lifetime,
        now.wall,
    );
    let lookups = known.has_transport.then_some(limits.identity.lookups);
    let mut service = IdentityService::new(now, store, own, lookups, stats);
    for (engine, node) in known.locations {
        service.apply(now, IdentityUpdate::EngineLocation { engine, node });
    }
    for (id, trust) in known.trust {
        service.apply(
            now,
            IdentityUpdate::NodeLocal {
                id,
                trust: Some(trust),
                reputation: None,
                tprefs: None,
                cprefs: None,
            },
        );
    }
    for advert in known.peers {
        let id = advert.id;
        match service.apply(now, IdentityUpdate::NodeAdvert(advert)) {
            UpdateResult::Refused(e) => {
                return Err(NodeError::BadPeerAdvert(format!("{}: {e}", id.short())))
            }
            r => log::debug!("peer {} advert: {r:?}", id.short()),
        }
    }
    for advert in known.engine_adverts {
        let id = advert.engine;
        match service.apply(now, IdentityUpdate::EngineAdvert(advert)) {
            UpdateResult::Refused(e) => {
                return Err(NodeError::BadEngineAdvert(format!("{}: {e}", id.short())))
            }
            r => log::debug!("engine {} advert: {r:?}", id.short()),
        }
    }
    Ok(service)
}

/// The identity store's file at `path`, if any, and the records read from it.
pub(super) fn open_file(
    path: Option<&std::path::Path>,
) -> Result<
    (
        Option<super::identity_file::IdentityFile>,
        Vec<IdentityRecord>,
    ),
    NodeError,
> {
    match path {
        Some(path) => {
            let (file, records) =
                super::identity_file::IdentityFile::open(path).map_err(NodeError::IdentityFile)?;
            Ok((Some(file), records))
        }
        None => Ok((None, Vec::new())),
    }
}

/// How long [`Node::lookup`] waits for the identity store.
const LOOKUP_WAIT: Duration = Duration::from_secs(5);

impl Node {
    /// The node's addresses are now `addrs` (what its advert tells other nodes: for example its
    /// public addresses behind a NAT, or new ones after the network changed). The node signs a
    /// new advert and sends it to every connected peer; [`Node::advert`] returns it once the
    /// identity store has signed it. The sockets the Transport listens on do not change.
    pub fn set_addresses(&self, addrs: &[SocketAddr]) -> Result<(), NodeError> {
        if addrs.len() > crate::wire::advert::MAX_ADDRS {
            return Err(NodeError::TooManyAddresses(addrs.len()));
        }
        self.links
            .nis
            .send(NisMail::SetAddresses(addrs.to_vec()))
            .map_err(|_| NodeError::Stopped)
    }

    /// What the Network Identity Store holds about `id` now (waits for the store's thread, at
    /// most 5 s). Does not start a lookup with other nodes.
    pub fn lookup(&self, id: AnyIdentity) -> Result<Option<IdentityRecord>, NodeError> {
        let (reply, answer) = bounded(1);
        self.links
            .nis
            .send(NisMail::Query { id, reply })
            .map_err(|_| NodeError::Stopped)?;
        answer
            .recv_timeout(LOOKUP_WAIT)
            .map_err(|_| NodeError::Stopped)
    }

    /// The identity store's counters.
    pub fn identity_stats(&self) -> &IdentityStats {
        &self.identity_stats
    }
}
