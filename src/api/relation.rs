//! Follows: follow/unfollow (idempotent), follow and follower lists, and friends (mutual
//! follows) with the latest message of each conversation.

use crate::api::ctx::Ctx;
use crate::api::reply::{ok, ok_close, ok_open, Empty};
use crate::api::views;
use crate::error::AppError;
use crate::write::social::set_follow;
use ntex::web::{self, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    super::ctx::route_write(cfg, "/douyin/relation/action", action);
    super::ctx::route(cfg, "/douyin/relation/follow/list", follow_list);
    super::ctx::route(cfg, "/douyin/relation/follower/list", follower_list);
    super::ctx::route(cfg, "/douyin/relation/friend/list", friend_list);
}

async fn action(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let uid = views::writer(st, p.token()).await?;
    let to = p.require_i64("to_user_id")?;
    let follow = p.action_type()?;
    if to == uid {
        return Err(AppError::param("you cannot follow yourself"));
    }
    if !st.cache.user_exists(to).await? {
        return Err(AppError::UserNotFound);
    }
    set_follow(st, uid, to, follow).await?;
    Ok(ok(&Empty {}))
}

/// A follow or follower list: `{..., "user_list": [...], "next_cursor": N}` (`next_cursor` is
/// our extension: pass it as `cursor` for the next page; 0 when there is none).
async fn relation_list(ctx: &Ctx, followers: bool) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let (uid, viewer) = views::subject(st, p).await?;
    let (cursor, count) = views::paging(st, p)?;
    let page = if followers {
        st.cache.followers_page(uid, cursor, count).await?
    } else {
        st.cache.following_page(uid, cursor, count).await?
    };
    let page = page.ok_or(AppError::UserNotFound)?;
    let next_cursor = views::next_cursor(page.last().map(|(_, s)| *s), page.len(), count);
    let ids: Vec<i64> = page.iter().map(|(id, _)| *id).collect();
    let mut body = ok_open(ids.len() * 320);
    body.extend_from_slice(b",\"user_list\":");
    views::write_users(&mut body, st, viewer, &ids).await?;
    body.extend_from_slice(b",\"next_cursor\":");
    body.extend_from_slice(itoa::Buffer::new().format(next_cursor).as_bytes());
    Ok(ok_close(body))
}

async fn follow_list(ctx: Ctx) -> Result<HttpResponse, AppError> {
    relation_list(&ctx, false).await
}

async fn follower_list(ctx: Ctx) -> Result<HttpResponse, AppError> {
    relation_list(&ctx, true).await
}

/// The friend list: each friend a full `User` plus `message`, the latest message between the
/// two either way (empty when there is none), and `msgType` (0: the caller received it, 1: the
/// caller sent it). Kept rendered as the caller sees it (`near/people.rs`).
async fn friend_list(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let uid = views::writer(st, p.token()).await?;
    if let Some(other) = p.i64("user_id")?.filter(|id| *id != 0 && *id != uid) {
        return Err(AppError::Forbidden(format!(
            "you can only list your own friends, not those of {other}"
        )));
    }
    let ids = st
        .cache
        .friends(uid, st.cfg.server.max_list)
        .await?
        .unwrap_or_default();
    let near = &st.cache.near;
    let page = match near.friend_page(uid, &ids) {
        Some(page) => page,
        None => {
            let t = near.begin();
            let latest = st.cache.latest_messages(uid, &ids).await?;
            let (users, follows): (Vec<_>, Vec<_>) = views::user_views(st, Some(uid), &ids)
                .await?
                .into_iter()
                .flatten()
                .unzip();
            near.render_friend_page(
                uid,
                &ids,
                &users,
                &follows,
                |buf, id| {
                    buf.extend_from_slice(b",\"message\":");
                    match latest.get(&id) {
                        Some(m) => {
                            // serialising a &str cannot fail
                            let _ = simd_json::to_writer(&mut *buf, &m.content);
                            buf.extend_from_slice(if m.from == uid {
                                b",\"msgType\":1"
                            } else {
                                b",\"msgType\":0"
                            });
                        }
                        None => buf.extend_from_slice(b"\"\",\"msgType\":0"),
                    }
                },
                t,
            )
        }
    };
    let mut body = ok_open(page.rendered().len() + 16);
    body.extend_from_slice(b",\"user_list\":");
    body.extend_from_slice(page.rendered());
    Ok(ok_close(body))
}
