//! The PubSub engine's side of the Router's requests: subscriptions, unsubscriptions, adverts
//! to start and stop, validators and their verdicts.

use super::*;

impl PubSub {
    pub(super) fn handle_request(&mut self, ctx: &mut Context, req: PubSubRequest) {
        match req {
            PubSubRequest::StartAdvert { advert } => self.start_advert(ctx, advert),
            PubSubRequest::StopAdvert { topic } => self.stop_advert(ctx, topic),
            PubSubRequest::Subscribe { topic } => {
                if !self.member_for(&topic) {
                    self.refuse_local(topic, "a subscription");
                    return self.notice(
                        ctx,
                        PubSubNotice::Subscribed {
                            topic,
                            result: Err(TopicError::NotMember),
                        },
                    );
                }
                let Some(t) = self.topic_mut(topic) else {
                    return self.notice(
                        ctx,
                        PubSubNotice::Subscribed {
                            topic,
                            result: Err(TopicError::NetworkFailed),
                        },
                    );
                };
                t.local_interest = true;
                t.notified_subscribed = false;
                t.fed_since = None;
                // Subscribes towards every publisher whose route is known; waits for the
                // advert otherwise.
                self.sync_upstream(ctx, topic);
                self.check_subscribed(ctx, topic);
            }
            PubSubRequest::Unsubscribe { topic } => {
                if let Some(t) = self.topics.get_mut(&topic) {
                    t.local_interest = false;
                    t.notified_subscribed = false;
                }
                self.sync_upstream(ctx, topic);
                self.notice(ctx, PubSubNotice::Unsubscribed { topic });
            }
            PubSubRequest::Validator { topic, engine, on } => {
                self.set_validator(ctx, topic, engine, on)
            }
            PubSubRequest::Validated {
                engine,
                token,
                verdict,
            } => self.on_validated(ctx, engine, token, verdict),
        }
    }

    /// A waiting local subscription to `topic` turned out to be of a domain this node is not a
    /// member of (its advert says so): answered `NotMember`, and the interest dropped.
    pub(super) fn refuse_waiting_subscription(&mut self, ctx: &mut Context, topic: TopicIdentity) {
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if !t.local_interest || t.notified_subscribed {
            return;
        }
        t.local_interest = false;
        self.refuse_local(topic, "a subscription");
        self.notice(
            ctx,
            PubSubNotice::Subscribed {
                topic,
                result: Err(TopicError::NotMember),
            },
        );
    }
}
