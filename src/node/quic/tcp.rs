//! One TLS-over-TCP connection of the Transport thread: a non-blocking mio TCP stream, a
//! BoringSSL session over it (node-key certificates, the checks of `tls`), and the record layer
//! ([`Mux`]) that carries the core's streams and datagrams. It implements [`QuicConn`], so the
//! connection core drives it exactly as it drives a quiche connection.
//!
//! [`TcpConn::pump`] is the only place bytes move: it finishes the TCP connect and the TLS
//! handshake, reads TLS into the record layer while the layer wants input, writes what the layer
//! has to send until the socket is full, and decides whether the connection has ended (a
//! `CLOSE` sent and written, or received; a record-layer violation; end of stream or an error;
//! the idle timeout). The driver pumps a connection when its socket is ready, after the core
//! services it, and at its deadline ([`TcpConn::deadline`]).

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use boring::ssl::{ErrorCode, Ssl, SslContext, SslStream};
use mio::net::TcpStream;

use super::tls::{self, TCP_ALPN};
use crate::identity::NodeIdentity;
use crate::transport::core::{QuicConn, RecvError, SendError};
use crate::transport::tcp_mux::{Ending, Mux, MuxLimits, MuxRecvError, MuxSendError};

/// How long a connection we closed may take to write its `CLOSE` before the socket is shut.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// Most bytes handed to TLS in one write.
const WRITE_CHUNK: usize = 64 * 1024;

/// One TLS-over-TCP connection (see the module doc).
pub(super) struct TcpConn {
    tls: SslStream<TcpStream>,
    /// Whether we dialled (the TLS client).
    client: bool,
    /// The TCP connect of a dial has not completed yet.
    connecting: bool,
    established: bool,
    mux: Mux,
    /// The peer's identity from its certificate, once the handshake is done.
    peer: Option<NodeIdentity>,
    /// Set by the dial's certificate check when the server is not the node dialled.
    mismatch: Arc<AtomicBool>,
    /// Why the connection ended, once it has.
    ended: Option<String>,
    /// Whether the ending is a record-layer violation by the peer (counted by the driver).
    violation: bool,
    idle_timeout: Duration,
    last_recv: Instant,
    close_by: Option<Instant>,
    /// The peer's address.
    pub(super) remote: SocketAddr,
}

impl TcpConn {
    /// Starts a dial to `expected` at `addr`: a non-blocking connect and a client TLS session.
    pub(super) fn dial(
        tls_id: &tls::TlsIdentity,
        expected: NodeIdentity,
        addr: SocketAddr,
        idle_timeout: Duration,
        now: Instant,
    ) -> Result<TcpConn, String> {
        let mismatch = Arc::new(AtomicBool::new(false));
        let ctx = tls::tcp_client_context(tls_id, expected, Arc::clone(&mismatch))
            .map_err(|e| e.to_string())?;
        let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let conn = TcpConn::new(&ctx, stream, true, addr, mismatch, idle_timeout, now)?;
        Ok(conn)
    }

    /// A connection accepted from `from`, with a server TLS session from `ctx`.
    pub(super) fn accept(
        ctx: &SslContext,
        stream: TcpStream,
        from: SocketAddr,
        idle_timeout: Duration,
        now: Instant,
    ) -> Result<TcpConn, String> {
        let _ = stream.set_nodelay(true);
        let mismatch = Arc::new(AtomicBool::new(false));
        TcpConn::new(ctx, stream, false, from, mismatch, idle_timeout, now)
    }

    fn new(
        ctx: &SslContext,
        stream: TcpStream,
        client: bool,
        remote: SocketAddr,
        mismatch: Arc<AtomicBool>,
        idle_timeout: Duration,
        now: Instant,
    ) -> Result<TcpConn, String> {
        let ssl = Ssl::new(ctx).map_err(|e| e.to_string())?;
        let tls = SslStream::new(ssl, stream).map_err(|e| e.to_string())?;
        Ok(TcpConn {
            tls,
            client,
            connecting: client,
            established: false,
            mux: Mux::new(client, MuxLimits::default()),
            peer: None,
            mismatch,
            ended: None,
            violation: false,
            idle_timeout,
            last_recv: now,
            close_by: None,
            remote,
        })
    }

    /// The socket, to register with the poll.
    pub(super) fn socket(&mut self) -> &mut TcpStream {
        self.tls.get_mut()
    }

    /// The round-trip time of the latest answered ping.
    pub(super) fn rtt(&self) -> Option<Duration> {
        self.mux.rtt()
    }

    /// Whether the connection ended because the peer broke the record rules (asked once: the
    /// answer is then cleared, so the driver counts it once).
    pub(super) fn take_violation(&mut self) -> bool {
        std::mem::take(&mut self.violation)
    }

    /// When the connection must be pumped even without socket activity: its idle timeout, or
    /// the end of its close linger.
    pub(super) fn deadline(&self) -> Option<Instant> {
        if self.ended.is_some() {
            return None;
        }
        let idle = self.last_recv + self.idle_timeout;
        Some(self.close_by.map_or(idle, |c| c.min(idle)))
    }

    /// Moves bytes (see the module doc) at `now`, using `buf` to read into. Returns whether
    /// anything arrived or the connection changed state, so the core should service it.
    pub(super) fn pump(&mut self, now: Instant, buf: &mut [u8]) -> bool {
        if self.ended.is_some() {
            return false;
        }
        let mut activity = false;
        if self.connecting {
            match self.finish_connect() {
                Ok(true) => self.connecting = false,
                Ok(false) => return self.check_timers(now),
                Err(e) => return self.end(format!("TCP connect failed: {e}")),
            }
        }
        if !self.established {
            // SSL_connect / SSL_accept set the side on first use, then continue the handshake.
            let step = if self.client {
                self.tls.connect()
            } else {
                self.tls.accept()
            };
            match step {
                Ok(()) => {
                    if let Err(e) = self.on_handshake() {
                        return self.end(e);
                    }
                    self.established = true;
                    activity = true;
                    // A first round-trip time, for ordering addresses and choosing relays.
                    self.mux.ping(now);
                }
                Err(e) if wants_io(e.code()) => return self.check_timers(now),
                Err(e) => {
                    let why = if self.mismatch.load(Ordering::Relaxed) {
                        "the peer's certificate is not the node dialled".to_string()
                    } else {
                        e.to_string()
                    };
                    return self.end(format!("TLS handshake failed: {why}"));
                }
            }
        }
        // Read while the record layer has room.
        while self.mux.wants_input() {
            match self.tls.ssl_read(buf) {
                Ok(n) => {
                    activity = true;
                    self.last_recv = now;
                    if let Err(e) = self.mux.handle_input(now, &buf[..n]) {
                        log::warn!(
                            "transport: tcp peer at {} broke the record rules: {e}",
                            self.remote
                        );
                        self.violation = true;
                        return self.end(format!("protocol violation: {e}"));
                    }
                }
                Err(e) if wants_io(e.code()) => break,
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                    return self.end_by_peer("the peer ended the TLS session");
                }
                Err(e) if e.code() == ErrorCode::SYSCALL && e.io_error().is_none() => {
                    return self.end_by_peer("the peer closed the TCP connection");
                }
                Err(e) => return self.end_by_peer(&format!("read failed: {e}")),
            }
        }
        // Write until the socket is full.
        loop {
            let pending = self.mux.pending_output();
            if pending.is_empty() {
                break;
            }
            let chunk = &pending[..pending.len().min(WRITE_CHUNK)];
            match self.tls.ssl_write(chunk) {
                Ok(n) => self.mux.handle_written(n),
                Err(e) if wants_io(e.code()) => break,
                Err(e) => return self.end(format!("write failed: {e}")),
            }
        }
        match self.mux.ending() {
            Some(Ending::Peer(code, reason)) => {
                let why = format!("closed by peer: code {code:#x}, {reason}");
                return self.end(why);
            }
            Some(Ending::Local(code, reason)) => {
                if self.mux.pending_output().is_empty() {
                    let why = format!("closed: code {code:#x}, {reason}");
                    return self.end(why);
                }
                self.close_by.get_or_insert(now + CLOSE_LINGER);
            }
            Some(Ending::Violation(_)) | None => {}
        }
        self.check_timers(now) || activity
    }

    /// Ends the connection if its idle timeout or close linger has passed.
    fn check_timers(&mut self, now: Instant) -> bool {
        if self.close_by.is_some_and(|t| now >= t) {
            return self.end("closed (the close could not be written in time)".into());
        }
        if now.saturating_duration_since(self.last_recv) >= self.idle_timeout {
            return self.end("idle timeout".into());
        }
        false
    }

    /// Whether the TCP connect of a dial has completed (`Ok(false)`: not yet).
    fn finish_connect(&mut self) -> io::Result<bool> {
        let s = self.tls.get_ref();
        if let Some(e) = s.take_error()? {
            return Err(e);
        }
        match s.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The checks once TLS is done: the ALPN, and the peer's identity from its certificate.
    fn on_handshake(&mut self) -> Result<(), String> {
        let ssl = self.tls.ssl();
        if ssl.selected_alpn_protocol() != Some(TCP_ALPN) {
            return Err("TLS handshake failed: no common application protocol".into());
        }
        let cert = ssl
            .peer_certificate()
            .ok_or("TLS handshake failed: no peer certificate")?;
        let der = cert.to_der().map_err(|e| e.to_string())?;
        let id =
            tls::peer_identity_from_cert(&der, SystemTime::now()).map_err(|e| e.to_string())?;
        self.peer = Some(id);
        Ok(())
    }

    fn end_by_peer(&mut self, why: &str) -> bool {
        self.end(why.to_string())
    }

    /// Records why the connection ended and shuts the socket. Returns true (a state change).
    fn end(&mut self, why: String) -> bool {
        log::debug!(
            "transport: tcp connection with {} ended: {why}",
            self.remote
        );
        self.ended = Some(why);
        let _ = self.tls.get_ref().shutdown(Shutdown::Both);
        true
    }
}

/// Whether a TLS call is only waiting for the socket.
fn wants_io(code: ErrorCode) -> bool {
    code == ErrorCode::WANT_READ || code == ErrorCode::WANT_WRITE
}

impl QuicConn for TcpConn {
    fn is_established(&self) -> bool {
        self.established
    }

    fn is_closed(&self) -> bool {
        self.ended.is_some()
    }

    fn peer_identity(&self) -> Result<NodeIdentity, String> {
        self.peer.ok_or_else(|| "no certificate".to_string())
    }

    fn readable(&mut self) -> Vec<u64> {
        self.mux.readable()
    }

    fn stream_recv(&mut self, sid: u64, buf: &mut [u8]) -> Result<(usize, bool), RecvError> {
        match self.mux.stream_recv(sid, buf) {
            Ok(r) => Ok(r),
            Err(MuxRecvError::Done) => Err(RecvError::Done),
            Err(MuxRecvError::Unknown) => Err(RecvError::Failed("unknown stream".into())),
        }
    }

    fn stream_send(&mut self, sid: u64, data: &[u8], fin: bool) -> Result<usize, SendError> {
        match self.mux.stream_send(sid, data, fin) {
            Ok(n) => Ok(n),
            Err(MuxSendError::Blocked) => Err(SendError::Blocked),
            Err(MuxSendError::Stopped(code)) => Err(SendError::Stopped(code)),
            Err(MuxSendError::Failed(why)) => Err(SendError::Failed(why.into())),
        }
    }

    fn stream_stop(&mut self, sid: u64, code: u64) {
        self.mux.stream_stop(sid, code);
    }

    fn dgram_max_writable_len(&self) -> Option<usize> {
        self.mux.dgram_max_writable_len()
    }

    fn dgram_send(&mut self, data: &[u8]) -> bool {
        self.mux.dgram_send(data)
    }

    fn dgram_recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.mux.dgram_recv(buf)
    }

    fn peer_streams_left_uni(&self) -> u64 {
        self.mux.peer_streams_left_uni()
    }

    fn close(&mut self, code: u64, reason: &str) {
        if !self.established {
            // Nothing to tell a peer that has not finished TLS.
            self.end(format!("closed before the handshake: {reason}"));
            return;
        }
        self.mux.close(code, reason);
    }

    fn send_ack_eliciting(&mut self) {
        self.mux.ping(Instant::now());
    }

    fn acked_bytes(&self) -> u64 {
        self.mux.acked_bytes()
    }

    fn close_description(&self) -> String {
        self.ended.clone().unwrap_or_else(|| "open".to_string())
    }

    fn identity_mismatch(&self) -> bool {
        self.mismatch.load(Ordering::Relaxed)
    }
}
