//! The domain workload's application engines: joiners, the scoped topic's publisher and its
//! subscribers (members, and outsiders that must get nothing), and the log they share.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::super::{Violations, APP};
use crate::identity::{DomainIdentity, Keypair, TopicIdentity};
use crate::mail::domain::{DomainMail, JoinRefusal};
use crate::mail::topic::{TopicEvent, TopicRequest};
use crate::mail::{Input, Origin};
use crate::runtime::{Context, Engine, SendOptions};
use crate::wire::{Destination, Protocol, RoutingScope, TopicAdvert};

/// What the nodes' application engines saw, shared by all of them (one thread).
#[derive(Default)]
pub(super) struct DomainLog {
    /// Per joiner node: the outcome of its join (`None` while unanswered).
    pub(super) joins: BTreeMap<usize, Option<Result<u64, JoinRefusal>>>,
    /// Distinct (node, seq) deliveries of the scoped topic at members.
    pub(super) member_deliveries: BTreeSet<(usize, u64)>,
    /// Deliveries at non-members.
    pub(super) outsider_deliveries: u64,
    /// Refused outsider subscriptions, by reason.
    pub(super) outsider_refusals: BTreeMap<String, u64>,
    pub(super) published: u64,
    /// When the first event was published.
    pub(super) first_published: Option<crate::time::Timestamp>,
    /// Per member subscriber: when its subscription was confirmed.
    pub(super) subscribed_at: BTreeMap<usize, crate::time::Timestamp>,
    pub(super) v: Violations,
}

/// Local mail to this node's Domain engine.
pub(super) fn to_domain_engine(ctx: &mut Context, mail: &DomainMail) {
    let node = ctx.node();
    ctx.send_with(
        Destination::Node(node),
        Protocol::DOMAIN,
        mail.encode(),
        SendOptions::local_only(),
    );
}

/// A joiner: asks its Domain engine to join at `at` and records the answer.
pub(super) struct Joiner {
    pub(super) node: usize,
    pub(super) domain: DomainIdentity,
    pub(super) at: Duration,
    pub(super) log: Arc<Mutex<DomainLog>>,
}

pub(super) const JOIN_TIMER: u64 = 1;

impl Engine for Joiner {
    fn start(&mut self, ctx: &mut Context) {
        ctx.set_timer_after(JOIN_TIMER, self.at);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(JOIN_TIMER) => {
                self.log.lock().joins.insert(self.node, None);
                to_domain_engine(
                    ctx,
                    &DomainMail::Join {
                        domain: self.domain,
                        advert: None,
                    },
                );
            }
            Input::Message(m) if matches!(m.origin(), Origin::Local) => {
                if let Ok(DomainMail::JoinResult { domain, result, .. }) =
                    DomainMail::decode(m.body())
                {
                    if domain == self.domain {
                        log::debug!("sim: node {} join: {result:?}", self.node);
                        self.log.lock().joins.insert(self.node, Some(result));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The publisher of the scoped topic (a genesis member).
pub(super) struct TopicPublisher {
    pub(super) topic: Keypair,
    pub(super) advert: TopicAdvert,
    pub(super) domain: DomainIdentity,
    pub(super) events: u64,
    pub(super) start: Duration,
    pub(super) next: u64,
    pub(super) log: Arc<Mutex<DomainLog>>,
}

pub(super) const CREATE_TIMER: u64 = 2;
pub(super) const PUBLISH_TIMER: u64 = 3;
pub(super) const SUBSCRIBE_TIMER: u64 = 4;

impl Engine for TopicPublisher {
    fn start(&mut self, ctx: &mut Context) {
        ctx.set_timer_after(CREATE_TIMER, Duration::from_millis(500));
        ctx.set_timer_after(PUBLISH_TIMER, self.start);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(CREATE_TIMER) => ctx.topic_request(TopicRequest::Create {
                topic: self.topic.topic_identity(),
                scope: RoutingScope::Domain(self.domain),
                advert: Some(self.advert.clone()),
            }),
            Input::Topic(TopicEvent::Created { result: Err(e), .. }) => {
                log::warn!("sim: the scoped topic was not created: {e}");
                ctx.set_timer_after(CREATE_TIMER, Duration::from_millis(500));
            }
            Input::Timer(PUBLISH_TIMER) if self.next < self.events => {
                ctx.publish(
                    self.topic.topic_identity(),
                    APP,
                    self.next.to_le_bytes().to_vec(),
                );
                self.next += 1;
                let mut log = self.log.lock();
                log.published += 1;
                log.first_published.get_or_insert(ctx.now().wall);
                ctx.set_timer_after(PUBLISH_TIMER, Duration::from_millis(100));
            }
            _ => {}
        }
    }
}

/// A subscriber of the scoped topic: a member, or an outsider (which must get nothing).
pub(super) struct TopicSubscriber {
    pub(super) topic: TopicIdentity,
    pub(super) scope: RoutingScope,
    pub(super) node: usize,
    pub(super) member: bool,
    pub(super) log: Arc<Mutex<DomainLog>>,
}

impl Engine for TopicSubscriber {
    fn start(&mut self, ctx: &mut Context) {
        ctx.set_timer_after(SUBSCRIBE_TIMER, Duration::from_millis(1_000));
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(SUBSCRIBE_TIMER) => ctx.subscribe(self.topic, self.scope),
            Input::Topic(TopicEvent::Subscribed { result: Ok(()), .. }) if self.member => {
                let at = ctx.now().wall;
                self.log.lock().subscribed_at.insert(self.node, at);
            }
            Input::Topic(TopicEvent::Subscribed { result: Err(e), .. }) => {
                if self.member {
                    // The advert had not come yet: try again.
                    ctx.set_timer_after(SUBSCRIBE_TIMER, Duration::from_millis(500));
                } else {
                    *self
                        .log
                        .lock()
                        .outsider_refusals
                        .entry(format!("{e:?}"))
                        .or_default() += 1;
                }
            }
            Input::Message(m) if matches!(m.origin(), Origin::Topic { .. }) => {
                let Some(seq) = m
                    .body()
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_le_bytes)
                else {
                    return;
                };
                let mut log = self.log.lock();
                let node = self.node;
                if !self.member {
                    log.outsider_deliveries += 1;
                    log.v.broke(|| {
                        format!("non-member node {node} got event {seq} of the scoped topic")
                    });
                } else if !log.member_deliveries.insert((node, seq)) {
                    log.v.duplicate(|| format!("node {node} got event {seq}"));
                }
            }
            _ => {}
        }
    }
}
