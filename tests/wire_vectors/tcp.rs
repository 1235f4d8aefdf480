//! The vectors of TLS over TCP (docs/wire.md §6.1, §6.1.1, §16.18): the ALPN, a `Tcp` address,
//! and one record of each type, as the record layer ([`Mux`]) writes them and as the document's
//! rules build them by hand.

use std::time::Instant;

use netmachine::transport::tcp_mux::{Mux, MuxLimits, TCP_ALPN};

use super::*;

/// A record built from the document: its type, then its fields.
fn record(type_name: &str, tag: u8) -> Layout {
    Layout::default().field(format!("type (u8 {tag:#04x}, {type_name})"), [tag])
}

/// Every record vector: (name, what the record layer wrote, the reference layout).
fn tcp_records() -> Vec<(&'static str, Vec<u8>, Layout)> {
    let now = Instant::now();
    let mut out = Vec::new();
    let take = |mux: &mut Mux| {
        let bytes = mux.pending_output().to_vec();
        mux.handle_written(bytes.len());
        bytes
    };

    // The dialler's control stream (2) carrying the 5-byte header of an empty frame.
    let mut dialler = Mux::new(true, MuxLimits::default());
    let data = [0, 0, 0, 0, 0x01];
    assert_eq!(dialler.stream_send(2, &data, false), Ok(data.len()));
    let stream = take(&mut dialler);
    out.push((
        "tcp-record-stream",
        stream.clone(),
        record("STREAM", 0x01)
            .field("sid (u64 BE, 2)", 2u64.to_be_bytes())
            .field("fin (u8 0)", [0])
            .field("len (u32 BE)", 5u32.to_be_bytes())
            .field("data", data),
    ));

    // The listener stops that stream with code 6 (FRAME_TOO_LARGE); the dialler ends it with
    // an empty `fin` record; the listener, the stream done, raises the credit (a credit of 4
    // streams here, so that one stream raises it).
    let mut listener = Mux::new(
        false,
        MuxLimits {
            max_streams: 4,
            ..MuxLimits::default()
        },
    );
    listener.handle_input(now, &stream).unwrap();
    listener.stream_stop(2, 6);
    let stop = take(&mut listener);
    out.push((
        "tcp-record-stop",
        stop.clone(),
        record("STOP", 0x02)
            .field("sid (u64 BE, 2)", 2u64.to_be_bytes())
            .field("code (u64 BE, 6)", 6u64.to_be_bytes()),
    ));
    dialler.handle_input(now, &stop).unwrap();
    let end = take(&mut dialler);
    out.push((
        "tcp-record-stream-end",
        end.clone(),
        record("STREAM", 0x01)
            .field("sid (u64 BE, 2)", 2u64.to_be_bytes())
            .field("fin (u8 1)", [1])
            .field("len (u32 BE, 0)", 0u32.to_be_bytes()),
    ));
    listener.handle_input(now, &end).unwrap();
    out.push((
        "tcp-record-max-streams",
        take(&mut listener),
        record("MAX_STREAMS", 0x07).field("max (u64 BE, 1 + 4)", 5u64.to_be_bytes()),
    ));

    let dgram = [0x10, 0xde, 0xad];
    assert!(dialler.dgram_send(&dgram));
    out.push((
        "tcp-record-datagram",
        take(&mut dialler),
        record("DATAGRAM", 0x03)
            .field("len (u32 BE)", 3u32.to_be_bytes())
            .field("datagram (type 0x10, 2 stand-in bytes)", dgram),
    ));

    dialler.ping(now);
    let ping = take(&mut dialler);
    out.push((
        "tcp-record-ping",
        ping.clone(),
        record("PING", 0x04).field("seq (u64 BE, 0)", 0u64.to_be_bytes()),
    ));
    let mut answering = Mux::new(false, MuxLimits::default());
    answering.handle_input(now, &ping).unwrap();
    out.push((
        "tcp-record-pong",
        take(&mut answering),
        record("PONG", 0x05).field("seq (u64 BE, 0)", 0u64.to_be_bytes()),
    ));

    dialler.close(4, "duplicate");
    out.push((
        "tcp-record-close",
        take(&mut dialler),
        record("CLOSE", 0x06)
            .field("code (u64 BE, 4 DUPLICATE)", 4u64.to_be_bytes())
            .field("len (u16 BE)", 9u16.to_be_bytes())
            .field("reason", b"duplicate"),
    ));
    out
}

fn tcp_address() -> (TransportAddress, Layout) {
    let addr = TransportAddress::tcp("192.0.2.1:7001".parse().unwrap());
    (addr, ref_transport_address(&addr))
}

#[test]
fn tcp_vectors() {
    assert_vector("alpn-tcp", TCP_ALPN);
    assert_vector("alpn-tcp", b"netmachine-tcp/1");
    let (addr, layout) = tcp_address();
    assert_vector("enc-transport-address-tcp", &encode_to_vec(&addr));
    assert_vector("enc-transport-address-tcp", &layout.bytes());
    assert_eq!(
        decode_exact::<TransportAddress>(&hex("enc-transport-address-tcp")).unwrap(),
        addr
    );
    assert_eq!(addr.to_string(), "tcp://192.0.2.1:7001");
    for (name, written, layout) in tcp_records() {
        assert_vector(name, &written);
        assert_vector(name, &layout.bytes());
    }
    // The documented records, fed to a fresh listener, are what they say.
    let mut listener = Mux::new(false, MuxLimits::default());
    listener
        .handle_input(Instant::now(), &hex("tcp-record-stream"))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(listener.stream_recv(2, &mut buf), Ok((5, false)));
    listener
        .handle_input(Instant::now(), &hex("tcp-record-stream-end"))
        .unwrap();
    assert_eq!(listener.stream_recv(2, &mut buf), Ok((0, true)));
    listener
        .handle_input(Instant::now(), &hex("tcp-record-datagram"))
        .unwrap();
    assert_eq!(listener.dgram_recv(&mut buf), Some(3));
    listener
        .handle_input(Instant::now(), &hex("tcp-record-close"))
        .unwrap();
    assert!(listener.ending().is_some());
}

pub(super) fn print_tcp_vectors() {
    println!("### 16.18 TLS over TCP\n");
    println!("The ALPN of TLS over TCP (§6.1.1), `netmachine-tcp/1`:\n");
    print_hex_vector("alpn-tcp", TCP_ALPN);
    println!("`TransportAddress::Tcp` for `tcp://192.0.2.1:7001` (§6.1):\n");
    let (_, layout) = tcp_address();
    print_layout_vector("enc-transport-address-tcp", &layout, true);
    para(
        "Records (§6.1.1), one of each type, in the order a connection could carry them: 5 \
         bytes on the dialler's stream 2; the listener's STOP of that stream with code 6; the \
         dialler's empty `fin` record ending it; the MAX_STREAMS the listener then sends (with \
         a credit of 4 streams); a datagram; a PING and its PONG; a CLOSE with code 4 \
         (`DUPLICATE`):",
    );
    for (name, _, layout) in tcp_records() {
        print_layout_vector(name, &layout, true);
    }
}
