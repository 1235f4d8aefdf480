//! The `tcp_records` target's hand-made seeds and what each must end as (docs/wire.md §6.1.1):
//! valid records whole and byte by byte, and what a hostile peer sends — unknown records,
//! lengths over their limits, bad `fin` bytes, streams of the wrong side or over the credit, a
//! lowered credit, a close reason that is not UTF-8, a record cut short.

use std::time::Instant;

use netmachine::transport::tcp_mux::{Ending, Mux, MuxLimits};

fn stream(sid: u64, fin: u8, data: &[u8]) -> Vec<u8> {
    let mut r = vec![0x01];
    r.extend_from_slice(&sid.to_be_bytes());
    r.push(fin);
    r.extend_from_slice(&(data.len() as u32).to_be_bytes());
    r.extend_from_slice(data);
    r
}

fn u64_record(kind: u8, v: u64) -> Vec<u8> {
    let mut r = vec![kind];
    r.extend_from_slice(&v.to_be_bytes());
    r
}

fn datagram(data: &[u8]) -> Vec<u8> {
    let mut r = vec![0x03];
    r.extend_from_slice(&(data.len() as u32).to_be_bytes());
    r.extend_from_slice(data);
    r
}

fn close(code: u64, reason: &[u8]) -> Vec<u8> {
    let mut r = u64_record(0x06, code);
    r.extend_from_slice(&(reason.len() as u16).to_be_bytes());
    r.extend_from_slice(reason);
    r
}

/// A seed: the piece size byte, then the records.
fn seed(piece: u8, records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![piece];
    for r in records {
        out.extend_from_slice(r);
    }
    out
}

/// The seeds, `(name, bytes)`; names starting with `valid-` are well-formed.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let traffic = [
        stream(2, 0, &[0, 0, 0, 0, 0x01]),
        datagram(&[0x10, 1, 2, 3]),
        u64_record(0x04, 7),
        stream(6, 1, b"one stream, ended"),
        stream(2, 1, &[]),
        u64_record(0x07, 2000),
    ];
    let mut with_close = traffic.to_vec();
    with_close.push(close(4, b"duplicate"));
    let over_credit: Vec<Vec<u8>> = (0..9).map(|i| stream(2 + 4 * i, 0, b"x")).collect();
    vec![
        ("valid-records-whole", seed(255, &with_close)),
        ("valid-records-byte-by-byte", seed(0, &traffic)),
        ("unknown-record", seed(255, &[vec![0x09, 0, 0]])),
        (
            "stream-record-too-long",
            seed(255, &[stream(2, 0, &vec![0; 16 * 1024 + 1])]),
        ),
        ("bad-fin", seed(255, &[stream(2, 2, b"x")])),
        ("stream-of-the-wrong-side", seed(255, &[stream(3, 0, b"x")])),
        (
            "stream-reused-after-its-end",
            seed(255, &[stream(2, 1, b"x"), stream(2, 0, b"y")]),
        ),
        ("streams-over-the-credit", seed(16, &over_credit)),
        ("datagram-too-long", seed(255, &[datagram(&[0x10; 1301])])),
        ("credit-lowered", seed(255, &[u64_record(0x07, 1)])),
        (
            "close-reason-not-utf8",
            seed(255, &[close(1, &[0xff, 0xfe])]),
        ),
        (
            "record-cut-short",
            seed(3, &[stream(2, 0, b"cut")[..9].to_vec()]),
        ),
    ]
}

/// How a listener's record layer with the target's limits ends on `data`.
pub fn outcome(data: &[u8]) -> String {
    let Some((&piece, rest)) = data.split_first() else {
        return "open".to_string();
    };
    let mut mux = Mux::new(
        false,
        MuxLimits {
            max_unread_bytes: 64 * 1024,
            max_unsent_bytes: 64 * 1024,
            max_streams: 8,
        },
    );
    let mut buf = [0u8; 1000];
    for chunk in rest.chunks(piece as usize + 1) {
        if mux.handle_input(Instant::now(), chunk).is_err() {
            break;
        }
        for sid in mux.readable() {
            while let Ok((n, fin)) = mux.stream_recv(sid, &mut buf) {
                if fin || n == 0 {
                    break;
                }
            }
        }
    }
    match mux.ending() {
        None => "open".to_string(),
        Some(Ending::Peer(code, reason)) => format!("closed by the peer: {code} {reason}"),
        Some(Ending::Local(code, _)) => format!("closed: {code}"),
        Some(Ending::Violation(e)) => format!("violation: {e}"),
    }
}

/// A part of [`outcome`] the seed called `name` must produce.
pub fn expected(name: &str) -> &'static str {
    match name {
        "valid-records-whole" => "closed by the peer: 4 duplicate",
        "valid-records-byte-by-byte" | "record-cut-short" => "open",
        "unknown-record" => "unknown record type 0x09",
        "stream-record-too-long" | "datagram-too-long" => "over its limit",
        "bad-fin" => "fin byte 2",
        "stream-of-the-wrong-side" | "stream-reused-after-its-end" => "not the peer's to open",
        "streams-over-the-credit" => "over the stream credit",
        "credit-lowered" => "lowers the credit",
        "close-reason-not-utf8" => "not UTF-8",
        other => panic!("tcp_records: seed {other} has no expected outcome"),
    }
}
