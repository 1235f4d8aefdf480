//! Tests of the `[interdomain]` table: what it loads into, the opt-out, integers for fractions,
//! and every refusal naming its key.

use std::time::Duration;

use crate::node::InterdomainSettings;
use crate::sampling::SamplerMode;

use super::tests::{load_err, minimal, setup};
use super::*;

/// The `[interdomain]` table of the complete file of `tests.rs`: every key away from its
/// default (so `enabled = false`, the opt-out).
pub(super) const FULL_INTERDOMAIN: &str = "[interdomain]
enabled = false
mode = \"cyclon\"
view = 12
exchange = 6
period_ms = 700
min_trust = 0.2
urps_memory = 40
urps_epsilon = 0.2
urps_delta = 0.05
blip_bits = 512
blip_hashes = 4
blip_epsilon = 3.5
cluster_view = 7
cluster_exchange = 5
cluster_period_ms = 900
fingers = 2
trust_weight = 0.25
psi = false
hop_limit = 9
request_timeout_ms = 3000
attempts = 2
forward = false
";

/// Checks that `s` runs the inter-domain engines with their defaults.
pub(super) fn check_defaults(s: &Settings) {
    let d = InterdomainSettings::default();
    let got = s.interdomain.as_ref().expect("enabled by default");
    // The engines' settings hold floats and have no `PartialEq`: compare every field as printed.
    assert_eq!(format!("{got:?}"), format!("{d:?}"));
}

#[test]
fn every_key_loads_into_the_engines_settings() {
    let (dir, _key, _other, line) = setup("interdomain-all");
    let table = FULL_INTERDOMAIN.replace("enabled = false\n", "");
    let s = Settings::load(&dir.write("i.toml", &format!("{}\n{table}", minimal(&line)))).unwrap();
    let i = s.interdomain.expect("enabled when the key is absent");
    let sa = &i.sampling;
    assert_eq!(sa.mode, SamplerMode::Cyclon);
    assert_eq!((sa.view_len, sa.xchg_len), (12, 6));
    assert_eq!(sa.period, Duration::from_millis(700));
    assert_eq!(sa.min_trust, 0.2);
    assert_eq!(
        (sa.urps.memory, sa.urps.epsilon, sa.urps.delta),
        (40, 0.2, 0.05)
    );
    assert_eq!(
        (sa.blip.bits, sa.blip.hashes, sa.blip.epsilon),
        (512, 4, 3.5)
    );
    let cl = &i.clustering;
    assert_eq!((cl.view_len, cl.xchg_len, cl.fingers), (7, 5, 2));
    assert_eq!(cl.period, Duration::from_millis(900));
    assert_eq!((cl.trust_weight, cl.min_trust, cl.psi), (0.25, 0.2, false));
    let ro = &i.routing;
    assert_eq!(ro.hop_limit, 9);
    assert_eq!(ro.timeout, Duration::from_secs(3));
    assert_eq!(ro.attempts, 2);
    assert!(!ro.forward);
    // The builder gets them: a node from these settings runs the engines (checked on real
    // nodes in tests/interdomain.rs); the opt-out gives none.
    let off = Settings::load(&dir.write(
        "off.toml",
        &format!("{}\n[interdomain]\nenabled = false\n", minimal(&line)),
    ))
    .unwrap();
    assert!(off.interdomain.is_none());
}

#[test]
fn fractions_may_be_written_as_integers() {
    let (dir, _key, _other, line) = setup("interdomain-int");
    let text = format!(
        "{}\n[interdomain]\ntrust_weight = 1\nmin_trust = 0\nblip_epsilon = 8\n",
        minimal(&line)
    );
    let s = Settings::load(&dir.write("i.toml", &text)).unwrap();
    let i = s.interdomain.unwrap();
    assert_eq!(i.clustering.trust_weight, 1.0);
    assert_eq!((i.sampling.min_trust, i.clustering.min_trust), (0.0, 0.0));
    assert_eq!(i.sampling.blip.epsilon, 8.0);
}

#[test]
fn bad_values_are_refused_naming_their_key() {
    let (dir, _key, _other, line) = setup("interdomain-bad");
    let cases: &[(&str, &str)] = &[
        ("view = 0", "1..=256"),
        ("view = 257", "1..=256"),
        ("exchange = 0", "exchange"),
        ("view = 3\nexchange = 8", "view` + 1"),
        ("period_ms = 10", "50..="),
        ("cluster_period_ms = 0", "50..="),
        ("min_trust = 1.5", "[0, 1]"),
        ("min_trust = -0.1", "[0, 1]"),
        ("urps_memory = 0", "urps_memory"),
        ("urps_memory = 5000", "4096"),
        ("urps_epsilon = 0", "(0, 1]"),
        ("urps_delta = 1", "(0, 1)"),
        ("blip_bits = 1001", "multiple of 8"),
        ("blip_bits = 0", "multiple of 8"),
        ("blip_bits = 16384", "8192"),
        ("blip_hashes = 0", "1..=16"),
        ("blip_hashes = 17", "1..=16"),
        ("blip_epsilon = 0", "blip_epsilon"),
        ("blip_epsilon = nan", "blip_epsilon"),
        ("blip_epsilon = inf", "blip_epsilon"),
        ("cluster_view = 0", "cluster_view"),
        ("fingers = 65", "0..=64"),
        ("trust_weight = 2", "[0, 1]"),
        ("hop_limit = 0", "1..=64"),
        ("hop_limit = 65", "1..=64"),
        ("request_timeout_ms = 0", "request_timeout_ms"),
        ("attempts = 0", "1..=8"),
        ("attempts = 9", "1..=8"),
    ];
    for (i, (body, expect)) in cases.iter().enumerate() {
        let key = body
            .lines()
            .last()
            .and_then(|l| l.split(' ').next())
            .unwrap();
        let text = format!("{}\n[interdomain]\n{body}\n", minimal(&line));
        let e = load_err(&dir.write(&format!("bad{i}.toml"), &text));
        assert!(
            e.contains(&format!("`interdomain.{key}`")) && e.contains(expect),
            "{body}: {e}"
        );
    }
    // Wrong types and unknown keys are the parser's errors, naming the key.
    for (body, expect) in [
        ("mode = \"fast\"", "mode"),
        ("psi = 1", "psi"),
        ("hop_limt = 3", "hop_limt"),
    ] {
        let text = format!("{}\n[interdomain]\n{body}\n", minimal(&line));
        let e = load_err(&dir.write("syntax.toml", &text));
        assert!(e.contains(expect), "{body}: {e}");
    }
}
