//! Test helpers: an isolated app per test (own data dir, own Redis key prefix or own Redis).

use douyin_lite::{AppState, Config};
use serde_json::Value;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The suite's Redis: `REDIS_TEST_URL` (a `redis-cluster://` URL runs it on a cluster; not
/// `DOUYIN_`-prefixed, which the server binaries the tests start would read as a setting).
pub fn redis_url() -> String {
    std::env::var("REDIS_TEST_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether the suite runs against the CQL store too: `CQL_TEST_NODE` holds the node's
/// contact point (deploy/local.sh starts one with deploy/cql-node.sh).
pub fn cql_enabled() -> bool {
    std::env::var("CQL_TEST_NODE").is_ok_and(|v| !v.is_empty())
}

/// The CQL settings of a test: the node of `CQL_TEST_NODE`, and a keyspace of the test's
/// own, named in its data dir (an app restarted on the same dir finds the same keyspace).
/// The name carries its creation time, so [`prepare_keyspace`] can drop old ones.
pub fn cql_config(data_dir: &std::path::Path) -> douyin_lite::config::CqlConfig {
    let file = data_dir.join("cql_keyspace");
    let keyspace = match std::fs::read_to_string(&file) {
        Ok(k) => k,
        Err(_) => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let k = format!("t{secs}_{:x}", rand_u64() >> 16);
            std::fs::create_dir_all(data_dir).unwrap();
            std::fs::write(&file, &k).unwrap();
            k
        }
    };
    douyin_lite::config::CqlConfig {
        contact_points: vec![std::env::var("CQL_TEST_NODE").unwrap()],
        keyspace,
        request_timeout_ms: 10_000,
        ..Default::default()
    }
}

/// The suite's Redis is a cluster (`REDIS_TEST_URL=redis-cluster://...`).
pub fn redis_is_cluster(url: &str) -> bool {
    url.starts_with("redis-cluster://")
}

/// Runs redis-cli against the Redis at `url`: on a cluster, FLUSHALL, FLUSHDB and SCRIPT on
/// every node and anything else on the node of its key (`-c` follows MOVED).
pub fn redis_cli(url: &str, args: &[&str]) -> std::process::Output {
    if let Some(rest) = url.strip_prefix("redis-cluster://") {
        let node = rest.split(['?', '/']).next().unwrap();
        let (host, port) = node.rsplit_once(':').unwrap();
        let mut c = Command::new("redis-cli");
        if matches!(
            args[0].to_ascii_uppercase().as_str(),
            "FLUSHALL" | "FLUSHDB" | "SCRIPT"
        ) {
            c.args(["--cluster", "call", node]);
        } else {
            c.args(["-c", "-h", host, "-p", port]);
        }
        c.args(args).output().unwrap()
    } else {
        Command::new("redis-cli")
            .args(["-u", url])
            .args(args)
            .output()
            .unwrap()
    }
}

/// Whether media go to a real S3 server: `S3_TEST_DIR` names the directory of one started
/// with `deploy/s3-server.sh start DIR` (deploy/local.sh does).
pub fn s3_enabled() -> bool {
    std::env::var("S3_TEST_DIR").is_ok_and(|v| !v.is_empty())
}

/// The settings deploy/s3-server.sh printed for the server in `dir`, with a bucket of the
/// test's own (created by the app at start-up), named in `data_dir` so that an app restarted
/// on the same dir finds the same bucket.
pub fn s3_config_in(
    dir: &std::path::Path,
    data_dir: &std::path::Path,
) -> douyin_lite::config::S3Config {
    let file = data_dir.join("s3_bucket");
    let bucket = std::fs::read_to_string(&file).unwrap_or_else(|_| {
        let b = format!("t-{:x}", rand_u64());
        std::fs::create_dir_all(data_dir).unwrap();
        std::fs::write(&file, &b).unwrap();
        b
    });
    let env = std::fs::read_to_string(dir.join("settings.env")).unwrap();
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("DOUYIN_MEDIA__S3__{k}=")))
            .unwrap_or_else(|| panic!("{k} missing from settings.env"))
            .to_string()
    };
    douyin_lite::config::S3Config {
        endpoint: get("ENDPOINT"),
        region: get("REGION"),
        bucket,
        path_style: get("PATH_STYLE") == "true",
        access_key_file: Some(get("ACCESS_KEY_FILE").into()),
        secret_key_file: Some(get("SECRET_KEY_FILE").into()),
        ..Default::default()
    }
}

/// [`s3_config_in`] for the server of `S3_TEST_DIR`.
pub fn s3_config(data_dir: &std::path::Path) -> douyin_lite::config::S3Config {
    s3_config_in(
        std::path::Path::new(&std::env::var("S3_TEST_DIR").unwrap()),
        data_dir,
    )
}

/// Test keyspaces live this long: every table costs the one test node heap.
const KEYSPACE_LIFETIME_SECS: u64 = 240;

/// Drops test keyspaces older than [`KEYSPACE_LIFETIME_SECS`], then migrates `cfg`'s.
pub async fn prepare_keyspace(cfg: &douyin_lite::config::CqlConfig) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let s = douyin_lite::store::cql::session(cfg, false).await.unwrap();
    let rows = s
        .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let names: Vec<String> = rows
        .rows::<(String,)>()
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    for k in names {
        let born = k
            .strip_prefix('t')
            .and_then(|r| r.split('_').next())
            .and_then(|t| t.parse::<u64>().ok());
        if born.is_some_and(|b| b + KEYSPACE_LIFETIME_SECS < now) && k != cfg.keyspace {
            let _ = s
                .query_unpaged(format!("DROP KEYSPACE IF EXISTS {k}"), ())
                .await;
        }
    }
    douyin_lite::store::cql::migrate(cfg)
        .await
        .expect("migrate the test keyspace");
}

/// A redis-server of the test's own, on a free port; killed on drop.
pub struct OwnRedis {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl OwnRedis {
    pub async fn start() -> OwnRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Self::spawn(port, dir.path());
        OwnRedis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
            _dir: dir,
        }
        .ready()
        .await
    }

    fn spawn(port: u16, dir: &std::path::Path) -> Child {
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (see README)")
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    async fn ready(self) -> OwnRedis {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port())).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self
    }

    /// Kills the server (SIGKILL: nothing is saved).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts an empty server again on the same port.
    pub async fn restart(mut self) -> OwnRedis {
        self.kill();
        self.child = Self::spawn(self.port(), self._dir.path());
        self.ready().await
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running app.
pub struct TestApp {
    pub base: String,
    /// Sees redirects as they are.
    pub client: reqwest::Client,
    /// Follows redirects, as a video player does (media in S3 are one redirect away).
    pub player: reqwest::Client,
    pub state: Arc<AppState>,
    pub data_dir: PathBuf,
    pub redis_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Options for [`spawn_with`].
pub struct Opts {
    pub data_dir: PathBuf,
    pub prefix: String,
    pub redis_url: String,
    pub tweak: Box<dyn FnOnce(&mut Config) + Send>,
}

impl Opts {
    pub fn new() -> Self {
        // under target/tmp (not /tmp), so `cargo clean` removes what the tests leave
        let dir = tempfile::Builder::new()
            .prefix("app-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        Opts {
            data_dir: dir,
            prefix: format!("t{:x}:", rand_u64()),
            redis_url: redis_url(),
            tweak: Box::new(|_| {}),
        }
    }
}

pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Opts::new()).await
}

pub async fn spawn_with(o: Opts) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = Config::default();
    cfg.server.bind = addr.to_string();
    cfg.server.public_url = format!("http://{addr}");
    cfg.server.workers = 2;
    cfg.server.shutdown_timeout_secs = 5;
    cfg.store.data_dir = o.data_dir.clone();
    cfg.redis.url = o.redis_url.clone();
    cfg.redis.key_prefix = o.prefix.clone();
    cfg.auth.argon2_memory_kib = 1024;
    cfg.auth.argon2_iterations = 1;
    cfg.log.level = "warn".into();
    // every test client is 127.0.0.1: rate limits are tested on their own (users.rs)
    cfg.limits.login_per_ip_per_min = 0;
    cfg.limits.login_per_name_per_min = 0;
    cfg.limits.register_per_ip_per_hour = 0;
    if cql_enabled() {
        cfg.store.backend = "scylla".into();
        cfg.store.cql = cql_config(&o.data_dir);
    }
    if s3_enabled() {
        cfg.media.backend = "s3".into();
        cfg.media.s3 = s3_config(&o.data_dir);
    }
    (o.tweak)(&mut cfg);
    if cfg.store.backend == "scylla" {
        prepare_keyspace(&cfg.store.cql).await;
    }
    douyin_lite::telemetry::init(&std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()));
    let (state_tx, state_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        ntex::rt::System::build()
            .name("test-app")
            .build(ntex::rt::DefaultRuntime)
            .block_on(async move {
                let app = match douyin_lite::build(cfg).await {
                    Ok(a) => a,
                    Err(e) => panic!("build failed: {e}"),
                };
                let _ = state_tx.send(app.state.clone());
                douyin_lite::run(app, listener, async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            })
    });
    let state = state_rx.await.expect("app failed to start");
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        player: reqwest::Client::new(),
        state,
        data_dir: o.data_dir,
        redis_url: o.redis_url,
        shutdown: Some(stop_tx),
        thread: Some(thread),
    }
}

impl TestApp {
    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.take().map(|s| s.send(()));
        let t = self.thread.take().unwrap();
        tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The text of `/metrics` (the app's, from a loopback client).
    pub async fn metrics_text(&self) -> String {
        let res = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), 200, "/metrics");
        res.text().await.unwrap()
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Value {
        let r = self
            .client
            .get(self.url(path))
            .query(query)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        assert_eq!(r.headers()["content-type"], "application/json");
        r.json().await.unwrap()
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, String)]) -> Value {
        let r = self
            .client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "POST {path}");
        r.json().await.unwrap()
    }

    pub async fn post_query(&self, path: &str, query: &[(&str, String)]) -> Value {
        let r = self
            .client
            .post(self.url(path))
            .query(query)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "POST {path}");
        r.json().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Value {
        let r = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "POST {path}");
        r.json().await.unwrap()
    }

    /// Registers `name` and returns (user_id, token).
    pub async fn register(&self, name: &str) -> (i64, String) {
        let v = self
            .post_query(
                "/douyin/user/register/",
                &[("username", name.into()), ("password", "secret123".into())],
            )
            .await;
        assert_eq!(v["status_code"], 0, "{v}");
        (
            v["user_id"].as_i64().unwrap(),
            v["token"].as_str().unwrap().to_string(),
        )
    }

    /// Uploads `bytes` as a video; returns the response.
    pub async fn upload(&self, token: &str, title: &str, bytes: Vec<u8>) -> Value {
        let form = reqwest::multipart::Form::new()
            .text("title", title.to_string())
            .part(
                "data",
                reqwest::multipart::Part::bytes(bytes).file_name("../../evil name.mp4"),
            )
            .text("token", token.to_string());
        self.post_multipart("/douyin/publish/action/", form).await
    }

    /// POSTs a multipart form to `path`; returns the response.
    pub async fn post_multipart(&self, path: &str, form: reqwest::multipart::Form) -> Value {
        let r = self
            .client
            .post(self.url(path))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "POST {path}");
        r.json().await.unwrap()
    }

    /// POSTs every query of `queries` to `path` at once, one task each; the replies in order.
    pub async fn post_concurrently(
        &self,
        path: &str,
        queries: Vec<Vec<(&'static str, String)>>,
    ) -> Vec<Value> {
        let tasks: Vec<_> = queries
            .into_iter()
            .map(|q| {
                let (c, url) = (self.client.clone(), self.url(path));
                tokio::spawn(async move {
                    c.post(url)
                        .query(&q)
                        .send()
                        .await
                        .unwrap()
                        .json::<Value>()
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    /// Every id of a paged list: `path` with `query`, `count` items a page, each page from the
    /// previous one's `next_cursor` until it is 0; the ids of `field`, in order.
    pub async fn walk_pages(
        &self,
        path: &str,
        query: &[(&str, String)],
        field: &str,
        count: usize,
    ) -> Vec<i64> {
        let (mut seen, mut cursor) = (Vec::new(), 0i64);
        loop {
            let mut q = query.to_vec();
            q.push(("count", count.to_string()));
            q.push(("cursor", cursor.to_string()));
            let v = self.get(path, &q).await;
            assert_eq!(code(&v), 0, "{v}");
            seen.extend(ids(&v[field]));
            cursor = v["next_cursor"].as_i64().unwrap();
            if cursor == 0 {
                return seen;
            }
        }
    }

    /// The `user` object of user `id`, seen anonymously.
    pub async fn user(&self, id: i64) -> Value {
        self.get("/douyin/user/", &[("user_id", id.to_string())])
            .await["user"]
            .clone()
    }

    pub async fn flush_redis(&self) {
        let out = redis_cli(&self.redis_url, &["FLUSHALL"]);
        assert!(out.status.success(), "{out:?}");
        self.near_cleared().await;
    }

    /// Waits until the near-cache has applied a flush (its invalidation message arrives a
    /// moment after the command returns); fails the test after 2 s.
    pub async fn near_cleared(&self) {
        let near = &self.state.cache.near;
        for _ in 0..200 {
            if near.size().0 == 0 && !near.feed_fresh() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the near-cache was not cleared after a redis flush");
    }
}

static SAMPLE: OnceCell<Vec<u8>> = OnceCell::const_new();

/// A real short MP4 made with ffmpeg (once per test run).
pub async fn sample_mp4() -> Vec<u8> {
    SAMPLE
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("sample.mp4");
            douyin_lite::media::probe::generate_sample("ffmpeg", &p, 1, 90)
                .await
                .expect("ffmpeg must be installed (see README)");
            std::fs::read(&p).unwrap()
        })
        .await
        .clone()
}

pub fn code(v: &Value) -> i64 {
    v["status_code"].as_i64().unwrap_or(-1)
}

/// The `id`s of a list of objects.
pub fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect()
}

/// Likes (`action` "1") or unlikes ("2") video `vid`.
pub async fn like(app: &TestApp, token: &str, vid: i64, action: &str) -> Value {
    app.post_query(
        "/douyin/favorite/action/",
        &[
            ("token", token.into()),
            ("video_id", vid.to_string()),
            ("action_type", action.into()),
        ],
    )
    .await
}

/// Follows (`action` "1") or unfollows ("2") user `to`.
pub async fn follow(app: &TestApp, token: &str, to: i64, action: &str) -> Value {
    app.post_query(
        "/douyin/relation/action/",
        &[
            ("token", token.into()),
            ("to_user_id", to.to_string()),
            ("action_type", action.into()),
        ],
    )
    .await
}

/// Sends a chat message (JSON body) from the holder of `token` to `to`; returns the response.
pub async fn send_message(app: &TestApp, token: &str, to: i64, content: &str) -> Value {
    app.post_json(
        "/douyin/message/action/",
        serde_json::json!({"token": token, "to_user_id": to.to_string(), "action_type": 1, "content": content}),
    )
    .await
}

/// Publishes a video by URL as `token`'s user; its id.
pub async fn publish_url(app: &TestApp, token: &str, title: &str) -> i64 {
    let v = app
        .post_json(
            "/douyin/publish/actionUrl",
            serde_json::json!({"token": token, "url": "https://cdn.example.com/v.mp4", "title": title}),
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    v["vid"].as_i64().unwrap()
}

/// A service of a test's own, started by one of the project's scripts (`deploy/SCRIPT start
/// DIR` prints its settings as `NAME=value` lines; `stop DIR` stops it) with its files in a
/// temp dir; stopped, and thawed first if the test froze it, when dropped.
pub struct ScriptService {
    script: &'static str,
    pub dir: tempfile::TempDir,
    stdout: String,
}

impl ScriptService {
    pub async fn start(script: &'static str, env: &[(&str, &str)]) -> ScriptService {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg(format!("{}/deploy/{script}", env!("CARGO_MANIFEST_DIR")))
            .arg("start")
            .arg(dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ScriptService {
            script,
            dir,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        }
    }

    /// The value of the setting `name` that the script printed.
    pub fn setting(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(str::to_string)
    }

    /// Sends `sig` to the process whose pid is in `pidfile` (under the dir); `-STOP` freezes
    /// it: a dependency that hangs.
    pub fn signal(&self, pidfile: &str, sig: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join(pidfile)).unwrap();
        assert!(Command::new("kill")
            .args([sig, pid.trim()])
            .status()
            .unwrap()
            .success());
    }

    /// Every pid file under the dir (one level of subdirectories deep).
    fn pidfiles(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut dirs = vec![self.dir.path().to_path_buf()];
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        for d in dirs {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.path().extension().is_some_and(|x| x == "pid") {
                    found.push(e.path());
                }
            }
        }
        found
    }
}

impl Drop for ScriptService {
    fn drop(&mut self) {
        for p in self.pidfiles() {
            if let Ok(pid) = std::fs::read_to_string(&p) {
                let _ = Command::new("kill").args(["-CONT", pid.trim()]).status();
            }
        }
        let _ = Command::new("bash")
            .arg(format!(
                "{}/deploy/{}",
                env!("CARGO_MANIFEST_DIR"),
                self.script
            ))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}
