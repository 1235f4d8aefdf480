//! The [`TopicParents`] board: PubSub publishes, for each topic, the parents of its routes (the
//! neighbours one hop closer to a publisher), so the Storage engine can send `BlockSearchTopic`
//! up the topic's tree (docs/storage.md).
//!
//! The board is written only here, and kept equal to the routes: every change of a topic's
//! routes ends in [`PubSub::sync_upstream`] (a new or shorter path, a redundant parent, a
//! withdrawal, parents pruned from a domain-scoped topic), in [`PubSub::adopt_advert`] (a
//! fresher advert drops the routes) or in the upkeep that forgets withdrawn topics, and each of
//! those posts the topic's parents again. Without a board (the default) nothing is posted.
//!
//! Memory: the board holds one entry per topic with a route (at most
//! [`PubSubLimits::max_topics`]), 32 bytes per distinct parent.

use super::*;
use crate::mail::pubsub::TopicParents;

impl PubSub {
    /// This engine, keeping `board` equal to each topic's route parents (the node's board,
    /// shared with its Storage engine).
    pub fn with_topic_parents(mut self, board: TopicParents) -> PubSub {
        self.parents_board = Some(board);
        for topic in self.topics.keys().copied().collect::<Vec<_>>() {
            self.post_parents(topic);
        }
        self
    }

    /// The parents of `topic`'s routes, each once, those of the routes nearest a publisher
    /// first (empty when the topic is unknown, has no route, or only this node publishes it).
    pub(super) fn route_parents(&self, topic: &TopicIdentity) -> Vec<NodeIdentity> {
        let Some(t) = self.topics.get(topic) else {
            return Vec::new();
        };
        let mut by_distance: Vec<(u8, NodeIdentity)> = t
            .routes
            .values()
            .flat_map(|r| r.parents.iter().map(move |p| (r.distance, *p)))
            .collect();
        by_distance.sort();
        let mut seen = BTreeSet::new();
        by_distance
            .into_iter()
            .filter(|(_, p)| seen.insert(*p))
            .map(|(_, p)| p)
            .collect()
    }

    /// Posts `topic`'s route parents on the board, when there is one and they changed.
    pub(super) fn post_parents(&self, topic: TopicIdentity) {
        let Some(board) = &self.parents_board else {
            return;
        };
        let parents = self.route_parents(&topic);
        if board.parents(&topic) != parents {
            board.set(topic, parents);
        }
    }
}
