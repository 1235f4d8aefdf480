//! Tests of the `[storage]` table: what it loads into, the documented defaults, the opt-out,
//! the convergence secret file, and every refusal naming its key and range.

use std::time::Duration;

use crate::storage::crypt::ConvergenceSecret;
use crate::storage::engine::StorageSettings;
use crate::storage::store::StoreLimits;

use super::tests::{listing, load_err, minimal, setup, write_secret};
use super::*;

/// The `[storage]` table of the complete file of `tests.rs`: every key away from its default
/// (so `enabled = false`, the opt-out, which reads no secret file).
pub(super) const FULL_STORAGE: &str = "[storage]
enabled = false
path = \"blocks/node.redb\"
max_bytes = 2000000
max_blocks = 300
accept_puts = false
put_min_trust = 200
max_put_bytes_per_node = 1000000
max_lifetime_s = 3600
cache_mib = 3
fanout = 4
hop_limit = 12
max_in_flight = 8
convergence_secret_file = \"storage.secret\"
";

/// A secret file's contents: 64 hex characters and a newline.
fn hex_secret() -> String {
    format!("{}\n", "5a".repeat(32))
}

#[test]
fn every_key_loads_into_the_store_and_engine_settings() {
    let (dir, _key, _other, line) = setup("storage-all");
    write_secret(&dir, "storage.secret", &hex_secret());
    let table = FULL_STORAGE.replace("enabled = false\n", "");
    let s = Settings::load(&dir.write("s.toml", &format!("{}\n{table}", minimal(&line)))).unwrap();
    let c = s.storage.expect("enabled when the key is absent");
    assert_eq!(c.path, dir.0.join("blocks/node.redb"));
    assert_eq!(
        c.store,
        StoreLimits {
            max_bytes: 2_000_000,
            max_blocks: 300
        }
    );
    let e = &c.engine;
    assert!(!e.puts.accept);
    assert_eq!(e.puts.min_trust, 200);
    assert_eq!(e.puts.max_bytes_per_node, 1_000_000);
    assert_eq!(e.puts.max_lifetime, Duration::from_secs(3600));
    assert_eq!(e.limits.cache_bytes, 3 << 20);
    assert_eq!((e.fanout, e.hop_limit, e.max_in_flight), (4, 12, 8));
    // One holder never gets more than the whole fetch.
    assert_eq!(e.max_in_flight_per_holder, 8);
    assert_eq!(
        c.convergence_secret_file,
        Some(dir.0.join("storage.secret"))
    );
    assert_eq!(
        c.convergence_secret,
        Some(ConvergenceSecret::new([0x5a; 32]))
    );
    // The opt-out: no store, and the secret file is not even read.
    let text = format!("{}\n{FULL_STORAGE}", minimal(&line)).replace("storage.secret", "absent");
    let s = Settings::load(&dir.write("off.toml", &text)).unwrap();
    assert_eq!(s.storage, None);
}

#[test]
fn documented_defaults_and_an_absent_table_match_the_code() {
    let (dir, _key, _other, line) = setup("storage-defaults");
    let listing: toml::Table = toml::from_str(&listing()).expect("the listing is TOML");
    let mut storage = listing["storage"].as_table().expect("[storage]").clone();
    // The secret file has no default: the listing's example names one.
    let secret = storage
        .remove("convergence_secret_file")
        .expect("the listing names the secret file");
    let text = format!(
        "{}\n[storage]\n{}",
        minimal(&line),
        toml::to_string(&storage).unwrap()
    );
    let written = Settings::load(&dir.write("doc.toml", &text)).unwrap();
    let absent = Settings::load(&dir.write("min.toml", &minimal(&line))).unwrap();
    let path = |s: &Settings| s.storage.as_ref().unwrap().path.clone();
    assert_eq!(
        path(&written),
        dir.0.join("node.storage.redb"),
        "as the listing says"
    );
    assert_eq!(
        path(&absent),
        dir.0.join("min.storage.redb"),
        "one store per file"
    );
    for s in [&written, &absent] {
        let c = s.storage.as_ref().expect("enabled by default");
        assert_eq!(c.store, StoreLimits::default());
        assert_eq!(c.engine, StorageSettings::default());
        assert_eq!(
            (&c.convergence_secret_file, &c.convergence_secret),
            (&None, &None)
        );
    }
    // The example's secret file, written, is read (a raw 32-byte secret this time).
    let name = secret.as_str().expect("a path");
    write_secret(&dir, name, &"k".repeat(32));
    let text = format!(
        "{}\n[storage]\nconvergence_secret_file = \"{name}\"\n",
        minimal(&line)
    );
    let s = Settings::load(&dir.write("secret.toml", &text)).unwrap();
    assert_eq!(
        s.storage.unwrap().convergence_secret,
        Some(ConvergenceSecret::new([b'k'; 32]))
    );
}

#[test]
fn bad_values_are_refused_naming_their_key_and_range() {
    let (dir, _key, _other, line) = setup("storage-bad");
    let cases: &[(&str, &str)] = &[
        ("max_bytes = 1000", "1048581..=1125899906842624"),
        ("max_bytes = 2000000000000000", "1048581..="),
        ("max_blocks = 0", "1..=4294967296"),
        ("max_blocks = 4294967297", "1..=4294967296"),
        ("put_min_trust = 256", "0..=255"),
        ("max_put_bytes_per_node = 5000000000", "0..=4294967296"),
        (
            "max_bytes = 2000000\nmax_put_bytes_per_node = 2000001",
            "0..=2000000",
        ),
        ("max_lifetime_s = 0", "1..=315360000"),
        ("max_lifetime_s = 315360001", "1..=315360000"),
        ("cache_mib = 4097", "0..=4096"),
        ("fanout = 0", "1..=64"),
        ("fanout = 65", "1..=64"),
        ("hop_limit = 0", "1..=255"),
        ("hop_limit = 256", "1..=255"),
        ("max_in_flight = 0", "1..=1024"),
        ("max_in_flight = 1025", "1..=1024"),
        ("path = \"\"", "empty path"),
    ];
    for (i, (body, expect)) in cases.iter().enumerate() {
        let key = body
            .lines()
            .last()
            .and_then(|l| l.split(' ').next())
            .unwrap();
        // Checked even when the node opts out.
        for enabled in [true, false] {
            let text = format!(
                "{}\n[storage]\nenabled = {enabled}\n{body}\n",
                minimal(&line)
            );
            let e = load_err(&dir.write(&format!("bad{i}.toml"), &text));
            assert!(
                e.contains(&format!("`storage.{key}`")) && e.contains(expect),
                "{body}: {e}"
            );
        }
    }
    // Wrong types and unknown keys are the parser's errors, naming the key.
    for (body, expect) in [
        ("max_bytes = -1", "max_bytes"),
        ("accept_puts = 1", "accept_puts"),
        ("fan_out = 3", "fan_out"),
    ] {
        let text = format!("{}\n[storage]\n{body}\n", minimal(&line));
        let e = load_err(&dir.write("syntax.toml", &text));
        assert!(e.contains(expect), "{body}: {e}");
    }
}

#[test]
fn a_bad_secret_file_is_refused_naming_the_key() {
    let (dir, _key, _other, line) = setup("storage-secret");
    let load = |contents: Option<&str>, secret: bool| {
        if let Some(c) = contents {
            let _ = std::fs::remove_file(dir.0.join("s.secret"));
            if secret {
                write_secret(&dir, "s.secret", c);
            } else {
                dir.write("s.secret", c);
            }
        }
        let text = format!(
            "{}\n[storage]\nconvergence_secret_file = \"s.secret\"\n",
            minimal(&line)
        );
        load_err(&dir.write("n.toml", &text))
    };
    let key = "`storage.convergence_secret_file`";
    let e = load(None, true);
    assert!(e.contains(key) && e.contains("cannot read"), "{e}");
    let e = load(Some("too short"), true);
    assert!(e.contains(key) && e.contains("32 bytes or 64 hex"), "{e}");
    let e = load(Some(&"0".repeat(2000)), true);
    assert!(e.contains(key) && e.contains("1024"), "{e}");
    #[cfg(unix)]
    {
        let e = load(Some(&hex_secret()), false);
        assert!(e.contains(key) && e.contains("chmod 600"), "{e}");
    }
}
