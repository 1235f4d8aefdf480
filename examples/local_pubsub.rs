//! A local publish/subscribe pair: a publisher engine creates a topic and publishes a tick every
//! 100 ms; a subscriber engine subscribes and prints what it receives. Both run on their own
//! threads on one node; the Router's local topic service carries the events.
//!
//! Run: `cargo run --example local_pubsub`

use std::time::Duration;

use netmachine::router::topics::TopicEvent;
use netmachine::wire::Protocol;
use netmachine::{Context, Engine, Input, Keypair, NodeBuilder, RoutingScope, TopicIdentity};

const TICKS: Protocol = Protocol(Protocol::APP_BASE + 2);
const TICK_TIMER: u64 = 1;

/// Creates the topic, then publishes `count` ticks, one every 100 ms.
struct Publisher {
    topic: TopicIdentity,
    count: u32,
    sent: u32,
}

impl Engine for Publisher {
    fn start(&mut self, ctx: &mut Context) {
        ctx.create_topic(self.topic, RoutingScope::Local);
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Topic(TopicEvent::Created { result, .. }) => {
                println!("publisher: topic created: {result:?}");
                ctx.set_timer_after(TICK_TIMER, Duration::from_millis(200));
            }
            Input::Timer(TICK_TIMER) if self.sent < self.count => {
                self.sent += 1;
                ctx.publish(
                    self.topic,
                    TICKS,
                    format!("tick {}", self.sent).into_bytes(),
                );
                ctx.set_timer_after(TICK_TIMER, Duration::from_millis(100));
            }
            _ => {}
        }
    }
}

/// Subscribes, and prints every event.
struct Subscriber {
    topic: TopicIdentity,
}

impl Engine for Subscriber {
    fn start(&mut self, ctx: &mut Context) {
        // The publisher may not have created the topic yet: retry until it exists.
        ctx.set_timer_after(0, Duration::from_millis(50));
    }

    fn handle(&mut self, ctx: &mut Context, input: Input) {
        match input {
            Input::Timer(_) => ctx.subscribe(self.topic, RoutingScope::Local),
            Input::Topic(TopicEvent::Subscribed { result: Ok(()), .. }) => {
                println!("subscriber: subscribed");
            }
            Input::Topic(TopicEvent::Subscribed { result: Err(e), .. }) => {
                println!("subscriber: not yet ({e:?}), retrying");
                ctx.set_timer_after(0, Duration::from_millis(50));
            }
            Input::Message(m) => {
                println!("subscriber: {}", String::from_utf8_lossy(m.body()));
            }
            _ => {}
        }
    }
}

fn main() {
    env_logger::init();
    let topic = Keypair::generate().topic_identity();
    let node = NodeBuilder::new(Keypair::generate())
        .engine("subscriber", Subscriber { topic })
        .engine(
            "publisher",
            Publisher {
                topic,
                count: 5,
                sent: 0,
            },
        )
        .start()
        .expect("node starts");
    std::thread::sleep(Duration::from_millis(1000));
    println!("{}", node.stats());
    node.shutdown();
}
