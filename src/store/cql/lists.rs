//! The bucketed id lists (CQL tables `lists` and `buckets`): every list is split into hour
//! partitions of its ids, and `buckets` names the hours that hold rows, so no partition grows
//! without bound and a read pages through the hours it needs, newest first.

use super::{bucket, unavailable, CqlStore};
use crate::store::{ScanPage, StoreError, StoreResult};
use futures_util::TryStreamExt;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;

/// Which list a row belongs to (the `kind` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub(crate) enum Kind {
    /// Every video, newest first (owner 0, ref: author).
    Feed = 1,
    /// A user's videos (owner: author).
    AuthorVideos = 2,
    /// A user's likes (id: like_id, ref: video).
    UserLikes = 3,
    /// A video's likers (id: like_id, ref: user).
    VideoLikers = 4,
    /// A video's comments (id: comment id).
    VideoComments = 5,
    /// Whom a user follows (id: follow_id, ref: followee).
    Following = 6,
    /// Who follows a user (id: follow_id, ref: follower).
    Followers = 7,
    /// Every user, for scans (owner 0).
    Users = 8,
    /// Every video, for scans (owner 0).
    Videos = 9,
    /// Buckets only: the hours of a conversation's messages (owner, owner2: the two users).
    Conversation = 10,
    /// Buckets only: the hours of a video's plays.
    Plays = 11,
}

impl CqlStore {
    /// Notes that `bucket` of list (kind, owner, owner2) holds rows (once per process).
    pub(super) async fn register(
        &self,
        kind: Kind,
        owner: i64,
        owner2: i64,
        bucket: i32,
    ) -> StoreResult<()> {
        let key = (kind as u8, owner, owner2, bucket);
        if self.registered.get(&key).is_some() {
            return Ok(());
        }
        self.s
            .execute_unpaged(&self.q.ins_bucket, (kind as i8, owner, owner2, bucket))
            .await
            .map_err(unavailable)?;
        self.registered.insert(key, ());
        Ok(())
    }

    /// Adds `id` (with `r`) to the list.
    pub(super) async fn list_add(
        &self,
        kind: Kind,
        owner: i64,
        id: i64,
        r: i64,
    ) -> StoreResult<()> {
        let b = bucket(id);
        self.register(kind, owner, 0, b).await?;
        self.s
            .execute_unpaged(&self.q.ins_list, (kind as i8, owner, b, id, r))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn list_remove(&self, kind: Kind, owner: i64, id: i64) -> StoreResult<()> {
        self.s
            .execute_unpaged(&self.q.del_list, (kind as i8, owner, bucket(id), id))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The list's buckets, newest first.
    pub(super) async fn buckets(
        &self,
        kind: Kind,
        owner: i64,
        owner2: i64,
    ) -> StoreResult<Vec<i32>> {
        Ok(self
            .paged::<(i32,)>(&self.q.sel_buckets, (kind as i8, owner, owner2))
            .await?
            .into_iter()
            .map(|(b,)| b)
            .collect())
    }

    /// The newest `limit` rows (id, ref) of the list, newest first, page by page.
    pub(super) async fn list(
        &self,
        kind: Kind,
        owner: i64,
        limit: usize,
    ) -> StoreResult<Vec<(i64, i64)>> {
        let mut out = Vec::new();
        for b in self.buckets(kind, owner, 0).await? {
            if out.len() >= limit {
                break;
            }
            let rows = if limit == usize::MAX {
                self.paged::<(i64, i64)>(&self.q.sel_list, (kind as i8, owner, b))
                    .await?
            } else {
                let left = (limit - out.len()).min(i32::MAX as usize) as i32;
                self.paged::<(i64, i64)>(&self.q.sel_list_limit, (kind as i8, owner, b, left))
                    .await?
            };
            out.extend(rows);
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Ids of the list above `after`, ascending, at most `limit` (for the scans).
    pub(super) async fn ids_after(
        &self,
        kind: Kind,
        owner: i64,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<i64>> {
        let from = if after <= 0 { i32::MIN } else { bucket(after) };
        let buckets: Vec<i32> = self
            .paged::<(i32,)>(&self.q.sel_buckets_from, (kind as i8, owner, 0i64, from))
            .await?
            .into_iter()
            .map(|(b,)| b)
            .collect();
        let mut out = Vec::new();
        for b in buckets {
            if out.len() >= limit {
                break;
            }
            let left = (limit - out.len()).min(i32::MAX as usize) as i32;
            out.extend(
                self.paged::<(i64,)>(&self.q.sel_list_after, (kind as i8, owner, b, after, left))
                    .await?
                    .into_iter()
                    .map(|(id,)| id),
            );
        }
        Ok(out)
    }

    /// How many rows the list holds (counted bucket by bucket).
    pub(super) async fn count(&self, kind: Kind, owner: i64) -> StoreResult<i64> {
        let mut n = 0;
        for b in self.buckets(kind, owner, 0).await? {
            n += self
                .paged::<(i64,)>(&self.q.count_list, (kind as i8, owner, b))
                .await?
                .first()
                .map_or(0, |(c,)| *c);
        }
        Ok(n)
    }

    /// Every row of a query, fetched page by page (the statement's page size).
    /// A page of a whole-table scan (`rebuild-cache`'s) in token order: `q` is bound to the
    /// last token read and a number of rows, and `item` turns a row into its token and the
    /// item it holds (None: a row the scan skips). Hands out at most `limit` items; the cursor
    /// is the token of the last row handed out or skipped (empty: the start of the ring,
    /// whose lowest token Murmur3 never hands out).
    pub(super) async fn scan_tokens<R, T>(
        &self,
        q: &PreparedStatement,
        cursor: &[u8],
        limit: usize,
        item: impl Fn(R) -> (i64, Option<T>),
    ) -> StoreResult<ScanPage<T>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm> + Send + 'static,
    {
        let mut from = match cursor {
            [] => i64::MIN,
            c => i64::from_be_bytes(
                c.try_into()
                    .map_err(|_| StoreError::Corrupt("scan cursor".into()))?,
            ),
        };
        let page = limit.clamp(1, 5000);
        let mut out = Vec::new();
        while out.len() < limit {
            let rows = self.paged::<R>(q, (from, page as i32)).await?;
            let n = rows.len();
            for row in rows {
                if out.len() >= limit {
                    // the rest of the page is read again from `from` on
                    return Ok((out, Some(from.to_be_bytes().to_vec())));
                }
                let (token, it) = item(row);
                from = token;
                out.extend(it);
            }
            if n < page {
                return Ok((out, None));
            }
        }
        Ok((out, Some(from.to_be_bytes().to_vec())))
    }

    pub(super) async fn paged<T>(
        &self,
        q: &PreparedStatement,
        values: impl SerializeRow,
    ) -> StoreResult<Vec<T>>
    where
        T: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm> + Send + 'static,
    {
        self.s
            .execute_iter(q.clone(), values)
            .await
            .map_err(unavailable)?
            .rows_stream::<T>()
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)
    }
}
