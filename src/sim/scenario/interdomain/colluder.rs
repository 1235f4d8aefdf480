//! The colluders' PeerSampling engine: instead of TAPS (or CYCLON) it pushes only the
//! colluders' descriptors. Every `period` it sends an `Exchange` of `xchg_len` colluders'
//! descriptors (drawn uniformly among all colluders, its own included) to `push` honest nodes
//! drawn uniformly from all of them — the colluders know every honest node's advert — and it
//! answers every `Exchange` it receives with a `Reply` of colluders' descriptors only. It
//! never keeps what honest nodes send it. The descriptors are genuine (signed by each
//! colluder's node key, with a filter flipped from its real memberships), so an honest node
//! cannot refuse them as forged: only TAPS' trust and URPS' sampling stand in the way.
//!
//! It is built from `sampling::wire`, names itself like the honest engine
//! ([`SAMPLING_ENGINE_NAME`]) and serves [`Protocol::SAMPLING`], so to its peers it looks
//! like any PeerSampling engine.

use std::sync::Arc;
use std::time::Duration;

use crate::identity::NodeIdentity;
use crate::mail::interdomain::SAMPLING_ENGINE_NAME;
use crate::mail::{Input, Origin};
use crate::rng::SplitMix64;
use crate::runtime::{Context, Engine};
use crate::sampling::wire::SamplingMessage;
use crate::wire::{Destination, NodeDescriptor, Protocol};

const PUSH_TIMER: u64 = 1;

/// The engine's name on the colluding node (the honest engine's).
pub(super) const NAME: &str = SAMPLING_ENGINE_NAME;

/// A colluding PeerSampling engine.
pub(super) struct Colluder {
    /// Every colluder's descriptor.
    pub(super) descriptors: Arc<Vec<NodeDescriptor>>,
    /// Every honest node.
    pub(super) targets: Arc<Vec<NodeIdentity>>,
    pub(super) period: Duration,
    pub(super) xchg_len: usize,
    /// Honest nodes pushed to per period.
    pub(super) push: usize,
    /// Most descriptors read from one incoming message.
    pub(super) max_descriptors: usize,
    pub(super) rng: SplitMix64,
}

impl Colluder {
    fn sample(&mut self) -> Vec<NodeDescriptor> {
        let all = &self.descriptors;
        let n = self.xchg_len.min(all.len());
        let mut picked: Vec<usize> = Vec::with_capacity(n);
        while picked.len() < n {
            let k = self.rng.below(all.len() as u64) as usize;
            if !picked.contains(&k) {
                picked.push(k);
            }
        }
        picked.into_iter().map(|k| all[k].clone()).collect()
    }
}

impl Engine for Colluder {
    fn start(&mut self, ctx: &mut Context) {
        let first = self.period.mul_f64(self.rng.next_f64());
        ctx.set_timer_after(PUSH_TIMER, first);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(PUSH_TIMER) => {
                for _ in 0..self.push {
                    if self.targets.is_empty() {
                        break;
                    }
                    let to = self.targets[self.rng.below(self.targets.len() as u64) as usize];
                    let body = SamplingMessage::Exchange {
                        descriptors: self.sample(),
                    }
                    .to_bytes();
                    ctx.send(Destination::Node(to), Protocol::SAMPLING, body);
                }
                ctx.set_timer_after(PUSH_TIMER, self.period);
            }
            Input::Message(m) => {
                let Origin::Remote { via } = m.origin() else {
                    return;
                };
                if matches!(
                    SamplingMessage::from_bytes(m.body(), self.max_descriptors),
                    Ok(SamplingMessage::Exchange { .. })
                ) {
                    let body = SamplingMessage::Reply {
                        descriptors: self.sample(),
                    }
                    .to_bytes();
                    ctx.send(Destination::Node(via), Protocol::SAMPLING, body);
                }
            }
            _ => {}
        }
    }
}
