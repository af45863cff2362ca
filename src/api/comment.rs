//! Comments: post, delete (by the comment's or the video's author), and a video's comments.

use crate::api::ctx::Ctx;
use crate::api::reply::{ok, ok_close, ok_open, User};
use crate::api::views;
use crate::error::AppError;
use crate::model::{month_day, CommentData};
use crate::near::{write_comment, UserEntry};
use crate::state::AppState;
use crate::write::comments;
use ntex::web::{self, HttpResponse};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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

async fn list(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let viewer = views::viewer(st, p.token()).await?;
    let vid = p.require_i64("video_id")?;
    let (cursor, count) = views::paging(st, p)?;
    let offset = st.cfg.server.utc_offset_minutes;
    // `{..., "comment_list": [...], "next_cursor": N}` (`next_cursor` is our extension: pass it
    // as `cursor` for the next page; 0 when there is none); a comment's cursor is its id
    let Some(cursor) = cursor else {
        // the first page: held rendered in the near-cache (comments never change)
        let page = st
            .cache
            .newest_comments(vid, count, st.cfg.server.max_list, offset)
            .await?
            .ok_or(AppError::VideoNotFound)?;
        let n = page.first(count).unwrap_or(page.held());
        let follows = match viewer {
            Some(v) => st.cache.viewer_flags(v, &[], page.authors(n)).await?.1,
            None => Vec::new(),
        };
        let next_cursor = views::next_cursor(page.last_id(n), n, count);
        let mut body = ok_open(64);
        body.extend_from_slice(b",\"comment_list\":");
        page.write(&mut body, n, &follows);
        return Ok(list_close(body, next_cursor));
    };
    let ids = st
        .cache
        .video_comment_ids(vid, Some(cursor), count)
        .await?
        .ok_or(AppError::VideoNotFound)?;
    let comments = st.cache.comments(&ids).await?;
    let next_cursor = views::next_cursor(comments.last().map(|c| c.id), comments.len(), count);
    let mut seen = HashSet::new();
    let uids: Vec<i64> = comments
        .iter()
        .map(|c| c.user_id)
        .filter(|u| seen.insert(*u))
        .collect();
    let users: HashMap<i64, (Arc<UserEntry>, bool)> = uids
        .iter()
        .zip(views::user_views(st, viewer, &uids).await?)
        .filter_map(|(id, v)| v.map(|v| (*id, v)))
        .collect();
    let mut body = ok_open(comments.len() * 420);
    body.extend_from_slice(b",\"comment_list\":[");
    let start = body.len();
    for c in &comments {
        let Some((u, follows)) = users.get(&c.user_id) else {
            continue;
        };
        if body.len() > start {
            body.push(b',');
        }
        write_comment(&mut body, c, u, *follows, offset);
    }
    body.push(b']');
    Ok(list_close(body, next_cursor))
}

/// Ends a comment list's reply with its `next_cursor`.
fn list_close(mut body: Vec<u8>, next_cursor: i64) -> HttpResponse {
    body.extend_from_slice(b",\"next_cursor\":");
    body.extend_from_slice(itoa::Buffer::new().format(next_cursor).as_bytes());
    ok_close(body)
}
