//! The feed timeline: reloading it, and pages cut from the near-cache's copy of its head or
//! else from Redis.

use super::codec::{ids_of, script_int};
use super::reload::{Kind, Reload};
use super::{Cache, RELOAD_ATTEMPTS};
use crate::error::AppError;
use crate::near::FeedLookup;
use fred::prelude::*;
use fred::types::Value;
use std::sync::atomic::Ordering;

impl Cache {
    /// Reloads the feed timeline from the durable store if it is not in Redis.
    pub async fn ensure_feed(&self) -> Result<(), AppError> {
        self.single_flight(self.keys.feed(), || async {
            let keys = [self.keys.feed()];
            for _ in 0..RELOAD_ATTEMPTS {
                let token = Self::token();
                if !self
                    .take_lease(self.keys.feed_lease(), &keys, &token, Reload::IfMissing)
                    .await?
                {
                    return Ok(());
                }
                let ids = self.store.feed_ids(usize::MAX).await?;
                let items: Vec<String> = ids.iter().map(|v| v.to_string()).collect();
                let installed = self
                    .install_zset(
                        &self.keys.feed(),
                        &self.keys.feed_lease(),
                        Kind::Ids,
                        token,
                        items,
                    )
                    .await?;
                if installed {
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

    /// Drops the cached feed timeline; the next read reloads it from the durable store.
    pub async fn drop_feed(&self) -> Result<(), AppError> {
        self.rt();
        self.io(self.client().del::<(), _>(self.keys.feed()))
            .await?;
        self.near.invalidate_feed();
        Ok(())
    }
}
