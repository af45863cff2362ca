//! What a handler gets ([`Ctx`]: the shared state and every parameter of the request) and how
//! the API areas register their handlers ([`route`], [`route_write`]).

use crate::api::params::Params;
use crate::error::AppError;
use crate::state::AppState;
use ntex::web::{self, HttpRequest, HttpResponse};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

/// Every path registered so far (see [`note`]).
static REGISTERED: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Records `path` as one the server serves; the OpenAPI document is checked against this list.
pub fn note(path: &str) -> &str {
    REGISTERED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path.to_string());
    path
}

/// The paths of the route table (filled when an app's routes are configured).
pub fn registered() -> Vec<String> {
    REGISTERED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

/// Registers `handler` at `path` and `path/`, for any method.
pub fn route<F, R>(cfg: &mut web::ServiceConfig, path: &str, handler: F)
where
    F: AsyncFn(Ctx) -> R + Clone + 'static,
    R: web::Responder + 'static,
{
    note(path);
    // The handler's future lives in one heap block from the start: ntex and the write path
    // move it (into its own box, into a task), and moving a future copies all of it; a
    // profile of the like scenario had 15% of the server's time in those copies.
    cfg.service(
        web::resource([path.to_string(), format!("{path}/")]).to(move |ctx: Ctx| {
            let handler = handler.clone();
            Box::pin(async move { handler(ctx).await })
        }),
    );
}

/// Registers a write `handler` like [`route`], running it as a task of its own: a client that
/// goes away mid-request cannot cancel a write between its durable commit and its Redis side.
pub fn route_write<F, Fut>(cfg: &mut web::ServiceConfig, path: &str, handler: F)
where
    F: Fn(Ctx) -> Fut + Clone + 'static,
    Fut: Future<Output = Result<HttpResponse, AppError>> + 'static,
{
    route(cfg, path, async move |ctx: Ctx| {
        complete(handler(ctx)).await
    });
}

/// Runs `work` to completion even if the caller stops waiting for it.
pub async fn complete<T: 'static>(
    work: impl Future<Output = Result<T, AppError>> + 'static,
) -> Result<T, AppError> {
    ntex::rt::spawn(Box::pin(work))
        .await
        .unwrap_or_else(|_| Err(AppError::Internal("request task failed".into())))
}

/// The client's address: the peer, or, when the peer is one of `server.trusted_proxies`, the
/// nearest address in `X-Forwarded-For` that is not a trusted proxy itself.
pub fn client_ip(st: &AppState, req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let trusted = |ip: &IpAddr| {
        st.cfg
            .server
            .trusted_proxies
            .iter()
            .any(|p| p.parse::<IpAddr>().ok().as_ref() == Some(ip))
    };
    if !trusted(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted(ip))
            .unwrap_or(peer),
    )
}

/// What an API handler gets: the state and every parameter of the request.
pub struct Ctx {
    pub st: Arc<AppState>,
    pub params: Params,
    pub req: HttpRequest,
}

impl<Err: web::ErrorRenderer> web::FromRequest<Err> for Ctx {
    type Error = AppError;

    async fn from_request(
        req: &HttpRequest,
        payload: &mut ntex::http::Payload,
    ) -> Result<Self, AppError> {
        let st = req
            .app_state::<Arc<AppState>>()
            .cloned()
            .ok_or_else(|| AppError::Internal("app state missing".into()))?;
        let params = Params::read(
            req,
            web::types::Payload(payload.take()),
            st.cfg.server.max_body_bytes,
            &st.cfg.limits,
        )
        .await?;
        Ok(Ctx {
            st,
            params,
            req: req.clone(),
        })
    }
}
