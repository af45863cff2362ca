//! The HTTP API: the route table, the health endpoints, and one file per API area (handlers
//! only: they parse parameters, call the write path or the cache, and render replies).

pub mod body;
pub mod comment;
pub mod ctx;
pub mod favorite;
pub mod feed;
pub mod media;
pub mod message;
pub mod middleware;
pub mod params;
pub mod publish;
pub mod relation;
pub mod reply;
pub mod user;
pub mod views;

use crate::api::ctx::note;
use crate::error::AppError;
use crate::state::AppState;
use ntex::web::{self, HttpRequest, HttpResponse};
use std::sync::Arc;

/// The route table: every API area registers its own routes here.
pub fn routes(cfg: &mut web::ServiceConfig) {
    user::routes(cfg);
    feed::routes(cfg);
    publish::routes(cfg);
    favorite::routes(cfg);
    comment::routes(cfg);
    relation::routes(cfg);
    message::routes(cfg);
    media::routes(cfg);
    cfg.service(
        web::resource(note("/healthz"))
            .to(async || HttpResponse::Ok().content_type("text/plain").body("ok")),
    );
    cfg.service(web::resource(note("/readyz")).to(readyz));
    cfg.service(web::resource(note("/metrics")).to(crate::ops::metrics::render));
    cfg.service(web::resource(note("/openapi.json")).to(async || {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(OPENAPI)
    }));
}

/// The OpenAPI 3.1 document of the whole API, served at `/openapi.json` (tested against the
/// route table, and fuzzed by schemathesis in CI).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn readyz(st: web::types::State<Arc<AppState>>) -> HttpResponse {
    let redis = st.cache.ping().await;
    let store = st.store.max_id().await.is_ok();
    let draining = st.draining.load(std::sync::atomic::Ordering::Acquire);
    let body = format!("{{\"redis\":{redis},\"store\":{store},\"draining\":{draining}}}");
    if redis && store && !draining {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(body)
    }
}

/// Unknown paths: the envelope under `/douyin/`, a plain 404 elsewhere.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    if req.path().starts_with("/douyin") {
        Err(AppError::RouteNotFound)
    } else {
        Ok(HttpResponse::NotFound()
            .content_type("text/plain")
            .body("not found"))
    }
}
