//! A sliding replay window over increasing ids (message ids per engine pair at ingress, layer
//! counters per relay session): the highest id seen and a bitmap of the ids just below it, so a
//! window costs 144 bytes whatever the traffic.

use std::time::Instant;

use crate::mail::DropReason;

/// Ids a replay window remembers below the highest seen.
pub const WINDOW_BITS: u64 = 1024;

/// A sliding window over one sequence's ids: the highest id seen and a bitmap of the
/// [`WINDOW_BITS`] ids below it (bit `i` is id `max - i`).
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    max: u64,
    bits: [u64; (WINDOW_BITS / 64) as usize],
    last_used: Instant,
}

impl ReplayWindow {
    /// A window that has seen only `id`.
    pub fn new(id: u64, now: Instant) -> ReplayWindow {
        let mut bits = [0; (WINDOW_BITS / 64) as usize];
        bits[0] = 1;
        ReplayWindow {
            max: id,
            bits,
            last_used: now,
        }
    }

    /// Whether `id` may be accepted: `Duplicate` if seen, `Replay` if older than the window.
    pub fn check(&self, id: u64) -> Result<(), DropReason> {
        if id > self.max {
            return Ok(());
        }
        let back = self.max - id;
        if back >= WINDOW_BITS {
            return Err(DropReason::Replay);
        }
        if self.bits[(back / 64) as usize] >> (back % 64) & 1 == 1 {
            return Err(DropReason::Duplicate);
        }
        Ok(())
    }

    /// Records `id` as seen (after it was checked and accepted).
    pub fn record(&mut self, id: u64, now: Instant) {
        self.last_used = now;
        if id > self.max {
            let shift = id - self.max;
            if shift >= WINDOW_BITS {
                self.bits = [0; (WINDOW_BITS / 64) as usize];
            } else {
                shift_left(&mut self.bits, shift as usize);
            }
            self.max = id;
            self.bits[0] |= 1;
        } else {
            let back = self.max - id;
            self.bits[(back / 64) as usize] |= 1 << (back % 64);
        }
    }
}

/// Shifts a little-endian multi-word bitmap towards higher bit numbers by `n` (< total bits).
fn shift_left(bits: &mut [u64], n: usize) {
    let words = n / 64;
    let rem = n % 64;
    for i in (0..bits.len()).rev() {
        let src = i as isize - words as isize;
        let mut v = if src >= 0 {
            bits[src as usize] << rem
        } else {
            0
        };
        if rem > 0 && src >= 1 {
            v |= bits[src as usize - 1] >> (64 - rem);
        }
        bits[i] = v;
    }
}

impl ReplayWindow {
    /// When the window last recorded an id.
    pub fn last_used(&self) -> Instant {
        self.last_used
    }
}
