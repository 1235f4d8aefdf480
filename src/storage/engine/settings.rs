//! The Storage engine's settings ([`StorageSettings`]: the remote-put policy, searches,
//! fetches), bounds ([`StorageLimits`]) and counters ([`StorageStats`]).

use std::time::Duration;

/// Who may store blocks here, how much and for how long (spec notes §5.5.1: "the receiving node
/// decides whether to serve the requester and how long it can guarantee storage").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutPolicy {
    /// Whether other nodes may store blocks here at all (default true).
    pub accept: bool,
    /// The least identity-store trust a node needs to store here (default 128, the trust of a
    /// node whose record sets none; 0 admits every node that is not banned).
    pub min_trust: u8,
    /// Most bytes of encoded blocks one node may have stored here (default 1 GiB); counted per
    /// node over this run, kept in memory.
    pub max_bytes_per_node: u64,
    /// The longest a remote block is kept (default 7 days): a put or extend asking for longer
    /// is accepted with its receipt's `until` capped to this.
    pub max_lifetime: Duration,
}

impl Default for PutPolicy {
    fn default() -> Self {
        PutPolicy {
            accept: true,
            min_trust: crate::mail::identity::DEFAULT_TRUST,
            max_bytes_per_node: 1 << 30,
            max_lifetime: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What the Storage engine does, and how far it goes.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageSettings {
    /// The remote-put policy.
    pub puts: PutPolicy,
    /// Random walks started per lookup (`BlockSearchRandom` fanout; default 8). Each walker
    /// goes on alone (one next node per hop), so a lookup sends at most
    /// `fanout × hop_limit` search messages.
    pub fanout: usize,
    /// Most hops of a search (default 96, at most [`crate::storage::wire::MAX_PATH`]).
    pub hop_limit: usize,
    /// How long a direct get waits for its answer before the next holder is tried
    /// (default 5 s).
    pub get_timeout: Duration,
    /// How long a lookup's searches run before the lookup fails (default 10 s); relays keep a
    /// search's state as long.
    pub search_timeout: Duration,
    /// Blocks a fetch keeps requested at once, over all holders (default 32).
    pub max_in_flight: usize,
    /// Blocks a fetch keeps requested at once from one holder (default 16).
    pub max_in_flight_per_holder: usize,
    /// How often expired blocks are collected (default 10 s; at most
    /// [`StorageLimits::gc_batch`] per round).
    pub gc_interval: Duration,
    /// How often a running fetch reports its progress (default 250 ms).
    pub progress_interval: Duration,
    /// The engine's bounds.
    pub limits: StorageLimits,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            puts: PutPolicy::default(),
            fanout: 8,
            hop_limit: 96,
            get_timeout: Duration::from_secs(5),
            search_timeout: Duration::from_secs(10),
            max_in_flight: 32,
            max_in_flight_per_holder: 16,
            gc_interval: Duration::from_secs(10),
            progress_interval: Duration::from_millis(250),
            limits: StorageLimits::default(),
        }
    }
}

/// Every bound of the Storage engine, with its default and what it costs.
///
/// Worst case at the defaults: the cache holds `cache_bytes` (64 MiB) of encoded blocks, each
/// also kept decoded (so up to twice that, 128 MiB); relay entries are ≈ 100 bytes
/// (`max_relayed` × 100 B ≈ 1.6 MiB); pending lookups ≈ 200 bytes each plus at most 16 holders
/// (`max_pending` × 1 KiB ≈ 1 MiB); known receipts 136 bytes each (`max_known_holders` ×
/// 150 B ≈ 10 MiB); fetches keep their queues of ids (32 bytes each, at most
/// `max_fetch_queue` per fetch: `max_fetches` × 2 MiB = 16 MiB), at most 32 holders each, and
/// the blocks of one burst until its commit (at most `max_in_flight` per fetch, 1 MiB each and
/// decoded too: `max_fetches` × 32 × 2 MiB = 512 MiB with eight full fetches); put shares
/// (`max_put_nodes` × 64 B = 256 KiB); rate windows ≈ 64 bytes per peer, for requests and for
/// searches (2 × `rate_peers` × 64 B = 512 KiB); the trust of nodes whose record sets one
/// (bounded by the identity store's records). About 700 MiB with eight 1 MiB-block fetches
/// running at once, under 200 MiB otherwise, whatever peers send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StorageLimits {
    /// Bytes of blocks cached from search results passing through (default 64 MiB); the least
    /// recently used go first.
    pub cache_bytes: usize,
    /// Searches this node relays and waits to pass the result back of (default 16,384);
    /// more are dropped (`relay_full`).
    pub max_relayed: usize,
    /// Gets and lookups of local engines outstanding (default 1,024); more are answered at once
    /// with an error (`pending_full`).
    pub max_pending: usize,
    /// Fetches running at once (default 8); more are refused (`fetch_full`).
    pub max_fetches: usize,
    /// Ids a fetch keeps queued (default 65,536): the rest are found again by walking the tree
    /// once these are fetched.
    pub max_fetch_queue: usize,
    /// Receipts of other holders kept (default 65,536), to answer gets with `Holders`.
    pub max_known_holders: usize,
    /// Searches accepted per peer per second (default 256); more are dropped (`rate_limited`).
    pub searches_per_peer_s: u32,
    /// Gets and puts accepted per peer per second (default 4,096); more are refused
    /// (`rate_limited`).
    pub requests_per_peer_s: u32,
    /// Peers whose rate is tracked at once (default 4,096), for gets and puts and, apart, for
    /// searches.
    pub rate_peers: usize,
    /// Nodes whose share of remote puts is tracked (default 4,096, ≈ 64 B each); a put from a
    /// further node is refused (`refused_full`).
    pub max_put_nodes: usize,
    /// Expired blocks removed per collection round (default 1,024).
    pub gc_batch: usize,
}

impl Default for StorageLimits {
    fn default() -> Self {
        StorageLimits {
            cache_bytes: 64 << 20,
            max_relayed: 16_384,
            max_pending: 1024,
            max_fetches: 8,
            max_fetch_queue: 65_536,
            max_known_holders: 65_536,
            searches_per_peer_s: 256,
            requests_per_peer_s: 4096,
            rate_peers: 4096,
            max_put_nodes: 4096,
            gc_batch: 1024,
        }
    }
}

crate::runtime::stats::counter_struct! {
    /// Counters of one Storage engine.
    pub struct StorageStats {
        /// Storage messages sent to other nodes.
        sent,
        /// Gets of local engines (and of fetches) started.
        gets,
        /// Of those, answered from this node's store.
        local_hits,
        /// Of those, answered from this node's cache.
        cache_hits,
        /// Of those, answered by a holder asked directly.
        direct_hits,
        /// Of those, answered by a search.
        search_hits,
        /// Gets that found nothing (every holder tried, every search ended).
        not_found,
        /// Direct gets that went unanswered within `get_timeout`, or could not be delivered.
        get_timeouts,
        /// Searches started (one per walker: a random lookup starts `fanout`).
        searches_started,
        /// Searches forwarded for other nodes.
        searches_forwarded,
        /// Searches answered here (the block was in this node's store or cache).
        searches_answered,
        /// Searches that ended here: no hops left.
        search_exhausted,
        /// Searches that ended here: no next node that is not on the path.
        dead_end,
        /// Results relayed back towards their origin.
        found_relayed,
        /// Results of searches already answered (a later walker's).
        found_late,
        /// Blocks put into the cache.
        cached,
        /// Gets of other nodes served with a block.
        served,
        /// Gets of other nodes answered with holders' receipts.
        served_holders,
        /// Gets of other nodes answered `NotFound`.
        served_not_found,
        /// Puts (and extends) of other nodes stored, answered with a receipt.
        puts_stored,
        /// Puts of local engines into this node's store.
        local_puts,
        /// Receipts received for this node's own puts (checked).
        receipts,
        /// Fetches started.
        fetches,
        /// Fetches that ended with every block held.
        fetches_done,
        /// Fetches that failed.
        fetches_failed,
        /// Blocks fetched (checked and stored).
        fetched_blocks,
        /// Expired blocks collected.
        collected,
        /// Refused: a get from a node whose trust is below the block's `min_trust`.
        refused_trust,
        /// Refused: a put from a node whose trust is below the put policy's.
        refused_put_trust,
        /// Refused: a put while the node accepts none.
        refused_put_policy,
        /// Refused: a put past the store's quota or the node's share.
        refused_full,
        /// Refused: a put of bytes that are not a valid block, or with an expiry in the past.
        refused_invalid,
        /// Refused: more requests or searches from a peer than its rate allows.
        rate_limited,
        /// Refused: the body did not decode.
        malformed,
        /// Refused: a protocol version this node does not speak.
        unknown_version,
        /// Refused: a remote message not from a verified engine of its node, or local mail not
        /// from this node.
        bad_origin,
        /// Refused: a block whose bytes do not match its id (from a holder or a cache on a
        /// search path), or that breaks a block limit.
        bad_block,
        /// Refused: a receipt that is forged, expired, or names another block or node.
        bad_receipt,
        /// Refused: a search or result whose path is wrong (does not end at the sending peer,
        /// holds this node, loops, or is longer than the hop limit).
        bad_path,
        /// Refused: a reply or result this node holds no request, search or relay entry for.
        unsolicited,
        /// Replies to requests that had timed out (not hostile: the answer was only late).
        late_replies,
        /// Not relayed: `max_relayed` relay entries held.
        relay_full,
        /// Local gets refused at once: `max_pending` outstanding.
        pending_full,
        /// Fetches refused at once: `max_fetches` running.
        fetch_full,
        /// Store operations that failed (I/O or corruption).
        store_errors,
        /// Answers that could not be handed to the local engine that asked.
        asker_gone,
    }
}
