//! Rendered user lists: the `user_list` JSON of a follow, follower or friend list page with
//! every `is_follow` false, and where each flag and each object's end sit, kept whole (with
//! the video pages, `pages.rs`) so that a page of twenty users costs one lookup instead of
//! twenty (a profile of the follow list had a fifth of the server's time in those lookups:
//! bench/NOTES.md). A viewer's copy is written from it with their flags set in place, and the
//! friend list adds its fields to each object on the way.
//!
//! A page is served while none of its users was invalidated since it was rendered (their
//! stamps) and under the same age rule as the entries it was rendered from.

use super::pages::{PageKey, PageQuery, PageVal, FALSE, PAGE_MAX};
use super::render::{bool_json, write_user_at, UserEntry};
use super::{NearCache, NearKey, Ticket};
use std::sync::Arc;
use std::time::Instant;

/// A rendered `user_list`.
pub struct UserPage {
    /// The stamp buckets of its users.
    deps: Box<[usize]>,
    ticket: u64,
    built: Instant,
    /// The JSON array, every `is_follow` false.
    json: Box<[u8]>,
    /// For each user: where its `is_follow` value starts, and where its closing brace is.
    marks: Box<[(u32, u32)]>,
    /// The users, in order (an unknown id asked for is not among them).
    pub users: Box<[i64]>,
}

impl UserPage {
    /// Renders `users` (in order) with every flag false.
    fn render(users: &[Arc<UserEntry>], t: Ticket) -> Self {
        let size: usize = users.iter().map(|u| u.head.len() + u.rest.len() + 6).sum();
        let mut json = Vec::with_capacity(size + 2);
        let mut marks = Vec::with_capacity(users.len());
        json.push(b'[');
        for (i, u) in users.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            let flag = write_user_at(&mut json, u, false);
            // `rest` ends with the object's closing brace
            marks.push((flag as u32, (json.len() - 1) as u32));
        }
        json.push(b']');
        let mut deps: Vec<usize> = users
            .iter()
            .map(|u| NearKey::User(u.data.id).bucket())
            .collect();
        deps.sort_unstable();
        deps.dedup();
        UserPage {
            deps: deps.into(),
            ticket: t.0,
            built: Instant::now(),
            json: json.into(),
            marks: marks.into(),
            users: users.iter().map(|u| u.data.id).collect(),
        }
    }

    pub(super) fn weight(&self) -> usize {
        self.json.len() + self.deps.len() * 8 + self.marks.len() * 16 + 160
    }

    /// Appends the page as a viewer sees it: `follows[i]` whether they follow the i-th user
    /// (missing: false); `extra(buf, id)` may append fields of its own to each object (each
    /// after a comma), as the friend list does.
    pub fn write(
        &self,
        buf: &mut Vec<u8>,
        follows: &[bool],
        mut extra: impl FnMut(&mut Vec<u8>, i64),
    ) {
        buf.reserve(self.json.len());
        let mut at = 0;
        for (i, (flag, close)) in self.marks.iter().enumerate() {
            let (flag, close) = (*flag as usize, *close as usize);
            buf.extend_from_slice(&self.json[at..flag]);
            buf.extend_from_slice(bool_json(follows.get(i).copied().unwrap_or(false)));
            buf.extend_from_slice(&self.json[flag + FALSE..close]);
            extra(buf, self.users[i]);
            at = close;
        }
        buf.extend_from_slice(&self.json[at..]);
    }
}

impl NearCache {
    /// The rendered user page of `ids`, if held and current.
    pub fn user_page(&self, ids: &[i64]) -> Option<Arc<UserPage>> {
        if !self.enabled || ids.len() > PAGE_MAX {
            return None;
        }
        let PageVal::Users(page) = self.pages.get(&PageQuery { users: true, ids })? else {
            return None;
        };
        self.current(page.built, &page.deps, page.ticket)
            .then_some(page)
    }

    /// Renders the user page of `ids` from `users` (those of them known, in order, looked up
    /// after ticket `t` was taken) and keeps it (up to [`PAGE_MAX`] ids).
    pub fn render_user_page(
        &self,
        ids: &[i64],
        users: &[Arc<UserEntry>],
        t: Ticket,
    ) -> Arc<UserPage> {
        let page = Arc::new(UserPage::render(users, t));
        if self.enabled && ids.len() <= PAGE_MAX {
            self.pages
                .insert(PageKey::Users(ids.into()), PageVal::Users(page.clone()));
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::near;
    use super::*;
    use crate::api::reply::User;
    use crate::model::UserData;
    use std::time::Duration;

    fn parsed(mut json: Vec<u8>) -> simd_json::OwnedValue {
        simd_json::to_owned_value(&mut json).unwrap()
    }

    /// `users` as serde writes them, each with `is_follow` from `follows` and a `"n":id`
    /// field when `extra`, parsed.
    fn serialised(
        users: &[Arc<UserEntry>],
        follows: &[bool],
        extra: bool,
    ) -> simd_json::OwnedValue {
        let mut out = Vec::new();
        out.push(b'[');
        for (i, u) in users.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let mut one = simd_json::to_vec(&User::from_data(&u.data, follows[i])).unwrap();
            if extra {
                one.pop();
                one.extend_from_slice(format!(",\"n\":{}}}", u.data.id).as_bytes());
            }
            out.extend_from_slice(&one);
        }
        out.push(b']');
        parsed(out)
    }

    fn named(id: i64, name: &str) -> UserData {
        UserData {
            id,
            name: name.into(),
            signature: "false } \"is_follow\":false".into(),
            follow_count: id,
            ..Default::default()
        }
    }

    #[test]
    fn a_viewers_user_page_is_the_rendered_one_with_their_flags_and_fields() {
        let n = near(Duration::from_secs(60), 10);
        let t = n.begin();
        let users: Vec<_> = [(7, "false"), (8, "{\"b\"}"), (9, "c")]
            .into_iter()
            .map(|(id, name)| n.install_user(named(id, name), t))
            .collect();
        // 5 is asked for but unknown: not on the page
        let page = n.render_user_page(&[7, 5, 8, 9], &users, t);
        assert_eq!(&*page.users, &[7, 8, 9]);
        for follows in [
            [false, false, false],
            [true, false, true],
            [false, true, false],
        ] {
            let mut plain = Vec::new();
            page.write(&mut plain, &follows, |_, _| {});
            assert_eq!(parsed(plain), serialised(&users, &follows, false));
            let mut with = Vec::new();
            page.write(&mut with, &follows, |b, id| {
                b.extend_from_slice(format!(",\"n\":{id}").as_bytes())
            });
            assert_eq!(parsed(with), serialised(&users, &follows, true));
        }
        let mut empty = Vec::new();
        n.render_user_page(&[5], &[], t)
            .write(&mut empty, &[], |b, _| b.push(b'x'));
        assert_eq!(empty, b"[]");
    }

    #[test]
    fn a_user_page_is_held_until_one_of_its_users_changes() {
        let n = near(Duration::from_secs(60), 10);
        let t = n.begin();
        let users: Vec<_> = [7, 8]
            .into_iter()
            .map(|id| n.install_user(named(id, "u"), t))
            .collect();
        n.render_user_page(&[7, 8], &users, t);
        assert!(n.user_page(&[7, 8]).is_some());
        assert!(n.user_page(&[8, 7]).is_none());
        // a video page of the same ids is another page
        assert!(n.page(&[7, 8]).is_none());
        n.invalidate(NearKey::User(8));
        assert!(n.user_page(&[7, 8]).is_none());
        // rendered from entries looked up before an invalidation: never current
        let t = n.begin();
        n.invalidate(NearKey::User(7));
        n.render_user_page(&[7, 8], &users, t);
        assert!(n.user_page(&[7, 8]).is_none());
        n.render_user_page(&[7, 8], &users, n.begin());
        assert!(n.user_page(&[7, 8]).is_some());
        // a list longer than a page is rendered for its request only
        let long: Vec<i64> = (1..=PAGE_MAX as i64 + 1).collect();
        let page = n.render_user_page(&long, &users, n.begin());
        assert_eq!(&*page.users, &[7, 8]);
        assert!(n.user_page(&long).is_none());
    }
}
