//! The Router's part in relaying (spec notes §5.1; docs/wire.md §12G): sending a message
//! through relays, forwarding relay layers for others under the relay policy, and admitting
//! what reaches this node through relays.
//!
//! * **Sending.** A message whose transport preferences ask for `OnionRouting(n)` is sealed for
//!   a path of `max(n, 1)` relays chosen from the candidates ([`Router::set_relay_candidates`])
//!   by trust and round-trip time. A message the Transport has no direct path for
//!   ([`Router::handle_no_direct_path`]) goes through the best single relay. A message that
//!   finds too few candidates waits for more (at most [`RELAY_WAIT`]), then is dropped
//!   `no_relay` (onion routing) or `no_route` (no direct path).
//! * **Forwarding.** A `RELAY` frame from a peer ([`Router::handle_relay`]) passes the
//!   per-source rate and byte limits, is opened (see [`crate::relay::layer`] for the checks and
//!   their order), and, if the policy forwards for that peer, goes on to the next node as a
//!   `RELAY` frame that carries the peer's receipt: the Transport acknowledges the peer only
//!   once the next hop has acknowledged (or the frame was dropped), so acknowledgements travel
//!   back along the path.
//! * **Delivering.** A layer that is for this node goes through the ingress path as if it had
//!   come from its proven source node: the source engine's signature is checked there, exactly
//!   as for a direct message, and its receipt is the `RELAY` frame's.
//!
//! Every refusal is counted with its `relay_*` reason and logged; failures only a misbehaving
//! peer causes (a bad tag, a malformed layer, a forged source) also count against that peer's
//! conduct.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::{Duration, Instant};

use super::relay_receipts::{ReceiptState, RelayedSend};
use super::{Router, RouterOutput};
use crate::identity::{EngineIdentity, Keypair, NodeIdentity};
use crate::mail::{DropReason, Receipt, RelayFrame, RemoteSend, RouteHeader};
use crate::relay::policy::RateLimiter;
use crate::relay::receipt::{is_receipt_record, Pending};
use crate::relay::{
    choose_spread_path, Candidate, Opened, Opener, OpenerLimits, RelayPolicy, Sealer, SealerLimits,
};
use crate::time::{Now, Timestamp};
use crate::wire::{Destination, MessageId, Security, TransportPrefs};

/// The relay state a Router holds once relaying is enabled.
pub(super) struct Relaying {
    sealer: Sealer,
    opener: Opener,
    policy: RelayPolicy,
    limiter: RateLimiter,
    candidates: Vec<Candidate>,
    /// Nodes the Transport recently had no direct path for, and when that was learnt: sent
    /// through a relay straight away for [`INDIRECT_TTL`] (at most [`MAX_INDIRECT`] nodes),
    /// rather than offered to the Transport first each time.
    indirect: HashMap<NodeIdentity, Instant>,
    /// Messages that found too few relay candidates, waiting (at most [`RELAY_WAIT`], at most
    /// [`MAX_RELAY_WAITING`] of them) for the Transport to publish more — at start, before the
    /// first connections are up: when they arrived, the message, and the relays it needs.
    waiting: VecDeque<(Instant, RemoteSend, usize)>,
    /// Receipts: circuits forwarded, messages awaiting theirs, suspect relays.
    pub(super) receipts: ReceiptState,
}

/// How long a message waits for enough relay candidates (2 s).
pub const RELAY_WAIT: Duration = Duration::from_secs(2);
/// Most messages waiting for relay candidates (1,024; over it they are dropped at once).
pub const MAX_RELAY_WAITING: usize = 1024;

/// How long a node without a direct path is sent to through relays without asking the
/// Transport again (5 s).
pub const INDIRECT_TTL: Duration = Duration::from_secs(5);
/// Most nodes remembered as having no direct path (4,096; about 60 bytes each).
pub const MAX_INDIRECT: usize = 4096;

impl Router {
    /// Enables relaying: this node's key pair (its relay key is derived from it), a seed for
    /// the ephemeral keys (from the operating system on a real node), and the policy for
    /// forwarding. Without it, relay frames are refused `relay_refused` and `OnionRouting`
    /// messages `unsupported`.
    pub fn enable_relay(&mut self, node_key: &Keypair, seed: [u8; 32], policy: RelayPolicy) {
        self.relay = Some(Box::new(Relaying {
            sealer: Sealer::new(node_key, seed, SealerLimits::default()),
            opener: Opener::new(node_key, OpenerLimits::default()),
            receipts: ReceiptState::new(policy.receipts),
            policy,
            limiter: RateLimiter::default(),
            candidates: Vec::new(),
            indirect: HashMap::new(),
            waiting: VecDeque::new(),
        }));
    }

    /// The nodes this node can hand relay messages to now (published by the Transport's
    /// driver: connected peers, their trust and measured round-trip time).
    pub fn set_relay_candidates(&mut self, now: Now, candidates: Vec<Candidate>) {
        let Some(r) = &mut self.relay else { return };
        // A node connected directly again is offered to the Transport again.
        for c in &candidates {
            r.indirect.remove(&c.node);
        }
        r.candidates = candidates;
        let waiting = std::mem::take(&mut r.waiting);
        for (since, send, relays) in waiting {
            self.relay_or_wait(now, since, send, relays);
        }
    }

    /// Drops the messages that waited [`RELAY_WAIT`] for relay candidates in vain.
    pub(super) fn expire_relay_waiting(&mut self, now: Now) {
        let Some(r) = &mut self.relay else { return };
        let mut expired = Vec::new();
        while r
            .waiting
            .front()
            .is_some_and(|(t, _, _)| now.instant.saturating_duration_since(*t) >= RELAY_WAIT)
        {
            expired.extend(r.waiting.pop_front());
        }
        for (_, send, relays) in expired {
            self.drop_header(&send.header, no_relay_reason(&send, relays));
        }
    }

    /// When the oldest relayed message's receipt is due.
    pub(super) fn relay_receipt_deadline(&self) -> Option<Instant> {
        self.relay.as_ref()?.receipts.next_deadline()
    }

    /// This node's relayed messages still awaiting their receipts.
    pub fn relay_awaiting_receipts(&self) -> usize {
        self.relay.as_ref().map_or(0, |r| r.receipts.awaiting())
    }

    /// When the oldest message waiting for relay candidates gives up.
    pub(super) fn relay_waiting_deadline(&self) -> Option<Instant> {
        let r = self.relay.as_ref()?;
        r.waiting.front().map(|(t, _, _)| *t + RELAY_WAIT)
    }

    /// Sends `send` through `relays` relays, or lets it wait for candidates (since `since`),
    /// or drops it.
    fn relay_or_wait(&mut self, now: Now, since: Instant, send: RemoteSend, relays: usize) {
        match self.send_relayed(now, send.node, send.header, &send.wire, relays, 1) {
            Ok(()) => {
                if relays == 1 && Router::onion_hops(&send.header).is_none() {
                    self.remember_indirect(now, send.node);
                }
            }
            Err(DropReason::NoRelay)
                if now.instant.saturating_duration_since(since) < RELAY_WAIT
                    && self
                        .relay
                        .as_ref()
                        .is_some_and(|r| r.waiting.len() < MAX_RELAY_WAITING) =>
            {
                let r = self.relay.as_mut().expect("relaying is enabled");
                r.waiting.push_back((since, send, relays));
            }
            Err(DropReason::NoRelay) => {
                let reason = no_relay_reason(&send, relays);
                self.drop_header(&send.header, reason);
            }
            Err(reason) => self.drop_header(&send.header, reason),
        }
    }

    fn remember_indirect(&mut self, now: Now, node: NodeIdentity) {
        let r = self.relay.as_mut().expect("relaying is enabled");
        if r.indirect.len() >= MAX_INDIRECT {
            r.indirect
                .retain(|_, t| now.instant.saturating_duration_since(*t) < INDIRECT_TTL);
            if r.indirect.len() >= MAX_INDIRECT {
                r.indirect.clear();
            }
        }
        r.indirect.insert(node, now.instant);
    }

    /// A `RELAY` frame from `peer` (see the module doc). `receipt` is handed back once the
    /// layer was dropped, or travels with what it carried.
    pub fn handle_relay(
        &mut self,
        now: Now,
        peer: NodeIdentity,
        layer: Vec<u8>,
        receipt: Option<Receipt>,
    ) {
        let Some(relay) = self.relay.as_mut() else {
            return self.relay_dropped(now, peer, receipt, DropReason::RelayRefused);
        };
        if let Err(reason) =
            relay
                .limiter
                .admit(&relay.policy.limits, now.instant, peer, layer.len())
        {
            return self.relay_dropped(now, peer, receipt, reason);
        }
        if is_receipt_record(&layer) {
            return self.handle_receipts(now, peer, &layer, receipt);
        }
        match relay.opener.open(now, layer) {
            Err(reason) => self.relay_dropped(now, peer, receipt, reason),
            Ok(Opened::Forward {
                next,
                mut layer,
                expiry,
                id,
                next_id,
            }) => {
                if !relay.policy.forwards_for(&peer) {
                    return self.relay_dropped(now, peer, receipt, DropReason::RelayRefused);
                }
                if !self.has_transport {
                    return self.relay_dropped(now, peer, receipt, DropReason::NoTransport);
                }
                match relay.policy.fault {
                    crate::relay::RelayFault::None => {}
                    crate::relay::RelayFault::Drop => {
                        self.receipts.extend(receipt);
                        return;
                    }
                    crate::relay::RelayFault::Corrupt => {
                        let i = layer.len() / 2;
                        layer[i] ^= 0x40;
                    }
                }
                self.stats.relayed.fetch_add(1, AtomicOrdering::Relaxed);
                relay
                    .receipts
                    .forwarded(now.instant, next, next_id, peer, id);
                log::trace!("router: relaying from {} to {}", peer.short(), next.short());
                let frame = self.relay_frame(next, expiry, layer, receipt);
                self.outputs.push_back(frame);
            }
            Ok(Opened::Deliver {
                src,
                message,
                receipt: answer,
                ..
            }) => {
                if src == self.node {
                    return self.relay_dropped(now, peer, receipt, DropReason::RelayBadSource);
                }
                // The path worked, whatever ingress makes of the message: the source stops
                // waiting (a message refused here would be refused on any path).
                relay.receipts.answer(now, peer, answer);
                self.stats
                    .received_relayed
                    .fetch_add(1, AtomicOrdering::Relaxed);
                // The proven source node stands in for the authenticated peer: ingress checks
                // the message's `src_node` against it, then its signature.
                self.handle_remote(now, src, message, receipt);
            }
        }
    }

    /// A `RELAY` frame of this node's own for `node` (a forwarded layer, or a receipt record),
    /// carrying `upstream` back once `node` has acknowledged it. The Transport keys its ordered
    /// streams by (source engine, destination): all of this node's relay frames to `node` share
    /// one stream.
    pub(super) fn relay_frame(
        &self,
        node: NodeIdentity,
        expiry: Timestamp,
        wire: Vec<u8>,
        upstream: Option<Receipt>,
    ) -> RouterOutput {
        let header = RouteHeader {
            src: EngineIdentity(self.node.0),
            dst: Destination::Node(node),
            id: MessageId(0),
            expiry: Some(expiry),
            rprefs: None,
            tprefs: Some(TransportPrefs::RELIABLE_ORDERED),
            notify: false,
        };
        RouterOutput::Transport(RemoteSend {
            node,
            header,
            wire,
            relay: Some(Box::new(RelayFrame { upstream })),
        })
    }

    fn relay_dropped(
        &mut self,
        now: Now,
        peer: NodeIdentity,
        receipt: Option<Receipt>,
        reason: DropReason,
    ) {
        self.refuse_from_peer(now, peer, receipt, reason, "relay layer");
    }

    /// The Transport has no connection to and no address for `send.node`: the message goes
    /// through the best relay known, or is dropped `no_route`.
    pub fn handle_no_direct_path(&mut self, now: Now, send: RemoteSend) {
        if self.relay.is_none() {
            return self.drop_header(&send.header, DropReason::NoRoute);
        }
        self.relay_or_wait(now, now.instant, send, 1);
    }

    /// Sends a message for `node` through a relay if the Transport recently had no direct
    /// path for it (see [`INDIRECT_TTL`]); gives it back otherwise.
    pub(super) fn send_indirect(
        &mut self,
        now: Now,
        node: NodeIdentity,
        header: RouteHeader,
        wire: Vec<u8>,
    ) -> Option<(RouteHeader, Vec<u8>)> {
        let fresh = self
            .relay
            .as_ref()
            .and_then(|r| r.indirect.get(&node))
            .is_some_and(|t| now.instant.saturating_duration_since(*t) < INDIRECT_TTL);
        if !fresh || self.send_relayed(now, node, header, &wire, 1, 1).is_err() {
            return Some((header, wire));
        }
        None
    }

    /// Whether `header` asks for onion routing, and over how many relays.
    pub(super) fn onion_hops(header: &RouteHeader) -> Option<u8> {
        match header.tprefs.map(|t| t.security) {
            Some(Security::OnionRouting(n)) => Some(n),
            _ => None,
        }
    }

    /// Sends a message for `node` that asks for onion routing over `hops` relays.
    pub(super) fn send_onion(
        &mut self,
        now: Now,
        node: NodeIdentity,
        header: RouteHeader,
        wire: Vec<u8>,
        hops: u8,
    ) {
        if self.relay.is_none() {
            return self.drop_header(&header, DropReason::Unsupported);
        }
        let send = RemoteSend::message(node, header, wire);
        self.relay_or_wait(now, now.instant, send, hops.max(1) as usize);
    }

    /// Seals `wire` for a path of `relays` relays to `node` (avoiding suspect relays while
    /// enough others are known), hands it to the Transport, and keeps it until its receipt
    /// (`attempt` counts the paths tried).
    pub(super) fn send_relayed(
        &mut self,
        now: Now,
        node: NodeIdentity,
        header: RouteHeader,
        wire: &[u8],
        relays: usize,
        attempt: u8,
    ) -> Result<(), DropReason> {
        let relay = self.relay.as_mut().ok_or(DropReason::Unsupported)?;
        let avoid = relay.receipts.avoid(now.instant);
        // A first attempt takes the best-ranked relays; a retry spreads over the others (by a
        // hash of the message id and the attempt), so a second bad relay catches few retries.
        let spread = if attempt <= 1 {
            0
        } else {
            (header.id.0 ^ u64::from(attempt)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
        };
        let path = choose_spread_path(&relay.candidates, &self.node, &node, relays, &avoid, spread)
            .or_else(|| {
                if avoid.is_empty() {
                    None
                } else {
                    choose_spread_path(&relay.candidates, &self.node, &node, relays, &[], spread)
                }
            })
            .ok_or(DropReason::NoRelay)?;
        let expiry = header.expiry.ok_or(DropReason::ExpiryOutOfRange)?;
        let sealed = relay
            .sealer
            .seal_tracked(now, &path, wire, expiry)
            .map_err(|e| {
                log::debug!("router: cannot seal for {}: {e}", node.short());
                DropReason::NoRelay
            })?;
        let layer = sealed.layer;
        let pending = Pending {
            token: sealed.token,
            path: path.clone(),
            attempt,
            sent: now.instant,
            bytes: wire.len() + 64,
            item: RelayedSend {
                node,
                header,
                wire: wire.to_vec(),
                relays,
            },
        };
        if !relay.receipts.track(path[0], sealed.id, pending) {
            self.stats
                .relay_untracked
                .fetch_add(1, AtomicOrdering::Relaxed);
        }
        self.stats
            .sent_relayed
            .fetch_add(1, AtomicOrdering::Relaxed);
        log::trace!(
            "router: message {} for {} through {} relay(s), first {}",
            header.id.0,
            node.short(),
            path.len() - 1,
            path[0].short()
        );
        self.outputs.push_back(RouterOutput::Transport(RemoteSend {
            node: path[0],
            header,
            wire: layer,
            relay: Some(Box::default()),
        }));
        Ok(())
    }
}

/// Why a message that found too few relays is dropped: `no_relay` when it asked for onion
/// routing, `no_route` when relaying was only the fallback for a missing direct path.
fn no_relay_reason(send: &RemoteSend, relays: usize) -> DropReason {
    if relays == 1 && Router::onion_hops(&send.header).is_none() {
        DropReason::NoRoute
    } else {
        DropReason::NoRelay
    }
}
