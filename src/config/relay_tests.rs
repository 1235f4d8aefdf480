//! The `[relay]` table: read, and refused with the key named when wrong.

use super::tests::{load_err, minimal, setup};
use super::Settings;

/// The `[relay]` table of the complete file: every key, none at its default.
pub(super) fn full_relay(node: &str) -> String {
    format!(
        "[relay]\nforward = \"listed\"\nforward_for = [\"{node}\"]\nmax_msgs_per_s = 100\n\
         max_bytes_per_s = 70000\nreceipt_timeout_ms = 1500\nattempts = 2\n"
    )
}

#[test]
fn the_relay_policy_is_read_and_checked() {
    let (dir, _key, other, line) = setup("relay");
    let node = other.node_identity();
    let text = format!(
        "{}\n[relay]\nforward = \"listed\"\nforward_for = [\"{node}\"]\nmax_msgs_per_s = 5\n",
        minimal(&line)
    );
    let s = Settings::load(&dir.write("r.toml", &text)).unwrap();
    assert!(s.relay.forwards_for(&node));
    assert!(!s.relay.forwards_for(&s.node_identity()));
    assert_eq!(s.relay.limits.msgs_per_s, 5);
    assert_eq!(s.relay.receipts, crate::relay::ReceiptLimits::default());
    let text = format!(
        "{}\n[relay]\nforward = \"anyone\"\nreceipt_timeout_ms = 750\nattempts = 5\n",
        minimal(&line)
    );
    let s = Settings::load(&dir.write("r2.toml", &text)).unwrap();
    assert!(s.relay.forwards_for(&node));
    assert_eq!(
        s.relay.receipts.timeout,
        std::time::Duration::from_millis(750)
    );
    assert_eq!(s.relay.receipts.attempts, 5);
    for (table, key) in [
        ("forward = \"listed\"", "relay.forward_for"),
        (
            &format!("forward = \"anyone\"\nforward_for = [\"{node}\"]") as &str,
            "relay.forward_for",
        ),
        (
            "forward_for = [\"zz\"]\nforward = \"listed\"",
            "relay.forward_for[0]",
        ),
        ("max_msgs_per_s = 0", "relay.max_msgs_per_s"),
        ("max_bytes_per_s = 100", "relay.max_bytes_per_s"),
        ("receipt_timeout_ms = 5", "relay.receipt_timeout_ms"),
        ("receipt_timeout_ms = 600001", "relay.receipt_timeout_ms"),
        ("attempts = 0", "relay.attempts"),
        ("attempts = 17", "relay.attempts"),
        ("forward = \"sometimes\"", "forward"),
    ] {
        let text = format!("{}\n[relay]\n{table}\n", minimal(&line));
        let e = load_err(&dir.write("bad.toml", &text));
        assert!(e.contains(key), "{table}: {e}");
    }
}
