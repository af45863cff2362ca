//! douyin-lite: a cache-first backend for the Douyin-lite short-video API.
//!
//! Redis is the primary serving store (Lua scripts for every multi-key change); a durable store
//! (embedded fjall by default) is the system of record that Redis is rebuilt from. See
//! ARCHITECTURE.md for the map.
//!
//! The library exposes [`build`] and [`run`], so `main` stays thin and tests spawn isolated apps.

pub mod app;
pub mod auth;
pub mod cache;
pub mod comment;
pub mod config;
pub mod error;
pub mod favorite;
pub mod feed;
pub mod ids;
pub mod media;
pub mod message;
pub mod metrics;
pub mod model;
pub mod near;
pub mod params;
pub mod publish;
pub mod relation;
pub mod seed;
pub mod store;
pub mod telemetry;
pub mod user;
pub mod views;

pub use app::{build, run, AppState, Application};
pub use config::Config;
