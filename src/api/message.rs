//! Chat: sending messages, and the conversation poll that the client calls every second or so.

use crate::api::ctx::Ctx;
use crate::api::reply::{ok, Empty};
use crate::api::views;
use crate::error::AppError;
use crate::ids::{floor_for_ms, time_ms};
use crate::write::social::send_message;
use ntex::web::{self, HttpResponse};
use serde::Serialize;

/// Most messages one chat response carries (the newest ones of a long conversation).
const MAX_CHAT: usize = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    super::ctx::route_write(cfg, "/douyin/message/action", action);
    super::ctx::route(cfg, "/douyin/message/chat", chat);
}

async fn action(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let uid = views::writer(st, p.token()).await?;
    let to = p.require_i64("to_user_id")?;
    if p.require_i64("action_type")? != 1 {
        return Err(AppError::param("action_type must be 1 (send)"));
    }
    let content = crate::text::check(
        "content",
        p.get("content").unwrap_or(""),
        1,
        st.cfg.server.message_max_chars,
        true,
    )?;
    if to == uid {
        return Err(AppError::param("you cannot message yourself"));
    }
    if !st.cache.user_exists(to).await? {
        return Err(AppError::UserNotFound);
    }
    if st.cfg.server.messages_friends_only {
        let friends = st.cache.friends(uid, usize::MAX).await?.unwrap_or_default();
        if !friends.contains(&to) {
            return Err(AppError::Forbidden(
                "you can only message friends (mutual follows)".into(),
            ));
        }
    }
    send_message(st, uid, to, content).await?;
    Ok(ok(&Empty {}))
}

#[derive(Serialize)]
struct Message {
    id: i64,
    to_user_id: i64,
    from_user_id: i64,
    content: String,
    /// Milliseconds since the epoch, as a number.
    create_time: i64,
}

#[derive(Serialize)]
struct ChatReply {
    message_list: Vec<Message>,
}

/// With `pre_msg_time` missing or 0: the conversation, both directions, oldest first (the newest
/// 1000 of a longer one). With `pre_msg_time` > 0 (ms; seconds accepted): only messages strictly
/// newer, without the caller's own (the client already shows what it sent).
async fn chat(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let uid = views::writer(st, p.token()).await?;
    let to = p.require_i64("to_user_id")?;
    if !st.cache.user_exists(to).await? {
        return Err(AppError::UserNotFound);
    }
    let min_ms = match p.i64("pre_msg_time")? {
        None | Some(0) => None,
        Some(t) if t < 0 => return Err(AppError::param("pre_msg_time must not be negative")),
        Some(t) if t < 100_000_000_000 => Some((t + 1) * 1000),
        Some(t) => Some(t + 1),
    };
    let msgs = st
        .cache
        .conversation_page(uid, to, min_ms.map(floor_for_ms), MAX_CHAT)
        .await?;
    let message_list = msgs
        .into_iter()
        .filter(|m| min_ms.is_none() || m.from != uid)
        .map(|m| Message {
            id: m.id,
            to_user_id: m.to,
            from_user_id: m.from,
            content: m.content,
            create_time: time_ms(m.id),
        })
        .collect();
    Ok(ok(&ChatReply { message_list }))
}
