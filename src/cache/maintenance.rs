//! Whole-cache operations besides `rebuild-cache` (`rebuild.rs`): replaying an outbox entry
//! (drop what it touched) and reading cached counters for `check`.

use super::Cache;
use crate::error::AppError;
use crate::store::OutboxOp;
use fred::prelude::*;
use fred::types::Value;

impl Cache {
    /// Applies an outbox entry left behind by a crash or a Redis outage: drops every key the
    /// change touched, so the next read reloads it whole from the durable store.
    pub async fn replay(&self, op: &OutboxOp) -> Result<(), AppError> {
        let keys = match op {
            OutboxOp::UserCreated { user_id } => self.keys.user_keys_all(*user_id),
            OutboxOp::VideoPublished {
                video_id,
                author_id,
            } => {
                let mut k = self.keys.video_keys_all(*video_id);
                k.extend([self.keys.feed(), self.keys.feed_lease()]);
                k.extend(self.keys.user_keys_all(*author_id));
                k
            }
            OutboxOp::LikeChanged {
                user_id,
                video_id,
                author_id,
            } => {
                let mut k = self.keys.user_keys_all(*user_id);
                k.extend(self.keys.user_keys_all(*author_id));
                k.extend(self.keys.video_keys_all(*video_id));
                k
            }
            OutboxOp::CommentChanged {
                video_id,
                comment_id,
            } => {
                let mut k = self.keys.video_keys_all(*video_id);
                k.push(self.keys.comment(*comment_id));
                k
            }
            OutboxOp::FollowChanged { follower, followee } => {
                let mut k = self.keys.user_keys_all(*follower);
                k.extend(self.keys.user_keys_all(*followee));
                k
            }
            OutboxOp::SessionChanged { user_id } => vec![self.keys.session(*user_id)],
            OutboxOp::MessageSent { from, to } => {
                vec![
                    self.keys.conversation(*from, *to),
                    self.keys.conversation_lease(*from, *to),
                ]
            }
        };
        // One DEL per key: keys live in different slots.
        for k in keys {
            self.rt();
            self.io(self.client().del::<(), _>(k)).await?;
        }
        self.near.clear();
        Ok(())
    }

    /// The counters Redis holds for `fields` of each key (None where the key is not cached),
    /// without reloading anything; for consistency checks.
    async fn cached_counters(
        &self,
        keys: Vec<String>,
        fields: &[&str],
    ) -> Result<Vec<Option<Vec<i64>>>, AppError> {
        self.rt();
        let p = self.client().pipeline();
        for k in &keys {
            let _: () = p.exists(k.as_str()).await?;
            let _: () = p.hmget(k.as_str(), fields.to_vec()).await?;
        }
        let res: Vec<Result<Value, fred::error::Error>> = self.health.guard(p.try_all()).await?;
        let mut it = res.into_iter();
        let mut out = Vec::with_capacity(keys.len());
        for _ in &keys {
            let exists = it.next().transpose()?.and_then(|v| v.as_i64()).unwrap_or(0);
            let vals = it.next().transpose()?;
            out.push(match (exists, vals) {
                (1, Some(Value::Array(items))) => Some(
                    items
                        .iter()
                        .map(|v| {
                            v.as_i64()
                                .or_else(|| v.as_string().and_then(|s| s.parse().ok()))
                                .unwrap_or(0)
                        })
                        .collect(),
                ),
                _ => None,
            });
        }
        Ok(out)
    }

    /// (favorite_count, comment_count) of each video as cached in Redis.
    pub async fn cached_video_counters(
        &self,
        ids: &[i64],
    ) -> Result<Vec<Option<(i64, i64)>>, AppError> {
        let keys = ids.iter().map(|i| self.keys.video(*i)).collect();
        let got = self
            .cached_counters(keys, &["favorite_count", "comment_count"])
            .await?;
        Ok(got.into_iter().map(|v| v.map(|v| (v[0], v[1]))).collect())
    }

    /// [favorite_count, total_favorited, follow_count, follower_count] of each user as cached.
    pub async fn cached_user_counters(
        &self,
        ids: &[i64],
    ) -> Result<Vec<Option<[i64; 4]>>, AppError> {
        let keys = ids.iter().map(|i| self.keys.user(*i)).collect();
        let fields = [
            "favorite_count",
            "total_favorited",
            "follow_count",
            "follower_count",
        ];
        let got = self.cached_counters(keys, &fields).await?;
        Ok(got
            .into_iter()
            .map(|v| v.map(|v| [v[0], v[1], v[2], v[3]]))
            .collect())
    }
}
