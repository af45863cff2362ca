//! Assembling `Video` and `User` objects for a viewer from the cache.
//!
//! Shared by every endpoint that lists videos or users, so that one page costs a fixed number of
//! Redis round trips whatever its length: the objects (from the near-cache, else pipelined),
//! then the viewer's flags (`is_favorite`, `is_follow`) for the whole page in one script call.

use crate::api::params::Params;
use crate::api::reply::{ok_close, ok_open, User};
use crate::auth::Token;
use crate::error::AppError;
use crate::model::UserData;
use crate::near::{write_cards, Card, UserEntry, VideoEntry, PAGE_MAX};
use crate::state::AppState;
use ntex::web::HttpResponse;
use std::collections::HashMap;
use std::sync::Arc;

/// The videos `ids` (in that order, unknown ones skipped) as seen by `viewer`, rendered as a
/// JSON array of `Video` objects appended to `buf` (the response body being built). The page
/// is rendered once from the near-cache's entries and kept whole (`near/pages.rs`): an
/// anonymous reader gets it as it is, a viewer with their flags set in place (from the
/// near-cache's copies of their liked and following sets, or one Redis round trip). A list
/// longer than [`PAGE_MAX`] is written from its videos' cards instead (`write_long`).
pub async fn write_videos(
    buf: &mut Vec<u8>,
    st: &AppState,
    viewer: Option<i64>,
    ids: &[i64],
) -> Result<(), AppError> {
    if ids.is_empty() {
        buf.extend_from_slice(b"[]");
        return Ok(());
    }
    if ids.len() > PAGE_MAX {
        return write_long(buf, st, viewer, ids).await;
    }
    let near = &st.cache.near;
    let page = match near.page(ids) {
        Some(page) => page,
        None => {
            let t = near.begin();
            let items = items(st, &st.cache.video_entries(ids).await?).await?;
            near.render_page(ids, &items, t)
        }
    };
    match viewer {
        None => buf.extend_from_slice(page.anonymous()),
        Some(u) => {
            let (liked, follows) = st
                .cache
                .viewer_flags(u, &page.videos, &page.authors)
                .await?;
            page.write(buf, &liked, &follows);
        }
    }
    Ok(())
}

/// Each of `vids` with its author (a video whose author is unknown is skipped).
async fn items(
    st: &AppState,
    vids: &[Arc<VideoEntry>],
) -> Result<Vec<(Arc<VideoEntry>, Arc<UserEntry>)>, AppError> {
    let mut authors: Vec<i64> = Vec::with_capacity(vids.len());
    for v in vids {
        if !authors.contains(&v.author_id) {
            authors.push(v.author_id);
        }
    }
    let users = st.cache.user_entries(&authors).await?;
    let mut items = Vec::with_capacity(vids.len());
    for v in vids {
        match users.get(&v.author_id) {
            Some(a) => items.push((v.clone(), a.clone())),
            None => tracing::warn!(
                video = v.id,
                author = v.author_id,
                "video without an author record; skipped"
            ),
        }
    }
    Ok(items)
}

/// A list too long to keep as a page (a favorite list of a hundred), written from its videos'
/// cards (each video rendered with its author): from the held run of them when current (one
/// lookup), else each card looked up (one lookup a video), the missing ones rendered from the
/// entries, and the run kept.
async fn write_long(
    buf: &mut Vec<u8>,
    st: &AppState,
    viewer: Option<i64>,
    ids: &[i64],
) -> Result<(), AppError> {
    let near = &st.cache.near;
    let cards = match near.card_run(ids).and_then(|run| run.cards()) {
        Some(cards) => cards,
        None => lookup_cards(st, ids).await?,
    };
    let videos: Vec<i64> = cards.iter().map(|c| c.video()).collect();
    let authors: Vec<i64> = cards.iter().map(|c| c.author()).collect();
    let (liked, follows) = flags(st, viewer, &videos, &authors).await?;
    write_cards(buf, &cards, &liked, &follows);
    Ok(())
}

/// The cards of the long list `ids` one by one, the missing ones rendered from the entries
/// (an unknown video skipped), and their run kept when every one was found.
async fn lookup_cards(st: &AppState, ids: &[i64]) -> Result<Vec<Arc<Card>>, AppError> {
    let near = &st.cache.near;
    // before any card is looked up: the run kept below goes out of date with any of them
    let t = near.begin();
    let mut slots: Vec<Option<Arc<Card>>> = ids.iter().map(|id| near.card(*id)).collect();
    let missing: Vec<i64> = ids
        .iter()
        .zip(&slots)
        .filter(|(_, c)| c.is_none())
        .map(|(id, _)| *id)
        .collect();
    if !missing.is_empty() {
        let vids = st.cache.video_entries(&missing).await?;
        let made: HashMap<i64, Arc<Card>> = items(st, &vids)
            .await?
            .iter()
            .map(|(v, a)| (v.id, near.install_card(v, a, t)))
            .collect();
        for (slot, id) in slots.iter_mut().zip(ids) {
            if slot.is_none() {
                *slot = made.get(id).cloned();
            }
        }
    }
    let cards: Vec<Arc<Card>> = slots.into_iter().flatten().collect();
    near.keep_card_run(ids, &cards, t);
    Ok(cards)
}

/// `viewer`'s flags for `videos` (do they like each) and `authors` (do they follow each);
/// none for an anonymous reader.
async fn flags(
    st: &AppState,
    viewer: Option<i64>,
    videos: &[i64],
    authors: &[i64],
) -> Result<(Vec<bool>, Vec<bool>), AppError> {
    match viewer {
        Some(u) => st.cache.viewer_flags(u, videos, authors).await,
        None => Ok((Vec::new(), Vec::new())),
    }
}

/// A list's paging parameters (our extension): `cursor` (exclusive, from the previous page's
/// `next_cursor`; 0 or missing: the first page) and `count` (1..=server.max_list, default the
/// most).
pub fn paging(st: &AppState, p: &Params) -> Result<(Option<i64>, usize), AppError> {
    let max = st.cfg.server.max_list;
    let cursor = match p.i64("cursor")? {
        None | Some(0) => None,
        Some(c) if c > 0 => Some(c),
        Some(_) => return Err(AppError::param("cursor must be positive")),
    };
    let count = match p.i64("count")? {
        None => max,
        Some(c) if c >= 1 && c as usize <= max => c as usize,
        Some(_) => return Err(AppError::param(format!("count must be 1 to {max}"))),
    };
    Ok((cursor, count))
}

/// The `next_cursor` of a page of `len` items asked as `count`, whose last item has the score
/// `last`: that score when the page is full, else 0 (no more).
pub fn next_cursor(last: Option<i64>, len: usize, count: usize) -> i64 {
    if len == count {
        last.unwrap_or(0)
    } else {
        0
    }
}

/// A success reply `{..., "video_list": [...], "next_cursor": N}` of a page of (video, score)
/// pairs asked as `count`, as seen by `viewer` (the publish and favorite lists).
pub async fn video_page_reply(
    st: &AppState,
    viewer: Option<i64>,
    page: &[(i64, i64)],
    count: usize,
) -> Result<HttpResponse, AppError> {
    let ids: Vec<i64> = page.iter().map(|(id, _)| *id).collect();
    let next_cursor = next_cursor(page.last().map(|(_, s)| *s), page.len(), count);
    let mut body = ok_open(ids.len() * 700);
    body.extend_from_slice(b",\"video_list\":");
    write_videos(&mut body, st, viewer, &ids).await?;
    body.extend_from_slice(b",\"next_cursor\":");
    body.extend_from_slice(itoa::Buffer::new().format(next_cursor).as_bytes());
    Ok(ok_close(body))
}

/// The users `ids`, in that order, with whether `viewer` follows each (None: unknown): the
/// cached entries with their pre-rendered JSON, for [`crate::near::write_user`] and
/// [`write_users`].
pub async fn user_views(
    st: &AppState,
    viewer: Option<i64>,
    ids: &[i64],
) -> Result<Vec<Option<(Arc<UserEntry>, bool)>>, AppError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = st.cache.user_entries_in_order(ids).await?;
    let follows = match viewer {
        Some(v) => st.cache.viewer_flags(v, &[], ids).await?.1,
        None => vec![false; ids.len()],
    };
    Ok(found
        .into_iter()
        .zip(follows)
        .map(|(u, f)| u.map(|u| (u, f)))
        .collect())
}

/// The users `ids` (in that order, unknown ones skipped) as seen by `viewer`, rendered as a
/// JSON array of `User` objects appended to `buf`. The page is rendered once from the
/// near-cache's entries and kept whole (`near/people.rs`); a viewer's copy has their flags
/// set in place.
pub async fn write_users(
    buf: &mut Vec<u8>,
    st: &AppState,
    viewer: Option<i64>,
    ids: &[i64],
) -> Result<(), AppError> {
    if ids.is_empty() {
        buf.extend_from_slice(b"[]");
        return Ok(());
    }
    let near = &st.cache.near;
    let page = match near.user_page(ids) {
        Some(page) => page,
        None => {
            let t = near.begin();
            let found: Vec<Arc<UserEntry>> = st
                .cache
                .user_entries_in_order(ids)
                .await?
                .into_iter()
                .flatten()
                .collect();
            near.render_user_page(ids, &found, t)
        }
    };
    let follows = match viewer {
        Some(v) => st.cache.viewer_flags(v, &[], &page.users).await?.1,
        None => Vec::new(),
    };
    page.write(buf, &follows);
    Ok(())
}

/// The users `ids` (in that order, unknown ones skipped) with `is_follow` as seen by `viewer`.
pub async fn users(st: &AppState, viewer: Option<i64>, ids: &[i64]) -> Result<Vec<User>, AppError> {
    let seen = user_views(st, viewer, ids).await?;
    Ok(seen
        .into_iter()
        .flatten()
        .map(|(u, f)| User::from_data(&u.data, f))
        .collect())
}

/// User `id` as seen by `viewer`, for the reply to a write that is already durable: from the
/// cache as usual, or, when Redis is unavailable, from the durable store (with `is_follow`
/// false), so that the client learns that its write succeeded and does not send it again.
pub async fn user_after_write(st: &AppState, viewer: i64, id: i64) -> Result<User, AppError> {
    match users(st, Some(viewer), &[id]).await {
        Ok(mut found) => found.pop().ok_or(AppError::UserNotFound),
        Err(AppError::Unavailable(e)) => {
            tracing::warn!(error = %e, user = id, "redis unavailable after a durable write; answering from the durable store");
            let u = st.store.get_user(id).await?.ok_or(AppError::UserNotFound)?;
            let c = st.store.user_counters(id).await?;
            let works = st.store.video_ids_by_author(id).await?.len() as i64;
            Ok(User::from_data(
                &UserData::from_record(&u, &c, works),
                false,
            ))
        }
        Err(e) => Err(e),
    }
}

/// What `token` proves, once its user's session still allows it (not logged out, one by one
/// or everywhere). The session comes from the near-cache when warm: no round trip.
/// While Redis is unavailable the session is read from the durable store instead (counted in
/// `douyin_session_store_fallbacks_total`), so that writes, which are durable first, go on.
pub async fn authenticate(st: &AppState, token: &str) -> Result<Token, AppError> {
    check(st, token, false).await
}

/// [`authenticate`]; for a read (`reads`), the session from the reader's bundle with their
/// lists when current, which the page's flags use next (`Cache::reader_session`).
async fn check(st: &AppState, token: &str, reads: bool) -> Result<Token, AppError> {
    let t = st.auth.verify(token)?;
    let session = if reads {
        st.cache.reader_session(t.user_id).await
    } else {
        st.cache.session(t.user_id).await
    };
    let allowed = match session {
        Ok(s) => s.allows(t.id, t.generation),
        Err(AppError::Unavailable(e)) => {
            tracing::debug!(error = %e, "session read from the durable store: redis unavailable");
            metrics::counter!("douyin_session_store_fallbacks_total").increment(1);
            let s = st.store.session(t.user_id).await?;
            s.generation == t.generation && !s.revoked.iter().any(|(id, _)| *id == t.id)
        }
        Err(e) => return Err(e),
    };
    if !allowed {
        return Err(AppError::InvalidToken);
    }
    Ok(t)
}

/// The viewer of a read: None when no token was given; an invalid token is an error.
pub async fn viewer(st: &AppState, token: Option<&str>) -> Result<Option<i64>, AppError> {
    match token {
        None => Ok(None),
        Some(t) => Ok(Some(check(st, t, true).await?.user_id)),
    }
}

/// The caller of a write: a valid token is required.
pub async fn caller(st: &AppState, token: Option<&str>) -> Result<Token, AppError> {
    authenticate(st, token.ok_or(AppError::Unauthenticated)?).await
}

/// The caller of a write: a valid token of a user that exists.
pub async fn writer(st: &AppState, token: Option<&str>) -> Result<i64, AppError> {
    let uid = caller(st, token).await?.user_id;
    // a user once seen exists (users are never deleted): no round trip
    if st.cache.near.user_exists(uid) {
        return Ok(uid);
    }
    if !st.cache.ensure_user(uid).await? {
        return Err(AppError::InvalidToken);
    }
    st.cache.near.know_user(uid);
    Ok(uid)
}

/// The user a read is about and the viewer: `user_id`, or the viewer for a missing or 0 one.
pub async fn subject(st: &AppState, p: &Params) -> Result<(i64, Option<i64>), AppError> {
    let viewer = viewer(st, p.token()).await?;
    let uid = match p.i64("user_id")? {
        Some(id) if id != 0 => id,
        _ => viewer.ok_or_else(|| {
            AppError::param("missing parameter: user_id (or a token for yourself)")
        })?,
    };
    Ok((uid, viewer))
}
