//! Videos in Redis: installing a published one, reloading one from the store, reading them
//! (from the near-cache first) and counting distinct viewers.

use super::codec::{video_fields, video_from_hash};
use super::reload::{Entity, Kind, LoadCall, Reload};
use super::{Cache, EXACT_VIEWERS, RELOAD_ATTEMPTS};
use crate::error::AppError;
use crate::model::VideoData;
use crate::near::{NearKey, VideoEntry};
use crate::store::{VideoCounters, VideoRecord};
use fred::prelude::*;
use fred::types::Value;
use std::collections::HashMap;
use std::sync::Arc;

impl Cache {
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
        args.extend(video_fields(v, &VideoCounters::default(), 0));
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
        self.near.invalidate(NearKey::Works(a));
        self.near.invalidate_feed();
        Ok(())
    }

    /// Counts a distinct viewer of a video (its durable record is written first).
    pub async fn play_recorded(&self, video_id: i64, viewer: &str) -> Result<(), AppError> {
        let mut keys = self.keys.video_all(video_id);
        keys.push(self.keys.video_viewers(video_id));
        self.eval(
            &self.scripts.play,
            keys,
            vec![viewer.to_string(), EXACT_VIEWERS.to_string()],
        )
        .await?;
        self.near.invalidate(NearKey::Video(video_id));
        Ok(())
    }

    /// Reloads video `id` from the durable store if it is not in Redis. Returns false when the
    /// video does not exist.
    pub async fn ensure_video(&self, id: i64) -> Result<bool, AppError> {
        self.load_entity(Entity::Video, id, Reload::IfMissing).await
    }

    /// Video `id`'s lease and the keys its lease script checks (a read's miss) or drops
    /// (`rebuild-cache`).
    pub(super) fn video_lease_keys(&self, id: i64, mode: Reload) -> (String, Vec<String>) {
        let keys = match mode {
            Reload::IfMissing => self.keys.video_all(id)[..3].to_vec(),
            Reload::Replace => {
                let mut k = self.keys.video_keys_all(id);
                k.pop(); // the lease
                k
            }
        };
        (self.keys.video_lease(id), keys)
    }

    /// Reads video `id` from the durable store under the lease `token` and makes its
    /// `load_video.lua` call, staging large sets first.
    pub(super) async fn video_load_call(
        &self,
        id: i64,
        token: String,
    ) -> Result<LoadCall, AppError> {
        let Some(v) = self.store.get_video(id).await? else {
            self.io(self.client().del::<(), _>(self.keys.video_lease(id)))
                .await?;
            return Ok(LoadCall::Gone);
        };
        let counters = self.store.video_counters(id).await?;
        let mut viewers = self.store.plays(id).await?;
        // a viewer is recorded once per hour bucket in CQL: the exact count needs them once
        viewers.sort_unstable();
        viewers.dedup();
        let comments = self.store.comment_ids_by_video(id).await?;
        let fields = video_fields(&v, &counters, viewers.len());
        // a few viewers go inline, whatever the chunk size, for the exact set beside the
        // HyperLogLog (`load_video.lua`)
        let exact = viewers.len() <= EXACT_VIEWERS;
        let staged_viewers: &[String] = if exact { &[] } else { &viewers };
        let mut comments: Vec<String> = comments.iter().map(|c| c.to_string()).collect();
        // the load script's keys (the lease check's are `keys`)
        let mut load_keys = self.keys.video_keys_all(id);
        let plan = [
            (load_keys[1].as_str(), Kind::Hll, staged_viewers),
            (load_keys[2].as_str(), Kind::Ids, comments.as_slice()),
        ];
        let staged = self
            .stage_sets(&self.keys.video_lease(id), &token, &plan)
            .await?;
        let Some((flags, froms)) = staged else {
            return Ok(LoadCall::LeaseLost);
        };
        let staging = [
            self.keys.staging(&load_keys[1]),
            self.keys.staging(&load_keys[2]),
        ];
        load_keys.extend(staging);
        let inline = viewers.len() - froms[0] + comments.len() - froms[1];
        let mut args = Vec::with_capacity(fields.len() + inline + 4);
        args.extend([token, flags, (fields.len() / 2).to_string()]);
        args.extend(fields);
        args.push((viewers.len() - froms[0]).to_string());
        args.extend(viewers.drain(froms[0]..));
        args.extend(comments.drain(froms[1]..));
        Ok(LoadCall::Ready(load_keys, args))
    }

    /// The author of video `id` (None: no such video), without a round trip once known.
    pub async fn video_author(&self, id: i64) -> Result<Option<i64>, AppError> {
        if let Some(a) = self.near.video_author(id) {
            return Ok(Some(a));
        }
        Ok(self.video(id).await?.map(|v| v.author_id))
    }

    /// Video `id`'s data (its media keys: the near-cache holds only its rendered JSON), from
    /// Redis, reloaded there when missing; installed in the near-cache on the way.
    pub async fn video(&self, id: i64) -> Result<Option<VideoData>, AppError> {
        let t = self.near.begin();
        let found = self.fetch_videos(&[id]).await?.pop().flatten();
        if let Some(d) = &found {
            self.near.install_video(d, t);
        }
        Ok(found)
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
                slots[i] = d.map(|d| self.near.install_video(&d, t));
            }
        }
        Ok(slots.into_iter().flatten().collect())
    }

    /// Videos by id from Redis, in the order given (None: unknown), reloading those missing.
    async fn fetch_videos(&self, ids: &[i64]) -> Result<Vec<Option<VideoData>>, AppError> {
        let mut slots: Vec<Option<VideoData>> = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            self.rt();
            let this = self;
            let res: Vec<Result<Value, fred::error::Error>> = self
                .pipelined(move || async move {
                    let p = this.client().pipeline();
                    for id in ids {
                        let _: () = p.hgetall(this.keys.video(*id)).await?;
                        let _: () = p.pfcount(this.keys.video_plays(*id)).await?;
                    }
                    Ok(p)
                })
                .await?;
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
                let c = self.client();
                let h: HashMap<String, String> =
                    self.io_retry(|| c.hgetall(self.keys.video(id))).await?;
                let pc: i64 = self
                    .io_retry(|| c.pfcount(self.keys.video_plays(id)))
                    .await?;
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
}
