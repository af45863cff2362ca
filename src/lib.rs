//! douyin-lite: a cache-first backend for the Douyin-lite short-video API.
//!
//! Redis is the primary serving store (Lua scripts for every multi-key change); a durable store
//! (embedded fjall by default) is the system of record that Redis is rebuilt from. See
//! ARCHITECTURE.md for the map: one folder per layer (`api`, `write`, `cache`, `near`, `store`,
//! `media`, `ops`), the shared pieces beside them.
//!
//! The library exposes [`build`] and [`run`], so `main` stays thin and tests spawn isolated apps.

pub mod api;
pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
pub mod ids;
pub mod media;
pub mod model;
pub mod near;
pub mod ops;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod write;

/// jemalloc instead of glibc's malloc: with glibc the server's RSS grew from about 210 MB to
/// 600 MB over the bench scenarios (argon2's 19 MiB blocks and the per-thread arenas keep what
/// they once held); with jemalloc it stayed near 230 MB at the same throughput (bench/NOTES.md).
/// Set here rather than in `main` so that every build of the server, the tests' included, runs
/// on it and `/metrics` reports its figures (`douyin_allocator_bytes`).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (its `malloc_conf`; `_RJEM_MALLOC_CONF` in the environment overrides
/// them): freed pages go back to the kernel after 1 s instead of 10 s, by a background thread
/// rather than whenever that arena next allocates, so RSS follows the heap down after a burst
/// (bench/NOTES.md, "Where the memory goes").
#[unsafe(export_name = "_rjem_malloc_conf")]
#[allow(non_upper_case_globals)]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

pub use app::{build, run, Application};
pub use config::Config;
pub use state::AppState;
