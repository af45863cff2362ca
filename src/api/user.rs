//! Accounts: register, login, user info.

use crate::api::ctx::{client_ip, Ctx};
use crate::api::params::Params;
use crate::api::reply::{ok, ok_close, ok_open};
use crate::api::views;
use crate::error::AppError;
use crate::near::write_user;
use crate::state::AppState;
use crate::text;
use crate::write::accounts::{create_user, NewUser};
use ntex::web::{self, HttpResponse};
use serde::Serialize;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

pub fn routes(cfg: &mut web::ServiceConfig) {
    super::ctx::route_write(cfg, "/douyin/user/register", register);
    super::ctx::route(cfg, "/douyin/user/login", login);
    super::ctx::route(cfg, "/douyin/user", info);
    super::ctx::route_write(cfg, "/douyin/user/logout", logout);
}

#[derive(Serialize)]
struct AuthReply {
    user_id: i64,
    token: String,
}

fn check_len(what: &str, s: &str, min: usize, max: usize) -> Result<(), AppError> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(AppError::param(format!(
            "{what} must be {min} to {max} characters"
        )));
    }
    Ok(())
}

fn optional_url(p: &Params, name: &str) -> Result<String, AppError> {
    let v = p.get(name).unwrap_or("").trim();
    if v.is_empty() {
        return Ok(String::new());
    }
    if v.len() > 1024
        || !(v.starts_with("http://") || v.starts_with("https://"))
        || v.chars().any(char::is_whitespace)
    {
        return Err(AppError::param(format!(
            "{name} must be an http(s) URL of at most 1024 characters"
        )));
    }
    Ok(v.to_string())
}

/// The profile fields of a new account from the request, validated.
fn new_user(st: &AppState, p: &Params) -> Result<NewUser, AppError> {
    let a = &st.auth.cfg;
    let username = text::check_name(
        "username",
        p.require("username")?,
        a.min_username_chars,
        a.max_username_chars,
    )?;
    let password = p.require("password")?.to_string();
    check_len(
        "password",
        &password,
        a.min_password_chars,
        a.max_password_chars,
    )?;
    let signature = text::check("signature", p.get("signature").unwrap_or(""), 0, 200, false)?;
    Ok(NewUser {
        username,
        password,
        avatar: optional_url(p, "avatar")?,
        background_image: optional_url(p, "background_image")?,
        signature,
    })
}

/// Counts an attempt of `kind` by `subject` against its limit. When Redis is down the attempt
/// goes through (logged): the limits guard against abuse, and login itself needs only the
/// durable store.
async fn attempt(
    st: &AppState,
    kind: &str,
    subject: &str,
    window: Duration,
    limit: u64,
) -> Result<(), AppError> {
    match st.cache.count_attempt(kind, subject, window, limit).await {
        Err(AppError::Unavailable(e)) => {
            tracing::warn!(error = %e, kind, "rate limit not checked: redis unavailable");
            Ok(())
        }
        r => r,
    }
}

/// The client's address as a rate-limit subject.
fn client(ctx: &Ctx) -> String {
    client_ip(&ctx.st, &ctx.req).map_or_else(|| "unknown".into(), |ip| ip.to_string())
}

async fn register(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let nu = new_user(st, p)?;
    let l = &st.cfg.limits;
    attempt(
        st,
        "register-ip",
        &client(&ctx),
        HOUR,
        l.register_per_ip_per_hour,
    )
    .await?;
    let user_id = create_user(st, nu).await?;
    let token = st.auth.issue(user_id, 0)?;
    Ok(ok(&AuthReply { user_id, token }))
}

async fn login(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let username = p.require("username")?.trim().to_string();
    let password = p.require("password")?.to_string();
    if username.chars().count() > st.auth.cfg.max_username_chars
        || password.chars().count() > st.auth.cfg.max_password_chars
    {
        return Err(AppError::WrongCredentials);
    }
    let l = &st.cfg.limits;
    attempt(
        st,
        "login-ip",
        &client(&ctx),
        MINUTE,
        l.login_per_ip_per_min,
    )
    .await?;
    attempt(
        st,
        "login-name",
        &username,
        MINUTE,
        l.login_per_name_per_min,
    )
    .await?;
    let user = match st.store.user_id_by_name(&username).await? {
        Some(id) => st.store.get_user(id).await?,
        None => None,
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !st.auth.verify_password(password, hash).await? {
        return Err(AppError::WrongCredentials);
    }
    let user_id = user.map(|u| u.id).ok_or(AppError::WrongCredentials)?;
    let generation = st.store.session(user_id).await?.generation;
    let token = st.auth.issue(user_id, generation)?;
    Ok(ok(&AuthReply { user_id, token }))
}

/// `{..., "user": {...}}`, written from the near-cache's pre-rendered JSON.
async fn info(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let (id, viewer) = views::subject(st, p).await?;
    let seen = views::user_views(st, viewer, &[id]).await?;
    let Some(Some((user, follows))) = seen.first() else {
        return Err(AppError::UserNotFound);
    };
    let mut body = ok_open(user.json_len() + 64);
    body.extend_from_slice(b",\"user\":");
    write_user(&mut body, user, *follows);
    Ok(ok_close(body))
}

/// Our extension: logs out the token used (or, with `everywhere=1`, every token of the user).
async fn logout(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let token = views::caller(st, p.token()).await?;
    let everywhere = match p.get("everywhere") {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(_) => return Err(AppError::param("everywhere must be 0 or 1")),
    };
    crate::write::accounts::logout(st, &token, everywhere).await?;
    Ok(ok(&crate::api::reply::Empty {}))
}
