//! The asking application: on a node with lookups planned, it sends, at each planned time,
//! `StorageMail::Get { id, lookup: Lookup::random(Some(domain)) }` to the node's Storage engine
//! (local mail, `Protocol::STORAGE`) and records the `GetDone` that answers it in the run's log,
//! checking it on the way: the bytes must hash to the id asked for, within the hop limit (an
//! invariant each), and an answer not marked `cached` must name a true holder (counted).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::identity::{DomainIdentity, NodeIdentity};
use crate::mail::storage::{FoundAt, Lookup, StorageMail};
use crate::mail::{Input, Origin};
use crate::runtime::{Context, Engine, SendOptions};
use crate::storage::block::{BlockId, VerifiedBlock};
use crate::wire::{Destination, Protocol};

/// The asking engine's name.
pub(super) const ASKER_ENGINE_NAME: &str = "storage-asker";

/// The outcome of one lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Asked, no answer yet.
    Waiting,
    /// Found: where.
    Found(FoundAt),
    /// The engine's reason for not finding it.
    Failed(String),
    /// The asking node crashed before the answer came.
    AskerCrashed,
}

/// What the asking engines saw, shared by all of them (one thread).
#[derive(Default)]
pub(super) struct AskLog {
    /// Per lookup (index into the plan): its outcome; absent until asked.
    pub(super) outcomes: BTreeMap<usize, Outcome>,
    /// Answers nobody asked for (or asked for and already answered).
    pub(super) unexpected: u64,
    /// Answers not marked `cached` whose `FoundAt.holder` does not hold the block in its store
    /// (a cache answered, and the answer does not say so).
    pub(super) misattributed: u64,
    /// The first broken invariant (it stops the run).
    pub(super) violation: Option<String>,
}

/// What every asking engine checks answers against.
pub(super) struct Truth {
    /// The domain the walks stay in.
    pub(super) domain: DomainIdentity,
    /// The blocks, by index.
    pub(super) ids: Vec<BlockId>,
    /// Per block index: the nodes whose store holds it.
    pub(super) holders: Vec<BTreeSet<NodeIdentity>>,
    /// The Storage engines' hop limit.
    pub(super) hop_limit: u32,
}

/// One planned lookup of an asking node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Ask {
    /// Its index in the run's plan.
    pub(super) index: usize,
    /// When, from the start of the run.
    pub(super) at: Duration,
    /// Which block (index into [`Truth::ids`]).
    pub(super) block: usize,
}

/// One asking node's lookups, for one incarnation.
pub(super) struct Asker {
    pub(super) node: usize,
    /// Its lookups, ascending by time.
    pub(super) plan: Vec<Ask>,
    pub(super) next: usize,
    pub(super) log: Arc<Mutex<AskLog>>,
    pub(super) truth: Arc<Truth>,
    /// Lookups asked and not answered, per block id, oldest first.
    pub(super) waiting: BTreeMap<BlockId, VecDeque<usize>>,
}

const ASK_TIMER: u64 = 1;

fn elapsed(ctx: &Context) -> Duration {
    Duration::from_millis(ctx.now().wall.0.saturating_sub(crate::sim::WALL_EPOCH.0))
}

impl Asker {
    fn arm(&mut self, ctx: &mut Context) {
        // A restarted node skips the lookups whose time has passed: they were asked (and are
        // counted) by the incarnation that crashed, or fell in its downtime.
        let now = elapsed(ctx);
        let log = self.log.lock();
        while self
            .plan
            .get(self.next)
            .is_some_and(|a| a.at < now || log.outcomes.contains_key(&a.index))
        {
            self.next += 1;
        }
        drop(log);
        if let Some(a) = self.plan.get(self.next) {
            ctx.set_timer_after(ASK_TIMER, a.at.saturating_sub(now));
        }
    }

    fn ask(&mut self, ctx: &mut Context) {
        let Some(a) = self.plan.get(self.next).copied() else {
            return;
        };
        self.next += 1;
        let id = self.truth.ids[a.block];
        self.log.lock().outcomes.insert(a.index, Outcome::Waiting);
        self.waiting.entry(id).or_default().push_back(a.index);
        let me = ctx.node();
        ctx.send_with(
            Destination::Node(me),
            Protocol::STORAGE,
            StorageMail::Get {
                id,
                lookup: Lookup::random(Some(self.truth.domain)),
            }
            .encode(),
            SendOptions::local_only(),
        );
        self.arm(ctx);
    }

    fn answered(&mut self, id: BlockId, result: Result<(Vec<u8>, FoundAt), String>) {
        let node = self.node;
        let mut log = self.log.lock();
        let Some(index) = self.waiting.get_mut(&id).and_then(VecDeque::pop_front) else {
            log.unexpected += 1;
            return;
        };
        let block = self.truth.ids.iter().position(|b| *b == id);
        let outcome = match result {
            Ok((bytes, at)) => {
                if let Err(e) = VerifiedBlock::check(id, &bytes) {
                    log.violation.get_or_insert_with(|| {
                        format!(
                            "node {node}: lookup {index} got bytes that are not block {id}: {e}"
                        )
                    });
                }
                let true_holder = block.is_some_and(|b| self.truth.holders[b].contains(&at.holder));
                if !at.cached && !true_holder {
                    // A node on another walk's path answered from its cache, and the answer
                    // does not say so: counted (the run goes on; `ok` fails).
                    log.misattributed += 1;
                    if log.misattributed == 1 {
                        log::warn!(
                            "sim storage: node {node}: lookup {index} says {} holds {id}, which it does not, and not from a cache",
                            at.holder.short()
                        );
                    }
                }
                if at.hops > self.truth.hop_limit {
                    log.violation.get_or_insert_with(|| {
                        format!(
                            "node {node}: lookup {index} found after {} hops (limit {})",
                            at.hops, self.truth.hop_limit
                        )
                    });
                }
                Outcome::Found(at)
            }
            // The reason without the id, so that failures group by reason in the summary.
            Err(e) => Outcome::Failed(e.replace(&id.to_string(), "<id>")),
        };
        log.outcomes.insert(index, outcome);
    }
}

impl Engine for Asker {
    fn start(&mut self, ctx: &mut Context) {
        self.arm(ctx);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(ASK_TIMER) => self.ask(ctx),
            Input::Message(m) if matches!(m.origin(), Origin::Local) => {
                if let Ok(StorageMail::GetDone { id, result }) = StorageMail::decode(m.body()) {
                    self.answered(id, result);
                }
            }
            _ => {}
        }
    }
}
