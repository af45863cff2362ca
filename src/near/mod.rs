//! The near-cache: video and user objects (with their pre-rendered JSON, and each video
//! rendered with its author as a card), users' id lists (published, liked, following,
//! followers), sessions, each video's first comment page (rendered), the newest messages of
//! conversations and the head of the feed timeline, held in process so that a feed page, user
//! info, comment list, user list or chat poll needs no Redis round trip.
//!
//! Bounded by bytes (`near.max_bytes`, quick_cache's scan-resistant policy evicts the rest).
//! Kept fresh two ways:
//! - **Invalidation**: a dedicated connection subscribes with Redis's server-assisted
//!   client-side caching (`CLIENT TRACKING ON BCAST PREFIX ... REDIRECT`, messages on
//!   `__redis__:invalidate`) to the video, play-count, user, list, session, comment-list,
//!   conversation and feed keys, so a change made through any instance drops the entry here
//!   within the time Redis takes to push the message (milliseconds). A flush or a lost
//!   tracking connection drops everything.
//! - **Age**: a heartbeat written every `max_age / 4` must come back as an invalidation
//!   message. While it does (within `near.max_age_ms`, 1 s by default), entries live until
//!   invalidated; otherwise no entry older than `max_age` is served. So staleness is bounded by
//!   `max_age` even when messages are lost or the connection silently dies.
//!
//! A write made through this instance also drops its entries here at once, before the reply, so
//! a viewer always sees their own actions. A fetch that raced with an invalidation is used for
//! its own request but not installed (see [`NearCache::begin`]).
//!
//! `render.rs` holds the entries with their pre-rendered JSON, `pages.rs` whole rendered video
//! lists and cards, `people.rs` whole rendered user lists, `comments.rs` videos' newest
//! comments with their rendered JSON, `sets.rs` users' id lists (for flags and list pages),
//! `convs.rs` the newest messages of conversations, `viewers.rs` a viewer's session and lists
//! found together, `track.rs` the invalidation subscriber.

pub mod budget;
mod comments;
mod convs;
mod pages;
mod people;
mod render;
mod sets;
pub mod track;
mod viewers;
mod weigh;

pub use comments::{write_comment, CommentPage, CommentParts};
pub use convs::{ConvHead, CONV_HEAD};
pub use pages::{write_cards, Card, CardRun, Page, PAGE_MAX};
pub use people::UserPage;
pub use render::{write_user, UserEntry, VideoEntry};
pub use sets::{IdSet, SET_MAX};
pub use viewers::Viewer;

use crate::model::{Urls, UserData, VideoData};
use quick_cache::sync::Cache as Qc;
use quick_cache::Weighter;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Hash buckets of invalidation stamps (see [`NearCache::begin`]) for videos and users: a page
/// depends on up to a few hundred of them, so fewer would make unrelated invalidations drop
/// it more often.
const ENTRY_STAMPS: usize = 16384;
/// Buckets of every other key (lists, sessions, comments, conversations), apart from the
/// entries' so that a like's or a follow's list invalidation never drops a page that merely
/// shares a bucket with it.
const OTHER_STAMPS: usize = 4096;
const STAMPS: usize = ENTRY_STAMPS + OTHER_STAMPS;

/// What a near-cache key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NearKey {
    Video(i64),
    User(i64),
    /// The videos user N likes (the viewer's `is_favorite` flags, the favorite list).
    Likes(i64),
    /// Whom user N follows (the viewer's `is_follow` flags, the follow and friend lists).
    Follows(i64),
    /// Who follows user N (the follower and friend lists).
    Followers(i64),
    /// The videos user N published (the publish list).
    Works(i64),
    /// User N's session: which of their tokens are still good.
    Session(i64),
    /// The newest comments of video N (the first page of its comment list).
    Comments(i64),
    /// The newest messages between two users (the lower id first: see [`NearKey::conv`]).
    Conv(i64, i64),
    /// Video N rendered with its author (`pages.rs`), for lists too long to keep whole.
    Card(i64),
    /// Viewer N's session and whole liked and following lists, found together
    /// (`viewers.rs`); never invalidated itself, it serves while none of the three was.
    Viewer(i64),
}

impl NearKey {
    /// The conversation of `a` and `b`, either way round.
    pub fn conv(a: i64, b: i64) -> Self {
        NearKey::Conv(a.min(b), a.max(b))
    }

    fn bucket(&self) -> usize {
        let (tag, id) = match self {
            // a card goes with its video (its author's stamp is checked apart)
            NearKey::Video(i) | NearKey::Card(i) => (0x9e37_79b9_7f4a_7c15u64, *i as u64),
            NearKey::User(i) => (0xc2b2_ae3d_27d4_eb4fu64, *i as u64),
            NearKey::Likes(i) => (0x1656_67b1_9e37_79f9u64, *i as u64),
            NearKey::Follows(i) => (0x27d4_eb2f_1656_67c5u64, *i as u64),
            NearKey::Session(i) => (0x94d0_49bb_1331_11ebu64, *i as u64),
            NearKey::Viewer(i) => (0x510e_527f_ade6_82d1u64, *i as u64),
            NearKey::Comments(i) => (0xbf58_476d_1ce4_e5b9u64, *i as u64),
            NearKey::Followers(i) => (0x6a09_e667_f3bc_c909u64, *i as u64),
            NearKey::Works(i) => (0xbb67_ae85_84ca_a73bu64, *i as u64),
            NearKey::Conv(a, b) => (
                0x3c6e_f372_fe94_f82bu64,
                (*a as u64).rotate_left(29) ^ *b as u64,
            ),
        };
        let h = ((id ^ tag).wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as usize;
        match self {
            NearKey::Video(_) | NearKey::User(_) | NearKey::Card(_) => h % ENTRY_STAMPS,
            _ => ENTRY_STAMPS + h % OTHER_STAMPS,
        }
    }
}

#[derive(Clone, Debug)]
pub enum NearVal {
    Video(Arc<VideoEntry>),
    User(Arc<UserEntry>),
    /// One of a user's id lists (`sets.rs`).
    Set(Arc<IdSet>),
    Session(Arc<SessionEntry>),
    Conv(Arc<ConvHead>),
    Card(Arc<Card>),
    Viewer(Arc<Viewer>),
}

/// A user's session: tokens of `generation` are good unless their id is in `revoked`.
#[derive(Debug)]
pub struct SessionEntry {
    pub generation: i64,
    pub revoked: Vec<u64>,
    fetched: Instant,
}

impl SessionEntry {
    /// Whether a token with id `jti` of generation `generation` is still good.
    pub fn allows(&self, jti: u64, generation: i64) -> bool {
        generation == self.generation && !self.revoked.contains(&jti)
    }
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<NearKey, NearVal> for ByBytes {
    fn weight(&self, _k: &NearKey, v: &NearVal) -> u64 {
        // every allocation the value holds, in size classes (`weigh.rs`), and its slot
        weigh::SLOT as u64 + v.heap() as u64
    }
}

impl NearVal {
    /// The heap its allocations take (`weigh.rs`).
    fn heap(&self) -> usize {
        use weigh::{arc, arc_slice, string, vec};
        match self {
            NearVal::Video(e) => arc::<VideoEntry>() + e.heap(),
            NearVal::User(e) => {
                arc::<UserEntry>()
                    + arc_slice(&e.json)
                    + string(&e.data.name)
                    + string(&e.data.avatar)
                    + string(&e.data.background_image)
                    + string(&e.data.signature)
            }
            NearVal::Set(e) => arc::<IdSet>() + e.heap(),
            NearVal::Session(e) => arc::<SessionEntry>() + vec(&e.revoked),
            NearVal::Conv(e) => arc::<ConvHead>() + e.heap(),
            NearVal::Card(e) => e.heap(),
            NearVal::Viewer(e) => e.heap(),
        }
    }
}

/// The newest part of the feed timeline, newest first.
struct FeedSnapshot {
    ids: Arc<Vec<i64>>,
    /// How many videos the whole timeline had when `ids` was fetched.
    card: usize,
    fetched: Instant,
    /// The invalidation generation it was fetched at.
    generation: u64,
}

/// A page cut from the near-cached feed.
pub enum FeedLookup {
    /// Ids (newest first, up to the asked number); the snapshot covered the page.
    Page(Vec<i64>),
    /// The snapshot is missing or stale: refresh it.
    Refresh,
    /// The page lies beyond the cached head: ask Redis.
    Beyond,
}

/// Hit and miss counters (also exported as metrics).
#[derive(Default, Debug)]
pub struct NearStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub invalidations: AtomicU64,
    /// Pages served whole (`pages.rs`).
    pub pages: AtomicU64,
}

/// The in-process cache in front of Redis. Disabled (`near.enabled = false`), every lookup
/// misses and nothing is installed.
pub struct NearCache {
    enabled: bool,
    /// This cache among those of the process (see [`Viewer`]).
    serial: u64,
    /// The byte bound of entries and pages together.
    bound: u64,
    /// Builds the play/cover URLs rendered into video JSON.
    urls: Urls,
    max_age: Duration,
    feed_cap: usize,
    entries: Qc<NearKey, NearVal, ByBytes>,
    /// What never changes and is never deleted, so never invalidated: a video's author, and
    /// that a user exists (0). Writes need only this (likes, comments, the writer check).
    facts: Qc<NearKey, i64>,
    feed: RwLock<Option<FeedSnapshot>>,
    /// Rendered pages (`pages.rs`, `people.rs`, and videos' newest comments from
    /// `comments.rs`), a quarter of the byte bound.
    pages: pages::Pages,
    /// Bumped by every feed invalidation.
    feed_generation: AtomicU64,
    /// Serialises feed refreshes (concurrent readers wait for one refresh).
    pub feed_refresh: tokio::sync::Mutex<()>,
    /// Sequence of invalidations; `stamps[bucket]` is the sequence of the last one there.
    seq: AtomicU64,
    stamps: Box<[AtomicU64]>,
    /// Whether the tracking connection is subscribed (for /metrics and /readyz details); on a
    /// Redis Cluster, whether every primary's is.
    pub tracking: AtomicBool,
    /// Invalidation channels subscribed: 1, or one per primary of a Redis Cluster.
    pub channels: AtomicUsize,
    /// When the last heartbeat's invalidation message arrived, in ms since `epoch` (0: never).
    /// Messages arrive in order on one connection, so a recent heartbeat proves that every
    /// invalidation sent before it has been applied.
    last_beat_ms: AtomicU64,
    epoch: Instant,
    pub stats: NearStats,
}

/// A ticket taken before fetching from Redis: [`NearCache::install_video`] and friends install
/// the fetched value only if no invalidation of the same bucket came after it.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64);

impl NearCache {
    pub fn new(
        enabled: bool,
        max_bytes: u64,
        max_age: Duration,
        feed_cap: usize,
        urls: Urls,
    ) -> Self {
        let bound = max_bytes;
        // a quarter of the bound for rendered pages, the rest for entries
        let page_bytes = max_bytes / 4;
        let max_bytes = max_bytes - page_bytes;
        let est_items = (max_bytes / 1024).clamp(16, 4_000_000) as usize;
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        Self {
            enabled,
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            bound,
            urls,
            max_age,
            feed_cap: feed_cap.max(1),
            entries: Qc::with_weighter(est_items, max_bytes.max(1), ByBytes),
            // 16 bytes of key and value each: a bounded sixteenth of the byte budget
            facts: Qc::new(((max_bytes / 16) / 64).clamp(1024, 8_000_000) as usize),
            feed: RwLock::new(None),
            pages: pages::pages(page_bytes),
            feed_generation: AtomicU64::new(0),
            feed_refresh: tokio::sync::Mutex::new(()),
            seq: AtomicU64::new(1),
            stamps: (0..STAMPS).map(|_| AtomicU64::new(0)).collect(),
            tracking: AtomicBool::new(false),
            channels: AtomicUsize::new(0),
            last_beat_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            stats: NearStats::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The byte bound in use (`near.max_bytes`, or the share of memory it defaults to).
    pub fn bound(&self) -> u64 {
        self.bound
    }

    pub fn feed_cap(&self) -> usize {
        self.feed_cap
    }

    /// Entries and rendered pages, and their total weight in bytes: what the byte bound
    /// (`near.max_bytes`) limits.
    pub fn size(&self) -> (usize, u64) {
        (
            self.entries.len() + self.pages.len(),
            self.entries.weight() + self.pages.weight(),
        )
    }

    /// An entry may be served while it is younger than `max_age`, or, at any age, while the
    /// invalidation subscription is demonstrably delivering (a heartbeat came back within
    /// `max_age`): either way a change is seen within `max_age` at worst.
    fn fresh(&self, fetched: Instant) -> bool {
        // while delivering (the usual case) one clock read, not two (a profile of the lists
        // had 3% of the server's time in clock_gettime)
        self.delivering() || fetched.elapsed() < self.max_age
    }

    /// True while invalidation messages are demonstrably arriving.
    pub fn delivering(&self) -> bool {
        let beat = self.last_beat_ms.load(Ordering::Acquire);
        beat != 0
            && self.tracking.load(Ordering::Acquire)
            && (self.epoch.elapsed().as_millis() as u64).saturating_sub(beat)
                < self.max_age.as_millis() as u64
    }

    /// Records a heartbeat's invalidation message.
    pub fn beat(&self) {
        self.set_beat(self.stamp());
    }

    /// Now, as a heartbeat time (ms since the cache's epoch, never 0).
    pub fn stamp(&self) -> u64 {
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }

    /// Records that every invalidation channel has delivered a heartbeat since `at` (a
    /// [`NearCache::stamp`]; 0: some channel never has). On a Redis Cluster this is the oldest
    /// of the primaries' latest heartbeats.
    pub fn set_beat(&self, at: u64) {
        self.last_beat_ms.store(at, Ordering::Release);
    }

    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Call before fetching values from Redis that may be installed afterwards.
    pub fn begin(&self) -> Ticket {
        Ticket(self.seq.load(Ordering::Acquire))
    }

    fn installable(&self, key: &NearKey, t: Ticket) -> bool {
        self.enabled && self.stamps[key.bucket()].load(Ordering::Acquire) <= t.0
    }

    fn hit(&self, hit: bool) {
        let c = if hit {
            &self.stats.hits
        } else {
            &self.stats.misses
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The entry under `key` if it may be served, counting a hit or a miss.
    fn lookup(&self, key: NearKey) -> Option<NearVal> {
        let found = self.lookup_uncounted(key);
        self.hit(found.is_some());
        found
    }

    /// [`Self::lookup`] for the caller to count, once it knows whether the entry serves.
    fn lookup_uncounted(&self, key: NearKey) -> Option<NearVal> {
        if !self.enabled {
            return None;
        }
        self.entries.get(&key).filter(|v| {
            self.fresh(match v {
                NearVal::Video(e) => e.fetched,
                NearVal::User(e) => e.fetched,
                NearVal::Set(e) => e.fetched,
                NearVal::Session(e) => e.fetched,
                NearVal::Conv(e) => e.fetched,
                NearVal::Card(e) => e.built(),
                NearVal::Viewer(e) => e.built,
            })
        })
    }

    pub fn video(&self, id: i64) -> Option<Arc<VideoEntry>> {
        match self.lookup(NearKey::Video(id)) {
            Some(NearVal::Video(e)) => Some(e),
            _ => None,
        }
    }

    pub fn user(&self, id: i64) -> Option<Arc<UserEntry>> {
        match self.lookup(NearKey::User(id)) {
            Some(NearVal::User(e)) => Some(e),
            _ => None,
        }
    }

    /// User `id`'s session, if held and fresh.
    pub fn session(&self, id: i64) -> Option<Arc<SessionEntry>> {
        match self.lookup(NearKey::Session(id)) {
            Some(NearVal::Session(e)) => Some(e),
            _ => None,
        }
    }

    /// Wraps a fetched session, installing it unless an invalidation came after `t`.
    pub fn install_session(
        &self,
        id: i64,
        generation: i64,
        revoked: Vec<u64>,
        t: Ticket,
    ) -> Arc<SessionEntry> {
        let e = Arc::new(SessionEntry {
            generation,
            revoked,
            fetched: Instant::now(),
        });
        let key = NearKey::Session(id);
        if self.installable(&key, t) {
            self.entries.insert(key, NearVal::Session(e.clone()));
        }
        e
    }

    /// The author of video `id`, if known here (videos are immutable and never deleted).
    pub fn video_author(&self, id: i64) -> Option<i64> {
        if !self.enabled {
            return None;
        }
        self.facts.get(&NearKey::Video(id))
    }

    /// Records that user `id` exists (users are never deleted).
    pub fn know_user(&self, id: i64) {
        if self.enabled {
            self.facts.insert(NearKey::User(id), 0);
        }
    }

    /// Whether user `id` is known to exist here (users are never deleted).
    pub fn user_exists(&self, id: i64) -> bool {
        self.enabled && self.facts.get(&NearKey::User(id)).is_some()
    }

    /// Wraps fetched data as an entry, installing it unless an invalidation came after `t`.
    pub fn install_video(&self, data: &VideoData, t: Ticket) -> Arc<VideoEntry> {
        let e = Arc::new(VideoEntry::new(data, &self.urls));
        let key = NearKey::Video(e.id);
        if self.enabled {
            self.facts.insert(key, e.author_id);
        }
        if self.installable(&key, t) {
            self.entries.insert(key, NearVal::Video(e.clone()));
        }
        e
    }

    pub fn install_user(&self, data: UserData, t: Ticket) -> Arc<UserEntry> {
        let e = Arc::new(UserEntry::new(data));
        let key = NearKey::User(e.data.id);
        if self.enabled {
            self.facts.insert(key, 0);
        }
        if self.installable(&key, t) {
            self.entries.insert(key, NearVal::User(e.clone()));
        }
        e
    }

    /// Drops `key` and stamps its bucket so that fetches begun before now are not installed.
    /// Stamped again after the removal, so that a page rendered from a lookup made before the
    /// removal (with a ticket from before this second stamp) is never current.
    pub fn invalidate(&self, key: NearKey) {
        let bucket = &self.stamps[key.bucket()];
        let s = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        bucket.fetch_max(s, Ordering::AcqRel);
        match key {
            // a video's newest comments are a rendered page, kept with the pages
            NearKey::Comments(video) => {
                self.pages.remove(&pages::PageQuery {
                    kind: pages::PageKind::Comments,
                    owner: video,
                    ids: &[],
                });
            }
            _ => {
                self.entries.remove(&key);
            }
        }
        let s = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        bucket.fetch_max(s, Ordering::AcqRel);
        self.stats.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn invalidate_feed(&self) {
        self.feed_generation.fetch_add(1, Ordering::AcqRel);
        self.stats.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops everything (a flush, or the tracking connection was lost).
    pub fn clear(&self) {
        // stamped before and after the removal, as in `invalidate`
        self.stamp_all();
        self.entries.clear();
        self.pages.clear();
        self.stamp_all();
        self.invalidate_feed();
    }

    /// Stamps every bucket: fetches begun before now are not installed.
    fn stamp_all(&self) {
        let s = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        for st in self.stamps.iter() {
            st.fetch_max(s, Ordering::AcqRel);
        }
    }

    /// Up to `limit` feed ids strictly below `before` (None: the newest), from the snapshot.
    pub fn feed_page(&self, before: Option<i64>, limit: usize) -> FeedLookup {
        if !self.enabled {
            return FeedLookup::Beyond;
        }
        let guard = self.feed.read().unwrap_or_else(|e| e.into_inner());
        let Some(s) = guard.as_ref() else {
            return FeedLookup::Refresh;
        };
        if !self.fresh(s.fetched) || s.generation != self.feed_generation.load(Ordering::Acquire) {
            return FeedLookup::Refresh;
        }
        // ids are descending: skip those >= before
        let start = match before {
            None => 0,
            Some(b) => s.ids.partition_point(|id| *id >= b),
        };
        let end = start.saturating_add(limit).min(s.ids.len());
        if end - start < limit && s.ids.len() < s.card {
            return FeedLookup::Beyond;
        }
        self.hit(true);
        FeedLookup::Page(s.ids[start..end].to_vec())
    }

    /// The snapshot (newest first) and the timeline length it was fetched at, to extend it.
    pub fn feed_head(&self) -> Option<(Arc<Vec<i64>>, usize)> {
        let guard = self.feed.read().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|s| (s.ids.clone(), s.card))
    }

    /// True when the snapshot can serve pages (present, young and not invalidated).
    pub fn feed_fresh(&self) -> bool {
        let guard = self.feed.read().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().is_some_and(|s| {
            self.fresh(s.fetched) && s.generation == self.feed_generation.load(Ordering::Acquire)
        })
    }

    /// The current invalidation generation of the feed (read before fetching it).
    pub fn feed_generation(&self) -> u64 {
        self.feed_generation.load(Ordering::Acquire)
    }

    /// Installs a fetched feed head (newest first, at most the cap) of a timeline of `card`.
    pub fn install_feed(&self, ids: Vec<i64>, card: usize, generation: u64) {
        if !self.enabled {
            return;
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        *self.feed.write().unwrap_or_else(|e| e.into_inner()) = Some(FeedSnapshot {
            ids: Arc::new(ids),
            card,
            fetched: Instant::now(),
            generation,
        });
    }
}

#[cfg(test)]
pub(super) mod test_support {
    use super::*;
    use crate::model::Urls;

    pub fn near(max_age: Duration, feed_cap: usize) -> NearCache {
        let urls = Urls::new("http://h".into());
        NearCache::new(true, 1 << 20, max_age, feed_cap, urls)
    }

    pub fn user() -> UserData {
        UserData {
            id: 7,
            name: "a \"quoted\" name \u{1F600}".into(),
            avatar: "http://x/a.png".into(),
            background_image: String::new(),
            signature: "line\nbreak".into(),
            follow_count: 1,
            follower_count: 2,
            total_favorited: 3,
            work_count: 4,
            favorite_count: 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{near, user};
    use super::*;

    #[test]
    fn invalidation_during_a_fetch_blocks_its_install() {
        let n = near(Duration::from_secs(60), 100);
        let t = n.begin();
        n.invalidate(NearKey::User(7));
        n.install_user(user(), t);
        assert!(
            n.user(7).is_none(),
            "a fetch older than the invalidation was installed"
        );
        let t = n.begin();
        n.install_user(user(), t);
        assert!(n.user(7).is_some());
        let t = n.begin();
        n.clear();
        n.install_video(&VideoData::default(), t);
        assert!(n.video(0).is_none());
    }

    #[test]
    fn list_and_session_invalidations_never_share_a_bucket_with_entries() {
        for i in 1..5000i64 {
            for k in [NearKey::Video(i), NearKey::User(i)] {
                assert!(k.bucket() < ENTRY_STAMPS);
            }
            for k in [
                NearKey::Likes(i),
                NearKey::Follows(i),
                NearKey::Followers(i),
                NearKey::Works(i),
                NearKey::Session(i),
                NearKey::Comments(i),
                NearKey::conv(i, i * 7),
            ] {
                assert!((ENTRY_STAMPS..STAMPS).contains(&k.bucket()));
            }
        }
    }

    #[test]
    fn a_delivering_subscription_keeps_entries_past_max_age() {
        let n = near(Duration::from_millis(30), 100);
        n.install_user(user(), n.begin());
        n.tracking.store(true, Ordering::Release);
        n.beat();
        std::thread::sleep(Duration::from_millis(20));
        n.beat();
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            n.user(7).is_some(),
            "heartbeats came back: the entry is still trusted"
        );
        // the heartbeats stop: within max_age the entry is no longer served
        std::thread::sleep(Duration::from_millis(35));
        assert!(n.user(7).is_none());
    }

    #[test]
    fn entries_expire_after_max_age() {
        let n = near(Duration::from_millis(30), 100);
        n.install_user(user(), n.begin());
        assert!(n.user(7).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(n.user(7).is_none());
    }

    #[test]
    fn feed_pages_from_the_snapshot() {
        let n = near(Duration::from_secs(60), 5);
        assert!(matches!(n.feed_page(None, 2), FeedLookup::Refresh));
        let g = n.feed_generation();
        n.install_feed(vec![50, 40, 30, 20, 10], 8, g);
        match n.feed_page(Some(40), 2) {
            FeedLookup::Page(p) => assert_eq!(p, vec![30, 20]),
            _ => panic!("expected a page"),
        }
        // past the end of an incomplete head: Redis has more
        assert!(matches!(n.feed_page(Some(20), 2), FeedLookup::Beyond));
        n.install_feed(vec![50, 40, 30, 20, 10], 5, g);
        match n.feed_page(Some(20), 2) {
            FeedLookup::Page(p) => assert_eq!(p, vec![10]),
            _ => panic!("expected a page"),
        }
        n.invalidate_feed();
        assert!(matches!(n.feed_page(None, 2), FeedLookup::Refresh));
    }
}
