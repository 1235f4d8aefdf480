//! Adverts and withdrawals: a topic's routes towards each of its publishers, flooded once per
//! advert version and publisher, and the signed withdrawals that remove a publisher.

use std::cmp::Ordering as Cmp;

use super::*;

impl PubSub {
    /// Sends `msg` to every connected peer but `except` — for a domain-scoped topic, to the
    /// domain's view peers instead (see `domains.rs`).
    pub(super) fn flood(
        &self,
        ctx: &mut Context,
        except: Option<NodeIdentity>,
        msg: &PubSubMessage,
    ) {
        let scope = match msg {
            PubSubMessage::Advert { advert, .. } => advert.scope,
            PubSubMessage::Withdraw(w) => self.topic_domain(&w.topic),
            _ => None,
        };
        for peer in self.flood_targets(scope) {
            if Some(peer) != except {
                self.send(ctx, peer, msg);
            }
        }
    }

    /// `Advert { advert, publisher, hops }` from `via`: `via` is `hops` from `publisher`.
    pub(super) fn on_advert(
        &mut self,
        ctx: &mut Context,
        via: NodeIdentity,
        advert: TopicAdvert,
        publisher: EngineIdentity,
        hops: u8,
    ) {
        let advert = match advert.verify() {
            Ok(v) => v.into_inner(),
            Err(e) => {
                self.count(&self.stats.bad_advert);
                return self.bad_peer(ctx, via, &format!("advert: {e}"));
            }
        };
        if !advert.publishers.contains(&publisher) {
            self.count(&self.stats.bad_advert);
            return self.bad_peer(ctx, via, "advert routed from a publisher it does not list");
        }
        let topic = advert.topic;
        if let Some(d) = advert.scope {
            if !self.domain_allows(&d, &via) {
                self.count(&self.stats.not_member_refusals);
                log::debug!(
                    "pubsub: advert of topic {} (domain {}) from {} refused: {} not a member",
                    topic.short(),
                    d.short(),
                    via.short(),
                    if self.domains.member_here(&d) {
                        "the sender is"
                    } else {
                        "this node is"
                    }
                );
                if !self.domains.member_here(&d) {
                    self.refuse_waiting_subscription(ctx, topic);
                }
                return;
            }
        }
        let me = self.me;
        let now = ctx.now().instant;
        let Some(t) = self.topic_mut(topic) else {
            return;
        };
        let order = t
            .advert
            .as_ref()
            .map(|a| advert.freshness().cmp(&a.freshness()));
        match order {
            Some(Cmp::Less) => {
                self.count(&self.stats.stale_advert);
                log::debug!(
                    "pubsub: {} sent version {} of topic {}'s advert, older than the one held: refused",
                    via.short(),
                    advert.version,
                    topic.short()
                );
                return;
            }
            Some(Cmp::Equal) => {}
            None | Some(Cmp::Greater) => self.adopt_advert(ctx, advert.clone()),
        }
        if publisher == me {
            return;
        }
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if t.withdrawn
            .get(&publisher)
            .is_some_and(|w| w.version >= advert.version)
        {
            self.count(&self.stats.stale_advert);
            log::debug!(
                "pubsub: {} sent the advert of topic {} from {}, which withdrew from version {}: refused",
                via.short(),
                topic.short(),
                publisher.short(),
                advert.version
            );
            return;
        }
        let distance = hops.saturating_add(1);
        let shorter = match t.routes.get_mut(&publisher) {
            Some(r) if distance > r.distance => return,
            Some(r) if distance == r.distance => {
                // A redundant path towards the publisher (subscribed to below if needed).
                r.parents.insert(via);
                false
            }
            old => {
                let upstream = match old.map(|r| r.upstream) {
                    None | Some(Upstream::None) => Upstream::None,
                    // New parents: until one of them acknowledges, this node is not fed.
                    Some(_) => Upstream::Pending(now),
                };
                t.routes.insert(
                    publisher,
                    Route {
                        distance,
                        parents: BTreeSet::from([via]),
                        upstream,
                    },
                );
                true
            }
        };
        t.closed_since = None;
        if shorter {
            let msg = PubSubMessage::Advert {
                advert,
                publisher,
                hops: distance,
            };
            self.flood(ctx, Some(via), &msg);
        }
        self.sync_upstream(ctx, topic);
    }

    /// A fresher advert for a topic: it replaces the one held and its routes (every publisher
    /// floods the new one); a new version restarts every publisher's sequence.
    pub(super) fn adopt_advert(&mut self, ctx: &mut Context, advert: TopicAdvert) {
        let topic = advert.topic;
        let me = self.me;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        let new_version = t
            .advert
            .as_ref()
            .is_none_or(|a| a.version != advert.version);
        let scope = advert.scope;
        t.advert = Some(advert.clone());
        t.routes.clear();
        t.withdrawn.retain(|_, w| w.version >= advert.version);
        if new_version {
            // Sequence numbers start afresh, from the next event or acknowledgement.
            t.streams.clear();
            t.frontier.clear();
            t.waived.clear();
            for c in t.children.values_mut() {
                c.told.clear();
                c.acked.clear();
            }
            let freed: usize = t.cache.drain(..).map(|e| e.body.len()).sum();
            self.cache_bytes = self.cache_bytes.saturating_sub(freed);
        }
        self.post_parents(topic);
        if let Some(d) = scope {
            // Carried over the domain's overlay, among members only.
            self.watch(ctx, d);
            let dir = self.domains.clone();
            self.prune_topic(ctx, topic, |n| dir.is_member(&d, n));
        }
        ctx.identity_request(IdentityRequest::Update(IdentityUpdate::TopicAdvert(
            advert.clone(),
        )));
        self.notice(
            ctx,
            PubSubNotice::AdvertReceived {
                advert: advert.clone(),
            },
        );
        let Some(t) = self.topics.get(&topic) else {
            return;
        };
        if t.publishing {
            if advert.publishers.contains(&me) {
                let msg = PubSubMessage::Advert {
                    advert,
                    publisher: me,
                    hops: 0,
                };
                self.flood(ctx, None, &msg);
            } else {
                log::warn!(
                    "pubsub: version {} of topic {}'s advert no longer lists this node: its events will be refused",
                    advert.version,
                    topic.short()
                );
            }
        }
    }

    /// This node starts publishing a topic.
    pub(super) fn start_advert(&mut self, ctx: &mut Context, advert: TopicAdvert) {
        let topic = advert.topic;
        let me = self.me;
        if advert.scope.is_some_and(|d| !self.domains.member_here(&d)) {
            return self.refuse_local(topic, "publishing");
        }
        if !advert.publishers.contains(&me) {
            log::warn!(
                "pubsub: advert for {} does not list this node's PubSub",
                topic.short()
            );
        }
        let Some(t) = self.topic_mut(topic) else {
            return;
        };
        if t.withdrawn
            .get(&me)
            .is_some_and(|w| w.version >= advert.version)
        {
            log::warn!(
                "pubsub: this node withdrew from version {} of topic {}'s advert: nodes that heard it refuse this one; publish a new version",
                advert.version,
                topic.short()
            );
        }
        t.withdrawn.remove(&me);
        t.publishing = true;
        t.routes.remove(&me);
        t.closed_since = None;
        t.progress_dirty = true;
        let fresher = t
            .advert
            .as_ref()
            .is_none_or(|a| advert.freshness() > a.freshness());
        if fresher {
            // Stores it, tells the identity store and floods it as this publisher's root.
            self.adopt_advert(ctx, advert);
        } else {
            let held = t.advert.clone().expect("an advert is held");
            if held.freshness() > advert.freshness() {
                log::warn!(
                    "pubsub: topic {} was given version {} of its advert, older than version {} already held: using that",
                    topic.short(),
                    advert.version,
                    held.version
                );
            }
            let msg = PubSubMessage::Advert {
                advert: held,
                publisher: me,
                hops: 0,
            };
            self.flood(ctx, None, &msg);
        }
        self.sync_upstream(ctx, topic);
        self.tell_children(ctx, topic);
        self.check_subscribed(ctx, topic);
    }

    /// This node stops publishing a topic (it was deleted): flood a signed withdrawal.
    pub(super) fn stop_advert(&mut self, ctx: &mut Context, topic: TopicIdentity) {
        let me = self.me;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if !t.publishing {
            return;
        }
        t.publishing = false;
        let Some(advert) = t.advert.as_ref() else {
            return;
        };
        if !advert.publishers.contains(&me) {
            return;
        }
        let w = Withdrawal::new_signed(&self.key, topic, advert.version);
        log::info!(
            "pubsub: withdrawing from topic {} (advert version {})",
            topic.short(),
            w.version
        );
        self.flood(ctx, None, &PubSubMessage::Withdraw(w.clone()));
        self.withdraw_publisher(ctx, w);
    }

    /// `Withdraw` from `via`.
    pub(super) fn on_withdraw(&mut self, ctx: &mut Context, via: NodeIdentity, w: Withdrawal) {
        let Some(advert) = self.topics.get(&w.topic).and_then(|t| t.advert.as_ref()) else {
            self.count(&self.stats.no_advert);
            return;
        };
        if !advert.publishers.contains(&w.publisher) {
            self.count(&self.stats.unauthorized);
            return self.bad_peer(
                ctx,
                via,
                "withdrawal from a publisher the advert does not list",
            );
        }
        if w.version < advert.version {
            self.count(&self.stats.stale_advert);
            log::debug!(
                "pubsub: withdrawal of {} from version {} of topic {}, older than the advert held: ignored",
                w.publisher.short(),
                w.version,
                w.topic.short()
            );
            return;
        }
        let t = &self.topics[&w.topic];
        if t.withdrawn
            .get(&w.publisher)
            .is_some_and(|old| old.version >= w.version)
        {
            return;
        }
        if w.publisher == self.me && t.publishing {
            log::warn!(
                "pubsub: a withdrawal in this node's name for topic {}, which it publishes: ignored",
                w.topic.short()
            );
            return;
        }
        let key = self
            .keys
            .entry(w.publisher)
            .or_insert_with(|| CheckedKey::parse(w.publisher.as_bytes()).ok())
            .clone();
        if !key.is_some_and(|k| w.verify(&k)) {
            self.count(&self.stats.bad_advert);
            return self.bad_peer(ctx, via, "withdrawal with a bad signature");
        }
        self.count(&self.stats.withdrawals);
        log::info!(
            "pubsub: {} withdrew from topic {} (advert version {})",
            w.publisher.short(),
            w.topic.short(),
            w.version
        );
        self.flood(ctx, Some(via), &PubSubMessage::Withdraw(w.clone()));
        self.withdraw_publisher(ctx, w);
    }

    /// Drops what this node holds of a publisher that withdrew; with no publisher left, the
    /// topic's whole routing state.
    fn withdraw_publisher(&mut self, ctx: &mut Context, w: Withdrawal) {
        let now = ctx.now().instant;
        let (topic, publisher) = (w.topic, w.publisher);
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        t.withdrawn.insert(publisher, w);
        t.routes.remove(&publisher);
        let held = |s: &Stream| (s.buffer.len() + s.ready.len()) as u64;
        if let Some(s) = t.streams.remove(&publisher) {
            self.stats
                .after_withdrawal
                .fetch_add(held(&s), Ordering::Relaxed);
        }
        t.frontier.remove(&publisher);
        for c in t.children.values_mut() {
            c.acked.remove(&publisher);
            c.told.remove(&publisher);
        }
        let last = t.routes.is_empty() && !t.publishing;
        let before: usize = t.cache.iter().map(|e| e.body.len()).sum();
        if last {
            t.cache.clear();
            let dropped: u64 = t.streams.values().map(held).sum();
            self.stats
                .after_withdrawal
                .fetch_add(dropped, Ordering::Relaxed);
            t.streams.clear();
            t.children.clear();
            t.frontier.clear();
            t.closed_since = Some(now);
            t.progress_dirty = true;
        } else {
            t.cache.retain(|e| e.publisher != publisher);
        }
        let after: usize = t.cache.iter().map(|e| e.body.len()).sum();
        self.cache_bytes = self.cache_bytes.saturating_sub(before - after);
        self.drop_pending(|p| p.topic == topic && (last || p.event.publisher == publisher));
        self.notice(
            ctx,
            PubSubNotice::Withdrawn {
                topic,
                publisher,
                last,
            },
        );
        self.sync_upstream(ctx, topic);
        self.drain_ready(ctx, topic);
    }
}
