//! `rebuild-cache`: every user, video, comment, conversation and the feed reloaded from the
//! durable store, users and videos in pipelined batches, waiting out a Redis that stops
//! answering for a while.

use super::codec::script_int;
use super::reload::{Entity, LoadCall, Reload};
use super::Cache;
use crate::error::AppError;
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Entities `rebuild-cache` reads from the store at once (a CQL store's reads are round
/// trips), and conversations it reloads at once.
const REBUILD_IN_FLIGHT: usize = 64;

/// Users or videos `rebuild-cache` replaces in one batch: their leases go to Redis in one
/// pipeline and their load scripts in another. One at a time, each command was a write and a
/// read of its own on both sides: a tenth of the client's time went to `writev`.
const REBUILD_BATCH: usize = 64;

/// Batches in flight at once: one's store reads overlap others' scripts in Redis (2 batches of
/// 128 left Redis idle while the client read the store; bench/NOTES.md).
const BATCHES_IN_FLIGHT: usize = 4;

/// How long `rebuild-cache` waits out an unavailable Redis, in total per step (a batch, a page
/// of comments, a conversation), before it gives up: a batch job outlasts a busy Redis (a probe
/// missed during a large load) instead of failing an hour's rebuild on it.
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
    /// Reloads every user, video, comment, conversation and the feed from the durable store
    /// (`rebuild-cache`): users and videos [`REBUILD_BATCH`] at a time (see
    /// [`Self::replace_batch`]), conversations [`REBUILD_IN_FLIGHT`] at once. Comments and
    /// conversations are loaded too: otherwise the first view of a comment list or a friend
    /// list after a rebuild loads each comment or conversation from the store while the client
    /// waits.
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
            self.replace_all(Entity::User, &ids).await?;
            done.users += ids.len();
        }
        phase("users", done.users);
        after = 0;
        loop {
            let batch = self.store.scan_videos(after, 500).await?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            let ids: Vec<i64> = batch.iter().map(|v| v.id).collect();
            self.replace_all(Entity::Video, &ids).await?;
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

    /// Replaces `ids` [`REBUILD_BATCH`] at a time, [`BATCHES_IN_FLIGHT`] batches at once.
    async fn replace_all(&self, what: Entity, ids: &[i64]) -> Result<(), AppError> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        stream::iter(ids.chunks(REBUILD_BATCH))
            .map(|batch| self.patiently(batch[0], move || self.replace_batch(what, batch)))
            .buffer_unordered(BATCHES_IN_FLIGHT)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// Replaces a batch of users or videos: every lease in one pipeline, the store reads
    /// ([`REBUILD_IN_FLIGHT`] at once), then every load script in one pipeline. Any that did
    /// not load that way (its lease lost to a writer, a script missing from a restarted Redis)
    /// is replaced alone, with the per-entity reload a read's miss uses.
    async fn replace_batch(&self, what: Entity, ids: &[i64]) -> Result<(), AppError> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let leases: Vec<(String, Vec<String>, String)> = ids
            .iter()
            .map(|&id| {
                let (lease, keys) = self.lease_keys(what, id, Reload::Replace);
                (lease, keys, Self::token())
            })
            .collect();
        self.replace_leases(&leases).await?;
        let calls: Vec<LoadCall> = stream::iter(ids.iter().zip(&leases))
            .map(|(&id, (_, _, token))| self.load_call(what, id, token.clone()))
            .buffered(REBUILD_IN_FLIGHT)
            .try_collect()
            .await?;
        let script = self.load_script(what);
        let mut alone = Vec::new();
        let mut ready = Vec::with_capacity(calls.len());
        for (&id, call) in ids.iter().zip(calls) {
            match call {
                LoadCall::Gone => {}
                LoadCall::LeaseLost => alone.push(id),
                LoadCall::Ready(keys, args) => {
                    // EVALSHA's arguments: fred's pipelines have no Lua commands
                    let mut call = Vec::with_capacity(2 + keys.len() + args.len());
                    call.extend([
                        Value::from(script.sha1().clone()),
                        Value::from(keys.len() as i64),
                    ]);
                    call.extend(keys.into_iter().chain(args).map(Value::from));
                    ready.push((id, call));
                }
            }
        }
        self.rt();
        let ready_ref = &ready;
        let res: Vec<Result<Value, fred::error::Error>> = self
            .pipelined(move || async move {
                let p = self.client().pipeline();
                for (_, call) in ready_ref {
                    // routed by the first key's slot, as EVALSHA itself is
                    let cmd = CustomCommand::new_static("EVALSHA", ClusterHash::Offset(2), false);
                    let _: () = p.custom(cmd, call.clone()).await?;
                }
                Ok(p)
            })
            .await?;
        for ((id, ..), r) in ready.iter().zip(res) {
            match r {
                Ok(v) if script_int(&v) == Some(1) => {
                    self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                }
                _ => alone.push(*id),
            }
        }
        for id in alone {
            self.load_entity(what, id, Reload::Replace).await?;
        }
        Ok(())
    }

    /// Replaces each of `ids` with `replace` (drop its keys, take the lease, read the store,
    /// run the load script), up to [`REBUILD_IN_FLIGHT`] at once.
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
}
