//! The state every request shares: configuration, the stores, the cache, media, auth and ids.
//! Both the route table (`app.rs`, `api/`) and the layers below the handlers (`write/`, `ops/`)
//! import it from here, so none of them imports another for it.

use crate::auth::Auth;
use crate::cache::Cache;
use crate::config::Config;
use crate::ids::IdGenerator;
use crate::media::staging::Staging;
use crate::media::MediaStore;
use crate::model::Urls;
use crate::store::Store;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

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
    /// Upload staging (same filesystem as local media), bounded in uploads and bytes.
    pub staging: Arc<Staging>,
    /// The bearer token `/metrics` requires (None: loopback clients only).
    pub metrics_token: Option<String>,
    /// Requests being handled right now; shutdown waits for it to reach zero.
    pub in_flight: Arc<AtomicUsize>,
    /// Set on shutdown: responses close their connections and /readyz answers 503.
    pub draining: Arc<AtomicBool>,
}
