//! The real binary under a write load, stopped the hard ways: kill -9, SIGTERM, and its Redis
//! killed and restarted empty. Afterwards every acknowledged like, comment, follow and message is
//! there, `douyin-lite check` finds no counter out of step, and SIGTERM dropped no answer.

use crate::helpers::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `douyin-lite serve` process of the test's own.
struct Server {
    child: Child,
    base: String,
    data_dir: PathBuf,
    redis_url: String,
    prefix: String,
    /// Snowflake node id (`ids.node_id`): instances sharing a store need their own.
    node: u16,
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_douyin-lite")
}

fn command(data_dir: &PathBuf, redis_url: &str, prefix: &str) -> Command {
    let mut c = Command::new(bin());
    c.arg("--data-dir")
        .arg(data_dir)
        .args(["--redis-url", redis_url])
        .env("DOUYIN_REDIS__KEY_PREFIX", prefix)
        .env("DOUYIN_AUTH__ARGON2_MEMORY_KIB", "1024")
        .env("DOUYIN_AUTH__ARGON2_ITERATIONS", "1")
        .env("DOUYIN_LIMITS__LOGIN_PER_IP_PER_MIN", "0")
        .env("DOUYIN_LIMITS__LOGIN_PER_NAME_PER_MIN", "0")
        .env("DOUYIN_LIMITS__REGISTER_PER_IP_PER_HOUR", "0")
        .env("DOUYIN_SERVER__WORKERS", "2")
        .env("DOUYIN_SERVER__SHUTDOWN_TIMEOUT_SECS", "10")
        .env("DOUYIN_LOG__LEVEL", "warn")
        .stdout(Stdio::null());
    if crate::helpers::cql_enabled() {
        let cql = crate::helpers::cql_config(data_dir);
        c.env("DOUYIN_STORE__BACKEND", "scylla")
            .env("DOUYIN_STORE__CQL__CONTACT_POINTS", &cql.contact_points[0])
            .env("DOUYIN_STORE__CQL__KEYSPACE", &cql.keyspace)
            .env(
                "DOUYIN_STORE__CQL__REQUEST_TIMEOUT_MS",
                cql.request_timeout_ms.to_string(),
            );
    }
    c
}

impl Server {
    async fn start(data_dir: PathBuf, redis_url: &str, prefix: &str) -> Server {
        Server::start_node(data_dir, redis_url, prefix, 0).await
    }

    async fn start_node(data_dir: PathBuf, redis_url: &str, prefix: &str, node: u16) -> Server {
        Server::spawn(data_dir, redis_url, prefix, node, Stdio::null(), "warn").await
    }

    /// A server logging at the default level (`info`: a line a request) to the file `log`.
    async fn start_logged(data_dir: PathBuf, redis_url: &str, log: &std::path::Path) -> Server {
        let file = std::fs::File::create(log).expect("the log file");
        Server::spawn(data_dir, redis_url, "logged:", 0, file.into(), "info").await
    }

    async fn spawn(
        data_dir: PathBuf,
        redis_url: &str,
        prefix: &str,
        node: u16,
        stdout: Stdio,
        log_level: &str,
    ) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if crate::helpers::cql_enabled() {
            let ok = command(&data_dir, redis_url, prefix)
                .arg("migrate")
                .status()
                .expect("the douyin-lite binary");
            assert!(ok.success(), "douyin-lite migrate failed");
        }
        let child = command(&data_dir, redis_url, prefix)
            .env("DOUYIN_IDS__NODE_ID", node.to_string())
            .env("DOUYIN_LOG__LEVEL", log_level)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(stdout)
            .spawn()
            .expect("the douyin-lite binary");
        let s = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            data_dir,
            redis_url: redis_url.to_string(),
            prefix: prefix.to_string(),
            node,
        };
        let c = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = c.get(format!("{}/readyz", s.base)).send().await {
                if r.status() == 200 {
                    return s;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("douyin-lite did not become ready");
    }

    async fn restart(mut self) -> Server {
        let _ = self.child.wait();
        Server::start_node(
            self.data_dir.clone(),
            &self.redis_url,
            &self.prefix,
            self.node,
        )
        .await
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Waits for the process to exit; its exit status.
    async fn exited(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server with SIGTERM and runs `douyin-lite check` on its data.
    async fn stop_and_check(mut self) {
        self.signal("-TERM");
        assert!(self.exited(Duration::from_secs(15)).await.success());
        check(&self);
    }

    /// Runs the batch command `name` (`check`, `rebuild-cache`) on the server's store and
    /// Redis; what it printed, once it succeeded.
    fn batch(&self, name: &str) -> String {
        let out = command(&self.data_dir, &self.redis_url, &self.prefix)
            .arg(name)
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{name} failed: {said}");
        said
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the load's clients were told succeeded.
#[derive(Default, Debug)]
struct Acked {
    /// (user token, video)
    likes: Vec<(String, i64)>,
    /// (video, comment id)
    comments: Vec<(i64, i64)>,
    /// (follower token, followee)
    follows: Vec<(String, i64)>,
    /// (sender token, receiver, content)
    messages: Vec<(String, i64, String)>,
    /// Requests that were sent but got no answer (a reset or a cut connection).
    dropped: usize,
}

/// A world to write into: an author with videos, and `n` writers who know them.
struct World {
    videos: Vec<i64>,
    /// (id, token)
    users: Vec<(i64, String)>,
}

async fn post(c: &reqwest::Client, base: &str, path: &str, q: &[(&str, String)]) -> Value {
    c.post(format!("{base}{path}"))
        .query(q)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn world(base: &str, n: usize) -> World {
    let c = reqwest::Client::new();
    let mut users = Vec::new();
    for i in 0..=n {
        let v = post(
            &c,
            base,
            "/douyin/user/register/",
            &[
                ("username", format!("crash_{i}_{:x}", rand_u64() & 0xffff)),
                ("password", "secret123".into()),
            ],
        )
        .await;
        assert_eq!(code(&v), 0, "{v}");
        users.push((
            v["user_id"].as_i64().unwrap(),
            v["token"].as_str().unwrap().to_string(),
        ));
    }
    let mut videos = Vec::new();
    for i in 0..6 {
        let v: Value = c
            .post(format!("{base}/douyin/publish/actionUrl/"))
            .json(&json!({"token": users[0].1, "url": format!("https://cdn.example.com/{i}.mp4"), "title": format!("v{i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        videos.push(v["vid"].as_i64().unwrap());
    }
    // every writer reads the feed and everyone's profile, as a client does: afterwards the
    // server knows them (near-cache facts) and writes need no Redis read
    for (_, t) in &users {
        let _ = c
            .get(format!("{base}/douyin/feed/"))
            .query(&[("token", t)])
            .send()
            .await
            .unwrap();
        for (id, _) in &users {
            let _ = c
                .get(format!("{base}/douyin/user/"))
                .query(&[("user_id", id.to_string()), ("token", t.clone())])
                .send()
                .await
                .unwrap();
        }
    }
    World { videos, users }
}

/// Runs one writer per user (but the author) until `stop` or until the server refuses
/// connections: likes, comments, follows and messages, never undone, so that every
/// acknowledged one must be there afterwards.
fn load(
    base: &str,
    w: &World,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<tokio::sync::Notify>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let others: Vec<i64> = w.users.iter().map(|(id, _)| *id).collect();
    w.users[1..]
        .iter()
        .enumerate()
        .map(|(k, (me, token))| {
            let (base, token, me) = (base.to_string(), token.clone(), *me);
            let (videos, others) = (w.videos.clone(), others.clone());
            let (acked, stop) = (acked.clone(), stop.clone());
            tokio::spawn(async move {
                let c = reqwest::Client::new();
                let stopped = stop.notified();
                tokio::pin!(stopped);
                for i in 0usize.. {
                    let (path, q): (&str, Vec<(&str, String)>) = match i % 4 {
                        0 => (
                            "/douyin/favorite/action/",
                            vec![
                                ("video_id", videos[(i / 4 + k) % videos.len()].to_string()),
                                ("action_type", "1".into()),
                            ],
                        ),
                        1 => (
                            "/douyin/comment/action/",
                            vec![
                                ("video_id", videos[(i + k) % videos.len()].to_string()),
                                ("action_type", "1".into()),
                                ("comment_text", format!("c{me}-{i}")),
                            ],
                        ),
                        2 => (
                            "/douyin/relation/action/",
                            vec![
                                (
                                    "to_user_id",
                                    others[(i / 4 + k + 1) % others.len()].to_string(),
                                ),
                                ("action_type", "1".into()),
                            ],
                        ),
                        _ => (
                            "/douyin/message/action/",
                            vec![
                                (
                                    "to_user_id",
                                    others[(i / 4 + k + 2) % others.len()].to_string(),
                                ),
                                ("action_type", "1".into()),
                                ("content", format!("m{me}-{i}")),
                            ],
                        ),
                    };
                    let mut q = q;
                    q.push(("token", token.clone()));
                    let send = c.post(format!("{base}{path}")).query(&q).send();
                    let r = tokio::select! {
                        r = send => r,
                        _ = &mut stopped => return,
                    };
                    let v: Value = match r {
                        Ok(r) => match r.json().await {
                            Ok(v) => v,
                            Err(_) => {
                                acked.lock().unwrap().dropped += 1;
                                return;
                            }
                        },
                        Err(e) if e.is_connect() => return,
                        Err(_) => {
                            acked.lock().unwrap().dropped += 1;
                            return;
                        }
                    };
                    if code(&v) != 0 {
                        continue;
                    }
                    let mut a = acked.lock().unwrap();
                    let arg = |n: &str| q.iter().find(|(k, _)| *k == n).unwrap().1.clone();
                    match i % 4 {
                        0 => a
                            .likes
                            .push((token.clone(), arg("video_id").parse().unwrap())),
                        1 => a.comments.push((
                            arg("video_id").parse().unwrap(),
                            v["comment"]["id"].as_i64().unwrap(),
                        )),
                        2 => a
                            .follows
                            .push((token.clone(), arg("to_user_id").parse().unwrap())),
                        _ => a.messages.push((
                            token.clone(),
                            arg("to_user_id").parse().unwrap(),
                            arg("content"),
                        )),
                    }
                }
            })
        })
        .collect()
}

async fn get(c: &reqwest::Client, base: &str, path: &str, q: &[(&str, String)]) -> Value {
    let v: Value = c
        .get(format!("{base}{path}"))
        .query(q)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(&v), 0, "{path}: {v}");
    v
}

/// The ids in `field` of what `path` lists.
async fn listed(
    c: &reqwest::Client,
    base: &str,
    path: &str,
    q: &[(&str, String)],
    field: &str,
) -> Vec<i64> {
    ids(&get(c, base, path, q).await[field])
}

/// Every acknowledged write is visible through `base`.
async fn all_there(base: &str, a: &Acked) {
    let c = reqwest::Client::new();
    for (token, vid) in &a.likes {
        let liked = listed(
            &c,
            base,
            "/douyin/favorite/list/",
            &[("token", token.clone())],
            "video_list",
        )
        .await;
        assert!(liked.contains(vid), "acknowledged like of {vid} lost");
    }
    for (vid, cid) in &a.comments {
        let q = [("video_id", vid.to_string())];
        let comments = listed(&c, base, "/douyin/comment/list/", &q, "comment_list").await;
        assert!(comments.contains(cid), "acknowledged comment {cid} lost");
    }
    for (token, to) in &a.follows {
        let q = [("token", token.clone())];
        let follows = listed(&c, base, "/douyin/relation/follow/list/", &q, "user_list").await;
        assert!(follows.contains(to), "acknowledged follow of {to} lost");
    }
    for (token, to, content) in &a.messages {
        let v = get(
            &c,
            base,
            "/douyin/message/chat/",
            &[("token", token.clone()), ("to_user_id", to.to_string())],
        )
        .await;
        let found = v["message_list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["content"] == content.as_str());
        assert!(found, "acknowledged message {content:?} lost");
    }
}

fn total(a: &Acked) -> usize {
    a.likes.len() + a.comments.len() + a.follows.len() + a.messages.len()
}

async fn until(acked: &Arc<Mutex<Acked>>, writes: usize) {
    for _ in 0..400 {
        if total(&acked.lock().unwrap()) >= writes {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the load made too few writes");
}

/// A server of its own (keys under `prefix`) on a Redis of its own, with writers loading it.
struct UnderLoad {
    redis: OwnRedis,
    server: Server,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<tokio::sync::Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn under_load(prefix: &str) -> UnderLoad {
    let redis = OwnRedis::start().await;
    let server = Server::start(Opts::new().data_dir, &redis.url, prefix).await;
    let w = world(&server.base, 6).await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let tasks = load(&server.base, &w, acked.clone(), stop.clone());
    UnderLoad {
        redis,
        server,
        acked,
        stop,
        tasks,
    }
}

#[tokio::test]
async fn kill_9_under_write_load_loses_no_acknowledged_write() {
    let UnderLoad {
        redis: _redis,
        server,
        acked,
        stop: _,
        tasks,
    } = under_load("k9:").await;
    until(&acked, 150).await;
    server.signal("-KILL");
    for t in tasks {
        t.await.unwrap();
    }
    let server = server.restart().await;
    let a = std::mem::take(&mut *acked.lock().unwrap());
    assert!(total(&a) >= 150);
    all_there(&server.base, &a).await;
    server.stop_and_check().await;
}

#[tokio::test]
async fn sigterm_under_load_answers_every_request_it_received() {
    let UnderLoad {
        redis: _redis,
        mut server,
        acked,
        stop: _,
        tasks,
    } = under_load("term:").await;
    until(&acked, 150).await;
    server.signal("-TERM");
    let status = server.exited(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    for t in tasks {
        t.await.unwrap();
    }
    let a = std::mem::take(&mut *acked.lock().unwrap());
    assert_eq!(a.dropped, 0, "requests sent but never answered");
    let server = server.restart().await;
    all_there(&server.base, &a).await;
    server.stop_and_check().await;
}

/// A graceful stop logs no error, and loses no line of the log. Shutting the listening socket
/// wakes ntex's paused acceptor, whose failed accept is expected then
/// (`telemetry::listener_shut`): it used to log "Error accepting socket" at error level on every
/// stop. The lines are written by a thread of their own (`telemetry.rs`), which the process
/// flushes before it exits.
#[tokio::test]
async fn sigterm_logs_no_error() {
    let redis = OwnRedis::start().await;
    let dir = Opts::new().data_dir;
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("stderr.log");
    let mut server = Server::start_logged(dir, &redis.url, &log).await;
    let c = reqwest::Client::new();
    for _ in 0..20 {
        let r = get(&c, &server.base, "/douyin/feed/", &[]).await;
        assert_eq!(r["status_code"], 0, "{r}");
    }
    server.signal("-TERM");
    let status = server.exited(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("ERROR"),
        "a graceful stop logged an error:\n{text}"
    );
    // every request's line, and the last line the process logs before it exits
    let feeds = text
        .lines()
        .filter(|l| l.contains(" request ") && l.contains(r#"path="/douyin/feed/""#))
        .count();
    assert_eq!(feeds, 20, "a line for each of the 20 requests:\n{text}");
    assert!(
        text.lines().any(|l| l.ends_with(" stopped")),
        "the stop's last line is missing:\n{text}"
    );
    // a file gets plain text, without a terminal's colour codes
    assert!(
        !text.contains('\x1b'),
        "colour codes in a log file:\n{text}"
    );
}

#[tokio::test]
async fn redis_killed_and_restarted_empty_under_load_loses_nothing() {
    let UnderLoad {
        mut redis,
        server,
        acked,
        stop,
        tasks,
    } = under_load("rk:").await;
    until(&acked, 100).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let redis = redis.restart().await;
    let after_restart = total(&acked.lock().unwrap());
    until(&acked, after_restart + 100).await;
    stop.notify_waiters();
    for t in tasks {
        t.await.unwrap();
    }
    let a = std::mem::take(&mut *acked.lock().unwrap());
    assert_eq!(a.dropped, 0);
    // the server finds its Redis again by itself
    let c = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..200 {
        let r = c
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the server did not find Redis again");
    all_there(&server.base, &a).await;
    server.stop_and_check().await;
    drop(redis);
}

/// `douyin-lite rebuild-cache`, the command (a batch job: no near-cache, no invalidation
/// subscription), fills an emptied Redis from the store: a server started on it then reads
/// every acknowledged write back without reloading anything, and every counter is in step.
#[tokio::test]
async fn the_rebuild_cache_command_refills_an_emptied_redis() {
    let UnderLoad {
        redis,
        mut server,
        acked,
        stop,
        tasks,
    } = under_load("rbc:").await;
    until(&acked, 100).await;
    stop.notify_waiters();
    for t in tasks {
        t.await.unwrap();
    }
    server.signal("-TERM");
    assert!(server.exited(Duration::from_secs(15)).await.success());
    let flushed = redis_cli(&redis.url, &["FLUSHALL"]);
    assert!(flushed.status.success(), "{flushed:?}");
    let said = server.batch("rebuild-cache");
    // the world: the author and six writers, six videos
    assert!(
        said.contains("rebuilt redis from the durable store: 7 users, 6 videos"),
        "{said}"
    );
    let server = server.restart().await;
    let a = std::mem::take(&mut *acked.lock().unwrap());
    all_there(&server.base, &a).await;
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let reloads = metrics
        .lines()
        .find_map(|l| l.strip_prefix("douyin_cache_reloads_total "))
        .unwrap_or("0");
    assert_eq!(reloads.trim(), "0", "reads reloaded from the store");
    server.stop_and_check().await;
    drop(redis);
}

/// Likes and unlikes, follows and unfollows of the same pairs through both instances at once.
async fn toggle_storm(bases: [&str; 2], w: &World, rounds: usize) {
    let mut tasks = Vec::new();
    for (k, (me, token)) in w.users[1..].iter().enumerate() {
        let me = *me;
        for (j, vid) in w.videos.iter().enumerate() {
            let (token, vid) = (token.clone(), *vid);
            let bases = [bases[0].to_string(), bases[1].to_string()];
            let other = w.users[(k + j) % w.users.len()].0;
            tasks.push(tokio::spawn(async move {
                let c = reqwest::Client::new();
                for r in 0..rounds {
                    let base = &bases[(r + j) % 2];
                    let on = if (r + k) % 3 == 2 { "2" } else { "1" };
                    let v = post(
                        &c,
                        base,
                        "/douyin/favorite/action/",
                        &[
                            ("token", token.clone()),
                            ("video_id", vid.to_string()),
                            ("action_type", on.into()),
                        ],
                    )
                    .await;
                    assert_eq!(code(&v), 0, "{v}");
                    let v = post(
                        &c,
                        base,
                        "/douyin/relation/action/",
                        &[
                            ("token", token.clone()),
                            ("to_user_id", other.to_string()),
                            ("action_type", on.into()),
                        ],
                    )
                    .await;
                    // following oneself is refused; everything else succeeds
                    assert_eq!(code(&v) == 0, other != me, "{v}");
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Runs `douyin-lite check` against the shared store and Redis (the CQL store can be checked
/// while instances run).
fn check(s: &Server) {
    let report = s.batch("check");
    assert!(report.contains("\"mismatches\":0"), "{report}");
}

#[tokio::test]
async fn two_instances_on_one_cql_store_stay_exact_and_lose_nothing_to_a_kill_9() {
    if !cql_enabled() {
        return; // the embedded store belongs to one process
    }
    let redis = OwnRedis::start().await;
    let (dir_a, dir_b) = (Opts::new().data_dir, Opts::new().data_dir);
    // one keyspace for both
    let keyspace = cql_config(&dir_a).keyspace;
    std::fs::write(dir_b.join("cql_keyspace"), keyspace).unwrap();
    let a = Server::start_node(dir_a.clone(), &redis.url, "two:", 1).await;
    // instances behind one load balancer share the token secret
    std::fs::copy(dir_a.join("jwt.secret"), dir_b.join("jwt.secret")).unwrap();
    let b = Server::start_node(dir_b, &redis.url, "two:", 2).await;
    let w = world(&a.base, 5).await;

    // storms of toggles through both, then every counter agrees with its records
    toggle_storm([&a.base, &b.base], &w, 12).await;
    check(&b);

    // never-undone writes through both; one instance dies in the middle
    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut tasks = load(&a.base, &w, acked.clone(), stop.clone());
    let acked_b = Arc::new(Mutex::new(Acked::default()));
    tasks.extend(load(&b.base, &w, acked_b.clone(), stop.clone()));
    until(&acked, 120).await;
    a.signal("-KILL");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.notify_waiters();
    for t in tasks {
        t.await.unwrap();
    }
    // the survivor replays what the dead one left (entries older than 5 s, every 5 s)
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut all = std::mem::take(&mut *acked.lock().unwrap());
    let from_b = std::mem::take(&mut *acked_b.lock().unwrap());
    assert!(total(&all) >= 120 && total(&from_b) > 0);
    all.likes.extend(from_b.likes);
    all.comments.extend(from_b.comments);
    all.follows.extend(from_b.follows);
    all.messages.extend(from_b.messages);
    all_there(&b.base, &all).await;
    check(&b);
    drop(a);
    b.stop_and_check().await;
}
