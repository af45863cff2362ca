//! The embedded store's [`Store`] implementation: reads and single-batch writes here, the
//! counted writes in `counted.rs`, the bulk paths in `bulk.rs`.

use super::*;

#[async_trait]
impl Store for EmbeddedStore {
    async fn create_user(&self, user: &UserRecord, outbox: &OutboxEntry) -> StoreResult<bool> {
        let (user, outbox) = (user.clone(), outbox.clone());
        let created = self
            .commit(
                move |i| {
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
                },
                |created| *created,
            )
            .await?;
        Ok(created)
    }

    async fn get_user(&self, id: i64) -> StoreResult<Option<UserRecord>> {
        self.read(move |i| match i.users.get(be(id)).map_err(unavailable)? {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        })
    }

    async fn user_id_by_name(&self, name: &str) -> StoreResult<Option<i64>> {
        let name = name.to_string();
        self.read(move |i| {
            Ok(i.usernames
                .get(name.as_bytes())
                .map_err(unavailable)?
                .map(|v| read_id(&v)))
        })
    }

    async fn put_video(&self, video: &VideoRecord, outbox: &OutboxEntry) -> StoreResult<()> {
        let (video, outbox) = (video.clone(), outbox.clone());
        self.commit(
            move |i| {
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
            },
            |_| true,
        )
        .await?;
        Ok(())
    }

    async fn get_video(&self, id: i64) -> StoreResult<Option<VideoRecord>> {
        self.read(move |i| match i.videos.get(be(id)).map_err(unavailable)? {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        })
    }

    async fn video_ids_by_author(&self, author_id: i64) -> StoreResult<Vec<i64>> {
        self.read(move |i| {
            let mut out = Vec::new();
            for kv in i.videos_by_author.prefix(be(author_id)).rev() {
                let k = kv.key().map_err(unavailable)?;
                out.push(read_id(&k[8..]));
            }
            Ok(out)
        })
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
        self.read(move |i| {
            let mut out = Vec::new();
            for kv in i.video_plays.prefix(be(video_id)) {
                let k = kv.key().map_err(unavailable)?;
                out.push(String::from_utf8_lossy(&k[8..]).into_owned());
            }
            Ok(out)
        })
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
        self.read(move |i| get_json(&i.user_counters, be(user_id)))
    }

    async fn video_counters(&self, video_id: i64) -> StoreResult<VideoCounters> {
        self.read(move |i| get_json(&i.video_counters, be(video_id)))
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
            .commit(
                move |i| counted::set_like(i, user_id, video_id, author_id, like, like_id, &outbox),
                |c: &LikeChange| c.changed,
            )
            .await?;
        Ok(change)
    }

    async fn likes_by_user(&self, user_id: i64) -> StoreResult<Vec<(i64, i64)>> {
        self.read(move |i| scored_pairs(&i.likes_by_user, user_id))
    }

    async fn count_likers(&self, video_id: i64) -> StoreResult<i64> {
        self.read(move |i| Ok(i.likers_by_video.prefix(be(video_id)).count() as i64))
    }

    async fn add_comment(
        &self,
        comment: &CommentRecord,
        outbox: &OutboxEntry,
    ) -> StoreResult<VideoCounters> {
        let (c, outbox) = (comment.clone(), outbox.clone());
        let counters = self
            .commit(move |i| counted::add_comment(i, &c, &outbox), |_| true)
            .await?;
        Ok(counters)
    }

    async fn delete_comment(
        &self,
        comment_id: i64,
        outbox: &OutboxEntry,
    ) -> StoreResult<Option<VideoCounters>> {
        let outbox = outbox.clone();
        let counters = self
            .commit(
                move |i| counted::delete_comment(i, comment_id, &outbox),
                |c: &Option<VideoCounters>| c.is_some(),
            )
            .await?;
        Ok(counters)
    }

    async fn get_comment(&self, id: i64) -> StoreResult<Option<CommentRecord>> {
        self.read(
            move |i| match i.comments.get(be(id)).map_err(unavailable)? {
                Some(v) => decode(&v).map(Some),
                None => Ok(None),
            },
        )
    }

    async fn comment_ids_by_video(&self, video_id: i64) -> StoreResult<Vec<i64>> {
        self.read(move |i| {
            let mut out = Vec::new();
            for kv in i.comments_by_video.prefix(be(video_id)).rev() {
                let k = kv.key().map_err(unavailable)?;
                out.push(read_id(&k[8..]));
            }
            Ok(out)
        })
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
            .commit(
                move |i| counted::set_follow(i, follower, followee, follow, follow_id, &outbox),
                |c: &FollowChange| c.changed,
            )
            .await?;
        Ok(change)
    }

    async fn following(&self, user_id: i64) -> StoreResult<Vec<(i64, i64)>> {
        self.read(move |i| scored_pairs(&i.following_by_user, user_id))
    }

    async fn followers(&self, user_id: i64) -> StoreResult<Vec<(i64, i64)>> {
        self.read(move |i| scored_pairs(&i.followers_by_user, user_id))
    }

    async fn add_message(&self, message: &MessageRecord, outbox: &OutboxEntry) -> StoreResult<()> {
        let (m, outbox) = (message.clone(), outbox.clone());
        self.commit(
            move |i| {
                let mut b = i.db.batch();
                b.insert(&i.messages, message_key(&m), encode(&m));
                outbox_put(i, &mut b, &outbox);
                b.commit().map_err(unavailable)
            },
            |_| true,
        )
        .await?;
        Ok(())
    }

    async fn conversation(&self, a: i64, b: i64) -> StoreResult<Vec<MessageRecord>> {
        self.read(move |i| {
            let mut out = Vec::new();
            for kv in i.messages.prefix(conversation_prefix(a, b)) {
                out.push(decode(&kv.value().map_err(unavailable)?)?);
            }
            Ok(out)
        })
    }

    async fn session(&self, user_id: i64) -> StoreResult<SessionState> {
        self.read(move |i| get_json(&i.sessions, be(user_id)))
    }

    async fn revoke(
        &self,
        user_id: i64,
        what: Revoke,
        now: u64,
        outbox: &OutboxEntry,
    ) -> StoreResult<SessionState> {
        let outbox = outbox.clone();
        let state = self
            .commit(
                move |i| {
                    let _g = i.counter_lock.lock().unwrap_or_else(|e| e.into_inner());
                    let s: SessionState = get_json(&i.sessions, be(user_id))?;
                    let s = s.revoked_by(what, now);
                    let mut b = i.db.batch();
                    b.insert(&i.sessions, be(user_id).to_vec(), encode(&s));
                    outbox_put(i, &mut b, &outbox);
                    b.commit().map_err(unavailable)?;
                    Ok(s)
                },
                |_| true,
            )
            .await?;
        Ok(state)
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
            // entries marked done but not yet removed by the committer are not pending
            let done: std::collections::HashSet<i64> = i
                .outbox_done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .copied()
                .collect();
            let mut out = Vec::new();
            for kv in i.outbox.iter() {
                if out.len() == limit {
                    break;
                }
                let e: OutboxEntry = decode(&kv.value().map_err(unavailable)?)?;
                if !done.contains(&e.id) {
                    out.push(e);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn outbox_done(&self, id: i64) -> StoreResult<()> {
        // removed by the committer with its next round (commit.rs)
        self.0
            .outbox_done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
        Ok(())
    }

    async fn flush(&self) -> StoreResult<()> {
        self.sync().await
    }

    async fn import(&self, data: Import) -> StoreResult<()> {
        self.blocking(move |i| bulk::import(i, &data)).await
    }

    async fn scan_likes(&self, after: (i64, i64), limit: usize) -> StoreResult<Vec<(i64, i64)>> {
        self.blocking(move |i| bulk::scan_likes(i, after, limit))
            .await
    }

    async fn scan_conversations(
        &self,
        cursor: &[u8],
        limit: usize,
    ) -> StoreResult<ScanPage<(i64, i64)>> {
        let cursor = cursor.to_vec();
        self.blocking(move |i| bulk::scan_conversations(i, &cursor, limit))
            .await
    }

    async fn scan_comments(
        &self,
        cursor: &[u8],
        limit: usize,
    ) -> StoreResult<ScanPage<CommentRecord>> {
        let cursor = cursor.to_vec();
        self.blocking(move |i| bulk::scan_comments(i, &cursor, limit))
            .await
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            durable_writes: self.0.durable_writes.load(Ordering::Relaxed),
            fsyncs: self.0.fsyncs.load(Ordering::Relaxed),
            memory_bytes: self.memory_bytes(),
        }
    }
}
