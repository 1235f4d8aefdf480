//! The Router's side of end-to-end relay receipts (docs/wire.md §12G.5; the tables are in
//! [`crate::relay::receipt`]).
//!
//! * **Destination.** Every layer delivered here is answered with a receipt to the peer it came
//!   from. Receipts are gathered per peer and sent when the Router's outputs are next drained,
//!   up to [`MAX_RECEIPTS_PER_RECORD`] to a `RELAY` frame.
//! * **Relay.** A receipt from the next hop of a layer this node forwarded goes back to the
//!   previous hop under the id that hop knows the layer by; one that matches nothing is counted
//!   `relay_unknown_receipt` (late, or never forwarded here).
//! * **Source.** A receipt for a message this node relayed must carry the destination's token,
//!   or it is `relay_bad_receipt` (counted against the peer's conduct: only a forger sends one).
//!   A good receipt is good service from every relay of the path: each earns a point of
//!   reputation per [`RECEIPTS_PER_REPUTATION`] receipts. A receipt that does not come within
//!   the timeout makes the path's relays suspect (avoided while another path exists) and the
//!   message is sealed again for another path, up to the configured attempts; then it is
//!   dropped `relay_unacknowledged`. A resent message that had arrived after all is a
//!   `duplicate` at the destination, which still sends its receipt.
//!
//! A missing receipt costs no reputation: on a path of several relays the culprit cannot be
//! told, and the destination may simply be down.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::{Duration, Instant};

use super::{Router, RouterOutput};
use crate::identity::NodeIdentity;
use crate::mail::identity::{IdentityRequest, IdentityUpdate};
use crate::mail::{DropReason, Receipt as FrameReceipt, RouteHeader};
use crate::relay::receipt::{
    decode_record, encode_record, tokens_match, Awaiting, CircuitLimits, Circuits, LayerId,
    Pending, Receipt, ReceiptLimits, MAX_RECEIPTS_PER_RECORD,
};
use crate::time::{Now, Timestamp};

/// Receipts that earn each relay of their path one point of reputation (64).
pub const RECEIPTS_PER_REPUTATION: u32 = 64;
/// Most relays held as suspect at once (1,024); over it the one suspected longest ago is let
/// go.
pub const MAX_SUSPECTS: usize = 1024;
/// Most relays with receipts counted towards their next point of reputation (4,096, about
/// 50 bytes each); over it the partial counts start again.
pub const MAX_GOOD_SERVICE: usize = 4096;
/// How long receipt records may travel (60 s): they are control data, answered at once.
const RECEIPT_LIFETIME: Duration = Duration::from_secs(60);

/// A relayed message kept until its receipt arrives.
#[derive(Debug)]
pub(super) struct RelayedSend {
    pub(super) node: NodeIdentity,
    pub(super) header: RouteHeader,
    pub(super) wire: Vec<u8>,
    pub(super) relays: usize,
}

/// The receipt state of a relaying Router.
#[derive(Debug)]
pub(super) struct ReceiptState {
    circuits: Circuits,
    awaiting: Awaiting<RelayedSend>,
    /// Relays on a path whose receipt did not come, and until when they are avoided.
    suspects: HashMap<NodeIdentity, Instant>,
    /// Receipts to send, per peer.
    outgoing: BTreeMap<NodeIdentity, Vec<Receipt>>,
    /// The expiry of the receipt records to send (set when a receipt is gathered).
    expiry: Timestamp,
    /// Receipts of good service per relay not yet turned into reputation.
    good: BTreeMap<NodeIdentity, u32>,
}

impl ReceiptState {
    pub(super) fn new(limits: ReceiptLimits) -> ReceiptState {
        ReceiptState {
            circuits: Circuits::new(CircuitLimits::default()),
            awaiting: Awaiting::new(limits),
            suspects: HashMap::new(),
            outgoing: BTreeMap::new(),
            expiry: Timestamp(0),
            good: BTreeMap::new(),
        }
    }

    /// The relays to avoid at `now`, in a stable order.
    pub(super) fn avoid(&mut self, now: Instant) -> Vec<NodeIdentity> {
        if self.suspects.is_empty() {
            return Vec::new();
        }
        self.suspects.retain(|_, until| *until > now);
        let mut v: Vec<NodeIdentity> = self.suspects.keys().copied().collect();
        v.sort_by_key(|n| n.0);
        v
    }

    /// Keeps a relayed message until its receipt (first hop `first`, layer `id`); `false` if
    /// the table is full (the message is then sent untracked).
    pub(super) fn track(
        &mut self,
        first: NodeIdentity,
        id: LayerId,
        pending: Pending<RelayedSend>,
    ) -> bool {
        self.awaiting.insert(first, id, pending).is_ok()
    }

    /// Remembers that the layer `next_id` forwarded to `next` came from `prev` as `prev_id`.
    pub(super) fn forwarded(
        &mut self,
        now: Instant,
        next: NodeIdentity,
        next_id: LayerId,
        prev: NodeIdentity,
        prev_id: LayerId,
    ) {
        self.circuits.insert(now, next, next_id, prev, prev_id);
    }

    /// A receipt to send to `peer`, gathered at `now`.
    pub(super) fn answer(&mut self, now: Now, peer: NodeIdentity, receipt: Receipt) {
        self.expiry = now.wall.after(RECEIPT_LIFETIME);
        self.outgoing.entry(peer).or_default().push(receipt);
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.awaiting.next_deadline()
    }

    /// Messages awaiting receipts.
    pub(super) fn awaiting(&self) -> usize {
        self.awaiting.len()
    }
}

impl Router {
    /// A receipt record from `peer` (see the module doc); `receipt` is the frame's, handed
    /// back at once.
    pub(super) fn handle_receipts(
        &mut self,
        now: Now,
        peer: NodeIdentity,
        record: &[u8],
        receipt: Option<FrameReceipt>,
    ) {
        let receipts = match decode_record(record) {
            Ok(r) => r,
            Err(reason) => {
                return self.refuse_from_peer(now, peer, receipt, reason, "relay receipt record")
            }
        };
        self.receipts.extend(receipt);
        let r = self.relay.as_mut().expect("relaying is enabled");
        let mut bad = 0u32;
        let mut unknown = 0u32;
        for rc in receipts {
            if let Some((prev, prev_id)) = r.receipts.circuits.take(peer, &rc.id) {
                r.receipts.answer(
                    now,
                    prev,
                    Receipt {
                        id: prev_id,
                        token: rc.token,
                    },
                );
            } else if let Some(p) = r.receipts.awaiting.take(peer, &rc.id) {
                if !tokens_match(&p.token, &rc.token) {
                    bad += 1;
                    // The message is still unanswered: a forger must not cancel its retry.
                    let first = p.path[0];
                    let id = rc.id;
                    if r.receipts.awaiting.insert(first, id, p).is_err() {
                        // No room to keep waiting: it is no longer retried, and says so.
                        self.stats
                            .relay_untracked
                            .fetch_add(1, AtomicOrdering::Relaxed);
                        log::debug!("router: a relayed message is no longer tracked (table full)");
                    }
                    continue;
                }
                self.stats
                    .relay_receipts
                    .fetch_add(1, AtomicOrdering::Relaxed);
                log::trace!(
                    "router: receipt for a message to {} after {:?} (attempt {})",
                    p.item.node.short(),
                    now.instant.saturating_duration_since(p.sent),
                    p.attempt
                );
                if r.receipts.good.len() >= MAX_GOOD_SERVICE {
                    r.receipts.good.retain(|_, n| *n >= RECEIPTS_PER_REPUTATION);
                }
                for relay in &p.path[..p.path.len() - 1] {
                    *r.receipts.good.entry(*relay).or_default() += 1;
                    r.receipts.suspects.remove(relay);
                }
            } else {
                unknown += 1;
            }
        }
        for _ in 0..unknown {
            self.stats.dropped(DropReason::RelayUnknownReceipt);
        }
        if unknown > 0 {
            log::debug!(
                "router: {unknown} relay receipt(s) from {} match nothing sent or forwarded",
                peer.short()
            );
        }
        for _ in 0..bad {
            self.refuse_from_peer(
                now,
                peer,
                None,
                DropReason::RelayBadReceipt,
                "relay receipt",
            );
        }
    }

    /// Turns gathered receipts into `RELAY` frames, and good service into reputation. Called
    /// when the Router's other outputs are drained.
    pub(super) fn flush_receipts(&mut self) -> bool {
        let Some(r) = self.relay.as_mut() else {
            return false;
        };
        let mut any = false;
        while let Some((&relay, n)) = r
            .receipts
            .good
            .iter_mut()
            .find(|(_, n)| **n >= RECEIPTS_PER_REPUTATION)
        {
            let points = *n / RECEIPTS_PER_REPUTATION;
            *n %= RECEIPTS_PER_REPUTATION;
            self.outputs
                .push_back(RouterOutput::Identity(IdentityRequest::Update(
                    IdentityUpdate::Reputation {
                        id: relay,
                        change: points.min(i16::MAX as u32) as i16,
                    },
                )));
            any = true;
        }
        r.receipts.good.retain(|_, n| *n > 0);
        let expiry = r.receipts.expiry;
        for (peer, receipts) in std::mem::take(&mut r.receipts.outgoing) {
            for chunk in receipts.chunks(MAX_RECEIPTS_PER_RECORD) {
                let frame = self.relay_frame(peer, expiry, encode_record(chunk), None);
                self.outputs.push_back(frame);
                any = true;
            }
        }
        any
    }

    /// Messages whose receipt is overdue: their relays become suspect and each is sealed for
    /// another path, or dropped `relay_unacknowledged` after its last attempt.
    pub(super) fn expire_receipts(&mut self, now: Now) {
        let Some(r) = self.relay.as_mut() else { return };
        let overdue = r.receipts.awaiting.expired(now.instant);
        if overdue.is_empty() {
            return;
        }
        let limits = *r.receipts.awaiting.limits();
        for p in &overdue {
            for relay in &p.path[..p.path.len() - 1] {
                if r.receipts.suspects.len() >= MAX_SUSPECTS
                    && !r.receipts.suspects.contains_key(relay)
                {
                    if let Some(first) = r
                        .receipts
                        .suspects
                        .iter()
                        .min_by_key(|(n, t)| (**t, n.0))
                        .map(|(n, _)| *n)
                    {
                        r.receipts.suspects.remove(&first);
                    }
                }
                r.receipts
                    .suspects
                    .insert(*relay, now.instant + limits.suspect_for);
            }
        }
        for p in overdue {
            let send = p.item;
            let expired = send.header.expiry.is_some_and(|e| e <= now.wall);
            if p.attempt >= limits.attempts || expired {
                log::debug!(
                    "router: no receipt for message {} to {} after {} path(s)",
                    send.header.id.0,
                    send.node.short(),
                    p.attempt
                );
                self.drop_header(&send.header, DropReason::RelayUnacknowledged);
                continue;
            }
            log::debug!(
                "router: no receipt from {} for message {} (path {}); trying another path",
                send.node.short(),
                send.header.id.0,
                p.path
                    .iter()
                    .map(|n| n.short())
                    .collect::<Vec<_>>()
                    .join(" → ")
            );
            self.stats
                .relay_retries
                .fetch_add(1, AtomicOrdering::Relaxed);
            let RelayedSend {
                node,
                header,
                wire,
                relays,
            } = send;
            if let Err(reason) = self.send_relayed(now, node, header, &wire, relays, p.attempt + 1)
            {
                self.drop_header(&header, reason);
            }
        }
    }
}
