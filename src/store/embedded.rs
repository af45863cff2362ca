//! The embedded durable store: fjall (an LSM tree, like ScyllaDB) in the data directory.
//!
//! One fjall keyspace per CQL table; keys are the CQL primary key with integers big-endian, so
//! that clustering order is byte order. Writes go into one atomic batch (the records plus their
//! outbox entry), then wait for the group committer: a thread that takes every waiting write,
//! runs one `fsync` for all of them and acknowledges them together.

use super::*;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::oneshot;

type SyncWaiter = oneshot::Sender<Result<(), String>>;

struct Inner {
    db: Database,
    users: Keyspace,
    usernames: Keyspace,
    videos: Keyspace,
    videos_by_author: Keyspace,
    feed_timeline: Keyspace,
    video_plays: Keyspace,
    outbox: Keyspace,
    user_counters: Keyspace,
    video_counters: Keyspace,
    /// (user, video) -> PairState
    likes: Keyspace,
    /// (user, like_id) -> video
    likes_by_user: Keyspace,
    /// (video, user) -> ()
    likers_by_video: Keyspace,
    comments: Keyspace,
    /// (video, comment) -> ()
    comments_by_video: Keyspace,
    /// (follower, followee) -> PairState
    follows: Keyspace,
    /// (follower, follow_id) -> followee
    following_by_user: Keyspace,
    /// (followee, follow_id) -> follower
    followers_by_user: Keyspace,
    /// (low user, high user, message id) -> message
    messages: Keyspace,
    /// Serialises read-modify-write of likes, comments and counters.
    counter_lock: Mutex<()>,
    /// Serialises the check-then-insert on `usernames` (the embedded `IF NOT EXISTS`).
    name_lock: Mutex<()>,
    /// Requests for the group committer.
    sync_tx: Mutex<Option<mpsc::Sender<SyncWaiter>>>,
    /// The group committer thread, joined on drop so the directory lock is released.
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
    durable_writes: AtomicU64,
    fsyncs: Arc<AtomicU64>,
}

/// fjall-backed [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore(Arc<Inner>);

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn be(id: i64) -> [u8; 8] {
    (id as u64).to_be_bytes()
}

fn pair(a: i64, b: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.extend_from_slice(&be(a));
    k.extend_from_slice(&be(b));
    k
}

fn read_id(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a) as i64
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    simd_json::to_vec(v).expect("records always serialise")
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    let mut buf = bytes.to_vec();
    simd_json::from_slice(&mut buf).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(unavailable)?;
        let db = Database::builder(dir).open().map_err(unavailable)?;
        let ks = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(unavailable)
        };
        let (tx, rx) = mpsc::channel::<SyncWaiter>();
        let fsyncs = Arc::new(AtomicU64::new(0));
        let inner = Inner {
            users: ks("users")?,
            usernames: ks("usernames")?,
            videos: ks("videos")?,
            videos_by_author: ks("videos_by_author")?,
            feed_timeline: ks("feed_timeline")?,
            video_plays: ks("video_plays")?,
            outbox: ks("outbox")?,
            user_counters: ks("user_counters")?,
            video_counters: ks("video_counters")?,
            likes: ks("likes")?,
            likes_by_user: ks("likes_by_user")?,
            likers_by_video: ks("likers_by_video")?,
            comments: ks("comments")?,
            comments_by_video: ks("comments_by_video")?,
            follows: ks("follows")?,
            following_by_user: ks("following_by_user")?,
            followers_by_user: ks("followers_by_user")?,
            messages: ks("messages")?,
            counter_lock: Mutex::new(()),
            name_lock: Mutex::new(()),
            sync_tx: Mutex::new(Some(tx)),
            durable_writes: AtomicU64::new(0),
            fsyncs: fsyncs.clone(),
            committer: Mutex::new(None),
            db: db.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("store-group-commit".into())
            .spawn(move || group_commit(db, rx, fsyncs))
            .map_err(unavailable)?;
        *inner.committer.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(Self(Arc::new(inner)))
    }

    async fn blocking<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.0.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(unavailable)?
    }

    /// Waits until everything committed so far is on disk, sharing the fsync with every other
    /// writer waiting at the same time.
    async fn sync(&self) -> StoreResult<()> {
        let (tx, rx) = oneshot::channel();
        {
            let guard = self.0.sync_tx.lock().unwrap_or_else(|e| e.into_inner());
            let sender = guard
                .as_ref()
                .ok_or_else(|| unavailable("store is closed"))?;
            sender
                .send(tx)
                .map_err(|_| unavailable("group committer stopped"))?;
        }
        rx.await
            .map_err(|_| unavailable("group committer stopped"))?
            .map_err(StoreError::Unavailable)
    }

    /// [`Self::sync`] for an acknowledged write, counted in [`StoreStats::durable_writes`].
    async fn sync_write(&self) -> StoreResult<()> {
        self.sync().await?;
        self.0.durable_writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn group_commit(db: Database, rx: mpsc::Receiver<SyncWaiter>, fsyncs: Arc<AtomicU64>) {
    while let Ok(first) = rx.recv() {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let started = std::time::Instant::now();
        let res = db.persist(PersistMode::SyncAll).map_err(|e| e.to_string());
        fsyncs.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!("douyin_store_fsync_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("douyin_store_group_commit_writes").record(waiters.len() as f64);
        if let Err(e) = &res {
            tracing::error!(error = %e, "durable store fsync failed");
        }
        tracing::trace!(batch = waiters.len(), "group commit");
        for w in waiters {
            let _ = w.send(res.clone());
        }
    }
}

fn get_json<T: serde::de::DeserializeOwned + Default>(
    ks: &Keyspace,
    key: [u8; 8],
) -> StoreResult<T> {
    match ks.get(key).map_err(unavailable)? {
        Some(v) => decode(&v),
        None => Ok(T::default()),
    }
}

/// (prefix id, score id) keys with an id value, as (score, value), highest score first.
fn scored_pairs(ks: &Keyspace, id: i64) -> StoreResult<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    for kv in ks.prefix(be(id)).rev() {
        let (k, v) = kv.into_inner().map_err(unavailable)?;
        out.push((read_id(&k[8..]), read_id(&v)));
    }
    Ok(out)
}

/// A conversation's key prefix: the two user ids, lower first.
fn conversation_prefix(a: i64, b: i64) -> Vec<u8> {
    pair(a.min(b), a.max(b))
}

fn get_pair(ks: &Keyspace, key: &[u8]) -> StoreResult<PairState> {
    match ks.get(key).map_err(unavailable)? {
        Some(v) => decode(&v),
        None => Ok(PairState::default()),
    }
}

fn outbox_put(inner: &Inner, batch: &mut fjall::OwnedWriteBatch, entry: &OutboxEntry) {
    batch.insert(&inner.outbox, be(entry.id).to_vec(), encode(entry));
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create_user(&self, user: &UserRecord, outbox: &OutboxEntry) -> StoreResult<bool> {
        let (user, outbox) = (user.clone(), outbox.clone());
        let created = self
            .blocking(move |i| {
                let _g = i.name_lock.lock().unwrap_or_else(|e| e.into_inner());
                if i.usernames
                    .contains_key(user.name.as_bytes())
                    .map_err(unavailable)?
                {
                    return Ok(false);
                }
                let mut b = i.db.batch();
                b.insert(
                    &i.usernames,
                    user.name.as_bytes().to_vec(),
                    be(user.id).to_vec(),
                );
                b.insert(&i.users, be(user.id).to_vec(), encode(&user));
                outbox_put(i, &mut b, &outbox);
                b.commit().map_err(unavailable)?;
                Ok(true)
            })
            .await?;
        if created {
            self.sync_write().await?;
        }
        Ok(created)
    }

    async fn get_user(&self, id: i64) -> StoreResult<Option<UserRecord>> {
        self.blocking(move |i| match i.users.get(be(id)).map_err(unavailable)? {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        })
        .await
    }

    async fn user_id_by_name(&self, name: &str) -> StoreResult<Option<i64>> {
        let name = name.to_string();
        self.blocking(move |i| {
            Ok(i.usernames
                .get(name.as_bytes())
                .map_err(unavailable)?
                .map(|v| read_id(&v)))
        })
        .await
    }

    async fn put_video(&self, video: &VideoRecord, outbox: &OutboxEntry) -> StoreResult<()> {
        let (video, outbox) = (video.clone(), outbox.clone());
        self.blocking(move |i| {
            let mut b = i.db.batch();
            b.insert(&i.videos, be(video.id).to_vec(), encode(&video));
            b.insert(
                &i.videos_by_author,
                pair(video.author_id, video.id),
                Vec::new(),
            );
            b.insert(
                &i.feed_timeline,
                be(video.id).to_vec(),
                be(video.author_id).to_vec(),
            );
            outbox_put(i, &mut b, &outbox);
            b.commit().map_err(unavailable)
        })
        .await?;
        self.sync_write().await
    }

    async fn get_video(&self, id: i64) -> StoreResult<Option<VideoRecord>> {
        self.blocking(move |i| match i.videos.get(be(id)).map_err(unavailable)? {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        })
        .await
    }

    async fn video_ids_by_author(&self, author_id: i64) -> StoreResult<Vec<i64>> {
        self.blocking(move |i| {
            let mut out = Vec::new();
            for kv in i.videos_by_author.prefix(be(author_id)).rev() {
                let k = kv.key().map_err(unavailable)?;
                out.push(read_id(&k[8..]));
            }
            Ok(out)
        })
        .await
    }

    async fn feed_ids(&self, limit: usize) -> StoreResult<Vec<i64>> {
        self.blocking(move |i| {
            let mut out = Vec::new();
            for kv in i.feed_timeline.iter().rev().take(limit) {
                out.push(read_id(&kv.key().map_err(unavailable)?));
            }
            Ok(out)
        })
        .await
    }

    async fn add_play(&self, video_id: i64, viewer: &str) -> StoreResult<()> {
        let mut key = be(video_id).to_vec();
        key.extend_from_slice(viewer.as_bytes());
        self.blocking(move |i| i.video_plays.insert(key, Vec::new()).map_err(unavailable))
            .await
    }

    async fn plays(&self, video_id: i64) -> StoreResult<Vec<String>> {
        self.blocking(move |i| {
            let mut out = Vec::new();
            for kv in i.video_plays.prefix(be(video_id)) {
                let k = kv.key().map_err(unavailable)?;
                out.push(String::from_utf8_lossy(&k[8..]).into_owned());
            }
            Ok(out)
        })
        .await
    }

    async fn scan_users(&self, after: i64, limit: usize) -> StoreResult<Vec<UserRecord>> {
        self.blocking(move |i| {
            let mut out = Vec::new();
            for kv in i.users.range(be(after.saturating_add(1))..).take(limit) {
                out.push(decode(&kv.value().map_err(unavailable)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn scan_videos(&self, after: i64, limit: usize) -> StoreResult<Vec<VideoRecord>> {
        self.blocking(move |i| {
            let mut out = Vec::new();
            for kv in i.videos.range(be(after.saturating_add(1))..).take(limit) {
                out.push(decode(&kv.value().map_err(unavailable)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn user_counters(&self, user_id: i64) -> StoreResult<UserCounters> {
        self.blocking(move |i| get_json(&i.user_counters, be(user_id)))
            .await
    }

    async fn video_counters(&self, video_id: i64) -> StoreResult<VideoCounters> {
        self.blocking(move |i| get_json(&i.video_counters, be(video_id)))
            .await
    }

    async fn set_like(
        &self,
        user_id: i64,
        video_id: i64,
        author_id: i64,
        like: bool,
        like_id: i64,
        outbox: &OutboxEntry,
    ) -> StoreResult<LikeChange> {
        let outbox = outbox.clone();
        let change = self
            .blocking(move |i| {
                let _g = i.counter_lock.lock().unwrap_or_else(|e| e.into_inner());
                let key = pair(user_id, video_id);
                let state = get_pair(&i.likes, &key)?;
                let mut liker: UserCounters = get_json(&i.user_counters, be(user_id))?;
                let mut video: VideoCounters = get_json(&i.video_counters, be(video_id))?;
                let mut author: UserCounters = if author_id == user_id {
                    liker
                } else {
                    get_json(&i.user_counters, be(author_id))?
                };
                if state.on == like {
                    return Ok(LikeChange {
                        changed: false,
                        liker,
                        author,
                        video,
                        pair_version: state.version,
                    });
                }
                let delta = if like { 1 } else { -1 };
                let mut b = i.db.batch();
                let next = PairState {
                    on: like,
                    id: if like { like_id } else { state.id },
                    version: state.version + 1,
                };
                b.insert(&i.likes, key, encode(&next));
                if like {
                    b.insert(
                        &i.likes_by_user,
                        pair(user_id, like_id),
                        be(video_id).to_vec(),
                    );
                    b.insert(&i.likers_by_video, pair(video_id, user_id), Vec::new());
                } else {
                    b.remove(&i.likes_by_user, pair(user_id, state.id));
                    b.remove(&i.likers_by_video, pair(video_id, user_id));
                }
                video.favorite_count += delta;
                video.favorite_version += 1;
                liker.favorite_count += delta;
                liker.like_version += 1;
                if author_id == user_id {
                    liker.total_favorited += delta;
                    liker.received_version += 1;
                    author = liker;
                } else {
                    author.total_favorited += delta;
                    author.received_version += 1;
                    b.insert(&i.user_counters, be(author_id).to_vec(), encode(&author));
                }
                b.insert(&i.user_counters, be(user_id).to_vec(), encode(&liker));
                b.insert(&i.video_counters, be(video_id).to_vec(), encode(&video));
                outbox_put(i, &mut b, &outbox);
                b.commit().map_err(unavailable)?;
                Ok(LikeChange {
                    changed: true,
                    liker,
                    author,
                    video,
                    pair_version: next.version,
                })
            })
            .await?;
        if change.changed {
            self.sync_write().await?;
        }
        Ok(change)
    }

    async fn likes_by_user(&self, user_id: i64) -> StoreResult<Vec<(i64, i64)>> {
        self.blocking(move |i| scored_pairs(&i.likes_by_user, user_id))
            .await
    }

    async fn count_likers(&self, video_id: i64) -> StoreResult<i64> {
        self.blocking(move |i| Ok(i.likers_by_video.prefix(be(video_id)).count() as i64))
            .await
    }

    async fn add_comment(
        &self,
        comment: &CommentRecord,
        outbox: &OutboxEntry,
    ) -> StoreResult<VideoCounters> {
        let (c, outbox) = (comment.clone(), outbox.clone());
        let counters = self
            .blocking(move |i| {
                let _g = i.counter_lock.lock().unwrap_or_else(|e| e.into_inner());
                let mut video: VideoCounters = get_json(&i.video_counters, be(c.video_id))?;
                video.comment_count += 1;
                video.comment_version += 1;
                let mut b = i.db.batch();
                b.insert(&i.comments, be(c.id).to_vec(), encode(&c));
                b.insert(&i.comments_by_video, pair(c.video_id, c.id), Vec::new());
                b.insert(&i.video_counters, be(c.video_id).to_vec(), encode(&video));
                outbox_put(i, &mut b, &outbox);
                b.commit().map_err(unavailable)?;
                Ok(video)
            })
            .await?;
        self.sync_write().await?;
        Ok(counters)
    }

    async fn delete_comment(
        &self,
        comment_id: i64,
        outbox: &OutboxEntry,
    ) -> StoreResult<Option<VideoCounters>> {
        let outbox = outbox.clone();
        let counters = self
            .blocking(move |i| {
                let _g = i.counter_lock.lock().unwrap_or_else(|e| e.into_inner());
                let Some(raw) = i.comments.get(be(comment_id)).map_err(unavailable)? else {
                    return Ok(None);
                };
                let c: CommentRecord = decode(&raw)?;
                let mut video: VideoCounters = get_json(&i.video_counters, be(c.video_id))?;
                video.comment_count -= 1;
                video.comment_version += 1;
                let mut b = i.db.batch();
                b.remove(&i.comments, be(c.id).to_vec());
                b.remove(&i.comments_by_video, pair(c.video_id, c.id));
                b.insert(&i.video_counters, be(c.video_id).to_vec(), encode(&video));
                outbox_put(i, &mut b, &outbox);
                b.commit().map_err(unavailable)?;
                Ok(Some(video))
            })
            .await?;
        if counters.is_some() {
            self.sync_write().await?;
        }
        Ok(counters)
    }

    async fn get_comment(&self, id: i64) -> StoreResult<Option<CommentRecord>> {
        self.blocking(
            move |i| match i.comments.get(be(id)).map_err(unavailable)? {
                Some(v) => decode(&v).map(Some),
                None => Ok(None),
            },
        )
        .await
    }

    async fn comment_ids_by_video(&self, video_id: i64) -> StoreResult<Vec<i64>> {
        self.blocking(move |i| {
            let mut out = Vec::new();
            for kv in i.comments_by_video.prefix(be(video_id)).rev() {
                let k = kv.key().map_err(unavailable)?;
                out.push(read_id(&k[8..]));
            }
            Ok(out)
        })
        .await
    }

    async fn set_follow(
        &self,
        follower: i64,
        followee: i64,
        follow: bool,
        follow_id: i64,
        outbox: &OutboxEntry,
    ) -> StoreResult<FollowChange> {
        let outbox = outbox.clone();
        let change = self
            .blocking(move |i| {
                let _g = i.counter_lock.lock().unwrap_or_else(|e| e.into_inner());
                let key = pair(follower, followee);
                let state = get_pair(&i.follows, &key)?;
                let mut a: UserCounters = get_json(&i.user_counters, be(follower))?;
                let mut b: UserCounters = get_json(&i.user_counters, be(followee))?;
                if state.on == follow {
                    return Ok(FollowChange {
                        changed: false,
                        follower: a,
                        followee: b,
                        pair_version: state.version,
                    });
                }
                let mut batch = i.db.batch();
                let next = PairState {
                    on: follow,
                    id: if follow { follow_id } else { state.id },
                    version: state.version + 1,
                };
                batch.insert(&i.follows, key, encode(&next));
                if follow {
                    batch.insert(
                        &i.following_by_user,
                        pair(follower, follow_id),
                        be(followee).to_vec(),
                    );
                    batch.insert(
                        &i.followers_by_user,
                        pair(followee, follow_id),
                        be(follower).to_vec(),
                    );
                } else {
                    batch.remove(&i.following_by_user, pair(follower, state.id));
                    batch.remove(&i.followers_by_user, pair(followee, state.id));
                }
                let delta = if follow { 1 } else { -1 };
                a.follow_count += delta;
                a.follow_version += 1;
                b.follower_count += delta;
                b.follower_version += 1;
                batch.insert(&i.user_counters, be(follower).to_vec(), encode(&a));
                batch.insert(&i.user_counters, be(followee).to_vec(), encode(&b));
                outbox_put(i, &mut batch, &outbox);
                batch.commit().map_err(unavailable)?;
                Ok(FollowChange {
                    changed: true,
                    follower: a,
                    followee: b,
                    pair_version: next.version,
                })
            })
            .await?;
        if change.changed {
            self.sync_write().await?;
        }
        Ok(change)
    }

    async fn following(&self, user_id: i64) -> StoreResult<Vec<(i64, i64)>> {
        self.blocking(move |i| scored_pairs(&i.following_by_user, user_id))
            .await
    }

    async fn followers(&self, user_id: i64) -> StoreResult<Vec<(i64, i64)>> {
        self.blocking(move |i| scored_pairs(&i.followers_by_user, user_id))
            .await
    }

    async fn add_message(&self, message: &MessageRecord, outbox: &OutboxEntry) -> StoreResult<()> {
        let (m, outbox) = (message.clone(), outbox.clone());
        self.blocking(move |i| {
            let mut key = conversation_prefix(m.from_user_id, m.to_user_id);
            key.extend_from_slice(&be(m.id));
            let mut b = i.db.batch();
            b.insert(&i.messages, key, encode(&m));
            outbox_put(i, &mut b, &outbox);
            b.commit().map_err(unavailable)
        })
        .await?;
        self.sync_write().await
    }

    async fn conversation(&self, a: i64, b: i64) -> StoreResult<Vec<MessageRecord>> {
        self.blocking(move |i| {
            let mut out = Vec::new();
            for kv in i.messages.prefix(conversation_prefix(a, b)) {
                out.push(decode(&kv.value().map_err(unavailable)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn max_id(&self) -> StoreResult<i64> {
        self.blocking(|i| {
            let mut max = 0;
            for ks in [&i.users, &i.videos, &i.outbox, &i.comments] {
                if let Some(kv) = ks.last_key_value() {
                    max = max.max(read_id(&kv.key().map_err(unavailable)?));
                }
            }
            Ok(max)
        })
        .await
    }

    async fn pending_outbox(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
        self.blocking(move |i| {
            let mut out = Vec::new();
            for kv in i.outbox.iter().take(limit) {
                out.push(decode(&kv.value().map_err(unavailable)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn outbox_done(&self, id: i64) -> StoreResult<()> {
        self.blocking(move |i| i.outbox.remove(be(id).to_vec()).map_err(unavailable))
            .await
    }

    async fn flush(&self) -> StoreResult<()> {
        self.sync().await
    }

    async fn import(&self, data: Import) -> StoreResult<()> {
        self.blocking(move |i| {
            const CHUNK: usize = 20_000;
            let mut b = i.db.batch();
            let mut n = 0;
            let step = |b: &mut fjall::OwnedWriteBatch, n: &mut usize| -> StoreResult<()> {
                *n += 1;
                if *n >= CHUNK {
                    let full = std::mem::replace(b, i.db.batch());
                    full.commit().map_err(unavailable)?;
                    *n = 0;
                }
                Ok(())
            };
            for u in &data.users {
                b.insert(&i.usernames, u.name.as_bytes().to_vec(), be(u.id).to_vec());
                b.insert(&i.users, be(u.id).to_vec(), encode(u));
                step(&mut b, &mut n)?;
            }
            for (id, c) in &data.user_counters {
                b.insert(&i.user_counters, be(*id).to_vec(), encode(c));
                step(&mut b, &mut n)?;
            }
            for v in &data.videos {
                b.insert(&i.videos, be(v.id).to_vec(), encode(v));
                b.insert(&i.videos_by_author, pair(v.author_id, v.id), Vec::new());
                b.insert(
                    &i.feed_timeline,
                    be(v.id).to_vec(),
                    be(v.author_id).to_vec(),
                );
                step(&mut b, &mut n)?;
            }
            for (id, c) in &data.video_counters {
                b.insert(&i.video_counters, be(*id).to_vec(), encode(c));
                step(&mut b, &mut n)?;
            }
            for (user, video, like_id) in &data.likes {
                let state = PairState {
                    on: true,
                    id: *like_id,
                    version: 1,
                };
                b.insert(&i.likes, pair(*user, *video), encode(&state));
                b.insert(&i.likes_by_user, pair(*user, *like_id), be(*video).to_vec());
                b.insert(&i.likers_by_video, pair(*video, *user), Vec::new());
                step(&mut b, &mut n)?;
            }
            for (a, c, follow_id) in &data.follows {
                let state = PairState {
                    on: true,
                    id: *follow_id,
                    version: 1,
                };
                b.insert(&i.follows, pair(*a, *c), encode(&state));
                b.insert(&i.following_by_user, pair(*a, *follow_id), be(*c).to_vec());
                b.insert(&i.followers_by_user, pair(*c, *follow_id), be(*a).to_vec());
                step(&mut b, &mut n)?;
            }
            for c in &data.comments {
                b.insert(&i.comments, be(c.id).to_vec(), encode(c));
                b.insert(&i.comments_by_video, pair(c.video_id, c.id), Vec::new());
                step(&mut b, &mut n)?;
            }
            for m in &data.messages {
                let mut key = conversation_prefix(m.from_user_id, m.to_user_id);
                key.extend_from_slice(&be(m.id));
                b.insert(&i.messages, key, encode(m));
                step(&mut b, &mut n)?;
            }
            b.commit().map_err(unavailable)?;
            i.db.persist(PersistMode::SyncAll).map_err(unavailable)
        })
        .await
    }

    async fn scan_likes(&self, after: (i64, i64), limit: usize) -> StoreResult<Vec<(i64, i64)>> {
        self.blocking(move |i| {
            let mut out = Vec::new();
            let start = pair(after.0, after.1.saturating_add(1));
            for kv in i.likes.range(start..) {
                let (k, v) = kv.into_inner().map_err(unavailable)?;
                let state: PairState = decode(&v)?;
                if state.on {
                    out.push((read_id(&k[..8]), read_id(&k[8..])));
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            durable_writes: self.0.durable_writes.load(Ordering::Relaxed),
            fsyncs: self.0.fsyncs.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Stop the committer; fjall persists on drop as well.
        self.sync_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = self
            .committer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
        let _ = self.db.persist(PersistMode::SyncAll);
    }
}
