//! Serving media: `/static/...` with HTTP Range (206) so players can seek, and `/play/<id>` for
//! videos hosted elsewhere. Both count plays: the distinct viewers of a video (the user when a
//! valid token comes along, else the client address), when the file is fetched from its start.

use crate::api::params::Params;
use crate::error::AppError;
use crate::state::AppState;
use ntex::http::{header, Method};
use ntex::web::{self, HttpRequest, HttpResponse};
use std::sync::Arc;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/static/{dir}/{file}").to(serve_static));
    cfg.service(web::resource("/play/{id}").to(play));
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain")
        .body("not found")
}

/// Who is watching: `u:<id>` for a valid token, else `ip:<address>`.
fn viewer(st: &AppState, req: &HttpRequest) -> String {
    let p = Params::from_query(req);
    if let Some(uid) = p.token().and_then(|t| st.auth.verify(t).ok()) {
        return format!("u:{uid}");
    }
    match req.peer_addr() {
        Some(a) => format!("ip:{}", a.ip()),
        None => "ip:unknown".into(),
    }
}

/// A fetch from the start of the file (no Range, or a range starting at byte 0).
fn from_start(req: &HttpRequest) -> bool {
    match req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(r) => r
            .trim()
            .strip_prefix("bytes=")
            .is_some_and(|s| s.trim_start().starts_with("0-")),
    }
}

async fn count_play(st: &AppState, req: &HttpRequest, video_id: i64) {
    if let Err(e) = crate::write::videos::record_play(st, video_id, &viewer(st, req)).await {
        tracing::warn!(error = %e, video = video_id, "play not counted");
    }
}

async fn serve_static(req: HttpRequest, st: web::types::State<Arc<AppState>>) -> HttpResponse {
    let dir = req.match_info().get("dir").unwrap_or("").to_string();
    let file = req.match_info().get("file").unwrap_or("").to_string();
    let key = format!("{dir}/{file}");
    let Some(path) = st.media.local_path(&key) else {
        return not_found();
    };
    let named = match ntex_files::NamedFile::open(&path) {
        Ok(f) => f,
        Err(_) => return not_found(),
    };
    if dir == "videos" && req.method() == Method::GET && from_start(&req) {
        if let Some(id) = file.split('.').next().and_then(|s| s.parse::<i64>().ok()) {
            count_play(&st, &req, id).await;
        }
    }
    let mut resp = named.into_response(&req);
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    resp
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
