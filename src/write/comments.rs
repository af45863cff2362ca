//! Comments: posting (validated text, optional reply on the same video) and deleting (by the
//! comment's or the video's author), each with the video's versioned comment counter and zset.

use super::outbox;
use crate::cache::versioned::{VideoAspect, ZsetOp};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{CommentRecord, OutboxOp};

/// A comment is added once and deleted at most once: its member versions in the video's
/// comment zset (see `lua/entity_apply.lua`).
const ADDED: i64 = 1;
const DELETED: i64 = 2;

/// Posts a comment; shared by the endpoint and tests.
pub async fn post(
    st: &AppState,
    user_id: i64,
    video_id: i64,
    text: &str,
    reply_id: i64,
) -> Result<CommentRecord, AppError> {
    let content = crate::text::check(
        "comment_text",
        text,
        1,
        st.cfg.server.comment_max_chars,
        true,
    )?;
    if reply_id != 0 {
        match st.store.get_comment(reply_id).await? {
            Some(c) if c.video_id == video_id => {}
            _ => {
                return Err(AppError::param(
                    "reply_id must be a comment on the same video",
                ))
            }
        }
    }
    let id = st.ids.next_id();
    let rec = CommentRecord {
        id,
        video_id,
        user_id,
        content,
        reply_id,
        created_ms: crate::ids::time_ms(id),
    };
    let entry = outbox::entry(
        st,
        OutboxOp::CommentChanged {
            video_id,
            comment_id: id,
        },
    );
    let counters = st.store.add_comment(&rec, &entry).await?;
    outbox::finish(st, &entry, async {
        st.cache.comment_created(&rec).await?;
        st.cache
            .apply_video(
                video_id,
                &counters,
                VideoAspect::Comments,
                ZsetOp::Add {
                    member: id,
                    score: id,
                    version: ADDED,
                },
            )
            .await
    })
    .await;
    Ok(rec)
}

/// Deletes comment `comment_id` of video `video_id` (whose author is `video_author`) for
/// `user_id`, who must be the comment's or the video's author. Returns the deleted comment.
pub async fn delete(
    st: &AppState,
    user_id: i64,
    video_id: i64,
    video_author: i64,
    comment_id: i64,
) -> Result<CommentRecord, AppError> {
    let c = st
        .store
        .get_comment(comment_id)
        .await?
        .filter(|c| c.video_id == video_id)
        .ok_or(AppError::CommentNotFound)?;
    if c.user_id != user_id && video_author != user_id {
        return Err(AppError::Forbidden(
            "only the comment's author or the video's author may delete it".into(),
        ));
    }
    let entry = outbox::entry(
        st,
        OutboxOp::CommentChanged {
            video_id,
            comment_id,
        },
    );
    let counters = st
        .store
        .delete_comment(comment_id, &entry)
        .await?
        .ok_or(AppError::CommentNotFound)?;
    outbox::finish(st, &entry, async {
        st.cache
            .apply_video(
                video_id,
                &counters,
                VideoAspect::Comments,
                ZsetOp::Remove {
                    member: comment_id,
                    version: DELETED,
                },
            )
            .await?;
        st.cache.comment_deleted(comment_id).await
    })
    .await;
    Ok(c)
}
