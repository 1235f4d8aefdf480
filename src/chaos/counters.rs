//! What happened to the datagrams: the counters per direction ([`DirectionCounters`],
//! [`ChaosCounters`]) and their live, atomically updated form that the proxy thread writes while
//! its handle reads them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// What happened to the datagrams of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionCounters {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams sent on (a duplicated datagram counts twice).
    pub forwarded: u64,
    /// Datagrams dropped by random loss.
    pub dropped: u64,
    /// Datagrams sent twice.
    pub duplicated: u64,
    /// Datagrams held back and released after a later one.
    pub reordered: u64,
    /// Datagrams given a non-zero delay.
    pub delayed: u64,
    /// Datagrams with bits flipped.
    pub corrupted: u64,
    /// Datagrams dropped because the blackhole was on.
    pub blackholed: u64,
    /// Datagrams the proxy could not relay: too many clients, or the send failed (full socket
    /// buffer, refused by the destination).
    pub errors: u64,
}

impl fmt::Display for DirectionCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received={} forwarded={} dropped={} duplicated={} reordered={} delayed={} \
             corrupted={} blackholed={} errors={}",
            self.received,
            self.forwarded,
            self.dropped,
            self.duplicated,
            self.reordered,
            self.delayed,
            self.corrupted,
            self.blackholed,
            self.errors
        )
    }
}

/// The proxy's counters, per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChaosCounters {
    /// From clients to `forward`.
    pub upstream: DirectionCounters,
    /// From `forward` back to clients.
    pub downstream: DirectionCounters,
    /// Clients seen since the start.
    pub clients: u64,
}

impl fmt::Display for ChaosCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "clients={}", self.clients)?;
        writeln!(f, "upstream:   {}", self.upstream)?;
        write!(f, "downstream: {}", self.downstream)
    }
}

/// Live counters of one direction.
#[derive(Default)]
pub(super) struct LiveDirection {
    pub(super) received: AtomicU64,
    pub(super) forwarded: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    delayed: AtomicU64,
    corrupted: AtomicU64,
    blackholed: AtomicU64,
    pub(super) errors: AtomicU64,
}

impl LiveDirection {
    pub(super) fn count(&self, fate: Fate) {
        let add = |c: &AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        add(&self.received);
        match fate {
            Fate::Blackholed => add(&self.blackholed),
            Fate::Lost => add(&self.dropped),
            Fate::Passed {
                copies,
                flipped,
                held,
                delayed,
            } => {
                if copies > 1 {
                    add(&self.duplicated);
                }
                if flipped > 0 {
                    add(&self.corrupted);
                }
                if held {
                    add(&self.reordered);
                }
                if delayed {
                    add(&self.delayed);
                }
            }
        }
    }

    pub(super) fn snapshot(&self) -> DirectionCounters {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirectionCounters {
            received: l(&self.received),
            forwarded: l(&self.forwarded),
            dropped: l(&self.dropped),
            duplicated: l(&self.duplicated),
            reordered: l(&self.reordered),
            delayed: l(&self.delayed),
            corrupted: l(&self.corrupted),
            blackholed: l(&self.blackholed),
            errors: l(&self.errors),
        }
    }
}

#[derive(Default)]
pub(super) struct LiveCounters {
    pub(super) upstream: LiveDirection,
    downstream: LiveDirection,
    pub(super) clients: AtomicU64,
}

impl LiveCounters {
    pub(super) fn dir(&self, d: Direction) -> &LiveDirection {
        match d {
            Direction::Upstream => &self.upstream,
            Direction::Downstream => &self.downstream,
        }
    }

    pub(super) fn snapshot(&self) -> ChaosCounters {
        ChaosCounters {
            upstream: self.upstream.snapshot(),
            downstream: self.downstream.snapshot(),
            clients: self.clients.load(Ordering::Relaxed),
        }
    }
}
