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
    /// Two probes in a row slower than this (or one that fails) mark Redis down: requests
    /// that need it then answer "unavailable" at once (and /readyz 503) until a probe
    /// succeeds. During an outage a request answers within about `probe_interval_ms +
    /// probe_timeout_ms` (a hung Redis: `probe_interval_ms + 2 * probe_timeout_ms`).
    pub probe_timeout_ms: u64,
    /// The most members of one set (a user's followers, the feed, a conversation) a reload
    /// installs in one script; larger sets go in chunks of this size, staged and renamed into
    /// place, so that no script blocks Redis (and its health probe) for more than a few ms.
    pub load_chunk: usize,
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
            load_chunk: 4096,
        }
    }
}

/// The in-process near-cache in front of Redis (see `src/near.rs`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NearConfig {
    /// Hold videos, users, users' lists, comment pages, conversations' newest messages and the
    /// feed head in process. Off: every read goes to Redis.
    pub enabled: bool,
    /// Memory bound of the cached objects and their JSON, in bytes: the heap their
    /// allocations take (`near/weigh.rs`; least useful evicted); a quarter of it holds whole
    /// rendered lists (videos, users, videos' newest comments). 0 (the default): a quarter of the
    /// process's cgroup memory limit where one is below the machine's memory (a container),
    /// else 1/32 of the machine's memory, within 64 MiB and 1 GiB; 256 MiB where neither can
    /// be read (`near/budget.rs`).
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
            max_bytes: 0,
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
    /// 64 MiB each). fjall records it when a table is created: a store keeps the size it was
    /// created with, and a changed value applies to new stores only.
    pub memtable_bytes: u64,
    /// Embedded store: the block cache.
    pub cache_bytes: u64,
    /// Embedded store: how many flushed memtables a table's level 0 collects before they are
    /// merged into level 1 (fjall's leveled `l0_threshold`, 4 by default). While a table is
    /// smaller than level 1's target (64 MiB × this), each merge rewrites the whole of level 1,
    /// so rarer merges cut the compaction a write costs: after the write scenarios, 12 took
    /// fjall's CPU per like from 24 to 14 µs on average, and likes/s up 9%, against 4
    /// (bench/NOTES.md). A point read checks each level-0 table's filter, and fjall slows
    /// writes from 20 level-0 tables, so 2 to 16. Recorded when a table is created, like
    /// `memtable_bytes`.
    pub l0_tables: u8,
    /// Embedded store: background threads that flush memtables and compact tables; 0: fjall's
    /// default, one per core up to 4. With two or more, the first keeps itself for flushes (our
    /// vendored fjall stops it spinning meanwhile: vendor/README.md); with one, a flush waits
    /// for the compaction in progress, so memtables pile up and writes halt (the store's memory
    /// 54 → 147 MB over a pass of the write scenarios, flat with two; a like p99 of 298 ms in a
    /// bench run, 20 ms with two: bench/NOTES.md).
    pub workers: usize,
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
            memtable_bytes: 4 << 20,
            cache_bytes: 32 << 20,
            l0_tables: 12,
            workers: 0,
            cql: CqlConfig::default(),
        }
    }
}

/// Media storage and validation.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// `local`: files under `dir`, served at /static/. `s3`: objects in an S3-compatible bucket
    /// (`media.s3`), which clients fetch from the bucket (or a CDN) after a redirect from
    /// /static/.
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
    /// How often the orphan reaper runs, in seconds (0: never). It deletes media objects whose
    /// video was never recorded (a publish that failed or crashed halfway).
    pub reap_interval_secs: u64,
    /// How old (by its id) an object must be before the reaper may delete it: longer than any
    /// publish takes from choosing the id to recording the video.
    pub reap_grace_secs: u64,
    /// How far back the reaper looks when a process starts, in seconds.
    pub reap_lookback_secs: u64,
    /// The S3 backend's settings (`backend = "s3"`).
    pub s3: S3Config,
}

/// Media in an S3-compatible bucket, through rust-s3.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The S3 endpoint, e.g. `http://127.0.0.1:8333`; empty means AWS for `region`.
    pub endpoint: String,
    /// The region the requests are signed for.
    pub region: String,
    /// The bucket (created at start-up when missing and `create_bucket` is set).
    pub bucket: String,
    /// Path-style addressing (`endpoint/bucket/key`), as MinIO, SeaweedFS and s3s need;
    /// false: virtual-host style (`bucket.endpoint/key`).
    pub path_style: bool,
    /// File holding the access key id; without it, `AWS_ACCESS_KEY_ID` from the environment.
    pub access_key_file: Option<PathBuf>,
    /// File holding the secret key; without it, `AWS_SECRET_ACCESS_KEY` from the environment
    /// (and `AWS_SESSION_TOKEN` when set).
    pub secret_key_file: Option<PathBuf>,
    /// Create the bucket at start-up when it does not exist (else start-up fails).
    pub create_bucket: bool,
    /// A public base URL in front of the bucket (a CDN, or the bucket itself when it allows
    /// anonymous reads), e.g. `https://media.example.com`: clients are sent to
    /// `<public_base_url>/<key>`. Empty: presigned GET URLs.
    pub public_base_url: String,
    /// The endpoint presigned URLs name, when clients reach the store by another address than
    /// the server does (e.g. `https://s3.example.com` outside, `http://s3:8333` inside); empty
    /// means `endpoint`.
    pub presign_endpoint: String,
    /// Lifetime of a presigned GET URL, in seconds (1..=604800). Each redirect signs a fresh one.
    pub presign_secs: u32,
    /// Timeout of one S3 request (one part of a multipart upload), in seconds.
    pub request_timeout_secs: u64,
    /// Parts of one multipart upload (8 MiB each) in flight at once.
    pub upload_concurrency: usize,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            region: "us-east-1".into(),
            bucket: "douyin-lite".into(),
            path_style: true,
            access_key_file: None,
            secret_key_file: None,
            create_bucket: true,
            public_base_url: String::new(),
            presign_endpoint: String::new(),
            presign_secs: 3600,
            request_timeout_secs: 60,
            upload_concurrency: 2,
        }
    }
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
            reap_interval_secs: 600,
            reap_grace_secs: 3600,
            reap_lookback_secs: 86_400,
            s3: S3Config::default(),
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
    /// Tokens whose signature was checked, held (each with what it says) so that a client's
    /// next request skips the HMAC and the claims parsing; their expiry is still checked every
    /// time. About 300 bytes each. 0: check every token in full.
    pub verified_tokens: usize,
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
            verified_tokens: 65_536,
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
        match self.media.backend.as_str() {
            "local" => {}
            "s3" => {
                let s3 = &self.media.s3;
                if s3.bucket.is_empty() || s3.region.is_empty() {
                    return Err("media.s3.bucket and media.s3.region must be set".into());
                }
                if !(1..=604_800).contains(&s3.presign_secs) {
                    return Err("media.s3.presign_secs must be 1..=604800 (7 days)".into());
                }
                if s3.upload_concurrency == 0 || s3.request_timeout_secs == 0 {
                    return Err(
                        "media.s3.upload_concurrency and request_timeout_secs must be positive"
                            .into(),
                    );
                }
                for (what, url) in [
                    ("endpoint", &s3.endpoint),
                    ("presign_endpoint", &s3.presign_endpoint),
                    ("public_base_url", &s3.public_base_url),
                ] {
                    if !(url.is_empty()
                        || url.starts_with("http://")
                        || url.starts_with("https://"))
                    {
                        return Err(format!("media.s3.{what} must be an http(s) URL"));
                    }
                }
            }
            other => {
                return Err(format!(
                    "media.backend {other:?} is not available; use \"local\" or \"s3\""
                ))
            }
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
        if !(2..=16).contains(&self.store.l0_tables) {
            return Err("store.l0_tables must be 2 to 16".into());
        }
        if self.store.workers > 64 {
            return Err("store.workers must be 0 (fjall's default) to 64".into());
        }
        if !(16..=1_000_000).contains(&self.redis.load_chunk) {
            return Err("redis.load_chunk must be 16..=1000000".into());
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

    #[test]
    fn store_settings_are_checked() {
        let mut c = Config::default();
        assert_eq!(c.store.workers, 0);
        c.store.workers = 1;
        assert!(c.validate().is_ok());
        for bad in [
            |c: &mut Config| c.store.workers = 65,
            |c: &mut Config| c.store.memtable_bytes = 1000,
            |c: &mut Config| c.store.cache_bytes = 0,
            |c: &mut Config| c.store.l0_tables = 1,
            |c: &mut Config| c.store.l0_tables = 17,
        ] {
            let mut c = c.clone();
            bad(&mut c);
            let e = c.validate().unwrap_err();
            assert!(e.starts_with("store."), "{e}");
        }
    }

    #[test]
    fn s3_settings_are_checked() {
        let mut c = Config::default();
        c.media.backend = "s3".into();
        c.media.s3.endpoint = "http://127.0.0.1:8333".into();
        assert!(c.validate().is_ok());
        for bad in [
            |c: &mut Config| c.media.s3.presign_secs = 0,
            |c: &mut Config| c.media.s3.presign_secs = 604_801,
            |c: &mut Config| c.media.s3.endpoint = "ftp://x".into(),
            |c: &mut Config| c.media.s3.public_base_url = "cdn.example.com".into(),
            |c: &mut Config| c.media.s3.bucket = String::new(),
            |c: &mut Config| c.media.s3.upload_concurrency = 0,
            |c: &mut Config| c.media.backend = "gcs".into(),
        ] {
            let mut c = c.clone();
            bad(&mut c);
            assert!(c.validate().is_err());
        }
    }
}
