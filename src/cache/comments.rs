//! Comments in Redis: a hash per comment (immutable) and each video's comment zset.

use super::codec::{comment_fields, comment_from_hash, ids_of};
use super::{Cache, COLD_LOADS, RELOAD_ATTEMPTS};
use crate::error::AppError;
use crate::model::CommentData;
use crate::near::{CommentPage, CommentParts};
use crate::store::CommentRecord;
use fred::prelude::*;
use fred::types::Value;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::Arc;

impl Cache {
    /// Installs a new comment's hash.
    pub async fn comment_created(&self, c: &CommentRecord) -> Result<(), AppError> {
        let keys = vec![self.keys.comment(c.id), self.keys.comment_lease(c.id)];
        let mut args = vec![String::new()];
        args.extend(comment_fields(c));
        self.eval(&self.scripts.create_entity, keys, args).await?;
        Ok(())
    }

    /// Writes comments read from the store into Redis in one pipeline (`rebuild-cache`), each
    /// hash whole. A comment never changes, so writing it again is harmless; one deleted
    /// meanwhile has left its video's list, which is where reads find comments.
    pub(super) async fn install_comments(&self, cs: &[CommentRecord]) -> Result<(), AppError> {
        if cs.is_empty() {
            return Ok(());
        }
        self.rt();
        let this = self;
        let res: Vec<Result<Value, fred::error::Error>> = self
            .pipelined(move || async move {
                let p = this.client().pipeline();
                for c in cs {
                    let mut f = comment_fields(c).into_iter();
                    let pairs: Vec<(String, String)> =
                        std::iter::from_fn(|| Some((f.next()?, f.next()?))).collect();
                    let _: () = p.hset(this.keys.comment(c.id), pairs).await?;
                }
                Ok(p)
            })
            .await?;
        for r in res {
            r?;
        }
        Ok(())
    }

    /// Drops a deleted comment's hash.
    pub async fn comment_deleted(&self, id: i64) -> Result<(), AppError> {
        self.io(self.client().del::<(), _>(self.keys.comment(id)))
            .await?;
        Ok(())
    }

    /// The comment ids of video `id`, newest first, below `cursor` (a comment id) when given;
    /// None when the video is unknown.
    pub async fn video_comment_ids(
        &self,
        id: i64,
        cursor: Option<i64>,
        limit: usize,
    ) -> Result<Option<Vec<i64>>, AppError> {
        // a comment's score is its id
        let max = cursor.map_or_else(|| "+inf".to_string(), |c| c.to_string());
        for _ in 0..RELOAD_ATTEMPTS {
            let mut keys = self.keys.video_all(id);
            keys.pop();
            keys.swap(0, 2);
            let v = self
                .eval(
                    &self.scripts.timeline_page,
                    keys,
                    vec![max.clone(), limit.to_string()],
                )
                .await?;
            match v {
                Value::Array(items) => return Ok(Some(ids_of(items))),
                _ => {
                    if !self.ensure_video(id).await? {
                        return Ok(None);
                    }
                }
            }
        }
        Err(AppError::Unavailable(
            "comments: not loaded after reload".into(),
        ))
    }

    /// The newest `count` comments of video `id` (None: no such video), newest first, with
    /// their rendering (dates at `offset_minutes` from UTC): from the near-cache when it holds
    /// them (no round trip; rendered again when an author changed), otherwise the newest `head`
    /// (at least `count`) are read from Redis and kept there until the video's comments change.
    pub async fn newest_comments(
        &self,
        id: i64,
        count: usize,
        head: usize,
        offset_minutes: i32,
    ) -> Result<Option<Arc<CommentPage>>, AppError> {
        // taken before the lookup: a page dropped after it is not installed again
        let ticket = self.near.begin();
        let held = self.near.comments(id).filter(|p| p.first(count).is_some());
        if let Some(page) = &held {
            if self.near.comments_rendered(page) {
                return Ok(Some(page.clone()));
            }
        }
        let parts = match &held {
            // the same comments, with their authors' entries as they are now
            Some(page) => page.parts().clone(),
            None => {
                let head = head.max(count);
                let Some(ids) = self.video_comment_ids(id, None, head).await? else {
                    return Ok(None);
                };
                let whole = ids.len() < head;
                CommentParts::render(&self.comments(&ids).await?, whole, offset_minutes)
            }
        };
        let users = self.user_entries(parts.authors()).await?;
        Ok(Some(self.near.install_comments(id, parts, &users, ticket)))
    }

    /// Comments by id, in the order given; deleted ones are skipped. Those not in Redis are
    /// loaded from the durable store, [`COLD_LOADS`] at a time.
    pub async fn comments(&self, ids: &[i64]) -> Result<Vec<CommentData>, AppError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut out: Vec<Option<CommentData>> = Vec::with_capacity(ids.len());
        let mut cold = Vec::new();
        self.rt();
        let this = self;
        let res: Vec<Result<HashMap<String, String>, fred::error::Error>> = self
            .pipelined(move || async move {
                let p = this.client().pipeline();
                for id in ids {
                    let _: () = p.hgetall(this.keys.comment(*id)).await?;
                }
                Ok(p)
            })
            .await?;
        for (id, r) in ids.iter().zip(res) {
            let h = r?;
            if h.is_empty() {
                cold.push((out.len(), *id));
                out.push(None);
            } else {
                out.push(Some(comment_from_hash(*id, h)));
            }
        }
        if !cold.is_empty() {
            let loaded: Vec<(usize, Option<CommentData>)> = futures_util::stream::iter(cold)
                .map(|(at, id)| async move {
                    let Some(c) = self.store.get_comment(id).await? else {
                        return Ok((at, None));
                    };
                    self.comment_created(&c).await?;
                    Ok::<_, AppError>((at, Some(CommentData::from(&c))))
                })
                .buffer_unordered(COLD_LOADS)
                .try_collect()
                .await?;
            for (at, c) in loaded {
                out[at] = c;
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}
