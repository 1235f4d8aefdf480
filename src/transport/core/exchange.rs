//! The identity exchange on the control stream (protocol version 2): this node's engine adverts
//! and advert changes to its peers, lookups of engines sent to peers and answered for them.
//!
//! The core only carries: what the identity store decides arrives as [`ToPeers`]
//! ([`Core::handle_exchange`]), and what peers send leaves as [`Output::Exchange`] for the
//! store, tagged with the peer the connection authenticated. The core checks what the frame
//! alone can tell: an engine advert a peer hands over must name that peer as its node (else the
//! connection is closed with `PROTOCOL_VIOLATION`, like an advert of another node), and each
//! connection has a budget per second for lookups and engine adverts ([`Budget`]); what exceeds
//! it is dropped and counted ([`Fault::ExchangeOverRate`]), the connection stays up. Answers are
//! not queued for a peer that leaves more than [`MAX_CONTROL_BACKLOG_FOR_ANSWERS`] unread on the
//! control stream (counted the same way). Signatures, expiry and whether an answer was asked
//! for are the store's to check.

use std::time::Instant;

use rand_core::RngCore;

use super::conn::{Conn, State};
use super::peers::ConnId;
use super::{Core, Output};
use crate::identity::NodeIdentity;
use crate::mail::identity::{EngineAnswer, FromPeer, ToPeers};
use crate::runtime::stats::Fault;
use crate::time::Now;
use crate::transport::control::{
    self, EngineAdverts, Found, Lookup, Withdrawn, MAX_ENGINE_ADVERTS_PER_FRAME,
    MAX_WITHDRAWN_PER_FRAME,
};
use crate::transport::frame::kind;

/// Lookups a peer may send on one connection: a burst of this many, refilled at this many per
/// second.
pub const PEER_LOOKUPS_PER_S: u32 = 64;
/// Engine adverts a peer may hand over on one connection: a burst of this many (a node with
/// that many reachable engines, at connect), refilled at [`PEER_ENGINE_ADVERTS_REFILL_PER_S`].
pub const PEER_ENGINE_ADVERTS_BURST: u32 = 1024;
/// Refill rate of the engine-advert budget.
pub const PEER_ENGINE_ADVERTS_REFILL_PER_S: u32 = 16;
/// Answers to a peer's lookups are dropped (counted) while this many bytes wait on the control
/// stream to it: a peer that asks without reading its answers cannot grow our buffers.
pub const MAX_CONTROL_BACKLOG_FOR_ANSWERS: usize = 256 << 10;

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    burst: u32,
    per_s: u32,
    since: Instant,
}

impl Bucket {
    fn new(now: Instant, burst: u32, per_s: u32) -> Bucket {
        Bucket {
            tokens: burst,
            burst,
            per_s,
            since: now,
        }
    }

    /// Takes one token if there is one.
    fn take(&mut self, now: Instant) -> bool {
        let elapsed_ms = now.saturating_duration_since(self.since).as_millis() as u64;
        let refill = elapsed_ms * u64::from(self.per_s) / 1000;
        if refill > 0 {
            self.tokens = (u64::from(self.tokens) + refill).min(u64::from(self.burst)) as u32;
            // Advance by what the refill accounts for, keeping the remainder.
            self.since += std::time::Duration::from_millis(refill * 1000 / u64::from(self.per_s));
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// What a peer may send on one connection of the identity exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    lookups: Bucket,
    adverts: Bucket,
}

impl Budget {
    pub(crate) fn new(now: Instant) -> Budget {
        Budget {
            lookups: Bucket::new(now, PEER_LOOKUPS_PER_S, PEER_LOOKUPS_PER_S),
            adverts: Bucket::new(
                now,
                PEER_ENGINE_ADVERTS_BURST,
                PEER_ENGINE_ADVERTS_REFILL_PER_S,
            ),
        }
    }
}

impl<R: RngCore> Core<R> {
    /// A request of the identity store (see [`ToPeers`]).
    pub fn handle_exchange(&mut self, now: Now, req: ToPeers) {
        match req {
            ToPeers::OwnAdvert(advert) => {
                self.advert = advert;
                let payload = crate::wire::encode_to_vec(&self.advert);
                for id in self.ready_conns() {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.send_control(kind::ADVERT, &payload);
                        self.dirty.insert(id);
                    }
                }
            }
            ToPeers::OwnEngines { adverts, withdrawn } => {
                for a in &adverts {
                    self.own_engines.insert(a.engine, a.clone());
                }
                for e in &withdrawn {
                    self.own_engines.remove(e);
                }
                for id in self.ready_conns() {
                    if let Some(c) = self.conns.get_mut(&id) {
                        send_engine_frames(c, &adverts, &withdrawn);
                        self.dirty.insert(id);
                    }
                }
            }
            ToPeers::Lookup {
                engine,
                only,
                max_peers,
            } => self.send_lookup(now, engine, only, max_peers),
            ToPeers::Answer { to, answer } => {
                let EngineAnswer {
                    engine,
                    advert,
                    node_advert,
                } = *answer;
                let found = Found {
                    engine,
                    advert,
                    node_advert,
                };
                match self.ready_conn_of(&to) {
                    Some(id) => {
                        if let Some(c) = self.conns.get_mut(&id) {
                            if c.control_backlog() >= MAX_CONTROL_BACKLOG_FOR_ANSWERS {
                                self.stats.fault(Fault::ExchangeOverRate);
                                log::debug!(
                                    "transport: {} does not read its answers; one dropped",
                                    to.short()
                                );
                                return;
                            }
                            c.send_control(kind::FOUND, &control::encode(&found));
                            self.dirty.insert(id);
                        }
                    }
                    None => {
                        self.stats.fault(Fault::ExchangeAnswerLost);
                        log::debug!(
                            "transport: answer to {}'s lookup dropped: no longer connected",
                            to.short()
                        )
                    }
                }
            }
        }
    }

    /// Sends a lookup of `engine` to `only`, or to up to `max_peers` ready peers (smallest
    /// identities first), dialling known peers with addresses if fewer are connected; tells the
    /// store whom it asked.
    fn send_lookup(
        &mut self,
        now: Now,
        engine: crate::identity::EngineIdentity,
        only: Option<NodeIdentity>,
        max_peers: usize,
    ) {
        let payload = control::encode(&Lookup { engine });
        let mut asked = Vec::new();
        let targets: Vec<(NodeIdentity, ConnId)> = match only {
            Some(node) => self
                .ready_conn_of(&node)
                .map(|c| (node, c))
                .into_iter()
                .collect(),
            None => self
                .peers
                .iter()
                .filter_map(|(n, p)| Some((*n, p.active?)))
                .filter(|(_, c)| self.conns.get(c).is_some_and(|c| c.state == State::Ready))
                .take(max_peers)
                .collect(),
        };
        for (node, id) in targets {
            if let Some(c) = self.conns.get_mut(&id) {
                c.send_control(kind::LOOKUP, &payload);
                self.dirty.insert(id);
                asked.push(node);
            }
        }
        let mut dialling = false;
        if only.is_none() {
            // Peers already being dialled will be asked when ready; dial more if there is room.
            dialling = self
                .peers
                .values()
                .any(|p| p.active.is_none() && p.dialing.is_some());
            let room = max_peers.saturating_sub(asked.len());
            let to_dial: Vec<NodeIdentity> = self
                .peers
                .iter()
                .filter(|(_, p)| {
                    p.active.is_none()
                        && p.dialing.is_none()
                        && !p.addrs.is_empty()
                        && p.next_dial.is_none_or(|t| now.instant >= t)
                })
                .map(|(n, _)| *n)
                .take(room)
                .collect();
            for node in to_dial {
                self.dial(now, node);
                dialling |= self.peers.get(&node).is_some_and(|p| p.dialing.is_some());
            }
        }
        self.outputs
            .push_back(Output::Exchange(FromPeer::LookupSent {
                engine,
                peers: asked,
                dialling,
            }));
    }

    /// Connection `id` to `node` became ready: hand the peer this node's engine adverts and
    /// tell the store.
    pub(super) fn exchange_on_ready(&mut self, node: NodeIdentity, conn: &mut Conn) {
        let adverts: Vec<_> = self.own_engines.values().cloned().collect();
        send_engine_frames(conn, &adverts, &[]);
        self.outputs
            .push_back(Output::Exchange(FromPeer::Ready { node }));
    }

    /// An identity-exchange frame from the peer of `conn`. Returns an error text if the peer
    /// broke the protocol (the caller closes the connection).
    pub(super) fn exchange_frame(
        &mut self,
        conn: &mut Conn,
        k: u8,
        payload: &[u8],
        now: Now,
    ) -> Result<(), String> {
        let Some(from) = conn.node else {
            return Ok(());
        };
        match k {
            kind::ENGINE_ADVERTS => {
                let EngineAdverts(mut adverts) =
                    control::decode(payload).map_err(|e| format!("bad engine adverts: {e}"))?;
                if let Some(a) = adverts.iter().find(|a| a.node != from) {
                    return Err(format!(
                        "engine advert of {} names another node",
                        a.engine.short()
                    ));
                }
                let before = adverts.len();
                adverts.retain(|_| conn.exchange.adverts.take(now.instant));
                if adverts.len() < before {
                    self.over_rate(from, before - adverts.len(), "engine adverts");
                }
                if !adverts.is_empty() {
                    self.outputs
                        .push_back(Output::Exchange(FromPeer::EngineAdverts { from, adverts }));
                }
            }
            kind::ENGINE_WITHDRAW => {
                let Withdrawn(engines) =
                    control::decode(payload).map_err(|e| format!("bad withdrawal: {e}"))?;
                self.outputs
                    .push_back(Output::Exchange(FromPeer::Withdrawn { from, engines }));
            }
            kind::LOOKUP => {
                let Lookup { engine } =
                    control::decode(payload).map_err(|e| format!("bad lookup: {e}"))?;
                if conn.exchange.lookups.take(now.instant) {
                    self.outputs
                        .push_back(Output::Exchange(FromPeer::Query { from, engine }));
                } else {
                    self.over_rate(from, 1, "lookups");
                }
            }
            kind::FOUND => {
                let Found {
                    engine,
                    advert,
                    node_advert,
                } = control::decode(payload).map_err(|e| format!("bad answer: {e}"))?;
                self.outputs.push_back(Output::Exchange(FromPeer::Answer {
                    from,
                    answer: Box::new(EngineAnswer {
                        engine,
                        advert,
                        node_advert,
                    }),
                }));
            }
            other => return Err(format!("unknown control frame {other}")),
        }
        Ok(())
    }

    fn over_rate(&self, from: NodeIdentity, n: usize, what: &str) {
        for _ in 0..n {
            self.stats.fault(Fault::ExchangeOverRate);
        }
        log::debug!(
            "transport: {n} {what} from {} over its rate; dropped",
            from.short()
        );
    }

    /// Ready connections that are their peer's active one, by peer.
    fn ready_conns(&self) -> Vec<ConnId> {
        self.peers
            .values()
            .filter_map(|p| p.active)
            .filter(|c| self.conns.get(c).is_some_and(|c| c.state == State::Ready))
            .collect()
    }

    fn ready_conn_of(&self, node: &NodeIdentity) -> Option<ConnId> {
        let id = self.peers.get(node)?.active?;
        self.conns
            .get(&id)
            .filter(|c| c.state == State::Ready)
            .map(|_| id)
    }
}

/// Queues `adverts` (in frames of at most [`MAX_ENGINE_ADVERTS_PER_FRAME`]) and `withdrawn` (in
/// frames of at most [`MAX_WITHDRAWN_PER_FRAME`]) on `conn`'s control stream.
fn send_engine_frames(
    conn: &mut Conn,
    adverts: &[crate::wire::EngineAdvert],
    withdrawn: &[crate::identity::EngineIdentity],
) {
    for chunk in adverts.chunks(MAX_ENGINE_ADVERTS_PER_FRAME) {
        let payload = control::encode(&EngineAdverts(chunk.to_vec()));
        conn.send_control(kind::ENGINE_ADVERTS, &payload);
    }
    for chunk in withdrawn.chunks(MAX_WITHDRAWN_PER_FRAME) {
        let payload = control::encode(&Withdrawn(chunk.to_vec()));
        conn.send_control(kind::ENGINE_WITHDRAW, &payload);
    }
}
