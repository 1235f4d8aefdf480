//! The directory of a node's local engines: identity → name and mailbox.
//!
//! Engine shells read it to decide whether a message stays on the node (and so need not be
//! signed); the Network Identity Store and the Transport use it to answer engines. The Router
//! keeps its own table and does not read this one on its hot path.

use std::collections::HashMap;

use crossbeam_channel::{Sender, TrySendError};
use parking_lot::RwLock;

use super::mailbox::EngineMail;
use crate::identity::EngineIdentity;
use crate::mail::{DropReason, Input};

struct Entry {
    name: String,
    mailbox: Sender<EngineMail>,
}

/// Local engines of one node.
#[derive(Default)]
pub(crate) struct Directory {
    engines: RwLock<HashMap<EngineIdentity, Entry>>,
}

impl Directory {
    pub(crate) fn insert(&self, identity: EngineIdentity, name: &str, mailbox: Sender<EngineMail>) {
        self.engines.write().insert(
            identity,
            Entry {
                name: name.to_string(),
                mailbox,
            },
        );
    }

    pub(crate) fn remove(&self, identity: &EngineIdentity) {
        self.engines.write().remove(identity);
    }

    pub(crate) fn is_local(&self, identity: &EngineIdentity) -> bool {
        self.engines.read().contains_key(identity)
    }

    /// The identity of the local engine called `name`.
    pub(crate) fn find(&self, name: &str) -> Option<EngineIdentity> {
        self.engines
            .read()
            .iter()
            .find(|(_, e)| e.name == name)
            .map(|(id, _)| *id)
    }

    /// Names and identities of all local engines.
    pub(crate) fn list(&self) -> Vec<(String, EngineIdentity)> {
        let mut out: Vec<_> = self
            .engines
            .read()
            .iter()
            .map(|(id, e)| (e.name.clone(), *id))
            .collect();
        out.sort();
        out
    }

    /// Puts `input` in the mailbox of `identity` without waiting.
    pub(crate) fn deliver(
        &self,
        identity: &EngineIdentity,
        input: Input,
    ) -> Result<(), DropReason> {
        let engines = self.engines.read();
        let Some(entry) = engines.get(identity) else {
            return Err(DropReason::EngineGone);
        };
        match entry.mailbox.try_send(EngineMail::Input(input)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(DropReason::MailboxFull),
            Err(TrySendError::Disconnected(_)) => Err(DropReason::EngineGone),
        }
    }
}
