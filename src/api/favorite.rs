//! Likes: like/unlike a video (idempotent), and the videos a user likes.

use crate::api::ctx::Ctx;
use crate::api::reply::{ok, Empty};
use crate::api::views;
use crate::error::AppError;
use crate::write::likes::set_like;
use ntex::web::{self, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    super::ctx::route_write(cfg, "/douyin/favorite/action", action);
    super::ctx::route(cfg, "/douyin/favorite/list", list);
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
    let (uid, viewer) = views::subject(st, p).await?;
    let (cursor, count) = views::paging(st, p)?;
    let page = st
        .cache
        .liked_page(uid, cursor, count)
        .await?
        .ok_or(AppError::UserNotFound)?;
    views::video_page_reply(st, viewer, &page, count).await
}
