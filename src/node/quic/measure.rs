//! What the Transport's driver measures on its connections, and where it goes: every
//! [`BOARD_EVERY`] the connected peers are published as relay candidates with their round-trip
//! time and loss; the RTT is also kept per dialled address in the core (to order a peer's
//! addresses); and every [`MEASURE_EVERY`] each peer's measurement is sent to the identity
//! store, which keeps it across restarts.
//!
//! RTT is quiche's smoothed estimate on the active path, or over TLS over TCP the record
//! layer's PING/PONG. Loss is quiche's packets declared lost per million sent on the
//! connection (none over TCP, which hides its losses).

use std::time::Duration;

use super::Driver;
use crate::mail::identity::{
    IdentityRequest, IdentityUpdate, Measurement, Party, DEFAULT_REPUTATION, DEFAULT_TRUST,
};
use crate::node::nis_shell::NisMail;
use crate::relay::Candidate;
use crate::time::Now;
use crate::wire::TransportKind;

/// How often the relay candidates are published (200 ms).
pub(super) const BOARD_EVERY: Duration = Duration::from_millis(200);
/// How often a connected peer's measurement is sent to the identity store (10 s; the first as
/// soon as there is one).
pub const MEASURE_EVERY: Duration = Duration::from_secs(10);

impl Driver {
    /// Publishes the connected peers as relay candidates (configured trust, [`DEFAULT_TRUST`]
    /// if none; RTT; loss), hands each RTT to the core ([`crate::transport::core::Core::handle_rtt`])
    /// and sends the measurements that are due to the identity store.
    pub(super) fn publish_board(&mut self, now: Now) {
        if now.instant < self.next_board {
            return;
        }
        self.next_board = now.instant + BOARD_EVERY;
        let mut candidates = Vec::new();
        let ready = self.core.ready_peers();
        for peer in &ready {
            let (node, conn) = (peer.node, peer.conn);
            let (rtt, loss_ppm, transport) = match self.conns.get(&conn) {
                Some(c) => {
                    let stats = c.q.stats();
                    let loss = (stats.sent > 0)
                        .then(|| (stats.lost as u64 * 1_000_000 / stats.sent as u64) as u32);
                    (
                        c.q.path_stats().next().map(|p| p.rtt),
                        loss,
                        TransportKind::Quic,
                    )
                }
                None => (
                    self.tcp.get(&conn).and_then(|s| s.conn.rtt()),
                    Some(0),
                    TransportKind::Tcp,
                ),
            };
            if let Some(rtt) = rtt {
                self.core.handle_rtt(conn, rtt);
                self.report(now, node, conn, rtt, loss_ppm.unwrap_or(0));
            }
            candidates.push(Candidate {
                node,
                trust: peer.trust.unwrap_or(DEFAULT_TRUST),
                reputation: peer.reputation.unwrap_or(DEFAULT_REPUTATION),
                rtt,
                loss_ppm,
                transport,
            });
        }
        if self.measured.len() > ready.len() {
            let ready: std::collections::HashSet<_> = ready.iter().map(|p| p.node).collect();
            self.measured.retain(|n, _| ready.contains(n));
        }
        self.relay_board.publish(candidates);
    }

    /// Sends `node`'s measurement to the identity store if one is due.
    fn report(
        &mut self,
        now: Now,
        node: crate::identity::NodeIdentity,
        conn: crate::transport::core::peers::ConnId,
        rtt: Duration,
        loss_ppm: u32,
    ) {
        let due = self
            .measured
            .get(&node)
            .is_none_or(|t| now.instant.saturating_duration_since(*t) >= MEASURE_EVERY);
        let Some(address) = self.core.connection_address(conn) else {
            return;
        };
        if !due {
            return;
        }
        let measurement = Measurement {
            address,
            rtt_us: rtt.as_micros().min(u128::from(u32::MAX)) as u32,
            loss_ppm,
            at: now.wall,
        };
        let mail = NisMail::Request {
            from: Party::Transport,
            req: IdentityRequest::Update(IdentityUpdate::Measured {
                id: node,
                measurement,
            }),
        };
        // Measurements are refreshed: one that does not fit now is sent at the next round.
        if self.nis.try_send(mail).is_ok() {
            self.measured.insert(node, now.instant);
        }
    }
}
