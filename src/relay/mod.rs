//! Relaying (spec notes §3.3, §3.4, §5.1): a message from one node to another through one or
//! more relays, in nested layers so that a relay learns only the previous and the next hop.
//!
//! * [`keys`]: every node's X25519 key is the birational image of its Ed25519 node key.
//! * [`layer`]: sealing a message for a path ([`Sealer`]) and opening one layer ([`Opener`]),
//!   with padding to size classes, replay windows per sender session and an expiry.
//! * [`policy`]: whom this node relays for, and at what rate ([`RelayPolicy`], [`RateLimits`]).
//! * [`path`]: choosing relays by trust and measured round-trip time ([`choose_path`]).
//! * [`receipt`]: the destination's end-to-end receipts, carried back along the path, and the
//!   source's table of messages awaiting them (a missing receipt means another path).
//!
//! The Router hosts relaying (`Router::handle_relay`): it opens the layers that reach it,
//! forwards the inner layer as a `RELAY` frame (docs/wire.md §12G), and delivers what is for
//! this node through the ingress path as if it had come from the proven source node — so the
//! source engine's signature is what is checked, exactly as for a direct message. The relay and
//! the path are trusted with nothing but the bytes.

pub mod keys;
pub mod layer;
pub mod path;
pub mod policy;
pub mod receipt;

#[cfg(test)]
mod receipt_tests;
#[cfg(test)]
mod tests;

pub use layer::{Opened, Opener, OpenerLimits, SealError, Sealed, Sealer, SealerLimits};
pub use path::{choose_path, choose_spread_path, Candidate, RelayBoard};
pub use policy::{RateLimits, RelayFault, RelayMode, RelayPolicy};
pub use receipt::{Awaiting, CircuitLimits, Circuits, ReceiptLimits};

/// Most nodes on a relay path, destination included: deeper layers are refused
/// (`relay_too_deep`). Each layer adds [`layer::FORWARD_OVERHEAD`] bytes.
pub const MAX_RELAY_DEPTH: u8 = 8;
