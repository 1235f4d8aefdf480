//! The lookup application: on a requesting node it asks the node's DomainRouting engine, at
//! each planned time, for some member of a foreign domain (`RoutingMail::Request` with
//! protocol `DOMAIN_ROUTING` and body `probe`), and records the answer in the run's log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::identity::{DomainIdentity, NodeIdentity};
use crate::mail::interdomain::RoutingMail;
use crate::mail::{Input, Origin};
use crate::runtime::{Context, Engine, SendOptions};
use crate::wire::{Destination, Protocol};

/// The app engine's name.
pub(super) const LOOKUP_ENGINE_NAME: &str = "lookup";

/// The outcome of one lookup.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Outcome {
    /// The member that answered, if any.
    pub(super) member: Option<NodeIdentity>,
    /// Hops the request took.
    pub(super) hops: u32,
    /// The answer (`Ok(b"member")` from a member's DomainRouting engine), or why none.
    pub(super) result: Result<Vec<u8>, String>,
    /// Whether the answer carried the domain's advert.
    pub(super) advert: bool,
}

/// What the lookup engines saw, shared by all of them (one thread).
#[derive(Default)]
pub(super) struct LookupLog {
    /// Per (node, domain): the outcome, `None` while unanswered.
    pub(super) lookups: BTreeMap<(usize, DomainIdentity), Option<Outcome>>,
    /// Answers for a lookup that was not asked, or asked and already answered.
    pub(super) unexpected: u64,
    /// The first answer that named a node that is no member, or took more than the hop limit
    /// (an invariant: it stops the run).
    pub(super) violation: Option<String>,
}

/// One requesting node's lookups.
pub(super) struct LookupApp {
    pub(super) node: usize,
    /// `(at, domain)`, ascending by time.
    pub(super) plan: Vec<(Duration, DomainIdentity)>,
    pub(super) next: usize,
    pub(super) log: Arc<Mutex<LookupLog>>,
    /// The truth: every domain's members.
    pub(super) members: Arc<BTreeMap<DomainIdentity, BTreeSet<NodeIdentity>>>,
    pub(super) hop_limit: u32,
}

const LOOKUP_TIMER: u64 = 1;

impl LookupApp {
    fn arm(&self, ctx: &mut Context) {
        if let Some((at, _)) = self.plan.get(self.next) {
            let now = crate::sim::WALL_EPOCH;
            // `at` is from the start of the run: the wall clock started at the epoch.
            let elapsed = Duration::from_millis(ctx.now().wall.0.saturating_sub(now.0));
            ctx.set_timer_after(LOOKUP_TIMER, at.saturating_sub(elapsed));
        }
    }
}

impl Engine for LookupApp {
    fn start(&mut self, ctx: &mut Context) {
        self.arm(ctx);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(LOOKUP_TIMER) => {
                let Some(&(_, domain)) = self.plan.get(self.next) else {
                    return;
                };
                self.next += 1;
                self.log.lock().lookups.insert((self.node, domain), None);
                let me = ctx.node();
                ctx.send_with(
                    Destination::Node(me),
                    Protocol::DOMAIN_ROUTING,
                    RoutingMail::Request {
                        domain,
                        protocol: Protocol::DOMAIN_ROUTING,
                        body: b"probe".to_vec(),
                    }
                    .encode(),
                    SendOptions::local_only(),
                );
                self.arm(ctx);
            }
            Input::Message(m) if matches!(m.origin(), Origin::Local) => {
                let Ok(RoutingMail::Answer {
                    domain,
                    result,
                    member,
                    hops,
                    advert,
                }) = RoutingMail::decode(m.body())
                else {
                    return;
                };
                let mut log = self.log.lock();
                if result.is_ok() {
                    let true_member = member.is_some_and(|m| {
                        self.members.get(&domain).is_some_and(|ms| ms.contains(&m))
                    });
                    if !true_member || hops > self.hop_limit {
                        let node = self.node;
                        log.violation.get_or_insert_with(|| {
                            format!(
                                "node {node}: a lookup of {} answered by {:?} (a member: {true_member}) after {hops} hops (limit {})",
                                domain.short(),
                                member.map(|m| m.short()),
                                self.hop_limit
                            )
                        });
                    }
                }
                match log.lookups.get_mut(&(self.node, domain)) {
                    Some(slot @ None) => {
                        *slot = Some(Outcome {
                            member,
                            hops,
                            result,
                            advert: advert.is_some(),
                        })
                    }
                    _ => log.unexpected += 1,
                }
            }
            _ => {}
        }
    }
}
