//! A domain's membership as a replicated set: the signed operation log and the member set
//! derived from it.
//!
//! The member set is a **pure function of the set of stored operations**: [`Membership`]
//! applies them in one deterministic total order — `(lamport, author, seq, id)` — each only if
//! it is valid at that point (see [`Membership::apply`]), starting from the advert's
//! introducers. Merging two replicas is the union of their operation sets, so two replicas
//! holding the same operations hold the same members, whatever order the operations arrived
//! in and however often (docs/domains.md gives the argument).
//!
//! What may enter the store is decided at insertion, by rules that also depend only on the
//! stored set: a valid signature, this domain, an author that is an introducer or named by a
//! stored `Add`, not beyond its expulsion cutoff, within the limits. An operation whose author
//! is not (yet) known waits in a small bounded pending set until the add naming its author
//! arrives. An expulsion purges the expelled member's later operations (and, in cascade, the
//! operations of authors known only through them), so replicas' stores converge too.
//!
//! Cost: operations that sort after everything applied are applied incrementally; one that
//! sorts earlier (a concurrent operation arriving late), or an expulsion, marks the set dirty,
//! and [`Membership::refresh`] replays the whole log once (at the engine's flush).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::ops::{Op, OpId, OpKind};
use super::wire::{VectorEntry, BATCH_OPS_BYTES, MAX_BATCH_OPS};
use crate::identity::{DomainIdentity, NodeIdentity};
use crate::wire::advert::{DomainAdvert, DomainAuth};

/// `seq` and `lamport` must be below this (2^62): a stored operation with a huge counter
/// would make every later one of this node overflow. The rule depends only on the operation.
pub const MAX_COUNTER: u64 = 1 << 62;

/// The limits of one domain's membership replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLimits {
    /// Most operations stored.
    pub max_ops: usize,
    /// Most operations stored from one author that is not an introducer.
    pub max_ops_per_author: usize,
    /// Most members (the advert's `max_members`, if lower, applies too).
    pub max_members: usize,
    /// Most operations waiting for their author's add.
    pub max_pending: usize,
}

/// Why an operation was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Its signature does not verify.
    BadSignature,
    /// It is for another domain.
    WrongDomain,
    /// `seq` or `lamport` 0 (both count from 1), or at least [`MAX_COUNTER`].
    Malformed,
    /// Its author is not a known member; held pending (`true`) or dropped (pending full).
    UnknownAuthor(bool),
    /// Its author was expelled and it comes after the cutoff.
    AfterExpulsion,
    /// The store holds `max_ops` operations.
    StoreFull,
    /// Its author holds `max_ops_per_author` operations.
    AuthorFull,
    /// Another operation with the same author and `seq` is stored and has the lower id (the
    /// author equivocated; the lower id is kept everywhere).
    Equivocation,
}

/// What inserting an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// It is new and stored.
    New,
    /// It was stored already.
    Duplicate,
}

/// One current member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The lamport of the newest live add (0 for an introducer).
    pub epoch: u64,
    /// The author of that add (the introducer itself for an introducer).
    pub approver: NodeIdentity,
    /// Whether it is an introducer (a member by the advert).
    pub introducer: bool,
    /// The member's value (its newest `Update`), if any.
    pub value: Option<Vec<u8>>,
    /// The live adds of the member: `(lamport, approver, approver's seq, id)`.
    tags: Vec<(u64, NodeIdentity, u64, OpId)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct AuthorEntry {
    max_seq: u64,
    count: u64,
    hash: u64,
}

type OrderKey = (u64, NodeIdentity, u64, OpId);

fn order_key(op: &Op) -> OrderKey {
    (op.lamport, op.author, op.seq, op.id())
}

fn id_prefix(id: &OpId) -> u64 {
    u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"))
}

/// One domain's membership replica: the operation log and the member set it implies.
#[derive(Debug)]
pub struct Membership {
    domain: DomainIdentity,
    introducers: BTreeSet<NodeIdentity>,
    allow: Option<BTreeSet<NodeIdentity>>,
    max_members: usize,
    limits: LogLimits,
    ops: BTreeMap<(NodeIdentity, u64), Arc<Op>>,
    authors: BTreeMap<NodeIdentity, AuthorEntry>,
    /// How many stored adds name each node.
    named: BTreeMap<NodeIdentity, u32>,
    /// Expelled members and the last of their own operations that counts.
    cutoffs: BTreeMap<NodeIdentity, u64>,
    pending: BTreeMap<OpId, Arc<Op>>,
    /// The pending ids in arrival order (ids no longer pending are skipped lazily).
    pending_order: std::collections::VecDeque<OpId>,
    /// Pending operations evicted (oldest first) to make room, ever.
    pending_evicted: u64,
    /// During a replay: the members expelled by an expulsion applied so far (an add of one
    /// of them that sorts after its expulsion is void; one that sorts before counts).
    expelled_now: BTreeSet<NodeIdentity>,
    xor: [u8; 32],
    max_lamport: u64,
    members: BTreeMap<NodeIdentity, Member>,
    last_applied: Option<OrderKey>,
    dirty: bool,
    generation: u64,
}

impl Membership {
    /// An empty log for `advert`'s domain: its members are the introducers.
    pub fn new(advert: &DomainAdvert, limits: LogLimits) -> Membership {
        let mut m = Membership {
            domain: advert.id,
            introducers: BTreeSet::new(),
            allow: None,
            max_members: limits.max_members,
            limits,
            ops: BTreeMap::new(),
            authors: BTreeMap::new(),
            named: BTreeMap::new(),
            cutoffs: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_order: std::collections::VecDeque::new(),
            pending_evicted: 0,
            expelled_now: BTreeSet::new(),
            xor: [0; 32],
            max_lamport: 0,
            members: BTreeMap::new(),
            last_applied: None,
            dirty: true,
            generation: 0,
        };
        m.set_advert(advert);
        m.refresh();
        m
    }

    /// Takes a newer advert of the same domain (introducers, allow-list, capacity); the
    /// members are recomputed at the next [`Membership::refresh`].
    pub fn set_advert(&mut self, advert: &DomainAdvert) {
        self.introducers = advert.introducers.iter().map(|i| i.node).collect();
        self.allow = match &advert.auth {
            DomainAuth::AllowList(l) => Some(l.iter().copied().collect()),
            _ => None,
        };
        self.max_members = match advert.max_members {
            0 => self.limits.max_members,
            n => (n.min(usize::MAX as u64) as usize).min(self.limits.max_members),
        };
        self.dirty = true;
    }

    /// The domain.
    pub fn domain(&self) -> DomainIdentity {
        self.domain
    }

    /// Whether `node` may author operations as far as the store goes: an introducer, or named
    /// by a stored add (whether that add counts is the replay's business).
    fn known(&self, node: &NodeIdentity) -> bool {
        self.introducers.contains(node) || self.named.contains_key(node)
    }

    /// Stores `op` if it may be stored (its signature is checked unless `verified`). A new
    /// add may release pending operations of the member it names; they are stored too, and
    /// returned in `released` so the caller can forward them.
    pub fn insert(
        &mut self,
        op: Arc<Op>,
        verified: bool,
        released: &mut Vec<Arc<Op>>,
    ) -> Result<Inserted, Refused> {
        let r = self.insert_one(op, verified)?;
        if r == Inserted::New && !self.pending.is_empty() {
            self.release_pending(released);
        }
        Ok(r)
    }

    fn release_pending(&mut self, released: &mut Vec<Arc<Op>>) {
        loop {
            let ready: Vec<OpId> = self
                .pending
                .iter()
                .filter(|(_, op)| self.known(&op.author))
                .map(|(id, _)| *id)
                .collect();
            if ready.is_empty() {
                return;
            }
            for id in ready {
                if let Some(op) = self.pending.remove(&id) {
                    if let Ok(Inserted::New) = self.insert_one(op.clone(), true) {
                        released.push(op);
                    }
                }
            }
        }
    }

    fn insert_one(&mut self, op: Arc<Op>, verified: bool) -> Result<Inserted, Refused> {
        if op.domain != self.domain {
            return Err(Refused::WrongDomain);
        }
        if op.seq == 0 || op.lamport == 0 || op.seq >= MAX_COUNTER || op.lamport >= MAX_COUNTER {
            return Err(Refused::Malformed);
        }
        let key = (op.author, op.seq);
        if let Some(stored) = self.ops.get(&key) {
            if stored.id() == op.id() {
                return Ok(Inserted::Duplicate);
            }
        } else if self.pending.contains_key(&op.id()) {
            return Ok(Inserted::Duplicate);
        }
        if self.cutoffs.get(&op.author).is_some_and(|c| op.seq > *c) {
            return Err(Refused::AfterExpulsion);
        }
        if !verified && !op.verify(&mut Vec::new()) {
            return Err(Refused::BadSignature);
        }
        if let Some(stored) = self.ops.get(&key) {
            if stored.id() < op.id() {
                return Err(Refused::Equivocation);
            }
            // The new one has the lower id: it replaces the stored one.
            let old = stored.clone();
            self.remove_stored(&old);
            self.dirty = true;
        }
        if !self.known(&op.author) {
            if self.limits.max_pending == 0 {
                return Err(Refused::UnknownAuthor(false));
            }
            // Full: the oldest pending operation goes, so junk cannot hold the set forever
            // (an evicted operation comes back by anti-entropy once its author is known).
            while self.pending.len() >= self.limits.max_pending {
                let Some(old) = self.pending_order.pop_front() else {
                    break;
                };
                if self.pending.remove(&old).is_some() {
                    self.pending_evicted += 1;
                }
            }
            if self.pending_order.len() >= 2 * self.limits.max_pending {
                let pending = &self.pending;
                self.pending_order.retain(|id| pending.contains_key(id));
            }
            self.pending_order.push_back(op.id());
            self.pending.insert(op.id(), op);
            return Err(Refused::UnknownAuthor(true));
        }
        if self.ops.len() >= self.limits.max_ops {
            return Err(Refused::StoreFull);
        }
        if !self.introducers.contains(&op.author)
            && self
                .authors
                .get(&op.author)
                .is_some_and(|a| a.count as usize >= self.limits.max_ops_per_author)
        {
            return Err(Refused::AuthorFull);
        }
        self.store(op.clone());
        // An expulsion by an introducer sets (or lowers) the expelled member's cutoff.
        if let OpKind::Remove {
            member, cutoff_seq, ..
        } = &op.kind
        {
            if *member != op.author
                && self.introducers.contains(&op.author)
                && !self.introducers.contains(member)
                && self.cutoffs.get(member).is_none_or(|c| *cutoff_seq < *c)
            {
                self.cutoffs.insert(*member, *cutoff_seq);
                self.purge_after_cutoff(*member, *cutoff_seq);
                self.dirty = true;
            }
        }
        if !self.dirty {
            let k = order_key(&op);
            if self.last_applied.is_none_or(|last| k > last) {
                self.apply(&op);
                self.last_applied = Some(k);
            } else {
                self.dirty = true;
            }
        }
        Ok(Inserted::New)
    }

    fn store(&mut self, op: Arc<Op>) {
        let a = self.authors.entry(op.author).or_default();
        a.max_seq = a.max_seq.max(op.seq);
        a.count += 1;
        a.hash ^= id_prefix(&op.id());
        for (x, b) in self.xor.iter_mut().zip(op.id().0) {
            *x ^= b;
        }
        self.max_lamport = self.max_lamport.max(op.lamport);
        if let OpKind::Add { member, .. } = &op.kind {
            *self.named.entry(*member).or_default() += 1;
        }
        self.ops.insert((op.author, op.seq), op);
    }

    fn remove_stored(&mut self, op: &Op) {
        if self.ops.remove(&(op.author, op.seq)).is_none() {
            return;
        }
        for (x, b) in self.xor.iter_mut().zip(op.id().0) {
            *x ^= b;
        }
        if let Some(a) = self.authors.get_mut(&op.author) {
            a.count -= 1;
            a.hash ^= id_prefix(&op.id());
            if a.count == 0 {
                self.authors.remove(&op.author);
            } else {
                a.max_seq = self
                    .ops
                    .range((op.author, 0)..=(op.author, u64::MAX))
                    .next_back()
                    .map(|((_, s), _)| *s)
                    .unwrap_or(0);
            }
        }
        if let OpKind::Add { member, .. } = &op.kind {
            if let Some(n) = self.named.get_mut(member) {
                *n -= 1;
                if *n == 0 {
                    self.named.remove(member);
                }
            }
        }
    }

    /// Drops the expelled `member`'s operations after `cutoff`, then, in cascade, every
    /// operation whose author is no longer known.
    fn purge_after_cutoff(&mut self, member: NodeIdentity, cutoff: u64) {
        let void: Vec<Arc<Op>> = self
            .ops
            .range((member, cutoff.saturating_add(1))..=(member, u64::MAX))
            .map(|(_, op)| op.clone())
            .collect();
        for op in &void {
            self.remove_stored(op);
        }
        loop {
            let orphans: Vec<Arc<Op>> = self
                .ops
                .values()
                .filter(|op| !self.known(&op.author))
                .cloned()
                .collect();
            if orphans.is_empty() {
                break;
            }
            for op in &orphans {
                self.remove_stored(op);
            }
        }
        self.pending
            .retain(|_, op| op.author != member || op.seq <= cutoff);
    }

    /// Applies `op` to the member set at its place in the total order: only if it is valid
    /// there.
    ///
    /// * An operation of an expelled member after its cutoff is void (they are purged from
    ///   the store, so this only guards a replay racing the purge).
    /// * The author must be a current member (introducers always are).
    /// * `Add` of a node: not expelled by an expulsion applied earlier in the order, admitted by the allow-list, and, if it is not a
    ///   member yet, only while the domain is below its capacity.
    /// * `Remove` of the author itself (a leave) drops the adds it observed; the member goes
    ///   when no live add is left (add wins). `Remove` of another member only by an
    ///   introducer (an expulsion): the member goes for good. Introducers cannot be removed.
    /// * `Update` sets the author's value (the last in the order wins).
    fn apply(&mut self, op: &Op) -> bool {
        if self.cutoffs.get(&op.author).is_some_and(|c| op.seq > *c) {
            return false;
        }
        if !self.members.contains_key(&op.author) {
            return false;
        }
        match &op.kind {
            OpKind::Add { member, .. } => {
                // Void only after the expulsion's place in the order: the adds before it
                // (and so what the expelled member did before its cutoff) still count.
                if self.expelled_now.contains(member) {
                    return false;
                }
                if let Some(allow) = &self.allow {
                    if !allow.contains(member) && !self.introducers.contains(member) {
                        return false;
                    }
                }
                let tag = (op.lamport, op.author, op.seq, op.id());
                match self.members.get_mut(member) {
                    Some(m) => {
                        m.tags.push(tag);
                        if !m.introducer {
                            m.epoch = op.lamport;
                            m.approver = op.author;
                        }
                    }
                    None => {
                        if self.members.len() >= self.max_members {
                            return false;
                        }
                        self.members.insert(
                            *member,
                            Member {
                                epoch: op.lamport,
                                approver: op.author,
                                introducer: false,
                                value: None,
                                tags: vec![tag],
                            },
                        );
                    }
                }
                self.generation += 1;
                true
            }
            OpKind::Remove {
                member, observed, ..
            } => {
                if self.introducers.contains(member) {
                    return false;
                }
                if *member == op.author {
                    let Some(m) = self.members.get_mut(member) else {
                        return false;
                    };
                    m.tags.retain(|(_, _, _, id)| !observed.contains(id));
                    if m.tags.is_empty() {
                        self.members.remove(member);
                    } else if let Some((l, a, _, _)) = m.tags.iter().max().copied() {
                        m.epoch = l;
                        m.approver = a;
                    }
                    self.generation += 1;
                    true
                } else if self.introducers.contains(&op.author) {
                    self.members.remove(member);
                    self.expelled_now.insert(*member);
                    self.generation += 1;
                    true
                } else {
                    false
                }
            }
            OpKind::Update { value } => {
                let Some(m) = self.members.get_mut(&op.author) else {
                    return false;
                };
                m.value = Some(value.clone());
                self.generation += 1;
                true
            }
        }
    }

    /// Replays the whole log if it is dirty. Returns whether the member set may have changed
    /// since the last call (compare [`Membership::generation`]).
    pub fn refresh(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        self.members.clear();
        self.expelled_now.clear();
        for i in &self.introducers {
            self.members.insert(
                *i,
                Member {
                    epoch: 0,
                    approver: *i,
                    introducer: true,
                    value: None,
                    tags: Vec::new(),
                },
            );
        }
        let mut order: Vec<Arc<Op>> = self.ops.values().cloned().collect();
        order.sort_by_key(|op| order_key(op));
        for op in &order {
            self.apply(op);
        }
        self.last_applied = order.last().map(|op| order_key(op));
        self.generation += 1;
    }

    /// Increases whenever the member set (or a member's value) may have changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a replay is due.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The current members (as of the last refresh or incremental apply).
    pub fn members(&self) -> &BTreeMap<NodeIdentity, Member> {
        &self.members
    }

    /// Whether `node` is a current member.
    pub fn is_member(&self, node: &NodeIdentity) -> bool {
        self.members.contains_key(node)
    }

    /// Whether `node` was expelled.
    pub fn is_expelled(&self, node: &NodeIdentity) -> bool {
        self.cutoffs.contains_key(node)
    }

    /// Whether the domain admits another member now.
    pub fn has_room(&self) -> bool {
        self.members.len() < self.max_members
    }

    /// The members' set, sorted.
    pub fn member_set(&self) -> BTreeSet<NodeIdentity> {
        self.members.keys().copied().collect()
    }

    /// SHA-256 of the sorted member identities.
    pub fn member_digest(&self) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for m in self.members.keys() {
            ctx.update(&m.0);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// How many operations are stored.
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }

    /// How many operations wait for their author's add.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// How many pending operations were evicted (oldest first) to make room, ever.
    pub fn pending_evicted(&self) -> u64 {
        self.pending_evicted
    }

    /// `(count, XOR of ids)` of the stored operations: equal for equal sets (and, but for
    /// crafted collisions, only for them).
    pub fn digest(&self) -> (u64, [u8; 32]) {
        (self.ops.len() as u64, self.xor)
    }

    /// The highest lamport stored.
    pub fn max_lamport(&self) -> u64 {
        self.max_lamport
    }

    /// The highest sequence number stored of `author`.
    pub fn max_seq_of(&self, author: &NodeIdentity) -> u64 {
        self.authors.get(author).map_or(0, |a| a.max_seq)
    }

    /// The live add operations of `member` (for a leave's `observed`).
    pub fn live_adds_of(&self, member: &NodeIdentity) -> Vec<OpId> {
        self.members
            .get(member)
            .map(|m| m.tags.iter().map(|(_, _, _, id)| *id).collect())
            .unwrap_or_default()
    }

    /// The newest live add of `member` (none for an introducer or a non-member).
    pub fn newest_live_add(&self, member: &NodeIdentity) -> Option<Arc<Op>> {
        let m = self.members.get(member)?;
        let (_, author, seq, _) = m.tags.iter().max()?;
        self.ops.get(&(*author, *seq)).cloned()
    }

    /// The version vector: one entry per author, in author order.
    ///
    /// Each entry describes the **contiguous run** of the author's operations held from
    /// sequence number 1: `max_seq` is its end, `count` equals it, and `hash` covers those
    /// operations only. An author whose operations have gaps here (later ones arrived by push
    /// before earlier ones) is described by the run before the first gap, so the peer sends
    /// from the first missing sequence number on — each batch then fills the lowest gap, and
    /// repeated exchanges make progress however many operations the author has (before, every
    /// batch restarted at 1 and an author with more than one batch of operations was never
    /// completed: found by the simulator, docs/simulation.md).
    pub fn vector(&self) -> Vec<VectorEntry> {
        self.authors
            .iter()
            .map(|(author, a)| {
                if a.count == a.max_seq {
                    return VectorEntry {
                        author: *author,
                        max_seq: a.max_seq,
                        count: a.count,
                        hash: a.hash,
                    };
                }
                let (mut end, mut hash) = (0u64, 0u64);
                for (&(_, seq), op) in self.ops.range((*author, 1)..=(*author, u64::MAX)) {
                    if seq != end + 1 {
                        break;
                    }
                    end = seq;
                    hash ^= id_prefix(&op.id());
                }
                VectorEntry {
                    author: *author,
                    max_seq: end,
                    count: end,
                    hash,
                }
            })
            .collect()
    }

    /// The operations a replica with version vector `theirs` lacks, at most one batch
    /// ([`MAX_BATCH_OPS`] operations, [`BATCH_OPS_BYTES`] bytes). For an author whose
    /// operations the peer holds contiguously from 1 and whose hash matches ours up to its
    /// `max_seq`, only the later ones; otherwise all of the author's.
    pub fn missing_for(&self, theirs: &[VectorEntry]) -> Vec<Arc<Op>> {
        let theirs: BTreeMap<NodeIdentity, &VectorEntry> =
            theirs.iter().map(|e| (e.author, e)).collect();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (author, mine) in &self.authors {
            let from = match theirs.get(author) {
                None => 1,
                Some(t) if t.max_seq == mine.max_seq && t.count == mine.count => {
                    if t.hash == mine.hash {
                        continue;
                    }
                    1
                }
                // A peer that claims nothing of this author (a hostile `max_seq` 0 or
                // `count` 0) gets everything (and no empty, panicking range is asked for).
                Some(t) if t.max_seq == 0 || t.count == 0 => 1,
                Some(t) => {
                    let prefix_hash = self
                        .ops
                        .range((*author, 1)..=(*author, t.max_seq))
                        .fold(0u64, |h, (_, op)| h ^ id_prefix(&op.id()));
                    if t.count == t.max_seq && prefix_hash == t.hash {
                        t.max_seq.saturating_add(1)
                    } else {
                        1
                    }
                }
            };
            for (_, op) in self.ops.range((*author, from)..=(*author, u64::MAX)) {
                let len = op.wire_len();
                if out.len() >= MAX_BATCH_OPS || (bytes + len > BATCH_OPS_BYTES && !out.is_empty())
                {
                    return out;
                }
                bytes += len;
                out.push(op.clone());
            }
        }
        out
    }

    /// Every stored operation, in the total order (newest last), at most `max`: the newest.
    pub fn newest(&self, max: usize) -> Vec<Arc<Op>> {
        let mut order: Vec<Arc<Op>> = self.ops.values().cloned().collect();
        order.sort_by_key(|op| order_key(op));
        let skip = order.len().saturating_sub(max);
        order.split_off(skip)
    }

    /// What a join response carries: the adds that make `approver` a member (and, in turn,
    /// those of their approvers, at most 32), then the newest operations, at most one batch.
    pub fn join_batch(&self, approver: &NodeIdentity) -> Vec<Arc<Op>> {
        let mut out: Vec<Arc<Op>> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut todo = vec![*approver];
        let mut bytes = 0usize;
        while let Some(node) = todo.pop() {
            if out.len() >= 32 {
                break;
            }
            let Some(m) = self.members.get(&node) else {
                continue;
            };
            for (_, author, seq, id) in &m.tags {
                if let Some(op) = self.ops.get(&(*author, *seq)) {
                    if seen.insert(*id) {
                        bytes += op.wire_len();
                        out.push(op.clone());
                        todo.push(*author);
                    }
                }
            }
        }
        for op in self.newest(MAX_BATCH_OPS).into_iter().rev() {
            if out.len() >= MAX_BATCH_OPS || bytes + op.wire_len() > BATCH_OPS_BYTES {
                break;
            }
            if seen.insert(op.id()) {
                bytes += op.wire_len();
                out.push(op);
            }
        }
        out
    }

    /// Every stored operation, in `(author, seq)` order.
    pub fn ops(&self) -> impl Iterator<Item = &Arc<Op>> {
        self.ops.values()
    }

    /// The operations waiting for their author's add.
    pub fn pending(&self) -> impl Iterator<Item = &Arc<Op>> {
        self.pending.values()
    }

    /// The expelled members and their cutoffs.
    pub fn cutoffs(&self) -> &BTreeMap<NodeIdentity, u64> {
        &self.cutoffs
    }
}
