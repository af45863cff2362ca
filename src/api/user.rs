//! Accounts: register, login, user info.

use crate::api::ctx::Ctx;
use crate::api::params::Params;
use crate::api::reply::{ok, User};
use crate::api::views;
use crate::error::AppError;
use crate::state::AppState;
use crate::write::accounts::{create_user, NewUser};
use ntex::web::{self, HttpResponse};
use serde::Serialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    super::ctx::route_write(cfg, "/douyin/user/register", register);
    super::ctx::route(cfg, "/douyin/user/login", login);
    super::ctx::route(cfg, "/douyin/user", info);
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
    let username = p.require("username")?.trim().to_string();
    let a = &st.auth.cfg;
    check_len(
        "username",
        &username,
        a.min_username_chars,
        a.max_username_chars,
    )?;
    if username.chars().any(|c| c.is_control()) {
        return Err(AppError::param(
            "username must not contain control characters",
        ));
    }
    let password = p.require("password")?.to_string();
    check_len(
        "password",
        &password,
        a.min_password_chars,
        a.max_password_chars,
    )?;
    let signature = p.get("signature").unwrap_or("").trim().to_string();
    check_len("signature", &signature, 0, 200)?;
    Ok(NewUser {
        username,
        password,
        avatar: optional_url(p, "avatar")?,
        background_image: optional_url(p, "background_image")?,
        signature,
    })
}

async fn register(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let nu = new_user(st, p)?;
    let user_id = create_user(st, nu).await?;
    let token = st.auth.issue(user_id)?;
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
    let user = match st.store.user_id_by_name(&username).await? {
        Some(id) => st.store.get_user(id).await?,
        None => None,
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !st.auth.verify_password(password, hash).await? {
        return Err(AppError::WrongCredentials);
    }
    let user_id = user.map(|u| u.id).ok_or(AppError::WrongCredentials)?;
    let token = st.auth.issue(user_id)?;
    Ok(ok(&AuthReply { user_id, token }))
}

#[derive(Serialize)]
struct InfoReply {
    user: User,
}

async fn info(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let (id, viewer) = views::subject(st, p)?;
    let user = views::users(st, viewer, &[id])
        .await?
        .pop()
        .ok_or(AppError::UserNotFound)?;
    Ok(ok(&InfoReply { user }))
}
