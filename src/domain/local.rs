//! Local mail from applications and the command line (`DomainMail`, `Protocol::DOMAIN`, scope
//! `Local`): join, leave, expel, list the members, external requests. Every request gets one
//! answer, sent to the asking engine.

use super::{DomainEngine, DomainStats};
use crate::identity::EngineIdentity;
use crate::mail::domain::{DomainMail, JoinRefusal, MemberInfo};
use crate::mail::interdomain::RoutingMail;
use crate::mail::Message;
use crate::runtime::{Context, SendOptions};
use crate::wire::{decode_exact, Destination, DomainAdvert, Protocol};

impl DomainEngine {
    /// Sends `mail` to the local engine `asker`.
    pub(super) fn reply_local(
        &mut self,
        ctx: &mut Context,
        asker: EngineIdentity,
        mail: &DomainMail,
    ) {
        ctx.send_with(
            Destination::Engine(asker),
            Protocol::DOMAIN,
            mail.encode(),
            SendOptions::local_only(),
        );
    }

    pub(super) fn on_local_mail(&mut self, ctx: &mut Context, m: &Message) {
        // A request that reached this member through domain routing (its own mail version).
        if let Ok(mail) = RoutingMail::decode(m.body()) {
            return self.on_routing_mail(ctx, m.sender().named(), mail);
        }
        let Ok(mail) = DomainMail::decode(m.body()) else {
            DomainStats::count(&self.stats.local_malformed);
            return;
        };
        let asker = m.sender().named();
        match mail {
            DomainMail::Join { domain, advert } => {
                if let Some(bytes) = advert {
                    // `add_domain` counts the adverts it refuses; count the others here.
                    let ok = match decode_exact::<DomainAdvert>(&bytes) {
                        Ok(a) if a.id == domain => self.add_domain(a, None, false).is_ok(),
                        _ => {
                            DomainStats::count(&self.stats.adverts_refused);
                            false
                        }
                    };
                    if !ok {
                        self.join_result(ctx, asker, domain, Err(JoinRefusal::BadRequest), None);
                        return;
                    }
                }
                self.start_join(ctx, domain, Some(asker));
            }
            DomainMail::Leave { domain } => {
                let result = self.leave(domain);
                self.reply_local(ctx, asker, &DomainMail::Done { domain, result });
            }
            DomainMail::Expel { domain, node } => {
                let result = self.expel(domain, node);
                self.reply_local(ctx, asker, &DomainMail::Done { domain, result });
            }
            DomainMail::Members { domain } => {
                let members = self.member_infos(&domain);
                self.reply_local(ctx, asker, &DomainMail::MembersAre { domain, members });
            }
            DomainMail::ExtRequest {
                domain,
                protocol,
                body,
            } => self.send_ext(ctx, asker, domain, protocol, body),
            // Answers are not requests: nothing to do.
            DomainMail::JoinResult { .. }
            | DomainMail::Done { .. }
            | DomainMail::MembersAre { .. }
            | DomainMail::ExtReply { .. } => DomainStats::count(&self.stats.local_malformed),
        }
    }

    /// `RoutingMail` from the DomainRouting engine: an `Arrived` request is answered as an
    /// external request, with `Respond` to the engine that handed it over.
    fn on_routing_mail(&mut self, ctx: &mut Context, from: EngineIdentity, mail: RoutingMail) {
        let RoutingMail::Arrived {
            token,
            domain,
            protocol,
            body,
            ..
        } = mail
        else {
            DomainStats::count(&self.stats.local_malformed);
            return;
        };
        DomainStats::count(&self.stats.routed_requests);
        let result = self.answer_ext(&domain, protocol, &body);
        ctx.send_with(
            Destination::Engine(from),
            Protocol::DOMAIN_ROUTING,
            RoutingMail::Respond { token, result }.encode(),
            SendOptions::local_only(),
        );
    }

    /// The members of `domain` as `MembersAre` lists them (empty for an unknown domain).
    pub fn member_infos(&self, domain: &crate::identity::DomainIdentity) -> Vec<MemberInfo> {
        let Some(inst) = self.domains.get(domain) else {
            return Vec::new();
        };
        inst.log
            .members()
            .iter()
            .map(|(node, m)| MemberInfo {
                node: *node,
                epoch: m.epoch,
                approver: m.approver,
                introducer: m.introducer,
                in_view: inst.view.contains(node),
            })
            .collect()
    }
}
