//! The sending side: moving a peer's queue onto its connection by transport preferences
//! (an ordered stream per (source engine, destination) pair with least-recently-used finishing
//! over `max_pair_streams`, a stream per unordered message, a datagram per unreliable one), and
//! flushing the streams round robin so one large message cannot starve the other pairs.

use std::time::Instant;

use rand_core::RngCore;

use super::conn::{pair_key, Conn, QuicConn, SendError};
use super::peers::ConnId;
use super::Core;
use crate::runtime::stats::DropReason;
use crate::time::Now;
use crate::transport::control::close_code;
use crate::transport::frame::{self, kind};
use crate::transport::RemoteSend;
use crate::wire::{Reliability, Security, TransportPrefs};

/// Where a message went.
enum Placed {
    /// Queued on a stream (tracked until acknowledged).
    Stream,
    /// Sent as a datagram (not tracked); its length.
    Datagram(usize),
    /// No stream credit now: put it back and try later.
    Wait(RemoteSend),
    /// Cannot be sent: drop with the reason.
    Bounce(RemoteSend, DropReason),
}

impl<R: RngCore> Core<R> {
    /// Moves the peer's queued messages onto the connection's streams.
    pub(super) fn drain_queue(
        &mut self,
        id: ConnId,
        conn: &mut Conn,
        q: &mut dyn QuicConn,
        now: Now,
    ) {
        let Some(node) = conn.node else { return };
        // Only the peer's active connection takes new messages, and not while an older one is
        // still delivering (see `Peer::retiring`).
        if self
            .peers
            .get(&node)
            .is_none_or(|p| p.active != Some(id) || p.retiring > 0)
        {
            return;
        }
        let default = self.config.default_tprefs;
        let max_pairs = self.config.limits.max_pair_streams;
        loop {
            let Some(peer) = self.peers.get_mut(&node) else {
                return;
            };
            let Some(send) = peer.queue.pop_front() else {
                return;
            };
            if send.header.expiry.is_some_and(|e| e <= now.wall) {
                peer.bytes = peer.bytes.saturating_sub(send.wire.len());
                self.bounce(send, DropReason::Expired);
                continue;
            }
            let prefs = send.header.tprefs.or(peer.tprefs).unwrap_or(default);
            match place(conn, q, send, prefs, max_pairs, now.instant) {
                Placed::Stream => {}
                Placed::Datagram(len) => {
                    if let Some(p) = self.peers.get_mut(&node) {
                        p.bytes = p.bytes.saturating_sub(len);
                    }
                }
                Placed::Wait(send) => {
                    if let Some(p) = self.peers.get_mut(&node) {
                        p.queue.push_front(send);
                    }
                    return;
                }
                Placed::Bounce(send, reason) => {
                    if let Some(p) = self.peers.get_mut(&node) {
                        p.bytes = p.bytes.saturating_sub(send.wire.len());
                    }
                    self.bounce(send, reason);
                }
            }
        }
    }

    /// Hands buffered stream data to the connection. It takes only what its flow and congestion
    /// control allow, so the stream served first gets the room: each pass starts after the
    /// stream that went first last time, and a large message on one engine pair cannot starve
    /// the others.
    pub(super) fn flush_streams(&mut self, conn: &mut Conn, q: &mut dyn QuicConn, now: Now) {
        let mut stopped = Vec::new();
        let start = conn.flush_from;
        let mut first_writer = None;
        let mut wrote = false;
        let mut flush =
            |sid: u64, s: &mut super::conn::OutStream, first_writer: &mut Option<u64>| {
                if s.off == s.buf.len() && (!s.fin || s.fin_sent) {
                    return;
                }
                match q.stream_send(sid, &s.buf[s.off..], s.fin) {
                    Ok(n) => {
                        s.opened = true;
                        s.off += n;
                        if n > 0 {
                            first_writer.get_or_insert(sid);
                            wrote = true;
                        }
                        if s.off == s.buf.len() {
                            s.buf.clear();
                            s.off = 0;
                            if s.fin {
                                s.fin_sent = true;
                            }
                        }
                    }
                    Err(SendError::Blocked) => {}
                    Err(SendError::Stopped(code)) => stopped.push((sid, code)),
                    Err(SendError::Failed(e)) => {
                        log::debug!("transport: stream {sid}: {e}");
                        stopped.push((sid, 0));
                    }
                }
            };
        // The control stream takes its turn like the others: served first, its acknowledgements
        // could leave ahead of the replies written in the same pass, and a crash in between
        // would lose acknowledged requests (docs/wire.md §10.3).
        for (&sid, s) in conn.out.range_mut(start..) {
            flush(sid, s, &mut first_writer);
        }
        for (&sid, s) in conn.out.range_mut(..start) {
            flush(sid, s, &mut first_writer);
        }
        if let Some(sid) = first_writer {
            conn.flush_from = sid + 1;
        }
        if wrote && conn.unanswered_since.is_none() {
            conn.unanswered_since = Some(now.instant);
            conn.acked_mark = q.acked_bytes();
        }
        for (sid, code) in stopped {
            if let Some(s) = conn.out.remove(&sid) {
                conn.pairs.retain(|_, v| *v != sid);
                let reason = if code == close_code::FRAME_TOO_LARGE {
                    DropReason::TooLarge
                } else {
                    DropReason::NoRoute
                };
                let mut freed = 0;
                for (_, m) in s.unconfirmed {
                    freed += m.wire.len();
                    self.bounce(m, reason);
                }
                if let Some(p) = conn.node.and_then(|n| self.peers.get_mut(&n)) {
                    p.bytes = p.bytes.saturating_sub(freed);
                }
            }
        }
        conn.out.retain(|_, s| !s.done());
    }
}

/// Puts one message on the connection according to its transport preferences.
fn place(
    conn: &mut Conn,
    q: &mut dyn QuicConn,
    send: RemoteSend,
    prefs: TransportPrefs,
    max_pairs: usize,
    now: Instant,
) -> Placed {
    // A relay frame is sealed already (the Router chose its path): it goes on a reliable
    // ordered stream, so that acknowledgements can travel back along the path.
    let (prefs, frame_kind) = match &send.relay {
        Some(_) => (TransportPrefs::RELIABLE_ORDERED, kind::RELAY),
        None => (prefs, kind::MESSAGE),
    };
    if prefs.security != Security::Direct {
        return Placed::Bounce(send, DropReason::Unsupported);
    }
    if prefs.reliability == Reliability::Unreliable {
        let max = q.dgram_max_writable_len().unwrap_or(0);
        if send.wire.len() + 1 > max {
            return Placed::Bounce(send, DropReason::TooLarge);
        }
        let mut dgram = Vec::with_capacity(send.wire.len() + 1);
        dgram.push(kind::MESSAGE);
        dgram.extend_from_slice(&send.wire);
        let len = send.wire.len();
        return if q.dgram_send(&dgram) {
            Placed::Datagram(len)
        } else {
            Placed::Bounce(send, DropReason::QueueFull)
        };
    }
    let ordered = prefs.ordering == crate::wire::Ordering::Ordered;
    let key = pair_key(send.header.src, &send.header.dst);
    let existing = if ordered {
        conn.pairs.get(&key).copied()
    } else {
        None
    };
    let sid = match existing {
        Some(sid) => sid,
        None => {
            if q.peer_streams_left_uni() <= conn.unopened_streams() {
                return Placed::Wait(send);
            }
            if ordered && conn.pairs.len() >= max_pairs {
                // Finish the least recently used pair stream (the smallest key among equals).
                let lru = conn
                    .pairs
                    .iter()
                    .min_by_key(|(_, sid)| conn.out.get(sid).map(|s| s.last_used))
                    .map(|(k, sid)| (*k, *sid));
                if let Some((k, old)) = lru {
                    conn.pairs.remove(&k);
                    if let Some(s) = conn.out.get_mut(&old) {
                        s.fin = true;
                    }
                }
            }
            let sid = conn.open_stream(now, false);
            if ordered {
                conn.pairs.insert(key, sid);
            }
            sid
        }
    };
    let s = conn.out.get_mut(&sid).expect("stream just found or opened");
    frame::encode(frame_kind, &send.wire, &mut s.buf);
    s.unconfirmed.push_back((s.frames, send));
    s.frames += 1;
    s.last_used = now;
    if !ordered {
        s.fin = true;
    }
    Placed::Stream
}
