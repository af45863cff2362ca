//! Likes: a like or unlike, durable first, then three independent versioned changes in Redis
//! (the liker, the video's author, the video).

use super::outbox;
use crate::cache::versioned::{UserAspect, VideoAspect, ZsetOp};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::OutboxOp;

/// Likes (or unlikes) video `video_id` of `author_id` for `user_id`: durable first, then the
/// liker's, the author's and the video's cached counters (concurrently: each is its own
/// versioned change of its own slot). Returns whether anything changed.
pub async fn set_like(
    st: &AppState,
    user_id: i64,
    video_id: i64,
    author_id: i64,
    like: bool,
) -> Result<bool, AppError> {
    let like_id = st.ids.next_id();
    let entry = outbox::entry(
        st,
        OutboxOp::LikeChanged {
            user_id,
            video_id,
            author_id,
        },
    );
    let change = st
        .store
        .set_like(user_id, video_id, author_id, like, like_id, &entry)
        .await?;
    if !change.changed {
        return Ok(false);
    }
    outbox::finish(st, &entry, async {
        let op = if like {
            ZsetOp::Add {
                member: video_id,
                score: like_id,
                version: change.pair_version,
            }
        } else {
            ZsetOp::Remove {
                member: video_id,
                version: change.pair_version,
            }
        };
        // three slots, three independent versioned changes: sent together
        // the liker, the author and the video: one script on a single Redis
        let c = &st.cache;
        c.apply(vec![
            c.user_change(user_id, &change.liker, UserAspect::Likes, op),
            c.user_change(
                author_id,
                &change.author,
                UserAspect::Received,
                ZsetOp::None,
            ),
            c.video_change(
                video_id,
                &change.video,
                VideoAspect::Favorites,
                ZsetOp::None,
            ),
        ])
        .await
    })
    .await;
    Ok(true)
}
