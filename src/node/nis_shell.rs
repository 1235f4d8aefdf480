//! The Network Identity Store's thread: requests in, answers and notifications out.
//!
//! Answers to engines go through the Router (the one owner of the local engine table), which
//! never waits on an engine: a full engine mailbox drops the answer, counted as `mailbox_full`.
//! This thread waits for room in the Router's mailbox, which is safe because the Router never
//! waits on this thread.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::router_shell::RouterMail;
use super::transport_link::{TransportLink, TransportMail};
use crate::identity_store::IdentityStore;
use crate::mail::identity::{IdentityEvent, IdentityRequest, Party};
use crate::mail::{DropReason, Input};
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
    /// A request from the node itself (status views), answered on `reply`.
    Query {
        /// The request.
        req: IdentityRequest,
        /// Where the answer goes.
        reply: Sender<IdentityEvent>,
    },
    /// Shut down.
    Stop,
}

pub(crate) struct NisShell {
    pub(crate) store: IdentityStore,
    pub(crate) mailbox: Receiver<NisMail>,
    pub(crate) router: crossbeam_channel::Sender<RouterMail>,
    pub(crate) transport: Option<TransportLink>,
    pub(crate) stats: Arc<NodeStats>,
    /// Where the answer to the [`NisMail::Query`] being handled goes.
    pub(crate) reply: Option<Sender<IdentityEvent>>,
}

impl NisShell {
    pub(crate) fn run(mut self) {
        self.carry_out();
        while let Ok(mail) = self.mailbox.recv() {
            match mail {
                NisMail::Request { from, req } => self.store.handle(from, req),
                // The outputs are drained after every mail, so the next answer to the node is
                // this query's.
                NisMail::Query { req, reply } => {
                    self.reply = Some(reply);
                    self.store.handle(Party::Node, req);
                }
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
                Party::Node => {
                    if let Some(reply) = self.reply.take() {
                        let _ = reply.try_send(event);
                    }
                }
                // Through the Router, the one owner of the local engine table; it counts an
                // answer it cannot deliver. Waiting is safe: the Router never waits on us.
                Party::Engine(e) => {
                    let mail = RouterMail::ForEngine {
                        to: e,
                        input: Input::Identity(Box::new(event)),
                    };
                    if self.router.send(mail).is_err() {
                        self.stats.dropped(DropReason::Shutdown);
                    }
                }
            }
        }
    }
}
