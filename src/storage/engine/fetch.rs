//! Fetching whole objects: every block of a tree pulled into this node's store, in parallel,
//! from several holders, with a bounded number in flight, resuming from what the store holds.
//!
//! What to ask for is always what the store still lacks ([`missing_blocks`]): the root first,
//! then the children of every held tree block. Each block goes to the holder with the fewest
//! requests in flight (fewest recent failures first, then most blocks served); a holder that
//! fails three times in a row rests for `get_timeout`. A block every holder failed to give is
//! looked up as a single block (the fetch's lookup: searches, receipts), and the holder that
//! answers joins the fetch. A fetch with no block arriving for three `get_timeout`s in a row
//! fails; the blocks it got stay in the store, so asking again resumes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use super::lookup::Waiter;
use super::serve::meta_of;
use super::{Sent, StorageEngine, StorageStats};
use crate::identity::{EngineIdentity, NodeIdentity};
use crate::mail::storage::{FetchProgress, FoundAt, Lookup, StorageMail};
use crate::runtime::Context;
use crate::storage::block::{Block, BlockId, VerifiedBlock};
use crate::storage::tree::missing_blocks;
use crate::storage::wire::{GetAnswer, StorageMessage};
use crate::time::Timestamp;
use crate::wire::MessageId;

/// Failures in a row after which a holder rests.
const HOLDER_FAILURES: u32 = 3;
/// Most holders one fetch keeps (receipts from `Holders` answers past this are not used).
pub const MAX_FETCH_HOLDERS: usize = 32;
/// Single-block lookups one fetch runs at once.
const MAX_FETCH_LOOKUPS: usize = 4;
/// Fetched bytes committed without fsync before the store is synced (64 MiB): what a crash
/// during a fetch may lose, to be fetched again when it resumes.
const SYNC_EVERY_BYTES: u64 = 64 << 20;

/// One holder of a fetch's object.
#[derive(Clone, Debug)]
struct HolderState {
    node: NodeIdentity,
    in_flight: usize,
    served: u64,
    failures: u32,
    rests_until: Option<Instant>,
}

/// A fetched block waiting for the burst's commit.
pub(super) struct Batched {
    root: BlockId,
    block: VerifiedBlock,
    holder: NodeIdentity,
    until: Timestamp,
}

/// A fetch under way.
pub(super) struct Fetch {
    asker: EngineIdentity,
    reply_to: MessageId,
    lookup: Lookup,
    until: Timestamp,
    max_size: u64,
    holders: Vec<HolderState>,
    /// Blocks to request, in order.
    queue: VecDeque<BlockId>,
    /// Blocks requested: from whom.
    in_flight: BTreeMap<BlockId, NodeIdentity>,
    /// Holders that said they do not have a block.
    refused: BTreeMap<BlockId, BTreeSet<NodeIdentity>>,
    /// Blocks being looked up (no holder had them).
    looking: BTreeSet<BlockId>,
    /// Blocks fetched and checked, waiting for the burst's commit.
    storing: BTreeSet<BlockId>,
    progress: FetchProgress,
    pub(super) next_progress: Instant,
    /// When the last block arrived (or the fetch started).
    last_block: Instant,
}

impl Fetch {
    /// The local engine that asked for the fetch.
    pub(super) fn asker(&self) -> EngineIdentity {
        self.asker
    }
}

impl StorageEngine {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_fetch(
        &mut self,
        ctx: &mut Context,
        asker: EngineIdentity,
        reply_to: MessageId,
        root: BlockId,
        lookup: Lookup,
        until: Timestamp,
        max_size: u64,
    ) {
        StorageStats::count(&self.stats.fetches);
        if self.fetches.contains_key(&root)
            || self.fetches.len() >= self.settings.limits.max_fetches
        {
            StorageStats::count(&self.stats.fetch_full);
            let why = if self.fetches.contains_key(&root) {
                "a fetch of this object is already running".to_string()
            } else {
                format!("{} fetches are running already", self.fetches.len())
            };
            let mail = StorageMail::FetchDone {
                root,
                result: Err(why),
                progress: FetchProgress::default(),
            };
            return self.answer(ctx, asker, reply_to, mail);
        }
        let mut holders: Vec<HolderState> = Vec::new();
        let known = self
            .holders
            .receipts(&root, ctx.now().wall, None, usize::MAX);
        for n in lookup
            .from
            .iter()
            .copied()
            .chain(known.iter().map(|c| c.node))
        {
            if n != self.me && !holders.iter().any(|h| h.node == n) {
                holders.push(holder(n));
            }
        }
        let now = ctx.now().instant;
        self.fetches.insert(
            root,
            Fetch {
                asker,
                reply_to,
                lookup,
                until,
                max_size,
                holders,
                queue: VecDeque::new(),
                in_flight: BTreeMap::new(),
                refused: BTreeMap::new(),
                looking: BTreeSet::new(),
                storing: BTreeSet::new(),
                progress: FetchProgress::default(),
                next_progress: now + self.settings.progress_interval,
                last_block: now,
            },
        );
        // A root held already is checked here (a fetched one is checked as it arrives).
        if let Ok(Some(b)) = self.store.get(&root) {
            match b.block() {
                Block::Tree(t) if t.size > max_size => {
                    let why = format!(
                        "the object is {} bytes, over the limit of {max_size}",
                        t.size
                    );
                    return self.fetch_end(ctx, root, Err(why));
                }
                Block::Tree(t) => {
                    if let Some(f) = self.fetches.get_mut(&root) {
                        f.progress.size = Some(t.size);
                    }
                }
                Block::Leaf(_) => {
                    let why = "the root is a leaf, not an object".to_string();
                    return self.fetch_end(ctx, root, Err(why));
                }
            }
        }
        self.fetch_pump(ctx, root);
    }

    /// Refills the queue from the store, sends what the limits allow, ends a finished fetch.
    fn fetch_pump(&mut self, ctx: &mut Context, root: BlockId) {
        let max_total = self.settings.max_in_flight.max(1);
        let max_per = self.settings.max_in_flight_per_holder.max(1);
        let queue_max = self.settings.limits.max_fetch_queue.max(1);
        let Some(f) = self.fetches.get_mut(&root) else {
            return;
        };
        if f.queue.is_empty() && f.in_flight.len() < max_total.div_ceil(2) {
            match missing_blocks(self.store.as_ref(), &root, queue_max) {
                Ok(missing) => {
                    if missing.is_empty()
                        && f.in_flight.is_empty()
                        && f.looking.is_empty()
                        && f.storing.is_empty()
                    {
                        return self.fetch_complete(ctx, root);
                    }
                    f.queue = missing
                        .into_iter()
                        .filter(|b| {
                            !f.in_flight.contains_key(b)
                                && !f.looking.contains(b)
                                && !f.storing.contains(b)
                        })
                        .collect();
                }
                Err(e) => {
                    let why = format!("the object's tree is not valid: {e}");
                    return self.fetch_end(ctx, root, Err(why));
                }
            }
        }
        let now = ctx.now().instant;
        let mut sends: Vec<(NodeIdentity, BlockId)> = Vec::new();
        let mut lookups: Vec<BlockId> = Vec::new();
        while f.in_flight.len() < max_total {
            let Some(&block) = f.queue.front() else {
                break;
            };
            let refused = f.refused.get(&block);
            let best = f
                .holders
                .iter_mut()
                .filter(|h| {
                    h.in_flight < max_per
                        && h.rests_until.is_none_or(|t| t <= now)
                        && refused.is_none_or(|r| !r.contains(&h.node))
                })
                .min_by(|a, b| {
                    (a.in_flight, a.failures, std::cmp::Reverse(a.served)).cmp(&(
                        b.in_flight,
                        b.failures,
                        std::cmp::Reverse(b.served),
                    ))
                });
            match best {
                Some(h) => {
                    h.in_flight += 1;
                    h.rests_until = None;
                    f.queue.pop_front();
                    f.in_flight.insert(block, h.node);
                    sends.push((h.node, block));
                }
                None => {
                    // No holder can take it now. If none ever could (every holder refused it,
                    // or there is no holder), look it up; else wait for a holder to free up.
                    let all_refused = f
                        .holders
                        .iter()
                        .all(|h| refused.is_some_and(|r| r.contains(&h.node)));
                    if all_refused && f.looking.len() < MAX_FETCH_LOOKUPS {
                        f.queue.pop_front();
                        f.looking.insert(block);
                        lookups.push(block);
                        continue;
                    }
                    break;
                }
            }
        }
        f.progress.in_flight = f.in_flight.len() as u32;
        f.progress.holders = f.holders.iter().filter(|h| h.served > 0).count() as u32;
        let lookup = f.lookup.clone();
        for (node, block) in sends {
            let msg = StorageMessage::Get {
                id: block,
                holders: true,
            };
            self.request(ctx, node, &msg, Sent::FetchGet { root, block });
        }
        for block in lookups {
            // A lookup that fails at once ends the fetch: start no more for it then.
            if !self.fetches.contains_key(&root) {
                break;
            }
            let waiter = Waiter::Fetch { root, block };
            self.start_get(ctx, block, lookup.clone(), waiter);
        }
    }

    /// A holder's answer to one of the fetch's gets.
    pub(super) fn fetch_reply(
        &mut self,
        ctx: &mut Context,
        root: BlockId,
        via: NodeIdentity,
        id: BlockId,
        answer: GetAnswer,
    ) {
        let Some(f) = self.fetches.get_mut(&root) else {
            return;
        };
        f.in_flight.remove(&id);
        if let Some(h) = f.holders.iter_mut().find(|h| h.node == via) {
            h.in_flight = h.in_flight.saturating_sub(1);
        }
        match answer {
            GetAnswer::Block(bytes) => match VerifiedBlock::check(id, &bytes) {
                Ok(b) => {
                    self.holders.success(&id, via, ctx.now().wall);
                    let at = FoundAt {
                        holder: via,
                        hops: 1,
                        cached: false,
                    };
                    return self.fetch_store(ctx, root, b, at);
                }
                Err(e) => {
                    self.hostile(&self.stats.bad_block, &format!("a block ({e})"), via);
                    self.fetch_refused(root, id, via);
                }
            },
            GetAnswer::Holders(list) => {
                let now = ctx.now().wall;
                for c in list {
                    if c.check(now).is_err() || c.block != id {
                        self.hostile(&self.stats.bad_receipt, "a holder's receipt", via);
                        continue;
                    }
                    self.holders.add(c);
                    self.fetch_add_holder(root, c.node);
                }
                self.fetch_refused(root, id, via);
            }
            GetAnswer::NotFound | GetAnswer::Refused(..) => self.fetch_refused(root, id, via),
        }
        self.fetch_pump(ctx, root);
    }

    fn fetch_add_holder(&mut self, root: BlockId, node: NodeIdentity) {
        let me = self.me;
        if let Some(f) = self.fetches.get_mut(&root) {
            if node != me
                && f.holders.len() < MAX_FETCH_HOLDERS
                && !f.holders.iter().any(|h| h.node == node)
            {
                f.holders.push(holder(node));
            }
        }
    }

    /// `via` does not give `id`: another holder (or a lookup) gets it.
    fn fetch_refused(&mut self, root: BlockId, id: BlockId, via: NodeIdentity) {
        if let Some(f) = self.fetches.get_mut(&root) {
            f.refused.entry(id).or_default().insert(via);
            f.queue.push_front(id);
        }
    }

    /// A get of the fetch's went unanswered (timeout, lost connection): the block is asked for
    /// again; the holder rests after repeated failures.
    pub(super) fn fetch_lost(
        &mut self,
        ctx: &mut Context,
        root: BlockId,
        block: BlockId,
        node: NodeIdentity,
    ) {
        StorageStats::count(&self.stats.get_timeouts);
        let rest = ctx.now().instant + self.settings.get_timeout;
        let Some(f) = self.fetches.get_mut(&root) else {
            return;
        };
        f.in_flight.remove(&block);
        f.queue.push_front(block);
        if let Some(h) = f.holders.iter_mut().find(|h| h.node == node) {
            h.in_flight = h.in_flight.saturating_sub(1);
            h.failures += 1;
            if h.failures >= HOLDER_FAILURES {
                h.rests_until = Some(rest);
            }
        }
        self.fetch_pump(ctx, root);
    }

    /// A single-block lookup of the fetch's ended.
    pub(super) fn fetch_found(
        &mut self,
        ctx: &mut Context,
        root: BlockId,
        block: BlockId,
        result: Result<(VerifiedBlock, FoundAt), String>,
    ) {
        let Some(f) = self.fetches.get_mut(&root) else {
            return;
        };
        f.looking.remove(&block);
        match result {
            Ok((b, _)) if b.id() != block => {
                // The lookup checks this already; a wrong block is never stored.
                self.fetch_end(
                    ctx,
                    root,
                    Err(format!("a lookup of {block} gave another block")),
                )
            }
            Ok((b, at)) => {
                if at.hops > 0 {
                    self.fetch_add_holder(root, at.holder);
                }
                self.fetch_store(ctx, root, b, at);
            }
            Err(why) => self.fetch_end(ctx, root, Err(why)),
        }
    }

    /// Stores a fetched (checked) block and moves the fetch on.
    fn fetch_store(&mut self, ctx: &mut Context, root: BlockId, b: VerifiedBlock, at: FoundAt) {
        let Some(f) = self.fetches.get_mut(&root) else {
            return;
        };
        let (until, max_size) = (f.until, f.max_size);
        if b.id() == root {
            match b.block() {
                Block::Tree(t) if t.size > max_size => {
                    let why = format!(
                        "the object is {} bytes, over the limit of {max_size}",
                        t.size
                    );
                    return self.fetch_end(ctx, root, Err(why));
                }
                Block::Tree(t) => f.progress.size = Some(t.size),
                Block::Leaf(_) => {
                    return self.fetch_end(
                        ctx,
                        root,
                        Err("the root is a leaf, not an object".into()),
                    )
                }
            }
        }
        // Stored with the others that arrived in this burst, in one commit, at `flush`.
        f.storing.insert(b.id());
        self.batch.push(Batched {
            root,
            block: b,
            holder: at.holder,
            until,
        });
    }

    /// Commits the blocks fetched since the last flush — one transaction (one fsync) for the
    /// burst, instead of one per block — then moves their fetches on.
    pub(super) fn flush_fetched(&mut self, ctx: &mut Context) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        // Fetches differ in expiry: one commit per expiry (in practice one per fetch).
        let mut groups: BTreeMap<Timestamp, Vec<VerifiedBlock>> = BTreeMap::new();
        for b in &batch {
            groups.entry(b.until).or_default().push(b.block.clone());
        }
        let mut failed: BTreeMap<Timestamp, String> = BTreeMap::new();
        for (until, blocks) in groups {
            let bytes: usize = blocks.iter().map(|b| b.len()).sum();
            self.unsynced_bytes += bytes as u64;
            if let Err(e) = self.store.put_many_unsynced(&blocks, meta_of(until, 0)) {
                self.store_error(&e);
                failed.insert(until, e.to_string());
            }
        }
        if self.unsynced_bytes >= SYNC_EVERY_BYTES {
            self.sync_store();
        }
        let now = ctx.now().instant;
        let mut roots = BTreeSet::new();
        for b in batch {
            let Some(f) = self.fetches.get_mut(&b.root) else {
                continue;
            };
            f.storing.remove(&b.block.id());
            f.refused.remove(&b.block.id());
            if let Some(e) = failed.get(&b.until) {
                let why = format!("storing a block failed: {e}");
                self.fetch_end(ctx, b.root, Err(why));
                continue;
            }
            if let Some(h) = f.holders.iter_mut().find(|h| h.node == b.holder) {
                h.served += 1;
                h.failures = 0;
            }
            if let Block::Leaf(data) = b.block.block() {
                f.progress.bytes += data.len() as u64;
            }
            f.progress.blocks += 1;
            f.progress.fetched_bytes += b.block.len() as u64;
            f.last_block = now;
            StorageStats::count(&self.stats.fetched_blocks);
            roots.insert(b.root);
        }
        for root in roots {
            self.fetch_pump(ctx, root);
        }
    }

    /// Makes the blocks fetched so far durable.
    pub(super) fn sync_store(&mut self) {
        if self.unsynced_bytes == 0 {
            return;
        }
        self.unsynced_bytes = 0;
        if let Err(e) = self.store.sync() {
            self.store_error(&e);
        }
    }

    fn fetch_complete(&mut self, ctx: &mut Context, root: BlockId) {
        let size = match self.store.get(&root) {
            Ok(Some(b)) => match b.block() {
                Block::Tree(t) => Ok(t.size),
                Block::Leaf(_) => Err("the root is a leaf, not an object".to_string()),
            },
            Ok(None) => Err("the root went missing from the store".to_string()),
            Err(e) => Err(e.to_string()),
        };
        self.fetch_end(ctx, root, size);
    }

    /// Ends the fetch of `root`, answering its asker.
    pub(super) fn fetch_end(
        &mut self,
        ctx: &mut Context,
        root: BlockId,
        result: Result<u64, String>,
    ) {
        let Some(mut f) = self.fetches.remove(&root) else {
            return;
        };
        self.sync_store();
        StorageStats::count(if result.is_ok() {
            &self.stats.fetches_done
        } else {
            &self.stats.fetches_failed
        });
        self.forget_sent(|s| matches!(s, Sent::FetchGet { root: r, .. } if *r == root));
        let lookups: Vec<u64> = self
            .ops
            .iter()
            .filter(|(_, op)| op.fetch_root() == Some(root))
            .map(|(t, _)| *t)
            .collect();
        for t in lookups {
            self.drop_op(t);
        }
        f.progress.in_flight = 0;
        f.progress.holders = f.holders.iter().filter(|h| h.served > 0).count() as u32;
        if let Ok(size) = result {
            f.progress.size = Some(size);
        }
        let mail = StorageMail::FetchDone {
            root,
            result,
            progress: f.progress,
        };
        self.answer(ctx, f.asker, f.reply_to, mail);
    }

    /// Progress reports, stalled fetches, rested holders back at work.
    pub(super) fn fetch_tick(&mut self, ctx: &mut Context) {
        let now = ctx.now().instant;
        let stall = self.settings.get_timeout * 3;
        let roots: Vec<BlockId> = self.fetches.keys().copied().collect();
        for root in roots {
            let Some(f) = self.fetches.get_mut(&root) else {
                continue;
            };
            if now.duration_since(f.last_block) >= stall && f.looking.is_empty() {
                let why = format!(
                    "no block arrived for {} s ({} holders)",
                    stall.as_secs(),
                    f.holders.len()
                );
                self.fetch_end(ctx, root, Err(why));
                continue;
            }
            if f.next_progress <= now {
                f.next_progress = now + self.settings.progress_interval;
                let mail = StorageMail::FetchProgress {
                    root,
                    progress: f.progress,
                };
                let (asker, reply_to) = (f.asker, f.reply_to);
                self.answer(ctx, asker, reply_to, mail);
            }
            self.fetch_pump(ctx, root);
        }
    }
}

fn holder(node: NodeIdentity) -> HolderState {
    HolderState {
        node,
        in_flight: 0,
        served: 0,
        failures: 0,
        rests_until: None,
    }
}
