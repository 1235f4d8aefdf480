//! Mailboxes: what an engine's mailbox carries, and the receive loop every thread shell uses
//! (poll briefly, then park).

use crate::mail::{Input, Receipt};

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
    Receipted(Input, Receipt),
    /// Stop after the inputs already queued.
    Stop,
}

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
        assert!(std::mem::size_of::<super::super::router_shell::RouterMail>() <= 160);
        let engine_mail = std::mem::size_of::<super::EngineMail>();
        assert!(engine_mail <= 120, "{engine_mail}");
        // 192 bytes of message envelope, and the box of a relay frame's extras.
        assert!(std::mem::size_of::<super::super::transport_link::TransportMail>() <= 200);
    }
}
