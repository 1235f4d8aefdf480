//! Everything that crosses a node boundary: the codec, size limits, messages and adverts.
//!
//! One encoding is used everywhere: bincode 2 with a fixed configuration — little-endian,
//! fixed-width integers (`u32` enum tags, `u64` lengths), and a hard limit on what one decode may
//! claim. docs/wire.md describes the result byte for byte. Lengths that come from a peer are
//! checked against the bytes actually present before anything is allocated, so a forged length
//! can cost at most the size of the frame that carried it.
//!
//! Every signed structure is signed over `context || encoding of its other fields` — messages
//! and events with their body replaced by its length and SHA-256 (see `message`) — where the
//! context is a distinct ASCII tag per structure (see [`context`]), so a signature made for one
//! kind of structure can never be replayed as another.

pub mod address;
pub mod advert;
pub mod content;
pub mod descriptor;
pub mod event;
pub mod message;
pub mod receipt;

use std::fmt;

use bincode::de::read::Reader;
use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

pub use advert::{
    DomainAdvert, EngineAdvert, NodeAdvert, Signed, TopicAdvert, TransportAddress, TransportKind,
};
pub use content::BlockId;
pub use descriptor::{MembershipFilter, NodeDescriptor};
pub use message::{
    Destination, EngineMessage, MessageId, Ordering, Protocol, Reliability, RoutingPrefs,
    RoutingScope, Security, TransportPrefs, Verified,
};

/// The most bytes any single decode may claim, whatever the configured frame limit (64 MiB).
pub const HARD_LIMIT_BYTES: usize = 64 << 20;

/// The one bincode configuration of the wire format.
pub type WireConfig = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::Limit<HARD_LIMIT_BYTES>,
>;

/// The configuration value.
pub const CONFIG: WireConfig = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding()
    .with_limit::<HARD_LIMIT_BYTES>();

/// Domain-separation tags, one per signed structure. Each is prepended to the signed fields
/// (for messages, with the body replaced by its length and SHA-256) to form the signing input.
pub mod context {
    /// [`super::EngineMessage`] signatures.
    pub const ENGINE_MESSAGE: &[u8] = b"netmachine/v1/engine-message\0";
    /// [`super::NodeAdvert`] signatures (advert format 2, with an expiry).
    pub const NODE_ADVERT: &[u8] = b"netmachine/v2/node-advert\0";
    /// [`super::EngineAdvert`] signatures (advert format 2, with an expiry).
    pub const ENGINE_ADVERT: &[u8] = b"netmachine/v2/engine-advert\0";
    /// [`super::TopicAdvert`] signatures (topic advert format 2, with a domain scope).
    pub const TOPIC_ADVERT: &[u8] = b"netmachine/v2/topic-advert\0";
    /// [`super::advert::DomainAdvert`] signatures (format 2: introducers, auth, capacity).
    pub const DOMAIN_ADVERT: &[u8] = b"netmachine/v2/domain-advert\0";
    /// Node descriptors of the inter-domain gossip (a node advert plus its membership filter).
    pub const NODE_DESCRIPTOR: &[u8] = b"netmachine/v2/node-descriptor\0";
}

/// Why bytes from a peer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The input ended in the middle of a value.
    Truncated,
    /// A length or count is larger than the limit that applies to it.
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length or count.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// An enum tag, option tag or boolean has a value that is not defined.
    BadTag(String),
    /// Text that is not UTF-8.
    BadUtf8,
    /// The value was complete but bytes were left over.
    TrailingBytes(usize),
    /// A protocol version this node does not speak.
    UnknownVersion(u32),
    /// Anything else the decoder reported.
    Other(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "input ends in the middle of a value"),
            WireError::TooLarge { what, len, max } => {
                write!(f, "{what} of {len} exceeds the limit of {max}")
            }
            WireError::BadTag(m) => write!(f, "undefined tag: {m}"),
            WireError::BadUtf8 => write!(f, "text is not UTF-8"),
            WireError::TrailingBytes(n) => write!(f, "{n} bytes after the end of the value"),
            WireError::UnknownVersion(v) => write!(f, "unknown version {v}"),
            WireError::Other(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<DecodeError> for WireError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::UnexpectedEnd { .. } => WireError::Truncated,
            DecodeError::LimitExceeded => WireError::TooLarge {
                what: "value",
                len: u64::MAX,
                max: HARD_LIMIT_BYTES as u64,
            },
            DecodeError::UnexpectedVariant {
                type_name, found, ..
            } => WireError::BadTag(format!("{type_name} variant {found}")),
            DecodeError::InvalidBooleanValue(v) => WireError::BadTag(format!("boolean {v}")),
            DecodeError::Utf8 { .. } => WireError::BadUtf8,
            DecodeError::OtherString(s) => decode_other(&s),
            DecodeError::Other(s) => decode_other(s),
            other => WireError::Other(other.to_string()),
        }
    }
}

/// Our own decode helpers report through `DecodeError::OtherString` with a marker prefix so the
/// structured error survives bincode's error type.
fn decode_other(s: &str) -> WireError {
    if let Some(rest) = s.strip_prefix("too-large:") {
        let mut parts = rest.splitn(3, ':');
        let what = parts.next().unwrap_or("value");
        let len = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let max = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        return WireError::TooLarge {
            what: static_what(what),
            len,
            max,
        };
    }
    if let Some(v) = s.strip_prefix("version:") {
        return WireError::UnknownVersion(v.parse().unwrap_or(u32::MAX));
    }
    WireError::Other(s.to_string())
}

fn static_what(what: &str) -> &'static str {
    const NAMES: &[&str] = &[
        "bytes",
        "list",
        "text",
        "body",
        "tags",
        "addresses",
        "publishers",
        "name",
        "value",
        "introducers",
        "introducer addresses",
        "allow-list",
        "external nodes",
        "ops",
        "observed",
        "vector",
        "ext body",
        "reason",
    ];
    NAMES
        .iter()
        .find(|n| **n == what)
        .copied()
        .unwrap_or("value")
}

pub(crate) fn too_large(what: &'static str, len: u64, max: u64) -> DecodeError {
    DecodeError::OtherString(format!("too-large:{what}:{len}:{max}"))
}

pub(crate) fn unknown_version(v: u32) -> DecodeError {
    DecodeError::OtherString(format!("version:{v}"))
}

/// Encodes `value` onto the end of `out`.
pub fn encode_into<T: Encode>(value: &T, out: &mut Vec<u8>) {
    bincode::encode_into_std_write(value, out, CONFIG).expect("encoding into a Vec cannot fail");
}

/// Encodes `value` into a new buffer.
pub fn encode_to_vec<T: Encode>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Decodes one `T` that must span all of `bytes`.
pub fn decode_exact<T: Decode<()>>(bytes: &[u8]) -> Result<T, WireError> {
    let (value, used) = bincode::decode_from_slice::<T, _>(bytes, CONFIG)?;
    if used != bytes.len() {
        return Err(WireError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

/// Decodes one `T` from the front of `bytes`, returning it and the bytes it used.
pub fn decode_prefix<T: Decode<()>>(bytes: &[u8]) -> Result<(T, usize), WireError> {
    Ok(bincode::decode_from_slice::<T, _>(bytes, CONFIG)?)
}

// ---------------------------------------------------------------------------------------------
// Field helpers for hand-written Encode / Decode impls: lengths are checked against the bytes
// present (and a per-field maximum) before allocating.

/// Reads a `u64` length and checks it against `max` and against the bytes remaining.
fn read_len<D: Decoder>(d: &mut D, what: &'static str, max: usize) -> Result<usize, DecodeError> {
    let len = u64::decode(d)?;
    if len > max as u64 {
        return Err(too_large(what, len, max as u64));
    }
    let len = len as usize;
    // Every element takes at least one byte, so a count larger than the bytes left is a lie.
    if d.reader().peek_read(len).is_none() && len > 0 {
        // Slice readers answer peek_read exactly; any other reader falls back to reading.
        return Err(DecodeError::UnexpectedEnd { additional: len });
    }
    Ok(len)
}

pub(crate) fn encode_bytes<E: Encoder>(bytes: &[u8], e: &mut E) -> Result<(), EncodeError> {
    (bytes.len() as u64).encode(e)?;
    bincode::enc::write::Writer::write(e.writer(), bytes)
}

pub(crate) fn decode_bytes<D: Decoder>(
    d: &mut D,
    what: &'static str,
    max: usize,
) -> Result<Vec<u8>, DecodeError> {
    let len = read_len(d, what, max)?;
    d.claim_bytes_read(len)?;
    let mut out = vec![0u8; len];
    d.reader().read(&mut out)?;
    Ok(out)
}

pub(crate) fn encode_text<E: Encoder>(text: &str, e: &mut E) -> Result<(), EncodeError> {
    encode_bytes(text.as_bytes(), e)
}

pub(crate) fn decode_text<D: Decoder>(
    d: &mut D,
    what: &'static str,
    max: usize,
) -> Result<String, DecodeError> {
    let bytes = decode_bytes(d, what, max)?;
    String::from_utf8(bytes).map_err(|e| DecodeError::Utf8 {
        inner: e.utf8_error(),
    })
}

pub(crate) fn encode_list<E: Encoder, T: Encode>(
    items: &[T],
    e: &mut E,
) -> Result<(), EncodeError> {
    (items.len() as u64).encode(e)?;
    for item in items {
        item.encode(e)?;
    }
    Ok(())
}

pub(crate) fn decode_list<D: Decoder<Context = ()>, T: Decode<()>>(
    d: &mut D,
    what: &'static str,
    max: usize,
) -> Result<Vec<T>, DecodeError> {
    let len = read_len(d, what, max)?;
    let mut out = Vec::with_capacity(len.min(64));
    for _ in 0..len {
        out.push(T::decode(d)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Blob(Vec<u8>);

    impl Encode for Blob {
        fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
            encode_bytes(&self.0, e)
        }
    }

    impl Decode<()> for Blob {
        fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
            Ok(Blob(decode_bytes(d, "bytes", 1000)?))
        }
    }

    #[test]
    fn forged_length_is_refused_before_allocating() {
        // Claims 2^40 bytes; only 3 follow.
        let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        let err = decode_exact::<Blob>(&bytes).unwrap_err();
        assert!(
            matches!(err, WireError::TooLarge { what: "bytes", .. }),
            "{err:?}"
        );
        // Claims 500 bytes (under the field limit); only 3 follow.
        let mut bytes = 500u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        assert_eq!(
            decode_exact::<Blob>(&bytes).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = encode_to_vec(&Blob(b"hi".to_vec()));
        assert_eq!(decode_exact::<Blob>(&bytes).unwrap(), Blob(b"hi".to_vec()));
        bytes.push(0);
        assert_eq!(
            decode_exact::<Blob>(&bytes).unwrap_err(),
            WireError::TrailingBytes(1)
        );
    }

    #[test]
    fn integers_are_fixed_width_little_endian() {
        assert_eq!(encode_to_vec(&0x0102u32), vec![2, 1, 0, 0]);
        assert_eq!(encode_to_vec(&Some(1u8)), vec![1, 1]);
        assert_eq!(
            encode_to_vec(&Blob(vec![9])),
            vec![1, 0, 0, 0, 0, 0, 0, 0, 9]
        );
    }
}
