//! The Router's part in relaying (spec notes §5.1; docs/wire.md §12G): sending a message
//! through relays, forwarding relay layers for others under the relay policy, and admitting
//! what reaches this node through relays.
//!
//! * **Sending.** A message whose transport preferences ask for `OnionRouting(n)` is sealed for
//!   a path of `max(n, 1)` relays chosen from the candidates ([`Router::set_relay_candidates`])
//!   by trust and round-trip time; fewer usable candidates → `no_relay`. A message the
//!   Transport has no direct path for ([`Router::handle_no_direct_path`]) goes through the best
//!   single relay, or is dropped `no_route` when there is none.
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

use std::sync::atomic::Ordering as AtomicOrdering;

use super::{Router, RouterOutput};
use crate::identity::{EngineIdentity, Keypair, NodeIdentity};
use crate::mail::{DropReason, Receipt, RelayFrame, RemoteSend, RouteHeader};
use crate::relay::policy::RateLimiter;
use crate::relay::{
    choose_path, Candidate, Opened, Opener, OpenerLimits, RelayPolicy, Sealer, SealerLimits,
};
use crate::time::Now;
use crate::wire::{Destination, MessageId, Security, TransportPrefs};

/// The relay state a Router holds once relaying is enabled.
pub(super) struct Relaying {
    sealer: Sealer,
    opener: Opener,
    policy: RelayPolicy,
    limiter: RateLimiter,
    candidates: Vec<Candidate>,
}

impl Router {
    /// Enables relaying: this node's key pair (its relay key is derived from it), a seed for
    /// the ephemeral keys (from the operating system on a real node), and the policy for
    /// forwarding. Without it, relay frames are refused `relay_refused` and `OnionRouting`
    /// messages `unsupported`.
    pub fn enable_relay(&mut self, node_key: &Keypair, seed: [u8; 32], policy: RelayPolicy) {
        self.relay = Some(Box::new(Relaying {
            sealer: Sealer::new(node_key, seed, SealerLimits::default()),
            opener: Opener::new(node_key, OpenerLimits::default()),
            policy,
            limiter: RateLimiter::default(),
            candidates: Vec::new(),
        }));
    }

    /// The nodes this node can hand relay messages to now (published by the Transport's
    /// driver: connected peers, their trust and measured round-trip time).
    pub fn set_relay_candidates(&mut self, candidates: Vec<Candidate>) {
        if let Some(r) = &mut self.relay {
            r.candidates = candidates;
        }
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
        match relay.opener.open(now, layer) {
            Err(reason) => self.relay_dropped(now, peer, receipt, reason),
            Ok(Opened::Forward {
                next,
                layer,
                expiry,
            }) => {
                if !relay.policy.forwards_for(&peer) {
                    return self.relay_dropped(now, peer, receipt, DropReason::RelayRefused);
                }
                if !self.has_transport {
                    return self.relay_dropped(now, peer, receipt, DropReason::NoTransport);
                }
                self.stats.relayed.fetch_add(1, AtomicOrdering::Relaxed);
                log::trace!("router: relaying from {} to {}", peer.short(), next.short());
                // The Transport keys its ordered streams by (source engine, destination): all
                // relayed traffic from this node to `next` shares one stream.
                let header = RouteHeader {
                    src: EngineIdentity(self.node.0),
                    dst: Destination::Node(next),
                    id: MessageId(0),
                    expiry: Some(expiry),
                    rprefs: None,
                    tprefs: Some(TransportPrefs::RELIABLE_ORDERED),
                    notify: false,
                };
                self.outputs.push_back(RouterOutput::Transport(RemoteSend {
                    node: next,
                    header,
                    wire: layer,
                    relay: Some(RelayFrame { upstream: receipt }),
                }));
            }
            Ok(Opened::Deliver { src, message, .. }) => {
                if src == self.node {
                    return self.relay_dropped(now, peer, receipt, DropReason::RelayBadSource);
                }
                self.stats
                    .received_relayed
                    .fetch_add(1, AtomicOrdering::Relaxed);
                // The proven source node stands in for the authenticated peer: ingress checks
                // the message's `src_node` against it, then its signature.
                self.handle_remote(now, src, message, receipt);
            }
        }
    }

    fn relay_dropped(
        &mut self,
        now: Now,
        peer: NodeIdentity,
        receipt: Option<Receipt>,
        reason: DropReason,
    ) {
        self.receipts.extend(receipt);
        self.stats.dropped(reason);
        log::debug!(
            "router: dropped relay layer from {}: {}",
            peer.short(),
            reason.label()
        );
        self.misbehaved(now, peer, reason);
    }

    /// The Transport has no connection to and no address for `send.node`: the message goes
    /// through the best relay known, or is dropped `no_route`.
    pub fn handle_no_direct_path(&mut self, now: Now, send: RemoteSend) {
        if self.relay.is_none() {
            return self.drop_header(&send.header, DropReason::NoRoute);
        }
        if let Err(reason) = self.send_relayed(now, send.node, send.header, &send.wire, 1) {
            let reason = if reason == DropReason::NoRelay {
                DropReason::NoRoute
            } else {
                reason
            };
            self.drop_header(&send.header, reason);
        }
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
        if let Err(reason) = self.send_relayed(now, node, header, &wire, hops.max(1) as usize) {
            self.drop_header(&header, reason);
        }
    }

    /// Seals `wire` for a path of `relays` relays to `node` and hands it to the Transport.
    fn send_relayed(
        &mut self,
        now: Now,
        node: NodeIdentity,
        header: RouteHeader,
        wire: &[u8],
        relays: usize,
    ) -> Result<(), DropReason> {
        let relay = self.relay.as_mut().ok_or(DropReason::Unsupported)?;
        let path = choose_path(&relay.candidates, &self.node, &node, relays, &[])
            .ok_or(DropReason::NoRelay)?;
        let expiry = header.expiry.ok_or(DropReason::ExpiryOutOfRange)?;
        let layer = relay
            .sealer
            .seal(now, &path, wire, expiry)
            .map_err(|e| {
                log::debug!("router: cannot seal for {}: {e}", node.short());
                DropReason::NoRelay
            })?;
        self.stats.sent_relayed.fetch_add(1, AtomicOrdering::Relaxed);
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
            relay: Some(RelayFrame::default()),
        }));
        Ok(())
    }
}
