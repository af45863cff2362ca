//! Redis, the primary serving store: key layout, scripts, and reload-on-miss.
//!
//! Every key carries a hash tag (`{id}`) so that each script touches one slot and stays valid on
//! Redis Cluster. Entities that span slots are changed by one script per slot, in an order that
//! keeps reads consistent (see ARCHITECTURE.md). Redis can always be rebuilt from the durable
//! store: a read that misses reloads the key from the store, once per key in this process however
//! many requests miss together, under a reload lease that writers revoke so a slow reload can
//! never install stale data.

use crate::error::AppError;
use crate::near::{FeedLookup, NearCache, NearKey, UserEntry, VideoEntry};
use crate::store::{
    CommentRecord, MessageRecord, OutboxOp, Store, UserCounters, UserRecord, VideoCounters,
    VideoRecord,
};
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::Value;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LEASE_MS: u64 = 30_000;
const RELOAD_ATTEMPTS: usize = 8;

/// Builds every key from the configured prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }
    /// Hash: a user's profile and counters.
    pub fn user(&self, id: i64) -> String {
        format!("{}u:{{{id}}}", self.prefix)
    }
    /// Zset: a user's video ids scored by id (member "0" marks it loaded).
    pub fn user_videos(&self, id: i64) -> String {
        format!("{}pub:{{{id}}}", self.prefix)
    }
    /// String: the reload lease of a user's keys.
    pub fn user_lease(&self, id: i64) -> String {
        format!("{}lease:u:{{{id}}}", self.prefix)
    }
    /// Zset: the videos a user likes, scored by like id (time ordered; member "0" marks it loaded).
    pub fn user_likes(&self, id: i64) -> String {
        format!("{}fav:{{{id}}}", self.prefix)
    }
    /// Zset: whom a user follows, scored by follow id (time; member "0" marks it loaded).
    pub fn user_following(&self, id: i64) -> String {
        format!("{}fo:{{{id}}}", self.prefix)
    }
    /// Zset: who follows a user, scored by follow id (member "0" marks it loaded).
    pub fn user_followers(&self, id: i64) -> String {
        format!("{}fr:{{{id}}}", self.prefix)
    }
    /// Every key of a user, lease last: hash, videos, likes, following, followers, lease.
    pub fn user_all(&self, id: i64) -> Vec<String> {
        vec![
            self.user(id),
            self.user_videos(id),
            self.user_likes(id),
            self.user_following(id),
            self.user_followers(id),
            self.user_lease(id),
        ]
    }
    /// Hashes: the last applied version of each member of the liked, following and followers
    /// zsets since the user was loaded (see `lua/entity_apply.lua`).
    pub fn user_member_versions(&self, id: i64) -> Vec<String> {
        vec![
            format!("{}lmv:{{{id}}}", self.prefix),
            format!("{}fomv:{{{id}}}", self.prefix),
            format!("{}frmv:{{{id}}}", self.prefix),
        ]
    }
    /// Hash: the last applied version of each comment since the video was loaded.
    pub fn video_member_versions(&self, id: i64) -> String {
        format!("{}cmv:{{{id}}}", self.prefix)
    }
    /// Zset: a conversation's messages (JSON) scored by id; one key for both directions.
    pub fn conversation(&self, a: i64, b: i64) -> String {
        format!("{}cv:{{{}_{}}}", self.prefix, a.min(b), a.max(b))
    }
    pub fn conversation_lease(&self, a: i64, b: i64) -> String {
        format!("{}lease:cv:{{{}_{}}}", self.prefix, a.min(b), a.max(b))
    }
    /// Zset: a video's comment ids scored by id (member "0" marks it loaded).
    pub fn video_comments(&self, id: i64) -> String {
        format!("{}cm:{{{id}}}", self.prefix)
    }
    /// Every key of a video, lease last.
    pub fn video_all(&self, id: i64) -> Vec<String> {
        vec![
            self.video(id),
            self.video_plays(id),
            self.video_comments(id),
            self.video_lease(id),
        ]
    }
    /// Hash: a comment (immutable; deleted with the comment).
    pub fn comment(&self, id: i64) -> String {
        format!("{}c:{{{id}}}", self.prefix)
    }
    pub fn comment_lease(&self, id: i64) -> String {
        format!("{}lease:c:{{{id}}}", self.prefix)
    }
    /// Hash: a video's data and counters.
    pub fn video(&self, id: i64) -> String {
        format!("{}v:{{{id}}}", self.prefix)
    }
    /// HyperLogLog: a video's distinct viewers.
    pub fn video_plays(&self, id: i64) -> String {
        format!("{}pc:{{{id}}}", self.prefix)
    }
    pub fn video_lease(&self, id: i64) -> String {
        format!("{}lease:v:{{{id}}}", self.prefix)
    }
    /// Zset: the global feed, video ids scored by id.
    pub fn feed(&self) -> String {
        format!("{}feed:{{feed}}", self.prefix)
    }
    pub fn feed_lease(&self) -> String {
        format!("{}lease:feed:{{feed}}", self.prefix)
    }
}

/// The Lua scripts of `lua/`, loaded at start-up and called by SHA (reloaded on NOSCRIPT).
pub struct Scripts {
    pub lease: Script,
    pub load_user: Script,
    pub load_video: Script,
    pub load_timeline: Script,
    pub create_entity: Script,
    pub timeline_add: Script,
    pub user_add_video: Script,
    pub timeline_page: Script,
    pub play: Script,
    pub entity_apply: Script,
    pub friends: Script,
    pub conv_page: Script,
    pub feed_since: Script,
    pub flags: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            lease: Script::from_lua(include_str!("../lua/lease.lua")),
            load_user: Script::from_lua(include_str!("../lua/load_user.lua")),
            load_video: Script::from_lua(include_str!("../lua/load_video.lua")),
            load_timeline: Script::from_lua(include_str!("../lua/load_timeline.lua")),
            create_entity: Script::from_lua(include_str!("../lua/create_entity.lua")),
            timeline_add: Script::from_lua(include_str!("../lua/timeline_add.lua")),
            user_add_video: Script::from_lua(include_str!("../lua/user_add_video.lua")),
            timeline_page: Script::from_lua(include_str!("../lua/timeline_page.lua")),
            play: Script::from_lua(include_str!("../lua/play.lua")),
            entity_apply: Script::from_lua(include_str!("../lua/entity_apply.lua")),
            friends: Script::from_lua(include_str!("../lua/friends.lua")),
            conv_page: Script::from_lua(include_str!("../lua/conv_page.lua")),
            feed_since: Script::from_lua(include_str!("../lua/feed_since.lua")),
            flags: Script::from_lua(include_str!("../lua/flags.lua")),
        }
    }
    fn all(&self) -> [&Script; 14] {
        [
            &self.lease,
            &self.load_user,
            &self.load_video,
            &self.load_timeline,
            &self.create_entity,
            &self.timeline_add,
            &self.user_add_video,
            &self.timeline_page,
            &self.play,
            &self.entity_apply,
            &self.friends,
            &self.conv_page,
            &self.feed_since,
            &self.flags,
        ]
    }
}

/// A user as cached: profile plus counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserData {
    pub id: i64,
    pub name: String,
    pub avatar: String,
    pub background_image: String,
    pub signature: String,
    pub follow_count: i64,
    pub follower_count: i64,
    pub total_favorited: i64,
    pub work_count: i64,
    pub favorite_count: i64,
}

/// A video as cached: data plus counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VideoData {
    pub id: i64,
    pub author_id: i64,
    pub title: String,
    pub desc: String,
    pub play: String,
    pub cover: String,
    pub favorite_count: i64,
    pub comment_count: i64,
    pub play_count: i64,
}

/// A comment as cached.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommentData {
    pub id: i64,
    pub user_id: i64,
    pub video_id: i64,
    pub content: String,
    pub reply_id: i64,
    pub created_ms: i64,
}

/// The separately versioned groups of a user's cached state.
#[derive(Clone, Copy, Debug)]
pub enum UserAspect {
    /// favorite_count and the liked-videos zset (applied in order).
    Likes,
    /// total_favorited (newest wins).
    Received,
    /// follow_count and the following zset (applied in order).
    Follows,
    /// follower_count and the followers zset (applied in order).
    Followers,
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

/// A chat message as cached (a member of the conversation zset).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageData {
    pub id: i64,
    pub from: i64,
    pub to: i64,
    pub content: String,
}

impl From<&MessageRecord> for MessageData {
    fn from(m: &MessageRecord) -> Self {
        MessageData {
            id: m.id,
            from: m.from_user_id,
            to: m.to_user_id,
            content: m.content.clone(),
        }
    }
}

fn message_member(m: &MessageData) -> String {
    simd_json::to_string(m).unwrap_or_default()
}

fn parse_messages(items: Vec<Value>) -> Vec<MessageData> {
    items
        .into_iter()
        .filter_map(|v| v.into_string())
        .filter_map(|s| {
            let mut b = s.into_bytes();
            simd_json::from_slice::<MessageData>(&mut b).ok()
        })
        .collect()
}

/// The separately versioned groups of a video's cached state.
#[derive(Clone, Copy, Debug)]
pub enum VideoAspect {
    /// favorite_count (newest wins).
    Favorites,
    /// comment_count and the comment zset (applied in order).
    Comments,
}

/// A change to a zset that goes with a versioned counter change.
#[derive(Clone, Copy, Debug)]
pub enum ZsetOp {
    None,
    /// Add `member` with `score`; `version` orders the changes of this one member.
    Add {
        member: i64,
        score: i64,
        version: i64,
    },
    Remove {
        member: i64,
        version: i64,
    },
}

/// Counters for tests and metrics.
#[derive(Default, Debug)]
pub struct CacheStats {
    /// Keys reloaded from the durable store.
    pub reloads: AtomicU64,
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
    /// For the per-worker connections (see [`Cache::attach_worker`]).
    config: Config,
    timeout: Duration,
}

thread_local! {
    /// This thread's own Redis connection per cache (keyed by the cache's address), made by
    /// [`Cache::attach_worker`] on an HTTP worker so that its round trips stay on its thread.
    static WORKER_CLIENTS: std::cell::RefCell<Vec<(usize, Client)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn builder(config: Config, timeout: Duration) -> Builder {
    let mut b = Builder::from_config(config);
    b.with_performance_config(|p| p.default_command_timeout = timeout)
        .with_connection_config(|c| {
            c.connection_timeout = timeout;
            c.internal_command_timeout = timeout;
            c.max_command_attempts = 2;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2));
    b
}

impl Drop for Cache {
    fn drop(&mut self) {
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

fn hash_str(h: &mut HashMap<String, String>, k: &str) -> String {
    h.remove(k).unwrap_or_default()
}

fn hash_i64(h: &HashMap<String, String>, k: &str) -> i64 {
    h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn script_int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        _ => None,
    }
}

impl Cache {
    /// Connects to Redis and loads the scripts. Fails when Redis is unreachable.
    pub async fn connect(
        url: &str,
        prefix: &str,
        pool_size: usize,
        timeout: Duration,
        store: Arc<dyn Store>,
        near: Arc<NearCache>,
        tracking: bool,
    ) -> Result<Self, AppError> {
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
            config,
            timeout,
        };
        for s in cache.scripts.all() {
            s.load(cache.pool.next()).await?;
        }
        if tracking && cache.near.enabled() {
            let t = crate::near::track(url, prefix, timeout, cache.near.clone());
            *cache.tracker.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
        }
        Ok(cache)
    }

    fn rt(&self) {
        self.stats.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    /// Every key of a user including member versions, lease last.
    fn user_keys_all(&self, id: i64) -> Vec<String> {
        let mut k = self.keys.user_all(id);
        let lease = k.pop().unwrap_or_default();
        k.extend(self.keys.user_member_versions(id));
        k.push(lease);
        k
    }

    /// Every key of a video including member versions, lease last.
    fn video_keys_all(&self, id: i64) -> Vec<String> {
        let mut k = self.keys.video_all(id);
        let lease = k.pop().unwrap_or_default();
        k.push(self.keys.video_member_versions(id));
        k.push(lease);
        k
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
        Ok(
            s.evalsha_with_reload::<Value, _, _>(&self.client(), keys, args)
                .await?,
        )
    }

    /// Runs `load` for `key` unless another task of this process is already doing it, in which
    /// case it waits for that one and returns (the caller re-reads Redis).
    /// Runs `load` for `key` one task at a time in this process: concurrent misses queue
    /// behind the first, and each then finds the key loaded (one cheap check) instead of
    /// loading it again. The entry is removed by the last task out, also when a task is
    /// cancelled mid-load.
    async fn single_flight<F, Fut>(&self, key: String, load: F) -> Result<(), AppError>
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

    fn token() -> String {
        rand::random::<u64>().to_string()
    }

    // ----- writes -------------------------------------------------------------------------

    /// Installs a newly registered user.
    pub async fn user_created(&self, u: &UserRecord) -> Result<(), AppError> {
        let keys = vec![
            self.keys.user(u.id),
            self.keys.user_lease(u.id),
            self.keys.user_videos(u.id),
            self.keys.user_likes(u.id),
            self.keys.user_following(u.id),
            self.keys.user_followers(u.id),
        ];
        let mut args = vec!["zzzz".to_string()];
        args.extend(user_fields(u, &UserCounters::default(), 0));
        self.eval(&self.scripts.create_entity, keys, args).await?;
        self.near.invalidate(NearKey::User(u.id));
        Ok(())
    }

    /// Installs a newly published video: the video hash, then the feed, then the author's list
    /// and work_count. A video is readable before it is listed anywhere, so no list ever points
    /// at a missing video.
    pub async fn video_published(&self, v: &VideoRecord) -> Result<(), AppError> {
        let keys = vec![
            self.keys.video(v.id),
            self.keys.video_lease(v.id),
            self.keys.video_plays(v.id),
            self.keys.video_comments(v.id),
        ];
        let mut args = vec!["hz".to_string()];
        args.extend(video_fields(v, &VideoCounters::default()));
        self.eval(&self.scripts.create_entity, keys, args).await?;
        let id = v.id.to_string();
        self.eval(
            &self.scripts.timeline_add,
            vec![self.keys.feed(), self.keys.feed_lease()],
            vec![id.clone()],
        )
        .await?;
        let a = v.author_id;
        self.eval(
            &self.scripts.user_add_video,
            self.keys.user_all(a),
            vec![id],
        )
        .await?;
        self.near.invalidate(NearKey::Video(v.id));
        self.near.invalidate(NearKey::User(a));
        self.near.invalidate_feed();
        Ok(())
    }

    /// Applies a versioned change of one group of user `id`'s cached state.
    pub async fn apply_user(
        &self,
        id: i64,
        c: &UserCounters,
        aspect: UserAspect,
        op: ZsetOp,
    ) -> Result<(), AppError> {
        let all = self.keys.user_all(id);
        let mv = self.keys.user_member_versions(id);
        // (version field, base field, version, mode, counter, value, zset index in user_all)
        let (ver, base, version, mode, field, value, z) = match aspect {
            UserAspect::Likes => (
                "lver",
                "lbase",
                c.like_version,
                "set",
                "favorite_count",
                c.favorite_count,
                2,
            ),
            UserAspect::Received => (
                "rver",
                "",
                c.received_version,
                "max",
                "total_favorited",
                c.total_favorited,
                2,
            ),
            UserAspect::Follows => (
                "fover",
                "fobase",
                c.follow_version,
                "set",
                "follow_count",
                c.follow_count,
                3,
            ),
            UserAspect::Followers => (
                "frver",
                "frbase",
                c.follower_version,
                "set",
                "follower_count",
                c.follower_count,
                4,
            ),
        };
        let mut keys = vec![all[0].clone(), all[z].clone(), mv[z - 2].clone()];
        keys.extend((1..5).filter(|k| *k != z).map(|k| all[k].clone()));
        keys.push(all[5].clone());
        let r = self
            .apply(keys, [ver, base, mode], version, &[(field, value)], op)
            .await;
        self.near.invalidate(NearKey::User(id));
        match aspect {
            UserAspect::Likes => self.near.invalidate(NearKey::Likes(id)),
            UserAspect::Follows => self.near.invalidate(NearKey::Follows(id)),
            UserAspect::Received | UserAspect::Followers => {}
        }
        r
    }

    /// Applies a versioned change of one group of video `id`'s cached state.
    pub async fn apply_video(
        &self,
        id: i64,
        c: &VideoCounters,
        aspect: VideoAspect,
        op: ZsetOp,
    ) -> Result<(), AppError> {
        let all = self.keys.video_all(id);
        let (ver, base, version, mode, field, value) = match aspect {
            VideoAspect::Favorites => (
                "fver",
                "",
                c.favorite_version,
                "max",
                "favorite_count",
                c.favorite_count,
            ),
            VideoAspect::Comments => (
                "cver",
                "cbase",
                c.comment_version,
                "set",
                "comment_count",
                c.comment_count,
            ),
        };
        let keys = vec![
            all[0].clone(),
            all[2].clone(),
            self.keys.video_member_versions(id),
            all[1].clone(),
            all[3].clone(),
        ];
        let r = self
            .apply(keys, [ver, base, mode], version, &[(field, value)], op)
            .await;
        self.near.invalidate(NearKey::Video(id));
        r
    }

    async fn apply(
        &self,
        keys: Vec<String>,
        names: [&str; 3],
        version: i64,
        fields: &[(&str, i64)],
        op: ZsetOp,
    ) -> Result<(), AppError> {
        let [ver, base, mode] = names;
        let mut args = Vec::with_capacity(9 + fields.len() * 2);
        args.extend([
            ver.to_string(),
            base.to_string(),
            version.to_string(),
            mode.to_string(),
            fields.len().to_string(),
        ]);
        for (f, v) in fields {
            args.push(f.to_string());
            args.push(v.to_string());
        }
        match op {
            ZsetOp::None => args.extend(["none".into(), String::new(), "0".into(), "0".into()]),
            ZsetOp::Add {
                member,
                score,
                version,
            } => args.extend([
                "add".into(),
                member.to_string(),
                score.to_string(),
                version.to_string(),
            ]),
            ZsetOp::Remove { member, version } => args.extend([
                "rem".into(),
                member.to_string(),
                "0".into(),
                version.to_string(),
            ]),
        }
        self.eval(&self.scripts.entity_apply, keys, args).await?;
        Ok(())
    }

    /// Installs a new comment's hash.
    pub async fn comment_created(&self, c: &CommentRecord) -> Result<(), AppError> {
        let keys = vec![self.keys.comment(c.id), self.keys.comment_lease(c.id)];
        let mut args = vec![String::new()];
        args.extend(comment_fields(c));
        self.eval(&self.scripts.create_entity, keys, args).await?;
        Ok(())
    }

    /// Drops a deleted comment's hash.
    pub async fn comment_deleted(&self, id: i64) -> Result<(), AppError> {
        self.client().del::<(), _>(self.keys.comment(id)).await?;
        Ok(())
    }

    /// Applies an outbox entry left behind by a crash or a Redis outage: drops every key the
    /// change touched, so the next read reloads it whole from the durable store.
    pub async fn replay(&self, op: &OutboxOp) -> Result<(), AppError> {
        let keys = match op {
            OutboxOp::UserCreated { user_id } => self.user_keys_all(*user_id),
            OutboxOp::VideoPublished {
                video_id,
                author_id,
            } => {
                let mut k = self.video_keys_all(*video_id);
                k.extend([self.keys.feed(), self.keys.feed_lease()]);
                k.extend(self.user_keys_all(*author_id));
                k
            }
            OutboxOp::LikeChanged {
                user_id,
                video_id,
                author_id,
            } => {
                let mut k = self.user_keys_all(*user_id);
                k.extend(self.user_keys_all(*author_id));
                k.extend(self.video_keys_all(*video_id));
                k
            }
            OutboxOp::CommentChanged {
                video_id,
                comment_id,
            } => {
                let mut k = self.video_keys_all(*video_id);
                k.push(self.keys.comment(*comment_id));
                k
            }
            OutboxOp::FollowChanged { follower, followee } => {
                let mut k = self.user_keys_all(*follower);
                k.extend(self.user_keys_all(*followee));
                k
            }
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
            self.client().del::<(), _>(k).await?;
        }
        self.near.clear();
        Ok(())
    }

    /// Counts a distinct viewer of a video (the durable record is written first).
    pub async fn record_play(&self, video_id: i64, viewer: &str) -> Result<(), AppError> {
        self.store.add_play(video_id, viewer).await?;
        self.eval(
            &self.scripts.play,
            self.keys.video_all(video_id),
            vec![viewer.to_string()],
        )
        .await?;
        self.near.invalidate(NearKey::Video(video_id));
        Ok(())
    }

    // ----- reloads ------------------------------------------------------------------------

    async fn take_lease(
        &self,
        lease: String,
        keys: &[String],
        token: &str,
    ) -> Result<bool, AppError> {
        let mut k = vec![lease];
        k.extend_from_slice(keys);
        let v = self
            .eval(
                &self.scripts.lease,
                k,
                vec![token.into(), LEASE_MS.to_string()],
            )
            .await?;
        Ok(script_int(&v) == Some(1))
    }

    /// Reloads user `id` from the durable store if it is not in Redis. Returns false when the
    /// user does not exist.
    pub async fn ensure_user(&self, id: i64) -> Result<bool, AppError> {
        let mut exists = true;
        let key = self.keys.user(id);
        self.single_flight(key, || async {
            let all = self.keys.user_all(id);
            let keys = &all[..5];
            for _ in 0..RELOAD_ATTEMPTS {
                let token = Self::token();
                if !self
                    .take_lease(self.keys.user_lease(id), keys, &token)
                    .await?
                {
                    return Ok(());
                }
                let Some(u) = self.store.get_user(id).await? else {
                    self.client().del::<(), _>(self.keys.user_lease(id)).await?;
                    exists = false;
                    return Ok(());
                };
                let counters = self.store.user_counters(id).await?;
                let vids = self.store.video_ids_by_author(id).await?;
                let likes = self.store.likes_by_user(id).await?;
                let following = self.store.following(id).await?;
                let followers = self.store.followers(id).await?;
                let fields = user_fields(&u, &counters, vids.len() as i64);
                let scored = 2 * (likes.len() + following.len() + followers.len());
                let mut args = Vec::with_capacity(fields.len() + vids.len() + scored + 6);
                args.extend([token, (fields.len() / 2).to_string()]);
                args.extend(fields);
                args.push(vids.len().to_string());
                args.extend(vids.iter().map(|v| v.to_string()));
                for set in [&likes, &following, &followers] {
                    args.push(set.len().to_string());
                    for (score, member) in set.iter() {
                        args.extend([score.to_string(), member.to_string()]);
                    }
                }
                let r = self
                    .eval(&self.scripts.load_user, self.user_keys_all(id), args)
                    .await?;
                if script_int(&r) == Some(1) {
                    self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(user = id, "reloaded user from durable store");
                    return Ok(());
                }
            }
            Err(AppError::Unavailable(format!(
                "user {id}: reload kept losing its lease"
            )))
        })
        .await?;
        Ok(exists)
    }

    /// Reloads video `id` from the durable store if it is not in Redis. Returns false when the
    /// video does not exist.
    pub async fn ensure_video(&self, id: i64) -> Result<bool, AppError> {
        let mut exists = true;
        let key = self.keys.video(id);
        self.single_flight(key, || async {
            let all = self.keys.video_all(id);
            let keys = &all[..3];
            for _ in 0..RELOAD_ATTEMPTS {
                let token = Self::token();
                if !self
                    .take_lease(self.keys.video_lease(id), keys, &token)
                    .await?
                {
                    return Ok(());
                }
                let Some(v) = self.store.get_video(id).await? else {
                    self.client()
                        .del::<(), _>(self.keys.video_lease(id))
                        .await?;
                    exists = false;
                    return Ok(());
                };
                let counters = self.store.video_counters(id).await?;
                let viewers = self.store.plays(id).await?;
                let comments = self.store.comment_ids_by_video(id).await?;
                let fields = video_fields(&v, &counters);
                let mut args =
                    Vec::with_capacity(fields.len() + viewers.len() + comments.len() + 3);
                args.extend([token, (fields.len() / 2).to_string()]);
                args.extend(fields);
                args.push(viewers.len().to_string());
                args.extend(viewers);
                args.extend(comments.iter().map(|c| c.to_string()));
                let r = self
                    .eval(&self.scripts.load_video, self.video_keys_all(id), args)
                    .await?;
                if script_int(&r) == Some(1) {
                    self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(video = id, "reloaded video from durable store");
                    return Ok(());
                }
            }
            Err(AppError::Unavailable(format!(
                "video {id}: reload kept losing its lease"
            )))
        })
        .await?;
        Ok(exists)
    }

    /// Reloads the feed timeline from the durable store if it is not in Redis.
    pub async fn ensure_feed(&self) -> Result<(), AppError> {
        self.single_flight(self.keys.feed(), || async {
            let keys = [self.keys.feed()];
            for _ in 0..RELOAD_ATTEMPTS {
                let token = Self::token();
                if !self
                    .take_lease(self.keys.feed_lease(), &keys, &token)
                    .await?
                {
                    return Ok(());
                }
                let ids = self.store.feed_ids(usize::MAX).await?;
                let mut args = Vec::with_capacity(ids.len() + 2);
                args.extend([token, "ids".into()]);
                args.extend(ids.iter().map(|v| v.to_string()));
                let k = vec![self.keys.feed(), self.keys.feed_lease()];
                let r = self.eval(&self.scripts.load_timeline, k, args).await?;
                if script_int(&r) == Some(1) {
                    self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        videos = ids.len(),
                        "reloaded feed timeline from durable store"
                    );
                    return Ok(());
                }
            }
            Err(AppError::Unavailable(
                "feed: reload kept losing its lease".into(),
            ))
        })
        .await
    }

    // ----- reads --------------------------------------------------------------------------

    /// Up to `limit` feed video ids strictly below `before_id` (None: from the newest): from
    /// the near-cache's copy of the feed head when the page lies in it, else from Redis.
    pub async fn feed_page(
        &self,
        before_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<i64>, AppError> {
        for _ in 0..2 {
            match self.near.feed_page(before_id, limit) {
                FeedLookup::Page(ids) => return Ok(ids),
                FeedLookup::Beyond => break,
                FeedLookup::Refresh => self.refresh_feed_head().await?,
            }
        }
        self.redis_feed_page(before_id, limit).await
    }

    /// Brings the near-cache's feed head up to date: the ids added since it was fetched when
    /// the timeline only grew by those, else the whole head again. One refresh at a time;
    /// readers queue behind it and then find it fresh.
    async fn refresh_feed_head(&self) -> Result<(), AppError> {
        let _turn = self.near.feed_refresh.lock().await;
        if self.near.feed_fresh() {
            return Ok(());
        }
        let generation = self.near.feed_generation();
        let cap = self.near.feed_cap();
        let mut head = self.near.feed_head();
        for _ in 0..RELOAD_ATTEMPTS {
            let since = head
                .as_ref()
                .and_then(|(ids, _)| ids.first().copied())
                .unwrap_or(0);
            let v = self
                .eval(
                    &self.scripts.feed_since,
                    vec![self.keys.feed()],
                    vec![since.to_string(), cap.to_string()],
                )
                .await?;
            let Value::Array(mut parts) = v else {
                self.ensure_feed().await?;
                head = None;
                continue;
            };
            let newer = match parts.pop() {
                Some(Value::Array(items)) => ids_of(items),
                _ => Vec::new(),
            };
            let card = parts.first().and_then(script_int).unwrap_or(0).max(0) as usize;
            match head.take() {
                None => {
                    self.near.install_feed(newer, card, generation);
                    return Ok(());
                }
                // only grew, by exactly the ids above the old head: extend it
                Some((old, old_card)) if newer.len() < cap && old_card + newer.len() == card => {
                    let mut ids = Vec::with_capacity((old.len() + newer.len()).min(cap));
                    ids.extend_from_slice(&newer);
                    ids.extend(old.iter().take(cap - newer.len()));
                    self.near.install_feed(ids, card, generation);
                    return Ok(());
                }
                // anything else (a late insert below the head, a reload): fetch it whole
                Some(_) => continue,
            }
        }
        Err(AppError::Unavailable(
            "feed: near-cache refresh kept failing".into(),
        ))
    }

    /// [`Self::feed_page`] straight from Redis.
    async fn redis_feed_page(
        &self,
        before_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<i64>, AppError> {
        let max = before_id
            .map(|b| b.to_string())
            .unwrap_or_else(|| "+inf".into());
        for _ in 0..RELOAD_ATTEMPTS {
            let v = self
                .eval(
                    &self.scripts.timeline_page,
                    vec![self.keys.feed()],
                    vec![max.clone(), limit.to_string()],
                )
                .await?;
            match v {
                Value::Array(items) => return Ok(ids_of(items)),
                _ => self.ensure_feed().await?,
            }
        }
        Err(AppError::Unavailable(
            "feed: not loaded after reload".into(),
        ))
    }

    /// The video ids of user `id`, newest first, at most `limit`; None when the user is unknown.
    pub async fn user_video_ids(
        &self,
        id: i64,
        limit: usize,
    ) -> Result<Option<Vec<i64>>, AppError> {
        self.user_zset_page(id, 1, limit).await
    }

    /// The videos user `id` likes, most recently liked first; None when the user is unknown.
    pub async fn user_liked_ids(
        &self,
        id: i64,
        limit: usize,
    ) -> Result<Option<Vec<i64>>, AppError> {
        self.user_zset_page(id, 2, limit).await
    }

    /// Members of one of the user's zsets (index into [`Keys::user_all`]), highest score first.
    async fn user_zset_page(
        &self,
        id: i64,
        which: usize,
        limit: usize,
    ) -> Result<Option<Vec<i64>>, AppError> {
        let page = self.user_zset_scored(id, which, None, limit).await?;
        Ok(page.map(|p| p.into_iter().map(|(m, _)| m).collect()))
    }

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

    /// (member, score) pairs of one of the user's zsets, highest score first, scores below
    /// `cursor` when given; None when the user is unknown.
    async fn user_zset_scored(
        &self,
        id: i64,
        which: usize,
        cursor: Option<i64>,
        limit: usize,
    ) -> Result<Option<Vec<(i64, i64)>>, AppError> {
        let max = cursor
            .map(|c| c.to_string())
            .unwrap_or_else(|| "+inf".into());
        for _ in 0..RELOAD_ATTEMPTS {
            let mut keys = self.keys.user_all(id);
            keys.pop();
            keys.swap(0, which);
            let v = self
                .eval(
                    &self.scripts.timeline_page,
                    keys,
                    vec![max.clone(), limit.to_string(), "withscores".into()],
                )
                .await?;
            match v {
                Value::Array(items) => {
                    let mut out = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(m), Some(sc)) = (it.next(), it.next()) {
                        let m = m
                            .as_i64()
                            .or_else(|| m.as_string().and_then(|s| s.parse().ok()));
                        let sc = sc
                            .as_f64()
                            .or_else(|| sc.as_string().and_then(|s| s.parse().ok()));
                        if let (Some(m), Some(sc)) = (m, sc) {
                            out.push((m, sc as i64));
                        }
                    }
                    return Ok(Some(out));
                }
                _ => {
                    if !self.ensure_user(id).await? {
                        return Ok(None);
                    }
                }
            }
        }
        Err(AppError::Unavailable(
            "user lists: not loaded after reload".into(),
        ))
    }

    /// User `id`'s friends (mutual follows), newest friendship first; None when unknown.
    pub async fn friends(&self, id: i64, limit: usize) -> Result<Option<Vec<i64>>, AppError> {
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

    /// The comment ids of video `id`, newest first; None when the video is unknown.
    pub async fn video_comment_ids(
        &self,
        id: i64,
        limit: usize,
    ) -> Result<Option<Vec<i64>>, AppError> {
        for _ in 0..RELOAD_ATTEMPTS {
            let mut keys = self.keys.video_all(id);
            keys.pop();
            keys.swap(0, 2);
            let v = self
                .eval(
                    &self.scripts.timeline_page,
                    keys,
                    vec!["+inf".into(), limit.to_string()],
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
    /// missing ones are fetched whole, in one round trip, and kept.
    async fn viewer_flags_near(
        &self,
        viewer: i64,
        videos: &[i64],
        users: &[i64],
    ) -> Result<(Vec<bool>, Vec<bool>), AppError> {
        let (lk, fk) = (NearKey::Likes(viewer), NearKey::Follows(viewer));
        let mut likes = if videos.is_empty() {
            None
        } else {
            self.near.set(lk)
        };
        let mut follows = if users.is_empty() {
            None
        } else {
            self.near.set(fk)
        };
        let need_likes = !videos.is_empty() && likes.is_none();
        let need_follows = !users.is_empty() && follows.is_none();
        if need_likes || need_follows {
            let mut fetched = None;
            for _ in 0..RELOAD_ATTEMPTS {
                let t = self.near.begin();
                self.rt();
                let p = self.client().pipeline();
                let wanted = [
                    (need_likes, self.keys.user_likes(viewer)),
                    (need_follows, self.keys.user_following(viewer)),
                ];
                for (_, key) in wanted.into_iter().filter(|(need, _)| *need) {
                    let _: () = p.zrange(key, 0, -1, None, false, None, false).await?;
                }
                let res: Vec<Result<Value, fred::error::Error>> = p.try_all().await;
                let mut sets = Vec::with_capacity(2);
                for r in res {
                    // members as ids; the loaded marker "0" must be among them
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
                likes = it.next().map(|ids| self.near.install_set(lk, ids, t));
            }
            if need_follows {
                follows = it.next().map(|ids| self.near.install_set(fk, ids, t));
            }
        }
        let liked = match &likes {
            Some(s) => videos.iter().map(|v| s.contains(*v)).collect(),
            None => vec![false; videos.len()],
        };
        let followed = match &follows {
            Some(s) => users.iter().map(|u| s.contains(*u)).collect(),
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

    // ----- conversations ------------------------------------------------------------------

    /// Reloads the conversation of `a` and `b` from the durable store if it is not in Redis.
    pub async fn ensure_conversation(&self, a: i64, b: i64) -> Result<(), AppError> {
        let key = self.keys.conversation(a, b);
        self.single_flight(key.clone(), || async {
            for _ in 0..RELOAD_ATTEMPTS {
                let token = Self::token();
                let lease = self.keys.conversation_lease(a, b);
                if !self
                    .take_lease(lease.clone(), std::slice::from_ref(&key), &token)
                    .await?
                {
                    return Ok(());
                }
                let msgs = self.store.conversation(a, b).await?;
                let mut args = Vec::with_capacity(2 + 2 * msgs.len());
                args.extend([token, "pairs".into()]);
                for m in &msgs {
                    args.push(m.id.to_string());
                    args.push(message_member(&MessageData::from(m)));
                }
                let r = self
                    .eval(&self.scripts.load_timeline, vec![key.clone(), lease], args)
                    .await?;
                if script_int(&r) == Some(1) {
                    self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
            }
            Err(AppError::Unavailable(
                "conversation: reload kept losing its lease".into(),
            ))
        })
        .await
    }

    /// Adds a sent message to its cached conversation.
    pub async fn message_sent(&self, m: &MessageRecord) -> Result<(), AppError> {
        let keys = vec![
            self.keys.conversation(m.from_user_id, m.to_user_id),
            self.keys.conversation_lease(m.from_user_id, m.to_user_id),
        ];
        let args = vec![m.id.to_string(), message_member(&MessageData::from(m))];
        self.eval(&self.scripts.timeline_add, keys, args).await?;
        Ok(())
    }

    /// Messages between `a` and `b`, oldest first: with `min_id`, those with id >= it (at most
    /// `limit`); without, the newest `limit`.
    pub async fn conversation_page(
        &self,
        a: i64,
        b: i64,
        min_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<MessageData>, AppError> {
        let args = match min_id {
            Some(m) => vec!["after".to_string(), m.to_string(), limit.to_string()],
            None => vec!["latest".to_string(), limit.to_string()],
        };
        for _ in 0..RELOAD_ATTEMPTS {
            let key = self.keys.conversation(a, b);
            match self
                .eval(&self.scripts.conv_page, vec![key], args.clone())
                .await?
            {
                Value::Array(items) => {
                    let mut msgs = parse_messages(items);
                    if min_id.is_none() {
                        msgs.reverse();
                    }
                    return Ok(msgs);
                }
                _ => self.ensure_conversation(a, b).await?,
            }
        }
        Err(AppError::Unavailable(
            "conversation: not loaded after reload".into(),
        ))
    }

    /// The latest message between `user` and each of `others`, in one pipelined round trip
    /// when all conversations are cached.
    pub async fn latest_messages(
        &self,
        user: i64,
        others: &[i64],
    ) -> Result<HashMap<i64, MessageData>, AppError> {
        let mut out = HashMap::with_capacity(others.len());
        let mut missing = Vec::new();
        {
            self.rt();
            let p = self.client().pipeline();
            for o in others {
                let key = self.keys.conversation(user, *o);
                let _: () = p.exists(key.clone()).await?;
                let _: () = p
                    .zrevrangebyscore(key, "+inf", 1, false, Some((0, 1)))
                    .await?;
            }
            let res: Vec<Result<Value, fred::error::Error>> = p.try_all().await;
            let mut it = res.into_iter();
            for o in others {
                let exists = it.next().transpose()?.and_then(|v| v.as_i64()).unwrap_or(0);
                let latest = it.next().transpose()?;
                match (exists, latest) {
                    (1, Some(Value::Array(items))) => {
                        if let Some(m) = parse_messages(items).pop() {
                            out.insert(*o, m);
                        }
                    }
                    // not loaded: one by one below
                    _ => missing.push(*o),
                }
            }
        }
        for o in missing {
            if let Some(m) = self.conversation_page(user, o, None, 1).await?.pop() {
                out.insert(o, m);
            }
        }
        Ok(out)
    }

    /// Comments by id, in the order given; deleted ones are skipped.
    pub async fn comments(&self, ids: &[i64]) -> Result<Vec<CommentData>, AppError> {
        let mut out = Vec::with_capacity(ids.len());
        self.rt();
        let p = self.client().pipeline();
        for id in ids {
            let _: () = p.hgetall(self.keys.comment(*id)).await?;
        }
        let res: Vec<Result<HashMap<String, String>, fred::error::Error>> = p.try_all().await;
        for (id, r) in ids.iter().zip(res) {
            let h = r?;
            if !h.is_empty() {
                out.push(comment_from_hash(*id, h));
            } else if let Some(c) = self.store.get_comment(*id).await? {
                self.comment_created(&c).await?;
                out.push(CommentData {
                    id: c.id,
                    user_id: c.user_id,
                    video_id: c.video_id,
                    content: c.content,
                    reply_id: c.reply_id,
                    created_ms: c.created_ms,
                });
            }
        }
        Ok(out)
    }

    /// Users by id, from the near-cache or else in one pipelined round trip when all are in
    /// Redis. Unknown ids are absent.
    pub async fn user_entries(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, Arc<UserEntry>>, AppError> {
        let mut out = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.near.user(*id) {
                Some(e) => {
                    out.insert(*id, e);
                }
                None => missing.push(*id),
            }
        }
        if !missing.is_empty() {
            let t = self.near.begin();
            for (id, d) in self.fetch_users(&missing).await? {
                out.insert(id, self.near.install_user(d, t));
            }
        }
        Ok(out)
    }

    /// Users by id (see [`Self::user_entries`]).
    pub async fn users(&self, ids: &[i64]) -> Result<HashMap<i64, UserData>, AppError> {
        Ok(self
            .user_entries(ids)
            .await?
            .into_iter()
            .map(|(id, e)| (id, e.data.clone()))
            .collect())
    }

    /// Users by id from Redis, reloading those missing there.
    async fn fetch_users(&self, ids: &[i64]) -> Result<HashMap<i64, UserData>, AppError> {
        let mut out = HashMap::with_capacity(ids.len());
        let mut missing: Vec<i64> = Vec::new();
        {
            self.rt();
            let p = self.client().pipeline();
            for id in ids {
                let _: () = p.hgetall(self.keys.user(*id)).await?;
            }
            let res: Vec<Result<HashMap<String, String>, fred::error::Error>> = p.try_all().await;
            for (id, r) in ids.iter().zip(res) {
                let h = r?;
                if h.is_empty() {
                    missing.push(*id);
                } else {
                    out.insert(*id, user_from_hash(*id, h));
                }
            }
        }
        'ids: for id in missing {
            // A concurrent out-of-order write may drop the user again between reload and read.
            for _ in 0..RELOAD_ATTEMPTS {
                if !self.ensure_user(id).await? {
                    continue 'ids;
                }
                self.rt();
                let h: HashMap<String, String> = self.client().hgetall(self.keys.user(id)).await?;
                if !h.is_empty() {
                    out.insert(id, user_from_hash(id, h));
                    continue 'ids;
                }
            }
            return Err(AppError::Unavailable(format!(
                "user {id}: dropped again after every reload"
            )));
        }
        Ok(out)
    }

    /// Whether user `id` exists, without a round trip once known.
    pub async fn user_exists(&self, id: i64) -> Result<bool, AppError> {
        Ok(self.near.user_exists(id) || self.user(id).await?.is_some())
    }

    pub async fn user(&self, id: i64) -> Result<Option<UserData>, AppError> {
        Ok(self.users(&[id]).await?.remove(&id))
    }

    /// The author of video `id` (None: no such video), without a round trip once known.
    pub async fn video_author(&self, id: i64) -> Result<Option<i64>, AppError> {
        if let Some(a) = self.near.video_author(id) {
            return Ok(Some(a));
        }
        Ok(self.video(id).await?.map(|v| v.author_id))
    }

    pub async fn video(&self, id: i64) -> Result<Option<VideoData>, AppError> {
        Ok(self.videos(&[id]).await?.pop())
    }

    /// Videos by id, in the order given, from the near-cache or else in one pipelined round
    /// trip when all are in Redis; unknown ids are skipped.
    pub async fn video_entries(&self, ids: &[i64]) -> Result<Vec<Arc<VideoEntry>>, AppError> {
        let mut slots: Vec<Option<Arc<VideoEntry>>> =
            ids.iter().map(|id| self.near.video(*id)).collect();
        let missing: Vec<usize> = (0..ids.len()).filter(|i| slots[*i].is_none()).collect();
        if !missing.is_empty() {
            let t = self.near.begin();
            let miss: Vec<i64> = missing.iter().map(|i| ids[*i]).collect();
            let fetched = self.fetch_videos(&miss).await?;
            for (i, d) in missing.into_iter().zip(fetched) {
                slots[i] = d.map(|d| self.near.install_video(d, t));
            }
        }
        Ok(slots.into_iter().flatten().collect())
    }

    /// Videos by id (see [`Self::video_entries`]).
    pub async fn videos(&self, ids: &[i64]) -> Result<Vec<VideoData>, AppError> {
        Ok(self
            .video_entries(ids)
            .await?
            .into_iter()
            .map(|e| e.data.clone())
            .collect())
    }

    /// Videos by id from Redis, in the order given (None: unknown), reloading those missing.
    async fn fetch_videos(&self, ids: &[i64]) -> Result<Vec<Option<VideoData>>, AppError> {
        let mut slots: Vec<Option<VideoData>> = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            self.rt();
            let p = self.client().pipeline();
            for id in ids {
                let _: () = p.hgetall(self.keys.video(*id)).await?;
                let _: () = p.pfcount(self.keys.video_plays(*id)).await?;
            }
            let res: Vec<Result<Value, fred::error::Error>> = p.try_all().await;
            let mut it = res.into_iter();
            for (i, id) in ids.iter().enumerate() {
                let h: HashMap<String, String> = it
                    .next()
                    .transpose()?
                    .map(|v| v.convert())
                    .transpose()?
                    .unwrap_or_default();
                let pc: i64 = it
                    .next()
                    .transpose()?
                    .map(|v| v.convert())
                    .transpose()?
                    .unwrap_or(0);
                if h.is_empty() {
                    missing.push(i);
                    slots.push(None);
                } else {
                    slots.push(Some(video_from_hash(*id, h, pc)));
                }
            }
        }
        'ids: for i in missing {
            let id = ids[i];
            for _ in 0..RELOAD_ATTEMPTS {
                if !self.ensure_video(id).await? {
                    continue 'ids;
                }
                self.rt();
                let h: HashMap<String, String> = self.client().hgetall(self.keys.video(id)).await?;
                let pc: i64 = self.client().pfcount(self.keys.video_plays(id)).await?;
                if !h.is_empty() {
                    slots[i] = Some(video_from_hash(id, h, pc));
                    continue 'ids;
                }
            }
            return Err(AppError::Unavailable(format!(
                "video {id}: dropped again after every reload"
            )));
        }
        Ok(slots)
    }

    /// Reloads every user, video and the feed from the durable store (`rebuild-cache`).
    pub async fn rebuild_all(&self) -> Result<(usize, usize), AppError> {
        let (mut users, mut videos) = (0, 0);
        self.client().del::<(), _>(self.keys.feed()).await?;
        self.ensure_feed().await?;
        let mut after = 0;
        loop {
            let batch = self.store.scan_users(after, 500).await?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            for u in &batch {
                self.client().del::<(), _>(self.user_keys_all(u.id)).await?;
                self.ensure_user(u.id).await?;
                users += 1;
            }
        }
        after = 0;
        loop {
            let batch = self.store.scan_videos(after, 500).await?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            for v in &batch {
                self.client()
                    .del::<(), _>(self.video_keys_all(v.id))
                    .await?;
                self.ensure_video(v.id).await?;
                videos += 1;
            }
        }
        self.near.clear();
        Ok((users, videos))
    }

    /// Drops the cached feed timeline; the next read reloads it from the durable store.
    pub async fn drop_feed(&self) -> Result<(), AppError> {
        self.rt();
        self.client().del::<(), _>(self.keys.feed()).await?;
        self.near.invalidate_feed();
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
        let res: Vec<Result<Value, fred::error::Error>> = p.try_all().await;
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

    /// True when Redis answers.
    pub async fn ping(&self) -> bool {
        self.client().ping::<String>(None).await.is_ok()
    }
}

/// The ids of a fetched zset without its loaded marker "0"; None when the marker is missing
/// (the zset is not loaded).
fn ids_with_marker(items: Vec<Value>) -> Option<Vec<i64>> {
    let mut marker = false;
    let mut out = Vec::with_capacity(items.len());
    for v in items {
        let id = match v {
            Value::Integer(i) => Some(i),
            other => other.as_string().and_then(|s| s.parse::<i64>().ok()),
        };
        match id {
            Some(0) => marker = true,
            Some(i) => out.push(i),
            None => {}
        }
    }
    marker.then_some(out)
}

fn ids_of(items: Vec<Value>) -> Vec<i64> {
    items
        .into_iter()
        .filter_map(|v| match v {
            Value::Integer(i) => Some(i),
            other => other.as_string().and_then(|s| s.parse().ok()),
        })
        .filter(|id| *id > 0)
        .collect()
}

fn user_fields(u: &UserRecord, c: &UserCounters, work_count: i64) -> Vec<String> {
    vec![
        "name".into(),
        u.name.clone(),
        "avatar".into(),
        u.avatar.clone(),
        "background_image".into(),
        u.background_image.clone(),
        "signature".into(),
        u.signature.clone(),
        "follow_count".into(),
        c.follow_count.to_string(),
        "follower_count".into(),
        c.follower_count.to_string(),
        "total_favorited".into(),
        c.total_favorited.to_string(),
        "favorite_count".into(),
        c.favorite_count.to_string(),
        "work_count".into(),
        work_count.to_string(),
        "lver".into(),
        c.like_version.to_string(),
        "lbase".into(),
        c.like_version.to_string(),
        "rver".into(),
        c.received_version.to_string(),
        "fover".into(),
        c.follow_version.to_string(),
        "fobase".into(),
        c.follow_version.to_string(),
        "frver".into(),
        c.follower_version.to_string(),
        "frbase".into(),
        c.follower_version.to_string(),
    ]
}

fn video_fields(v: &VideoRecord, c: &VideoCounters) -> Vec<String> {
    vec![
        "author".into(),
        v.author_id.to_string(),
        "title".into(),
        v.title.clone(),
        "desc".into(),
        v.desc.clone(),
        "play".into(),
        v.play.clone(),
        "cover".into(),
        v.cover.clone(),
        "favorite_count".into(),
        c.favorite_count.to_string(),
        "comment_count".into(),
        c.comment_count.to_string(),
        "fver".into(),
        c.favorite_version.to_string(),
        "cver".into(),
        c.comment_version.to_string(),
        "cbase".into(),
        c.comment_version.to_string(),
    ]
}

fn comment_fields(c: &CommentRecord) -> Vec<String> {
    vec![
        "user".into(),
        c.user_id.to_string(),
        "video".into(),
        c.video_id.to_string(),
        "content".into(),
        c.content.clone(),
        "reply".into(),
        c.reply_id.to_string(),
        "created".into(),
        c.created_ms.to_string(),
    ]
}

fn comment_from_hash(id: i64, mut h: HashMap<String, String>) -> CommentData {
    CommentData {
        id,
        user_id: hash_i64(&h, "user"),
        video_id: hash_i64(&h, "video"),
        reply_id: hash_i64(&h, "reply"),
        created_ms: hash_i64(&h, "created"),
        content: hash_str(&mut h, "content"),
    }
}

fn user_from_hash(id: i64, mut h: HashMap<String, String>) -> UserData {
    UserData {
        id,
        follow_count: hash_i64(&h, "follow_count"),
        follower_count: hash_i64(&h, "follower_count"),
        total_favorited: hash_i64(&h, "total_favorited"),
        work_count: hash_i64(&h, "work_count"),
        favorite_count: hash_i64(&h, "favorite_count"),
        name: hash_str(&mut h, "name"),
        avatar: hash_str(&mut h, "avatar"),
        background_image: hash_str(&mut h, "background_image"),
        signature: hash_str(&mut h, "signature"),
    }
}

fn video_from_hash(id: i64, mut h: HashMap<String, String>, play_count: i64) -> VideoData {
    VideoData {
        id,
        author_id: hash_i64(&h, "author"),
        favorite_count: hash_i64(&h, "favorite_count"),
        comment_count: hash_i64(&h, "comment_count"),
        play_count,
        title: hash_str(&mut h, "title"),
        desc: hash_str(&mut h, "desc"),
        play: hash_str(&mut h, "play"),
        cover: hash_str(&mut h, "cover"),
    }
}
