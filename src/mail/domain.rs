//! The vocabulary of domains (spec notes §5.6): what the Domain engine, the Topology engine,
//! PubSub, the Router and applications say to one another on one node.
//!
//! * [`DomainDirectory`] — the node's read-only view of the domains it knows the membership of,
//!   published by the Domain engine and read by the Router (to enforce
//!   [`crate::wire::RoutingScope::Domain`]) and by PubSub (to keep domain-scoped topics among
//!   members). Readers never write it; the Domain engine never blocks on it (one short write per
//!   membership change).
//! * [`ViewMail`] — local mail to and from the Topology engine (`Protocol::TOPOLOGY`, routing
//!   scope `Local`): watching a domain's view, the view events `PeerAddedToView` /
//!   `PeerRemovedFromView`, and the Domain engine's membership changes.
//! * [`DomainMail`] — local mail between an application (or the command line) and the Domain
//!   engine (`Protocol::DOMAIN`, scope `Local`): join, leave, expel, list the members, and send an
//!   external request to a domain.
//!
//! Local mail is encoded like every message body (`u32 version || u32 tag || fields`, the crate's
//! bincode configuration) but never leaves the node: a receiver acts on it only when the message's
//! origin is [`crate::mail::Origin::Local`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bincode::{Decode, Encode};
use parking_lot::RwLock;

use crate::identity::{DomainIdentity, NodeIdentity};
use crate::wire::{decode_exact, encode_to_vec, Protocol, WireError};

/// The name of the node's Domain engine (it hosts one instance per domain).
pub const DOMAIN_ENGINE_NAME: &str = "domain";
/// The name of the node's Topology engine (it hosts one overlay per domain).
pub const TOPOLOGY_ENGINE_NAME: &str = "topology";
/// Version of the local mail encodings in this module.
pub const LOCAL_MAIL_VERSION: u32 = 1;

/// What the node knows of one domain's membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainEntry {
    /// The current members (as this node's replica of the membership has them).
    pub members: BTreeSet<NodeIdentity>,
    /// Whether this node is itself a member.
    pub member_here: bool,
    /// Increases with every change of this entry.
    pub version: u64,
    /// The domain's advert in wire form, as this node's Domain engine holds it (members hand it
    /// to non-members that reach them through domain routing).
    pub advert: Option<Arc<Vec<u8>>>,
    /// Whether this node is a member that the advert lists as accepting external requests.
    pub external_here: bool,
}

/// The node's domains and their members, shared read-only with the Router and PubSub.
///
/// Cloning shares the same directory. Memory: one [`DomainEntry`] per domain the node serves —
/// 32 bytes per member plus the set's overhead (≈ 80 KiB for a 1,000-member domain).
#[derive(Clone, Debug, Default)]
pub struct DomainDirectory(Arc<RwLock<BTreeMap<DomainIdentity, DomainEntry>>>);

impl DomainDirectory {
    /// An empty directory.
    pub fn new() -> DomainDirectory {
        DomainDirectory::default()
    }

    /// Whether `node` is a member of `domain` as far as this node knows (false for a domain
    /// it does not know).
    pub fn is_member(&self, domain: &DomainIdentity, node: &NodeIdentity) -> bool {
        self.0
            .read()
            .get(domain)
            .is_some_and(|e| e.members.contains(node))
    }

    /// Whether this node is a member of `domain`.
    pub fn member_here(&self, domain: &DomainIdentity) -> bool {
        self.0.read().get(domain).is_some_and(|e| e.member_here)
    }

    /// Whether this node knows `domain` at all (it is or was a member, or serves it).
    pub fn knows(&self, domain: &DomainIdentity) -> bool {
        self.0.read().contains_key(domain)
    }

    /// A copy of what is known of `domain`.
    pub fn entry(&self, domain: &DomainIdentity) -> Option<DomainEntry> {
        self.0.read().get(domain).cloned()
    }

    /// The domains this node is a member of.
    pub fn memberships(&self) -> Vec<DomainIdentity> {
        self.0
            .read()
            .iter()
            .filter(|(_, e)| e.member_here)
            .map(|(d, _)| *d)
            .collect()
    }

    /// Replaces what is known of `domain` (the Domain engine's call); bumps its version.
    pub fn publish(&self, domain: DomainIdentity, members: BTreeSet<NodeIdentity>, here: bool) {
        let mut map = self.0.write();
        let e = map.entry(domain).or_default();
        e.members = members;
        e.member_here = here;
        e.version += 1;
    }

    /// Sets the advert of `domain` and whether this node answers external requests for it (the
    /// Domain engine's call); bumps its version.
    pub fn set_advert(&self, domain: DomainIdentity, advert: Vec<u8>, external_here: bool) {
        let mut map = self.0.write();
        let e = map.entry(domain).or_default();
        e.advert = Some(Arc::new(advert));
        e.external_here = external_here;
        e.version += 1;
    }

    /// Forgets `domain` (the Domain engine's call).
    pub fn forget(&self, domain: &DomainIdentity) {
        self.0.write().remove(domain);
    }
}

/// Local mail to and from the Topology engine (`Protocol::TOPOLOGY`, scope `Local`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ViewMail {
    /// Engine → Topology: send me the view events of `domain`. Answered at once with one
    /// `PeerAddedToView` per node in the current active view.
    Watch {
        /// The domain.
        domain: DomainIdentity,
    },
    /// Engine → Topology: stop sending view events of `domain`.
    Unwatch {
        /// The domain.
        domain: DomainIdentity,
    },
    /// Domain → Topology: the membership of `domain` changed. `here` says whether this node is
    /// a member (a node that is not keeps no overlay for the domain); `introducers` are the
    /// advert's introducer nodes, contact points when the view is empty.
    Members {
        /// The domain.
        domain: DomainIdentity,
        /// Whether this node is a member.
        here: bool,
        /// Members that joined since the last `Members` (all of them the first time).
        added: Vec<NodeIdentity>,
        /// Members that left or were expelled since the last `Members`.
        removed: Vec<NodeIdentity>,
        /// The advert's introducers.
        introducers: Vec<NodeIdentity>,
    },
    /// Topology → watcher: `node` entered the active view of `domain` (a connected member).
    PeerAddedToView {
        /// The domain.
        domain: DomainIdentity,
        /// The member now in the view.
        node: NodeIdentity,
    },
    /// Topology → watcher: `node` left the active view of `domain`.
    PeerRemovedFromView {
        /// The domain.
        domain: DomainIdentity,
        /// The member no longer in the view.
        node: NodeIdentity,
    },
}

/// Why a join was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum JoinRefusal {
    /// The pre-shared-key proof does not verify (wrong key, or no key given).
    WrongKey,
    /// The domain admits only the nodes on its signed allow-list, and this one is not on it.
    NotOnList,
    /// The domain has as many members as it admits.
    DomainFull,
    /// The request was malformed, expired or a replay.
    BadRequest,
    /// The node asked is not a member that approves joins.
    NotApprover,
    /// This node was expelled from the domain.
    Expelled,
    /// No answer came in time.
    Timeout,
}

impl JoinRefusal {
    /// The reason as logs, counters and the command line print it.
    pub fn label(self) -> &'static str {
        match self {
            JoinRefusal::WrongKey => "wrong_key",
            JoinRefusal::NotOnList => "not_on_list",
            JoinRefusal::DomainFull => "domain_full",
            JoinRefusal::BadRequest => "bad_request",
            JoinRefusal::NotApprover => "not_approver",
            JoinRefusal::Expelled => "expelled",
            JoinRefusal::Timeout => "timeout",
        }
    }
}

/// One member as [`DomainMail::MembersAre`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct MemberInfo {
    /// The member node.
    pub node: NodeIdentity,
    /// The membership epoch from which it holds.
    pub epoch: u64,
    /// The member that approved it (itself for an introducer).
    pub approver: NodeIdentity,
    /// Whether it is one of the advert's introducers.
    pub introducer: bool,
    /// Whether it is currently in this node's active view.
    pub in_view: bool,
}

/// Local mail between an application and the Domain engine (`Protocol::DOMAIN`, scope
/// `Local`). Requests name the domain; every request gets exactly one answer (the `…Result`,
/// `MembersAre` or `ExtReply` variant), sent back to the asking engine.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum DomainMail {
    /// Ask to join `domain` (its advert must be known: configured or given here).
    Join {
        /// The domain.
        domain: DomainIdentity,
        /// The domain's advert in its wire form (`encode_to_vec(&advert)`), if the Domain
        /// engine may not know it yet.
        advert: Option<Vec<u8>>,
    },
    /// The outcome of a join: the epoch from which the membership holds, or why it was refused.
    JoinResult {
        /// The domain.
        domain: DomainIdentity,
        /// Accepted from this epoch, or refused.
        result: Result<u64, JoinRefusal>,
        /// The member that answered.
        approver: Option<NodeIdentity>,
    },
    /// Leave `domain`.
    Leave {
        /// The domain.
        domain: DomainIdentity,
    },
    /// Expel `node` from `domain` (only an introducer may).
    Expel {
        /// The domain.
        domain: DomainIdentity,
        /// The member to expel.
        node: NodeIdentity,
    },
    /// The outcome of a leave or an expulsion: `Err` holds why it was not done.
    Done {
        /// The domain.
        domain: DomainIdentity,
        /// Done, or why not.
        result: Result<(), String>,
    },
    /// List the members of `domain`.
    Members {
        /// The domain.
        domain: DomainIdentity,
    },
    /// The members of `domain` (empty when the domain is unknown).
    MembersAre {
        /// The domain.
        domain: DomainIdentity,
        /// The members, by node identity.
        members: Vec<MemberInfo>,
    },
    /// Send `body` for `protocol` to some member of `domain` that accepts external requests.
    ExtRequest {
        /// The domain.
        domain: DomainIdentity,
        /// The domain protocol the body is for.
        protocol: Protocol,
        /// The request.
        body: Vec<u8>,
    },
    /// The answer to an `ExtRequest`, or why there is none.
    ExtReply {
        /// The domain.
        domain: DomainIdentity,
        /// The member's answer, or why there is none.
        result: Result<Vec<u8>, String>,
        /// The member that answered.
        member: Option<NodeIdentity>,
    },
}

macro_rules! local_mail_codec {
    ($t:ty) => {
        impl $t {
            /// The message body: `u32 version || value`.
            pub fn encode(&self) -> Vec<u8> {
                encode_to_vec(&(LOCAL_MAIL_VERSION, self))
            }

            /// Reads a body made by [`Self::encode`].
            pub fn decode(body: &[u8]) -> Result<Self, WireError> {
                let (version, mail): (u32, Self) = decode_exact(body)?;
                if version != LOCAL_MAIL_VERSION {
                    return Err(WireError::UnknownVersion(version));
                }
                Ok(mail)
            }
        }
    };
}

local_mail_codec!(ViewMail);
local_mail_codec!(DomainMail);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_answers_what_was_published() {
        let dir = DomainDirectory::new();
        let d = DomainIdentity([1; 32]);
        let a = NodeIdentity([2; 32]);
        assert!(!dir.is_member(&d, &a) && !dir.knows(&d));
        dir.publish(d, [a].into_iter().collect(), true);
        assert!(dir.is_member(&d, &a) && dir.member_here(&d));
        assert!(!dir.is_member(&d, &NodeIdentity([3; 32])));
        assert_eq!(dir.memberships(), vec![d]);
        assert_eq!(dir.entry(&d).unwrap().version, 1);
        dir.forget(&d);
        assert!(!dir.knows(&d));
    }

    #[test]
    fn local_mail_round_trips_and_refuses_other_versions() {
        let m = ViewMail::PeerAddedToView {
            domain: DomainIdentity([1; 32]),
            node: NodeIdentity([2; 32]),
        };
        assert_eq!(ViewMail::decode(&m.encode()).unwrap(), m);
        let mut bad = m.encode();
        bad[0] ^= 0x7f;
        assert!(ViewMail::decode(&bad).is_err());
        assert!(DomainMail::decode(&[]).is_err());
    }
}
