//! The Topology protocol's messages: the bodies of `Protocol::TOPOLOGY` messages between the
//! Topology engines of a domain's members (docs/wire.md, "Topology messages").
//!
//! A body is `u32 version (1) || u32 tag || domain (32 bytes) || fields`, in the crate's one
//! bincode configuration (little-endian, fixed-width integers, `u64` list lengths). Lists of
//! members are bounded on decode by the receiver's limit, so an oversized list costs nothing
//! but the frame that carried it.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use crate::identity::{DomainIdentity, NodeIdentity};
use crate::wire::{decode_exact, decode_list, encode_list, unknown_version, WireError, CONFIG};

/// The version of the Topology protocol this code speaks.
pub const TOPOLOGY_VERSION: u32 = 1;
/// Most members any `Shuffle` or `ShuffleReply` may carry on the wire, whatever the
/// receiver's limit: 256.
pub const MAX_WIRE_NODES: usize = 256;

/// Tag of [`TopologyMessage::Join`].
pub const TAG_JOIN: u32 = 1;
/// Tag of [`TopologyMessage::ForwardJoin`].
pub const TAG_FORWARD_JOIN: u32 = 2;
/// Tag of [`TopologyMessage::Neighbor`].
pub const TAG_NEIGHBOR: u32 = 3;
/// Tag of [`TopologyMessage::NeighborReply`].
pub const TAG_NEIGHBOR_REPLY: u32 = 4;
/// Tag of [`TopologyMessage::Disconnect`].
pub const TAG_DISCONNECT: u32 = 5;
/// Tag of [`TopologyMessage::Shuffle`].
pub const TAG_SHUFFLE: u32 = 6;
/// Tag of [`TopologyMessage::ShuffleReply`].
pub const TAG_SHUFFLE_REPLY: u32 = 7;
/// Tag of [`TopologyMessage::Keepalive`].
pub const TAG_KEEPALIVE: u32 = 8;

/// A message between the Topology engines of two members of `domain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologyMessage {
    /// The sender has no active peer: take it into your active view (dropping a random peer
    /// if the view is full) and walk `ForwardJoin`s from each of your other active peers.
    Join {
        /// The domain.
        domain: DomainIdentity,
    },
    /// A random walk announcing `new_node`: at `ttl` 0 (or at a node with at most one active
    /// peer) the receiver asks `new_node` to be its neighbour; at the passive walk length it
    /// remembers `new_node` in its passive view; otherwise it passes the walk on with `ttl - 1`.
    ForwardJoin {
        /// The domain.
        domain: DomainIdentity,
        /// The member that joined.
        new_node: NodeIdentity,
        /// Hops left.
        ttl: u8,
    },
    /// Asks the receiver to take the sender into its active view. With `high_priority` the
    /// receiver accepts even when its view is full (dropping a random peer); without, only
    /// when it has room.
    Neighbor {
        /// The domain.
        domain: DomainIdentity,
        /// Whether to accept even with a full active view.
        high_priority: bool,
    },
    /// Answer to `Neighbor`.
    NeighborReply {
        /// The domain.
        domain: DomainIdentity,
        /// Whether the sender took the receiver into its active view.
        accepted: bool,
    },
    /// The sender removed the receiver from its active view (the receiver moves it to its
    /// passive view).
    Disconnect {
        /// The domain.
        domain: DomainIdentity,
    },
    /// A shuffle walking the overlay: `origin` offers `nodes` (itself, some active and some
    /// passive members); the node where the walk ends answers `origin` with as many of its
    /// passive members and merges `nodes` into its passive view.
    Shuffle {
        /// The domain.
        domain: DomainIdentity,
        /// The member that started the shuffle.
        origin: NodeIdentity,
        /// Hops left.
        ttl: u8,
        /// The members offered.
        nodes: Vec<NodeIdentity>,
    },
    /// Answer to a `Shuffle`, sent straight to its origin.
    ShuffleReply {
        /// The domain.
        domain: DomainIdentity,
        /// Members from the answering node's passive view.
        nodes: Vec<NodeIdentity>,
    },
    /// Liveness: sent to an active peer to which nothing else was sent for
    /// `keepalive_interval`.
    Keepalive {
        /// The domain.
        domain: DomainIdentity,
    },
}

impl TopologyMessage {
    /// The domain the message is about.
    pub fn domain(&self) -> DomainIdentity {
        match self {
            TopologyMessage::Join { domain }
            | TopologyMessage::ForwardJoin { domain, .. }
            | TopologyMessage::Neighbor { domain, .. }
            | TopologyMessage::NeighborReply { domain, .. }
            | TopologyMessage::Disconnect { domain }
            | TopologyMessage::Shuffle { domain, .. }
            | TopologyMessage::ShuffleReply { domain, .. }
            | TopologyMessage::Keepalive { domain } => *domain,
        }
    }

    /// The message's tag on the wire.
    pub fn tag(&self) -> u32 {
        match self {
            TopologyMessage::Join { .. } => TAG_JOIN,
            TopologyMessage::ForwardJoin { .. } => TAG_FORWARD_JOIN,
            TopologyMessage::Neighbor { .. } => TAG_NEIGHBOR,
            TopologyMessage::NeighborReply { .. } => TAG_NEIGHBOR_REPLY,
            TopologyMessage::Disconnect { .. } => TAG_DISCONNECT,
            TopologyMessage::Shuffle { .. } => TAG_SHUFFLE,
            TopologyMessage::ShuffleReply { .. } => TAG_SHUFFLE_REPLY,
            TopologyMessage::Keepalive { .. } => TAG_KEEPALIVE,
        }
    }

    /// The kind as counters and logs name it.
    pub fn kind(&self) -> &'static str {
        match self {
            TopologyMessage::Join { .. } => "join",
            TopologyMessage::ForwardJoin { .. } => "forward_join",
            TopologyMessage::Neighbor { .. } => "neighbor",
            TopologyMessage::NeighborReply { .. } => "neighbor_reply",
            TopologyMessage::Disconnect { .. } => "disconnect",
            TopologyMessage::Shuffle { .. } => "shuffle",
            TopologyMessage::ShuffleReply { .. } => "shuffle_reply",
            TopologyMessage::Keepalive { .. } => "keepalive",
        }
    }

    /// The message body: `u32 version || u32 tag || domain || fields`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        bincode::encode_into_std_write(Body(self), &mut out, CONFIG)
            .expect("encoding into a Vec cannot fail");
        out
    }

    /// Reads a body made by [`Self::to_bytes`], refusing lists of more than `max_nodes`
    /// members (and of more than [`MAX_WIRE_NODES`] whatever `max_nodes` says).
    pub fn from_bytes(body: &[u8], max_nodes: usize) -> Result<TopologyMessage, WireError> {
        let BodyDecode(msg) = decode_exact(body)?;
        if let TopologyMessage::Shuffle { nodes, .. }
        | TopologyMessage::ShuffleReply { nodes, .. } = &msg
        {
            if nodes.len() > max_nodes {
                return Err(WireError::TooLarge {
                    what: "list",
                    len: nodes.len() as u64,
                    max: max_nodes as u64,
                });
            }
        }
        Ok(msg)
    }
}

struct Body<'a>(&'a TopologyMessage);

impl Encode for Body<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let m = self.0;
        TOPOLOGY_VERSION.encode(e)?;
        m.tag().encode(e)?;
        m.domain().encode(e)?;
        match m {
            TopologyMessage::Join { .. }
            | TopologyMessage::Disconnect { .. }
            | TopologyMessage::Keepalive { .. } => Ok(()),
            TopologyMessage::ForwardJoin { new_node, ttl, .. } => {
                new_node.encode(e)?;
                ttl.encode(e)
            }
            TopologyMessage::Neighbor { high_priority, .. } => high_priority.encode(e),
            TopologyMessage::NeighborReply { accepted, .. } => accepted.encode(e),
            TopologyMessage::Shuffle {
                origin, ttl, nodes, ..
            } => {
                origin.encode(e)?;
                ttl.encode(e)?;
                encode_list(nodes, e)
            }
            TopologyMessage::ShuffleReply { nodes, .. } => encode_list(nodes, e),
        }
    }
}

struct BodyDecode(TopologyMessage);

impl Decode<()> for BodyDecode {
    fn decode<D: Decoder<Context = ()>>(d: &mut D) -> Result<Self, DecodeError> {
        let max = MAX_WIRE_NODES;
        let version = u32::decode(d)?;
        if version != TOPOLOGY_VERSION {
            return Err(unknown_version(version));
        }
        let tag = u32::decode(d)?;
        let domain = DomainIdentity::decode(d)?;
        let m = match tag {
            TAG_JOIN => TopologyMessage::Join { domain },
            TAG_FORWARD_JOIN => TopologyMessage::ForwardJoin {
                domain,
                new_node: NodeIdentity::decode(d)?,
                ttl: u8::decode(d)?,
            },
            TAG_NEIGHBOR => TopologyMessage::Neighbor {
                domain,
                high_priority: bool::decode(d)?,
            },
            TAG_NEIGHBOR_REPLY => TopologyMessage::NeighborReply {
                domain,
                accepted: bool::decode(d)?,
            },
            TAG_DISCONNECT => TopologyMessage::Disconnect { domain },
            TAG_SHUFFLE => TopologyMessage::Shuffle {
                domain,
                origin: NodeIdentity::decode(d)?,
                ttl: u8::decode(d)?,
                nodes: decode_list(d, "list", max)?,
            },
            TAG_SHUFFLE_REPLY => TopologyMessage::ShuffleReply {
                domain,
                nodes: decode_list(d, "list", max)?,
            },
            TAG_KEEPALIVE => TopologyMessage::Keepalive { domain },
            other => {
                return Err(DecodeError::UnexpectedVariant {
                    type_name: "TopologyMessage",
                    allowed: &bincode::error::AllowedEnumVariants::Range { min: 1, max: 8 },
                    found: other,
                })
            }
        };
        Ok(BodyDecode(m))
    }
}
