//! The TCP fallback settings: `listen_tcp` and `[transport] transports` / `connect_timeout_ms`,
//! read, carried into the advert, and refused with the key named when wrong.

use std::time::Duration;

use super::tests::{load_err, minimal, setup};
use super::Settings;
use crate::wire::{TransportAddress, TransportKind};

/// `minimal(line)` with `listen_tcp = <list>` at the top level.
fn with_tcp(line: &str, list: &str) -> String {
    minimal(line).replacen(
        "listen = [\"127.0.0.1:7001\"]\n",
        &format!("listen = [\"127.0.0.1:7001\"]\nlisten_tcp = {list}\n"),
        1,
    )
}

#[test]
fn tcp_listen_addresses_are_read_and_advertised_after_quic() {
    let (dir, _key, _other, line) = setup("tcp-listen");
    let text = with_tcp(&line, "[\"127.0.0.1:7001\", \"[::1]:7002\"]");
    let s = Settings::load(&dir.write("n.toml", &text)).unwrap();
    let tcp = vec![
        "127.0.0.1:7001".parse().unwrap(),
        "[::1]:7002".parse().unwrap(),
    ];
    assert_eq!(s.listen_tcp, tcp);
    assert_eq!(s.transport.listen_tcp, tcp);
    let advert = s.advert();
    let addrs: Vec<TransportAddress> = advert.addrs.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        addrs,
        vec![
            TransportAddress::quic(s.listen[0]),
            TransportAddress::tcp(tcp[0]),
            TransportAddress::tcp(tcp[1]),
        ]
    );
    assert!(advert.addrs[0].1 > advert.addrs[1].1, "QUIC weighs more");
    // Without the key: no TCP listener, QUIC and then TCP dialled, a 5 s connect timeout.
    let s = Settings::load(&dir.write("m.toml", &minimal(&line))).unwrap();
    assert!(s.listen_tcp.is_empty() && s.advert().addrs.len() == 1);
    assert_eq!(
        s.transport.transports,
        vec![TransportKind::Quic, TransportKind::Tcp]
    );
    assert_eq!(s.transport.connect_timeout, Duration::from_secs(5));
}

#[test]
fn bad_tcp_listen_addresses_name_the_key() {
    let (dir, _key, _other, line) = setup("tcp-listen-bad");
    let text = with_tcp(&line, "[\"127.0.0.1:7001\", \"nowhere:1\"]");
    let e = load_err(&dir.write("a.toml", &text));
    assert!(
        e.contains("listen_tcp[1]") && e.contains("nowhere:1"),
        "{e}"
    );
    let text = with_tcp(&line, "[\"127.0.0.1:7001\", \"127.0.0.1:7001\"]");
    let e = load_err(&dir.write("b.toml", &text));
    assert!(e.contains("listen_tcp[1]") && e.contains("twice"), "{e}");
}

#[test]
fn the_dialled_transports_and_connect_timeout_are_read_and_checked() {
    let (dir, _key, _other, line) = setup("tcp-kinds");
    let text = format!(
        "{}\n[transport]\ntransports = [\"tcp\", \"quic\"]\nconnect_timeout_ms = 1500\n",
        minimal(&line)
    );
    let s = Settings::load(&dir.write("t.toml", &text)).unwrap();
    assert_eq!(
        s.transport.transports,
        vec![TransportKind::Tcp, TransportKind::Quic]
    );
    assert_eq!(s.transport.connect_timeout, Duration::from_millis(1500));
    let text = format!("{}\n[transport]\ntransports = [\"quic\"]\n", minimal(&line));
    let s = Settings::load(&dir.write("q.toml", &text)).unwrap();
    assert_eq!(s.transport.transports, vec![TransportKind::Quic]);
    for (table, needle) in [
        ("transports = []", "empty"),
        ("transports = [\"quic\", \"quic\"]", "twice"),
        ("transports = [\"udp\"]", "udp"),
        ("connect_timeout_ms = 0", "transport.connect_timeout_ms"),
    ] {
        let text = format!("{}\n[transport]\n{table}\n", minimal(&line));
        let e = load_err(&dir.write("bad.toml", &text));
        assert!(e.contains(needle), "{table}: {e}");
    }
}
