//! Unit tests of the Topology engine through `Context::detached`: one engine fed inputs
//! directly (this file, and `refusals` for bad input), the wire codec (`codec`), and a small
//! in-memory network of engines (`harness`, scenarios in `network`).

mod codec;
mod harness;
mod network;
mod refusals;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::identity::{CheckedKey, Keypair};
use crate::mail::Output;
use crate::time::Now;
use crate::wire::message::Unverified;
use crate::wire::EngineMessage;

const WATCHER: EngineIdentity = EngineIdentity([0xee; 32]);
const DOMAIN_ENGINE: EngineIdentity = EngineIdentity([0xdd; 32]);

pub(super) struct One {
    engine: TopologyEngine,
    ctx: Context,
    now: Now,
    me: NodeIdentity,
    domain: DomainIdentity,
}

pub(super) fn node(b: u8) -> NodeIdentity {
    NodeIdentity([b; 32])
}

/// An engine that is a member of a domain with members 1..=members and introducer 1.
pub(super) fn one(limits: TopologyLimits, members: u8) -> One {
    let now = Now::read();
    let me = node(100);
    let ctx = Context::detached(now, EngineIdentity([100; 32]), me, TOPOLOGY_ENGINE_NAME);
    let engine = TopologyEngine::new(limits, Arc::new(TopologyStats::default()), 42);
    let mut f = One {
        engine,
        ctx,
        now,
        me,
        domain: DomainIdentity([9; 32]),
    };
    f.engine.start(&mut f.ctx);
    let mut added: Vec<NodeIdentity> = (1..=members).map(node).collect();
    added.push(me);
    f.local(
        DOMAIN_ENGINE,
        ViewMail::Members {
            domain: f.domain,
            here: true,
            added,
            removed: vec![],
            introducers: vec![node(1)],
        },
    );
    f
}

/// What the engine sent since the last look.
#[derive(Default, Debug)]
pub(super) struct Seen {
    remote: Vec<(NodeIdentity, TopologyMessage)>,
    events: Vec<(EngineIdentity, ViewMail)>,
    transport: Vec<TransportRequest>,
}

impl Seen {
    fn sent_to(&self, n: NodeIdentity) -> Vec<&TopologyMessage> {
        self.remote
            .iter()
            .filter(|(to, _)| *to == n)
            .map(|(_, m)| m)
            .collect()
    }
}

impl One {
    fn local(&mut self, from: EngineIdentity, mail: ViewMail) {
        let m = EngineMessage {
            src: from,
            src_node: self.me,
            dst: Destination::Node(self.me),
            id: MessageId(1),
            reply_to: None,
            expiry: None,
            rprefs: None,
            tprefs: None,
            protocol: Protocol::TOPOLOGY,
            body: mail.encode(),
            sig: None,
        };
        self.engine
            .handle(&mut self.ctx, Input::Message(Message::local(m)));
    }

    fn remote(&mut self, from: NodeIdentity, msg: TopologyMessage) {
        self.remote_bytes(from, &msg.to_bytes());
    }

    fn remote_bytes(&mut self, from: NodeIdentity, body: &[u8]) {
        self.engine.deliver_remote(&mut self.ctx, from, body);
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.advanced(d);
        self.ctx.set_now(self.now);
    }

    fn tick(&mut self) {
        self.engine.handle(&mut self.ctx, Input::Timer(TICK));
    }

    fn seen(&mut self) -> Seen {
        let mut s = Seen::default();
        for out in self.ctx.take_outputs() {
            match out {
                Output::Send(o) => match o.msg.dst {
                    Destination::Node(n) => {
                        let m = TopologyMessage::from_bytes(&o.msg.body, 1000).unwrap();
                        s.remote.push((n, m));
                    }
                    Destination::Engine(e) => {
                        s.events.push((e, ViewMail::decode(&o.msg.body).unwrap()));
                    }
                    _ => panic!("unexpected destination"),
                },
                Output::Transport(t) => s.transport.push(t),
                _ => {}
            }
        }
        s
    }

    fn stat(&self, f: impl Fn(&TopologyStats) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(self.engine.stats()).load(Ordering::Relaxed)
    }

    /// Makes `n` an active peer (it asks, with high priority).
    fn befriend(&mut self, n: NodeIdentity) {
        let domain = self.domain;
        self.remote(
            n,
            TopologyMessage::Neighbor {
                domain,
                high_priority: true,
            },
        );
    }
}

#[test]
fn an_empty_view_joins_through_the_introducer() {
    let mut f = one(TopologyLimits::default(), 3);
    let s = f.seen();
    assert!(s.transport.contains(&TransportRequest::Subscribe));
    assert_eq!(
        s.sent_to(node(1)),
        vec![&TopologyMessage::Join { domain: f.domain }]
    );
    assert_eq!(s.remote.len(), 1, "{s:?}");
    assert_eq!(f.stat(|s| &s.joins_started), 1);
    // No answer: a second Join only after join_retry.
    f.advance(Duration::from_millis(500));
    f.tick();
    assert!(f.seen().remote.is_empty());
    f.advance(Duration::from_secs(2));
    f.tick();
    let s = f.seen();
    assert_eq!(s.remote.len(), 1);
    assert!(matches!(s.remote[0].1, TopologyMessage::Join { .. }));
}

#[test]
fn an_accepted_neighbor_connects_and_tells_the_watchers() {
    let mut f = one(TopologyLimits::default(), 3);
    let domain = f.domain;
    f.local(WATCHER, ViewMail::Watch { domain });
    f.seen();
    f.remote(
        node(2),
        TopologyMessage::Neighbor {
            domain,
            high_priority: false,
        },
    );
    let s = f.seen();
    assert!(s
        .transport
        .contains(&TransportRequest::Connect { node: node(2) }));
    assert_eq!(
        s.events,
        vec![(
            WATCHER,
            ViewMail::PeerAddedToView {
                domain,
                node: node(2)
            }
        )]
    );
    assert_eq!(
        s.sent_to(node(2)),
        vec![&TopologyMessage::NeighborReply {
            domain,
            accepted: true
        }]
    );
    assert_eq!(f.engine.probe().active(&domain), vec![node(2)]);
    // A second watcher is told the current view at once.
    let other = EngineIdentity([0xef; 32]);
    f.local(other, ViewMail::Watch { domain });
    assert_eq!(
        f.seen().events,
        vec![(
            other,
            ViewMail::PeerAddedToView {
                domain,
                node: node(2)
            }
        )]
    );
    // Unwatch: no more events for it.
    f.local(other, ViewMail::Unwatch { domain });
    f.remote(node(2), TopologyMessage::Disconnect { domain });
    let s = f.seen();
    assert_eq!(
        s.events,
        vec![(
            WATCHER,
            ViewMail::PeerRemovedFromView {
                domain,
                node: node(2)
            }
        )]
    );
    assert!(s
        .transport
        .contains(&TransportRequest::Disconnect { node: node(2) }));
    assert_eq!(f.engine.passive_view(&domain), vec![node(2)]);
}

#[test]
fn a_full_view_refuses_low_priority_and_swaps_for_high() {
    let limits = TopologyLimits {
        active_view: 2,
        ..TopologyLimits::default()
    };
    let mut f = one(limits, 5);
    let domain = f.domain;
    f.befriend(node(1));
    f.befriend(node(2));
    f.seen();
    f.remote(
        node(3),
        TopologyMessage::Neighbor {
            domain,
            high_priority: false,
        },
    );
    let s = f.seen();
    assert_eq!(
        s.sent_to(node(3)),
        vec![&TopologyMessage::NeighborReply {
            domain,
            accepted: false
        }]
    );
    assert_eq!(f.engine.active_view(&domain), vec![node(1), node(2)]);
    assert!(f.engine.passive_view(&domain).contains(&node(3)));
    f.remote(
        node(4),
        TopologyMessage::Neighbor {
            domain,
            high_priority: true,
        },
    );
    let s = f.seen();
    let active = f.engine.active_view(&domain);
    assert_eq!(active.len(), 2);
    assert!(active.contains(&node(4)));
    let victim = if active.contains(&node(1)) {
        node(2)
    } else {
        node(1)
    };
    assert_eq!(
        s.sent_to(victim),
        vec![&TopologyMessage::Disconnect { domain }]
    );
    assert!(f.engine.passive_view(&domain).contains(&victim));
}

#[test]
fn a_silent_peer_fails_and_is_replaced_from_the_passive_view() {
    let mut f = one(TopologyLimits::default(), 5);
    let domain = f.domain;
    f.local(WATCHER, ViewMail::Watch { domain });
    f.befriend(node(1));
    f.befriend(node(2));
    // node 3 is known, passive (it refused once, long ago).
    f.remote(
        node(3),
        TopologyMessage::ShuffleReply {
            domain,
            nodes: vec![node(3)],
        },
    );
    assert_eq!(f.stat(|s| &s.unsolicited), 1, "no shuffle was asked for");
    f.remote(
        node(2),
        TopologyMessage::ForwardJoin {
            domain,
            new_node: node(3),
            ttl: 3,
        },
    );
    assert!(f.engine.passive_view(&domain).contains(&node(3)));
    f.seen();
    // Node 2 keeps talking; node 1 falls silent.
    let mut keepalives_to_1 = 0;
    let mut events = Vec::new();
    for _ in 0..12 {
        f.advance(Duration::from_millis(250));
        f.remote(node(2), TopologyMessage::Keepalive { domain });
        f.tick();
        let s = f.seen();
        keepalives_to_1 += s
            .sent_to(node(1))
            .iter()
            .filter(|m| matches!(m, TopologyMessage::Keepalive { .. }))
            .count();
        events.extend(s.events);
    }
    assert!(keepalives_to_1 >= 2, "keepalives every second");
    assert_eq!(f.stat(|s| &s.failures_detected), 1);
    assert!(!f.engine.active_view(&domain).contains(&node(1)));
    assert!(!f.engine.passive_view(&domain).contains(&node(1)));
    assert_eq!(f.stat(|s| &s.peers_removed), 1);
    assert_eq!(
        events,
        vec![(
            WATCHER,
            ViewMail::PeerRemovedFromView {
                domain,
                node: node(1)
            }
        )]
    );
    assert!(f.engine.active_view(&domain).contains(&node(2)));
}

#[test]
fn a_neighbor_request_unanswered_tries_the_next() {
    let mut f = one(TopologyLimits::default(), 9);
    let domain = f.domain;
    f.befriend(node(1));
    f.befriend(node(9));
    for n in [2, 3, 4] {
        f.remote(
            node(1),
            TopologyMessage::ForwardJoin {
                domain,
                new_node: node(n),
                ttl: 3,
            },
        );
    }
    let s = f.seen();
    // At the passive walk length: remembered and passed on (to the other active peer).
    assert_eq!(
        s.sent_to(node(9))
            .iter()
            .filter(|m| matches!(m, TopologyMessage::ForwardJoin { ttl: 2, .. }))
            .count(),
        3
    );
    let mut targets = Vec::new();
    let timeouts = f.stat(|s| &s.neighbor_timeouts);
    for _ in 0..4 {
        f.advance(Duration::from_millis(1100));
        f.remote(node(1), TopologyMessage::Keepalive { domain });
        f.remote(node(9), TopologyMessage::Keepalive { domain });
        f.tick();
        let asked: Vec<NodeIdentity> = f
            .seen()
            .remote
            .iter()
            .filter(|(_, m)| matches!(m, TopologyMessage::Neighbor { .. }))
            .map(|(n, _)| *n)
            .collect();
        assert!(asked.len() <= 1, "one refill at a time: {asked:?}");
        targets.extend(asked);
    }
    assert!(targets.len() >= 2, "{targets:?}");
    let mut distinct = targets.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        targets.len(),
        "none asked twice: {targets:?}"
    );
    assert!(f.stat(|s| &s.neighbor_timeouts) >= timeouts + 2);
    for t in &targets[..targets.len() - 1] {
        assert!(!f.engine.passive_view(&domain).contains(t));
    }
    assert_eq!(f.engine.active_view(&domain), vec![node(1), node(9)]);
}

#[test]
fn a_removed_member_leaves_both_views_and_non_members_are_refused() {
    let mut f = one(TopologyLimits::default(), 5);
    let domain = f.domain;
    f.befriend(node(1));
    f.befriend(node(2));
    f.seen();
    f.local(
        DOMAIN_ENGINE,
        ViewMail::Members {
            domain,
            here: true,
            added: vec![],
            removed: vec![node(1)],
            introducers: vec![node(1)],
        },
    );
    let s = f.seen();
    assert_eq!(f.engine.active_view(&domain), vec![node(2)]);
    assert!(!f.engine.passive_view(&domain).contains(&node(1)));
    assert_eq!(
        s.sent_to(node(1)),
        vec![&TopologyMessage::Disconnect { domain }]
    );
    // Now a stranger: every message refused, nothing sent.
    for m in [
        TopologyMessage::Join { domain },
        TopologyMessage::Neighbor {
            domain,
            high_priority: true,
        },
        TopologyMessage::Keepalive { domain },
    ] {
        f.remote(node(1), m);
    }
    assert_eq!(f.stat(|s| &s.not_member), 3);
    assert!(f.seen().remote.is_empty());
    assert_eq!(f.engine.active_view(&domain), vec![node(2)]);
    // A ForwardJoin or a shuffle naming strangers.
    f.remote(
        node(2),
        TopologyMessage::ForwardJoin {
            domain,
            new_node: node(77),
            ttl: 2,
        },
    );
    assert_eq!(f.stat(|s| &s.not_member), 4);
    f.remote(
        node(2),
        TopologyMessage::Shuffle {
            domain,
            origin: node(2),
            ttl: 1,
            nodes: vec![node(2), node(77), node(3)],
        },
    );
    assert_eq!(f.stat(|s| &s.not_member), 5);
    let passive = f.engine.passive_view(&domain);
    assert!(passive.contains(&node(3)) && !passive.contains(&node(77)));
    // Leaving the domain tears the overlay down.
    f.local(
        DOMAIN_ENGINE,
        ViewMail::Members {
            domain,
            here: false,
            added: vec![],
            removed: vec![],
            introducers: vec![],
        },
    );
    assert!(f.engine.active_view(&domain).is_empty());
    assert!(f.engine.probe().view(&domain).is_none());
    f.seen();
    f.remote(node(2), TopologyMessage::Keepalive { domain });
    assert_eq!(f.stat(|s| &s.unknown_domain), 1);
}

#[test]
fn a_shuffle_walks_then_is_answered_and_merged() {
    let mut f = one(TopologyLimits::default(), 9);
    let domain = f.domain;
    f.befriend(node(1));
    f.befriend(node(2));
    f.seen();
    // ttl 3 with two active peers: forwarded to the one that is neither sender nor origin.
    f.remote(
        node(1),
        TopologyMessage::Shuffle {
            domain,
            origin: node(5),
            ttl: 3,
            nodes: vec![node(5), node(6)],
        },
    );
    let s = f.seen();
    assert_eq!(
        s.sent_to(node(2)),
        vec![&TopologyMessage::Shuffle {
            domain,
            origin: node(5),
            ttl: 2,
            nodes: vec![node(5), node(6)]
        }]
    );
    // ttl 1: the walk ends here; the origin gets a reply and the offer is merged.
    f.remote(
        node(1),
        TopologyMessage::Shuffle {
            domain,
            origin: node(5),
            ttl: 1,
            nodes: vec![node(5), node(6)],
        },
    );
    let s = f.seen();
    assert!(matches!(
        s.sent_to(node(5))[..],
        [TopologyMessage::ShuffleReply { .. }]
    ));
    let passive = f.engine.passive_view(&domain);
    assert!(passive.contains(&node(5)) && passive.contains(&node(6)));
    // This node's own shuffle, after shuffle_interval, to an active peer, offering itself.
    for _ in 0..40 {
        f.advance(Duration::from_millis(250));
        f.remote(node(1), TopologyMessage::Keepalive { domain });
        f.remote(node(2), TopologyMessage::Keepalive { domain });
        f.tick();
        let s = f.seen();
        if let Some((_, TopologyMessage::Shuffle { origin, nodes, .. })) = s
            .remote
            .iter()
            .find(|(_, m)| matches!(m, TopologyMessage::Shuffle { .. }))
        {
            assert_eq!(*origin, f.me);
            assert_eq!(nodes[0], f.me);
            // Its reply is accepted once.
            f.remote(
                node(7),
                TopologyMessage::ShuffleReply {
                    domain,
                    nodes: vec![node(8)],
                },
            );
            assert!(f.engine.passive_view(&domain).contains(&node(8)));
            f.remote(
                node(7),
                TopologyMessage::ShuffleReply {
                    domain,
                    nodes: vec![node(9)],
                },
            );
            assert!(!f.engine.passive_view(&domain).contains(&node(9)));
            return;
        }
    }
    panic!("no shuffle within 10 s");
}

#[test]
fn the_transport_reports_remove_peers_and_a_join_walks() {
    let limits = TopologyLimits {
        active_view: 3,
        ..TopologyLimits::default()
    };
    let mut f = one(limits, 9);
    let domain = f.domain;
    for n in 1..=3 {
        f.befriend(node(n));
    }
    f.seen();
    // (A refill may have asked some member already; the joiner is one it did not.)
    let joiner = (4..=9)
        .map(node)
        .find(|n| !f.engine.overlays[&domain].pending.contains_key(n))
        .unwrap();
    // A Join: welcomed (Neighbor, high priority) and walked from each other active peer.
    f.remote(joiner, TopologyMessage::Join { domain });
    let s = f.seen();
    assert_eq!(
        s.sent_to(joiner),
        vec![&TopologyMessage::Neighbor {
            domain,
            high_priority: true
        }]
    );
    for n in 1..=3 {
        assert_eq!(
            s.sent_to(node(n)),
            vec![&TopologyMessage::ForwardJoin {
                domain,
                new_node: joiner,
                ttl: 6
            }]
        );
    }
    f.remote(
        joiner,
        TopologyMessage::NeighborReply {
            domain,
            accepted: true,
        },
    );
    let active = f.engine.active_view(&domain);
    assert_eq!(active.len(), 3, "a full view swaps one out");
    assert!(active.contains(&joiner));
    let others: Vec<NodeIdentity> = active.into_iter().filter(|n| *n != joiner).collect();
    f.seen();
    let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    f.engine.handle(
        &mut f.ctx,
        Input::Transport(TransportEvent::NodeDisconnected {
            node: others[0],
            addr,
            reason: "closed".into(),
        }),
    );
    f.engine.handle(
        &mut f.ctx,
        Input::Transport(TransportEvent::NodeConnectFailed {
            node: others[1],
            addr,
            reason: "timeout".into(),
        }),
    );
    assert_eq!(f.engine.active_view(&domain), vec![joiner]);
    assert_eq!(f.stat(|s| &s.transport_failures), 2);
    let passive = f.engine.passive_view(&domain);
    assert!(
        passive.contains(&others[0]),
        "a closed connection may come back"
    );
    assert!(!passive.contains(&others[1]), "a failed one is forgotten");
}
