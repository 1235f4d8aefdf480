//! The application validation hook: events wait for their validators before they are
//! forwarded or delivered; rejections count against the neighbour; the wait is bounded.

use super::*;

struct Validating {
    f: Fixture,
    child: NodeIdentity,
    validator: EngineIdentity,
}

/// A subscribed node with a child and one local validator.
fn validating() -> Validating {
    let mut f = fixture();
    f.subscribed();
    let topic = f.topic();
    let child = Keypair::generate().node_identity();
    f.engine.on_subscribe(&mut f.ctx, child, topic, vec![]);
    let validator = Keypair::generate().engine_identity();
    f.request(PubSubRequest::Validator {
        topic,
        engine: validator,
        on: true,
    });
    f.look();
    Validating {
        f,
        child,
        validator,
    }
}

impl Validating {
    /// Event `seq` arrives; returns the token it is shown to the validator with.
    fn arrives(&mut self, seq: u64) -> u64 {
        let ev = self.f.event(seq);
        self.f.receive_from_parent(PubSubMessage::Event(ev));
        let seen = self.f.look();
        assert!(seen.delivered.is_empty(), "not before the verdict");
        assert!(!self.forwarded(&seen), "not before the verdict");
        let tokens: Vec<u64> = seen
            .notices
            .iter()
            .filter_map(|n| match n {
                PubSubNotice::Validate {
                    validator, token, ..
                } if *validator == self.validator => Some(*token),
                _ => None,
            })
            .collect();
        assert_eq!(tokens.len(), 1, "{:?}", seen.notices);
        tokens[0]
    }

    fn verdict(&mut self, token: u64, verdict: Validation) -> Seen {
        let engine = self.validator;
        self.f.request(PubSubRequest::Validated {
            engine,
            token,
            verdict,
        });
        self.f.look()
    }

    fn forwarded(&self, seen: &Seen) -> bool {
        seen.sent
            .iter()
            .any(|(to, m)| *to == self.child && matches!(m, PubSubMessage::Event(_)))
    }
}

#[test]
fn an_event_goes_on_only_once_accepted() {
    let mut v = validating();
    let p = v.f.publisher_engine().engine_identity();
    let token = v.arrives(1);
    let seen = v.verdict(token, Validation::Accept);
    assert_eq!(seen.delivered, vec![(p, 1)]);
    assert!(v.forwarded(&seen));
    assert_eq!(v.f.stat(|s| &s.validation_accepted), 1);
    // A late second verdict on the same event changes nothing.
    let seen = v.verdict(token, Validation::Reject);
    assert!(seen.delivered.is_empty() && !v.forwarded(&seen));
    assert_eq!(v.f.stat(|s| &s.validation_rejected), 0);
}

#[test]
fn rejected_and_ignored_events_go_nowhere_and_do_not_stall_the_sequence() {
    let mut v = validating();
    let p = v.f.publisher_engine().engine_identity();
    let parent = v.f.parent.node_identity();
    let (t1, t2, t3) = (v.arrives(1), v.arrives(2), v.arrives(3));
    // Verdicts in any order; 3 waits for 1 and 2 to be settled.
    let seen = v.verdict(t3, Validation::Accept);
    assert!(seen.delivered.is_empty());
    assert!(v.forwarded(&seen), "forwarded once accepted");
    let seen = v.verdict(t1, Validation::Reject);
    assert!(seen.delivered.is_empty() && !v.forwarded(&seen));
    // The neighbour it came from loses a point of reputation.
    assert_eq!(
        seen.identity,
        vec![IdentityRequest::Update(IdentityUpdate::Reputation {
            id: parent,
            change: -1
        })]
    );
    let seen = v.verdict(t2, Validation::Ignore);
    assert!(!v.forwarded(&seen));
    assert_eq!(seen.delivered, vec![(p, 3)], "1 and 2 skipped");
    assert_eq!(v.f.stat(|s| &s.validation_rejected), 1);
    assert_eq!(v.f.stat(|s| &s.validation_ignored), 1);
    assert_eq!(v.f.engine.stats.rejections(), vec![(parent, 1)]);
    // A copy of the rejected event is a duplicate, not shown again.
    v.f.receive_from_parent(PubSubMessage::Event(v.f.event(1)));
    assert!(v.f.look().notices.is_empty());
    assert_eq!(v.f.stat(|s| &s.duplicate), 1);
}

#[test]
fn an_unanswered_event_is_ignored_after_the_timeout_and_the_wait_is_bounded() {
    let mut v = validating();
    v.arrives(1);
    v.f.tick_after(PubSubLimits::default().validation_timeout / 2);
    let seen = v.f.look();
    assert!(seen.delivered.is_empty() && !v.forwarded(&seen));
    v.f.tick_after(PubSubLimits::default().validation_timeout);
    let seen = v.f.look();
    assert!(seen.delivered.is_empty() && !v.forwarded(&seen));
    assert_eq!(v.f.stat(|s| &s.validation_timeout), 1);
    // At most `max_pending_validation` wait; the next is dropped without being remembered.
    let max = PubSubLimits::default().max_pending_validation as u64;
    for seq in 2..2 + max {
        v.f.receive_from_parent(PubSubMessage::Event(v.f.event(seq)));
    }
    v.f.look();
    assert_eq!(v.f.engine.pending.len() as u64, max);
    v.f.receive_from_parent(PubSubMessage::Event(v.f.event(2 + max)));
    assert_eq!(v.f.stat(|s| &s.validation_full), 1);
    assert!(v.f.look().notices.is_empty());
}

#[test]
fn a_validator_that_stops_is_no_longer_waited_for() {
    let mut v = validating();
    let p = v.f.publisher_engine().engine_identity();
    let topic = v.f.topic();
    v.arrives(1);
    let engine = v.validator;
    v.f.request(PubSubRequest::Validator {
        topic,
        engine,
        on: false,
    });
    let seen = v.f.look();
    assert_eq!(seen.delivered, vec![(p, 1)]);
    assert!(v.forwarded(&seen));
    // And the next event is not held at all.
    v.f.receive_from_parent(PubSubMessage::Event(v.f.event(2)));
    assert_eq!(v.f.look().delivered, vec![(p, 2)]);
}
