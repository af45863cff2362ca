//! The cluster-wide outbox (CQL tables `outbox`, `outbox_open`): an entry is written before
//! its change, in one of 16 shards by minute, and any instance replays what is left. For the
//! CQL store a replay also finishes the durable side of a change whose writer died
//! ([`CqlStore::outbox_complete`]).

use super::counted::PairKind;
use super::lists::Kind;
use super::{applied, unavailable, CqlStore};
use crate::store::*;

const SHARDS: i64 = 16;

/// Minutes an open minute stays listed after it was last seen empty: a write minted in it
/// may still be on its way.
const OPEN_GRACE_MINUTES: i32 = 2;

fn place(id: i64) -> (i32, i32) {
    (
        id.rem_euclid(SHARDS) as i32,
        (crate::ids::time_ms(id) / 60_000) as i32,
    )
}

impl CqlStore {
    pub(super) async fn outbox_put(&self, e: &OutboxEntry) -> StoreResult<()> {
        let (shard, minute) = place(e.id);
        let key = (255u8, shard as i64, 0, minute);
        if self.registered.get(&key).is_none() {
            self.s
                .execute_unpaged(&self.q.ins_open, (shard, minute))
                .await
                .map_err(unavailable)?;
            self.registered.insert(key, ());
        }
        let payload = simd_json::to_string(e).map_err(unavailable)?;
        self.s
            .execute_unpaged(&self.q.ins_outbox, (shard, minute, e.id, payload))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Removes the entry of a write that turned out to change nothing.
    pub(super) async fn outbox_drop(&self, e: &OutboxEntry) -> StoreResult<()> {
        self.outbox_delete(e.id).await
    }

    pub(super) async fn outbox_delete(&self, id: i64) -> StoreResult<()> {
        let (shard, minute) = place(id);
        self.s
            .execute_unpaged(&self.q.del_outbox, (shard, minute, id))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Entries of every shard, oldest first, at most `limit`.
    pub(super) async fn outbox_pending(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
        let now_minute = (crate::ids::now_ms() / 60_000) as i32;
        let mut out = Vec::new();
        for shard in 0..SHARDS as i32 {
            let minutes = self.paged::<(i32,)>(&self.q.sel_open, (shard,)).await?;
            for (minute,) in minutes {
                let rows = self
                    .paged::<(i64, String)>(&self.q.sel_outbox, (shard, minute, limit as i32))
                    .await?;
                if rows.is_empty() {
                    if minute < now_minute - OPEN_GRACE_MINUTES {
                        self.s
                            .execute_unpaged(&self.q.del_open, (shard, minute))
                            .await
                            .map_err(unavailable)?;
                    }
                    continue;
                }
                for (_, payload) in rows {
                    let mut b = payload.into_bytes();
                    match simd_json::from_slice::<OutboxEntry>(&mut b) {
                        Ok(e) => out.push(e),
                        Err(e) => tracing::error!(error = %e, "unreadable outbox entry skipped"),
                    }
                }
                if out.len() >= limit * 2 {
                    break;
                }
            }
        }
        out.sort_by_key(|e| e.id);
        out.truncate(limit);
        Ok(out)
    }

    pub(super) async fn outbox_max(&self) -> StoreResult<i64> {
        Ok(self.outbox_pending(1000).await?.last().map_or(0, |e| e.id))
    }

    /// Finishes the durable side of entry `e` if its writer did not: a pending like, follow or
    /// comment is counted, a published video gets its list rows, and a user row whose name
    /// was never claimed is removed.
    pub(super) async fn outbox_complete(&self, e: &OutboxEntry) -> StoreResult<()> {
        match &e.op {
            OutboxOp::LikeChanged {
                user_id, video_id, ..
            } => {
                if let Some(p) = self.pair(PairKind::Like, *user_id, *video_id).await? {
                    if p.pending == e.id {
                        self.finish_pair(PairKind::Like, *user_id, *video_id, p)
                            .await?;
                    }
                }
            }
            OutboxOp::FollowChanged { follower, followee } => {
                if let Some(p) = self.pair(PairKind::Follow, *follower, *followee).await? {
                    if p.pending == e.id {
                        self.finish_pair(PairKind::Follow, *follower, *followee, p)
                            .await?;
                    }
                }
            }
            OutboxOp::CommentChanged { comment_id, .. } => {
                if let Some(c) = self.comment_row(*comment_id).await? {
                    if c.pending == e.id {
                        self.finish_comment(&c).await?;
                    }
                }
            }
            OutboxOp::VideoPublished { video_id, .. } => {
                if let Some(v) = self.video(*video_id).await? {
                    self.list_video(&v).await?;
                }
            }
            OutboxOp::UserCreated { user_id } => {
                if let Some(u) = self.user(*user_id).await? {
                    match self.user_id_by_name(&u.name).await? {
                        Some(id) if id == u.id => self.list_add(Kind::Users, 0, u.id, 0).await?,
                        Some(_) => self.drop_user(u.id).await?,
                        None => {
                            // the name was never claimed: claim it now or give the row up
                            let r = self
                                .s
                                .execute_unpaged(&self.q.ins_name, (&u.name, u.id))
                                .await
                                .map_err(unavailable)?;
                            if applied(r)? || self.user_id_by_name(&u.name).await? == Some(u.id) {
                                self.list_add(Kind::Users, 0, u.id, 0).await?;
                            } else {
                                self.drop_user(u.id).await?;
                            }
                        }
                    }
                }
            }
            OutboxOp::MessageSent { .. } | OutboxOp::SessionChanged { .. } => {}
        }
        Ok(())
    }

    async fn drop_user(&self, id: i64) -> StoreResult<()> {
        self.s
            .execute_unpaged(&self.q.del_user, (id,))
            .await
            .map_err(unavailable)?;
        self.list_remove(Kind::Users, 0, id).await
    }
}
