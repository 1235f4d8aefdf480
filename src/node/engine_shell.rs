//! The thread shell that drives one engine: it blocks on the engine's mailbox (with the next
//! timer as deadline), reads the clock, feeds the engine, and carries out what it asked for.
//!
//! Carrying out a send: if the destination is on this node (a local engine, this node, a topic)
//! the message goes to the Router unsigned; otherwise it is signed here, on the sending engine's
//! thread, and handed to the Router in wire form — the Router never signs.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::{Mutex, RwLock};

use super::mailbox::{recv_spin, EngineMail};
use super::nis_shell::NisMail;
use super::router_shell::RouterMail;
use super::transport_link::{TransportLink, TransportMail};
use crate::identity::{EngineIdentity, Keypair, NodeIdentity};
use crate::mail::identity::Party;
use crate::mail::transport::TransportEvent;
use crate::mail::{DropReason, Input, Outbound, Outgoing, Output, Receipt};
use crate::router::LocalEngines;
use crate::runtime::stats::NodeStats;
use crate::runtime::timers::Timers;
use crate::runtime::{Context, Engine};
use crate::time::Now;

/// Most inputs handled before outputs are carried out and timers checked.
const BURST: usize = 256;

/// An engine that panicked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineFailure {
    /// The engine's name.
    pub name: String,
    /// The panic message.
    pub message: String,
}

/// The channels and shared state every engine shell of a node uses.
#[derive(Clone)]
pub(crate) struct Links {
    pub(crate) node: NodeIdentity,
    pub(crate) router: Sender<RouterMail>,
    pub(crate) nis: Sender<NisMail>,
    pub(crate) transport: Option<TransportLink>,
    /// The Router's published table of local engines (read-only here).
    pub(crate) locals: Arc<RwLock<Arc<LocalEngines>>>,
    pub(crate) stats: Arc<NodeStats>,
    pub(crate) failures: Arc<Mutex<Vec<EngineFailure>>>,
    /// How long shells poll an empty mailbox before parking.
    pub(crate) spin: std::time::Duration,
}

/// Carries out an engine's outputs.
pub(crate) struct Outlet {
    links: Links,
    key: Keypair,
    identity: EngineIdentity,
    wire: Vec<u8>,
    scratch: Vec<u8>,
}

impl Outlet {
    pub(crate) fn new(links: Links, key: Keypair) -> Outlet {
        Outlet {
            identity: key.engine_identity(),
            links,
            key,
            wire: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub(crate) fn links(&self) -> &Links {
        &self.links
    }

    /// Carries out `outputs`. Inputs the engine must receive at once (answers the shell gives
    /// itself) go to `own`. Returns whether the engine asked to stop.
    pub(crate) fn carry_out(
        &mut self,
        outputs: &mut Vec<Output>,
        timers: &mut Timers,
        own: &mut VecDeque<Input>,
    ) -> bool {
        let mut stop = false;
        for output in outputs.drain(..) {
            match output {
                Output::Send(out) => self.send(out),
                Output::Topic(req) => self.to_router(RouterMail::Topic {
                    from: self.identity,
                    req: Box::new(req),
                }),
                Output::Identity(req) => {
                    let mail = NisMail::Request {
                        from: Party::Engine(self.identity),
                        req,
                    };
                    if self.links.nis.send(mail).is_err() {
                        log::warn!(
                            "engine {}: identity store has stopped",
                            self.identity.short()
                        );
                    }
                }
                Output::Transport(req) => match &self.links.transport {
                    Some(t) => {
                        if !t.send(TransportMail::Request {
                            from: self.identity,
                            req,
                        }) {
                            own.push_back(Input::Transport(TransportEvent::NotRunning));
                        }
                    }
                    None => own.push_back(Input::Transport(TransportEvent::NotRunning)),
                },
                Output::SetTimer { token, at } => timers.set(token, at),
                Output::CancelTimer { token } => timers.cancel(token),
                Output::Stop => stop = true,
                Output::System(mail) => self.to_router(RouterMail::System {
                    from: self.identity,
                    mail,
                }),
            }
        }
        stop
    }

    fn send(&mut self, out: Outgoing) {
        debug_assert_eq!(out.msg.src, self.identity, "Context sets src");
        let stays = self.links.locals.read().keeps(self.links.node, &out.msg);
        if !stays {
            self.links.stats.signed.fetch_add(1, Ordering::Relaxed);
        }
        let outbound = Outbound::prepare(out, stays, &self.key, &mut self.wire, &mut self.scratch);
        self.to_router(RouterMail::Local(outbound));
    }

    fn to_router(&self, mail: RouterMail) {
        if self.links.router.send(mail).is_err() {
            self.links.stats.dropped(DropReason::Shutdown);
        }
    }
}

/// One engine and everything its thread needs.
pub(crate) struct EngineShell {
    pub(crate) name: String,
    pub(crate) engine: Box<dyn Engine>,
    pub(crate) ctx: Context,
    pub(crate) outlet: Outlet,
    pub(crate) mailbox: Receiver<EngineMail>,
    pub(crate) timers: Timers,
    pub(crate) own: VecDeque<Input>,
    /// Receipts of remote messages handled and not yet handed back.
    pub(crate) receipts: Vec<Receipt>,
}

impl EngineShell {
    /// Runs the engine until it stops, its mailbox closes, or it panics.
    pub(crate) fn run(mut self) {
        self.ctx.set_now(Now::read());
        if self.call(|e, ctx| e.start(ctx)) && !self.carry_out() {
            self.event_loop();
            self.ctx.set_now(Now::read());
            if self.call(|e, ctx| e.stop(ctx)) {
                self.carry_out();
            }
        }
        self.unregister();
    }

    fn event_loop(&mut self) {
        loop {
            let mail = match recv_spin(
                &self.mailbox,
                self.timers.next_deadline(),
                self.outlet.links().spin,
            ) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let now = Now::read();
            self.ctx.set_now(now);
            let mut stop = false;
            if let Some(mail) = mail {
                match self.handle_mail(mail) {
                    Some(s) => stop |= s,
                    None => return,
                }
                for _ in 0..BURST {
                    let Ok(mail) = self.mailbox.try_recv() else {
                        break;
                    };
                    match self.handle_mail(mail) {
                        Some(s) => stop |= s,
                        None => return,
                    }
                }
            }
            while let Some(token) = self.timers.pop_due(now.instant) {
                if !self.call(|e, ctx| e.handle(ctx, Input::Timer(token))) {
                    return;
                }
            }
            if !self.call(|e, ctx| e.flush(ctx)) {
                return;
            }
            stop |= self.carry_out();
            while let Some(input) = self.own.pop_front() {
                if !self.call(|e, ctx| e.handle(ctx, input)) {
                    return;
                }
                stop |= self.carry_out();
            }
            // After the outputs: the Router forwards the receipts to the Transport behind them.
            self.hand_back_receipts();
            if stop {
                return;
            }
        }
    }

    /// `Some(stop requested)`, or `None` if the engine panicked.
    fn handle_mail(&mut self, mail: EngineMail) -> Option<bool> {
        match mail {
            EngineMail::Input(input) => self.call(|e, ctx| e.handle(ctx, input)).then_some(false),
            EngineMail::Receipted(input, receipt) => {
                // Handled even if the engine panicked on it: a message that crashes its engine
                // must not come back.
                let handled = self.call(|e, ctx| e.handle(ctx, input));
                self.receipts.push(receipt);
                handled.then_some(false)
            }
            EngineMail::Stop => Some(true),
        }
    }

    /// Carries out pending outputs; returns whether the engine asked to stop.
    fn carry_out(&mut self) -> bool {
        let outputs = self.ctx.outputs_mut();
        self.outlet
            .carry_out(outputs, &mut self.timers, &mut self.own)
    }

    /// Calls into the engine, catching a panic. Returns false if it panicked.
    fn call(&mut self, f: impl FnOnce(&mut dyn Engine, &mut Context)) -> bool {
        let engine = &mut *self.engine;
        let ctx = &mut self.ctx;
        match catch_unwind(AssertUnwindSafe(|| f(engine, ctx))) {
            Ok(()) => true,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_string());
                log::error!(
                    "engine {} panicked: {message}; it is stopped and its mailbox closed",
                    self.name
                );
                let links = self.outlet.links();
                links.stats.engine_panics.fetch_add(1, Ordering::Relaxed);
                links.failures.lock().push(EngineFailure {
                    name: self.name.clone(),
                    message,
                });
                false
            }
        }
    }

    fn unregister(&mut self) {
        self.hand_back_receipts();
        let links = self.outlet.links().clone();
        leave(&self.mailbox, &links, self.ctx.identity());
        log::debug!("engine {} stopped at {:?}", self.name, Instant::now());
    }

    /// Hands the receipts of the messages handled so far to the Router, behind whatever the
    /// engine sent while handling them.
    fn hand_back_receipts(&mut self) {
        if self.receipts.is_empty() {
            return;
        }
        let receipts = std::mem::take(&mut self.receipts);
        if self
            .outlet
            .links()
            .router
            .send(RouterMail::Handled(receipts))
            .is_err()
        {
            log::debug!(
                "engine {}: router gone; receipts not handed back",
                self.name
            );
        }
    }
}

/// Takes a stopped engine (or client) off the node: out of the Router's table, emptying its mailbox until the Router confirms that it will deliver nothing more
/// (so no message slips into a mailbox nobody reads, its receipt lost).
pub(crate) fn leave(mailbox: &Receiver<EngineMail>, links: &Links, identity: EngineIdentity) {
    let (done, confirmed) = crossbeam_channel::bounded(1);
    if links
        .router
        .send(RouterMail::Unregister { identity, done })
        .is_ok()
    {
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        loop {
            discard_mailbox(mailbox, links);
            match confirmed.recv_timeout(std::time::Duration::from_millis(1)) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
    discard_mailbox(mailbox, links);
}

/// Empties the mailbox of an engine that has stopped: each message in it is counted as dropped
/// (`engine_gone`), and the receipts of remote ones go back to the Router so that their senders
/// are not left waiting for an acknowledgement.
fn discard_mailbox(mailbox: &Receiver<EngineMail>, links: &Links) {
    let mut receipts = Vec::new();
    while let Ok(mail) = mailbox.try_recv() {
        match mail {
            EngineMail::Input(Input::Message(_)) => links.stats.dropped(DropReason::EngineGone),
            EngineMail::Receipted(_, receipt) => {
                links.stats.dropped(DropReason::EngineGone);
                receipts.push(receipt);
            }
            EngineMail::Input(_) | EngineMail::Stop => {}
        }
    }
    if !receipts.is_empty() {
        let _ = links.router.send(RouterMail::Discarded(receipts));
    }
}
