//! Whole-cache operations: replaying an outbox entry (drop what it touched), `rebuild-cache`
//! (users, videos, comments, conversations and the feed), and reading cached counters for
//! `check`.

use super::Cache;
use crate::error::AppError;
use crate::store::OutboxOp;
use fred::prelude::*;
use fred::types::Value;
use std::time::{Duration, Instant};

/// Entities `rebuild-cache` reloads at once.
const REBUILD_IN_FLIGHT: usize = 64;

/// How long `rebuild-cache` waits out an unavailable Redis, in total per entity, before it
/// gives up: a batch job outlasts a busy Redis (a probe missed during a large load) instead of
/// failing an hour's rebuild on it.
const REBUILD_PATIENCE: Duration = Duration::from_secs(60);

/// What `rebuild-cache` loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rebuilt {
    pub users: usize,
    pub videos: usize,
    /// Comments not deleted.
    pub comments: usize,
    /// Conversations that hold messages.
    pub conversations: usize,
}

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

    /// Reloads every user, video, comment, conversation and the feed from the durable store
    /// (`rebuild-cache`), up to [`REBUILD_IN_FLIGHT`] entities at once: each reload is a few
    /// store reads and one script, so one at a time leaves Redis and the store waiting on
    /// each other's round trips. Comments and conversations are loaded too: otherwise the
    /// first view of a comment list or a friend list after a rebuild loads each comment or
    /// conversation from the store while the client waits.
    pub async fn rebuild_all(&self) -> Result<Rebuilt, AppError> {
        let mut done = Rebuilt::default();
        let started = Instant::now();
        let phase = |what: &str, n: usize| {
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(what, n, secs, "rebuild-cache: loaded");
        };
        self.patiently(0, || async {
            self.io(self.client().del::<(), _>(self.keys.feed()))
                .await?;
            self.ensure_feed().await
        })
        .await?;
        let mut after = 0;
        loop {
            let batch = self.store.scan_users(after, 500).await?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            let ids: Vec<i64> = batch.iter().map(|u| u.id).collect();
            self.reload(&ids, |id| self.replace_user(id)).await?;
            done.users += ids.len();
        }
        phase("users", done.users);
        after = 0;
        loop {
            let batch = self.store.scan_videos(after, 500).await?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            let ids: Vec<i64> = batch.iter().map(|v| v.id).collect();
            self.reload(&ids, |id| self.replace_video(id)).await?;
            done.videos += ids.len();
        }
        phase("videos", done.videos);
        // comment hashes (the videos' lists of ids are loaded with the videos), a page a
        // pipeline: a first view of a long comment list would load each from the store
        let mut cursor = Vec::new();
        loop {
            let (page, next) = self.store.scan_comments(&cursor, 1000).await?;
            self.patiently(0, || self.install_comments(&page)).await?;
            done.comments += page.len();
            match next {
                Some(c) => cursor = c,
                None => break,
            }
        }
        phase("comments", done.comments);
        let mut cursor = Vec::new();
        loop {
            let (pairs, next) = self.store.scan_conversations(&cursor, 500).await?;
            self.reload(&pairs, |(a, b)| self.replace_conversation(a, b))
                .await?;
            done.conversations += pairs.len();
            match next {
                Some(c) => cursor = c,
                None => break,
            }
        }
        phase("conversations", done.conversations);
        self.near.clear();
        Ok(done)
    }

    /// Replaces each of `ids` (drops its keys and loads it again from the store: one script
    /// for the drop and the lease, then the store reads and the load script), up to
    /// [`REBUILD_IN_FLIGHT`] at once.
    async fn reload<Id, T, Fut>(
        &self,
        ids: &[Id],
        replace: impl Fn(Id) -> Fut,
    ) -> Result<(), AppError>
    where
        Id: Copy + std::fmt::Debug,
        Fut: std::future::Future<Output = Result<T, AppError>>,
    {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let replace = &replace;
        stream::iter(ids)
            .map(|&id| self.patiently(id, move || replace(id)))
            .buffer_unordered(REBUILD_IN_FLIGHT)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// Runs `step` (of entity `id`; 0: the feed) and runs it again while Redis is unavailable
    /// (a probe missed while Redis was busy, a restart), waiting for it to answer again, for up
    /// to [`REBUILD_PATIENCE`]. Every step replaces what it loads, so running it again is safe.
    async fn patiently<T, Fut>(
        &self,
        id: impl std::fmt::Debug,
        step: impl Fn() -> Fut,
    ) -> Result<T, AppError>
    where
        Fut: std::future::Future<Output = Result<T, AppError>>,
    {
        let started = Instant::now();
        loop {
            match step().await {
                Err(AppError::Unavailable(why)) if started.elapsed() < REBUILD_PATIENCE => {
                    tracing::warn!(
                        entity = ?id,
                        %why,
                        "rebuild-cache: redis unavailable; waiting for it, then again"
                    );
                    let left = REBUILD_PATIENCE.saturating_sub(started.elapsed());
                    self.health.wait_up(left).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                r => return r,
            }
        }
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
