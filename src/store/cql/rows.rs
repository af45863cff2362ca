//! Row-level helpers every part of the CQL store shares: one row of a query, and the writes of
//! a user, video, comment or message row (with the list rows that go with them), so the live path, the
//! replay and the bulk import write them the same way.

use super::lists::Kind;
use super::{bucket, low_high, unavailable, CqlStore};
use crate::store::{CommentRecord, MessageRecord, StoreResult, UserRecord, VideoRecord};
use scylla::client::session::Session;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;

/// The first row of `q`, if any.
pub(crate) async fn first_row<T>(
    s: &Session,
    q: &PreparedStatement,
    values: impl SerializeRow,
) -> StoreResult<Option<T>>
where
    T: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
{
    s.execute_unpaged(q, values)
        .await
        .map_err(unavailable)?
        .into_rows_result()
        .map_err(unavailable)?
        .maybe_first_row::<T>()
        .map_err(unavailable)
}

impl CqlStore {
    pub(super) async fn put_user_row(&self, u: &UserRecord) -> StoreResult<()> {
        self.s
            .execute_unpaged(
                &self.q.ins_user,
                (
                    u.id,
                    &u.name,
                    &u.password_hash,
                    &u.avatar,
                    &u.background_image,
                    &u.signature,
                    u.created_ms,
                ),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn put_video_row(&self, v: &VideoRecord) -> StoreResult<()> {
        self.s
            .execute_unpaged(
                &self.q.ins_video,
                (
                    v.id,
                    v.author_id,
                    &v.title,
                    &v.desc,
                    &v.play,
                    &v.cover,
                    v.created_ms,
                ),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The comment's row, naming `pending` as the change not yet counted (0: none).
    pub(super) async fn put_comment_row(&self, c: &CommentRecord, pending: i64) -> StoreResult<()> {
        self.s
            .execute_unpaged(
                &self.q.ins_comment,
                (
                    c.id,
                    c.video_id,
                    c.user_id,
                    &c.content,
                    c.reply_id,
                    c.created_ms,
                    pending,
                ),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The video's rows in its author's list, the feed and the video scan list (idempotent).
    pub(super) async fn list_video(&self, v: &VideoRecord) -> StoreResult<()> {
        futures_util::future::try_join3(
            self.list_add(Kind::AuthorVideos, v.author_id, v.id, 0),
            self.list_add(Kind::Feed, 0, v.id, v.author_id),
            self.list_add(Kind::Videos, 0, v.id, v.author_id),
        )
        .await?;
        Ok(())
    }

    /// The message in its conversation's hour (registering the hour).
    pub(super) async fn put_message(&self, m: &MessageRecord) -> StoreResult<()> {
        let (lo, hi) = low_high(m.from_user_id, m.to_user_id);
        let b = bucket(m.id);
        self.register(Kind::Conversation, lo, hi, b).await?;
        self.s
            .execute_unpaged(
                &self.q.ins_msg,
                (
                    lo,
                    hi,
                    b,
                    m.id,
                    m.from_user_id,
                    m.to_user_id,
                    &m.content,
                    m.created_ms,
                ),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
