//! TEMPORARY stub of the lead's engine (not committed).
use crate::identity::Keypair;
use crate::mail::domain::DomainDirectory;
use crate::mail::Input;
use crate::runtime::{Context, Engine};
use crate::storage::engine::{StorageSettings, StorageStats};
use crate::storage::store::BlockStore;
use std::sync::Arc;
pub struct StorageEngine;
impl StorageEngine {
    pub fn new(
        _k: Keypair,
        _s: Arc<dyn BlockStore>,
        _d: DomainDirectory,
        _st: StorageSettings,
        _x: Arc<StorageStats>,
        _seed: u64,
    ) -> StorageEngine {
        StorageEngine
    }
}
impl Engine for StorageEngine {
    fn handle(&mut self, _ctx: &mut Context, _input: Input) {}
}
