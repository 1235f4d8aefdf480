//! Tests of the TLS-over-TCP record layer: two [`Mux`]es wired back to back.

use std::time::{Duration, Instant};

use super::*;

fn pair(limits: MuxLimits) -> (Mux, Mux) {
    (Mux::new(true, limits), Mux::new(false, limits))
}

/// Moves everything `from` has to send into `to`, `chunk` bytes at a time.
fn pump(from: &mut Mux, to: &mut Mux, now: Instant, chunk: usize) -> Result<(), MuxError> {
    let bytes = from.pending_output().to_vec();
    from.handle_written(bytes.len());
    for piece in bytes.chunks(chunk.max(1)) {
        to.handle_input(now, piece)?;
    }
    Ok(())
}

fn read_all(m: &mut Mux, sid: u64) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        match m.stream_recv(sid, &mut buf) {
            Ok((n, fin)) => {
                out.extend_from_slice(&buf[..n]);
                if fin {
                    return (out, true);
                }
            }
            Err(_) => return (out, false),
        }
    }
}

#[test]
fn streams_carry_data_and_their_end_even_fed_byte_by_byte() {
    let now = Instant::now();
    let (mut c, mut s) = pair(MuxLimits::default());
    let big: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
    assert_eq!(c.stream_send(2, &big, true), Ok(big.len()));
    assert_eq!(c.stream_send(6, b"second", false), Ok(6));
    pump(&mut c, &mut s, now, 1).unwrap();
    assert_eq!(s.readable(), vec![2, 6]);
    assert_eq!(read_all(&mut s, 2), (big, true));
    assert_eq!(read_all(&mut s, 6), (b"second".to_vec(), false));
    // An ended stream is gone.
    assert_eq!(s.stream_recv(2, &mut [0; 4]), Err(MuxRecvError::Unknown));
    assert_eq!(s.readable(), Vec::<u64>::new());
    // And the server answers on its own streams.
    assert_eq!(s.stream_send(3, b"back", true), Ok(4));
    pump(&mut s, &mut c, now, 7).unwrap();
    assert_eq!(read_all(&mut c, 3), (b"back".to_vec(), true));
}

#[test]
fn stream_credit_is_used_and_raised_as_streams_are_read() {
    let now = Instant::now();
    let limits = MuxLimits {
        max_streams: 4,
        ..MuxLimits::default()
    };
    let (mut c, mut s) = pair(limits);
    for i in 0..4 {
        assert_eq!(c.stream_send(2 + 4 * i, b"x", true), Ok(1));
    }
    assert_eq!(c.peer_streams_left_uni(), 0);
    assert_eq!(c.stream_send(18, b"x", true), Err(MuxSendError::Blocked));
    pump(&mut c, &mut s, now, 100).unwrap();
    for i in 0..4 {
        assert_eq!(read_all(&mut s, 2 + 4 * i), (b"x".to_vec(), true));
    }
    pump(&mut s, &mut c, now, 100).unwrap();
    assert_eq!(c.peer_streams_left_uni(), 4);
    assert_eq!(c.stream_send(18, b"x", true), Ok(1));
}

#[test]
fn a_peer_over_its_stream_credit_or_off_its_numbering_is_a_violation() {
    let now = Instant::now();
    let limits = MuxLimits {
        max_streams: 2,
        ..MuxLimits::default()
    };
    // Forged records: the client opens three streams against a credit of two.
    let mut forged = Mux::new(true, MuxLimits::default());
    for sid in [2, 6, 10] {
        forged.stream_send(sid, b"x", false).unwrap();
    }
    let mut s = Mux::new(false, limits);
    assert_eq!(
        pump(&mut forged, &mut s, now, 1000),
        Err(MuxError::StreamLimit(10))
    );
    assert!(matches!(s.ending(), Some(Ending::Violation(_))));
    assert!(!s.wants_input());

    // The server's numbering used by the client.
    let mut wrong = Mux::new(false, MuxLimits::default());
    wrong.stream_send(3, b"x", false).unwrap();
    let mut s = Mux::new(true, MuxLimits::default());
    // A client receiving stream 3 is fine (the server's); a server receiving 3 is not.
    pump(&mut wrong, &mut s, now, 1000).unwrap();
    let mut wrong = Mux::new(false, MuxLimits::default());
    wrong.stream_send(3, b"x", false).unwrap();
    let mut server = Mux::new(false, MuxLimits::default());
    assert_eq!(
        pump(&mut wrong, &mut server, now, 1000),
        Err(MuxError::BadStream(3))
    );
}

#[test]
fn malformed_records_end_the_connection_with_a_reason() {
    let now = Instant::now();
    let cases: Vec<(Vec<u8>, MuxError)> = vec![
        (vec![0x7f], MuxError::UnknownRecord(0x7f)),
        (
            [
                &[record::STREAM][..],
                &2u64.to_be_bytes(),
                &[2],
                &0u32.to_be_bytes(),
            ]
            .concat(),
            MuxError::BadFin(2),
        ),
        (
            [
                &[record::STREAM][..],
                &2u64.to_be_bytes(),
                &[0],
                &(1u32 << 20).to_be_bytes(),
            ]
            .concat(),
            MuxError::TooLong("stream record", 1 << 20),
        ),
        (
            [&[record::DATAGRAM][..], &5000u32.to_be_bytes()].concat(),
            MuxError::TooLong("datagram", 5000),
        ),
        (
            [
                &[record::CLOSE][..],
                &0u64.to_be_bytes(),
                &2u16.to_be_bytes(),
                &[0xff, 0xfe],
            ]
            .concat(),
            MuxError::BadReason,
        ),
        (
            [&[record::MAX_STREAMS][..], &1u64.to_be_bytes()].concat(),
            MuxError::CreditLowered(1),
        ),
    ];
    for (bytes, want) in cases {
        let mut s = Mux::new(false, MuxLimits::default());
        assert_eq!(s.handle_input(now, &bytes), Err(want.clone()), "{bytes:?}");
        assert_eq!(s.ending(), Some(&Ending::Violation(want)));
        // Nothing more is taken or sent after it.
        assert_eq!(s.handle_input(now, &[record::PING]), Ok(()));
        assert_eq!(
            s.stream_send(3, b"x", false),
            Err(MuxSendError::Failed("connection closed"))
        );
    }
    // A record reused after its stream ended.
    let mut c = Mux::new(true, MuxLimits::default());
    let mut s = Mux::new(false, MuxLimits::default());
    c.stream_send(2, b"a", true).unwrap();
    pump(&mut c, &mut s, now, 100).unwrap();
    let again = [
        &[record::STREAM][..],
        &2u64.to_be_bytes(),
        &[0],
        &1u32.to_be_bytes(),
        b"b",
    ]
    .concat();
    assert_eq!(s.handle_input(now, &again), Err(MuxError::BadStream(2)));
}

#[test]
fn a_stopped_stream_is_ended_by_its_sender_and_refuses_more() {
    let now = Instant::now();
    let (mut c, mut s) = pair(MuxLimits::default());
    c.stream_send(2, b"unwanted", false).unwrap();
    pump(&mut c, &mut s, now, 100).unwrap();
    s.stream_stop(2, 7);
    assert_eq!(s.readable(), Vec::<u64>::new());
    pump(&mut s, &mut c, now, 100).unwrap();
    assert_eq!(
        c.stream_send(2, b"more", false),
        Err(MuxSendError::Stopped(7))
    );
    // The sender's empty end frees the stream at the receiver, and the credit comes back.
    pump(&mut c, &mut s, now, 100).unwrap();
    assert_eq!(s.peer_done, 1);
}

#[test]
fn datagrams_pings_and_close() {
    let t0 = Instant::now();
    let (mut c, mut s) = pair(MuxLimits::default());
    assert_eq!(c.dgram_max_writable_len(), Some(MAX_DATAGRAM));
    assert!(c.dgram_send(b"dg"));
    assert!(!c.dgram_send(&[0; MAX_DATAGRAM + 1]));
    c.stream_send(2, &[1; 300], false).unwrap();
    c.ping(t0);
    let before = c.pending_output().len() as u64;
    pump(&mut c, &mut s, t0, 50).unwrap();
    let mut buf = [0u8; 10];
    assert_eq!(s.dgram_recv(&mut buf), Some(2));
    assert_eq!(&buf[..2], b"dg");
    assert_eq!(s.dgram_recv(&mut buf), None);
    assert_eq!(c.acked_bytes(), 0);
    pump(&mut s, &mut c, t0 + Duration::from_millis(30), 50).unwrap();
    assert_eq!(c.acked_bytes(), before);
    assert_eq!(c.rtt(), Some(Duration::from_millis(30)));

    let long = "é".repeat(MAX_CLOSE_REASON);
    c.close(42, &long);
    assert!(matches!(c.ending(), Some(Ending::Local(42, r)) if r.len() <= MAX_CLOSE_REASON));
    pump(&mut c, &mut s, t0, 3).unwrap();
    match s.ending() {
        Some(Ending::Peer(42, r)) => assert!(r.starts_with('é') && r.len() <= MAX_CLOSE_REASON),
        other => panic!("{other:?}"),
    }
    assert!(!s.dgram_send(b"late"));
}

#[test]
fn unread_and_unsent_bytes_are_bounded() {
    let now = Instant::now();
    let limits = MuxLimits {
        max_unread_bytes: 1000,
        max_unsent_bytes: 40_000,
        max_streams: 16,
    };
    let (mut c, mut s) = pair(limits);
    // Sending stops at the unsent limit (plus at most one record).
    let data = vec![9u8; 100_000];
    let taken = c.stream_send(2, &data, true).unwrap();
    assert!(
        (40_000 - MAX_RECORD_DATA..=40_000).contains(&taken),
        "{taken}"
    );
    assert_eq!(
        c.stream_send(2, &data[taken..], true),
        Err(MuxSendError::Blocked)
    );
    pump(&mut c, &mut s, now, 4096).unwrap();
    // The receiver asks for no more input while its unread bytes are over the limit.
    assert!(!s.wants_input());
    let mut buf = vec![0u8; taken];
    assert_eq!(s.stream_recv(2, &mut buf), Ok((taken, false)));
    assert!(s.wants_input());
    // Written output frees room for the rest.
    assert_eq!(c.stream_send(2, &data[taken..taken + 10], false), Ok(10));
}
