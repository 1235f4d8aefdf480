//! Subscriptions: towards each publisher through its parents, and from children; their
//! acknowledgements with per-publisher positions, and the local subscription's completion.

use super::*;

impl PubSub {
    /// `Subscribe { topic, publishers }` from `via`.
    pub(super) fn on_subscribe(
        &mut self,
        ctx: &mut Context,
        via: NodeIdentity,
        topic: TopicIdentity,
        publishers: Vec<EngineIdentity>,
    ) {
        let now = ctx.now().instant;
        let max_children = self.limits.max_children;
        let me = self.me;
        let refuse = PubSubMessage::SubscribeAck {
            topic,
            accepted: false,
            positions: Vec::new(),
        };
        let Some(t) = self.topic_mut(topic) else {
            return self.send(ctx, via, &refuse);
        };
        if !t.children.contains_key(&via) && t.children.len() >= max_children {
            self.count(&self.stats.children_full);
            return self.send(ctx, via, &refuse);
        }
        let wants: BTreeSet<EngineIdentity> = publishers.into_iter().collect();
        let positions = t.positions(&wants, me);
        let child = t.children.entry(via).or_insert(Child {
            wants: BTreeSet::new(),
            acked: HashMap::new(),
            last_progress: now,
            told: BTreeSet::new(),
        });
        child.wants = wants;
        child.told = positions.iter().map(|(p, _)| *p).collect();
        t.progress_dirty = true;
        if !positions.is_empty() {
            self.send(
                ctx,
                via,
                &PubSubMessage::SubscribeAck {
                    topic,
                    accepted: true,
                    positions,
                },
            );
        }
        // The other publishers are acknowledged once this node is fed for them.
        self.sync_upstream(ctx, topic);
    }

    /// `Unsubscribe` from `via`.
    pub(super) fn on_unsubscribe(
        &mut self,
        ctx: &mut Context,
        via: NodeIdentity,
        topic: TopicIdentity,
    ) {
        if let Some(t) = self.topics.get_mut(&topic) {
            if t.children.remove(&via).is_some() {
                t.progress_dirty = true;
            }
        }
        self.send(ctx, via, &PubSubMessage::UnsubscribeAck { topic });
        self.sync_upstream(ctx, topic);
    }

    /// `SubscribeAck` from `via`: for each listed publisher it is a parent of, this node is fed.
    pub(super) fn on_subscribe_ack(
        &mut self,
        ctx: &mut Context,
        via: NodeIdentity,
        topic: TopicIdentity,
        accepted: bool,
        positions: Vec<(EngineIdentity, u64)>,
    ) {
        let now = ctx.now().instant;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if !accepted {
            log::info!(
                "pubsub: {} refused our subscription to {}",
                via.short(),
                topic.short()
            );
            return;
        }
        if t.asked.get(&via).is_none_or(|a| a.is_empty()) {
            // We no longer need it: undo.
            return self.send(ctx, via, &PubSubMessage::Unsubscribe { topic });
        }
        let mut fed = false;
        if positions
            .iter()
            .any(|(_, next)| *next == 0 || *next == u64::MAX)
        {
            // A position is the next sequence number the parent waits for: from 1, and never
            // the last one (events with it are refused). Anything else is a bad message.
            self.count(&self.stats.malformed);
            return self.bad_peer(
                ctx,
                via,
                "subscribe acknowledgement with an impossible position",
            );
        }
        for (publisher, next) in positions {
            // Only a parent towards that publisher (closer to it) can feed this node.
            let Some(r) = t.routes.get_mut(&publisher) else {
                continue;
            };
            if !r.parents.contains(&via) || !t.asked[&via].contains(&publisher) {
                continue;
            }
            r.upstream = Upstream::Acked;
            fed = true;
            let s = t.streams.entry(publisher).or_default();
            if s.next == 0 {
                s.next = next;
                s.moved = Some(now);
            }
            s.horizon = s.horizon.max(next);
            if s.horizon > s.next {
                // Events this node missed while it was not fed: fetch them.
                s.gap_since.get_or_insert(now);
            }
        }
        if fed {
            self.tell_children(ctx, topic);
            self.check_subscribed(ctx, topic);
        }
    }

    /// Sends each child the positions of the publishers it wants that this node became fed for.
    pub(super) fn tell_children(&mut self, ctx: &mut Context, topic: TopicIdentity) {
        let me = self.me;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        let mut out = Vec::new();
        let children: Vec<NodeIdentity> = t.children.keys().copied().collect();
        for child in children {
            let c = &t.children[&child];
            let positions: Vec<(EngineIdentity, u64)> = t
                .positions(&c.wants, me)
                .into_iter()
                .filter(|(p, _)| !c.told.contains(p))
                .collect();
            if positions.is_empty() {
                continue;
            }
            let c = t.children.get_mut(&child).expect("a child");
            c.told.extend(positions.iter().map(|(p, _)| *p));
            out.push((
                child,
                PubSubMessage::SubscribeAck {
                    topic,
                    accepted: true,
                    positions,
                },
            ));
        }
        for (child, msg) in out {
            self.send(ctx, child, &msg);
        }
    }

    /// Tells the Router that the local subscription is in place: once every publisher the
    /// advert lists feeds this node, or `subscribe_wait` after the first one does.
    pub(super) fn check_subscribed(&mut self, ctx: &mut Context, topic: TopicIdentity) {
        let now = ctx.now().instant;
        let me = self.me;
        let wait = self.limits.subscribe_wait;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if !t.local_interest || t.notified_subscribed {
            return;
        }
        let Some(advert) = &t.advert else {
            return;
        };
        let others: Vec<EngineIdentity> = advert
            .publishers
            .iter()
            .filter(|p| **p != me && !t.withdrawn.contains_key(p))
            .copied()
            .collect();
        let missing: Vec<EngineIdentity> = others
            .iter()
            .filter(|p| !t.fed_for(p, me))
            .copied()
            .collect();
        let any = t.publishing || missing.len() < others.len();
        if !any {
            return;
        }
        if !missing.is_empty() {
            let since = *t.fed_since.get_or_insert(now);
            if now.saturating_duration_since(since) < wait {
                return;
            }
            log::info!(
                "pubsub: subscribed to topic {} without {} of its publishers, not reached within {wait:?}",
                topic.short(),
                missing.len()
            );
        }
        t.notified_subscribed = true;
        self.notice(
            ctx,
            PubSubNotice::Subscribed {
                topic,
                result: Ok(()),
            },
        );
    }

    /// Brings the subscriptions to parents in line with what this node wants: each parent is
    /// asked for the publishers it is a parent for (a `Subscribe` when that set changed), and a
    /// parent asked for nothing any more is acknowledged what arrived and unsubscribed from.
    /// The sequence state of publishers no longer wanted is dropped.
    pub(super) fn sync_upstream(&mut self, ctx: &mut Context, topic: TopicIdentity) {
        // Every change of the routes ends here: the board follows them.
        self.post_parents(topic);
        let now = ctx.now().instant;
        let me = self.me;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        let desired = t.desired(me);
        let wanted: BTreeSet<EngineIdentity> = t
            .routes
            .keys()
            .filter(|p| t.wants(p, me))
            .copied()
            .collect();
        let mut out: Vec<(NodeIdentity, PubSubMessage)> = Vec::new();
        for (parent, publishers) in &desired {
            if t.asked.get(parent) != Some(publishers) {
                out.push((
                    *parent,
                    PubSubMessage::Subscribe {
                        topic,
                        publishers: publishers.iter().copied().collect(),
                    },
                ));
                t.asked.insert(*parent, publishers.clone());
            }
        }
        for (p, r) in t.routes.iter_mut() {
            if !wanted.contains(p) {
                r.upstream = Upstream::None;
            } else if r.upstream == Upstream::None {
                r.upstream = Upstream::Pending(now);
            }
        }
        let gone: Vec<NodeIdentity> = t
            .asked
            .keys()
            .filter(|n| !desired.contains_key(n))
            .copied()
            .collect();
        for parent in gone {
            let asked = t.asked.remove(&parent).unwrap_or_default();
            // Acknowledge what arrived before leaving, so the parent knows it was received.
            if t.ack_dirty {
                for (publisher, s) in &t.streams {
                    if asked.contains(publisher) && s.next > 0 {
                        out.push((
                            parent,
                            PubSubMessage::EventAck {
                                topic,
                                publisher: *publisher,
                                next_seq: s.next,
                            },
                        ));
                    }
                }
            }
            out.push((parent, PubSubMessage::Unsubscribe { topic }));
        }
        let delivers = t.delivers();
        let children_want: BTreeSet<EngineIdentity> = t
            .streams
            .keys()
            .filter(|p| t.children.values().any(|c| c.wants(p)))
            .copied()
            .collect();
        t.streams
            .retain(|p, _| delivers || children_want.contains(p));
        if !t.delivers() {
            t.notified_subscribed = false;
            t.fed_since = None;
        }
        for (peer, msg) in out {
            self.send(ctx, peer, &msg);
        }
    }
}
