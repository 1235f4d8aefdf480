//! `netmachine subscribe` and `netmachine publish`: the P2P publish/subscribe protocol driven
//! from the command line, one node per process.
//!
//! Both commands start the node a configuration file describes and keep a connection up to every
//! configured peer (each is treated as `permanent`), so the node joins the network at once; a
//! topic's adverts, subscriptions and events then travel through those peers (see the PubSub
//! engine's module doc).
//!
//! * `subscribe` subscribes a client engine to a topic with scope `Any`, prints one line starting
//!   with `subscribed` once the network subscription is in place, then one line per event:
//!   `event <n> from <publisher> via <neighbour>: <len> bytes <hex of the first 16 bytes>`
//!   (`n` counts from 1; publisher and neighbour are short identities). Before it exits (the
//!   count reached, a stop signal, the timeout) it unsubscribes, so its PubSub engine sends its
//!   parents a final `EventAck` for what arrived and then `Unsubscribe` (docs/wire.md §12.4),
//!   and it waits up to [`LEAVE_WAIT`] for a parent's `UnsubscribeAck` before shutting the node
//!   down, so those messages are not cut off by the shutdown.
//! * `publish` signs a topic advert with the topic key (listing this node's PubSub engine as the
//!   only publisher), creates the topic, waits for subscribing peers, publishes events whose body
//!   is the event's sequence number (from 0, 8 bytes little-endian) followed by zero filler, and
//!   waits until every subscribing peer has acknowledged them all. "Subscribing peers" are the
//!   direct neighbours in the PubSub engine's latest progress report: a peer that stops
//!   subscribing before acknowledging everything (it unsubscribed, or its connection dropped) no
//!   longer counts, and is reported as `peer <id> left after acknowledging <k> of <n> events`.
//!
//! `publish` paces itself: it keeps at most [`WINDOW_EVENTS`] events (and about
//! [`WINDOW_BYTES`]) ahead of the slowest acknowledging peer, so neither its PubSub engine's
//! mailbox nor a peer's Transport queue overflows and no event is lost.
//!
//! Both stop at SIGINT or SIGTERM, and shut their node down before they exit.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use netmachine::config::Settings;
use netmachine::identity::{to_hex, Signature};
use netmachine::pubsub::PUBSUB_ENGINE_NAME;
use netmachine::router::topics::{TopicError, TopicEvent, TopicRequest};
use netmachine::time::wall_clock;
use netmachine::wire::{Protocol, Signed, TopicAdvert};
use netmachine::{
    Client, Destination, Input, Keypair, Node, NodeIdentity, Origin, RoutingScope, TopicIdentity,
};

use crate::signals;

/// Smallest event body: the 8-byte sequence number.
pub const MIN_SIZE: usize = 8;

/// Largest event body: 1 MiB.
pub const MAX_SIZE: usize = 1 << 20;

/// Longest `--timeout-s`: one year.
pub const MAX_TIMEOUT_S: u64 = 365 * 24 * 60 * 60;

/// The protocol events are published with.
pub const EVENT_PROTOCOL: Protocol = Protocol(Protocol::APP_BASE + 0x100);

/// Most events `publish` keeps ahead of the slowest acknowledging peer.
pub const WINDOW_EVENTS: u64 = 512;

/// About how many bytes of event bodies `publish` keeps ahead of the slowest acknowledging peer.
pub const WINDOW_BYTES: u64 = 8 << 20;

/// Bytes of each event shown (in hex) by `subscribe`.
const SHOWN_BYTES: usize = 16;

/// The name of `subscribe`'s client engine.
const SUBSCRIBE_CLIENT: &str = "subscribe-cli";

/// The name of `publish`'s client engine.
const PUBLISH_CLIENT: &str = "publish-cli";

/// Longest single wait, so a stop signal is noticed promptly.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Longest wait, when `subscribe` leaves, for a parent to confirm the unsubscription.
pub const LEAVE_WAIT: Duration = Duration::from_secs(2);

/// Least time between two acknowledgement progress lines of `publish`.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Options of `netmachine subscribe`, already checked by the argument parser.
pub struct SubscribeOptions {
    /// The node configuration file.
    pub config: PathBuf,
    /// The topic to subscribe to.
    pub topic: TopicIdentity,
    /// Exit after this many events; `None`: run until SIGINT or SIGTERM.
    pub count: Option<u64>,
    /// Fail if the events have not all arrived within this long of the start.
    pub timeout: Option<Duration>,
}

/// Options of `netmachine publish`, already checked by the argument parser.
pub struct PublishOptions {
    /// The node configuration file.
    pub config: PathBuf,
    /// The topic key's file (PKCS#8 PEM, as `netmachine keygen` writes).
    pub topic_key: PathBuf,
    /// Events to publish (at least 1).
    pub count: u64,
    /// Bytes in each event body ([`MIN_SIZE`] to [`MAX_SIZE`]).
    pub size: usize,
    /// Subscribing peers to wait for before publishing.
    pub wait_subscribers: usize,
    /// How long the whole run may take: creating the topic, waiting for subscribing peers,
    /// publishing and waiting for acknowledgements.
    pub timeout: Duration,
}

pub use super::pubsub_args::{
    parse_count, parse_size, parse_timeout_s, parse_topic, parse_wait_subscribers,
};

// ---------------------------------------------------------------------------------------------
// Shared.

/// What one wait for an input gave.
// Returned by value and matched at once: boxing the input would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Wait {
    /// An input arrived.
    Input(Input),
    /// Nothing within one slice; wait again.
    Idle,
    /// The deadline passed.
    TimedOut,
    /// SIGINT or SIGTERM arrived.
    Interrupted,
    /// The node stopped the client.
    Closed,
}

/// Waits at most one [`WAIT_SLICE`] (and not past `deadline`) for the client's next input.
fn next(client: &mut Client, deadline: Option<Instant>) -> Wait {
    if signals::stop_requested() {
        return Wait::Interrupted;
    }
    let slice = match deadline {
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Wait::TimedOut;
            }
            left.min(WAIT_SLICE)
        }
        None => WAIT_SLICE,
    };
    match client.recv(slice) {
        Some(input) => Wait::Input(input),
        None if client.is_closed() => Wait::Closed,
        None => Wait::Idle,
    }
}

/// Writes one line to stdout and flushes it, so scripts and tests see it at once.
fn out(line: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

/// A person's description of a failed topic request.
fn describe(e: TopicError) -> &'static str {
    match e {
        TopicError::AlreadyExists => "the topic already exists on this node",
        TopicError::UnknownTopic => "the topic is not known",
        TopicError::NotCreator => "only the engine that created the topic may do that",
        TopicError::AlreadySubscribed => "already subscribed",
        TopicError::NotSubscribed => "not subscribed",
        TopicError::NoPubSub => "this node runs no PubSub engine",
        TopicError::NetworkFailed => {
            "the network subscription failed (the node's topic limit may be reached)"
        }
        TopicError::NotMember => "the topic is scoped to a domain this node is not a member of",
        TopicError::ScopeMismatch => "the topic's scope and its advert's domain disagree",
    }
}

const STOPPED: &str = "the local node stopped";

/// Starts the node `settings` describe, keeping a connection up to every configured peer.
fn start_node(settings: &Settings, config: &Path) -> Result<Node, String> {
    let mut builder = settings.node_builder();
    for (advert, permanent) in &settings.peers {
        if *permanent {
            continue; // `node_builder` already marked it.
        }
        if advert.addrs.is_empty() {
            eprintln!(
                "netmachine: warning: peer {} has no address in {}; it cannot be dialled",
                advert.id.short(),
                config.display()
            );
            continue;
        }
        builder = builder.permanent(advert.id);
    }
    if settings.peers.is_empty() {
        eprintln!(
            "netmachine: warning: {} lists no peers; only nodes that dial this one can carry \
             the topic",
            config.display()
        );
    }
    builder.start().map_err(|e| {
        format!(
            "cannot start the node of {}: {e} (is another command using the same file?)",
            config.display()
        )
    })
}

/// Shuts the node down and combines how that went with the command's `result`.
fn finish(node: Node, result: Result<(), String>) -> Result<(), String> {
    let report = node.shutdown();
    for failure in &report.panicked {
        eprintln!(
            "netmachine: engine {} panicked: {}",
            failure.name, failure.message
        );
    }
    if report.hung.is_empty() {
        return result;
    }
    let hung = format!("engines did not stop in time: {}", report.hung.join(", "));
    match result {
        Ok(()) => Err(hung),
        Err(e) => {
            eprintln!("netmachine: {hung}");
            Err(e)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// subscribe

/// Runs `netmachine subscribe`: Ok when the requested events arrived (or, without `--count`,
/// when a stop signal arrived).
pub fn subscribe(opts: &SubscribeOptions) -> Result<(), String> {
    signals::install()?;
    let settings = Settings::load(&opts.config).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let node = start_node(&settings, &opts.config)?;
    let deadline = opts.timeout.map(|t| started + t);
    let result = node
        .client(SUBSCRIBE_CLIENT)
        .map_err(|e| format!("cannot register the subscribe client: {e}"))
        .and_then(|mut client| receive_events(&mut client, &node, opts, deadline));
    finish(node, result)
}

/// Leaves `topic` before the command exits: unsubscribes the client, which makes the node's
/// PubSub engine send its parents a final `EventAck` and `Unsubscribe`, then waits (at most
/// [`LEAVE_WAIT`]) until a parent has answered `UnsubscribeAck`, so that the shutdown that follows
/// does not cut those messages off. Inputs arriving meanwhile (late events) are let go.
fn leave(client: &mut Client, node: &Node, topic: TopicIdentity) {
    let confirmed = || {
        node.pubsub_stats()
            .map_or(0, |s| s.unsubscribe_acks.load(Ordering::Relaxed))
    };
    let before = confirmed();
    client.with_context(|ctx| ctx.unsubscribe(topic, RoutingScope::Any));
    let deadline = Instant::now() + LEAVE_WAIT;
    while confirmed() == before {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || client.is_closed() {
            log::warn!(
                "no parent confirmed leaving {} within {} s; stopping anyway",
                topic.short(),
                LEAVE_WAIT.as_secs()
            );
            return;
        }
        let _ = client.recv(left.min(Duration::from_millis(10)));
    }
    log::info!(
        "left {}: a parent confirmed the unsubscription",
        topic.short()
    );
}

/// Subscribes, then prints events until the count is reached, the deadline passes or a signal
/// arrives; once subscribed, it [`leave`]s the topic whichever way it ends (unless the node
/// stopped).
fn receive_events(
    client: &mut Client,
    node: &Node,
    opts: &SubscribeOptions,
    deadline: Option<Instant>,
) -> Result<(), String> {
    let topic = opts.topic;
    let timeout_s = opts.timeout.map_or(0, |t| t.as_secs());
    client.subscribe(topic, RoutingScope::Any);
    loop {
        match next(client, deadline) {
            Wait::Input(Input::Topic(TopicEvent::Subscribed { topic: t, result }))
                if t == topic =>
            {
                match result {
                    Ok(()) => break,
                    Err(e) => return Err(format!("cannot subscribe to {topic}: {}", describe(e))),
                }
            }
            Wait::Input(Input::Topic(TopicEvent::AdvertReceived { advert })) => {
                log::info!(
                    "advert of {} version {} received; publishers: {:?}",
                    advert.topic.short(),
                    advert.version,
                    advert.publishers
                );
            }
            Wait::Input(_) | Wait::Idle => {}
            Wait::TimedOut => {
                return Err(format!(
                    "not subscribed to {topic} within {timeout_s} s (is a publisher of it \
                     running, and reachable through this node's peers?)"
                ))
            }
            Wait::Interrupted if opts.count.is_none() => return Ok(()),
            Wait::Interrupted => return Err("interrupted before the subscription was made".into()),
            Wait::Closed => return Err(STOPPED.into()),
        }
    }
    let result = out(&format!(
        "subscribed to {topic} on node {}",
        node.identity()
    ))
    .and_then(|()| print_events(client, opts, deadline));
    if !client.is_closed() {
        leave(client, node, topic);
    }
    result
}

/// Prints one line per event of the subscription until the count is reached, the deadline passes
/// or a signal arrives.
fn print_events(
    client: &mut Client,
    opts: &SubscribeOptions,
    deadline: Option<Instant>,
) -> Result<(), String> {
    let topic = opts.topic;
    let timeout_s = opts.timeout.map_or(0, |t| t.as_secs());
    let mut received = 0u64;
    loop {
        if opts.count.is_some_and(|n| received >= n) {
            return Ok(());
        }
        match next(client, deadline) {
            Wait::Input(Input::Message(m)) => {
                let Origin::Topic { publisher, via } = m.origin() else {
                    log::debug!(
                        "ignored a message from {} (not a topic event)",
                        m.sender().named()
                    );
                    continue;
                };
                if m.dst() != Destination::Topic(topic) {
                    continue;
                }
                received += 1;
                let body = m.body();
                out(&format!(
                    "event {received} from {} via {}: {} bytes {}",
                    publisher.short(),
                    via.short(),
                    body.len(),
                    to_hex(&body[..body.len().min(SHOWN_BYTES)])
                ))?;
            }
            Wait::Input(Input::Topic(TopicEvent::AdvertReceived { advert })) => {
                log::info!(
                    "advert of {} version {} received; publishers: {:?}",
                    advert.topic.short(),
                    advert.version,
                    advert.publishers
                );
            }
            Wait::Input(Input::Topic(TopicEvent::Withdrawn {
                topic,
                publisher,
                last,
            })) => {
                log::warn!(
                    "publisher {} withdrew from topic {}{}",
                    publisher.short(),
                    topic.short(),
                    if last { "; no publisher is left" } else { "" }
                );
            }
            Wait::Input(_) | Wait::Idle => {}
            Wait::TimedOut => {
                let wanted = opts.count.unwrap_or(0);
                return Err(format!(
                    "only {received} of {wanted} events arrived within {timeout_s} s"
                ));
            }
            Wait::Interrupted => match opts.count {
                None => return Ok(()),
                Some(n) => return Err(format!("interrupted after {received} of {n} events")),
            },
            Wait::Closed => return Err(STOPPED.into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// publish

/// Runs `netmachine publish`: Ok when every subscribing peer acknowledged every event.
pub fn publish(opts: &PublishOptions) -> Result<(), String> {
    signals::install()?;
    let topic_key = Keypair::read_file(&opts.topic_key).map_err(|e| {
        format!(
            "cannot read the topic key {}: {e}",
            opts.topic_key.display()
        )
    })?;
    let settings = Settings::load(&opts.config).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + opts.timeout;
    let node = start_node(&settings, &opts.config)?;
    let result = node
        .client(PUBLISH_CLIENT)
        .map_err(|e| format!("cannot register the publish client: {e}"))
        .and_then(|mut client| {
            let mut run = Publisher {
                client: &mut client,
                node: &node,
                opts,
                topic: topic_key.topic_identity(),
                deadline,
                peers: Vec::new(),
                left: BTreeMap::new(),
            };
            run.run(&topic_key)
        });
    finish(node, result)
}

/// The state of one `publish` run.
struct Publisher<'a> {
    client: &'a mut Client,
    node: &'a Node,
    opts: &'a PublishOptions,
    topic: TopicIdentity,
    deadline: Instant,
    /// The latest `Progress`: subscribing peers and the next sequence number each waits for.
    peers: Vec<(NodeIdentity, u64)>,
    /// Peers that stopped subscribing since publishing began, with the next sequence number
    /// each was waiting for when it left.
    left: BTreeMap<NodeIdentity, u64>,
}

impl Publisher<'_> {
    fn run(&mut self, topic_key: &Keypair) -> Result<(), String> {
        let topic = self.topic;
        self.create(topic_key)?;
        out(&format!(
            "advertised {topic} from node {}",
            self.node.identity()
        ))?;
        let k = self.opts.wait_subscribers;
        while self.peers.len() < k {
            if let Err(e) = self.wait_one() {
                return Err(match e {
                    Stop::TimedOut => format!(
                        "only {} of {k} subscribing peers attached within {} s",
                        self.peers.len(),
                        self.opts.timeout.as_secs()
                    ),
                    other => other.message(),
                });
            }
        }
        out(&format!("{} subscribing peers attached", self.peers.len()))?;
        self.left.clear();
        self.publish_all()?;
        out(&format!(
            "published {} events of {} bytes",
            self.opts.count, self.opts.size
        ))?;
        self.wait_acknowledged()
    }

    /// Creates the topic with a freshly signed advert and waits for the Router's answer.
    fn create(&mut self, topic_key: &Keypair) -> Result<(), String> {
        let topic = self.topic;
        let publisher = self
            .node
            .engine_identity(PUBSUB_ENGINE_NAME)
            .ok_or("this node runs no PubSub engine")?;
        let now = wall_clock();
        let advert = TopicAdvert {
            topic,
            publishers: vec![publisher],
            tags: Vec::new(),
            version: now.0,
            created: now,
            scope: None,
            sig: Signature([0; 64]),
        }
        .sign(topic_key);
        self.client.with_context(|ctx| {
            ctx.topic_request(TopicRequest::Create {
                topic,
                scope: RoutingScope::Any,
                advert: Some(advert),
            })
        });
        loop {
            match next(self.client, Some(self.deadline)) {
                Wait::Input(Input::Topic(TopicEvent::Created { topic: t, result }))
                    if t == topic =>
                {
                    return result
                        .map_err(|e| format!("cannot create topic {topic}: {}", describe(e)));
                }
                Wait::Input(input) => self.note(input)?,
                Wait::Idle => {}
                Wait::TimedOut => {
                    return Err(format!(
                        "the node did not create topic {topic} within {} s",
                        self.opts.timeout.as_secs()
                    ))
                }
                Wait::Interrupted => return Err(Stop::Interrupted.message()),
                Wait::Closed => return Err(STOPPED.into()),
            }
        }
    }

    /// Takes note of an input: a `Progress` replaces the known peers; a publication that was
    /// dropped is an error.
    fn note(&mut self, input: Input) -> Result<(), String> {
        match input {
            Input::Topic(TopicEvent::Progress { topic, peers, .. }) if topic == self.topic => {
                for (peer, next) in &self.peers {
                    if !peers.iter().any(|(p, _)| p == peer) {
                        self.left.insert(*peer, *next);
                    }
                }
                for (peer, _) in &peers {
                    self.left.remove(peer);
                }
                self.peers = peers;
                Ok(())
            }
            Input::Undeliverable(u) if u.dst == Destination::Topic(self.topic) => Err(format!(
                "a publication was dropped on this node: {}",
                u.reason.label()
            )),
            _ => Ok(()),
        }
    }

    /// Waits up to one slice for an input and takes note of it.
    fn wait_one(&mut self) -> Result<(), Stop> {
        match next(self.client, Some(self.deadline)) {
            Wait::Input(input) => self.note(input).map_err(Stop::Failed),
            Wait::Idle => Ok(()),
            Wait::TimedOut => Err(Stop::TimedOut),
            Wait::Interrupted => Err(Stop::Interrupted),
            Wait::Closed => Err(Stop::Failed(STOPPED.into())),
        }
    }

    /// Takes note of every input already waiting.
    fn drain(&mut self) -> Result<(), String> {
        while let Some(input) = self.client.recv(Duration::ZERO) {
            self.note(input)?;
        }
        Ok(())
    }

    /// Events published by this node's PubSub engine so far.
    fn published_by_pubsub(&self) -> u64 {
        self.node
            .pubsub_stats()
            .map_or(0, |s| s.published.load(Ordering::Relaxed))
    }

    /// Events every acknowledging peer has, or what PubSub published when no peer is attached.
    fn floor(&self) -> u64 {
        let acked = self
            .peers
            .iter()
            .filter(|(_, next)| *next > 0)
            .map(|(_, next)| next - 1)
            .min();
        match acked {
            Some(a) => a,
            // Peers that have acknowledged nothing yet: one window goes out.
            None if !self.peers.is_empty() => 0,
            None => self.published_by_pubsub(),
        }
    }

    /// Publishes the events, keeping within the window.
    fn publish_all(&mut self) -> Result<(), String> {
        let (count, size) = (self.opts.count, self.opts.size);
        let window = (WINDOW_BYTES / size as u64).clamp(1, WINDOW_EVENTS);
        let mut sent = 0u64;
        while sent < count {
            self.drain()?;
            if sent.saturating_sub(self.floor()) < window {
                let body = event_body(sent, size);
                self.client.publish(self.topic, EVENT_PROTOCOL, body);
                sent += 1;
                continue;
            }
            if let Err(e) = self.wait_one() {
                if let Stop::TimedOut = e {
                    self.report_lagging();
                }
                return Err(match e {
                    Stop::TimedOut => format!(
                        "timed out after {} s having published {sent} of {count} events: \
                         subscribing peers did not acknowledge them in time",
                        self.opts.timeout.as_secs()
                    ),
                    other => other.message(),
                });
            }
        }
        Ok(())
    }

    /// Peers that have not acknowledged every event: `(peer, events acknowledged)`.
    fn lagging(&self) -> Vec<(NodeIdentity, u64)> {
        let target = self.opts.count.saturating_add(1);
        self.peers
            .iter()
            .filter(|(_, next)| *next < target)
            .map(|(peer, next)| (*peer, next.saturating_sub(1)))
            .collect()
    }

    /// Prints each peer that has not acknowledged every event, and how far it got.
    fn report_lagging(&self) {
        for (peer, acked) in self.lagging() {
            let _ = out(&format!(
                "peer {peer} acknowledged {acked} of {} events",
                self.opts.count
            ));
        }
    }

    /// Prints each peer that stopped subscribing before acknowledging every event, and how far
    /// it got; returns how many there were.
    fn report_left(&self) -> usize {
        let count = self.opts.count;
        let mut n = 0;
        for (peer, next) in &self.left {
            if *next <= count {
                n += 1;
                let _ = out(&format!(
                    "peer {peer} left after acknowledging {} of {count} events",
                    next.saturating_sub(1)
                ));
            }
        }
        n
    }

    /// Waits until every peer still subscribing has acknowledged every event, printing
    /// progress. A peer that stops subscribing first (it unsubscribed or disconnected) no longer
    /// counts; it is reported.
    fn wait_acknowledged(&mut self) -> Result<(), String> {
        let count = self.opts.count;
        let mut shown: Option<(usize, usize, u64)> = None;
        let mut last_shown: Option<Instant> = None;
        loop {
            let lagging = self.lagging();
            let total = self.peers.len();
            if lagging.is_empty() {
                let left = self.report_left();
                let note = if left > 0 {
                    format!(" ({left} left before acknowledging all)")
                } else {
                    String::new()
                };
                return out(&format!(
                    "all {total} subscribing peers acknowledged {count} events{note}"
                ));
            }
            let slowest = lagging.iter().map(|(_, a)| *a).min().unwrap_or(count);
            let state = (total - lagging.len(), total, slowest);
            if shown != Some(state) && last_shown.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
                out(&format!(
                    "acknowledged: {} of {total} subscribing peers have all {count} events \
                     (slowest at {slowest})",
                    state.0
                ))?;
                shown = Some(state);
                last_shown = Some(Instant::now());
            }
            match self.wait_one() {
                Ok(()) => {}
                Err(Stop::TimedOut) => {
                    self.report_left();
                    self.report_lagging();
                    let secs = self.opts.timeout.as_secs();
                    return Err(format!(
                        "timed out after {secs} s: {} of {total} subscribing peers did not \
                         acknowledge all {count} events",
                        lagging.len()
                    ));
                }
                Err(other) => return Err(other.message()),
            }
        }
    }
}

/// Why `publish` stopped waiting.
enum Stop {
    /// The deadline passed.
    TimedOut,
    /// SIGINT or SIGTERM arrived.
    Interrupted,
    /// Anything else, for a person.
    Failed(String),
}

impl Stop {
    fn message(self) -> String {
        match self {
            Stop::TimedOut => "timed out".into(),
            Stop::Interrupted => "interrupted".into(),
            Stop::Failed(m) => m,
        }
    }
}

/// An event body of `size` bytes (at least 8): `seq` little-endian, then zeros.
fn event_body(seq: u64, size: usize) -> Vec<u8> {
    let mut body = vec![0u8; size.max(MIN_SIZE)];
    body[..8].copy_from_slice(&seq.to_le_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        assert_eq!(parse_count("20"), Ok(20));
        assert!(parse_count("0").is_err());
        assert!(parse_count("x").is_err());
        assert_eq!(parse_size("8"), Ok(8));
        assert_eq!(parse_size("1048576"), Ok(MAX_SIZE));
        assert!(parse_size("7").is_err());
        assert!(parse_size("1048577").unwrap_err().contains("1 MiB"));
        assert!(parse_timeout_s("0").is_err());
        assert!(parse_timeout_s(&u64::MAX.to_string()).is_err());
        assert_eq!(parse_timeout_s("30"), Ok(30));
        assert_eq!(parse_wait_subscribers("0"), Ok(0));
        assert!(parse_wait_subscribers("65").is_err());
        assert!(parse_topic("abc").unwrap_err().contains("64 hex"));
        let t = TopicIdentity([3; 32]);
        assert_eq!(parse_topic(&t.to_string()), Ok(t));
    }

    #[test]
    fn bodies_start_with_the_sequence_number() {
        let b = event_body(0x0102, 10);
        assert_eq!(b, vec![2, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(event_body(5, 8).len(), 8);
    }
}
