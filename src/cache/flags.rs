//! The viewer's flags on a page: `is_favorite` (the viewer's liked set) and `is_follow` (whom
//! the viewer follows), from the near-cache's copies of both sets or in one script call.

use super::codec::ids_with_marker;
use super::{Cache, RELOAD_ATTEMPTS};
use crate::error::AppError;
use crate::near::NearKey;
use fred::prelude::*;
use fred::types::Value;

impl Cache {
    /// The videos user `id` likes, most recently liked first; None when the user is unknown.
    pub async fn user_liked_ids(
        &self,
        id: i64,
        limit: usize,
    ) -> Result<Option<Vec<i64>>, AppError> {
        self.user_zset_page(id, 2, limit).await
    }

    /// A page of the videos user `id` likes, newest like first, as (video, like id) with like
    /// ids below `cursor` when given; None when the user is unknown.
    pub async fn liked_page(
        &self,
        id: i64,
        cursor: Option<i64>,
        limit: usize,
    ) -> Result<Option<Vec<(i64, i64)>>, AppError> {
        self.user_zset_scored(id, 2, cursor, limit).await
    }

    /// The viewer's flags for a page in one round trip: whether they like each of `videos`
    /// and whether they follow each of `users` (`lua/flags.lua`: the ids go as two
    /// comma-separated arguments and the flags come back as one string).
    pub async fn viewer_flags(
        &self,
        viewer: i64,
        videos: &[i64],
        users: &[i64],
    ) -> Result<(Vec<bool>, Vec<bool>), AppError> {
        if videos.is_empty() && users.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        if self.near.enabled() {
            return self.viewer_flags_near(viewer, videos, users).await;
        }
        self.viewer_flags_redis(viewer, videos, users).await
    }

    /// The viewer's flags from their liked and following sets held in the near-cache; the
    /// missing ones are fetched whole, in one round trip, and kept as ids alone (a list
    /// already held whole with its scores answers as well).
    async fn viewer_flags_near(
        &self,
        viewer: i64,
        videos: &[i64],
        users: &[i64],
    ) -> Result<(Vec<bool>, Vec<bool>), AppError> {
        // both lists with the session, found by the token's check just before (`viewers.rs`)
        if let Some((likes, follows)) = self.near.viewer(viewer).and_then(|v| v.lists()) {
            return Ok((likes.contains_each(videos), follows.contains_each(users)));
        }
        // before the lists are looked up: the bundle kept below ends with any change since
        let t0 = self.near.begin();
        let (lk, fk) = (NearKey::Likes(viewer), NearKey::Follows(viewer));
        // only a whole list answers for membership (a long one may be held in part, for pages)
        let mut likes = if videos.is_empty() {
            None
        } else {
            self.near.set(lk).filter(|s| s.whole)
        };
        let mut follows = if users.is_empty() {
            None
        } else {
            self.near.set(fk).filter(|s| s.whole)
        };
        let need_likes = !videos.is_empty() && likes.is_none();
        let need_follows = !users.is_empty() && follows.is_none();
        if need_likes || need_follows {
            let mut fetched = None;
            for _ in 0..RELOAD_ATTEMPTS {
                let t = self.near.begin();
                self.rt();
                let this = self;
                let res: Vec<Result<Value, fred::error::Error>> = self
                    .pipelined(move || async move {
                        let p = this.client().pipeline();
                        let wanted = [
                            (need_likes, this.keys.user_likes(viewer)),
                            (need_follows, this.keys.user_following(viewer)),
                        ];
                        for (_, key) in wanted.into_iter().filter(|(need, _)| *need) {
                            let _: () = p.zrange(key, 0, -1, None, false, None, false).await?;
                        }
                        Ok(p)
                    })
                    .await?;
                let mut sets = Vec::with_capacity(2);
                for r in res {
                    // the members; the loaded marker "0" must be among them
                    let ids = match r? {
                        Value::Array(items) => ids_with_marker(items),
                        _ => None,
                    };
                    sets.push(ids);
                }
                if sets.iter().all(|s| s.is_some()) {
                    fetched = Some((t, sets));
                    break;
                }
                if !self.ensure_user(viewer).await? {
                    return Ok((vec![false; videos.len()], vec![false; users.len()]));
                }
            }
            let Some((t, sets)) = fetched else {
                return Err(AppError::Unavailable(
                    "viewer flags: not loaded after reload".into(),
                ));
            };
            let mut it = sets.into_iter().flatten();
            if need_likes {
                likes = it.next().map(|ids| self.near.install_ids(lk, ids, t));
            }
            if need_follows {
                follows = it.next().map(|ids| self.near.install_ids(fk, ids, t));
            }
        }
        if let (Some(l), Some(f)) = (&likes, &follows) {
            self.near.keep_viewer(viewer, t0, l, f);
        }
        let liked = match &likes {
            Some(s) => s.contains_each(videos),
            None => vec![false; videos.len()],
        };
        let followed = match &follows {
            Some(s) => s.contains_each(users),
            None => vec![false; users.len()],
        };
        Ok((liked, followed))
    }

    /// The viewer's flags straight from Redis (near-cache disabled).
    async fn viewer_flags_redis(
        &self,
        viewer: i64,
        videos: &[i64],
        users: &[i64],
    ) -> Result<(Vec<bool>, Vec<bool>), AppError> {
        let joined = |ids: &[i64]| -> String {
            let mut s = String::with_capacity(ids.len() * 17);
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(itoa::Buffer::new().format(*id));
            }
            s
        };
        let args = vec![joined(videos), joined(users)];
        for _ in 0..RELOAD_ATTEMPTS {
            let keys = vec![
                self.keys.user_likes(viewer),
                self.keys.user_following(viewer),
            ];
            let v = self.eval(&self.scripts.flags, keys, args.clone()).await?;
            let flags = match &v {
                Value::String(s) => Some(s.as_bytes()),
                Value::Bytes(b) => Some(&b[..]),
                _ => None,
            };
            match flags {
                Some(f) if f.len() == videos.len() + users.len() => {
                    let liked = f[..videos.len()].iter().map(|c| *c == b'1').collect();
                    let follows = f[videos.len()..].iter().map(|c| *c == b'1').collect();
                    return Ok((liked, follows));
                }
                _ => {
                    if !self.ensure_user(viewer).await? {
                        return Ok((vec![false; videos.len()], vec![false; users.len()]));
                    }
                }
            }
        }
        Err(AppError::Unavailable(
            "viewer flags: not loaded after reload".into(),
        ))
    }
}
