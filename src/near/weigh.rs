//! What an entry costs the near-cache's bound: the heap its allocations take, each rounded up
//! to the size class the allocator serves it from (a 600-byte buffer takes 640), with buffers
//! counted by capacity, and what a cache slot holds beside them. Weights made of lengths
//! undercounted by about a fifth: with the entries in an arena of their own, that arena held
//! 478 MB where the weights summed to 394 MB (bench/NOTES.md).

use std::mem::{size_of, size_of_val};

/// The bytes an allocation of `n` bytes takes (none for 0).
#[inline]
pub fn heap(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // SAFETY: nallocx only computes a size class (0 when `n` is past the largest)
    match unsafe { tikv_jemalloc_sys::nallocx(n, 0) } {
        0 => n,
        real => real,
    }
}

/// An `Arc<T>`'s allocation: its two counts and the value.
#[inline]
pub fn arc<T>() -> usize {
    heap(16 + size_of::<T>())
}

/// An `Arc<[T]>`'s allocation.
#[inline]
pub fn arc_slice<T>(s: &[T]) -> usize {
    heap(16 + size_of_val(s))
}

/// A boxed slice's allocation.
#[inline]
pub fn slice<T>(s: &[T]) -> usize {
    heap(size_of_val(s))
}

/// A `Vec`'s allocation (its capacity).
#[inline]
pub fn vec<T>(v: &Vec<T>) -> usize {
    heap(v.capacity() * size_of::<T>())
}

/// A `String`'s allocation (its capacity).
#[inline]
pub fn string(s: &String) -> usize {
    heap(s.capacity())
}

/// What a cache slot holds besides the value's allocations, an estimate (it lies in the
/// cache's own tables, which the allocator's count of an install does not see): its key and
/// value (an `Arc`), and the cache's bookkeeping (hash, state, its index in the table).
pub const SLOT: usize = 64;

/// The bytes each allocation made by `f` and still held when it returns took: what the
/// allocator counts for this thread (allocations made less those freed), for the tests.
#[cfg(test)]
pub fn held_by<R>(f: impl FnOnce() -> R) -> (R, usize) {
    use tikv_jemalloc_ctl::thread::{allocatedp, deallocatedp};
    let (a, d) = (allocatedp::read().unwrap(), deallocatedp::read().unwrap());
    let (a0, d0) = (a.get(), d.get());
    let r = f();
    let held = (a.get() - a0) as i64 - (d.get() - d0) as i64;
    (r, held as usize)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{near, user};
    use super::super::{NearCache, NearKey};
    use super::*;
    use crate::model::{CommentData, MessageData, UserData, VideoData};
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    /// Runs `install` twice, the cache cleared in between (the first makes the cache's own
    /// tables), and checks that the second grew the bound's count by exactly what the allocator
    /// holds for it, its slot and `besides`.
    fn weighs_what_it_holds(what: &str, besides: usize, install: impl Fn(&NearCache)) {
        let n = near(Duration::from_secs(60), 16);
        install(&n);
        n.clear();
        let ((), held) = held_by(|| install(&n));
        assert_eq!(n.size().1 as usize, held + SLOT + besides, "{what}");
    }

    fn video(id: i64) -> VideoData {
        VideoData {
            id,
            author_id: 7,
            title: "a title of some length, and \"quotes\"".into(),
            desc: "a description".into(),
            play: format!("{id}.mp4"),
            cover: format!("{id}.jpg"),
            favorite_count: 3,
            ..Default::default()
        }
    }

    #[test]
    fn every_entry_weighs_what_the_allocator_holds_for_it() {
        weighs_what_it_holds("video", 0, |n| {
            n.install_video(&video(2), n.begin());
        });
        weighs_what_it_holds("user", 0, |n| {
            n.install_user(UserData { id: 2, ..user() }, n.begin());
        });
        weighs_what_it_holds("session", 0, |n| {
            n.install_session(2, 1, vec![4, 5], n.begin());
        });
        weighs_what_it_holds("scored set", 0, |n| {
            let pairs = (0..100).map(|i| (i, 1000 - i)).collect();
            n.install_set(NearKey::Likes(2), pairs, true, n.begin());
        });
        weighs_what_it_holds("id set", 0, |n| {
            n.install_ids(NearKey::Follows(2), (0..37).collect(), n.begin());
        });
        weighs_what_it_holds("conversation", 0, |n| {
            let msgs = (0..5)
                .map(|i| MessageData {
                    id: i,
                    from: 2,
                    to: 99,
                    content: "x".repeat(10 + i as usize * 7),
                })
                .collect::<Vec<_>>();
            n.install_conv(2, 99, &msgs, n.begin());
        });
        let author = Arc::new(crate::near::UserEntry::new(user()));
        let users: HashMap<i64, _> = [(7, author.clone())].into();
        // a comment page counts its authors' JSON (shared with their entries) in full, as a
        // card does
        weighs_what_it_holds("comments", arc_slice(&author.json), |n| {
            let comments: Vec<CommentData> = (0..6)
                .map(|i| CommentData {
                    id: 200 + i,
                    user_id: 7,
                    video_id: 2,
                    content: "y".repeat(5 + i as usize * 11),
                    ..Default::default()
                })
                .collect();
            let parts = crate::near::CommentParts::render(&comments, true, 0);
            n.install_comments(2, parts, &users, n.begin());
        });
        let urls = crate::model::Urls::new("http://h".into());
        let entries: Vec<_> = (10..14)
            .map(|v| Arc::new(crate::near::VideoEntry::new(&video(v), &urls)))
            .collect();
        // a card counts its author's JSON, shared with the author's entry (made above), in
        // full: what it keeps alive once that entry is gone
        let author_json = arc_slice(&author.json);
        weighs_what_it_holds("card", author_json, |n| {
            let v = crate::near::VideoEntry::new(&video(2), &urls);
            n.install_card(&v, &author, n.begin());
        });
        weighs_what_it_holds("page", 0, |n| {
            let items: Vec<_> = entries
                .iter()
                .map(|v| (v.clone(), author.clone()))
                .collect();
            n.render_page(&[2, 11, 12, 13], &items, n.begin());
        });
        weighs_what_it_holds("user page", 0, |n| {
            n.render_user_page(&[2, 7], &[author.clone(), author.clone()], n.begin());
        });
        // the run and its four cards: each card's slot and its author's JSON, and what the run
        // counts for each card evicted from the entries (their `Arc`s, which it keeps)
        let evicted = 4 * (SLOT + arc::<crate::near::Card>() + author_json);
        weighs_what_it_holds("run of cards", evicted, |n| {
            let cards: Vec<_> = entries
                .iter()
                .map(|v| n.install_card(v, &author, n.begin()))
                .collect();
            n.keep_card_run(&[2, 11, 12, 13], &cards, n.begin());
        });
        // a viewer's bundle with its three entries: the bundle counts, besides its own
        // allocation, what its weak pointers keep of each value once dropped elsewhere
        let kept = arc::<super::super::SessionEntry>() + 2 * arc::<super::super::IdSet>();
        weighs_what_it_holds("viewer", 3 * SLOT + kept, |n| {
            let t = n.begin();
            n.install_session(2, 1, vec![4], t);
            let likes = n.install_ids(NearKey::Likes(2), (0..20).collect(), t);
            let follows = n.install_ids(NearKey::Follows(2), (0..9).collect(), t);
            n.keep_viewer(2, t, &likes, &follows);
        });
    }

    #[test]
    fn an_allocation_weighs_its_size_class() {
        assert_eq!(heap(0), 0);
        assert_eq!(heap(1), 8);
        assert_eq!(heap(600), 640);
        assert_eq!(heap(4096), 4096);
        let (v, held) = held_by(|| Vec::<u8>::with_capacity(600));
        assert_eq!(vec(&v), held);
        assert_eq!(held, 640);
        let (s, held) = held_by(|| String::from("a string of some length"));
        assert_eq!(string(&s), held);
    }
}
