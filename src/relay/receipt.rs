//! End-to-end relay receipts (docs/wire.md §12G.5): how the source of a relayed message learns
//! that the destination opened it, so that a relay which drops or corrupts traffic is noticed
//! and another path tried.
//!
//! Transport acknowledgements cannot tell: a relay acknowledges what it has *processed*, and a
//! relay that drops a layer, or a destination that refuses a corrupted one, still acknowledges
//! it. So the destination answers every layer it opens with a **receipt**: the layer's id and a
//! token only the source and the destination can compute (keyed by their static agreement, like
//! the source proof). Receipts travel back along the path hop by hop in `RELAY` frames: each
//! relay remembers, for every layer it forwarded, which layer of which previous hop it came
//! from ([`Circuits`]), and rewrites the id on the way. The source keeps what it sent until its
//! receipt arrives ([`Awaiting`]); a receipt that does not come in time marks the path's
//! relays as suspect and the message is sealed again for another path.
//!
//! Both tables are sans IO (time is passed in), bounded, and named limits say by how much.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::identity::NodeIdentity;
use crate::mail::DropReason;

/// Identifies one layer on one hop: the first 16 bytes of BLAKE3 over its 41-byte header.
pub type LayerId = [u8; 16];
/// Proves a receipt comes from the destination (see [`receipt_token`]).
pub type ReceiptToken = [u8; 16];

/// The first byte of a receipt record, where a layer has its version (`01`).
pub const RECEIPT_MARKER: u8 = 0x81;
/// Most receipts in one record (64; a record is at most 2 + 64 × 32 = 2,050 bytes).
pub const MAX_RECEIPTS_PER_RECORD: usize = 64;
/// Bytes of one receipt in a record: layer id, token.
pub const RECEIPT_LEN: usize = 32;

const RECEIPT_CONTEXT: &[u8] = b"netmachine relay v1 receipt";

/// The id of the layer whose 41-byte header is `header`.
pub fn layer_id(header: &[u8]) -> LayerId {
    let h = blake3::hash(header);
    h.as_bytes()[..16].try_into().expect("16 bytes")
}

/// The token of the receipt for the deliver layer with header `header`, under the source key
/// of its source and destination: `BLAKE3-keyed_hash(source_key, "netmachine relay v1 receipt"
/// || header)`, first 16 bytes.
pub fn receipt_token(source_key: &[u8; 32], header: &[u8]) -> ReceiptToken {
    let mut h = blake3::Hasher::new_keyed(source_key);
    h.update(RECEIPT_CONTEXT);
    h.update(header);
    h.finalize().as_bytes()[..16].try_into().expect("16 bytes")
}

/// One receipt: which layer, and the destination's token for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The layer, as the hop the record is sent to knows it.
    pub id: LayerId,
    /// The destination's token (unchanged along the path).
    pub token: ReceiptToken,
}

/// Whether `frame` (a `RELAY` frame's payload) is a receipt record rather than a layer.
pub fn is_receipt_record(frame: &[u8]) -> bool {
    frame.first() == Some(&RECEIPT_MARKER)
}

/// A receipt record: the marker, a count (1 ..= [`MAX_RECEIPTS_PER_RECORD`]), then each
/// receipt's id and token.
pub fn encode_record(receipts: &[Receipt]) -> Vec<u8> {
    assert!(
        !receipts.is_empty() && receipts.len() <= MAX_RECEIPTS_PER_RECORD,
        "a receipt record holds 1 to {MAX_RECEIPTS_PER_RECORD} receipts"
    );
    let mut out = Vec::with_capacity(2 + receipts.len() * RECEIPT_LEN);
    out.push(RECEIPT_MARKER);
    out.push(receipts.len() as u8);
    for r in receipts {
        out.extend_from_slice(&r.id);
        out.extend_from_slice(&r.token);
    }
    out
}

/// The receipts of a record, or `relay_malformed` (wrong marker, count 0 or over the limit, or
/// a length that is not the count's).
pub fn decode_record(frame: &[u8]) -> Result<Vec<Receipt>, DropReason> {
    if frame.len() < 2 || frame[0] != RECEIPT_MARKER {
        return Err(DropReason::RelayMalformed);
    }
    let n = frame[1] as usize;
    if n == 0 || n > MAX_RECEIPTS_PER_RECORD || frame.len() != 2 + n * RECEIPT_LEN {
        return Err(DropReason::RelayMalformed);
    }
    Ok(frame[2..]
        .chunks_exact(RECEIPT_LEN)
        .map(|c| Receipt {
            id: c[..16].try_into().expect("16 bytes"),
            token: c[16..].try_into().expect("16 bytes"),
        })
        .collect())
}

/// Whether two tokens are equal, in time independent of where they differ.
pub fn tokens_match(a: &ReceiptToken, b: &ReceiptToken) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Limits of a relay's [`Circuits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitLimits {
    /// Most forwarded layers remembered (default 65,536; about 120 bytes each with map and
    /// queue overhead, under 8 MiB). Over it the oldest is forgotten: its receipt, if it ever
    /// comes, is then counted `relay_unknown_receipt` and the source tries another path.
    pub max_circuits: usize,
    /// How long a forwarded layer is remembered (default 30 s, well past any receipt timeout).
    pub ttl: Duration,
}

impl Default for CircuitLimits {
    fn default() -> Self {
        CircuitLimits {
            max_circuits: 65_536,
            ttl: Duration::from_secs(30),
        }
    }
}

/// A relay's memory of the layers it forwarded: `(next hop, id of the layer sent to it)` →
/// `(previous hop, id of the layer it came in)`, so a receipt from the next hop goes back to
/// the previous one.
#[derive(Debug, Default)]
pub struct Circuits {
    limits: CircuitLimits,
    map: HashMap<(NodeIdentity, LayerId), (NodeIdentity, LayerId, Instant)>,
    /// Insertion order, for forgetting; entries already taken are skipped.
    order: VecDeque<(Instant, NodeIdentity, LayerId)>,
}

impl Circuits {
    /// An empty table with `limits`.
    pub fn new(limits: CircuitLimits) -> Circuits {
        Circuits {
            limits,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Remembers that the layer `next_id` sent to `next` came from `prev` as `prev_id`.
    pub fn insert(
        &mut self,
        now: Instant,
        next: NodeIdentity,
        next_id: LayerId,
        prev: NodeIdentity,
        prev_id: LayerId,
    ) {
        self.sweep(now);
        while self.order.len() >= self.limits.max_circuits.max(1) {
            self.forget_oldest();
        }
        self.map.insert((next, next_id), (prev, prev_id, now));
        self.order.push_back((now, next, next_id));
    }

    /// Where a receipt from `from` for its layer `id` goes: the previous hop and the id it
    /// knows the layer by. Each circuit carries one receipt.
    pub fn take(&mut self, from: NodeIdentity, id: &LayerId) -> Option<(NodeIdentity, LayerId)> {
        self.map.remove(&(from, *id)).map(|(p, pid, _)| (p, pid))
    }

    /// Circuits remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn forget_oldest(&mut self) {
        if let Some((t, n, id)) = self.order.pop_front() {
            if self.map.get(&(n, id)).is_some_and(|(_, _, at)| *at == t) {
                self.map.remove(&(n, id));
            }
        }
    }

    fn sweep(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(t, _, _)| now.saturating_duration_since(*t) >= self.limits.ttl)
        {
            self.forget_oldest();
        }
    }
}

/// Limits of a source's [`Awaiting`] table, and how it retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiptLimits {
    /// How long a relayed message waits for its receipt before the path is suspected and the
    /// message sealed for another (default 2 s; `[relay] receipt_timeout_ms`).
    pub timeout: Duration,
    /// Paths tried for one message before it is dropped `relay_unacknowledged` (default 3;
    /// `[relay] attempts`).
    pub attempts: u8,
    /// How long a relay on a path whose receipt did not come is avoided (default 60 s).
    pub suspect_for: Duration,
    /// Most relayed messages awaiting a receipt (default 8,192).
    pub max_messages: usize,
    /// Most bytes of relayed messages kept for resending (default 64 MiB). Over either limit a
    /// message is still sent, but not tracked: counted `relay_untracked`, never retried.
    pub max_bytes: usize,
}

impl Default for ReceiptLimits {
    fn default() -> Self {
        ReceiptLimits {
            timeout: Duration::from_secs(2),
            attempts: 3,
            suspect_for: Duration::from_secs(60),
            max_messages: 8192,
            max_bytes: 64 << 20,
        }
    }
}

/// A relayed message waiting for its receipt.
#[derive(Debug)]
pub struct Pending<T> {
    /// The token the destination's receipt must carry.
    pub token: ReceiptToken,
    /// The path it was sealed for: relays, then the destination.
    pub path: Vec<NodeIdentity>,
    /// Which attempt this is (1 for the first path).
    pub attempt: u8,
    /// When it was sent.
    pub sent: Instant,
    /// Bytes it holds (counted against [`ReceiptLimits::max_bytes`]).
    pub bytes: usize,
    /// What to resend.
    pub item: T,
}

/// The source's table of relayed messages awaiting receipts, keyed by the first hop and the id
/// of the layer sent to it.
#[derive(Debug)]
pub struct Awaiting<T> {
    limits: ReceiptLimits,
    map: HashMap<(NodeIdentity, LayerId), Pending<T>>,
    /// Deadlines in send order (the timeout is the same for all); entries already answered are
    /// skipped.
    order: VecDeque<(Instant, NodeIdentity, LayerId)>,
    bytes: usize,
}

impl<T> Awaiting<T> {
    /// An empty table with `limits`.
    pub fn new(limits: ReceiptLimits) -> Awaiting<T> {
        Awaiting {
            limits,
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &ReceiptLimits {
        &self.limits
    }

    /// Keeps `pending`, sent to `first` as layer `id`; gives it back if the table is full.
    pub fn insert(
        &mut self,
        first: NodeIdentity,
        id: LayerId,
        pending: Pending<T>,
    ) -> Result<(), Pending<T>> {
        if self.map.len() >= self.limits.max_messages
            || self.bytes + pending.bytes > self.limits.max_bytes
        {
            return Err(pending);
        }
        if self.order.len() >= 4 * self.limits.max_messages.max(1) {
            let map = &self.map;
            self.order.retain(|(_, n, i)| map.contains_key(&(*n, *i)));
        }
        self.bytes += pending.bytes;
        self.order
            .push_back((pending.sent + self.limits.timeout, first, id));
        self.map.insert((first, id), pending);
        Ok(())
    }

    /// The message whose layer `id` was sent to `first`, if it still awaits its receipt.
    pub fn take(&mut self, first: NodeIdentity, id: &LayerId) -> Option<Pending<T>> {
        let p = self.map.remove(&(first, *id))?;
        self.bytes -= p.bytes;
        Some(p)
    }

    /// The messages whose receipt is overdue at `now`, oldest first.
    pub fn expired(&mut self, now: Instant) -> Vec<Pending<T>> {
        let mut out = Vec::new();
        while let Some(&(deadline, n, id)) = self.order.front() {
            if deadline > now {
                break;
            }
            self.order.pop_front();
            if let Some(p) = self.take(n, &id) {
                out.push(p);
            }
        }
        out
    }

    /// When [`Awaiting::expired`] should next be asked (the oldest deadline queued; it may
    /// belong to a message already answered, which costs one early call).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.order.front().map(|(deadline, _, _)| *deadline)
    }

    /// Messages awaiting receipts.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Everything still awaiting a receipt (at shutdown).
    pub fn drain(&mut self) -> Vec<Pending<T>> {
        let order = std::mem::take(&mut self.order);
        let out = order
            .into_iter()
            .filter_map(|(_, n, id)| self.take(n, &id))
            .collect();
        self.map.clear();
        self.bytes = 0;
        out
    }
}
