//! What a running node tells about itself: the status block operators read, and the node's own
//! questions to its identity store (trust, reputation, lookups).

use std::time::Duration;

use crossbeam_channel::bounded;

use super::nis_shell::NisMail;
use super::Node;
use crate::mail::identity::{IdentityEvent, IdentityRequest, DEFAULT_REPUTATION, DEFAULT_TRUST};

/// How long the status view waits for the identity store's answer.
const STATUS_WAIT: Duration = Duration::from_secs(1);

impl Node {
    /// Asks the Network Identity Store `req` and waits up to `timeout` for the answer: a
    /// lookup's record (a node's trust and reputation among it), an update's result, the
    /// standing of the nodes whose trust or reputation is set. `None` if the node has stopped,
    /// the store did not answer in time, or `req` has no answer (`Subscribe`, `Unsubscribe`).
    pub fn ask_identity_store(
        &self,
        req: IdentityRequest,
        timeout: Duration,
    ) -> Option<IdentityEvent> {
        if matches!(
            req,
            IdentityRequest::Subscribe | IdentityRequest::Unsubscribe
        ) {
            return None;
        }
        let (reply, answer) = bounded(1);
        self.links
            .nis
            .send_timeout(NisMail::Ask { req, reply }, timeout)
            .ok()?;
        answer.recv_timeout(timeout).ok()
    }

    /// A status view for a person: identity, engines, counters, domains (member or not, the
    /// member count, the overlay view's size), the inter-domain neighbours and counters,
    /// failures.
    pub fn status(&self) -> String {
        let mut out = format!("node {}\nengines:\n", self.identity);
        for (name, id) in self.engines() {
            out.push_str(&format!("  {name:<16} {id}\n"));
        }
        out.push_str(&format!("{}\n", self.stats()));
        let identity = self.identity_stats.nonzero();
        if !identity.is_empty() {
            out.push_str("identity:");
            for (name, v) in identity {
                out.push_str(&format!(" {name}={v}"));
            }
            out.push('\n');
        }
        if let Some(p) = self.pubsub_stats() {
            let counters = p.nonzero();
            if !counters.is_empty() {
                out.push_str("pubsub:");
                for (name, v) in counters {
                    out.push_str(&format!(" {name}={v}"));
                }
                out.push('\n');
            }
        }
        out.push_str(&self.domain_status());
        out.push_str(&self.interdomain_status());
        for f in self.failures() {
            out.push_str(&format!("panicked: {} ({})\n", f.name, f.message));
        }
        let peers = self.connected_peers();
        if !peers.is_empty() {
            out.push_str("connected peers (relay candidates):\n");
            for c in peers {
                let rtt = c.rtt.map_or("-".to_string(), |r| {
                    format!("{:.3} ms", r.as_secs_f64() * 1e3)
                });
                let loss = c
                    .loss_ppm
                    .map_or("-".to_string(), |l| format!("{:.2}%", f64::from(l) / 1e4));
                out.push_str(&format!(
                    "  {} {} trust={} rtt={rtt} loss={loss}\n",
                    c.node,
                    c.transport.name(),
                    c.trust
                ));
            }
        }
        match self.ask_identity_store(IdentityRequest::Standing, STATUS_WAIT) {
            Some(IdentityEvent::Standing(list)) if !list.is_empty() => {
                out.push_str("peers with a trust or reputation set:\n");
                for s in list {
                    out.push_str(&format!(
                        "  {} trust={} reputation={}\n",
                        s.id,
                        s.trust.unwrap_or(DEFAULT_TRUST),
                        s.reputation.unwrap_or(DEFAULT_REPUTATION)
                    ));
                }
            }
            Some(_) => {}
            None => out.push_str("peers: the identity store did not answer\n"),
        }
        out
    }
}
