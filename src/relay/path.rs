//! Choosing relays: the nodes this node can hand a relay message to right now (connected
//! peers), ranked by trust and then by measured round-trip time.
//!
//! The Transport's driver publishes the candidates on a [`RelayBoard`] (connected peers, the
//! configured trust of each, the RTT quiche measures on its path); the Router's shell copies
//! the board into the Router when it changes. The Router stays sans-IO: it is handed a list.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::identity::NodeIdentity;
use crate::wire::TransportKind;

/// A node that could carry a relay message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The node.
    pub node: NodeIdentity,
    /// Its trust, 0–255 (0 = banned, never used; configured peers default to 128).
    pub trust: u8,
    /// Its reputation in the identity store, 0–255 (128 when none is set): below
    /// [`LOW_REPUTATION`] it ranks after the others of its trust.
    pub reputation: u8,
    /// The smoothed round-trip time measured to it, if any.
    pub rtt: Option<Duration>,
    /// Packets lost per million sent on its connection, if measured (QUIC; 0 over TCP).
    pub loss_ppm: Option<u32>,
    /// The transport of its connection (QUIC, or the TLS-over-TCP fallback).
    pub transport: TransportKind,
}

/// The candidates the Transport publishes for the Router: a snapshot and a generation that
/// changes with it.
#[derive(Clone, Debug, Default)]
pub struct RelayBoard {
    inner: Arc<(RwLock<Vec<Candidate>>, AtomicU64)>,
}

impl RelayBoard {
    /// Replaces the snapshot (only if it changed, so readers copy it only then).
    pub fn publish(&self, mut candidates: Vec<Candidate>) {
        candidates.sort_by_key(|c| c.node.0);
        let mut w = self.inner.0.write();
        if *w != candidates {
            *w = candidates;
            self.inner.1.fetch_add(1, Ordering::Release);
        }
    }

    /// The generation of the snapshot.
    pub fn generation(&self) -> u64 {
        self.inner.1.load(Ordering::Acquire)
    }

    /// A copy of the snapshot.
    pub fn snapshot(&self) -> Vec<Candidate> {
        self.inner.0.read().clone()
    }
}

/// Loss above which a relay candidate ranks after every less lossy one of the same trust
/// and reputation standing (2 %: 20,000 packets per million).
pub const LOSSY_PPM: u32 = 20_000;
/// Reputation below which a relay candidate ranks after every better-reputed one of the same
/// trust (64: a quarter of the scale; a peer starts at 128 and loses a point per bad message).
pub const LOW_REPUTATION: u8 = 64;

/// The path for a message from `own` to `dst` through `relays` relays: the best-ranked
/// candidates (trust descending, then reputation not low before low — [`LOW_REPUTATION`] —
/// then not lossy before lossy — [`LOSSY_PPM`] — then RTT ascending, unmeasured last, then
/// identity, so the choice is deterministic), excluding `own`, `dst`, banned nodes and
/// `avoid`; then `dst`. `None` if there are too few.
pub fn choose_path(
    candidates: &[Candidate],
    own: &NodeIdentity,
    dst: &NodeIdentity,
    relays: usize,
    avoid: &[NodeIdentity],
) -> Option<Vec<NodeIdentity>> {
    choose_spread_path(candidates, own, dst, relays, avoid, 0)
}

/// As [`choose_path`], but starting `spread` places (modulo the usable candidates) down the
/// ranking, wrapping round: for a message tried again after a path failed, so that the
/// messages caught on a bad relay spread over the others instead of all trying the next in
/// rank — which may be bad too. `spread` 0 is [`choose_path`].
pub fn choose_spread_path(
    candidates: &[Candidate],
    own: &NodeIdentity,
    dst: &NodeIdentity,
    relays: usize,
    avoid: &[NodeIdentity],
    spread: u64,
) -> Option<Vec<NodeIdentity>> {
    let mut usable: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.trust > 0 && c.node != *own && c.node != *dst && !avoid.contains(&c.node))
        .collect();
    if usable.len() < relays.max(1) {
        return None;
    }
    usable.sort_by_key(|c| {
        (
            std::cmp::Reverse(c.trust),
            c.reputation < LOW_REPUTATION,
            c.loss_ppm.is_some_and(|l| l > LOSSY_PPM),
            c.rtt.unwrap_or(Duration::MAX),
            c.node.0,
        )
    });
    let start = (spread % usable.len() as u64) as usize;
    usable.rotate_left(start);
    let mut path: Vec<NodeIdentity> = usable[..relays.max(1)].iter().map(|c| c.node).collect();
    path.push(*dst);
    Some(path)
}
