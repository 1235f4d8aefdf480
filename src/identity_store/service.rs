//! The node's identity service: the [`IdentityStore`] together with the node's own adverts
//! ([`OwnAdverts`]) and lookups of unknown engines with other nodes ([`Lookups`]) — everything
//! the `nm-nis` thread runs, sans IO.
//!
//! # What it does
//!
//! * Local requests are the store's ([`IdentityService::handle_request`]), except a lookup of an
//!   engine the store has no record of, on a node with a Transport: that becomes a lookup with
//!   other nodes, and the party is answered when it ends (found, unknown, or at the timeout).
//! * The node's reachable engines ([`IdentityService::handle_reachable`]) and addresses
//!   ([`IdentityService::handle_set_addresses`]) become signed adverts: stored in this store
//!   (so that lookups by other nodes are answered from it), handed to the Transport for the
//!   connected peers ([`ToPeers::OwnEngines`], [`ToPeers::OwnAdvert`]), and the node advert to
//!   the node's handle ([`ServiceOutput::OwnAdvert`]).
//! * What peers hand over ([`IdentityService::handle_from_peer`]): engine adverts of the peer
//!   (verified and stored like any advert), withdrawals (an engine record is forgotten only if
//!   it is bound to the peer that withdraws it), lookups (answered from the store with a valid
//!   advert, and the advert of the engine's node if held, or "unknown"), and answers to our
//!   lookups — taken only from a peer that was asked, and only if the advert is for the engine
//!   asked about, verifies and has not expired; anything else is refused and counted.
//! * Time ([`IdentityService::handle_timeout`]): expired adverts are forgotten, lookups time
//!   out, and the node's own adverts are re-signed before they expire.
//!
//! # Drain contract
//!
//! After any `handle_*` call, drain [`IdentityService::poll_output`] until `None`, delivering
//! events to their parties, [`ServiceOutput::Peers`] to the Transport and
//! [`ServiceOutput::OwnAdvert`] to the node's handle. Call [`IdentityService::handle_timeout`]
//! when [`IdentityService::poll_timeout`] passes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::lookup::{LookupEvent, LookupLimits, Lookups, Start};
use super::own::OwnAdverts;
use super::stats::IdentityStats;
use super::IdentityStore;
use crate::identity::{EngineIdentity, NodeIdentity};
use crate::mail::identity::{
    AnyIdentity, EngineAnswer, FromPeer, IdentityEvent, IdentityRecord, IdentityRequest,
    IdentityUpdate, Party, ToPeers, UpdateResult,
};
use crate::time::{Now, Timestamp};
use crate::wire::{EngineAdvert, NodeAdvert, Signed, TransportAddress};

/// What the service hands out.
// Drained at once; boxing would allocate per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ServiceOutput {
    /// Deliver `event` to `party`.
    Event(Party, IdentityEvent),
    /// Hand this to the Transport.
    Peers(ToPeers),
    /// The node's advert changed: what [`crate::node::Node::advert`] returns from now on.
    OwnAdvert(NodeAdvert),
}

/// The identity service (see the module doc).
pub struct IdentityService {
    store: IdentityStore,
    own: OwnAdverts,
    /// `None` on a node without a Transport: nobody to ask.
    lookups: Option<Lookups>,
    stats: Arc<IdentityStats>,
    outputs: VecDeque<ServiceOutput>,
}

impl IdentityService {
    /// A service over `store` with the node's adverts `own`; `lookups` are made with other
    /// nodes only if given (a node with a Transport). The node's own advert is stored at once.
    pub fn new(
        now: Now,
        store: IdentityStore,
        own: OwnAdverts,
        lookups: Option<LookupLimits>,
        stats: Arc<IdentityStats>,
    ) -> IdentityService {
        IdentityStats::count(&stats.node_adverts_signed);
        let mut service = IdentityService {
            store,
            lookups: lookups.map(|l| Lookups::new(l, Arc::clone(&stats))),
            own,
            stats,
            outputs: VecDeque::new(),
        };
        let advert = service.own.node_advert().clone();
        service.apply(now, IdentityUpdate::NodeAdvert(advert));
        service.pump();
        service
    }

    /// The store.
    pub fn store(&self) -> &IdentityStore {
        &self.store
    }

    /// The store, to take its changes ([`IdentityStore::take_changes`]).
    pub fn store_mut(&mut self) -> &mut IdentityStore {
        &mut self.store
    }

    /// Counts a batch of changed records that could not be written to the store's file.
    pub fn count_write_failure(&self) {
        IdentityStats::count(&self.stats.file_write_failures);
    }

    /// The node's current advert.
    pub fn node_advert(&self) -> &NodeAdvert {
        self.own.node_advert()
    }

    /// Lookups with other nodes running.
    pub fn outstanding_lookups(&self) -> usize {
        self.lookups.as_ref().map_or(0, |l| l.outstanding())
    }

    /// Engines in the lookups' negative cache.
    pub fn negative_cached(&self) -> usize {
        self.lookups.as_ref().map_or(0, |l| l.negative_len())
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<IdentityStats> {
        &self.stats
    }

    /// A request from a local party.
    pub fn handle_request(&mut self, now: Now, from: Party, req: IdentityRequest) {
        self.expire(now);
        match req {
            IdentityRequest::Lookup(AnyIdentity::Engine(engine))
                if self.lookups.is_some()
                    && self.store.get(&AnyIdentity::Engine(engine)).is_none() =>
            {
                let lookups = self.lookups.as_mut().expect("checked");
                match lookups.start(now.instant, engine, from) {
                    Start::Asked | Start::Joined => {}
                    Start::Negative | Start::Full => self.outputs.push_back(ServiceOutput::Event(
                        from,
                        IdentityEvent::Found {
                            id: AnyIdentity::Engine(engine),
                            record: None,
                        },
                    )),
                }
            }
            IdentityRequest::Update(update) => {
                let id = update.id();
                let result = self.apply(now, update);
                self.outputs.push_back(ServiceOutput::Event(
                    from,
                    IdentityEvent::UpdateResult { id, result },
                ));
            }
            other => self.store.handle(now.wall, from, other),
        }
        self.pump();
    }

    /// Applies an update (configuration loading, a peer's advert), counting refusals;
    /// subscribers are notified as usual.
    pub fn apply(&mut self, now: Now, update: IdentityUpdate) -> UpdateResult {
        let result = self.apply_quietly(now, update);
        self.pump();
        result
    }

    /// [`IdentityService::apply`] leaving the notifications in the store for the next pump.
    fn apply_quietly(&mut self, now: Now, update: IdentityUpdate) -> UpdateResult {
        let what = update.id();
        let result = self.store.apply(now.wall, update);
        match &result {
            UpdateResult::Refused(e) => {
                IdentityStats::count(&self.stats.adverts_refused);
                log::debug!("identity store: advert for {what:?} refused: {e}");
            }
            UpdateResult::TooManyEngines => {
                IdentityStats::count(&self.stats.engines_over_node_limit);
                log::debug!("identity store: {what:?} refused: its node has too many engines");
            }
            UpdateResult::Full => {
                IdentityStats::count(&self.stats.adverts_store_full);
                log::warn!("identity store: full; {what:?} not stored");
            }
            UpdateResult::Stored | UpdateResult::Unchanged => {}
        }
        result
    }

    /// The node's reachable engines are now `reachable` (identity and name).
    pub fn handle_reachable(&mut self, now: Now, reachable: &[(EngineIdentity, String)]) {
        let (adverts, withdrawn) = self.own.set_engines(now.wall, reachable);
        let me = self.own.node_advert().id;
        for id in &withdrawn {
            self.store.withdraw_engine(*id, me);
        }
        self.own_engines(now, adverts, withdrawn);
        self.pump();
    }

    /// The node's addresses are now `addrs`: a new node advert, to the peers and the handle.
    pub fn handle_set_addresses(&mut self, now: Now, addrs: Vec<(TransportAddress, u8)>) {
        if let Some(advert) = self.own.set_addresses(now.wall, addrs) {
            self.own_node_advert(now, advert);
        }
        self.pump();
    }

    /// What the Transport hands over from a peer.
    pub fn handle_from_peer(&mut self, now: Now, mail: FromPeer) {
        self.expire(now);
        match mail {
            FromPeer::Ready { node } => {
                if let Some(l) = &mut self.lookups {
                    l.ready(node);
                }
            }
            FromPeer::EngineAdverts { from, adverts } => {
                for advert in adverts {
                    if advert.node != from {
                        // The Transport checks this; a bug if it ever gets here.
                        debug_assert!(false, "an engine advert of another node from {from:?}");
                        continue;
                    }
                    self.apply(now, IdentityUpdate::EngineAdvert(advert));
                }
            }
            FromPeer::Withdrawn { from, engines } => {
                for e in engines {
                    if self.store.withdraw_engine(e, from) {
                        IdentityStats::count(&self.stats.engines_withdrawn);
                    }
                }
            }
            FromPeer::LookupSent {
                engine,
                peers,
                dialling,
            } => {
                if let Some(l) = &mut self.lookups {
                    l.sent(now.instant, engine, peers, dialling);
                }
            }
            FromPeer::Query { from, engine } => self.answer_query(now.wall, from, engine),
            FromPeer::Answer { from, answer } => {
                let EngineAnswer {
                    engine,
                    advert,
                    node_advert,
                } = *answer;
                self.take_answer(now, from, engine, advert, node_advert)
            }
        }
        self.pump();
    }

    /// Time passes: expired adverts are forgotten, lookups time out, own adverts re-signed.
    pub fn handle_timeout(&mut self, now: Now) {
        self.expire(now);
        if let Some(l) = &mut self.lookups {
            l.handle_timeout(now.instant);
        }
        let (node, engines) = self.own.resign_due(now.wall);
        if let Some(advert) = node {
            self.own_node_advert(now, advert);
        }
        if !engines.is_empty() {
            self.own_engines(now, engines, Vec::new());
        }
        self.pump();
    }

    /// When [`IdentityService::handle_timeout`] is next due.
    pub fn poll_timeout(&self, now: Now) -> Instant {
        let at = |t: Timestamp| now.instant + t.until(now.wall);
        let mut next = at(self.own.resign_at());
        if let Some(t) = self.store.next_expiry() {
            next = next.min(at(t));
        }
        if let Some(t) = self.lookups.as_ref().and_then(|l| l.poll_timeout()) {
            next = next.min(t);
        }
        next
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<ServiceOutput> {
        self.outputs.pop_front()
    }

    // -----------------------------------------------------------------------------------------

    fn expire(&mut self, now: Now) {
        let n = self.store.handle_timeout(now.wall);
        if n > 0 {
            self.stats
                .adverts_expired
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            log::debug!("identity store: {n} expired adverts forgotten");
        }
    }

    fn own_node_advert(&mut self, now: Now, advert: NodeAdvert) {
        IdentityStats::count(&self.stats.node_adverts_signed);
        self.apply(now, IdentityUpdate::NodeAdvert(advert.clone()));
        if self.lookups.is_some() {
            self.outputs
                .push_back(ServiceOutput::Peers(ToPeers::OwnAdvert(advert.clone())));
        }
        self.outputs.push_back(ServiceOutput::OwnAdvert(advert));
    }

    fn own_engines(
        &mut self,
        now: Now,
        adverts: Vec<EngineAdvert>,
        withdrawn: Vec<EngineIdentity>,
    ) {
        for a in &adverts {
            IdentityStats::count(&self.stats.engine_adverts_signed);
            self.apply(now, IdentityUpdate::EngineAdvert(a.clone()));
        }
        if self.lookups.is_some() && !(adverts.is_empty() && withdrawn.is_empty()) {
            self.outputs
                .push_back(ServiceOutput::Peers(ToPeers::OwnEngines {
                    adverts,
                    withdrawn,
                }));
        }
    }

    fn answer_query(&mut self, now: Timestamp, from: NodeIdentity, engine: EngineIdentity) {
        IdentityStats::count(&self.stats.peer_queries);
        let advert = match self.store.get(&AnyIdentity::Engine(engine)) {
            Some(IdentityRecord::Engine(r)) => r.advert.clone().filter(|a| !a.expired(now)),
            _ => None,
        };
        let node_advert =
            advert
                .as_ref()
                .and_then(|a| match self.store.get(&AnyIdentity::Node(a.node)) {
                    Some(IdentityRecord::Node(r)) => r.advert.clone().filter(|n| !n.expired(now)),
                    _ => None,
                });
        if advert.is_some() {
            IdentityStats::count(&self.stats.peer_queries_known);
        }
        self.outputs
            .push_back(ServiceOutput::Peers(ToPeers::Answer {
                to: from,
                answer: Box::new(EngineAnswer {
                    engine,
                    advert,
                    node_advert,
                }),
            }));
    }

    fn take_answer(
        &mut self,
        now: Now,
        from: NodeIdentity,
        engine: EngineIdentity,
        advert: Option<EngineAdvert>,
        node_advert: Option<NodeAdvert>,
    ) {
        let Some(lookups) = &mut self.lookups else {
            return;
        };
        if !lookups.expects(from, &engine) {
            lookups.answer(now.instant, from, engine, false);
            return;
        }
        let found = match advert {
            None => false,
            Some(a) if a.engine != engine => {
                IdentityStats::count(&self.stats.answers_refused);
                log::warn!(
                    "identity store: {} answered a lookup of {} with the advert of {}; refused",
                    from.short(),
                    engine.short(),
                    a.engine.short()
                );
                false
            }
            Some(a) => {
                // The node's advert first, so the Transport knows where to send before the
                // Router learns where the engine runs.
                if let Some(n) = node_advert.filter(|n| n.id == a.node) {
                    self.apply_quietly(now, IdentityUpdate::NodeAdvert(n));
                }
                match self.apply_quietly(now, IdentityUpdate::EngineAdvert(a)) {
                    UpdateResult::Stored | UpdateResult::Unchanged => true,
                    UpdateResult::Refused(e) => {
                        IdentityStats::count(&self.stats.answers_refused);
                        log::warn!(
                            "identity store: {} answered a lookup of {} with an advert that was \
                             refused: {e}",
                            from.short(),
                            engine.short()
                        );
                        false
                    }
                    UpdateResult::Full | UpdateResult::TooManyEngines => false,
                }
            }
        };
        // The store's notification (drained next) may already have ended the lookup; the
        // answer is then counted as ignored, which is harmless.
        if found {
            if let Some(l) = &mut self.lookups {
                l.learned(engine);
            }
        } else if let Some(l) = &mut self.lookups {
            l.answer(now.instant, from, engine, false);
        }
    }

    /// Moves the store's and the lookups' outputs to the service's, in order.
    fn pump(&mut self) {
        loop {
            let mut any = false;
            while let Some((party, event)) = self.store.poll_output() {
                any = true;
                if let IdentityEvent::Updated {
                    id: AnyIdentity::Engine(e),
                    ..
                } = &event
                {
                    if let Some(l) = &mut self.lookups {
                        l.learned(*e);
                    }
                }
                self.outputs.push_back(ServiceOutput::Event(party, event));
            }
            while let Some(event) = self.lookups.as_mut().and_then(|l| l.poll_event()) {
                any = true;
                match event {
                    LookupEvent::Ask(req) => self.outputs.push_back(ServiceOutput::Peers(req)),
                    LookupEvent::Resolved {
                        engine,
                        waiters,
                        found,
                    } => {
                        let id = AnyIdentity::Engine(engine);
                        let record = if found {
                            self.store.get(&id).cloned()
                        } else {
                            None
                        };
                        for party in waiters {
                            self.outputs.push_back(ServiceOutput::Event(
                                party,
                                IdentityEvent::Found {
                                    id,
                                    record: record.clone(),
                                },
                            ));
                        }
                    }
                }
            }
            if !any {
                break;
            }
        }
    }
}
