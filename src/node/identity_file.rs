//! The identity store's file: the Network Identity Store's records — node, engine, topic and
//! domain records with their trust and reputation — in a redb database, so that they survive a
//! restart (the stored form is in [`crate::identity_store::persist`]).
//!
//! Two tables: `records` (kind and identity, 33 bytes → stored record) and `meta` (`"format"`
//! → the format number). The NIS thread writes the records that changed at most once a second
//! and at shutdown, each batch in one transaction committed with
//! [`redb::Durability::Immediate`]: a crash (SIGKILL, power loss) loses at most the last
//! second's changes and never leaves a half-written store. A file of another format, one redb
//! cannot open (damaged, not a redb file, locked by a running node), or a record that does not
//! decode is a clear error naming the file — never a panic, never a silent fresh start.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::identity_store::persist::{
    decode_record_in, encode_record, record_id, record_key, FORMAT, OLDEST_FORMAT,
};
use crate::mail::identity::{AnyIdentity, IdentityRecord};

const RECORDS: TableDefinition<[u8; 33], &[u8]> = TableDefinition::new("records");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Why the identity store's file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for IdentityFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "identity store {}: {}; move the file away (or delete it) to start with an empty \
             identity store",
            self.path.display(),
            self.what
        )
    }
}

impl std::error::Error for IdentityFileError {}

/// The open file.
pub struct IdentityFile {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for IdentityFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentityFile({})", self.path.display())
    }
}

impl IdentityFile {
    /// Opens (or creates) the file at `path` and reads every record in it.
    pub fn open(path: &Path) -> Result<(IdentityFile, Vec<IdentityRecord>), IdentityFileError> {
        let err = |what: String| IdentityFileError {
            path: path.to_path_buf(),
            what,
        };
        // redb asserts on some damaged files (a truncated one, for example) rather than
        // returning an error: a damaged file must be an error here, not a crash.
        let opened = std::panic::catch_unwind(|| Database::create(path));
        let db = match opened {
            Ok(r) => r.map_err(|e| err(format!("cannot open: {e}")))?,
            Err(_) => return Err(err("cannot open: the file is damaged".into())),
        };
        let txn = db
            .begin_write()
            .map_err(|e| err(format!("cannot write: {e}")))?;
        let records = {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| err(format!("cannot open its `meta` table: {e}")))?;
            let mut table = txn
                .open_table(RECORDS)
                .map_err(|e| err(format!("cannot open its `records` table: {e}")))?;
            let format = meta
                .get("format")
                .map_err(|e| err(format!("cannot read its format: {e}")))?
                .map(|v| v.value());
            let count = table.len().map_err(|e| err(format!("cannot read: {e}")))?;
            let read_as = match format {
                Some(f) if (OLDEST_FORMAT..=FORMAT).contains(&f) => f,
                Some(other) => {
                    return Err(err(format!(
                        "written in format {other}; this version of netmachine reads formats \
                         {OLDEST_FORMAT} to {FORMAT}"
                    )))
                }
                None if count > 0 => {
                    return Err(err(format!(
                        "{count} records but no format marker (not written by netmachine?)"
                    )))
                }
                None => {
                    meta.insert("format", FORMAT)
                        .map_err(|e| err(format!("cannot write: {e}")))?;
                    FORMAT
                }
            };
            let mut records = Vec::with_capacity(count as usize);
            for entry in table.iter().map_err(|e| err(format!("cannot read: {e}")))? {
                let (k, v) = entry.map_err(|e| err(format!("cannot read a record: {e}")))?;
                let key = k.value();
                let record = decode_record_in(v.value(), read_as).map_err(|e| {
                    err(format!(
                        "record {} does not decode: {e}",
                        crate::identity::to_hex(&key)
                    ))
                })?;
                if record_key(&record_id(&record)) != key {
                    return Err(err(format!(
                        "record {} is stored under another identity's key",
                        crate::identity::to_hex(&key)
                    )));
                }
                records.push(record);
            }
            if read_as < FORMAT {
                // An older format: every record is written again in this one, in the same
                // transaction as the new marker.
                for record in &records {
                    table
                        .insert(
                            record_key(&record_id(record)),
                            encode_record(record).as_slice(),
                        )
                        .map_err(|e| err(format!("cannot upgrade: {e}")))?;
                }
                meta.insert("format", FORMAT)
                    .map_err(|e| err(format!("cannot upgrade: {e}")))?;
                log::info!(
                    "identity store: {} upgraded from format {read_as} to {FORMAT} ({} records)",
                    path.display(),
                    records.len()
                );
            }
            records
        };
        txn.commit()
            .map_err(|e| err(format!("cannot write: {e}")))?;
        Ok((
            IdentityFile {
                db,
                path: path.to_path_buf(),
            },
            records,
        ))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `changes` (a record's new value, or `None` to forget it) in one transaction,
    /// durable before it returns.
    pub fn write(
        &self,
        changes: &[(AnyIdentity, Option<IdentityRecord>)],
    ) -> Result<(), IdentityFileError> {
        let err = |what: String| IdentityFileError {
            path: self.path.clone(),
            what,
        };
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| err(format!("cannot write: {e}")))?;
        txn.set_durability(Durability::Immediate);
        {
            let mut table = txn
                .open_table(RECORDS)
                .map_err(|e| err(format!("cannot write: {e}")))?;
            for (id, record) in changes {
                let key = record_key(id);
                let done = match record {
                    Some(r) => table.insert(key, encode_record(r).as_slice()).map(|_| ()),
                    None => table.remove(key).map(|_| ()),
                };
                done.map_err(|e| err(format!("cannot write: {e}")))?;
            }
        }
        txn.commit().map_err(|e| err(format!("cannot commit: {e}")))
    }
}
