//! A user's id lists held in process: the videos they published or like, whom they follow and
//! who follows them. One entry serves two uses, held in the shape the first use fetched:
//! - a viewer's `is_favorite`/`is_follow` flags need only membership of the whole list: the
//!   ids alone, ascending (8 bytes a member: at 100k users of 100 likes each these are what
//!   a logged-in feed keeps looking up, so their size decides how many viewers fit);
//! - the pages of the publish, favorite, follow, follower and friend lists need each member's
//!   score (publish, like or follow id: time ordered), newest first. A list longer than
//!   [`SET_MAX`] is held as its newest [`SET_MAX`] members, serving the pages within them.
//!   A scored list also answers membership when whole.

use super::{NearCache, NearKey, NearVal, Ticket};
use std::sync::Arc;
use std::time::Instant;

/// The most members of a list fetched for its pages; a longer one is held as its newest part.
/// Below 2^16, so that a scored list's order is held as `u16` positions.
pub const SET_MAX: usize = 10_000;

/// What a list holds.
#[derive(Debug)]
enum Members {
    /// The member ids, ascending (membership only).
    Ids(Box<[i64]>),
    /// (member, score) by member, and their positions by score, highest first.
    Scored {
        by_id: Box<[(i64, i64)]>,
        ranked: Box<[u16]>,
    },
}

/// A user's list: its ids alone, or with their scores (whole or the newest part).
#[derive(Debug)]
pub struct IdSet {
    members: Members,
    /// Whether every member of the list is held (else its newest part).
    pub whole: bool,
    pub(super) fetched: Instant,
}

impl IdSet {
    /// The whole list's member ids, in any order (membership only).
    fn ids(mut ids: Vec<i64>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        Self {
            members: Members::Ids(ids.into()),
            whole: true,
            fetched: Instant::now(),
        }
    }

    /// (member, score) pairs, in any order, at most [`SET_MAX`] of them (the newest kept).
    fn scored(mut pairs: Vec<(i64, i64)>, whole: bool) -> Self {
        pairs.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        let whole = whole && pairs.len() <= SET_MAX;
        pairs.truncate(SET_MAX);
        let mut order: Vec<(i64, u16)> = pairs
            .iter()
            .enumerate()
            .map(|(rank, (m, _))| (*m, rank as u16))
            .collect();
        order.sort_unstable();
        // by member, each remembering its rank; then the ranks' positions in by_id
        let by_id: Box<[(i64, i64)]> = order
            .iter()
            .map(|(_, rank)| pairs[*rank as usize])
            .collect();
        let mut ranked = vec![0u16; order.len()];
        for (pos, (_, rank)) in order.iter().enumerate() {
            ranked[*rank as usize] = pos as u16;
        }
        Self {
            members: Members::Scored {
                by_id,
                ranked: ranked.into(),
            },
            whole,
            fetched: Instant::now(),
        }
    }

    pub fn len(&self) -> usize {
        match &self.members {
            Members::Ids(ids) => ids.len(),
            Members::Scored { by_id, .. } => by_id.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it holds scores (serves pages), not only ids.
    pub fn is_scored(&self) -> bool {
        matches!(self.members, Members::Scored { .. })
    }

    /// The score of member `id`, if held with scores.
    pub fn score(&self, id: i64) -> Option<i64> {
        match &self.members {
            Members::Ids(_) => None,
            Members::Scored { by_id, .. } => by_id
                .binary_search_by_key(&id, |(m, _)| *m)
                .ok()
                .map(|i| by_id[i].1),
        }
    }

    /// Whether `id` is a member (meaningful for a whole list only).
    pub fn contains(&self, id: i64) -> bool {
        match &self.members {
            Members::Ids(ids) => ids.binary_search(&id).is_ok(),
            Members::Scored { by_id, .. } => by_id.binary_search_by_key(&id, |(m, _)| *m).is_ok(),
        }
    }

    /// Whether each of `ids` is a member, in order (as [`Self::contains`] answers each).
    pub fn contains_each(&self, ids: &[i64]) -> Vec<bool> {
        match &self.members {
            Members::Ids(m) => search_each(m, ids, |m| *m),
            Members::Scored { by_id, .. } => search_each(by_id, ids, |(m, _)| *m),
        }
    }

    /// The member at rank `i` (0: highest score) with its score.
    fn at(by_id: &[(i64, i64)], ranked: &[u16], i: usize) -> (i64, i64) {
        by_id[ranked[i] as usize]
    }

    /// Up to `limit` members with scores below `cursor` (None: from the newest), highest
    /// first; None when the page reaches past the part held, or scores are not held.
    pub fn page(&self, cursor: Option<i64>, limit: usize) -> Option<Vec<(i64, i64)>> {
        let Members::Scored { by_id, ranked } = &self.members else {
            return None;
        };
        let start = match cursor {
            None => 0,
            Some(c) => ranked.partition_point(|p| by_id[*p as usize].1 >= c),
        };
        let end = start.saturating_add(limit).min(ranked.len());
        if end - start < limit && !self.whole {
            return None;
        }
        Some((start..end).map(|i| Self::at(by_id, ranked, i)).collect())
    }

    /// Every member held with its score, highest score first (nothing when only ids are held).
    pub fn ranked(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        let (by_id, ranked): (&[(i64, i64)], &[u16]) = match &self.members {
            Members::Ids(_) => (&[], &[]),
            Members::Scored { by_id, ranked } => (by_id, ranked),
        };
        (0..ranked.len()).map(move |i| Self::at(by_id, ranked, i))
    }

    /// The heap its members take (for the near-cache's bound).
    pub(super) fn heap(&self) -> usize {
        use super::weigh::slice;
        match &self.members {
            Members::Ids(ids) => slice(ids),
            Members::Scored { by_id, ranked } => slice(by_id) + slice(ranked),
        }
    }
}

/// How many searches [`search_each`] runs in step.
const LANES: usize = 8;

/// The largest list [`search_each`] asks the CPU for whole before its searches (2,048 scored
/// members): past it, the searches touch a small part of the list.
const PREFETCH_MAX: usize = 32 << 10;

/// Whether each of `ids` is among `sorted` (ascending by `key`): branchless binary searches,
/// [`LANES`] at a time, each step's loads independent of one another.
fn search_each<T>(sorted: &[T], ids: &[i64], key: impl Fn(&T) -> i64) -> Vec<bool> {
    let mut out = Vec::with_capacity(ids.len());
    if sorted.is_empty() {
        out.resize(ids.len(), false);
        return out;
    }
    let bytes = std::mem::size_of_val(sorted);
    if bytes <= PREFETCH_MAX && ids.len() >= LANES {
        super::pages::prefetch_range(sorted.as_ptr().cast(), bytes);
    }
    for chunk in ids.chunks(LANES) {
        // each lane's answer lies in [base, base + len): the last member not above its id
        let mut base = [0usize; LANES];
        let mut len = sorted.len();
        while len > 1 {
            let half = len / 2;
            for (b, id) in base.iter_mut().zip(chunk) {
                let mid = *b + half;
                *b = if key(&sorted[mid]) <= *id { mid } else { *b };
            }
            len -= half;
        }
        out.extend(
            base.iter()
                .zip(chunk)
                .map(|(b, id)| key(&sorted[*b]) == *id),
        );
    }
    out
}

impl NearCache {
    /// A user's list (`NearKey::Works`, `Likes`, `Follows` or `Followers`), if held and fresh.
    pub fn set(&self, key: NearKey) -> Option<Arc<IdSet>> {
        match self.lookup(key) {
            Some(NearVal::Set(e)) => Some(e),
            _ => None,
        }
    }

    /// Wraps a fetched list of (member, score), in any order, whole or its newest part
    /// (truncated to [`SET_MAX`]), installing it unless an invalidation came after `t`.
    pub fn install_set(
        &self,
        key: NearKey,
        members: Vec<(i64, i64)>,
        whole: bool,
        t: Ticket,
    ) -> Arc<IdSet> {
        self.install_list(key, IdSet::scored(members, whole), t)
    }

    /// Wraps a whole list's member ids, fetched without scores (for membership), installing
    /// it unless an invalidation came after `t`.
    pub fn install_ids(&self, key: NearKey, ids: Vec<i64>, t: Ticket) -> Arc<IdSet> {
        self.install_list(key, IdSet::ids(ids), t)
    }

    fn install_list(&self, key: NearKey, set: IdSet, t: Ticket) -> Arc<IdSet> {
        let e = Arc::new(set);
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
        IdSet::scored(vec![(3, 30), (1, 10), (5, 50), (2, 20), (4, 40)], whole)
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
        assert_eq!(
            s.ranked().collect::<Vec<_>>(),
            vec![(5, 50), (4, 40), (3, 30), (2, 20), (1, 10)]
        );
    }

    #[test]
    fn scores_need_not_follow_member_order() {
        // ids and scores in opposite orders, with a tie broken by the higher id
        let s = IdSet::scored(vec![(10, 1), (20, 3), (30, 2), (40, 3)], true);
        assert_eq!(
            s.ranked().collect::<Vec<_>>(),
            vec![(40, 3), (20, 3), (30, 2), (10, 1)]
        );
        assert_eq!(s.page(Some(3), 10), Some(vec![(30, 2), (10, 1)]));
        assert_eq!(s.score(30), Some(2));
        assert_eq!(
            s.heap(),
            4 * 16 + 8,
            "(member, score) pairs and their ranks"
        );
    }

    #[test]
    fn a_partial_list_serves_only_pages_within_it() {
        let s = set(false);
        assert_eq!(s.page(None, 5), Some(s.ranked().collect()));
        assert_eq!(s.page(Some(30), 2), Some(vec![(2, 20), (1, 10)]));
        assert_eq!(
            s.page(Some(30), 3),
            None,
            "the rest lies past the part held"
        );
        assert_eq!(s.page(None, 6), None);
    }

    #[test]
    fn ids_only_answer_membership_not_pages() {
        let s = IdSet::ids(vec![7, 3, 9, 3]);
        assert!(s.whole && !s.is_scored());
        assert!(s.contains(3) && s.contains(9) && !s.contains(4));
        assert_eq!(s.len(), 3);
        assert_eq!(s.heap(), 32, "3 ids, 24 bytes, in a 32-byte class");
        assert_eq!(s.page(None, 2), None);
        assert_eq!(s.score(3), None);
        assert_eq!(s.ranked().count(), 0);
    }

    #[test]
    fn a_list_longer_than_set_max_keeps_its_newest_part() {
        let pairs: Vec<(i64, i64)> = (1..=SET_MAX as i64 + 5).map(|m| (m, m * 2)).collect();
        let s = IdSet::scored(pairs, true);
        assert!(!s.whole);
        assert_eq!(s.len(), SET_MAX);
        assert_eq!(
            s.page(None, 1),
            Some(vec![(SET_MAX as i64 + 5, (SET_MAX as i64 + 5) * 2)])
        );
        assert!(!s.contains(1) && s.contains(6));
    }

    #[test]
    fn contains_each_answers_as_contains_does() {
        // every list length around the lanes and powers of two, asked about members, ids
        // between them, below the first and past the last, in no order
        for n in [0usize, 1, 2, 3, 7, 8, 9, 15, 16, 17, 100, 129] {
            let members: Vec<i64> = (0..n as i64).map(|i| 10 * i + 5).collect();
            let mut asked: Vec<i64> = (-1..=10 * n as i64 + 6).rev().collect();
            let third = asked.len() / 3;
            asked.rotate_left(third);
            let ids = IdSet::ids(members.clone());
            let scored = IdSet::scored(members.iter().map(|m| (*m, -*m)).collect(), true);
            for set in [&ids, &scored] {
                let each = set.contains_each(&asked);
                assert_eq!(each.len(), asked.len());
                for (id, found) in asked.iter().zip(&each) {
                    assert_eq!(*found, set.contains(*id), "n {n}, id {id}");
                    assert_eq!(*found, members.contains(id), "n {n}, id {id}");
                }
            }
        }
    }
}
