//! Joins: the requestor's side (a signed `JoinRequest` to an introducer or member, retried
//! over the contacts with doubling timeouts, a fresh request each try) and the approver's
//! (check the signature, freshness, replay, auth, allow-list, expulsion and capacity; make and
//! push the `Add`; answer with a signed `JoinResponse`). Leave and expel are here too: both
//! are `Remove` operations this node signs.

use std::sync::Arc;

use super::instance::JoinAttempt;
use super::membership::{Inserted, Refused};
use super::ops::{Op, OpKind, MAX_OBSERVED};
use super::wire::{DomainMessage, JoinAuth, JoinOutcome, JoinRequest, JoinResponse};
use super::{DomainEngine, DomainStats};
use crate::identity::{DomainIdentity, EngineIdentity, NodeIdentity};
use crate::mail::domain::{DomainMail, JoinRefusal};
use crate::runtime::Context;
use crate::wire::advert::DomainAuth;

impl DomainEngine {
    /// Signs an operation of this node in domain `d`, stores it and queues it for pushing.
    pub(super) fn sign_op(&mut self, d: DomainIdentity, kind: OpKind) -> Option<Arc<Op>> {
        let inst = self.domains.get_mut(&d)?;
        let op = Arc::new(Op::new_signed(
            &self.key,
            d,
            inst.log.max_seq_of(&self.me).saturating_add(1),
            inst.log.max_lamport().saturating_add(1),
            kind,
        ));
        let mut released = Vec::new();
        match inst.log.insert(op.clone(), true, &mut released) {
            Ok(_) | Err(Refused::UnknownAuthor(true)) => {}
            Err(e) => {
                DomainStats::count(&self.stats.own_op_refused);
                log::debug!("domain: own operation not stored: {e:?}");
                return None;
            }
        }
        DomainStats::count(&self.stats.ops_created);
        inst.push.push((op.clone(), None));
        inst.push.extend(released.into_iter().map(|o| (o, None)));
        Some(op)
    }

    /// Asks to join `d` (or adds `asker` to the join in progress).
    pub(super) fn start_join(
        &mut self,
        ctx: &mut Context,
        d: DomainIdentity,
        asker: Option<EngineIdentity>,
    ) {
        let me = self.me;
        let Some(inst) = self.domains.get_mut(&d) else {
            if let Some(a) = asker {
                self.join_result(ctx, a, d, Err(JoinRefusal::BadRequest), None);
            }
            return;
        };
        if inst.log.is_member(&me) {
            if let Some(a) = asker {
                let m = &inst.log.members()[&me];
                let (epoch, approver) = (m.epoch, m.approver);
                self.join_result(ctx, a, d, Ok(epoch), Some(approver));
            }
            return;
        }
        if let Some(j) = &mut inst.join {
            j.waiters.extend(asker);
            return;
        }
        if matches!(inst.advert.auth, DomainAuth::Psk) && inst.psk.is_none() {
            if let Some(a) = asker {
                self.join_result(ctx, a, d, Err(JoinRefusal::WrongKey), None);
            }
            return;
        }
        let mut contacts = inst.fallback_contacts(me);
        for m in inst.published.iter().take(8) {
            if *m != me && !contacts.contains(m) {
                contacts.push(*m);
            }
        }
        if contacts.is_empty() {
            if let Some(a) = asker {
                self.join_result(ctx, a, d, Err(JoinRefusal::Timeout), None);
            }
            return;
        }
        // Start at a random contact so joiners spread over the introducers.
        let start = self.rng.below(contacts.len() as u64) as usize;
        contacts.rotate_left(start);
        inst.join = Some(JoinAttempt {
            requests: Default::default(),
            current: None,
            tries: 0,
            deadline: ctx.now().instant,
            contacts,
            waiters: asker.into_iter().collect(),
        });
        self.send_join_try(ctx, d);
    }

    /// Sends the current try of the join in progress: a fresh request to the next contact.
    fn send_join_try(&mut self, ctx: &mut Context, d: DomainIdentity) {
        let now = ctx.now();
        let nonce = self.rng.next_u64();
        let Some(inst) = self.domains.get_mut(&d) else {
            return;
        };
        let Some(j) = &mut inst.join else {
            return;
        };
        let auth = match (&inst.advert.auth, &inst.psk) {
            (DomainAuth::None, _) => JoinAuth::None,
            (DomainAuth::Psk, Some(psk)) => {
                JoinAuth::PskProof(JoinRequest::psk_proof(psk, self.me, d, nonce, now.wall))
            }
            (DomainAuth::Psk, None) => JoinAuth::None,
            (DomainAuth::AllowList(_), _) => JoinAuth::AllowList,
        };
        let req = JoinRequest::new_signed(&self.key, d, nonce, now.wall, auth);
        j.requests.insert(req.id());
        j.current = Some(req.id());
        let target = j.contacts[j.tries as usize % j.contacts.len()];
        let wait = self
            .limits
            .join_timeout
            .saturating_mul(1u32 << j.tries.min(16));
        j.deadline = now.instant + wait;
        self.send_remote(ctx, target, &DomainMessage::JoinRequest(req));
    }

    /// Retries or gives up the join of `d` whose try timed out.
    pub(super) fn join_timeouts(&mut self, ctx: &mut Context, d: DomainIdentity) {
        let now = ctx.now().instant;
        let Some(inst) = self.domains.get_mut(&d) else {
            return;
        };
        let Some(j) = &mut inst.join else {
            return;
        };
        if now < j.deadline {
            return;
        }
        j.tries += 1;
        if j.tries < self.limits.join_tries {
            DomainStats::count(&self.stats.join_retries);
            self.send_join_try(ctx, d);
            return;
        }
        let waiters = inst.join.take().map(|j| j.waiters).unwrap_or_default();
        DomainStats::count(&self.stats.join_timeouts);
        log::debug!("domain {}: join timed out", d.short());
        for w in waiters {
            self.join_result(ctx, w, d, Err(JoinRefusal::Timeout), None);
        }
    }

    /// Ends a join in progress once this node is a member by any add (another approver's,
    /// arrived by gossip).
    pub(super) fn finish_join_if_member(&mut self, ctx: &mut Context, d: DomainIdentity) {
        let me = self.me;
        let Some(inst) = self.domains.get_mut(&d) else {
            return;
        };
        if inst.join.is_none() {
            return;
        }
        let Some(m) = inst.log.members().get(&me) else {
            return;
        };
        let (epoch, approver) = (m.epoch, m.approver);
        let waiters = inst.join.take().map(|j| j.waiters).unwrap_or_default();
        DomainStats::count(&self.stats.joins_completed);
        for w in waiters {
            self.join_result(ctx, w, d, Ok(epoch), Some(approver));
        }
    }

    pub(super) fn join_result(
        &mut self,
        ctx: &mut Context,
        asker: EngineIdentity,
        domain: DomainIdentity,
        result: Result<u64, JoinRefusal>,
        approver: Option<NodeIdentity>,
    ) {
        self.reply_local(
            ctx,
            asker,
            &DomainMail::JoinResult {
                domain,
                result,
                approver,
            },
        );
    }

    /// The approver's side of a join.
    pub(super) fn on_join_request(
        &mut self,
        ctx: &mut Context,
        from: NodeIdentity,
        r: JoinRequest,
    ) {
        DomainStats::count(&self.stats.join_requests);
        if !self.within(ctx.now().wall.0, from, super::RateKind::Join) {
            return;
        }
        if r.requestor != from || !r.verify() {
            if let Some(n) = DomainStats::count_hostile(&self.stats.join_bad_signature) {
                log::warn!(
                    "domain: join request from {} with a bad signature (seen {n} times)",
                    from.short()
                );
            }
            return;
        }
        let id = r.id();
        let now = ctx.now().wall;
        let window = self.limits.join_window.as_millis() as u64;
        let refusal = self.check_join(&r, id, now, window);
        let outcome = match refusal {
            Err(reason) => {
                log::debug!(
                    "domain {}: join of {} refused: {}",
                    r.domain.short(),
                    from.short(),
                    reason.label()
                );
                JoinOutcome::Refused(reason)
            }
            Ok(()) if self.existing_add(&r).is_some() => {
                // Already a member: its existing add again, nothing new signed (a member
                // re-asking with fresh nonces cannot fill the log with adds).
                DomainStats::count(&self.stats.join_already_member);
                let op = self.existing_add(&r).expect("checked");
                let inst = &self.domains[&r.domain];
                let ops = inst
                    .log
                    .join_batch(&op.author)
                    .into_iter()
                    .filter(|o| o.id() != op.id())
                    .map(|o| (*o).clone())
                    .collect();
                JoinOutcome::Accepted {
                    epoch: op.lamport,
                    op: Box::new((*op).clone()),
                    ops,
                }
            }
            Ok(()) => {
                let kind = OpKind::Add {
                    member: r.requestor,
                    request: Some(id),
                };
                match self.sign_op(r.domain, kind) {
                    Some(op) => {
                        DomainStats::count(&self.stats.joins_approved);
                        let inst = &self.domains[&r.domain];
                        let ops = inst
                            .log
                            .join_batch(&self.me)
                            .into_iter()
                            .filter(|o| o.id() != op.id())
                            .map(|o| (*o).clone())
                            .collect();
                        JoinOutcome::Accepted {
                            epoch: op.lamport,
                            op: Box::new((*op).clone()),
                            ops,
                        }
                    }
                    None => {
                        // sign_op counted `own_op_refused` (the log refused the add: store
                        // or author quota full); to the requestor the domain is full.
                        JoinOutcome::Refused(JoinRefusal::DomainFull)
                    }
                }
            }
        };
        let resp = JoinResponse::new_signed(&self.key, &r, id, outcome);
        self.send_remote(ctx, from, &DomainMessage::JoinResponse(Box::new(resp)));
    }

    /// The live add of `r`'s requestor if it is a member already (not an introducer).
    fn existing_add(&self, r: &JoinRequest) -> Option<Arc<Op>> {
        self.domains
            .get(&r.domain)?
            .log
            .newest_live_add(&r.requestor)
    }

    /// Whether this node may approve `r` now; counts the refusal.
    fn check_join(
        &mut self,
        r: &JoinRequest,
        id: [u8; 32],
        now: crate::time::Timestamp,
        window: u64,
    ) -> Result<(), JoinRefusal> {
        let s = self.stats.clone();
        let fail = |c: &std::sync::atomic::AtomicU64, reason| {
            DomainStats::count(c);
            Err(reason)
        };
        let Some(inst) = self.domains.get_mut(&r.domain) else {
            return fail(&s.unknown_domain, JoinRefusal::NotApprover);
        };
        if r.created.0.abs_diff(now.0) > window {
            return fail(&s.join_stale, JoinRefusal::BadRequest);
        }
        if !inst.remember_request(id, r.created, self.limits.replay_cache) {
            if let Some(n) = DomainStats::count_hostile(&s.join_replayed) {
                log::warn!("domain: replayed join request (seen {n} times)");
            }
            return Err(JoinRefusal::BadRequest);
        }
        if !inst.log.is_member(&self.me) {
            return fail(&s.join_not_approver, JoinRefusal::NotApprover);
        }
        if inst.log.is_expelled(&r.requestor) {
            return fail(&s.join_expelled, JoinRefusal::Expelled);
        }
        match &inst.advert.auth {
            DomainAuth::None => {}
            DomainAuth::Psk => match &inst.psk {
                None => return fail(&s.join_not_approver, JoinRefusal::NotApprover),
                Some(psk) => {
                    if !r.psk_proof_valid(psk) {
                        return fail(&s.join_wrong_key, JoinRefusal::WrongKey);
                    }
                }
            },
            DomainAuth::AllowList(_) => {
                if !inst.advert.admits(&r.requestor) {
                    return fail(&s.join_not_on_list, JoinRefusal::NotOnList);
                }
            }
        }
        if !inst.log.is_member(&r.requestor) && !inst.log.has_room() {
            return fail(&s.join_domain_full, JoinRefusal::DomainFull);
        }
        Ok(())
    }

    /// The requestor's side: a response to one of its outstanding requests.
    pub(super) fn on_join_response(
        &mut self,
        ctx: &mut Context,
        from: NodeIdentity,
        r: Box<JoinResponse>,
    ) {
        let r = *r;
        if r.approver != from || !r.verify() {
            if let Some(n) = DomainStats::count_hostile(&self.stats.join_response_forged) {
                log::warn!(
                    "domain: forged join response from {} (seen {n} times)",
                    from.short()
                );
            }
            return;
        }
        let me = self.me;
        let d = r.domain;
        let outstanding = self.domains.get(&d).is_some_and(|i| {
            r.requestor == me
                && i.join
                    .as_ref()
                    .is_some_and(|j| j.requests.contains(&r.request))
        });
        if !outstanding {
            if let Some(n) = DomainStats::count_hostile(&self.stats.join_response_unsolicited) {
                log::warn!(
                    "domain: unsolicited or replayed join response from {} (seen {n} times)",
                    from.short()
                );
            }
            return;
        }
        match r.outcome {
            JoinOutcome::Refused(reason) => {
                let inst = self.domains.get_mut(&d).expect("checked above");
                if let Some(j) = &mut inst.join {
                    if j.current != Some(r.request) {
                        // A contact asked earlier: the join has moved on already.
                        DomainStats::count(&self.stats.join_refusal_stale);
                        return;
                    }
                    // Another contact may approve: move on at once, if tries are left. A
                    // refusal on the requestor's own merits (key, list, expelled, full)
                    // would be the same everywhere: it ends the join.
                    if reason == JoinRefusal::NotApprover {
                        j.tries += 1;
                        if j.tries < self.limits.join_tries {
                            DomainStats::count(&self.stats.join_refusal_next_contact);
                            self.send_join_try(ctx, d);
                            return;
                        }
                    }
                }
                let waiters = inst.join.take().map(|j| j.waiters).unwrap_or_default();
                for w in waiters {
                    self.join_result(ctx, w, d, Err(reason), Some(from));
                }
            }
            JoinOutcome::Accepted { epoch, op, ops } => {
                // A fresh add by the approver for this request, or (when this node is a
                // member already) its existing add by any approver. The response itself is
                // bound to the request by the approver's signature.
                let valid_add = op.domain == d
                    && op.lamport == epoch
                    && match op.kind {
                        OpKind::Add {
                            member,
                            request: Some(req),
                        } if member == me && req == r.request => op.author == from,
                        OpKind::Add { member, .. } => member == me,
                        _ => false,
                    };
                let inst = self.domains.get_mut(&d).expect("checked above");
                let mut released = Vec::new();
                let op = Arc::new(*op);
                let res = if valid_add {
                    Some(inst.log.insert(op.clone(), false, &mut released))
                } else {
                    None
                };
                let stored = matches!(res, Some(Ok(_) | Err(Refused::UnknownAuthor(true))));
                if res == Some(Ok(Inserted::New)) {
                    inst.push.push((op, Some(from)));
                }
                if !stored {
                    DomainStats::count(&self.stats.join_response_bad_op);
                    log::warn!(
                        "domain {}: join response from {} without a valid add",
                        d.short(),
                        from.short()
                    );
                    return;
                }
                DomainStats::count(&self.stats.ops_received);
                // New operations are forwarded like those of an `Ops` message.
                for o in ops {
                    DomainStats::count(&self.stats.ops_received);
                    let o = Arc::new(o);
                    let res = inst.log.insert(o.clone(), false, &mut released);
                    if res == Ok(Inserted::New) {
                        inst.push.push((o, Some(from)));
                    }
                    count_insert(&self.stats, res);
                }
                for o in released {
                    DomainStats::count(&self.stats.ops_new);
                    inst.push.push((o, None));
                }
                if !inst.contacts.contains(&from) {
                    inst.contacts.push(from);
                }
                let waiters = inst.join.take().map(|j| j.waiters).unwrap_or_default();
                DomainStats::count(&self.stats.joins_completed);
                for w in waiters {
                    self.join_result(ctx, w, d, Ok(epoch), Some(from));
                }
            }
        }
    }

    /// Leaves `d`: a `Remove` of this node observing its live adds.
    pub(super) fn leave(&mut self, d: DomainIdentity) -> Result<(), String> {
        let r = self.leave_inner(d);
        if r.is_err() {
            DomainStats::count(&self.stats.leave_failed);
        }
        r
    }

    fn leave_inner(&mut self, d: DomainIdentity) -> Result<(), String> {
        let me = self.me;
        let inst = self.domains.get(&d).ok_or("unknown domain")?;
        if inst.advert.is_introducer(&me) {
            return Err("an introducer is a member by the advert and cannot leave".into());
        }
        if !inst.log.is_member(&me) {
            return Err("not a member".into());
        }
        // A `Remove` observes at most MAX_OBSERVED adds: one per chunk of the live adds, so
        // the leave takes them all.
        let live = inst.log.live_adds_of(&me);
        for chunk in live.chunks(MAX_OBSERVED) {
            let kind = OpKind::Remove {
                member: me,
                observed: chunk.to_vec(),
                cutoff_seq: 0,
            };
            self.sign_op(d, kind)
                .ok_or_else(|| "the log refused the leave".to_string())?;
        }
        // A node that left no longer syncs with the approver of its join.
        if let Some(inst) = self.domains.get_mut(&d) {
            inst.contacts.clear();
        }
        Ok(())
    }

    /// Expels `node` from `d` (introducers only): its operations after its current highest
    /// sequence number are void.
    pub(super) fn expel(&mut self, d: DomainIdentity, node: NodeIdentity) -> Result<(), String> {
        let r = self.expel_inner(d, node);
        if r.is_err() {
            DomainStats::count(&self.stats.expel_failed);
        }
        r
    }

    fn expel_inner(&mut self, d: DomainIdentity, node: NodeIdentity) -> Result<(), String> {
        let me = self.me;
        let inst = self.domains.get(&d).ok_or("unknown domain")?;
        if !inst.advert.is_introducer(&me) {
            return Err("only an introducer may expel".into());
        }
        if inst.advert.is_introducer(&node) {
            return Err("an introducer cannot be expelled".into());
        }
        if node == me {
            return Err("cannot expel oneself".into());
        }
        let mut observed = inst.log.live_adds_of(&node);
        observed.truncate(MAX_OBSERVED);
        let kind = OpKind::Remove {
            member: node,
            observed,
            cutoff_seq: inst.log.max_seq_of(&node),
        };
        self.sign_op(d, kind)
            .map(|_| ())
            .ok_or_else(|| "the log refused the expulsion".into())
    }
}

/// Counts the outcome of inserting a received operation.
pub(super) fn count_insert(s: &DomainStats, res: Result<Inserted, Refused>) {
    DomainStats::count(match res {
        Ok(Inserted::New) => &s.ops_new,
        Ok(Inserted::Duplicate) => &s.ops_duplicate,
        Err(Refused::BadSignature) => &s.ops_bad_signature,
        Err(Refused::WrongDomain) => &s.ops_wrong_domain,
        Err(Refused::Malformed) => &s.ops_malformed,
        Err(Refused::UnknownAuthor(true)) => &s.ops_pending,
        Err(Refused::UnknownAuthor(false)) => &s.ops_unknown_author,
        Err(Refused::AfterExpulsion) => &s.ops_after_expulsion,
        Err(Refused::StoreFull) => &s.ops_store_full,
        Err(Refused::AuthorFull) => &s.ops_author_full,
        Err(Refused::Equivocation) => &s.ops_equivocation,
    });
}
