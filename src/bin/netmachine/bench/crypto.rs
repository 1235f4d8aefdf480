//! The `verify` suite: single and batch verification, and signing.

use super::shared::*;
use super::*;

pub(super) fn verify_suite(secs: f64, out: &impl Fn(Record)) {
    let (single, batch, sign) = verify_rates((secs / 3.0).max(0.5));
    out(Record {
        suite: "verify",
        metric: "single_verify",
        value: single,
        unit: "sig/s",
        baseline: None,
    });
    out(Record {
        suite: "verify",
        metric: "batch64_verify",
        value: batch,
        unit: "sig/s",
        baseline: Some(("single_verify", single)),
    });
    out(Record {
        suite: "verify",
        metric: "sign",
        value: sign,
        unit: "sig/s",
        baseline: Some(("single_verify", single)),
    });
}
