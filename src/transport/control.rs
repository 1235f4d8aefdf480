//! The control stream: the connect exchange that follows the TLS handshake, advert exchange,
//! and acknowledgements of message frames.
//!
//! Each side opens one unidirectional control stream (the first stream it opens) and sends a
//! [`Hello`] as its first frame. A side sends messages only after it has received the other's
//! Hello. Version negotiation is symmetric: both sides pick the highest version in both ranges;
//! with none, the connection is closed with [`close_code::INCOMPATIBLE`]. Each Hello says which
//! version of the other side's advert the sender knows; a side whose advert is newer than that
//! sends it in an `ADVERT` frame.
//!
//! Protocol version 2 adds the identity exchange on the same stream: each side hands the other
//! the adverts of its reachable engines after the hello ([`EngineAdverts`], again whenever one
//! is added or re-signed, [`Withdrawn`] when one stops), and either side may ask the other
//! where an engine runs ([`Lookup`]), answered from the other side's identity store with the
//! signed advert or "unknown" ([`Found`]).
//!
//! `ACK` frames carry, per message stream, how many message frames have been received and handed
//! to the Router. The sender keeps every message until it is acknowledged and sends it again on
//! the next connection if this one is lost; the receiver's replay window drops the copies that
//! had arrived after all.

use bincode::{Decode, Encode};

use crate::identity::EngineIdentity;
use crate::wire::{decode_exact, encode_to_vec, EngineAdvert, NodeAdvert, WireError};

/// The lowest protocol version this node speaks. Version 2 changed the node advert (it gained
/// an expiry) and added the identity exchange; a version 1 node cannot read either, so version 1
/// is no longer spoken.
pub const VERSION_MIN: u32 = 2;
/// The highest protocol version this node speaks.
pub const VERSION_MAX: u32 = 2;

/// QUIC application error codes used in CONNECTION_CLOSE / STOP_SENDING / RESET_STREAM.
pub mod close_code {
    /// Normal close (shutdown, idle, requested disconnect).
    pub const NORMAL: u64 = 0x0;
    /// No protocol version in common.
    pub const INCOMPATIBLE: u64 = 0x1;
    /// The node accepts only configured peers.
    pub const DENIED: u64 = 0x2;
    /// Too many connections.
    pub const OVER_CAPACITY: u64 = 0x3;
    /// Another connection between the same two nodes is kept instead.
    pub const DUPLICATE: u64 = 0x4;
    /// The peer broke the control protocol (bad or missing hello, bad frame).
    pub const PROTOCOL_VIOLATION: u64 = 0x5;
    /// A frame exceeded the frame limit (on STOP_SENDING for that stream).
    pub const FRAME_TOO_LARGE: u64 = 0x6;
    /// A connection the peer restarted since (a newer connection replaces it).
    pub const STALE: u64 = 0x7;
    /// The peer sent too many messages that failed verification; it is neither dialled nor
    /// accepted for a backoff period (also used to refuse it during that period).
    pub const MISBEHAVING: u64 = 0x8;
}

/// The first frame on each control stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Hello {
    /// Lowest version the sender speaks.
    pub min_version: u32,
    /// Highest version the sender speaks.
    pub max_version: u32,
    /// Random per process start: a different instance means the peer restarted.
    pub instance: u64,
    /// Version of the sender's own current advert.
    pub advert_version: u64,
    /// Version of the receiver's advert the sender knows, if any.
    pub known_advert_version: Option<u64>,
}

impl Hello {
    /// The version both sides use: the highest in both ranges.
    pub fn negotiate(&self, other: &Hello) -> Option<u32> {
        let high = self.max_version.min(other.max_version);
        let low = self.min_version.max(other.min_version);
        (high >= low).then_some(high)
    }
}

/// Most entries in one ACK frame.
pub const MAX_ACK_ENTRIES: usize = 2048;

/// Cumulative acknowledgements: `(stream id, message frames received on it)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack(pub Vec<(u64, u64)>);

impl Encode for Ack {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        crate::wire::encode_list(&self.0, e)
    }
}

impl Decode<()> for Ack {
    fn decode<D: bincode::de::Decoder<Context = ()>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(Ack(crate::wire::decode_list(d, "list", MAX_ACK_ENTRIES)?))
    }
}

/// Most engine adverts in one `ENGINE_ADVERTS` frame (64 × at most ~260 bytes: under the
/// control stream's 64 KiB frame limit).
pub const MAX_ENGINE_ADVERTS_PER_FRAME: usize = 64;
/// Most engines in one `ENGINE_WITHDRAW` frame (32 KiB).
pub const MAX_WITHDRAWN_PER_FRAME: usize = 1024;

/// `ENGINE_ADVERTS`: adverts of engines that run on the sender (each advert's `node` must be
/// the sender).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineAdverts(pub Vec<EngineAdvert>);

impl Encode for EngineAdverts {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        crate::wire::encode_list(&self.0, e)
    }
}

impl Decode<()> for EngineAdverts {
    fn decode<D: bincode::de::Decoder<Context = ()>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(EngineAdverts(crate::wire::decode_list(
            d,
            "list",
            MAX_ENGINE_ADVERTS_PER_FRAME,
        )?))
    }
}

/// `ENGINE_WITHDRAW`: engines of the sender that no longer run there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawn(pub Vec<EngineIdentity>);

impl Encode for Withdrawn {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        crate::wire::encode_list(&self.0, e)
    }
}

impl Decode<()> for Withdrawn {
    fn decode<D: bincode::de::Decoder<Context = ()>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(Withdrawn(crate::wire::decode_list(
            d,
            "list",
            MAX_WITHDRAWN_PER_FRAME,
        )?))
    }
}

/// `LOOKUP`: where does this engine run? Answered with one [`Found`] (or not at all, when the
/// receiver is over its rate for lookups).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Lookup {
    /// The engine.
    pub engine: EngineIdentity,
}

/// `FOUND`: the answer to a [`Lookup`], from the answering node's identity store.
#[derive(Clone, Debug, PartialEq, Eq, Encode)]
pub struct Found {
    /// The engine asked about.
    pub engine: EngineIdentity,
    /// Its signed advert; `None` means the answering node does not know it.
    pub advert: Option<EngineAdvert>,
    /// The advert of the node the engine runs on, if the answering node holds one.
    pub node_advert: Option<NodeAdvert>,
}

impl Decode<()> for Found {
    fn decode<D: bincode::de::Decoder<Context = ()>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(Found {
            engine: Decode::decode(d)?,
            advert: Option::<EngineAdvert>::decode(d)?,
            node_advert: Option::<NodeAdvert>::decode(d)?,
        })
    }
}

/// Encodes a control payload.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    encode_to_vec(value)
}

/// Decodes a control payload that must span all of `bytes`.
pub fn decode<T: Decode<()>>(bytes: &[u8]) -> Result<T, WireError> {
    decode_exact(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(min: u32, max: u32) -> Hello {
        Hello {
            min_version: min,
            max_version: max,
            instance: 1,
            advert_version: 1,
            known_advert_version: None,
        }
    }

    #[test]
    fn exchange_frames_round_trip_and_lists_are_limited() {
        let l = Lookup {
            engine: EngineIdentity([7; 32]),
        };
        assert_eq!(decode::<Lookup>(&encode(&l)).unwrap(), l);
        let f = Found {
            engine: EngineIdentity([7; 32]),
            advert: None,
            node_advert: None,
        };
        assert_eq!(encode(&f).len(), 34);
        assert_eq!(decode::<Found>(&encode(&f)).unwrap(), f);
        let w = Withdrawn(vec![EngineIdentity([1; 32]); 3]);
        assert_eq!(decode::<Withdrawn>(&encode(&w)).unwrap(), w);
        let mut too_many = (MAX_WITHDRAWN_PER_FRAME as u64 + 1).to_le_bytes().to_vec();
        too_many.resize(8 + 32 * (MAX_WITHDRAWN_PER_FRAME + 1), 1);
        assert!(matches!(
            decode::<Withdrawn>(&too_many),
            Err(WireError::TooLarge { .. })
        ));
        let many = (MAX_ENGINE_ADVERTS_PER_FRAME as u64 + 1).to_le_bytes();
        assert!(matches!(
            decode::<EngineAdverts>(&many),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(hello(1, 3).negotiate(&hello(2, 5)), Some(3));
        assert_eq!(hello(1, 1).negotiate(&hello(1, 1)), Some(1));
        assert_eq!(hello(1, 1).negotiate(&hello(2, 3)), None);
        assert_eq!(hello(4, 6).negotiate(&hello(1, 3)), None);
    }

    #[test]
    fn control_frames_round_trip() {
        let h = Hello {
            known_advert_version: Some(9),
            ..hello(1, 1)
        };
        assert_eq!(decode::<Hello>(&encode(&h)).unwrap(), h);
        let a = Ack(vec![(2, 10), (6, 1)]);
        assert_eq!(decode::<Ack>(&encode(&a)).unwrap(), a);
        assert!(decode::<Hello>(&[1, 2, 3]).is_err());
    }
}
