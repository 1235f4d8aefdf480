//! Looking blocks up (`BlockLookupRequest`): the store, the cache, direct gets to known
//! holders one at a time, then the searches — `BlockSearchTopic` up a topic's tree and
//! `BlockSearchRandom` random walks — and relaying other nodes' searches and their results
//! back along the recorded path, caching on the way.

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use super::{Sent, StorageEngine, StorageStats};
use crate::identity::{EngineIdentity, NodeIdentity};
use crate::mail::identity::{IdentityRequest, IdentityUpdate};
use crate::mail::storage::{FoundAt, Lookup, StorageMail};
use crate::runtime::Context;
use crate::storage::block::{BlockId, VerifiedBlock};
use crate::storage::wire::{Found, GetAnswer, Search, SearchScope, StorageMessage, MAX_PATH};
use crate::wire::MessageId;

/// Who waits for a lookup's answer.
#[derive(Clone, Copy, Debug)]
pub(super) enum Waiter {
    /// A local engine's `Get`.
    Local {
        asker: EngineIdentity,
        reply_to: MessageId,
    },
    /// A fetch that needs `block` of the object under `root` and knows no holder of it.
    Fetch { root: BlockId, block: BlockId },
}

/// A lookup under way.
pub(super) struct GetOp {
    id: BlockId,
    waiter: Waiter,
    lookup: Lookup,
    /// Nodes still to ask directly, in order.
    candidates: VecDeque<NodeIdentity>,
    tried: BTreeSet<NodeIdentity>,
    /// Whether a direct get is in flight.
    asking: bool,
    /// Whether the searches have been started.
    searched: bool,
    /// When the searches give up.
    pub(super) search_deadline: Option<Instant>,
    /// Search ids of this lookup's walkers.
    search_ids: Vec<u64>,
}

impl GetOp {
    /// The block looked up.
    pub(super) fn id(&self) -> BlockId {
        self.id
    }

    /// The root of the fetch this lookup serves, if it serves one.
    pub(super) fn fetch_root(&self) -> Option<BlockId> {
        match self.waiter {
            Waiter::Fetch { root, .. } => Some(root),
            Waiter::Local { .. } => None,
        }
    }
}

/// Where the results of a relayed search go back: to `prev`, if they come from `next`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Relay {
    prev: NodeIdentity,
    next: NodeIdentity,
    pub(super) deadline: Instant,
}

/// Most holders one lookup asks directly (named, known from receipts, or named by `Holders`
/// answers): with `get_timeout` each, a lookup's direct phase lasts at most 16 × 5 s.
pub const MAX_LOOKUP_HOLDERS: usize = 16;

/// Most relay entries kept for one search at one node (walkers of one search that pass here).
const MAX_RELAYS_PER_SEARCH: usize = 8;

impl StorageEngine {
    /// Starts a lookup of `id` for `waiter`.
    pub(super) fn start_get(
        &mut self,
        ctx: &mut Context,
        id: BlockId,
        lookup: Lookup,
        waiter: Waiter,
    ) {
        StorageStats::count(&self.stats.gets);
        let me = self.me;
        if let Ok(Some((b, _))) = self.servable(ctx, &id, &[]) {
            let cached = !self.store.contains(&id).unwrap_or(false);
            StorageStats::count(if cached {
                &self.stats.cache_hits
            } else {
                &self.stats.local_hits
            });
            let at = FoundAt {
                holder: me,
                hops: 0,
                cached,
            };
            return self.finish(ctx, waiter, id, Ok((b, at)));
        }
        if matches!(waiter, Waiter::Local { .. })
            && self.ops.len() >= self.settings.limits.max_pending
        {
            StorageStats::count(&self.stats.pending_full);
            let why = "too many lookups outstanding here".to_string();
            return self.finish(ctx, waiter, id, Err(why));
        }
        let mut candidates: VecDeque<NodeIdentity> = VecDeque::new();
        let known = self.holders.receipts(&id, ctx.now().wall, None, usize::MAX);
        for n in lookup
            .from
            .iter()
            .copied()
            .chain(known.iter().map(|c| c.node))
        {
            if n != me && !candidates.contains(&n) && candidates.len() < MAX_LOOKUP_HOLDERS {
                candidates.push_back(n);
            }
        }
        let token = self.token();
        self.ops.insert(
            token,
            GetOp {
                id,
                waiter,
                lookup,
                candidates,
                tried: BTreeSet::new(),
                asking: false,
                searched: false,
                search_deadline: None,
                search_ids: Vec::new(),
            },
        );
        self.op_next(ctx, token);
    }

    /// Moves lookup `token` on: the next direct holder, else the searches, else failure.
    pub(super) fn op_next(&mut self, ctx: &mut Context, token: u64) {
        let Some(op) = self.ops.get_mut(&token) else {
            return;
        };
        op.asking = false;
        while let Some(n) = op.candidates.pop_front() {
            if op.tried.insert(n) {
                op.asking = true;
                let msg = StorageMessage::Get {
                    id: op.id,
                    holders: true,
                };
                self.request(ctx, n, &msg, Sent::OpGet { op: token });
                return;
            }
        }
        if !op.searched {
            op.searched = true;
            let (id, lookup) = (op.id, op.lookup.clone());
            let started = self.start_searches(ctx, token, id, &lookup);
            if started > 0 {
                let at = ctx.now().instant + self.settings.search_timeout;
                if let Some(op) = self.ops.get_mut(&token) {
                    op.search_deadline = Some(at);
                }
                return;
            }
        }
        let Some(op) = self.ops.get(&token) else {
            return;
        };
        if op.search_deadline.is_some() {
            return; // the searches are still out
        }
        let why = if op.tried.is_empty() && !op.lookup.random && op.lookup.topic.is_none() {
            format!(
                "block {} is not held here, and no holder or search was given",
                op.id
            )
        } else {
            format!(
                "block {} not found ({} holders asked{})",
                op.id,
                op.tried.len(),
                if op.searched && (op.lookup.random || op.lookup.topic.is_some()) {
                    ", searches found nothing"
                } else {
                    ""
                }
            )
        };
        StorageStats::count(&self.stats.not_found);
        self.end_op(ctx, token, Err(why));
    }

    /// A direct get's answer.
    pub(super) fn op_reply(
        &mut self,
        ctx: &mut Context,
        token: u64,
        via: NodeIdentity,
        id: BlockId,
        answer: GetAnswer,
    ) {
        let Some(op) = self.ops.get_mut(&token) else {
            return;
        };
        if op.id != id {
            self.hostile(&self.stats.unsolicited, "a reply for another block", via);
            return self.op_next(ctx, token);
        }
        match answer {
            GetAnswer::Block(bytes) => match VerifiedBlock::check(id, &bytes) {
                Ok(b) => {
                    StorageStats::count(&self.stats.direct_hits);
                    self.holders.success(&id, via, ctx.now().wall);
                    let at = FoundAt {
                        holder: via,
                        hops: 1,
                        cached: false,
                    };
                    return self.end_op(ctx, token, Ok((b, at)));
                }
                Err(e) => self.hostile(&self.stats.bad_block, &format!("a block ({e})"), via),
            },
            GetAnswer::Holders(list) => {
                let now = ctx.now().wall;
                for c in list {
                    if c.block == id && c.check(now).is_ok() {
                        self.holders.add(c);
                        if let Some(op) = self.ops.get_mut(&token) {
                            let room = op.tried.len() + op.candidates.len() < MAX_LOOKUP_HOLDERS;
                            if room
                                && c.node != self.me
                                && !op.tried.contains(&c.node)
                                && !op.candidates.contains(&c.node)
                            {
                                op.candidates.push_front(c.node);
                            }
                        }
                    } else {
                        self.hostile(&self.stats.bad_receipt, "a holder's receipt", via);
                    }
                }
            }
            GetAnswer::NotFound | GetAnswer::Refused(..) => {}
        }
        self.op_next(ctx, token);
    }

    /// Ends lookup `token`: its searches are forgotten, its waiter answered.
    fn end_op(
        &mut self,
        ctx: &mut Context,
        token: u64,
        result: Result<(VerifiedBlock, FoundAt), String>,
    ) {
        let Some(op) = self.ops.remove(&token) else {
            return;
        };
        for s in &op.search_ids {
            self.searches.remove(s);
        }
        // A direct get still in flight is answered into nothing: drop its entry.
        self.forget_sent(|s| matches!(s, Sent::OpGet { op } if *op == token));
        self.finish(ctx, op.waiter, op.id, result);
    }

    /// Forgets lookup `token` without answering (its fetch ended).
    pub(super) fn drop_op(&mut self, token: u64) {
        if let Some(op) = self.ops.remove(&token) {
            for s in &op.search_ids {
                self.searches.remove(s);
            }
            self.forget_sent(|s| matches!(s, Sent::OpGet { op } if *op == token));
        }
    }

    /// Hands a lookup's result to its waiter.
    fn finish(
        &mut self,
        ctx: &mut Context,
        waiter: Waiter,
        id: BlockId,
        result: Result<(VerifiedBlock, FoundAt), String>,
    ) {
        match waiter {
            Waiter::Local { asker, reply_to } => {
                let result = result.map(|(b, at)| (b.bytes().to_vec(), at));
                self.answer(ctx, asker, reply_to, StorageMail::GetDone { id, result });
            }
            Waiter::Fetch { root, block } => self.fetch_found(ctx, root, block, result),
        }
    }

    /// The nodes a walk may go to next from here: the domain's members, or the connected
    /// nodes; never this node or one already on `path`.
    fn walk_candidates(&self, scope: &SearchScope, path: &[NodeIdentity]) -> Vec<NodeIdentity> {
        let pool: Vec<NodeIdentity> = match scope {
            SearchScope::Random(Some(d)) => self
                .directory
                .entry(d)
                .map(|e| e.members.into_iter().collect())
                .unwrap_or_default(),
            SearchScope::Random(None) => self.connected.iter().copied().collect(),
            SearchScope::Topic(t) => self.parents.parents(t),
        };
        pool.into_iter()
            .filter(|n| *n != self.me && !path.contains(n))
            .collect()
    }

    /// Picks `k` distinct nodes of `from` at random.
    fn pick(&mut self, mut from: Vec<NodeIdentity>, k: usize) -> Vec<NodeIdentity> {
        let mut out = Vec::with_capacity(k.min(from.len()));
        while out.len() < k && !from.is_empty() {
            let i = self.rng.below(from.len() as u64) as usize;
            out.push(from.swap_remove(i));
        }
        out
    }

    /// Starts the searches `lookup` asks for; how many walkers went out.
    fn start_searches(
        &mut self,
        ctx: &mut Context,
        token: u64,
        id: BlockId,
        lookup: &Lookup,
    ) -> usize {
        let mut scopes = Vec::new();
        if let Some(t) = lookup.topic {
            scopes.push((SearchScope::Topic(t), usize::MAX));
        }
        if lookup.random {
            scopes.push((
                SearchScope::Random(lookup.domain),
                self.settings.fanout.max(1),
            ));
        }
        let hop_limit = self.settings.hop_limit.clamp(1, MAX_PATH);
        let mut started = 0;
        for (scope, fanout) in scopes {
            let next = self.walk_candidates(&scope, &[self.me]);
            for n in self.pick(next, fanout) {
                let search = self.rng.next_u64();
                self.searches.insert(search, token);
                if let Some(op) = self.ops.get_mut(&token) {
                    op.search_ids.push(search);
                }
                let msg = StorageMessage::Search(Search {
                    search,
                    id,
                    scope,
                    ttl: (hop_limit - 1).min(u8::MAX as usize) as u8,
                    path: vec![self.me],
                });
                StorageStats::count(&self.stats.searches_started);
                self.send_remote(ctx, n, &msg, false, None);
                started += 1;
            }
        }
        started
    }

    /// A search from `via`: answer it if the block is here, else pass it on.
    pub(super) fn on_search(&mut self, ctx: &mut Context, via: NodeIdentity, s: Search) {
        let hop_limit = self.settings.hop_limit.clamp(1, MAX_PATH);
        let looping = s.path.contains(&self.me)
            || s.path.iter().collect::<BTreeSet<_>>().len() != s.path.len();
        if s.path.last() != Some(&via) || looping || s.path.len() > hop_limit {
            return self.hostile(&self.stats.bad_path, "a search path", via);
        }
        let per_s = self.settings.limits.searches_per_peer_s;
        if !self.search_rate.allow(ctx.now().wall.0, via, per_s) {
            return self.hostile(&self.stats.rate_limited, "searches over the rate", via);
        }
        let origin = s.path[0];
        match self.servable(ctx, &s.id, &[via, origin]) {
            Ok(Some((b, min_trust))) => {
                StorageStats::count(&self.stats.searches_answered);
                let mut path = s.path.clone();
                path.push(self.me);
                path.reverse();
                let f = Found {
                    search: s.search,
                    origin,
                    id: s.id,
                    holder: self.me,
                    holder_advert: self.own_advert(),
                    path,
                    min_trust,
                    bytes: b.bytes().to_vec(),
                };
                self.send_remote(ctx, via, &StorageMessage::Found(f), false, None);
                return;
            }
            Err(_) => {
                // Held, but not for this requester: counted, and the walk ends here (passing
                // it on would only find another copy it may not have either).
                StorageStats::count(&self.stats.refused_trust);
                return;
            }
            Ok(None) => {}
        }
        if s.ttl == 0 || s.path.len() >= hop_limit {
            StorageStats::count(&self.stats.search_exhausted);
            return;
        }
        let mut next = self.walk_candidates(&s.scope, &s.path);
        if next.is_empty() {
            StorageStats::count(&self.stats.dead_end);
            return;
        }
        if self.relay_count >= self.settings.limits.max_relayed {
            self.expire_relays(ctx.now().instant);
            if self.relay_count >= self.settings.limits.max_relayed {
                StorageStats::count(&self.stats.relay_full);
                return;
            }
        }
        let n = if next.len() == 1 {
            next.pop().expect("one candidate")
        } else {
            let i = self.rng.below(next.len() as u64) as usize;
            next.swap_remove(i)
        };
        let entry = self.relays.entry((origin, s.search)).or_default();
        if entry.len() >= MAX_RELAYS_PER_SEARCH {
            StorageStats::count(&self.stats.relay_full);
            return;
        }
        entry.push(Relay {
            prev: via,
            next: n,
            deadline: ctx.now().instant + self.settings.search_timeout,
        });
        self.relay_count += 1;
        if self.relay_sweep.is_none() {
            self.relay_sweep = Some(ctx.now().instant + self.settings.search_timeout);
        }
        let mut path = s.path;
        path.push(self.me);
        let fwd = Search {
            search: s.search,
            id: s.id,
            scope: s.scope,
            ttl: s.ttl - 1,
            path,
        };
        StorageStats::count(&self.stats.searches_forwarded);
        self.send_remote(ctx, n, &StorageMessage::Search(fwd), false, None);
    }

    /// A search result from `via`: this node's own (answer the lookup) or one to relay.
    pub(super) fn on_found(&mut self, ctx: &mut Context, via: NodeIdentity, f: Found) {
        let Some(pos) = f.path.iter().position(|n| *n == self.me) else {
            return self.hostile(&self.stats.bad_path, "a result path without this node", via);
        };
        if pos == 0 || f.path[pos - 1] != via || f.path[0] != f.holder {
            return self.hostile(&self.stats.bad_path, "a result path", via);
        }
        if pos == f.path.len() - 1 {
            // This node's own search.
            if f.origin != self.me {
                return self.hostile(&self.stats.bad_path, "a result for another origin", via);
            }
            let Some(token) = self.searches.get(&f.search).copied() else {
                StorageStats::count(&self.stats.found_late);
                return;
            };
            if self.ops.get(&token).is_none_or(|op| op.id != f.id) {
                return self.hostile(&self.stats.bad_block, "a result for another block", via);
            }
            let block = match VerifiedBlock::check(f.id, &f.bytes) {
                Ok(b) => b,
                Err(e) => {
                    return self.hostile(&self.stats.bad_block, &format!("a result ({e})"), via)
                }
            };
            StorageStats::count(&self.stats.search_hits);
            // The holder's advert lets this node reach it directly (the identity store checks
            // the signature; one naming another node is ignored).
            if let Some(a) = f.holder_advert.clone().filter(|a| a.id == f.holder) {
                let update = IdentityUpdate::NodeAdvert(a);
                ctx.identity_request(IdentityRequest::Update(update));
            }
            let at = FoundAt {
                holder: f.holder,
                hops: (f.path.len() - 1) as u32,
                cached: false,
            };
            if self.cache.insert(block.clone(), f.min_trust) {
                StorageStats::count(&self.stats.cached);
            }
            return self.end_op(ctx, token, Ok((block, at)));
        }
        let prev = f.path[pos + 1];
        let key = (f.origin, f.search);
        let Some(i) = self
            .relays
            .get(&key)
            .and_then(|list| list.iter().position(|r| r.next == via && r.prev == prev))
        else {
            return self.hostile(&self.stats.unsolicited, "a result", via);
        };
        // Checked before it is cached or passed on (and only once a relay entry wants it).
        let block = match VerifiedBlock::check(f.id, &f.bytes) {
            Ok(b) => b,
            Err(e) => return self.hostile(&self.stats.bad_block, &format!("a result ({e})"), via),
        };
        if let Some(list) = self.relays.get_mut(&key) {
            list.swap_remove(i);
            if list.is_empty() {
                self.relays.remove(&key);
            }
        }
        self.relay_count -= 1;
        if self.cache.insert(block, f.min_trust) {
            StorageStats::count(&self.stats.cached);
        }
        StorageStats::count(&self.stats.found_relayed);
        self.send_remote(ctx, prev, &StorageMessage::Found(f), false, None);
    }

    /// Fails lookups whose searches ran out of time.
    pub(super) fn expire_lookups(&mut self, ctx: &mut Context) {
        let now = ctx.now().instant;
        let due: Vec<u64> = self
            .ops
            .iter()
            .filter(|(_, op)| op.search_deadline.is_some_and(|t| t <= now))
            .map(|(t, _)| *t)
            .collect();
        for token in due {
            if let Some(op) = self.ops.get_mut(&token) {
                op.search_deadline = None;
                if op.asking {
                    continue; // a direct get (a holder a search named) is still out
                }
            }
            self.op_next(ctx, token);
        }
    }

    /// Forgets relay entries past their deadline.
    pub(super) fn expire_relays(&mut self, now: Instant) {
        let mut gone = 0;
        self.relays.retain(|_, list| {
            let before = list.len();
            list.retain(|r| r.deadline > now);
            gone += before - list.len();
            !list.is_empty()
        });
        self.relay_count -= gone;
        self.relay_sweep = self.relays.values().flatten().map(|r| r.deadline).min();
    }
}
