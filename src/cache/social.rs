//! Follows in Redis: following and follower pages, and friends (mutual follows, one script on
//! one slot so the two sets are never out of step; or from the near-cache's copies of both).

use super::codec::ids_of;
use super::{Cache, RELOAD_ATTEMPTS};
use crate::error::AppError;
use fred::types::Value;

impl Cache {
    /// Whom user `id` follows (as (user, follow id)), newest first, below `cursor` when given.
    pub async fn following_page(
        &self,
        id: i64,
        cursor: Option<i64>,
        limit: usize,
    ) -> Result<Option<Vec<(i64, i64)>>, AppError> {
        self.user_zset_scored(id, 3, cursor, limit).await
    }

    /// Who follows user `id` (as (user, follow id)), newest first, below `cursor` when given.
    pub async fn followers_page(
        &self,
        id: i64,
        cursor: Option<i64>,
        limit: usize,
    ) -> Result<Option<Vec<(i64, i64)>>, AppError> {
        self.user_zset_scored(id, 4, cursor, limit).await
    }

    /// User `id`'s friends (mutual follows), newest friendship first; None when unknown. From
    /// the near-cache's lists when it holds them (`lists.rs`), else one script call.
    pub async fn friends(&self, id: i64, limit: usize) -> Result<Option<Vec<i64>>, AppError> {
        if self.near.enabled() {
            match self.near_friends(id, limit).await? {
                None => return Ok(None),
                Some(Some(ids)) => return Ok(Some(ids)),
                Some(None) => {}
            }
        }
        for _ in 0..RELOAD_ATTEMPTS {
            let mut keys = self.keys.user_all(id);
            keys.pop();
            // following, followers first; then the rest must exist too
            keys.swap(0, 3);
            keys.swap(1, 4);
            match self
                .eval(&self.scripts.friends, keys, vec![limit.to_string()])
                .await?
            {
                Value::Array(items) => return Ok(Some(ids_of(items))),
                _ => {
                    if !self.ensure_user(id).await? {
                        return Ok(None);
                    }
                }
            }
        }
        Err(AppError::Unavailable(
            "friends: not loaded after reload".into(),
        ))
    }
}
