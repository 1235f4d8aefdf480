//! The P2P pub/sub protocol's messages: the bodies of `Protocol::PUBSUB` messages between
//! PubSub engines, and the signed [`Event`].
//!
//! A body is `u32 version (1) || u32 tag || fields`, in the crate's one bincode configuration.
//! An event is signed by its publisher (the PubSub engine of an authorized publishing node) over
//! `EVENT_CONTEXT || topic || publisher || seq || deps || dep_positions || body length (u64) ||
//! SHA-256(body)`;
//! its id is the SHA-256 of the same bytes without the context, so relays can deduplicate
//! without verifying again. A publisher that stops publishing a topic floods a [`Withdrawal`],
//! signed by the same key over `WITHDRAWAL_CONTEXT || topic || publisher || version`.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use crate::identity::{CheckedKey, EngineIdentity, Keypair, Signature, TopicIdentity};
use crate::wire::advert::MAX_PUBLISHERS;
use crate::wire::{
    decode_bytes, decode_exact, decode_list, encode_bytes, encode_list, encode_to_vec,
    unknown_version, TopicAdvert, WireError, HARD_LIMIT_BYTES,
};

/// The version of the pub/sub protocol this code speaks.
pub const PUBSUB_VERSION: u32 = 1;
/// Domain-separation tag of event signatures.
pub const EVENT_CONTEXT: &[u8] = b"netmachine/v1/event\0";
/// Domain-separation tag of withdrawal signatures.
pub const WITHDRAWAL_CONTEXT: &[u8] = b"netmachine/v1/withdrawal\0";
/// Most causal dependencies (event ids) on one event.
pub const MAX_DEPS: usize = 16;
/// Most positions in an event's causal frontier (one per other publisher of the topic).
pub const MAX_DEP_POSITIONS: usize = MAX_PUBLISHERS;
/// Most publisher positions in one subscribe acknowledgement.
pub const MAX_POSITIONS: usize = 64;
/// Most events in one `Events` message.
pub const MAX_BATCH_EVENTS: usize = 256;
/// A sender closes an `Events` message once its bodies reach this many bytes (256 KiB).
pub const BATCH_BODY_BYTES: usize = 256 << 10;

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
    /// A new event signed by `key` (the publisher's PubSub engine key), with no dependency on
    /// other publishers' events.
    pub fn new_signed(
        key: &Keypair,
        topic: TopicIdentity,
        seq: u64,
        deps: Vec<EventId>,
        body: Vec<u8>,
    ) -> Event {
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
    ) -> Event {
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
        ev
    }

    /// The event's id.
    pub fn id(&self) -> EventId {
        let fields = encode_to_vec(&EventFields(self));
        let digest = ring::digest::digest(&ring::digest::SHA256, &fields);
        EventId(digest.as_ref().try_into().expect("32-byte digest"))
    }

    /// Whether the signature verifies (strictly) under `key`, the publisher's key.
    pub fn verify(&self, key: &CheckedKey) -> bool {
        let fields = encode_to_vec(&EventFields(self));
        key.verify_strict(EVENT_CONTEXT, &fields, &self.sig, &mut Vec::new())
    }
}

/// Checks the signatures of many events at once: one batch verification, falling back to
/// `verify_strict` one by one when it fails (or when a signature's `R` is not acceptable).
/// `keys[i]` is the key of `events[i]`'s publisher. Returns one verdict per event.
pub fn verify_events(events: &[&Event], keys: &[&CheckedKey]) -> Vec<bool> {
    debug_assert_eq!(events.len(), keys.len());
    if events.len() >= 4
        && !crate::stand_in::is_active()
        && events
            .iter()
            .all(|e| crate::identity::signature_r_is_acceptable(&e.sig))
    {
        let inputs: Vec<Vec<u8>> = events
            .iter()
            .map(|e| {
                let mut v = EVENT_CONTEXT.to_vec();
                crate::wire::encode_into(&EventFields(e), &mut v);
                v
            })
            .collect();
        let messages: Vec<&[u8]> = inputs.iter().map(|v| v.as_slice()).collect();
        let sigs: Vec<ed25519_dalek::Signature> = events.iter().map(|e| e.sig.to_dalek()).collect();
        let dalek_keys: Vec<ed25519_dalek::VerifyingKey> =
            keys.iter().map(|k| *k.dalek()).collect();
        if ed25519_dalek::verify_batch(&messages, &sigs, &dalek_keys).is_ok() {
            return vec![true; events.len()];
        }
    }
    events.iter().zip(keys).map(|(e, k)| e.verify(k)).collect()
}

/// A publisher's signed statement that it no longer publishes a topic: remote nodes drop their
/// routes towards it (and the whole topic's routing state once no publisher is left) and refuse
/// the advert of `version` or older from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    /// The topic.
    pub topic: TopicIdentity,
    /// The withdrawing publisher's PubSub engine (listed in the advert); the signer.
    pub publisher: EngineIdentity,
    /// The advert version it withdraws from (and every older one).
    pub version: u64,
    /// The publisher's signature.
    pub sig: Signature,
}

impl Withdrawal {
    fn signed_fields(&self) -> Vec<u8> {
        encode_to_vec(&(self.topic, self.publisher, self.version))
    }

    /// A withdrawal from `version` of `topic`, signed by `key` (the publisher's PubSub key).
    pub fn new_signed(key: &Keypair, topic: TopicIdentity, version: u64) -> Withdrawal {
        let mut w = Withdrawal {
            topic,
            publisher: key.engine_identity(),
            version,
            sig: Signature([0; 64]),
        };
        w.sig = key.sign_with_context(WITHDRAWAL_CONTEXT, &w.signed_fields(), &mut Vec::new());
        w
    }

    /// Whether the signature verifies (strictly) under `key`, the publisher's key.
    pub fn verify(&self, key: &CheckedKey) -> bool {
        key.verify_strict(
            WITHDRAWAL_CONTEXT,
            &self.signed_fields(),
            &self.sig,
            &mut Vec::new(),
        )
    }
}

impl Encode for Withdrawal {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        (self.topic, self.publisher, self.version).encode(e)?;
        self.sig.encode(e)
    }
}

impl Decode<()> for Withdrawal {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        let (topic, publisher, version) = Decode::decode(d)?;
        Ok(Withdrawal {
            topic,
            publisher,
            version,
            sig: Decode::decode(d)?,
        })
    }
}

/// A message between PubSub engines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PubSubMessage {
    /// A topic's advert, flooded once per version and publisher. `publisher` and `hops` (not
    /// signed) say that the sender is `hops` neighbour hops from `publisher`, one of the
    /// publishers the advert lists: 0 from the publisher itself.
    Advert {
        /// The signed advert.
        advert: TopicAdvert,
        /// The publisher the distance is measured from.
        publisher: EngineIdentity,
        /// The sender's distance from that publisher.
        hops: u8,
    },
    /// Make the sender a child of the receiver for `topic`, for the events of `publishers`
    /// (empty: every publisher). It replaces what the sender asked before.
    Subscribe {
        /// The topic.
        topic: TopicIdentity,
        /// The publishers whose events the sender wants through the receiver.
        publishers: Vec<EngineIdentity>,
    },
    /// Answer to `Subscribe`: whether it was accepted, and from which sequence number of each
    /// publisher the receiver will forward events.
    SubscribeAck {
        /// The topic.
        topic: TopicIdentity,
        /// Accepted (false: the receiver's child limit is reached).
        accepted: bool,
        /// `(publisher, next sequence number)` for each publisher the receiver has seen.
        positions: Vec<(EngineIdentity, u64)>,
    },
    /// Stop being a child for `topic`.
    Unsubscribe {
        /// The topic.
        topic: TopicIdentity,
    },
    /// Answer to `Unsubscribe`.
    UnsubscribeAck {
        /// The topic.
        topic: TopicIdentity,
    },
    /// An event.
    Event(Event),
    /// A request for missing events `from..=to` of `publisher`.
    EventReq {
        /// The topic.
        topic: TopicIdentity,
        /// The publisher.
        publisher: EngineIdentity,
        /// First sequence number wanted.
        from: u64,
        /// Last sequence number wanted.
        to: u64,
    },
    /// Answer to `EventReq`: how many of the wanted events follow as `Event` messages.
    EventResp {
        /// The topic.
        topic: TopicIdentity,
        /// The publisher.
        publisher: EngineIdentity,
        /// First sequence number asked for.
        from: u64,
        /// Last sequence number asked for.
        to: u64,
        /// How many of them are sent.
        found: u64,
    },
    /// Several events in one message (a sender batches what it forwards during a burst).
    Events(Vec<Event>),
    /// Cumulative acknowledgement from a child: every event of `publisher` below `next_seq` has
    /// been received.
    EventAck {
        /// The topic.
        topic: TopicIdentity,
        /// The publisher.
        publisher: EngineIdentity,
        /// The next sequence number the child waits for.
        next_seq: u64,
    },
    /// A publisher withdraws from the topic (flooded once).
    Withdraw(Withdrawal),
}

impl Encode for PubSubMessage {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        PUBSUB_VERSION.encode(e)?;
        match self {
            PubSubMessage::Advert {
                advert,
                publisher,
                hops,
            } => {
                0u32.encode(e)?;
                advert.encode(e)?;
                publisher.encode(e)?;
                hops.encode(e)
            }
            PubSubMessage::Subscribe { topic, publishers } => {
                1u32.encode(e)?;
                topic.encode(e)?;
                encode_list(publishers, e)
            }
            PubSubMessage::SubscribeAck {
                topic,
                accepted,
                positions,
            } => {
                2u32.encode(e)?;
                topic.encode(e)?;
                accepted.encode(e)?;
                encode_list(positions, e)
            }
            PubSubMessage::Unsubscribe { topic } => {
                3u32.encode(e)?;
                topic.encode(e)
            }
            PubSubMessage::UnsubscribeAck { topic } => {
                4u32.encode(e)?;
                topic.encode(e)
            }
            PubSubMessage::Event(ev) => {
                5u32.encode(e)?;
                ev.encode(e)
            }
            PubSubMessage::EventReq {
                topic,
                publisher,
                from,
                to,
            } => {
                6u32.encode(e)?;
                (topic, publisher, from, to).encode(e)
            }
            PubSubMessage::EventResp {
                topic,
                publisher,
                from,
                to,
                found,
            } => {
                7u32.encode(e)?;
                (topic, publisher, from, to, found).encode(e)
            }
            PubSubMessage::EventAck {
                topic,
                publisher,
                next_seq,
            } => {
                8u32.encode(e)?;
                (topic, publisher, next_seq).encode(e)
            }
            PubSubMessage::Events(events) => {
                9u32.encode(e)?;
                encode_list(events, e)
            }
            PubSubMessage::Withdraw(w) => {
                10u32.encode(e)?;
                w.encode(e)
            }
        }
    }
}

impl Decode<()> for PubSubMessage {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        let version = u32::decode(d)?;
        if version != PUBSUB_VERSION {
            return Err(unknown_version(version));
        }
        let tag = u32::decode(d)?;
        Ok(match tag {
            0 => PubSubMessage::Advert {
                advert: Decode::decode(d)?,
                publisher: Decode::decode(d)?,
                hops: Decode::decode(d)?,
            },
            1 => PubSubMessage::Subscribe {
                topic: Decode::decode(d)?,
                publishers: decode_list(d, "publishers", MAX_PUBLISHERS)?,
            },
            2 => PubSubMessage::SubscribeAck {
                topic: Decode::decode(d)?,
                accepted: Decode::decode(d)?,
                positions: decode_list(d, "list", MAX_POSITIONS)?,
            },
            3 => PubSubMessage::Unsubscribe {
                topic: Decode::decode(d)?,
            },
            4 => PubSubMessage::UnsubscribeAck {
                topic: Decode::decode(d)?,
            },
            5 => PubSubMessage::Event(Decode::decode(d)?),
            6 => {
                let (topic, publisher, from, to) = Decode::decode(d)?;
                PubSubMessage::EventReq {
                    topic,
                    publisher,
                    from,
                    to,
                }
            }
            7 => {
                let (topic, publisher, from, to, found) = Decode::decode(d)?;
                PubSubMessage::EventResp {
                    topic,
                    publisher,
                    from,
                    to,
                    found,
                }
            }
            8 => {
                let (topic, publisher, next_seq) = Decode::decode(d)?;
                PubSubMessage::EventAck {
                    topic,
                    publisher,
                    next_seq,
                }
            }
            9 => PubSubMessage::Events(decode_list(d, "list", MAX_BATCH_EVENTS)?),
            10 => PubSubMessage::Withdraw(Decode::decode(d)?),
            other => {
                return Err(DecodeError::UnexpectedVariant {
                    type_name: "PubSubMessage",
                    allowed: &bincode::error::AllowedEnumVariants::Range { min: 0, max: 10 },
                    found: other,
                })
            }
        })
    }
}

impl PubSubMessage {
    /// The encoded body.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_to_vec(self)
    }

    /// Decodes a body.
    pub fn from_bytes(bytes: &[u8]) -> Result<PubSubMessage, WireError> {
        decode_exact(bytes)
    }

    /// The topic the message is about (the first event's, for a batch; `None` for an empty one).
    pub fn topic(&self) -> Option<TopicIdentity> {
        Some(match self {
            PubSubMessage::Advert { advert, .. } => advert.topic,
            PubSubMessage::Event(e) => e.topic,
            PubSubMessage::Events(events) => events.first()?.topic,
            PubSubMessage::Withdraw(w) => w.topic,
            PubSubMessage::Subscribe { topic, .. }
            | PubSubMessage::SubscribeAck { topic, .. }
            | PubSubMessage::Unsubscribe { topic }
            | PubSubMessage::UnsubscribeAck { topic }
            | PubSubMessage::EventReq { topic, .. }
            | PubSubMessage::EventResp { topic, .. }
            | PubSubMessage::EventAck { topic, .. } => *topic,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_sign_verify_and_round_trip() {
        let node = Keypair::generate();
        let key = node.derive_engine("pubsub");
        let topic = TopicIdentity([5; 32]);
        let e1 = Event::new_signed(&key, topic, 1, vec![], b"one".to_vec());
        let e2 = Event::new_signed(&key, topic, 2, vec![e1.id()], b"two".to_vec());
        let checked = CheckedKey::parse(key.engine_identity().as_bytes()).unwrap();
        assert!(e2.verify(&checked));
        let msg = PubSubMessage::Event(e2.clone());
        let back = PubSubMessage::from_bytes(&msg.to_bytes()).unwrap();
        assert_eq!(back, msg);
        let mut forged = e2.clone();
        forged.body = b"TWO".to_vec();
        assert!(!forged.verify(&checked));
        assert_ne!(forged.id(), e2.id());
        let other =
            CheckedKey::parse(node.derive_engine("x").engine_identity().as_bytes()).unwrap();
        assert!(!e2.verify(&other));
    }

    #[test]
    fn every_message_round_trips_and_bad_tags_fail() {
        let t = TopicIdentity([1; 32]);
        let p = EngineIdentity([2; 32]);
        let w = Withdrawal::new_signed(&Keypair::generate(), t, 3);
        let msgs = vec![
            PubSubMessage::Subscribe {
                topic: t,
                publishers: vec![p],
            },
            PubSubMessage::Withdraw(w),
            PubSubMessage::SubscribeAck {
                topic: t,
                accepted: true,
                positions: vec![(p, 7)],
            },
            PubSubMessage::Unsubscribe { topic: t },
            PubSubMessage::UnsubscribeAck { topic: t },
            PubSubMessage::EventReq {
                topic: t,
                publisher: p,
                from: 3,
                to: 9,
            },
            PubSubMessage::EventResp {
                topic: t,
                publisher: p,
                from: 3,
                to: 9,
                found: 2,
            },
            PubSubMessage::EventAck {
                topic: t,
                publisher: p,
                next_seq: 10,
            },
        ];
        for m in msgs {
            let bytes = m.to_bytes();
            assert_eq!(PubSubMessage::from_bytes(&bytes).unwrap(), m);
            assert!(PubSubMessage::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        }
        let mut bad = PubSubMessage::Subscribe {
            topic: t,
            publishers: vec![],
        }
        .to_bytes();
        bad[4] = 99;
        assert!(PubSubMessage::from_bytes(&bad).is_err());
        bad[0] = 2;
        assert_eq!(
            PubSubMessage::from_bytes(&bad).unwrap_err(),
            WireError::UnknownVersion(2)
        );
    }
}
