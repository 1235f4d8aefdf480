//! The node's Storage engine (spec notes §5.5) as the node builder registers it, and the
//! node's handles onto it: its store, its counters, and blocking calls that ask it as an
//! application would — [`Node::storage_put`], [`Node::storage_get`], [`Node::storage_fetch`].
//!
//! The store is opened by the caller (a [`crate::storage::store::RedbStore`] under
//! `[storage] path` for `netmachine run`, a [`crate::storage::store::MemStore`] in tests) and
//! shared: the engine serves and fills it, the node hands it out for reading objects
//! ([`Node::block_store`]). Each call is local [`StorageMail`] from a short-lived
//! [`Client`](super::client::Client) to the node itself (`Protocol::STORAGE`, scope `Local`),
//! waiting for the one answer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{EngineSpec, Node, NodeBuilder, NodeError};
use crate::identity::NodeIdentity;
use crate::mail::domain::DomainDirectory;
use crate::mail::pubsub::TopicParents;
use crate::mail::storage::{
    FetchProgress, FoundAt, Lookup, StorageMail, StoragePrefs, STORAGE_ENGINE_NAME,
};
use crate::mail::{Input, Origin};
use crate::rng::SplitMix64;
use crate::runtime::SendOptions;
use crate::storage::block::BlockId;
use crate::storage::engine::{StorageEngine, StorageSettings, StorageStats};
use crate::storage::receipt::ChunkCommitment;
use crate::storage::store::BlockStore;
use crate::time::Timestamp;
use crate::wire::NodeAdvert;
use crate::wire::{Destination, Protocol};
use parking_lot::RwLock;

/// Mixed into the node's seed for the Storage engine's generator.
const SEED_TWEAK: u64 = 0x5707_a9e0_0013_0013;

/// Mailbox depth of the Storage engine: a fetch's replies (`max_in_flight` blocks) and bursts
/// of gets and searches from many peers fit many times over.
pub const STORAGE_MAILBOX_DEPTH: usize = 8192;

/// The Storage engine's store and settings, as given to [`NodeBuilder::storage`].
#[derive(Clone)]
pub struct StorageSetup {
    /// The block store the engine serves and fills.
    pub store: Arc<dyn BlockStore>,
    /// The engine's settings (`[storage]`).
    pub settings: StorageSettings,
}

/// What a node keeps of its Storage engine.
pub(super) struct StorageHandles {
    pub(super) store: Arc<dyn BlockStore>,
    pub(super) stats: Arc<StorageStats>,
    pub(super) get_timeout: Duration,
    pub(super) search_timeout: Duration,
}

impl NodeBuilder {
    /// Runs the Storage engine over `store` with `settings` (nodes run none unless asked).
    pub fn storage(mut self, store: Arc<dyn BlockStore>, settings: StorageSettings) -> NodeBuilder {
        self.storage = Some(StorageSetup { store, settings });
        self
    }
}

/// The Storage engine for the node with key `key` over `setup`, ready to register, and the
/// handles the node keeps; `advert` is the node's shared current advert.
pub(super) fn engine(
    key: &crate::identity::Keypair,
    setup: StorageSetup,
    seed: Option<u64>,
    directory: &DomainDirectory,
    parents: &TopicParents,
    advert: &Arc<RwLock<NodeAdvert>>,
) -> (
    (EngineSpec, Box<dyn crate::runtime::Engine>),
    StorageHandles,
) {
    let seed = match seed {
        Some(s) => SplitMix64::new(s ^ SEED_TWEAK).next_u64(),
        None => SplitMix64::from_os().next_u64(),
    };
    let stats = Arc::new(StorageStats::default());
    let handles = StorageHandles {
        store: Arc::clone(&setup.store),
        stats: Arc::clone(&stats),
        get_timeout: setup.settings.get_timeout,
        search_timeout: setup.settings.search_timeout,
    };
    let engine = StorageEngine::new(
        key.clone(),
        setup.store,
        directory.clone(),
        setup.settings,
        stats,
        seed,
    )
    .with_topic_parents(parents.clone())
    .with_advert(Arc::clone(advert));
    let spec = EngineSpec {
        mailbox_depth: STORAGE_MAILBOX_DEPTH,
        ..EngineSpec::named(STORAGE_ENGINE_NAME).serving(Protocol::STORAGE)
    };
    ((spec, Box::new(engine)), handles)
}

/// Slack over the engine's own timeouts before a blocking call gives up on its answer.
const ANSWER_SLACK: Duration = Duration::from_secs(1);

impl Node {
    /// The block store the Storage engine serves, if the node runs one.
    pub fn block_store(&self) -> Option<Arc<dyn BlockStore>> {
        self.storage.as_ref().map(|h| Arc::clone(&h.store))
    }

    /// The Storage engine's counters, if the node runs one.
    pub fn storage_stats(&self) -> Option<&StorageStats> {
        self.storage.as_ref().map(|h| &*h.stats)
    }

    fn storage_handles(&self) -> Result<&StorageHandles, NodeError> {
        self.storage
            .as_ref()
            .ok_or(NodeError::NoAnswer("the node runs no Storage engine"))
    }

    /// Sends `mail` to the node's Storage engine and hands every answer to `on_answer` until it
    /// returns `Some`, or `timeout` passes without an answer (each answer restarts it).
    fn storage_call<T>(
        &self,
        mail: StorageMail,
        timeout: Duration,
        mut on_answer: impl FnMut(StorageMail) -> Option<T>,
    ) -> Result<T, NodeError> {
        let n = self.client_seq.fetch_add(1, Ordering::Relaxed);
        let mut client = self.client(&format!("storage-call-{n}"))?;
        let own = self.identity;
        client.send_with(
            Destination::Node(own),
            Protocol::STORAGE,
            mail.encode(),
            SendOptions {
                expiry: timeout + ANSWER_SLACK,
                ..SendOptions::local_only()
            },
        );
        let mut deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NodeError::NoAnswer(
                    "the Storage engine did not answer in time",
                ));
            }
            match client.recv(left) {
                Some(Input::Message(m))
                    if m.origin() == Origin::Local && m.protocol() == Protocol::STORAGE =>
                {
                    if let Ok(mail) = StorageMail::decode(m.body()) {
                        deadline = Instant::now() + timeout;
                        if let Some(t) = on_answer(mail) {
                            return Ok(t);
                        }
                    }
                }
                Some(Input::Undeliverable(_)) => {
                    return Err(NodeError::NoAnswer("the Storage engine is not running"))
                }
                Some(_) => {}
                None if client.is_closed() => return Err(NodeError::Stopped),
                None => {}
            }
        }
    }

    /// Stores the encoded block `bytes` here (`node` `None`) or at `node`, with `prefs`; the
    /// holder's checked receipt (`None` for this node's own store), or why not.
    pub fn storage_put(
        &self,
        bytes: Vec<u8>,
        prefs: StoragePrefs,
        node: Option<NodeIdentity>,
    ) -> Result<Result<Option<ChunkCommitment>, String>, NodeError> {
        let timeout = self.storage_handles()?.get_timeout + ANSWER_SLACK;
        self.storage_call(
            StorageMail::Put { bytes, prefs, node },
            timeout,
            |m| match m {
                StorageMail::PutDone { result, .. } => Some(result),
                _ => None,
            },
        )
    }

    /// Gets block `id` (this node's store and cache first, then as `lookup` says); its encoded
    /// bytes (checked) and where they came from, or why not.
    pub fn storage_get(
        &self,
        id: BlockId,
        lookup: Lookup,
    ) -> Result<Result<(Vec<u8>, FoundAt), String>, NodeError> {
        let h = self.storage_handles()?;
        // The engine asks at most this many holders directly, then searches.
        let holders = crate::storage::engine::MAX_LOOKUP_HOLDERS as u32;
        let timeout = h.get_timeout * holders + h.search_timeout + ANSWER_SLACK;
        self.storage_call(StorageMail::Get { id, lookup }, timeout, |m| match m {
            StorageMail::GetDone { result, .. } => Some(result),
            _ => None,
        })
    }

    /// Fetches every block of the object under `root` into this node's store (kept until
    /// `until`; objects over `max_size` bytes refused), calling `progress` with each report;
    /// the object's size, or why not. A fetch asked for again resumes: blocks already held
    /// are not fetched again. Gives up after `timeout` without an answer.
    pub fn storage_fetch(
        &self,
        root: BlockId,
        lookup: Lookup,
        until: Timestamp,
        max_size: u64,
        timeout: Duration,
        mut progress: impl FnMut(&FetchProgress),
    ) -> Result<(Result<u64, String>, FetchProgress), NodeError> {
        self.storage_handles()?;
        let mail = StorageMail::Fetch {
            root,
            lookup,
            until,
            max_size,
        };
        self.storage_call(mail, timeout, |m| match m {
            StorageMail::FetchProgress {
                root: r,
                progress: p,
            } if r == root => {
                progress(&p);
                None
            }
            StorageMail::FetchDone {
                root: r,
                result,
                progress: p,
            } if r == root => Some((result, p)),
            _ => None,
        })
    }
}
