//! Stopping a node: every engine, then the identity store, the Transport and the Router, each
//! thread joined (or reported hung after the grace period), in the order that leaves nothing
//! acknowledged that was not handled.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::*;

/// What happened at shutdown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Threads that stopped and were joined.
    pub joined: Vec<String>,
    /// Engines that panicked during the node's life.
    pub panicked: Vec<EngineFailure>,
    /// Engines that did not stop within the grace period (left detached).
    pub hung: Vec<String>,
}

impl Node {
    /// Stops every thread of the node and reports how it went.
    pub fn shutdown(mut self) -> ShutdownReport {
        self.stop_all()
    }

    fn stop_all(&mut self) -> ShutdownReport {
        let mut report = ShutdownReport::default();
        if self.stopped {
            return report;
        }
        self.stopped = true;
        // Messages that reach the node from now on, or wait in a stopping engine's mailbox, are
        // not acknowledged: their senders send them again when the node is back.
        let _ = self.links.router.send(RouterMail::Stopping);
        for e in &self.engines {
            let _ = e
                .mailbox
                .send_timeout(EngineMail::Stop, Duration::from_secs(1));
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut waiting: HashSet<String> = self
            .engines
            .iter()
            .filter(|e| e.thread.is_some())
            .map(|e| format!("nm-{}", e.name))
            .collect();
        let mut finished = HashSet::new();
        while !waiting.is_empty() {
            match self.done.recv_deadline(deadline) {
                Ok(name) => {
                    waiting.remove(&name);
                    finished.insert(name);
                }
                Err(_) => break,
            }
        }
        for e in &mut self.engines {
            let thread_name = format!("nm-{}", e.name);
            if let Some(t) = e.thread.take() {
                if waiting.contains(&thread_name) {
                    log::error!(
                        "engine {} did not stop within {:?}; left running",
                        e.name,
                        SHUTDOWN_GRACE
                    );
                    report.hung.push(e.name.clone());
                } else {
                    let _ = t.join();
                    report.joined.push(thread_name);
                }
            }
        }
        let _ = self.links.nis.send(NisMail::Stop);
        if let Some(t) = self.nis_thread.take() {
            let _ = t.join();
            report.joined.push("nm-nis".into());
        }
        if let Some(t) = self.transport_thread.take() {
            if let Some(link) = &self.links.transport {
                link.send(TransportMail::Stop);
            }
            let _ = t.join();
            report.joined.push("nm-transport".into());
        }
        let _ = self.links.router.send(RouterMail::Stop);
        if let Some(t) = self.router_thread.take() {
            let _ = t.join();
            report.joined.push("nm-router".into());
        }
        report.panicked = self.failures();
        log::info!("node {} stopped", self.identity.short());
        report
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_all();
    }
}
