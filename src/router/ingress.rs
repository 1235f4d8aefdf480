//! Ingress: how the Router admits messages from other nodes — cheap checks first, signature
//! verification in batches, replay state committed only for verified messages.
//!
//! For each wire message, in order:
//! 1. decode (bounded; malformed → `malformed` / `unknown_version`);
//! 2. the source node must be the authenticated peer it came from (no relaying in this version);
//! 3. the expiry must be present, not passed, and at most [`IngressLimits::max_lifetime`] ahead
//!    (so replay state can be forgotten once every message it protects has expired);
//! 4. the (source engine, destination) replay window must not have seen the id
//!    (`duplicate`, or `replay` when older than the window) — before any signature work;
//! 5. the source key comes from a cache of parsed, checked keys (weak / invalid keys refused once
//!    and remembered);
//! 6. the message joins the pending batch. [`Ingress::flush`] verifies the batch (one
//!    multi-scalar multiplication; single checks only if it fails), then commits each verified
//!    id to its window, which also drops a duplicate that arrived within the same batch.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::identity::{CheckedKey, EngineIdentity, KeyError, NodeIdentity};
use crate::mail::Receipt;
use crate::runtime::stats::{DropReason, NodeStats};
use crate::time::Now;
use crate::wire::message::{BatchVerifier, Unverified};
use crate::wire::{Destination, EngineMessage, MessageId, Verified, WireError};

/// Limits of the ingress path.
#[derive(Clone, Copy, Debug)]
pub struct IngressLimits {
    /// Most messages verified in one batch (default 64).
    pub max_batch: usize,
    /// Furthest ahead a remote message's expiry may be (default 10 min). Replay state for a
    /// (source, destination) pair is forgotten after this long without traffic.
    pub max_lifetime: Duration,
    /// Most (source engine, destination) pairs with replay state (default 65,536: about 250 bytes
    /// each with map overhead, under 20 MiB).
    pub max_replay_pairs: usize,
    /// Most parsed source keys cached (default 65,536; about 250 bytes each).
    pub max_cached_keys: usize,
}

impl Default for IngressLimits {
    fn default() -> Self {
        IngressLimits {
            max_batch: 64,
            max_lifetime: Duration::from_secs(600),
            max_replay_pairs: 65_536,
            max_cached_keys: 65_536,
        }
    }
}

use crate::runtime::replay_window::ReplayWindow as Window;
pub use crate::runtime::replay_window::WINDOW_BITS;

/// Replay windows per (source engine, destination) pair.
#[derive(Debug)]
pub struct ReplayGuard {
    windows: HashMap<(EngineIdentity, Destination), Window>,
    max_pairs: usize,
    idle: Duration,
    last_sweep: Option<Instant>,
}

impl ReplayGuard {
    /// A guard for at most `max_pairs` pairs, forgetting a pair after `idle` without traffic.
    pub fn new(max_pairs: usize, idle: Duration) -> ReplayGuard {
        ReplayGuard {
            windows: HashMap::new(),
            max_pairs,
            idle,
            last_sweep: None,
        }
    }

    /// Pairs tracked.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no pair is tracked.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Whether `id` from `src` to `dst` could be accepted (nothing is recorded).
    pub fn check(
        &mut self,
        now: Instant,
        src: EngineIdentity,
        dst: Destination,
        id: MessageId,
    ) -> Result<(), DropReason> {
        match self.windows.get(&(src, dst)) {
            Some(w) => w.check(id.0),
            None if self.windows.len() >= self.max_pairs => {
                self.sweep(now);
                if self.windows.len() >= self.max_pairs {
                    Err(DropReason::ReplayStateFull)
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    /// Records `id` as delivered, checking again (a duplicate may have been verified in the same
    /// batch).
    pub fn commit(
        &mut self,
        now: Instant,
        src: EngineIdentity,
        dst: Destination,
        id: MessageId,
    ) -> Result<(), DropReason> {
        if let Some(w) = self.windows.get_mut(&(src, dst)) {
            w.check(id.0)?;
            w.record(id.0, now);
            return Ok(());
        }
        if self.windows.len() >= self.max_pairs {
            self.sweep(now);
            if self.windows.len() >= self.max_pairs {
                return Err(DropReason::ReplayStateFull);
            }
        }
        self.windows.insert((src, dst), Window::new(id.0, now));
        Ok(())
    }

    /// Forgets pairs idle longer than the maximum message lifetime (at most once a second).
    pub fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        let idle = self.idle;
        self.windows
            .retain(|_, w| now.saturating_duration_since(w.last_used()) <= idle);
    }
}

/// Parsed, checked source keys (and refusals, so a flood of bad keys is refused cheaply).
#[derive(Debug)]
pub struct KeyCache {
    keys: HashMap<EngineIdentity, Result<CheckedKey, KeyError>>,
    max: usize,
}

impl KeyCache {
    /// A cache of at most `max` keys; when full it is cleared (parsing is cheap to redo).
    pub fn new(max: usize) -> KeyCache {
        KeyCache {
            keys: HashMap::new(),
            max,
        }
    }

    /// The checked key of `id`.
    pub fn get(&mut self, id: EngineIdentity) -> Result<CheckedKey, KeyError> {
        if let Some(k) = self.keys.get(&id) {
            return k.clone();
        }
        if self.keys.len() >= self.max {
            self.keys.clear();
        }
        let parsed = CheckedKey::parse(id.as_bytes());
        self.keys.insert(id, parsed.clone());
        parsed
    }
}

/// A message that passed ingress, with the peer it came from and its receipt (to hand back to
/// the Transport once the message has been handled).
pub type Admitted = (Verified<EngineMessage>, NodeIdentity, Option<Receipt>);

/// Messages that passed the cheap checks, waiting for their signatures to be checked.
pub struct PendingBatch {
    items: Vec<(Unverified, CheckedKey)>,
    peers: Vec<(NodeIdentity, Option<Receipt>)>,
}

impl PendingBatch {
    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Checks every signature (pure computation: any thread may run it).
    pub fn verify(self, verifier: &mut BatchVerifier) -> VerifiedBatch {
        let mut outcomes = Vec::with_capacity(self.items.len());
        verifier.verify(self.items, &mut outcomes);
        VerifiedBatch {
            outcomes,
            peers: self.peers,
        }
    }
}

/// A batch whose signatures have been checked, ready for [`Ingress::complete`].
pub struct VerifiedBatch {
    outcomes: Vec<crate::wire::message::BatchOutcome>,
    peers: Vec<(NodeIdentity, Option<Receipt>)>,
}

impl std::fmt::Debug for VerifiedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifiedBatch({} messages)", self.outcomes.len())
    }
}

impl VerifiedBatch {
    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }
}

/// The ingress pipeline.
pub struct Ingress {
    limits: IngressLimits,
    guard: ReplayGuard,
    keys: KeyCache,
    verifier: BatchVerifier,
    pending: Vec<(Unverified, CheckedKey)>,
    pending_peers: Vec<(NodeIdentity, Option<Receipt>)>,
}

impl Ingress {
    /// An ingress path with `limits`.
    pub fn new(limits: IngressLimits) -> Ingress {
        Ingress {
            guard: ReplayGuard::new(limits.max_replay_pairs, limits.max_lifetime),
            keys: KeyCache::new(limits.max_cached_keys),
            verifier: BatchVerifier::new(),
            pending: Vec::with_capacity(limits.max_batch),
            pending_peers: Vec::with_capacity(limits.max_batch),
            limits,
        }
    }

    /// Messages waiting for verification.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether the pending batch is full and should be flushed.
    pub fn batch_full(&self) -> bool {
        self.pending.len() >= self.limits.max_batch
    }

    /// Runs the cheap checks on `wire` from `peer` and queues it for verification.
    pub fn accept(
        &mut self,
        now: Now,
        peer: NodeIdentity,
        wire: Vec<u8>,
        receipt: Option<Receipt>,
    ) -> Result<(), DropReason> {
        let u = Unverified::decode(wire).map_err(|e| match e {
            WireError::UnknownVersion(_) => DropReason::UnknownVersion,
            _ => DropReason::Malformed,
        })?;
        let m = u.message();
        if m.src_node != peer {
            return Err(DropReason::SourceNodeMismatch);
        }
        match m.expiry {
            None => return Err(DropReason::ExpiryOutOfRange),
            Some(e) if e <= now.wall => return Err(DropReason::Expired),
            Some(e) if e > now.wall.after(self.limits.max_lifetime) => {
                return Err(DropReason::ExpiryOutOfRange)
            }
            Some(_) => {}
        }
        self.guard.check(now.instant, m.src, m.dst, m.id)?;
        let key = self.keys.get(m.src).map_err(|e| match e {
            KeyError::Weak => DropReason::WeakKey,
            KeyError::NotAPoint | KeyError::NonCanonical => DropReason::BadKey,
        })?;
        self.pending.push((u, key));
        self.pending_peers.push((peer, receipt));
        Ok(())
    }

    /// Takes the pending batch for verification (inline or on a verifier thread).
    pub fn take_batch(&mut self) -> Option<PendingBatch> {
        if self.pending.is_empty() {
            return None;
        }
        Some(PendingBatch {
            items: std::mem::replace(&mut self.pending, Vec::with_capacity(self.limits.max_batch)),
            peers: std::mem::replace(
                &mut self.pending_peers,
                Vec::with_capacity(self.limits.max_batch),
            ),
        })
    }

    /// Verifies a batch on this thread.
    pub fn verify_here(&mut self, batch: PendingBatch) -> VerifiedBatch {
        batch.verify(&mut self.verifier)
    }

    /// Commits a verified batch: each verified id is recorded in its replay window (refusing a
    /// duplicate verified in the same or an overlapping batch). Admitted messages are pushed onto
    /// `out` in arrival order, with their receipts; each refusal is passed to `dropped` with its
    /// reason, and its receipt goes to `receipts` at once.
    pub fn complete(
        &mut self,
        now: Now,
        stats: &NodeStats,
        batch: VerifiedBatch,
        out: &mut Vec<Admitted>,
        receipts: &mut Vec<Receipt>,
        mut dropped: impl FnMut(DropReason, &EngineMessage),
    ) {
        stats
            .verify_batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (outcome, (peer, receipt)) in batch.outcomes.into_iter().zip(batch.peers) {
            match outcome {
                Ok(v) => match self.guard.commit(now.instant, v.src, v.dst, v.id) {
                    Ok(()) => {
                        stats
                            .verified
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        out.push((v, peer, receipt));
                    }
                    Err(reason) => {
                        receipts.extend(receipt);
                        dropped(reason, &v)
                    }
                },
                Err(u) => {
                    receipts.extend(receipt);
                    dropped(DropReason::BadSignature, u.message())
                }
            }
        }
    }

    /// Verifies the pending batch here and commits it (see [`Ingress::complete`]).
    pub fn flush(
        &mut self,
        now: Now,
        stats: &NodeStats,
        out: &mut Vec<Admitted>,
        receipts: &mut Vec<Receipt>,
        dropped: impl FnMut(DropReason, &EngineMessage),
    ) {
        if let Some(batch) = self.take_batch() {
            let verified = self.verify_here(batch);
            self.complete(now, stats, verified, out, receipts, dropped);
        }
    }

    /// Periodic upkeep: forgets idle replay state.
    pub fn sweep(&mut self, now: Instant) {
        self.guard.sweep(now);
    }

    /// Pairs with replay state.
    pub fn replay_pairs(&self) -> usize {
        self.guard.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: EngineIdentity = EngineIdentity([1; 32]);
    const D: Destination = Destination::Engine(EngineIdentity([2; 32]));

    #[test]
    fn window_rejects_duplicates_and_old_ids() {
        let now = Instant::now();
        let mut g = ReplayGuard::new(10, Duration::from_secs(60));
        assert!(g.check(now, S, D, MessageId(5000)).is_ok());
        g.commit(now, S, D, MessageId(5000)).unwrap();
        assert_eq!(
            g.check(now, S, D, MessageId(5000)),
            Err(DropReason::Duplicate)
        );
        // Out of order within the window is fine, once.
        g.commit(now, S, D, MessageId(4990)).unwrap();
        assert_eq!(
            g.commit(now, S, D, MessageId(4990)),
            Err(DropReason::Duplicate)
        );
        g.commit(now, S, D, MessageId(5001)).unwrap();
        assert_eq!(
            g.check(now, S, D, MessageId(4990)),
            Err(DropReason::Duplicate)
        );
        assert_eq!(
            g.check(now, S, D, MessageId(5000)),
            Err(DropReason::Duplicate)
        );
        assert!(g.check(now, S, D, MessageId(4991)).is_ok());
        // Jump far ahead: old ids become replays.
        g.commit(now, S, D, MessageId(10_000)).unwrap();
        assert_eq!(g.check(now, S, D, MessageId(5001)), Err(DropReason::Replay));
        assert!(g.check(now, S, D, MessageId(9_000)).is_ok());
        // Other destinations have their own window.
        let d2 = Destination::Engine(EngineIdentity([3; 32]));
        assert!(g.check(now, S, d2, MessageId(5000)).is_ok());
    }

    #[test]
    fn window_shift_matches_a_set() {
        // Compare the bitmap window with a plain set over a pseudo-random id sequence.
        let now = Instant::now();
        let mut w = Window::new(1_000_000, now);
        let mut seen = std::collections::BTreeSet::from([1_000_000u64]);
        let mut x: u64 = 12345;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let max = *seen.iter().next_back().unwrap();
            let id = (max + (x >> 33) % 200).saturating_sub(150);
            let expect = if max >= id && max - id >= WINDOW_BITS {
                Err(DropReason::Replay)
            } else if seen.contains(&id) {
                Err(DropReason::Duplicate)
            } else {
                Ok(())
            };
            assert_eq!(w.check(id), expect, "id {id} max {max}");
            if expect.is_ok() {
                w.record(id, now);
                seen.insert(id);
            }
        }
    }

    #[test]
    fn full_guard_refuses_new_pairs_until_idle_ones_expire() {
        let t0 = Instant::now();
        let mut g = ReplayGuard::new(2, Duration::from_secs(10));
        let d = |i: u8| Destination::Engine(EngineIdentity([i; 32]));
        g.commit(t0, S, d(1), MessageId(1)).unwrap();
        g.commit(t0, S, d(2), MessageId(1)).unwrap();
        assert_eq!(
            g.check(t0, S, d(3), MessageId(1)),
            Err(DropReason::ReplayStateFull)
        );
        let later = t0 + Duration::from_secs(11);
        assert!(g.check(later, S, d(3), MessageId(1)).is_ok());
        g.commit(later, S, d(3), MessageId(1)).unwrap();
        assert_eq!(g.len(), 1);
    }
}
