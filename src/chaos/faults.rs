//! Fault decisions, sans-IO: the seeded streams ([`SplitMix64`], [`stream_seed`]) and the
//! [`FaultLink`] that decides each datagram's [`Fate`] in one direction, usable without sockets
//! (for example by a simulator).

use std::time::Duration;

use super::*;

pub use crate::rng::SplitMix64;

/// The seed of an independent stream for `(client, direction)` derived from `seed`.
pub fn stream_seed(seed: u64, client: u64, direction: Direction) -> u64 {
    let lane = client.wrapping_mul(2).wrapping_add(direction as u64);
    let mut g = SplitMix64::new(seed ^ lane.wrapping_mul(0xd1b5_4a32_d192_ed03));
    g.next_u64()
}

/// Which way a datagram travels through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From a client to `forward`.
    Upstream = 0,
    /// From `forward` back to a client.
    Downstream = 1,
}

/// The faults of one direction of a link: [`ChaosConfig`] without addresses and seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultSettings {
    /// Probability of dropping a datagram.
    pub loss: f64,
    /// Probability of sending a datagram twice.
    pub dup: f64,
    /// Probability of holding a datagram back until the next one.
    pub reorder: f64,
    /// Delay added to every datagram.
    pub delay: Duration,
    /// Half-width of the uniform jitter around `delay`.
    pub jitter: Duration,
    /// Probability of flipping 1 to 3 bits.
    pub corrupt: f64,
    /// `(on, off)` blackhole cycle.
    pub blackhole: Option<(Duration, Duration)>,
}

impl FaultSettings {
    /// No fault at all.
    pub const NONE: FaultSettings = FaultSettings {
        loss: 0.0,
        dup: 0.0,
        reorder: 0.0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        corrupt: 0.0,
        blackhole: None,
    };

    /// Whether `elapsed` (time since the proxy started) falls in an `on` part of the blackhole
    /// cycle.
    pub fn blackholed(&self, elapsed: Duration) -> bool {
        match self.blackhole {
            Some((on, off)) => {
                let cycle = on.as_nanos() + off.as_nanos();
                cycle > 0 && elapsed.as_nanos() % cycle < on.as_nanos()
            }
            None => false,
        }
    }
}

/// What happened to one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Dropped because the blackhole was on.
    Blackholed,
    /// Dropped by random loss.
    Lost,
    /// Passed on (possibly delayed, corrupted, duplicated or held back).
    Passed {
        /// Copies sent: 1, or 2 when duplicated.
        copies: u8,
        /// Bits flipped (0 to 3).
        flipped: u8,
        /// Whether it was held back to be released after the next datagram.
        held: bool,
        /// Whether it got a non-zero delay.
        delayed: bool,
    },
}

/// A datagram to send at a given time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// When to send it, as time since the proxy started.
    pub at: Duration,
    /// The bytes.
    pub datagram: Vec<u8>,
}

/// The fault decisions of one direction of one client's traffic, without any I/O: datagrams
/// in, [`Release`]s out. Time is passed in as the elapsed time since the proxy started, so the
/// logic is deterministic for a given seed and input.
#[derive(Clone, Debug)]
pub struct FaultLink {
    settings: FaultSettings,
    rng: SplitMix64,
    /// A datagram held back for reordering, with when it was held.
    held: Option<(Duration, Vec<u8>)>,
}

impl FaultLink {
    /// A link applying `settings` with decisions drawn from a generator seeded with `seed`.
    pub fn new(settings: FaultSettings, seed: u64) -> FaultLink {
        FaultLink {
            settings,
            rng: SplitMix64::new(seed),
            held: None,
        }
    }

    /// Decides the fate of `datagram`, arriving `now` after the proxy started, and appends what
    /// must be sent (with when) to `out`, in sending order. A datagram held back earlier is
    /// released right after this one when this one passes.
    pub fn on_datagram(
        &mut self,
        now: Duration,
        mut datagram: Vec<u8>,
        out: &mut Vec<Release>,
    ) -> Fate {
        // Always the same draws, whatever is decided, so that the n-th datagram's fate depends
        // only on the seed and n.
        let u_loss = self.rng.next_f64();
        let u_dup = self.rng.next_f64();
        let u_reorder = self.rng.next_f64();
        let u_corrupt = self.rng.next_f64();
        let u_jitter = self.rng.next_f64();
        let bits = self.rng.next_u64();
        let s = self.settings;
        if s.blackholed(now) {
            return Fate::Blackholed;
        }
        if u_loss < s.loss {
            return Fate::Lost;
        }
        let flipped = if u_corrupt < s.corrupt && !datagram.is_empty() {
            corrupt(&mut datagram, bits)
        } else {
            0
        };
        let delay = jittered(s.delay, s.jitter, u_jitter);
        let at = now + delay;
        let copies = if u_dup < s.dup { 2 } else { 1 };
        let hold = u_reorder < s.reorder && self.held.is_none();
        let fate = Fate::Passed {
            copies,
            flipped,
            held: hold,
            delayed: !delay.is_zero(),
        };
        if hold {
            // A duplicated datagram sends its first copy now and holds the second.
            if copies == 2 {
                out.push(Release {
                    at,
                    datagram: datagram.clone(),
                });
            }
            self.held = Some((now, datagram));
            return fate;
        }
        if copies == 2 {
            out.push(Release {
                at,
                datagram: datagram.clone(),
            });
        }
        out.push(Release { at, datagram });
        if let Some((_, held)) = self.held.take() {
            out.push(Release { at, datagram: held });
        }
        fate
    }

    /// When the held datagram (if any) must be released even if no other datagram comes.
    pub fn hold_deadline(&self) -> Option<Duration> {
        self.held.as_ref().map(|(t, _)| *t + REORDER_MAX_HOLD)
    }

    /// Releases the held datagram if its deadline has passed at `now`.
    pub fn release_expired(&mut self, now: Duration) -> Option<Release> {
        if self.hold_deadline().is_some_and(|d| now >= d) {
            let (held_at, datagram) = self.held.take()?;
            let delay = self.settings.delay;
            return Some(Release {
                at: (held_at + delay).max(now),
                datagram,
            });
        }
        None
    }

    /// Takes the held datagram, if any (at shutdown).
    pub fn take_held(&mut self) -> Option<Vec<u8>> {
        self.held.take().map(|(_, d)| d)
    }
}

/// `delay ± jitter`, uniformly, given a uniform `u` in [0, 1); never negative.
fn jittered(delay: Duration, jitter: Duration, u: f64) -> Duration {
    if jitter.is_zero() {
        return delay;
    }
    let lo = delay.as_secs_f64() - jitter.as_secs_f64();
    let t = lo + u * 2.0 * jitter.as_secs_f64();
    if t <= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(t)
    }
}

/// Flips 1 to 3 distinct bits of `datagram` (non-empty) chosen from `bits`; returns how many.
fn corrupt(datagram: &mut [u8], bits: u64) -> u8 {
    let mut g = SplitMix64::new(bits);
    let total_bits = datagram.len() as u64 * 8;
    let wanted = (1 + g.below(3)).min(total_bits);
    let mut chosen: Vec<u64> = Vec::with_capacity(3);
    while (chosen.len() as u64) < wanted {
        let b = g.below(total_bits);
        if !chosen.contains(&b) {
            chosen.push(b);
        }
    }
    for b in &chosen {
        datagram[(b / 8) as usize] ^= 1 << (b % 8);
    }
    chosen.len() as u8
}
