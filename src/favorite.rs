//! Likes: like/unlike a video (idempotent), and the videos a user likes.

use crate::app::{AppState, Ctx};
use crate::cache::{UserAspect, VideoAspect, ZsetOp};
use crate::error::AppError;
use crate::model::{ok, Empty};
use crate::store::{OutboxEntry, OutboxOp};
use crate::views;
use ntex::web::{self, HttpResponse};

/// Longest favorite list returned.
const MAX_LIST: usize = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    crate::app::route_write(cfg, "/douyin/favorite/action", action);
    crate::app::route(cfg, "/douyin/favorite/list", list);
}

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
    let entry = OutboxEntry {
        id: st.ids.next_id(),
        op: OutboxOp::LikeChanged {
            user_id,
            video_id,
            author_id,
        },
    };
    let change = st
        .store
        .set_like(user_id, video_id, author_id, like, like_id, &entry)
        .await?;
    if !change.changed {
        return Ok(false);
    }
    st.apply_outbox(&entry, async {
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
        futures_util::future::try_join3(
            st.cache
                .apply_user(user_id, &change.liker, UserAspect::Likes, op),
            st.cache.apply_user(
                author_id,
                &change.author,
                UserAspect::Received,
                ZsetOp::None,
            ),
            st.cache.apply_video(
                video_id,
                &change.video,
                VideoAspect::Favorites,
                ZsetOp::None,
            ),
        )
        .await
        .map(|_| ())
    })
    .await;
    Ok(true)
}

async fn action(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let uid = views::writer(st, p.token()).await?;
    let vid = p.require_i64("video_id")?;
    let like = p.action_type()?;
    let author = st
        .cache
        .video_author(vid)
        .await?
        .ok_or(AppError::VideoNotFound)?;
    set_like(st, uid, vid, author, like).await?;
    Ok(ok(&Empty {}))
}

async fn list(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let (uid, viewer) = views::subject(st, p)?;
    let ids = st
        .cache
        .user_liked_ids(uid, MAX_LIST)
        .await?
        .ok_or(AppError::UserNotFound)?;
    views::video_list_reply(st, viewer, &ids).await
}
