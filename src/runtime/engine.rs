//! The API for writing an engine: the [`Engine`] trait, the [`Context`] it acts through, what it
//! receives ([`Input`]) and what it asks for ([`Output`]).
//!
//! An engine is a sans-IO state machine. Its thread shell calls [`Engine::handle`] with one
//! input at a time and a context holding the current time; the engine records what it wants done
//! (messages to send, topic requests, timers) in the context, and the shell carries that out after
//! the call returns — signing messages that leave the node on the engine's own thread. An engine
//! therefore never blocks on I/O, and its logic can be tested by feeding inputs to a
//! [`Context::detached`] and reading [`Context::take_outputs`].

use std::time::{Duration, Instant};

use crate::identity::{EngineIdentity, NodeIdentity, TopicIdentity};
use crate::mail::identity::IdentityRequest;
use crate::mail::topic::{TopicRequest, Validation};
use crate::mail::transport::TransportRequest;
use crate::mail::{Input, Message, Outgoing, Output, SystemMail};
use crate::time::Now;
use crate::wire::{
    Destination, EngineMessage, MessageId, Protocol, RoutingPrefs, RoutingScope, TransportPrefs,
};

/// How long a message lives when the sender sets no expiry: 60 s.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(60);

/// An engine: a state machine that reacts to inputs.
///
/// Each instance runs on its own named thread. `handle` must not block: to wait, set a timer.
/// If `handle` panics, the panic is caught and logged, the engine is stopped (its mailbox closes,
/// so messages to it are counted as `engine_gone`), and the rest of the node keeps running.
pub trait Engine: Send + 'static {
    /// Called once on the engine's thread before any input.
    fn start(&mut self, _ctx: &mut Context) {}

    /// Called for every input, in mailbox order.
    fn handle(&mut self, ctx: &mut Context, input: Input);

    /// Called after each burst of inputs (everything that was waiting in the mailbox, up to a
    /// bound), before the shell carries out the outputs: the place to coalesce work, e.g. send
    /// one message for many inputs.
    fn flush(&mut self, _ctx: &mut Context) {}

    /// Called once when the node shuts down or the engine asked to stop.
    fn stop(&mut self, _ctx: &mut Context) {}
}

/// Options for [`Context::send_with`].
#[derive(Clone, Copy, Debug)]
pub struct SendOptions {
    /// The message this one answers.
    pub reply_to: Option<MessageId>,
    /// How long the message may wait before it is dropped (default [`DEFAULT_EXPIRY`]).
    pub expiry: Duration,
    /// Routing preferences.
    pub rprefs: Option<RoutingPrefs>,
    /// Transport preferences (default: the peer's record, then the node's default).
    pub tprefs: Option<TransportPrefs>,
    /// Whether to receive [`Input::Undeliverable`] if the message is dropped.
    pub notify_undeliverable: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            reply_to: None,
            expiry: DEFAULT_EXPIRY,
            rprefs: None,
            tprefs: None,
            notify_undeliverable: true,
        }
    }
}

impl SendOptions {
    /// Options that keep the message on this node.
    pub fn local_only() -> SendOptions {
        SendOptions {
            rprefs: Some(RoutingPrefs {
                scope: RoutingScope::Local,
            }),
            ..SendOptions::default()
        }
    }
}

/// An engine's view of the node during one call: the time, its identity, and a place to record
/// what it wants done.
pub struct Context {
    now: Now,
    identity: EngineIdentity,
    node: NodeIdentity,
    name: String,
    next_id: u64,
    outputs: Vec<Output>,
}

impl Context {
    /// A context not attached to any node, for testing engine logic: outputs accumulate until
    /// [`Context::take_outputs`].
    pub fn detached(now: Now, identity: EngineIdentity, node: NodeIdentity, name: &str) -> Context {
        Context {
            now,
            identity,
            node,
            name: name.to_string(),
            // Seeded from the time passed in (not read from the clock): ids keep increasing
            // across restarts of the engine, and a simulator gets the same ids for the same run.
            next_id: now.wall.0.saturating_mul(1_000_000),
            outputs: Vec::new(),
        }
    }

    /// Sets the time (the shell does this before each batch of inputs).
    pub fn set_now(&mut self, now: Now) {
        self.now = now;
    }

    /// Removes and returns the outputs recorded so far.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    pub(crate) fn outputs_mut(&mut self) -> &mut Vec<Output> {
        &mut self.outputs
    }

    /// The current time.
    pub fn now(&self) -> Now {
        self.now
    }

    /// This engine's identity.
    pub fn identity(&self) -> EngineIdentity {
        self.identity
    }

    /// This engine's node.
    pub fn node(&self) -> NodeIdentity {
        self.node
    }

    /// This engine's name on its node.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `body` to `dst` with default options; returns the message id.
    pub fn send(
        &mut self,
        dst: impl Into<Destination>,
        protocol: Protocol,
        body: Vec<u8>,
    ) -> MessageId {
        self.send_with(dst, protocol, body, SendOptions::default())
    }

    /// Sends `body` to `dst`; returns the message id.
    pub fn send_with(
        &mut self,
        dst: impl Into<Destination>,
        protocol: Protocol,
        body: Vec<u8>,
        opts: SendOptions,
    ) -> MessageId {
        let id = MessageId(self.next_id);
        self.next_id += 1;
        let msg = EngineMessage {
            src: self.identity,
            src_node: self.node,
            dst: dst.into(),
            id,
            reply_to: opts.reply_to,
            expiry: Some(self.now.wall.after(opts.expiry)),
            rprefs: opts.rprefs,
            tprefs: opts.tprefs,
            protocol,
            body,
            sig: None,
        };
        self.outputs.push(Output::Send(Outgoing {
            msg: Box::new(msg),
            notify_undeliverable: opts.notify_undeliverable,
        }));
        id
    }

    /// Answers `to` with `body`, to the sender it names, with the same protocol. For a topic
    /// event that is the sender its publisher claims ([`crate::mail::Sender::named`]).
    pub fn reply(&mut self, to: &Message, body: Vec<u8>) -> MessageId {
        let opts = SendOptions {
            reply_to: Some(to.id()),
            tprefs: to.as_engine_message().tprefs,
            ..SendOptions::default()
        };
        self.send_with(to.sender().named(), to.protocol(), body, opts)
    }

    /// Publishes `body` to `topic` (delivered to the topic's subscribers).
    pub fn publish(
        &mut self,
        topic: TopicIdentity,
        protocol: Protocol,
        body: Vec<u8>,
    ) -> MessageId {
        self.send(Destination::Topic(topic), protocol, body)
    }

    /// Creates a topic on this node's Router; the answer arrives as [`Input::Topic`].
    pub fn create_topic(&mut self, topic: TopicIdentity, scope: RoutingScope) {
        self.topic_request(TopicRequest::Create {
            topic,
            scope,
            advert: None,
        });
    }

    /// Subscribes to a topic; the answer arrives as [`Input::Topic`].
    pub fn subscribe(&mut self, topic: TopicIdentity, scope: RoutingScope) {
        self.topic_request(TopicRequest::Subscribe { topic, scope });
    }

    /// Unsubscribes from a topic; the answer arrives as [`Input::Topic`].
    pub fn unsubscribe(&mut self, topic: TopicIdentity, scope: RoutingScope) {
        self.topic_request(TopicRequest::Unsubscribe { topic, scope });
    }

    /// Deletes a topic this engine created; the answer arrives as [`Input::Topic`].
    pub fn delete_topic(&mut self, topic: TopicIdentity, scope: RoutingScope) {
        self.topic_request(TopicRequest::Delete { topic, scope });
    }

    /// Validates (`on`) the topic's events from the network before this node forwards or
    /// delivers them, or stops; each then arrives as `TopicEvent::Validate`, to be answered with
    /// [`Context::report_validation`]. The answer arrives as [`Input::Topic`].
    pub fn validate_topic(&mut self, topic: TopicIdentity, on: bool) {
        self.topic_request(TopicRequest::Validate { topic, on });
    }

    /// Answers a `TopicEvent::Validate` (gossipsub's `report_message_validation_result`).
    pub fn report_validation(&mut self, topic: TopicIdentity, token: u64, verdict: Validation) {
        self.topic_request(TopicRequest::Validated {
            topic,
            token,
            verdict,
        });
    }

    /// Sends any topic request to the Router.
    pub fn topic_request(&mut self, req: TopicRequest) {
        self.outputs.push(Output::Topic(req));
    }

    /// Sends a request to the Network Identity Store; answers arrive as [`Input::Identity`].
    pub fn identity_request(&mut self, req: IdentityRequest) {
        self.outputs.push(Output::Identity(req));
    }

    /// Sends a request to the Transport; answers arrive as [`Input::Transport`].
    pub fn transport_request(&mut self, req: TransportRequest) {
        self.outputs.push(Output::Transport(req));
    }

    /// Fires [`Input::Timer`]`(token)` at `at`, replacing any timer with the same token.
    pub fn set_timer(&mut self, token: u64, at: Instant) {
        self.outputs.push(Output::SetTimer { token, at });
    }

    /// Fires [`Input::Timer`]`(token)` after `after`.
    pub fn set_timer_after(&mut self, token: u64, after: Duration) {
        let at = self.now.instant + after;
        self.set_timer(token, at);
    }

    /// Cancels the timer with `token`, if set.
    pub fn cancel_timer(&mut self, token: u64) {
        self.outputs.push(Output::CancelTimer { token });
    }

    /// Sends a request to the engine that serves it: a [`TopicRequest`] to the Router, an
    /// [`IdentityRequest`] to the Network Identity Store, a [`TransportRequest`] to the
    /// Transport (or any other request type of the vocabulary in [`crate::mail`]). The answer
    /// arrives as an [`Input`].
    pub fn request(&mut self, req: impl Into<Output>) {
        self.outputs.push(req.into());
    }

    /// Mail to another built-in engine (the PubSub engine's notices to its Router).
    pub(crate) fn system(&mut self, mail: SystemMail) {
        self.outputs.push(Output::System(crate::mail::System(mail)));
    }

    /// Stops this engine after the current call.
    pub fn stop(&mut self) {
        self.outputs.push(Output::Stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_reply_links_back() {
        let now = Now::read();
        let me = EngineIdentity([1; 32]);
        let node = NodeIdentity([2; 32]);
        let mut ctx = Context::detached(now, me, node, "t");
        let a = ctx.send(EngineIdentity([3; 32]), Protocol(70000), b"x".to_vec());
        let b = ctx.send(EngineIdentity([3; 32]), Protocol(70000), b"y".to_vec());
        assert!(b.0 == a.0 + 1);
        let out = ctx.take_outputs();
        assert_eq!(out.len(), 2);
        let Output::Send(first) = &out[0] else {
            panic!()
        };
        assert_eq!(first.msg.expiry, Some(now.wall.after(DEFAULT_EXPIRY)));
        let incoming = Message::local((*first.msg).clone());
        ctx.reply(&incoming, b"r".to_vec());
        let Output::Send(reply) = &ctx.take_outputs()[0] else {
            panic!()
        };
        assert_eq!(reply.msg.reply_to, Some(a));
        assert_eq!(reply.msg.dst, Destination::Engine(me));
    }
}
