//! Serving other nodes: their gets (store, then cache, then holders' receipts), and their puts
//! and extends under the [`super::PutPolicy`], answered with signed receipts.

use super::{StorageEngine, StorageStats};
use crate::identity::NodeIdentity;
use crate::mail::storage::StoragePrefs;
use crate::mail::Message;
use crate::runtime::Context;
use crate::storage::block::{BlockId, VerifiedBlock};
use crate::storage::receipt::ChunkCommitment;
use crate::storage::store::{BlockMeta, StoreError};
use crate::storage::wire::{GetAnswer, Refusal, StorageMessage, MAX_HOLDERS};
use crate::time::Timestamp;

/// The `StoragePrefs.min_trust` a stored block was put with.
pub(super) fn meta_min_trust(meta: &BlockMeta) -> u8 {
    meta.min_trust
}

/// The metadata a block is stored with.
pub(super) fn meta_of(expires: Timestamp, min_trust: u8) -> BlockMeta {
    BlockMeta { expires, min_trust }
}

impl StorageEngine {
    /// The block `id` if this node may serve it to `to` now: from the store (not expired), else
    /// from the cache; with its `min_trust`. `Err` is a refusal for trust.
    pub(super) fn servable(
        &mut self,
        ctx: &Context,
        id: &BlockId,
        to: &[NodeIdentity],
    ) -> Result<Option<(VerifiedBlock, u8)>, u8> {
        let now = ctx.now().wall;
        let held = match self.store.meta(id) {
            Ok(Some(meta)) if meta.expires > now => match self.store.get(id) {
                Ok(Some(b)) => Some((b, meta_min_trust(&meta))),
                Ok(None) => None,
                Err(e) => {
                    self.store_error(&e);
                    None
                }
            },
            Ok(_) => None,
            Err(e) => {
                self.store_error(&e);
                None
            }
        };
        let found = held.or_else(|| self.cache.get(id));
        match found {
            Some((b, min_trust)) => {
                // This node's own engines (`to` empty) are always served.
                let least = to.iter().map(|n| self.trust_of(n)).min().unwrap_or(u8::MAX);
                if least < min_trust {
                    Err(min_trust)
                } else {
                    Ok(Some((b, min_trust)))
                }
            }
            None => Ok(None),
        }
    }

    pub(super) fn store_error(&self, e: &StoreError) {
        if let Some(n) = StorageStats::count_hostile(&self.stats.store_errors) {
            log::error!("storage: the block store failed: {e} (seen {n} times)");
        }
    }

    fn reply(&mut self, ctx: &mut Context, m: &Message, via: NodeIdentity, msg: StorageMessage) {
        self.send_remote(ctx, via, &msg, false, Some(m.id()));
    }

    /// A remote `Get`.
    pub(super) fn serve_get(
        &mut self,
        ctx: &mut Context,
        m: &Message,
        via: NodeIdentity,
        id: BlockId,
        want_holders: bool,
    ) {
        let now_ms = ctx.now().wall.0;
        let per_s = self.settings.limits.requests_per_peer_s;
        let answer = if !self.rate.allow(now_ms, via, per_s) {
            self.hostile(&self.stats.rate_limited, "gets over the rate", via);
            GetAnswer::Refused(Refusal::Rate, "too many requests".into())
        } else {
            match self.servable(ctx, &id, &[via]) {
                Ok(Some((b, _))) => {
                    StorageStats::count(&self.stats.served);
                    GetAnswer::Block(b.bytes().to_vec())
                }
                Err(min) => {
                    StorageStats::count(&self.stats.refused_trust);
                    let t = self.trust_of(&via);
                    GetAnswer::Refused(Refusal::Trust, format!("trust {t} is below {min}"))
                }
                Ok(None) => {
                    let r = if want_holders {
                        self.holders
                            .receipts(&id, ctx.now().wall, Some(via), MAX_HOLDERS)
                    } else {
                        Vec::new()
                    };
                    if r.is_empty() {
                        StorageStats::count(&self.stats.served_not_found);
                        GetAnswer::NotFound
                    } else {
                        StorageStats::count(&self.stats.served_holders);
                        GetAnswer::Holders(r)
                    }
                }
            }
        };
        self.reply(ctx, m, via, StorageMessage::GetReply { id, answer });
    }

    /// Whether `via` may store here at all; the refusal if not.
    fn put_allowed(&mut self, ctx: &Context, via: NodeIdentity) -> Result<(), (Refusal, String)> {
        let policy = self.settings.puts;
        if !policy.accept {
            StorageStats::count(&self.stats.refused_put_policy);
            return Err((
                Refusal::NotAccepted,
                "this node stores no blocks for others".into(),
            ));
        }
        let per_s = self.settings.limits.requests_per_peer_s;
        if !self.rate.allow(ctx.now().wall.0, via, per_s) {
            self.hostile(&self.stats.rate_limited, "puts over the rate", via);
            return Err((Refusal::Rate, "too many requests".into()));
        }
        let t = self.trust_of(&via);
        if t < policy.min_trust {
            StorageStats::count(&self.stats.refused_put_trust);
            return Err((
                Refusal::Trust,
                format!("trust {t} is below {} for puts", policy.min_trust),
            ));
        }
        Ok(())
    }

    /// The expiry this node promises for a request until `until`: capped by the policy's
    /// lifetime; an expiry not in the future is refused.
    fn capped(&self, ctx: &Context, until: Timestamp) -> Result<Timestamp, (Refusal, String)> {
        let now = ctx.now().wall;
        if until <= now {
            return Err((Refusal::Invalid, "the expiry asked for has passed".into()));
        }
        Ok(until.min(now.after(self.settings.puts.max_lifetime)))
    }

    /// A remote `Put`.
    pub(super) fn serve_put(
        &mut self,
        ctx: &mut Context,
        m: &Message,
        via: NodeIdentity,
        bytes: Vec<u8>,
        prefs: StoragePrefs,
    ) {
        let result = self.try_put(ctx, via, &bytes, prefs);
        // The id only names the block in the answer; the put's checks come first.
        let id = match &result {
            Ok(c) => c.block,
            Err(_) => BlockId::of(&bytes),
        };
        if let Err((r, text)) = &result {
            log::debug!(
                "storage: put of {id} from {} refused: {text} ({})",
                via.short(),
                r.label()
            );
        }
        self.reply(ctx, m, via, StorageMessage::PutReply { id, result });
    }

    fn try_put(
        &mut self,
        ctx: &Context,
        via: NodeIdentity,
        bytes: &[u8],
        prefs: StoragePrefs,
    ) -> Result<ChunkCommitment, (Refusal, String)> {
        self.put_allowed(ctx, via)?;
        let id = BlockId::of(bytes);
        let block = VerifiedBlock::check(id, bytes).map_err(|e| {
            self.hostile(
                &self.stats.refused_invalid,
                "a put of an invalid block",
                via,
            );
            (Refusal::Invalid, format!("not a valid block: {e}"))
        })?;
        let until = self.capped(ctx, prefs.expiry).inspect_err(|_| {
            StorageStats::count(&self.stats.refused_invalid);
        })?;
        let used = self.put_bytes.get(&via).copied().unwrap_or(0);
        let share = self.settings.puts.max_bytes_per_node;
        let held_meta = self.store.meta(&id).ok().flatten();
        let held = held_meta.is_some();
        if !self.put_bytes.contains_key(&via)
            && self.put_bytes.len() >= self.settings.limits.max_put_nodes
        {
            StorageStats::count(&self.stats.refused_full);
            let n = self.put_bytes.len();
            return Err((
                Refusal::Full,
                format!("this node tracks shares for {n} storing nodes already"),
            ));
        }
        if !held && used + block.len() as u64 > share {
            StorageStats::count(&self.stats.refused_full);
            return Err((
                Refusal::Full,
                format!(
                    "this node's share for {} is used up ({used} of {share} bytes)",
                    via.short()
                ),
            ));
        }
        // A re-put never lowers who may be served a block held here: it cannot take the
        // block away from those its first storer allowed, nor open it to more.
        let min_trust = held_meta.map_or(prefs.min_trust, |m| m.min_trust.max(prefs.min_trust));
        match self.store.put(&block, meta_of(until, min_trust)) {
            Ok(outcome) => {
                if outcome == crate::storage::store::PutOutcome::Stored {
                    *self.put_bytes.entry(via).or_insert(0) += block.len() as u64;
                }
            }
            Err(e @ StoreError::Full { .. }) => {
                StorageStats::count(&self.stats.refused_full);
                return Err((Refusal::Full, e.to_string()));
            }
            Err(e) => {
                self.store_error(&e);
                return Err((Refusal::Failed, "the store failed".into()));
            }
        }
        StorageStats::count(&self.stats.puts_stored);
        Ok(self.receipt(id))
    }

    /// A receipt for a held block, promising its stored expiry.
    fn receipt(&mut self, id: BlockId) -> ChunkCommitment {
        let until = match self.store.meta(&id) {
            Ok(Some(m)) => m.expires,
            _ => Timestamp(0),
        };
        ChunkCommitment::sign(&self.key, id, until)
    }

    /// A remote `Extend`.
    pub(super) fn serve_extend(
        &mut self,
        ctx: &mut Context,
        m: &Message,
        via: NodeIdentity,
        id: BlockId,
        until: Timestamp,
    ) {
        let result = self.try_extend(ctx, via, id, until);
        self.reply(ctx, m, via, StorageMessage::PutReply { id, result });
    }

    fn try_extend(
        &mut self,
        ctx: &Context,
        via: NodeIdentity,
        id: BlockId,
        until: Timestamp,
    ) -> Result<ChunkCommitment, (Refusal, String)> {
        self.put_allowed(ctx, via)?;
        let until = self.capped(ctx, until).inspect_err(|_| {
            StorageStats::count(&self.stats.refused_invalid);
        })?;
        let now = ctx.now().wall;
        match self.store.meta(&id) {
            Ok(Some(meta)) if meta.expires > now => {}
            Ok(_) => {
                StorageStats::count(&self.stats.refused_invalid);
                return Err((
                    Refusal::Invalid,
                    format!("block {id} is not held here (or has expired)"),
                ));
            }
            Err(e) => {
                self.store_error(&e);
                return Err((Refusal::Failed, "the store failed".into()));
            }
        }
        if let Err(e) = self.store.extend(&id, until) {
            self.store_error(&e);
            return Err((Refusal::Failed, "the store failed".into()));
        }
        StorageStats::count(&self.stats.puts_stored);
        Ok(self.receipt(id))
    }
}
