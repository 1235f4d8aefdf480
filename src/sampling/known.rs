//! The verified-descriptor memory: for each node recently heard of, the version of its last
//! verified descriptor and a digest of that descriptor's bytes, so that a descriptor's
//! signatures are checked once per (node, version) however often it comes back, an older
//! version is refused as a replay, and other bytes under a version already verified are
//! refused as conflicting without a signature check.
//!
//! Bounded by [`super::SamplingLimits::max_known`]: the entry remembered longest ago is
//! forgotten first (insertion order, a queue with lazy deletion, O(log n) per operation).

use std::collections::{BTreeMap, VecDeque};

use ring::digest::{digest, SHA256};

use crate::identity::NodeIdentity;
use crate::wire::{encode_to_vec, NodeDescriptor};

/// A digest of a descriptor's encoding (the first 16 bytes of its SHA-256).
pub(super) type Fingerprint = [u8; 16];

/// The fingerprint of `d`.
pub(super) fn fingerprint(d: &NodeDescriptor) -> Fingerprint {
    let h = digest(&SHA256, &encode_to_vec(d));
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.as_ref()[..16]);
    out
}

#[derive(Clone, Copy, Debug)]
struct Record {
    version: u64,
    print: Fingerprint,
    seq: u64,
}

/// What the memory says of a received descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Seen {
    /// No record, or an older version: check its signatures.
    New,
    /// The very bytes verified before.
    Same,
    /// An older version than the one remembered.
    Stale,
    /// The version remembered, other bytes.
    Conflicting,
}

/// See the module doc.
#[derive(Debug)]
pub(super) struct Known {
    max: usize,
    map: BTreeMap<NodeIdentity, Record>,
    order: VecDeque<(NodeIdentity, u64)>,
    seq: u64,
}

impl Known {
    pub fn new(max: usize) -> Known {
        Known {
            max: max.max(1),
            map: BTreeMap::new(),
            order: VecDeque::new(),
            seq: 0,
        }
    }

    /// How `d` (with fingerprint `print`) compares with what is remembered of its node.
    pub fn seen(&self, d: &NodeDescriptor, print: &Fingerprint) -> Seen {
        match self.map.get(&d.node()) {
            None => Seen::New,
            Some(r) if d.version > r.version => Seen::New,
            Some(r) if d.version < r.version => Seen::Stale,
            Some(r) if r.print == *print => Seen::Same,
            Some(_) => Seen::Conflicting,
        }
    }

    /// Remembers that `d` verified.
    pub fn insert(&mut self, d: &NodeDescriptor, print: Fingerprint) {
        self.seq += 1;
        self.map.insert(
            d.node(),
            Record {
                version: d.version,
                print,
                seq: self.seq,
            },
        );
        self.order.push_back((d.node(), self.seq));
        while self.map.len() > self.max {
            let Some((node, seq)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&node).is_some_and(|r| r.seq == seq) {
                self.map.remove(&node);
            }
        }
        // Stale queue entries (superseded versions) are dropped once they dominate.
        if self.order.len() > 2 * self.max {
            let map = &self.map;
            self.order
                .retain(|(n, s)| map.get(n).is_some_and(|r| r.seq == *s));
        }
    }

    /// How many nodes are remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}
