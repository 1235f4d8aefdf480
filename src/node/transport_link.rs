//! The Transport's mailbox and the handle other threads use to reach it, which wakes the
//! Transport's poll loop.

use crate::identity::EngineIdentity;
use crate::mail::identity::{IdentityEvent, ToPeers};
use crate::mail::transport::{CutOff, TransportRequest};
use crate::mail::{Receipt, RemoteSend};

/// What the Transport's mailbox carries.
#[derive(Debug)]
pub(crate) enum TransportMail {
    /// A request from a local engine.
    Request {
        /// The engine that asked.
        from: EngineIdentity,
        /// The request.
        req: TransportRequest,
    },
    /// A message from the Router for another node.
    Send(RemoteSend),
    /// A Network Identity Store notification (adverts of peers).
    Identity(Box<IdentityEvent>),
    /// The identity store's part of the identity exchange with peers.
    Exchange(Box<ToPeers>),
    /// Messages the Router has finished with (admitted and delivered, or dropped): only now are
    /// they acknowledged to the peer that sent them.
    Processed(Vec<Receipt>),
    /// The Router's order to cut a misbehaving peer off.
    CutOff(CutOff),
    /// Shut down.
    Stop,
}

/// A handle to the Transport's mailbox that wakes its poll loop, coalescing wakes: the loop is
/// woken only if it has not been woken since it last drained the mailbox.
#[derive(Clone)]
pub(crate) struct TransportLink {
    tx: crossbeam_channel::Sender<TransportMail>,
    waker: std::sync::Arc<mio::Waker>,
    woken: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TransportLink {
    pub(crate) fn new(
        tx: crossbeam_channel::Sender<TransportMail>,
        waker: std::sync::Arc<mio::Waker>,
        woken: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> TransportLink {
        TransportLink { tx, waker, woken }
    }

    /// Queues `mail` (waiting while the mailbox is full) and wakes the loop if needed.
    /// Returns false if the Transport has stopped.
    pub(crate) fn send(&self, mail: TransportMail) -> bool {
        if self.tx.send(mail).is_err() {
            return false;
        }
        self.wake();
        true
    }

    /// Queues `mail` without waiting. Returns it back if the mailbox is full or closed.
    #[allow(clippy::result_large_err)] // hands the mail back rather than dropping it
    pub(crate) fn try_send(&self, mail: TransportMail) -> Result<(), TransportMail> {
        match self.tx.try_send(mail) {
            Ok(()) => {
                self.wake();
                Ok(())
            }
            Err(e) => Err(e.into_inner()),
        }
    }

    fn wake(&self) {
        if !self.woken.swap(true, std::sync::atomic::Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                log::error!("transport: wake failed: {e}");
            }
        }
    }
}
