//! The PubSub engine's side of the Router's requests: subscriptions, unsubscriptions, adverts
//! to start and stop, and local publications.

use super::*;

impl PubSub {
    pub(super) fn handle_request(&mut self, ctx: &mut Context, req: PubSubRequest) {
        match req {
            PubSubRequest::StartAdvert { advert } => {
                let topic = advert.topic;
                if !advert.publishers.contains(&self.me) {
                    log::warn!(
                        "pubsub: advert for {} does not list this node's PubSub",
                        topic.short()
                    );
                }
                let Some(t) = self.topic_mut(topic) else {
                    return;
                };
                t.publishing = true;
                t.distance = 0;
                t.parents.clear();
                t.advert = Some(advert.clone());
                t.progress_dirty = true;
                let notify = t.local_interest && !t.notified_subscribed;
                t.notified_subscribed |= notify;
                ctx.identity_request(IdentityRequest::Update(IdentityUpdate::TopicAdvert(
                    advert.clone(),
                )));
                if notify {
                    // A local subscription made before this node started publishing.
                    ctx.system(SystemMail::PubSubNotice(Box::new(
                        PubSubNotice::Subscribed {
                            topic,
                            result: Ok(()),
                        },
                    )));
                }
                let msg = PubSubMessage::Advert { advert, hops: 0 };
                for peer in self.connected.clone() {
                    self.send(ctx, peer, &msg);
                }
            }
            PubSubRequest::StopAdvert { topic } => {
                if let Some(t) = self.topics.get_mut(&topic) {
                    t.publishing = false;
                    t.children.clear();
                }
            }
            PubSubRequest::Subscribe { topic } => {
                let Some(t) = self.topic_mut(topic) else {
                    ctx.system(SystemMail::PubSubNotice(Box::new(
                        PubSubNotice::Subscribed {
                            topic,
                            result: Err(TopicError::NetworkFailed),
                        },
                    )));
                    return;
                };
                t.local_interest = true;
                t.notified_subscribed = false;
                if t.fed() {
                    t.notified_subscribed = true;
                    ctx.system(SystemMail::PubSubNotice(Box::new(
                        PubSubNotice::Subscribed {
                            topic,
                            result: Ok(()),
                        },
                    )));
                } else {
                    self.subscribe_upstream(ctx, topic);
                }
            }
            PubSubRequest::Unsubscribe { topic } => {
                if let Some(t) = self.topics.get_mut(&topic) {
                    t.local_interest = false;
                    t.notified_subscribed = false;
                }
                self.prune(ctx, topic);
                ctx.system(SystemMail::PubSubNotice(Box::new(
                    PubSubNotice::Unsubscribed { topic },
                )));
            }
        }
    }

    /// Sends `Subscribe` to every parent (if the advert is known; otherwise waits for it).
    pub(super) fn subscribe_upstream(&mut self, ctx: &mut Context, topic: TopicIdentity) {
        let now = ctx.now().instant;
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if t.advert.is_none() || t.parents.is_empty() || t.publishing {
            return;
        }
        if t.upstream != Upstream::Acked {
            t.upstream = Upstream::Pending(now);
        }
        let parents: Vec<NodeIdentity> = t.parents.iter().copied().collect();
        for p in parents {
            self.send(ctx, p, &PubSubMessage::Subscribe { topic });
        }
    }

    /// Unsubscribes upstream when nothing here needs the topic any more.
    pub(super) fn prune(&mut self, ctx: &mut Context, topic: TopicIdentity) {
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if t.wants_upstream() || t.publishing || t.upstream == Upstream::None {
            return;
        }
        t.upstream = Upstream::None;
        // Acknowledge what arrived before leaving, so the parent knows it was received.
        let acks: Vec<PubSubMessage> = if t.ack_dirty {
            t.streams
                .iter()
                .map(|(publisher, s)| PubSubMessage::EventAck {
                    topic,
                    publisher: *publisher,
                    next_seq: s.next,
                })
                .collect()
        } else {
            Vec::new()
        };
        t.ack_dirty = false;
        t.streams.clear();
        let parents: Vec<NodeIdentity> = t.parents.iter().copied().collect();
        for p in parents {
            for ack in &acks {
                self.send(ctx, p, ack);
            }
            self.send(ctx, p, &PubSubMessage::Unsubscribe { topic });
        }
    }
}
