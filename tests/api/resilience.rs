use crate::helpers::*;
use douyin_lite::store::{
    embedded::EmbeddedStore, CommentRecord, OutboxEntry, OutboxOp, Store, UserRecord, VideoRecord,
};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a user sees: feed, info and publish lists of `users`.
async fn snapshot(app: &TestApp, users: &[i64]) -> Vec<Value> {
    let mut out = vec![app.get("/douyin/feed/", &[]).await["video_list"].clone()];
    for u in users {
        out.push(
            app.get("/douyin/user/", &[("user_id", u.to_string())])
                .await["user"]
                .clone(),
        );
        out.push(
            app.get("/douyin/publish/list/", &[("user_id", u.to_string())])
                .await["video_list"]
                .clone(),
        );
    }
    // URLs carry the server's address, which changes across restarts in tests
    let text = serde_json::to_string(&out)
        .unwrap()
        .replace(&app.base, "BASE");
    serde_json::from_str(&text).unwrap()
}

async fn populate(app: &TestApp) -> Vec<i64> {
    let (a, ta) = app.register("res_a").await;
    let (b, tb) = app.register("res_b").await;
    let v = app.upload(&ta, "uploaded", sample_mp4().await).await;
    assert_eq!(code(&v), 0, "{v}");
    for (t, title) in [(&tb, "one"), (&tb, "two"), (&ta, "three")] {
        let v = app
            .post_json(
                "/douyin/publish/actionUrl",
                json!({"token": t, "url": "https://cdn.example.com/x.mp4", "title": title}),
            )
            .await;
        assert_eq!(code(&v), 0);
    }
    let feed = app.get("/douyin/feed/", &[]).await;
    let play = feed["video_list"][3]["play_url"]
        .as_str()
        .unwrap()
        .to_string();
    app.client.get(play).send().await.unwrap();
    vec![a, b]
}

#[tokio::test]
async fn flushall_then_every_read_is_the_same() {
    let redis = OwnRedis::start().await;
    let mut o = Opts::new();
    o.redis_url = redis.url.clone();
    let app = spawn_with(o).await;
    let users = populate(&app).await;
    let before = snapshot(&app, &users).await;
    assert_eq!(before[0].as_array().unwrap().len(), 4);
    assert_eq!(before[0][3]["play_count"], 1);
    app.flush_redis().await;
    let reloads = app
        .state
        .cache
        .stats
        .reloads
        .load(std::sync::atomic::Ordering::Relaxed);
    let after = snapshot(&app, &users).await;
    assert_eq!(before, after);
    assert!(
        app.state
            .cache
            .stats
            .reloads
            .load(std::sync::atomic::Ordering::Relaxed)
            > reloads
    );
    // and writes after the flush land correctly
    let (_, tc) = app.register("res_c").await;
    let v = app
        .post_json(
            "/douyin/publish/actionUrl",
            json!({"token": tc, "url": "https://cdn.example.com/y.mp4", "title": "after"}),
        )
        .await;
    assert_eq!(code(&v), 0);
    app.flush_redis().await;
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(feed["video_list"].as_array().unwrap().len(), 5);
    assert_eq!(feed["video_list"][0]["title"], "after");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_misses_reload_each_key_once() {
    let redis = OwnRedis::start().await;
    let mut o = Opts::new();
    o.redis_url = redis.url.clone();
    let app = spawn_with(o).await;
    populate(&app).await;
    let before = app.get("/douyin/feed/", &[]).await["video_list"].clone();
    app.flush_redis().await;
    let r0 = app
        .state
        .cache
        .stats
        .reloads
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let c = app.client.clone();
        let url = app.url("/douyin/feed/");
        tasks.push(tokio::spawn(async move {
            c.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap()["video_list"], before);
    }
    let reloads = app
        .state
        .cache
        .stats
        .reloads
        .load(std::sync::atomic::Ordering::Relaxed)
        - r0;
    // one feed, 4 videos, 2 authors: 7 keys, each reloaded once
    assert_eq!(reloads, 7);
    app.stop().await;
}

#[tokio::test]
async fn restart_then_every_read_is_the_same() {
    let redis = OwnRedis::start().await;
    let o = Opts::new();
    let (dir, prefix) = (o.data_dir.clone(), o.prefix.clone());
    let mut o1 = Opts::new();
    o1.data_dir = dir.clone();
    o1.prefix = prefix.clone();
    o1.redis_url = redis.url.clone();
    let app = spawn_with(o1).await;
    let users = populate(&app).await;
    let before = snapshot(&app, &users).await;
    let (_, token) = (
        users[0],
        app.post_query(
            "/douyin/user/login/",
            &[
                ("username", "res_a".into()),
                ("password", "secret123".into()),
            ],
        )
        .await["token"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    app.stop().await;

    // same data dir, same Redis
    let mut o2 = Opts::new();
    o2.data_dir = dir.clone();
    o2.prefix = prefix.clone();
    o2.redis_url = redis.url.clone();
    let app = spawn_with(o2).await;
    assert_eq!(snapshot(&app, &users).await, before);
    // the token issued before the restart is still valid (the generated secret was kept)
    let v = app.get("/douyin/user/", &[("token", token.clone())]).await;
    assert_eq!(v["user"]["id"], users[0]);
    app.stop().await;

    // same data dir, Redis restarted empty
    drop(redis);
    let redis = OwnRedis::start().await;
    let mut o3 = Opts::new();
    o3.data_dir = dir;
    o3.prefix = prefix;
    o3.redis_url = redis.url.clone();
    let app = spawn_with(o3).await;
    assert_eq!(snapshot(&app, &users).await, before);
    // new IDs stay above the old ones
    let (c, _) = app.register("res_after").await;
    assert!(c > users[1]);
    app.stop().await;
}

#[tokio::test]
async fn rebuild_cache_and_outbox_replay() {
    let redis = OwnRedis::start().await;
    let mut o = Opts::new();
    o.redis_url = redis.url.clone();
    let app = spawn_with(o).await;
    let users = populate(&app).await;
    let before = snapshot(&app, &users).await;
    app.flush_redis().await;
    let done = app.state.cache.rebuild_all().await.unwrap();
    assert_eq!((done.users, done.videos), (2, 4));
    assert_eq!(snapshot(&app, &users).await, before);

    // a durable write whose Redis side never ran (a crash in between) is replayed
    let st = &app.state;
    let id = st.ids.next_id();
    let rec = VideoRecord {
        id,
        author_id: users[0],
        title: "orphan".into(),
        desc: String::new(),
        play: "https://cdn.example.com/o.mp4".into(),
        cover: String::new(),
        created_ms: douyin_lite::ids::time_ms(id),
    };
    let entry = OutboxEntry {
        id: st.ids.next_id(),
        op: OutboxOp::VideoPublished {
            video_id: id,
            author_id: users[0],
        },
    };
    st.store.put_video(&rec, &entry).await.unwrap();
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(
        feed["video_list"].as_array().unwrap().len(),
        4,
        "redis has not seen it yet"
    );
    assert_eq!(
        douyin_lite::write::outbox::replay(st, std::time::Duration::ZERO)
            .await
            .unwrap(),
        1
    );
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(feed["video_list"].as_array().unwrap().len(), 5);
    assert_eq!(feed["video_list"][0]["title"], "orphan");
    let v = app
        .get("/douyin/user/", &[("user_id", users[0].to_string())])
        .await;
    assert_eq!(v["user"]["work_count"], 3);
    assert!(st.store.pending_outbox(10).await.unwrap().is_empty());
    app.stop().await;
}

/// `rebuild-cache` loads users and videos in pipelined batches of 64: more than two batches
/// of videos, into a Redis that lost its scripts (restarted between the connect and the
/// rebuild), so the first batch's pipelined scripts all fail and each of its videos is loaded
/// alone, loading the script again; the batches after it go pipelined.
#[tokio::test]
async fn rebuild_cache_fills_many_batches_in_a_redis_without_its_scripts() {
    let redis = OwnRedis::start().await;
    let mut o = Opts::new();
    o.redis_url = redis.url.clone();
    let app = spawn_with(o).await;
    let mut users = populate(&app).await;
    let (c, tc) = app.register("res_many").await;
    users.push(c);
    for i in 0..150 {
        publish_url(&app, &tc, &format!("many {i}")).await;
    }
    let before = snapshot(&app, &users).await;
    app.flush_redis().await;
    let out = redis_cli(&app.redis_url, &["SCRIPT", "FLUSH"]);
    assert!(out.status.success(), "{out:?}");
    let done = app.state.cache.rebuild_all().await.unwrap();
    assert_eq!((done.users, done.videos), (3, 154));
    let singles = app
        .state
        .cache
        .stats
        .rebuild_singles
        .load(Ordering::Relaxed);
    assert!(
        singles >= 3,
        "the first batch's users loaded alone: {singles}"
    );
    let reloads = || app.state.cache.stats.reloads.load(Ordering::Relaxed);
    let loaded = reloads();
    assert_eq!(snapshot(&app, &users).await, before);
    let list = app
        .get("/douyin/publish/list/", &[("user_id", c.to_string())])
        .await;
    assert_eq!(list["video_list"].as_array().unwrap().len(), 150, "{list}");
    assert_eq!(
        reloads(),
        loaded,
        "the rebuild left a user or a video for a read to load from the store"
    );
    app.stop().await;
}

/// `rebuild-cache` is a batch job: a Redis that stops answering for a while (busy, restarting)
/// makes it wait and go on, not fail.
#[tokio::test]
async fn rebuild_cache_waits_out_a_stalled_redis() {
    let redis = OwnRedis::start().await;
    let mut o = Opts::new();
    o.redis_url = redis.url.clone();
    let app = spawn_with(o).await;
    let users = populate(&app).await;
    let before = snapshot(&app, &users).await;
    app.flush_redis().await;
    let pid = redis_pid(&redis).to_string();
    let signal = |sig: &str| {
        let done = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(done.success());
    };
    signal("-STOP");
    let resume = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!app.state.cache.health.is_up(), "the prober saw the stall");
        signal("-CONT");
    };
    // a rebuild that gave up would end with an error before the stall ends
    let (done, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(20), app.state.cache.rebuild_all()),
        resume
    );
    let done = done.expect("the rebuild finishes once redis answers");
    let done = done.unwrap();
    assert_eq!((done.users, done.videos), (2, 4));
    assert_eq!(snapshot(&app, &users).await, before);
    app.stop().await;
}

#[tokio::test]
async fn redis_down_is_reported_as_unavailable_quickly_and_service_comes_back() {
    let mut redis = OwnRedis::start().await;
    let mut o = Opts::new();
    o.redis_url = redis.url.clone();
    let app = spawn_with(o).await;
    let (uid, token) = app.register("down").await;
    // a request already waiting on Redis when it dies is answered too: park one on a
    // hung Redis (SIGSTOP), then kill it
    let stopped = Command::new("kill")
        .args(["-STOP", &redis_pid(&redis).to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let started = Instant::now();
    let v = app
        .get(
            "/douyin/relation/follower/list/",
            &[("user_id", uid.to_string())],
        )
        .await;
    assert_eq!(code(&v), 10012, "{v}");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(1500),
        "answered within the probe bound, not the 3 s command timeout: {waited:?}"
    );
    redis.kill();
    let started = Instant::now();
    let v = app
        .get("/douyin/user/", &[("user_id", uid.to_string())])
        .await;
    assert_eq!(code(&v), 10012, "{v}");
    assert!(
        !v["status_msg"].as_str().unwrap().contains("redis"),
        "internal details are not shown"
    );
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(started.elapsed() < Duration::from_millis(1500));
    // an empty Redis comes back on the same port: service resumes by itself, reloaded
    // from the durable store
    let _redis = redis.restart().await;
    let mut back = false;
    for _ in 0..60 {
        let v = app
            .get(
                "/douyin/user/",
                &[("user_id", uid.to_string()), ("token", token.clone())],
            )
            .await;
        if code(&v) == 0 {
            assert_eq!(v["user"]["name"], "down");
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "service did not resume after Redis came back");
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

/// The process id of `redis` (from its own INFO).
fn redis_pid(redis: &OwnRedis) -> u32 {
    let out = Command::new("redis-cli")
        .args(["-u", &redis.url, "INFO", "server"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
        .expect("redis INFO names its process id")
}

async fn store_suite(store: Arc<dyn Store>) {
    let u = UserRecord {
        id: 10,
        name: "n".into(),
        password_hash: "h".into(),
        avatar: String::new(),
        background_image: String::new(),
        signature: "s".into(),
        created_ms: 1,
    };
    let e = |id| OutboxEntry {
        id,
        op: OutboxOp::UserCreated { user_id: 10 },
    };
    assert!(store.create_user(&u, &e(100)).await.unwrap());
    let mut dup = u.clone();
    dup.id = 11;
    assert!(!store.create_user(&dup, &e(101)).await.unwrap());
    assert_eq!(store.get_user(10).await.unwrap(), Some(u.clone()));
    assert_eq!(store.get_user(11).await.unwrap(), None);
    assert_eq!(store.user_id_by_name("n").await.unwrap(), Some(10));
    // many concurrent writes are grouped into fewer fsyncs
    let s0 = store.stats();
    let mut tasks = Vec::new();
    for i in 0..200i64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let v = VideoRecord {
                id: 1000 + i,
                author_id: 10,
                title: format!("t{i}"),
                desc: String::new(),
                play: "p".into(),
                cover: "c".into(),
                created_ms: i,
            };
            store
                .put_video(
                    &v,
                    &OutboxEntry {
                        id: 5000 + i,
                        op: OutboxOp::VideoPublished {
                            video_id: 1000 + i,
                            author_id: 10,
                        },
                    },
                )
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s1 = store.stats();
    assert_eq!(s1.durable_writes - s0.durable_writes, 200);
    assert!(
        s1.fsyncs - s0.fsyncs < 200,
        "group commit shares fsyncs: {s0:?} -> {s1:?}"
    );
    let by_author = store.video_ids_by_author(10).await.unwrap();
    assert_eq!(by_author.len(), 200);
    assert_eq!(by_author[0], 1199, "newest first");
    assert_eq!(
        store.feed_ids(5).await.unwrap(),
        vec![1199, 1198, 1197, 1196, 1195]
    );
    assert_eq!(store.get_video(1005).await.unwrap().unwrap().title, "t5");
    assert_eq!(store.scan_videos(1195, 100).await.unwrap().len(), 4);
    assert_eq!(store.scan_users(0, 10).await.unwrap(), vec![u]);
    store.add_play(1000, "ip:1.2.3.4").await.unwrap();
    store.add_play(1000, "ip:1.2.3.4").await.unwrap();
    store.add_play(1000, "u:9").await.unwrap();
    assert_eq!(store.plays(1000).await.unwrap().len(), 2);
    assert_eq!(store.plays(1001).await.unwrap().len(), 0);
    assert_eq!(store.max_id().await.unwrap(), 5199);
    let pending = store.pending_outbox(1000).await.unwrap();
    assert_eq!(pending.len(), 201);
    assert_eq!(pending[0].id, 100);
    store.outbox_done(100).await.unwrap();
    assert_eq!(store.pending_outbox(1).await.unwrap()[0].id, 5000);

    // likes: idempotent, counted on the liker, the video and the author
    let e = |id| OutboxEntry {
        id,
        op: OutboxOp::LikeChanged {
            user_id: 20,
            video_id: 1000,
            author_id: 10,
        },
    };
    let ch = store
        .set_like(20, 1000, 10, true, 9001, &e(9001))
        .await
        .unwrap();
    assert!(ch.changed);
    assert_eq!((ch.liker.favorite_count, ch.liker.like_version), (1, 1));
    assert_eq!(
        (ch.author.total_favorited, ch.author.received_version),
        (1, 1)
    );
    assert_eq!((ch.video.favorite_count, ch.video.favorite_version), (1, 1));
    let again = store
        .set_like(20, 1000, 10, true, 9002, &e(9002))
        .await
        .unwrap();
    assert!(!again.changed);
    assert_eq!(again.video.favorite_count, 1);
    store
        .set_like(20, 1001, 10, true, 9003, &e(9003))
        .await
        .unwrap();
    assert_eq!(
        store.likes_by_user(20).await.unwrap(),
        vec![(9003, 1001), (9001, 1000)]
    );
    assert_eq!(store.count_likers(1000).await.unwrap(), 1);
    let un = store
        .set_like(20, 1000, 10, false, 9004, &e(9004))
        .await
        .unwrap();
    assert!(un.changed);
    assert_eq!((un.liker.favorite_count, un.liker.like_version), (1, 3));
    assert_eq!(store.count_likers(1000).await.unwrap(), 0);
    assert_eq!(store.user_counters(10).await.unwrap().total_favorited, 1);
    assert_eq!(store.video_counters(1000).await.unwrap().favorite_count, 0);
    // own video: one user, both counters
    let own = store
        .set_like(10, 1000, 10, true, 9005, &e(9005))
        .await
        .unwrap();
    assert_eq!(
        (own.liker.favorite_count, own.liker.total_favorited),
        (1, 2)
    );
    assert_eq!(own.author, own.liker);

    // comments
    let c = |id, reply| CommentRecord {
        id,
        video_id: 1000,
        user_id: 20,
        content: format!("c{id}"),
        reply_id: reply,
        created_ms: id,
    };
    let ce = |id| OutboxEntry {
        id,
        op: OutboxOp::CommentChanged {
            video_id: 1000,
            comment_id: id,
        },
    };
    assert_eq!(
        store
            .add_comment(&c(7001, 0), &ce(7001))
            .await
            .unwrap()
            .comment_count,
        1
    );
    assert_eq!(
        store
            .add_comment(&c(7002, 7001), &ce(7002))
            .await
            .unwrap()
            .comment_count,
        2
    );
    assert_eq!(
        store.comment_ids_by_video(1000).await.unwrap(),
        vec![7002, 7001]
    );
    assert_eq!(
        store.get_comment(7002).await.unwrap().unwrap().reply_id,
        7001
    );
    let after = store
        .delete_comment(7001, &ce(7003))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((after.comment_count, after.comment_version), (1, 3));
    assert_eq!(store.delete_comment(7001, &ce(7004)).await.unwrap(), None);
    assert_eq!(store.get_comment(7001).await.unwrap(), None);
    assert_eq!(store.comment_ids_by_video(1000).await.unwrap(), vec![7002]);
    store.flush().await.unwrap();
}

#[tokio::test]
async fn embedded_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    store_suite(Arc::new(EmbeddedStore::open(dir.path()).unwrap())).await;
    // reopening finds everything
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(s.video_ids_by_author(10).await.unwrap().len(), 200);
}

#[tokio::test]
async fn single_evicted_keys_are_reloaded_whole() {
    let app = spawn_app().await;
    let (a, ta) = app.register("ev_a").await;
    let (b, tb) = app.register("ev_b").await;
    let v = app
        .post_json(
            "/douyin/publish/actionUrl",
            json!({"token": ta, "url": "https://cdn.example.com/e.mp4", "title": "e"}),
        )
        .await;
    let vid = v["vid"].as_i64().unwrap();
    let like = |t: String| {
        let app = &app;
        async move {
            app.post_query(
                "/douyin/favorite/action/",
                &[
                    ("token", t),
                    ("video_id", vid.to_string()),
                    ("action_type", "1".into()),
                ],
            )
            .await
        }
    };
    assert_eq!(code(&like(tb.clone()).await), 0);
    let v = app
        .post_query(
            "/douyin/relation/action/",
            &[
                ("token", tb.clone()),
                ("to_user_id", a.to_string()),
                ("action_type", "1".into()),
            ],
        )
        .await;
    assert_eq!(code(&v), 0);
    let snap = || async {
        (
            app.get("/douyin/feed/", &[("token", tb.clone())]).await,
            app.get("/douyin/favorite/list/", &[("user_id", b.to_string())])
                .await,
            app.get(
                "/douyin/relation/follower/list/",
                &[("user_id", a.to_string())],
            )
            .await,
            app.get("/douyin/user/", &[("user_id", b.to_string())])
                .await,
        )
    };
    let before = snap().await;
    // evict one key at a time, as an LRU eviction would, and read again
    let keys = &app.state.cache.keys;
    for key in [
        keys.user_likes(b),
        keys.user_following(b),
        keys.user_followers(a),
        keys.user(a),
        keys.video(vid),
        keys.video_comments(vid),
        keys.feed(),
    ] {
        let out = redis_cli(&app.redis_url, &["DEL", &key]);
        assert!(out.status.success());
        assert_eq!(snap().await, before, "after evicting {key}");
    }
    // and a write that finds its key evicted still lands
    let key = keys.user_likes(b);
    redis_cli(&app.redis_url, &["DEL", &key]);
    let v = app
        .post_query(
            "/douyin/favorite/action/",
            &[
                ("token", tb.clone()),
                ("video_id", vid.to_string()),
                ("action_type", "2".into()),
            ],
        )
        .await;
    assert_eq!(code(&v), 0);
    let fav = app
        .get("/douyin/favorite/list/", &[("user_id", b.to_string())])
        .await;
    assert_eq!(fav["video_list"].as_array().unwrap().len(), 0);
    assert_eq!(
        app.get("/douyin/user/", &[("user_id", b.to_string())])
            .await["user"]["favorite_count"],
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn likes_follows_and_messages_written_during_a_redis_gap_are_replayed() {
    let app = spawn_app().await;
    let (a, ta) = app.register("gap_a").await;
    let (b, tb) = app.register("gap_b").await;
    let v = app
        .post_json(
            "/douyin/publish/actionUrl",
            json!({"token": ta, "url": "https://cdn.example.com/g.mp4", "title": "g"}),
        )
        .await;
    let vid = v["vid"].as_i64().unwrap();
    // warm the cache, then write durably only (as if the process died before its Redis side)
    let _ = app.get("/douyin/feed/", &[("token", tb.clone())]).await;
    let _ = app
        .get(
            "/douyin/user/",
            &[("user_id", a.to_string()), ("token", tb.clone())],
        )
        .await;
    let st = &app.state;
    let e1 = OutboxEntry {
        id: st.ids.next_id(),
        op: OutboxOp::LikeChanged {
            user_id: b,
            video_id: vid,
            author_id: a,
        },
    };
    assert!(
        st.store
            .set_like(b, vid, a, true, st.ids.next_id(), &e1)
            .await
            .unwrap()
            .changed
    );
    let e2 = OutboxEntry {
        id: st.ids.next_id(),
        op: OutboxOp::FollowChanged {
            follower: b,
            followee: a,
        },
    };
    assert!(
        st.store
            .set_follow(b, a, true, st.ids.next_id(), &e2)
            .await
            .unwrap()
            .changed
    );
    let mid = st.ids.next_id();
    let m = douyin_lite::store::MessageRecord {
        id: mid,
        from_user_id: b,
        to_user_id: a,
        content: "late".into(),
        created_ms: douyin_lite::ids::time_ms(mid),
    };
    let _ = app
        .get(
            "/douyin/message/chat/",
            &[("token", ta.clone()), ("to_user_id", b.to_string())],
        )
        .await;
    let e3 = OutboxEntry {
        id: st.ids.next_id(),
        op: OutboxOp::MessageSent { from: b, to: a },
    };
    st.store.add_message(&m, &e3).await.unwrap();
    assert_eq!(
        app.get("/douyin/user/", &[("user_id", a.to_string())])
            .await["user"]["total_favorited"],
        0,
        "redis has not seen it"
    );
    assert_eq!(
        douyin_lite::write::outbox::replay(st, std::time::Duration::ZERO)
            .await
            .unwrap(),
        3
    );
    let ua = app
        .get(
            "/douyin/user/",
            &[("user_id", a.to_string()), ("token", tb.clone())],
        )
        .await["user"]
        .clone();
    assert_eq!(
        (
            ua["total_favorited"].as_i64(),
            ua["follower_count"].as_i64(),
            ua["is_follow"].as_bool()
        ),
        (Some(1), Some(1), Some(true))
    );
    let feed = app.get("/douyin/feed/", &[("token", tb.clone())]).await;
    assert_eq!(
        (
            feed["video_list"][0]["is_favorite"].as_bool(),
            feed["video_list"][0]["favorite_count"].as_i64()
        ),
        (Some(true), Some(1))
    );
    let chat = app
        .get(
            "/douyin/message/chat/",
            &[("token", ta.clone()), ("to_user_id", b.to_string())],
        )
        .await;
    assert_eq!(chat["message_list"][0]["content"], "late");
    app.stop().await;
}

#[tokio::test]
async fn a_reload_cancelled_midway_does_not_block_later_reloads() {
    let app = spawn_app().await;
    let (a, _) = app.register("cancel_me").await;
    let cache = app.state.cache.clone();
    for i in 0..40u64 {
        cache
            .replay(&OutboxOp::UserCreated { user_id: a })
            .await
            .unwrap();
        // give up on the reload at some point of its way (a client that went away)
        let _ = tokio::time::timeout(
            std::time::Duration::from_micros(50 * (i % 8)),
            cache.ensure_user(a),
        )
        .await;
        let v = app
            .get("/douyin/user/", &[("user_id", a.to_string())])
            .await;
        assert_eq!(v["user"]["name"], "cancel_me", "round {i}: {v}");
    }
    app.stop().await;
}

#[tokio::test]
async fn changes_applied_out_of_order_end_in_the_newest_state() {
    use douyin_lite::cache::versioned::{UserAspect, ZsetOp};
    use douyin_lite::store::UserCounters;
    let app = spawn_app().await;
    let (u, _) = app.register("order").await;
    let _ = app.user(u).await;
    let cache = &app.state.cache;
    let at = |v: i64, count: i64| UserCounters {
        like_version: v,
        favorite_count: count,
        ..Default::default()
    };
    // like video 5 (v1), unlike it (v2), like video 6 (v3): applied as v3, v2, v1
    cache
        .apply_user(
            u,
            &at(3, 1),
            UserAspect::Likes,
            ZsetOp::Add {
                member: 6,
                score: 30,
                version: 1,
            },
        )
        .await
        .unwrap();
    cache
        .apply_user(
            u,
            &at(2, 0),
            UserAspect::Likes,
            ZsetOp::Remove {
                member: 5,
                version: 2,
            },
        )
        .await
        .unwrap();
    cache
        .apply_user(
            u,
            &at(1, 1),
            UserAspect::Likes,
            ZsetOp::Add {
                member: 5,
                score: 10,
                version: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        cache.user_liked_ids(u, 10).await.unwrap().unwrap(),
        vec![6],
        "the late like of 5 was older than its unlike"
    );
    assert_eq!(
        app.user(u).await["favorite_count"],
        1,
        "the newest count wins"
    );
    // a change already contained in a reload is not applied again
    cache
        .replay(&douyin_lite::store::OutboxOp::UserCreated { user_id: u })
        .await
        .unwrap();
    let _ = app.user(u).await;
    cache
        .apply_user(
            u,
            &at(0, 7),
            UserAspect::Likes,
            ZsetOp::Add {
                member: 9,
                score: 90,
                version: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        cache.user_liked_ids(u, 10).await.unwrap().unwrap(),
        Vec::<i64>::new()
    );
    assert_eq!(app.user(u).await["favorite_count"], 0);
    app.stop().await;
}

/// The changes of 20 writes made at once on one thread: on a single Redis they share script
/// calls (two: a call carries 48 changes at most); every change lands, each on its own user.
#[tokio::test]
async fn concurrent_changes_share_calls_and_all_land() {
    use douyin_lite::cache::versioned::{UserAspect, ZsetOp};
    use douyin_lite::store::UserCounters;
    let app = spawn_app().await;
    let mut users = Vec::new();
    for i in 0..20 {
        let (u, _) = app.register(&format!("batch{i}")).await;
        let _ = app.user(u).await;
        users.push(u);
    }
    let cache = &app.state.cache;
    let counters = UserCounters {
        like_version: 1,
        favorite_count: 1,
        follow_version: 1,
        follow_count: 1,
        follower_version: 1,
        follower_count: 1,
        ..Default::default()
    };
    let add = |member: i64| ZsetOp::Add {
        member,
        score: member,
        version: 1,
    };
    let rt = cache.stats.round_trips.load(Ordering::Relaxed);
    let writes = users.iter().enumerate().map(|(i, &u)| {
        let i = i as i64;
        cache.apply(vec![
            cache.user_change(u, &counters, UserAspect::Likes, add(1000 + i)),
            cache.user_change(u, &counters, UserAspect::Follows, add(2000 + i)),
            cache.user_change(u, &counters, UserAspect::Followers, add(3000 + i)),
        ])
    });
    for r in futures_util::future::join_all(writes).await {
        r.unwrap();
    }
    if !redis_is_cluster(&redis_url()) {
        assert_eq!(
            cache.stats.round_trips.load(Ordering::Relaxed) - rt,
            2,
            "60 changes made at once should take two script calls"
        );
        let text = app.metrics_text().await;
        assert!(
            text.contains("douyin_cache_apply_batch_changes_bucket{le=\"64\"}"),
            "/metrics lacks the batch sizes:\n{text}"
        );
    }
    for (i, &u) in users.iter().enumerate() {
        assert_eq!(
            cache.user_liked_ids(u, 10).await.unwrap().unwrap(),
            vec![1000 + i as i64]
        );
        let v = app.user(u).await;
        assert_eq!(
            (
                &v["favorite_count"],
                &v["follow_count"],
                &v["follower_count"]
            ),
            (&json!(1), &json!(1), &json!(1)),
            "user {i}: {v}"
        );
    }
    app.stop().await;
}

/// A write whose request goes away (its client hung up) after its change joined a call does
/// not take the other writes' changes with it, nor its own: the call is made by a task of its
/// own.
#[tokio::test]
async fn a_dropped_write_leaves_the_shared_call_whole() {
    use douyin_lite::cache::versioned::{UserAspect, ZsetOp};
    use douyin_lite::store::UserCounters;
    use futures_util::FutureExt;
    let app = spawn_app().await;
    let (a, _) = app.register("dropped_a").await;
    let (b, _) = app.register("dropped_b").await;
    let _ = (app.user(a).await, app.user(b).await);
    let cache = &app.state.cache;
    let liked = |member: i64| {
        (
            UserCounters {
                like_version: 1,
                favorite_count: 1,
                ..Default::default()
            },
            ZsetOp::Add {
                member,
                score: member,
                version: 1,
            },
        )
    };
    let (ca, oa) = liked(7);
    let (cb, ob) = liked(8);
    // the first opens the call, the second joins it; the first is then dropped. On a Redis
    // Cluster each write makes its own call, which may be answered on its first poll.
    let cluster = redis_is_cluster(&redis_url());
    let mut first = Box::pin(cache.apply_user(a, &ca, UserAspect::Likes, oa));
    let mut second = Box::pin(cache.apply_user(b, &cb, UserAspect::Likes, ob));
    if let Some(done) = (&mut first).now_or_never() {
        assert!(cluster, "the first write did not wait for its call");
        done.unwrap();
    }
    let answered = (&mut second).now_or_never();
    assert!(
        cluster || answered.is_none(),
        "the second write did not wait"
    );
    drop(first);
    match answered {
        Some(done) => {
            drop(second);
            done.unwrap()
        }
        None => tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the joined write was answered")
            .unwrap(),
    }
    assert_eq!(cache.user_liked_ids(b, 10).await.unwrap().unwrap(), vec![8]);
    // the dropped write's change was in the call too (on a Redis Cluster each write makes its
    // own calls, and a dropped one is left to the outbox's replay)
    if cluster {
        app.stop().await;
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.user_liked_ids(a, 10).await.unwrap().unwrap() != vec![7] {
        assert!(
            Instant::now() < deadline,
            "the dropped write's change never landed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

/// A CQL node of the test's own (deploy/cql-node.sh), stopped on drop.
/// A CQL node of a test's own (deploy/cql-node.sh).
struct OwnCqlNode {
    svc: ScriptService,
    contact_point: String,
    /// The CA of its certificate, when it requires TLS.
    tls_ca: Option<String>,
}

impl OwnCqlNode {
    async fn start() -> OwnCqlNode {
        OwnCqlNode::start_with(false).await
    }

    async fn start_with(tls: bool) -> OwnCqlNode {
        let tls = if tls { "1" } else { "0" };
        let svc = ScriptService::start(
            "cql-node.sh",
            &[("CQL_NODE_HEAP", "512m"), ("CQL_NODE_TLS", tls)],
        )
        .await;
        OwnCqlNode {
            contact_point: svc
                .setting("DOUYIN_STORE__CQL__CONTACT_POINTS")
                .expect("the node's contact point"),
            tls_ca: svc.setting("DOUYIN_STORE__CQL__TLS_CA_FILE"),
            svc,
        }
    }

    /// Sends a signal to the node's JVM (STOP freezes it: the worst case, a node that hangs).
    fn signal(&self, sig: &str) {
        self.svc.signal("node.pid", sig);
    }
}

#[tokio::test]
async fn a_hung_cql_node_is_unavailable_at_once_and_service_comes_back() {
    if !cql_enabled() {
        return; // the CQL store's outage; the embedded store has none
    }
    let node = OwnCqlNode::start().await;
    let mut o = Opts::new();
    let contact = node.contact_point.clone();
    o.tweak = Box::new(move |c| {
        c.store.cql.contact_points = vec![contact];
        c.store.cql.request_timeout_ms = 1000;
    });
    let app = spawn_with(o).await;
    let (uid, token) = app.register("cql_outage").await;
    let vid = publish_url(&app, &token, "v").await;
    let like = |on: &'static str| like(&app, &token, vid, on);
    assert_eq!(code(&like("1").await), 0);
    let warm = app.get("/douyin/feed/", &[]).await;
    assert_eq!(warm["video_list"][0]["favorite_count"], 1, "{warm}");
    // an id that never existed (minted long ago): looked up once
    let ghost = [("user_id", "4242".to_string())];
    assert_ne!(code(&app.get("/douyin/user/", &ghost).await), 0);

    node.signal("-STOP");
    // a flood of lookups of it no longer reaches the (now hung) cluster: each answers at once
    let started = Instant::now();
    for _ in 0..50 {
        let v = app.get("/douyin/user/", &ghost).await;
        assert_ne!(code(&v), 10012, "the unknown id went to the cluster: {v}");
        assert_ne!(code(&v), 0, "{v}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let v = like("2").await;
    assert_eq!(code(&v), 10012, "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a hung node must not hang the request ({:?})",
        started.elapsed()
    );
    // reads served by Redis keep working
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(code(&feed), 0, "{feed}");

    node.signal("-CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = like("2").await;
        if code(&v) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "service did not come back: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // the unlike that failed was not half-applied: one like, then one unlike
    let info = app.user(uid).await;
    assert_eq!(info["favorite_count"], 0, "{info}");
    let video = app.get("/douyin/feed/", &[]).await["video_list"][0].clone();
    assert_eq!(video["favorite_count"], 0, "{video}");
    app.stop().await;
}

#[tokio::test]
async fn the_cql_store_speaks_tls_and_checks_the_node_certificate() {
    if !cql_enabled() {
        return; // the CQL store's connection; the embedded store has none
    }
    let node = OwnCqlNode::start_with(true).await;
    let ca = node.tls_ca.clone().expect("a TLS node prints its CA");
    let dir = Opts::new().data_dir;
    let mut cfg = cql_config(&dir);
    cfg.contact_points = vec![node.contact_point.clone()];
    cfg.connect_timeout_ms = 3000;
    // plain TCP to a node that requires TLS: refused, with a clear error
    assert!(douyin_lite::store::cql::migrate(&cfg).await.is_err());
    // TLS, but the node's certificate is signed by none of the trusted CAs: refused
    cfg.tls_ca_file = Some("/etc/ssl/certs/ca-certificates.crt".into());
    assert!(douyin_lite::store::cql::migrate(&cfg).await.is_err());
    // TLS with the node's CA: the whole app works over it
    cfg.tls_ca_file = Some(ca.into());
    douyin_lite::store::cql::migrate(&cfg).await.unwrap();
    let mut o = Opts::new();
    o.data_dir = dir;
    let tls = cfg.clone();
    o.tweak = Box::new(move |c| c.store.cql = tls);
    let app = spawn_with(o).await;
    let (uid, token) = app.register("tls_user").await;
    let vid = publish_url(&app, &token, "v").await;
    let v = like(&app, &token, vid, "1").await;
    assert_eq!(code(&v), 0, "{v}");
    assert_eq!(app.user(uid).await["favorite_count"], 1);
    app.stop().await;
}

/// Sets larger than one load script takes (`redis.load_chunk`, 100 here) are staged in chunks
/// and renamed into place: a user with 250 followers, 250 videos and 250 likes, a video with
/// 250 comments and 150 viewers, a conversation of 250 messages and a feed of 250 videos come
/// back whole, both through `rebuild-cache` and through a read's reload, and no staging key is
/// left behind.
#[tokio::test]
async fn large_sets_reload_whole_in_chunks() {
    use douyin_lite::store::{Import, MessageRecord, UserCounters, VideoCounters};
    const N: usize = 250;
    let redis = OwnRedis::start().await;
    let mut o = Opts::new();
    o.redis_url = redis.url.clone();
    o.tweak = Box::new(|c| c.redis.load_chunk = 100);
    let app = spawn_with(o).await;
    let st = &app.state;
    let (star, _) = app.register("big_star").await;
    let (fan, fan_token) = app.register("big_fan").await;
    let mut data = Import::default();
    let next = || st.ids.next_id();
    let followers: Vec<i64> = (0..N).map(|_| next()).collect();
    for (i, id) in followers.iter().enumerate() {
        data.users.push(UserRecord {
            id: *id,
            name: format!("big_follower_{i}"),
            password_hash: "unused".into(),
            avatar: String::new(),
            background_image: String::new(),
            signature: String::new(),
            created_ms: douyin_lite::ids::time_ms(*id),
        });
        data.follows.push((*id, star, next()));
    }
    let videos: Vec<i64> = (0..N).map(|_| next()).collect();
    for (i, id) in videos.iter().enumerate() {
        data.videos.push(VideoRecord {
            id: *id,
            author_id: star,
            title: format!("big video {i}"),
            desc: String::new(),
            play: format!("https://cdn.example.com/{i}.mp4"),
            cover: String::new(),
            created_ms: douyin_lite::ids::time_ms(*id),
        });
        data.likes.push((fan, *id, next()));
    }
    let hot = videos[0];
    let comments: Vec<i64> = (0..N).map(|_| next()).collect();
    for (i, id) in comments.iter().enumerate() {
        data.comments.push(CommentRecord {
            id: *id,
            video_id: hot,
            user_id: fan,
            content: format!("comment {i}"),
            reply_id: 0,
            created_ms: douyin_lite::ids::time_ms(*id),
        });
    }
    let messages: Vec<i64> = (0..N).map(|_| next()).collect();
    for (i, id) in messages.iter().enumerate() {
        let (from, to) = if i % 2 == 0 { (fan, star) } else { (star, fan) };
        data.messages.push(MessageRecord {
            id: *id,
            from_user_id: from,
            to_user_id: to,
            content: format!("message {i}"),
            created_ms: douyin_lite::ids::time_ms(*id),
        });
    }
    let n = N as i64;
    data.user_counters = vec![
        (
            star,
            UserCounters {
                follower_count: n,
                follower_version: n,
                total_favorited: n,
                received_version: n,
                ..Default::default()
            },
        ),
        (
            fan,
            UserCounters {
                favorite_count: n,
                like_version: n,
                ..Default::default()
            },
        ),
    ];
    data.user_counters.extend(followers.iter().map(|f| {
        (
            *f,
            UserCounters {
                follow_count: 1,
                follow_version: 1,
                ..Default::default()
            },
        )
    }));
    data.video_counters = videos
        .iter()
        .map(|v| {
            let comments = if *v == hot { n } else { 0 };
            let c = VideoCounters {
                favorite_count: 1,
                favorite_version: 1,
                comment_count: comments,
                comment_version: comments,
            };
            (*v, c)
        })
        .collect();
    st.store.import(data).await.unwrap();
    for i in 0..150 {
        st.store
            .add_play(hot, &format!("viewer-{i}"))
            .await
            .unwrap();
    }

    let newest_first = |ids: &[i64]| ids.iter().rev().copied().collect::<Vec<_>>();
    let check = |label: &'static str| {
        let app = &app;
        let (followers, videos, comments, messages) = (&followers, &videos, &comments, &messages);
        let fan_token = fan_token.clone();
        async move {
            let star_info = app.user(star).await;
            assert_eq!(star_info["follower_count"], N, "{label}: {star_info}");
            assert_eq!(star_info["work_count"], N, "{label}: {star_info}");
            assert_eq!(app.user(fan).await["favorite_count"], N, "{label}");
            let lists = [
                (
                    "/douyin/relation/follower/list/",
                    "user_id",
                    star,
                    "user_list",
                    followers,
                ),
                (
                    "/douyin/publish/list/",
                    "user_id",
                    star,
                    "video_list",
                    videos,
                ),
                (
                    "/douyin/favorite/list/",
                    "user_id",
                    fan,
                    "video_list",
                    videos,
                ),
                (
                    "/douyin/comment/list/",
                    "video_id",
                    hot,
                    "comment_list",
                    comments,
                ),
            ];
            for (path, param, id, field, want) in lists {
                let got = app
                    .walk_pages(path, &[(param, id.to_string())], field, 100)
                    .await;
                assert_eq!(got, newest_first(want), "{label}: {path}");
            }
            let feed = app.get("/douyin/feed/", &[]).await;
            assert_eq!(
                ids(&feed["video_list"])[0],
                videos[N - 1],
                "{label}: feed head"
            );
            let keys = &app.state.cache.keys;
            let feed = redis_cli(&app.redis_url, &["ZCARD", &keys.feed()]);
            let feed: usize = String::from_utf8_lossy(&feed.stdout)
                .trim()
                .parse()
                .unwrap();
            assert_eq!(
                feed,
                N + 1,
                "{label}: the feed's videos and its loaded marker"
            );
            let chat = app
                .get(
                    "/douyin/message/chat/",
                    &[
                        ("token", fan_token.clone()),
                        ("to_user_id", star.to_string()),
                    ],
                )
                .await;
            let got = ids(&chat["message_list"]);
            assert_eq!(got, *messages, "{label}: chat");
            let all = app
                .state
                .cache
                .conversation_page(fan, star, Some(0), 2 * N)
                .await
                .unwrap();
            let got: Vec<i64> = all.iter().map(|m| m.id).collect();
            assert_eq!(got.len(), N, "{label}: whole conversation");
            let plays = redis_cli(&app.redis_url, &["PFCOUNT", &keys.video_plays(hot)]);
            let plays: i64 = String::from_utf8_lossy(&plays.stdout)
                .trim()
                .parse()
                .unwrap();
            assert!((145..=155).contains(&plays), "{label}: {plays} viewers");
            let staged = redis_cli(&app.redis_url, &["KEYS", "*stg:*"]);
            assert!(staged.stdout.trim_ascii().is_empty(), "{label}: {staged:?}");
        }
    };
    let chunks = || st.cache.stats.staged_chunks.load(Ordering::Relaxed);
    app.flush_redis().await;
    let done = st.cache.rebuild_all().await.unwrap();
    assert_eq!((done.users, done.videos), (N + 2, N));
    // two chunks before each set's inline tail: the star's followers and videos, the fan's
    // likes, the hot video's comments, the feed (the viewers: one)
    let staged = chunks();
    assert!(staged >= 11, "{staged} chunks staged");
    assert_eq!(
        st.cache.stats.rebuild_singles.load(Ordering::Relaxed),
        1,
        "the long conversation loaded alone (staged), everything else in its batch"
    );
    check("rebuild-cache").await;
    app.flush_redis().await;
    check("reload on a miss").await;
    assert!(chunks() >= 2 * staged, "{} chunks staged", chunks());
    app.stop().await;
}
