//! The P2P pub/sub protocol's messages: the bodies of `Protocol::PUBSUB` messages between
//! PubSub engines. The signed [`Event`] they carry is defined with the other signed structures
//! in `crate::wire::event` and re-exported here.
//!
//! A body is `u32 version (1) || u32 tag || fields`, in the crate's one bincode configuration.
//! A publisher that stops publishing a topic floods a [`Withdrawal`], signed by its key over
//! `WITHDRAWAL_CONTEXT || topic || publisher || version`.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use crate::identity::{CheckedKey, EngineIdentity, Keypair, Signature, TopicIdentity};
use crate::wire::advert::MAX_PUBLISHERS;
pub use crate::wire::event::{
    verify_events, Event, EventId, EVENT_CONTEXT, MAX_DEPS, MAX_DEP_POSITIONS,
};
use crate::wire::{
    decode_exact, decode_list, encode_list, encode_to_vec, unknown_version, TopicAdvert, WireError,
};

/// The version of the pub/sub protocol this code speaks.
pub const PUBSUB_VERSION: u32 = 1;
/// Domain-separation tag of withdrawal signatures.
pub const WITHDRAWAL_CONTEXT: &[u8] = b"netmachine/v1/withdrawal\0";
/// Most publisher positions in one subscribe acknowledgement.
pub const MAX_POSITIONS: usize = 64;
/// Most events in one `Events` message.
pub const MAX_BATCH_EVENTS: usize = 256;
/// A sender closes an `Events` message once its bodies reach this many bytes (256 KiB).
pub const BATCH_BODY_BYTES: usize = 256 << 10;

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

    /// Whether the signature verifies (strictly) under `key`, which must be the publisher's
    /// key (any other key fails).
    pub fn verify(&self, key: &CheckedKey) -> bool {
        key.is_key_of(self.publisher.as_bytes())
            && key.verify_strict(
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
    use crate::identity::Keypair;

    #[test]
    fn an_event_round_trips() {
        let key = Keypair::generate().derive_engine("pubsub");
        let topic = TopicIdentity([5; 32]);
        let e1 = Event::new_signed(&key, topic, 1, vec![], b"one".to_vec());
        let e2 = Event::new_signed(&key, topic, 2, vec![e1.id()], b"two".to_vec());
        let msg = PubSubMessage::Event(e2.into_inner());
        let back = PubSubMessage::from_bytes(&msg.to_bytes()).unwrap();
        assert_eq!(back, msg);
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
