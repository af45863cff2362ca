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

pub use app::{build, run, Application};
pub use config::Config;
pub use state::AppState;
