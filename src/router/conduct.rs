//! Conduct: the Router's tally, per peer, of messages that failed verification in ways only a
//! misbehaving peer can cause, the reputation they cost, and the decision to cut the peer off.
//!
//! # What counts
//!
//! A peer's honest Transport sends only what its own engines signed, with its own identity as
//! the source node, in this version's encoding, and QUIC's integrity protection rules out
//! corruption on the way. So these drops ([`counts`]) can only come from a peer that forges,
//! relays without being asked to, or is broken:
//!
//! * `bad_signature` — the signature does not verify;
//! * `weak_key`, `bad_key` — a source key no honest engine has;
//! * `source_node_mismatch` — `src_node` is not the peer the TLS handshake authenticated;
//! * `malformed` — bytes that do not decode as a version-1 message.
//!
//! Not counted, because an honest peer produces them: `unknown_version` (a newer peer),
//! `duplicate` and `replay` (messages resent after a lost connection), `expired` and
//! `expiry_out_of_range` (clock skew), `replay_state_full` (this node's own limit), and every
//! drop after verification (`not_for_this_node`, `no_route`, …: stale routing).
//!
//! # What follows
//!
//! Each counted message lowers the peer's reputation in the identity store by one. The Router
//! reports the accumulated loss as one `IdentityUpdate::Reputation` per peer per drain of its
//! outputs ([`Conduct::take_report`]), so a flood costs one update per drain, not one per
//! message. When a peer's tally reaches [`ConductLimits::bad_messages_before_disconnect`],
//! [`Conduct::record`] returns a [`CutOff`] for the Transport: it closes the peer's connections
//! (`MISBEHAVING`, 0x8) and neither dials nor accepts it for [`ConductLimits::backoff`]. The
//! tally starts again from zero; bad messages still arriving during the backoff (already in the
//! mailbox) cost reputation but do not lead to another cut-off.
//!
//! # Memory
//!
//! At most [`ConductLimits::max_peers`] tallies (default 4,096, about 100 bytes each with map
//! overhead: under 512 KiB). A tally is forgotten [`ConductLimits::forget_after`] after its last
//! bad message once its backoff has passed ([`Conduct::sweep`]); a new peer arriving at a full
//! table evicts the tally whose last bad message is oldest.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::identity::NodeIdentity;
use crate::mail::transport::CutOff;
use crate::mail::DropReason;

/// Limits of the conduct tally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConductLimits {
    /// Messages from one peer that fail verification (see [`counts`]) before it is cut off
    /// (default 16; `limits.bad_messages_before_disconnect`).
    pub bad_messages_before_disconnect: u32,
    /// How long a cut-off peer is neither dialled nor accepted (default 300 s;
    /// `limits.misbehaving_peer_backoff_s`).
    pub backoff: Duration,
    /// Most peers with a tally (default 4,096).
    pub max_peers: usize,
    /// A tally is forgotten this long after its last bad message, once its backoff has passed
    /// (default 10 min).
    pub forget_after: Duration,
}

impl Default for ConductLimits {
    fn default() -> Self {
        ConductLimits {
            bad_messages_before_disconnect: 16,
            backoff: Duration::from_secs(300),
            max_peers: 4096,
            forget_after: Duration::from_secs(600),
        }
    }
}

/// Whether a drop for `reason` counts against the peer that sent the message (see the module
/// doc for why each does or does not).
pub fn counts(reason: DropReason) -> bool {
    matches!(
        reason,
        DropReason::BadSignature
            | DropReason::WeakKey
            | DropReason::BadKey
            | DropReason::SourceNodeMismatch
            | DropReason::Malformed
            | DropReason::RelayBadMac
            | DropReason::RelayMalformed
            | DropReason::RelayBadSource
            | DropReason::RelayBadReceipt
    )
}

/// One peer's tally.
#[derive(Clone, Copy, Debug)]
struct Tally {
    /// Bad messages since the peer was last cut off (or first seen).
    bad: u32,
    /// When the last one arrived.
    last: Instant,
    /// Until when the peer is cut off: bad messages then do not count towards another cut-off.
    quiet_until: Option<Instant>,
    /// Reputation lost and not yet reported to the identity store.
    unreported: u32,
}

/// The tally of every misbehaving peer (see the module doc).
#[derive(Debug)]
pub struct Conduct {
    limits: ConductLimits,
    tallies: BTreeMap<NodeIdentity, Tally>,
    /// Peers with reputation loss to report.
    unreported: BTreeSet<NodeIdentity>,
}

impl Conduct {
    /// An empty tally with `limits`.
    pub fn new(limits: ConductLimits) -> Conduct {
        Conduct {
            limits,
            tallies: BTreeMap::new(),
            unreported: BTreeSet::new(),
        }
    }

    /// A message from `peer` was dropped for `reason` at `now`. Drops that do not [`count`]
    /// are ignored. Returns the order to cut the peer off when this message brings its tally to
    /// the limit.
    ///
    /// [`count`]: counts
    pub fn record(
        &mut self,
        now: Instant,
        peer: NodeIdentity,
        reason: DropReason,
    ) -> Option<CutOff> {
        if !counts(reason) {
            return None;
        }
        if !self.tallies.contains_key(&peer) && self.tallies.len() >= self.limits.max_peers {
            self.evict_oldest();
        }
        let tally = self.tallies.entry(peer).or_insert(Tally {
            bad: 0,
            last: now,
            quiet_until: None,
            unreported: 0,
        });
        tally.last = now;
        tally.unreported = tally.unreported.saturating_add(1);
        self.unreported.insert(peer);
        if tally.quiet_until.is_some_and(|t| now < t) {
            return None;
        }
        tally.quiet_until = None;
        tally.bad += 1;
        if tally.bad < self.limits.bad_messages_before_disconnect {
            return None;
        }
        let bad_messages = tally.bad;
        tally.bad = 0;
        tally.quiet_until = Some(now + self.limits.backoff);
        Some(CutOff {
            node: peer,
            bad_messages,
            reason,
            backoff: self.limits.backoff,
        })
    }

    /// The Transport could not take `cut` (its mailbox was full): the peer's next bad message
    /// orders the cut-off again.
    pub fn refused(&mut self, cut: &CutOff) {
        if let Some(t) = self.tallies.get_mut(&cut.node) {
            t.quiet_until = None;
            t.bad = t.bad.max(cut.bad_messages.saturating_sub(1));
        }
    }

    /// The next peer whose reputation loss is to be reported, with the loss (at most 255, the
    /// whole scale); the loss is then counted as reported.
    pub fn take_report(&mut self) -> Option<(NodeIdentity, u8)> {
        loop {
            let peer = self.unreported.pop_first()?;
            let Some(t) = self.tallies.get_mut(&peer) else {
                continue;
            };
            let loss = std::mem::take(&mut t.unreported).min(255) as u8;
            if loss > 0 {
                return Some((peer, loss));
            }
        }
    }

    /// Forgets tallies whose last bad message is older than `forget_after` and whose backoff
    /// has passed.
    pub fn sweep(&mut self, now: Instant) {
        let forget_after = self.limits.forget_after;
        self.tallies.retain(|_, t| {
            t.quiet_until.is_some_and(|q| now < q)
                || now.saturating_duration_since(t.last) < forget_after
        });
    }

    /// Bad messages counted from `peer` towards its next cut-off, if it has a tally.
    pub fn bad_messages(&self, peer: &NodeIdentity) -> Option<u32> {
        self.tallies.get(peer).map(|t| t.bad)
    }

    /// Peers with a tally.
    pub fn len(&self) -> usize {
        self.tallies.len()
    }

    /// Whether no peer has a tally.
    pub fn is_empty(&self) -> bool {
        self.tallies.is_empty()
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .tallies
            .iter()
            .min_by_key(|(_, t)| t.last)
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.tallies.remove(&id);
            self.unreported.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeIdentity = NodeIdentity([1; 32]);
    const B: NodeIdentity = NodeIdentity([2; 32]);

    fn limits(threshold: u32) -> ConductLimits {
        ConductLimits {
            bad_messages_before_disconnect: threshold,
            backoff: Duration::from_secs(60),
            max_peers: 3,
            forget_after: Duration::from_secs(600),
        }
    }

    #[test]
    fn the_threshold_cuts_a_peer_off_once_per_backoff() {
        let t0 = Instant::now();
        let mut c = Conduct::new(limits(4));
        for i in 1..4 {
            assert_eq!(
                c.record(t0, A, DropReason::BadSignature),
                None,
                "message {i}"
            );
        }
        assert_eq!(c.bad_messages(&A), Some(3));
        let cut = c
            .record(t0, A, DropReason::SourceNodeMismatch)
            .expect("fourth");
        assert_eq!(
            cut,
            CutOff {
                node: A,
                bad_messages: 4,
                reason: DropReason::SourceNodeMismatch,
                backoff: Duration::from_secs(60),
            }
        );
        // Still arriving during the backoff: reputation only.
        for _ in 0..100 {
            assert_eq!(
                c.record(t0 + Duration::from_secs(1), A, DropReason::BadSignature),
                None
            );
        }
        assert_eq!(c.bad_messages(&A), Some(0));
        // After the backoff the count starts again.
        let after = t0 + Duration::from_secs(61);
        for _ in 0..3 {
            assert_eq!(c.record(after, A, DropReason::BadKey), None);
        }
        assert!(c.record(after, A, DropReason::WeakKey).is_some());
    }

    #[test]
    fn honest_drops_do_not_count_and_peers_are_apart() {
        let t0 = Instant::now();
        let mut c = Conduct::new(limits(2));
        for r in [
            DropReason::Duplicate,
            DropReason::Replay,
            DropReason::Expired,
            DropReason::ExpiryOutOfRange,
            DropReason::UnknownVersion,
            DropReason::ReplayStateFull,
            DropReason::NotForThisNode,
        ] {
            for _ in 0..10 {
                assert_eq!(c.record(t0, A, r), None, "{}", r.label());
            }
        }
        assert!(c.is_empty());
        assert_eq!(c.take_report(), None);
        assert_eq!(c.record(t0, A, DropReason::Malformed), None);
        assert_eq!(c.record(t0, B, DropReason::Malformed), None);
        assert_eq!(c.bad_messages(&A), Some(1));
        assert!(c.record(t0, B, DropReason::Malformed).is_some());
        assert_eq!(c.bad_messages(&A), Some(1), "B's misconduct is not A's");
    }

    #[test]
    fn reputation_loss_is_reported_once_per_peer_and_capped() {
        let t0 = Instant::now();
        let mut c = Conduct::new(limits(1000));
        for _ in 0..5 {
            c.record(t0, A, DropReason::BadSignature);
        }
        for _ in 0..300 {
            c.record(t0, B, DropReason::BadSignature);
        }
        assert_eq!(c.take_report(), Some((A, 5)));
        assert_eq!(c.take_report(), Some((B, 255)));
        assert_eq!(c.take_report(), None);
        c.record(t0, A, DropReason::BadSignature);
        assert_eq!(c.take_report(), Some((A, 1)));
    }

    #[test]
    fn a_refused_cut_off_is_ordered_again_at_the_next_bad_message() {
        let t0 = Instant::now();
        let mut c = Conduct::new(limits(3));
        c.record(t0, A, DropReason::BadSignature);
        c.record(t0, A, DropReason::BadSignature);
        let cut = c.record(t0, A, DropReason::BadSignature).expect("third");
        c.refused(&cut);
        let again = c
            .record(t0, A, DropReason::BadSignature)
            .expect("ordered again");
        assert_eq!(again.bad_messages, 3);
    }

    #[test]
    fn tallies_are_bounded_and_forgotten() {
        let t0 = Instant::now();
        let mut c = Conduct::new(ConductLimits {
            backoff: Duration::from_secs(1000),
            ..limits(2)
        });
        let s = |i| t0 + Duration::from_secs(i);
        let n = |b: u8| NodeIdentity([b; 32]);
        for (i, b) in [10u8, 11, 12].into_iter().enumerate() {
            c.record(s(i as u64), n(b), DropReason::BadKey);
        }
        assert_eq!(c.len(), 3);
        // A fourth peer evicts the tally with the oldest bad message.
        c.record(s(5), n(13), DropReason::BadKey);
        assert_eq!(c.len(), 3);
        assert_eq!(c.bad_messages(&n(10)), None);
        assert_eq!(c.bad_messages(&n(11)), Some(1));
        // 11 is cut off: its tally outlives forget_after until its backoff ends.
        assert!(c.record(s(6), n(11), DropReason::BadKey).is_some());
        c.sweep(s(6) + Duration::from_secs(601));
        assert_eq!(c.len(), 1, "the idle ones are forgotten");
        assert_eq!(c.bad_messages(&n(11)), Some(0));
        c.sweep(s(6) + Duration::from_secs(1001));
        assert!(c.is_empty());
    }

    /// The Router itself: forgeries from one peer cut it off once and cost it reputation;
    /// another peer's honest messages still arrive.
    #[test]
    fn the_router_cuts_off_a_forger_and_keeps_routing_an_honest_peer() {
        use std::sync::Arc;

        use crate::identity::Keypair;
        use crate::mail::identity::{IdentityRequest, IdentityUpdate};
        use crate::router::{Router, RouterLimits, RouterOutput};
        use crate::runtime::stats::NodeStats;
        use crate::time::Now;
        use crate::wire::{Destination, EngineMessage, MessageId, Protocol};

        let stats = Arc::new(NodeStats::default());
        let me = Keypair::from_seed(&[1; 32]);
        let mut limits = RouterLimits::default();
        limits.conduct.bad_messages_before_disconnect = 8;
        let mut router = Router::new(me.node_identity(), Arc::clone(&stats), limits, true);
        let sink = me.derive_engine("sink").engine_identity();
        let slot = router.add_local(sink, "sink", &[]).unwrap();
        let now = Now::read();
        let (forger, honest) = (Keypair::from_seed(&[2; 32]), Keypair::from_seed(&[3; 32]));
        let wire = |node: &Keypair, id: u64, forge: bool| {
            let key = node.derive_engine("app");
            let mut m = EngineMessage {
                src: key.engine_identity(),
                src_node: node.node_identity(),
                dst: Destination::Engine(sink),
                id: MessageId(id),
                reply_to: None,
                expiry: Some(now.wall.after(Duration::from_secs(60))),
                rprefs: None,
                tprefs: None,
                protocol: Protocol(Protocol::APP_BASE + 1),
                body: id.to_le_bytes().to_vec(),
                sig: None,
            };
            let mut w = Vec::new();
            m.sign_into_wire(&key, &mut w, &mut Vec::new());
            if forge {
                let n = w.len();
                w[n - 1] ^= 1;
            }
            w
        };
        let mut outputs = Vec::new();
        for id in 1..=20 {
            router.handle_remote(now, forger.node_identity(), wire(&forger, id, true), None);
            router.handle_remote(now, honest.node_identity(), wire(&honest, id, false), None);
            router.flush(now);
            outputs.extend(std::iter::from_fn(|| router.poll_output()));
        }
        // A message claiming another source node than the peer it came from counts too.
        router.handle_remote(now, forger.node_identity(), wire(&honest, 99, false), None);
        outputs.extend(std::iter::from_fn(|| router.poll_output()));

        let cuts: Vec<_> = outputs
            .iter()
            .filter_map(|o| match o {
                RouterOutput::CutOff(c) => Some(*c),
                _ => None,
            })
            .collect();
        assert_eq!(cuts.len(), 1, "once per backoff");
        assert_eq!(cuts[0].node, forger.node_identity());
        assert_eq!(cuts[0].bad_messages, 8);
        assert_eq!(cuts[0].reason, DropReason::BadSignature);
        let lost: i32 = outputs
            .iter()
            .filter_map(|o| match o {
                RouterOutput::Identity(IdentityRequest::Update(IdentityUpdate::Reputation {
                    id,
                    change,
                })) => {
                    assert_eq!(*id, forger.node_identity());
                    Some(i32::from(*change))
                }
                _ => None,
            })
            .sum();
        assert_eq!(lost, -21, "one point per bad message");
        let delivered = outputs
            .iter()
            .filter(|o| matches!(o, RouterOutput::Deliver { slot: s, .. } if *s == slot))
            .count();
        assert_eq!(delivered, 20, "every honest message");
        assert_eq!(stats.drops(DropReason::BadSignature), 20);
        assert_eq!(stats.drops(DropReason::SourceNodeMismatch), 1);
        assert_eq!(router.bad_messages(&honest.node_identity()), None);
    }
}
