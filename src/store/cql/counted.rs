//! Exact counters across instances: likes, follows and comments.
//!
//! A change is decided by one lightweight transaction on its own small partition (the
//! (user, video) pair, the (follower, followee) pair, or the comment), which also names the
//! change's outbox entry as `pending`. Its effects then follow, each idempotent: list rows,
//! and one conditional batch per counter partition (`tallies`) that moves the counter and
//! leaves a marker of the change, so a change is counted once however often it is finished
//! (`tally.rs`, which folds the changes waiting for one counter into one batch).
//! Whoever meets a pending change (the next change of the same pair, or the outbox replay of
//! any instance) finishes it first. See ARCHITECTURE.md ("Exact counters on CQL").

use super::lists::Kind;
use super::rows::first_row;
use super::tally::Guard;
use super::{applied, unavailable, CqlStore, Table};
use crate::store::*;

/// A group of counted state: one `tallies` partition per (entity, group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub(crate) enum Grp {
    UserLikes = 1,
    UserReceived = 2,
    UserFollows = 3,
    UserFollowers = 4,
    VideoFavorites = 5,
    VideoComments = 6,
}

/// The kind of a pair row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub(crate) enum PairKind {
    Like = 1,
    Follow = 2,
}

/// A `pairs` row.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pair {
    pub active: bool,
    pub id: i64,
    pub version: i64,
    pub other: i64,
    pub pending: i64,
}

/// A `comments` row.
pub(crate) struct CommentRow {
    pub record: CommentRecord,
    pub deleted: bool,
    pub pending: i64,
}

/// The state a like or follow asks for: on or off, its new like_id/follow_id, and its outbox
/// entry.
#[derive(Clone, Copy, Debug)]
struct Want {
    on: bool,
    new_id: i64,
    entry: i64,
}

/// Attempts at a lightweight transaction that keeps losing to concurrent changes.
const CAS_ATTEMPTS: usize = 64;

fn contended(what: &str) -> StoreError {
    StoreError::Unavailable(format!("cql: {what} kept changing under contention"))
}

impl CqlStore {
    pub(super) async fn pair(&self, kind: PairKind, a: i64, b: i64) -> StoreResult<Option<Pair>> {
        type Row = (
            Option<bool>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let row = first_row::<Row>(&self.s, &self.q.get_pair, (kind as i8, a, b)).await?;
        Ok(row.map(|(active, id, version, other, pending)| Pair {
            active: active.unwrap_or(false),
            id: id.unwrap_or(0),
            version: version.unwrap_or(0),
            other: other.unwrap_or(0),
            pending: pending.unwrap_or(0),
        }))
    }

    /// The counter groups a pair change moves: (owner, group).
    fn pair_groups(kind: PairKind, a: i64, b: i64, other: i64) -> Vec<(i64, Grp)> {
        match kind {
            PairKind::Like => vec![
                (a, Grp::UserLikes),
                (other, Grp::UserReceived),
                (b, Grp::VideoFavorites),
            ],
            PairKind::Follow => vec![(a, Grp::UserFollows), (b, Grp::UserFollowers)],
        }
    }

    /// Finishes the pending change of pair `p`: its list rows, its counters (once), then
    /// clears `pending`. Returns the groups' (count, version) in [`Self::pair_groups`] order.
    pub(super) async fn finish_pair(
        &self,
        kind: PairKind,
        a: i64,
        b: i64,
        p: Pair,
    ) -> StoreResult<Vec<(i64, i64)>> {
        let change = p.pending;
        let (lists, back) = match kind {
            PairKind::Like => (Kind::UserLikes, Kind::VideoLikers),
            PairKind::Follow => (Kind::Following, Kind::Followers),
        };
        if p.active {
            futures_util::future::try_join(
                self.list_add(lists, a, p.id, b),
                self.list_add(back, b, p.id, a),
            )
            .await?;
        } else {
            futures_util::future::try_join(
                self.list_remove(lists, a, p.id),
                self.list_remove(back, b, p.id),
            )
            .await?;
        }
        let delta = if p.active { 1 } else { -1 };
        let groups = Self::pair_groups(kind, a, b, p.other);
        let counted = futures_util::future::try_join_all(groups.iter().map(|(owner, grp)| {
            self.tallier
                .count_once(*owner, *grp, change, delta, Guard::Pair(kind, a, b))
        }))
        .await?;
        let r = self
            .s
            .execute_unpaged(&self.q.clear_pair, (kind as i8, a, b, change))
            .await
            .map_err(unavailable)?;
        let _ = applied(r)?; // false: another finisher cleared it
        self.tallier.unmark(change, &groups).await;
        Ok(counted)
    }

    /// Turns pair (a, b) on or off for outbox entry `entry` (written by the caller first).
    /// Returns None when the pair already was in that state, else the pair after the change
    /// and its groups' counters.
    async fn change_pair(
        &self,
        kind: PairKind,
        a: i64,
        b: i64,
        other: i64,
        want: Want,
    ) -> StoreResult<(Pair, Option<Vec<(i64, i64)>>)> {
        let Want { on, new_id, entry } = want;
        for _ in 0..CAS_ATTEMPTS {
            let cur = self.pair(kind, a, b).await?;
            if let Some(p) = cur.filter(|p| p.pending != 0) {
                self.finish_pair(kind, a, b, p).await?;
                continue;
            }
            let p = cur.unwrap_or_default();
            if p.active == on {
                return Ok((p, None));
            }
            let next = Pair {
                active: on,
                id: if on { new_id } else { p.id },
                version: p.version + 1,
                other: if other != 0 { other } else { p.other },
                pending: entry,
            };
            let r = if cur.is_none() {
                self.s
                    .execute_unpaged(
                        &self.q.new_pair,
                        (
                            kind as i8,
                            a,
                            b,
                            next.active,
                            next.id,
                            next.version,
                            next.other,
                            next.pending,
                        ),
                    )
                    .await
            } else {
                self.s
                    .execute_unpaged(
                        &self.q.cas_pair,
                        (
                            next.active,
                            next.id,
                            next.version,
                            next.other,
                            next.pending,
                            kind as i8,
                            a,
                            b,
                            p.version,
                        ),
                    )
                    .await
            }
            .map_err(unavailable)?;
            if applied(r)? {
                let counted = self.finish_pair(kind, a, b, next).await?;
                self.wrote();
                return Ok((next, Some(counted)));
            }
            metrics::counter!("douyin_store_cas_retries_total", "what" => "pair").increment(1);
        }
        Err(contended("a like or follow"))
    }

    pub(super) async fn like(
        &self,
        user_id: i64,
        video_id: i64,
        author_id: i64,
        like: bool,
        like_id: i64,
        outbox: &OutboxEntry,
    ) -> StoreResult<LikeChange> {
        self.outbox_put(outbox).await?;
        let (p, counted) = self
            .change_pair(
                PairKind::Like,
                user_id,
                video_id,
                author_id,
                Want {
                    on: like,
                    new_id: like_id,
                    entry: outbox.id,
                },
            )
            .await?;
        let Some(c) = counted else {
            self.outbox_drop(outbox).await?;
            let (liker, author, video) = futures_util::future::try_join3(
                self.user_counters(user_id),
                self.user_counters(author_id),
                self.video_counters(video_id),
            )
            .await?;
            return Ok(LikeChange {
                changed: false,
                liker,
                author,
                video,
                pair_version: p.version,
            });
        };
        // Only the groups this change moved are filled in: they are what Redis applies.
        let liker = UserCounters {
            favorite_count: c[0].0,
            like_version: c[0].1,
            ..Default::default()
        };
        let author = UserCounters {
            total_favorited: c[1].0,
            received_version: c[1].1,
            ..Default::default()
        };
        let video = VideoCounters {
            favorite_count: c[2].0,
            favorite_version: c[2].1,
            ..Default::default()
        };
        Ok(LikeChange {
            changed: true,
            liker: if author_id == user_id {
                UserCounters {
                    ..merge(liker, author)
                }
            } else {
                liker
            },
            author: if author_id == user_id {
                merge(liker, author)
            } else {
                author
            },
            video,
            pair_version: p.version,
        })
    }

    pub(super) async fn follow(
        &self,
        follower: i64,
        followee: i64,
        follow: bool,
        follow_id: i64,
        outbox: &OutboxEntry,
    ) -> StoreResult<FollowChange> {
        self.outbox_put(outbox).await?;
        let (p, counted) = self
            .change_pair(
                PairKind::Follow,
                follower,
                followee,
                0,
                Want {
                    on: follow,
                    new_id: follow_id,
                    entry: outbox.id,
                },
            )
            .await?;
        let Some(c) = counted else {
            self.outbox_drop(outbox).await?;
            let (a, b) = futures_util::future::try_join(
                self.user_counters(follower),
                self.user_counters(followee),
            )
            .await?;
            return Ok(FollowChange {
                changed: false,
                follower: a,
                followee: b,
                pair_version: p.version,
            });
        };
        Ok(FollowChange {
            changed: true,
            follower: UserCounters {
                follow_count: c[0].0,
                follow_version: c[0].1,
                ..Default::default()
            },
            followee: UserCounters {
                follower_count: c[1].0,
                follower_version: c[1].1,
                ..Default::default()
            },
            pair_version: p.version,
        })
    }

    pub(super) async fn comment_row(&self, id: i64) -> StoreResult<Option<CommentRow>> {
        if self.known_missing(Table::Comments, id) {
            return Ok(None);
        }
        type Row = (i64, i64, i64, String, i64, i64, Option<bool>, Option<i64>);
        let row = first_row::<Row>(&self.s, &self.q.get_comment, (id,)).await?;
        let Some((id, video_id, user_id, content, reply_id, created_ms, deleted, pending)) = row
        else {
            self.note_missing(Table::Comments, id);
            return Ok(None);
        };
        Ok(Some(CommentRow {
            record: CommentRecord {
                id,
                video_id,
                user_id,
                content,
                reply_id,
                created_ms,
            },
            deleted: deleted.unwrap_or(false),
            pending: pending.unwrap_or(0),
        }))
    }

    /// Finishes the pending change of comment `c` (its add or its delete): the video's list
    /// row and comment counter (once), then clears `pending`.
    pub(super) async fn finish_comment(&self, c: &CommentRow) -> StoreResult<(i64, i64)> {
        let (id, video) = (c.record.id, c.record.video_id);
        let change = c.pending;
        if c.deleted {
            self.list_remove(Kind::VideoComments, video, id).await?;
        } else {
            self.list_add(Kind::VideoComments, video, id, c.record.user_id)
                .await?;
        }
        let delta = if c.deleted { -1 } else { 1 };
        let counted = self
            .tallier
            .count_once(video, Grp::VideoComments, change, delta, Guard::Comment(id))
            .await?;
        let r = self
            .s
            .execute_unpaged(&self.q.clear_comment, (id, change))
            .await
            .map_err(unavailable)?;
        let _ = applied(r)?;
        self.tallier
            .unmark(change, &[(video, Grp::VideoComments)])
            .await;
        Ok(counted)
    }

    pub(super) async fn comment_add(
        &self,
        c: &CommentRecord,
        outbox: &OutboxEntry,
    ) -> StoreResult<VideoCounters> {
        self.outbox_put(outbox).await?;
        self.put_comment_row(c, outbox.id).await?;
        self.missing.remove(&(Table::Comments, c.id));
        let row = CommentRow {
            record: c.clone(),
            deleted: false,
            pending: outbox.id,
        };
        let (count, version) = self.finish_comment(&row).await?;
        self.wrote();
        Ok(VideoCounters {
            comment_count: count,
            comment_version: version,
            ..Default::default()
        })
    }

    pub(super) async fn comment_delete(
        &self,
        id: i64,
        outbox: &OutboxEntry,
    ) -> StoreResult<Option<VideoCounters>> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(row) = self.comment_row(id).await? else {
                return Ok(None);
            };
            if row.pending != 0 {
                self.finish_comment(&row).await?;
                continue;
            }
            if row.deleted {
                return Ok(None);
            }
            self.outbox_put(outbox).await?;
            let r = self
                .s
                .execute_unpaged(&self.q.del_comment, (outbox.id, id))
                .await
                .map_err(unavailable)?;
            if applied(r)? {
                let row = CommentRow {
                    deleted: true,
                    pending: outbox.id,
                    ..row
                };
                let (count, version) = self.finish_comment(&row).await?;
                self.wrote();
                return Ok(Some(VideoCounters {
                    comment_count: count,
                    comment_version: version,
                    ..Default::default()
                }));
            }
        }
        Err(contended("a comment"))
    }

    pub(super) async fn session_row(&self, user_id: i64) -> StoreResult<Option<SessionState>> {
        let row = first_row::<(Option<i64>, Option<i64>, Option<String>)>(
            &self.s,
            &self.q.get_session,
            (user_id,),
        )
        .await?;
        let Some((version, generation, revoked)) = row else {
            return Ok(None);
        };
        let revoked = match revoked {
            Some(s) if !s.is_empty() => {
                let mut b = s.into_bytes();
                simd_json::from_slice(&mut b).map_err(|e| StoreError::Corrupt(e.to_string()))?
            }
            _ => Vec::new(),
        };
        Ok(Some(SessionState {
            version: version.unwrap_or(0),
            generation: generation.unwrap_or(0),
            revoked,
        }))
    }
}

/// One user's counters from the like groups of a self-like (liker and author are the same).
fn merge(liker: UserCounters, author: UserCounters) -> UserCounters {
    UserCounters {
        total_favorited: author.total_favorited,
        received_version: author.received_version,
        ..liker
    }
}
