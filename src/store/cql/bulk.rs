//! Bulk loading (`seed --bench`) into the CQL store: plain writes, many in flight at once,
//! without outbox entries or lightweight transactions (the caller guarantees fresh ids and
//! counters that agree with the records).

use super::counted::{Grp, PairKind};
use super::lists::Kind;
use super::{unavailable, CqlStore};
use crate::store::*;
use futures_util::{stream, StreamExt, TryStreamExt};
use std::future::Future;
use std::pin::Pin;

type Job<'a> = Pin<Box<dyn Future<Output = StoreResult<()>> + Send + 'a>>;

/// Writes in flight at once.
const IN_FLIGHT: usize = 256;

impl CqlStore {
    async fn exec(
        &self,
        q: &scylla::statement::prepared::PreparedStatement,
        v: impl scylla::serialize::row::SerializeRow,
    ) -> StoreResult<()> {
        self.s.execute_unpaged(q, v).await.map_err(unavailable)?;
        Ok(())
    }

    async fn run_all<'a>(&'a self, jobs: Vec<Job<'a>>) -> StoreResult<()> {
        stream::iter(jobs)
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    pub(super) async fn bulk_import(&self, d: Import) -> StoreResult<()> {
        let mut jobs: Vec<Job<'_>> = Vec::new();
        for u in &d.users {
            jobs.push(Box::pin(async move {
                self.put_user_row(u).await?;
                self.exec(&self.q.ins_name, (&u.name, u.id)).await?;
                self.list_add(Kind::Users, 0, u.id, 0).await
            }));
        }
        for (id, c) in &d.user_counters {
            for (grp, count, version) in [
                (Grp::UserLikes, c.favorite_count, c.like_version),
                (Grp::UserReceived, c.total_favorited, c.received_version),
                (Grp::UserFollows, c.follow_count, c.follow_version),
                (Grp::UserFollowers, c.follower_count, c.follower_version),
            ] {
                jobs.push(Box::pin(async move {
                    self.exec(&self.q.put_tally, (count, version.max(1), *id, grp as i8))
                        .await
                }));
            }
        }
        for v in &d.videos {
            jobs.push(Box::pin(async move {
                self.put_video_row(v).await?;
                self.list_video(v).await
            }));
        }
        for (id, c) in &d.video_counters {
            for (grp, count, version) in [
                (Grp::VideoFavorites, c.favorite_count, c.favorite_version),
                (Grp::VideoComments, c.comment_count, c.comment_version),
            ] {
                jobs.push(Box::pin(async move {
                    self.exec(&self.q.put_tally, (count, version.max(1), *id, grp as i8))
                        .await
                }));
            }
        }
        let author: std::collections::HashMap<i64, i64> =
            d.videos.iter().map(|v| (v.id, v.author_id)).collect();
        for (user, video, like_id) in &d.likes {
            let other = author.get(video).copied().unwrap_or(0);
            jobs.push(Box::pin(async move {
                self.exec(
                    &self.q.put_pair,
                    (
                        PairKind::Like as i8,
                        *user,
                        *video,
                        true,
                        *like_id,
                        1i64,
                        other,
                    ),
                )
                .await?;
                self.list_add(Kind::UserLikes, *user, *like_id, *video)
                    .await?;
                self.list_add(Kind::VideoLikers, *video, *like_id, *user)
                    .await
            }));
        }
        for (a, b, follow_id) in &d.follows {
            jobs.push(Box::pin(async move {
                self.exec(
                    &self.q.put_pair,
                    (PairKind::Follow as i8, *a, *b, true, *follow_id, 1i64, 0i64),
                )
                .await?;
                self.list_add(Kind::Following, *a, *follow_id, *b).await?;
                self.list_add(Kind::Followers, *b, *follow_id, *a).await
            }));
        }
        for c in &d.comments {
            jobs.push(Box::pin(async move {
                self.put_comment_row(c, 0).await?;
                self.list_add(Kind::VideoComments, c.video_id, c.id, c.user_id)
                    .await
            }));
        }
        for m in &d.messages {
            jobs.push(Box::pin(async move { self.put_message(m).await }));
        }
        self.run_all(jobs).await
    }
}
