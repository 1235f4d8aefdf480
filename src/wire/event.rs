//! Topic events: one message published to a topic, signed by an authorized publisher.
//!
//! An event is signed by its publisher (the PubSub engine of an authorized publishing node) over
//! `EVENT_CONTEXT || topic || publisher || seq || deps || dep_positions || body length (u64) ||
//! SHA-256(body)`;
//! its id is the SHA-256 of the same bytes without the context, so relays can deduplicate
//! without verifying again. Only [`Event::verify`] (or [`verify_events`]), which checks that the
//! key is the publisher's, and [`Event::new_signed`] yield a [`Verified<Event>`]; a delivered
//! topic message is built from one (`Message::from_event`).

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use super::advert::MAX_PUBLISHERS;
use super::message::Verified;
use super::{
    decode_bytes, decode_list, encode_bytes, encode_list, encode_to_vec, HARD_LIMIT_BYTES,
};
use crate::identity::{CheckedKey, EngineIdentity, Keypair, Signature, TopicIdentity};

/// Domain-separation tag of event signatures.
pub const EVENT_CONTEXT: &[u8] = b"netmachine/v1/event\0";
/// Most causal dependencies (event ids) on one event.
pub const MAX_DEPS: usize = 16;
/// Most positions in an event's causal frontier (one per other publisher of the topic).
pub const MAX_DEP_POSITIONS: usize = MAX_PUBLISHERS;

/// The id of an event: SHA-256 of its signing input without the context (its fields with the
/// body replaced by the body's length and SHA-256).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct EventId(pub [u8; 32]);

/// An event: one message published to a topic by an authorized publisher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The topic.
    pub topic: TopicIdentity,
    /// The publishing node's PubSub engine (listed in the topic's advert).
    pub publisher: EngineIdentity,
    /// The publisher's sequence number for this topic, from 1, without gaps.
    pub seq: u64,
    /// Events this one causally depends on: the publisher's previous event first, then the
    /// latest event of other publishers its node had delivered (at most [`MAX_DEPS`] in all).
    pub deps: Vec<EventId>,
    /// The publishing node's causal frontier: for each other publisher whose events it had
    /// delivered, the sequence number of the latest (at most [`MAX_DEP_POSITIONS`]). Receivers
    /// deliver the event only once they have delivered (or skipped) every one.
    pub dep_positions: Vec<(EngineIdentity, u64)>,
    /// The published message: an `EngineMessage`'s signed fields, unsigned (the event's
    /// signature vouches for it).
    pub body: Vec<u8>,
    /// The publisher's signature.
    pub sig: Signature,
}

struct EventFields<'a>(&'a Event);

/// The signed fields of an event: the body is represented by its length and SHA-256.
impl Encode for EventFields<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let ev = self.0;
        ev.topic.encode(e)?;
        ev.publisher.encode(e)?;
        ev.seq.encode(e)?;
        encode_list(&ev.deps, e)?;
        encode_list(&ev.dep_positions, e)?;
        (ev.body.len() as u64).encode(e)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &ev.body);
        let digest: [u8; 32] = digest.as_ref().try_into().expect("32-byte digest");
        digest.encode(e)
    }
}

impl Encode for Event {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.topic.encode(e)?;
        self.publisher.encode(e)?;
        self.seq.encode(e)?;
        encode_list(&self.deps, e)?;
        encode_list(&self.dep_positions, e)?;
        encode_bytes(&self.body, e)?;
        self.sig.encode(e)
    }
}

impl Decode<()> for Event {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(Event {
            topic: Decode::decode(d)?,
            publisher: Decode::decode(d)?,
            seq: Decode::decode(d)?,
            deps: decode_list(d, "list", MAX_DEPS)?,
            dep_positions: decode_list(d, "list", MAX_DEP_POSITIONS)?,
            body: decode_bytes(d, "body", HARD_LIMIT_BYTES)?,
            sig: Decode::decode(d)?,
        })
    }
}

impl Event {
    /// A new event signed by `key` (the publisher's PubSub engine key), which becomes its
    /// `publisher`, with no position of another publisher to wait for. Signing is proof enough,
    /// so the event comes out [`Verified`].
    pub fn new_signed(
        key: &Keypair,
        topic: TopicIdentity,
        seq: u64,
        deps: Vec<EventId>,
        body: Vec<u8>,
    ) -> Verified<Event> {
        Event::new_signed_after(key, topic, seq, deps, Vec::new(), body)
    }

    /// A new event signed by `key`, depending on `deps` and after the other publishers' events
    /// up to `dep_positions`.
    pub fn new_signed_after(
        key: &Keypair,
        topic: TopicIdentity,
        seq: u64,
        deps: Vec<EventId>,
        dep_positions: Vec<(EngineIdentity, u64)>,
        body: Vec<u8>,
    ) -> Verified<Event> {
        debug_assert!(deps.len() <= MAX_DEPS && dep_positions.len() <= MAX_DEP_POSITIONS);
        let mut ev = Event {
            topic,
            publisher: key.engine_identity(),
            seq,
            deps,
            dep_positions,
            body,
            sig: Signature([0; 64]),
        };
        let fields = encode_to_vec(&EventFields(&ev));
        ev.sig = key.sign_with_context(EVENT_CONTEXT, &fields, &mut Vec::new());
        // Signed just now with the publisher's own key: the proof holds by construction.
        Verified(ev)
    }

    /// The event's id.
    pub fn id(&self) -> EventId {
        let fields = encode_to_vec(&EventFields(self));
        let digest = ring::digest::digest(&ring::digest::SHA256, &fields);
        EventId(digest.as_ref().try_into().expect("32-byte digest"))
    }

    /// Checks the signature (strictly) under `key`, which must be the key of `publisher`: a key
    /// of any other engine fails, whatever the signature. On failure the event is handed back.
    #[allow(clippy::result_large_err)]
    pub fn verify(self, key: &CheckedKey) -> Result<Verified<Event>, Event> {
        if self.signature_holds(key) {
            Ok(Verified(self))
        } else {
            Err(self)
        }
    }

    /// Whether `key` is the publisher's and the signature holds under it.
    fn signature_holds(&self, key: &CheckedKey) -> bool {
        if !key.is_key_of(self.publisher.as_bytes()) {
            return false;
        }
        let fields = encode_to_vec(&EventFields(self));
        key.verify_strict(EVENT_CONTEXT, &fields, &self.sig, &mut Vec::new())
    }
}

/// Checks the signatures of many events at once: one batch verification, falling back to
/// [`Event::verify`] one by one when it fails (or when a signature's `R` is not acceptable, or a
/// key is not its event's publisher's). `keys[i]` must be the key of `events[i]`'s publisher.
/// Returns one outcome per event, in order.
#[allow(clippy::result_large_err)]
pub fn verify_events(
    events: Vec<Event>,
    keys: &[&CheckedKey],
) -> Vec<Result<Verified<Event>, Event>> {
    assert_eq!(events.len(), keys.len(), "one key per event");
    if events.len() >= 4
        && !crate::stand_in::is_active()
        && events.iter().zip(keys).all(|(e, k)| {
            k.is_key_of(e.publisher.as_bytes())
                && crate::identity::signature_r_is_acceptable(&e.sig)
        })
    {
        let inputs: Vec<Vec<u8>> = events
            .iter()
            .map(|e| {
                let mut v = EVENT_CONTEXT.to_vec();
                super::encode_into(&EventFields(e), &mut v);
                v
            })
            .collect();
        let messages: Vec<&[u8]> = inputs.iter().map(|v| v.as_slice()).collect();
        let sigs: Vec<ed25519_dalek::Signature> = events.iter().map(|e| e.sig.to_dalek()).collect();
        let dalek_keys: Vec<ed25519_dalek::VerifyingKey> =
            keys.iter().map(|k| *k.dalek()).collect();
        if ed25519_dalek::verify_batch(&messages, &sigs, &dalek_keys).is_ok() {
            return events.into_iter().map(|e| Ok(Verified(e))).collect();
        }
    }
    events
        .into_iter()
        .zip(keys)
        .map(|(e, k)| e.verify(k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(key: &Keypair) -> CheckedKey {
        CheckedKey::parse(key.engine_identity().as_bytes()).unwrap()
    }

    #[test]
    fn events_verify_only_under_their_publishers_key() {
        let node = Keypair::generate();
        let key = node.derive_engine("pubsub");
        let other = node.derive_engine("x");
        let topic = TopicIdentity([5; 32]);
        let e1 = Event::new_signed(&key, topic, 1, vec![], b"one".to_vec());
        let e2 = Event::new_signed(&key, topic, 2, vec![e1.id()], b"two".to_vec()).into_inner();
        assert!(e2.clone().verify(&checked(&key)).is_ok());
        let mut forged = e2.clone();
        forged.body = b"TWO".to_vec();
        assert_ne!(forged.id(), e2.id());
        assert!(forged.verify(&checked(&key)).is_err());
        // Signed by `other` and naming `other`: valid, but not under the publisher's key.
        let by_other = Event::new_signed(&other, topic, 2, vec![], b"two".to_vec()).into_inner();
        assert!(by_other.clone().verify(&checked(&other)).is_ok());
        assert!(by_other.verify(&checked(&key)).is_err());
        // The right signature checked under a key that is not the publisher's fails too.
        assert!(e2.verify(&checked(&other)).is_err());
    }

    #[test]
    fn batches_refuse_a_key_that_is_not_the_publishers() {
        let a = Keypair::generate();
        let b = Keypair::generate();
        let topic = TopicIdentity([6; 32]);
        let events: Vec<Event> = (1..=8)
            .map(|seq| Event::new_signed(&a, topic, seq, vec![], vec![seq as u8]).into_inner())
            .collect();
        let (ka, kb) = (checked(&a), checked(&b));
        let all_right: Vec<&CheckedKey> = vec![&ka; 8];
        assert!(verify_events(events.clone(), &all_right)
            .iter()
            .all(|o| o.is_ok()));
        // One event checked under another key: only that one fails.
        let mut keys = all_right.clone();
        keys[3] = &kb;
        let outcomes = verify_events(events, &keys);
        let failed: Vec<usize> = (0..8).filter(|i| outcomes[*i].is_err()).collect();
        assert_eq!(failed, vec![3]);
    }
}
