//! Prometheus metrics: the recorder (process-wide), the route labels, and `/metrics`.
//!
//! Per-request figures (counts by route and outcome, latency histograms, error codes) are
//! recorded as they happen by the request middleware; the durable store records its group
//! commit sizes and fsync times. Figures that already live in atomics (near-cache hits and
//! misses, Redis round trips, reloads, durable writes) are copied in when `/metrics` is scraped,
//! so the hot path pays nothing for them.

use crate::state::AppState;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use ntex::http::header;
use ntex::web::{self, HttpRequest, HttpResponse};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: [f64; 18] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 7.5, 10.0,
];
/// Writes per group commit.
const BATCH_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Installs the process-wide recorder once (several apps in one test process share it).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let b = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("seconds".into()), &LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("douyin_store_group_commit_writes".into()),
                        &BATCH_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("douyin_store_counter_round_changes".into()),
                        &BATCH_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("douyin_cache_apply_batch_changes".into()),
                        &BATCH_BUCKETS,
                    )
                });
            match b.and_then(|b| b.install_recorder()) {
                Ok(h) => {
                    spawn_upkeep(h.clone());
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics is empty");
                    None
                }
            }
        })
        .as_ref()
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every [`UPKEEP_EVERY`]. The recorder
/// keeps every sample (8 bytes each) until an upkeep: done only at scrapes, a server that is
/// scraped rarely, or never, grows by 8 bytes a request (a heap profile of the bench showed
/// 13 MB of samples within one 10 s scenario).
fn spawn_upkeep(h: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            h.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; samples wait for scrapes");
    }
}

/// Every route of the API, as its metrics label.
const ROUTES: [&str; 24] = [
    "/douyin/feed",
    "/douyin/user",
    "/douyin/user/register",
    "/douyin/user/login",
    "/douyin/user/logout",
    "/douyin/publish/action",
    "/douyin/publish/actionUrl",
    "/douyin/publish/list",
    "/douyin/favorite/action",
    "/douyin/favorite/list",
    "/douyin/comment/action",
    "/douyin/comment/list",
    "/douyin/relation/action",
    "/douyin/relation/follow/list",
    "/douyin/relation/follower/list",
    "/douyin/relation/friend/list",
    "/douyin/message/action",
    "/douyin/message/chat",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/static",
    "/play",
];

/// The route label of a request path: the API route it names, `/static` or `/play` for media,
/// `other` for anything else (so that labels stay a small fixed set).
pub fn route_label(path: &str) -> &'static str {
    let p = path.strip_suffix('/').unwrap_or(path);
    if let Some(r) = ROUTES.iter().find(|r| **r == p) {
        return r;
    }
    if p.starts_with("/static/") {
        "/static"
    } else if p.starts_with("/play/") {
        "/play"
    } else {
        "other"
    }
}

/// One route's per-request metrics, registered once: `counter!` with labels builds its key and
/// looks it up in the registry on every call, twice per request.
struct RouteMetrics {
    ok: metrics::Counter,
    error: metrics::Counter,
    http_error: metrics::Counter,
    latency: metrics::Histogram,
}

/// The handles of every route label (created after the recorder is installed: `build` installs
/// it before any request is served).
fn route_metrics(route: &'static str) -> &'static RouteMetrics {
    static ALL: OnceLock<Vec<(&'static str, RouteMetrics)>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        ROUTES
            .iter()
            .copied()
            .chain(["other"])
            .map(|r| {
                let counter = |outcome: &'static str| {
                    metrics::counter!("douyin_http_requests_total", "route" => r, "outcome" => outcome)
                };
                (
                    r,
                    RouteMetrics {
                        ok: counter("ok"),
                        error: counter("error"),
                        http_error: counter("http_error"),
                        latency: metrics::histogram!("douyin_http_request_duration_seconds", "route" => r),
                    },
                )
            })
            .collect()
    });
    all.iter()
        .find(|(r, _)| *r == route)
        .map(|(_, m)| m)
        .unwrap_or(&all[all.len() - 1].1)
}

/// Records one request: its route, the envelope's status code (None for non-API responses)
/// and its latency.
pub fn record_request(route: &'static str, http: u16, code: Option<i32>, secs: f64) {
    let m = route_metrics(route);
    match code {
        Some(0) => &m.ok,
        Some(_) => &m.error,
        None if http < 400 => &m.ok,
        None => &m.http_error,
    }
    .increment(1);
    m.latency.record(secs);
    if let Some(c) = code.filter(|c| *c != 0) {
        metrics::counter!("douyin_api_errors_total", "route" => route, "status_code" => c.to_string())
            .increment(1);
    }
}

/// Whether `req` may read `/metrics`: with a configured token, only a request bearing it;
/// without one, only a loopback client.
fn allowed(st: &AppState, req: &HttpRequest) -> bool {
    match &st.metrics_token {
        Some(want) => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|got| constant_time_eq(got.trim().as_bytes(), want.as_bytes())),
        None => req.peer_addr().is_some_and(|a| a.ip().is_loopback()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /metrics`: the Prometheus text format, for allowed scrapers (see [`allowed`]).
pub async fn render(req: HttpRequest, st: web::types::State<Arc<AppState>>) -> HttpResponse {
    if !allowed(&st, &req) {
        return HttpResponse::Forbidden()
            .content_type("text/plain")
            .body("forbidden: /metrics needs the metrics token (ops.metrics_token_file)");
    }
    let Some(h) = install() else {
        return HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body("");
    };
    let near = &st.cache.near;
    let (entries, bytes) = near.size();
    let store = st.store.stats();
    let c = &st.cache.stats;
    metrics::counter!("douyin_near_cache_hits_total")
        .absolute(near.stats.hits.load(Ordering::Relaxed));
    metrics::counter!("douyin_near_cache_misses_total")
        .absolute(near.stats.misses.load(Ordering::Relaxed));
    metrics::counter!("douyin_near_cache_page_hits_total")
        .absolute(near.stats.pages.load(Ordering::Relaxed));
    metrics::counter!("douyin_near_cache_invalidations_total")
        .absolute(near.stats.invalidations.load(Ordering::Relaxed));
    metrics::gauge!("douyin_near_cache_entries").set(entries as f64);
    metrics::gauge!("douyin_near_cache_bytes").set(bytes as f64);
    metrics::gauge!("douyin_near_cache_max_bytes").set(near.bound() as f64);
    metrics::gauge!("douyin_near_cache_tracking").set(if near.tracking.load(Ordering::Relaxed) {
        1.0
    } else {
        0.0
    });
    metrics::gauge!("douyin_near_cache_channels").set(near.channels.load(Ordering::Relaxed) as f64);
    metrics::counter!("douyin_redis_round_trips_total")
        .absolute(c.round_trips.load(Ordering::Relaxed));
    metrics::counter!("douyin_cache_reloads_total").absolute(c.reloads.load(Ordering::Relaxed));
    metrics::counter!("douyin_cache_reload_chunks_total")
        .absolute(c.staged_chunks.load(Ordering::Relaxed));
    metrics::counter!("douyin_store_durable_writes_total").absolute(store.durable_writes);
    metrics::counter!("douyin_store_fsyncs_total").absolute(store.fsyncs);
    metrics::gauge!("douyin_store_memory_bytes").set(store.memory_bytes as f64);
    allocator_gauges();
    metrics::gauge!("douyin_redis_up").set(if st.cache.health.is_up() { 1.0 } else { 0.0 });
    // exported from the start (at 0) so that dashboards and alerts find it
    metrics::counter!("douyin_session_store_fallbacks_total").increment(0);
    metrics::counter!("douyin_auth_password_checks_total")
        .absolute(st.auth.password_checks.load(Ordering::Relaxed));
    metrics::gauge!("douyin_requests_in_flight").set(st.in_flight.load(Ordering::Relaxed) as f64);
    h.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(h.render())
}

/// jemalloc's own account of the process's heap, so that RSS can be split into what the
/// server holds (`allocated`), the pages those allocations sit on (`active`), what is mapped
/// and touched (`resident`, close to RSS), its bookkeeping (`metadata`) and what it keeps
/// mapped after a free (`retained`, not in RSS).
fn allocator_gauges() {
    use tikv_jemalloc_ctl::{epoch, stats};
    // the figures are a snapshot taken when the epoch advances
    if epoch::advance().is_err() {
        return;
    }
    let read = [
        ("allocated", stats::allocated::read()),
        ("active", stats::active::read()),
        ("resident", stats::resident::read()),
        ("metadata", stats::metadata::read()),
        ("retained", stats::retained::read()),
    ];
    for (kind, bytes) in read {
        if let Ok(bytes) = bytes {
            metrics::gauge!("douyin_allocator_bytes", "kind" => kind).set(bytes as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn route_labels_are_a_fixed_set() {
        assert_eq!(route_label("/douyin/feed/"), "/douyin/feed");
        assert_eq!(route_label("/douyin/feed"), "/douyin/feed");
        assert_eq!(route_label("/static/videos/1.mp4"), "/static");
        assert_eq!(route_label("/douyin/nope/12345"), "other");
        assert_eq!(route_label("/wp-admin.php"), "other");
    }
}
