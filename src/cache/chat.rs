//! Conversations in Redis: one zset per pair of users holding the messages as JSON, reloaded
//! from the store on a miss; their newest messages are kept in the near-cache for chat polls
//! and the friend list.

use super::codec::{message_member, parse_messages};
use super::reload::{Kind, Reload};
use super::{Cache, COLD_LOADS, RELOAD_ATTEMPTS};
use crate::error::AppError;
use crate::model::MessageData;
use crate::near::{NearKey, CONV_HEAD};
use crate::store::MessageRecord;
use fred::prelude::*;
use fred::types::Value;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

impl Cache {
    /// Reloads the conversation of `a` and `b` from the durable store if it is not in Redis.
    pub async fn ensure_conversation(&self, a: i64, b: i64) -> Result<(), AppError> {
        self.load_conversation(a, b, Reload::IfMissing)
            .await
            .map(|_| ())
    }

    /// Loads the conversation of `a` and `b` again from the store (`rebuild-cache`).
    pub(super) async fn replace_conversation(&self, a: i64, b: i64) -> Result<(), AppError> {
        self.load_conversation(a, b, Reload::Replace)
            .await
            .map(|_| ())
    }

    /// [`Self::ensure_conversation`] (or, with [`Reload::Replace`], its replacement),
    /// returning the messages loaded, newest first, when this call loaded them (None: the
    /// conversation was in Redis already, or loaded by another).
    async fn load_conversation(
        &self,
        a: i64,
        b: i64,
        mode: Reload,
    ) -> Result<Option<Vec<MessageData>>, AppError> {
        let key = self.keys.conversation(a, b);
        let mut loaded = None;
        let out = &mut loaded;
        self.single_flight(key.clone(), || async move {
            for _ in 0..RELOAD_ATTEMPTS {
                let token = Self::token();
                let lease = self.keys.conversation_lease(a, b);
                if !self
                    .take_lease(lease.clone(), std::slice::from_ref(&key), &token, mode)
                    .await?
                {
                    return Ok(());
                }
                let msgs = self.store.conversation(a, b).await?;
                let (items, mut data) = conversation_items(&msgs);
                let installed = self
                    .install_zset(&key, &lease, Kind::Pairs, token, items)
                    .await?;
                if installed {
                    self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                    data.sort_unstable_by_key(|m| std::cmp::Reverse(m.id));
                    *out = Some(data);
                    return Ok(());
                }
            }
            Err(AppError::Unavailable(
                "conversation: reload kept losing its lease".into(),
            ))
        })
        .await?;
        Ok(loaded)
    }

    /// A conversation's `load_timeline.lua` call for `rebuild-cache`'s batches: its keys and
    /// arguments under the lease `token`, read from the store. None when it is too long to
    /// install in one script (it is staged in chunks by [`Self::replace_conversation`]).
    pub(super) async fn conversation_call(
        &self,
        a: i64,
        b: i64,
        token: String,
    ) -> Result<Option<(Vec<String>, Vec<String>)>, AppError> {
        let msgs = self.store.conversation(a, b).await?;
        if msgs.len() > self.load_chunk {
            return Ok(None);
        }
        let (items, _) = conversation_items(&msgs);
        let key = self.keys.conversation(a, b);
        let lease = self.keys.conversation_lease(a, b);
        Ok(Some(self.timeline_call(
            &key,
            &lease,
            Kind::Pairs,
            token,
            false,
            items,
        )))
    }

    /// Adds a sent message to its cached conversation.
    pub async fn message_sent(&self, m: &MessageRecord) -> Result<(), AppError> {
        let keys = vec![
            self.keys.conversation(m.from_user_id, m.to_user_id),
            self.keys.conversation_lease(m.from_user_id, m.to_user_id),
        ];
        let args = vec![m.id.to_string(), message_member(&MessageData::from(m))];
        self.eval(&self.scripts.timeline_add, keys, args).await?;
        self.near
            .invalidate(NearKey::conv(m.from_user_id, m.to_user_id));
        Ok(())
    }

    /// Messages between `a` and `b`, oldest first: with `min_id`, those with id >= it (at most
    /// `limit`); without, the newest `limit`. From the near-cache's newest messages of the
    /// conversation when they cover the page (`near/convs.rs`), else from Redis.
    pub async fn conversation_page(
        &self,
        a: i64,
        b: i64,
        min_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<MessageData>, AppError> {
        if self.near.enabled() {
            let head = match self.near.conv(a, b) {
                Some(h) => h,
                None => {
                    let t = self.near.begin();
                    let newest = self.fetch_conversation(a, b, None, CONV_HEAD + 1).await?;
                    self.near.install_conv(a, b, &newest, t)
                }
            };
            let page = match min_id {
                Some(m) => head.after(m, limit),
                None => head.latest(limit),
            };
            if let Some(page) = page {
                return Ok(page);
            }
        }
        let mut msgs = self.fetch_conversation(a, b, min_id, limit).await?;
        if min_id.is_none() {
            msgs.reverse();
        }
        Ok(msgs)
    }

    /// Messages between `a` and `b` from Redis: with `min_id`, those with id >= it, oldest
    /// first; without, the newest, newest first; at most `limit`.
    async fn fetch_conversation(
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
                Value::Array(items) => return Ok(parse_messages(items)),
                _ => self.ensure_conversation(a, b).await?,
            }
        }
        Err(AppError::Unavailable(
            "conversation: not loaded after reload".into(),
        ))
    }

    /// The latest message between `user` and each of `others`: from the near-cache, else in
    /// one pipelined round trip when all conversations are in Redis (their newest messages are
    /// kept in the near-cache).
    pub async fn latest_messages(
        &self,
        user: i64,
        others: &[i64],
    ) -> Result<HashMap<i64, MessageData>, AppError> {
        let mut out = HashMap::with_capacity(others.len());
        let mut cold = Vec::new();
        for o in others {
            match self.near.conv(user, *o) {
                Some(h) => {
                    if let Some(m) = h.newest() {
                        out.insert(*o, m);
                    }
                }
                None => cold.push(*o),
            }
        }
        let others = &cold[..];
        if others.is_empty() {
            return Ok(out);
        }
        let head = if self.near.enabled() {
            CONV_HEAD + 1
        } else {
            1
        };
        let t = self.near.begin();
        let mut missing = Vec::new();
        {
            self.rt();
            let this = self;
            let res: Vec<Result<Value, fred::error::Error>> = self
                .pipelined(move || async move {
                    let p = this.client().pipeline();
                    for o in others {
                        let key = this.keys.conversation(user, *o);
                        let _: () = p.exists(key.clone()).await?;
                        let _: () = p
                            .zrevrangebyscore(key, "+inf", 1, false, Some((0, head as i64)))
                            .await?;
                    }
                    Ok(p)
                })
                .await?;
            let mut it = res.into_iter();
            for o in others {
                let exists = it.next().transpose()?.and_then(|v| v.as_i64()).unwrap_or(0);
                let latest = it.next().transpose()?;
                match (exists, latest) {
                    (1, Some(Value::Array(items))) => {
                        let newest = parse_messages(items);
                        if let Some(m) = newest.first() {
                            out.insert(*o, m.clone());
                        }
                        if self.near.enabled() {
                            self.near.install_conv(user, *o, &newest, t);
                        }
                    }
                    // not loaded: one by one below
                    _ => missing.push(*o),
                }
            }
        }
        // Conversations not in Redis yet are loaded from the durable store concurrently, a
        // few at a time (one by one, a friend list of cold conversations waited for each
        // load's round trips in turn). What this request loads it also serves, and keeps in
        // the near-cache, from the messages it read: no further round trip to read them back.
        let mut loads = futures_util::stream::iter(missing)
            .map(|o| async move {
                let t = self.near.begin();
                let newest = match self.load_conversation(user, o, Reload::IfMissing).await? {
                    Some(mut newest) => {
                        newest.truncate(CONV_HEAD + 1);
                        if self.near.enabled() {
                            self.near.install_conv(user, o, &newest, t);
                        }
                        newest.into_iter().next()
                    }
                    None => self.conversation_page(user, o, None, 1).await?.pop(),
                };
                Ok::<_, AppError>((o, newest))
            })
            .buffer_unordered(COLD_LOADS);
        while let Some(r) = loads.next().await {
            if let (o, Some(m)) = r? {
                out.insert(o, m);
            }
        }
        Ok(out)
    }
}

/// A conversation's messages as `load_timeline.lua`'s (score, member) pairs, and as the
/// near-cache's messages.
fn conversation_items(msgs: &[MessageRecord]) -> (Vec<String>, Vec<MessageData>) {
    let mut items = Vec::with_capacity(2 * msgs.len());
    let mut data = Vec::with_capacity(msgs.len());
    for m in msgs {
        let d = MessageData::from(m);
        items.push(m.id.to_string());
        items.push(message_member(&d));
        data.push(d);
    }
    (items, data)
}
