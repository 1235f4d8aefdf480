//! Posting inputs for local engines through the Router, for the Transport's thread (answers,
//! connection notifications, bounces of messages it dropped). The Router is the one owner of
//! the local engine table, so everything for an engine goes through it.
//!
//! The Transport never waits on the Router: what does not fit in the Router's mailbox waits here,
//! in order, and is posted again on the next turn of the Transport's loop ([`EnginePost::flush`]).
//! At most [`MAX_BACKLOG`] notices wait; past that a notice is dropped and logged (the message it
//! was about is counted already, by whoever dropped it).

use std::collections::VecDeque;

use crossbeam_channel::{Sender, TrySendError};

use super::router_shell::RouterMail;
use crate::identity::EngineIdentity;
use crate::mail::{DropReason, Input, RouteHeader};

/// Most notices kept while the Router's mailbox is full: 4,096 (each under 200 bytes).
pub const MAX_BACKLOG: usize = 4096;

/// A handle that posts inputs for local engines to the Router.
pub(crate) struct EnginePost {
    router: Sender<RouterMail>,
    backlog: VecDeque<RouterMail>,
}

impl EnginePost {
    pub(crate) fn new(router: Sender<RouterMail>) -> EnginePost {
        EnginePost {
            router,
            backlog: VecDeque::new(),
        }
    }

    /// Posts `input` for the local engine `to`.
    pub(crate) fn deliver(&mut self, to: EngineIdentity, input: Input) {
        self.post(RouterMail::ForEngine { to, input });
    }

    /// Tells the sender of a message the Transport dropped (and counted), through the Router.
    pub(crate) fn bounced(&mut self, header: RouteHeader, reason: DropReason) {
        self.post(RouterMail::Bounced { header, reason });
    }

    /// Hands the Router a message the Transport has no direct path for (it may relay it).
    pub(crate) fn no_direct_path(&mut self, send: crate::mail::RemoteSend) {
        self.post(RouterMail::NoDirectPath(Box::new(send)));
    }

    /// Posts what waits, in order, until the Router's mailbox is full again.
    pub(crate) fn flush(&mut self) {
        while let Some(mail) = self.backlog.pop_front() {
            match self.router.try_send(mail) {
                Ok(()) => {}
                Err(TrySendError::Full(mail)) => {
                    self.backlog.push_front(mail);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.backlog.clear();
                    return;
                }
            }
        }
    }

    /// Whether notices wait for room in the Router's mailbox.
    pub(crate) fn is_backlogged(&self) -> bool {
        !self.backlog.is_empty()
    }

    fn post(&mut self, mail: RouterMail) {
        self.flush();
        if self.backlog.is_empty() {
            match self.router.try_send(mail) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(mail)) => self.backlog.push_back(mail),
            }
        } else if self.backlog.len() < MAX_BACKLOG {
            self.backlog.push_back(mail);
        } else {
            log::warn!("transport: router busy and {MAX_BACKLOG} notices waiting; one dropped");
        }
    }
}
