//! The Network Identity Store's thread: requests in, answers and notifications out.
//!
//! Answers to engines never wait: a full engine mailbox drops the answer (counted as
//! `mailbox_full`). Notifications to the Router wait for room, which is safe because the Router
//! never waits on this thread.

use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::directory::Directory;
use super::router_shell::RouterMail;
use super::transport_link::{TransportLink, TransportMail};
use crate::identity_store::IdentityStore;
use crate::mail::identity::{IdentityRequest, Party};
use crate::mail::Input;
use crate::runtime::stats::NodeStats;

/// What the store's mailbox carries.
// Mail moves by value through a bounded channel: boxing the large variant would add an
// allocation per message for no saving (the channel's slots are sized by the largest variant).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum NisMail {
    /// A request.
    Request {
        /// Who asked.
        from: Party,
        /// The request.
        req: IdentityRequest,
    },
    /// Shut down.
    Stop,
}

pub(crate) struct NisShell {
    pub(crate) store: IdentityStore,
    pub(crate) mailbox: Receiver<NisMail>,
    pub(crate) router: crossbeam_channel::Sender<RouterMail>,
    pub(crate) transport: Option<TransportLink>,
    pub(crate) directory: Arc<Directory>,
    pub(crate) stats: Arc<NodeStats>,
}

impl NisShell {
    pub(crate) fn run(mut self) {
        self.carry_out();
        while let Ok(mail) = self.mailbox.recv() {
            match mail {
                NisMail::Request { from, req } => self.store.handle(from, req),
                NisMail::Stop => break,
            }
            self.carry_out();
        }
        log::debug!("identity store stopped");
    }

    fn carry_out(&mut self) {
        while let Some((to, event)) = self.store.poll_output() {
            match to {
                Party::Router => {
                    let _ = self.router.send(RouterMail::Identity(Box::new(event)));
                }
                Party::Transport => {
                    if let Some(t) = &self.transport {
                        t.send(TransportMail::Identity(Box::new(event)));
                    }
                }
                Party::Node => {}
                Party::Engine(e) => {
                    if let Err(reason) =
                        self.directory.deliver(&e, Input::Identity(Box::new(event)))
                    {
                        self.stats.dropped(reason);
                        log::debug!(
                            "identity store: answer to {} dropped: {}",
                            e.short(),
                            reason.label()
                        );
                    }
                }
            }
        }
    }
}
