//! What the Transport knows about each remote node: its addresses, its outbound queue, its
//! connection, and when to dial it next.
//!
//! Queueing: a message for a node without a ready connection waits in the node's queue until it
//! can be sent or its expiry passes. Every message counts against
//! [`TransportLimits::max_peer_queue_bytes`](crate::transport::TransportLimits) from the moment it is queued
//! until the peer acknowledges it.
//!
//! Dialling: one address per attempt, chosen in this order —
//! 1. addresses that are not *failing* ([`FAILING_AFTER`] failed dials in a row, each within
//!    [`FAILURE_MEMORY`] of now) before those that are;
//! 2. the local preference of the address's transport (`TransportConfig::transports`: by
//!    default QUIC, then TLS over TCP; a kind not listed is never dialled);
//! 3. the fewest recent failed dials;
//! 4. the lowest round-trip time measured on an earlier connection to it (an address never
//!    measured counts as fastest, so each is tried once);
//! 5. the advert's weight (highest first) — the peer's own preference.
//!
//! So a peer is reached at its fastest address of the preferred transport once each has been
//! measured; a failing address gives way to the next; and when QUIC keeps failing (UDP blocked
//! on the path) the peer's TCP address is dialled. Failures are forgotten after
//! [`FAILURE_MEMORY`], so QUIC is tried again later. Between attempts the delay starts at
//! `backoff_initial`, doubles per failed attempt up to `backoff_max`, and varies by ±20 % so
//! that many nodes do not redial in step. A successful connection resets it.
//!
//! Refusal: a peer with trust 0 (banned), or cut off for misbehaving until its backoff passes,
//! is never dialled ([`Peer::refused`]); the core also refuses its connections and bounces what
//! is queued for it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::time::Timestamp;
use crate::transport::RemoteSend;
use crate::wire::{NodeAdvert, TransportAddress, TransportKind, TransportPrefs};

/// Failed dials in a row after which an address is *failing* and gives way to addresses of
/// less preferred transports (the TCP fallback).
pub const FAILING_AFTER: u32 = 2;
/// How long a failed dial counts against an address.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(300);

/// Identifies a connection inside the driver.
pub type ConnId = u64;

/// One remote node.
#[derive(Debug, Default)]
pub struct Peer {
    /// Addresses from its advert, highest weight first.
    pub addrs: Vec<TransportAddress>,
    /// Version of its advert we hold.
    pub advert_version: Option<u64>,
    /// Transport preferences from its record.
    pub tprefs: Option<TransportPrefs>,
    /// Whether the connection is kept up.
    pub permanent: bool,
    /// Messages waiting for a connection, oldest first.
    pub queue: VecDeque<RemoteSend>,
    /// Bytes queued here or sent and not yet acknowledged.
    pub bytes: usize,
    /// The ready connection, if any.
    pub active: Option<ConnId>,
    /// Older connections to this peer still delivering what they carry after a simultaneous
    /// dial was resolved. Nothing new is sent while there are any, so that the messages of one
    /// engine pair cannot overtake each other across two connections.
    pub retiring: u32,
    /// A dial in progress, if any.
    pub dialing: Option<ConnId>,
    /// Failed attempts since the last success.
    pub attempts: u32,
    /// Earliest time of the next dial.
    pub next_dial: Option<Instant>,
    /// The address of the dial in progress (or last started).
    pub dial_addr: Option<TransportAddress>,
    /// Round-trip times measured on outbound connections, per address of `addrs` (looked up
    /// only; at most one per address, at most 16).
    pub rtt: HashMap<TransportAddress, Duration>,
    /// Failed dials per address of `addrs` since it last worked, with the time of the last
    /// (looked up only; at most one per address).
    pub dial_failures: HashMap<TransportAddress, (u32, Instant)>,
    /// Local trust (configuration or the identity store); `Some(0)` bans the peer.
    pub trust: Option<u8>,
    /// Its reputation in the identity store, as last announced (`None`: never set).
    pub reputation: Option<u8>,
    /// Until when the peer is cut off for misbehaving.
    pub cut_until: Option<Instant>,
}

impl Peer {
    /// Takes the addresses and version of `advert`: the addresses of the transports in
    /// `kinds` (the local `TransportConfig::transports`); others are never dialled.
    pub fn learn_advert(&mut self, advert: &NodeAdvert, kinds: &[TransportKind]) {
        let mut addrs: Vec<(TransportAddress, u8)> = advert
            .addrs
            .iter()
            .filter(|(a, _)| kinds.contains(&a.kind()))
            .copied()
            .collect();
        addrs.sort_by_key(|a| std::cmp::Reverse(a.1));
        self.addrs = addrs.into_iter().map(|(a, _)| a).collect();
        self.advert_version = Some(advert.version);
        let current = &self.addrs;
        self.rtt.retain(|a, _| current.contains(a));
        self.dial_failures.retain(|a, _| current.contains(a));
    }

    /// Whether the peer is banned (trust 0).
    pub fn banned(&self) -> bool {
        self.trust == Some(0)
    }

    /// Whether the peer is cut off for misbehaving at `now`.
    pub fn cut_off(&self, now: Instant) -> bool {
        self.cut_until.is_some_and(|t| now < t)
    }

    /// Whether the peer is refused at `now`: banned, or cut off.
    pub fn refused(&self, now: Instant) -> bool {
        self.banned() || self.cut_off(now)
    }

    /// Whether a dial should start now: something to send (or permanent), not refused, no
    /// connection, no dial in progress, an address known, and the backoff passed.
    pub fn should_dial(&self, now: Instant) -> bool {
        (self.permanent || !self.queue.is_empty())
            && !self.refused(now)
            && self.active.is_none()
            && self.dialing.is_none()
            && !self.addrs.is_empty()
            && self.next_dial.is_none_or(|t| now >= t)
    }

    /// Whether the peer has an address of one of the transports in `kinds`.
    pub fn dialable(&self, kinds: &[TransportKind]) -> bool {
        self.addrs.iter().any(|a| kinds.contains(&a.kind()))
    }

    /// Recent failed dials of `addr` at `now` (failures older than [`FAILURE_MEMORY`] are
    /// forgotten).
    pub fn recent_failures(&self, addr: &TransportAddress, now: Instant) -> u32 {
        match self.dial_failures.get(addr) {
            Some(&(n, last)) if now.saturating_duration_since(last) < FAILURE_MEMORY => n,
            _ => 0,
        }
    }

    /// The address for the next attempt at `now`, among those of the transports in `kinds`
    /// (most preferred first; see the module doc for the order).
    pub fn next_address(
        &mut self,
        now: Instant,
        kinds: &[TransportKind],
    ) -> Option<TransportAddress> {
        let addr = self
            .addrs
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                let rank = kinds.iter().position(|k| *k == a.kind())?;
                let failures = self.recent_failures(a, now);
                let key = (
                    failures >= FAILING_AFTER,
                    rank,
                    failures,
                    self.rtt.get(a).copied().unwrap_or(Duration::ZERO),
                    i,
                );
                Some((key, *a))
            })
            .min_by_key(|(key, _)| *key)
            .map(|(_, a)| a)?;
        self.dial_addr = Some(addr);
        Some(addr)
    }

    /// The round-trip time measured on an outbound connection to `addr` (kept if `addr` is one
    /// of the advert's).
    pub fn record_rtt(&mut self, addr: TransportAddress, rtt: Duration) {
        if self.addrs.contains(&addr) {
            self.rtt.insert(addr, rtt);
        }
    }

    /// The identity store's RTT for `addr` (measured in an earlier run): kept unless this run
    /// has measured the address itself.
    pub fn seed_rtt(&mut self, addr: TransportAddress, rtt: Duration) {
        if self.addrs.contains(&addr) {
            self.rtt.entry(addr).or_insert(rtt);
        }
    }

    /// A dial to `addr` worked: its failures are forgotten.
    pub fn dial_worked(&mut self, addr: TransportAddress) {
        self.dial_failures.remove(&addr);
    }

    /// Records a failed attempt and schedules the next one. `jitter` is a uniform value in
    /// [0, 1) from the caller's random source.
    pub fn failed(&mut self, now: Instant, initial: Duration, max: Duration, jitter: f64) {
        if let Some(a) = self.dial_addr.take() {
            if self.addrs.contains(&a) {
                let recent = self.recent_failures(&a, now);
                self.dial_failures.insert(a, (recent + 1, now));
            }
        }
        self.attempts = self.attempts.saturating_add(1);
        self.next_dial = Some(now + backoff(self.attempts, initial, max, jitter));
    }

    /// Records a successful connection.
    pub fn connected(&mut self, conn: ConnId) {
        self.active = Some(conn);
        self.attempts = 0;
        self.next_dial = None;
    }

    /// Removes every queued message.
    pub fn take_queue(&mut self) -> Vec<RemoteSend> {
        let taken: Vec<RemoteSend> = self.queue.drain(..).collect();
        for m in &taken {
            self.bytes = self.bytes.saturating_sub(m.wire.len());
        }
        taken
    }

    /// Removes the queued messages whose expiry has passed.
    pub fn take_expired(&mut self, now: Timestamp) -> Vec<RemoteSend> {
        if !self
            .queue
            .iter()
            .any(|m| m.header.expiry.is_some_and(|e| e <= now))
        {
            return Vec::new();
        }
        let (expired, kept): (Vec<_>, Vec<_>) = self
            .queue
            .drain(..)
            .partition(|m| m.header.expiry.is_some_and(|e| e <= now));
        self.queue = kept.into();
        for m in &expired {
            self.bytes = self.bytes.saturating_sub(m.wire.len());
        }
        expired
    }
}

/// The delay before attempt `attempts + 1`: `initial · 2^(attempts-1)`, capped at `max`, times a
/// factor in [0.8, 1.2).
pub fn backoff(attempts: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1 << exp).min(max);
    base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{EngineIdentity, Keypair, NodeIdentity};
    use crate::mail::RouteHeader;
    use crate::wire::{Destination, MessageId, TransportAddress};

    fn send(expiry: u64) -> RemoteSend {
        RemoteSend {
            node: NodeIdentity([1; 32]),
            header: RouteHeader {
                src: EngineIdentity([2; 32]),
                dst: Destination::Node(NodeIdentity([1; 32])),
                id: MessageId(expiry),
                expiry: Some(Timestamp(expiry)),
                rprefs: None,
                tprefs: None,
                notify: false,
            },
            wire: vec![0; 10],
            relay: None,
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let i = Duration::from_millis(100);
        let m = Duration::from_secs(5);
        assert_eq!(backoff(1, i, m, 0.5), Duration::from_millis(100));
        assert_eq!(backoff(2, i, m, 0.5), Duration::from_millis(200));
        assert_eq!(backoff(4, i, m, 0.5), Duration::from_millis(800));
        assert_eq!(backoff(20, i, m, 0.5), m);
        assert!(backoff(3, i, m, 0.0) >= Duration::from_millis(320));
        assert!(backoff(3, i, m, 0.999) < Duration::from_millis(480));
    }

    fn q(port: u16) -> TransportAddress {
        TransportAddress::quic(([127, 0, 0, 1], port).into())
    }

    fn t(port: u16) -> TransportAddress {
        TransportAddress::tcp(([127, 0, 0, 1], port).into())
    }

    const BOTH: [TransportKind; 2] = [TransportKind::Quic, TransportKind::Tcp];

    fn advert(addrs: Vec<(TransportAddress, u8)>) -> NodeAdvert {
        NodeAdvert::new_signed(
            &Keypair::generate(),
            addrs,
            1,
            Timestamp(1),
            Timestamp(2),
            None,
        )
    }

    #[test]
    fn addresses_by_weight_and_round_robin() {
        let mut p = Peer::default();
        p.learn_advert(&advert(vec![(q(1), 10), (q(2), 200)]), &BOTH);
        let now = Instant::now();
        let (i, m) = (Duration::from_millis(1), Duration::from_millis(10));
        // Failing addresses take turns, highest weight first.
        assert_eq!(p.next_address(now, &BOTH), Some(q(2)));
        p.failed(now, i, m, 0.5);
        assert_eq!(p.next_address(now, &BOTH), Some(q(1)));
        p.failed(now, i, m, 0.5);
        assert_eq!(p.next_address(now, &BOTH), Some(q(2)));
        // Port 2 works again, and is measured slow; port 1 is tried (never measured), measured
        // fast, and from then on preferred.
        p.dial_worked(q(2));
        p.record_rtt(q(2), Duration::from_millis(80));
        p.dial_worked(q(1));
        assert_eq!(p.next_address(now, &BOTH), Some(q(1)));
        p.record_rtt(q(1), Duration::from_millis(2));
        assert_eq!(p.next_address(now, &BOTH), Some(q(1)));
        assert_eq!(p.next_address(now, &BOTH), Some(q(1)));
        // An address not in the advert is not recorded; a new advert forgets gone addresses.
        p.record_rtt(q(3), Duration::from_millis(1));
        assert_eq!(p.rtt.len(), 2);
        p.learn_advert(&advert(vec![(q(1), 10)]), &BOTH);
        assert_eq!(p.rtt.len(), 1);
    }

    #[test]
    fn tcp_is_dialled_once_quic_keeps_failing_and_quic_is_retried_later() {
        let mut p = Peer::default();
        // The TCP address has the higher weight, yet the local preference puts QUIC first.
        p.learn_advert(&advert(vec![(q(1), 100), (t(1), 250)]), &BOTH);
        let now = Instant::now();
        let (i, m) = (Duration::from_millis(1), Duration::from_millis(10));
        assert_eq!(p.next_address(now, &BOTH), Some(q(1)));
        p.failed(now, i, m, 0.5);
        // One failure is not yet failing: QUIC again.
        assert_eq!(p.next_address(now, &BOTH), Some(q(1)));
        p.failed(now, i, m, 0.5);
        assert_eq!(p.recent_failures(&q(1), now), FAILING_AFTER);
        assert_eq!(p.next_address(now, &BOTH), Some(t(1)));
        p.dial_worked(t(1));
        assert_eq!(p.next_address(now, &BOTH), Some(t(1)));
        // The QUIC failures are forgotten after FAILURE_MEMORY: QUIC is tried again.
        let later = now + FAILURE_MEMORY;
        assert_eq!(p.recent_failures(&q(1), later), 0);
        assert_eq!(p.next_address(later, &BOTH), Some(q(1)));
        // A failure after the memory passed starts counting from one.
        p.failed(later, i, m, 0.5);
        assert_eq!(p.recent_failures(&q(1), later), 1);
        assert_eq!(p.next_address(later, &BOTH), Some(q(1)));
        // Both failing: the preferred kind first again.
        p.failed(later, i, m, 0.5);
        assert_eq!(p.next_address(later, &BOTH), Some(t(1)));
        p.failed(later, i, m, 0.5);
        p.next_address(later, &BOTH);
        p.failed(later, i, m, 0.5);
        assert_eq!(p.recent_failures(&t(1), later), 2);
        assert_eq!(p.next_address(later, &BOTH), Some(q(1)));
    }

    #[test]
    fn a_transport_not_configured_is_never_dialled() {
        let quic_only = [TransportKind::Quic];
        let tcp_first = [TransportKind::Tcp, TransportKind::Quic];
        let mut p = Peer::default();
        p.learn_advert(&advert(vec![(q(1), 100), (t(1), 50)]), &quic_only);
        assert_eq!(p.addrs, vec![q(1)]);
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(p.next_address(now, &quic_only), Some(q(1)));
            p.failed(now, Duration::from_millis(1), Duration::from_millis(1), 0.5);
        }
        p.learn_advert(&advert(vec![(q(1), 100), (t(1), 50)]), &tcp_first);
        assert!(p.dialable(&tcp_first));
        assert_eq!(p.next_address(now, &tcp_first), Some(t(1)));
        p.learn_advert(&advert(vec![(t(1), 50)]), &quic_only);
        assert!(p.addrs.is_empty() && !p.dialable(&quic_only));
        assert_eq!(p.next_address(now, &quic_only), None);
    }

    #[test]
    fn a_refused_peer_is_not_dialled_until_its_backoff_passes() {
        let now = Instant::now();
        let mut p = Peer {
            permanent: true,
            addrs: vec![q(9)],
            ..Peer::default()
        };
        assert!(p.should_dial(now));
        p.cut_until = Some(now + Duration::from_secs(30));
        assert!(p.refused(now) && !p.should_dial(now));
        assert!(!p.should_dial(now + Duration::from_millis(29_999)));
        assert!(!p.refused(now + Duration::from_secs(30)));
        assert!(p.should_dial(now + Duration::from_secs(30)));
        p.trust = Some(0);
        assert!(p.banned() && !p.should_dial(now + Duration::from_secs(3600)));
        p.trust = Some(1);
        assert!(p.should_dial(now + Duration::from_secs(3600)));
    }

    #[test]
    fn dial_rules_and_expiry() {
        let now = Instant::now();
        let mut p = Peer::default();
        assert!(!p.should_dial(now), "nothing to send");
        p.queue.push_back(send(5));
        p.queue.push_back(send(50));
        p.bytes = 20;
        assert!(!p.should_dial(now), "no address");
        p.addrs.push(q(9));
        assert!(p.should_dial(now));
        p.failed(now, Duration::from_millis(100), Duration::from_secs(1), 0.5);
        assert!(!p.should_dial(now));
        assert!(p.should_dial(now + Duration::from_millis(100)));
        let expired = p.take_expired(Timestamp(10));
        assert_eq!(expired.len(), 1);
        assert_eq!(p.queue.len(), 1);
        assert_eq!(p.bytes, 10);
        p.connected(7);
        assert!(!p.should_dial(now + Duration::from_secs(9)));
        assert_eq!(p.attempts, 0);
    }
}
