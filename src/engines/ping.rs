//! The built-in `ping` engine: answers every [`Protocol::PING`] message with its own body.
//!
//! Every node runs it under the name `ping` and registers it as the server of
//! [`Protocol::PING`] for messages addressed to the node, so `Destination::Node(n)` with
//! protocol `PING` reaches it without knowing its engine identity.

use crate::runtime::{Context, Engine, Input};
use crate::wire::Protocol;

/// The name the ping engine runs under.
pub const PING_ENGINE_NAME: &str = "ping";

/// Most bytes of a ping body that are echoed (larger pings are answered with the first 64 KiB).
pub const MAX_ECHO_BYTES: usize = 64 << 10;

/// Answers pings.
#[derive(Debug, Default)]
pub struct PingEngine {
    answered: u64,
}

impl PingEngine {
    /// Pings answered so far.
    pub fn answered(&self) -> u64 {
        self.answered
    }
}

impl Engine for PingEngine {
    fn handle(&mut self, ctx: &mut Context, input: Input) {
        if let Input::Message(m) = input {
            if m.protocol() == Protocol::PING && m.reply_to().is_none() {
                let mut body = m.body().to_vec();
                body.truncate(MAX_ECHO_BYTES);
                ctx.reply(&m, body);
                self.answered += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{EngineIdentity, NodeIdentity};
    use crate::runtime::{Message, Output};
    use crate::time::Now;
    use crate::wire::{Destination, EngineMessage, MessageId};

    #[test]
    fn echoes_pings_and_ignores_replies() {
        let me = EngineIdentity([1; 32]);
        let mut ctx = Context::detached(Now::read(), me, NodeIdentity([2; 32]), "ping");
        let mut engine = PingEngine::default();
        let mut msg = EngineMessage {
            src: EngineIdentity([3; 32]),
            src_node: NodeIdentity([4; 32]),
            dst: Destination::Node(NodeIdentity([2; 32])),
            id: MessageId(10),
            reply_to: None,
            expiry: None,
            rprefs: None,
            tprefs: None,
            protocol: Protocol::PING,
            body: b"abc".to_vec(),
            sig: None,
        };
        engine.handle(&mut ctx, Input::Message(Message::local(msg.clone())));
        let out = ctx.take_outputs();
        let [Output::Send(reply)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(reply.msg.body, b"abc");
        assert_eq!(reply.msg.reply_to, Some(MessageId(10)));
        assert_eq!(reply.msg.dst, Destination::Engine(EngineIdentity([3; 32])));
        msg.reply_to = Some(MessageId(1));
        engine.handle(&mut ctx, Input::Message(Message::local(msg)));
        assert!(ctx.take_outputs().is_empty());
        assert_eq!(engine.answered(), 1);
    }
}
