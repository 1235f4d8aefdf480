//! A UDP fault proxy: loss, duplication, reordering, delay with jitter, corruption and
//! blackholes between nodes, reproducible from a seed.
//!
//! `tc netem` is not available where netmachine is tested, so faults come from this proxy (design
//! §8). It sits in front of one node: a peer dials the proxy's `listen` address instead of the
//! node's, and the proxy relays every datagram to `forward` and every reply back.
//!
//! ```text
//!   client A ─┐                    ┌─ upstream socket for A ─┐
//!   client C ─┼──► listen ──faults─┼─ upstream socket for C ─┼──► forward (the node)
//!             │   (one socket)     └─────────────────────────┘
//!             └─◄── listen ◄──faults── replies, mapped back to their client
//! ```
//!
//! * **Clients.** Each client address gets its own upstream socket (bound to an ephemeral port
//!   and connected to `forward`), so the node sees one distinct peer address per client and its
//!   replies map back to the right client. At most [`MAX_CLIENTS`] clients at once; a client
//!   silent for [`CLIENT_IDLE`] is forgotten.
//! * **Faults**, in both directions, decided per datagram by a [`FaultLink`] — the sans-IO part,
//!   usable without sockets (for example by a simulator):
//!   blackhole (everything dropped during the `on` part of a repeating `on`/`off` cycle that
//!   starts when the proxy starts), loss (dropped), corruption (1 to 3 random bits flipped),
//!   duplication (sent twice), delay with uniform jitter (released later from a timer queue) and
//!   reordering (held back and released right after the next datagram of the same direction, or
//!   after [`REORDER_MAX_HOLD`] if none comes).
//! * **Replay.** Decisions come from [`SplitMix64`] streams derived from the seed, one per
//!   (client, direction), clients numbered in order of first contact; every datagram consumes
//!   the same number of draws whatever is decided. The n-th datagram of a client in a direction
//!   therefore meets the same fate in every run with the same seed and configuration (timing
//!   still varies from run to run, so blackholes — which follow the clock — and what the nodes
//!   send do not replay exactly).
//! * **Counters** per direction ([`ChaosCounters`]), readable while the proxy runs.
//!
//! The proxy runs on one thread named `nm-chaos` (a mio poll over its sockets). Start it with
//! [`Chaos::start`]; stop it with [`ChaosHandle::stop`] (or by dropping the handle). The
//! `netmachine chaos` command runs one from the command line.

use std::time::Duration;

use mio::Token;

mod config;
mod counters;
mod faults;
mod proxy;
#[cfg(test)]
mod tests;

pub use config::{ChaosConfig, ChaosError, MAX_DELAY_MS};
pub use counters::{ChaosCounters, DirectionCounters};
pub use faults::{stream_seed, Direction, Fate, FaultLink, FaultSettings, Release, SplitMix64};
pub use proxy::{Chaos, ChaosHandle};

/// Most clients the proxy relays for at once; datagrams from further clients are dropped and
/// counted as errors.
pub const MAX_CLIENTS: usize = 1024;

/// A client that sent nothing and received nothing for this long is forgotten (its upstream
/// socket closed): 120 s.
pub const CLIENT_IDLE: Duration = Duration::from_secs(120);

/// Longest time a datagram is held back for reordering when no other datagram follows it:
/// 50 ms. It is then released on its own.
pub const REORDER_MAX_HOLD: Duration = Duration::from_millis(50);

/// Largest datagram relayed (the largest UDP payload).
const MAX_DATAGRAM: usize = 65_535;
/// The listen socket's token; clients use their number.
const LISTEN: Token = Token(0);
/// The waker's token.
const WAKE: Token = Token(usize::MAX);
/// How often idle clients are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Socket buffer size requested from the kernel.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;
