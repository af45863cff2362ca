//! The near-cache, /metrics and the benchmark data set.

use crate::helpers::*;
use douyin_lite::ops::bench::{seed_bench, BenchSpec};
use douyin_lite::ops::check::check;
use douyin_lite::Config;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn round_trips(app: &TestApp) -> u64 {
    app.state.cache.stats.round_trips.load(Ordering::Relaxed)
}

#[tokio::test]
async fn a_warm_feed_page_costs_no_redis_round_trip() {
    let app = spawn_app().await;
    let (_, author) = app.register("near_author").await;
    let (_, viewer) = app.register("near_viewer").await;
    for i in 0..5 {
        publish_url(&app, &author, &format!("nv{i}")).await;
    }
    // warm: the reloads' own invalidation messages (videos, users, the viewer's sets and
    // session) arrive after the first reads
    for _ in 0..2 {
        app.get("/douyin/feed/", &[]).await;
        app.get("/douyin/feed/", &[("token", viewer.clone())]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let anon = app.get("/douyin/feed/", &[]).await;
    assert_eq!(anon["video_list"].as_array().unwrap().len(), 5);
    let rt = round_trips(&app);
    let again = app.get("/douyin/feed/", &[]).await;
    assert_eq!(again, {
        let mut a = anon.clone();
        a["next_time"] = again["next_time"].clone();
        a
    });
    assert_eq!(
        round_trips(&app) - rt,
        0,
        "a warm anonymous page went to redis"
    );
    let rt = round_trips(&app);
    let page = app.get("/douyin/feed/", &[("token", viewer.clone())]).await;
    assert_eq!(page["video_list"].as_array().unwrap().len(), 5);
    assert_eq!(
        round_trips(&app) - rt,
        0,
        "a warm page for a viewer went to redis (its liked/following sets are near-cached)"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_viewers_own_actions_show_at_once() {
    let app = spawn_app().await;
    let (aid, author) = app.register("own_author").await;
    let (uid, viewer) = app.register("own_viewer").await;
    publish_url(&app, &author, "own").await;
    let feed = app.get("/douyin/feed/", &[("token", viewer.clone())]).await;
    let vid = feed["video_list"][0]["id"].as_i64().unwrap();
    assert_eq!(feed["video_list"][0]["favorite_count"], 0);
    // the viewer's session and lists come to be held together (once the invalidations that
    // their own loading set off have arrived), and the reads after use them
    let t = Instant::now();
    while app.state.cache.near.viewer(uid).is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "no bundle of the viewer's session and lists after logged-in pages"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let again = app.get("/douyin/feed/", &[("token", viewer.clone())]).await;
        assert_eq!(again["video_list"][0]["is_favorite"], false);
    }
    let liked = like(&app, &viewer, vid, "1").await;
    assert_eq!(code(&liked), 0);
    assert_eq!(code(&follow(&app, &viewer, aid, "1").await), 0);
    // no waiting: the very next read shows both
    let v = &app.get("/douyin/feed/", &[("token", viewer.clone())]).await["video_list"][0];
    assert_eq!(v["favorite_count"], 1);
    assert_eq!(v["is_favorite"], true);
    assert_eq!(v["author"]["is_follow"], true);
    assert_eq!(v["author"]["follower_count"], 1);
    assert_eq!(v["author"]["total_favorited"], 1);
    // and undone, read twice (the second from the bundle kept by the first)
    assert_eq!(code(&like(&app, &viewer, vid, "2").await), 0);
    assert_eq!(code(&follow(&app, &viewer, aid, "2").await), 0);
    for _ in 0..2 {
        let v = &app.get("/douyin/feed/", &[("token", viewer.clone())]).await["video_list"][0];
        assert_eq!(v["is_favorite"], false);
        assert_eq!(v["author"]["is_follow"], false);
    }
    // a token logged out is refused at once, though its session was held with the lists
    let out = app
        .post_query("/douyin/user/logout/", &[("token", viewer.clone())])
        .await;
    assert_eq!(code(&out), 0, "{out}");
    let refused = app.get("/douyin/feed/", &[("token", viewer.clone())]).await;
    assert_eq!(code(&refused), 10003, "{refused}");
    app.stop().await;
}

/// Instance A with an author (who published one video) and a liker; returns their tokens.
async fn instance_a(name: &str) -> (TestApp, String, String) {
    let a = spawn_app().await;
    let (_, author) = a.register(&format!("{name}_author")).await;
    let (_, liker) = a.register(&format!("{name}_liker")).await;
    publish_url(&a, &author, name).await;
    // loads the feed into Redis from A's store (B's own store is empty)
    a.get("/douyin/feed/", &[]).await;
    (a, author, liker)
}

/// Instance B on A's Redis and key prefix and with A's token secret, so that A's tokens are
/// good at B; its own (empty) durable store, so B only reads.
async fn instance_b(a: &TestApp, tweak: impl FnOnce(&mut Config) + Send + 'static) -> TestApp {
    let mut o = Opts::new();
    o.prefix = a.state.cfg.redis.key_prefix.clone();
    o.redis_url = a.redis_url.clone();
    let secret = a.data_dir.join("jwt.secret");
    o.tweak = Box::new(move |c| {
        c.auth.jwt_secret_file = Some(secret);
        tweak(c);
    });
    spawn_with(o).await
}

/// Waits (up to 5 s) until `app`'s invalidation subscription is up.
async fn wait_for_tracking(app: &TestApp) {
    let t = Instant::now();
    while !app.state.cache.near.tracking.load(Ordering::Acquire) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "tracking never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Instance B shares A's Redis (not its durable store: B only reads here). With B's age bound
/// raised to a minute, only Redis's invalidation messages can make A's changes visible at B.
#[tokio::test]
async fn changes_through_another_instance_are_seen_within_a_second() {
    let (a, author, liker) = instance_a("multi").await;
    let b = instance_b(&a, |c| c.near.max_age_ms = 60_000).await;
    wait_for_tracking(&b).await;
    let first = b.get("/douyin/feed/", &[]).await;
    let vid = first["video_list"][0]["id"].as_i64().unwrap();
    assert_eq!(first["video_list"][0]["favorite_count"], 0);
    // B also holds the liker's own liked set, as the liker reads through B
    let mine = b.get("/douyin/feed/", &[("token", liker.clone())]).await;
    assert_eq!(mine["video_list"][0]["is_favorite"], false);
    let liked = like(&a, &liker, vid, "1").await;
    assert_eq!(code(&liked), 0);
    publish_url(&a, &author, "multi2").await;
    let t = Instant::now();
    loop {
        let feed = b.get("/douyin/feed/", &[]).await;
        let list = feed["video_list"].as_array().unwrap();
        let mine = b.get("/douyin/feed/", &[("token", liker.clone())]).await;
        let seen = list.len() == 2
            && list[1]["favorite_count"] == 1
            && list[1]["author"]["total_favorited"] == 1
            && mine["video_list"][1]["is_favorite"] == true;
        if seen {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "instance B still shows {feed} a second after the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // a logout at A: B, which holds the liker's session with their lists, refuses the token
    let out = a
        .post_query("/douyin/user/logout/", &[("token", liker.clone())])
        .await;
    assert_eq!(code(&out), 0, "{out}");
    let mine = || async { code(&b.get("/douyin/feed/", &[("token", liker.clone())]).await) };
    follows_within_a_second(&mine, 10003).await;
    b.stop().await;
    a.stop().await;
}

/// The ids in a list reply's `key` (`video_list` or `user_list`), in order.
fn ids(reply: &serde_json::Value, key: &str) -> Vec<i64> {
    reply[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {reply}"))
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect()
}

/// The id of the user whose token this is.
async fn me(app: &TestApp, token: &str) -> i64 {
    let u = app
        .get("/douyin/user/", &[("token", token.to_string())])
        .await;
    u["user"]["id"].as_i64().unwrap()
}

/// A user's five lists as `(publish, favorite, follow, follower, friend)` ids, read at `app`
/// by `user` with `token`.
async fn lists(app: &TestApp, user: i64, token: &str) -> [Vec<i64>; 5] {
    let q = |extra: bool| {
        let mut q = vec![("token", token.to_string())];
        if extra {
            q.push(("user_id", user.to_string()));
        }
        q
    };
    [
        ids(
            &app.get("/douyin/publish/list/", &q(true)).await,
            "video_list",
        ),
        ids(
            &app.get("/douyin/favorite/list/", &q(true)).await,
            "video_list",
        ),
        ids(
            &app.get("/douyin/relation/follow/list/", &q(true)).await,
            "user_list",
        ),
        ids(
            &app.get("/douyin/relation/follower/list/", &q(true)).await,
            "user_list",
        ),
        ids(
            &app.get("/douyin/relation/friend/list/", &q(false)).await,
            "user_list",
        ),
    ]
}

/// The publish, favorite, follow, follower and friend lists come from the near-cache once
/// warm (no round trip), and a change shows at once through the instance that made it and
/// within a second at another (B's age bound is a minute: only invalidations can do it).
#[tokio::test]
async fn user_lists_are_near_cached_and_changes_show_within_a_second() {
    let (a, author, liker) = instance_a("lists").await;
    let b = instance_b(&a, |c| c.near.max_age_ms = 60_000).await;
    wait_for_tracking(&b).await;
    let (aid, lid) = (me(&a, &author).await, me(&a, &liker).await);
    let first = b.get("/douyin/feed/", &[]).await;
    let vid = first["video_list"][0]["id"].as_i64().unwrap();
    for _ in 0..2 {
        for app in [&a, &b] {
            lists(app, aid, &author).await;
            lists(app, lid, &liker).await;
        }
        // the reloads' own invalidation messages arrive after the first reads
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rt = round_trips(&b);
    assert_eq!(lists(&b, aid, &author).await[0], vec![vid]);
    let none: [Vec<i64>; 5] = Default::default();
    assert_eq!(lists(&b, lid, &liker).await, none);
    assert_eq!(round_trips(&b) - rt, 0, "warm user lists went to redis");

    // through A: the liker likes the video and follows the author, who follows back and
    // publishes again
    assert_eq!(code(&like(&a, &liker, vid, "1").await), 0);
    follows(&a, &liker, aid, "1").await;
    follows(&a, &author, lid, "1").await;
    publish_url(&a, &author, "lists2").await;
    let want_liker = |l: &[Vec<i64>; 5]| {
        l[1] == vec![vid] && l[2] == vec![aid] && l[3] == vec![aid] && l[4] == vec![aid]
    };
    let want_author = |l: &[Vec<i64>; 5]| l[0].len() == 2 && l[0][1] == vid && l[4] == vec![lid];
    // at A, at once
    let (al, aa) = (lists(&a, lid, &liker).await, lists(&a, aid, &author).await);
    assert!(want_liker(&al) && want_author(&aa), "A: {al:?} {aa:?}");
    // at B, within a second
    let t = Instant::now();
    loop {
        let (bl, ba) = (lists(&b, lid, &liker).await, lists(&b, aid, &author).await);
        if want_liker(&bl) && want_author(&ba) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "instance B still shows {bl:?} {ba:?} a second after the changes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // an unfollow breaks the friendship at once where it was made
    follows(&a, &author, lid, "2").await;
    let al = lists(&a, lid, &liker).await;
    assert!(al[3].is_empty() && al[4].is_empty(), "{al:?}");
    b.stop().await;
    a.stop().await;
}

/// Follows or unfollows, which must succeed.
async fn follows(app: &TestApp, token: &str, to: i64, action: &str) {
    let r = follow(app, token, to, action).await;
    assert_eq!(code(&r), 0, "{r}");
}

/// Sends a message, which must succeed.
async fn send(app: &TestApp, token: &str, to: i64, content: &str) {
    let r = send_message(app, token, to, content).await;
    assert_eq!(code(&r), 0, "{r}");
}

/// What `token`'s user sees of the chat with `to`, as (content, create_time), and the latest
/// message their friend list shows with `to`, as (message, msgType).
async fn chat_view(
    app: &TestApp,
    token: &str,
    to: i64,
    pre_msg_time: i64,
) -> (Vec<(String, i64)>, (String, i64)) {
    let chat = app
        .get(
            "/douyin/message/chat/",
            &[
                ("token", token.to_string()),
                ("to_user_id", to.to_string()),
                ("pre_msg_time", pre_msg_time.to_string()),
            ],
        )
        .await;
    let msgs = chat["message_list"]
        .as_array()
        .unwrap_or_else(|| panic!("{chat}"))
        .iter()
        .map(|m| {
            let content = m["content"].as_str().unwrap().to_string();
            (content, m["create_time"].as_i64().unwrap())
        })
        .collect();
    let friends = app
        .get("/douyin/relation/friend/list/", &[("token", token.into())])
        .await;
    let f = friends["user_list"]
        .as_array()
        .unwrap_or_else(|| panic!("{friends}"))
        .iter()
        .find(|u| u["id"] == to)
        .unwrap_or_else(|| panic!("{to} is not in {friends}"));
    let latest = (
        f["message"].as_str().unwrap().to_string(),
        f["msgType"].as_i64().unwrap(),
    );
    (msgs, latest)
}

/// Chat polls and the friend list's latest messages come from the near-cache once warm, and a
/// new message shows at once through the instance that took it and within a second at
/// another (B's age bound is a minute: only invalidations can do it).
#[tokio::test]
async fn chat_polls_and_latest_messages_are_near_cached_and_new_ones_show_within_a_second() {
    let (a, author, liker) = instance_a("chat").await;
    let b = instance_b(&a, |c| c.near.max_age_ms = 60_000).await;
    wait_for_tracking(&b).await;
    let (aid, lid) = (me(&a, &author).await, me(&a, &liker).await);
    follows(&a, &liker, aid, "1").await;
    follows(&a, &author, lid, "1").await;
    send(&a, &liker, aid, "hello").await;
    // loads the conversation into Redis from A's store (B's own store is empty)
    chat_view(&a, &author, lid, 0).await;
    let (msgs, latest) = chat_view(&b, &author, lid, 0).await;
    assert_eq!(latest, ("hello".to_string(), 0));
    let hello_at = msgs[0].1;
    for _ in 0..2 {
        for app in [&a, &b] {
            chat_view(app, &author, lid, 0).await;
            chat_view(app, &liker, aid, hello_at).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rt = round_trips(&b);
    let (msgs, latest) = chat_view(&b, &author, lid, 0).await;
    assert_eq!(msgs, vec![("hello".to_string(), hello_at)]);
    assert_eq!(latest, ("hello".to_string(), 0));
    let (msgs, latest) = chat_view(&b, &liker, aid, hello_at).await;
    assert!(msgs.is_empty(), "{msgs:?}");
    assert_eq!(latest, ("hello".to_string(), 1));
    assert_eq!(round_trips(&b) - rt, 0, "warm chats went to redis");

    send(&a, &author, lid, "hi back").await;
    let want = |(msgs, latest): &(Vec<(String, i64)>, (String, i64))| {
        msgs.len() == 1 && msgs[0].0 == "hi back" && *latest == ("hi back".to_string(), 0)
    };
    let at_a = chat_view(&a, &liker, aid, hello_at).await;
    assert!(want(&at_a), "A: {at_a:?}");
    let t = Instant::now();
    loop {
        let at_b = chat_view(&b, &liker, aid, hello_at).await;
        if want(&at_b) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "instance B still shows {at_b:?} a second after the message"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.stop().await;
    a.stop().await;
}

fn page_hits(app: &TestApp) -> u64 {
    app.state.cache.near.stats.pages.load(Ordering::Relaxed)
}

/// A feed page is served whole (one lookup) while it is current, to anonymous readers as it
/// is and to viewers with their flags, and a change of one of its videos or authors, through
/// this instance or another (B's age bound is a minute, so only the invalidation can do it),
/// shows on the next read or within a second.
#[tokio::test]
async fn a_page_is_served_whole_until_a_video_or_author_changes() {
    let (a, _author, liker) = instance_a("page").await;
    let b = instance_b(&a, |c| c.near.max_age_ms = 60_000).await;
    wait_for_tracking(&b).await;
    let first = b.get("/douyin/feed/", &[]).await;
    let vid = first["video_list"][0]["id"].as_i64().unwrap();
    // the reload's own invalidation messages arrive after the first reads
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.get("/douyin/feed/", &[]).await;
    let hits = page_hits(&b);
    let again = b.get("/douyin/feed/", &[]).await;
    assert_eq!(again["video_list"], first["video_list"]);
    assert_eq!(page_hits(&b), hits + 1, "the warm page was served whole");

    // a like through A: the video's and the author's counts change at B
    assert_eq!(code(&like(&a, &liker, vid, "1").await), 0);
    let t = Instant::now();
    loop {
        let v = &b.get("/douyin/feed/", &[]).await["video_list"][0];
        if v["favorite_count"] == 1 && v["author"]["total_favorited"] == 1 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "instance B still shows {v} a second after the like"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // a follow through A: the author's follower count shows at A on the very next read (A's
    // own page is warm too), and at B within a second
    a.get("/douyin/feed/", &[]).await;
    a.get("/douyin/feed/", &[]).await;
    let aid = first["video_list"][0]["author"]["id"].as_i64().unwrap();
    let follow = a
        .post_query(
            "/douyin/relation/action/",
            &[
                ("token", liker.clone()),
                ("to_user_id", aid.to_string()),
                ("action_type", "1".into()),
            ],
        )
        .await;
    assert_eq!(code(&follow), 0, "{follow}");
    let v = &a.get("/douyin/feed/", &[]).await["video_list"][0];
    assert_eq!(v["author"]["follower_count"], 1, "{v}");
    let t = Instant::now();
    while b.get("/douyin/feed/", &[]).await["video_list"][0]["author"]["follower_count"] != 1 {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "instance B misses the follow a second later"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // a viewer gets the same page with their own flags
    let mine = b.get("/douyin/feed/", &[("token", liker.clone())]).await;
    assert_eq!(mine["video_list"][0]["is_favorite"], true);
    assert_eq!(mine["video_list"][0]["author"]["is_follow"], true);
    let hits = page_hits(&b);
    let again = b.get("/douyin/feed/", &[("token", liker.clone())]).await;
    assert_eq!(again["video_list"], mine["video_list"]);
    assert_eq!(
        page_hits(&b),
        hits + 1,
        "the viewer's page was not the kept one"
    );
    let anon = b.get("/douyin/feed/", &[]).await;
    assert_eq!(anon["video_list"][0]["is_favorite"], false);
    assert_eq!(anon["video_list"][0]["author"]["is_follow"], false);
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn without_tracking_the_age_bound_still_holds() {
    let (a, _, liker) = instance_a("age").await;
    let b = instance_b(&a, |c| {
        c.near.tracking = false;
        c.near.max_age_ms = 300;
    })
    .await;
    let vid = b.get("/douyin/feed/", &[]).await["video_list"][0]["id"]
        .as_i64()
        .unwrap();
    let liked = like(&a, &liker, vid, "1").await;
    assert_eq!(code(&liked), 0);
    // B cannot know yet...
    let stale = b.get("/douyin/feed/", &[]).await;
    assert_eq!(stale["video_list"][0]["favorite_count"], 0);
    // ...but does once the entry is older than max_age_ms
    tokio::time::sleep(Duration::from_millis(350)).await;
    let fresh = b.get("/douyin/feed/", &[]).await;
    assert_eq!(fresh["video_list"][0]["favorite_count"], 1);
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn metrics_report_routes_errors_the_near_cache_and_group_commits() {
    let app = spawn_app().await;
    let (_, t) = app.register("metrics_user").await;
    publish_url(&app, &t, "m").await;
    app.get("/douyin/feed/", &[]).await;
    app.get("/douyin/feed/", &[]).await;
    let bad = app
        .get("/douyin/feed/", &[("token", "not-a-token".into())])
        .await;
    assert_ne!(code(&bad), 0);
    wait_for_tracking(&app).await;
    let text = app.metrics_text().await;
    for want in [
        "douyin_http_requests_total{route=\"/douyin/feed\",outcome=\"ok\"}",
        "douyin_http_requests_total{route=\"/douyin/user/register\",outcome=\"ok\"}",
        "douyin_http_request_duration_seconds_bucket{route=\"/douyin/feed\",le=\"0.001\"}",
        "douyin_api_errors_total{route=\"/douyin/feed\",status_code=\"",
        "douyin_near_cache_hits_total",
        "douyin_near_cache_misses_total",
        "douyin_near_cache_bytes",
        "douyin_redis_round_trips_total",
        "douyin_store_durable_writes_total",
    ] {
        assert!(text.contains(want), "/metrics lacks {want}:\n{text}");
    }
    // counted, not merely registered (the recorder is shared by the tests of this process)
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("/metrics lacks {series}:\n{text}"))
    };
    assert!(value("douyin_http_requests_total{route=\"/douyin/feed\",outcome=\"ok\"}") >= 2.0);
    assert!(value("douyin_http_requests_total{route=\"/douyin/feed\",outcome=\"error\"}") >= 1.0);
    assert!(value("douyin_http_request_duration_seconds_count{route=\"/douyin/feed\"}") >= 3.0);
    // each drop of the whole near-cache is counted by its reason: at least this app's own
    // subscription's start (a lagging subscriber would show as reason="lagged")
    assert!(value("douyin_near_cache_clears_total{reason=\"subscribed\"}") >= 1.0);
    // the near-cache's bound in use: by default sized from this machine's memory (or the
    // container's limit), within its floor and ceiling, and reported
    let bound = app.state.cache.near.bound();
    assert_eq!(bound, douyin_lite::near::budget::resolve(0).0);
    assert!((64 << 20..=1 << 30).contains(&bound), "bound {bound}");
    assert_eq!(value("douyin_near_cache_max_bytes"), bound as f64);
    // the heap as jemalloc counts it: this process has allocated something, on pages it touched
    let allocated = value("douyin_allocator_bytes{kind=\"allocated\"}");
    assert!(allocated > 1e6, "allocated {allocated}");
    assert!(value("douyin_allocator_bytes{kind=\"resident\"}") >= allocated);
    // the group commit is the embedded store's
    if !crate::helpers::cql_enabled() {
        for want in [
            "douyin_store_group_commit_writes_bucket",
            "douyin_store_fsync_seconds_count",
        ] {
            assert!(text.contains(want), "/metrics lacks {want}:\n{text}");
        }
        // the embedded store has written a memtable by now
        assert!(value("douyin_store_memory_bytes") > 0.0);
    }
    let hits: f64 = text
        .lines()
        .find(|l| l.starts_with("douyin_near_cache_hits_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        hits >= 1.0,
        "the second feed read should have hit the near-cache"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_bench_data_set_is_consistent_and_check_catches_drift() {
    let app = spawn_app().await;
    let spec = BenchSpec {
        users: 60,
        videos: 200,
        likes: 1500,
        follows: 300,
        comments: 150,
        messages: 100,
    };
    let seeded = seed_bench(&app.state, spec, 7).await.unwrap();
    assert_eq!(seeded.users.len(), 60);
    assert_eq!(seeded.likes, 1500);
    assert!(!seeded.friends.is_empty());
    let report = check(&app.state).await.unwrap();
    assert_eq!(report.mismatches, 0, "{:?}", report.examples);
    assert_eq!(report.likes, 1500);
    assert_eq!(report.video_favorites, 1500);
    // the skew: the most popular video has far more likes than the average (7.5)
    let top = seeded.videos_by_popularity[0];
    let feed_top = app.state.cache.video(top).await.unwrap().unwrap();
    assert!(feed_top.favorite_count > 30, "{}", feed_top.favorite_count);
    // the data set serves: a seeded user's feed, with their likes flagged
    let token = app.state.auth.issue(seeded.users[0], 0).unwrap();
    let feed = app.get("/douyin/feed/", &[("token", token.clone())]).await;
    assert_eq!(code(&feed), 0);
    assert_eq!(feed["video_list"].as_array().unwrap().len(), 30);
    let favs = app
        .get(
            "/douyin/favorite/list/",
            &[
                ("token", token.clone()),
                ("user_id", seeded.users[0].to_string()),
            ],
        )
        .await;
    let n = favs["video_list"].as_array().unwrap().len();
    assert!(n > 0);
    assert!(favs["video_list"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["is_favorite"] == true));
    // a like through the API keeps everything consistent
    let fresh_user = *seeded.users.last().unwrap();
    let ft = app.state.auth.issue(fresh_user, 0).unwrap();
    let liked = like(&app, &ft, top, "1").await;
    assert_eq!(code(&liked), 0, "{liked}");
    let report = check(&app.state).await.unwrap();
    assert_eq!(report.mismatches, 0, "{:?}", report.examples);
    assert_eq!(report.likes, 1501);
    // drift in Redis is reported
    let key = format!("{}v:{{{top}}}", app.state.cfg.redis.key_prefix);
    let out = redis_cli(&app.redis_url, &["HINCRBY", &key, "favorite_count", "1"]);
    assert!(out.status.success());
    let report = check(&app.state).await.unwrap();
    assert_eq!(report.mismatches, 1, "{:?}", report.examples);
    // and a second bulk load into a non-empty store is refused
    assert!(seed_bench(&app.state, spec, 7).await.is_err());
    app.stop().await;
}

/// Video `vid`'s comment list as `token` sees it at `app`, with `extra` parameters.
async fn comments_at(
    app: &TestApp,
    token: &str,
    vid: i64,
    extra: &[(&str, String)],
) -> serde_json::Value {
    let mut q = vec![("token", token.to_string()), ("video_id", vid.to_string())];
    q.extend(extra.iter().cloned());
    app.get("/douyin/comment/list/", &q).await
}

fn texts(v: &serde_json::Value) -> Vec<String> {
    v["comment_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["content"].as_str().unwrap().to_string())
        .collect()
}

/// Comments through `app` as `token` on `vid`: posts `text` (action 1) or deletes the
/// comment `id` (action 2); returns the comment's id.
async fn comment_action(app: &TestApp, token: &str, vid: i64, action: &str, arg: String) -> i64 {
    let key = if action == "1" {
        "comment_text"
    } else {
        "comment_id"
    };
    let v = app
        .post_query(
            "/douyin/comment/action/",
            &[
                ("token", token.to_string()),
                ("video_id", vid.to_string()),
                ("action_type", action.into()),
                (key, arg),
            ],
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    v["comment"]["id"].as_i64().unwrap()
}

/// Waits (up to a second) until `app` lists `want` as `vid`'s comments.
async fn wait_for_comments(app: &TestApp, token: &str, vid: i64, want: &[&str]) {
    let t = Instant::now();
    loop {
        let got = texts(&comments_at(app, token, vid, &[]).await);
        if got == want {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "still listed {got:?}, not {want:?}, a second after the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A video's first comment page is near-cached (a warm list costs no round trip) and follows
/// comments posted and deleted through another instance within a second.
#[tokio::test]
async fn comment_pages_are_near_cached_and_follow_other_instances() {
    let (a, _, liker) = instance_a("cmnt").await;
    let b = instance_b(&a, |c| c.near.max_age_ms = 60_000).await;
    wait_for_tracking(&b).await;
    let vid = a.get("/douyin/feed/", &[]).await["video_list"][0]["id"]
        .as_i64()
        .unwrap();
    let first = comment_action(&a, &liker, vid, "1", "first".into()).await;
    for _ in 0..2 {
        assert_eq!(texts(&comments_at(&b, &liker, vid, &[]).await), ["first"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rt = round_trips(&b);
    let warm = comments_at(&b, &liker, vid, &[]).await;
    assert_eq!(texts(&warm), ["first"]);
    assert_eq!(warm["comment_list"][0]["user"]["name"], "cmnt_liker");
    assert_eq!(round_trips(&b) - rt, 0, "a warm comment list went to redis");

    // a new comment, then a deletion, through A: seen at B within a second
    comment_action(&a, &liker, vid, "1", "second".into()).await;
    wait_for_comments(&b, &liker, vid, &["second", "first"]).await;
    comment_action(&a, &liker, vid, "2", first.to_string()).await;
    wait_for_comments(&b, &liker, vid, &["second"]).await;
    // a shorter first page is cut from the cached one; its cursor pages on through Redis
    comment_action(&a, &liker, vid, "1", "third".into()).await;
    wait_for_comments(&b, &liker, vid, &["third", "second"]).await;
    let page = comments_at(&b, &liker, vid, &[("count", "1".into())]).await;
    assert_eq!(texts(&page), ["third"]);
    let cursor = page["next_cursor"].to_string();
    let next = comments_at(
        &b,
        &liker,
        vid,
        &[("count", "1".into()), ("cursor", cursor)],
    )
    .await;
    assert_eq!(texts(&next), ["second"]);
    b.stop().await;
    a.stop().await;
}

/// A near-cached comment list is held rendered: it shows its authors' changes (their counts)
/// and each viewer's own `is_follow`, also when the change is made through another instance.
#[tokio::test]
async fn rendered_comment_lists_follow_their_authors_and_each_viewer() {
    let (a, author, liker) = instance_a("cmrd").await;
    let b = instance_b(&a, |c| c.near.max_age_ms = 60_000).await;
    wait_for_tracking(&b).await;
    let first = a.get("/douyin/feed/", &[]).await;
    let vid = first["video_list"][0]["id"].as_i64().unwrap();
    let author_id = first["video_list"][0]["author"]["id"].as_i64().unwrap();
    comment_action(&a, &liker, vid, "1", "one".into()).await;
    comment_action(&a, &author, vid, "1", "two".into()).await;
    // (viewer's is_follow of the liker, the liker's follower_count) as `token` sees it at B
    let liker_seen = |v: serde_json::Value| {
        let c = &v["comment_list"][1];
        assert_eq!(c["content"], "one", "{v}");
        (
            c["user"]["is_follow"].clone(),
            c["user"]["follower_count"].clone(),
        )
    };
    for _ in 0..2 {
        assert_eq!(
            texts(&comments_at(&b, &author, vid, &[]).await),
            ["two", "one"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rt = round_trips(&b);
    assert_eq!(
        liker_seen(comments_at(&b, &author, vid, &[]).await),
        (json!(false), json!(0))
    );
    assert_eq!(round_trips(&b) - rt, 0, "a warm comment list went to redis");

    // the author follows the liker through A: at B the liker's count changes for every viewer,
    // and the author (only) sees that they follow them
    let liker_id = comments_at(&b, &author, vid, &[]).await["comment_list"][1]["user"]["id"]
        .as_i64()
        .unwrap();
    follows(&a, &author, liker_id, "1").await;
    let t = Instant::now();
    loop {
        let seen = liker_seen(comments_at(&b, &author, vid, &[]).await);
        if seen == (json!(true), json!(1)) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "B still shows {seen:?} a second after the follow"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        liker_seen(comments_at(&b, &liker, vid, &[]).await),
        (json!(false), json!(1))
    );
    // the author sees themselves followed by nobody, in the same list
    let own = comments_at(&b, &liker, vid, &[]).await;
    assert_eq!(own["comment_list"][0]["user"]["id"], author_id);
    assert_eq!(own["comment_list"][0]["user"]["is_follow"], false);
    // rendered again once, then warm again
    tokio::time::sleep(Duration::from_millis(100)).await;
    comments_at(&b, &author, vid, &[]).await;
    let rt = round_trips(&b);
    comments_at(&b, &liker, vid, &[]).await;
    assert_eq!(
        round_trips(&b) - rt,
        0,
        "a re-rendered comment list went to redis"
    );
    b.stop().await;
    a.stop().await;
}

/// A favorite list longer than a kept page is written from each video's card (the video
/// rendered with its author), a warm one from the held run of its cards (one page hit):
/// every viewer's flags are right, a warm list costs no round trip, and an author's change
/// shows at once.
#[tokio::test]
async fn a_long_favorite_list_is_written_from_cards_and_follows_changes() {
    let app = spawn_app().await;
    let (author_id, author) = app.register("card_author").await;
    let (liker_id, liker) = app.register("card_liker").await;
    let (_, viewer) = app.register("card_viewer").await;
    let (_, fan) = app.register("card_fan").await;
    let n = douyin_lite::near::PAGE_MAX + 6;
    let mut vids = Vec::with_capacity(n);
    for i in 0..n {
        vids.push(publish_url(&app, &author, &format!("card{i}")).await);
    }
    for v in &vids {
        assert_eq!(code(&like(&app, &liker, *v, "1").await), 0);
    }
    // the viewer likes two of them and follows the author
    assert_eq!(code(&like(&app, &viewer, vids[0], "1").await), 0);
    assert_eq!(code(&like(&app, &viewer, vids[n - 1], "1").await), 0);
    follows(&app, &viewer, author_id, "1").await;
    let favorites = |token: String| {
        let app = &app;
        async move {
            app.get(
                "/douyin/favorite/list/",
                &[("user_id", liker_id.to_string()), ("token", token)],
            )
            .await
        }
    };
    for _ in 0..2 {
        favorites(viewer.clone()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rt, pages) = (round_trips(&app), page_hits(&app));
    let seen = favorites(viewer.clone()).await;
    assert_eq!(round_trips(&app) - rt, 0, "a warm long list went to redis");
    assert_eq!(
        page_hits(&app) - pages,
        1,
        "a warm long list not from its run"
    );
    let list = seen["video_list"].as_array().unwrap();
    assert_eq!(list.len(), n);
    for v in list {
        let id = v["id"].as_i64().unwrap();
        let liked = id == vids[0] || id == vids[n - 1];
        assert_eq!(v["is_favorite"], liked, "{v}");
        assert_eq!(v["author"]["is_follow"], true, "{v}");
        assert_eq!(v["author"]["follower_count"], 1, "{v}");
        assert_eq!(v["favorite_count"], if liked { 2 } else { 1 }, "{v}");
    }
    // the liker's own view: every video liked, the author not followed
    let own = favorites(liker.clone()).await;
    assert!(own["video_list"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["is_favorite"] == true && v["author"]["is_follow"] == false));
    // another user follows the author, and likes a video: both show at once
    follows(&app, &fan, author_id, "1").await;
    assert_eq!(code(&like(&app, &fan, vids[3], "1").await), 0);
    let after = favorites(viewer.clone()).await;
    for v in after["video_list"].as_array().unwrap() {
        assert_eq!(v["author"]["follower_count"], 2, "{v}");
        if v["id"].as_i64().unwrap() == vids[3] {
            assert_eq!(v["favorite_count"], 2, "{v}");
        }
    }
    // once more from the run kept by that read, and a single video's change shows too
    assert_eq!(favorites(viewer.clone()).await, after);
    assert_eq!(code(&like(&app, &fan, vids[5], "1").await), 0);
    let last = favorites(viewer.clone()).await;
    let counts: Vec<i64> = last["video_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| [vids[3], vids[5]].contains(&v["id"].as_i64().unwrap()))
        .map(|v| v["favorite_count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [2, 2]);
    app.stop().await;
}

/// The users of `uid`'s follow list (or follower list) at `app` as `token` sees them, as
/// (id, is_follow, follower_count).
async fn user_list_at(
    app: &TestApp,
    token: &str,
    uid: i64,
    followers: bool,
) -> Vec<(i64, bool, i64)> {
    let path = if followers {
        "/douyin/relation/follower/list/"
    } else {
        "/douyin/relation/follow/list/"
    };
    let v = app
        .get(
            path,
            &[("token", token.to_string()), ("user_id", uid.to_string())],
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    v["user_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["id"].as_i64().unwrap(),
                u["is_follow"].as_bool().unwrap(),
                u["follower_count"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Follow and follower lists are held rendered: each viewer sees their own `is_follow`, a warm
/// list costs no round trip, and a listed user's change made through another instance shows
/// within a second; the friend list adds each friend's latest message to the same rendering.
#[tokio::test]
async fn rendered_user_lists_follow_their_users_and_each_viewer() {
    let (a, author, liker) = instance_a("usrd").await;
    let b = instance_b(&a, |c| c.near.max_age_ms = 60_000).await;
    wait_for_tracking(&b).await;
    let author_id = a.get("/douyin/feed/", &[]).await["video_list"][0]["author"]["id"]
        .as_i64()
        .unwrap();
    let (c_id, c) = a.register("usrd_c").await;
    let (d_id, d) = a.register("usrd_d").await;
    follows(&a, &author, c_id, "1").await;
    follows(&a, &author, d_id, "1").await;
    follows(&a, &liker, d_id, "1").await;
    // newest first; the liker sees that they follow d, the author that they follow both
    let want_liker = vec![(d_id, true, 2), (c_id, false, 1)];
    let want_author = vec![(d_id, true, 2), (c_id, true, 1)];
    for _ in 0..2 {
        assert_eq!(user_list_at(&b, &liker, author_id, false).await, want_liker);
        assert_eq!(
            user_list_at(&b, &author, author_id, false).await,
            want_author
        );
        user_list_at(&b, &c, author_id, false).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rt = round_trips(&b);
    assert_eq!(user_list_at(&b, &liker, author_id, false).await, want_liker);
    assert_eq!(
        user_list_at(&b, &c, author_id, false).await,
        [(d_id, false, 2), (c_id, false, 1)]
    );
    assert_eq!(round_trips(&b) - rt, 0, "a warm follow list went to redis");

    // the liker follows c through A: at B, c's count changes for every viewer of the list,
    // and the liker (only) sees that they follow c
    follows(&a, &liker, c_id, "1").await;
    let t = Instant::now();
    loop {
        let seen = user_list_at(&b, &liker, author_id, false).await;
        if seen == [(d_id, true, 2), (c_id, true, 2)] {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "B still shows {seen:?} a second after the follow"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        user_list_at(&b, &d, author_id, false).await,
        [(d_id, false, 2), (c_id, false, 2)]
    );
    // c's followers, newest first, as the author sees them
    assert_eq!(
        user_list_at(&b, &author, c_id, true).await,
        [
            (
                b.get("/douyin/user/", &[("token", liker.clone())]).await["user"]["id"]
                    .as_i64()
                    .unwrap(),
                false,
                0
            ),
            (author_id, false, 0)
        ]
    );

    // d follows the author back: friends, with their latest message in the kept rendering
    follows(&a, &d, author_id, "1").await;
    send(&a, &d, author_id, "hi \"there\"").await;
    // (id, is_follow, follower_count, message, msgType) of the author's friends at B
    let friends_at_b = || async {
        let v = b
            .get(
                "/douyin/relation/friend/list/",
                &[("token", author.clone())],
            )
            .await;
        assert_eq!(code(&v), 0, "{v}");
        v["user_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["id"].as_i64().unwrap(),
                    u["is_follow"].clone(),
                    u["follower_count"].as_i64().unwrap(),
                    u["message"].as_str().unwrap().to_string(),
                    u["msgType"].as_i64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    // (B has a durable store of its own: A loads the conversation into Redis for it)
    a.get(
        "/douyin/relation/friend/list/",
        &[("token", author.clone())],
    )
    .await;
    let want = vec![(d_id, json!(true), 2, "hi \"there\"".to_string(), 0)];
    let t = Instant::now();
    while friends_at_b().await != want {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{:?}",
            friends_at_b().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    friends_at_b().await;
    let rt = round_trips(&b);
    assert_eq!(friends_at_b().await, want);
    assert_eq!(round_trips(&b) - rt, 0, "a warm friend list went to redis");
    // the author answers through A, then c follows d: B shows each within a second
    send(&a, &author, d_id, "back").await;
    let back = vec![(d_id, json!(true), 2, "back".to_string(), 1)];
    follows_within_a_second(&friends_at_b, back).await;
    follows(&a, &c, d_id, "1").await;
    let counted = vec![(d_id, json!(true), 3, "back".to_string(), 1)];
    follows_within_a_second(&friends_at_b, counted).await;
    b.stop().await;
    a.stop().await;
}

/// Waits (up to a second) until `read` returns `want`.
async fn follows_within_a_second<T, F, Fut>(read: &F, want: T)
where
    T: PartialEq + std::fmt::Debug,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let t = Instant::now();
    loop {
        let seen = read().await;
        if seen == want {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "still {seen:?} a second after the change, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
