//! Logging: `tracing` to stdout, filtered by `RUST_LOG` or `log.level`.

use std::sync::atomic::{AtomicBool, Ordering};
use tracing::{Level, Metadata};
use tracing_subscriber::filter::dynamic_filter_fn;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, EnvFilter};

/// Set once this process shuts its listening socket on purpose (a graceful stop, `app.rs`).
static LISTENER_SHUT: AtomicBool = AtomicBool::new(false);

/// Where ntex's acceptor logs a failed `accept`.
const ACCEPT_TARGET: &str = "ntex_server::net::accept";

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(level: &str) {
    // ntex reports every configuration it falls back to at info; keep that out of the logs
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},ntex_service=warn")));
    // asked again for every event that `filter` lets through: a level compare first
    let expected = dynamic_filter_fn(|meta, _| !expected_error(meta));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_target(false).with_filter(expected))
        .try_init();
}

/// Tells the logs that the listening socket is being shut on purpose. ntex's paused acceptor
/// no longer asks for the socket's readiness, but epoll reports a hang-up whatever was asked,
/// so it wakes, fails to accept (EINVAL) and logs an error: expected from now on, and dropped.
/// Process-wide: a process that runs several servers (the tests) drops them for all of them
/// once one has stopped; a server is one process in production.
pub fn listener_shut() {
    LISTENER_SHUT.store(true, Ordering::Release);
}

/// Whether `meta` is the error a shut listening socket makes ntex's acceptor log.
fn expected_error(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR
        && meta.target() == ACCEPT_TARGET
        && LISTENER_SHUT.load(Ordering::Acquire)
}
