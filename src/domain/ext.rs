//! External requests: a node (member or not) asks a member that the advert lists as accepting
//! them; the member answers with its latest advert. This engine serves only its own protocol
//! (`Protocol::DOMAIN`, request body `info`, answered with a [`DomainInfo`]); a request for any
//! other protocol is answered with an error (handing it to the local engine serving that
//! protocol is not done).

use std::time::Instant;

use super::instance::ExtPending;
use super::wire::{DomainInfo, DomainMessage};
use super::{DomainEngine, DomainStats};
use crate::identity::{DomainIdentity, EngineIdentity, NodeIdentity};
use crate::mail::domain::DomainMail;
use crate::runtime::Context;
use crate::wire::{DomainAdvert, Protocol, Signed};

/// The body of the built-in `info` request.
pub const INFO_REQUEST: &[u8] = b"info";

impl DomainEngine {
    fn ext_reply(
        &mut self,
        ctx: &mut Context,
        asker: EngineIdentity,
        domain: DomainIdentity,
        result: Result<Vec<u8>, String>,
        member: Option<NodeIdentity>,
    ) {
        self.reply_local(
            ctx,
            asker,
            &DomainMail::ExtReply {
                domain,
                result,
                member,
            },
        );
    }

    /// What this node answers to an external request for `d`.
    pub(super) fn answer_ext(
        &self,
        d: &DomainIdentity,
        protocol: Protocol,
        body: &[u8],
    ) -> Result<Vec<u8>, String> {
        let Some(inst) = self.domains.get(d) else {
            DomainStats::count(&self.stats.unknown_domain);
            return Err("unknown domain".into());
        };
        if !inst.log.is_member(&self.me) || !inst.advert.accepts_external(&self.me) {
            DomainStats::count(&self.stats.ext_refused);
            return Err("not a member that accepts external requests".into());
        }
        if protocol != Protocol::DOMAIN {
            DomainStats::count(&self.stats.ext_unknown_protocol);
            return Err(format!("protocol {} is not served here", protocol.0));
        }
        if body != INFO_REQUEST {
            DomainStats::count(&self.stats.ext_unknown_protocol);
            return Err("unknown request (the domain protocol answers `info`)".into());
        }
        Ok(DomainInfo {
            members: inst.log.members().len() as u64,
            advert_version: inst.advert.version,
            ops: inst.log.op_count() as u64,
        }
        .to_bytes())
    }

    pub(super) fn send_ext(
        &mut self,
        ctx: &mut Context,
        asker: EngineIdentity,
        d: DomainIdentity,
        protocol: Protocol,
        body: Vec<u8>,
    ) {
        let me = self.me;
        let Some(inst) = self.domains.get(&d) else {
            self.ext_reply(ctx, asker, d, Err("unknown domain".into()), None);
            return;
        };
        let candidates: Vec<NodeIdentity> = inst
            .advert
            .external
            .iter()
            .copied()
            .filter(|n| *n != me)
            .filter(|n| inst.log.is_member(n) || inst.log.members().len() <= 1)
            .collect();
        if candidates.is_empty() {
            if inst.advert.accepts_external(&me) {
                let result = self.answer_ext(&d, protocol, &body);
                self.ext_reply(ctx, asker, d, result, Some(me));
            } else {
                self.ext_reply(
                    ctx,
                    asker,
                    d,
                    Err("no member accepts external requests".into()),
                    None,
                );
            }
            return;
        }
        if inst.ext.len() >= self.limits.max_outstanding_ext {
            DomainStats::count(&self.stats.ext_outstanding_full);
            self.ext_reply(
                ctx,
                asker,
                d,
                Err("too many requests outstanding".into()),
                None,
            );
            return;
        }
        let member = candidates[self.rng.below(candidates.len() as u64) as usize];
        let id = self.next_ext_id;
        self.next_ext_id += 1;
        let deadline: Instant = ctx.now().instant + self.limits.ext_timeout;
        if let Some(inst) = self.domains.get_mut(&d) {
            inst.ext.insert(
                id,
                ExtPending {
                    asker,
                    member,
                    deadline,
                },
            );
        }
        let msg = DomainMessage::ExtRequest {
            id,
            domain: d,
            protocol,
            body,
        };
        self.send_remote(ctx, member, &msg);
    }

    pub(super) fn on_ext_request(
        &mut self,
        ctx: &mut Context,
        from: NodeIdentity,
        id: u64,
        d: DomainIdentity,
        protocol: Protocol,
        body: Vec<u8>,
    ) {
        DomainStats::count(&self.stats.ext_requests);
        if !self.within(ctx.now().wall.0, from, super::RateKind::Ext) {
            return;
        }
        let result = self.answer_ext(&d, protocol, &body);
        let advert = self.domains.get(&d).map(|i| Box::new(i.advert.clone()));
        let msg = DomainMessage::ExtResponse {
            id,
            domain: d,
            result,
            advert,
        };
        self.send_remote(ctx, from, &msg);
    }

    pub(super) fn on_ext_response(
        &mut self,
        ctx: &mut Context,
        from: NodeIdentity,
        id: u64,
        d: DomainIdentity,
        result: Result<Vec<u8>, String>,
        advert: Option<Box<DomainAdvert>>,
    ) {
        let pending = self.domains.get_mut(&d).and_then(|i| match i.ext.get(&id) {
            Some(p) if p.member == from => i.ext.remove(&id),
            _ => None,
        });
        let Some(p) = pending else {
            DomainStats::count(&self.stats.ext_response_unsolicited);
            return;
        };
        if let Some(a) = advert {
            match (*a).verify() {
                Ok(a) if a.id == d && a.within_limits() => {
                    if let Some(inst) = self.domains.get_mut(&d) {
                        inst.take_advert(a.into_inner());
                    }
                }
                _ => DomainStats::count(&self.stats.adverts_refused),
            }
        }
        self.ext_reply(ctx, p.asker, d, result, Some(from));
    }

    /// Answers the external requests of `d` that timed out.
    pub(super) fn ext_timeouts(&mut self, ctx: &mut Context, d: DomainIdentity) {
        let now = ctx.now().instant;
        let Some(inst) = self.domains.get_mut(&d) else {
            return;
        };
        let late: Vec<u64> = inst
            .ext
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut gone = Vec::new();
        for id in late {
            if let Some(p) = inst.ext.remove(&id) {
                gone.push(p);
            }
        }
        for p in gone {
            DomainStats::count(&self.stats.ext_timeouts);
            self.ext_reply(
                ctx,
                p.asker,
                d,
                Err("no answer in time".into()),
                Some(p.member),
            );
        }
    }
}
