//! What of the identity store outlives a restart, as the store sees it: the stored form of a
//! record, the changes made since they were last taken (for the NIS shell to write), and
//! restoring records read back at start. No file is touched here; the wiring layer keeps the
//! records in a redb file (`node::identity_file`).
//!
//! Stored form of a record (format 2), all integers little-endian:
//!
//! | kind `u8` | fields |
//! | ---: | --- |
//! | 0 node | id (32) · advert? · trust? (`u8`) · reputation? (`u8`) · tprefs? · cprefs? (`u8`: 0 ephemeral, 1 permanent) · measured? |
//! | 1 engine | id (32) · node (32) · advert? |
//! | 2 topic | advert |
//! | 3 domain | advert |
//!
//! `x?` is `u8` 0 (absent) or 1 then `x`; an advert or tprefs is `u32` length then its wire
//! encoding (docs/wire.md §6, §4.2). `measured` is the address (`u32` length, then its wire
//! encoding, §6.1) · `rtt_us` `u32` · `loss_ppm` `u32` · `at` `u64` ms. Format 1 (before
//! measurements were kept) is format 2 without `measured?`; its files are read, and rewritten in
//! format 2 when opened. Adverts read back are verified again, and expired ones let go: a
//! restored store holds nothing a fresh one would refuse.

use std::collections::BTreeSet;

use super::{expiry_of, verified, IdentityStore};
use crate::identity::{EngineIdentity, NodeIdentity};
use crate::mail::identity::{
    AnyIdentity, ConnectionPrefs, EngineRecord, IdentityEvent, IdentityRecord, Measurement,
    NodeRecord,
};
use crate::time::Timestamp;
use crate::wire::{
    decode_exact, encode_to_vec, DomainAdvert, EngineAdvert, NodeAdvert, TopicAdvert,
    TransportAddress,
};

/// The stored format this version writes.
pub const FORMAT: u64 = 2;
/// The oldest stored format this version reads (and rewrites in [`FORMAT`]).
pub const OLDEST_FORMAT: u64 = 1;

/// The key a record is stored under: its kind and its 32 bytes.
pub fn record_key(id: &AnyIdentity) -> [u8; 33] {
    let (kind, bytes) = match id {
        AnyIdentity::Node(n) => (0, n.0),
        AnyIdentity::Engine(e) => (1, e.0),
        AnyIdentity::Topic(t) => (2, t.0),
        AnyIdentity::Domain(d) => (3, d.0),
    };
    let mut key = [0u8; 33];
    key[0] = kind;
    key[1..].copy_from_slice(&bytes);
    key
}

fn put_opt_bytes(out: &mut Vec<u8>, bytes: Option<Vec<u8>>) {
    match bytes {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(&b);
        }
    }
}

fn put_opt_u8(out: &mut Vec<u8>, v: Option<u8>) {
    match v {
        None => out.push(0),
        Some(v) => out.extend_from_slice(&[1, v]),
    }
}

/// The stored form of `record`.
pub fn encode_record(record: &IdentityRecord) -> Vec<u8> {
    let mut out = Vec::new();
    match record {
        IdentityRecord::Node(r) => {
            out.push(0);
            out.extend_from_slice(&r.id.0);
            put_opt_bytes(&mut out, r.advert.as_ref().map(encode_to_vec));
            put_opt_u8(&mut out, r.trust);
            put_opt_u8(&mut out, r.reputation);
            put_opt_bytes(&mut out, r.tprefs.as_ref().map(encode_to_vec));
            put_opt_u8(
                &mut out,
                r.cprefs.map(|c| match c {
                    ConnectionPrefs::Ephemeral => 0,
                    ConnectionPrefs::Permanent => 1,
                }),
            );
            match &r.measured {
                None => out.push(0),
                Some(m) => {
                    put_opt_bytes(&mut out, Some(encode_to_vec(&m.address)));
                    out.extend_from_slice(&m.rtt_us.to_le_bytes());
                    out.extend_from_slice(&m.loss_ppm.to_le_bytes());
                    out.extend_from_slice(&m.at.0.to_le_bytes());
                }
            }
        }
        IdentityRecord::Engine(r) => {
            out.push(1);
            out.extend_from_slice(&r.id.0);
            out.extend_from_slice(&r.node.0);
            put_opt_bytes(&mut out, r.advert.as_ref().map(encode_to_vec));
        }
        IdentityRecord::Topic(a) => {
            out.push(2);
            put_opt_bytes(&mut out, Some(encode_to_vec(a)));
        }
        IdentityRecord::Domain(a) => {
            out.push(3);
            put_opt_bytes(&mut out, Some(encode_to_vec(a)));
        }
    }
    out
}

/// Reads the stored form, refusing anything malformed (with what and where).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "truncated: {n} bytes wanted, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn id(&mut self) -> Result<[u8; 32], String> {
        Ok(self.take(32)?.try_into().expect("32 bytes"))
    }

    fn flag(&mut self) -> Result<bool, String> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            f => Err(format!("option flag {f}")),
        }
    }

    fn opt_u8(&mut self) -> Result<Option<u8>, String> {
        Ok(if self.flag()? {
            Some(self.take(1)?[0])
        } else {
            None
        })
    }

    fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>, String> {
        if !self.flag()? {
            return Ok(None);
        }
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        Ok(Some(self.take(len)?))
    }

    fn opt_decoded<T: bincode::Decode<()>>(&mut self, what: &str) -> Result<Option<T>, String> {
        self.opt_bytes()?
            .map(|b| decode_exact::<T>(b).map_err(|e| format!("{what}: {e}")))
            .transpose()
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn measurement(&mut self) -> Result<Option<Measurement>, String> {
        let Some(address) = self.opt_decoded::<TransportAddress>("measured address")? else {
            return Ok(None);
        };
        Ok(Some(Measurement {
            address,
            rtt_us: self.u32()?,
            loss_ppm: self.u32()?,
            at: Timestamp(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
        }))
    }

    fn decoded<T: bincode::Decode<()>>(&mut self, what: &str) -> Result<T, String> {
        self.opt_decoded(what)?
            .ok_or_else(|| format!("{what} missing"))
    }
}

/// A record from its stored form.
pub fn decode_record(bytes: &[u8]) -> Result<IdentityRecord, String> {
    decode_record_in(bytes, FORMAT)
}

/// A record from its stored form in `format` ([`OLDEST_FORMAT`] ..= [`FORMAT`]).
pub fn decode_record_in(bytes: &[u8], format: u64) -> Result<IdentityRecord, String> {
    let mut r = Reader(bytes);
    let record = match r.take(1)?[0] {
        0 => IdentityRecord::Node(NodeRecord {
            id: NodeIdentity(r.id()?),
            advert: r.opt_decoded::<NodeAdvert>("node advert")?,
            trust: r.opt_u8()?,
            reputation: r.opt_u8()?,
            tprefs: r.opt_decoded("transport preferences")?,
            cprefs: match r.opt_u8()? {
                None => None,
                Some(0) => Some(ConnectionPrefs::Ephemeral),
                Some(1) => Some(ConnectionPrefs::Permanent),
                Some(c) => return Err(format!("connection preference {c}")),
            },
            // Format 1 had no measurements.
            measured: if format < 2 { None } else { r.measurement()? },
        }),
        1 => IdentityRecord::Engine(EngineRecord {
            id: EngineIdentity(r.id()?),
            node: NodeIdentity(r.id()?),
            advert: r.opt_decoded::<EngineAdvert>("engine advert")?,
        }),
        2 => IdentityRecord::Topic(r.decoded::<TopicAdvert>("topic advert")?),
        3 => IdentityRecord::Domain(r.decoded::<DomainAdvert>("domain advert")?),
        k => return Err(format!("record kind {k}")),
    };
    if !r.0.is_empty() {
        return Err(format!("{} bytes after the record", r.0.len()));
    }
    Ok(record)
}

/// The identity a record is about.
pub fn record_id(record: &IdentityRecord) -> AnyIdentity {
    match record {
        IdentityRecord::Node(r) => AnyIdentity::Node(r.id),
        IdentityRecord::Engine(r) => AnyIdentity::Engine(r.id),
        IdentityRecord::Topic(a) => AnyIdentity::Topic(a.topic),
        IdentityRecord::Domain(a) => AnyIdentity::Domain(a.id),
    }
}

/// What [`IdentityStore::restore`] did with the records it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Records put back.
    pub restored: usize,
    /// Adverts that had expired or no longer verified, let go (a node record keeps its local
    /// metadata without them).
    pub dropped_adverts: usize,
    /// Records left out: this node's own (its adverts are signed afresh at start), ones with
    /// nothing left, or ones over the store's bound.
    pub skipped: usize,
}

impl IdentityStore {
    /// From now on, remember which records change, for [`IdentityStore::take_changes`].
    pub fn track_changes(&mut self) {
        self.changed.get_or_insert_with(BTreeSet::new);
    }

    /// The records changed since the last call (each with its record now, or `None` if it was
    /// removed), in identity order. Empty unless [`IdentityStore::track_changes`] was called.
    pub fn take_changes(&mut self) -> Vec<(AnyIdentity, Option<IdentityRecord>)> {
        let Some(changed) = self.changed.as_mut() else {
            return Vec::new();
        };
        std::mem::take(changed)
            .into_iter()
            .map(|id| (id, self.records.get(&id).cloned()))
            .collect()
    }

    /// Whether changes wait to be taken.
    pub fn has_changes(&self) -> bool {
        self.changed.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// Puts back records read at start (before the configured peers and engines are applied,
    /// so configuration wins where both set a field). Adverts are verified again and expired
    /// ones let go; `own`'s records are left out. Subscribers are told of every record put
    /// back, as of any update.
    pub fn restore(
        &mut self,
        now: Timestamp,
        own: NodeIdentity,
        records: Vec<IdentityRecord>,
    ) -> RestoreReport {
        let mut report = RestoreReport::default();
        for record in records {
            let record = match record {
                IdentityRecord::Node(mut r) => {
                    if r.id == own {
                        report.skipped += 1;
                        continue;
                    }
                    if let Some(a) = r.advert.take() {
                        match verified(a, now) {
                            Ok(a) if a.id == r.id => r.advert = Some(a),
                            _ => report.dropped_adverts += 1,
                        }
                    }
                    // A measurement alone does not keep a record: without the advert, the
                    // addresses it orders are gone.
                    let metadata = r.trust.is_some()
                        || r.reputation.is_some()
                        || r.tprefs.is_some()
                        || r.cprefs.is_some();
                    if r.advert.is_none() && !metadata {
                        report.skipped += 1;
                        continue;
                    }
                    IdentityRecord::Node(r)
                }
                IdentityRecord::Engine(mut r) => {
                    if r.node == own {
                        report.skipped += 1;
                        continue;
                    }
                    if let Some(a) = r.advert.take() {
                        match verified(a, now) {
                            Ok(a) if a.engine == r.id && a.node == r.node => r.advert = Some(a),
                            _ => {
                                // The binding came from the advert: without it, nothing is left.
                                report.dropped_adverts += 1;
                                report.skipped += 1;
                                continue;
                            }
                        }
                    }
                    IdentityRecord::Engine(r)
                }
                IdentityRecord::Topic(a) => match verified(a, now) {
                    Ok(a) => IdentityRecord::Topic(a),
                    Err(_) => {
                        report.dropped_adverts += 1;
                        report.skipped += 1;
                        continue;
                    }
                },
                IdentityRecord::Domain(a) => match verified(a, now) {
                    Ok(a) => IdentityRecord::Domain(a),
                    Err(_) => {
                        report.dropped_adverts += 1;
                        report.skipped += 1;
                        continue;
                    }
                },
            };
            let id = record_id(&record);
            let existing = self.records.get(&id);
            let fits = existing.is_some() || self.records.len() < self.max_records;
            let engine_fits = match &record {
                IdentityRecord::Engine(r) => self.room_for_engine_of(existing, r.node),
                _ => true,
            };
            if !fits || !engine_fits {
                report.skipped += 1;
                continue;
            }
            debug_assert!(expiry_of(&record).is_none_or(|t| t > now));
            self.store(id, record.clone());
            self.notify(IdentityEvent::Updated { id, record });
            report.restored += 1;
        }
        report
    }
}
