//! Comments: post, delete (by the comment's or the video's author), and a video's comments.

use crate::api::ctx::Ctx;
use crate::api::reply::{month_day, ok, ok_close, ok_open, User};
use crate::api::views;
use crate::error::AppError;
use crate::model::CommentData;
use crate::near::{write_user, UserEntry};
use crate::state::AppState;
use crate::write::comments;
use ntex::web::{self, HttpResponse};
use serde::Serialize;
use std::collections::HashSet;

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
    let users = views::user_views(st, viewer, &uids).await?;
    // `{..., "comment_list": [...], "next_cursor": N}` (`next_cursor` is our extension: pass it
    // as `cursor` for the next page; 0 when there is none)
    let mut body = ok_open(comments.len() * 420);
    body.extend_from_slice(b",\"comment_list\":[");
    let start = body.len();
    for c in comments {
        let Some((u, follows)) = users.get(&c.user_id) else {
            continue;
        };
        if body.len() > start {
            body.push(b',');
        }
        write_comment(&mut body, c, u, *follows, st.cfg.server.utc_offset_minutes);
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    body.extend_from_slice(itoa::Buffer::new().format(next_cursor).as_bytes());
    Ok(ok_close(body))
}

/// Appends comment `c` by `user` as a `Comment` object (as [`Comment`] serialises), its date
/// at `offset_minutes` from UTC.
fn write_comment(
    buf: &mut Vec<u8>,
    c: &CommentData,
    user: &UserEntry,
    follows: bool,
    offset_minutes: i32,
) {
    let mut n = itoa::Buffer::new();
    buf.extend_from_slice(b"{\"id\":");
    buf.extend_from_slice(n.format(c.id).as_bytes());
    buf.extend_from_slice(b",\"user\":");
    write_user(buf, user, follows);
    buf.extend_from_slice(b",\"content\":");
    // serialising a &str cannot fail
    let _ = simd_json::to_writer(&mut *buf, &c.content);
    buf.extend_from_slice(b",\"create_date\":\"");
    buf.extend_from_slice(month_day(c.created_ms, offset_minutes).as_bytes());
    buf.extend_from_slice(b"\",\"reply_id\":");
    buf.extend_from_slice(n.format(c.reply_id).as_bytes());
    buf.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserData;

    #[test]
    fn written_comment_equals_serialised_comment() {
        let u = UserData {
            id: 7,
            name: "n \"q\"".into(),
            follow_count: 2,
            ..Default::default()
        };
        let c = CommentData {
            id: 42,
            video_id: 9,
            user_id: 7,
            content: "line\nbreak \u{1F600}".into(),
            created_ms: 1_680_733_741_000,
            reply_id: 5,
        };
        let mut buf = Vec::new();
        write_comment(&mut buf, &c, &UserEntry::new(u.clone()), true, 480);
        let ours: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        let want = serde_json::to_value(Comment {
            id: 42,
            user: User::from_data(&u, true),
            content: c.content.clone(),
            create_date: "04-06".into(),
            reply_id: 5,
        })
        .unwrap();
        assert_eq!(ours, want);
    }
}
