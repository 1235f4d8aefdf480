//! Why a message was dropped ([`DropReason`]) and what went wrong on a connection that is not a
//! dropped message ([`Fault`]). Every engine counts its drops by these reasons; the counters live
//! in the runtime's `NodeStats`.

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $name:ident = $label:literal,)*) => {
        /// Why a message was dropped. Each reason has its own counter in `NodeStats`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum DropReason {
            $($(#[$doc])* $name,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];

            /// The counter name, as the status view and logs print it.
            pub fn label(self) -> &'static str {
                match self {
                    $(DropReason::$name => $label,)*
                }
            }
        }
    };
}

drop_reasons! {
    // A peer broke a rule.
    /// The bytes did not decode as a message.
    Malformed = "malformed",
    /// The message uses a wire version this node does not speak.
    UnknownVersion = "unknown_version",
    /// The same (source, destination, id) was already delivered.
    Duplicate = "duplicate",
    /// The id is older than the replay window remembers.
    Replay = "replay",
    /// The signature does not verify.
    BadSignature = "bad_signature",
    /// The source key is of small order (anyone could sign for it).
    WeakKey = "weak_key",
    /// The source key is not a valid (canonical) Ed25519 point.
    BadKey = "bad_key",
    /// The message claims a source node other than the peer it came from.
    SourceNodeMismatch = "source_node_mismatch",
    /// The message carries no expiry, or one further ahead than the node accepts.
    ExpiryOutOfRange = "expiry_out_of_range",
    /// A remote message addressed to an engine this node does not run (no relaying).
    NotForThisNode = "not_for_this_node",
    /// The replay state is full of live entries; new sources are refused until some expire.
    ReplayStateFull = "replay_state_full",
    // Local routing and delivery.
    /// The expiry passed before the message could be delivered or sent.
    Expired = "expired",
    /// No route to the destination is known.
    NoRoute = "no_route",
    /// The topic does not exist on this node.
    UnknownTopic = "unknown_topic",
    /// The destination engine's mailbox was full (see the mailbox-full policy).
    MailboxFull = "mailbox_full",
    /// The destination engine has stopped.
    EngineGone = "engine_gone",
    /// A message that must leave the node is not signed.
    Unsigned = "unsigned",
    /// The message's routing scope forbids where it would have to go.
    ScopeViolation = "scope_violation",
    /// The message or topic is scoped to a domain, and its source, its destination or this
    /// node is not a member of it (as this node's replica of the membership knows).
    NotMember = "not_member",
    /// The destination kind or preference is not supported by this version.
    Unsupported = "unsupported",
    /// No transport is running on this node.
    NoTransport = "no_transport",
    /// The per-peer outbound queue was full.
    QueueFull = "queue_full",
    /// The message is larger than the frame or datagram limit.
    TooLarge = "too_large",
    /// A lookup for the destination is already waiting with too many messages queued.
    PendingFull = "pending_full",
    /// The node was shutting down.
    Shutdown = "shutdown",
    /// The destination node is refused by this node: banned (trust 0) or cut off for sending
    /// messages that failed verification, for its backoff. Nothing is sent to it meanwhile.
    PeerRefused = "peer_refused",
    // Relaying (docs/wire.md §12G; `crate::relay`).
    /// A relay layer that does not parse (version, length, layer kind, depth).
    RelayMalformed = "relay_malformed",
    /// A relay layer whose authentication tag does not verify: corrupted or altered on the way,
    /// or not sealed to this node.
    RelayBadMac = "relay_bad_mac",
    /// A relay layer whose counter this node has already opened in its session, or older than
    /// the session's replay window.
    RelayReplayed = "relay_replayed",
    /// A relay layer past its expiry, or with one further ahead than the node accepts.
    RelayExpired = "relay_expired",
    /// A relay layer claiming more nested layers than `MAX_RELAY_DEPTH`.
    RelayTooDeep = "relay_too_deep",
    /// A delivered relay message whose source proof does not match the source node it names.
    RelayBadSource = "relay_bad_source",
    /// The table of relay sessions is full of live sessions; new ones are refused until some
    /// expire (refusing rather than evicting keeps replay protection whole).
    RelaySessionsFull = "relay_sessions_full",
    /// This node's relay policy does not relay for the previous hop.
    RelayRefused = "relay_refused",
    /// The previous hop sent more relay messages per second than the relay policy allows.
    RelayOverRate = "relay_over_rate",
    /// The previous hop sent more relay bytes per second than the relay policy allows.
    RelayOverBytes = "relay_over_bytes",
    /// A message that must go through relays (`OnionRouting(n)`, or no direct address) found
    /// too few usable relays.
    NoRelay = "no_relay",
    /// A relay receipt whose token is not the destination's: forged (counts against the
    /// peer's conduct).
    RelayBadReceipt = "relay_bad_receipt",
    /// A relay receipt for no layer this node forwarded or sent: late (past the circuit's
    /// memory), or never sent here.
    RelayUnknownReceipt = "relay_unknown_receipt",
    /// A relayed message of this node whose receipt never came, on every path tried.
    RelayUnacknowledged = "relay_unacknowledged",
}

/// Transport-level events that are not a dropped message: a peer breaking a connection rule, a
/// refused connection, junk on the socket. Each has its own counter in `NodeStats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// A UDP datagram that is not a QUIC packet for a known or new connection.
    JunkPacket,
    /// A QUIC/TLS handshake that failed or timed out.
    HandshakeFailed,
    /// The dialled node presented a different identity (or an invalid certificate).
    IdentityMismatch,
    /// An unknown node was refused because only configured peers may connect.
    UnknownPeerRefused,
    /// A connection refused or closed by the connection limits.
    ConnectionLimit,
    /// A frame over the frame limit (its stream is stopped).
    FrameTooLarge,
    /// A bad or missing control frame (the connection is closed).
    ProtocolViolation,
    /// More incomplete frames buffered for a connection than `max_partial_frame_bytes` (the
    /// connection is closed).
    PartialFrameLimit,
    /// No protocol version in common.
    VersionMismatch,
    /// A second connection between the same two nodes, closed.
    DuplicateConnection,
    /// A connection replaced because the peer restarted.
    StaleConnection,
    /// Messages sent again after their connection was lost before acknowledging them.
    Resent,
    /// A peer disconnected for sending too many messages that failed verification
    /// (`bad_messages_before_disconnect`); it is neither redialled nor accepted for its backoff.
    PeerCutOff,
    /// A connection from a peer that is cut off, refused during its backoff.
    CutOffPeerRefused,
    /// A connection from a banned peer (trust 0), refused.
    BannedPeerRefused,
    /// Identity-exchange frames (lookups, engine adverts) a peer sent over its rate, or that the
    /// identity store had no room for: dropped, the connection kept.
    ExchangeOverRate,
    /// Answers to a peer's lookup that could not be sent: the peer was no longer connected.
    ExchangeAnswerLost,
    /// A TCP listener's `accept` failed in the operating system (too many open files, for
    /// example): the waiting connection stays queued until the listener is next ready.
    AcceptFailed,
}

impl Fault {
    /// Every fault, in counter order.
    pub const ALL: &'static [Fault] = &[
        Fault::JunkPacket,
        Fault::HandshakeFailed,
        Fault::IdentityMismatch,
        Fault::UnknownPeerRefused,
        Fault::ConnectionLimit,
        Fault::FrameTooLarge,
        Fault::ProtocolViolation,
        Fault::PartialFrameLimit,
        Fault::VersionMismatch,
        Fault::DuplicateConnection,
        Fault::StaleConnection,
        Fault::Resent,
        Fault::PeerCutOff,
        Fault::CutOffPeerRefused,
        Fault::BannedPeerRefused,
        Fault::ExchangeOverRate,
        Fault::ExchangeAnswerLost,
        Fault::AcceptFailed,
    ];

    /// The counter name.
    pub fn label(self) -> &'static str {
        match self {
            Fault::JunkPacket => "junk_packet",
            Fault::HandshakeFailed => "handshake_failed",
            Fault::IdentityMismatch => "identity_mismatch",
            Fault::UnknownPeerRefused => "unknown_peer_refused",
            Fault::ConnectionLimit => "connection_limit",
            Fault::FrameTooLarge => "frame_too_large",
            Fault::ProtocolViolation => "protocol_violation",
            Fault::PartialFrameLimit => "partial_frame_limit",
            Fault::VersionMismatch => "version_mismatch",
            Fault::DuplicateConnection => "duplicate_connection",
            Fault::StaleConnection => "stale_connection",
            Fault::Resent => "resent",
            Fault::PeerCutOff => "peers_cut_off",
            Fault::CutOffPeerRefused => "cut_off_peer_refused",
            Fault::BannedPeerRefused => "banned_peer_refused",
            Fault::ExchangeOverRate => "exchange_over_rate",
            Fault::ExchangeAnswerLost => "exchange_answers_lost",
            Fault::AcceptFailed => "accept_failed",
        }
    }
}
