//! # netmachine — the Anoma Networking Machine, synchronous and thread-per-engine
//!
//! netmachine passes messages between *engines* — actors with an Ed25519 identity — inside one
//! node and between nodes, and carries the peer-to-peer protocols built on top.
//!
//! ```text
//!   engine A ──┐                          ┌── engine B            one OS thread per box;
//!   engine C ──┼──► Router ◄──► Transport ◄┼──► other nodes       arrows are bounded
//!   ping     ──┘      ▲  │   (QUIC, mio)   │                      crossbeam mailboxes
//!                     │  ▼
//!               Network Identity Store
//! ```
//!
//! * **No async runtime.** Each engine runs on its own named thread and talks only through
//!   bounded mailboxes ([`runtime`] documents the mailbox-full policy).
//! * **Sans-IO engines.** An engine's logic takes the time and one input and records outputs in a
//!   [`Context`]; its thread shell does the I/O. The drain contract of each built-in engine is in
//!   its module doc.
//! * **Authenticated end to end.** A message that leaves its node is signed by its source engine
//!   (on that engine's thread); the receiving Router checks it — replays first, then signatures
//!   in batches — before anything else sees it. Only verification yields a [`Verified`] message.
//!   Between nodes, QUIC/TLS 1.3 is mutually authenticated with the node keys.
//! * **Nothing lost silently.** Every dropped message increments exactly one
//!   [`DropReason`] counter and is logged.
//!
//! Layers, bottom up (each imports only from those below; engines never import each other):
//! [`identity`] and [`time`] < [`wire`] < [`mail`] (the one vocabulary of requests, events and
//! envelopes) < [`runtime`] (the engine API, generic) < the engine cores ([`router`],
//! [`transport`]'s sans-IO connection core, [`identity_store`], [`pubsub`], [`engines`]) <
//! [`node`] (the wiring layer: thread shells, mailboxes, the QUIC driver) < the command line.
//! The simulator ([`sim`]) is a second wiring layer: it runs the same engine cores for many
//! nodes on one thread, over simulated connections, on a virtual clock.
//!
//! Nodes without a direct path reach each other through relays, and `OnionRouting(n)` sends a
//! message through `n` of them in nested layers ([`relay`]); mixnets are out of scope in this
//! version. The `Domain` destination is anycast: delivered on a member, sent to a known member, or routed
//! to one by [`domain_routing`].
//!
//! Start with [`NodeBuilder`]; write engines with [`Engine`]; drive one from your own thread with
//! [`Client`].

#![warn(missing_docs)]

pub mod chaos;
pub mod clustering;
pub mod config;
pub mod domain;
pub mod domain_routing;
pub mod engines;
pub mod identity;
pub mod identity_store;
pub mod interdomain;
pub mod mail;
pub mod node;
pub mod pubsub;
pub mod relay;
pub mod rng;
pub mod router;
pub mod runtime;
pub mod sampling;
pub mod sim;
pub mod stand_in;
pub mod storage;
pub mod time;
pub mod topology;
pub mod transport;
pub mod wire;

pub use identity::{DomainIdentity, EngineIdentity, Keypair, NodeIdentity, TopicIdentity};
pub use node::client::Client;
#[cfg(feature = "testing")]
pub use node::{EgressHandle, IngressHandle};
pub use node::{EngineSpec, Node, NodeBuilder, NodeError, NodeLimits, ShutdownReport};
pub use runtime::stats::{DropReason, StatsSnapshot};
pub use runtime::{Context, Engine, Input, Message, Origin, SendOptions, Sender};
pub use time::{Now, Timestamp};
pub use wire::{Destination, EngineMessage, MessageId, Protocol, RoutingScope, Verified};
