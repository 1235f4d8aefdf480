//! The proxy's configuration ([`ChaosConfig`]), its validation and the reasons it is refused
//! ([`ChaosError`]).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::*;

/// What the proxy does. Probabilities are per datagram and independent of each other.
#[derive(Clone, Debug, PartialEq)]
pub struct ChaosConfig {
    /// Where clients send their datagrams (port 0 picks a free port; see
    /// [`ChaosHandle::listen_addr`]).
    pub listen: SocketAddr,
    /// Where datagrams are relayed to (the node behind the proxy).
    pub forward: SocketAddr,
    /// Probability that a datagram is dropped, in [0, 1].
    pub loss: f64,
    /// Probability that a datagram is sent twice, in [0, 1].
    pub dup: f64,
    /// Probability that a datagram is held back and released after the next one, in [0, 1].
    pub reorder: f64,
    /// Delay added to every datagram, in milliseconds.
    pub delay_ms: u64,
    /// Jitter: the delay is drawn uniformly from `[delay_ms − jitter_ms, delay_ms + jitter_ms]`
    /// (never below zero), in milliseconds.
    pub jitter_ms: u64,
    /// Probability that 1 to 3 random bits of a datagram are flipped, in [0, 1].
    pub corrupt: f64,
    /// `(on, off)`: drop everything for `on`, then pass for `off`, repeating from the start of
    /// the proxy. Both must be positive.
    pub blackhole: Option<(Duration, Duration)>,
    /// Seed of the fault decisions.
    pub seed: u64,
}

/// Longest delay or jitter accepted: one hour, in milliseconds.
pub const MAX_DELAY_MS: u64 = 3_600_000;

impl ChaosConfig {
    /// A proxy from `listen` to `forward` that injects no fault (seed 0).
    pub fn new(listen: SocketAddr, forward: SocketAddr) -> ChaosConfig {
        ChaosConfig {
            listen,
            forward,
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
            delay_ms: 0,
            jitter_ms: 0,
            corrupt: 0.0,
            blackhole: None,
            seed: 0,
        }
    }

    /// Checks the configuration: probabilities in [0, 1], delays at most [`MAX_DELAY_MS`],
    /// blackhole periods positive, `forward` a usable address that is not the proxy's own.
    pub fn validate(&self) -> Result<(), ChaosError> {
        for (name, p) in [
            ("loss", self.loss),
            ("dup", self.dup),
            ("reorder", self.reorder),
            ("corrupt", self.corrupt),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ChaosError::Probability { name, value: p });
            }
        }
        for (name, ms) in [("delay_ms", self.delay_ms), ("jitter_ms", self.jitter_ms)] {
            if ms > MAX_DELAY_MS {
                return Err(ChaosError::Delay { name, ms });
            }
        }
        if let Some((on, off)) = self.blackhole {
            if on.is_zero() || off.is_zero() {
                return Err(ChaosError::Blackhole { on, off });
            }
        }
        if self.forward.port() == 0 || self.forward.ip().is_unspecified() {
            return Err(ChaosError::Forward(self.forward));
        }
        // Forwarding to the proxy's own socket would loop.
        if self.forward.port() == self.listen.port()
            && (self.forward.ip() == self.listen.ip() || self.listen.ip().is_unspecified())
        {
            return Err(ChaosError::SameAddress(self.listen));
        }
        Ok(())
    }

    /// The fault settings (everything but the addresses and the seed).
    pub fn faults(&self) -> FaultSettings {
        FaultSettings {
            loss: self.loss,
            dup: self.dup,
            reorder: self.reorder,
            delay: Duration::from_millis(self.delay_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            corrupt: self.corrupt,
            blackhole: self.blackhole,
        }
    }
}

/// Why a [`ChaosConfig`] was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum ChaosError {
    /// A probability outside [0, 1] (or not a number).
    Probability {
        /// Which one.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// A delay or jitter over [`MAX_DELAY_MS`].
    Delay {
        /// Which one.
        name: &'static str,
        /// Its value in milliseconds.
        ms: u64,
    },
    /// A blackhole period that is zero.
    Blackhole {
        /// The `on` period.
        on: Duration,
        /// The `off` period.
        off: Duration,
    },
    /// A forward address with port 0 or an unspecified IP.
    Forward(SocketAddr),
    /// `forward` is the proxy's own `listen` address (the same address, or the same port when
    /// listening on every address).
    SameAddress(SocketAddr),
}

impl fmt::Display for ChaosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChaosError::Probability { name, value } => {
                write!(f, "{name} must be a probability in [0, 1], not {value}")
            }
            ChaosError::Delay { name, ms } => {
                write!(f, "{name} must be at most {MAX_DELAY_MS} ms, not {ms}")
            }
            ChaosError::Blackhole { on, off } => write!(
                f,
                "blackhole periods must both be positive, not on {}s off {}s",
                on.as_secs_f64(),
                off.as_secs_f64()
            ),
            ChaosError::Forward(a) => write!(
                f,
                "forward address {a} cannot be sent to (port 0 or unspecified IP)"
            ),
            ChaosError::SameAddress(a) => {
                write!(f, "listen and forward are the same address ({a})")
            }
        }
    }
}

impl std::error::Error for ChaosError {}
