//! Misbehaving peers in the simulator: a node forging at full rate towards a peer is cut off
//! by the same Router and Transport cores as a real node, refused for the whole default
//! backoff (300 s of virtual time), and accepted again after it, while an honest node's
//! messages to the same peer all arrive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netmachine::identity::Keypair;
use netmachine::mail::RouteHeader;
use netmachine::runtime::stats::Fault;
use netmachine::sim::net::LinkFaults;
use netmachine::sim::node::{EngineSetup, NodeSetup};
use netmachine::sim::{node_addr, World, WALL_EPOCH};
use netmachine::transport::TransportConfig;
use netmachine::wire::{Destination, NodeAdvert, Protocol, TransportAddress};
use netmachine::{Context, DropReason, Engine, EngineMessage, Input, MessageId};

const APP: Protocol = Protocol(Protocol::APP_BASE + 0x52);
const FORGER: usize = 0;
const VICTIM: usize = 1;
const HONEST: usize = 2;
/// Messages each of the forger and the honest node sends, one per millisecond.
const MESSAGES: u64 = 500;

/// Counts the messages it receives.
struct Sink(Arc<AtomicU64>);

impl Engine for Sink {
    fn handle(&mut self, _ctx: &mut Context, input: Input) {
        if let Input::Message(_) = input {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn stats(world: &World, i: usize) -> &netmachine::runtime::stats::NodeStats {
    &world.nodes[i].as_ref().expect("running").stats
}

#[test]
fn a_forging_node_is_cut_off_for_its_backoff_and_honest_traffic_is_unaffected() {
    let keys: Vec<Keypair> = (0..3).map(|i| Keypair::from_seed(&[40 + i; 32])).collect();
    let adverts: Vec<NodeAdvert> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let addr = TransportAddress::quic(node_addr(i));
            NodeAdvert::new_signed(
                k,
                vec![(addr, 1)],
                1,
                WALL_EPOCH,
                WALL_EPOCH.after(netmachine::wire::advert::CONFIG_ADVERT_LIFETIME),
                None,
            )
        })
        .collect();
    // Forger and victim keep a permanent connection to each other: each would redial at once.
    let peers = [
        vec![(adverts[VICTIM].clone(), true)],
        vec![
            (adverts[FORGER].clone(), true),
            (adverts[HONEST].clone(), false),
        ],
        vec![(adverts[VICTIM].clone(), false)],
    ];
    let setups: Vec<NodeSetup> = (0..3)
        .map(|i| NodeSetup {
            key: keys[i].clone(),
            advert: adverts[i].clone(),
            peers: peers[i].clone(),
            transport: TransportConfig::default(),
            pubsub: false,
        })
        .collect();
    let received = Arc::new(AtomicU64::new(0));
    let sink_received = Arc::clone(&received);
    let apps = Box::new(move |node: usize, _incarnation: u32| {
        if node != VICTIM {
            return Vec::new();
        }
        vec![EngineSetup {
            name: "sink".into(),
            serves: vec![APP],
            mailbox_depth: 4096,
            engine: Box::new(Sink(Arc::clone(&sink_received))) as Box<dyn Engine>,
        }]
    });
    let mut world = World::new(11, setups, apps, LinkFaults::default());
    for k in 0..MESSAGES {
        let at = Duration::from_secs(1) + Duration::from_millis(k);
        world.app_at(at, FORGER, k);
        world.app_at(at, HONEST, k);
    }
    let victim = keys[VICTIM].node_identity();
    let mut send = |world: &mut World, node: usize, k: u64| {
        let now = world.now();
        let key = keys[node].derive_engine("app");
        let mut m = EngineMessage {
            src: key.engine_identity(),
            src_node: keys[node].node_identity(),
            dst: Destination::Node(victim),
            id: MessageId(1_000 + k),
            reply_to: None,
            // Short-lived: what the forger still holds when it is cut off expires meanwhile.
            expiry: Some(now.wall.after(Duration::from_secs(1))),
            rprefs: None,
            tprefs: None,
            protocol: APP,
            body: k.to_le_bytes().to_vec(),
            sig: None,
        };
        let mut wire = Vec::new();
        m.sign_into_wire(&key, &mut wire, &mut Vec::new());
        if node == FORGER {
            let n = wire.len();
            wire[n - 1] ^= 1;
        }
        let header = RouteHeader::of(&m, false);
        if let Some(n) = world.nodes[node].as_mut() {
            n.inject(now, victim, header, wire);
        }
    };
    let mut ok = |_: &World| Ok(());
    world
        .run_until(Duration::from_secs(10), &mut send, &mut ok)
        .unwrap();
    let s = stats(&world, VICTIM);
    assert_eq!(s.faults(Fault::PeerCutOff), 1);
    assert_eq!(
        received.load(Ordering::Relaxed),
        MESSAGES,
        "every honest message"
    );
    let bad = s.drops(DropReason::BadSignature);
    assert!(
        (16..MESSAGES).contains(&bad),
        "cut off early: {bad} forgeries judged"
    );
    let dials = s.dials.load(Ordering::Relaxed);
    let forger_connections = stats(&world, FORGER)
        .connections_established
        .load(Ordering::Relaxed);

    // Within the backoff: the forger keeps redialling and is refused; the victim never dials.
    world
        .run_until(Duration::from_secs(290), &mut send, &mut ok)
        .unwrap();
    let s = stats(&world, VICTIM);
    assert!(
        s.faults(Fault::CutOffPeerRefused) >= 10,
        "refusals: {}",
        s.snapshot()
    );
    assert_eq!(
        s.dials.load(Ordering::Relaxed),
        dials,
        "redialled a cut-off peer"
    );
    assert_eq!(
        stats(&world, FORGER)
            .connections_established
            .load(Ordering::Relaxed),
        forger_connections
    );

    // After it: connected again, and nothing more to hold against the forger.
    world
        .run_until(Duration::from_secs(330), &mut send, &mut ok)
        .unwrap();
    let s = stats(&world, VICTIM);
    assert!(
        stats(&world, FORGER)
            .connections_established
            .load(Ordering::Relaxed)
            > forger_connections,
        "not reconnected after the backoff: {}",
        s.snapshot()
    );
    assert_eq!(s.faults(Fault::PeerCutOff), 1);
    assert_eq!(s.drops(DropReason::BadSignature), bad);
    eprintln!("victim: {}; trace {}", s.snapshot(), world.trace_hash());
}
