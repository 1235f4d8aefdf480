//! A raw quiche transfer over loopback: the baseline the benchmarks compare the Transport's
//! throughput with. It shares the Transport's socket setup, UDP path and TLS configuration.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::Events;

use super::driver::{Bound, CID_LEN, RECV_BUF};
use super::tls::{self, QuicParams, TlsIdentity};
use super::udp;
use crate::identity::Keypair;

/// A raw quiche transfer over loopback, as a baseline for the Transport's own throughput: the
/// same socket setup, UDP path (segmentation offload included) and TLS configuration as the
/// Transport, one stream, `bytes` bytes, no framing, messages, signatures or Router. Returns the
/// bytes moved and the time from the first byte written to the last byte read.
pub fn raw_bulk_transfer(bytes: usize) -> Result<(usize, Duration), String> {
    let server_key = Keypair::generate();
    let client_key = Keypair::generate();
    let params = QuicParams::default();
    let server_tls = TlsIdentity::new(&server_key).map_err(|e| e.to_string())?;
    let client_tls = TlsIdentity::new(&client_key).map_err(|e| e.to_string())?;
    let mut server_cfg = tls::server_config(&server_tls, &params).map_err(|e| e.to_string())?;
    let mut client_cfg = tls::client_config(&client_tls, server_key.node_identity(), &params)
        .map_err(|e| e.to_string())?;
    let any: SocketAddr = "127.0.0.1:0".parse().expect("valid");
    let server = Bound::bind(&[any], &[]).map_err(|e| e.to_string())?;
    let client = Bound::bind(&[any], &[]).map_err(|e| e.to_string())?;
    let server_addr = server.sockets[0].local;
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Instant>(1);

    let server_thread = std::thread::Builder::new()
        .name("nm-raw-server".into())
        .spawn(move || -> Result<(), String> {
            let mut bound = server;
            let mut events = Events::with_capacity(64);
            let mut buf = vec![0u8; RECV_BUF];
            let mut out = vec![0u8; RECV_BUF];
            let mut stream_buf = vec![0u8; RECV_BUF];
            let mut conn: Option<quiche::Connection> = None;
            let mut received = 0usize;
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                let timeout = conn
                    .as_ref()
                    .and_then(|c| c.timeout())
                    .unwrap_or(Duration::from_millis(50));
                bound
                    .poll
                    .poll(&mut events, Some(timeout))
                    .map_err(|e| e.to_string())?;
                let sock = &mut bound.sockets[0];
                let local = sock.local;
                udp::recv_each(&sock.udp, &sock.offload, &mut buf, |packet, from| {
                    if conn.is_none() {
                        let scid = [7u8; CID_LEN];
                        conn = quiche::accept(
                            &quiche::ConnectionId::from_ref(&scid),
                            None,
                            local,
                            from,
                            &mut server_cfg,
                        )
                        .ok();
                    }
                    if let Some(c) = conn.as_mut() {
                        let _ = c.recv(packet, quiche::RecvInfo { from, to: local });
                    }
                })
                .map_err(|e| e.to_string())?;
                let Some(c) = conn.as_mut() else { continue };
                c.on_timeout();
                let readable: Vec<u64> = c.readable().collect();
                for sid in readable {
                    while let Ok((n, _)) = c.stream_recv(sid, &mut stream_buf) {
                        received += n;
                    }
                }
                if received >= bytes {
                    let _ = done_tx.send(Instant::now());
                    let _ = udp::flush(c, &sock.udp, &mut sock.offload, &mut out);
                    return Ok(());
                }
                let _ = udp::flush(c, &sock.udp, &mut sock.offload, &mut out);
            }
            Err("raw transfer: server timed out".into())
        })
        .map_err(|e| e.to_string())?;

    let mut bound = client;
    let local = bound.sockets[0].local;
    let scid = [9u8; CID_LEN];
    let mut c = quiche::connect(
        None,
        &quiche::ConnectionId::from_ref(&scid),
        local,
        server_addr,
        &mut client_cfg,
    )
    .map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; RECV_BUF];
    let mut out = vec![0u8; RECV_BUF];
    let chunk = vec![0x5au8; 64 << 10];
    let mut sent = 0usize;
    let mut started: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = loop {
        if Instant::now() > deadline {
            return Err("raw transfer: client timed out".into());
        }
        if let Ok(t) = done_rx.try_recv() {
            break t;
        }
        {
            let sock = &mut bound.sockets[0];
            udp::flush(&mut c, &sock.udp, &mut sock.offload, &mut out)
                .map_err(|e| e.to_string())?;
        }
        let timeout = c
            .timeout()
            .unwrap_or(Duration::from_millis(5))
            .min(Duration::from_millis(5));
        bound
            .poll
            .poll(&mut events, Some(timeout))
            .map_err(|e| e.to_string())?;
        let sock = &mut bound.sockets[0];
        udp::recv_each(&sock.udp, &sock.offload, &mut buf, |packet, from| {
            let _ = c.recv(packet, quiche::RecvInfo { from, to: local });
        })
        .map_err(|e| e.to_string())?;
        c.on_timeout();
        if c.is_closed() {
            return Err(format!(
                "raw transfer: connection closed: {:?}",
                c.peer_error()
            ));
        }
        if c.is_established() {
            started.get_or_insert_with(Instant::now);
            while sent < bytes {
                let n = (bytes - sent).min(chunk.len());
                match c.stream_send(2, &chunk[..n], sent + n == bytes) {
                    Ok(0) | Err(quiche::Error::Done) => break,
                    Ok(w) => sent += w,
                    Err(e) => return Err(format!("raw transfer: {e}")),
                }
            }
        }
    };
    server_thread
        .join()
        .map_err(|_| "raw transfer: server panicked".to_string())??;
    let start = started.ok_or("raw transfer: never established")?;
    Ok((bytes, finished.saturating_duration_since(start)))
}
