//! Time as engines see it: a monotonic instant for timers and a wall-clock timestamp for what
//! crosses the wire (message expiry, advert creation).
//!
//! Engines never read the clock. Their thread shell reads it once per batch of inputs and passes
//! a [`Now`] in, so engine logic runs the same under a test's or a simulator's virtual clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (UTC), as carried on the wire.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, bincode::Encode, bincode::Decode,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// `self` moved forward by `d`, saturating.
    pub fn after(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(d.as_millis().min(u64::MAX as u128) as u64),
        )
    }

    /// How long from `now` until `self`; zero if `self` has passed.
    pub fn until(self, now: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(now.0))
    }
}

/// The current time, read once by a thread shell and handed to engine logic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for timers and deadlines.
    pub instant: Instant,
    /// Wall-clock time, for expiry and anything on the wire.
    pub wall: Timestamp,
}

impl Now {
    /// Reads both clocks. Only thread shells, tests and the command-line tool call this.
    pub fn read() -> Now {
        Now {
            instant: Instant::now(),
            wall: wall_clock(),
        }
    }

    /// A time `d` later on both clocks (for tests and simulators).
    pub fn advanced(self, d: Duration) -> Now {
        Now {
            instant: self.instant + d,
            wall: self.wall.after(d),
        }
    }
}

/// The wall clock as a [`Timestamp`].
pub fn wall_clock() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Timestamp(ms)
}

/// Nanoseconds since the Unix epoch: the starting point of an engine's message ids, so that ids
/// keep increasing across restarts of the engine.
pub fn wall_clock_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
