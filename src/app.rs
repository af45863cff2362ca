//! The application: shared state, the route table, the request-log/CORS middleware, and the
//! `build`/`run` pair that `main` and the tests share.

use crate::auth::Auth;
use crate::cache::Cache;
use crate::config::Config;
use crate::error::{AppError, EnvelopeCode};
use crate::ids::IdGenerator;
use crate::media::{LocalMedia, MediaStore};
use crate::model::Urls;
use crate::near::NearCache;
use crate::params::Params;
use crate::store::{embedded::EmbeddedStore, OutboxEntry, Store};
use ntex::http::header::{self, HeaderValue};
use ntex::service::{Middleware, Service, ServiceCtx};
use ntex::web::{self, HttpRequest, HttpResponse, WebRequest, WebResponse};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a handler needs, shared by all workers.
pub struct AppState {
    /// The configuration the app was built with.
    pub cfg: Config,
    /// Builds absolute play/cover URLs.
    pub urls: Urls,
    /// The durable store (system of record).
    pub store: Arc<dyn Store>,
    /// Redis (primary serving store) with reload-on-miss from `store`.
    pub cache: Arc<Cache>,
    /// Where media files live.
    pub media: Arc<dyn MediaStore>,
    /// Tokens and password hashes.
    pub auth: Arc<Auth>,
    /// Snowflake IDs for this node.
    pub ids: Arc<IdGenerator>,
    /// Upload staging directory (same filesystem as local media).
    pub tmp_dir: PathBuf,
    /// Requests being handled right now; shutdown waits for it to reach zero.
    pub in_flight: Arc<AtomicUsize>,
}

impl AppState {
    /// Runs the Redis side of a durable write, then marks its outbox entry done. On failure the
    /// entry stays and the replayer applies it later; the write itself is already durable, so
    /// the request still succeeds.
    pub async fn apply_outbox(
        &self,
        entry: &OutboxEntry,
        redis_side: impl Future<Output = Result<(), AppError>>,
    ) {
        match redis_side.await {
            Ok(()) => {
                if let Err(e) = self.store.outbox_done(entry.id).await {
                    tracing::warn!(error = %e, "could not clear an outbox entry; it will be replayed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, op = ?entry.op, "redis update failed; queued for replay")
            }
        }
    }

    /// Replays outbox entries older than `min_age` (all of them at start-up).
    pub async fn replay_outbox(&self, min_age: Duration) -> Result<usize, AppError> {
        let cutoff = crate::ids::now_ms() - min_age.as_millis() as i64;
        let mut n = 0;
        for e in self.store.pending_outbox(1000).await? {
            if crate::ids::time_ms(e.id) > cutoff {
                break;
            }
            self.cache.replay(&e.op).await?;
            self.store.outbox_done(e.id).await?;
            n += 1;
        }
        if n > 0 {
            tracing::info!(entries = n, "replayed outbox entries into redis");
        }
        Ok(n)
    }
}

/// A built application, ready to [`run`].
pub struct Application {
    pub state: Arc<AppState>,
}

/// Opens the durable store and media directory, connects to Redis, loads the scripts and
/// replays any outbox entries left by a previous run.
pub async fn build(cfg: Config) -> Result<Application, String> {
    cfg.validate()?;
    let data_dir = cfg.store.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("data dir {}: {e}", data_dir.display()))?;
    let store: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(&data_dir.join("store")).map_err(|e| format!("durable store: {e}"))?,
    );
    let media_dir = cfg.media_dir();
    let media: Arc<dyn MediaStore> = Arc::new(
        LocalMedia::new(media_dir.clone())
            .map_err(|e| format!("media dir {}: {e}", media_dir.display()))?,
    );
    let tmp_dir = media_dir.join("tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(|e| format!("{}: {e}", tmp_dir.display()))?;
    let secret = crate::auth::load_secret(&cfg.auth, &data_dir)?;
    let auth = Arc::new(Auth::new(&secret, cfg.auth.clone())?);
    let ids = Arc::new(IdGenerator::new(cfg.ids.node_id)?);
    ids.observe(store.max_id().await.map_err(|e| e.to_string())?);
    let redis_url = cfg.redis_url()?;
    let base = if cfg.server.public_url.is_empty() {
        format!("http://{}", cfg.server.bind.replace("0.0.0.0", "127.0.0.1"))
    } else {
        cfg.server.public_url.trim_end_matches('/').to_string()
    };
    let urls = Urls { base };
    crate::metrics::install();
    let near = Arc::new(NearCache::new(
        cfg.near.enabled,
        cfg.near.max_bytes,
        Duration::from_millis(cfg.near.max_age_ms),
        cfg.near.feed_ids,
        urls.clone(),
    ));
    let cache = Cache::connect(
        &redis_url,
        &cfg.redis.key_prefix,
        cfg.redis.pool_size,
        Duration::from_millis(cfg.redis.timeout_ms),
        store.clone(),
        near,
        cfg.near.tracking,
    )
    .await
    .map_err(|e| e.to_string())?;
    let state = Arc::new(AppState {
        urls,
        store,
        cache: Arc::new(cache),
        media,
        auth,
        ids,
        tmp_dir,
        in_flight: Arc::new(AtomicUsize::new(0)),
        cfg,
    });
    state
        .replay_outbox(Duration::ZERO)
        .await
        .map_err(|e| format!("outbox replay: {e}"))?;
    Ok(Application { state })
}

/// Serves `app` on `listener` until `shutdown` resolves (see [`shutdown_signal`]): in-flight
/// requests finish, then pending durable writes are flushed. Must run inside an ntex system.
pub async fn run(
    app: Application,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let st = app.state.clone();
    let workers = match st.cfg.server.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        n => n,
    };
    let factory_state = st.clone();
    let server = web::HttpServer::new(async move || {
        // runs on each worker's own runtime
        factory_state.cache.attach_worker().await;
        web::App::new()
            .state(factory_state.clone())
            .middleware(RequestLog {
                cors_origin: factory_state.cfg.server.cors_origin.clone(),
                in_flight: factory_state.in_flight.clone(),
            })
            .configure(routes)
            .default_service(web::to(not_found))
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(ntex::time::Seconds(st.cfg.server.shutdown_timeout_secs))
    .listen(listener)?
    .run();

    // Replays outbox entries that a failed Redis update left behind.
    let replayer_state = st.clone();
    let replayer = ntex::rt::spawn(async move {
        loop {
            ntex::time::sleep(Duration::from_secs(5)).await;
            if let Err(e) = replayer_state.replay_outbox(Duration::from_secs(5)).await {
                tracing::warn!(error = %e, "outbox replay failed; will retry");
            }
        }
    });

    let srv = server.clone();
    let in_flight = st.in_flight.clone();
    let grace = Duration::from_secs(st.cfg.server.shutdown_timeout_secs.into());
    ntex::rt::spawn(async move {
        shutdown.await;
        tracing::info!(
            in_flight = in_flight.load(Ordering::Acquire),
            "shutting down: no new connections, finishing in-flight requests"
        );
        srv.pause().await;
        let deadline = Instant::now() + grace;
        while in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            ntex::time::sleep(Duration::from_millis(10)).await;
        }
        srv.stop(true).await;
    });
    if let Err(e) = server.await {
        tracing::error!(error = ?e, "server stopped with an error");
    }
    replayer.cancel();
    if let Err(e) = st.store.flush().await {
        tracing::error!(error = %e, "final flush of the durable store failed");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The route table: every API area registers its own routes here.
fn routes(cfg: &mut web::ServiceConfig) {
    crate::user::routes(cfg);
    crate::feed::routes(cfg);
    crate::publish::routes(cfg);
    crate::favorite::routes(cfg);
    crate::comment::routes(cfg);
    crate::relation::routes(cfg);
    crate::message::routes(cfg);
    crate::media::serve::routes(cfg);
    cfg.service(
        web::resource("/healthz")
            .to(async || HttpResponse::Ok().content_type("text/plain").body("ok")),
    );
    cfg.service(web::resource("/readyz").to(readyz));
    cfg.service(web::resource("/metrics").to(crate::metrics::render));
}

/// Registers `handler` at `path` and `path/`, for any method.
pub fn route<F, R>(cfg: &mut web::ServiceConfig, path: &str, handler: F)
where
    F: AsyncFn(Ctx) -> R + Clone + 'static,
    R: web::Responder + 'static,
{
    cfg.service(web::resource([path.to_string(), format!("{path}/")]).to(handler));
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
    ntex::rt::spawn(work)
        .await
        .unwrap_or_else(|_| Err(AppError::Internal("request task failed".into())))
}

async fn readyz(st: web::types::State<Arc<AppState>>) -> HttpResponse {
    let redis = st.cache.ping().await;
    let store = st.store.max_id().await.is_ok();
    let body = format!("{{\"redis\":{redis},\"store\":{store}}}");
    if redis && store {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(body)
    }
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    if req.path().starts_with("/douyin") {
        Err(AppError::RouteNotFound)
    } else {
        Ok(HttpResponse::NotFound()
            .content_type("text/plain")
            .body("not found"))
    }
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
        )
        .await?;
        Ok(Ctx {
            st,
            params,
            req: req.clone(),
        })
    }
}

/// Logs one line per request (method, path, HTTP status, envelope status_code, latency), adds
/// CORS headers, and answers CORS preflights.
pub struct RequestLog {
    cors_origin: String,
    in_flight: Arc<AtomicUsize>,
}

impl<S, C> Middleware<S, C> for RequestLog {
    type Service = RequestLogService<S>;

    fn create(&self, service: S, _: C) -> Self::Service {
        RequestLogService {
            service,
            cors_origin: HeaderValue::from_str(&self.cors_origin)
                .unwrap_or(HeaderValue::from_static("*")),
            in_flight: self.in_flight.clone(),
        }
    }
}

pub struct RequestLogService<S> {
    service: S,
    cors_origin: HeaderValue,
    in_flight: Arc<AtomicUsize>,
}

/// Counts a request as in flight until dropped (also when its future is cancelled).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(c: &Arc<AtomicUsize>) -> Self {
        c.fetch_add(1, Ordering::AcqRel);
        InFlight(c.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, E> Service<WebRequest<E>> for RequestLogService<S>
where
    S: Service<WebRequest<E>, Response = WebResponse>,
{
    type Response = WebResponse;
    type Error = S::Error;

    async fn ready(&self, ctx: ServiceCtx<'_, Self>) -> Result<(), Self::Error> {
        ctx.ready(&self.service).await
    }

    async fn call(
        &self,
        req: WebRequest<E>,
        ctx: ServiceCtx<'_, Self>,
    ) -> Result<WebResponse, Self::Error> {
        let _in_flight = InFlight::new(&self.in_flight);
        let start = Instant::now();
        let method = req.method().clone();
        let path = req.path().to_string();
        let mut res = if method == ntex::http::Method::OPTIONS {
            req.into_response(HttpResponse::NoContent().finish())
        } else {
            ctx.call(&self.service, req).await?
        };
        let h = res.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.cors_origin.clone(),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, HEAD, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Content-Type, Range"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Content-Range, Content-Length, Accept-Ranges"),
        );
        let code = res
            .response()
            .extensions()
            .get::<EnvelopeCode>()
            .map(|c| c.0);
        let elapsed = start.elapsed();
        let http = res.status().as_u16();
        crate::metrics::record_request(
            crate::metrics::route_label(&path),
            http,
            code,
            elapsed.as_secs_f64(),
        );
        tracing::info!(
            method = %method,
            path = %path,
            http,
            status_code = code,
            latency_us = elapsed.as_micros() as u64,
            "request"
        );
        Ok(res)
    }
}
