//! One end of a simulated connection: ordered byte streams, datagrams, stop and close, and the
//! acknowledged-bytes count, behind the same [`QuicConn`] trait the quiche driver implements.
//! The network ([`super::net`]) moves what one end writes to the other end with the link's
//! delay and faults; this type only buffers.

use std::collections::{BTreeMap, VecDeque};

use crate::identity::NodeIdentity;
use crate::transport::core::{QuicConn, RecvError, SendError};

/// Largest datagram payload a simulated connection carries (as a 1,350-byte QUIC packet would).
pub const MAX_DATAGRAM: usize = 1200;

/// Unidirectional streams a simulated peer lets a connection have open at once (as quiche's
/// default, 1,024); a finished stream gives its credit back.
pub const MAX_STREAMS: u64 = 1024;

/// One end of a simulated connection.
#[derive(Debug, Default)]
pub struct SimConn {
    pub(crate) established: bool,
    /// The peer's identity, as its certificate would prove it (set on accepted ends).
    pub(crate) identity: Option<NodeIdentity>,
    /// Our close, if we closed it, and whether it has been put on the wire.
    pub(crate) closed_by_us: Option<(u64, String)>,
    pub(crate) close_sent: bool,
    /// The peer's close (or a lost connection).
    pub(crate) closed_by_peer: Option<String>,
    /// Bytes written and not yet on the wire, and whether the stream is finished.
    pub(crate) out: BTreeMap<u64, (Vec<u8>, bool)>,
    /// Bytes to read, whether the stream finished, and whether the finish was read.
    pub(crate) inb: BTreeMap<u64, (VecDeque<u8>, bool, bool)>,
    /// Our streams the peer stopped, with its code.
    pub(crate) stopped: BTreeMap<u64, u64>,
    /// Peer streams we stopped, with our code, not yet on the wire.
    pub(crate) stops: Vec<(u64, u64)>,
    pub(crate) dgrams_in: VecDeque<Vec<u8>>,
    pub(crate) dgrams_out: Vec<Vec<u8>>,
    pub(crate) opened: u64,
    /// Our streams finished: their credit comes back, as QUIC gives it back once the peer has
    /// read a finished stream.
    pub(crate) finished: u64,
    pub(crate) acked: u64,
    /// Bytes the connection still takes before the next refill, standing in for flow and
    /// congestion control; `None` is unlimited.
    pub(crate) budget: Option<usize>,
    /// Stops put on the wire (for the Transport core's tests).
    #[cfg(test)]
    pub(crate) stops_seen: Vec<(u64, u64)>,
    /// Ack-eliciting probes asked for.
    pub(crate) probes: usize,
}

impl QuicConn for SimConn {
    fn is_established(&self) -> bool {
        self.established
    }

    fn is_closed(&self) -> bool {
        self.closed_by_us.is_some() || self.closed_by_peer.is_some()
    }

    fn peer_identity(&self) -> Result<NodeIdentity, String> {
        self.identity.ok_or_else(|| "no certificate".into())
    }

    fn readable(&mut self) -> Vec<u64> {
        self.inb
            .iter()
            .filter(|(_, (b, fin, fin_read))| !b.is_empty() || (*fin && !*fin_read))
            .map(|(sid, _)| *sid)
            .collect()
    }

    fn stream_recv(&mut self, sid: u64, buf: &mut [u8]) -> Result<(usize, bool), RecvError> {
        let Some((bytes, fin, fin_read)) = self.inb.get_mut(&sid) else {
            return Err(RecvError::Done);
        };
        if bytes.is_empty() && (!*fin || *fin_read) {
            return Err(RecvError::Done);
        }
        let n = bytes.len().min(buf.len());
        for (slot, b) in buf.iter_mut().zip(bytes.drain(..n)) {
            *slot = b;
        }
        let done = *fin && bytes.is_empty();
        if done {
            *fin_read = true;
            self.inb.remove(&sid);
        }
        Ok((n, done))
    }

    fn stream_send(&mut self, sid: u64, data: &[u8], fin: bool) -> Result<usize, SendError> {
        if let Some(code) = self.stopped.get(&sid) {
            return Err(SendError::Stopped(*code));
        }
        if self.is_closed() {
            return Err(SendError::Failed("connection closed".into()));
        }
        let n = self.budget.map_or(data.len(), |b| b.min(data.len()));
        if n == 0 && !data.is_empty() {
            return Err(SendError::Blocked);
        }
        if let Some(b) = self.budget.as_mut() {
            *b -= n;
        }
        let s = self.out.entry(sid).or_insert_with(|| {
            self.opened += 1;
            (Vec::new(), false)
        });
        s.0.extend_from_slice(&data[..n]);
        if fin && n == data.len() {
            if !s.1 {
                self.finished += 1;
            }
            s.1 = true;
        }
        Ok(n)
    }

    fn stream_stop(&mut self, sid: u64, code: u64) {
        self.stops.push((sid, code));
        self.inb.remove(&sid);
    }

    fn dgram_max_writable_len(&self) -> Option<usize> {
        Some(MAX_DATAGRAM)
    }

    fn dgram_send(&mut self, data: &[u8]) -> bool {
        if data.len() > MAX_DATAGRAM || self.is_closed() {
            return false;
        }
        self.dgrams_out.push(data.to_vec());
        true
    }

    fn dgram_recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let d = self.dgrams_in.pop_front()?;
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Some(n)
    }

    fn peer_streams_left_uni(&self) -> u64 {
        MAX_STREAMS.saturating_sub(self.opened.saturating_sub(self.finished))
    }

    fn close(&mut self, code: u64, reason: &str) {
        if self.closed_by_us.is_none() && self.closed_by_peer.is_none() {
            self.closed_by_us = Some((code, reason.into()));
        }
    }

    fn send_ack_eliciting(&mut self) {
        self.probes += 1;
    }

    fn acked_bytes(&self) -> u64 {
        self.acked
    }

    fn close_description(&self) -> String {
        if let Some(r) = &self.closed_by_peer {
            return r.clone();
        }
        match &self.closed_by_us {
            Some((code, reason)) => format!("we closed it: 0x{code:x} {reason}"),
            None => "closed".into(),
        }
    }

    fn identity_mismatch(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished stream gives its credit back, so per-message streams never run out.
    #[test]
    fn finished_streams_give_their_credit_back() {
        let mut q = SimConn::default();
        for i in 0..2 * MAX_STREAMS {
            let sid = 2 + 4 * i;
            assert!(q.peer_streams_left_uni() > 0, "stream {i}");
            assert_eq!(q.stream_send(sid, b"x", true), Ok(1));
        }
        assert_eq!(q.peer_streams_left_uni(), MAX_STREAMS);
        assert_eq!(q.stream_send(1_000_002, b"open", false), Ok(4));
        assert_eq!(q.peer_streams_left_uni(), MAX_STREAMS - 1);
    }
}
