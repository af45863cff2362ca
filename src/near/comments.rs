//! Each video's newest comments, held ready to write as its `comment_list`: so that a comment
//! list (up to a thousand comments on a hot video) is written by copying slices with the
//! viewer's flags set in place, instead of a lookup and a render per comment (bench/NOTES.md).
//!
//! A page keeps each comment's own JSON (`{"id":N,"user":` and what follows the author) once,
//! and for each of its authors that author's entry's JSON (`render.rs`), shared with the
//! entry and with every other page and card of theirs: where a copy of the author's object in
//! each comment took about four fifths of a page.
//!
//! Comments never change: a new or deleted one changes the video's comment zset, whose
//! invalidation drops the page. Their authors do (counters), so the page is current while none
//! of its authors was invalidated since it was made (their stamps, as `pages.rs`); when one
//! was, the same comments are taken with fresh author entries.

use super::pages::{prefetch_range, PageKey, PageKind, PageVal};
use super::render::{around_flag, bool_json, write_user_at, UserEntry};
use super::{NearCache, NearKey, Ticket};
use crate::model::{month_day, CommentData};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The newest comments of a video with their authors' JSON.
#[derive(Debug)]
pub struct CommentPage {
    /// The comments' own JSON, shared by every page made of these comments.
    parts: Arc<CommentParts>,
    /// Per author of `parts.authors`: their entry's JSON with `is_follow` false (None: the
    /// author has no record, and their comments are left out).
    authors: Box<[Author]>,
    /// The authors' stamp buckets and the ticket their entries were looked up after.
    deps: Box<[usize]>,
    ticket: u64,
    built: Instant,
}

/// What a video's newest comments render to without their authors, newest first: up to the
/// number fetched, and all of them when `whole` (the video had no more).
#[derive(Debug)]
pub struct CommentParts {
    /// Per comment, one after another: `{"id":N,"user":`, then
    /// `,"content":..,"create_date":"..","reply_id":N}`.
    json: Box<[u8]>,
    spans: Box<[Span]>,
    /// The comments' distinct authors, in the order they first appear: the order of the
    /// viewer's `is_follow` flags.
    authors: Box<[i64]>,
    whole: bool,
    /// When the comments were read from Redis (kept when they are taken with fresh authors).
    fetched: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    id: i64,
    /// Where its JSON starts in `CommentParts::json`, where its author goes and where it ends.
    start: u32,
    split: u32,
    end: u32,
    /// Its author's index in `CommentParts::authors`.
    author: u32,
}

/// How many comments ahead of the one being written their author's JSON is asked for.
const AUTHORS_AHEAD: usize = 4;

#[derive(Debug)]
struct Author {
    json: Option<Arc<[u8]>>,
    /// Where in `json` the `is_follow` value starts.
    follow: u32,
}

impl CommentPage {
    /// How many comments it holds.
    pub fn held(&self) -> usize {
        self.parts.spans.len()
    }

    /// How many of the first `count` comments this page holds: None if it holds fewer and
    /// not every comment of the video.
    pub fn first(&self, count: usize) -> Option<usize> {
        if self.held() >= count {
            Some(count)
        } else if self.parts.whole {
            Some(self.held())
        } else {
            None
        }
    }

    /// The id of the last of the first `n` comments (None: `n` is 0).
    pub fn last_id(&self, n: usize) -> Option<i64> {
        self.parts.spans[..n].last().map(|s| s.id)
    }

    /// Its comments without their authors (to take them with fresh author entries).
    pub fn parts(&self) -> &Arc<CommentParts> {
        &self.parts
    }

    /// When its comments were read from Redis (the age rule).
    pub(super) fn fetched(&self) -> Instant {
        self.parts.fetched
    }

    /// The distinct authors of the first `n` comments, in the order [`CommentPage::write`]
    /// wants their `is_follow` flags (a prefix of the page's authors).
    pub fn authors(&self, n: usize) -> &[i64] {
        let used = self.parts.spans[..n]
            .iter()
            .map(|s| s.author as usize + 1)
            .max()
            .unwrap_or(0);
        &self.parts.authors[..used]
    }

    /// Appends the first `n` comments as a JSON array as a viewer sees them: `follows[i]`
    /// says whether they follow `authors(n)[i]` (missing: false).
    pub fn write(&self, buf: &mut Vec<u8>, n: usize, follows: &[bool]) {
        let p = &*self.parts;
        let spans = &p.spans[..n];
        let size: usize = spans
            .iter()
            .map(|s| {
                self.authors[s.author as usize]
                    .json
                    .as_ref()
                    .map_or(0, |a| a.len() + (s.end - s.start) as usize + 1)
            })
            .sum();
        // an author's JSON lies wherever their entry put it (a few lines): asked for a few
        // comments ahead, as a run's cards are (`pages.rs`)
        let ahead = |i: usize| {
            if let Some(j) = spans
                .get(i)
                .and_then(|s| self.authors[s.author as usize].json.as_ref())
            {
                prefetch_range(j.as_ptr(), j.len());
            }
        };
        (0..AUTHORS_AHEAD).for_each(ahead);
        buf.reserve(size + 2);
        buf.push(b'[');
        let open = buf.len();
        for (i, s) in spans.iter().enumerate() {
            ahead(i + AUTHORS_AHEAD);
            let a = &self.authors[s.author as usize];
            let Some(json) = &a.json else {
                continue;
            };
            if buf.len() > open {
                buf.push(b',');
            }
            buf.extend_from_slice(&p.json[s.start as usize..s.split as usize]);
            if follows.get(s.author as usize).copied().unwrap_or(false) {
                let (head, rest) = around_flag(json, a.follow as usize);
                buf.extend_from_slice(head);
                buf.extend_from_slice(bool_json(true));
                buf.extend_from_slice(rest);
            } else {
                // as rendered: `is_follow` false
                buf.extend_from_slice(json);
            }
            buf.extend_from_slice(&p.json[s.split as usize..s.end as usize]);
        }
        buf.push(b']');
    }

    /// Bytes held, for the near-cache's bound: its own allocations (its `Arc` included, as the
    /// other pages'), its comments' JSON, and each author's JSON in full (shared with their
    /// entry, but what the page keeps alive once that entry is gone: an upper bound, as a
    /// card's).
    pub(super) fn heap(&self) -> usize {
        use super::weigh::{arc, arc_slice, slice};
        let p = &*self.parts;
        arc::<CommentPage>()
            + arc::<CommentParts>()
            + slice(&p.json)
            + slice(&p.spans)
            + slice(&p.authors)
            + slice(&self.authors)
            + slice(&self.deps)
            + self
                .authors
                .iter()
                .filter_map(|a| a.json.as_ref())
                .map(|j| arc_slice(j))
                .sum::<usize>()
    }

    /// A page of `parts` with its authors from `users`, looked up after ticket `t` was taken.
    fn new(parts: Arc<CommentParts>, users: &HashMap<i64, Arc<UserEntry>>, t: Ticket) -> Self {
        let authors = parts
            .authors
            .iter()
            .map(|id| match users.get(id) {
                Some(u) => Author {
                    json: Some(u.json.clone()),
                    follow: u.follow,
                },
                None => {
                    tracing::warn!(author = id, "comments by a user without a record; left out");
                    Author {
                        json: None,
                        follow: 0,
                    }
                }
            })
            .collect();
        let mut deps: Vec<usize> = parts
            .authors
            .iter()
            .map(|a| NearKey::User(*a).bucket())
            .collect();
        deps.sort_unstable();
        deps.dedup();
        CommentPage {
            parts,
            authors,
            deps: deps.into(),
            ticket: t.0,
            built: Instant::now(),
        }
    }
}

impl CommentParts {
    /// Renders `comments`' own JSON (dates at `offset_minutes` from UTC), just read from
    /// Redis (`whole`: all the video has).
    pub fn render(comments: &[CommentData], whole: bool, offset_minutes: i32) -> Arc<Self> {
        let size: usize = comments.iter().map(|c| c.content.len() + 96).sum();
        let mut json = Vec::with_capacity(size);
        let mut spans = Vec::with_capacity(comments.len());
        let mut authors: Vec<i64> = Vec::new();
        let mut index: HashMap<i64, u32> = HashMap::new();
        for c in comments {
            let author = *index.entry(c.user_id).or_insert_with(|| {
                authors.push(c.user_id);
                authors.len() as u32 - 1
            });
            let start = json.len() as u32;
            comment_head(&mut json, c);
            let split = json.len() as u32;
            comment_tail(&mut json, c, offset_minutes);
            spans.push(Span {
                id: c.id,
                start,
                split,
                end: json.len() as u32,
                author,
            });
        }
        Arc::new(CommentParts {
            json: json.into(),
            spans: spans.into(),
            authors: authors.into(),
            whole,
            fetched: Instant::now(),
        })
    }

    /// The comments' distinct authors, whose entries a page takes.
    pub fn authors(&self) -> &[i64] {
        &self.authors
    }
}

/// `{"id":N,"user":`: a comment's JSON before its author.
fn comment_head(buf: &mut Vec<u8>, c: &CommentData) {
    buf.extend_from_slice(b"{\"id\":");
    buf.extend_from_slice(itoa::Buffer::new().format(c.id).as_bytes());
    buf.extend_from_slice(b",\"user\":");
}

/// `,"content":..,"create_date":"MM-DD","reply_id":N}`: a comment's JSON after its author,
/// its date at `offset_minutes` from UTC.
fn comment_tail(buf: &mut Vec<u8>, c: &CommentData, offset_minutes: i32) {
    buf.extend_from_slice(b",\"content\":");
    // serialising a &str cannot fail
    let _ = simd_json::to_writer(&mut *buf, &c.content);
    buf.extend_from_slice(b",\"create_date\":\"");
    buf.extend_from_slice(month_day(c.created_ms, offset_minutes).as_bytes());
    buf.extend_from_slice(b"\",\"reply_id\":");
    buf.extend_from_slice(itoa::Buffer::new().format(c.reply_id).as_bytes());
    buf.push(b'}');
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
    comment_head(buf, c);
    let follow = write_user_at(buf, user, follows);
    comment_tail(buf, c, offset_minutes);
    follow
}

impl NearCache {
    /// The near-cached newest comments of video `id` (their authors may be out of date: see
    /// [`NearCache::comments_rendered`]).
    ///
    /// Kept with the rendered pages (`pages.rs`), under their share of the bound: a page grows
    /// with the comments posted, up to `server.max_list`, and would otherwise add to the
    /// entries' share with every comment the server takes (bench/NOTES.md).
    pub fn comments(&self, id: i64) -> Option<Arc<CommentPage>> {
        let page = match self.held(PageKind::Comments, id, &[]) {
            Some(PageVal::Comments(e)) => Some(e).filter(|e| self.fresh(e.fetched())),
            _ => None,
        };
        self.hit(page.is_some());
        page
    }

    /// Whether `page`'s authors are current: none of them invalidated since.
    pub fn comments_rendered(&self, page: &CommentPage) -> bool {
        self.fresh(page.built)
            && page
                .deps
                .iter()
                .all(|b| self.stamps[*b].load(Ordering::Acquire) <= page.ticket)
    }

    /// Video `id`'s newest comments `parts` (read from Redis after ticket `t` was taken, or
    /// from a page looked up after it) with their authors `users` (looked up after it too),
    /// installed unless the video's comments were invalidated after `t`.
    pub fn install_comments(
        &self,
        id: i64,
        parts: Arc<CommentParts>,
        users: &HashMap<i64, Arc<UserEntry>>,
        t: Ticket,
    ) -> Arc<CommentPage> {
        let e = Arc::new(CommentPage::new(parts, users, t));
        if self.installable(&NearKey::Comments(id), t) {
            let key = PageKey {
                kind: PageKind::Comments,
                owner: id,
                ids: Box::default(),
            };
            self.pages.insert(key, PageVal::Comments(e.clone()));
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

    /// User 7's entry, the author of the tests' comments.
    fn author_seven() -> HashMap<i64, Arc<UserEntry>> {
        [(7, Arc::new(UserEntry::new(author(7))))]
            .into_iter()
            .collect()
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
        let page = n.install_comments(9, CommentParts::render(&comments, true, 480), &users, t);
        assert!(n.comments_rendered(&page));
        assert_eq!(page.first(100), Some(4));
        // in the order they first appear, the unknown one included
        assert_eq!(page.authors(4), &[7, 5, 8]);
        // the first comment needs only the first author's flag
        assert_eq!(page.authors(1), &[7]);
        assert_eq!(page.last_id(2), Some(30));
        assert_eq!(page.last_id(0), None);
        // the authors' JSON is their entries', not a copy
        for (i, id) in [(0, 7), (2, 8)] {
            let json = page.authors[i].json.as_ref().expect("known");
            assert!(Arc::ptr_eq(json, &users[&id].json));
        }
        assert!(page.authors[1].json.is_none());

        let mut anon = Vec::new();
        page.write(&mut anon, 4, &[]);
        assert_eq!(parsed(anon), serialised(&comments, &users, |_| false));

        // a viewer who follows 8 but not 7
        let mut seen = Vec::new();
        page.write(&mut seen, 4, &[false, true, true]);
        assert_eq!(parsed(seen), serialised(&comments, &users, |a| a == 8));

        // the first three
        let mut three = Vec::new();
        page.write(&mut three, 3, &[true, false, false]);
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
        let users = author_seven();
        let comments: Arc<[CommentData]> = vec![comment(2, 7, "b"), comment(1, 7, "a")].into();
        let parts = CommentParts::render(&comments, false, 480);
        let page = n.install_comments(9, parts, &users, n.begin());
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
        let page = n.install_comments(9, again.parts().clone(), &users, t);
        assert_eq!(page.fetched(), held.fetched());
        assert!(
            Arc::ptr_eq(&page.parts, &held.parts),
            "the comments' JSON is shared, not rendered again"
        );
        // with the author's new counters
        let mut body = Vec::new();
        page.write(&mut body, 2, &[]);
        let fresh: HashMap<i64, Arc<UserEntry>> = [(
            7,
            Arc::new(UserEntry::new(UserData {
                follower_count: 41,
                ..author(7)
            })),
        )]
        .into_iter()
        .collect();
        let t = n.begin();
        let newer = n.install_comments(9, page.parts().clone(), &fresh, t);
        let mut now = Vec::new();
        newer.write(&mut now, 2, &[]);
        assert_eq!(parsed(body), serialised(&comments, &users, |_| false));
        assert_eq!(parsed(now), serialised(&comments, &fresh, |_| false));
        assert!(n.comments_rendered(&n.comments(9).unwrap()));

        // a render begun before the comments were invalidated is not installed
        let t = n.begin();
        let stale = n.comments(9).unwrap();
        n.invalidate(NearKey::Comments(9));
        n.install_comments(9, stale.parts().clone(), &users, t);
        assert!(n.comments(9).is_none());
    }

    #[test]
    fn comment_pages_are_held_under_the_pages_share() {
        // a 1 MiB bound: 256 KiB for pages
        let n = near(Duration::from_secs(60), 8);
        let users = author_seven();
        let comments: Vec<CommentData> = (1..=40)
            .rev()
            .map(|i| comment(i, 7, "a few words about this video"))
            .collect();
        let comments: Arc<[CommentData]> = comments.into();
        let entries = n.entries.weight();
        n.install_comments(
            1,
            CommentParts::render(&comments, true, 480),
            &users,
            n.begin(),
        );
        let one = n.pages.weight();
        assert!(one > 40 * 60, "the page weighs its comments: {one}");
        assert_eq!(n.entries.weight(), entries, "nothing in the entries' share");
        assert!(n.comments(1).is_some());

        // more pages than the pages' share holds: older ones go, the share stays bounded
        for video in 2..=200 {
            let parts = CommentParts::render(&comments, true, 480);
            n.install_comments(video, parts, &users, n.begin());
        }
        assert!(n.pages.weight() <= 256 << 10, "{}", n.pages.weight());
        assert_eq!(n.entries.weight(), entries);
        let held = (1..=200).filter(|v| n.comments(*v).is_some()).count();
        assert!(held > 10 && held < 200, "{held} of 200 held");

        // an invalidation drops the page
        let last = (1..=200).rev().find(|v| n.comments(*v).is_some()).unwrap();
        n.invalidate(NearKey::Comments(last));
        assert!(n.comments(last).is_none());
    }
}
