//! A [`Client`]: an engine driven by the caller's own thread instead of a thread of its own —
//! for applications, command-line tools, tests and benchmarks that want to send and wait.
//!
//! A client is registered with the Router like any engine (same identity derivation, same
//! mailbox rules, same signing on the sending thread). It receives inputs only when the caller
//! asks ([`Client::recv`]); until then they wait in its mailbox, subject to the mailbox-full
//! policy.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::engine_shell::Outlet;
use super::mailbox::EngineMail;
use super::router_shell::RouterMail;
use crate::identity::{EngineIdentity, NodeIdentity, TopicIdentity};
use crate::mail::{Input, Receipt};
use crate::runtime::timers::Timers;
use crate::runtime::{Context, SendOptions};
use crate::time::Now;
use crate::wire::{Destination, MessageId, Protocol, RoutingScope};

/// An engine driven by the caller's thread.
pub struct Client {
    ctx: Context,
    outlet: Outlet,
    mailbox: Receiver<EngineMail>,
    timers: Timers,
    own: VecDeque<Input>,
    /// Receipts of remote messages handed to the caller and not yet handed back: they go back
    /// to the Router after whatever the caller sends next (its reply), as an engine's shell
    /// hands receipts back after the engine's outputs.
    receipts: Vec<Receipt>,
    closed: bool,
}

impl Client {
    pub(crate) fn new(ctx: Context, outlet: Outlet, mailbox: Receiver<EngineMail>) -> Client {
        Client {
            ctx,
            outlet,
            mailbox,
            timers: Timers::default(),
            own: VecDeque::new(),
            receipts: Vec::new(),
            closed: false,
        }
    }

    /// This client's engine identity.
    pub fn identity(&self) -> EngineIdentity {
        self.ctx.identity()
    }

    /// The node it runs on.
    pub fn node(&self) -> NodeIdentity {
        self.ctx.node()
    }

    /// Runs `f` with a context at the current time, then carries out what it recorded.
    pub fn with_context<R>(&mut self, f: impl FnOnce(&mut Context) -> R) -> R {
        self.ctx.set_now(Now::read());
        let r = f(&mut self.ctx);
        let outputs = self.ctx.outputs_mut();
        if self
            .outlet
            .carry_out(outputs, &mut self.timers, &mut self.own)
        {
            self.closed = true;
        }
        self.hand_back_receipts();
        r
    }

    /// Hands back the receipts of the messages received so far, behind what was sent since.
    fn hand_back_receipts(&mut self) {
        if self.receipts.is_empty() {
            return;
        }
        let receipts = std::mem::take(&mut self.receipts);
        let _ = self
            .outlet
            .links()
            .router
            .send(RouterMail::Handled(receipts));
    }

    /// Sends `body` to `dst`.
    pub fn send(
        &mut self,
        dst: impl Into<Destination>,
        protocol: Protocol,
        body: Vec<u8>,
    ) -> MessageId {
        let dst = dst.into();
        self.with_context(|ctx| ctx.send(dst, protocol, body))
    }

    /// Sends `body` to `dst` with options.
    pub fn send_with(
        &mut self,
        dst: impl Into<Destination>,
        protocol: Protocol,
        body: Vec<u8>,
        opts: SendOptions,
    ) -> MessageId {
        let dst = dst.into();
        self.with_context(|ctx| ctx.send_with(dst, protocol, body, opts))
    }

    /// Subscribes to a topic; the answer arrives through [`Client::recv`].
    pub fn subscribe(&mut self, topic: TopicIdentity, scope: RoutingScope) {
        self.with_context(|ctx| ctx.subscribe(topic, scope));
    }

    /// Creates a topic; the answer arrives through [`Client::recv`].
    pub fn create_topic(&mut self, topic: TopicIdentity, scope: RoutingScope) {
        self.with_context(|ctx| ctx.create_topic(topic, scope));
    }

    /// Publishes to a topic.
    pub fn publish(
        &mut self,
        topic: TopicIdentity,
        protocol: Protocol,
        body: Vec<u8>,
    ) -> MessageId {
        self.with_context(|ctx| ctx.publish(topic, protocol, body))
    }

    /// The next input, waiting at most `timeout`. Timers set through [`Client::with_context`]
    /// fire as [`Input::Timer`]. `None` on timeout or when the node has stopped.
    ///
    /// A message from another node is acknowledged to its sender once the caller has dealt
    /// with it: after the next send (its reply, if any) or the next `recv`, whichever comes
    /// first — the order an engine's shell keeps.
    pub fn recv(&mut self, timeout: Duration) -> Option<Input> {
        // Whatever the caller did with the previous input is done.
        self.hand_back_receipts();
        if let Some(input) = self.own.pop_front() {
            return Some(input);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if let Some(token) = self.timers.pop_due(now) {
                return Some(Input::Timer(token));
            }
            let until = self
                .timers
                .next_deadline()
                .map_or(deadline, |t| t.min(deadline));
            match self.mailbox.recv_deadline(until) {
                Ok(EngineMail::Input(input)) => return Some(input),
                Ok(EngineMail::Receipted(input, receipt)) => {
                    self.receipts.push(receipt);
                    return Some(input);
                }
                Ok(EngineMail::Stop) => {
                    self.closed = true;
                    return None;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.closed = true;
                    return None;
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => return None,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Whether the node stopped this client (or it asked to stop).
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.hand_back_receipts();
        super::engine_shell::leave(&self.mailbox, self.outlet.links(), self.ctx.identity());
    }
}
