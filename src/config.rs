//! The typed configuration tree: one struct per subsystem.
//!
//! Sources, later ones winning: built-in defaults, an optional TOML file (`--config FILE`),
//! `DOUYIN_*` environment variables (`__` separates levels: `DOUYIN_REDIS__URL`,
//! `DOUYIN_AUTH__JWT_SECRET_FILE`), then command-line flags. Secrets can be read from files
//! (`auth.jwt_secret_file`) so they stay out of the environment and the config file.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub redis: RedisConfig,
    pub near: NearConfig,
    pub store: StoreConfig,
    pub media: MediaConfig,
    pub auth: AuthConfig,
    pub ids: IdsConfig,
    pub log: LogConfig,
    pub limits: LimitsConfig,
    pub ops: OpsConfig,
}

/// The HTTP server.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Base URL that clients reach this server at; play_url and cover_url are built from it.
    /// Empty: derived from `bind` (0.0.0.0 becomes 127.0.0.1). Set it to the LAN or public
    /// address when a phone runs the client.
    pub public_url: String,
    /// Largest urlencoded or JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Value of Access-Control-Allow-Origin for browser clients.
    pub cors_origin: String,
    /// Seed demo users and videos on the first start of an empty install.
    pub demo: bool,
    /// Seconds that in-flight requests get to finish on shutdown.
    pub shutdown_timeout_secs: u16,
    /// Videos per feed page (the contract allows at most 30).
    pub feed_page_size: usize,
    /// Longest comment, in characters (after trimming).
    pub comment_max_chars: usize,
    /// Offset from UTC of the dates shown to users (a comment's "MM-DD"), in minutes;
    /// 480 is China Standard Time.
    pub utc_offset_minutes: i32,
    /// Most users in one follow/follower/friend list response (more via `cursor`/`count`).
    pub max_list: usize,
    /// Longest chat message, in characters.
    pub message_max_chars: usize,
    /// Only friends (mutual follows) may message each other.
    pub messages_friends_only: bool,
    /// Addresses of the load balancers in front: for a request from one of them, the client
    /// is the nearest address in `X-Forwarded-For` that is not itself one of them.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8080".into(),
            workers: 0,
            public_url: String::new(),
            max_body_bytes: 1 << 20,
            cors_origin: "*".into(),
            demo: false,
            shutdown_timeout_secs: 30,
            feed_page_size: 30,
            comment_max_chars: 500,
            utc_offset_minutes: 480,
            max_list: 1000,
            message_max_chars: 1000,
            messages_friends_only: false,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Limits that keep one client from taking the server down or holding it up.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Deepest nesting of arrays and objects accepted in a JSON body (the API's bodies are
    /// flat objects; deeper ones are answered 10001 without being parsed).
    pub json_max_depth: usize,
    /// Most fields of a multipart body (10001 beyond).
    pub multipart_max_fields: usize,
    /// A request body that sends nothing for this long is answered 10015.
    pub body_idle_timeout_ms: u64,
    /// Once `body_rate_grace_ms` have passed, a body must have averaged at least this many
    /// bytes per second since it began, or it is answered 10015 (0: no minimum).
    pub body_min_rate_bytes: u64,
    /// See `body_min_rate_bytes`.
    pub body_rate_grace_ms: u64,
    /// Uploads received at once by this instance; more are answered 10016.
    pub max_concurrent_uploads: usize,
    /// Bytes staged on disk by the uploads in progress at once; an upload that would exceed
    /// it is answered 10016.
    pub max_staging_bytes: u64,
    /// Open connections per HTTP worker; more wait in the listen backlog.
    pub max_connections_per_worker: usize,
    /// Login attempts per client address per minute, counted in Redis across instances
    /// (more: 10016; 0: no limit).
    pub login_per_ip_per_min: u64,
    /// Login attempts per username per minute, from any address (0: no limit).
    pub login_per_name_per_min: u64,
    /// Registrations per client address per hour (0: no limit).
    pub register_per_ip_per_hour: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            json_max_depth: 32,
            multipart_max_fields: 32,
            body_idle_timeout_ms: 10_000,
            body_min_rate_bytes: 1024,
            body_rate_grace_ms: 10_000,
            max_concurrent_uploads: 16,
            max_staging_bytes: 4 << 30,
            max_connections_per_worker: 25_000,
            login_per_ip_per_min: 30,
            login_per_name_per_min: 10,
            register_per_ip_per_hour: 20,
        }
    }
}

/// Operator endpoints.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// Bearer token that `/metrics` requires from scrapers (`Authorization: Bearer ...`).
    /// Without one, `/metrics` answers loopback clients only.
    pub metrics_token: Option<String>,
    /// File holding the metrics token (wins over `metrics_token`).
    pub metrics_token_file: Option<PathBuf>,
}

impl OpsConfig {
    /// The metrics token, read from `metrics_token_file` when set.
    pub fn metrics_token(&self) -> Result<Option<String>, String> {
        let t = match &self.metrics_token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| format!("ops.metrics_token_file {}: {e}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            None => self.metrics_token.clone(),
        };
        match t {
            Some(t) if t.len() < 16 => {
                Err("ops.metrics_token must be at least 16 characters".into())
            }
            t => Ok(t),
        }
    }
}

/// Redis, the primary serving store.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Connection URL, e.g. `redis://127.0.0.1:6379/0`.
    pub url: String,
    /// Read the URL (it may hold a password) from this file instead.
    pub url_file: Option<PathBuf>,
    /// Prefix of every key, so that several installs (or tests) can share one Redis.
    pub key_prefix: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Per-command timeout in milliseconds; a slower Redis is reported as unavailable.
    pub timeout_ms: u64,
    /// How often Redis's health is probed (a PING on a connection of its own).
    pub probe_interval_ms: u64,
    /// A probe slower than this marks Redis down: requests that need it then answer
    /// "unavailable" at once (and /readyz 503) until a probe succeeds. During an outage a
    /// request answers within about `probe_interval_ms + probe_timeout_ms`.
    pub probe_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            url_file: None,
            key_prefix: "dl:".into(),
            pool_size: 4,
            timeout_ms: 3000,
            probe_interval_ms: 100,
            probe_timeout_ms: 400,
        }
    }
}

/// The in-process near-cache in front of Redis (see `src/near.rs`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NearConfig {
    /// Hold videos, users and the feed head in process. Off: every read goes to Redis.
    pub enabled: bool,
    /// Memory bound of the cached objects and their JSON, in bytes (least useful evicted).
    pub max_bytes: u64,
    /// The staleness bound, in milliseconds: changes made through other instances are normally
    /// seen within milliseconds (Redis client tracking); entries older than this are served
    /// only while heartbeats prove that invalidation messages are arriving. The documented
    /// bound of 1 s holds for values up to 1000.
    pub max_age_ms: u64,
    /// How many of the newest feed ids are held; older pages are read from Redis.
    pub feed_ids: usize,
    /// Subscribe to Redis invalidation messages (CLIENT TRACKING, RESP3). Off: only
    /// `max_age_ms` bounds how stale a change made through another instance can be.
    pub tracking: bool,
}

impl Default for NearConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: 256 * 1024 * 1024,
            max_age_ms: 1000,
            feed_ids: 200_000,
            tracking: true,
        }
    }
}

/// The durable store that Redis is rebuilt from.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `embedded` (fjall in `data_dir`, one process) or `scylla` (ScyllaDB or Cassandra, shared
    /// by every instance; see `cql`).
    pub backend: String,
    /// Directory for the embedded store, local media, the generated JWT secret and temp files.
    pub data_dir: PathBuf,
    /// Embedded store: the largest memtable of each table before it is flushed to disk. The
    /// store keeps one per table (19), so this bounds their memory (fjall's own default is
    /// 64 MiB each).
    pub memtable_bytes: u64,
    /// Embedded store: the block cache.
    pub cache_bytes: u64,
    /// The CQL cluster, when `backend = "scylla"`.
    pub cql: CqlConfig,
}

/// The ScyllaDB (or Cassandra) cluster of `store.backend = "scylla"`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CqlConfig {
    /// Nodes to discover the cluster from, `host:port`, comma-separated in the environment.
    pub contact_points: Vec<String>,
    /// The datacenter this instance runs in: its nodes are preferred (token-aware within it).
    pub local_datacenter: String,
    /// Keyspace holding the tables (`migrate` creates it).
    pub keyspace: String,
    /// Consistency of reads and writes: `local_quorum` (default), `quorum`, `one`, `local_one`
    /// or `all`. Lightweight transactions use the matching serial level.
    pub consistency: String,
    /// Replication `migrate` creates the keyspace with, as CQL map text, e.g.
    /// `{'class': 'NetworkTopologyStrategy', 'dc1': 3}`. Empty: NetworkTopologyStrategy with
    /// `replication_factor` in `local_datacenter`.
    pub replication: String,
    /// Replicas per datacenter when `replication` is empty (3 in production; 1 on a one-node
    /// test cluster).
    pub replication_factor: u32,
    /// Longest wait for one request before it counts as failed ("unavailable" for the client).
    pub request_timeout_ms: u64,
    /// Longest wait for a connection to a node.
    pub connect_timeout_ms: u64,
    /// Username for PasswordAuthenticator; empty: no authentication.
    pub username: String,
    /// File holding the password (secrets never sit in the config file).
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA certificates that signed the nodes' certificates: set, connections
    /// use TLS, and a node must present a certificate for its IP address signed by one of them.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for nodes that require client certificates (with
    /// `tls_key_file`).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
}

impl Default for CqlConfig {
    fn default() -> Self {
        Self {
            contact_points: vec!["127.0.0.1:9042".into()],
            local_datacenter: "datacenter1".into(),
            keyspace: "douyin_lite".into(),
            consistency: "local_quorum".into(),
            replication: String::new(),
            replication_factor: 1,
            request_timeout_ms: 2000,
            connect_timeout_ms: 2000,
            username: String::new(),
            password_file: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl CqlConfig {
    /// The password, read from `password_file` when set.
    pub fn password(&self) -> Result<Option<String>, String> {
        match &self.password_file {
            None => Ok(None),
            Some(f) => std::fs::read_to_string(f)
                .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|e| format!("store.cql.password_file {}: {e}", f.display())),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: "embedded".into(),
            data_dir: PathBuf::from("./data"),
            memtable_bytes: 8 << 20,
            cache_bytes: 32 << 20,
            cql: CqlConfig::default(),
        }
    }
}

/// Media storage and validation.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// `local`: files under `dir`, served at /static/.
    pub backend: String,
    /// Media directory; empty means `<data_dir>/media`.
    pub dir: Option<PathBuf>,
    /// Largest accepted upload, in bytes (200 MB by default).
    pub max_upload_bytes: u64,
    /// ffmpeg binary, used to make covers.
    pub ffmpeg: String,
    /// ffprobe binary, used to check that an upload is a real video.
    pub ffprobe: String,
    /// Longest title, in characters.
    pub max_title_chars: usize,
    /// Longest description, in characters.
    pub max_desc_chars: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            backend: "local".into(),
            dir: None,
            max_upload_bytes: 200 * 1024 * 1024,
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            max_title_chars: 100,
            max_desc_chars: 500,
        }
    }
}

/// Accounts and tokens.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret. Prefer `jwt_secret_file`. With neither, a random secret is generated once and
    /// kept in `<data_dir>/jwt.secret`.
    pub jwt_secret: Option<String>,
    /// File holding the HS256 secret.
    pub jwt_secret_file: Option<PathBuf>,
    /// Token lifetime in seconds.
    pub token_ttl_secs: u64,
    /// Username length bounds, in characters.
    pub min_username_chars: usize,
    pub max_username_chars: usize,
    /// Password length bounds, in characters.
    pub min_password_chars: usize,
    pub max_password_chars: usize,
    /// argon2id memory cost in KiB, and iterations.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_secret_file: None,
            token_ttl_secs: 7 * 24 * 3600,
            min_username_chars: 1,
            max_username_chars: 32,
            min_password_chars: 6,
            max_password_chars: 64,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
        }
    }
}

/// Snowflake IDs.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdsConfig {
    /// This instance's node id, 0..=15; every instance of a cluster needs its own.
    pub node_id: u16,
}

/// Logging.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Filter in `RUST_LOG` syntax; `RUST_LOG` itself wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if any), then `DOUYIN_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config, String> {
        let defaults = config::Config::try_from(&Config::default()).map_err(|e| e.to_string())?;
        let mut b = config::Config::builder().add_source(defaults);
        if let Some(f) = file {
            b = b.add_source(
                config::File::from(f)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        b = b.add_source(
            config::Environment::with_prefix("DOUYIN")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("store.cql.contact_points")
                .with_list_parse_key("server.trusted_proxies"),
        );
        let cfg: Config = b
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| format!("config: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that would otherwise fail later and less clearly.
    pub fn validate(&self) -> Result<(), String> {
        if self.ids.node_id > crate::ids::MAX_NODE {
            return Err(format!("ids.node_id must be 0..={}", crate::ids::MAX_NODE));
        }
        match self.store.backend.as_str() {
            "embedded" => {}
            "scylla" => {
                crate::store::cql::consistency(&self.store.cql.consistency)?;
                if self.store.cql.contact_points.is_empty() {
                    return Err("store.cql.contact_points is empty".into());
                }
                crate::store::cql::check_keyspace_name(&self.store.cql.keyspace)?;
            }
            other => {
                return Err(format!(
                    "store.backend {other:?} is not available; use \"embedded\" or \"scylla\""
                ))
            }
        }
        if self.media.backend != "local" {
            return Err(format!(
                "media.backend {:?} is not available; use \"local\"",
                self.media.backend
            ));
        }
        if self.server.max_list == 0
            || self.server.message_max_chars == 0
            || self.server.comment_max_chars == 0
        {
            return Err(
                "server.max_list, message_max_chars and comment_max_chars must be positive".into(),
            );
        }
        for p in &self.server.trusted_proxies {
            p.parse::<std::net::IpAddr>()
                .map_err(|_| format!("server.trusted_proxies: {p:?} is not an IP address"))?;
        }
        if self.store.memtable_bytes < (1 << 20) || self.store.cache_bytes < (1 << 20) {
            return Err("store.memtable_bytes and store.cache_bytes must be at least 1 MiB".into());
        }
        if self.server.feed_page_size == 0 || self.server.feed_page_size > 30 {
            return Err("server.feed_page_size must be 1..=30".into());
        }
        if self.auth.min_password_chars == 0
            || self.auth.min_password_chars > self.auth.max_password_chars
        {
            return Err("auth password bounds are inconsistent".into());
        }
        Ok(())
    }

    /// The media directory.
    pub fn media_dir(&self) -> PathBuf {
        self.media
            .dir
            .clone()
            .unwrap_or_else(|| self.store.data_dir.join("media"))
    }

    /// The Redis URL, read from `redis.url_file` when set.
    pub fn redis_url(&self) -> Result<String, String> {
        match &self.redis.url_file {
            Some(f) => std::fs::read_to_string(f)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("redis.url_file {}: {e}", f.display())),
            None => Ok(self.redis.url.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_overrides_and_unknown_fields_fail() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[server]\nbind = \"127.0.0.1:9999\"\n[redis]\nkey_prefix = \"file:\"\npool_size = 7\n",
        )
        .unwrap();
        std::env::set_var("DOUYIN_REDIS__KEY_PREFIX", "env:");
        let c = Config::load(Some(&f)).unwrap();
        std::env::remove_var("DOUYIN_REDIS__KEY_PREFIX");
        assert_eq!(c.server.bind, "127.0.0.1:9999");
        assert_eq!(c.redis.key_prefix, "env:");
        assert_eq!(c.redis.pool_size, 7);
        assert_eq!(c.media.max_upload_bytes, 200 * 1024 * 1024);
        std::fs::write(&f, "[server]\nbindd = \"x\"\n").unwrap();
        assert!(Config::load(Some(&f)).is_err());
        std::fs::write(&f, "[ids]\nnode_id = 16\n").unwrap();
        assert!(Config::load(Some(&f)).is_err());
    }
}
