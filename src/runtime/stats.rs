//! Counters: every dropped message counted by its reason, and per-engine traffic.
//!
//! Counters are relaxed atomics written by the thread that owns the event and read by anyone
//! (the status view, tests, benchmarks). Nothing in netmachine drops a message without
//! incrementing exactly one [`DropReason`] counter.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Declares a struct of named relaxed `AtomicU64` counters with `Default`, `Debug` and
/// `nonzero()` (the `(name, value)` of every counter above zero): the shape of the engines'
/// counter structs (identity store, Domain, Topology).
macro_rules! counter_struct {
    ($(#[$smeta:meta])* pub struct $sname:ident { $($(#[$doc:meta])* $name:ident,)* }) => {
        $(#[$smeta])*
        #[derive(Debug, Default)]
        pub struct $sname {
            $($(#[$doc])* pub $name: std::sync::atomic::AtomicU64,)*
        }

        impl $sname {
            /// Adds one to `counter`.
            pub fn count(counter: &std::sync::atomic::AtomicU64) {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }

            /// Adds one to a counter of hostile input and says whether to log it: true at
            /// the 1st, 2nd, 4th, 8th … occurrence, so a peer repeating it cannot flood the log.
            pub fn count_hostile(counter: &std::sync::atomic::AtomicU64) -> Option<u64> {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                n.is_power_of_two().then_some(n)
            }

            /// The value of `counter`.
            pub fn get(counter: &std::sync::atomic::AtomicU64) -> u64 {
                counter.load(std::sync::atomic::Ordering::Relaxed)
            }

            /// `(name, value)` of every non-zero counter.
            pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
                let mut out = Vec::new();
                $(
                    let v = self.$name.load(std::sync::atomic::Ordering::Relaxed);
                    if v > 0 {
                        out.push((stringify!($name), v));
                    }
                )*
                out
            }
        }
    };
}
pub(crate) use counter_struct;

pub use crate::mail::reason::{DropReason, Fault};

/// Counters of one node, shared by its threads.
pub struct NodeStats {
    drops: Vec<AtomicU64>,
    faults: Vec<AtomicU64>,
    /// Connections that completed the connect exchange.
    pub connections_established: AtomicU64,
    /// Outbound connection attempts (dials), successful or not.
    pub dials: AtomicU64,
    /// Messages delivered to local engines.
    pub delivered_local: AtomicU64,
    /// Messages handed to the Transport for another node.
    pub sent_remote: AtomicU64,
    /// Messages received from other nodes (before any check).
    pub received_remote: AtomicU64,
    /// Remote messages whose signature verified.
    pub verified: AtomicU64,
    /// Batch verifications run.
    pub verify_batches: AtomicU64,
    /// Messages signed by engines of this node.
    pub signed: AtomicU64,
    /// Engines that panicked.
    pub engine_panics: AtomicU64,
    /// Messages of this node's engines sent through relays (onion routing, or no direct path).
    pub sent_relayed: AtomicU64,
    /// Relay layers this node forwarded for others.
    pub relayed: AtomicU64,
    /// Messages that reached this node through relays (before their signature is checked).
    pub received_relayed: AtomicU64,
    /// Receipts that came back for this node's relayed messages.
    pub relay_receipts: AtomicU64,
    /// Relayed messages sealed again for another path after their receipt did not come.
    pub relay_retries: AtomicU64,
    /// Relayed messages sent without waiting for a receipt (the table of those awaiting one
    /// was full): never retried.
    pub relay_untracked: AtomicU64,
}

impl Default for NodeStats {
    fn default() -> Self {
        NodeStats {
            drops: DropReason::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            faults: Fault::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            connections_established: AtomicU64::new(0),
            dials: AtomicU64::new(0),
            delivered_local: AtomicU64::new(0),
            sent_remote: AtomicU64::new(0),
            received_remote: AtomicU64::new(0),
            verified: AtomicU64::new(0),
            verify_batches: AtomicU64::new(0),
            signed: AtomicU64::new(0),
            engine_panics: AtomicU64::new(0),
            sent_relayed: AtomicU64::new(0),
            relayed: AtomicU64::new(0),
            received_relayed: AtomicU64::new(0),
            relay_receipts: AtomicU64::new(0),
            relay_retries: AtomicU64::new(0),
            relay_untracked: AtomicU64::new(0),
        }
    }
}

impl NodeStats {
    /// Counts one dropped message.
    pub fn dropped(&self, reason: DropReason) {
        self.drops[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one transport fault.
    pub fn fault(&self, fault: Fault) {
        self.faults[fault as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Faults of kind `fault` so far.
    pub fn faults(&self, fault: Fault) -> u64 {
        self.faults[fault as usize].load(Ordering::Relaxed)
    }

    /// Messages dropped for `reason` so far.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Ordering::Relaxed)
    }

    /// All messages dropped so far, whatever the reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            drops: DropReason::ALL
                .iter()
                .map(|&r| (r, self.drops(r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            faults: Fault::ALL
                .iter()
                .map(|&f| (f, self.faults(f)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            connections_established: load(&self.connections_established),
            dials: load(&self.dials),
            delivered_local: load(&self.delivered_local),
            sent_remote: load(&self.sent_remote),
            received_remote: load(&self.received_remote),
            verified: load(&self.verified),
            verify_batches: load(&self.verify_batches),
            signed: load(&self.signed),
            engine_panics: load(&self.engine_panics),
            sent_relayed: load(&self.sent_relayed),
            relayed: load(&self.relayed),
            received_relayed: load(&self.received_relayed),
            relay_receipts: load(&self.relay_receipts),
            relay_retries: load(&self.relay_retries),
            relay_untracked: load(&self.relay_untracked),
        }
    }
}

/// A point-in-time copy of a node's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Non-zero drop counters.
    pub drops: Vec<(DropReason, u64)>,
    /// Non-zero fault counters.
    pub faults: Vec<(Fault, u64)>,
    /// Connections that completed the connect exchange.
    pub connections_established: u64,
    /// Outbound connection attempts.
    pub dials: u64,
    /// Messages delivered to local engines.
    pub delivered_local: u64,
    /// Messages handed to the Transport.
    pub sent_remote: u64,
    /// Messages received from other nodes.
    pub received_remote: u64,
    /// Remote messages whose signature verified.
    pub verified: u64,
    /// Batch verifications run.
    pub verify_batches: u64,
    /// Messages signed by this node's engines.
    pub signed: u64,
    /// Engines that panicked.
    pub engine_panics: u64,
    /// Messages sent through relays.
    pub sent_relayed: u64,
    /// Relay layers forwarded for others.
    pub relayed: u64,
    /// Messages received through relays.
    pub received_relayed: u64,
    /// Receipts for this node's relayed messages.
    pub relay_receipts: u64,
    /// Relayed messages tried on another path.
    pub relay_retries: u64,
    /// Relayed messages sent untracked.
    pub relay_untracked: u64,
}

impl StatsSnapshot {
    /// All drops, whatever the reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(|(_, n)| n).sum()
    }

    /// Faults counted of kind `fault`.
    pub fn faults(&self, fault: Fault) -> u64 {
        self.faults
            .iter()
            .find(|(f, _)| *f == fault)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }

    /// Drops counted for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops
            .iter()
            .find(|(r, _)| *r == reason)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
}

impl fmt::Display for StatsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "delivered_local={} sent_remote={} received_remote={} verified={} batches={} signed={} engine_panics={}",
            self.delivered_local,
            self.sent_remote,
            self.received_remote,
            self.verified,
            self.verify_batches,
            self.signed,
            self.engine_panics
        )?;
        if self.sent_relayed + self.relayed + self.received_relayed > 0 {
            writeln!(
                f,
                "relay: sent={} forwarded={} received={} receipts={} retries={} untracked={}",
                self.sent_relayed,
                self.relayed,
                self.received_relayed,
                self.relay_receipts,
                self.relay_retries,
                self.relay_untracked
            )?;
        }
        if self.connections_established > 0 || !self.faults.is_empty() {
            write!(
                f,
                "connections={} dials={} faults:",
                self.connections_established, self.dials
            )?;
            if self.faults.is_empty() {
                write!(f, " none")?;
            }
            for (x, n) in &self.faults {
                write!(f, " {}={}", x.label(), n)?;
            }
            writeln!(f)?;
        }
        if self.drops.is_empty() {
            write!(f, "drops: none")
        } else {
            write!(f, "drops:")?;
            for (r, n) in &self.drops {
                write!(f, " {}={}", r.label(), n)?;
            }
            Ok(())
        }
    }
}
