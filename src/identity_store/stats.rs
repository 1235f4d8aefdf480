//! Counters of the Network Identity Store: adverts refused or expired, its own adverts signed,
//! lookups of engines with other nodes and their outcomes, and the lookups other nodes made of
//! it. Relaxed atomics written by the store's thread and read by anyone (status view, tests).

crate::runtime::stats::counter_struct! {
    /// The identity store's counters (see the module doc).
    pub struct IdentityStats {
        /// Adverts refused: bad signature or key, or already expired.
        adverts_refused,
        /// Adverts forgotten because their expiry passed.
        adverts_expired,
        /// Engine adverts refused because their node already has `max_engines_per_node` records.
        engines_over_node_limit,
        /// Adverts not stored because the store held `identity_records` records.
        adverts_store_full,
        /// Engine records forgotten because their node withdrew them.
        engines_withdrawn,
        /// Node adverts this node signed for itself (at start, on re-signing, on new addresses).
        node_adverts_signed,
        /// Engine adverts this node signed for its reachable engines.
        engine_adverts_signed,
        /// Lookups of unknown engines sent to other nodes.
        lookups_started,
        /// Lookups answered with a verified advert (by a peer, or by an advert learned meanwhile).
        lookups_found,
        /// Lookups that ended without an answer: every peer asked said unknown, or none could be
        /// asked.
        lookups_unknown,
        /// Lookups that ended at their timeout.
        lookups_timed_out,
        /// Lookups answered "unknown" at once from the negative cache.
        lookups_negative_cached,
        /// Lookups answered "unknown" at once because `max_outstanding` lookups were running.
        lookups_refused_full,
        /// Answers from peers refused: a forged, expired or mismatched advert.
        answers_refused,
        /// Answers from peers to lookups that had ended or were never sent to them (ignored).
        answers_ignored,
        /// Lookups other nodes made of this store.
        peer_queries,
        /// Of those, answered with an advert.
        peer_queries_known,
        /// Batches of changed records that could not be written to the store's file.
        file_write_failures,
    }
}
