//! `rebuild-cache`: every user, video, comment, conversation and the feed reloaded from the
//! durable store, users, videos and conversations in pipelined batches, waiting out a Redis
//! that stops answering for a while.

use super::codec::script_int;
use super::reload::{Entity, LoadCall, Reload};
use super::Cache;
use crate::error::AppError;
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Entities or conversations a batch of `rebuild-cache` reads from the store at once (a CQL
/// store's reads are round trips).
const REBUILD_IN_FLIGHT: usize = 64;

/// Users, videos or conversations `rebuild-cache` replaces in one batch: their leases go to
/// Redis in one pipeline and their load scripts in another. One at a time, each command was a
/// write and a read of its own on both sides: a tenth of the client's time went to `writev`.
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
    /// (`rebuild-cache`): users, videos and conversations [`REBUILD_BATCH`] at a time (see
    /// [`Self::replace_batch`]), comments a page a pipeline. Comments and conversations are
    /// loaded too: otherwise the first view of a comment list or a friend list after a rebuild
    /// loads each comment or conversation from the store while the client waits.
    pub async fn rebuild_all(&self) -> Result<Rebuilt, AppError> {
        let mut done = Rebuilt::default();
        let started = Instant::now();
        let singles = || self.stats.rebuild_singles.load(Ordering::Relaxed);
        let mut singles_before = singles();
        let mut phase = |what: &str, n: usize| {
            let secs = started.elapsed().as_secs_f64();
            // loaded one at a time because their batch did not: a fallback, so it is counted
            let alone = singles() - singles_before;
            singles_before = singles();
            tracing::info!(what, n, alone, secs, "rebuild-cache: loaded");
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
            self.in_batches(&ids, |b| self.replace_batch(Entity::User, b))
                .await?;
            done.users += ids.len();
        }
        phase("users", done.users);
        after = 0;
        loop {
            let batch = self.store.scan_videos(after, 500).await?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            let ids: Vec<i64> = batch.iter().map(|v| v.id).collect();
            self.in_batches(&ids, |b| self.replace_batch(Entity::Video, b))
                .await?;
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
            self.in_batches(&pairs, |b| self.replace_conversations(b))
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

    /// Runs `replace` on `items` [`REBUILD_BATCH`] at a time, [`BATCHES_IN_FLIGHT`] batches at
    /// once.
    async fn in_batches<'a, T, Fut>(
        &self,
        items: &'a [T],
        replace: impl Fn(&'a [T]) -> Fut,
    ) -> Result<(), AppError>
    where
        T: std::fmt::Debug,
        Fut: std::future::Future<Output = Result<(), AppError>>,
    {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let replace = &replace;
        stream::iter(items.chunks(REBUILD_BATCH))
            .map(|batch| self.patiently(&batch[0], move || replace(batch)))
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
        let mut alone = Vec::new();
        let mut ready = Vec::with_capacity(calls.len());
        for (&id, call) in ids.iter().zip(calls) {
            match call {
                LoadCall::Gone => {}
                LoadCall::LeaseLost => alone.push(id),
                LoadCall::Ready(keys, args) => ready.push((id, keys, args)),
            }
        }
        alone.extend(self.load_all(self.load_script(what), ready).await?);
        let n = alone.len() as u64;
        self.stats.rebuild_singles.fetch_add(n, Ordering::Relaxed);
        for id in alone {
            self.load_entity(what, id, Reload::Replace).await?;
        }
        Ok(())
    }

    /// Replaces a batch of conversations as [`Self::replace_batch`] does users and videos; one
    /// too long for one script, or that did not load that way, is replaced alone.
    async fn replace_conversations(&self, pairs: &[(i64, i64)]) -> Result<(), AppError> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let leases: Vec<(String, Vec<String>, String)> = pairs
            .iter()
            .map(|&(a, b)| {
                let key = self.keys.conversation(a, b);
                (self.keys.conversation_lease(a, b), vec![key], Self::token())
            })
            .collect();
        self.replace_leases(&leases).await?;
        let calls: Vec<_> = stream::iter(pairs.iter().zip(&leases))
            .map(|(&(a, b), (_, _, token))| self.conversation_call(a, b, token.clone()))
            .buffered(REBUILD_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut alone = Vec::new();
        let mut ready = Vec::with_capacity(calls.len());
        for (&pair, call) in pairs.iter().zip(calls) {
            match call {
                Some((keys, args)) => ready.push((pair, keys, args)),
                None => alone.push(pair),
            }
        }
        alone.extend(self.load_all(&self.scripts.load_timeline, ready).await?);
        let n = alone.len() as u64;
        self.stats.rebuild_singles.fetch_add(n, Ordering::Relaxed);
        for (a, b) in alone {
            self.replace_conversation(a, b).await?;
        }
        Ok(())
    }

    /// Runs `script` once for each of `calls` (what it loads, its keys, its arguments) in one
    /// pipeline, counting each that loaded (returned 1) as a reload; returns the others.
    async fn load_all<T: Copy>(
        &self,
        script: &fred::types::scripts::Script,
        calls: Vec<(T, Vec<String>, Vec<String>)>,
    ) -> Result<Vec<T>, AppError> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        // EVALSHA's arguments: fred's pipelines have no Lua commands
        let calls: Vec<(T, Vec<Value>)> = calls
            .into_iter()
            .map(|(what, keys, args)| {
                let mut call = Vec::with_capacity(2 + keys.len() + args.len());
                call.extend([
                    Value::from(script.sha1().clone()),
                    Value::from(keys.len() as i64),
                ]);
                call.extend(keys.into_iter().chain(args).map(Value::from));
                (what, call)
            })
            .collect();
        self.rt();
        let calls_ref = &calls;
        let res: Vec<Result<Value, fred::error::Error>> = self
            .pipelined(move || async move {
                let p = self.client().pipeline();
                for (_, call) in calls_ref {
                    // routed by the first key's slot, as EVALSHA itself is
                    let cmd = CustomCommand::new_static("EVALSHA", ClusterHash::Offset(2), false);
                    let _: () = p.custom(cmd, call.clone()).await?;
                }
                Ok(p)
            })
            .await?;
        let mut failed = Vec::new();
        for ((what, _), r) in calls.iter().zip(res) {
            match r {
                Ok(v) if script_int(&v) == Some(1) => {
                    self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                }
                _ => failed.push(*what),
            }
        }
        Ok(failed)
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
