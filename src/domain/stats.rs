//! Counters of the Domain engine, and the read-only probe the simulator and status views read.
//!
//! Every refused or dropped input is counted here with its reason; messages sent are counted
//! by kind. Relaxed atomics written by the engine's thread and read by anyone.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::identity::DomainIdentity;

crate::runtime::stats::counter_struct! {
    /// The Domain engine's counters (see the module doc).
    pub struct DomainStats {
        /// Operations received from other nodes (in `Ops` messages and join responses).
        ops_received,
        /// Of those and of local ones, newly stored.
        ops_new,
        /// Received again (already stored): not forwarded.
        ops_duplicate,
        /// Refused: the author's signature does not verify.
        ops_bad_signature,
        /// Refused: for another domain than the message names.
        ops_wrong_domain,
        /// Refused: `seq` or `lamport` 0, or at least 2^62 (`MAX_COUNTER`).
        ops_malformed,
        /// Held: the author is not a known member yet (waits for its add).
        ops_pending,
        /// Refused: the author is not a known member and the pending set is full.
        ops_unknown_author,
        /// Refused: the author was expelled and the operation is after its cutoff.
        ops_after_expulsion,
        /// Refused: the domain's store holds `max_ops` operations.
        ops_store_full,
        /// Refused: the author holds `max_ops_per_author` operations.
        ops_author_full,
        /// Refused: an equivocating author's second operation with the same `seq` (the one with
        /// the lower id is kept).
        ops_equivocation,
        /// Operations this node signed.
        ops_created,
        /// Full replays of a domain's log (at most one per flush and domain).
        replays,
        /// `Ops` messages sent.
        sent_ops,
        /// `Digest` messages sent.
        sent_digest,
        /// `Vector` messages sent.
        sent_vector,
        /// `JoinRequest` messages sent.
        sent_join_request,
        /// `JoinResponse` messages sent.
        sent_join_response,
        /// `ExtRequest` messages sent.
        sent_ext_request,
        /// `ExtResponse` messages sent.
        sent_ext_response,
        /// Remote bodies that do not decode.
        malformed,
        /// Remote messages not from a remote node, or local mail not from this node.
        wrong_origin,
        /// Messages about a domain this node does not serve.
        unknown_domain,
        /// Sync messages (`Ops`, `Digest`, `Vector`) from a node that is not a member.
        sync_from_non_member,
        /// `Digest` or `Vector` messages over a peer's rate (`sync_per_peer_s`): ignored.
        sync_rate_limited,
        /// `Ops` messages over a peer's rate (`ops_per_peer_s`): ignored.
        ops_rate_limited,
        /// `JoinRequest` messages over a peer's rate (`requests_per_peer_s`): ignored.
        join_rate_limited,
        /// `ExtRequest` messages over a peer's rate (`requests_per_peer_s`): ignored.
        ext_rate_limited,
        /// Join requests from a node that is a member already: answered with its existing add
        /// (nothing new signed).
        join_already_member,
        /// Join refusals ignored: from a contact asked earlier (the join had moved on).
        join_refusal_stale,
        /// Join refusals that moved the join on to the next contact.
        join_refusal_next_contact,
        /// Pending operations (waiting for their author's add) evicted, oldest first, to make
        /// room for newer ones.
        ops_pending_evicted,
        /// Contacts no longer trusted for sync (this node became a member, or the contact is no
        /// longer one).
        contacts_dropped,
        /// Operations this node signed that its own log refused (the reason is logged).
        own_op_refused,
        /// Leaves refused locally (not a member, an introducer, or the log refused the remove).
        leave_failed,
        /// Expulsions refused locally (not an introducer, an introducer named, or the log
        /// refused the remove).
        expel_failed,
        /// `PeerAddedToView` ignored: not a member here, this node itself, or the view full
        /// (`max_view`).
        view_add_dropped,
        /// View mail that is not for the Domain engine (`Members`, `Watch`, ...): ignored.
        view_mail_ignored,
        /// Digests that matched ours.
        digests_matched,
        /// Digests that did not (answered with our vector).
        digests_mismatched,
        /// Join requests received.
        join_requests,
        /// Joins this node approved.
        joins_approved,
        /// Join requests refused: bad signature, or not signed by the node that sent it.
        join_bad_signature,
        /// Join requests refused: too old or from the future (`join_window`).
        join_stale,
        /// Join requests refused: already seen (the replay cache).
        join_replayed,
        /// Joins refused: wrong or missing PSK proof.
        join_wrong_key,
        /// Joins refused: not on the allow-list.
        join_not_on_list,
        /// Joins refused: the domain is full.
        join_domain_full,
        /// Joins refused: this node is not a member that approves joins.
        join_not_approver,
        /// Joins refused: the requestor was expelled.
        join_expelled,
        /// Join responses refused: bad signature, or not signed by the node that sent it.
        join_response_forged,
        /// Join responses ignored: no such request outstanding (replayed or unsolicited).
        join_response_unsolicited,
        /// Join responses whose accepted add operation is not a valid add of this node.
        join_response_bad_op,
        /// Joins this node completed.
        joins_completed,
        /// Join requests re-sent to another contact after no answer.
        join_retries,
        /// Joins that ended without an answer after `join_tries`.
        join_timeouts,
        /// External requests received.
        ext_requests,
        /// Requests that reached this member through domain routing (`RoutingMail::Arrived`),
        /// answered like external requests.
        routed_requests,
        /// External requests refused: this node is not a member that accepts them.
        ext_refused,
        /// External requests answered for a protocol this engine does not serve.
        ext_unknown_protocol,
        /// External responses ignored: no such request outstanding.
        ext_response_unsolicited,
        /// External requests that got no answer in time.
        ext_timeouts,
        /// External requests refused locally: `max_outstanding_ext` outstanding.
        ext_outstanding_full,
        /// Adverts refused (bad signature, another domain, over the limits).
        adverts_refused,
        /// Domains not served: `max_domains` reached.
        domains_full,
        /// Local mail that does not decode.
        local_malformed,
    }
}

/// What the probe says of one domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainProbeEntry {
    /// How many members this node's replica holds.
    pub members: usize,
    /// SHA-256 of the sorted member identities (equal replicas have equal digests).
    pub member_digest: [u8; 32],
    /// Whether this node is a member.
    pub member_here: bool,
    /// How many operations are stored.
    pub ops: usize,
    /// XOR of the stored operation ids.
    pub op_digest: [u8; 32],
    /// How many members are in this node's active view (from the Topology's events).
    pub view: usize,
}

/// A read-only view of a Domain engine, shared with the simulator and status views (cloning
/// shares it). Updated by the engine at the end of each flush.
#[derive(Clone, Debug, Default)]
pub struct DomainProbe {
    pub(super) domains: Arc<RwLock<BTreeMap<DomainIdentity, DomainProbeEntry>>>,
    pub(super) stats: Arc<DomainStats>,
}

impl DomainProbe {
    /// What is known of `domain`, if this engine serves it.
    pub fn domain(&self, domain: &DomainIdentity) -> Option<DomainProbeEntry> {
        self.domains.read().get(domain).cloned()
    }

    /// Every domain served, in identity order.
    pub fn domains(&self) -> Vec<(DomainIdentity, DomainProbeEntry)> {
        self.domains
            .read()
            .iter()
            .map(|(d, e)| (*d, e.clone()))
            .collect()
    }

    /// The engine's counters (including messages sent by kind).
    pub fn stats(&self) -> &DomainStats {
        &self.stats
    }
}
