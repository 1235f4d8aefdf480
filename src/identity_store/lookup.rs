//! Lookups of engines the store does not know, asked of other nodes' identity stores.
//!
//! A lookup starts when a local party (the Router, waiting to route a message to the engine, or
//! an engine) asks the store about an engine it has no record of. The store asks up to
//! `fanout` connected peers ([`ToPeers::Lookup`]); the Transport says whom it asked and whether
//! it started dials to reach more ([`Lookups::sent`]); a peer that connects later is asked too
//! ([`Lookups::ready`]). The lookup ends:
//! * **found** — a peer answered with an advert the service verified and stored, or the store
//!   learned the engine some other way meanwhile (a peer's connect exchange, a verified
//!   message): [`Lookups::learned`];
//! * **unknown** — every peer asked answered "unknown" (or with an advert that was refused) and
//!   no dial is under way, or nobody could be asked at all;
//! * **timed out** — after `timeout` (default 3 s, under the Router's 5 s wait).
//!
//! Each ending answers every waiting party once ([`LookupEvent::Resolved`]). An engine that
//! ended unknown or timed out goes into the negative cache for `negative_ttl`: asking again
//! meanwhile is answered "unknown" at once, without asking anyone. A record the store learns
//! always wins over the cache (the store is consulted first).
//!
//! # Limits and memory
//!
//! * `max_outstanding` lookups at once (default 256); a lookup beyond it is answered "unknown"
//!   at once (counted `lookups_refused_full`). Each holds its waiters (distinct local parties)
//!   and at most `fanout` peers asked: with the defaults under 1 KiB, so under 256 KiB in all.
//! * `max_negative` cached engines (default 4,096; ~80 bytes each, ~320 KiB), the oldest
//!   evicted first.
//!
//! So lookups of unknown engines at any rate cost bounded memory and end in counted answers; the
//! messages waiting for them are the Router's to drop (`no_route`).
//!
//! Drain contract: after any call, drain [`Lookups::poll_event`] until `None`; call
//! [`Lookups::handle_timeout`] when [`Lookups::poll_timeout`] passes.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stats::IdentityStats;
use crate::identity::{EngineIdentity, NodeIdentity};
use crate::mail::identity::{Party, ToPeers};

/// Limits of the lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookupLimits {
    /// Most lookups at once (default 256).
    pub max_outstanding: usize,
    /// How long a lookup waits for answers (default 3 s).
    pub timeout: Duration,
    /// Most peers asked per lookup (default 8).
    pub fanout: usize,
    /// How long an engine no peer knew is answered "unknown" without asking again (default
    /// 10 s).
    pub negative_ttl: Duration,
    /// Most engines in the negative cache (default 4,096).
    pub max_negative: usize,
}

impl Default for LookupLimits {
    fn default() -> Self {
        LookupLimits {
            max_outstanding: 256,
            timeout: Duration::from_secs(3),
            fanout: 8,
            negative_ttl: Duration::from_secs(10),
            max_negative: 4096,
        }
    }
}

/// How a new lookup request was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Peers are being asked; the party will be answered by [`LookupEvent::Resolved`].
    Asked,
    /// A lookup of that engine was already running; the party waits for it too.
    Joined,
    /// The engine is in the negative cache: answer "unknown" now.
    Negative,
    /// Too many lookups are running: answer "unknown" now.
    Full,
}

/// What the lookups want done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupEvent {
    /// Hand this to the Transport.
    Ask(ToPeers),
    /// The lookup of `engine` ended: answer every party in `waiters` with the store's record
    /// (`found`) or "unknown".
    Resolved {
        /// The engine.
        engine: EngineIdentity,
        /// Who asked.
        waiters: Vec<Party>,
        /// Whether the store now holds the engine's record.
        found: bool,
    },
}

struct Outstanding {
    deadline: Instant,
    waiters: BTreeSet<Party>,
    asked: BTreeSet<NodeIdentity>,
    /// Peers that answered "unknown" (or whose answer was refused).
    unknown: BTreeSet<NodeIdentity>,
    /// Whether the Transport reported dials started for this lookup, or it waits for peers.
    dialling: bool,
}

/// The lookup state machine (see the module doc).
pub struct Lookups {
    limits: LookupLimits,
    stats: Arc<IdentityStats>,
    outstanding: BTreeMap<EngineIdentity, Outstanding>,
    /// Looked up by key only; never iterated.
    negative: HashMap<EngineIdentity, Instant>,
    /// Insertion order of `negative`, for eviction.
    negative_order: VecDeque<(EngineIdentity, Instant)>,
    events: VecDeque<LookupEvent>,
}

impl Lookups {
    /// No lookups yet.
    pub fn new(limits: LookupLimits, stats: Arc<IdentityStats>) -> Lookups {
        Lookups {
            limits,
            stats,
            outstanding: BTreeMap::new(),
            negative: HashMap::new(),
            negative_order: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Lookups running.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Engines in the negative cache (some possibly past their time, until next asked).
    pub fn negative_len(&self) -> usize {
        self.negative.len()
    }

    /// `party` asks where `engine` runs, and the store has no record of it.
    pub fn start(&mut self, now: Instant, engine: EngineIdentity, party: Party) -> Start {
        if let Some(o) = self.outstanding.get_mut(&engine) {
            o.waiters.insert(party);
            return Start::Joined;
        }
        match self.negative.get(&engine) {
            Some(&until) if until > now => {
                IdentityStats::count(&self.stats.lookups_negative_cached);
                return Start::Negative;
            }
            Some(_) => {
                self.negative.remove(&engine);
            }
            None => {}
        }
        if self.outstanding.len() >= self.limits.max_outstanding {
            IdentityStats::count(&self.stats.lookups_refused_full);
            return Start::Full;
        }
        IdentityStats::count(&self.stats.lookups_started);
        self.outstanding.insert(
            engine,
            Outstanding {
                deadline: now + self.limits.timeout,
                waiters: BTreeSet::from([party]),
                asked: BTreeSet::new(),
                unknown: BTreeSet::new(),
                dialling: false,
            },
        );
        self.events.push_back(LookupEvent::Ask(ToPeers::Lookup {
            engine,
            only: None,
            max_peers: self.limits.fanout,
        }));
        Start::Asked
    }

    /// The Transport sent the lookup of `engine` to `peers`, and started dials to reach more
    /// if `dialling`.
    pub fn sent(
        &mut self,
        now: Instant,
        engine: EngineIdentity,
        peers: Vec<NodeIdentity>,
        dialling: bool,
    ) {
        let Some(o) = self.outstanding.get_mut(&engine) else {
            return;
        };
        o.asked.extend(peers);
        o.dialling |= dialling;
        self.settle(now, engine);
    }

    /// A connection to `node` is ready: ask it about every running lookup that has room for
    /// another peer and has not asked it yet.
    pub fn ready(&mut self, node: NodeIdentity) {
        for (engine, o) in &self.outstanding {
            if o.asked.contains(&node) || o.asked.len() >= self.limits.fanout {
                continue;
            }
            self.events.push_back(LookupEvent::Ask(ToPeers::Lookup {
                engine: *engine,
                only: Some(node),
                max_peers: 1,
            }));
        }
    }

    /// Whether an answer from `from` about `engine` is expected (the lookup runs and asked it).
    pub fn expects(&self, from: NodeIdentity, engine: &EngineIdentity) -> bool {
        self.outstanding
            .get(engine)
            .is_some_and(|o| o.asked.contains(&from) && !o.unknown.contains(&from))
    }

    /// `from` answered about `engine`: `found` if its advert was verified and stored, otherwise
    /// it said "unknown" or its advert was refused. An answer that is not expected is counted
    /// and ignored.
    pub fn answer(
        &mut self,
        now: Instant,
        from: NodeIdentity,
        engine: EngineIdentity,
        found: bool,
    ) {
        if !self.expects(from, &engine) {
            IdentityStats::count(&self.stats.answers_ignored);
            return;
        }
        if found {
            self.learned(engine);
            return;
        }
        if let Some(o) = self.outstanding.get_mut(&engine) {
            o.unknown.insert(from);
        }
        self.settle(now, engine);
    }

    /// The store learned where `engine` runs: a running lookup of it ends, found.
    pub fn learned(&mut self, engine: EngineIdentity) {
        if let Some(o) = self.outstanding.remove(&engine) {
            IdentityStats::count(&self.stats.lookups_found);
            self.events.push_back(LookupEvent::Resolved {
                engine,
                waiters: o.waiters.into_iter().collect(),
                found: true,
            });
        }
    }

    /// Lookups past their timeout end, unknown.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<EngineIdentity> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(e, _)| *e)
            .collect();
        for engine in due {
            IdentityStats::count(&self.stats.lookups_timed_out);
            self.end_unknown(now, engine);
        }
    }

    /// The soonest deadline of a running lookup.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outstanding.values().map(|o| o.deadline).min()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LookupEvent> {
        self.events.pop_front()
    }

    // -----------------------------------------------------------------------------------------

    /// Ends the lookup of `engine` unknown if every peer asked said so and no more are coming.
    fn settle(&mut self, now: Instant, engine: EngineIdentity) {
        let Some(o) = self.outstanding.get(&engine) else {
            return;
        };
        if !o.dialling && o.unknown.len() >= o.asked.len() {
            IdentityStats::count(&self.stats.lookups_unknown);
            self.end_unknown(now, engine);
        }
    }

    fn end_unknown(&mut self, now: Instant, engine: EngineIdentity) {
        let Some(o) = self.outstanding.remove(&engine) else {
            return;
        };
        self.events.push_back(LookupEvent::Resolved {
            engine,
            waiters: o.waiters.into_iter().collect(),
            found: false,
        });
        let until = now + self.limits.negative_ttl;
        while self.negative_order.len() >= self.limits.max_negative {
            let Some((old, at)) = self.negative_order.pop_front() else {
                break;
            };
            // Remove only the entry this order slot stands for (not a later re-insertion).
            if self.negative.get(&old) == Some(&at) {
                self.negative.remove(&old);
            }
        }
        if self.limits.max_negative > 0 {
            self.negative.insert(engine, until);
            self.negative_order.push_back((engine, until));
        }
    }
}
