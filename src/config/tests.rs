//! Tests of [`Settings::load`]: a minimal and a complete file, the documented defaults against the
//! code, and every refusal naming its key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::identity::Keypair;
use crate::node::NodeLimits;
use crate::transport::TransportConfig;
use crate::wire::advert::{AdvertError, MAX_NAME_BYTES};
use crate::wire::{NodeAdvert, Ordering, Reliability};

use super::test_support::TempDir;
use super::*;
use crate::transport::TransportLimits;

/// A signed advert of a new domain (auth by pre-shared key) introduced by `introducers`.
pub(super) fn domain_advert(introducers: &[&Keypair]) -> crate::wire::DomainAdvert {
    crate::wire::DomainAdvert::new_signed(
        &Keypair::generate(),
        introducers
            .iter()
            .map(|k| crate::wire::advert::Introducer {
                node: k.node_identity(),
                addrs: Vec::new(),
            })
            .collect(),
        crate::wire::advert::DomainAuth::Psk,
        Vec::new(),
        0,
        1,
        crate::time::wall_clock(),
    )
}

/// Writes `text` to `name` in `dir`, readable by its owner only.
pub(super) fn write_secret(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.write(name, text);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// A temp dir with `node.key` written, and the advert line of another node.
pub(super) fn setup(tag: &str) -> (TempDir, Keypair, Keypair, String) {
    let dir = TempDir::new(tag);
    let key = Keypair::generate();
    key.write_file(&dir.0.join("node.key")).unwrap();
    let other = Keypair::generate();
    let line = NodeAdvert::for_listen(&other, &["127.0.0.1:7002".parse().unwrap()], None).to_line();
    (dir, key, other, line)
}

pub(super) fn minimal(line: &str) -> String {
    format!(
        "key_file = \"node.key\"\nlisten = [\"127.0.0.1:7001\"]\n\n\
         [[peers]]\nadvert = \"{line}\"\n"
    )
}

pub(super) fn load_err(path: &Path) -> String {
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
    let far = crate::time::wall_clock().after(Duration::from_secs(3600));
    let remote = other.derive_engine("app");
    let engine_advert = crate::wire::EngineAdvert::new_signed(
        &remote,
        other.node_identity(),
        "app",
        1,
        crate::time::wall_clock(),
        far,
    );
    let (d1, d2) = (domain_advert(&[&other]), domain_advert(&[&other]));
    dir.write("domain2.advert", &format!("{}\n", d2.to_line()));
    write_secret(&dir, "domain2.psk", "a pre-shared key of the second\n");
    let text = full_config(
        &line,
        &remote.engine_identity().to_string(),
        &other.node_identity().to_string(),
        &engine_advert.to_line(),
        &d1.to_line(),
    );
    let s = Settings::load(&dir.write("full.toml", &text)).unwrap();
    assert!(s.interdomain.is_none(), "enabled = false opts out");
    assert_eq!(s.domains.len(), 2);
    assert_eq!(s.domains[0].advert, d1);
    assert_eq!(
        s.domains[0].psk.as_deref(),
        Some(&b"0123456789abcdef0123"[..])
    );
    assert!(!s.domains[0].join_at_start);
    assert_eq!(s.domains[1].advert, d2);
    assert_eq!(
        s.domains[1].psk.as_deref(),
        Some(&b"a pre-shared key of the second"[..])
    );
    assert!(s.domains[1].join_at_start);
    let tl = &s.topology_limits;
    assert_eq!((tl.active_view, tl.passive_view), (4, 20));
    assert_eq!(tl.shuffle_interval, Duration::from_millis(7000));
    assert_eq!(tl.keepalive_interval, Duration::from_millis(500));
    assert_eq!(tl.failure_timeout, Duration::from_millis(2500));
    assert_eq!(tl.explore_interval, Duration::ZERO);
    assert_eq!((tl.max_domains, tl.max_members), (3, 100));
    super::domain_tests::check_full_domain_limits(&s.domain_limits);
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
    assert_eq!(t.transports, vec![crate::wire::TransportKind::Tcp]);
    assert_eq!(t.connect_timeout, Duration::from_millis(900));
    assert_eq!(t.listen_tcp, vec!["127.0.0.1:7001".parse().unwrap()]);
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
    assert_eq!(s.trust, vec![(other.node_identity(), 0)]);
    let conduct = s.limits.router.conduct;
    assert_eq!(conduct.bad_messages_before_disconnect, 11);
    assert_eq!(conduct.backoff, Duration::from_secs(12));
    assert_eq!(s.engines.len(), 1);
    assert_eq!(s.engines[0].advert.as_ref(), Some(&engine_advert));
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
}

/// A file that sets every key (none at its default), with peer advert `line`, one remote
/// engine (`engine` on `node`, with its advert line `engine_line`), and two domains: one with
/// advert line `domain_line`, one from the files `domain2.advert` and `domain2.psk`.
fn full_config(
    line: &str,
    engine: &str,
    node: &str,
    engine_line: &str,
    domain_line: &str,
) -> String {
    format!(
        r#"key_file = "node.key"
listen = ["127.0.0.1:7001", "[::1]:7001"]
listen_tcp = ["127.0.0.1:7001"]
name = "alpha"
accept_unknown_peers = false

[[peers]]
advert = "{line}"
permanent = true
trust = 0

[[engines]]
engine = "{engine}"
node = "{node}"
advert = "{engine_line}"

[[domains]]
advert = "{domain_line}"
psk = "0123456789abcdef0123"
join = false

[[domains]]
advert_file = "domain2.advert"
psk_file = "domain2.psk"

{domain_limits}
{interdomain}{storage}
{relay}
[topology]
active_view = 4
passive_view = 20
shuffle_interval_ms = 7000
keepalive_interval_ms = 500
failure_timeout_ms = 2500
explore_interval_s = 0
max_domains = 3
max_members = 100

[transport]
idle_timeout_ms = 3000
backoff_initial_ms = 50
backoff_max_ms = 2000
default_ordering = "unordered"
default_reliability = "unreliable"
transports = ["tcp"]
connect_timeout_ms = 900

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
bad_messages_before_disconnect = 11
misbehaving_peer_backoff_s = 12

[identity]
advert_lifetime_s = 600
max_lookups = 3
lookup_timeout_ms = 700
lookup_fanout = 2
negative_cache_s = 0
max_engines_per_node = 9
persist = true
path = "ids.redb"

[performance]
verifier_threads = 3
spin_before_park_us = 7
"#,
        domain_limits = super::domain_tests::FULL_DOMAIN_LIMITS,
        interdomain = super::interdomain_tests::FULL_INTERDOMAIN,
        storage = super::storage_tests::FULL_STORAGE,
        relay = super::relay_tests::full_relay(node),
    )
}

/// The keys of a TOML text, as `table.key` (top-level keys bare; for an array of tables, the
/// keys of its tables), in order.
fn keys_of(text: &str) -> Vec<String> {
    let table: toml::Table = toml::from_str(text).expect("TOML");
    let mut keys = Vec::new();
    for (k, v) in &table {
        let inner: Vec<&toml::Table> = match v {
            toml::Value::Table(t) => vec![t],
            toml::Value::Array(a) if a.iter().all(|x| x.is_table()) && !a.is_empty() => {
                a.iter().filter_map(|x| x.as_table()).collect()
            }
            _ => {
                keys.push(k.clone());
                continue;
            }
        };
        for t in inner {
            for sub in t.keys() {
                let name = format!("{k}.{sub}");
                if !keys.contains(&name) {
                    keys.push(name);
                }
            }
        }
    }
    keys
}

/// The TOML listing of the module documentation (`src/config/mod.rs`).
pub(super) fn listing() -> String {
    let listing: String = include_str!("mod.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| *l != "```toml")
        .skip(1)
        .take_while(|l| *l != "```")
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        !listing.is_empty(),
        "no ```toml listing in src/config/mod.rs"
    );
    listing
}

/// The keys of the listing in the module documentation.
fn documented_keys() -> Vec<String> {
    keys_of(&listing())
}

#[test]
fn the_listing_and_docs_operations_name_every_key() {
    let mut documented = documented_keys();
    // The complete file sets every key the code reads (it loads, so each is a real key).
    let mut real = keys_of(&full_config(
        "nmadvert2:00",
        "00",
        "00",
        "nmengine2:00",
        "nmdomain1:00",
    ));
    documented.sort();
    real.sort();
    assert_eq!(documented, real, "the listing of src/config/mod.rs");
    let operations = include_str!("../../docs/operations.md");
    for key in &documented {
        let bare = key.rsplit('.').next().expect("a key");
        assert!(
            operations.contains(&format!("`{key}`")) || operations.contains(&format!("`{bare}`")),
            "docs/operations.md does not name the key {key}"
        );
    }
}

#[test]
fn documented_defaults_match_the_code() {
    let (dir, _key, _other, line) = setup("doc-defaults");
    // The listing of the module documentation, with this test's key file, address and peer in
    // place of its examples, and without the one default that depends on the machine
    // (`verifier_threads`); the `[storage]` table is checked in storage_tests.rs.
    let mut table: toml::Table = toml::from_str(&listing()).expect("the listing is TOML");
    for example in [
        "key_file",
        "listen",
        "listen_tcp",
        "name",
        "peers",
        "engines",
        "domains",
        "storage",
    ] {
        assert!(table.remove(example).is_some(), "{example}");
    }
    let performance = table
        .get_mut("performance")
        .and_then(|p| p.as_table_mut())
        .expect("[performance]");
    assert!(performance.remove("verifier_threads").is_some());
    let minimal_table: toml::Table = toml::from_str(&minimal(&line)).expect("TOML");
    table.extend(minimal_table);
    let text = toml::to_string(&table).expect("TOML");
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
    assert_eq!(w.router.conduct, d.router.conduct);
    assert_eq!(w.identity, d.identity);
    assert!(defaults.trust.is_empty(), "no trust key, no trust set");
    assert_eq!(
        written.topology_limits,
        crate::topology::TopologyLimits::default()
    );
    assert_eq!(
        written.domain_limits,
        crate::domain::DomainLimits::default()
    );
    assert!(defaults.domains.is_empty());
    super::interdomain_tests::check_defaults(&written);
    super::interdomain_tests::check_defaults(&defaults);
    assert_eq!(written.relay, crate::relay::RelayPolicy::default());
    assert_eq!(
        defaults.identity_file,
        Some(dir.0.join("min.identity.redb")),
        "the identity store sits beside the configuration file"
    );
    assert_eq!(defaults.relay, crate::relay::RelayPolicy::default());
}

#[test]
fn peer_trust_and_misbehaviour_limits_are_checked() {
    let (dir, _key, _other, line) = setup("trust");
    let text = minimal(&line).replace(
        &format!("advert = \"{line}\""),
        &format!("advert = \"{line}\"\ntrust = 256"),
    );
    let e = load_err(&dir.write("t.toml", &text));
    assert!(e.contains("peers[0].trust") && e.contains("255"), "{e}");
    for key in [
        "bad_messages_before_disconnect",
        "misbehaving_peer_backoff_s",
    ] {
        let text = format!("{}\n[limits]\n{key} = 0\n", minimal(&line));
        let e = load_err(&dir.write("z.toml", &text));
        assert!(
            e.contains(&format!("limits.{key}")) && e.contains("zero"),
            "{e}"
        );
    }
}

#[test]
fn the_shipped_examples_load_with_their_trust_and_limits() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    for i in 1..=3 {
        let s = Settings::load(&conf.join(format!("node{i}.toml"))).unwrap();
        assert_eq!(s.trust.len(), 2, "node{i}");
        assert!(s.trust.iter().all(|(_, t)| *t == 128));
        assert_eq!(
            s.limits.router.conduct,
            NodeLimits::default().router.conduct
        );
        // Their `[interdomain]` tables spell out defaults.
        super::interdomain_tests::check_defaults(&s);
    }
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
