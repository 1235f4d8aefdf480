//! The record layer that carries the Transport's streams and datagrams over one TLS-over-TCP
//! byte stream — the fallback for networks that block UDP (docs/wire.md §6.1.1) — sans IO.
//!
//! QUIC gives the connection core unidirectional streams with a stream credit, datagrams, a
//! close with an application code, an ack-eliciting probe and a count of acknowledged bytes.
//! [`Mux`] gives the same over one reliable, ordered byte stream, so that the very same core
//! (through [`QuicConn`](super::core::QuicConn), implemented by the driver's TCP connection)
//! runs both transports: the same hello, frames, acknowledgements and limits. It knows nothing
//! of sockets or TLS: the driver feeds it what TLS decrypted ([`Mux::handle_input`]) and writes
//! what it has to send ([`Mux::pending_output`], then [`Mux::handle_written`]).
//!
//! Records (all integers big-endian):
//!
//! | type | name | body |
//! |---|---|---|
//! | 0x01 | `STREAM` | `sid: u64` · `fin: u8` (0 or 1) · `len: u32` · `len` bytes (≤ [`MAX_RECORD_DATA`]) |
//! | 0x02 | `STOP` | `sid: u64` · `code: u64` — stop sending on the receiver's stream `sid` |
//! | 0x03 | `DATAGRAM` | `len: u32` · `len` bytes (≤ [`MAX_DATAGRAM`]) |
//! | 0x04 | `PING` | `seq: u64` — answered by a `PONG` with the same `seq` |
//! | 0x05 | `PONG` | `seq: u64` |
//! | 0x06 | `CLOSE` | `code: u64` · `len: u16` · `len` bytes of UTF-8 reason (≤ [`MAX_CLOSE_REASON`]) |
//! | 0x07 | `MAX_STREAMS` | `max: u64` — the sender may now have opened this many streams in all |
//!
//! A stream exists from its first `STREAM` record; ids follow QUIC's unidirectional numbering
//! (2 mod 4 opened by the dialler, 3 mod 4 by the listener) and each side opens them in
//! increasing order. A stream ends with `fin`; a stream the receiver `STOP`s is ended by the
//! sender with an empty `fin` record. Stream credit works as in QUIC: each side may open
//! [`MuxLimits::max_streams`] streams beyond those the other has finished reading, raised by
//! `MAX_STREAMS`.
//!
//! # Limits and memory
//!
//! Everything a peer can make a connection hold is bounded: bytes received and not yet read by
//! the core stop the driver reading TLS at [`MuxLimits::max_unread_bytes`] (default 16 MiB,
//! QUIC's connection window; TCP flow control then holds the peer back), plus at most one read
//! chunk and one partial record; streams open at once are at most [`MuxLimits::max_streams`]
//! (default 1,024, QUIC's stream limit; more is a protocol violation); bytes waiting to be
//! written are at most [`MuxLimits::max_unsent_bytes`] (default 4 MiB) plus one record, after
//! which sends are refused as blocked. A record that breaks these rules ends the connection with
//! a [`MuxError`] the driver reports as the close reason.
//!
//! The price of one byte stream is head-of-line blocking: a lost TCP segment holds up every
//! stream, and while the core does not read a stream (the Router is full), the others wait
//! behind it once the unread budget is used.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

/// The ALPN protocol id of netmachine's node-to-node protocol over TLS-over-TCP, version 1.
pub const TCP_ALPN: &[u8] = b"netmachine-tcp/1";

/// Record types.
pub mod record {
    /// Stream data, maybe with the stream's end.
    pub const STREAM: u8 = 0x01;
    /// Stop sending on a stream.
    pub const STOP: u8 = 0x02;
    /// An unreliable message (carried reliably by TCP, but never resent by the core).
    pub const DATAGRAM: u8 = 0x03;
    /// Asks for a `PONG`.
    pub const PING: u8 = 0x04;
    /// Answers a `PING`.
    pub const PONG: u8 = 0x05;
    /// The connection's end, with an application code and reason.
    pub const CLOSE: u8 = 0x06;
    /// Raises the sender's stream credit.
    pub const MAX_STREAMS: u8 = 0x07;
}

/// Most data bytes in one `STREAM` record.
pub const MAX_RECORD_DATA: usize = 16 * 1024;
/// Largest datagram payload (about what QUIC carries in one 1,350-byte packet, so that the core
/// places the same messages on datagrams over either transport).
pub const MAX_DATAGRAM: usize = 1_300;
/// Most bytes of a `CLOSE` reason.
pub const MAX_CLOSE_REASON: usize = 1_024;
/// Bytes of a `STREAM` record before its data.
const STREAM_HEADER: usize = 1 + 8 + 1 + 4;

/// The limits of one connection's record layer (see the module doc for the memory they bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MuxLimits {
    /// Received bytes not yet read by the core above which the driver stops reading TLS.
    pub max_unread_bytes: usize,
    /// Bytes waiting to be written above which sends are refused as blocked.
    pub max_unsent_bytes: usize,
    /// Streams each side may have open beyond those the other has finished reading.
    pub max_streams: u64,
}

impl Default for MuxLimits {
    fn default() -> Self {
        MuxLimits {
            max_unread_bytes: 16 << 20,
            max_unsent_bytes: 4 << 20,
            max_streams: 1024,
        }
    }
}

/// Why the peer's records end the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MuxError {
    /// An unknown record type.
    UnknownRecord(u8),
    /// A length over its limit (`what`, the length).
    TooLong(&'static str, usize),
    /// A stream id of the wrong direction, reused after its end, or opened out of order.
    BadStream(u64),
    /// More streams opened than the credit given.
    StreamLimit(u64),
    /// A `fin` byte other than 0 or 1.
    BadFin(u8),
    /// A `CLOSE` reason that is not UTF-8.
    BadReason,
    /// A `MAX_STREAMS` that lowers the credit.
    CreditLowered(u64),
}

impl fmt::Display for MuxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MuxError::UnknownRecord(t) => write!(f, "unknown record type {t:#04x}"),
            MuxError::TooLong(what, n) => write!(f, "{what} of {n} bytes is over its limit"),
            MuxError::BadStream(sid) => write!(f, "stream {sid} is not the peer's to open"),
            MuxError::StreamLimit(sid) => write!(f, "stream {sid} is over the stream credit"),
            MuxError::BadFin(b) => write!(f, "fin byte {b} is neither 0 nor 1"),
            MuxError::BadReason => write!(f, "close reason is not UTF-8"),
            MuxError::CreditLowered(n) => write!(f, "MAX_STREAMS {n} lowers the credit"),
        }
    }
}

impl std::error::Error for MuxError {}

/// How the connection ended, as far as the record layer knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// We sent `CLOSE` with this code and reason.
    Local(u64, String),
    /// The peer sent `CLOSE` with this code and reason.
    Peer(u64, String),
    /// The peer broke the record rules.
    Violation(MuxError),
}

/// Why a stream read returned nothing (mirrors the core's `RecvError`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MuxRecvError {
    /// Nothing to read now.
    Done,
    /// No such stream (never opened, ended, or stopped).
    Unknown,
}

/// Why a stream write took nothing (mirrors the core's `SendError`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MuxSendError {
    /// No room now (unsent bytes at their limit, or no stream credit).
    Blocked,
    /// The peer stopped the stream with this code.
    Stopped(u64),
    /// The connection is ending, or the stream already ended.
    Failed(&'static str),
}

#[derive(Debug, Default)]
struct InStream {
    data: VecDeque<u8>,
    fin: bool,
}

/// One connection's record layer (see the module doc).
#[derive(Debug)]
pub struct Mux {
    limits: MuxLimits,
    /// Whether we dialled (our streams are 2 mod 4, the peer's 3 mod 4).
    client: bool,
    // Receiving.
    input: Vec<u8>,
    streams_in: BTreeMap<u64, InStream>,
    /// Peer streams we stopped: their data is discarded until their end.
    stopped_in: BTreeSet<u64>,
    /// Highest stream id the peer has opened, if any.
    peer_highest: Option<u64>,
    /// Streams the peer has opened in all.
    peer_opened: u64,
    /// Peer streams ended and fully read (or stopped and ended).
    peer_done: u64,
    /// The most streams we last allowed the peer in all.
    credit_given: u64,
    dgrams_in: VecDeque<Vec<u8>>,
    unread: usize,
    // Sending.
    out: Vec<u8>,
    out_off: usize,
    /// Bytes handed to TLS so far.
    written: u64,
    our_highest: Option<u64>,
    our_open: BTreeSet<u64>,
    our_opened: u64,
    /// The most streams the peer lets us have opened in all.
    credit: u64,
    stopped_out: BTreeMap<u64, u64>,
    /// Pings sent and not answered: sequence, bytes written before it, when.
    pings: VecDeque<(u64, u64, Instant)>,
    next_ping: u64,
    acked: u64,
    rtt: Option<Duration>,
    ending: Option<Ending>,
}

impl Mux {
    /// The record layer of a connection we dialled (`client`) or accepted.
    pub fn new(client: bool, limits: MuxLimits) -> Mux {
        Mux {
            limits,
            client,
            input: Vec::new(),
            streams_in: BTreeMap::new(),
            stopped_in: BTreeSet::new(),
            peer_highest: None,
            peer_opened: 0,
            peer_done: 0,
            credit_given: limits.max_streams,
            dgrams_in: VecDeque::new(),
            unread: 0,
            out: Vec::new(),
            out_off: 0,
            written: 0,
            our_highest: None,
            our_open: BTreeSet::new(),
            our_opened: 0,
            credit: limits.max_streams,
            stopped_out: BTreeMap::new(),
            pings: VecDeque::new(),
            next_ping: 0,
            acked: 0,
            rtt: None,
            ending: None,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Receiving.

    /// Whether the driver should read more from TLS now (unread bytes under their limit and
    /// the connection not ended).
    pub fn wants_input(&self) -> bool {
        self.ending.is_none() && self.unread < self.limits.max_unread_bytes
    }

    /// Bytes read from TLS at `now`. Complete records take effect; a record breaking the rules
    /// ends the connection ([`Ending::Violation`]) and is returned as the error.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> Result<(), MuxError> {
        if self.ending.is_some() {
            return Ok(());
        }
        self.input.extend_from_slice(bytes);
        let mut off = 0;
        let result = loop {
            match self.parse_one(now, off) {
                Ok(Some(used)) => off += used,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
            if self.ending.is_some() {
                break Ok(());
            }
        };
        self.input.drain(..off);
        if let Err(e) = &result {
            self.ending = Some(Ending::Violation(e.clone()));
            self.input = Vec::new();
        }
        result
    }

    /// Parses and applies the record at `input[off..]`: its length, or `None` if incomplete.
    fn parse_one(&mut self, now: Instant, off: usize) -> Result<Option<usize>, MuxError> {
        let buf = &self.input[off..];
        let Some(&ty) = buf.first() else {
            return Ok(None);
        };
        let body = &buf[1..];
        let need = |n: usize| body.len() >= n;
        match ty {
            record::STREAM => {
                if !need(13) {
                    return Ok(None);
                }
                let sid = be_u64(&body[0..8]);
                let fin = body[8];
                let len = be_u32(&body[9..13]) as usize;
                if fin > 1 {
                    return Err(MuxError::BadFin(fin));
                }
                if len > MAX_RECORD_DATA {
                    return Err(MuxError::TooLong("stream record", len));
                }
                if !need(13 + len) {
                    return Ok(None);
                }
                let data = body[13..13 + len].to_vec();
                self.on_stream(sid, &data, fin == 1)?;
                Ok(Some(1 + 13 + len))
            }
            record::STOP => {
                if !need(16) {
                    return Ok(None);
                }
                let (sid, code) = (be_u64(&body[0..8]), be_u64(&body[8..16]));
                self.on_stop(sid, code);
                Ok(Some(17))
            }
            record::DATAGRAM => {
                if !need(4) {
                    return Ok(None);
                }
                let len = be_u32(&body[0..4]) as usize;
                if len > MAX_DATAGRAM {
                    return Err(MuxError::TooLong("datagram", len));
                }
                if !need(4 + len) {
                    return Ok(None);
                }
                self.unread += len;
                self.dgrams_in.push_back(body[4..4 + len].to_vec());
                Ok(Some(5 + len))
            }
            record::PING | record::PONG => {
                if !need(8) {
                    return Ok(None);
                }
                let seq = be_u64(&body[0..8]);
                if ty == record::PING {
                    self.push_u64_record(record::PONG, seq);
                } else {
                    self.on_pong(now, seq);
                }
                Ok(Some(9))
            }
            record::CLOSE => {
                if !need(10) {
                    return Ok(None);
                }
                let code = be_u64(&body[0..8]);
                let len = usize::from(u16::from_be_bytes([body[8], body[9]]));
                if len > MAX_CLOSE_REASON {
                    return Err(MuxError::TooLong("close reason", len));
                }
                if !need(10 + len) {
                    return Ok(None);
                }
                let reason = std::str::from_utf8(&body[10..10 + len])
                    .map_err(|_| MuxError::BadReason)?
                    .to_string();
                self.ending = Some(Ending::Peer(code, reason));
                Ok(Some(11 + len))
            }
            record::MAX_STREAMS => {
                if !need(8) {
                    return Ok(None);
                }
                let max = be_u64(&body[0..8]);
                if max < self.credit {
                    return Err(MuxError::CreditLowered(max));
                }
                self.credit = max;
                Ok(Some(9))
            }
            other => Err(MuxError::UnknownRecord(other)),
        }
    }

    fn on_stream(&mut self, sid: u64, data: &[u8], fin: bool) -> Result<(), MuxError> {
        if self.stopped_in.contains(&sid) {
            if fin {
                self.stopped_in.remove(&sid);
                self.stream_done();
            }
            return Ok(());
        }
        if !self.streams_in.contains_key(&sid) {
            let theirs = if self.client { 3 } else { 2 };
            if sid % 4 != theirs || self.peer_highest.is_some_and(|h| sid <= h) {
                return Err(MuxError::BadStream(sid));
            }
            if self.peer_opened >= self.credit_given {
                return Err(MuxError::StreamLimit(sid));
            }
            self.peer_highest = Some(sid);
            self.peer_opened += 1;
            self.streams_in.insert(sid, InStream::default());
        }
        let s = self.streams_in.get_mut(&sid).expect("inserted above");
        if s.fin {
            return Err(MuxError::BadStream(sid));
        }
        s.data.extend(data);
        s.fin = fin;
        self.unread += data.len();
        Ok(())
    }

    fn on_stop(&mut self, sid: u64, code: u64) {
        if self.our_open.remove(&sid) {
            self.stopped_out.insert(sid, code);
            // The core gives a stopped stream up; only the latest few are remembered.
            while self.stopped_out.len() > self.limits.max_streams as usize {
                self.stopped_out.pop_first();
            }
            self.push_stream_record(sid, &[], true);
        }
    }

    fn on_pong(&mut self, now: Instant, seq: u64) {
        while let Some(&(s, bytes, at)) = self.pings.front() {
            if s > seq {
                break;
            }
            self.pings.pop_front();
            if s == seq {
                self.acked = self.acked.max(bytes);
                self.rtt = Some(now.saturating_duration_since(at));
            }
        }
    }

    /// A peer stream ended and was read (or stopped): the peer may open one more.
    fn stream_done(&mut self) {
        self.peer_done += 1;
        let max = self.peer_done + self.limits.max_streams;
        if max >= self.credit_given + (self.limits.max_streams / 4).max(1) {
            self.credit_given = max;
            self.push_u64_record(record::MAX_STREAMS, max);
        }
    }

    /// Peer streams with data or an unread end.
    pub fn readable(&self) -> Vec<u64> {
        self.streams_in
            .iter()
            .filter(|(_, s)| !s.data.is_empty() || s.fin)
            .map(|(sid, _)| *sid)
            .collect()
    }

    /// Reads from peer stream `sid` into `buf`: bytes read and whether the stream ended (then
    /// it is gone).
    pub fn stream_recv(&mut self, sid: u64, buf: &mut [u8]) -> Result<(usize, bool), MuxRecvError> {
        let s = self.streams_in.get_mut(&sid).ok_or(MuxRecvError::Unknown)?;
        let n = buf.len().min(s.data.len());
        for (dst, src) in buf.iter_mut().zip(s.data.drain(..n)) {
            *dst = src;
        }
        self.unread -= n;
        let ended = s.fin && s.data.is_empty();
        if n == 0 && !ended {
            return Err(MuxRecvError::Done);
        }
        if ended {
            self.streams_in.remove(&sid);
            self.stream_done();
        }
        Ok((n, ended))
    }

    /// Stops reading peer stream `sid`, asking the peer to stop sending with `code`.
    pub fn stream_stop(&mut self, sid: u64, code: u64) {
        let Some(s) = self.streams_in.remove(&sid) else {
            return;
        };
        self.unread -= s.data.len();
        if s.fin {
            self.stream_done();
        } else {
            self.stopped_in.insert(sid);
            let mut body = [0u8; 16];
            body[..8].copy_from_slice(&sid.to_be_bytes());
            body[8..].copy_from_slice(&code.to_be_bytes());
            self.out.push(record::STOP);
            self.out.extend_from_slice(&body);
        }
    }

    /// Receives one datagram into `buf` (truncated to `buf`): its length.
    pub fn dgram_recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let d = self.dgrams_in.pop_front()?;
        self.unread -= d.len();
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Some(n)
    }

    // -----------------------------------------------------------------------------------------
    // Sending.

    /// Bytes waiting to be written.
    fn unsent(&self) -> usize {
        self.out.len() - self.out_off
    }

    /// Writes to our stream `sid` (opening it on first write): the bytes taken; `fin` ends the
    /// stream once all of `data` is taken.
    pub fn stream_send(&mut self, sid: u64, data: &[u8], fin: bool) -> Result<usize, MuxSendError> {
        if self.ending.is_some() {
            return Err(MuxSendError::Failed("connection closed"));
        }
        if let Some(&code) = self.stopped_out.get(&sid) {
            return Err(MuxSendError::Stopped(code));
        }
        if !self.our_open.contains(&sid) {
            let ours = if self.client { 2 } else { 3 };
            if sid % 4 != ours || self.our_highest.is_some_and(|h| sid <= h) {
                return Err(MuxSendError::Failed("stream not ours to open"));
            }
            if self.our_opened >= self.credit {
                return Err(MuxSendError::Blocked);
            }
        }
        let mut taken = 0;
        loop {
            let room = self.limits.max_unsent_bytes.saturating_sub(self.unsent());
            let chunk = (data.len() - taken).min(MAX_RECORD_DATA).min(room);
            let last = taken + chunk == data.len();
            if chunk == 0 && !(last && fin) {
                break;
            }
            if !self.our_open.contains(&sid) {
                self.our_open.insert(sid);
                self.our_highest = Some(sid);
                self.our_opened += 1;
            }
            self.push_stream_record(sid, &data[taken..taken + chunk], last && fin);
            taken += chunk;
            if last {
                if fin {
                    self.our_open.remove(&sid);
                }
                break;
            }
        }
        if taken == 0 && !data.is_empty() {
            return Err(MuxSendError::Blocked);
        }
        Ok(taken)
    }

    /// Streams the peer still lets us open.
    pub fn peer_streams_left_uni(&self) -> u64 {
        self.credit.saturating_sub(self.our_opened)
    }

    /// Largest datagram that can be sent now, if any.
    pub fn dgram_max_writable_len(&self) -> Option<usize> {
        (self.ending.is_none()).then_some(MAX_DATAGRAM)
    }

    /// Sends a datagram; whether it was taken (not when too long, the connection is ending, or
    /// unsent bytes are at their limit).
    pub fn dgram_send(&mut self, data: &[u8]) -> bool {
        if self.ending.is_some()
            || data.len() > MAX_DATAGRAM
            || self.unsent() + data.len() > self.limits.max_unsent_bytes
        {
            return false;
        }
        self.out.push(record::DATAGRAM);
        self.out
            .extend_from_slice(&(data.len() as u32).to_be_bytes());
        self.out.extend_from_slice(data);
        true
    }

    /// Sends a `PING` at `now`; its `PONG` advances [`Mux::acked_bytes`] and measures the RTT.
    pub fn ping(&mut self, now: Instant) {
        if self.ending.is_some() {
            return;
        }
        let seq = self.next_ping;
        self.next_ping += 1;
        self.push_u64_record(record::PING, seq);
        // Bytes up to and including the ping: the peer has them once it answers.
        let through = self.written + self.unsent() as u64;
        // At most 64 unanswered pings are remembered; older ones count as unanswered.
        if self.pings.len() >= 64 {
            self.pings.pop_front();
        }
        self.pings.push_back((seq, through, now));
    }

    /// Bytes the peer has confirmed receiving (those sent before its latest answered `PING`).
    pub fn acked_bytes(&self) -> u64 {
        self.acked
    }

    /// The round-trip time of the latest answered `PING`.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Ends the connection with `code` and `reason` (sent in a `CLOSE`, truncated to
    /// [`MAX_CLOSE_REASON`] bytes); nothing more is sent or received after it.
    pub fn close(&mut self, code: u64, reason: &str) {
        if self.ending.is_some() {
            return;
        }
        let mut end = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let reason = &reason[..end];
        self.out.push(record::CLOSE);
        self.out.extend_from_slice(&code.to_be_bytes());
        self.out
            .extend_from_slice(&(reason.len() as u16).to_be_bytes());
        self.out.extend_from_slice(reason.as_bytes());
        self.ending = Some(Ending::Local(code, reason.to_string()));
    }

    /// How the connection ended, if it has.
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// Bytes to write to TLS now (then report with [`Mux::handle_written`]).
    pub fn pending_output(&self) -> &[u8] {
        &self.out[self.out_off..]
    }

    /// `n` bytes of [`Mux::pending_output`] were written.
    pub fn handle_written(&mut self, n: usize) {
        self.out_off = (self.out_off + n).min(self.out.len());
        self.written += n as u64;
        if self.out_off == self.out.len() {
            self.out.clear();
            self.out_off = 0;
        } else if self.out_off > (1 << 20) && self.out_off > self.out.len() / 2 {
            self.out.drain(..self.out_off);
            self.out_off = 0;
        }
    }

    fn push_stream_record(&mut self, sid: u64, data: &[u8], fin: bool) {
        let mut header = [0u8; STREAM_HEADER];
        header[0] = record::STREAM;
        header[1..9].copy_from_slice(&sid.to_be_bytes());
        header[9] = u8::from(fin);
        header[10..14].copy_from_slice(&(data.len() as u32).to_be_bytes());
        self.out.extend_from_slice(&header);
        self.out.extend_from_slice(data);
    }

    fn push_u64_record(&mut self, ty: u8, value: u64) {
        self.out.push(ty);
        self.out.extend_from_slice(&value.to_be_bytes());
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

#[cfg(test)]
#[path = "tcp_mux_tests.rs"]
mod tests;
