//! The one vocabulary engines speak: every request, event and envelope type that passes between
//! the engines of a node, and between a node's engines and its Router and Transport.
//!
//! This module sits below the runtime and the engines: it names no engine's implementation, and
//! every engine (Router, Transport, Network Identity Store, PubSub, application engines) imports
//! the types it exchanges from here rather than from another engine's module. Layers, bottom up:
//! identity and time < wire < **mail** < runtime < engine cores < wiring layer (`node`).
//!
//! * [`envelope`]: what an engine receives ([`Input`]) and asks for ([`Output`]), the message
//!   envelopes ([`Message`], [`Outgoing`], [`Undeliverable`]) and system mail ([`System`]).
//! * [`route`]: routing metadata ([`RouteHeader`]), messages on their way out ([`Outbound`],
//!   [`RemoteSend`]), whom to tell of a drop ([`Bounce`]) and delivery receipts ([`Receipt`]).
//! * [`reason`]: why a message was dropped ([`DropReason`]) and connection faults ([`Fault`]).
//! * [`topic`], [`identity`], [`transport`]: requests to and events from the Router's topic
//!   service, the Network Identity Store and the Transport.
//! * [`pubsub`]: system mail between the Router and the PubSub engine.
//! * [`domain`], [`interdomain`]: the domain engines' and the inter-domain engines' shared
//!   directories and local mail.
//! * [`storage`]: local mail to and from the Storage engine.

pub mod domain;
pub mod envelope;
pub mod identity;
pub mod interdomain;
pub mod pubsub;
pub mod reason;
pub mod route;
pub mod storage;
pub mod topic;
pub mod transport;

pub(crate) use envelope::SystemMail;
pub use envelope::{
    EventBodyError, Input, Message, Origin, Outgoing, Output, Sender, System, Undeliverable,
};
pub use reason::{DropReason, Fault};
pub use route::{Bounce, Outbound, Receipt, RelayFrame, RemoteSend, RouteHeader};
