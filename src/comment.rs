//! Comments: post, delete (by the comment's or the video's author), and a video's comments.

use crate::app::{AppState, Ctx};
use crate::cache::{CommentData, VideoAspect, ZsetOp};
use crate::error::AppError;
use crate::model::{month_day, ok, User};
use crate::store::{CommentRecord, OutboxEntry, OutboxOp};
use crate::views;
use ntex::web::{self, HttpResponse};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// A comment is added once and deleted at most once: its member versions in the video's
/// comment zset (see `lua/entity_apply.lua`).
const ADDED: i64 = 1;
const DELETED: i64 = 2;

/// Longest comment list returned (newest first).
const MAX_LIST: usize = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    crate::app::route_write(cfg, "/douyin/comment/action", action);
    crate::app::route(cfg, "/douyin/comment/list", list);
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

fn data(c: &CommentRecord) -> CommentData {
    CommentData {
        id: c.id,
        user_id: c.user_id,
        video_id: c.video_id,
        content: c.content.clone(),
        reply_id: c.reply_id,
        created_ms: c.created_ms,
    }
}

#[derive(Serialize)]
struct ActionReply {
    comment: Comment,
}

/// Posts a comment; shared by the endpoint and tests.
pub async fn post(
    st: &AppState,
    user_id: i64,
    video_id: i64,
    text: &str,
    reply_id: i64,
) -> Result<CommentRecord, AppError> {
    let content = text.trim();
    let n = content.chars().count();
    let max = st.cfg.server.comment_max_chars;
    if n == 0 || n > max {
        return Err(AppError::param(format!(
            "comment_text must be 1 to {max} characters"
        )));
    }
    if content.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::param(
            "comment_text must not contain control characters",
        ));
    }
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
        content: content.to_string(),
        reply_id,
        created_ms: crate::ids::time_ms(id),
    };
    let entry = OutboxEntry {
        id: st.ids.next_id(),
        op: OutboxOp::CommentChanged {
            video_id,
            comment_id: id,
        },
    };
    let counters = st.store.add_comment(&rec, &entry).await?;
    st.apply_outbox(&entry, async {
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
        post(st, uid, vid, text, p.i64("reply_id")?.unwrap_or(0)).await?
    } else {
        let cid = p.require_i64("comment_id")?;
        let c = st
            .store
            .get_comment(cid)
            .await?
            .filter(|c| c.video_id == vid)
            .ok_or(AppError::CommentNotFound)?;
        if c.user_id != uid && author != uid {
            return Err(AppError::Forbidden(
                "only the comment's author or the video's author may delete it".into(),
            ));
        }
        let entry = OutboxEntry {
            id: st.ids.next_id(),
            op: OutboxOp::CommentChanged {
                video_id: vid,
                comment_id: cid,
            },
        };
        let counters = st
            .store
            .delete_comment(cid, &entry)
            .await?
            .ok_or(AppError::CommentNotFound)?;
        st.apply_outbox(&entry, async {
            st.cache
                .apply_video(
                    vid,
                    &counters,
                    VideoAspect::Comments,
                    ZsetOp::Remove {
                        member: cid,
                        version: DELETED,
                    },
                )
                .await?;
            st.cache.comment_deleted(cid).await
        })
        .await;
        c
    };
    let author = views::users(st, Some(uid), &[rec.user_id])
        .await?
        .pop()
        .ok_or(AppError::UserNotFound)?;
    Ok(ok(&ActionReply {
        comment: render(st, &data(&rec), author),
    }))
}

#[derive(Serialize)]
struct ListReply {
    comment_list: Vec<Comment>,
}

async fn list(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let viewer = views::viewer(st, p.token())?;
    let vid = p.require_i64("video_id")?;
    let ids = st
        .cache
        .video_comment_ids(vid, MAX_LIST)
        .await?
        .ok_or(AppError::VideoNotFound)?;
    let comments = st.cache.comments(&ids).await?;
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
    Ok(ok(&ListReply { comment_list }))
}
