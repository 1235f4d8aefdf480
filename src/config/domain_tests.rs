//! Tests of the `[[domains]]`, `[domain]` and `[topology]` tables: what they load into, and every
//! refusal naming its key.

use std::time::Duration;

use crate::identity::Keypair;
use crate::time::wall_clock;
use crate::wire::advert::{DomainAuth, Introducer};
use crate::wire::DomainAdvert;

use super::tests::{domain_advert, load_err, minimal, setup, write_secret};
use super::*;

/// The `[domain]` table of the complete file of `tests.rs` (every key away from its default).
pub(super) const FULL_DOMAIN_LIMITS: &str = "[domain]
max_domains = 4
max_members = 50
max_ops = 500
join_timeout_ms = 800
join_tries = 2
join_window_s = 30
digest_interval_ms = 1500
ext_timeout_ms = 900
";

/// Checks the limits `FULL_DOMAIN_LIMITS` sets.
pub(super) fn check_full_domain_limits(l: &crate::domain::DomainLimits) {
    assert_eq!((l.max_domains, l.max_members, l.max_ops), (4, 50, 500));
    assert_eq!(l.join_timeout, Duration::from_millis(800));
    assert_eq!(l.join_tries, 2);
    assert_eq!(l.join_window, Duration::from_secs(30));
    assert_eq!(l.digest_interval, Duration::from_millis(1500));
    assert_eq!(l.ext_timeout, Duration::from_millis(900));
}

fn advert_with(auth: DomainAuth, introducer: &Keypair) -> DomainAdvert {
    DomainAdvert::new_signed(
        &Keypair::generate(),
        vec![Introducer {
            node: introducer.node_identity(),
            addrs: Vec::new(),
        }],
        auth,
        Vec::new(),
        0,
        1,
        wall_clock(),
    )
}

#[test]
fn domain_tables_are_checked_and_name_their_key() {
    let (dir, key, other, line) = setup("domains");
    let with = |body: &str| format!("{}\n[[domains]]\n{body}\n", minimal(&line));
    let psk_advert = domain_advert(&[&other]);
    let a = psk_advert.to_line();
    let good_psk = "psk = \"0123456789abcdef\"";

    // A member with its key loads; without one it may only stay out.
    let s = Settings::load(&dir.write("ok.toml", &with(&format!("advert = \"{a}\"\n{good_psk}"))))
        .unwrap();
    assert_eq!(s.domains[0].advert, psk_advert);
    assert!(s.domains[0].join_at_start, "join defaults to true");
    let s = Settings::load(&dir.write(
        "out.toml",
        &with(&format!("advert = \"{a}\"\njoin = false")),
    ))
    .unwrap();
    assert_eq!(s.domains[0].psk, None);
    let e = load_err(&dir.write("x.toml", &with(&format!("advert = \"{a}\""))));
    assert!(e.contains("domains[0]") && e.contains("psk_file"), "{e}");

    // Neither or both of advert / advert_file.
    let e = load_err(&dir.write("x.toml", &with("join = false")));
    assert!(
        e.contains("domains[0]") && e.contains("needs `advert`"),
        "{e}"
    );
    dir.write("d.advert", &a);
    let e = load_err(&dir.write(
        "x.toml",
        &with(&format!(
            "advert = \"{a}\"\nadvert_file = \"d.advert\"\n{good_psk}"
        )),
    ));
    assert!(e.contains("not both"), "{e}");
    let s = Settings::load(&dir.write(
        "f.toml",
        &with(&format!("advert_file = \"d.advert\"\n{good_psk}")),
    ))
    .unwrap();
    assert_eq!(s.domains[0].advert, psk_advert);
    let e = load_err(&dir.write("x.toml", &with("advert_file = \"missing.advert\"")));
    assert!(
        e.contains("domains[0].advert_file") && e.contains("missing.advert"),
        "{e}"
    );

    // A forged advert, a domain twice.
    let mut forged = psk_advert.clone();
    forged.max_members = 9;
    let e = load_err(&dir.write(
        "x.toml",
        &with(&format!("advert = \"{}\"\n{good_psk}", forged.to_line())),
    ));
    assert!(
        e.contains("domains[0].advert") && e.contains("signature"),
        "{e}"
    );
    let twice = format!(
        "{}\n[[domains]]\nadvert = \"{a}\"\njoin = false\n",
        with(&format!("advert = \"{a}\"\njoin = false"))
    );
    let e = load_err(&dir.write("x.toml", &twice));
    assert!(
        e.contains("domains[1].advert") && e.contains("domains[0]"),
        "{e}"
    );

    // Pre-shared keys: length, both forms, a key for a domain that uses none.
    let e = load_err(&dir.write(
        "x.toml",
        &with(&format!("advert = \"{a}\"\npsk = \"short\"")),
    ));
    assert!(e.contains("domains[0].psk") && e.contains("16"), "{e}");
    write_secret(&dir, "k.psk", "0123456789abcdef\n");
    let e = load_err(&dir.write(
        "x.toml",
        &with(&format!(
            "advert = \"{a}\"\n{good_psk}\npsk_file = \"k.psk\""
        )),
    ));
    assert!(e.contains("not both"), "{e}");
    let s = Settings::load(&dir.write(
        "p.toml",
        &with(&format!("advert = \"{a}\"\npsk_file = \"k.psk\"")),
    ))
    .unwrap();
    assert_eq!(
        s.domains[0].psk.as_deref(),
        Some(&b"0123456789abcdef"[..]),
        "the trailing newline is not part of the key"
    );
    let open = advert_with(DomainAuth::None, &other).to_line();
    let e = load_err(&dir.write("x.toml", &with(&format!("advert = \"{open}\"\n{good_psk}"))));
    assert!(e.contains("domains[0].psk") && e.contains("`none`"), "{e}");

    // A key file others may read is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.write("open.psk", "0123456789abcdef");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_err(&dir.write(
            "x.toml",
            &with(&format!("advert = \"{a}\"\npsk_file = \"open.psk\"")),
        ));
        assert!(
            e.contains("domains[0].psk_file") && e.contains("644") && e.contains("chmod 600"),
            "{e}"
        );
    }

    // An allow-list that leaves this node out: joining would be refused.
    let listed = advert_with(DomainAuth::AllowList(vec![other.node_identity()]), &other).to_line();
    let e = load_err(&dir.write("x.toml", &with(&format!("advert = \"{listed}\""))));
    assert!(
        e.contains("allow-list") && e.contains(&key.node_identity().short()),
        "{e}"
    );
    Settings::load(&dir.write(
        "l.toml",
        &with(&format!("advert = \"{listed}\"\njoin = false")),
    ))
    .unwrap();
    let mine = advert_with(DomainAuth::AllowList(vec![key.node_identity()]), &other).to_line();
    Settings::load(&dir.write("m.toml", &with(&format!("advert = \"{mine}\"")))).unwrap();

    // An introducer of a PSK domain needs the key to check joiners, even with join = false.
    let intro = domain_advert(&[&key]).to_line();
    let e = load_err(&dir.write(
        "x.toml",
        &with(&format!("advert = \"{intro}\"\njoin = false")),
    ));
    assert!(e.contains("introducer"), "{e}");
}

#[test]
fn domain_limits_are_checked() {
    let (dir, _key, _other, line) = setup("domain-limits");
    let with = |body: &str| format!("{}\n[domain]\n{body}\n", minimal(&line));
    for key in [
        "max_domains",
        "max_members",
        "max_ops",
        "join_timeout_ms",
        "join_tries",
        "join_window_s",
        "digest_interval_ms",
        "ext_timeout_ms",
    ] {
        let e = load_err(&dir.write("z.toml", &with(&format!("{key} = 0"))));
        assert!(
            e.contains(&format!("domain.{key}")) && e.contains("zero"),
            "{e}"
        );
    }
    let e = load_err(&dir.write("x.toml", &with("max_members = 100\nmax_ops = 99")));
    assert!(
        e.contains("domain.max_ops") && e.contains("max_members"),
        "{e}"
    );
}

#[test]
fn topology_limits_are_checked() {
    let (dir, _key, _other, line) = setup("topology");
    let with = |body: &str| format!("{}\n[topology]\n{body}\n", minimal(&line));
    for key in [
        "active_view",
        "passive_view",
        "shuffle_interval_ms",
        "keepalive_interval_ms",
        "failure_timeout_ms",
        "max_domains",
        "max_members",
    ] {
        let e = load_err(&dir.write("z.toml", &with(&format!("{key} = 0"))));
        assert!(
            e.contains(&format!("topology.{key}")) && e.contains("zero"),
            "{e}"
        );
    }
    let e = load_err(&dir.write("x.toml", &with("active_view = 65")));
    assert!(
        e.contains("topology.active_view") && e.contains("64"),
        "{e}"
    );
    let e = load_err(&dir.write(
        "x.toml",
        &with("keepalive_interval_ms = 3000\nfailure_timeout_ms = 3000"),
    ));
    assert!(e.contains("topology.failure_timeout_ms"), "{e}");
    let s = Settings::load(&dir.write("ok.toml", &with("explore_interval_s = 0"))).unwrap();
    assert_eq!(s.topology_limits.explore_interval, Duration::ZERO);
    let e = load_err(&dir.write("x.toml", &with("view = 3")));
    assert!(e.contains("view"), "{e}");
}

#[test]
fn the_shipped_examples_share_one_domain_introduced_by_node1() {
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let load = |i: usize| Settings::load(&conf.join(format!("node{i}.toml"))).unwrap();
    let node1 = load(1);
    for i in 1..=3 {
        let s = load(i);
        assert_eq!(s.domains.len(), 1, "node{i}");
        let d = &s.domains[0];
        assert_eq!(d.advert, node1.domains[0].advert, "node{i}");
        assert!(d.advert.is_introducer(&node1.node_identity()));
        assert_eq!(d.advert.auth, DomainAuth::Psk);
        assert!(d.psk.is_some() && d.join_at_start, "node{i}");
    }
}
