//! Unit tests of the PeerSampling engine through `Context::detached`: one engine fed inputs
//! directly (this file: trust, explicit view, own descriptor; `hostile` for bad input), the
//! wire codec (`codec`), and a small in-memory network of engines with colluders (`harness`,
//! scenarios in `network`).

mod codec;
mod harness;
mod hostile;
mod network;

use std::sync::Arc;
use std::time::Duration;

use super::wire::SamplingMessage;
use super::*;
use crate::identity::{DomainIdentity, EngineIdentity, Keypair};
use crate::interdomain::blip::{encode, BlipParams};
use crate::interdomain::descriptor::make_descriptor;
use crate::mail::identity::{IdentityRequest, IdentityUpdate};
use crate::mail::interdomain::{BoardSource, LinkKind};
use crate::mail::Output;
use crate::time::{Now, Timestamp};
use crate::wire::{NodeAdvert, NodeDescriptor};

/// A signed advert of `key`'s node, valid for a day from `now`.
pub(super) fn advert(key: &Keypair, now: Timestamp) -> NodeAdvert {
    NodeAdvert::new_signed(
        key,
        vec![],
        1,
        now,
        now.after(Duration::from_secs(86_400)),
        None,
    )
}

/// A signed descriptor of `key`'s node (no domains, unflipped) of `version`.
pub(super) fn descriptor_for(key: &Keypair, version: u64, now: Timestamp) -> NodeDescriptor {
    let params = BlipParams::default();
    let filter = encode(&params, std::iter::empty::<&DomainIdentity>());
    make_descriptor(key, advert(key, now), filter, version, now)
}

pub(super) fn keys(seed: u64, n: usize) -> Vec<Keypair> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| Keypair::from_rng(&mut rng)).collect()
}

/// One engine and what it sent.
pub(super) struct One {
    pub engine: SamplingEngine,
    pub ctx: Context,
    pub now: Now,
    pub key: Keypair,
    pub directory: DomainDirectory,
    pub board: NeighbourBoard,
}

/// What the engine asked for since the last look.
#[derive(Default, Debug)]
pub(super) struct Seen {
    pub sent: Vec<(NodeIdentity, SamplingMessage)>,
    pub registered: Vec<NodeIdentity>,
}

impl One {
    /// An engine (started) in `mode` with the explicit view `explicit` (keys with trust).
    pub fn new(mode: SamplerMode, explicit: &[(&Keypair, f64)]) -> One {
        let settings = SamplingSettings {
            mode,
            ..SamplingSettings::default()
        };
        One::with_settings(settings, explicit)
    }

    pub fn with_settings(settings: SamplingSettings, explicit: &[(&Keypair, f64)]) -> One {
        let now = Now::read();
        let key = Keypair::from_rng(&mut SplitMix64::new(999));
        let me = key.node_identity();
        let directory = DomainDirectory::new();
        let board = NeighbourBoard::new();
        let xview = explicit
            .iter()
            .map(|(k, t)| (advert(k, now.wall), *t))
            .collect();
        let engine = SamplingEngine::new(
            key.clone(),
            advert(&key, now.wall),
            settings,
            xview,
            directory.clone(),
            board.clone(),
            Arc::new(SamplingStats::default()),
            7,
        );
        let ctx = Context::detached(now, EngineIdentity(me.0), me, SAMPLING_ENGINE_NAME);
        let mut one = One {
            engine,
            ctx,
            now,
            key,
            directory,
            board,
        };
        one.engine.start(&mut one.ctx);
        one
    }

    pub fn me(&self) -> NodeIdentity {
        self.key.node_identity()
    }

    pub fn remote(&mut self, from: &Keypair, msg: &SamplingMessage) {
        self.remote_bytes(from.node_identity(), &msg.to_bytes());
    }

    pub fn remote_bytes(&mut self, from: NodeIdentity, body: &[u8]) {
        self.engine.deliver_remote(&mut self.ctx, from, body);
    }

    /// An exchange from `from` carrying `descs`.
    pub fn exchange(&mut self, from: &Keypair, descs: Vec<NodeDescriptor>) {
        self.remote(from, &SamplingMessage::Exchange { descriptors: descs });
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.advanced(d);
        self.ctx.set_now(self.now);
    }

    /// One gossip period: the timer fires.
    pub fn tick(&mut self) {
        self.advance(Duration::from_secs(1));
        self.engine.handle(&mut self.ctx, Input::Timer(GOSSIP));
    }

    pub fn seen(&mut self) -> Seen {
        let mut s = Seen::default();
        for out in self.ctx.take_outputs() {
            match out {
                Output::Send(o) => {
                    let Destination::Node(to) = o.msg.dst else {
                        panic!("sent to {:?}", o.msg.dst)
                    };
                    assert_eq!(o.msg.protocol, Protocol::SAMPLING);
                    let m = SamplingMessage::from_bytes(&o.msg.body, 64).expect("own body");
                    s.sent.push((to, m));
                }
                Output::Identity(IdentityRequest::Update(IdentityUpdate::NodeAdvert(a))) => {
                    s.registered.push(a.id)
                }
                _ => {}
            }
        }
        s
    }

    pub fn trust(&self, node: &NodeIdentity) -> Option<f64> {
        let p = self.engine.probe();
        p.view().into_iter().find(|e| e.node == *node).map(|e| e.trust)
    }

    pub fn stat(&self, f: impl Fn(&SamplingStats) -> &std::sync::atomic::AtomicU64) -> u64 {
        SamplingStats::get(f(&self.engine.stats))
    }
}

#[test]
fn start_makes_the_own_descriptor_and_registers_explicit_adverts() {
    let ks = keys(1, 2);
    let mut one = One::new(SamplerMode::Taps, &[(&ks[0], 0.8), (&ks[1], 0.5)]);
    let seen = one.seen();
    assert_eq!(seen.registered.len(), 2);
    let own = one.board.own().expect("own descriptor on the board");
    assert_eq!(own.node(), one.me());
    assert_eq!(own.filter.bits, 1024);
    assert!(own.filter.epsilon_milli > 0, "the own filter is flipped");
    assert_eq!(one.engine.probe().own_version(), own.version);
    assert_eq!(one.engine.probe().explicit().len(), 2);
}

#[test]
fn the_first_exchange_goes_to_an_explicit_node_with_the_own_descriptor_first() {
    let ks = keys(2, 3);
    let mut one = One::new(SamplerMode::Taps, &[(&ks[0], 0.8), (&ks[1], 0.8), (&ks[2], 0.8)]);
    one.seen();
    one.tick();
    let seen = one.seen();
    assert_eq!(seen.sent.len(), 1);
    let (to, SamplingMessage::Exchange { descriptors }) = &seen.sent[0] else {
        panic!("{:?}", seen.sent)
    };
    assert!(ks.iter().any(|k| k.node_identity() == *to));
    // The explicit nodes have no descriptor yet: only the own one can be sent.
    assert_eq!(descriptors.len(), 1);
    assert_eq!(descriptors[0].node(), one.me());
    assert_eq!(one.stat(|s| &s.sent_exchange), 1);
}

#[test]
fn received_trust_is_the_senders_times_transitivity() {
    let ks = keys(3, 6);
    let friend = &ks[0];
    let mut one = One::new(SamplerMode::Taps, &[(friend, 0.5)]);
    let now = one.now.wall;
    let descs: Vec<_> = ks[..4].iter().map(|k| descriptor_for(k, 1, now)).collect();
    one.exchange(friend, descs);
    // The friend keeps its local trust; what it passes on (sampler outputs) gets 0.5 × 0.9.
    let view = one.engine.probe().view();
    assert!(view.len() >= 2, "{view:?}");
    for e in &view {
        let want = if e.node == friend.node_identity() { 0.5 } else { 0.45 };
        assert!((e.trust - want).abs() < 1e-9, "{e:?}");
        assert_eq!(e.age, 0);
    }
    assert_eq!(one.stat(|s| &s.urps_fed), 4);
}

#[test]
fn entries_below_min_trust_are_not_merged() {
    let ks = keys(3, 6);
    let weak = &ks[1];
    let mut one = One::new(SamplerMode::Taps, &[(weak, 0.1)]);
    let now = one.now.wall;
    // Through the weak friend: 0.1 × 0.9 < min_trust; the friend itself (0.1) is merged.
    one.exchange(weak, vec![descriptor_for(weak, 1, now), descriptor_for(&ks[4], 1, now)]);
    assert_eq!(one.trust(&ks[4].node_identity()), None);
    assert_eq!(one.trust(&weak.node_identity()), Some(0.1));
    assert_eq!(one.stat(|s| &s.below_min_trust), 1);
}

#[test]
fn a_strangers_entries_get_the_stranger_trust_and_the_union_keeps_the_larger() {
    let ks = keys(3, 6);
    let friend = &ks[0];
    let mut one = One::new(SamplerMode::Taps, &[(friend, 0.5)]);
    let now = one.now.wall;
    one.exchange(&ks[5], vec![descriptor_for(&ks[5], 1, now)]);
    let stranger = 128.0 / 255.0 * 0.9;
    let t = one.trust(&ks[5].node_identity()).expect("merged");
    assert!((t - stranger).abs() < 1e-9, "{t}");
    // The friend passing the stranger on (0.45) does not lower it: max of the two.
    one.exchange(friend, vec![descriptor_for(&ks[5], 1, now)]);
    let t = one.trust(&ks[5].node_identity()).expect("kept");
    assert!((t - stranger).abs() < 1e-9, "{t}");
}

#[test]
fn the_explicit_view_is_always_kept_and_published() {
    let ks = keys(4, 30);
    let mut one = One::new(SamplerMode::Taps, &[(&ks[0], 0.9), (&ks[1], 0.9)]);
    let now = one.now.wall;
    one.exchange(&ks[0], vec![descriptor_for(&ks[0], 1, now)]);
    // Many strangers push many nodes: the view turns over, the explicit view stays.
    for round in 0..20 {
        let k = &ks[2 + round];
        let mut descs = vec![descriptor_for(k, 1, now)];
        descs.extend(ks[2..].iter().skip(round).take(7).map(|k| descriptor_for(k, 1, now)));
        descs.dedup_by_key(|d| d.node());
        one.exchange(k, descs);
        one.tick();
    }
    let explicit: Vec<NodeIdentity> =
        one.engine.probe().explicit().iter().map(|e| e.node).collect();
    let mut want = vec![ks[0].node_identity(), ks[1].node_identity()];
    want.sort();
    assert_eq!(explicit, want);
    let list = one.board.list(BoardSource::Sampling);
    let explicit_on_board: Vec<_> = list
        .iter()
        .filter(|n| n.kind == LinkKind::Explicit)
        .map(|n| n.node())
        .collect();
    // Published once its descriptor is known (ks[0]); ks[1] never sent one.
    assert_eq!(explicit_on_board, vec![ks[0].node_identity()]);
    assert!(list.iter().filter(|n| n.kind == LinkKind::Random).count() > 0);
    assert!(one.engine.view_nodes().len() <= 20);
}

#[test]
fn a_membership_change_remakes_the_own_descriptor_once() {
    let ks = keys(5, 1);
    let mut one = One::new(SamplerMode::Taps, &[(&ks[0], 0.9)]);
    let v1 = one.board.own().unwrap();
    one.tick();
    one.tick();
    assert_eq!(one.board.own().unwrap().version, v1.version, "not re-flipped per period");
    let d = DomainIdentity([3; 32]);
    one.directory
        .publish(d, [one.me()].into_iter().collect(), true);
    one.tick();
    let v2 = one.board.own().unwrap();
    assert!(v2.version > v1.version);
    assert_ne!(v2.filter, v1.filter);
    one.tick();
    assert_eq!(one.board.own().unwrap().version, v2.version);
    assert_eq!(one.stat(|s| &s.own_descriptors), 2);
}

#[test]
fn an_unanswered_exchange_removes_its_partner_from_the_view() {
    let ks = keys(6, 2);
    let mut one = One::new(SamplerMode::Taps, &[(&ks[0], 0.9)]);
    let now = one.now.wall;
    one.exchange(&ks[1], vec![descriptor_for(&ks[1], 1, now)]);
    assert!(one.engine.view_nodes().contains(&ks[1].node_identity()));
    // Age the view so the stranger is the oldest, then let exchanges go unanswered.
    for _ in 0..6 {
        one.tick();
    }
    assert!(one.stat(|s| &s.exchange_timeouts) >= 1);
    assert!(!one.engine.view_nodes().contains(&ks[1].node_identity()));
    assert_eq!(one.engine.probe().explicit().len(), 1, "explicit entries stay");
}

#[test]
fn a_reply_is_merged_and_a_second_one_refused() {
    let ks = keys(7, 3);
    let mut one = One::new(SamplerMode::Taps, &[(&ks[0], 0.9)]);
    one.tick();
    let seen = one.seen();
    assert_eq!(seen.sent[0].0, ks[0].node_identity());
    let now = one.now.wall;
    let reply = SamplingMessage::Reply {
        descriptors: vec![descriptor_for(&ks[1], 1, now)],
    };
    one.remote(&ks[0], &reply);
    assert_eq!(one.stat(|s| &s.received_reply), 1);
    assert!(one.engine.view_nodes().contains(&ks[1].node_identity()));
    one.remote(&ks[0], &reply);
    assert_eq!(one.stat(|s| &s.unsolicited), 1);
    // The view's new member's advert went to the identity store.
    assert!(one.seen().registered.contains(&ks[1].node_identity()));
}
