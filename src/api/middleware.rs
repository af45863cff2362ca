//! The request-log/CORS middleware: one log line and the metrics of every request, CORS headers
//! on every response (the preflight-only ones on preflights alone), answers to CORS preflights,
//! and the in-flight count that shutdown waits on.

use crate::error::EnvelopeCode;
use ntex::http::header::{self, HeaderValue};
use ntex::http::ConnectionType;
use ntex::service::{Middleware, Service, ServiceCtx};
use ntex::web::{HttpResponse, WebRequest, WebResponse};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Logs one line per request (method, path, HTTP status, envelope status_code, latency), adds
/// CORS headers, and answers CORS preflights.
pub struct RequestLog {
    /// The Access-Control-Allow-Origin value.
    pub cors_origin: String,
    /// Requests in flight (see [`crate::state::AppState::in_flight`]).
    pub in_flight: Arc<AtomicUsize>,
    /// Shutting down: every response closes its connection.
    pub draining: Arc<AtomicBool>,
}

impl<S, C> Middleware<S, C> for RequestLog {
    type Service = RequestLogService<S>;

    fn create(&self, service: S, _: C) -> Self::Service {
        RequestLogService {
            service,
            cors_origin: HeaderValue::from_str(&self.cors_origin)
                .unwrap_or(HeaderValue::from_static("*")),
            in_flight: self.in_flight.clone(),
            draining: self.draining.clone(),
        }
    }
}

pub struct RequestLogService<S> {
    service: S,
    cors_origin: HeaderValue,
    in_flight: Arc<AtomicUsize>,
    draining: Arc<AtomicBool>,
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
        let route = crate::ops::metrics::route_label(req.path());
        // the path itself only for the request log line, when its level is on
        let path = tracing::enabled!(tracing::Level::INFO).then(|| req.path().to_string());
        let preflight = method == ntex::http::Method::OPTIONS;
        let mut res = if preflight {
            req.into_response(HttpResponse::NoContent().finish())
        } else {
            ctx.call(&self.service, req).await?
        };
        if self.draining.load(Ordering::Acquire) {
            res.response_mut()
                .head_mut()
                .set_connection_type(ConnectionType::Close);
        }
        let h = res.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.cors_origin.clone(),
        );
        if preflight {
            // what a preflight asks about, and how long a browser may keep the answer
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, HEAD, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Authorization, Content-Type, Range"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
        } else if h.contains_key(header::ACCEPT_RANGES) {
            // media (every media answer, a range's included, says Accept-Ranges): let a page's
            // script read the range headers (Content-Length is safelisted)
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("Content-Range, Content-Length, Accept-Ranges"),
            );
        }
        let code = res
            .response()
            .extensions()
            .get::<EnvelopeCode>()
            .map(|c| c.0);
        let elapsed = start.elapsed();
        let http = res.status().as_u16();
        crate::ops::metrics::record_request(route, http, code, elapsed.as_secs_f64());
        tracing::info!(
            method = %method,
            path = path.as_deref().unwrap_or(route),
            http,
            status_code = code,
            latency_us = elapsed.as_micros() as u64,
            "request"
        );
        Ok(res)
    }
}
