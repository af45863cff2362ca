//! HTTP wiring: `build` (open the stores, connect Redis, replay the outbox) and `run` (the ntex
//! server with the route table of `api/`, the outbox replayer, graceful shutdown), the pair that
//! `main` and the tests share.

use crate::api::middleware::RequestLog;
use crate::auth::Auth;
use crate::cache::Cache;
use crate::config::Config;
use crate::ids::IdGenerator;
use crate::media::staging::Staging;
use crate::model::Urls;
use crate::near::NearCache;
use crate::state::AppState;
use crate::store::{cql::CqlStore, embedded::EmbeddedStore, Store};
use crate::write::outbox;
use ntex::web;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A built application, ready to [`run`].
pub struct Application {
    pub state: Arc<AppState>,
}

/// Opens the durable store and media directory, connects to Redis, loads the scripts and
/// replays any outbox entries left by a previous run.
pub async fn build(cfg: Config) -> Result<Application, String> {
    cfg.validate()?;
    // first: the stores register their metrics as they open
    crate::ops::metrics::install();
    let data_dir = cfg.store.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("data dir {}: {e}", data_dir.display()))?;
    let store: Arc<dyn Store> = match cfg.store.backend.as_str() {
        "scylla" => Arc::new(CqlStore::connect(&cfg.store.cql).await?),
        _ => Arc::new(
            EmbeddedStore::open_with(&data_dir.join("store"), &cfg.store)
                .map_err(|e| format!("durable store: {e}"))?,
        ),
    };
    let media_dir = cfg.media_dir();
    let media = crate::media::open(&cfg.media, &media_dir).await?;
    let tmp_dir = media_dir.join("tmp");
    let staging = Staging::open(
        tmp_dir.clone(),
        cfg.limits.max_concurrent_uploads,
        cfg.limits.max_staging_bytes,
    )
    .map_err(|e| format!("{}: {e}", tmp_dir.display()))?;
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
    let mut urls = Urls::new(base);
    if cfg.media.backend == "s3" && !cfg.media.s3.public_base_url.is_empty() {
        urls.covers = cfg
            .media
            .s3
            .public_base_url
            .trim_end_matches('/')
            .to_string();
    }
    let (near_bound, how) = crate::near::budget::resolve(cfg.near.max_bytes);
    if cfg.near.enabled {
        tracing::info!(
            bytes = near_bound,
            "near-cache bound {} MiB ({how})",
            near_bound >> 20
        );
    }
    let near = Arc::new(NearCache::new(
        cfg.near.enabled,
        near_bound,
        Duration::from_millis(cfg.near.max_age_ms),
        cfg.near.feed_ids,
        urls.clone(),
    ));
    let cache = Cache::connect(
        &redis_url,
        &cfg.redis,
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
        staging: Arc::new(staging),
        metrics_token: cfg.ops.metrics_token()?,
        in_flight: Arc::new(AtomicUsize::new(0)),
        draining: Arc::new(AtomicBool::new(false)),
        cfg,
    });
    outbox::replay(&state, Duration::ZERO)
        .await
        .map_err(|e| format!("outbox replay: {e}"))?;
    Ok(Application { state })
}

/// How long no request may be in flight before a draining server stops: a request already on
/// its way over a kept-alive connection is answered, not cut off.
const QUIET: Duration = Duration::from_millis(200);

/// Serves `app` on `listener` until `shutdown` resolves (see [`shutdown_signal`]), then drains:
/// new connections are refused at once (the listening socket is shut, so none waits in the
/// backlog to be reset later), every response says `Connection: close` and /readyz 503, and
/// the server stops once no request has been in flight for a moment (at most
/// `server.shutdown_timeout_secs`); then pending durable writes are flushed. Must run inside an
/// ntex system.
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
                draining: factory_state.draining.clone(),
            })
            .configure(crate::api::routes)
            .default_service(web::to(crate::api::not_found))
    })
    .workers(workers)
    .maxconn(st.cfg.limits.max_connections_per_worker)
    .disable_signals()
    .shutdown_timeout(ntex::time::Seconds(st.cfg.server.shutdown_timeout_secs))
    .listen(listener.try_clone()?)?
    .run();

    // Replays outbox entries that a failed Redis update left behind.
    let replayer_state = st.clone();
    let replayer = ntex::rt::spawn(async move {
        loop {
            ntex::time::sleep(Duration::from_secs(5)).await;
            if let Err(e) = outbox::replay(&replayer_state, Duration::from_secs(5)).await {
                tracing::warn!(error = %e, "outbox replay failed; will retry");
            }
        }
    });

    let reaper = ntex::rt::spawn(crate::media::reaper::run(st.clone()));

    let srv = server.clone();
    let drain_state = st.clone();
    let grace = Duration::from_secs(st.cfg.server.shutdown_timeout_secs.into());
    ntex::rt::spawn(async move {
        shutdown.await;
        let st = drain_state;
        tracing::info!(
            in_flight = st.in_flight.load(Ordering::Acquire),
            "shutting down: refusing new connections, answering what has arrived"
        );
        // Stop accepting, give the acceptor thread a moment to take that, then shut the socket
        // (its hang-up still wakes the acceptor: `telemetry::listener_shut`) so that new
        // connections are refused instead of waiting in the backlog to be reset. Only then
        // tell clients to close: those that reconnect are refused at once.
        srv.pause().await;
        ntex::time::sleep(Duration::from_millis(5)).await;
        crate::telemetry::listener_shut();
        if let Err(e) = socket2::SockRef::from(&listener).shutdown(std::net::Shutdown::Both) {
            tracing::warn!(error = %e, "could not shut the listening socket; new connections wait in the backlog");
        }
        st.draining.store(true, Ordering::Release);
        let deadline = Instant::now() + grace;
        let mut quiet_since: Option<Instant> = None;
        while Instant::now() < deadline {
            if st.in_flight.load(Ordering::Acquire) > 0 {
                quiet_since = None;
            } else if quiet_since.get_or_insert_with(Instant::now).elapsed() >= QUIET {
                break;
            }
            ntex::time::sleep(Duration::from_millis(10)).await;
        }
        // nothing in flight: stop now rather than wait out idle kept-alive connections
        srv.stop(false).await;
    });
    if let Err(e) = server.await {
        tracing::error!(error = ?e, "server stopped with an error");
    }
    replayer.cancel();
    reaper.cancel();
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
