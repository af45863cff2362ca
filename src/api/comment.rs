//! Comments: post, delete (by the comment's or the video's author), and a video's comments.

use crate::api::ctx::Ctx;
use crate::api::reply::{month_day, ok, User};
use crate::api::views;
use crate::error::AppError;
use crate::model::CommentData;
use crate::state::AppState;
use crate::write::comments;
use ntex::web::{self, HttpResponse};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

pub fn routes(cfg: &mut web::ServiceConfig) {
    super::ctx::route_write(cfg, "/douyin/comment/action", action);
    super::ctx::route(cfg, "/douyin/comment/list", list);
}

/// The `Comment` object; `reply_id` comes from the extended spec.
#[derive(Debug, Serialize)]
pub struct Comment {
    pub id: i64,
    pub user: User,
    pub content: String,
    /// "MM-DD", as the contract's field comment says.
    pub create_date: String,
    pub reply_id: i64,
}

fn render(st: &AppState, c: &CommentData, user: User) -> Comment {
    Comment {
        id: c.id,
        user,
        content: c.content.clone(),
        create_date: month_day(c.created_ms, st.cfg.server.utc_offset_minutes),
        reply_id: c.reply_id,
    }
}

#[derive(Serialize)]
struct ActionReply {
    comment: Comment,
}

async fn action(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let uid = views::writer(st, p.token()).await?;
    let vid = p.require_i64("video_id")?;
    let posting = p.action_type()?;
    let author = st
        .cache
        .video_author(vid)
        .await?
        .ok_or(AppError::VideoNotFound)?;
    let rec = if posting {
        let text = p.get("comment_text").unwrap_or("");
        comments::post(st, uid, vid, text, p.i64("reply_id")?.unwrap_or(0)).await?
    } else {
        let cid = p.require_i64("comment_id")?;
        comments::delete(st, uid, vid, author, cid).await?
    };
    let author = views::user_after_write(st, uid, rec.user_id).await?;
    Ok(ok(&ActionReply {
        comment: render(st, &CommentData::from(&rec), author),
    }))
}

#[derive(Serialize)]
struct ListReply {
    comment_list: Vec<Comment>,
    /// Our extension: pass it as `cursor` for the next page; 0 when there is none.
    next_cursor: i64,
}

async fn list(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let viewer = views::viewer(st, p.token()).await?;
    let vid = p.require_i64("video_id")?;
    let (cursor, count) = views::paging(st, p)?;
    // the first page comes from the near-cache (comments never change), a later one from Redis
    let (page, paged);
    let comments: &[CommentData] = match cursor {
        None => {
            page = st
                .cache
                .newest_comments(vid, count, st.cfg.server.max_list)
                .await?
                .ok_or(AppError::VideoNotFound)?;
            page.first(count).unwrap_or(&page.comments)
        }
        Some(_) => {
            let ids = st
                .cache
                .video_comment_ids(vid, cursor, count)
                .await?
                .ok_or(AppError::VideoNotFound)?;
            paged = st.cache.comments(&ids).await?;
            &paged
        }
    };
    // a comment's cursor is its id
    let next_cursor = views::next_cursor(comments.last().map(|c| c.id), comments.len(), count);
    let mut seen = HashSet::new();
    let uids: Vec<i64> = comments
        .iter()
        .map(|c| c.user_id)
        .filter(|u| seen.insert(*u))
        .collect();
    let users: HashMap<i64, User> = views::users(st, viewer, &uids)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let comment_list = comments
        .iter()
        .filter_map(|c| users.get(&c.user_id).map(|u| render(st, c, u.clone())))
        .collect();
    Ok(ok(&ListReply {
        comment_list,
        next_cursor,
    }))
}
