//! A viewer's session and whole id lists (the videos they like, the users they follow), found
//! with one lookup instead of three.
//!
//! An authenticated list read needs all three: the token's check reads the session, the page's
//! flags read the two lists. Each is an entry of its own, and a lookup in the entries' table is
//! a few dependent cache misses (the table's slot, the entry, its counts): about a microsecond
//! each on a favorite list (bench/NOTES.md). A [`Viewer`] points at the three weakly, with the
//! ticket they were looked up after. It serves while none of the three was invalidated since
//! (their stamps, as a rendered page's), under the entries' age rule, and while each is still
//! held (an evicted list that nothing else holds is gone, and the bundle with it: the lookups
//! then go one by one and build it again).
//!
//! The thread keeps the last bundle it found, so that the flags after a token's check (the
//! same request, on the same worker thread) find it without a lookup; it is checked again
//! each time it is used, like one from the table.

use super::sets::IdSet;
use super::{NearCache, NearKey, NearVal, SessionEntry, Ticket};
use std::cell::RefCell;
use std::sync::{Arc, Weak};
use std::time::Instant;

/// A viewer's session and whole liked and following lists, as looked up after `ticket`.
#[derive(Debug)]
pub struct Viewer {
    id: i64,
    /// The near-cache it was found in ([`NearCache`]'s `serial`: the thread's last bundle may
    /// come from another app in the same process, as in the tests).
    cache: u64,
    ticket: u64,
    /// When the oldest of the three was fetched (the age rule).
    pub(super) built: Instant,
    /// The stamp buckets of the session and the two lists.
    deps: [usize; 3],
    session: Weak<SessionEntry>,
    likes: Weak<IdSet>,
    follows: Weak<IdSet>,
}

impl Viewer {
    /// The session, if still held.
    pub fn session(&self) -> Option<Arc<SessionEntry>> {
        self.session.upgrade()
    }

    /// The videos they like and the users they follow, each whole, if both are still held.
    pub fn lists(&self) -> Option<(Arc<IdSet>, Arc<IdSet>)> {
        Some((self.likes.upgrade()?, self.follows.upgrade()?))
    }

    /// Its allocation, and what each weak pointer keeps of a value dropped elsewhere (the
    /// value's `Arc` allocation: its counts and fields, not its members), for the bound.
    pub(super) fn heap(&self) -> usize {
        use super::weigh::arc;
        arc::<Viewer>() + arc::<SessionEntry>() + 2 * arc::<IdSet>()
    }
}

std::thread_local! {
    /// The last bundle this thread found.
    static LAST: RefCell<Option<Arc<Viewer>>> = const { RefCell::new(None) };
}

impl NearCache {
    /// Viewer `id`'s bundle, if held and current: the thread's last one, else the table's.
    pub fn viewer(&self, id: i64) -> Option<Arc<Viewer>> {
        if !self.enabled {
            return None;
        }
        let last = LAST.with(|l| {
            l.borrow()
                .as_ref()
                .filter(|v| v.id == id && v.cache == self.serial)
                .cloned()
        });
        if let Some(v) = last.filter(|v| self.viewer_current(v)) {
            return Some(v);
        }
        // none, another's, or out of date (the table may hold a newer one, kept since)
        let Some(NearVal::Viewer(v)) = self.entries.get(&NearKey::Viewer(id)) else {
            return None;
        };
        if !self.viewer_current(&v) {
            return None;
        }
        self.hit(true);
        LAST.with(|l| *l.borrow_mut() = Some(v.clone()));
        Some(v)
    }

    fn viewer_current(&self, v: &Viewer) -> bool {
        self.unchanged_since(v.built, v.deps.iter().copied(), v.ticket)
    }

    /// Keeps viewer `id`'s bundle: their session (looked up here) and their whole lists
    /// `likes` and `follows`, all three looked up after ticket `t` was taken. Not kept when
    /// one of them was invalidated since, the session is not held, or a list is a part.
    pub fn keep_viewer(&self, id: i64, t: Ticket, likes: &Arc<IdSet>, follows: &Arc<IdSet>) {
        let keys = [
            NearKey::Session(id),
            NearKey::Likes(id),
            NearKey::Follows(id),
        ];
        if !likes.whole || !follows.whole || !keys.iter().all(|k| self.installable(k, t)) {
            return;
        }
        let Some(NearVal::Session(session)) = self.lookup_uncounted(NearKey::Session(id)) else {
            return;
        };
        let v = Viewer {
            id,
            cache: self.serial,
            ticket: t.0,
            built: session.fetched.min(likes.fetched).min(follows.fetched),
            deps: keys.map(|k| k.bucket()),
            session: Arc::downgrade(&session),
            likes: Arc::downgrade(likes),
            follows: Arc::downgrade(follows),
        };
        self.entries
            .insert(NearKey::Viewer(id), NearVal::Viewer(Arc::new(v)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::near;
    use super::*;
    use std::time::Duration;

    /// A near-cache with entries of age bound `max_age` holding user 7's session and whole
    /// lists (likes 1 and 2, follows 3), installed after the ticket it gives.
    fn held(max_age: Duration) -> (NearCache, Ticket, Arc<IdSet>, Arc<IdSet>) {
        let n = near(max_age, 100);
        let t = n.begin();
        n.install_session(7, 1, vec![], t);
        let likes = n.install_ids(NearKey::Likes(7), vec![2, 1], t);
        let follows = n.install_ids(NearKey::Follows(7), vec![3], t);
        (n, t, likes, follows)
    }

    /// [`held`], and the bundle kept.
    fn kept() -> (NearCache, Arc<IdSet>, Arc<IdSet>) {
        let (n, t, likes, follows) = held(Duration::from_secs(60));
        n.keep_viewer(7, t, &likes, &follows);
        (n, likes, follows)
    }

    /// Drops the thread's last bundle, so that the next lookup goes to the table.
    fn forget() {
        LAST.with(|l| *l.borrow_mut() = None);
    }

    #[test]
    fn a_kept_bundle_gives_the_session_and_both_lists() {
        let (n, likes, follows) = kept();
        for _ in 0..2 {
            // from the table, then from the thread's last
            let v = n.viewer(7).expect("kept");
            assert!(v.session().unwrap().allows(0, 1));
            let (l, f) = v.lists().unwrap();
            assert!(Arc::ptr_eq(&l, &likes) && Arc::ptr_eq(&f, &follows));
            assert_eq!(l.contains_each(&[1, 3]), vec![true, false]);
        }
        assert!(n.viewer(8).is_none(), "another viewer's");
    }

    #[test]
    fn an_invalidation_of_any_of_the_three_ends_the_bundle() {
        for key in [NearKey::Session(7), NearKey::Likes(7), NearKey::Follows(7)] {
            let (n, _likes, _follows) = kept();
            assert!(n.viewer(7).is_some());
            n.invalidate(key);
            // the thread's last (just found) and the table's alike
            assert!(
                n.viewer(7).is_none(),
                "{key:?}: the thread's last still served"
            );
            forget();
            assert!(n.viewer(7).is_none(), "{key:?}: the table's still served");
        }
        let (n, _likes, _follows) = kept();
        n.clear();
        assert!(n.viewer(7).is_none(), "served after a clear");
    }

    #[test]
    fn a_bundle_is_not_kept_across_an_invalidation_or_without_its_parts() {
        let (n, t, likes, follows) = held(Duration::from_secs(60));
        // a like made after the lists were looked up
        n.invalidate(NearKey::Likes(7));
        n.keep_viewer(7, t, &likes, &follows);
        forget();
        assert!(n.viewer(7).is_none(), "kept across an invalidation");
        // a list held in part (for pages) does not answer for membership
        let t = n.begin();
        let part = n.install_set(NearKey::Likes(7), vec![(1, 10)], false, t);
        n.keep_viewer(7, t, &part, &follows);
        assert!(n.viewer(7).is_none(), "kept with a part of a list");
        // nor without the session held
        n.invalidate(NearKey::Session(7));
        let t = n.begin();
        n.keep_viewer(7, t, &likes, &follows);
        assert!(n.viewer(7).is_none(), "kept without a session");
    }

    #[test]
    fn an_out_of_date_last_bundle_gives_way_to_a_newer_one() {
        let (n, _likes, _follows) = kept();
        assert!(n.viewer(7).is_some(), "the thread's last is now this one");
        // a like, and the lists looked up again and kept anew after it
        n.invalidate(NearKey::Likes(7));
        let t = n.begin();
        let likes = n.install_ids(NearKey::Likes(7), vec![1, 2, 5], t);
        let follows = n.set(NearKey::Follows(7)).unwrap();
        n.keep_viewer(7, t, &likes, &follows);
        let v = n.viewer(7).expect("the newer bundle, from the table");
        assert!(v.lists().unwrap().0.contains(5));
    }

    #[test]
    fn a_list_gone_from_everywhere_ends_the_bundle() {
        let (n, likes, follows) = kept();
        // evicted from the table (not invalidated) and no longer held anywhere else
        n.entries.remove(&NearKey::Likes(7));
        drop(likes);
        forget();
        let v = n.viewer(7).expect("still current");
        assert!(v.lists().is_none(), "a dropped list upgraded");
        assert!(v.session().is_some());
        drop(follows);
    }

    #[test]
    fn a_bundle_keeps_to_the_age_rule() {
        // no invalidation subscription here: entries older than max_age are not served
        let (n, t, likes, follows) = held(Duration::from_millis(30));
        n.keep_viewer(7, t, &likes, &follows);
        forget();
        assert!(n.viewer(7).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(n.viewer(7).is_none(), "served past the age bound");
    }
}
