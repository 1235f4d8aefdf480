//! Posting inputs for local engines through the Router, for threads that are not engines (the
//! Transport's answers and notifications). The Router is the one owner of the local engine
//! table, so everything for an engine goes through it; this never waits (a full Router mailbox
//! refuses the input, which the caller counts).

use crossbeam_channel::{Sender, TrySendError};

use super::router_shell::RouterMail;
use crate::identity::EngineIdentity;
use crate::mail::{DropReason, Input};

/// A handle that posts inputs for local engines to the Router.
#[derive(Clone)]
pub(crate) struct Directory {
    router: Sender<RouterMail>,
}

impl Directory {
    pub(crate) fn new(router: Sender<RouterMail>) -> Directory {
        Directory { router }
    }

    /// Posts `input` for the local engine `identity`, without waiting.
    pub(crate) fn deliver(
        &self,
        identity: &EngineIdentity,
        input: Input,
    ) -> Result<(), DropReason> {
        let mail = RouterMail::ForEngine {
            to: *identity,
            input,
        };
        match self.router.try_send(mail) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(DropReason::MailboxFull),
            Err(TrySendError::Disconnected(_)) => Err(DropReason::Shutdown),
        }
    }
}
