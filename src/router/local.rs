//! Routing what local engines send: unsigned messages that stay on the node, signed ones for
//! other nodes (through the Transport), and messages waiting for the Network Identity Store to
//! say where their destination engine runs.

use std::sync::atomic::Ordering as AtomicOrdering;

use super::{Bounce, PendingLookup, RouteHeader, Router, RouterOutput, Slot};
use crate::identity::{DomainIdentity, EngineIdentity, NodeIdentity};
use crate::mail::identity::{AnyIdentity, IdentityRequest};
use crate::mail::{DropReason, Message, Outbound, Outgoing, RemoteSend};
use crate::time::Now;
use crate::wire::message::Unverified;
use crate::wire::{Destination, EngineMessage, Protocol, RoutingScope};

impl Router {
    /// A message from a local engine.
    pub fn handle_local(&mut self, now: Now, outbound: Outbound) {
        match outbound {
            Outbound::Local(out) => self.route_local(now, out),
            Outbound::Signed { header, wire } => self.route_signed(now, header, wire),
        }
    }

    pub(super) fn route_local(&mut self, now: Now, out: Outgoing) {
        let Outgoing {
            msg,
            notify_undeliverable: notify,
        } = out;
        let msg: Box<EngineMessage> = msg;
        let bounce = notify.then_some(Bounce {
            src: msg.src,
            id: msg.id,
            dst: msg.dst,
        });
        if msg.is_expired(now.wall) {
            return self.drop_message(bounce, DropReason::Expired, &msg);
        }
        match msg.dst {
            Destination::Engine(e) => match self.locals.get(&e) {
                Some(local) => self.deliver(local.slot, Message::local_boxed(msg), bounce),
                // Unsigned, so its sender's shell kept it on this node: either its scope is
                // `Local`, or the engine was local when it was sent and has stopped since.
                None if msg.scope() == RoutingScope::Local => {
                    self.drop_message(bounce, DropReason::ScopeViolation, &msg)
                }
                None => self.drop_message(bounce, DropReason::EngineGone, &msg),
            },
            Destination::Node(n) if n == self.node => match self.services.get(&msg.protocol) {
                Some(&slot) => self.deliver(slot, Message::local_boxed(msg), bounce),
                None => self.drop_message(bounce, DropReason::NoRoute, &msg),
            },
            Destination::Node(_) if msg.scope() == RoutingScope::Local => {
                self.drop_message(bounce, DropReason::ScopeViolation, &msg)
            }
            Destination::Node(_) => self.drop_message(bounce, DropReason::Unsigned, &msg),
            Destination::Topic(t) => {
                let Some(topic) = self.topics.get(&t) else {
                    return self.drop_message(bounce, DropReason::UnknownTopic, &msg);
                };
                // Publishing on a domain's topic (scoped by the message or by the topic) is for
                // members only: PubSub would carry it to the domain.
                let domain = match (msg.scope(), topic.scope) {
                    (RoutingScope::Domain(d), _) | (_, RoutingScope::Domain(d)) => Some(d),
                    _ => None,
                };
                if domain.is_some_and(|d| !self.domains.member_here(&d)) {
                    return self.drop_message(bounce, DropReason::NotMember, &msg);
                }
                let targets: Vec<Slot> = topic
                    .subscribers
                    .iter()
                    .filter(|s| **s != msg.src)
                    .filter_map(|s| self.locals.get(s).map(|l| l.slot))
                    .collect();
                self.fan_out_message(targets, Message::local_boxed(msg), bounce);
            }
            Destination::Domain(d) => self.route_local_domain(d, msg, bounce),
        }
    }

    /// A message for some member of `d`, unsigned: delivered here by protocol when this node is
    /// a member; refused when its scope keeps it on the node; otherwise handed to the
    /// DomainRouting engine (which sends it to a known member or routes it greedily).
    fn route_local_domain(
        &mut self,
        d: DomainIdentity,
        msg: Box<EngineMessage>,
        bounce: Option<Bounce>,
    ) {
        let to = if self.domains.member_here(&d) {
            self.services.get(&msg.protocol)
        } else if msg.scope() == RoutingScope::Local {
            return self.drop_message(bounce, DropReason::ScopeViolation, &msg);
        } else {
            self.services.get(&Protocol::DOMAIN_ROUTING)
        };
        match to {
            Some(&slot) => self.deliver(slot, Message::local_boxed(msg), bounce),
            None => self.drop_message(bounce, DropReason::NoRoute, &msg),
        }
    }

    pub(super) fn route_signed(&mut self, now: Now, header: RouteHeader, wire: Vec<u8>) {
        if header.expiry.is_some_and(|e| e <= now.wall) {
            return self.drop_header(&header, DropReason::Expired);
        }
        let to_node = match header.dst {
            Destination::Engine(e) if self.locals.contains_key(&e) => None,
            Destination::Engine(e) if self.gone.contains(&e) => {
                return self.drop_header(&header, DropReason::EngineGone)
            }
            Destination::Engine(e) => match self.remote_engines.get(&e) {
                Some(&node) => Some(node),
                None => return self.park_for_lookup(now, e, header, wire),
            },
            Destination::Node(n) if n == self.node => None,
            Destination::Node(n) => Some(n),
            Destination::Topic(_) => None,
            // A member routes it here; a known member of the domain gets it straight (anycast);
            // otherwise it goes to the DomainRouting engine, through `route_local`.
            Destination::Domain(d) if self.domains.member_here(&d) => None,
            Destination::Domain(d) => self
                .domain_routes
                .members(&d)
                .into_iter()
                .map(|m| m.node)
                .find(|n| *n != self.node),
        };
        match to_node {
            Some(node) => self.send_remote(now, node, header, wire),
            None => {
                // Signed but for this node after all: decode our own engine's message.
                match Unverified::decode(wire) {
                    Ok(u) => {
                        let out = Outgoing {
                            msg: Box::new(u.message().clone()),
                            notify_undeliverable: header.notify,
                        };
                        self.route_local(now, out);
                    }
                    Err(e) => {
                        debug_assert!(false, "a local engine produced undecodable wire: {e}");
                        self.drop_header(&header, DropReason::Malformed);
                    }
                }
            }
        }
    }

    pub(super) fn send_remote(
        &mut self,
        now: Now,
        node: NodeIdentity,
        header: RouteHeader,
        wire: Vec<u8>,
    ) {
        match header.scope() {
            RoutingScope::Local => return self.drop_header(&header, DropReason::ScopeViolation),
            // The destination node is known here, whether it was addressed or looked up.
            RoutingScope::Domain(d) if !self.domain_allows(&d, &node) => {
                log::debug!(
                    "router: message {} for {} is scoped to domain {}, of which {} not a member",
                    header.id.0,
                    node.short(),
                    d.short(),
                    if self.domains.member_here(&d) {
                        "the destination is"
                    } else {
                        "this node is"
                    }
                );
                return self.drop_header(&header, DropReason::NotMember);
            }
            _ => {}
        }
        if !self.has_transport {
            return self.drop_header(&header, DropReason::NoTransport);
        }
        self.stats.sent_remote.fetch_add(1, AtomicOrdering::Relaxed);
        if let Some(hops) = Router::onion_hops(&header) {
            return self.send_onion(now, node, header, wire, hops);
        }
        let Some((header, wire)) = self.send_indirect(now, node, header, wire) else {
            return;
        };
        self.outputs
            .push_back(RouterOutput::Transport(RemoteSend::message(
                node, header, wire,
            )));
    }

    pub(super) fn park_for_lookup(
        &mut self,
        now: Now,
        engine: EngineIdentity,
        header: RouteHeader,
        wire: Vec<u8>,
    ) {
        if let Some(p) = self.pending.get_mut(&engine) {
            if p.messages.len() >= self.limits.max_pending_per_destination {
                return self.drop_header(&header, DropReason::PendingFull);
            }
            p.messages.push((header, wire));
            return;
        }
        if self.pending.len() >= self.limits.max_pending_destinations {
            return self.drop_header(&header, DropReason::PendingFull);
        }
        self.pending.insert(
            engine,
            PendingLookup {
                since: now.instant,
                messages: vec![(header, wire)],
            },
        );
        self.outputs
            .push_back(RouterOutput::Identity(IdentityRequest::Lookup(
                AnyIdentity::Engine(engine),
            )));
        let due = now.instant + self.limits.lookup_timeout;
        self.next_housekeeping = Some(self.next_housekeeping.map_or(due, |t| t.min(due)));
    }
}
