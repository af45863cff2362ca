//! Assembling `Video` and `User` objects for a viewer from the cache.
//!
//! Shared by every endpoint that lists videos or users, so that one page costs a fixed number of
//! Redis round trips whatever its length: the objects (pipelined), then the viewer's flags
//! (`is_favorite`, `is_follow`) for the whole page in one script call.

use crate::app::AppState;
use crate::error::AppError;
use crate::model::{User, Video};
use crate::params::Params;
use std::collections::{HashMap, HashSet};

/// The videos `ids` (in that order, unknown ones skipped) as seen by `viewer`.
pub async fn videos(
    st: &AppState,
    viewer: Option<i64>,
    ids: &[i64],
) -> Result<Vec<Video>, AppError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let vids = st.cache.videos(ids).await?;
    let mut seen = HashSet::new();
    let authors: Vec<i64> = vids
        .iter()
        .map(|v| v.author_id)
        .filter(|a| seen.insert(*a))
        .collect();
    let users = st.cache.users(&authors).await?;
    let present: Vec<i64> = vids.iter().map(|v| v.id).collect();
    let (liked, follows) = match viewer {
        Some(u) => st.cache.viewer_flags(u, &present, &authors).await?,
        None => (vec![false; present.len()], vec![false; authors.len()]),
    };
    let follows: HashMap<i64, bool> = authors.iter().copied().zip(follows).collect();
    let mut out = Vec::with_capacity(vids.len());
    for (v, is_favorite) in vids.iter().zip(liked) {
        let Some(author) = users.get(&v.author_id) else {
            tracing::warn!(
                video = v.id,
                author = v.author_id,
                "video without an author record; skipped"
            );
            continue;
        };
        out.push(Video {
            id: v.id,
            author: User::from_data(author, follows.get(&v.author_id).copied().unwrap_or(false)),
            play_url: st.urls.play(v),
            cover_url: st.urls.cover(v),
            favorite_count: v.favorite_count,
            comment_count: v.comment_count,
            play_count: v.play_count,
            is_favorite,
            title: v.title.clone(),
            desc: v.desc.clone(),
        });
    }
    Ok(out)
}

/// The users `ids` (in that order, unknown ones skipped) with `is_follow` as seen by `viewer`.
pub async fn users(st: &AppState, viewer: Option<i64>, ids: &[i64]) -> Result<Vec<User>, AppError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = st.cache.users(ids).await?;
    let follows = match viewer {
        Some(v) => st.cache.viewer_flags(v, &[], ids).await?.1,
        None => vec![false; ids.len()],
    };
    Ok(ids
        .iter()
        .zip(follows)
        .filter_map(|(id, f)| found.get(id).map(|u| User::from_data(u, f)))
        .collect())
}

/// The viewer of a read: None when no token was given; an invalid token is an error.
pub fn viewer(st: &AppState, token: Option<&str>) -> Result<Option<i64>, AppError> {
    token.map(|t| st.auth.verify(t)).transpose()
}

/// The caller of a write: a valid token is required.
pub fn caller(st: &AppState, token: Option<&str>) -> Result<i64, AppError> {
    st.auth.verify(token.ok_or(AppError::Unauthenticated)?)
}

/// The caller of a write: a valid token of a user that exists.
pub async fn writer(st: &AppState, token: Option<&str>) -> Result<i64, AppError> {
    let uid = caller(st, token)?;
    if !st.cache.ensure_user(uid).await? {
        return Err(AppError::InvalidToken);
    }
    Ok(uid)
}

/// The user a read is about and the viewer: `user_id`, or the viewer for a missing or 0 one.
pub fn subject(st: &AppState, p: &Params) -> Result<(i64, Option<i64>), AppError> {
    let viewer = viewer(st, p.token())?;
    let uid = match p.i64("user_id")? {
        Some(id) if id != 0 => id,
        _ => viewer.ok_or_else(|| {
            AppError::param("missing parameter: user_id (or a token for yourself)")
        })?,
    };
    Ok((uid, viewer))
}
