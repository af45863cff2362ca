//! The Redis key layout: every key built from the configured prefix, each with a hash tag
//! (`{id}`) so that all keys of one entity share a slot and every script stays single-slot on
//! Redis Cluster.

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
    /// Where a reload stages a large set before renaming it over `real` (`lua/load_chunk.lua`):
    /// `<prefix>stg:` and the rest of `real`, so the same hash tag and slot, and a kind the
    /// near-cache's invalidation parser ignores.
    pub fn staging(&self, real: &str) -> String {
        let rest = real.strip_prefix(self.prefix.as_str()).unwrap_or(real);
        format!("{}stg:{rest}", self.prefix)
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
    /// Every key of a user including member versions, lease last.
    pub fn user_keys_all(&self, id: i64) -> Vec<String> {
        let mut k = self.user_all(id);
        let lease = k.pop().unwrap_or_default();
        k.extend(self.user_member_versions(id));
        k.push(lease);
        k
    }
    /// Every key of a video including member versions and the exact viewers, lease last.
    pub fn video_keys_all(&self, id: i64) -> Vec<String> {
        let mut k = self.video_all(id);
        let lease = k.pop().unwrap_or_default();
        k.push(self.video_member_versions(id));
        k.push(self.video_viewers(id));
        k.push(lease);
        k
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
    /// Set: a video's distinct viewers while there are at most
    /// [`EXACT_VIEWERS`](super::EXACT_VIEWERS) of them, so that a small play count is exact.
    pub fn video_viewers(&self, id: i64) -> String {
        format!("{}pv:{{{id}}}", self.prefix)
    }
    pub fn video_lease(&self, id: i64) -> String {
        format!("{}lease:v:{{{id}}}", self.prefix)
    }
    /// Zset: the global feed, video ids scored by id.
    pub fn feed(&self) -> String {
        format!("{}feed:{{feed}}", self.prefix)
    }
    /// Hash: a user's session state (`ver`, `gen`, `rvk`), in the user's slot.
    pub fn session(&self, id: i64) -> String {
        format!("{}ses:{{{id}}}", self.prefix)
    }
    /// String: the attempts counter of `kind` (e.g. `login-ip`) for `subject` in the current
    /// window (expires with it).
    pub fn rate(&self, kind: &str, subject: &str) -> String {
        format!("{}rl:{{{kind}:{subject}}}", self.prefix)
    }
    pub fn feed_lease(&self) -> String {
        format!("{}lease:feed:{{feed}}", self.prefix)
    }
}
