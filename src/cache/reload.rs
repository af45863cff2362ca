//! Reload-on-miss machinery shared by every area: single-flight per key in this process, and
//! the reload lease that writers revoke so that a slow reload never installs stale data.

use super::codec::script_int;
use super::{Cache, RELOAD_ATTEMPTS};
use crate::error::AppError;
use fred::prelude::*;
use fred::types::Value;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Whether a reload loads what is missing or replaces what is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reload {
    /// Load only when a key is missing (a read's miss).
    IfMissing,
    /// Drop every key and load again (`rebuild-cache`).
    Replace,
}

/// How long a reload lease lives when its loader dies.
const LEASE_MS: u64 = 30_000;

/// What a staged set holds (`load_chunk.lua`'s kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Zset members scored by themselves (ids).
    Ids,
    /// Flat (score, member) pairs.
    Pairs,
    /// HyperLogLog elements.
    Hll,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ids => "ids",
            Kind::Pairs => "pairs",
            Kind::Hll => "hll",
        }
    }
    /// Strings per member.
    pub(super) fn width(self) -> usize {
        match self {
            Kind::Pairs => 2,
            _ => 1,
        }
    }
}

/// What [`Cache::stage`] left for the load script.
pub(super) struct Staged {
    /// Whether part of the set waits in its staging key ('1' in the load script's flags).
    pub staged: bool,
    /// Where the members to pass inline start (the caller moves them into the arguments).
    pub from: usize,
}

/// An entity reloaded whole by one load script, with its sets: a user or a video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Entity {
    User,
    Video,
}

/// What a reload read from the durable store for an entity's load script.
pub(super) enum LoadCall {
    /// The entity is not in the store (its lease is dropped).
    Gone,
    /// The lease was lost while large sets were staged: take it again.
    LeaseLost,
    /// The load script's keys and arguments.
    Ready(Vec<String>, Vec<String>),
}

/// Removes a single-flight entry when its last user is done with it.
struct FlightCleanup<'a> {
    flights: &'a Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    key: &'a str,
    lock: &'a Arc<tokio::sync::Mutex<()>>,
}

impl Drop for FlightCleanup<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        // the map's reference and ours: nobody else is waiting
        if map.get(self.key).is_some_and(|l| Arc::ptr_eq(l, self.lock))
            && Arc::strong_count(self.lock) <= 2
        {
            map.remove(self.key);
        }
    }
}

impl Cache {
    /// Runs `load` for `key` one task at a time in this process: concurrent misses queue
    /// behind the first, and each then finds the key loaded (one cheap check) instead of
    /// loading it again. The entry is removed by the last task out, also when a task is
    /// cancelled mid-load.
    pub(super) async fn single_flight<F, Fut>(&self, key: String, load: F) -> Result<(), AppError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), AppError>>,
    {
        let lock = {
            let mut map = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .clone()
        };
        let _cleanup = FlightCleanup {
            flights: &self.flights,
            key: &key,
            lock: &lock,
        };
        let _turn = lock.lock().await;
        load().await
    }

    /// Stages all but the last `redis.load_chunk` members of a set (`items`, flat) in `real`'s
    /// staging key under the lease `lease`, one `load_chunk.lua` call per `redis.load_chunk`
    /// members (a few ms of Redis time each, so that a user with 100k followers or a feed of a
    /// million videos never blocks Redis, and its health probe, for long); the load script
    /// renames the staging key over `real` and adds the tail. None: the lease was lost.
    pub(super) async fn stage(
        &self,
        lease: &str,
        real: &str,
        kind: Kind,
        token: &str,
        items: &[String],
    ) -> Result<Option<Staged>, AppError> {
        let step = self.load_chunk * kind.width();
        if items.len() <= step {
            return Ok(Some(Staged {
                staged: false,
                from: 0,
            }));
        }
        let split = items.len() - step;
        let keys = vec![lease.to_string(), self.keys.staging(real)];
        for (i, chunk) in items[..split].chunks(step).enumerate() {
            let mut args = Vec::with_capacity(chunk.len() + 3);
            args.extend([
                token.to_string(),
                if i == 0 { "first" } else { "more" }.to_string(),
                kind.name().to_string(),
            ]);
            args.extend_from_slice(chunk);
            let r = self
                .eval(&self.scripts.load_chunk, keys.clone(), args)
                .await?;
            if script_int(&r) != Some(1) {
                return Ok(None);
            }
            self.stats.staged_chunks.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Some(Staged {
            staged: true,
            from: split,
        }))
    }

    /// Stages each of `sets` (real key, kind, members) with [`Cache::stage`]: the load script's
    /// flags ('1' for each set staged) and where each set's inline members start, or None when
    /// the lease was lost.
    pub(super) async fn stage_sets(
        &self,
        lease: &str,
        token: &str,
        sets: &[(&str, Kind, &[String])],
    ) -> Result<Option<(String, Vec<usize>)>, AppError> {
        let mut flags = String::with_capacity(sets.len());
        let mut froms = Vec::with_capacity(sets.len());
        for (real, kind, items) in sets {
            let Some(st) = self.stage(lease, real, *kind, token, items).await? else {
                return Ok(None);
            };
            flags.push(if st.staged { '1' } else { '0' });
            froms.push(st.from);
        }
        Ok(Some((flags, froms)))
    }

    /// Installs a whole zset (the feed, a conversation) with `load_timeline.lua`, staging its
    /// head first when it is large. False: the lease was lost (reload again).
    pub(super) async fn install_zset(
        &self,
        key: &str,
        lease: &str,
        kind: Kind,
        token: String,
        mut items: Vec<String>,
    ) -> Result<bool, AppError> {
        let Some(st) = self.stage(lease, key, kind, &token, &items).await? else {
            return Ok(false);
        };
        // the staged head is in Redis already: only the tail goes inline
        items.drain(..st.from);
        let (keys, args) = self.timeline_call(key, lease, kind, token, st.staged, items);
        let r = self.eval(&self.scripts.load_timeline, keys, args).await?;
        Ok(script_int(&r) == Some(1))
    }

    /// `load_timeline.lua`'s keys and arguments: zset `key` under the lease `lease` (token
    /// `token`), its head `staged` in its staging key or not, then `items` (flat, of `kind`).
    pub(super) fn timeline_call(
        &self,
        key: &str,
        lease: &str,
        kind: Kind,
        token: String,
        staged: bool,
        items: Vec<String>,
    ) -> (Vec<String>, Vec<String>) {
        let mut args = Vec::with_capacity(items.len() + 3);
        args.extend([
            token,
            kind.name().to_string(),
            if staged { "1" } else { "0" }.to_string(),
        ]);
        args.extend(items);
        let keys = vec![key.to_string(), lease.to_string(), self.keys.staging(key)];
        (keys, args)
    }

    pub(super) fn token() -> String {
        rand::random::<u64>().to_string()
    }

    /// Reloads user or video `id` from the durable store: if it is not in Redis
    /// ([`Reload::IfMissing`]), or dropping its keys first ([`Reload::Replace`]). One task at a
    /// time per entity in this process; false when the store does not hold it.
    pub(super) async fn load_entity(
        &self,
        what: Entity,
        id: i64,
        mode: Reload,
    ) -> Result<bool, AppError> {
        let mut exists = true;
        let key = match what {
            Entity::User => self.keys.user(id),
            Entity::Video => self.keys.video(id),
        };
        self.single_flight(key, || async {
            let (lease, keys) = self.lease_keys(what, id, mode);
            for _ in 0..RELOAD_ATTEMPTS {
                let token = Self::token();
                if !self.take_lease(lease.clone(), &keys, &token, mode).await? {
                    return Ok(());
                }
                let (keys, args) = match self.load_call(what, id, token).await? {
                    LoadCall::Gone => {
                        exists = false;
                        return Ok(());
                    }
                    LoadCall::LeaseLost => continue,
                    LoadCall::Ready(keys, args) => (keys, args),
                };
                let r = self.eval(self.load_script(what), keys, args).await?;
                if script_int(&r) == Some(1) {
                    self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(?what, id, "reloaded from durable store");
                    return Ok(());
                }
            }
            Err(AppError::Unavailable(format!(
                "{what:?} {id}: reload kept losing its lease"
            )))
        })
        .await?;
        Ok(exists)
    }

    /// The entity's lease and the keys its lease script checks or drops (`users.rs`,
    /// `videos.rs`).
    pub(super) fn lease_keys(&self, what: Entity, id: i64, mode: Reload) -> (String, Vec<String>) {
        match what {
            Entity::User => self.user_lease_keys(id, mode),
            Entity::Video => self.video_lease_keys(id, mode),
        }
    }

    /// Reads the entity from the store under the lease `token` and makes its load script's
    /// call.
    pub(super) async fn load_call(
        &self,
        what: Entity,
        id: i64,
        token: String,
    ) -> Result<LoadCall, AppError> {
        match what {
            Entity::User => self.user_load_call(id, token).await,
            Entity::Video => self.video_load_call(id, token).await,
        }
    }

    /// The entity's load script.
    pub(super) fn load_script(&self, what: Entity) -> &fred::types::scripts::Script {
        match what {
            Entity::User => &self.scripts.load_user,
            Entity::Video => &self.scripts.load_video,
        }
    }

    /// Takes the reload lease `lease` unless every one of `keys` exists (false: nothing to
    /// load). [`Reload::Replace`] deletes `keys` and always takes it.
    pub(super) async fn take_lease(
        &self,
        lease: String,
        keys: &[String],
        token: &str,
        mode: Reload,
    ) -> Result<bool, AppError> {
        if mode == Reload::Replace {
            let one = [(lease, keys.to_vec(), token.to_string())];
            self.replace_leases(&one).await?;
            return Ok(true);
        }
        let mut k = vec![lease];
        k.extend_from_slice(keys);
        let args = vec![token.into(), LEASE_MS.to_string()];
        let v = self.eval(&self.scripts.lease, k, args).await?;
        Ok(script_int(&v) == Some(1))
    }

    /// [`Reload::Replace`]'s leases, each (lease, keys, token): DEL the keys, then SET the
    /// lease, as plain commands in one round trip for all of them. No script is needed: both
    /// land before the caller reads the store, so a writer that comes between them has already
    /// written the store (the read sees its change), and one that comes after finds its key
    /// missing and revokes the lease. A script's own cost (about 10 µs of Redis time) was a
    /// fifth of `rebuild-cache`'s.
    pub(super) async fn replace_leases(
        &self,
        leases: &[(String, Vec<String>, String)],
    ) -> Result<(), AppError> {
        self.rt();
        let res: Vec<Result<Value, fred::error::Error>> = self
            .pipelined(move || async move {
                let p = self.client().pipeline();
                for (lease, keys, token) in leases {
                    let _: () = p.del(keys.clone()).await?;
                    let px = Some(fred::types::Expiration::PX(LEASE_MS as i64));
                    let _: () = p
                        .set(lease.as_str(), token.as_str(), px, None, false)
                        .await?;
                }
                Ok(p)
            })
            .await?;
        for r in res {
            r?;
        }
        Ok(())
    }
}
