use crate::helpers::*;
use serde_json::{json, Value};

#[tokio::test]
async fn likes_are_idempotent_and_counted_everywhere() {
    let app = spawn_app().await;
    let (a, ta) = app.register("author").await;
    let (b, tb) = app.register("fan").await;
    let v1 = publish_url(&app, &ta, "v1").await;
    let v2 = publish_url(&app, &ta, "v2").await;

    assert_eq!(code(&like(&app, &tb, v1, "1").await), 0);
    assert_eq!(
        code(&like(&app, &tb, v1, "1").await),
        0,
        "a second like succeeds"
    );
    let feed = app.get("/douyin/feed/", &[("token", tb.clone())]).await;
    let list = feed["video_list"].as_array().unwrap();
    assert_eq!(ids(&feed["video_list"]), vec![v2, v1]);
    assert_eq!(list[1]["is_favorite"], true);
    assert_eq!(list[1]["favorite_count"], 1, "liking twice counts once");
    assert_eq!(list[0]["is_favorite"], false);
    let anon = app.get("/douyin/feed/", &[]).await;
    assert_eq!(anon["video_list"][1]["is_favorite"], false);
    assert_eq!(app.user(a).await["total_favorited"], 1);
    assert_eq!(app.user(b).await["favorite_count"], 1);

    // most recently liked first; flags for the viewer, not for the list's owner
    assert_eq!(code(&like(&app, &tb, v2, "1").await), 0);
    let fav = app
        .get(
            "/douyin/favorite/list/",
            &[("user_id", b.to_string()), ("token", tb.clone())],
        )
        .await;
    assert_eq!(ids(&fav["video_list"]), vec![v2, v1]);
    assert!(fav["video_list"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["is_favorite"] == true));
    let fav_seen_by_a = app
        .get(
            "/douyin/favorite/list/",
            &[("user_id", b.to_string()), ("token", ta.clone())],
        )
        .await;
    assert!(fav_seen_by_a["video_list"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["is_favorite"] == false));
    let own = app
        .get("/douyin/favorite/list", &[("token", tb.clone())])
        .await;
    assert_eq!(ids(&own["video_list"]), vec![v2, v1]);
    let pl = app
        .get(
            "/douyin/publish/list/",
            &[("user_id", a.to_string()), ("token", tb.clone())],
        )
        .await;
    assert!(pl["video_list"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["is_favorite"] == true));

    // unlike: twice, and of a video never liked
    assert_eq!(code(&like(&app, &tb, v1, "2").await), 0);
    assert_eq!(code(&like(&app, &tb, v1, "2").await), 0);
    assert_eq!(code(&like(&app, &ta, v1, "2").await), 0);
    assert_eq!(app.user(a).await["total_favorited"], 1);
    assert_eq!(app.user(b).await["favorite_count"], 1);
    let fav = app
        .get("/douyin/favorite/list/", &[("user_id", b.to_string())])
        .await;
    assert_eq!(ids(&fav["video_list"]), vec![v2]);

    // liking one's own video counts on both sides of the same user
    assert_eq!(code(&like(&app, &ta, v1, "1").await), 0);
    let ua = app.user(a).await;
    assert_eq!(
        (
            ua["total_favorited"].as_i64(),
            ua["favorite_count"].as_i64()
        ),
        (Some(2), Some(1))
    );

    // errors
    assert_eq!(code(&like(&app, &tb, 123456, "1").await), 10007);
    assert_eq!(code(&like(&app, &tb, v1, "3").await), 10001);
    assert_eq!(code(&like(&app, &tb, v1, "x").await), 10001);
    let v = app
        .post_query(
            "/douyin/favorite/action/",
            &[("video_id", v1.to_string()), ("action_type", "1".into())],
        )
        .await;
    assert_eq!(code(&v), 10002);
    let v = app
        .post_query(
            "/douyin/favorite/action/",
            &[("token", tb.clone()), ("action_type", "1".into())],
        )
        .await;
    assert_eq!(code(&v), 10001);
    let v = app
        .get("/douyin/favorite/list/", &[("user_id", "999".into())])
        .await;
    assert_eq!(code(&v), 10006);
    // JSON body with numbers as a float and a string
    let v = app
        .post_json(
            "/douyin/favorite/action/",
            json!({"token": tb, "video_id": v1.to_string(), "action_type": 1.0}),
        )
        .await;
    assert_eq!(code(&v), 0);
    assert_eq!(app.user(b).await["favorite_count"], 2);
    app.stop().await;
}

#[tokio::test]
async fn comments_post_list_and_delete_with_authorisation() {
    let app = spawn_app().await;
    let (a, ta) = app.register("owner").await;
    let (b, tb) = app.register("commenter").await;
    let (_c, tc) = app.register("stranger").await;
    let v1 = publish_url(&app, &ta, "v1").await;
    let v2 = publish_url(&app, &ta, "v2").await;

    let v = app
        .post_json(
            "/douyin/comment/action/",
            json!({"token": tb, "video_id": v1, "action_type": 1, "comment_text": "  第一!!  "}),
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    let c1 = &v["comment"];
    assert_eq!(c1["content"], "第一!!");
    assert_eq!(c1["user"]["id"], b);
    assert_eq!(c1["reply_id"], 0);
    let date = c1["create_date"].as_str().unwrap();
    assert!(
        date.len() == 5 && date.as_bytes()[2] == b'-' && date[..2].parse::<u32>().unwrap() <= 12,
        "{date}"
    );
    let c1 = c1["id"].as_i64().unwrap();
    let v = app
        .post_form(
            "/douyin/comment/action/",
            &[
                ("token", ta.clone()),
                ("video_id", v1.to_string()),
                ("action_type", "1".into()),
                ("comment_text", "thanks".into()),
                ("reply_id", c1.to_string()),
            ],
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    assert_eq!(v["comment"]["reply_id"], c1);
    let c2 = v["comment"]["id"].as_i64().unwrap();

    let list = app
        .get("/douyin/comment/list/", &[("video_id", v1.to_string())])
        .await;
    assert_eq!(ids(&list["comment_list"]), vec![c2, c1], "newest first");
    assert_eq!(list["comment_list"][1]["user"]["name"], "commenter");
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(feed["video_list"][1]["comment_count"], 2);

    // bad input changes nothing
    for (text, want) in [
        ("", 10001),
        ("   ", 10001),
        (&"长".repeat(501) as &str, 10001),
    ] {
        let v = app
            .post_query(
                "/douyin/comment/action/",
                &[
                    ("token", tb.clone()),
                    ("video_id", v1.to_string()),
                    ("action_type", "1".into()),
                    ("comment_text", text.into()),
                ],
            )
            .await;
        assert_eq!(code(&v), want);
    }
    let ok500 = app
        .post_query(
            "/douyin/comment/action/",
            &[
                ("token", tb.clone()),
                ("video_id", v2.to_string()),
                ("action_type", "1".into()),
                ("comment_text", "长".repeat(500)),
            ],
        )
        .await;
    assert_eq!(code(&ok500), 0);
    let c3 = ok500["comment"]["id"].as_i64().unwrap();
    let v = app
        .post_query(
            "/douyin/comment/action/",
            &[
                ("token", tb.clone()),
                ("video_id", v1.to_string()),
                ("action_type", "1".into()),
                ("comment_text", "x".into()),
                ("reply_id", c3.to_string()),
            ],
        )
        .await;
    assert_eq!(code(&v), 10001, "a reply must be on the same video");
    let v = app
        .post_query(
            "/douyin/comment/action/",
            &[
                ("token", tb.clone()),
                ("video_id", "42".into()),
                ("action_type", "1".into()),
                ("comment_text", "x".into()),
            ],
        )
        .await;
    assert_eq!(code(&v), 10007);
    let v = app
        .get("/douyin/comment/list/", &[("video_id", "42".into())])
        .await;
    assert_eq!(code(&v), 10007);

    // deleting: a stranger may not, an unknown id or another video's comment is not found
    let del = |t: &str, vid: i64, cid: i64| {
        let q = vec![
            ("token", t.to_string()),
            ("video_id", vid.to_string()),
            ("action_type", "2".to_string()),
            ("comment_id", cid.to_string()),
        ];
        let app = &app;
        async move { app.post_query("/douyin/comment/action/", &q).await }
    };
    assert_eq!(code(&del(&tc, v1, c1).await), 10011);
    assert_eq!(code(&del(&tb, v1, 777).await), 10014);
    assert_eq!(code(&del(&tb, v2, c1).await), 10014);
    let list = app
        .get("/douyin/comment/list/", &[("video_id", v1.to_string())])
        .await;
    assert_eq!(ids(&list["comment_list"]), vec![c2, c1], "nothing changed");
    // the comment's author may; the video's author may delete someone else's
    let v = del(&tb, v2, c3).await;
    assert_eq!(code(&v), 0);
    assert_eq!(v["comment"]["id"], c3);
    assert_eq!(code(&del(&ta, v1, c1).await), 0);
    assert_eq!(code(&del(&ta, v1, c1).await), 10014, "already deleted");
    let list = app
        .get("/douyin/comment/list/", &[("video_id", v1.to_string())])
        .await;
    assert_eq!(ids(&list["comment_list"]), vec![c2]);
    let feed = app.get("/douyin/feed/", &[]).await;
    assert_eq!(feed["video_list"][0]["comment_count"], 0);
    assert_eq!(feed["video_list"][1]["comment_count"], 1);
    let _ = a;
    app.stop().await;
}

/// Every count the API shows equals the durable like records.
async fn assert_counts_match_records(
    app: &TestApp,
    author: i64,
    videos: &[i64],
    users: &[(i64, String)],
) {
    let st = &app.state;
    let mut total = 0;
    let pl = app
        .get("/douyin/publish/list/", &[("user_id", author.to_string())])
        .await;
    for v in pl["video_list"].as_array().unwrap() {
        let vid = v["id"].as_i64().unwrap();
        assert!(videos.contains(&vid));
        let records = st.store.count_likers(vid).await.unwrap();
        assert_eq!(
            v["favorite_count"].as_i64().unwrap(),
            records,
            "video {vid}"
        );
        total += records;
    }
    assert_eq!(
        app.user(author).await["total_favorited"].as_i64().unwrap(),
        total
    );
    for (u, token) in users {
        let records = st.store.likes_by_user(*u).await.unwrap();
        assert_eq!(
            app.user(*u).await["favorite_count"].as_i64().unwrap(),
            records.len() as i64,
            "user {u}"
        );
        let fav = app
            .get(
                "/douyin/favorite/list/",
                &[("user_id", u.to_string()), ("token", token.clone())],
            )
            .await;
        let listed = ids(&fav["video_list"]);
        let mut want: Vec<i64> = records.iter().map(|(_, v)| *v).collect();
        assert_eq!(listed, want, "favorite list of {u}");
        want.sort();
        let feed = app.get("/douyin/feed/", &[("token", token.clone())]).await;
        for v in feed["video_list"].as_array().unwrap() {
            let vid = v["id"].as_i64().unwrap();
            assert_eq!(
                v["is_favorite"].as_bool().unwrap(),
                want.binary_search(&vid).is_ok()
            );
        }
    }
}

#[tokio::test]
async fn concurrent_like_storms_stay_exact_across_flush_and_restart() {
    let redis = OwnRedis::start().await;
    let mut o = Opts::new();
    let (dir, prefix) = (o.data_dir.clone(), o.prefix.clone());
    o.redis_url = redis.url.clone();
    let app = spawn_with(o).await;
    let (author, ta) = app.register("popular").await;
    let mut videos = Vec::new();
    for i in 0..3 {
        videos.push(publish_url(&app, &ta, &format!("hit {i}")).await);
    }
    let mut users = Vec::new();
    for i in 0..50 {
        users.push(app.register(&format!("storm{i}")).await);
    }
    let mut tasks = Vec::new();
    for (n, (_, token)) in users.iter().enumerate() {
        let (c, url, token, videos) = (
            app.client.clone(),
            app.url("/douyin/favorite/action/"),
            token.clone(),
            videos.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut seed = n as u64 * 7919 + 1;
            for _ in 0..12 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let vid = videos[(seed >> 33) as usize % videos.len()];
                let action = if (seed >> 40).is_multiple_of(3) {
                    "2"
                } else {
                    "1"
                };
                let v: Value = c
                    .post(&url)
                    .query(&[
                        ("token", token.as_str()),
                        ("video_id", &vid.to_string()),
                        ("action_type", action),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(v["status_code"], 0, "{v}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_counts_match_records(&app, author, &videos, &users).await;
    // on a single Redis, likes that wake together share one script call, and the author's
    // (and a video's) counters go once in it, the newest: the storm took that path
    if !redis_is_cluster(&redis.url) {
        let text = app.metrics_text().await;
        let folded: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("douyin_cache_apply_coalesced_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(folded >= 1.0, "no change was folded into a newer one");
    }
    // one user toggling the same video from many connections at once: changes reach Redis out
    // of order, and must still end exact
    let (_, token) = users[0].clone();
    let toggles = (0..30u32)
        .map(|k| {
            let action = if k.is_multiple_of(2) { "1" } else { "2" };
            vec![
                ("token", token.clone()),
                ("video_id", videos[0].to_string()),
                ("action_type", action.to_string()),
            ]
        })
        .collect();
    for v in app
        .post_concurrently("/douyin/favorite/action/", toggles)
        .await
    {
        assert_eq!(v["status_code"], 0, "{v}");
    }
    assert_counts_match_records(&app, author, &videos, &users).await;
    let total: i64 = {
        let mut t = 0;
        for v in &videos {
            t += app.state.store.count_likers(*v).await.unwrap();
        }
        t
    };
    assert!(total > 0);

    app.flush_redis().await;
    assert_counts_match_records(&app, author, &videos, &users).await;
    app.stop().await;

    let mut o = Opts::new();
    o.data_dir = dir;
    o.prefix = prefix;
    o.redis_url = redis.url.clone();
    let app = spawn_with(o).await;
    assert_counts_match_records(&app, author, &videos, &users).await;
    app.flush_redis().await;
    assert_counts_match_records(&app, author, &videos, &users).await;
    app.stop().await;
}

#[tokio::test]
async fn comments_and_counts_survive_flushall() {
    let redis = OwnRedis::start().await;
    let mut o = Opts::new();
    o.redis_url = redis.url.clone();
    let app = spawn_with(o).await;
    let (_, ta) = app.register("cf_a").await;
    let (_, tb) = app.register("cf_b").await;
    let v1 = publish_url(&app, &ta, "v1").await;
    // more than the comments a list loads from the durable store at once
    for i in 0..20 {
        let v = app
            .post_query(
                "/douyin/comment/action/",
                &[
                    ("token", tb.clone()),
                    ("video_id", v1.to_string()),
                    ("action_type", "1".into()),
                    ("comment_text", format!("c{i}")),
                ],
            )
            .await;
        assert_eq!(code(&v), 0);
    }
    let first = app
        .get("/douyin/comment/list/", &[("video_id", v1.to_string())])
        .await["comment_list"]
        .clone();
    let del = first[2]["id"].as_i64().unwrap();
    let v = app
        .post_query(
            "/douyin/comment/action/",
            &[
                ("token", tb.clone()),
                ("video_id", v1.to_string()),
                ("action_type", "2".into()),
                ("comment_id", del.to_string()),
            ],
        )
        .await;
    assert_eq!(code(&v), 0);
    assert_eq!(code(&like(&app, &tb, v1, "1").await), 0);
    let before = (
        app.get("/douyin/comment/list/", &[("video_id", v1.to_string())])
            .await,
        app.get("/douyin/feed/", &[("token", tb.clone())]).await,
    );
    assert_eq!(before.0["comment_list"].as_array().unwrap().len(), 19);
    assert_eq!(before.1["video_list"][0]["comment_count"], 19);
    app.flush_redis().await;
    let after = (
        app.get("/douyin/comment/list/", &[("video_id", v1.to_string())])
            .await,
        app.get("/douyin/feed/", &[("token", tb.clone())]).await,
    );
    assert_eq!(before, after);
    app.stop().await;
}

#[tokio::test]
async fn likes_abandoned_by_the_client_still_reach_redis_at_once() {
    let app = spawn_app().await;
    let (_, ta) = app.register("quitter_a").await;
    let (b, tb) = app.register("quitter_b").await;
    let mut videos = Vec::new();
    for i in 0..40 {
        videos.push(publish_url(&app, &ta, &format!("v{i}")).await);
    }
    let _ = app.get("/douyin/feed/", &[("token", tb.clone())]).await;
    // a client that sends a like and hangs up while the server is (likely) in the middle of it,
    // one video each, so that any like cut off between its durable commit and its Redis side
    // shows
    let addr = app.base.trim_start_matches("http://").to_string();
    for (i, vid) in videos.iter().enumerate() {
        let req = format!(
            "POST /douyin/favorite/action/?token={tb}&video_id={vid}&action_type=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        );
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_micros(100 + 50 * (i as u64 % 40))).await;
        drop(s);
    }
    // once the durable likes stop changing (the server finishes each like on its own), and
    // well before the outbox replayer (5 s) could mend anything
    let started = std::time::Instant::now();
    let mut liked = app.state.store.likes_by_user(b).await.unwrap();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let now = app.state.store.likes_by_user(b).await.unwrap();
        let pending = app.state.store.pending_outbox(100).await.unwrap().len();
        if (now == liked && pending == 0) || started.elapsed().as_millis() > 3500 {
            liked = now;
            break;
        }
        liked = now;
    }
    assert!(!liked.is_empty());
    let pl = app
        .get("/douyin/favorite/list/", &[("user_id", b.to_string())])
        .await;
    assert_eq!(
        ids(&pl["video_list"]),
        liked.iter().map(|(_, v)| *v).collect::<Vec<_>>()
    );
    assert_eq!(
        app.user(b).await["favorite_count"].as_i64().unwrap(),
        liked.len() as i64
    );
    let feed = app.get("/douyin/feed/", &[]).await;
    for v in feed["video_list"].as_array().unwrap() {
        let vid = v["id"].as_i64().unwrap();
        let durable = app.state.store.count_likers(vid).await.unwrap();
        assert_eq!(
            v["favorite_count"].as_i64().unwrap(),
            durable,
            "video {vid}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_favorite_list_pages_by_cursor() {
    let mut o = Opts::new();
    o.tweak = Box::new(|c| c.server.max_list = 4);
    let app = spawn_with(o).await;
    let (_, author) = app.register("paged_author").await;
    let (fan, ft) = app.register("paged_fan").await;
    let mut liked = Vec::new();
    for i in 0..7 {
        let vid = publish_url(&app, &author, &format!("v{i}")).await;
        assert_eq!(code(&like(&app, &ft, vid, "1").await), 0);
        liked.push(vid);
    }
    liked.reverse();
    let list = |q: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let mut q = q;
            q.push(("user_id", fan.to_string()));
            app.get("/douyin/favorite/list/", &q).await
        }
    };
    // the client's default: the whole list up to server.max_list, newest like first
    let v = list(vec![]).await;
    assert_eq!(ids(&v["video_list"]), liked[..4].to_vec());
    let seen = app
        .walk_pages(
            "/douyin/favorite/list/",
            &[("user_id", fan.to_string())],
            "video_list",
            3,
        )
        .await;
    assert_eq!(seen, liked, "every liked video once, newest first");
    for (k, bad) in [("count", "5"), ("count", "0"), ("cursor", "-1")] {
        let v = list(vec![(k, bad.into())]).await;
        assert_eq!(code(&v), 10001, "{k}={bad}");
    }
    app.stop().await;
}

#[tokio::test]
async fn publish_and_comment_lists_page_by_cursor() {
    let mut o = Opts::new();
    o.tweak = Box::new(|c| c.server.max_list = 4);
    let app = spawn_with(o).await;
    let (author, at) = app.register("prolific").await;
    let mut videos = Vec::new();
    for i in 0..6 {
        videos.push(publish_url(&app, &at, &format!("v{i}")).await);
    }
    videos.reverse();
    let vid = videos[0];
    let mut comments = Vec::new();
    for i in 0..6 {
        let v = app
            .post_form(
                "/douyin/comment/action/",
                &[
                    ("token", at.clone()),
                    ("video_id", vid.to_string()),
                    ("action_type", "1".into()),
                    ("comment_text", format!("c{i}")),
                ],
            )
            .await;
        assert_eq!(code(&v), 0, "{v}");
        comments.push(v["comment"]["id"].as_i64().unwrap());
    }
    comments.reverse();
    let q = [("user_id", author.to_string())];
    let seen = app
        .walk_pages("/douyin/publish/list/", &q, "video_list", 4)
        .await;
    assert_eq!(seen, videos);
    let q = [("video_id", vid.to_string())];
    let seen = app
        .walk_pages("/douyin/comment/list/", &q, "comment_list", 4)
        .await;
    assert_eq!(seen, comments);
    // without paging parameters: the newest server.max_list, as the client expects
    let v = app
        .get("/douyin/comment/list/", &[("video_id", vid.to_string())])
        .await;
    assert_eq!(ids(&v["comment_list"]), comments[..4].to_vec());
    let v = app
        .get(
            "/douyin/publish/list/",
            &[("user_id", author.to_string()), ("count", "9".into())],
        )
        .await;
    assert_eq!(code(&v), 10001);
    app.stop().await;
}
