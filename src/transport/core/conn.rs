//! One connection as the core sees it: the QUIC operations it needs ([`QuicConn`]), and the
//! per-connection state the core keeps around them — outgoing streams with their ledger of
//! unacknowledged messages, incoming streams with their frame decoders and processed prefixes,
//! the control stream, and the frames parked while the Router's mailbox is full.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use super::peers::ConnId;
use crate::identity::{EngineIdentity, NodeIdentity};
use crate::transport::frame::{self, FrameDecoder};
use crate::transport::{Receipt, RemoteSend};
use crate::wire::{Destination, TransportAddress};

/// Why a stream read returned no data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing more to read now.
    Done,
    /// The stream failed (reset by the peer, or unknown); the text says why.
    Failed(String),
}

/// Why a stream write took nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// No room now (flow or congestion control, or the stream limit): try again later.
    Blocked,
    /// The peer stopped the stream with this application error code.
    Stopped(u64),
    /// Any other failure; the stream is given up.
    Failed(String),
}

/// The QUIC operations the core performs on one connection. The driver implements it over
/// `quiche::Connection`; a simulator implements it over simulated streams and datagrams.
///
/// Streams are QUIC unidirectional stream ids: the core opens client-initiated ids (2 mod 4)
/// on connections it dialled and server-initiated ids (3 mod 4) on accepted ones.
pub trait QuicConn {
    /// Whether the handshake (TLS) is complete.
    fn is_established(&self) -> bool;
    /// Whether the connection is gone (closed and drained, or timed out).
    fn is_closed(&self) -> bool;
    /// The peer's node identity proven by its certificate (asked once, on accepted connections).
    fn peer_identity(&self) -> Result<NodeIdentity, String>;
    /// Streams with data (or a finish) to read.
    fn readable(&mut self) -> Vec<u64>;
    /// Reads from a stream into `buf`: bytes read and whether the stream finished.
    fn stream_recv(&mut self, sid: u64, buf: &mut [u8]) -> Result<(usize, bool), RecvError>;
    /// Writes to a stream (opening it on first write); `fin` finishes it once all is taken.
    /// Returns the bytes taken.
    fn stream_send(&mut self, sid: u64, data: &[u8], fin: bool) -> Result<usize, SendError>;
    /// Stops reading a peer's stream, telling it `code` (STOP_SENDING).
    fn stream_stop(&mut self, sid: u64, code: u64);
    /// Largest datagram payload that can be sent now, if datagrams are available.
    fn dgram_max_writable_len(&self) -> Option<usize>;
    /// Sends a datagram; returns whether it could be queued.
    fn dgram_send(&mut self, data: &[u8]) -> bool;
    /// Receives one datagram into `buf`: its length, or `None` when there are no more.
    fn dgram_recv(&mut self, buf: &mut [u8]) -> Option<usize>;
    /// Unidirectional streams the peer still lets us open.
    fn peer_streams_left_uni(&self) -> u64;
    /// Closes the connection with an application error code and reason.
    fn close(&mut self, code: u64, reason: &str);
    /// Sends a small ack-eliciting packet (keep-alive and loss-recovery probe).
    fn send_ack_eliciting(&mut self);
    /// Bytes the peer has acknowledged so far (QUIC level).
    fn acked_bytes(&self) -> u64;
    /// Why the connection closed, for logs and notifications, when the core did not close it.
    fn close_description(&self) -> String;
    /// Whether the handshake failed because the peer's certificate named another node.
    fn identity_mismatch(&self) -> bool;
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// TLS handshake in progress.
    Handshake,
    /// TLS done; our hello sent, waiting for the peer's.
    AwaitHello,
    /// Messages flow.
    Ready,
}

/// One of our outgoing streams.
#[derive(Debug)]
pub(crate) struct OutStream {
    pub(crate) buf: Vec<u8>,
    pub(crate) off: usize,
    /// Finish the stream once `buf` is written.
    pub(crate) fin: bool,
    pub(crate) fin_sent: bool,
    /// Whether the connection has accepted a write (the stream exists on the wire).
    pub(crate) opened: bool,
    /// Message frames written so far (the next frame's sequence number).
    pub(crate) frames: u64,
    /// Messages not yet acknowledged, with their sequence numbers: the ledger.
    pub(crate) unconfirmed: VecDeque<(u64, RemoteSend)>,
    pub(crate) last_used: Instant,
    /// Whether this is the control stream (never finished, never acknowledged).
    pub(crate) control: bool,
}

impl OutStream {
    fn new(now: Instant, control: bool) -> OutStream {
        OutStream {
            buf: Vec::new(),
            off: 0,
            fin: false,
            fin_sent: false,
            opened: false,
            frames: 0,
            unconfirmed: VecDeque::new(),
            last_used: now,
            control,
        }
    }

    /// Finished, written and fully acknowledged: nothing left to keep.
    pub(crate) fn done(&self) -> bool {
        !self.control && self.fin_sent && self.unconfirmed.is_empty()
    }
}

/// One of the peer's streams.
#[derive(Debug)]
pub(crate) struct InStream {
    pub(crate) decoder: FrameDecoder,
    /// Message frames handed to the Router (the next frame's position).
    pub(crate) handed: u64,
    /// Frames the Router has finished with, as a prefix: everything below is acknowledged.
    pub(crate) processed: u64,
    /// Frames finished out of order, above `processed`.
    pub(crate) done: BTreeSet<u64>,
    pub(crate) finished: bool,
}

impl InStream {
    pub(crate) fn new(max_frame: usize) -> InStream {
        InStream {
            decoder: FrameDecoder::new(max_frame),
            handed: 0,
            processed: 0,
            done: BTreeSet::new(),
            finished: false,
        }
    }

    /// Records that the Router finished with frame `seq`; returns whether the acknowledged
    /// prefix grew.
    pub(crate) fn processed(&mut self, seq: u64) -> bool {
        if seq < self.processed {
            return false;
        }
        self.done.insert(seq);
        let before = self.processed;
        while self.done.remove(&self.processed) {
            self.processed += 1;
        }
        self.processed > before
    }
}

/// A received message for the Router: from `peer` on connection `conn`, with the receipt that
/// acknowledges it once the Router is done (none for datagrams, which are never acknowledged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The connection it arrived on.
    pub conn: ConnId,
    /// The sending node.
    pub peer: NodeIdentity,
    /// The message's wire form (a relay layer if `relay`).
    pub wire: Vec<u8>,
    /// Whether it came in a `RELAY` frame (docs/wire.md §12G).
    pub relay: bool,
    /// Its stream and position, for the acknowledgement.
    pub receipt: Option<Receipt>,
}

/// An ordered stream's key: source engine and destination (`Destination` is not `Ord`, so it
/// is keyed by its variant and its 32 bytes).
pub(crate) type PairKey = (EngineIdentity, u8, [u8; 32]);

/// The pair key of a message.
pub(crate) fn pair_key(src: EngineIdentity, dst: &Destination) -> PairKey {
    match dst {
        Destination::Engine(e) => (src, 0, e.0),
        Destination::Node(n) => (src, 1, n.0),
        Destination::Topic(t) => (src, 2, t.0),
        Destination::Domain(d) => (src, 3, d.0),
    }
}

/// The core's state of one connection.
#[derive(Debug)]
pub(crate) struct Conn {
    /// The address dialled, or the one an inbound connection came from.
    pub(crate) peer_addr: TransportAddress,
    pub(crate) outbound: bool,
    pub(crate) node: Option<NodeIdentity>,
    pub(crate) state: State,
    pub(crate) started: Instant,
    pub(crate) instance: Option<u64>,
    pub(crate) next_uni: u64,
    pub(crate) control_out: Option<u64>,
    pub(crate) out: BTreeMap<u64, OutStream>,
    pub(crate) pairs: BTreeMap<PairKey, u64>,
    pub(crate) control_in: FrameDecoder,
    pub(crate) inbound: BTreeMap<u64, InStream>,
    /// Bytes of incomplete frames held by the `inbound` decoders.
    pub(crate) partial_bytes: usize,
    pub(crate) ack_dirty: BTreeSet<u64>,
    /// Received frames waiting for room in the Router's mailbox; reading message streams is
    /// paused while any wait.
    pub(crate) inbox: VecDeque<Delivery>,
    /// Message streams were left unread because the Router had no room: read them when it does.
    pub(crate) read_blocked: bool,
    pub(crate) keepalive: Instant,
    /// A keep-alive is to be sent at the next service.
    pub(crate) keepalive_due: bool,
    /// The stream id at which the next flush pass starts (round robin).
    pub(crate) flush_from: u64,
    /// Since when data written has gone unacknowledged (no progress in the connection's
    /// acknowledged bytes since `acked_mark`).
    pub(crate) unanswered_since: Option<Instant>,
    pub(crate) acked_mark: u64,
    /// When this connection last probed for an acknowledgement.
    pub(crate) last_probe: Instant,
    /// A dial given up on, or a connection refused: closing, no longer tied to its peer.
    pub(crate) abandoned: bool,
    /// Since when this connection has been replaced by a duplicate and is draining.
    pub(crate) retiring: Option<Instant>,
    /// Why we closed it, if we did.
    pub(crate) close_reason: Option<String>,
    /// A close decided while another connection was being serviced, applied at the next
    /// service of this one.
    pub(crate) pending_close: Option<(u64, String)>,
    /// What the peer may still send of the identity exchange.
    pub(crate) exchange: super::exchange::Budget,
}

impl Conn {
    pub(crate) fn new(
        peer_addr: TransportAddress,
        outbound: bool,
        node: Option<NodeIdentity>,
        now: Instant,
    ) -> Conn {
        Conn {
            peer_addr,
            outbound,
            node,
            state: State::Handshake,
            started: now,
            instance: None,
            next_uni: if outbound { 2 } else { 3 },
            control_out: None,
            out: BTreeMap::new(),
            pairs: BTreeMap::new(),
            control_in: FrameDecoder::new(64 << 10),
            inbound: BTreeMap::new(),
            partial_bytes: 0,
            ack_dirty: BTreeSet::new(),
            inbox: VecDeque::new(),
            read_blocked: false,
            keepalive: now,
            keepalive_due: false,
            flush_from: 0,
            unanswered_since: None,
            acked_mark: 0,
            last_probe: now,
            abandoned: false,
            retiring: None,
            close_reason: None,
            pending_close: None,
            exchange: super::exchange::Budget::new(now),
        }
    }

    /// The peer's control stream: client-initiated unidirectional streams are 2 mod 4,
    /// server-initiated 3 mod 4.
    pub(crate) fn peer_control_stream(&self) -> u64 {
        if self.outbound {
            3
        } else {
            2
        }
    }

    pub(crate) fn is_peer_uni(&self, sid: u64) -> bool {
        sid % 4 == if self.outbound { 3 } else { 2 }
    }

    pub(crate) fn open_stream(&mut self, now: Instant, control: bool) -> u64 {
        let sid = self.next_uni;
        self.next_uni += 4;
        self.out.insert(sid, OutStream::new(now, control));
        sid
    }

    /// Forgets a stream the peer opened, with whatever partial frame it held.
    pub(crate) fn remove_inbound(&mut self, sid: u64) {
        if let Some(s) = self.inbound.remove(&sid) {
            self.partial_bytes -= s.decoder.buffered();
        }
    }

    pub(crate) fn unopened_streams(&self) -> u64 {
        self.out.values().filter(|s| !s.opened).count() as u64
    }

    /// Bytes queued on the control stream that the peer has not taken yet.
    pub(crate) fn control_backlog(&self) -> usize {
        self.control_out
            .and_then(|sid| self.out.get(&sid))
            .map_or(0, |s| s.buf.len() - s.off)
    }

    pub(crate) fn send_control(&mut self, kind: u8, payload: &[u8]) {
        if let Some(sid) = self.control_out {
            if let Some(s) = self.out.get_mut(&sid) {
                frame::encode(kind, payload, &mut s.buf);
            }
        }
    }

    pub(crate) fn close(&mut self, q: &mut dyn QuicConn, code: u64, reason: &str) {
        if self.close_reason.is_none() {
            self.close_reason = Some(reason.to_string());
        }
        q.close(code, reason);
    }

    /// Closes at the next service (for decisions taken while servicing another connection).
    pub(crate) fn close_later(&mut self, code: u64, reason: &str) {
        if self.pending_close.is_none() {
            self.pending_close = Some((code, reason.to_string()));
        }
    }

    /// Takes every unacknowledged message, stream by stream in order.
    pub(crate) fn take_unconfirmed(&mut self) -> Vec<RemoteSend> {
        let mut out = Vec::new();
        for s in self.out.values_mut() {
            out.extend(s.unconfirmed.drain(..).map(|(_, m)| m));
        }
        out
    }

    /// Whether a retiring connection has delivered everything it carried.
    pub(crate) fn drained(&self) -> bool {
        self.out
            .values()
            .all(|s| s.control || (s.unconfirmed.is_empty() && s.off == s.buf.len()))
    }
}
