//! Serving media: `/static/...` with HTTP Range (206, see `media/range.rs`) so players can seek,
//! and `/play/<id>` for videos hosted elsewhere. Both count plays: the distinct viewers of a
//! video (the user when a valid token comes along, else the client address), when the file is
//! fetched from its start. With media in S3, `/static/` counts the same way and answers with a
//! redirect to the object (a fresh presigned URL, or the public base URL): the bytes, ranged
//! reads included, come from the bucket, and only the player's first request passes here.

use crate::api::ctx::note;
use crate::api::params::Params;
use crate::error::AppError;
use crate::media::{self, range, range::RangeAnswer};
use crate::state::AppState;
use futures_util::TryStreamExt;
use ntex::http::body::SizedStream;
use ntex::http::{header, Method};
use ntex::util::Bytes;
use ntex::web::{self, HttpRequest, HttpResponse};
use std::sync::Arc;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(note("/static/{dir}/{file}")).to(serve_static));
    cfg.service(web::resource(note("/play/{id}")).to(play));
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain")
        .body("not found")
}

/// Who is watching: `u:<id>` for a valid token, else `ip:<address>`.
fn viewer(st: &AppState, req: &HttpRequest) -> String {
    let p = Params::from_query(req);
    if let Some(uid) = p
        .token()
        .and_then(|t| st.auth.verify(t).ok())
        .map(|t| t.user_id)
    {
        return format!("u:{uid}");
    }
    match super::ctx::client_ip(st, req) {
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".into(),
    }
}

async fn count_play(st: &AppState, req: &HttpRequest, video_id: i64) {
    if let Err(e) = crate::write::videos::record_play(st, video_id, &viewer(st, req)).await {
        tracing::warn!(error = %e, video = video_id, "play not counted");
    }
}

/// Whether a request for a video's file starts at its beginning (a new play, not a seek).
fn from_start(answer: &RangeAnswer) -> bool {
    match answer {
        RangeAnswer::Full => true,
        RangeAnswer::Partial { start, .. } => *start == 0,
        RangeAnswer::Unsatisfiable => false,
    }
}

async fn serve_static(
    req: HttpRequest,
    st: web::types::State<Arc<AppState>>,
) -> Result<HttpResponse, AppError> {
    let dir = req.match_info().get("dir").unwrap_or("").to_string();
    let file = req.match_info().get("file").unwrap_or("").to_string();
    let key = format!("{dir}/{file}");
    if !media::valid_key(&key) {
        return Ok(not_found());
    }
    match st.media.local_path(&key) {
        Some(path) => Ok(serve_file(&st, &req, &dir, &key, &path).await),
        None => serve_remote(&st, &req, &dir, &key).await,
    }
}

/// An object in a remote store: counted like a local file, then a redirect to it (HEAD is
/// answered here, since a presigned GET URL does not sign a HEAD).
async fn serve_remote(
    st: &AppState,
    req: &HttpRequest,
    dir: &str,
    key: &str,
) -> Result<HttpResponse, AppError> {
    // only the objects of recorded videos: this is not a signing service for the bucket
    let Some(id) = media::key_id(key) else {
        return Ok(not_found());
    };
    match st.cache.video(id).await? {
        Some(v) if v.play == key || v.cover == key => {}
        _ => return Ok(not_found()),
    }
    if req.method() == Method::HEAD {
        let Some(size) = st.media.size(key).await? else {
            return Ok(not_found());
        };
        return Ok(HttpResponse::Ok()
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CONTENT_TYPE, media::content_type(key))
            .body(SizedStream::new(
                size,
                Box::pin(futures_util::stream::empty::<
                    Result<Bytes, std::rc::Rc<dyn std::error::Error>>,
                >()),
            )));
    }
    if dir == "videos" && req.method() == Method::GET {
        let range = req
            .headers()
            .get(header::RANGE)
            .map(|v| v.to_str().unwrap_or(""));
        // the size is not known here: a range from 0 starts a play, whatever its end
        if from_start(&range::parse(range, u64::MAX)) {
            count_play(st, req, id).await;
        }
    }
    let Some(url) = st.media.fetch_url(key).await? else {
        return Ok(not_found());
    };
    Ok(HttpResponse::Found()
        .header(header::LOCATION, url)
        // a presigned URL expires, and every viewer must come here to be counted
        .header(header::CACHE_CONTROL, "no-store")
        .finish())
}

async fn serve_file(
    st: &AppState,
    req: &HttpRequest,
    dir: &str,
    key: &str,
    path: &std::path::Path,
) -> HttpResponse {
    let Ok(f) = tokio::fs::File::open(&path).await else {
        return not_found();
    };
    let size = match f.metadata().await {
        Ok(m) if m.is_file() => m.len(),
        _ => return not_found(),
    };
    let header = req
        .headers()
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap_or(""));
    let answer = range::parse(header, size);
    if dir == "videos" && req.method() == Method::GET && from_start(&answer) {
        if let Some(id) = media::key_id(key) {
            count_play(st, req, id).await;
        }
    }
    let (mut resp, start, len) = match answer {
        RangeAnswer::Full => (HttpResponse::Ok(), 0, size),
        RangeAnswer::Partial { start, len } => {
            let mut r = HttpResponse::PartialContent();
            r.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{size}", start + len - 1),
            );
            (r, start, len)
        }
        RangeAnswer::Unsatisfiable => {
            return HttpResponse::RangeNotSatisfiable()
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .header(header::ACCEPT_RANGES, "bytes")
                .finish();
        }
    };
    resp.header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, media::content_type(key))
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable");
    let chunks = file_chunks(f, start, len)
        .map_err(|e| -> std::rc::Rc<dyn std::error::Error> { std::rc::Rc::new(e) });
    resp.body(SizedStream::new(len, Box::pin(chunks)))
}

/// `len` bytes of `f` from `start`, in chunks of at most 64 KiB.
fn file_chunks(
    f: tokio::fs::File,
    start: u64,
    len: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    futures_util::stream::try_unfold((f, start, len), |(mut f, pos, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        if pos > 0 {
            f.seek(std::io::SeekFrom::Start(pos)).await?;
        }
        let mut buf = vec![0u8; left.min(64 * 1024) as usize];
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "media file shrank while it was being sent",
            ));
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), (f, 0, left - n as u64))))
    })
}

async fn play(
    req: HttpRequest,
    st: web::types::State<Arc<AppState>>,
) -> Result<HttpResponse, AppError> {
    let Some(id) = req
        .match_info()
        .get("id")
        .and_then(|s| s.parse::<i64>().ok())
    else {
        return Ok(not_found());
    };
    let Some(v) = st.cache.video(id).await? else {
        return Ok(not_found());
    };
    count_play(&st, &req, id).await;
    let target = if v.play.starts_with("http://") || v.play.starts_with("https://") {
        v.play.clone()
    } else {
        format!("{}/static/{}", st.urls.base, v.play)
    };
    Ok(HttpResponse::Found()
        .header(header::LOCATION, target)
        .finish())
}
