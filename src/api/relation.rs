//! Follows: follow/unfollow (idempotent), follow and follower lists, and friends (mutual
//! follows) with the latest message of each conversation.

use crate::api::ctx::Ctx;
use crate::api::reply::{ok, Empty, User};
use crate::api::views;
use crate::error::AppError;
use crate::write::social::set_follow;
use ntex::web::{self, HttpResponse};
use serde::Serialize;

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

#[derive(Serialize)]
struct ListReply {
    user_list: Vec<User>,
    /// Our extension: pass it as `cursor` for the next page; 0 when there is none.
    next_cursor: i64,
}

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
    let user_list = views::users(st, viewer, &ids).await?;
    Ok(ok(&ListReply {
        user_list,
        next_cursor,
    }))
}

async fn follow_list(ctx: Ctx) -> Result<HttpResponse, AppError> {
    relation_list(&ctx, false).await
}

async fn follower_list(ctx: Ctx) -> Result<HttpResponse, AppError> {
    relation_list(&ctx, true).await
}

/// A friend: a full User plus the latest message between the two.
#[derive(Serialize)]
struct FriendUser {
    #[serde(flatten)]
    user: User,
    /// The latest message, either direction; empty when there is none.
    message: String,
    /// 0: the caller received it, 1: the caller sent it.
    #[serde(rename = "msgType")]
    msg_type: i64,
}

#[derive(Serialize)]
struct FriendReply {
    user_list: Vec<FriendUser>,
}

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
    let users = views::users(st, Some(uid), &ids).await?;
    let latest = st.cache.latest_messages(uid, &ids).await?;
    let user_list = users
        .into_iter()
        .map(|user| {
            let (message, msg_type) = match latest.get(&user.id) {
                Some(m) => (m.content.clone(), i64::from(m.from == uid)),
                None => (String::new(), 0),
            };
            FriendUser {
                user,
                message,
                msg_type,
            }
        })
        .collect();
    Ok(ok(&FriendReply { user_list }))
}
