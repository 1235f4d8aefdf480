//! Setting up in-process clusters for `demo` and `soak`: nodes that know each other, are
//! connected, and a topic published from the first node.

use netmachine::identity::Signature;
use netmachine::identity_store::IdentityUpdate;
use netmachine::pubsub::PUBSUB_ENGINE_NAME;
use netmachine::router::topics::TopicRequest;
use netmachine::time::wall_clock;
use netmachine::transport::TransportRequest;
use netmachine::wire::{Signed, TopicAdvert};
use netmachine::{Client, EngineIdentity, Keypair, Node, RoutingScope};

/// Tells every node every other node's advert and where `responders[j]` (on node `j`) runs,
/// then connects every pair (the smaller index dials).
pub fn introduce(nodes: &[Node], responders: &[EngineIdentity]) -> Result<(), String> {
    for (i, n) in nodes.iter().enumerate() {
        for (j, other) in nodes.iter().enumerate() {
            if i != j {
                n.learn(IdentityUpdate::NodeAdvert(other.advert().clone()));
                n.learn(IdentityUpdate::EngineLocation {
                    engine: responders[j],
                    node: other.identity(),
                });
            }
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        let mut c = n.client("connect").map_err(|e| e.to_string())?;
        for other in &nodes[i + 1..] {
            let node = other.identity();
            c.with_context(|ctx| ctx.transport_request(TransportRequest::Connect { node }));
        }
    }
    Ok(())
}

/// A client on `node` that creates the topic of `topic_key` with `node` as its publisher
/// (advertised to the network, tagged `tag`).
pub fn publisher(node: &Node, topic_key: &Keypair, tag: &str) -> Result<Client, String> {
    let mut client = node.client("publisher").map_err(|e| e.to_string())?;
    let topic = topic_key.topic_identity();
    let advert = TopicAdvert {
        topic,
        publishers: vec![node
            .engine_identity(PUBSUB_ENGINE_NAME)
            .ok_or("pubsub not running")?],
        tags: vec![tag.into()],
        version: wall_clock().0,
        created: wall_clock(),
        scope: None,
        sig: Signature([0; 64]),
    }
    .sign(topic_key);
    client.with_context(|ctx| {
        ctx.topic_request(TopicRequest::Create {
            topic,
            scope: RoutingScope::Any,
            advert: Some(advert),
        })
    });
    Ok(client)
}
