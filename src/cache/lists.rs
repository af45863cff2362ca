//! A user's lists (published, liked, following, followers) served from the near-cache's copies
//! (`near/sets.rs`): fetched in one script call on a miss (whole, or the newest
//! [`SET_MAX`] members of a longer list) and kept until invalidated, so that the publish,
//! favorite, follow, follower and friend lists need no round trip once warm. Without the
//! near-cache, or for a page past the part held, the page comes from Redis (`users.rs`).

use super::Cache;
use crate::error::AppError;
use crate::near::{IdSet, NearKey, SET_MAX};
use std::sync::Arc;

/// The near-cache key of user `id`'s zset `which` (an index into `Keys::user_all`).
fn list_key(id: i64, which: usize) -> NearKey {
    match which {
        1 => NearKey::Works(id),
        2 => NearKey::Likes(id),
        3 => NearKey::Follows(id),
        _ => NearKey::Followers(id),
    }
}

impl Cache {
    /// User `id`'s zset `which` (1 published, 2 liked, 3 following, 4 followers) as held by
    /// the near-cache, fetched on a miss; None when the user is unknown.
    pub(super) async fn near_list(
        &self,
        id: i64,
        which: usize,
    ) -> Result<Option<Arc<IdSet>>, AppError> {
        let key = list_key(id, which);
        // a list held as ids alone (fetched for a viewer's flags) has no order: fetch it scored
        if let Some(s) = self.near.set(key).filter(|s| s.is_scored()) {
            return Ok(Some(s));
        }
        let t = self.near.begin();
        let Some(mut members) = self.fetch_user_zset(id, which, None, SET_MAX + 1).await? else {
            return Ok(None);
        };
        let whole = members.len() <= SET_MAX;
        members.truncate(SET_MAX);
        Ok(Some(self.near.install_set(key, members, whole, t)))
    }

    /// User `id`'s friends (mutual follows), newest friendship first (the later of the two
    /// follows), from the near-cache's following and followers lists when it holds both whole;
    /// None when the user is unknown, Some(None) when a list is too long to be held whole.
    pub(super) async fn near_friends(
        &self,
        id: i64,
        limit: usize,
    ) -> Result<Option<Option<Vec<i64>>>, AppError> {
        let Some(following) = self.near_list(id, 3).await? else {
            return Ok(None);
        };
        let Some(followers) = self.near_list(id, 4).await? else {
            return Ok(None);
        };
        if !(following.whole && followers.whole) {
            return Ok(Some(None));
        }
        let (few, many) = if following.len() <= followers.len() {
            (&following, &followers)
        } else {
            (&followers, &following)
        };
        let mut both: Vec<(i64, i64)> = few
            .ranked()
            .filter_map(|(m, s)| many.score(m).map(|s2| (m, s.max(s2))))
            .collect();
        both.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        both.truncate(limit);
        Ok(Some(Some(both.into_iter().map(|(m, _)| m).collect())))
    }
}
