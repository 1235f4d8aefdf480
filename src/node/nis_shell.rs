//! The Network Identity Store's thread: requests, the node's engine table and addresses, and
//! the Transport's identity exchange in; answers, notifications, the exchange's requests and the
//! node's new adverts out. The logic is [`IdentityService`]'s; this loop reads the clock, waits
//! for mail until the service's next deadline, and carries out its outputs.
//!
//! Answers to engines go through the Router (the one owner of the local engine table), which
//! never waits on an engine: a full engine mailbox drops the answer, counted as `mailbox_full`.
//! This thread waits for room in the Router's and the Transport's mailboxes, which is safe
//! because neither ever waits on this thread.

use std::net::SocketAddr;
use std::sync::Arc;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::RwLock;

use super::router_shell::RouterMail;
use super::transport_link::{TransportLink, TransportMail};
use crate::identity_store::service::{IdentityService, ServiceOutput};
use crate::mail::identity::{
    AnyIdentity, FromPeer, IdentityEvent, IdentityRecord, IdentityRequest, Party,
};
use crate::mail::{DropReason, Input};
use crate::router::LocalEngines;
use crate::runtime::stats::NodeStats;
use crate::time::Now;
use crate::wire::{NodeAdvert, TransportAddress};

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
    /// The Router's new table of local engines (for the reachable ones' adverts).
    Engines(Arc<LocalEngines>),
    /// The node's addresses changed (`Node::set_addresses`).
    SetAddresses(Vec<SocketAddr>),
    /// The Transport's part of the identity exchange.
    FromPeer(FromPeer),
    /// A synchronous lookup for the node's handle (`Node::lookup`).
    Query {
        /// What to look up.
        id: AnyIdentity,
        /// Where the record goes.
        reply: Sender<Option<IdentityRecord>>,
    },
    /// A request from the node itself (status views, `Node::ask_identity_store`), its answer
    /// sent on `reply`.
    Ask {
        /// The request.
        req: IdentityRequest,
        /// Where the answer goes.
        reply: Sender<IdentityEvent>,
    },
    /// Shut down.
    Stop,
}

pub(crate) struct NisShell {
    pub(crate) service: IdentityService,
    pub(crate) mailbox: Receiver<NisMail>,
    pub(crate) router: crossbeam_channel::Sender<RouterMail>,
    pub(crate) transport: Option<TransportLink>,
    pub(crate) stats: Arc<NodeStats>,
    /// Where the node's current advert is published for [`crate::node::Node::advert`].
    pub(crate) advert: Arc<RwLock<NodeAdvert>>,
    /// Where the answer to the [`NisMail::Ask`] being handled goes.
    pub(crate) reply: Option<Sender<IdentityEvent>>,
    /// The file the store's records are kept in, if any.
    pub(crate) file: Option<super::identity_file::IdentityFile>,
    /// When changed records are next written to it.
    pub(crate) next_flush: std::time::Instant,
}

/// How often changed records are written to the identity store's file (1 s): what a crash
/// can lose.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl NisShell {
    pub(crate) fn run(mut self) {
        self.carry_out();
        loop {
            let now = Now::read();
            self.flush(now.instant, false);
            let mut deadline = self.service.poll_timeout(now);
            if self.file.is_some() && self.service.store().has_changes() {
                deadline = deadline.min(self.next_flush);
            }
            match self.mailbox.recv_deadline(deadline) {
                Ok(NisMail::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(mail) => {
                    self.handle(Now::read(), mail);
                    // Drain a burst before looking at the clock again.
                    for _ in 0..256 {
                        match self.mailbox.try_recv() {
                            Ok(NisMail::Stop) => {
                                self.carry_out();
                                self.flush(std::time::Instant::now(), true);
                                log::debug!("identity store stopped");
                                return;
                            }
                            Ok(mail) => self.handle(Now::read(), mail),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.service.handle_timeout(Now::read()),
            }
            self.carry_out();
        }
        self.flush(std::time::Instant::now(), true);
        log::debug!("identity store stopped");
    }

    /// Writes the records changed since the last write, if [`FLUSH_EVERY`] has passed (or
    /// `now_anyway`). A failed write is logged and counted; its changes are not retried (the
    /// next change of a record writes it again).
    fn flush(&mut self, now: std::time::Instant, now_anyway: bool) {
        let Some(file) = &self.file else { return };
        if !now_anyway && now < self.next_flush {
            return;
        }
        self.next_flush = now + FLUSH_EVERY;
        let changes = self.service.store_mut().take_changes();
        if changes.is_empty() {
            return;
        }
        match file.write(&changes) {
            Ok(()) => log::trace!("identity store: {} records written", changes.len()),
            Err(e) => {
                self.service.count_write_failure();
                log::error!(
                    "{e}; {} changed records will not survive a restart",
                    changes.len()
                );
            }
        }
    }

    fn handle(&mut self, now: Now, mail: NisMail) {
        match mail {
            NisMail::Request { from, req } => self.service.handle_request(now, from, req),
            NisMail::Engines(table) => self.service.handle_reachable(now, &table.reachable()),
            NisMail::SetAddresses(addrs) => self.service.handle_set_addresses(
                now,
                addrs
                    .into_iter()
                    .map(|a| (TransportAddress::quic(a), 100))
                    .collect(),
            ),
            NisMail::FromPeer(m) => self.service.handle_from_peer(now, m),
            NisMail::Query { id, reply } => {
                let _ = reply.try_send(self.service.store().get(&id).cloned());
            }
            // The outputs are carried out after every mail, so the next answer to the node is
            // this request's.
            NisMail::Ask { req, reply } => {
                self.reply = Some(reply);
                self.service.handle_request(now, Party::Node, req);
            }
            NisMail::Stop => {}
        }
        self.carry_out();
    }

    fn carry_out(&mut self) {
        while let Some(out) = self.service.poll_output() {
            match out {
                ServiceOutput::Event(to, event) => match to {
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
                },
                ServiceOutput::Peers(req) => {
                    if let Some(t) = &self.transport {
                        t.send(TransportMail::Exchange(Box::new(req)));
                    }
                }
                ServiceOutput::OwnAdvert(advert) => *self.advert.write() = advert,
            }
        }
    }
}
