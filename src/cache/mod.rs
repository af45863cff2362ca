//! Redis, the primary serving store: the connection, the scripts, and the areas' operations.
//!
//! Every key carries a hash tag (`{id}`) so that each script touches one slot and stays valid on
//! Redis Cluster. Entities that span slots are changed by one script per slot, in an order that
//! keeps reads consistent (see ARCHITECTURE.md). Redis can always be rebuilt from the durable
//! store: a read that misses reloads the key from the store (`reload.rs`).
//!
//! [`Cache`] holds what every area shares (connections, keys, scripts, the store to reload from,
//! the near-cache); each area adds its operations in an `impl Cache` block of its own file, so
//! that call sites stay `cache.friends(..)` and no area owns a copy of the shared parts.

mod batch;
mod chat;
mod codec;
mod comments;
mod feed;
mod flags;
pub mod health;
mod keys;
mod limits;
mod lists;
mod maintenance;
mod rebuild;
mod reload;
mod scripts;
mod sessions;
mod social;
mod users;
pub mod versioned;
mod videos;

pub use keys::Keys;
pub use rebuild::Rebuilt;
pub use scripts::Scripts;

use crate::config::RedisConfig;
use crate::error::AppError;
use crate::near::NearCache;
use crate::store::Store;
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many times a read reloads a key that a concurrent write keeps dropping.
const RELOAD_ATTEMPTS: usize = 8;
/// Up to how many distinct viewers a video's play count is exact: they are kept in a set beside
/// the HyperLogLog. Past it the set is dropped and the count is the HyperLogLog's estimate,
/// never less than the exact count it had (`lua/play.lua`). A HyperLogLog alone can count two
/// viewers as one when they fall in one register, which a user sees on a video with few plays.
pub const EXACT_VIEWERS: usize = 128;
/// How many objects one request loads from the durable store into Redis at once (cold
/// conversations of a friend list, cold comments of a comment list): one at a time, a list of
/// a thousand waited for a thousand round trips in turn.
const COLD_LOADS: usize = 16;
/// How many times a multi-key call is made again while its slot is being moved (TRYAGAIN).
const TRYAGAIN_ATTEMPTS: usize = 16;

/// Counters for tests and metrics.
#[derive(Default, Debug)]
pub struct CacheStats {
    /// Keys reloaded from the durable store.
    pub reloads: AtomicU64,
    /// Chunks of large sets staged by reloads (`lua/load_chunk.lua`).
    pub staged_chunks: AtomicU64,
    /// Users, videos and conversations `rebuild-cache` loaded one at a time because its batch
    /// did not (a lease lost to a writer, a script missing, a conversation too long for one
    /// script).
    pub rebuild_singles: AtomicU64,
    /// Redis round trips (a script call, a pipeline or a single command).
    pub round_trips: AtomicU64,
}

/// The Redis side of the app, with the durable store it reloads from.
pub struct Cache {
    pub pool: Pool,
    pub keys: Keys,
    scripts: Scripts,
    store: Arc<dyn Store>,
    /// In-flight reloads by key, so concurrent misses share one reload.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub stats: CacheStats,
    /// In-process copies of videos, users and the feed head (see `near.rs`).
    pub near: Arc<NearCache>,
    /// The invalidation subscriber; stopped when the cache is dropped.
    tracker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Whether Redis answers; calls fail at once while it does not (see `health.rs`).
    pub health: health::Health,
    /// For the per-worker connections (see [`Cache::attach_worker`]).
    config: Config,
    timeout: Duration,
    /// `redis.load_chunk`: the most members of a set one load script installs.
    load_chunk: usize,
}

thread_local! {
    /// This thread's own Redis connection per cache (keyed by the cache's address), made by
    /// [`Cache::attach_worker`] on an HTTP worker so that its round trips stay on its thread.
    static WORKER_CLIENTS: std::cell::RefCell<Vec<(usize, Client)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn builder(config: Config, timeout: Duration) -> Builder {
    // on a cluster a moved slot re-syncs the routing, which may close connections under
    // commands in flight: they are sent again, a few times
    let attempts = if config.server.is_clustered() { 6 } else { 2 };
    let mut b = Builder::from_config(config);
    b.with_performance_config(|p| p.default_command_timeout = timeout)
        .with_connection_config(|c| {
            c.connection_timeout = timeout;
            c.internal_command_timeout = timeout;
            c.max_command_attempts = attempts;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2));
    b
}

/// The waits between attempts at a call whose slot is being moved: 2 ms doubling to 100 ms,
/// [`TRYAGAIN_ATTEMPTS`] in all (about a second).
struct MovingSlot {
    delay: Duration,
    left: usize,
}

impl MovingSlot {
    fn new() -> Self {
        MovingSlot {
            delay: Duration::from_millis(2),
            left: TRYAGAIN_ATTEMPTS,
        }
    }

    /// Waits before the next attempt; false when none is left.
    async fn wait(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_millis(100));
        true
    }
}

/// Whether `e` says the call's slot is being moved between Redis Cluster nodes.
fn moving(e: &fred::error::Error) -> bool {
    e.details().starts_with("TRYAGAIN")
        || (*e.kind() == fred::error::ErrorKind::Routing && e.details().contains("redirections"))
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.health.stop();
        if let Some(t) = self
            .tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            t.abort();
        }
    }
}

impl Cache {
    /// Connects to Redis at `url` (settings in `cfg`), loads the scripts and starts probing
    /// its health. Fails when Redis is unreachable.
    pub async fn connect(
        url: &str,
        cfg: &RedisConfig,
        store: Arc<dyn Store>,
        near: Arc<NearCache>,
        tracking: bool,
    ) -> Result<Self, AppError> {
        let (prefix, pool_size) = (cfg.key_prefix.as_str(), cfg.pool_size);
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let config =
            Config::from_url(url).map_err(|e| AppError::Internal(format!("redis url: {e}")))?;
        let pool = builder(config.clone(), timeout)
            .build_pool(pool_size.max(1))
            .map_err(|e| AppError::Internal(format!("redis: {e}")))?;
        let init = tokio::time::timeout(timeout, pool.init()).await;
        match init {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(AppError::Unavailable(format!("redis at {url}: {e}"))),
            Err(_) => {
                return Err(AppError::Unavailable(format!(
                    "redis at {url}: connect timed out"
                )))
            }
        }
        let cache = Self {
            pool,
            keys: Keys::new(prefix),
            scripts: Scripts::new(),
            store,
            flights: Mutex::new(HashMap::new()),
            stats: CacheStats::default(),
            near,
            tracker: Mutex::new(None),
            health: health::Health::new(),
            config,
            timeout,
            load_chunk: cfg.load_chunk.max(16),
        };
        for s in cache.scripts.all() {
            s.load(cache.pool.next()).await?;
        }
        cache.health.start(
            cache.config.clone(),
            Duration::from_millis(cfg.probe_interval_ms.max(10)),
            Duration::from_millis(cfg.probe_timeout_ms.max(10)),
        );
        if tracking && cache.near.enabled() {
            let t = crate::near::track::track(url, prefix, timeout, cache.near.clone());
            *cache.tracker.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
        }
        Ok(cache)
    }

    fn rt(&self) {
        self.stats.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    /// Gives the calling thread (an HTTP worker) a Redis connection of its own, driven by its
    /// own runtime: a round trip then wakes no other thread. Without it (or if it fails to
    /// connect) the thread uses the shared pool, whose connections live on the main runtime.
    pub async fn attach_worker(&self) {
        let key = self as *const Cache as usize;
        if WORKER_CLIENTS.with(|w| w.borrow().iter().any(|(k, _)| *k == key)) {
            return;
        }
        let client = match builder(self.config.clone(), self.timeout).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "worker redis connection not built; using the pool");
                return;
            }
        };
        match tokio::time::timeout(self.timeout, client.init()).await {
            Ok(Ok(_)) => WORKER_CLIENTS.with(|w| w.borrow_mut().push((key, client))),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "worker redis connection failed; using the pool")
            }
            Err(_) => tracing::warn!("worker redis connection timed out; using the pool"),
        }
    }

    fn client(&self) -> Client {
        let key = self as *const Cache as usize;
        WORKER_CLIENTS
            .with(|w| {
                w.borrow()
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, c)| c.clone())
            })
            .unwrap_or_else(|| self.pool.next().clone())
    }

    async fn eval(
        &self,
        s: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<Value, AppError> {
        self.rt();
        let client = self.client();
        // converted once: a retry (and fred's own NOSCRIPT retry) clones reference-counted
        // strings, not every key and argument again (a reload's load script passes thousands)
        let keys = fred::types::MultipleKeys::from(keys);
        let args = Value::Array(args.into_iter().map(Value::from).collect());
        self.io_retry(|| s.evalsha_with_reload::<Value, _, _>(&client, keys.clone(), args.clone()))
            .await
    }

    /// [`Cache::io`], made again while a Redis Cluster is moving the call's slot: a multi-key
    /// call meets its keys in two places (TRYAGAIN), or an ASK redirection loses its ASKING to
    /// another command on the shared connection and bounces (too many redirections). Gives up
    /// after about a second.
    async fn io_retry<T, F, Fut>(&self, call: F) -> Result<T, AppError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, fred::error::Error>>,
    {
        let mut moving_slot = MovingSlot::new();
        loop {
            match self.health.guard(call()).await? {
                Err(e) if moving(&e) && moving_slot.wait().await => {}
                r => return Ok(r?),
            }
        }
    }

    /// Runs one Redis call under the health guard (see `health.rs`, which boxes the call's
    /// future at once: this returns a small future, whatever the call's size).
    fn io<'a, T: 'a>(
        &'a self,
        call: impl std::future::Future<Output = Result<T, fred::error::Error>> + 'a,
    ) -> impl std::future::Future<Output = Result<T, AppError>> + 'a {
        let guarded = self.health.guard(call);
        async move { Ok(guarded.await??) }
    }

    /// Runs the pipeline `build` makes, under the health guard, and makes and runs it again
    /// (about a second at most) while any of its answers says that its slot is being moved.
    async fn pipelined<T, F, Fut>(
        &self,
        build: F,
    ) -> Result<Vec<Result<T, fred::error::Error>>, AppError>
    where
        T: fred::types::FromValue,
        F: Fn() -> Fut,
        Fut: std::future::Future<
            Output = Result<fred::clients::Pipeline<Client>, fred::error::Error>,
        >,
    {
        let mut moving_slot = MovingSlot::new();
        loop {
            let p = build().await?;
            let res: Vec<Result<T, fred::error::Error>> = self.health.guard(p.try_all()).await?;
            if res.iter().any(|r| r.as_ref().is_err_and(moving)) && moving_slot.wait().await {
                continue;
            }
            return Ok(res);
        }
    }

    /// True when Redis answers.
    pub async fn ping(&self) -> bool {
        self.io(self.client().ping::<String>(None)).await.is_ok()
    }
}
