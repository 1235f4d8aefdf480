//! The engine runtime: mailboxes, the thread shell that drives an engine, timers, counters, and
//! the directory of a node's local engines.
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

pub mod client;
mod directory;
pub mod engine;
pub(crate) mod shell;
pub mod stats;
mod timers;

pub(crate) use directory::Directory;
pub use engine::{
    Context, Engine, Input, Message, Origin, Outgoing, Output, SendOptions, Undeliverable,
};

/// Default depth of an engine's mailbox: 4,096 inputs.
pub const DEFAULT_MAILBOX_DEPTH: usize = 4096;

/// Default depth of the Router's mailbox: 65,536 messages.
pub const DEFAULT_ROUTER_MAILBOX_DEPTH: usize = 65_536;

/// What an engine's mailbox carries.
// Mail moves by value through a bounded channel: boxing the large variant would add an
// allocation per message for no saving (the channel's slots are sized by the largest variant).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum EngineMail {
    /// An input for the engine.
    Input(Input),
    /// A message from another node, with the receipt the shell hands back to the Router once the
    /// engine has handled it (so that the sender's Transport is told only then).
    Receipted(Input, crate::transport::Receipt),
    /// Stop after the inputs already queued.
    Stop,
}

/// How long a thread shell polls its empty mailbox before it parks, by default (50 µs).
///
/// Waking a parked thread costs the sender a futex call and the receiver a scheduler round trip
/// (tens of microseconds). Polling first keeps one-way latency at a few microseconds while
/// messages arrive more often than this; a busy mailbox is never empty long enough for it to
/// matter, and an idle node parks every thread. `NodeLimits::spin_before_park` sets it per
/// node: raise it (hundreds of microseconds) for latency at the price of CPU, or set it to zero
/// where CPU is scarcer than latency.
pub const DEFAULT_SPIN_BEFORE_PARK: std::time::Duration = std::time::Duration::from_micros(50);

/// Receives from `rx`, polling for up to `spin` before blocking until `deadline` (or forever
/// without one).
pub(crate) fn recv_spin<T>(
    rx: &crossbeam_channel::Receiver<T>,
    deadline: Option<std::time::Instant>,
    spin: std::time::Duration,
) -> Result<T, crossbeam_channel::RecvTimeoutError> {
    use crossbeam_channel::{RecvTimeoutError, TryRecvError};
    let start = std::time::Instant::now();
    let spin_until = start + spin;
    loop {
        match rx.try_recv() {
            Ok(m) => return Ok(m),
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        let now = std::time::Instant::now();
        if now >= spin_until || deadline.is_some_and(|d| now >= d) {
            break;
        }
        std::hint::spin_loop();
    }
    match deadline {
        Some(d) => rx.recv_deadline(d),
        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
    }
}

#[cfg(test)]
mod tests {
    /// Bounded channels allocate every slot up front, sized by the largest mail variant; large
    /// payloads are boxed so a deep mailbox stays cheap (65,536 router slots ≈ 10 MiB).
    #[test]
    fn mailbox_slots_stay_small() {
        assert!(std::mem::size_of::<crate::router::RouterMail>() <= 160);
        let engine_mail = std::mem::size_of::<super::EngineMail>();
        assert!(engine_mail <= 120, "{engine_mail}");
        assert!(std::mem::size_of::<crate::transport::TransportMail>() <= 192);
    }
}
