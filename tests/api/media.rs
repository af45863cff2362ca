use crate::helpers::*;
use douyin_lite::ids::{floor_for_ms, now_ms, time_ms};
use douyin_lite::media::reaper::{self, Sweep};
use douyin_lite::store::VideoRecord;
use serde_json::json;

#[tokio::test]
async fn upload_then_feed_then_play_with_range() {
    let app = spawn_app().await;
    let (uid, token) = app.register("creator").await;
    let mp4 = sample_mp4().await;
    let v = app.upload(&token, "my first video", mp4.clone()).await;
    assert_eq!(code(&v), 0, "{v}");
    let vid = v["vid"].as_i64().unwrap();
    assert!(vid > 0 && vid < (1i64 << 53));

    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(code(&feed), 0);
    let list = feed["video_list"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    let video = &list[0];
    assert_eq!(video["id"], vid);
    assert_eq!(video["title"], "my first video");
    assert_eq!(video["author"]["id"], uid);
    assert_eq!(video["author"]["work_count"], 1);
    assert_eq!(video["is_favorite"], false);
    for f in ["favorite_count", "comment_count", "play_count"] {
        assert_eq!(video[f], 0, "{f}");
    }
    assert_eq!(feed["next_time"], time_ms(vid));
    let play_url = video["play_url"].as_str().unwrap();
    let cover_url = video["cover_url"].as_str().unwrap();
    assert!(
        play_url.starts_with(&app.base) && play_url.ends_with(".mp4"),
        "{play_url}"
    );
    assert!(
        !play_url.contains("evil"),
        "client file names are never used"
    );

    // the cover is a JPEG
    let r = app.player.get(cover_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let jpg = r.bytes().await.unwrap();
    assert_eq!(&jpg[..2], &[0xFF, 0xD8]);

    // a ranged fetch (a player seeking) gets 206 with the right bytes and does not count a play
    let r = app
        .player
        .get(play_url)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-199/{}", mp4.len())
    );
    if app.state.media.backend() == "local" {
        // a web player's script may read the range headers (CORS; from the bucket, the
        // bucket's own headers answer)
        let exposed = r.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap();
        assert!(exposed.contains("Content-Range"), "{exposed}");
    }
    assert_eq!(&r.bytes().await.unwrap()[..], &mp4[100..200]);
    if app.state.media.backend() == "s3" {
        // the bytes come from the bucket: a redirect to a freshly presigned URL
        let r = app.client.get(play_url).send().await.unwrap();
        assert_eq!(r.status(), 302);
        let to = r.headers()["location"].to_str().unwrap();
        assert!(
            to.starts_with(&app.state.cfg.media.s3.endpoint) && to.contains("X-Amz-Signature="),
            "{to}"
        );
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
    // the full file, twice by the same viewer, once by a logged-in viewer: two distinct viewers
    let r = app.player.get(play_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], &mp4[..]);
    app.player
        .get(play_url)
        .header("Range", "bytes=0-")
        .send()
        .await
        .unwrap();
    app.player
        .get(format!("{play_url}?token={token}"))
        .send()
        .await
        .unwrap();
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(feed["video_list"][0]["play_count"], 2, "{feed}");
    // out-of-range request
    let r = app
        .player
        .get(play_url)
        .header("Range", format!("bytes={}-", mp4.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    // path tricks
    for p in [
        "/static/videos/..%2F..%2Fstore",
        "/static/../Cargo.toml",
        "/static/videos/nope.mp4",
    ] {
        let r = app.client.get(app.url(p)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{p}");
    }

    // publish list: by id, anonymous, and for an unknown user
    let v = app
        .get(
            "/douyin/publish/list/",
            &[("user_id", uid.to_string()), ("token", token.clone())],
        )
        .await;
    assert_eq!(v["video_list"].as_array().unwrap().len(), 1);
    assert_eq!(v["video_list"][0]["id"], vid);
    let v = app
        .get("/douyin/publish/list", &[("token", token.clone())])
        .await;
    assert_eq!(v["video_list"][0]["id"], vid);
    let v = app
        .get("/douyin/publish/list/", &[("user_id", "777".into())])
        .await;
    assert_eq!(code(&v), 10006);
    app.stop().await;
}

#[tokio::test]
async fn uploads_are_checked() {
    let app = spawn_with({
        let mut o = Opts::new();
        o.tweak = Box::new(|c| c.media.max_upload_bytes = 1024 * 1024);
        o
    })
    .await;
    let (_, token) = app.register("checker").await;
    // not a video
    let v = app
        .upload(&token, "text", b"hello, I am not a video at all".repeat(10))
        .await;
    assert_eq!(code(&v), 10009, "{v}");
    // an image is not a video either
    let jpeg = {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.jpg");
        let ok = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "color=red:s=64x64",
                "-frames:v",
                "1",
            ])
            .arg(&p)
            .status()
            .unwrap();
        assert!(ok.success());
        std::fs::read(&p).unwrap()
    };
    let v = app.upload(&token, "img", jpeg).await;
    assert_eq!(code(&v), 10009, "{v}");
    // too large
    // too large: declared too large up front, and found too large while streaming
    for size in [1536 * 1024, 1100 * 1024] {
        let v = app.upload(&token, "big", vec![0u8; size]).await;
        assert_eq!(code(&v), 10008, "{v}");
        assert!(v["status_msg"].as_str().unwrap().contains("1048576"));
    }
    // missing title, missing file, missing token
    let v = app.upload(&token, "", sample_mp4().await).await;
    assert_eq!(code(&v), 10001);
    let form = reqwest::multipart::Form::new()
        .text("title", "t")
        .text("token", token.clone());
    let v = app.post_multipart("/douyin/publish/action/", form).await;
    assert_eq!(code(&v), 10001);
    let form = reqwest::multipart::Form::new()
        .text("title", "t")
        .part("data", reqwest::multipart::Part::bytes(sample_mp4().await));
    let v = app.post_multipart("/douyin/publish/action/", form).await;
    assert_eq!(code(&v), 10002);
    // a bad token that arrives before the file: the file is never staged
    let form = reqwest::multipart::Form::new()
        .text("token", "forged.token.value")
        .text("title", "t")
        .part("data", reqwest::multipart::Part::bytes(sample_mp4().await));
    let v = app.post_multipart("/douyin/publish/action/", form).await;
    assert_eq!(code(&v), 10003);
    let form = reqwest::multipart::Form::new()
        .text("title", "t")
        .part("data", reqwest::multipart::Part::bytes(sample_mp4().await));
    let v = app
        .post_multipart("/douyin/publish/action/?token=forged", form)
        .await;
    assert_eq!(code(&v), 10003);
    // not multipart at all
    let v = app
        .post_form(
            "/douyin/publish/action/",
            &[("title", "t".into()), ("token", token.clone())],
        )
        .await;
    assert_eq!(code(&v), 10001);
    // nothing was stored, nothing left in staging
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(feed["video_list"].as_array().unwrap().len(), 0);
    for dir in ["videos", "covers"] {
        let stored = app.state.media.keys_between(dir, 0, i64::MAX, 10).await;
        assert_eq!(stored.unwrap(), vec![], "{dir}");
    }
    let staging = app.data_dir.join("media").join("tmp");
    assert_eq!(std::fs::read_dir(staging).unwrap().count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn publish_by_url_counts_plays_and_redirects() {
    let app = spawn_app().await;
    let (uid, token) = app.register("linker").await;
    let v = app
        .post_json(
            "/douyin/publish/actionUrl",
            json!({"token": token, "url": "https://cdn.example.com/v.mp4", "title": "linked", "cover_url": "https://cdn.example.com/c.jpg", "user_creations": "a description"}),
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    let vid = v["vid"].as_i64().unwrap();
    let v = app
        .get("/douyin/publish/list/", &[("user_id", uid.to_string())])
        .await;
    let video = &v["video_list"][0];
    assert_eq!(video["id"], vid);
    assert_eq!(video["cover_url"], "https://cdn.example.com/c.jpg");
    assert_eq!(video["desc"], "a description");
    let play_url = video["play_url"].as_str().unwrap().to_string();
    assert_eq!(play_url, app.url(&format!("/play/{vid}")));
    let r = app.client.get(&play_url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "https://cdn.example.com/v.mp4");
    let v = app
        .get("/douyin/publish/list/", &[("user_id", uid.to_string())])
        .await;
    assert_eq!(v["video_list"][0]["play_count"], 1);
    assert_eq!(v["video_list"][0]["author"]["work_count"], 1);
    // bad URLs
    for bad in ["ftp://x/y.mp4", "not a url", ""] {
        let v = app
            .post_json(
                "/douyin/publish/actionUrl",
                json!({"token": token, "url": bad, "title": "x"}),
            )
            .await;
        assert_eq!(code(&v), 10001, "{bad}");
    }
    let v = app
        .post_json(
            "/douyin/publish/actionUrl",
            json!({"token": token, "url": "https://a.example/v.mp4", "title": "x".repeat(101)}),
        )
        .await;
    assert_eq!(code(&v), 10001);
    app.stop().await;
}

#[tokio::test]
async fn feed_pages_never_skip_or_repeat_same_millisecond_videos() {
    let app = spawn_app().await;
    let (uid, _) = app.register("burst").await;
    // 75 videos over 3 milliseconds: 40 in the oldest, 20, then 15 in the newest
    let base = now_ms() - 10_000;
    let mut expected = Vec::new();
    for (ms, n) in [(base, 40i64), (base + 1, 20), (base + 2, 15)] {
        for seq in 0..n {
            let id = floor_for_ms(ms) + seq;
            let rec = VideoRecord {
                id,
                author_id: uid,
                title: format!("v{id}"),
                desc: String::new(),
                play: format!("https://cdn.example.com/{id}.mp4"),
                cover: String::new(),
                created_ms: ms,
            };
            douyin_lite::write::videos::save_video(&app.state, &rec)
                .await
                .unwrap();
            expected.push(id);
        }
    }
    expected.reverse();
    let mut seen = Vec::new();
    let mut latest: Option<i64> = None;
    for _ in 0..10 {
        let mut q = vec![];
        if let Some(t) = latest {
            q.push(("latest_time", t.to_string()));
        }
        let v = app.get("/douyin/feed/", &q).await;
        assert_eq!(code(&v), 0);
        let page: Vec<i64> = v["video_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_i64().unwrap())
            .collect();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 40);
        assert_eq!(v["next_time"], time_ms(*page.last().unwrap()));
        seen.extend(page);
        latest = v["next_time"].as_i64();
    }
    assert_eq!(seen, expected, "every video exactly once, newest first");
    // seconds are accepted as latest_time: nothing is older than 1 second after the epoch
    let v = app
        .get("/douyin/feed/", &[("latest_time", "1000".into())])
        .await;
    assert_eq!(v["video_list"].as_array().unwrap().len(), 0);
    // a float latest_time in seconds
    let v = app
        .get(
            "/douyin/feed/",
            &[(
                "latest_time",
                format!("{:e}", ((base + 10_000) / 1000) as f64),
            )],
        )
        .await;
    assert_eq!(code(&v), 0);
    // the first page stops before the 20 videos of the middle millisecond, which don't fit
    assert_eq!(v["video_list"].as_array().unwrap().len(), 15);
    app.stop().await;
}

/// Puts a few bytes under `key`, as a publish would have.
async fn put_bytes(app: &TestApp, key: &str) {
    let f = tempfile::NamedTempFile::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::write(f.path(), b"not really a video").unwrap();
    let (_, path) = f.keep().unwrap();
    app.state.media.put_file(key, &path).await.unwrap();
}

#[tokio::test]
async fn the_reaper_removes_media_no_video_names() {
    let app = spawn_app().await;
    let (uid, _) = app.register("reaped").await;
    let st = &app.state;
    let hour = 3_600_000;
    // two publishes two hours ago: one recorded, one that died before its record
    let kept = floor_for_ms(now_ms() - 2 * hour);
    let orphan = kept + 1;
    // and one whose publish may still be running
    let recent = floor_for_ms(now_ms() - 1000);
    for id in [kept, orphan, recent] {
        put_bytes(&app, &format!("videos/{id}.mp4")).await;
        put_bytes(&app, &format!("covers/{id}.jpg")).await;
    }
    let rec = VideoRecord {
        id: kept,
        author_id: uid,
        title: "kept".into(),
        desc: String::new(),
        play: format!("videos/{kept}.mp4"),
        cover: format!("covers/{kept}.jpg"),
        created_ms: time_ms(kept),
    };
    douyin_lite::write::videos::save_video(st, &rec)
        .await
        .unwrap();
    // the window a running reaper sweeps: up to the grace period (1 h) ago
    let lo = floor_for_ms(now_ms() - 24 * hour);
    let hi = floor_for_ms(now_ms() - hour) - 1;
    let s = reaper::sweep(st, lo, hi).await.unwrap();
    assert_eq!(
        s,
        Sweep {
            checked: 4,
            removed: 2
        }
    );
    let size = |k: String| async move { st.media.size(&k).await.unwrap() };
    assert!(size(format!("videos/{kept}.mp4")).await.is_some());
    assert!(size(format!("covers/{kept}.jpg")).await.is_some());
    assert!(size(format!("videos/{orphan}.mp4")).await.is_none());
    assert!(size(format!("covers/{orphan}.jpg")).await.is_none());
    assert!(size(format!("videos/{recent}.mp4")).await.is_some());
    // the recorded video still plays
    let v = app
        .get("/douyin/publish/list/", &[("user_id", uid.to_string())])
        .await;
    let play = v["video_list"][0]["play_url"].as_str().unwrap();
    let r = app.player.get(play).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], b"not really a video");
    // a second sweep of the same window finds nothing more
    let s = reaper::sweep(st, lo, hi).await.unwrap();
    assert_eq!(
        s,
        Sweep {
            checked: 2,
            removed: 0
        }
    );
    app.stop().await;
}

#[tokio::test]
async fn a_publish_while_s3_hangs_fails_cleanly_and_leaves_nothing() {
    if !s3_enabled() {
        return;
    }
    let s3 = ScriptService::start("s3-server.sh", &[]).await;
    let mut o = Opts::new();
    let settings = s3_config_in(s3.dir.path(), &o.data_dir);
    o.tweak = Box::new(move |c| {
        c.media.backend = "s3".into();
        c.media.s3 = settings;
        c.media.s3.request_timeout_secs = 2;
    });
    let app = spawn_with(o).await;
    let (_, token) = app.register("frozen").await;
    let mp4 = sample_mp4().await;
    let from = floor_for_ms(now_ms());
    s3.signal("server.pid", "-STOP");
    let started = std::time::Instant::now();
    let v = app.upload(&token, "lost", mp4.clone()).await;
    assert_eq!(code(&v), 10012, "{v}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // reads do not need the store
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(code(&feed), 0);
    assert_eq!(feed["video_list"].as_array().unwrap().len(), 0);
    s3.signal("server.pid", "-CONT");
    // no video was recorded; an object whose put timed out may land late: the reaper's sweep
    // of that id removes it
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    reaper::sweep(&app.state, from, floor_for_ms(now_ms()))
        .await
        .unwrap();
    for dir in ["videos", "covers"] {
        let left = app.state.media.keys_between(dir, 0, i64::MAX, 10).await;
        assert_eq!(left.unwrap(), vec![], "{dir}");
    }
    let staging = app.data_dir.join("media").join("tmp");
    assert_eq!(std::fs::read_dir(staging).unwrap().count(), 0);
    // the store is back: publishing works again
    let v = app.upload(&token, "found", mp4).await;
    assert_eq!(code(&v), 0, "{v}");
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(feed["video_list"][0]["title"], "found");
    app.stop().await;
}

#[tokio::test]
async fn s3_urls_follow_the_presign_endpoint_or_the_public_base() {
    if !s3_enabled() {
        return;
    }
    // clients reach the store by another name than the server does
    let mut o = Opts::new();
    let settings = s3_config(&o.data_dir);
    let endpoint = settings.endpoint.clone();
    o.tweak = Box::new(move |c| {
        c.media.s3.presign_endpoint = c.media.s3.endpoint.replace("127.0.0.1", "localhost");
    });
    let app = spawn_with(o).await;
    let (_, token) = app.register("signed").await;
    let mp4 = sample_mp4().await;
    assert_eq!(code(&app.upload(&token, "v", mp4.clone()).await), 0);
    let feed = app.get("/douyin/feed/", &[]).await;
    let play = feed["video_list"][0]["play_url"].as_str().unwrap();
    let r = app.client.get(play).send().await.unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_string();
    let outside = endpoint.replace("127.0.0.1", "localhost");
    assert!(to.starts_with(&outside), "{to}");
    // signed for that name: it fetches
    let r = app.player.get(&to).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], &mp4[..]);
    let data_dir = app.data_dir.clone();
    app.stop().await;

    // a CDN in front of the bucket: covers straight from it, plays counted here, then sent there
    let mut o = Opts::new();
    o.data_dir = data_dir;
    o.tweak = Box::new(|c| {
        c.media.s3.public_base_url = "https://cdn.example.com/media/".into();
    });
    let app = spawn_with(o).await;
    let feed = app.get("/douyin/feed/", &[]).await;
    let v = &feed["video_list"][0];
    let id = v["id"].as_i64().unwrap();
    assert_eq!(
        v["cover_url"],
        format!("https://cdn.example.com/media/covers/{id}.jpg")
    );
    let play = v["play_url"].as_str().unwrap();
    assert_eq!(play, app.url(&format!("/static/videos/{id}.mp4")));
    let r = app
        .client
        .get(format!("{play}?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        format!("https://cdn.example.com/media/videos/{id}.mp4")
    );
    // a second viewer (the first was the anonymous one above)
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(feed["video_list"][0]["play_count"], 2);
    // only the objects of recorded videos are handed out
    let r = app
        .client
        .get(app.url(&format!("/static/videos/{}.mp4", id + 1)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

/// The play count the feed shows for the only video of `app`.
async fn feed_plays(app: &TestApp) -> i64 {
    let feed = app.get("/douyin/feed/", &[]).await;
    feed["video_list"][0]["play_count"].as_i64().unwrap()
}

async fn play(app: &TestApp, vid: i64, viewer: &str) {
    douyin_lite::write::videos::record_play(&app.state, vid, viewer)
        .await
        .unwrap();
}

#[tokio::test]
async fn play_counts_are_exact_for_few_viewers_and_never_fall() {
    let app = spawn_app().await;
    let (_, token) = app.register("counted").await;
    let vid = publish_url(&app, &token, "counted").await;
    // two viewers that fall in one HyperLogLog register: PFCOUNT alone says 1
    play(&app, vid, "ip:127.0.0.1").await;
    play(&app, vid, "u:378372751343616").await;
    play(&app, vid, "ip:127.0.0.1").await;
    assert_eq!(feed_plays(&app).await, 2);
    // the set of viewers evicted alone: a viewer already counted is not counted again
    let set = app.state.cache.keys.video_viewers(vid);
    let out = redis_cli(&app.redis_url, &["DEL", &set]);
    assert!(out.status.success(), "{out:?}");
    play(&app, vid, "ip:127.0.0.1").await;
    assert_eq!(feed_plays(&app).await, 2);

    // Redis rebuilt from the durable store (a fresh key prefix): the same count, and the
    // viewers already counted are known again
    let data_dir = app.data_dir.clone();
    app.stop().await;
    let mut o = Opts::new();
    o.data_dir = data_dir;
    let app = spawn_with(o).await;
    assert_eq!(feed_plays(&app).await, 2);
    play(&app, vid, "u:378372751343616").await;
    assert_eq!(feed_plays(&app).await, 2);

    // exact up to EXACT_VIEWERS, then an estimate that never falls below what was shown
    let exact = douyin_lite::cache::EXACT_VIEWERS as i64;
    let mut shown = 2;
    for n in 3..=exact + 20 {
        play(&app, vid, &format!("ip:10.0.{}.{}", n / 256, n % 256)).await;
        let c = feed_plays(&app).await;
        if n <= exact {
            assert_eq!(c, n, "exact while there are few viewers");
        } else {
            assert!(c >= shown && c > exact, "{c} after {shown}, {n} viewers");
            assert!((c - n).abs() <= 3, "{c} for {n} viewers");
        }
        shown = c;
    }

    // a reload counts the recorded viewers once each
    let data_dir = app.data_dir.clone();
    app.stop().await;
    let mut o = Opts::new();
    o.data_dir = data_dir;
    let app = spawn_with(o).await;
    let c = feed_plays(&app).await;
    assert!(c >= exact + 20 && c <= exact + 23, "{c}");
    app.stop().await;
}
