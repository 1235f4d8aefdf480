//! The receiving side: the control stream (hello, adverts, acknowledgements of what we sent),
//! message streams with the frame-size and partial-frame limits, datagrams, the processed
//! prefix of each inbound stream turned into `ACK` frames, and the frames parked while the
//! Router's mailbox is full.

use rand_core::RngCore;

use super::conn::{Conn, Delivery, InStream, QuicConn, RecvError, State};
use super::peers::ConnId;
use super::{Core, Output};
use crate::runtime::stats::Fault;
use crate::time::Now;
use crate::transport::control::{self, close_code, Ack, Hello};
use crate::transport::frame::{self, kind, FrameDecoder, FrameError};
use crate::transport::Receipt;
use crate::wire::NodeAdvert;

impl<R: RngCore> Core<R> {
    pub(super) fn read_streams(
        &mut self,
        id: ConnId,
        conn: &mut Conn,
        q: &mut dyn QuicConn,
        now: Now,
        mut room: usize,
    ) {
        let mut buf = std::mem::take(&mut self.buf);
        let paused = !conn.inbox.is_empty();
        conn.read_blocked = false;
        for sid in q.readable() {
            if sid == conn.peer_control_stream() {
                self.read_control(id, conn, q, sid, &mut buf, now);
            } else if !conn.is_peer_uni(sid) {
                q.stream_stop(sid, close_code::PROTOCOL_VIOLATION);
            } else if conn.state == State::Ready {
                if paused || room == 0 {
                    // Left in the connection for now; serviced again soon (see
                    // `Core::handle_timeout`).
                    conn.read_blocked = true;
                } else {
                    self.read_message_stream(id, conn, q, sid, &mut buf, &mut room);
                }
            }
            if q.is_closed() {
                break;
            }
        }
        self.buf = buf;
        // Offer the parked frames again, in order; the driver hands back what still does not
        // fit.
        for d in std::mem::take(&mut conn.inbox) {
            self.outputs.push_back(Output::Deliver(d));
        }
    }

    fn read_control(
        &mut self,
        id: ConnId,
        conn: &mut Conn,
        q: &mut dyn QuicConn,
        sid: u64,
        buf: &mut [u8],
        now: Now,
    ) {
        let mut frames = Vec::new();
        loop {
            match q.stream_recv(sid, buf) {
                Ok((n, fin)) => {
                    if let Err(e) = conn.control_in.push(&buf[..n], |k, p| frames.push((k, p))) {
                        self.violation(conn, q, &format!("control stream: {e}"));
                        return;
                    }
                    if fin {
                        self.violation(conn, q, "control stream finished");
                        return;
                    }
                }
                Err(RecvError::Done) => break,
                Err(RecvError::Failed(e)) => {
                    self.violation(conn, q, &format!("control stream: {e}"));
                    return;
                }
            }
        }
        for (k, payload) in frames {
            match (k, conn.state) {
                (kind::HELLO, State::AwaitHello) => match control::decode::<Hello>(&payload) {
                    Ok(hello) => self.on_hello(id, conn, q, hello, now),
                    Err(e) => return self.violation(conn, q, &format!("bad hello: {e}")),
                },
                (kind::HELLO, _) => return self.violation(conn, q, "second hello"),
                (_, State::AwaitHello) => return self.violation(conn, q, "frame before hello"),
                (kind::ADVERT, _) => match crate::wire::decode_exact::<NodeAdvert>(&payload) {
                    Ok(advert) if Some(advert.id) == conn.node => {
                        self.outputs.push_back(Output::StoreAdvert(advert));
                    }
                    Ok(_) => return self.violation(conn, q, "advert of another node"),
                    Err(e) => return self.violation(conn, q, &format!("bad advert: {e}")),
                },
                (kind::ACK, _) => match control::decode::<Ack>(&payload) {
                    Ok(ack) => self.on_ack(conn, ack),
                    Err(e) => return self.violation(conn, q, &format!("bad ack: {e}")),
                },
                (kind::ENGINE_ADVERTS | kind::ENGINE_WITHDRAW | kind::LOOKUP | kind::FOUND, _) => {
                    if let Err(e) = self.exchange_frame(conn, k, &payload, now) {
                        return self.violation(conn, q, &e);
                    }
                }
                (other, _) => {
                    return self.violation(conn, q, &format!("unknown control frame {other}"))
                }
            }
            if q.is_closed() {
                return;
            }
        }
    }

    fn violation(&self, conn: &mut Conn, q: &mut dyn QuicConn, what: &str) {
        self.stats.fault(Fault::ProtocolViolation);
        log::warn!(
            "transport: {} ({}) broke the protocol: {what}; closing",
            conn.node.map(|n| n.short()).unwrap_or_default(),
            conn.peer_addr
        );
        conn.close(q, close_code::PROTOCOL_VIOLATION, what);
    }

    /// The peer acknowledged frames: free them from the ledger and from the peer's budget.
    fn on_ack(&mut self, conn: &mut Conn, ack: Ack) {
        let mut freed = 0;
        for (sid, count) in ack.0 {
            let Some(s) = conn.out.get_mut(&sid) else {
                continue;
            };
            while s.unconfirmed.front().is_some_and(|(seq, _)| *seq < count) {
                if let Some((_, m)) = s.unconfirmed.pop_front() {
                    freed += m.wire.len();
                    if let Some(upstream) = m.relay.as_ref().and_then(|r| r.upstream) {
                        self.released.push(upstream);
                    }
                }
            }
            if s.done() {
                conn.out.remove(&sid);
            }
        }
        if let Some(p) = conn.node.and_then(|n| self.peers.get_mut(&n)) {
            p.bytes = p.bytes.saturating_sub(freed);
        }
    }

    fn read_message_stream(
        &mut self,
        id: ConnId,
        conn: &mut Conn,
        q: &mut dyn QuicConn,
        sid: u64,
        buf: &mut [u8],
        room: &mut usize,
    ) {
        let max = self.config.limits.max_frame_bytes;
        // Never below one frame of the largest size (with its header).
        let max_partial = self
            .config
            .limits
            .max_partial_frame_bytes
            .max(max + frame::HEADER_BYTES);
        let Some(node) = conn.node else { return };
        loop {
            if *room == 0 {
                conn.read_blocked = true;
                return;
            }
            let stream = conn
                .inbound
                .entry(sid)
                .or_insert_with(|| InStream::new(max));
            let (n, fin) = match q.stream_recv(sid, buf) {
                Ok(r) => r,
                Err(RecvError::Done) => return,
                Err(RecvError::Failed(e)) => {
                    log::debug!("transport: stream {sid} from {}: {e}", node.short());
                    conn.remove_inbound(sid);
                    return;
                }
            };
            let mut frames = Vec::new();
            let before = stream.decoder.buffered();
            let pushed = stream.decoder.push(&buf[..n], |k, p| frames.push((k, p)));
            conn.partial_bytes = (conn.partial_bytes + stream.decoder.buffered()) - before;
            if fin {
                stream.finished = true;
                if !stream.decoder.at_boundary() {
                    // The partial frame will never complete: let it go now.
                    conn.partial_bytes -= stream.decoder.buffered();
                    stream.decoder = FrameDecoder::new(max);
                    self.stats.fault(Fault::ProtocolViolation);
                    log::debug!(
                        "transport: stream {sid} from {}: {}",
                        node.short(),
                        FrameError::Truncated
                    );
                }
            }
            let first = stream.handed;
            stream.handed += frames.len() as u64;
            for (i, (k, payload)) in frames.into_iter().enumerate() {
                if k != kind::MESSAGE && k != kind::RELAY {
                    self.stats.fault(Fault::ProtocolViolation);
                    log::debug!(
                        "transport: stream {sid} from {}: frame type 0x{k:02x} on a message \
                         stream; stopping that stream",
                        node.short()
                    );
                    q.stream_stop(sid, close_code::PROTOCOL_VIOLATION);
                    conn.remove_inbound(sid);
                    return;
                }
                *room = room.saturating_sub(1);
                self.outputs.push_back(Output::Deliver(Delivery {
                    conn: id,
                    peer: node,
                    wire: payload,
                    relay: k == kind::RELAY,
                    receipt: Some(Receipt {
                        conn: id,
                        stream: sid,
                        seq: first + i as u64,
                    }),
                }));
            }
            if let Err(e) = pushed {
                self.stats.fault(Fault::FrameTooLarge);
                log::warn!(
                    "transport: stream {sid} from {}: {e}; stopping that stream",
                    node.short()
                );
                q.stream_stop(sid, close_code::FRAME_TOO_LARGE);
                conn.remove_inbound(sid);
                return;
            }
            if conn.partial_bytes > max_partial {
                self.stats.fault(Fault::PartialFrameLimit);
                log::warn!(
                    "transport: {} has {} bytes of incomplete frames buffered (limit {max_partial}); closing",
                    node.short(),
                    conn.partial_bytes
                );
                conn.close(
                    q,
                    close_code::PROTOCOL_VIOLATION,
                    "too many bytes of incomplete frames",
                );
                return;
            }
            if fin {
                return;
            }
        }
    }

    pub(super) fn read_datagrams(&mut self, id: ConnId, conn: &mut Conn, q: &mut dyn QuicConn) {
        if conn.state != State::Ready {
            return;
        }
        let Some(node) = conn.node else { return };
        let mut buf = std::mem::take(&mut self.buf);
        while let Some(n) = q.dgram_recv(&mut buf) {
            if n >= 1 && buf[0] == kind::MESSAGE {
                self.outputs.push_back(Output::Deliver(Delivery {
                    conn: id,
                    peer: node,
                    wire: buf[1..n].to_vec(),
                    relay: false,
                    receipt: None,
                }));
            } else {
                self.stats.fault(Fault::ProtocolViolation);
                log::debug!(
                    "transport: datagram from {}: {}; dropped",
                    node.short(),
                    match buf[..n].first() {
                        Some(t) => format!("unknown type 0x{t:02x}"),
                        None => "empty".to_string(),
                    }
                );
            }
        }
        self.buf = buf;
    }

    /// Writes `ACK` frames for the streams whose processed prefix grew, and forgets inbound
    /// streams that are finished and fully processed.
    pub(super) fn send_acks(&mut self, conn: &mut Conn) {
        if conn.ack_dirty.is_empty() || conn.control_out.is_none() {
            return;
        }
        let entries: Vec<(u64, u64)> = std::mem::take(&mut conn.ack_dirty)
            .into_iter()
            .filter_map(|sid| conn.inbound.get(&sid).map(|s| (sid, s.processed)))
            .collect();
        for chunk in entries.chunks(control::MAX_ACK_ENTRIES) {
            conn.send_control(kind::ACK, &control::encode(&Ack(chunk.to_vec())));
        }
        let mut freed = 0;
        conn.inbound.retain(|_, s| {
            let done = s.finished && s.processed == s.handed;
            if done {
                freed += s.decoder.buffered();
            }
            !done
        });
        conn.partial_bytes -= freed;
    }
}
