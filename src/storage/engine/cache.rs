//! The Storage engine's bounded memories: the cache of blocks seen in search results
//! ([`BlockCache`]), the receipts of other holders ([`KnownHolders`]) and per-peer request
//! rates ([`RateWindows`]).

use std::collections::{BTreeMap, HashMap};

use crate::identity::NodeIdentity;
use crate::storage::block::{BlockId, VerifiedBlock};
use crate::storage::receipt::ChunkCommitment;
use crate::time::Timestamp;

/// Blocks that passed through this node in search results, least recently used dropped first,
/// at most `max_bytes` of encoded blocks. Every entry was checked against its id before it
/// went in (only a [`VerifiedBlock`] can).
pub(super) struct BlockCache {
    max_bytes: usize,
    bytes: usize,
    stamp: u64,
    entries: HashMap<BlockId, (VerifiedBlock, u8, u64)>,
    order: BTreeMap<u64, BlockId>,
}

impl BlockCache {
    pub(super) fn new(max_bytes: usize) -> BlockCache {
        BlockCache {
            max_bytes,
            bytes: 0,
            stamp: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// Keeps `block` (served only to nodes with at least `min_trust`); false if it is larger
    /// than the whole cache.
    pub(super) fn insert(&mut self, block: VerifiedBlock, min_trust: u8) -> bool {
        if block.len() > self.max_bytes {
            return false;
        }
        let id = block.id();
        if let Some((_, _, old)) = self.entries.remove(&id) {
            self.order.remove(&old);
            self.bytes -= block.len();
        }
        while self.bytes + block.len() > self.max_bytes {
            let Some((_, victim)) = self.order.pop_first() else {
                break;
            };
            if let Some((b, _, _)) = self.entries.remove(&victim) {
                self.bytes -= b.len();
            }
        }
        self.stamp += 1;
        self.bytes += block.len();
        self.order.insert(self.stamp, id);
        self.entries.insert(id, (block, min_trust, self.stamp));
        true
    }

    /// The cached block and its `min_trust`, marked as used.
    pub(super) fn get(&mut self, id: &BlockId) -> Option<(VerifiedBlock, u8)> {
        let (b, t, s) = self.entries.get_mut(id)?;
        self.order.remove(s);
        self.stamp += 1;
        *s = self.stamp;
        self.order.insert(self.stamp, *id);
        Some((b.clone(), *t))
    }

    /// Bytes held.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// One other holder of a block, as a receipt names it.
#[derive(Clone, Copy, Debug)]
struct Holder {
    receipt: ChunkCommitment,
    /// When this node last got a block from it (wall ms), if ever.
    last_ok: Option<u64>,
}

/// Receipts of other holders (checked when they arrived), at most `max` in all; the requester
/// of a get tries them most recently successful first.
pub(super) struct KnownHolders {
    max: usize,
    count: usize,
    by_block: BTreeMap<BlockId, Vec<Holder>>,
}

impl KnownHolders {
    pub(super) fn new(max: usize) -> KnownHolders {
        KnownHolders {
            max,
            count: 0,
            by_block: BTreeMap::new(),
        }
    }

    /// Records a checked receipt (replacing an older one of the same holder).
    pub(super) fn add(&mut self, receipt: ChunkCommitment) {
        let list = self.by_block.entry(receipt.block).or_default();
        if let Some(h) = list.iter_mut().find(|h| h.receipt.node == receipt.node) {
            if receipt.until > h.receipt.until {
                h.receipt = receipt;
            }
            return;
        }
        if self.count >= self.max {
            // Full: make room by dropping the receipts of the block with the lowest id (an
            // arbitrary but deterministic victim) unless that is this block.
            let victim = *self
                .by_block
                .keys()
                .find(|b| **b != receipt.block)
                .unwrap_or(&receipt.block);
            if victim == receipt.block {
                return;
            }
            if let Some(gone) = self.by_block.remove(&victim) {
                self.count -= gone.len();
            }
        }
        self.by_block
            .entry(receipt.block)
            .or_default()
            .push(Holder {
                receipt,
                last_ok: None,
            });
        self.count += 1;
    }

    /// Notes that `node` just served `block`.
    pub(super) fn success(&mut self, block: &BlockId, node: NodeIdentity, now: Timestamp) {
        if let Some(h) = self
            .by_block
            .get_mut(block)
            .and_then(|l| l.iter_mut().find(|h| h.receipt.node == node))
        {
            h.last_ok = Some(now.0);
        }
    }

    /// Receipts for `block` still valid at `now`, most recently successful first (then the
    /// longest promise), without `except`'s.
    pub(super) fn receipts(
        &mut self,
        block: &BlockId,
        now: Timestamp,
        except: Option<NodeIdentity>,
        max: usize,
    ) -> Vec<ChunkCommitment> {
        let Some(list) = self.by_block.get_mut(block) else {
            return Vec::new();
        };
        let before = list.len();
        list.retain(|h| h.receipt.until > now);
        self.count -= before - list.len();
        let mut out: Vec<Holder> = list
            .iter()
            .filter(|h| Some(h.receipt.node) != except)
            .copied()
            .collect();
        if list.is_empty() {
            self.by_block.remove(block);
        }
        out.sort_by(|a, b| {
            b.last_ok
                .cmp(&a.last_ok)
                .then(b.receipt.until.cmp(&a.receipt.until))
                .then(a.receipt.node.cmp(&b.receipt.node))
        });
        out.into_iter().take(max).map(|h| h.receipt).collect()
    }

    /// Receipts held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.count
    }
}

/// Requests per peer in the current second, for at most `peers` peers at once.
pub(super) struct RateWindows {
    peers: usize,
    windows: BTreeMap<NodeIdentity, (u64, u32)>,
}

impl RateWindows {
    pub(super) fn new(peers: usize) -> RateWindows {
        RateWindows {
            peers,
            windows: BTreeMap::new(),
        }
    }

    /// Counts one request of `peer` at `now_ms`; whether it is within `per_s`.
    pub(super) fn allow(&mut self, now_ms: u64, peer: NodeIdentity, per_s: u32) -> bool {
        let sec = now_ms / 1000;
        if !self.windows.contains_key(&peer) && self.windows.len() >= self.peers {
            self.windows.retain(|_, (s, _)| *s >= sec);
            if self.windows.len() >= self.peers {
                return false;
            }
        }
        let w = self.windows.entry(peer).or_insert((sec, 0));
        if w.0 != sec {
            *w = (sec, 0);
        }
        w.1 += 1;
        w.1 <= per_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;
    use crate::storage::block::Block;

    fn leaf(n: usize, fill: u8) -> VerifiedBlock {
        VerifiedBlock::new(Block::Leaf(vec![fill; n])).unwrap()
    }

    #[test]
    fn cache_stays_within_its_bytes_and_drops_least_recently_used() {
        let a = leaf(400, 1);
        let one = a.len();
        let mut c = BlockCache::new(one * 2 + 10);
        let b = leaf(400, 2);
        let d = leaf(400, 3);
        assert!(c.insert(a.clone(), 0) && c.insert(b.clone(), 7));
        assert!(c.get(&a.id()).is_some()); // a is now the most recent
        assert!(c.insert(d.clone(), 0));
        assert!(c.bytes() <= one * 2 + 10);
        assert!(c.get(&b.id()).is_none(), "b was least recently used");
        assert!(c.get(&a.id()).is_some() && c.get(&d.id()).is_some());
        assert!(!c.insert(leaf(5000, 4), 0), "larger than the cache");
        assert_eq!(c.get(&a.id()).unwrap().1, 0);
    }

    #[test]
    fn holders_are_bounded_and_ordered_by_success() {
        let id = BlockId([1; 32]);
        let k1 = Keypair::from_seed(&[1; 32]);
        let k2 = Keypair::from_seed(&[2; 32]);
        let mut h = KnownHolders::new(2);
        h.add(ChunkCommitment::sign(&k1, id, Timestamp(1000)));
        h.add(ChunkCommitment::sign(&k2, id, Timestamp(900)));
        h.success(&id, k2.node_identity(), Timestamp(10));
        let r = h.receipts(&id, Timestamp(5), None, 8);
        assert_eq!(
            r[0].node,
            k2.node_identity(),
            "most recently successful first"
        );
        // Full: a receipt for another block evicts this block's, never grows past 2.
        h.add(ChunkCommitment::sign(
            &k1,
            BlockId([2; 32]),
            Timestamp(1000),
        ));
        assert!(h.len() <= 2);
        // Expired receipts are not offered.
        assert!(h
            .receipts(&BlockId([2; 32]), Timestamp(2000), None, 8)
            .is_empty());
    }

    #[test]
    fn rate_windows_refuse_past_the_rate_and_reset_each_second() {
        let p = NodeIdentity([1; 32]);
        let mut r = RateWindows::new(1);
        assert!(r.allow(0, p, 2) && r.allow(10, p, 2));
        assert!(!r.allow(20, p, 2));
        assert!(r.allow(1000, p, 2));
        assert!(!r.allow(1000, NodeIdentity([2; 32]), 2), "peer table full");
        assert!(
            r.allow(3000, NodeIdentity([2; 32]), 2),
            "stale windows give way"
        );
    }
}
