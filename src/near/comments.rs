//! Each video's newest comments, held with their `comment_list` JSON rendered: the comment
//! objects with every `is_follow` false and where each flag sits, so that a comment list (up to
//! a thousand comments on a hot video) is written by copying slices with the viewer's flags set
//! in place, instead of a lookup and a render per comment (bench/NOTES.md).
//!
//! Comments never change: a new or deleted one changes the video's comment zset, whose
//! invalidation drops the page. Their authors do (counters), so the rendering is current while
//! none of the authors was invalidated since it was made (their stamps, as `pages.rs`); when one
//! was, the same comments are rendered again from fresh author entries.

use super::render::{bool_json, write_user_at, UserEntry, FALSE};
use super::{NearCache, NearKey, NearVal, Ticket};
use crate::model::{month_day, CommentData};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The newest comments of a video, newest first: up to the number fetched, and all of them
/// when `whole` (the video had no more), with their rendering.
#[derive(Debug)]
pub struct CommentPage {
    pub comments: Arc<[CommentData]>,
    pub whole: bool,
    /// When the comments were read from Redis (kept when they are rendered again).
    pub(super) fetched: Instant,
    /// The comment objects one after another, every `is_follow` false.
    json: Box<[u8]>,
    /// Per comment: where its object starts and ends in `json` (equal: its author is unknown,
    /// the comment is left out), where its `is_follow` value starts, and its author's index in
    /// `authors`.
    spans: Box<[Span]>,
    /// The comments' distinct authors, for the viewer's flags.
    authors: Box<[i64]>,
    /// The authors' stamp buckets and the ticket the rendering was made under.
    deps: Box<[usize]>,
    ticket: u64,
    built: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    follow: u32,
    end: u32,
    author: u32,
}

impl CommentPage {
    /// How many of the first `count` comments this page holds: None if it holds fewer and
    /// not every comment of the video.
    pub fn first(&self, count: usize) -> Option<usize> {
        if self.comments.len() >= count {
            Some(count)
        } else if self.whole {
            Some(self.comments.len())
        } else {
            None
        }
    }

    /// The distinct authors of the first `n` comments' rendering, in the order
    /// [`CommentPage::write`] wants their `is_follow` flags (a prefix of the page's authors).
    pub fn authors(&self, n: usize) -> &[i64] {
        let used = self.spans[..n]
            .iter()
            .filter(|s| s.start < s.end)
            .map(|s| s.author as usize + 1)
            .max()
            .unwrap_or(0);
        &self.authors[..used]
    }

    /// Appends the first `n` comments as a JSON array as a viewer sees them: `follows[i]`
    /// says whether they follow `authors(n)[i]` (missing: false).
    pub fn write(&self, buf: &mut Vec<u8>, n: usize, follows: &[bool]) {
        let spans = &self.spans[..n];
        let end = spans.last().map_or(0, |s| s.end as usize);
        buf.reserve(end + n + 2);
        buf.push(b'[');
        let open = buf.len();
        for s in spans.iter().filter(|s| s.start < s.end) {
            if buf.len() > open {
                buf.push(b',');
            }
            let (start, follow, end) = (s.start as usize, s.follow as usize, s.end as usize);
            buf.extend_from_slice(&self.json[start..follow]);
            let f = follows.get(s.author as usize).copied().unwrap_or(false);
            buf.extend_from_slice(bool_json(f));
            buf.extend_from_slice(&self.json[follow + FALSE..end]);
        }
        buf.push(b']');
    }

    /// Bytes held, for the near-cache's bound.
    pub(super) fn heap(&self) -> usize {
        use super::weigh::{arc_slice, slice, string};
        arc_slice(&self.comments)
            + self
                .comments
                .iter()
                .map(|c| string(&c.content))
                .sum::<usize>()
            + slice(&self.json)
            + slice(&self.spans)
            + slice(&self.authors)
            + slice(&self.deps)
    }

    /// Renders `comments` by `users` (their authors; a comment whose author is missing is left
    /// out), dates at `offset_minutes` from UTC, under ticket `t`.
    fn render(
        comments: Arc<[CommentData]>,
        whole: bool,
        fetched: Instant,
        users: &HashMap<i64, Arc<UserEntry>>,
        offset_minutes: i32,
        t: Ticket,
    ) -> Self {
        let size: usize = comments
            .iter()
            .map(|c| users.get(&c.user_id).map_or(0, |u| u.json_len() + 64) + c.content.len() + 64)
            .sum();
        let mut json = Vec::with_capacity(size);
        let mut spans = Vec::with_capacity(comments.len());
        let mut authors: Vec<i64> = Vec::new();
        let mut index: HashMap<i64, u32> = HashMap::new();
        for c in comments.iter() {
            let start = json.len() as u32;
            let Some(u) = users.get(&c.user_id) else {
                tracing::warn!(
                    comment = c.id,
                    author = c.user_id,
                    "comment without an author record; skipped"
                );
                spans.push(Span {
                    start,
                    follow: start,
                    end: start,
                    author: 0,
                });
                continue;
            };
            let author = *index.entry(c.user_id).or_insert_with(|| {
                authors.push(c.user_id);
                authors.len() as u32 - 1
            });
            let follow = write_comment(&mut json, c, u, false, offset_minutes) as u32;
            spans.push(Span {
                start,
                follow,
                end: json.len() as u32,
                author,
            });
        }
        let mut deps: Vec<usize> = authors.iter().map(|a| NearKey::User(*a).bucket()).collect();
        deps.sort_unstable();
        deps.dedup();
        CommentPage {
            comments,
            whole,
            fetched,
            json: json.into(),
            spans: spans.into(),
            authors: authors.into(),
            deps: deps.into(),
            ticket: t.0,
            built: Instant::now(),
        }
    }
}

/// Appends comment `c` by `user` as a `Comment` object (as `api::comment::Comment`
/// serialises), with `is_follow` and its date at `offset_minutes` from UTC; returns where the
/// `is_follow` value starts in `buf`.
pub fn write_comment(
    buf: &mut Vec<u8>,
    c: &CommentData,
    user: &UserEntry,
    follows: bool,
    offset_minutes: i32,
) -> usize {
    let mut n = itoa::Buffer::new();
    buf.extend_from_slice(b"{\"id\":");
    buf.extend_from_slice(n.format(c.id).as_bytes());
    buf.extend_from_slice(b",\"user\":");
    let follow = write_user_at(buf, user, follows);
    buf.extend_from_slice(b",\"content\":");
    // serialising a &str cannot fail
    let _ = simd_json::to_writer(&mut *buf, &c.content);
    buf.extend_from_slice(b",\"create_date\":\"");
    buf.extend_from_slice(month_day(c.created_ms, offset_minutes).as_bytes());
    buf.extend_from_slice(b"\",\"reply_id\":");
    buf.extend_from_slice(n.format(c.reply_id).as_bytes());
    buf.push(b'}');
    follow
}

impl NearCache {
    /// The near-cached newest comments of video `id` (their rendering may be out of date: see
    /// [`NearCache::comments_rendered`]).
    pub fn comments(&self, id: i64) -> Option<Arc<CommentPage>> {
        match self.lookup(NearKey::Comments(id)) {
            Some(NearVal::Comments(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether `page`'s rendering is current: none of its authors invalidated since.
    pub fn comments_rendered(&self, page: &CommentPage) -> bool {
        self.fresh(page.built)
            && page
                .deps
                .iter()
                .all(|b| self.stamps[*b].load(Ordering::Acquire) <= page.ticket)
    }

    /// Renders video `id`'s newest comments (`whole`: all it has) with their authors `users`
    /// (looked up after ticket `t` was taken) and installs the page unless the video's comments
    /// were invalidated after `t`. `again`: the page these comments come from, when they are
    /// rendered again (it was looked up after `t` was taken), else they were fetched after `t`.
    #[allow(clippy::too_many_arguments)]
    pub fn install_comments(
        &self,
        id: i64,
        comments: Arc<[CommentData]>,
        whole: bool,
        again: Option<&CommentPage>,
        users: &HashMap<i64, Arc<UserEntry>>,
        offset_minutes: i32,
        t: Ticket,
    ) -> Arc<CommentPage> {
        let fetched = again.map_or_else(Instant::now, |p| p.fetched);
        let e = Arc::new(CommentPage::render(
            comments,
            whole,
            fetched,
            users,
            offset_minutes,
            t,
        ));
        let key = NearKey::Comments(id);
        if self.installable(&key, t) {
            self.entries.insert(key, NearVal::Comments(e.clone()));
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{near, user};
    use super::*;
    use crate::api::comment::Comment;
    use crate::api::reply::User;
    use crate::model::UserData;
    use std::time::Duration;

    fn comment(id: i64, user_id: i64, content: &str) -> CommentData {
        CommentData {
            id,
            video_id: 9,
            user_id,
            content: content.into(),
            created_ms: 1_680_733_741_000,
            reply_id: id - 1,
        }
    }

    fn author(id: i64) -> UserData {
        UserData { id, ..user() }
    }

    fn parsed(mut json: Vec<u8>) -> simd_json::OwnedValue {
        simd_json::to_owned_value(&mut json).unwrap()
    }

    /// The reference: serde's `Comment` objects of `comments` as seen with `follows(author)`.
    fn serialised(
        comments: &[CommentData],
        users: &HashMap<i64, Arc<UserEntry>>,
        follows: impl Fn(i64) -> bool,
    ) -> simd_json::OwnedValue {
        let list: Vec<Comment> = comments
            .iter()
            .filter_map(|c| {
                let u = users.get(&c.user_id)?;
                Some(Comment {
                    id: c.id,
                    user: User::from_data(&u.data, follows(c.user_id)),
                    content: c.content.clone(),
                    create_date: month_day(c.created_ms, 480),
                    reply_id: c.reply_id,
                })
            })
            .collect();
        parsed(simd_json::to_vec(&list).unwrap())
    }

    #[test]
    fn rendered_comments_equal_serialised_comments_for_each_viewer() {
        let n = near(Duration::from_secs(60), 8);
        let users: HashMap<i64, Arc<UserEntry>> = [7, 8]
            .into_iter()
            .map(|id| (id, Arc::new(UserEntry::new(author(id)))))
            .collect();
        // newest first; user 5 is unknown (left out), 7 wrote two of them
        let comments: Arc<[CommentData]> = vec![
            comment(40, 7, "line\nbreak \u{1F600} \"q\""),
            comment(30, 5, "by nobody"),
            comment(20, 8, "second author"),
            comment(10, 7, "first"),
        ]
        .into();
        let t = n.begin();
        let page = n.install_comments(9, comments.clone(), true, None, &users, 480, t);
        assert!(n.comments_rendered(&page));
        assert_eq!(page.first(100), Some(4));
        assert_eq!(page.authors(4), &[7, 8]);
        // the first two comments need only the first author's flag
        assert_eq!(page.authors(2), &[7]);

        let mut anon = Vec::new();
        page.write(&mut anon, 4, &[]);
        assert_eq!(parsed(anon), serialised(&comments, &users, |_| false));

        // a viewer who follows 8 but not 7
        let mut seen = Vec::new();
        page.write(&mut seen, 4, &[false, true]);
        assert_eq!(parsed(seen), serialised(&comments, &users, |a| a == 8));

        // the first three
        let mut three = Vec::new();
        page.write(&mut three, 3, &[true, false]);
        assert_eq!(
            parsed(three),
            serialised(&comments[..3], &users, |a| a == 7)
        );

        let mut none = Vec::new();
        page.write(&mut none, 0, &[]);
        assert_eq!(none, b"[]");

        // one comment written with its flag (the later pages' path)
        let mut one = vec![b'['];
        let at = write_comment(&mut one, &comments[0], &users[&7], true, 480);
        assert_eq!(&one[at..at + 4], b"true");
        one.push(b']');
        assert_eq!(parsed(one), serialised(&comments[..1], &users, |_| true));
    }

    #[test]
    fn a_rendering_goes_out_of_date_with_its_authors_and_the_page_with_its_comments() {
        let n = near(Duration::from_secs(60), 8);
        let users: HashMap<i64, Arc<UserEntry>> = [(7, Arc::new(UserEntry::new(author(7))))]
            .into_iter()
            .collect();
        let comments: Arc<[CommentData]> = vec![comment(2, 7, "b"), comment(1, 7, "a")].into();
        let page = n.install_comments(9, comments.clone(), false, None, &users, 0, n.begin());
        assert_eq!(page.first(2), Some(2));
        assert_eq!(page.first(3), None, "not whole: three are not all held");
        let held = n.comments(9).expect("installed");
        assert!(n.comments_rendered(&held));

        // the author changes: the comments stay, their rendering is out of date
        n.invalidate(NearKey::User(7));
        let held = n.comments(9).expect("comments are kept");
        assert!(!n.comments_rendered(&held));
        // rendered again from the same comments: current, and still from the first fetch
        let t = n.begin();
        let again = n.comments(9).unwrap();
        let page = n.install_comments(9, again.comments.clone(), false, Some(&again), &users, 0, t);
        assert_eq!(page.fetched, held.fetched);
        assert!(n.comments_rendered(&n.comments(9).unwrap()));

        // a render begun before the comments were invalidated is not installed
        let t = n.begin();
        let stale = n.comments(9).unwrap();
        n.invalidate(NearKey::Comments(9));
        n.install_comments(9, stale.comments.clone(), false, Some(&stale), &users, 0, t);
        assert!(n.comments(9).is_none());
    }
}
