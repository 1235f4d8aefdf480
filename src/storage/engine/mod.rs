//! The Storage engine (name [`STORAGE_ENGINE_NAME`], serves `Protocol::STORAGE`). Being written.

mod settings;

pub use crate::mail::storage::STORAGE_ENGINE_NAME;
pub use settings::{PutPolicy, StorageLimits, StorageSettings, StorageStats};
