//! Answers: the member's signed response, relays carrying it back along the reversed path,
//! and the asker checking it, learning the member and answering the local engine.

use std::collections::BTreeSet;

use super::wire::{DomainResponse, RoutingMessage, MAX_BODY, MAX_REASON};
use super::{DomainRoutingEngine, Reply, RoutingStats};
use crate::identity::{NodeIdentity, Signature};
use crate::mail::identity::{IdentityRequest, IdentityUpdate};
use crate::mail::interdomain::KnownMember;
use crate::runtime::Context;
use crate::wire::{decode_exact, DomainAdvert, Signed};

/// `result` within the wire limits: an answer over 64 KiB becomes an error, a refusal text is
/// cut at 256 bytes (on a character boundary).
fn bounded(result: Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
    match result {
        Ok(b) if b.len() > MAX_BODY => Err("answer over 64 KiB".into()),
        Err(mut t) if t.len() > MAX_REASON => {
            let mut end = MAX_REASON;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t.truncate(end);
            Err(t)
        }
        other => other,
    }
}

impl DomainRoutingEngine {
    /// `RoutingMail::Respond` from the local engine a request was handed to.
    pub(super) fn on_respond(
        &mut self,
        ctx: &mut Context,
        token: u64,
        result: Result<Vec<u8>, String>,
    ) {
        match self.arrived.remove(&token) {
            Some(a) => self.finish_arrived(ctx, a.reply, result),
            None => RoutingStats::count(&self.stats.stale_respond),
        }
    }

    /// Sends the answer to a request delivered here: a signed response for another node's,
    /// an answer to the local asker for this node's own.
    pub(super) fn finish_arrived(
        &mut self,
        ctx: &mut Context,
        reply: Reply,
        result: Result<Vec<u8>, String>,
    ) {
        let result = bounded(result);
        match reply {
            Reply::Local {
                asker,
                reply_to,
                domain,
            } => {
                let advert = self.domain_advert(&domain);
                let me = Some(self.me);
                self.answer(ctx, asker, reply_to, domain, result, me, 0, advert);
            }
            Reply::Remote {
                id,
                src,
                domain,
                mut path,
                prev,
            } => {
                path.push(self.me);
                path.reverse();
                let response = DomainResponse {
                    id,
                    domain,
                    src: self.me,
                    dst: src,
                    path,
                    member: self.me,
                    member_advert: Some(self.advert()),
                    result,
                    advert: self.domain_advert(&domain),
                    sig: Signature([0; 64]),
                }
                .sign(&self.key);
                RoutingStats::count(&self.stats.member_answers);
                self.send_remote(ctx, prev, &RoutingMessage::Response(response), false);
            }
        }
    }

    /// A response from peer `via`: for one of this node's requests, or to relay.
    pub(super) fn on_response(&mut self, ctx: &mut Context, via: NodeIdentity, r: DomainResponse) {
        let path_ok = {
            let mut seen = BTreeSet::new();
            r.path.len() >= 2
                && r.path.len() <= self.settings.hop_limit + 1
                && r.path.first() == Some(&r.member)
                && r.path.last() == Some(&r.dst)
                && r.path.iter().all(|n| seen.insert(*n))
        };
        if r.dst == self.me {
            return self.on_answer(ctx, via, r, path_ok);
        }
        let key = (r.dst, r.id);
        let Some(relay) = self.relayed.get(&key) else {
            return self.hostile(&self.stats.unsolicited, "a response to no request", via);
        };
        if relay.next != via {
            return self.hostile(&self.stats.unsolicited, "a response from elsewhere", via);
        }
        let prev = relay.prev;
        let at = r.path.iter().position(|n| *n == self.me);
        let consistent =
            at.is_some_and(|i| i >= 1 && r.path[i - 1] == via && r.path.get(i + 1) == Some(&prev));
        if !path_ok || !consistent || r.src != r.member {
            return self.hostile(&self.stats.bad_response, "an inconsistent response", via);
        }
        self.relayed.remove(&key);
        RoutingStats::count(&self.stats.responses_relayed);
        self.send_remote(ctx, prev, &RoutingMessage::Response(r), false);
    }

    /// The answer to one of this node's own requests.
    fn on_answer(&mut self, ctx: &mut Context, via: NodeIdentity, r: DomainResponse, ok: bool) {
        // An answer to an earlier attempt counts as well, if it comes from that attempt's hop.
        let (key, first_hop) = match self.earlier.get(&r.id) {
            Some(&(key, hop)) => (key, Some(hop)),
            None => (r.id, None),
        };
        let Some(p) = self.pending.get(&key) else {
            return self.hostile(&self.stats.unsolicited, "an answer to no request", via);
        };
        if first_hop.unwrap_or(p.first_hop) != via {
            return self.hostile(&self.stats.unsolicited, "an answer from elsewhere", via);
        }
        let n = r.path.len();
        if !ok || r.src != r.member || p.domain != r.domain || r.path[n - 2] != via {
            return self.hostile(&self.stats.bad_response, "an inconsistent answer", via);
        }
        if !r.verify() {
            return self.hostile(&self.stats.bad_signature, "a forged answer", via);
        }
        // The domain's advert, if it came and verifies, must list the member as answering.
        let mut advert_wire = None;
        if let Some(bytes) = &r.advert {
            match decode_exact::<DomainAdvert>(bytes).map(Signed::verify) {
                Ok(Ok(a)) if a.id == r.domain && a.within_limits() => {
                    if !a.accepts_external(&r.member) {
                        let what = "an answer from a member its advert does not list";
                        return self.hostile(&self.stats.bad_response, what, via);
                    }
                    advert_wire = Some(bytes.clone());
                    let a = a.into_inner();
                    ctx.identity_request(IdentityRequest::Update(IdentityUpdate::DomainAdvert(a)));
                }
                _ => RoutingStats::count(&self.stats.bad_advert),
            }
        }
        let member_advert = match r.member_advert {
            Some(a) if a.id == r.member => {
                let update = IdentityUpdate::NodeAdvert(a.clone());
                ctx.identity_request(IdentityRequest::Update(update));
                Some(a)
            }
            Some(_) => {
                RoutingStats::count(&self.stats.bad_advert);
                None
            }
            None => None,
        };
        let Some(p) = self.pending.remove(&key) else {
            return;
        };
        self.earlier.retain(|_, (k, _)| *k != key);
        RoutingStats::count(&self.stats.answers);
        self.routes.learn(
            r.domain,
            KnownMember {
                node: r.member,
                advert: member_advert,
                last_ok: ctx.now().wall,
            },
        );
        let hops = (n - 1) as u32;
        let member = Some(r.member);
        self.answer(
            ctx,
            p.asker,
            p.reply_to,
            r.domain,
            r.result,
            member,
            hops,
            advert_wire,
        );
    }
}
