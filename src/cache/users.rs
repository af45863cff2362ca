//! Users in Redis: installing a new one, reloading one from the store, reading profiles (from
//! the near-cache first) and paging through a user's zsets (published videos, likes, follows).

use super::codec::{scored_pairs, user_fields, user_from_hash};
use super::reload::{Entity, Kind, LoadCall, Reload};
use super::{Cache, RELOAD_ATTEMPTS};
use crate::error::AppError;
use crate::model::UserData;
use crate::near::{NearKey, UserEntry};
use crate::store::{UserCounters, UserRecord};
use fred::prelude::*;
use fred::types::Value;
use std::collections::HashMap;
use std::sync::Arc;

impl Cache {
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

    /// Reloads user `id` from the durable store if it is not in Redis. Returns false when the
    /// user does not exist.
    pub async fn ensure_user(&self, id: i64) -> Result<bool, AppError> {
        self.load_entity(Entity::User, id, Reload::IfMissing).await
    }

    /// User `id`'s lease and the keys its lease script checks (a read's miss) or drops
    /// (`rebuild-cache`).
    pub(super) fn user_lease_keys(&self, id: i64, mode: Reload) -> (String, Vec<String>) {
        let keys = match mode {
            Reload::IfMissing => self.keys.user_all(id)[..5].to_vec(),
            Reload::Replace => {
                let mut k = self.keys.user_keys_all(id);
                k.pop(); // the lease
                k
            }
        };
        (self.keys.user_lease(id), keys)
    }

    /// Reads user `id` from the durable store under the lease `token` and makes its
    /// `load_user.lua` call, staging large sets first.
    pub(super) async fn user_load_call(
        &self,
        id: i64,
        token: String,
    ) -> Result<LoadCall, AppError> {
        let Some(u) = self.store.get_user(id).await? else {
            self.io(self.client().del::<(), _>(self.keys.user_lease(id)))
                .await?;
            return Ok(LoadCall::Gone);
        };
        let counters = self.store.user_counters(id).await?;
        let vids = self.store.video_ids_by_author(id).await?;
        let likes = self.store.likes_by_user(id).await?;
        let following = self.store.following(id).await?;
        let followers = self.store.followers(id).await?;
        let fields = user_fields(&u, &counters, vids.len() as i64);
        let pairs = |set: &[(i64, i64)]| -> Vec<String> {
            set.iter()
                .flat_map(|(score, member)| [score.to_string(), member.to_string()])
                .collect()
        };
        let sets = [
            (Kind::Ids, vids.iter().map(|v| v.to_string()).collect()),
            (Kind::Pairs, pairs(&likes)),
            (Kind::Pairs, pairs(&following)),
            (Kind::Pairs, pairs(&followers)),
        ];
        // the load script's keys (the lease check's are `keys`)
        let mut load_keys = self.keys.user_keys_all(id);
        let plan: Vec<(&str, Kind, &[String])> = sets
            .iter()
            .enumerate()
            .map(|(i, (kind, items))| (load_keys[1 + i].as_str(), *kind, items.as_slice()))
            .collect();
        let staged = self
            .stage_sets(&self.keys.user_lease(id), &token, &plan)
            .await?;
        let Some((flags, froms)) = staged else {
            return Ok(LoadCall::LeaseLost);
        };
        let staging: Vec<String> = load_keys[1..5]
            .iter()
            .map(|k| self.keys.staging(k))
            .collect();
        load_keys.extend(staging);
        let inline: usize = sets.iter().zip(&froms).map(|(s, f)| s.1.len() - f).sum();
        let mut args = Vec::with_capacity(fields.len() + inline + 7);
        args.extend([token, flags, (fields.len() / 2).to_string()]);
        args.extend(fields);
        for ((kind, mut items), from) in sets.into_iter().zip(froms) {
            args.push(((items.len() - from) / kind.width()).to_string());
            args.extend(items.drain(from..));
        }
        Ok(LoadCall::Ready(load_keys, args))
    }

    /// A page of user `id`'s videos, newest first, as (video, score) with scores below
    /// `cursor` when given; None when the user is unknown.
    pub async fn user_videos_page(
        &self,
        id: i64,
        cursor: Option<i64>,
        limit: usize,
    ) -> Result<Option<Vec<(i64, i64)>>, AppError> {
        self.user_zset_scored(id, 1, cursor, limit).await
    }

    /// Members of one of the user's zsets (index into [`Keys::user_all`]), highest score first.
    pub(super) async fn user_zset_page(
        &self,
        id: i64,
        which: usize,
        limit: usize,
    ) -> Result<Option<Vec<i64>>, AppError> {
        let page = self.user_zset_scored(id, which, None, limit).await?;
        Ok(page.map(|p| p.into_iter().map(|(m, _)| m).collect()))
    }

    /// (member, score) pairs of one of the user's zsets, highest score first, scores below
    /// `cursor` when given; None when the user is unknown. From the near-cache's copy of the
    /// list when it holds the page (`lists.rs`), else from Redis.
    pub(super) async fn user_zset_scored(
        &self,
        id: i64,
        which: usize,
        cursor: Option<i64>,
        limit: usize,
    ) -> Result<Option<Vec<(i64, i64)>>, AppError> {
        if self.near.enabled() {
            match self.near_list(id, which).await? {
                None => return Ok(None),
                Some(s) => {
                    if let Some(page) = s.page(cursor, limit) {
                        return Ok(Some(page));
                    }
                }
            }
        }
        self.fetch_user_zset(id, which, cursor, limit).await
    }

    /// A page of one of the user's zsets from Redis (see [`Self::user_zset_scored`]).
    pub(super) async fn fetch_user_zset(
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
                Value::Array(items) => return Ok(Some(scored_pairs(items))),
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

    /// Users by id, from the near-cache or else in one pipelined round trip when all are in
    /// Redis. Unknown ids are absent.
    pub async fn user_entries(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, Arc<UserEntry>>, AppError> {
        Ok(ids
            .iter()
            .zip(self.user_entries_in_order(ids).await?)
            .filter_map(|(id, e)| e.map(|e| (*id, e)))
            .collect())
    }

    /// Users `ids`, in that order (None: unknown): from the near-cache, the rest in one
    /// pipelined round trip (a map only for those).
    pub async fn user_entries_in_order(
        &self,
        ids: &[i64],
    ) -> Result<Vec<Option<Arc<UserEntry>>>, AppError> {
        let mut out: Vec<Option<Arc<UserEntry>>> =
            ids.iter().map(|id| self.near.user(*id)).collect();
        let missing: Vec<i64> = ids
            .iter()
            .zip(&out)
            .filter(|(_, e)| e.is_none())
            .map(|(id, _)| *id)
            .collect();
        if !missing.is_empty() {
            let t = self.near.begin();
            let fetched: HashMap<i64, Arc<UserEntry>> = self
                .fetch_users(&missing)
                .await?
                .into_iter()
                .map(|(id, d)| (id, self.near.install_user(d, t)))
                .collect();
            for (slot, id) in out.iter_mut().zip(ids) {
                if slot.is_none() {
                    *slot = fetched.get(id).cloned();
                }
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
            let this = self;
            let res: Vec<Result<HashMap<String, String>, fred::error::Error>> = self
                .pipelined(move || async move {
                    let p = this.client().pipeline();
                    for id in ids {
                        let _: () = p.hgetall(this.keys.user(*id)).await?;
                    }
                    Ok(p)
                })
                .await?;
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
                let c = self.client();
                let h: HashMap<String, String> =
                    self.io_retry(|| c.hgetall(self.keys.user(id))).await?;
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
}
