//! Tests of [`Settings::load`]: a minimal and a complete file, the documented defaults against the
//! code, and every refusal naming its key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::identity::Keypair;
use crate::node::NodeLimits;
use crate::transport::TransportConfig;
use crate::wire::advert::{AdvertError, MAX_NAME_BYTES};
use crate::wire::{NodeAdvert, Ordering, Reliability};

use super::*;
use crate::transport::TransportLimits;

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "netmachine-config-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A temp dir with `node.key` written, and the advert line of another node.
fn setup(tag: &str) -> (TempDir, Keypair, Keypair, String) {
    let dir = TempDir::new(tag);
    let key = Keypair::generate();
    key.write_file(&dir.0.join("node.key")).unwrap();
    let other = Keypair::generate();
    let line = NodeAdvert::for_listen(&other, &["127.0.0.1:7002".parse().unwrap()], None).to_line();
    (dir, key, other, line)
}

fn minimal(line: &str) -> String {
    format!(
        "key_file = \"node.key\"\nlisten = [\"127.0.0.1:7001\"]\n\n\
         [[peers]]\nadvert = \"{line}\"\n"
    )
}

fn load_err(path: &Path) -> String {
    Settings::load(path).unwrap_err().to_string()
}

#[test]
fn minimal_file_works() {
    let (dir, key, other, line) = setup("minimal");
    let path = dir.write("node.toml", &minimal(&line));
    let s = Settings::load(&path).unwrap();
    assert_eq!(s.key.node_identity(), key.node_identity());
    assert_eq!(s.listen, vec!["127.0.0.1:7001".parse().unwrap()]);
    assert_eq!(s.transport.listen, s.listen);
    assert_eq!(s.name, None);
    assert_eq!(s.peers.len(), 1);
    assert_eq!(s.peers[0].0.id, other.node_identity());
    assert!(!s.peers[0].1);
    assert!(s.peer(other.node_identity()).is_some());
    assert!(s.transport.accept_unknown_peers);
    assert_eq!(s.transport.limits, TransportLimits::default());
    assert_eq!(
        s.transport.idle_timeout,
        TransportConfig::default().idle_timeout
    );
    assert_eq!(s.limits.mailbox_depth, NodeLimits::default().mailbox_depth);
    let advert = s.advert();
    assert_eq!(advert.id, key.node_identity());
    let back = NodeAdvert::from_line(&advert.to_line()).unwrap();
    assert_eq!(back.addrs[0].0.socket_addr(), s.listen[0]);
    // The builder accepts what the settings hold.
    let _ = s.node_builder();
}

#[test]
fn every_key_is_applied() {
    let (dir, _key, other, line) = setup("full");
    let text = format!(
        r#"key_file = "node.key"
listen = ["127.0.0.1:7001", "[::1]:7001"]
name = "alpha"
accept_unknown_peers = false

[[peers]]
advert = "{line}"
permanent = true

[transport]
idle_timeout_ms = 3000
backoff_initial_ms = 50
backoff_max_ms = 2000
default_ordering = "unordered"
default_reliability = "unreliable"

[limits]
max_frame_bytes = 1000
max_partial_frame_bytes = 1500
max_connections = 2
max_connections_per_ip = 3
max_peer_queue_bytes = 4000
max_pair_streams = 5
transport_mailbox_depth = 6
mailbox_depth = 7
router_mailbox_depth = 8
identity_records = 9
max_message_lifetime_s = 10

[performance]
verifier_threads = 3
spin_before_park_us = 7
"#
    );
    let s = Settings::load(&dir.write("full.toml", &text)).unwrap();
    assert_eq!(s.listen.len(), 2);
    assert_eq!(s.name.as_deref(), Some("alpha"));
    assert_eq!(s.peers[0].0.id, other.node_identity());
    assert!(s.peers[0].1);
    let t = &s.transport;
    assert!(!t.accept_unknown_peers);
    assert_eq!(t.idle_timeout, Duration::from_millis(3000));
    assert_eq!(t.backoff_initial, Duration::from_millis(50));
    assert_eq!(t.backoff_max, Duration::from_millis(2000));
    assert_eq!(t.default_tprefs.ordering, Ordering::Unordered);
    assert_eq!(t.default_tprefs.reliability, Reliability::Unreliable);
    assert_eq!(
        t.limits,
        TransportLimits {
            max_frame_bytes: 1000,
            max_partial_frame_bytes: 1500,
            max_connections: 2,
            max_connections_per_ip: 3,
            max_peer_queue_bytes: 4000,
            max_pair_streams: 5,
            mailbox_depth: 6,
        }
    );
    assert_eq!(s.limits.mailbox_depth, 7);
    assert_eq!(s.limits.router_mailbox_depth, 8);
    assert_eq!(s.limits.identity_records, 9);
    assert_eq!(s.limits.router.verifier_threads, 3);
    assert_eq!(s.limits.spin_before_park, Duration::from_micros(7));
    assert_eq!(
        s.limits.router.ingress.max_lifetime,
        Duration::from_secs(10)
    );
    assert_eq!(s.advert().name.as_deref(), Some("alpha"));
}

#[test]
fn documented_defaults_match_the_code() {
    let (dir, _key, _other, line) = setup("doc-defaults");
    // The [transport] and [limits] tables of the module documentation.
    let text = format!(
        r#"{}
[transport]
idle_timeout_ms = 10000
backoff_initial_ms = 100
backoff_max_ms = 5000
default_ordering = "ordered"
default_reliability = "reliable"

[limits]
max_frame_bytes = 8388608
max_partial_frame_bytes = 67108864
max_connections = 1024
max_connections_per_ip = 64
max_peer_queue_bytes = 33554432
max_pair_streams = 256
transport_mailbox_depth = 65536
mailbox_depth = 4096
router_mailbox_depth = 65536
identity_records = 100000
max_message_lifetime_s = 600

[identity]
advert_lifetime_s = 86400
max_lookups = 256
lookup_timeout_ms = 3000
lookup_fanout = 8
negative_cache_s = 10
max_engines_per_node = 4096

[performance]
spin_before_park_us = 50
"#,
        minimal(&line)
    );
    let written = Settings::load(&dir.write("doc.toml", &text)).unwrap();
    let defaults = Settings::load(&dir.write("min.toml", &minimal(&line))).unwrap();
    assert_eq!(written.transport, defaults.transport);
    assert_eq!(
        written.transport,
        TransportConfig {
            listen: defaults.listen.clone(),
            ..TransportConfig::default()
        }
    );
    let (w, d) = (written.limits, NodeLimits::default());
    assert_eq!(w.mailbox_depth, d.mailbox_depth);
    assert_eq!(w.router_mailbox_depth, d.router_mailbox_depth);
    assert_eq!(w.identity_records, d.identity_records);
    assert_eq!(w.router.ingress.max_lifetime, d.router.ingress.max_lifetime);
    assert_eq!(w.spin_before_park, d.spin_before_park);
    assert_eq!(w.identity, d.identity);
}

#[test]
fn engines_and_identity_limits_are_read() {
    let (dir, key, other, line) = setup("engines");
    let far = crate::time::wall_clock().after(Duration::from_secs(3600));
    let remote = other.derive_engine("app");
    let signed = crate::wire::EngineAdvert::new_signed(
        &remote,
        other.node_identity(),
        "app",
        1,
        crate::time::wall_clock(),
        far,
    );
    let bare = Keypair::generate().engine_identity();
    let text = format!(
        r#"{}
[[engines]]
engine = "{bare}"
node = "{}"

[[engines]]
advert = "{}"

[[engines]]
engine = "{}"
node = "{}"
advert = "{}"

[identity]
advert_lifetime_s = 600
max_lookups = 3
lookup_timeout_ms = 700
lookup_fanout = 2
negative_cache_s = 0
max_engines_per_node = 9
"#,
        minimal(&line),
        other.node_identity(),
        signed.to_line(),
        remote.engine_identity(),
        other.node_identity(),
        signed.to_line(),
    );
    let s = Settings::load(&dir.write("e.toml", &text)).unwrap();
    assert_eq!(s.engines.len(), 3);
    assert_eq!(
        s.engines[0],
        KnownEngine {
            engine: bare,
            node: other.node_identity(),
            advert: None
        }
    );
    assert_eq!(s.engines[1].engine, remote.engine_identity());
    assert_eq!(s.engines[1].advert.as_ref(), Some(&signed));
    assert_eq!(s.engines[2], s.engines[1]);
    let i = s.limits.identity;
    assert_eq!(i.advert_lifetime, Duration::from_secs(600));
    assert_eq!(
        (
            i.lookups.max_outstanding,
            i.lookups.fanout,
            i.max_engines_per_node
        ),
        (3, 2, 9)
    );
    assert_eq!(i.lookups.timeout, Duration::from_millis(700));
    assert_eq!(i.lookups.negative_ttl, Duration::ZERO);
    let _ = s.node_builder();

    // Refusals name the entry.
    let with = |body: &str| format!("{}\n[[engines]]\n{body}\n", minimal(&line));
    let e = load_err(&dir.write("x.toml", &with(&format!("engine = \"{bare}\""))));
    assert!(e.contains("engines[0]") && e.contains("needs"), "{e}");
    let e = load_err(&dir.write("x.toml", &with("engine = \"zz\"\nnode = \"zz\"")));
    assert!(
        e.contains("engines[0].engine") && e.contains("64 hex"),
        "{e}"
    );
    let e = load_err(&dir.write(
        "x.toml",
        &with(&format!(
            "engine = \"{bare}\"\nadvert = \"{}\"",
            signed.to_line()
        )),
    ));
    assert!(
        e.contains("engines[0]") && e.contains("advert names"),
        "{e}"
    );
    let mut forged = signed.clone();
    forged.version += 1;
    let e = load_err(&dir.write(
        "x.toml",
        &with(&format!("advert = \"{}\"", forged.to_line())),
    ));
    assert!(
        e.contains("engines[0].advert") && e.contains("signature"),
        "{e}"
    );
    let e = load_err(&dir.write(
        "x.toml",
        &with(&format!(
            "engine = \"{bare}\"\nnode = \"{}\"",
            key.node_identity()
        )),
    ));
    assert!(e.contains("this node itself"), "{e}");
    let e = load_err(&dir.write(
        "x.toml",
        &format!("{}\n[identity]\nmax_lookups = 0\n", minimal(&line)),
    ));
    assert!(e.contains("identity.max_lookups"), "{e}");
}

#[test]
fn relative_key_path_is_resolved_against_the_config_directory() {
    let (dir, key, _other, line) = setup("relative");
    std::fs::create_dir_all(dir.0.join("conf/keys")).unwrap();
    let nested = dir.0.join("conf/keys/n.key");
    std::fs::rename(dir.0.join("node.key"), &nested).unwrap();
    let text = minimal(&line).replace("\"node.key\"", "\"keys/n.key\"");
    let path = dir.write("conf/node.toml", &text);
    let s = Settings::load(&path).unwrap();
    assert_eq!(s.key_path, dir.0.join("conf").join("keys/n.key"));
    assert_eq!(s.node_identity(), key.node_identity());
    // An absolute path is taken as is.
    let abs = minimal(&line).replace(
        "\"node.key\"",
        &format!("{:?}", nested.display().to_string()),
    );
    let s = Settings::load(&dir.write("abs.toml", &abs)).unwrap();
    assert_eq!(s.key_path, nested);
}

#[test]
fn unknown_top_level_key_is_refused() {
    let (dir, _key, _other, line) = setup("unknown-top");
    let path = dir.write("n.toml", &format!("lisen_extra = 1\n{}", minimal(&line)));
    let e = load_err(&path);
    assert!(e.contains("lisen_extra"), "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");
}

#[test]
fn unknown_peer_key_is_refused() {
    let (dir, _key, _other, line) = setup("unknown-peer");
    let path = dir.write("n.toml", &format!("{}permanant = true\n", minimal(&line)));
    let e = load_err(&path);
    assert!(e.contains("permanant"), "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");
}

#[test]
fn unknown_limits_key_is_refused() {
    let (dir, _key, _other, line) = setup("unknown-limits");
    let path = dir.write(
        "n.toml",
        &format!("{}\n[limits]\nmax_conections = 5\n", minimal(&line)),
    );
    let e = load_err(&path);
    assert!(e.contains("max_conections"), "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");
    // And in [transport], and a bad enum value.
    let path = dir.write(
        "t.toml",
        &format!(
            "{}\n[transport]\ndefault_ordering = \"sorted\"\n",
            minimal(&line)
        ),
    );
    let e = load_err(&path);
    assert!(e.contains("sorted") && e.contains("unordered"), "{e}");
}

#[test]
fn missing_required_key_is_refused() {
    let (dir, _key, _other, _line) = setup("missing");
    let path = dir.write("n.toml", "key_file = \"node.key\"\n");
    let e = load_err(&path);
    assert!(e.contains("listen"), "{e}");
}

#[test]
fn bad_address_names_the_key() {
    let (dir, _key, _other, line) = setup("bad-addr");
    let text = minimal(&line).replace(
        "[\"127.0.0.1:7001\"]",
        "[\"127.0.0.1:7001\", \"localhost:7002\"]",
    );
    let path = dir.write("n.toml", &text);
    let e = load_err(&path);
    assert!(
        e.contains("listen[1]") && e.contains("localhost:7002"),
        "{e}"
    );
    assert!(e.contains(&path.display().to_string()), "{e}");
    let text = minimal(&line).replace(
        "[\"127.0.0.1:7001\"]",
        "[\"127.0.0.1:7001\", \"127.0.0.1:7001\"]",
    );
    let e = load_err(&dir.write("d.toml", &text));
    assert!(e.contains("listen[1]") && e.contains("twice"), "{e}");
}

#[test]
fn tampered_advert_is_refused() {
    let (dir, _key, _other, line) = setup("bad-advert");
    // Change the port (hex digit 104 of the encoding: after the id, the list length and the
    // address and IP tags and the IPv4 octets), keeping the encoding valid.
    let pos = crate::wire::advert::ADVERT_LINE_PREFIX.len() + 104;
    let mut bytes = line.into_bytes();
    bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(bytes).unwrap();
    let path = dir.write("n.toml", &minimal(&tampered));
    let e = load_err(&path);
    assert!(e.contains("peers[0].advert"), "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(
        matches!(
            Settings::load(&path).unwrap_err(),
            ConfigError::BadAdvert {
                error: AdvertError::BadSignature,
                ..
            }
        ),
        "{e}"
    );
    let e = load_err(&dir.write("x.toml", &minimal("hello")));
    assert!(
        e.contains("peers[0].advert") && e.contains("nmadvert2"),
        "{e}"
    );
}

#[test]
fn own_and_duplicate_adverts_are_refused() {
    let (dir, key, _other, line) = setup("own");
    let own = NodeAdvert::for_listen(&key, &[], None).to_line();
    let e = load_err(&dir.write("own.toml", &minimal(&own)));
    assert!(e.contains("peers[0].advert") && e.contains("itself"), "{e}");
    let text = format!("{}\n[[peers]]\nadvert = \"{line}\"\n", minimal(&line));
    let e = load_err(&dir.write("dup.toml", &text));
    assert!(
        e.contains("peers[1].advert") && e.contains("peers[0].advert"),
        "{e}"
    );
}

#[test]
fn zero_and_out_of_range_limits_are_refused() {
    let (dir, _key, _other, line) = setup("zero");
    let path = dir.write(
        "n.toml",
        &format!("{}\n[limits]\nmailbox_depth = 0\n", minimal(&line)),
    );
    let e = load_err(&path);
    assert!(
        e.contains("limits.mailbox_depth") && e.contains("zero"),
        "{e}"
    );
    let path = dir.write(
        "t.toml",
        &format!("{}\n[transport]\nidle_timeout_ms = 0\n", minimal(&line)),
    );
    assert!(load_err(&path).contains("transport.idle_timeout_ms"));
    let path = dir.write(
        "f.toml",
        &format!(
            "{}\n[limits]\nmax_frame_bytes = 100000000\n",
            minimal(&line)
        ),
    );
    assert!(load_err(&path).contains("limits.max_frame_bytes"));
    let path = dir.write(
        "p.toml",
        &format!(
            "{}\n[limits]\nmax_frame_bytes = 2000000\nmax_partial_frame_bytes = 1000000\n",
            minimal(&line)
        ),
    );
    let e = load_err(&path);
    assert!(
        e.contains("limits.max_partial_frame_bytes") && e.contains("below"),
        "{e}"
    );
    let path = dir.write(
        "b.toml",
        &format!(
            "{}\n[transport]\nbackoff_initial_ms = 10000\nbackoff_max_ms = 100\n",
            minimal(&line)
        ),
    );
    assert!(load_err(&path).contains("backoff_initial_ms"));
    let path = dir.write(
        "neg.toml",
        &format!("{}\n[limits]\nmax_connections = -1\n", minimal(&line)),
    );
    assert!(load_err(&path).contains("max_connections"));
    let long = "x".repeat(MAX_NAME_BYTES + 1);
    let path = dir.write(
        "name.toml",
        &format!("name = \"{long}\"\n{}", minimal(&line)),
    );
    assert!(load_err(&path).contains("`name`"));
}

#[test]
fn missing_key_file_names_key_file_and_path() {
    let (dir, _key, _other, line) = setup("no-key");
    let text = minimal(&line).replace("\"node.key\"", "\"absent.key\"");
    let path = dir.write("n.toml", &text);
    let e = load_err(&path);
    assert!(e.contains("key_file"), "{e}");
    assert!(
        e.contains(&dir.0.join("absent.key").display().to_string()),
        "{e}"
    );
    assert!(e.contains(&path.display().to_string()), "{e}");
    // A file that is not a key.
    dir.write("junk.key", "not a key\n");
    let text = minimal(&line).replace("\"node.key\"", "\"junk.key\"");
    let e = load_err(&dir.write("j.toml", &text));
    assert!(e.contains("key_file") && e.contains("PRIVATE KEY"), "{e}");
    // A configuration file that does not exist.
    let e = load_err(&dir.0.join("nowhere.toml"));
    assert!(e.contains("nowhere.toml"), "{e}");
}
