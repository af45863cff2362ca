//! Redis Cluster (`REDIS_TEST_URL=redis-cluster://...`, started by deploy/redis-cluster.sh):
//! a slot moved under load, the invalidation channel of every primary, a frozen primary; and,
//! on any Redis, scripts that a node lost (a failover to a replica that never loaded them).

use crate::helpers::*;
use douyin_lite::ops::check::check;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A primary of the cluster.
#[derive(Clone, Debug)]
struct Node {
    port: u16,
    id: String,
    /// Slot ranges served.
    slots: Vec<(u16, u16)>,
}

impl Node {
    fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }
}

/// The cluster's primaries.
fn nodes(url: &str) -> Vec<Node> {
    let first = url
        .strip_prefix("redis-cluster://")
        .unwrap()
        .split(['?', '/'])
        .next()
        .unwrap();
    let port = first.rsplit_once(':').unwrap().1;
    let out = cli(port.parse().unwrap(), &["CLUSTER", "NODES"]);
    out.lines()
        .filter(|l| l.contains("master"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = f[1].split('@').next().unwrap().rsplit_once(':').unwrap().1;
            let ranges = f[8..]
                .iter()
                .filter(|r| !r.starts_with('['))
                .map(|r| match r.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                    None => (r.parse().unwrap(), r.parse().unwrap()),
                })
                .collect();
            Node {
                port: port.parse().unwrap(),
                id: f[0].to_string(),
                slots: ranges,
            }
        })
        .collect()
}

/// redis-cli against one node; its output, after checking it succeeded.
fn cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && !text.starts_with("ERR"),
        "redis-cli {args:?}: {text}"
    );
    text
}

/// Moves `slot` from the node serving it to another primary, the way `redis-cli --cluster
/// reshard` does (IMPORTING/MIGRATING, MIGRATE of its keys, SETSLOT NODE everywhere), with
/// pauses in each state (a second: writes are durable first, and a CQL store on a loaded
/// machine can take hundreds of ms per write) so that the load meets both redirections (ASK
/// and MOVED).
async fn move_slot(url: &str, slot: u16) -> (u16, u16) {
    let all = nodes(url);
    let src = all.iter().find(|n| n.serves(slot)).unwrap().clone();
    let dst = all.iter().find(|n| !n.serves(slot)).unwrap().clone();
    let s = slot.to_string();
    cli(dst.port, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &src.id]);
    cli(src.port, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &dst.id]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    loop {
        let keys = cli(src.port, &["CLUSTER", "GETKEYSINSLOT", &s, "100"]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let mut args = vec!["MIGRATE", "127.0.0.1"];
        let dst_port = dst.port.to_string();
        args.extend([dst_port.as_str(), "", "0", "5000", "KEYS"]);
        args.extend(keys);
        cli(src.port, &args);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for n in [&dst, &src] {
        cli(n.port, &["CLUSTER", "SETSLOT", &s, "NODE", &dst.id]);
    }
    for n in all
        .iter()
        .filter(|n| n.port != src.port && n.port != dst.port)
    {
        cli(n.port, &["CLUSTER", "SETSLOT", &s, "NODE", &dst.id]);
    }
    (src.port, dst.port)
}

#[tokio::test]
async fn a_slot_moved_under_load_leaves_counts_exact_and_reads_fresh() {
    let url = redis_url();
    if !redis_is_cluster(&url) {
        return; // a Redis Cluster's resharding
    }
    let app = Arc::new(spawn_app().await);
    let (_, author) = app.register("resharded").await;
    let vid = publish_url(&app, &author, "hot").await;
    let mut likers = Vec::new();
    for i in 0..8 {
        likers.push(app.register(&format!("toggler{i}")).await.1);
    }
    let slot: u16 = cli(
        nodes(&url)[0].port,
        &["CLUSTER", "KEYSLOT", &app.state.cache.keys.video(vid)],
    )
    .trim()
    .parse()
    .unwrap();
    // each liker toggles its like; each read of the feed must answer
    let stop = Arc::new(AtomicBool::new(false));
    let (acks, reads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for t in likers.clone() {
        let (app, stop, acks) = (app.clone(), stop.clone(), acks.clone());
        tasks.push(tokio::spawn(async move {
            let mut liked = false;
            while !stop.load(Ordering::Relaxed) {
                let action = if liked { "2" } else { "1" };
                let v = like(&app, &t, vid, action).await;
                assert_eq!(code(&v), 0, "a like during the move: {v}");
                liked = !liked;
                acks.fetch_add(1, Ordering::Relaxed);
            }
            liked
        }));
    }
    let reader = {
        let (app, stop, reads) = (app.clone(), stop.clone(), reads.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let v = app.get("/douyin/feed/", &[]).await;
                assert_eq!(code(&v), 0, "a read during the move: {v}");
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // the load must be flowing before the move starts (every liker answered twice)
    let flowing = Instant::now();
    while acks.load(Ordering::Relaxed) < 2 * likers.len() {
        assert!(
            flowing.elapsed() < Duration::from_secs(20),
            "the load never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (acks_before, reads_before) = (acks.load(Ordering::Relaxed), reads.load(Ordering::Relaxed));
    let (from, to) = move_slot(&url, slot).await;
    let (acks_during, reads_during) = (
        acks.load(Ordering::Relaxed) - acks_before,
        reads.load(Ordering::Relaxed) - reads_before,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut expected = 0;
    for t in tasks {
        expected += t.await.unwrap() as i64;
    }
    reader.await.unwrap();
    assert!(
        acks_during > 0 && reads_during > 0,
        "the load ran through the move ({acks_during} likes, {reads_during} reads)"
    );
    // the video's keys now live on the other primary
    let owner = nodes(&url).into_iter().find(|n| n.serves(slot)).unwrap();
    assert_eq!(owner.port, to, "slot {slot} moved from {from}");
    // every count exact: Redis against the durable records
    let report = check(&app.state).await.unwrap();
    assert_eq!(report.mismatches, 0, "{:?}", report.examples);
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(feed["video_list"][0]["favorite_count"], expected);
    // and every read fresh: a change after the move shows at once
    let someone = app.register("after_move").await.1;
    assert_eq!(code(&like(&app, &someone, vid, "1").await), 0);
    let t = Instant::now();
    loop {
        let feed = app.get("/douyin/feed/", &[]).await;
        if feed["video_list"][0]["favorite_count"] == expected + 1 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(1), "{feed}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Arc::into_inner(app).unwrap().stop().await;
}

#[tokio::test]
async fn every_primary_has_its_own_invalidation_channel() {
    let url = redis_url();
    if !redis_is_cluster(&url) {
        return;
    }
    let mut o = Opts::new();
    // an age bound of a minute: only invalidation messages can show a change within a second
    o.tweak = Box::new(|c| c.near.max_age_ms = 60_000);
    let app = spawn_with(o).await;
    let primaries = nodes(&url);
    let near = &app.state.cache.near;
    let t = Instant::now();
    while !near.delivering() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no heartbeat from every primary"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(near.channels.load(Ordering::Acquire), primaries.len());
    // a video whose keys live on each primary
    let (_, author) = app.register("everywhere").await;
    let mut on: Vec<Option<i64>> = vec![None; primaries.len()];
    for i in 0..200 {
        if on.iter().all(Option::is_some) {
            break;
        }
        let vid = publish_url(&app, &author, &format!("v{i}")).await;
        let key = app.state.cache.keys.video(vid);
        let slot: u16 = cli(primaries[0].port, &["CLUSTER", "KEYSLOT", &key])
            .trim()
            .parse()
            .unwrap();
        let n = primaries.iter().position(|n| n.serves(slot)).unwrap();
        on[n].get_or_insert(vid);
    }
    let vids: Vec<i64> = on.into_iter().map(Option::unwrap).collect();
    // near-cached, then changed behind the server's back on each primary
    let count = |feed: &serde_json::Value, vid: i64| {
        feed["video_list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == vid)
            .map(|v| v["favorite_count"].as_i64().unwrap())
    };
    let feed = app.get("/douyin/feed/", &[]).await;
    for &vid in &vids {
        assert_eq!(count(&feed, vid), Some(0));
    }
    for &vid in &vids {
        let key = app.state.cache.keys.video(vid);
        let out = redis_cli(&url, &["HINCRBY", &key, "favorite_count", "7"]);
        assert!(out.status.success());
    }
    let t = Instant::now();
    loop {
        let feed = app.get("/douyin/feed/", &[]).await;
        if vids.iter().all(|&v| count(&feed, v) == Some(7)) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a primary's change was not invalidated: {feed}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_hung_primary_is_unavailable_quickly_and_service_comes_back() {
    if !redis_is_cluster(&redis_url()) {
        return;
    }
    let cluster = ScriptService::start("redis-cluster.sh", &[]).await;
    let mut o = Opts::new();
    o.redis_url = cluster.setting("DOUYIN_REDIS__URL").unwrap();
    let app = spawn_with(o).await;
    let (_, author) = app.register("before_hang").await;
    let vid = publish_url(&app, &author, "v").await;
    let (_, fan) = app.register("fan").await;
    cluster.signal("node2/redis.pid", "-STOP");
    // every request is answered promptly: served, or "unavailable", never a hang. A like may
    // be served throughout (it is durable first and its Redis side is queued for replay; with
    // the writer and the video known here it needs no Redis read); a list needs Redis.
    let mut unavailable = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let liked = like(&app, &fan, vid, "1").await;
        let list = app
            .get(
                "/douyin/favorite/list/",
                &[("token", fan.clone()), ("user_id", "0".into())],
            )
            .await;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "a like and a list took {:?}",
            t.elapsed()
        );
        for v in [&liked, &list] {
            match code(v) {
                0 => {}
                10012 => unavailable += 1,
                other => panic!("{other}: {v}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(unavailable > 0, "a frozen primary went unnoticed");
    cluster.signal("node2/redis.pid", "-CONT");
    // back: the client's retry is served, and the like counts once however many attempts
    // reached the store
    let t = Instant::now();
    while code(&like(&app, &fan, vid, "1").await) != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "service did not come back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t = Instant::now();
    loop {
        let feed = app.get("/douyin/feed/", &[]).await;
        if code(&feed) == 0 && feed["video_list"][0]["favorite_count"] == 1 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{feed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(code(&like(&app, &fan, vid, "2").await), 0);
    app.stop().await;
}

#[tokio::test]
async fn scripts_a_node_lost_are_loaded_again() {
    let app = spawn_app().await;
    let (_, author) = app.register("scripted").await;
    let vid = publish_url(&app, &author, "v").await;
    // as after a failover: the node that now serves the keys has never seen the scripts
    let out = redis_cli(&app.redis_url, &["SCRIPT", "FLUSH"]);
    assert!(out.status.success(), "{out:?}");
    let (_, fan) = app.register("scripted_fan").await;
    assert_eq!(code(&like(&app, &fan, vid, "1").await), 0);
    app.flush_redis().await;
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(feed["video_list"][0]["favorite_count"], 1);
    app.stop().await;
}
