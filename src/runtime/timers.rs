//! An engine's timers: one deadline per token, fired in deadline order.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// Pending timers of one engine.
#[derive(Default, Debug)]
pub(crate) struct Timers {
    by_token: HashMap<u64, Instant>,
    by_time: BTreeSet<(Instant, u64)>,
}

impl Timers {
    pub(crate) fn set(&mut self, token: u64, at: Instant) {
        if let Some(old) = self.by_token.insert(token, at) {
            self.by_time.remove(&(old, token));
        }
        self.by_time.insert((at, token));
    }

    pub(crate) fn cancel(&mut self, token: u64) {
        if let Some(old) = self.by_token.remove(&token) {
            self.by_time.remove(&(old, token));
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Removes and returns the next timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<u64> {
        let &(at, token) = self.by_time.first()?;
        if at > now {
            return None;
        }
        self.by_time.remove(&(at, token));
        self.by_token.remove(&token);
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fire_in_order_and_replace() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.set(1, t0 + Duration::from_millis(30));
        t.set(2, t0 + Duration::from_millis(10));
        t.set(3, t0 + Duration::from_millis(20));
        t.set(1, t0 + Duration::from_millis(5)); // replaces
        t.cancel(3);
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_millis(5)));
        let later = t0 + Duration::from_millis(100);
        assert_eq!(t.pop_due(later), Some(1));
        assert_eq!(t.pop_due(later), Some(2));
        assert_eq!(t.pop_due(later), None);
    }
}
