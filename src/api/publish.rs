//! Publishing: upload a video (multipart), publish by URL, and a user's publish list.

use crate::api::body::{self, BodyTiming};
use crate::api::ctx::Ctx;
use crate::api::params::{self, BodyKind, Params, MAX_FIELD_BYTES, MULTIPART_INCOMPLETE};
use crate::api::reply::ok;
use crate::api::views;
use crate::error::AppError;
use crate::state::AppState;
use crate::text;
use crate::write::videos;
use ntex::http::header;
use ntex::web::{self, HttpRequest, HttpResponse};
use serde::Serialize;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Room for the multipart framing and text fields around the file.
const MULTIPART_SLACK: u64 = 256 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    let path = super::ctx::note("/douyin/publish/action");
    cfg.service(web::resource([path.to_string(), format!("{path}/")]).to(action));
    super::ctx::route_write(cfg, "/douyin/publish/actionUrl", action_url);
    super::ctx::route(cfg, "/douyin/publish/list", list);
}

#[derive(Serialize)]
struct PublishReply {
    vid: i64,
}

/// The validated `title` (required) and description (`desc`, or the extended spec's
/// `user_creations`).
fn title_and_desc(st: &AppState, p: &Params) -> Result<(String, String), AppError> {
    let m = &st.cfg.media;
    let title = p.get("title").unwrap_or("");
    if title.trim().is_empty() {
        return Err(AppError::param("missing parameter: title"));
    }
    let title = text::check("title", title, 1, m.max_title_chars, true)?;
    let desc = p.get("desc").or(p.get("user_creations")).unwrap_or("");
    Ok((title, text::check("desc", desc, 0, m.max_desc_chars, true)?))
}

/// POST /douyin/publish/action/: multipart `data` (the file), `token`, `title`, in any order.
/// The file streams to a staging file; it is never held in memory.
async fn action(
    req: HttpRequest,
    payload: web::types::Payload,
    st: web::types::State<Arc<AppState>>,
) -> Result<HttpResponse, AppError> {
    let state: Arc<AppState> = Arc::clone(&st);
    let st: &AppState = &state;
    let limit = st.cfg.media.max_upload_bytes;
    if params::body_kind(&req) != BodyKind::Multipart {
        return Err(AppError::param(
            "publish needs a multipart/form-data body with the video in field \"data\"",
        ));
    }
    let declared: Option<u64> = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > limit + MULTIPART_SLACK) {
        // Read and discard a moderately oversized body so the client sees our answer rather
        // than a reset connection; a huge one is cut off.
        if declared.is_some_and(|n| n <= drain_cap(limit)) {
            let (mut payload, clock) =
                body::watch(payload, BodyTiming::from_limits(&st.cfg.limits));
            while let Ok(Some(Ok(_))) = clock.next(&mut payload, "").await {}
        }
        return Err(AppError::PayloadTooLarge(limit));
    }
    let mut p = Params::from_query(&req);
    let mut staged: Option<tempfile::TempPath> = None;
    let mut too_large = false;
    // A token known to be bad before the file arrives (query, header, or an earlier field):
    // the file is then read and discarded, never written to disk.
    let mut bad_token = p.token().is_some_and(|t| st.auth.verify(t).is_err());
    let (payload, clock) = body::watch(payload, BodyTiming::from_limits(&st.cfg.limits));
    let mut mp = ntex_multipart::Multipart::new(req.headers(), payload);
    let mut fields = 0;
    let mut slot = None;
    while let Some(field) = clock.next(&mut mp, MULTIPART_INCOMPLETE).await? {
        let mut field = field.map_err(params::multipart_error)?;
        fields += 1;
        if fields > st.cfg.limits.multipart_max_fields {
            return Err(AppError::param(format!(
                "too many multipart fields: at most {}",
                st.cfg.limits.multipart_max_fields
            )));
        }
        let name = field.name().unwrap_or("").to_string();
        if name == "data" {
            if staged.is_some() {
                return Err(AppError::param("only one file (field \"data\") per upload"));
            }
            // a place among the uploads in progress, sized by what the client declared
            slot = Some(st.staging.admit(declared.unwrap_or(limit).min(limit))?);
            let tmp = tempfile::Builder::new()
                .prefix("upload-")
                .tempfile_in(st.staging.dir())
                .map_err(|e| AppError::Unavailable(format!("staging: {e}")))?
                .into_temp_path();
            let mut f = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| AppError::Unavailable(format!("staging: {e}")))?;
            let mut size: u64 = 0;
            while let Some(chunk) = clock.next(&mut field, MULTIPART_INCOMPLETE).await? {
                let chunk = chunk.map_err(params::multipart_error)?;
                size += chunk.len() as u64;
                if size > limit || bad_token {
                    // Keep reading (and discarding) a moderately oversized body so the client
                    // gets our answer instead of a reset connection.
                    too_large |= size > limit;
                    if size > drain_cap(limit) {
                        return Err(if too_large {
                            AppError::PayloadTooLarge(limit)
                        } else {
                            AppError::InvalidToken
                        });
                    }
                    continue;
                }
                f.write_all(&chunk)
                    .await
                    .map_err(|e| AppError::Unavailable(format!("staging: {e}")))?;
            }
            f.flush()
                .await
                .map_err(|e| AppError::Unavailable(format!("staging: {e}")))?;
            if too_large {
                continue;
            }
            if bad_token {
                return Err(AppError::InvalidToken);
            }
            if size == 0 {
                return Err(AppError::InvalidMedia("the uploaded file is empty".into()));
            }
            staged = Some(tmp);
        } else {
            let value = params::read_text_field(field, MAX_FIELD_BYTES, &clock).await?;
            if name == "token" && staged.is_none() {
                bad_token = st.auth.verify(&value).is_err();
            }
            p.push(name, value);
        }
    }
    if too_large {
        return Err(AppError::PayloadTooLarge(limit));
    }
    let author = views::writer(st, p.token()).await?;
    let (title, desc) = title_and_desc(st, &p)?;
    let file = staged.ok_or_else(|| AppError::param("missing parameter: data (the video file)"))?;
    // From here on the work completes even if the client goes away.
    let owned = state.clone();
    let vid = super::ctx::complete(async move {
        // the staging place is held until the file has gone to the media store
        let _slot = slot;
        videos::publish_file(&owned, author, title, desc, &file).await
    })
    .await?;
    Ok(ok(&PublishReply { vid }))
}

/// How much of an oversized upload is read and discarded before answering.
fn drain_cap(limit: u64) -> u64 {
    limit.saturating_mul(2).min(limit + 64 * 1024 * 1024)
}

fn checked_url(what: &str, s: &str, required: bool) -> Result<String, AppError> {
    let s = s.trim();
    if s.is_empty() {
        return if required {
            Err(AppError::param(format!("missing parameter: {what}")))
        } else {
            Ok(String::new())
        };
    }
    if s.len() > 2048
        || !(s.starts_with("http://") || s.starts_with("https://"))
        || s.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(AppError::param(format!(
            "{what} must be an http(s) URL of at most 2048 characters"
        )));
    }
    Ok(s.to_string())
}

/// POST /douyin/publish/actionUrl: publish a video hosted elsewhere (extended spec).
/// Body: `url` (or `play_url`), `title`, optional `cover_url`, optional `user_creations`/`desc`.
async fn action_url(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let author = views::writer(st, p.token()).await?;
    let url = checked_url(
        "url",
        p.get("url").or(p.get("play_url")).unwrap_or(""),
        true,
    )?;
    let cover = checked_url("cover_url", p.get("cover_url").unwrap_or(""), false)?;
    let (title, desc) = title_and_desc(st, p)?;
    let id = videos::publish_url(st, author, url, cover, title, desc).await?;
    Ok(ok(&PublishReply { vid: id }))
}

/// GET /douyin/publish/list/: a user's videos, newest first (at most 1000).
async fn list(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let (uid, viewer) = views::subject(st, p).await?;
    let (cursor, count) = views::paging(st, p)?;
    let page = st
        .cache
        .user_videos_page(uid, cursor, count)
        .await?
        .ok_or(AppError::UserNotFound)?;
    views::video_page_reply(st, viewer, &page, count).await
}
