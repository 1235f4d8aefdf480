//! The Router's thread: a blocking loop over its mailbox that feeds the [`Router`] state
//! machine and carries out its outputs.
//!
//! It drains its mailbox in bursts; remote messages queue in the ingress batch and are verified
//! when the batch is full or the mailbox is empty, so the batch size follows the load. It never
//! waits on an engine's mailbox (see the mailbox-full policy in `runtime`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use parking_lot::RwLock;

use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::Duration;

use super::mailbox::{recv_spin, EngineMail};
use super::nis_shell::NisMail;
use super::transport_link::{TransportLink, TransportMail};
use crate::identity::{EngineIdentity, NodeIdentity};
use crate::mail::identity::{IdentityEvent, Party};
use crate::mail::topic::TopicRequest;
use crate::mail::{DropReason, Input, Outbound, Receipt, RouteHeader, System};
use crate::router::ingress::{PendingBatch, VerifiedBatch};
use crate::router::{LocalEngines, RegisterError, Router, RouterOutput, Slot};
use crate::runtime::stats::NodeStats;
use crate::time::Now;
use crate::wire::message::BatchVerifier;
use crate::wire::Protocol;

/// Batches smaller than this are verified on the Router thread even when verifier threads run.
const POOL_MIN_BATCH: usize = 8;

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
        /// Whether they are a relay layer (a `RELAY` frame) rather than a message.
        relay: bool,
        /// What to report to the Transport once the message is handled.
        receipt: Option<Receipt>,
    },
    /// A message the Transport has no direct path for: relayed if a relay is known, else
    /// dropped as `no_route`.
    NoDirectPath(Box<crate::mail::RemoteSend>),
    /// A topic request from a local engine.
    Topic {
        /// The engine.
        from: EngineIdentity,
        /// The request.
        req: Box<TopicRequest>,
    },
    /// From the Network Identity Store.
    Identity(Box<IdentityEvent>),
    /// A new local engine.
    Register {
        /// Its identity.
        identity: EngineIdentity,
        /// Its name.
        name: String,
        /// Protocols it serves for messages to this node.
        serves: Vec<Protocol>,
        /// Whether it is reachable from other nodes (advertised).
        reachable: bool,
        /// Its mailbox.
        mailbox: Sender<EngineMail>,
        /// Told whether the Router took it (names are unique).
        done: Option<Sender<Result<(), RegisterError>>>,
    },
    /// An answer or notification for a local engine from the Transport or the identity store.
    ForEngine {
        /// The engine.
        to: EngineIdentity,
        /// What to deliver.
        input: Input,
    },
    /// A message the Transport dropped, to count and bounce to its sender.
    Bounced {
        /// The message's routing metadata.
        header: RouteHeader,
        /// Why.
        reason: DropReason,
    },
    /// System mail from a built-in engine (the PubSub engine's notices).
    System {
        /// The engine that sent it.
        from: EngineIdentity,
        /// The mail.
        mail: System,
    },
    /// A local engine stopped. The Router delivers nothing more to it, then answers on `done`.
    Unregister {
        /// The engine.
        identity: EngineIdentity,
        /// Told once the Router has forgotten the engine.
        done: Sender<()>,
    },
    /// Receipts of remote messages a local engine has handled, sent by its shell after whatever
    /// the engine sent in response: the Router passes them to the Transport behind those
    /// messages.
    Handled(Vec<Receipt>),
    /// Receipts of remote messages a stopped engine will never handle (counted as dropped).
    /// Handed back like any drop, except while the node is stopping: then they are withheld, so
    /// that the senders send those messages again when the node is back.
    Discarded(Vec<Receipt>),
    /// The node is shutting down: from now on, receipts of messages dropped because their
    /// engine is gone or going are withheld (see [`RouterMail::Discarded`]).
    Stopping,
    /// Shut down.
    Stop,
}

/// Batches in flight to verifier threads, completed in the order they were taken.
struct Batches {
    jobs: Option<Sender<(u64, PendingBatch)>>,
    results: Receiver<(u64, VerifiedBatch)>,
    workers: Vec<JoinHandle<()>>,
    capacity: usize,
    next_seq: u64,
    next_complete: u64,
    in_flight: usize,
    in_flight_messages: usize,
    done: BTreeMap<u64, VerifiedBatch>,
}

impl Batches {
    fn start(threads: usize) -> Batches {
        let mut jobs = None;
        let mut workers = Vec::new();
        let (results_tx, results) = crossbeam_channel::bounded(threads * 2 + 1);
        if threads > 0 {
            let (tx, rx) = crossbeam_channel::bounded::<(u64, PendingBatch)>(threads * 2);
            for i in 0..threads {
                let rx = rx.clone();
                let results_tx = results_tx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("nm-verify-{i}"))
                    .spawn(move || {
                        let mut verifier = BatchVerifier::new();
                        for (seq, batch) in rx {
                            let batch = batch.verify(&mut verifier);
                            if results_tx.send((seq, batch)).is_err() {
                                break;
                            }
                        }
                    });
                match spawned {
                    Ok(h) => workers.push(h),
                    Err(e) => log::error!("router: cannot start verifier thread: {e}"),
                }
            }
            if !workers.is_empty() {
                jobs = Some(tx);
            }
        }
        Batches {
            capacity: workers.len() * 2,
            results,
            jobs,
            workers,
            next_seq: 0,
            next_complete: 0,
            in_flight: 0,
            in_flight_messages: 0,
            done: BTreeMap::new(),
        }
    }

    fn stop(&mut self, stats: &NodeStats) {
        self.jobs = None;
        for _ in 0..self.in_flight_messages {
            stats.dropped(DropReason::Shutdown);
        }
    }
}

/// The Router and its channels.
pub(crate) struct RouterShell {
    pub(crate) router: Router,
    pub(crate) mailbox: Receiver<RouterMail>,
    /// The mailbox of each slot the Router core assigned (the core owns the table).
    pub(crate) engines: Vec<Option<Sender<EngineMail>>>,
    /// Where the core's snapshot of the local engines is published for other threads.
    pub(crate) published: Arc<RwLock<Arc<LocalEngines>>>,
    pub(crate) nis: Sender<NisMail>,
    pub(crate) transport: Option<TransportLink>,
    pub(crate) stats: Arc<NodeStats>,
    /// How long to poll an empty mailbox before parking.
    pub(crate) spin: Duration,
    /// A table of local engines the identity store had no room for yet (sent again soon).
    pub(crate) engines_unsent: Option<Arc<LocalEngines>>,
    /// The relay candidates the Transport publishes, and the generation last copied.
    pub(crate) relay_board: Option<(crate::relay::RelayBoard, u64)>,
}

impl RouterShell {
    /// Registers a local engine (before the thread starts, or on [`RouterMail::Register`]).
    pub(crate) fn register(
        &mut self,
        identity: EngineIdentity,
        name: &str,
        serves: &[Protocol],
        reachable: bool,
        mailbox: Sender<EngineMail>,
    ) -> Result<(), RegisterError> {
        let slot = self
            .router
            .add_local_as(identity, name, serves, reachable)?;
        if self.engines.len() <= slot {
            self.engines.resize(slot + 1, None);
        }
        self.engines[slot] = Some(mailbox);
        self.carry_out();
        Ok(())
    }

    pub(crate) fn run(mut self) {
        let mut batches = Batches::start(self.router.verifier_threads());
        loop {
            let mut deadline = self.router.poll_timeout();
            if self.router.has_receipts() || self.engines_unsent.is_some() {
                // The Transport's mailbox was full: hand the receipts over again soon.
                let soon = std::time::Instant::now() + Duration::from_millis(1);
                deadline = Some(deadline.map_or(soon, |d| d.min(soon)));
            }
            let mail = if batches.in_flight > 0 {
                // Wait for mail or for a verified batch, whichever comes first.
                let timeout = deadline.map_or(Duration::from_secs(3600), |d| {
                    d.saturating_duration_since(std::time::Instant::now())
                });
                crossbeam_channel::select! {
                    recv(self.mailbox) -> m => match m {
                        Ok(m) => Some(m),
                        Err(_) => break,
                    },
                    recv(batches.results) -> r => {
                        if let Ok((seq, batch)) = r {
                            self.verified(Now::read(), seq, batch, &mut batches);
                        }
                        None
                    },
                    default(timeout) => None,
                }
            } else {
                match recv_spin(&self.mailbox, deadline, self.spin) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            let now = Now::read();
            self.refresh_relay_candidates(now);
            let mut stop = false;
            if let Some(mail) = mail {
                stop |= self.handle(now, mail, &mut batches);
                for _ in 0..BURST {
                    if stop {
                        break;
                    }
                    while let Ok((seq, batch)) = batches.results.try_recv() {
                        self.verified(now, seq, batch, &mut batches);
                    }
                    match self.mailbox.try_recv() {
                        Ok(mail) => stop |= self.handle(now, mail, &mut batches),
                        Err(_) => break,
                    }
                }
            }
            // The mailbox is empty (or a burst ended): verify what is queued.
            self.dispatch(now, &mut batches);
            if let Some(table) = self.engines_unsent.take() {
                self.tell_identity_store(table);
            }
            self.router.handle_timeout(now);
            self.carry_out();
            if stop {
                break;
            }
        }
        batches.stop(&self.stats);
        // What is still waiting for a lookup, or still in the mailbox, will never be routed.
        self.router.handle_shutdown();
        self.carry_out();
        while let Ok(mail) = self.mailbox.try_recv() {
            if matches!(mail, RouterMail::Local(_) | RouterMail::Remote { .. }) {
                self.stats.dropped(DropReason::Shutdown);
            }
        }
        drop(self.mailbox);
        for w in batches.workers.drain(..) {
            let _ = w.join();
        }
        log::debug!("router stopped");
    }

    /// Sends the pending ingress batch to a verifier thread (waiting for one to finish if all
    /// are busy), or verifies it here when the node runs none; then completes every batch that is
    /// next in order.
    fn dispatch(&mut self, now: Now, batches: &mut Batches) {
        let Some(batch) = self.router.take_ingress_batch() else {
            return;
        };
        let seq = batches.next_seq;
        batches.next_seq += 1;
        let messages = batch.len();
        let mut batch = Some(batch);
        // A small batch is verified here: handing it over would cost more latency than it saves.
        let pool = batches.jobs.clone().filter(|_| messages >= POOL_MIN_BATCH);
        if let Some(jobs) = pool {
            while batches.in_flight >= batches.capacity {
                // All verifiers are busy: wait for one (the Router's own work is cheap).
                match batches.results.recv() {
                    Ok((s, b)) => self.verified(now, s, b, batches),
                    Err(_) => break,
                }
            }
            if let Some(b) = batch.take() {
                match jobs.try_send((seq, b)) {
                    Ok(()) => {
                        batches.in_flight += 1;
                        batches.in_flight_messages += messages;
                        return;
                    }
                    Err(e) => batch = Some(e.into_inner().1),
                }
            }
        }
        if let Some(b) = batch {
            let verified = self.router.verify_here(b);
            batches.done.insert(seq, verified);
            self.complete_in_order(now, batches);
        }
    }

    fn verified(&mut self, now: Now, seq: u64, batch: VerifiedBatch, batches: &mut Batches) {
        batches.in_flight -= 1;
        batches.in_flight_messages = batches.in_flight_messages.saturating_sub(batch.len());
        batches.done.insert(seq, batch);
        self.complete_in_order(now, batches);
    }

    fn complete_in_order(&mut self, now: Now, batches: &mut Batches) {
        while let Some(batch) = batches.done.remove(&batches.next_complete) {
            batches.next_complete += 1;
            self.router.complete_ingress_batch(now, batch);
            self.carry_out();
        }
    }

    /// Copies the relay candidates into the Router when the Transport published new ones.
    fn refresh_relay_candidates(&mut self, now: Now) {
        if let Some((board, seen)) = &mut self.relay_board {
            let generation = board.generation();
            if generation != *seen {
                *seen = generation;
                self.router.set_relay_candidates(now, board.snapshot());
            }
        }
    }

    /// Handles one mail; returns true on `Stop`.
    fn handle(&mut self, now: Now, mail: RouterMail, batches: &mut Batches) -> bool {
        match mail {
            RouterMail::Local(outbound) => self.router.handle_local(now, outbound),
            RouterMail::Remote {
                peer,
                wire,
                relay: false,
                receipt,
            } => {
                self.router.handle_remote(now, peer, wire, receipt);
                if self.router.ingress_batch_full() {
                    self.dispatch(now, batches);
                }
            }
            RouterMail::Remote {
                peer,
                wire,
                relay: true,
                receipt,
            } => {
                self.router.handle_relay(now, peer, wire, receipt);
                if self.router.ingress_batch_full() {
                    self.dispatch(now, batches);
                }
            }
            RouterMail::Topic { from, req } => self.router.handle_topic(from, *req),
            RouterMail::System { from, mail } => self.router.handle_system(from, mail),
            RouterMail::Identity(event) => self.router.handle_identity(now, *event),
            RouterMail::Register {
                identity,
                name,
                serves,
                reachable,
                mailbox,
                done,
            } => {
                let result = self.register(identity, &name, &serves, reachable, mailbox);
                if let Err(e) = &result {
                    log::warn!("router: engine {name} not registered: {e:?}");
                }
                if let Some(done) = done {
                    let _ = done.try_send(result);
                }
            }
            RouterMail::Unregister { identity, done } => {
                self.router.unregister(&identity);
                self.carry_out();
                let _ = done.try_send(());
            }
            RouterMail::ForEngine { to, input } => self.router.handle_for_engine(to, input),
            RouterMail::Bounced { header, reason } => self.router.handle_bounce(header, reason),
            RouterMail::NoDirectPath(send) => self.router.handle_no_direct_path(now, *send),
            RouterMail::Handled(receipts) => self.router.handled(receipts),
            RouterMail::Discarded(receipts) => self.router.not_handled(receipts),
            RouterMail::Stopping => self.router.set_stopping(),
            RouterMail::Stop => return true,
        }
        self.carry_out();
        false
    }

    /// Carries out the core's outputs in order; failures go back to the core as inputs.
    fn carry_out(&mut self) {
        while let Some(output) = self.router.poll_output() {
            match output {
                RouterOutput::Deliver {
                    slot,
                    input,
                    bounce,
                    receipt,
                } => {
                    let is_message = matches!(input, Input::Message(_));
                    let mail = match receipt {
                        Some(r) => EngineMail::Receipted(input, r),
                        None => EngineMail::Input(input),
                    };
                    match self.put(slot, mail) {
                        Ok(()) if is_message => {
                            self.stats.delivered_local.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(()) => {}
                        Err(reason) => self.router.delivery_failed(slot, reason, bounce, receipt),
                    }
                }
                RouterOutput::Transport(send) => match &self.transport {
                    Some(t) => {
                        if let Err(TransportMail::Send(send)) =
                            t.try_send(TransportMail::Send(send))
                        {
                            self.router.transport_refused(send);
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
                RouterOutput::CutOff(cut) => match &self.transport {
                    Some(t) => {
                        if let Err(TransportMail::CutOff(cut)) =
                            t.try_send(TransportMail::CutOff(cut))
                        {
                            self.router.cut_off_refused(cut);
                        }
                    }
                    // No connections to close: the messages came in through an IngressHandle.
                    None => log::debug!(
                        "router: {} would be cut off, but the node runs no Transport",
                        cut.node.short()
                    ),
                },
                RouterOutput::Published(table) => {
                    *self.published.write() = Arc::clone(&table);
                    self.tell_identity_store(table);
                }
                RouterOutput::Detach(slot) => {
                    if let Some(m) = self.engines.get_mut(slot) {
                        *m = None;
                    }
                }
                // Deliveries made, receipts go to the Transport, which acknowledges those
                // messages to their senders; kept for the next round if its mailbox is full (the
                // Router never waits).
                RouterOutput::Acknowledge(receipts) => {
                    if let Some(t) = &self.transport {
                        if let Err(TransportMail::Processed(back)) =
                            t.try_send(TransportMail::Processed(receipts))
                        {
                            self.router.return_receipts(back);
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Hands the identity store the new table of local engines (it advertises the reachable
    /// ones), never waiting: if its mailbox is full, the newest table is sent again soon.
    fn tell_identity_store(&mut self, table: Arc<LocalEngines>) {
        if let Err(TrySendError::Full(NisMail::Engines(table))) =
            self.nis.try_send(NisMail::Engines(table))
        {
            self.engines_unsent = Some(table);
        }
    }

    /// Puts `mail` in the mailbox of the engine at `slot`, never waiting.
    fn put(&mut self, slot: Slot, mail: EngineMail) -> Result<(), DropReason> {
        let Some(Some(mailbox)) = self.engines.get(slot) else {
            return Err(DropReason::EngineGone);
        };
        match mailbox.try_send(mail) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(DropReason::MailboxFull),
            Err(TrySendError::Disconnected(_)) => Err(DropReason::EngineGone),
        }
    }
}
