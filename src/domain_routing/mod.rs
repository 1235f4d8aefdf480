//! The DomainRouting engine (name [`DOMAIN_ROUTING_ENGINE_NAME`], serves
//! `Protocol::DOMAIN_ROUTING`): reaches *some* member of a domain this node knows no member of,
//! by greedy forwarding over the inter-domain neighbours (spec notes §9.9), and brings its
//! answer back. docs/domain-routing.md describes the algorithm and its choices; docs/wire.md
//! §12D the messages.
//!
//! * **Asking.** A local engine sends `RoutingMail::Request { domain, protocol, body }`, or
//!   the Router hands over a message addressed to `Destination::Domain(d)` (no member known,
//!   this node not one). The engine answers the asker with `RoutingMail::Answer { result,
//!   member, hops, advert }` (reply to the asking message), exactly once: the member's answer,
//!   or an error (no neighbour, no answer within [`RoutingSettings::timeout`], too many
//!   requests outstanding).
//! * **Each hop** ([`forward`]): a member of the domain that accepts external requests (its
//!   [`DomainDirectory`] entry says `external_here`, or holds no advert) delivers; else a
//!   member known from an earlier answer ([`DomainRoutes`]) gets the request; else the
//!   neighbour of the [`NeighbourBoard`] not on the path whose BLIP filter scores best for the
//!   domain ([`crate::interdomain::blip::domain_score`]); when none scores above its noise
//!   floor, or all score alike, a random long link (TAPS random view or TAC finger). The
//!   [`RoutingMode::RandomWalk`] baseline picks a uniformly random neighbour instead.
//!   Every hop appends itself to the path; paths that loop, do not end at the sending peer, or
//!   pass the hop limit are refused and counted.
//! * **At the member** ([`answer`]): `DOMAIN_ROUTING` with body `probe` is answered here
//!   (`member`); any other protocol goes as `RoutingMail::Arrived` to the local engine
//!   serving it (the Domain engine answers `Protocol::DOMAIN` `info`), whose
//!   `RoutingMail::Respond` becomes the [`wire::DomainResponse`], signed by the member's node
//!   key, sent back along the reversed path. Each relay forwards it only to the node it got
//!   the request from, and only once.
//! * **Back at the asker** the signature, the path and the request id are checked; the member
//!   is learnt in [`DomainRoutes`] (and its advert handed to the identity store) so the next
//!   request for the domain goes straight to it (hops = 1); a known member that turns out to be
//!   unreachable is forgotten and the request routed again once.
//! * **Opting out**: with [`RoutingSettings::forward`] false the engine asks for its own
//!   engines but refuses every request of another node (`opted_out`).
//!
//! Trust: local mail is acted on only with `Origin::Local`; routing messages only with
//! `Origin::Remote { via }` whose verified sender runs on `via`. Every refusal is counted in
//! [`RoutingStats`]; hostile ones are logged at the 1st, 2nd, 4th … occurrence.
//!
//! Drain contract: one timer (token [`TICK`]), set for the earliest deadline of the state held
//! (own requests, requests held for a local engine, relay entries); every other output is a
//! message or an identity-store update recorded in the `Context`. Randomness comes only from
//! the seed given to [`DomainRoutingEngine::new`]; every map is ordered, so one seed and one
//! input sequence give one output sequence.
//!
//! Memory: bounded by [`RoutingLimits`] (≈ 21 MiB worst case at the defaults; see its doc).

mod answer;
mod forward;
mod settings;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::identity::{DomainIdentity, EngineIdentity, Keypair, NodeIdentity};
use crate::mail::domain::DomainDirectory;
pub use crate::mail::interdomain::DOMAIN_ROUTING_ENGINE_NAME;
use crate::mail::interdomain::{DomainRoutes, NeighbourBoard, RoutingMail};
use crate::mail::{Input, Message, Origin, Undeliverable};
use crate::rng::SplitMix64;
use crate::runtime::{Context, Engine, SendOptions};
use crate::wire::{Destination, MessageId, NodeAdvert, Protocol, WireError};
pub use settings::{
    RoutingLimits, RoutingMode, RoutingProbe, RoutingSettings, RoutingSnapshot, RoutingStats,
};
use wire::RoutingMessage;

/// The token of the engine's one timer.
pub const TICK: u64 = 1;
/// The body of the built-in request a member's DomainRouting engine answers itself.
pub const PROBE_REQUEST: &[u8] = b"probe";
/// A member's answer to [`PROBE_REQUEST`].
pub const PROBE_ANSWER: &[u8] = b"member";

/// One of this node's own requests, waiting for its answer.
struct Pending {
    /// The engine that asked, and the message it asked with (the answer replies to it).
    asker: EngineIdentity,
    reply_to: MessageId,
    domain: DomainIdentity,
    protocol: Protocol,
    /// Kept for one re-route if the known member it went to is unreachable.
    body: Vec<u8>,
    /// The node the request was sent to, and the message it went in.
    first_hop: NodeIdentity,
    sent: MessageId,
    /// Whether `first_hop` is a member known from an earlier answer.
    direct: bool,
    retried: bool,
    /// When the asker gives up (the same for every attempt).
    deadline: Instant,
    /// Attempts sent so far, the first hops they went to, and when the next one is due.
    attempts: u8,
    tried: Vec<NodeIdentity>,
    next_attempt: Instant,
}

/// A request this node forwarded: where its answer comes from and where it goes.
struct Relay {
    prev: NodeIdentity,
    next: NodeIdentity,
    deadline: Instant,
}

/// Who gets the answer to a request handed to a local engine.
enum Reply {
    /// Another node's request: a signed response back along the path.
    Remote {
        id: u64,
        src: NodeIdentity,
        domain: DomainIdentity,
        path: Vec<NodeIdentity>,
        prev: NodeIdentity,
    },
    /// This node's own request (it is a member): an answer to the local asker.
    Local {
        asker: EngineIdentity,
        reply_to: MessageId,
        domain: DomainIdentity,
    },
}

/// A request handed to a local engine as `RoutingMail::Arrived`, waiting for `Respond`.
struct Arrived {
    reply: Reply,
    protocol: Protocol,
    /// The `Arrived` message (an undeliverable one means nothing serves the protocol).
    msg: MessageId,
    deadline: Instant,
}

/// The DomainRouting engine (see the module doc).
pub struct DomainRoutingEngine {
    key: Keypair,
    me: NodeIdentity,
    own_advert: NodeAdvert,
    settings: RoutingSettings,
    directory: DomainDirectory,
    board: NeighbourBoard,
    routes: DomainRoutes,
    stats: Arc<RoutingStats>,
    probe: RoutingProbe,
    rng: SplitMix64,
    pending: BTreeMap<u64, Pending>,
    /// Ids of earlier attempts of a pending request → the id it is pending under now, and the
    /// first hop that attempt went to (so a late answer to it still counts). At most
    /// `max_pending × (attempts − 1)` entries, dropped with their request.
    earlier: BTreeMap<u64, (u64, NodeIdentity)>,
    relayed: BTreeMap<(NodeIdentity, u64), Relay>,
    arrived: BTreeMap<u64, Arrived>,
    next_token: u64,
    /// Per peer: the second its request window began, and the requests accepted in it.
    rate: BTreeMap<NodeIdentity, (u64, u32)>,
    /// When the one timer is set for, if it is.
    timer_at: Option<Instant>,
}

impl DomainRoutingEngine {
    /// An engine for the node whose key is `node_key` and whose advert is `own_advert` (sent
    /// with its requests and answers; the board's own descriptor's advert is used instead once
    /// PeerSampling has made one). It reads the node's memberships from `directory`, its
    /// neighbours from `board`, learns members into `routes` (shared with the Router), and
    /// takes every random choice from `seed`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node_key: Keypair,
        own_advert: NodeAdvert,
        mut settings: RoutingSettings,
        directory: DomainDirectory,
        board: NeighbourBoard,
        routes: DomainRoutes,
        stats: Arc<RoutingStats>,
        seed: u64,
    ) -> DomainRoutingEngine {
        settings.hop_limit = settings.hop_limit.clamp(1, wire::MAX_PATH);
        DomainRoutingEngine {
            me: node_key.node_identity(),
            key: node_key,
            own_advert,
            settings,
            directory,
            board,
            routes,
            probe: RoutingProbe {
                state: Arc::default(),
                stats: stats.clone(),
            },
            stats,
            rng: SplitMix64::new(seed),
            pending: BTreeMap::new(),
            earlier: BTreeMap::new(),
            relayed: BTreeMap::new(),
            arrived: BTreeMap::new(),
            next_token: 1,
            rate: BTreeMap::new(),
            timer_at: None,
        }
    }

    /// The read-only probe (shared; updated after every input).
    pub fn probe(&self) -> RoutingProbe {
        self.probe.clone()
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Arc<RoutingStats> {
        &self.stats
    }

    /// The settings this engine was built with (the hop limit clamped to 1..=`MAX_PATH`).
    pub fn settings(&self) -> &RoutingSettings {
        &self.settings
    }

    // --- inputs -------------------------------------------------------------------------

    fn on_message(&mut self, ctx: &mut Context, msg: Message) {
        match msg.origin() {
            Origin::Local => {
                let asker = msg.sender().named();
                if let Destination::Domain(d) = msg.dst() {
                    // Handed over by the Router: a message for some member of `d`.
                    let (id, protocol) = (msg.id(), msg.protocol());
                    self.start(ctx, asker, id, d, protocol, msg.into_body());
                    return;
                }
                if msg.protocol() != Protocol::DOMAIN_ROUTING {
                    RoutingStats::count(&self.stats.malformed);
                    return;
                }
                match RoutingMail::decode(msg.body()) {
                    Ok(RoutingMail::Request {
                        domain,
                        protocol,
                        body,
                    }) => self.start(ctx, asker, msg.id(), domain, protocol, body),
                    Ok(RoutingMail::Respond { token, result }) => {
                        self.on_respond(ctx, token, result)
                    }
                    Ok(other) => {
                        log::debug!("domain routing: local mail not for this engine: {other:?}");
                        RoutingStats::count(&self.stats.malformed);
                    }
                    Err(WireError::UnknownVersion(_)) => {
                        RoutingStats::count(&self.stats.unknown_version)
                    }
                    Err(e) => {
                        log::debug!("domain routing: undecodable local mail: {e}");
                        RoutingStats::count(&self.stats.malformed);
                    }
                }
            }
            Origin::Remote { via } => {
                let sender = msg.sender();
                if sender.verified().is_none() || sender.named_node() != via || via == self.me {
                    self.hostile(&self.stats.bad_origin, "a sender not of its node", via);
                    return;
                }
                if msg.protocol() != Protocol::DOMAIN_ROUTING {
                    self.hostile(&self.stats.malformed, "a message of another protocol", via);
                    return;
                }
                if let Destination::Domain(d) = msg.dst() {
                    // Sent straight to this member by a Router that knew it (anycast).
                    return self.on_direct_probe(ctx, via, d, &msg);
                }
                match RoutingMessage::from_bytes(msg.body()) {
                    Ok(RoutingMessage::Request(r)) => self.on_request(ctx, via, r),
                    Ok(RoutingMessage::Response(r)) => self.on_response(ctx, via, r),
                    Err(WireError::UnknownVersion(_)) => {
                        self.hostile(&self.stats.unknown_version, "an unknown version", via)
                    }
                    Err(e) => {
                        let what = format!("an undecodable body ({e})");
                        self.hostile(&self.stats.malformed, &what, via);
                    }
                }
            }
            Origin::Topic { via, .. } => {
                self.hostile(&self.stats.bad_origin, "a topic event", via);
            }
        }
    }

    /// A `Destination::Domain(d)` message of protocol `DOMAIN_ROUTING` from another node's
    /// engine, which its Router sent straight to this node as a known member of `d`: a
    /// `probe` is answered with a reply carrying `member` (the protocol's own reply).
    fn on_direct_probe(
        &mut self,
        ctx: &mut Context,
        via: NodeIdentity,
        d: DomainIdentity,
        msg: &Message,
    ) {
        if !self.settings.forward {
            RoutingStats::count(&self.stats.opted_out);
            return;
        }
        if !self.within_rate(ctx.now().wall.0, via) {
            return self.hostile(&self.stats.rate_limited, "requests over the rate", via);
        }
        match forward::probe_answer(msg.body()) {
            Ok(answer) if self.delivers(&d) => {
                RoutingStats::count(&self.stats.member_answers);
                ctx.reply(msg, answer);
            }
            Ok(_) => RoutingStats::count(&self.stats.not_here),
            Err(_) => self.hostile(
                &self.stats.malformed,
                "a direct request that is no probe",
                via,
            ),
        }
    }

    fn on_undeliverable(&mut self, ctx: &mut Context, u: Undeliverable) {
        if let Some(id) = self
            .pending
            .iter()
            .find(|(_, p)| p.sent == u.id)
            .map(|(id, _)| *id)
        {
            self.first_hop_failed(ctx, id, u.reason.label());
            return;
        }
        if let Some(token) = self
            .arrived
            .iter()
            .find(|(_, a)| a.msg == u.id)
            .map(|(t, _)| *t)
        {
            if let Some(a) = self.arrived.remove(&token) {
                let why = format!("protocol {} is not served here", a.protocol.0);
                self.finish_arrived(ctx, a.reply, Err(why));
            }
        }
    }

    /// Expired own requests, held requests and relay entries.
    fn on_tick(&mut self, ctx: &mut Context) {
        let now = ctx.now().instant;
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            RoutingStats::count(&self.stats.timeouts);
            if p.direct {
                self.routes.forget(&p.domain, &p.first_hop);
            }
            let result = Err("no answer in time".to_string());
            self.answer(ctx, p.asker, p.reply_to, p.domain, result, None, 0, None);
        }
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next_attempt <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.reattempt(ctx, id);
        }
        let pending = &self.pending;
        self.earlier.retain(|_, (id, _)| pending.contains_key(id));
        let late: Vec<u64> = self
            .arrived
            .iter()
            .filter(|(_, a)| a.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in late {
            if let Some(a) = self.arrived.remove(&token) {
                let why = "the engine serving the protocol did not answer in time".to_string();
                self.finish_arrived(ctx, a.reply, Err(why));
            }
        }
        self.relayed.retain(|_, r| r.deadline > now);
        let sec = ctx.now().wall.0 / 1000;
        self.rate.retain(|_, (s, _)| *s >= sec);
    }

    /// After every input: the probe, and the timer for the earliest deadline held.
    fn after(&mut self, ctx: &mut Context) {
        *self.probe.state.write() = RoutingSnapshot {
            pending: self.pending.len(),
            relayed: self.relayed.len(),
            arrived: self.arrived.len(),
        };
        let earliest = self
            .pending
            .values()
            .map(|p| p.deadline.min(p.next_attempt))
            .chain(self.arrived.values().map(|a| a.deadline))
            .chain(self.relayed.values().map(|r| r.deadline))
            .min();
        if let Some(at) = earliest {
            if self.timer_at.is_none_or(|t| at < t) {
                ctx.set_timer(TICK, at);
                self.timer_at = Some(at);
            }
        }
    }

    // --- helpers ------------------------------------------------------------------------

    /// Whether this node delivers requests for `domain`: a member that accepts external
    /// requests, or a member of a domain whose advert it does not hold.
    fn delivers(&self, domain: &DomainIdentity) -> bool {
        self.directory
            .entry(domain)
            .is_some_and(|e| e.member_here && (e.external_here || e.advert.is_none()))
    }

    /// The domain's advert in wire form, as this node holds it (for answers).
    fn domain_advert(&self, domain: &DomainIdentity) -> Option<Vec<u8>> {
        self.directory
            .entry(domain)
            .and_then(|e| e.advert)
            .filter(|a| !a.is_empty() && a.len() <= wire::MAX_ADVERT)
            .map(|a| a.to_vec())
    }

    /// This node's freshest advert.
    fn advert(&self) -> NodeAdvert {
        self.board
            .own()
            .map(|d| d.advert.clone())
            .unwrap_or_else(|| self.own_advert.clone())
    }

    /// Sends a routing message to `peer`.
    fn send_remote(
        &mut self,
        ctx: &mut Context,
        peer: NodeIdentity,
        msg: &RoutingMessage,
        notify: bool,
    ) -> MessageId {
        RoutingStats::count(match msg {
            RoutingMessage::Request(_) => &self.stats.sent_requests,
            RoutingMessage::Response(_) => &self.stats.sent_responses,
        });
        let opts = SendOptions {
            notify_undeliverable: notify,
            expiry: self.settings.timeout,
            ..SendOptions::default()
        };
        ctx.send_with(
            Destination::Node(peer),
            Protocol::DOMAIN_ROUTING,
            msg.to_bytes(),
            opts,
        )
    }

    /// Answers a local asker (`RoutingMail::Answer`, a reply to its request).
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        ctx: &mut Context,
        asker: EngineIdentity,
        reply_to: MessageId,
        domain: DomainIdentity,
        result: Result<Vec<u8>, String>,
        member: Option<NodeIdentity>,
        hops: u32,
        advert: Option<Vec<u8>>,
    ) {
        let mail = RoutingMail::Answer {
            domain,
            result,
            member,
            hops,
            advert,
        };
        let opts = SendOptions {
            reply_to: Some(reply_to),
            notify_undeliverable: false,
            ..SendOptions::local_only()
        };
        ctx.send_with(
            Destination::Engine(asker),
            Protocol::DOMAIN_ROUTING,
            mail.encode(),
            opts,
        );
    }

    /// Counts hostile input from `peer` and logs it at powers of two.
    fn hostile(&self, counter: &std::sync::atomic::AtomicU64, what: &str, peer: NodeIdentity) {
        if let Some(n) = RoutingStats::count_hostile(counter) {
            log::warn!(
                "domain routing: refused {what} from {} (seen {n} times)",
                peer.short()
            );
        }
    }

    /// Whether a request from `peer` is within its per-second rate (and counts it).
    fn within_rate(&mut self, now_ms: u64, peer: NodeIdentity) -> bool {
        let sec = now_ms / 1000;
        if !self.rate.contains_key(&peer) && self.rate.len() >= self.settings.limits.rate_peers {
            self.rate.retain(|_, (s, _)| *s >= sec);
            if self.rate.len() >= self.settings.limits.rate_peers {
                return false;
            }
        }
        let e = self.rate.entry(peer).or_insert((sec, 0));
        if e.0 != sec {
            *e = (sec, 0);
        }
        e.1 += 1;
        e.1 <= self.settings.limits.requests_per_peer_s
    }
}

impl Engine for DomainRoutingEngine {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Message(m) => self.on_message(ctx, m),
            Input::Undeliverable(u) => self.on_undeliverable(ctx, u),
            Input::Timer(TICK) => {
                self.timer_at = None;
                self.on_tick(ctx);
            }
            _ => {}
        }
        self.after(ctx);
    }
}
