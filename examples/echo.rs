//! An echo engine: answers every message with its body, reversed.
//!
//! Run: `cargo run --example echo`
//!
//! The node runs the `echo` engine on its own thread; the example's main thread acts as a
//! [`Client`] engine, sends five requests and prints the answers.

use std::time::Duration;

use netmachine::wire::Protocol;
use netmachine::{Context, Engine, Input, Keypair, NodeBuilder};

/// The protocol this example speaks.
const ECHO: Protocol = Protocol(Protocol::APP_BASE + 1);

/// Replies to each request with its body reversed.
struct Echo;

impl Engine for Echo {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        if let Input::Message(m) = input {
            let mut body = m.body().to_vec();
            body.reverse();
            ctx.reply(&m, body);
        }
    }
}

fn main() {
    env_logger::init();
    let node = NodeBuilder::new(Keypair::generate())
        .engine("echo", Echo)
        .start()
        .expect("node starts");
    let echo = node.engine_identity("echo").expect("echo runs");
    let mut me = node.client("main").expect("client registers");
    for word in ["alpha", "bravo", "charlie", "delta", "echo"] {
        let id = me.send(echo, ECHO, word.as_bytes().to_vec());
        match me.recv(Duration::from_secs(2)) {
            Some(Input::Message(reply)) if reply.reply_to() == Some(id) => {
                println!("{word} -> {}", String::from_utf8_lossy(reply.body()));
            }
            other => panic!("no answer to {word}: {other:?}"),
        }
    }
    drop(me);
    let report = node.shutdown();
    println!("stopped cleanly: {} threads joined", report.joined.len());
}
