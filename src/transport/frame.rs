//! Framing on QUIC streams: `u32 length (little-endian) || u8 type || payload`, where the
//! length counts the payload only. The length is checked against the frame limit as soon as
//! the five header bytes are in, before any payload is buffered, so an oversized frame costs its
//! sender nothing but the stream.
//!
//! On QUIC DATAGRAMs there is no length: a datagram is `u8 type || payload`.

use std::fmt;

/// Bytes in a frame header.
pub const HEADER_BYTES: usize = 5;

/// Frame types.
pub mod kind {
    /// Control stream: the connect exchange's hello (must be the first frame).
    pub const HELLO: u8 = 0x01;
    /// Control stream: the sender's node advert.
    pub const ADVERT: u8 = 0x02;
    /// Control stream: cumulative counts of message frames received per stream.
    pub const ACK: u8 = 0x03;
    /// Control stream (v2): adverts of engines that run on the sender.
    pub const ENGINE_ADVERTS: u8 = 0x04;
    /// Control stream (v2): engines of the sender that stopped.
    pub const ENGINE_WITHDRAW: u8 = 0x05;
    /// Control stream (v2): where does an engine run?
    pub const LOOKUP: u8 = 0x06;
    /// Control stream (v2): the answer to a lookup.
    pub const FOUND: u8 = 0x07;
    /// Message streams and datagrams: one `EngineMessage` in wire form.
    pub const MESSAGE: u8 = 0x10;
    /// Message streams (v2): one relay layer sealed to the receiving node (docs/wire.md §12G).
    pub const RELAY: u8 = 0x11;
}

/// A stream that broke the framing rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix exceeds the limit.
    TooLarge {
        /// The announced payload length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    Truncated,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max}")
            }
            FrameError::Truncated => write!(f, "stream ended inside a frame"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Appends one frame to `out`.
pub fn encode(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(HEADER_BYTES + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

/// Reassembles frames from the bytes of one stream.
#[derive(Debug)]
pub struct FrameDecoder {
    max: usize,
    header: [u8; HEADER_BYTES],
    header_len: usize,
    payload: Vec<u8>,
    want: usize,
    kind: u8,
}

impl FrameDecoder {
    /// A decoder refusing payloads over `max` bytes.
    pub fn new(max: usize) -> FrameDecoder {
        FrameDecoder {
            max,
            header: [0; HEADER_BYTES],
            header_len: 0,
            payload: Vec::new(),
            want: 0,
            kind: 0,
        }
    }

    /// Bytes held for the frame being reassembled (header and payload so far).
    pub fn buffered(&self) -> usize {
        self.header_len + self.payload.len()
    }

    /// Whether the decoder is between frames (the stream may end here).
    pub fn at_boundary(&self) -> bool {
        self.header_len == 0
    }

    /// Consumes bytes from `data`, calling `frame` for each complete frame. Stops at the first
    /// error; bytes after a bad header are not looked at.
    pub fn push(
        &mut self,
        mut data: &[u8],
        mut frame: impl FnMut(u8, Vec<u8>),
    ) -> Result<(), FrameError> {
        while !data.is_empty() {
            if self.header_len < HEADER_BYTES {
                let take = (HEADER_BYTES - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
                self.header_len += take;
                data = &data[take..];
                if self.header_len < HEADER_BYTES {
                    return Ok(());
                }
                let len =
                    u32::from_le_bytes(self.header[..4].try_into().expect("4 bytes")) as usize;
                if len > self.max {
                    return Err(FrameError::TooLarge {
                        len: len as u64,
                        max: self.max,
                    });
                }
                self.kind = self.header[4];
                self.want = len;
                self.payload = Vec::with_capacity(len.min(data.len().max(64)));
            }
            let take = (self.want - self.payload.len()).min(data.len());
            self.payload.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.payload.len() == self.want {
                let payload = std::mem::take(&mut self.payload);
                self.header_len = 0;
                frame(self.kind, payload);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_reassemble() {
        let mut bytes = Vec::new();
        encode(kind::MESSAGE, b"hello", &mut bytes);
        encode(kind::ACK, b"", &mut bytes);
        encode(kind::MESSAGE, &[7; 300], &mut bytes);
        for split in 0..bytes.len() {
            let mut d = FrameDecoder::new(1000);
            let mut got = Vec::new();
            d.push(&bytes[..split], |k, p| got.push((k, p))).unwrap();
            d.push(&bytes[split..], |k, p| got.push((k, p))).unwrap();
            assert_eq!(got.len(), 3, "split {split}");
            assert_eq!(got[0], (kind::MESSAGE, b"hello".to_vec()));
            assert_eq!(got[1], (kind::ACK, vec![]));
            assert_eq!(got[2].1.len(), 300);
            assert!(d.at_boundary());
        }
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let mut d = FrameDecoder::new(1000);
        // A 16 MiB length prefix followed by 10 bytes.
        let mut bytes = (16u32 << 20).to_le_bytes().to_vec();
        bytes.push(kind::MESSAGE);
        bytes.extend_from_slice(&[0; 10]);
        let err = d.push(&bytes, |_, _| panic!("no frame")).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: 16 << 20,
                max: 1000
            }
        );
        assert!(d.payload.capacity() < 1000);
    }
}
