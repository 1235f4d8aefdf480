//! The engine runtime: the [`Engine`] trait and the [`Context`] an engine acts through, timers,
//! counters, and the mailbox policy every thread shell follows. Generic: it names no built-in
//! engine; the vocabulary engines exchange is in [`crate::mail`], and the thread shells that
//! drive engines are in the wiring layer ([`crate::node`]).
//!
//! # Mailboxes and the mailbox-full policy
//!
//! Every engine has one bounded mailbox (default depth [`DEFAULT_MAILBOX_DEPTH`]). Who waits when
//! a mailbox is full is chosen so that no cycle of waiting threads can form:
//!
//! * an engine sending to the Router **waits** while the Router's mailbox is full — back-pressure
//!   on local producers;
//! * the Router, the Network Identity Store and the Transport **never wait** on an engine's
//!   mailbox: if it is full, the message is dropped, counted as `mailbox_full`, and its sender
//!   gets [`Input::Undeliverable`] if it asked (the default).
//!
//! So one slow engine cannot stall the node; it loses messages, visibly.

pub mod engine;
pub mod replay_window;
pub mod stats;
pub(crate) mod timers;

pub use crate::mail::{Input, Message, Origin, Outgoing, Output, Sender, Undeliverable};
pub use engine::{Context, Engine, SendOptions};

/// Default depth of an engine's mailbox: 4,096 inputs.
pub const DEFAULT_MAILBOX_DEPTH: usize = 4096;

/// Default depth of the Router's mailbox: 65,536 messages.
pub const DEFAULT_ROUTER_MAILBOX_DEPTH: usize = 65_536;

/// How long a thread shell polls its empty mailbox before it parks, by default (50 µs).
///
/// Waking a parked thread costs the sender a futex call and the receiver a scheduler round trip
/// (tens of microseconds). Polling first keeps one-way latency at a few microseconds while
/// messages arrive more often than this; a busy mailbox is never empty long enough for it to
/// matter, and an idle node parks every thread. `NodeLimits::spin_before_park` sets it per
/// node: raise it (hundreds of microseconds) for latency at the price of CPU, or set it to zero
/// where CPU is scarcer than latency.
pub const DEFAULT_SPIN_BEFORE_PARK: std::time::Duration = std::time::Duration::from_micros(50);
