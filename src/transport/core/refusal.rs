//! Refused peers: peers the Router cut off for misbehaving (for a backoff) and peers banned by
//! trust 0 (configuration, or the identity store at run time).
//!
//! A refused peer is never dialled, its connections are closed, a connection it opens is
//! refused once TLS has proven who it is, and messages for it are bounced as `peer_refused`
//! rather than queued. Codes: `MISBEHAVING` (0x8) for a cut-off peer, `DENIED` (0x2) for a
//! banned one. Counters: `peers_cut_off` (once per cut-off: a repeated order during the backoff
//! changes nothing), `cut_off_peer_refused`, `banned_peer_refused`.
//!
//! When the backoff passes, the peer is treated as any other: redialled if its connection is
//! permanent or something is queued for it, and accepted.

use rand_core::RngCore;

use super::conn::Conn;
use super::peers::ConnId;
use super::Core;
use crate::identity::NodeIdentity;
use crate::mail::transport::CutOff;
use crate::runtime::stats::{DropReason, Fault};
use crate::time::Now;
use crate::transport::control::close_code;

impl<R: RngCore> Core<R> {
    /// The Router's order to cut a misbehaving peer off: its connections close with
    /// `MISBEHAVING`, what is queued for it is bounced, and it is neither dialled nor accepted
    /// for `cut.backoff`. Counted and logged once; an order while the peer is already cut off
    /// changes nothing.
    pub fn handle_cut_off(&mut self, now: Now, cut: CutOff) {
        let peer = self.peers.entry(cut.node).or_default();
        if peer.cut_off(now.instant) {
            return;
        }
        peer.cut_until = Some(now.instant + cut.backoff);
        self.stats.fault(Fault::PeerCutOff);
        log::warn!(
            "transport: cut off {}: {} messages failed verification (last: {}); neither dialled \
             nor accepted for {}s",
            cut.node,
            cut.bad_messages,
            cut.reason.label(),
            cut.backoff.as_secs()
        );
        self.close_all_of(
            cut.node,
            close_code::MISBEHAVING,
            "cut off: messages failed verification",
        );
        self.bounce_queue(cut.node);
    }

    /// Sets `node`'s trust (from configuration, or a record of the identity store). Trust 0
    /// bans it: its connections close with `DENIED` and what is queued for it is bounced; a
    /// higher trust lifts the ban.
    pub fn set_trust(&mut self, node: NodeIdentity, trust: u8) {
        let peer = self.peers.entry(node).or_default();
        let was_banned = peer.banned();
        peer.trust = Some(trust);
        if trust != 0 {
            if was_banned {
                log::info!(
                    "transport: {} is no longer banned (trust {trust})",
                    node.short()
                );
            }
            return;
        }
        if !was_banned {
            log::info!("transport: {} is banned (trust 0)", node.short());
        }
        self.close_all_of(node, close_code::DENIED, "banned (trust 0)");
        self.bounce_queue(node);
    }

    /// Whether `node`, which has just proven its identity on the accepted connection `conn`,
    /// is refused; if so the connection is closed with the refusal's code and counted.
    pub(super) fn refuse_incoming(
        &mut self,
        conn: &mut Conn,
        q: &mut dyn super::QuicConn,
        now: Now,
        node: NodeIdentity,
    ) -> bool {
        let Some(peer) = self.peers.get(&node) else {
            return false;
        };
        let (fault, code, reason) = if peer.banned() {
            (
                Fault::BannedPeerRefused,
                close_code::DENIED,
                "banned (trust 0)",
            )
        } else if peer.cut_off(now.instant) {
            (
                Fault::CutOffPeerRefused,
                close_code::MISBEHAVING,
                "cut off for misbehaving; try again later",
            )
        } else {
            return false;
        };
        self.stats.fault(fault);
        log::info!(
            "transport: refused {} from {}: {reason}",
            node.short(),
            conn.peer_addr
        );
        // Not a failed handshake, and never the peer's connection: closing it ends here.
        conn.abandoned = true;
        conn.close(q, code, reason);
        true
    }

    /// Whether messages for `node` are refused at `now` (banned or cut off).
    pub(super) fn is_refused(&self, now: Now, node: &NodeIdentity) -> bool {
        self.peers.get(node).is_some_and(|p| p.refused(now.instant))
    }

    /// Bounces every message queued for `node` as `peer_refused`.
    pub(super) fn bounce_queue(&mut self, node: NodeIdentity) {
        let queued = match self.peers.get_mut(&node) {
            Some(p) => p.take_queue(),
            None => return,
        };
        for m in queued {
            self.bounce(m, DropReason::PeerRefused);
        }
    }

    /// Closes every connection of `node` at its next service; a dial in progress is given up
    /// on (the peer is refused, so it is not retried until the refusal ends).
    fn close_all_of(&mut self, node: NodeIdentity, code: u64, reason: &str) {
        let dialing = self.peers.get(&node).and_then(|p| p.dialing);
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.node == Some(node))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.close_later(code, reason);
                if dialing == Some(id) {
                    conn.abandoned = true;
                }
                self.dirty.insert(id);
            }
        }
        if let Some(p) = self.peers.get_mut(&node) {
            if p.dialing.is_some() {
                p.dialing = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fake::{message, Net};
    use crate::identity::EngineIdentity;
    use crate::mail::transport::{ConnectResult, CutOff, TransportEvent};
    use crate::runtime::stats::{DropReason, Fault};
    use crate::transport::control::close_code;
    use crate::transport::{TransportConfig, TransportRequest};

    fn cut(node: crate::identity::NodeIdentity, backoff: Duration) -> CutOff {
        CutOff {
            node,
            bad_messages: 16,
            reason: DropReason::BadSignature,
            backoff,
        }
    }

    /// The close code node `i`'s end of its connection `conn` was closed with by its own core.
    fn closed_with(net: &Net, i: usize, conn: u64) -> Option<u64> {
        net.nodes[i]
            .conns
            .get(&conn)?
            .closed_by_us
            .as_ref()
            .map(|c| c.0)
    }

    #[test]
    fn a_cut_off_peer_is_closed_not_redialled_refused_and_back_after_the_backoff() {
        let mut net = Net::new(2, TransportConfig::default());
        let (a, b) = (net.nodes[0].id, net.nodes[1].id);
        // Node 0 keeps a permanent connection to node 1: it would redial at once.
        net.nodes[0].core.peers.get_mut(&b).unwrap().permanent = true;
        let now = net.now;
        net.nodes[0]
            .core
            .handle_request(now, EngineIdentity([9; 32]), TransportRequest::Subscribe);
        net.advance(Duration::from_millis(60));
        net.settle();
        let conn = *net.live(0).first().expect("connected");
        let dials = net.nodes[0]
            .stats
            .dials
            .load(std::sync::atomic::Ordering::Relaxed);

        let now = net.now;
        let backoff = Duration::from_secs(30);
        net.nodes[0].core.handle_cut_off(now, cut(b, backoff));
        // A second order during the backoff changes nothing.
        net.nodes[0].core.handle_cut_off(now, cut(b, backoff));
        net.settle();
        assert_eq!(net.nodes[0].stats.faults(Fault::PeerCutOff), 1);
        assert_eq!(closed_with(&net, 0, conn), Some(close_code::MISBEHAVING));
        assert!(net.live(0).is_empty());
        assert!(net.nodes[0].events.iter().any(|e| matches!(
            e,
            TransportEvent::NodeDisconnected { node, .. } if *node == b
        )));

        // Messages for it are bounced, a connect request is refused, and no dial is made.
        net.nodes[0]
            .core
            .handle_send(now, message(b, 1, 1, vec![1; 20]));
        net.nodes[0].core.handle_request(
            now,
            EngineIdentity([9; 32]),
            TransportRequest::Connect { node: b },
        );
        net.settle();
        assert!(net.nodes[0]
            .bounced
            .iter()
            .any(|(_, r)| *r == DropReason::PeerRefused));
        assert!(net.nodes[0].events.iter().any(|e| matches!(
            e,
            TransportEvent::Connect {
                result: ConnectResult::Refused,
                ..
            }
        )));
        for _ in 0..20 {
            net.advance(Duration::from_secs(1));
            net.settle();
        }
        let counted = |net: &Net| {
            net.nodes[0]
                .stats
                .dials
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        assert_eq!(counted(&net), dials, "not redialled during the backoff");

        // The peer dials in: refused, counted.
        net.nodes[1].core.handle_request(
            net.now,
            EngineIdentity([9; 32]),
            TransportRequest::Connect { node: a },
        );
        net.settle();
        assert_eq!(net.nodes[0].stats.faults(Fault::CutOffPeerRefused), 1);
        assert!(net.live(0).is_empty() && net.live(1).is_empty());
        assert_eq!(net.nodes[0].stats.faults(Fault::HandshakeFailed), 0);

        // After the backoff the permanent connection comes back.
        for _ in 0..12 {
            net.advance(Duration::from_secs(1));
            net.settle();
        }
        assert!(counted(&net) > dials, "redialled after the backoff");
        assert_eq!(net.live(0).len(), 1, "connected again");
        assert_eq!(net.nodes[0].stats.faults(Fault::PeerCutOff), 1);
    }

    #[test]
    fn a_banned_peer_is_never_dialled_and_its_connections_are_refused() {
        let mut net = Net::new(2, TransportConfig::default());
        let (a, b) = (net.nodes[0].id, net.nodes[1].id);
        net.nodes[0].core.set_trust(b, 0);
        let now = net.now;
        net.nodes[0]
            .core
            .handle_send(now, message(b, 1, 1, vec![1; 20]));
        net.settle();
        assert_eq!(net.nodes[0].bounced.len(), 1);
        assert_eq!(net.nodes[0].bounced[0].1, DropReason::PeerRefused);
        assert_eq!(
            net.nodes[0]
                .stats
                .dials
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );

        net.nodes[1].core.handle_request(
            now,
            EngineIdentity([9; 32]),
            TransportRequest::Connect { node: a },
        );
        net.settle();
        assert_eq!(net.nodes[0].stats.faults(Fault::BannedPeerRefused), 1);
        let refused = net.nodes[0]
            .conns
            .values()
            .find_map(|c| c.closed_by_us.clone());
        assert_eq!(refused.map(|c| c.0), Some(close_code::DENIED));

        // Trust raised: the ban is lifted.
        net.nodes[0].core.set_trust(b, 1);
        net.nodes[0]
            .core
            .handle_send(net.now, message(b, 1, 2, vec![2; 20]));
        net.settle();
        assert_eq!(net.live(0).len(), 1);
    }

    #[test]
    fn a_ban_closes_the_open_connection() {
        let mut net = Net::new(2, TransportConfig::default());
        let b = net.nodes[1].id;
        let now = net.now;
        net.nodes[0]
            .core
            .handle_send(now, message(b, 1, 1, vec![1; 20]));
        net.settle();
        let conn = *net.live(0).first().expect("connected");
        net.nodes[0].core.set_trust(b, 0);
        net.settle();
        assert_eq!(closed_with(&net, 0, conn), Some(close_code::DENIED));
        assert!(net.live(0).is_empty());
    }
}
