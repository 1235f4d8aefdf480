//! PSI sessions with cluster neighbours: starting them, the three messages, refusals,
//! timeouts and the results (`interdomain::psi` does the cryptography).

use std::collections::BTreeSet;
use std::time::Instant;

use super::{ClusteringEngine, ClusteringStats, PsiOutcome};
use crate::identity::{DomainIdentity, NodeIdentity};
use crate::interdomain::psi::{Challenge, Initiator, Offer, Proof, Responder};
use crate::runtime::Context;
use crate::wire::NodeDescriptor;

use super::wire::ClusteringMessage;

/// An open PSI session with one peer.
#[derive(Debug)]
pub(super) struct Session {
    id: u64,
    role: Role,
    own_version: u64,
    peer_version: u64,
    /// The peer's element count (from its offer; set from the challenge at the initiator).
    peer_count: u32,
    deadline: Instant,
}

#[derive(Debug)]
enum Role {
    Initiator(Initiator),
    Responder(Responder),
    /// Taken out to finish (never stored).
    Done,
}

/// A finished PSI.
#[derive(Clone, Debug)]
pub(super) struct PsiResult {
    pub(super) outcome: PsiOutcome,
    session: u64,
    at: Instant,
}

impl PsiResult {
    /// Whether it was run at these versions.
    pub(super) fn matches(&self, own_version: u64, peer_version: u64) -> bool {
        self.outcome.own_version == own_version && self.outcome.peer_version == peer_version
    }
}

impl ClusteringEngine {
    /// This node's domains as PSI elements (at most `psi.max_elements`, the smallest).
    pub(super) fn own_elements(&self) -> BTreeSet<DomainIdentity> {
        let all: BTreeSet<DomainIdentity> = self.directory.memberships().into_iter().collect();
        self.settings.limits.psi.clip(&all)
    }

    /// The exact shared count with `node`, if PSI ran at the current versions.
    pub(super) fn shared_now(&self, node: &NodeIdentity, desc: &NodeDescriptor) -> Option<u32> {
        let own = self.own.as_ref()?;
        self.results
            .get(node)
            .filter(|r| r.matches(own.version, desc.version))
            .map(|r| r.outcome.shared_count)
    }

    /// Starts PSI with cluster neighbours that have no result at the current versions.
    pub(super) fn schedule_psi(&mut self, ctx: &mut Context) {
        if !self.settings.psi {
            return;
        }
        let Some(own) = self.own.clone() else {
            return;
        };
        let now = ctx.now().instant;
        let view: Vec<(NodeIdentity, u64)> =
            self.view.iter().map(|(n, e)| (*n, e.desc.version)).collect();
        self.psi_backoff
            .retain(|n, until| *until > now && view.iter().any(|(v, _)| v == n));
        let limits = self.settings.limits.clone();
        for (node, version) in view {
            if self.sessions.len() >= limits.psi_sessions {
                break;
            }
            if self.sessions.contains_key(&node)
                || self.psi_backoff.contains_key(&node)
                || self
                    .results
                    .get(&node)
                    .is_some_and(|r| r.matches(own.version, version))
            {
                continue;
            }
            let id = self.rng.next_u64();
            let salt = self.random32();
            let elements = self.own_elements();
            let count = elements.len() as u32;
            let (init, offer) = Initiator::start(limits.psi, &elements, salt);
            self.sessions.insert(
                node,
                Session {
                    id,
                    role: Role::Initiator(init),
                    own_version: own.version,
                    peer_version: version,
                    peer_count: 0,
                    deadline: now + limits.psi_timeout,
                },
            );
            self.psi_backoff.insert(node, now + limits.psi_timeout);
            let msg = ClusteringMessage::PsiOffer {
                session: id,
                initiator_version: own.version,
                responder_version: version,
                count,
                offer,
            };
            self.send(ctx, node, &msg);
        }
    }

    /// Drops sessions past their deadline.
    pub(super) fn expire_sessions(&mut self, now: Instant) {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| s.deadline > now);
        for _ in self.sessions.len()..before {
            ClusteringStats::count(&self.stats.psi_timeouts);
        }
    }

    /// Whether a message of `session` from `src` belongs to a finished run.
    fn replayed(&self, src: &NodeIdentity, session: u64) -> bool {
        self.results.get(src).is_some_and(|r| r.session == session)
    }

    /// Step 0 at the responder.
    pub(super) fn on_psi_offer(
        &mut self,
        ctx: &mut Context,
        src: NodeIdentity,
        session: u64,
        (initiator_version, responder_version, peer_count): (u64, u64, u32),
        offer: Offer,
    ) {
        if !self.settings.psi {
            ClusteringStats::count(&self.stats.psi_disabled);
            return;
        }
        let Some(own) = self.board.own() else {
            ClusteringStats::count(&self.stats.no_own_descriptor);
            return;
        };
        self.own = Some(own.clone());
        if responder_version != own.version {
            ClusteringStats::count(&self.stats.psi_stale);
            return;
        }
        let now = ctx.now().instant;
        if let Some(s) = self.sessions.get(&src) {
            if s.id == session {
                self.hostile(&self.stats.psi_replayed, "a PSI offer", Some(src));
                return;
            }
            match s.role {
                Role::Initiator(_) if ctx.node() < src => {
                    ClusteringStats::count(&self.stats.psi_collision);
                    return;
                }
                Role::Initiator(_) => {
                    // Its offer crosses ours and goes on: ours is dropped.
                    ClusteringStats::count(&self.stats.psi_collision);
                    self.sessions.remove(&src);
                }
                Role::Responder(_) | Role::Done => {
                    self.hostile(&self.stats.psi_busy, "a second PSI offer", Some(src));
                    return;
                }
            }
        }
        let rerun = self.settings.limits.psi_rerun;
        if self.replayed(&src, session)
            || self.results.get(&src).is_some_and(|r| {
                r.matches(own.version, initiator_version) && now < r.at + rerun
            })
        {
            self.hostile(&self.stats.psi_replayed, "a PSI offer", Some(src));
            return;
        }
        if self.sessions.len() >= self.settings.limits.psi_sessions {
            ClusteringStats::count(&self.stats.psi_busy);
            return;
        }
        if self.offers_left == 0 {
            self.hostile(&self.stats.rate_limited, "a PSI offer over the rate", Some(src));
            return;
        }
        self.offers_left -= 1;
        let (rrand, ckey) = (self.random32(), self.random32());
        let params = self.settings.limits.psi;
        let elements = self.own_elements();
        let count = elements.len() as u32;
        match Responder::on_offer(params, &elements, &offer, rrand, ckey) {
            Ok((resp, challenge)) => {
                self.sessions.insert(
                    src,
                    Session {
                        id: session,
                        role: Role::Responder(resp),
                        own_version: own.version,
                        peer_version: initiator_version,
                        peer_count,
                        deadline: now + self.settings.limits.psi_timeout,
                    },
                );
                let msg = ClusteringMessage::PsiChallenge {
                    session,
                    count,
                    challenge,
                };
                self.send(ctx, src, &msg);
            }
            Err(e) => {
                self.hostile(&self.stats.psi_bad_filter, &format!("a PSI offer ({e})"), Some(src));
            }
        }
    }

    /// Takes the open session `session` with `src` if it has the role `initiator`; counts and
    /// refuses otherwise.
    fn take_session(&mut self, src: NodeIdentity, session: u64, initiator: bool) -> Option<Session> {
        let fits = self.sessions.get(&src).is_some_and(|s| {
            s.id == session && matches!(s.role, Role::Initiator(_)) == initiator
        });
        if fits {
            return self.sessions.remove(&src);
        }
        let what = if initiator { "a PSI challenge" } else { "a PSI proof" };
        if self.replayed(&src, session) {
            self.hostile(&self.stats.psi_replayed, what, Some(src));
        } else {
            self.hostile(&self.stats.psi_out_of_order, what, Some(src));
        }
        None
    }

    /// Step 1's answer at the initiator: its result, and the proof.
    pub(super) fn on_psi_challenge(
        &mut self,
        ctx: &mut Context,
        src: NodeIdentity,
        session: u64,
        peer_count: u32,
        challenge: Challenge,
    ) {
        let Some(mut s) = self.take_session(src, session, true) else {
            return;
        };
        s.peer_count = peer_count;
        let Role::Initiator(init) = std::mem::replace(&mut s.role, Role::Done) else {
            return;
        };
        let irand = self.random32();
        match init.on_challenge(&challenge, irand) {
            Ok((shared, proof)) => {
                ClusteringStats::count(&self.stats.psi_done_initiator);
                self.record(ctx, src, session, &s, shared);
                self.send(ctx, src, &ClusteringMessage::PsiProof { session, proof });
            }
            Err(e) => {
                self.hostile(&self.stats.psi_bad_tags, &format!("a PSI challenge ({e})"), Some(src));
            }
        }
    }

    /// Step 2's answer at the responder: its result.
    pub(super) fn on_psi_proof(
        &mut self,
        ctx: &mut Context,
        src: NodeIdentity,
        session: u64,
        proof: Proof,
    ) {
        let Some(mut s) = self.take_session(src, session, false) else {
            return;
        };
        let Role::Responder(resp) = std::mem::replace(&mut s.role, Role::Done) else {
            return;
        };
        match resp.on_proof(&proof) {
            Ok(shared) => {
                ClusteringStats::count(&self.stats.psi_done_responder);
                self.record(ctx, src, session, &s, shared);
            }
            Err(e) => {
                self.hostile(&self.stats.psi_bad_tags, &format!("a PSI proof ({e})"), Some(src));
            }
        }
    }

    fn record(
        &mut self,
        ctx: &mut Context,
        peer: NodeIdentity,
        session: u64,
        s: &Session,
        shared: BTreeSet<DomainIdentity>,
    ) {
        let outcome = PsiOutcome {
            shared_count: shared.len() as u32,
            peer_count: s.peer_count.max(shared.len() as u32),
            shared: shared.into_iter().collect(),
            own_version: s.own_version,
            peer_version: s.peer_version,
        };
        self.results.insert(
            peer,
            PsiResult {
                outcome,
                session,
                at: ctx.now().instant,
            },
        );
        if self.results.len() > self.settings.limits.max_psi_results {
            let oldest = self
                .results
                .iter()
                .min_by_key(|(_, r)| r.at)
                .map(|(n, _)| *n);
            if let Some(o) = oldest {
                self.results.remove(&o);
            }
        }
        self.sims.remove(&peer);
        self.psi_backoff.remove(&peer);
        self.psi_dirty = true;
        self.dirty = true;
    }
}
