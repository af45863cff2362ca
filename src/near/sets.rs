//! A user's id lists held in process: the videos they published or like, whom they follow and
//! who follows them, with each member's score (publish, like or follow id: time ordered).
//! One entry serves both uses: a viewer's `is_favorite`/`is_follow` flags (membership, which
//! needs the whole list) and the pages of the publish, favorite, follow, follower and friend
//! lists (newest first, which need only the newest part). A list longer than [`SET_MAX`] is
//! held as its newest [`SET_MAX`] members, serving the pages that lie within them.

use super::{NearCache, NearKey, NearVal, Ticket};
use std::sync::Arc;
use std::time::Instant;

/// The most members of a list fetched for its pages; a longer one is held as its newest part.
pub const SET_MAX: usize = 10_000;

/// Ids with their scores, fetched whole or as the newest part of the list.
#[derive(Debug)]
pub struct IdSet {
    /// (member, score), highest score first.
    ranked: Vec<(i64, i64)>,
    /// (member, score), by member.
    by_id: Vec<(i64, i64)>,
    /// Whether `ranked` is the whole list (else its newest part).
    pub whole: bool,
    pub(super) fetched: Instant,
}

impl IdSet {
    fn new(mut ranked: Vec<(i64, i64)>, whole: bool) -> Self {
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        let mut by_id = ranked.clone();
        by_id.sort_unstable();
        Self {
            ranked,
            by_id,
            whole,
            fetched: Instant::now(),
        }
    }

    pub fn len(&self) -> usize {
        self.ranked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranked.is_empty()
    }

    /// The score of member `id`, if held.
    pub fn score(&self, id: i64) -> Option<i64> {
        self.by_id
            .binary_search_by_key(&id, |(m, _)| *m)
            .ok()
            .map(|i| self.by_id[i].1)
    }

    /// Whether `id` is a member (meaningful for a whole list only).
    pub fn contains(&self, id: i64) -> bool {
        self.score(id).is_some()
    }

    /// Up to `limit` members with scores below `cursor` (None: from the newest), highest
    /// first; None when the page reaches past the part held.
    pub fn page(&self, cursor: Option<i64>, limit: usize) -> Option<Vec<(i64, i64)>> {
        let start = match cursor {
            None => 0,
            Some(c) => self.ranked.partition_point(|(_, s)| *s >= c),
        };
        let end = start.saturating_add(limit).min(self.ranked.len());
        if end - start < limit && !self.whole {
            return None;
        }
        Some(self.ranked[start..end].to_vec())
    }

    /// Every member held with its score, highest score first.
    pub fn ranked(&self) -> &[(i64, i64)] {
        &self.ranked
    }

    /// The bytes it holds (for the near-cache's bound).
    pub(super) fn weight(&self) -> usize {
        self.ranked.len() * 32 + 96
    }
}

impl NearCache {
    /// A user's list (`NearKey::Works`, `Likes`, `Follows` or `Followers`), if held and fresh.
    pub fn set(&self, key: NearKey) -> Option<Arc<IdSet>> {
        match self.lookup(key) {
            Some(NearVal::Set(e)) => Some(e),
            _ => None,
        }
    }

    /// Wraps a fetched list of (member, score), in any order, whole or its newest part,
    /// installing it unless an invalidation came after `t`.
    pub fn install_set(
        &self,
        key: NearKey,
        members: Vec<(i64, i64)>,
        whole: bool,
        t: Ticket,
    ) -> Arc<IdSet> {
        let e = Arc::new(IdSet::new(members, whole));
        if self.installable(&key, t) {
            self.entries.insert(key, NearVal::Set(e.clone()));
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(whole: bool) -> IdSet {
        // members 1..=5, scored 10 * member, in no order
        IdSet::new(vec![(3, 30), (1, 10), (5, 50), (2, 20), (4, 40)], whole)
    }

    #[test]
    fn pages_newest_first_below_the_cursor() {
        let s = set(true);
        assert_eq!(s.page(None, 2), Some(vec![(5, 50), (4, 40)]));
        assert_eq!(s.page(Some(40), 2), Some(vec![(3, 30), (2, 20)]));
        assert_eq!(s.page(Some(20), 5), Some(vec![(1, 10)]));
        assert_eq!(s.page(Some(10), 5), Some(vec![]));
        assert!(s.contains(4) && !s.contains(6));
        assert_eq!(s.score(2), Some(20));
    }

    #[test]
    fn a_partial_list_serves_only_pages_within_it() {
        let s = set(false);
        assert_eq!(s.page(None, 5), Some(s.ranked().to_vec()));
        assert_eq!(s.page(Some(30), 2), Some(vec![(2, 20), (1, 10)]));
        assert_eq!(
            s.page(Some(30), 3),
            None,
            "the rest lies past the part held"
        );
        assert_eq!(s.page(None, 6), None);
    }
}
