//! The Router's thread: a blocking loop over its mailbox that feeds the [`Router`] state
//! machine and carries out its outputs.
//!
//! It drains its mailbox in bursts; remote messages queue in the ingress batch and are verified
//! when the batch is full or the mailbox is empty, so the batch size follows the load. It never
//! waits on an engine's mailbox (see the mailbox-full policy in `runtime`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::{Outbound, Router, RouterOutput, Slot};
use crate::identity::{EngineIdentity, NodeIdentity};
use crate::identity_store::{IdentityEvent, NisMail, Party};
use crate::router::topics::TopicRequest;
use crate::runtime::stats::{DropReason, NodeStats};
use crate::runtime::{EngineMail, Input};
use crate::time::Now;
use crate::transport::{TransportLink, TransportMail};
use crate::wire::Protocol;

/// Most mails handled between two looks at the clock.
const BURST: usize = 1024;

/// What the Router's mailbox carries.
#[derive(Debug)]
pub(crate) enum RouterMail {
    /// A message from a local engine.
    Local(Outbound),
    /// A wire message from another node, as the Transport received it.
    Remote {
        /// The authenticated peer.
        peer: NodeIdentity,
        /// The bytes.
        wire: Vec<u8>,
    },
    /// A topic request from a local engine.
    Topic {
        /// The engine.
        from: EngineIdentity,
        /// The request.
        req: TopicRequest,
    },
    /// From the Network Identity Store.
    Identity(IdentityEvent),
    /// A new local engine.
    Register {
        /// Its identity.
        identity: EngineIdentity,
        /// Its name.
        name: String,
        /// Protocols it serves for messages to this node.
        serves: Vec<Protocol>,
        /// Its mailbox.
        mailbox: Sender<EngineMail>,
    },
    /// A notice from the PubSub engine.
    PubSub {
        /// The engine that sent it (must be the node's PubSub engine).
        from: EngineIdentity,
        /// The notice.
        notice: crate::pubsub::PubSubNotice,
    },
    /// A local engine stopped.
    Unregister(EngineIdentity),
    /// Shut down.
    Stop,
}

/// The Router and its channels.
pub(crate) struct RouterShell {
    pub(crate) router: Router,
    pub(crate) mailbox: Receiver<RouterMail>,
    pub(crate) engines: Vec<Option<Sender<EngineMail>>>,
    pub(crate) nis: Sender<NisMail>,
    pub(crate) transport: Option<TransportLink>,
    pub(crate) stats: Arc<NodeStats>,
}

impl RouterShell {
    /// Registers a local engine before the thread starts.
    pub(crate) fn register(
        &mut self,
        identity: EngineIdentity,
        name: &str,
        serves: &[Protocol],
        mailbox: Sender<EngineMail>,
    ) {
        let slot = self.router.add_local(identity, name, serves);
        if self.engines.len() <= slot {
            self.engines.resize(slot + 1, None);
        }
        self.engines[slot] = Some(mailbox);
    }

    pub(crate) fn run(mut self) {
        loop {
            let mail = match self.router.poll_timeout() {
                Some(deadline) => match self.mailbox.recv_deadline(deadline) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match self.mailbox.recv() {
                    Ok(m) => Some(m),
                    Err(_) => break,
                },
            };
            let now = Now::read();
            let mut stop = false;
            if let Some(mail) = mail {
                stop |= self.handle(now, mail);
                for _ in 0..BURST {
                    if stop {
                        break;
                    }
                    match self.mailbox.try_recv() {
                        Ok(mail) => stop |= self.handle(now, mail),
                        Err(_) => break,
                    }
                }
            }
            self.router.flush(now);
            self.router.handle_timeout(now);
            self.carry_out();
            if stop {
                break;
            }
        }
        log::debug!("router stopped");
    }

    /// Handles one mail; returns true on `Stop`.
    fn handle(&mut self, now: Now, mail: RouterMail) -> bool {
        match mail {
            RouterMail::Local(outbound) => self.router.handle_local(now, outbound),
            RouterMail::Remote { peer, wire } => self.router.handle_remote(now, peer, wire),
            RouterMail::Topic { from, req } => self.router.handle_topic(from, req),
            RouterMail::PubSub { from, notice } => self.router.handle_pubsub(from, notice),
            RouterMail::Identity(event) => self.router.handle_identity(now, event),
            RouterMail::Register {
                identity,
                name,
                serves,
                mailbox,
            } => self.register(identity, &name, &serves, mailbox),
            RouterMail::Unregister(identity) => {
                if let Some(slot) = self.router.slot_of(&identity) {
                    self.router.remove_local(slot);
                    if let Some(m) = self.engines.get_mut(slot) {
                        *m = None;
                    }
                }
            }
            RouterMail::Stop => return true,
        }
        self.carry_out();
        false
    }

    fn carry_out(&mut self) {
        while let Some(output) = self.router.poll_output() {
            match output {
                RouterOutput::Deliver {
                    slot,
                    input,
                    bounce,
                } => self.deliver(slot, input, bounce),
                RouterOutput::Transport(send) => match &self.transport {
                    Some(t) => {
                        if let Err(TransportMail::Send(send)) =
                            t.try_send(TransportMail::Send(send))
                        {
                            let bounce = send.header.notify.then_some(super::Bounce {
                                src: send.header.src,
                                id: send.header.id,
                                dst: send.header.dst,
                            });
                            self.stats.sent_remote.fetch_sub(1, Ordering::Relaxed);
                            self.router.bounce(bounce, DropReason::QueueFull);
                        }
                    }
                    None => self.stats.dropped(DropReason::NoTransport),
                },
                RouterOutput::Identity(req) => {
                    let mail = NisMail::Request {
                        from: Party::Router,
                        req,
                    };
                    if self.nis.try_send(mail).is_err() {
                        log::warn!("router: identity store mailbox full; lookup will time out");
                    }
                }
            }
        }
    }

    fn deliver(&mut self, slot: Slot, input: Input, bounce: Option<super::Bounce>) {
        let is_message = matches!(input, Input::Message(_));
        let Some(Some(mailbox)) = self.engines.get(slot) else {
            return self.router.bounce(bounce, DropReason::EngineGone);
        };
        match mailbox.try_send(EngineMail::Input(input)) {
            Ok(()) => {
                if is_message {
                    self.stats.delivered_local.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(TrySendError::Full(_)) => self.router.bounce(bounce, DropReason::MailboxFull),
            Err(TrySendError::Disconnected(_)) => {
                self.engines[slot] = None;
                self.router.remove_local(slot);
                self.router.bounce(bounce, DropReason::EngineGone);
            }
        }
    }
}
