//! Rendered user lists: the `user_list` JSON of a follow or follower list page with every
//! `is_follow` false, and where each flag sits, kept whole (with the
//! video pages, `pages.rs`) so that a page of twenty users costs one lookup instead of twenty
//! (a profile of the follow list had a fifth of the server's time in those lookups:
//! bench/NOTES.md). A viewer's copy is written from it with their flags set in place.
//!
//! A friend list is only ever read by its owner, so theirs is kept as they see it: their
//! flags and each friend's latest message rendered in (one lookup instead of two a friend).
//!
//! A page is served while none of its users (and, for a friend list, none of its
//! conversations nor the viewer's following list) was invalidated since it was rendered
//! (their stamps), and under the same age rule as the entries it was rendered from.

use super::pages::{PageKey, PageKind, PageVal, PAGE_MAX};
use super::render::{bool_json, write_user_at, UserEntry, FALSE};
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
    /// For each user: where its `is_follow` value starts.
    flags: Box<[u32]>,
    /// The users, in order (an unknown id asked for is not among them).
    pub users: Box<[i64]>,
}

impl UserPage {
    /// Renders `users` (in order) with the flags `follows` (missing: false), `extra(buf, id)`
    /// appending fields of its own to each object (each after a comma); `deps` are the stamp
    /// buckets it depends on besides its users'.
    fn render(
        users: &[Arc<UserEntry>],
        follows: &[bool],
        mut extra: impl FnMut(&mut Vec<u8>, i64),
        deps: &[usize],
        t: Ticket,
    ) -> Self {
        let size: usize = users.iter().map(|u| u.json_len() + 6).sum();
        let mut json = Vec::with_capacity(size + 2);
        let mut flags = Vec::with_capacity(users.len());
        json.push(b'[');
        for (i, u) in users.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            let flag = write_user_at(&mut json, u, follows.get(i).copied().unwrap_or(false));
            // `rest` ends with the object's closing brace
            json.pop();
            extra(&mut json, u.data.id);
            json.push(b'}');
            flags.push(flag as u32);
        }
        json.push(b']');
        let mut deps: Vec<usize> = users
            .iter()
            .map(|u| NearKey::User(u.data.id).bucket())
            .chain(deps.iter().copied())
            .collect();
        deps.sort_unstable();
        deps.dedup();
        UserPage {
            deps: deps.into(),
            ticket: t.0,
            built: Instant::now(),
            json: json.into(),
            flags: flags.into(),
            users: users.iter().map(|u| u.data.id).collect(),
        }
    }

    /// The page as rendered (a friend list: as its viewer sees it).
    pub fn rendered(&self) -> &[u8] {
        &self.json
    }

    /// Its allocation and those it holds (for the near-cache's bound).
    pub(super) fn heap(&self) -> usize {
        use super::weigh::{arc, slice};
        arc::<UserPage>()
            + slice(&self.deps)
            + slice(&self.json)
            + slice(&self.flags)
            + slice(&self.users)
    }

    /// Appends the page as a viewer sees it: `follows[i]` whether they follow the i-th user
    /// (missing: false).
    pub fn write(&self, buf: &mut Vec<u8>, follows: &[bool]) {
        buf.reserve(self.json.len());
        let mut at = 0;
        for (i, flag) in self.flags.iter().enumerate() {
            let flag = *flag as usize;
            buf.extend_from_slice(&self.json[at..flag]);
            buf.extend_from_slice(bool_json(follows.get(i).copied().unwrap_or(false)));
            at = flag + FALSE;
        }
        buf.extend_from_slice(&self.json[at..]);
    }
}

impl NearCache {
    /// The kept page of `kind`, `owner` and `ids`, if current.
    fn kept(&self, kind: PageKind, owner: i64, ids: &[i64]) -> Option<Arc<UserPage>> {
        if ids.len() > PAGE_MAX {
            return None;
        }
        let PageVal::Users(page) = self.held(kind, owner, ids)? else {
            return None;
        };
        self.current(page.built, page.deps.iter().copied(), page.ticket)
            .then_some(page)
    }

    /// Keeps `page` as that of `kind`, `owner` and `ids` (up to [`PAGE_MAX`] ids).
    fn keep(&self, kind: PageKind, owner: i64, ids: &[i64], page: &Arc<UserPage>) {
        if self.enabled && ids.len() <= PAGE_MAX {
            let key = PageKey {
                kind,
                owner,
                ids: ids.into(),
            };
            self.pages.insert(key, PageVal::Users(page.clone()));
        }
    }

    /// The rendered user page of `ids`, if held and current.
    pub fn user_page(&self, ids: &[i64]) -> Option<Arc<UserPage>> {
        self.kept(PageKind::Users, 0, ids)
    }

    /// Renders the user page of `ids` from `users` (those of them known, in order, looked up
    /// after ticket `t` was taken) and keeps it (up to [`PAGE_MAX`] ids).
    pub fn render_user_page(
        &self,
        ids: &[i64],
        users: &[Arc<UserEntry>],
        t: Ticket,
    ) -> Arc<UserPage> {
        let page = Arc::new(UserPage::render(users, &[], |_, _| {}, &[], t));
        self.keep(PageKind::Users, 0, ids, &page);
        page
    }

    /// `viewer`'s friend list of the friends `ids` as they saw it, if held and current.
    pub fn friend_page(&self, viewer: i64, ids: &[i64]) -> Option<Arc<UserPage>> {
        self.kept(PageKind::Friends, viewer, ids)
    }

    /// Renders `viewer`'s friend list of the friends `ids` from `users` (those of them known,
    /// in order) as they see it: `follows` their flags, `extra` each friend's own fields (the
    /// latest message), everything read after ticket `t` was taken; keeps it (up to
    /// [`PAGE_MAX`] friends) until one of the friends, their conversations with the viewer or
    /// the viewer's following list changes.
    pub fn render_friend_page(
        &self,
        viewer: i64,
        ids: &[i64],
        users: &[Arc<UserEntry>],
        follows: &[bool],
        extra: impl FnMut(&mut Vec<u8>, i64),
        t: Ticket,
    ) -> Arc<UserPage> {
        let deps: Vec<usize> = ids
            .iter()
            .map(|o| NearKey::conv(viewer, *o).bucket())
            .chain([NearKey::Follows(viewer).bucket()])
            .collect();
        let page = Arc::new(UserPage::render(users, follows, extra, &deps, t));
        self.keep(PageKind::Friends, viewer, ids, &page);
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
    fn a_viewers_user_page_is_the_rendered_one_with_their_flags() {
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
            let mut ours = Vec::new();
            page.write(&mut ours, &follows);
            assert_eq!(parsed(ours), serialised(&users, &follows, false));
        }
        let mut empty = Vec::new();
        n.render_user_page(&[5], &[], t).write(&mut empty, &[]);
        assert_eq!(empty, b"[]");
    }

    #[test]
    fn a_friend_page_is_kept_as_its_viewer_sees_it_until_a_friend_a_chat_or_a_follow_changes() {
        let n = near(Duration::from_secs(60), 10);
        let t = n.begin();
        let users: Vec<_> = [7, 8]
            .into_iter()
            .map(|id| n.install_user(named(id, "f"), t))
            .collect();
        let page = n.render_friend_page(
            1,
            &[7, 8],
            &users,
            &[true, false],
            |b, id| b.extend_from_slice(format!(",\"n\":{id}").as_bytes()),
            t,
        );
        assert_eq!(
            parsed(page.rendered().to_vec()),
            serialised(&users, &[true, false], true)
        );
        assert!(n.friend_page(1, &[7, 8]).is_some());
        // another viewer's, or another list's, is another page
        assert!(n.friend_page(2, &[7, 8]).is_none());
        assert!(n.friend_page(1, &[7]).is_none());
        assert!(n.user_page(&[1, 7, 8]).is_none());
        for change in [NearKey::conv(8, 1), NearKey::Follows(1), NearKey::User(7)] {
            let t = n.begin();
            n.render_friend_page(1, &[7, 8], &users, &[], |_, _| {}, t);
            assert!(n.friend_page(1, &[7, 8]).is_some());
            n.invalidate(change);
            assert!(n.friend_page(1, &[7, 8]).is_none(), "{change:?}");
        }
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
