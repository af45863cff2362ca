//! The durable store: the system of record that Redis is rebuilt from.
//!
//! Its shape follows the CQL tables in `cql/schema.cql` so that the ScyllaDB backend is a direct
//! mapping; the trait names no type of any backend. A write returns only once it is durable.
//!
//! Every write also records an [`OutboxOp`] in the same atomic batch. After the Redis scripts for
//! that write have run, the entry is removed; entries left behind by a crash or a Redis outage are
//! replayed (the scripts are idempotent) at start-up and periodically, so Redis never silently
//! misses a durable change.

pub mod cql;
pub mod embedded;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A user account (CQL table `users`, plus `usernames` for uniqueness).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UserRecord {
    pub id: i64,
    pub name: String,
    /// argon2id PHC string; never leaves the store or the login handler.
    pub password_hash: String,
    pub avatar: String,
    pub background_image: String,
    pub signature: String,
    pub created_ms: i64,
}

/// A published video (CQL tables `videos`, `videos_by_author`, `feed_timeline`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VideoRecord {
    pub id: i64,
    pub author_id: i64,
    pub title: String,
    pub desc: String,
    /// Media key in the media store (`videos/<id>.mp4`), or an absolute URL for publish-by-URL.
    pub play: String,
    /// Media key of the cover, or an absolute URL, or empty.
    pub cover: String,
    pub created_ms: i64,
}

/// A change whose Redis side effects must happen (again, if in doubt).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OutboxOp {
    UserCreated {
        user_id: i64,
    },
    VideoPublished {
        video_id: i64,
        author_id: i64,
    },
    LikeChanged {
        user_id: i64,
        video_id: i64,
        author_id: i64,
    },
    CommentChanged {
        video_id: i64,
        comment_id: i64,
    },
    FollowChanged {
        follower: i64,
        followee: i64,
    },
    MessageSent {
        from: i64,
        to: i64,
    },
    SessionChanged {
        user_id: i64,
    },
}

/// A chat message (CQL table `messages`, partitioned by conversation).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MessageRecord {
    pub id: i64,
    pub from_user_id: i64,
    pub to_user_id: i64,
    pub content: String,
    pub created_ms: i64,
}

/// The outcome of a follow or unfollow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowChange {
    /// False when the relation already was in the asked state: nothing was written.
    pub changed: bool,
    pub follower: UserCounters,
    pub followee: UserCounters,
    /// Version of this (follower, followee) pair, like [`LikeChange::pair_version`].
    pub pair_version: i64,
}

/// The state of a (user, video) like or (follower, followee) relation, kept also after an
/// unlike/unfollow so its version keeps growing (CQL tables `likes`, `follows`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PairState {
    /// Whether the like/follow is on.
    pub on: bool,
    /// The like_id/follow_id of the current (or last) like/follow.
    pub id: i64,
    pub version: i64,
}

/// A comment (CQL tables `comments`, `comments_by_video`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CommentRecord {
    pub id: i64,
    pub video_id: i64,
    pub user_id: i64,
    pub content: String,
    /// The comment this one answers (same video), or 0.
    pub reply_id: i64,
    pub created_ms: i64,
}

/// A user's counters (CQL table `user_counters`). Each group of state has its own version,
/// which grows by one with every change of it, so that Redis applies changes exactly once and
/// in order (see `lua/entity_apply.lua`):
/// - `like_version`: `favorite_count` and the liked-videos set;
/// - `received_version`: `total_favorited`;
/// - `follow_version`: `follow_count` and the followed set;
/// - `follower_version`: `follower_count` and the follower set.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct UserCounters {
    pub follow_count: i64,
    pub follower_count: i64,
    pub total_favorited: i64,
    pub favorite_count: i64,
    pub like_version: i64,
    pub received_version: i64,
    pub follow_version: i64,
    pub follower_version: i64,
}

/// A video's counters (CQL table `video_counters`), versioned like [`UserCounters`]:
/// `favorite_version` for `favorite_count`, `comment_version` for `comment_count` and the
/// comment list.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct VideoCounters {
    pub favorite_count: i64,
    pub comment_count: i64,
    pub favorite_version: i64,
    pub comment_version: i64,
}

/// The outcome of a like or unlike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LikeChange {
    /// False when the like already was in the asked state: nothing was written.
    pub changed: bool,
    pub liker: UserCounters,
    /// The author's counters (the same as `liker` when users like their own video).
    pub author: UserCounters,
    pub video: VideoCounters,
    /// Version of this (user, video) pair: grows with every like or unlike of it, so that two
    /// changes of one pair are told apart when they reach Redis out of order.
    pub pair_version: i64,
}

/// Which of a user's tokens are still good (CQL table `user_sessions`): those of the current
/// `generation` whose id is not in `revoked`. `version` grows with every change, so Redis keeps
/// the newest state whatever order changes arrive in.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct SessionState {
    pub version: i64,
    /// Bumped by "log out everywhere": every token issued before is refused.
    pub generation: i64,
    /// (token id, expiry in Unix seconds) of tokens logged out one by one and not yet expired.
    pub revoked: Vec<(u64, u64)>,
}

/// What a logout revokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoke {
    /// One token: its id and expiry (Unix seconds).
    Token { id: u64, exp: u64 },
    /// Every token of the user (a new generation).
    All,
}

/// Most tokens revoked one by one that a user's session keeps; past it a logout revokes all.
pub const MAX_REVOKED: usize = 256;

impl SessionState {
    /// The state after `r` at Unix second `now`: expired revocations are dropped, and a list
    /// grown past [`MAX_REVOKED`] becomes a new generation (logging out everywhere is safe).
    pub fn revoked_by(mut self, r: Revoke, now: u64) -> SessionState {
        self.version += 1;
        self.revoked.retain(|(_, exp)| *exp > now);
        match r {
            Revoke::Token { id, exp } => {
                if !self.revoked.iter().any(|(j, _)| *j == id) {
                    self.revoked.push((id, exp));
                }
                if self.revoked.len() > MAX_REVOKED {
                    self.generation += 1;
                    self.revoked.clear();
                }
            }
            Revoke::All => {
                self.generation += 1;
                self.revoked.clear();
            }
        }
        self
    }
}

/// An outbox entry: its id orders entries and names them for [`Store::outbox_done`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OutboxEntry {
    pub id: i64,
    pub op: OutboxOp,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// I/O failure, poisoned or closed store: the caller reports "unavailable".
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A record that cannot be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Counters of the group commit, for metrics and tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreStats {
    /// Writes acknowledged as durable.
    pub durable_writes: u64,
    /// fsyncs performed for them; fewer than writes when commits were grouped.
    pub fsyncs: u64,
    /// Memory the store holds in this process: its block cache in use plus its memtables
    /// (the embedded store; a remote store holds none here).
    pub memory_bytes: u64,
}

/// A bulk load of a consistent data set into an empty store (`seed --bench`): the records and
/// the counters that agree with them, written without outbox entries (Redis is loaded from the
/// store afterwards, on demand).
#[derive(Clone, Debug, Default)]
pub struct Import {
    pub users: Vec<UserRecord>,
    pub user_counters: Vec<(i64, UserCounters)>,
    pub videos: Vec<VideoRecord>,
    pub video_counters: Vec<(i64, VideoCounters)>,
    /// (user, video, like_id): active likes.
    pub likes: Vec<(i64, i64, i64)>,
    /// (follower, followee, follow_id): active follows.
    pub follows: Vec<(i64, i64, i64)>,
    pub comments: Vec<CommentRecord>,
    pub messages: Vec<MessageRecord>,
}

/// A page of a scan (`rebuild-cache`'s): the items, and the opaque cursor of the next page
/// (None: the scan is over).
pub type ScanPage<T> = (Vec<T>, Option<Vec<u8>>);

/// The durable store. Implementations: [`embedded::EmbeddedStore`] (one process) and
/// [`cql::CqlStore`] (ScyllaDB or Cassandra, shared by many instances).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts the user if the name is free (`INSERT ... IF NOT EXISTS` on `usernames`).
    /// Returns false, writing nothing, when the name is taken.
    async fn create_user(&self, user: &UserRecord, outbox: &OutboxEntry) -> StoreResult<bool>;
    async fn get_user(&self, id: i64) -> StoreResult<Option<UserRecord>>;
    async fn user_id_by_name(&self, name: &str) -> StoreResult<Option<i64>>;
    /// Writes the video, its row in the author's list and in the feed timeline.
    async fn put_video(&self, video: &VideoRecord, outbox: &OutboxEntry) -> StoreResult<()>;
    async fn get_video(&self, id: i64) -> StoreResult<Option<VideoRecord>>;
    /// Whether video `id` is recorded, asked of the store itself (never of a negative cache):
    /// the orphan reaper deletes media on a `false`.
    async fn video_exists(&self, id: i64) -> StoreResult<bool> {
        Ok(self.get_video(id).await?.is_some())
    }
    /// The author's video ids, newest first.
    async fn video_ids_by_author(&self, author_id: i64) -> StoreResult<Vec<i64>>;
    /// The newest `limit` video ids of the feed timeline, newest first.
    async fn feed_ids(&self, limit: usize) -> StoreResult<Vec<i64>>;
    /// Records a distinct viewer of a video. Not awaited for durability: a play is not an
    /// acknowledged write, and the next group commit makes it durable.
    async fn add_play(&self, video_id: i64, viewer: &str) -> StoreResult<()>;
    async fn plays(&self, video_id: i64) -> StoreResult<Vec<String>>;
    /// Users with id > `after`, ascending, at most `limit`.
    async fn scan_users(&self, after: i64, limit: usize) -> StoreResult<Vec<UserRecord>>;
    /// Videos with id > `after`, ascending, at most `limit`.
    async fn scan_videos(&self, after: i64, limit: usize) -> StoreResult<Vec<VideoRecord>>;
    /// Counters of a user (zeros at version 0 for a user never counted).
    async fn user_counters(&self, user_id: i64) -> StoreResult<UserCounters>;
    async fn video_counters(&self, video_id: i64) -> StoreResult<VideoCounters>;
    /// Likes (`like = true`) or unlikes a video, idempotently; `like_id` orders the user's likes.
    /// Updates the like tables and the three counters in one atomic batch when anything changes.
    async fn set_like(
        &self,
        user_id: i64,
        video_id: i64,
        author_id: i64,
        like: bool,
        like_id: i64,
        outbox: &OutboxEntry,
    ) -> StoreResult<LikeChange>;
    /// The user's liked videos as (like_id, video_id), most recent first.
    async fn likes_by_user(&self, user_id: i64) -> StoreResult<Vec<(i64, i64)>>;
    /// How many users like the video (counted from the like records).
    async fn count_likers(&self, video_id: i64) -> StoreResult<i64>;
    /// Adds a comment and counts it on its video.
    async fn add_comment(
        &self,
        comment: &CommentRecord,
        outbox: &OutboxEntry,
    ) -> StoreResult<VideoCounters>;
    /// Deletes a comment; None when it does not exist.
    async fn delete_comment(
        &self,
        comment_id: i64,
        outbox: &OutboxEntry,
    ) -> StoreResult<Option<VideoCounters>>;
    async fn get_comment(&self, id: i64) -> StoreResult<Option<CommentRecord>>;
    /// The video's comment ids, newest first.
    async fn comment_ids_by_video(&self, video_id: i64) -> StoreResult<Vec<i64>>;
    /// Follows (`follow = true`) or unfollows, idempotently; `follow_id` orders the lists.
    /// Updates both relation tables and both users' counters in one atomic batch.
    async fn set_follow(
        &self,
        follower: i64,
        followee: i64,
        follow: bool,
        follow_id: i64,
        outbox: &OutboxEntry,
    ) -> StoreResult<FollowChange>;
    /// Whom the user follows, as (follow_id, user_id), newest first.
    async fn following(&self, user_id: i64) -> StoreResult<Vec<(i64, i64)>>;
    /// Who follows the user, as (follow_id, user_id), newest first.
    async fn followers(&self, user_id: i64) -> StoreResult<Vec<(i64, i64)>>;
    /// Stores a message in its conversation.
    async fn add_message(&self, message: &MessageRecord, outbox: &OutboxEntry) -> StoreResult<()>;
    /// The conversation between `a` and `b` (both directions), oldest first.
    async fn conversation(&self, a: i64, b: i64) -> StoreResult<Vec<MessageRecord>>;
    /// The largest id stored anywhere (seeds the ID generator).
    /// User `user_id`'s session state (default when the user never logged out).
    async fn session(&self, user_id: i64) -> StoreResult<SessionState>;
    /// Revokes tokens of `user_id` at Unix second `now`; returns the new state.
    async fn revoke(
        &self,
        user_id: i64,
        what: Revoke,
        now: u64,
        outbox: &OutboxEntry,
    ) -> StoreResult<SessionState>;

    async fn max_id(&self) -> StoreResult<i64>;
    /// Outbox entries not yet marked done, oldest first.
    async fn pending_outbox(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>>;
    async fn outbox_done(&self, id: i64) -> StoreResult<()>;
    /// Finishes the durable side of a pending entry whose writer may have died before it was
    /// done (the CQL store's counters); called by the replay before the Redis side. The
    /// embedded store writes each change in one batch, so it has nothing to finish.
    async fn complete(&self, _entry: &OutboxEntry) -> StoreResult<()> {
        Ok(())
    }
    /// Makes everything written so far durable.
    async fn flush(&self) -> StoreResult<()>;
    /// Writes a bulk [`Import`] and makes it durable. The caller guarantees that its ids are new
    /// and its counters agree with its records; existing records with the same keys are
    /// overwritten.
    async fn import(&self, data: Import) -> StoreResult<()>;
    /// Every active like as (user, video), in key order; for consistency checks.
    async fn scan_likes(&self, after: (i64, i64), limit: usize) -> StoreResult<Vec<(i64, i64)>>;
    /// The conversations that hold messages, as (lower user id, higher user id): up to
    /// `limit` of them from `cursor` on (empty: from the start), each once over a whole scan,
    /// in the backend's own order; and the cursor of the next page (None: no more). For
    /// `rebuild-cache`.
    async fn scan_conversations(
        &self,
        cursor: &[u8],
        limit: usize,
    ) -> StoreResult<ScanPage<(i64, i64)>>;
    /// Every comment not deleted, like [`Store::scan_conversations`]: up to `limit` from
    /// `cursor` on, each once over a whole scan, in the backend's own order. For
    /// `rebuild-cache`.
    async fn scan_comments(
        &self,
        cursor: &[u8],
        limit: usize,
    ) -> StoreResult<ScanPage<CommentRecord>>;
    fn stats(&self) -> StoreStats;
}
