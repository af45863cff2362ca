//! Logging: `tracing` to stdout, filtered by `RUST_LOG` or `log.level`, written by a thread of
//! its own.
//!
//! At the default level every request logs a line. Written where it is made, each line was a
//! `write` to stdout under its lock from an HTTP worker; here the worker formats it and hands it
//! over, and the log's thread writes what has gathered in one `write` (bench/NOTES.md). Nothing
//! is dropped: when the hand-over queue is full, the worker waits, as it waited for stdout
//! before. Colours only when stdout is a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use tracing::{Level, Metadata};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::dynamic_filter_fn;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, EnvFilter};

/// Set once this process shuts its listening socket on purpose (a graceful stop, `app.rs`).
static LISTENER_SHUT: AtomicBool = AtomicBool::new(false);

/// Where ntex's acceptor logs a failed `accept`.
const ACCEPT_TARGET: &str = "ntex_server::net::accept";

/// The log's writing thread, held until [`flush`] (its drop writes what is queued and stops it).
static WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// The bytes of lines the log's thread gathers before a `write`, at most (it writes sooner when
/// nothing more is queued).
const WRITE_BUFFER: usize = 64 * 1024;

/// Installs the global subscriber and starts the log's thread (once; later calls are ignored).
pub fn init(level: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // ntex reports every configuration it falls back to at info; keep that out of the logs
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(format!("{level},ntex_service=warn")));
        // asked again for every event that `filter` lets through: a level compare first
        let expected = dynamic_filter_fn(|meta, _| !expected_error(meta));
        let ansi = std::io::stdout().is_terminal();
        let out = std::io::BufWriter::with_capacity(WRITE_BUFFER, std::io::stdout());
        let (writer, guard) = NonBlockingBuilder::default()
            .lossy(false)
            .thread_name("douyin-log")
            .finish(out);
        let installed = tracing_subscriber::registry()
            .with(filter)
            .with(
                fmt::layer()
                    .with_target(false)
                    .with_ansi(ansi)
                    .with_writer(writer)
                    .with_filter(expected),
            )
            .try_init();
        if installed.is_ok() {
            *WRITER.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
        }
    });
}

/// Writes out every line logged so far and stops the log's thread: before the process exits
/// (lines still queued would be lost). Lines logged afterwards are not written.
pub fn flush() {
    let guard = WRITER.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(guard);
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
