use crate::helpers::*;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;

async fn chat(app: &TestApp, token: &str, to: i64, pre: i64) -> Vec<Value> {
    let v = app
        .get(
            "/douyin/message/chat/",
            &[
                ("token", token.into()),
                ("to_user_id", to.to_string()),
                ("pre_msg_time", pre.to_string()),
            ],
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    v["message_list"].as_array().unwrap().clone()
}

#[tokio::test]
async fn follow_lists_friends_and_counts() {
    let app = spawn_app().await;
    let (a, ta) = app.register("s_a").await;
    let (b, tb) = app.register("s_b").await;
    let (c, tc) = app.register("s_c").await;

    assert_eq!(code(&follow(&app, &ta, b, "1").await), 0);
    assert_eq!(code(&follow(&app, &ta, b, "1").await), 0, "idempotent");
    assert_eq!(code(&follow(&app, &ta, c, "1").await), 0);
    assert_eq!(code(&follow(&app, &tc, b, "1").await), 0);
    assert_eq!(app.user(a).await["follow_count"], 2);
    assert_eq!(app.user(b).await["follower_count"], 2);
    // newest first, is_follow for the viewer
    let v = app
        .get(
            "/douyin/relation/follow/list/",
            &[("user_id", a.to_string()), ("token", ta.clone())],
        )
        .await;
    assert_eq!(ids(&v["user_list"]), vec![c, b]);
    assert!(v["user_list"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["is_follow"] == true));
    let v = app
        .get(
            "/douyin/relation/follower/list/",
            &[("user_id", b.to_string()), ("token", tb.clone())],
        )
        .await;
    assert_eq!(ids(&v["user_list"]), vec![c, a]);
    assert!(
        v["user_list"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["is_follow"] == false),
        "b follows nobody"
    );
    let v = app
        .get(
            "/douyin/relation/follower/list/",
            &[("user_id", b.to_string()), ("token", ta.clone())],
        )
        .await;
    let flags: Vec<bool> = v["user_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["is_follow"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, vec![true, false], "a follows c, not itself");
    // is_follow on user info and on video authors
    assert_eq!(
        app.get(
            "/douyin/user/",
            &[("user_id", b.to_string()), ("token", ta.clone())]
        )
        .await["user"]["is_follow"],
        true
    );
    assert_eq!(
        app.get("/douyin/user/", &[("user_id", b.to_string())])
            .await["user"]["is_follow"],
        false
    );
    let pv = app
        .post_json(
            "/douyin/publish/actionUrl",
            json!({"token": tb, "url": "https://cdn.example.com/b.mp4", "title": "by b"}),
        )
        .await;
    assert_eq!(code(&pv), 0);
    let feed = app.get("/douyin/feed/", &[("token", ta.clone())]).await;
    assert_eq!(feed["video_list"][0]["author"]["is_follow"], true);
    let feed = app.get("/douyin/feed/", &[("token", tb.clone())]).await;
    assert_eq!(feed["video_list"][0]["author"]["is_follow"], false);

    // friends: mutual follows only, and unfollowing ends it
    let v = app
        .get("/douyin/relation/friend/list/", &[("token", ta.clone())])
        .await;
    assert_eq!(ids(&v["user_list"]), Vec::<i64>::new());
    assert_eq!(code(&follow(&app, &tb, a, "1").await), 0);
    let v = app
        .get(
            "/douyin/relation/friend/list/",
            &[("token", ta.clone()), ("user_id", a.to_string())],
        )
        .await;
    assert_eq!(ids(&v["user_list"]), vec![b]);
    assert_eq!(v["user_list"][0]["message"], "");
    assert_eq!(v["user_list"][0]["msgType"], 0);
    assert_eq!(v["user_list"][0]["is_follow"], true);
    let v = app
        .get("/douyin/relation/friend/list/", &[("token", tb.clone())])
        .await;
    assert_eq!(ids(&v["user_list"]), vec![a]);
    assert_eq!(code(&follow(&app, &tb, a, "2").await), 0);
    assert_eq!(code(&follow(&app, &tb, a, "2").await), 0, "idempotent");
    let v = app
        .get("/douyin/relation/friend/list/", &[("token", ta.clone())])
        .await;
    assert_eq!(ids(&v["user_list"]), Vec::<i64>::new());
    assert_eq!(app.user(a).await["follower_count"], 0);
    assert_eq!(app.user(b).await["follow_count"], 0);

    // errors
    assert_eq!(code(&follow(&app, &ta, a, "1").await), 10001, "not oneself");
    assert_eq!(code(&follow(&app, &ta, 999, "1").await), 10006);
    assert_eq!(code(&follow(&app, &ta, b, "5").await), 10001);
    let v = app
        .post_query(
            "/douyin/relation/action/",
            &[("to_user_id", b.to_string()), ("action_type", "1".into())],
        )
        .await;
    assert_eq!(code(&v), 10002);
    let v = app
        .get(
            "/douyin/relation/friend/list/",
            &[("token", ta.clone()), ("user_id", b.to_string())],
        )
        .await;
    assert_eq!(code(&v), 10011);
    let v = app.get("/douyin/relation/friend/list/", &[]).await;
    assert_eq!(code(&v), 10002);
    let v = app
        .get(
            "/douyin/relation/follow/list/",
            &[("user_id", "999".into())],
        )
        .await;
    assert_eq!(code(&v), 10006);
    let _ = tc;
    app.stop().await;
}

#[tokio::test]
async fn long_lists_are_capped_and_paged_with_a_cursor() {
    let app = spawn_with({
        let mut o = Opts::new();
        o.tweak = Box::new(|c| c.server.max_list = 4);
        o
    })
    .await;
    let (star, _) = app.register("star").await;
    let mut fans = Vec::new();
    for i in 0..10 {
        let (id, t) = app.register(&format!("fan{i}")).await;
        assert_eq!(code(&follow(&app, &t, star, "1").await), 0);
        fans.push(id);
    }
    fans.reverse();
    let v = app
        .get(
            "/douyin/relation/follower/list/",
            &[("user_id", star.to_string())],
        )
        .await;
    assert_eq!(
        ids(&v["user_list"]),
        fans[..4].to_vec(),
        "capped at server.max_list, newest first"
    );
    let seen = app
        .walk_pages(
            "/douyin/relation/follower/list/",
            &[("user_id", star.to_string())],
            "user_list",
            3,
        )
        .await;
    assert_eq!(seen, fans);
    let v = app
        .get(
            "/douyin/relation/follower/list/",
            &[("user_id", star.to_string()), ("count", "5".into())],
        )
        .await;
    assert_eq!(code(&v), 10001, "count above the cap");
    assert_eq!(app.user(star).await["follower_count"], 10);
    app.stop().await;
}

#[tokio::test]
async fn rebuild_cache_loads_every_comment_and_conversation() {
    let app = spawn_app().await;
    let (a, ta) = app.register("rb_a").await;
    let (b, tb) = app.register("rb_b").await;
    let (c, tc) = app.register("rb_c").await;
    assert_eq!(code(&follow(&app, &ta, b, "1").await), 0);
    assert_eq!(code(&follow(&app, &tb, a, "1").await), 0);
    for (token, to, text) in [(&ta, b, "one"), (&tb, a, "two"), (&tc, a, "stranger")] {
        assert_eq!(code(&send_message(&app, token, to, text).await), 0);
    }
    let vid = publish_url(&app, &tb, "commented").await;
    let mut comments = Vec::new();
    for (token, text) in [(&ta, "kept"), (&tc, "deleted")] {
        let v = app
            .post_json(
                "/douyin/comment/action/",
                json!({"token": token, "video_id": vid, "action_type": 1, "comment_text": text}),
            )
            .await;
        assert_eq!(code(&v), 0, "{v}");
        comments.push(v["comment"]["id"].as_i64().unwrap());
    }
    let v = app
        .post_json(
            "/douyin/comment/action/",
            json!({"token": tc, "video_id": vid, "action_type": 2, "comment_id": comments[1]}),
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    app.flush_redis().await;
    let done = app.state.cache.rebuild_all().await.unwrap();
    assert_eq!(
        (done.users, done.videos, done.comments, done.conversations),
        (3, 1, 1, 2),
        "the comment left, a friend's conversation and a stranger's: {done:?}"
    );
    assert_eq!(
        app.state
            .cache
            .stats
            .rebuild_singles
            .load(Ordering::Relaxed),
        0,
        "every user, video and conversation loaded in its batch, none alone"
    );
    // the comment is in Redis before any read (a comment list's first view loaded each of
    // its comments from the store), the deleted one is not
    let key = |id: i64| app.state.cache.keys.comment(id);
    let held = redis_cli(&app.redis_url, &["HGET", &key(comments[0]), "content"]);
    assert_eq!(String::from_utf8_lossy(&held.stdout).trim(), "kept");
    let gone = redis_cli(&app.redis_url, &["EXISTS", &key(comments[1])]);
    assert_eq!(String::from_utf8_lossy(&gone.stdout).trim(), "0");
    let reloads = || app.state.cache.stats.reloads.load(Ordering::Relaxed);
    let before = reloads();
    let v = app
        .get("/douyin/relation/friend/list/", &[("token", ta.clone())])
        .await;
    assert_eq!(code(&v), 0, "{v}");
    assert_eq!(v["user_list"][0]["id"], b, "{v}");
    assert_eq!(v["user_list"][0]["message"], "two", "{v}");
    assert_eq!(v["user_list"][0]["msgType"], 0, "{v}");
    let texts = |list: &[Value], field: &str| -> Vec<String> {
        list.iter()
            .map(|m| m[field].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        texts(&chat(&app, &ta, b, 0).await, "content"),
        ["one", "two"]
    );
    assert_eq!(texts(&chat(&app, &ta, c, 0).await, "content"), ["stranger"]);
    assert_eq!(
        reloads(),
        before,
        "the rebuild left a conversation for the first read to load from the store"
    );
    let list = app
        .get("/douyin/comment/list/", &[("video_id", vid.to_string())])
        .await;
    assert_eq!(
        texts(list["comment_list"].as_array().unwrap(), "content"),
        ["kept"]
    );
}

#[tokio::test]
async fn friend_list_loads_cold_conversations_and_serves_their_latest_messages() {
    let app = spawn_app().await;
    let (a, ta) = app.register("cold_a").await;
    let mut friends = Vec::new();
    for i in 0..6 {
        let (f, tf) = app.register(&format!("cold_f{i}")).await;
        assert_eq!(code(&follow(&app, &ta, f, "1").await), 0);
        assert_eq!(code(&follow(&app, &tf, a, "1").await), 0);
        friends.push((f, tf));
    }
    // friend i has i + 1 messages, sent by a and by the friend in turn (a first); the last
    // friend none
    for (i, (f, tf)) in friends.iter().enumerate().take(5) {
        for j in 0..=i {
            let (token, to) = if j % 2 == 0 { (&ta, *f) } else { (tf, a) };
            let sent = send_message(&app, token, to, &format!("c{i}-{j}")).await;
            assert_eq!(code(&sent), 0);
        }
    }
    // every conversation now lives only in the durable store
    app.flush_redis().await;
    let v = app
        .get("/douyin/relation/friend/list/", &[("token", ta.clone())])
        .await;
    assert_eq!(code(&v), 0, "{v}");
    let list = v["user_list"].as_array().unwrap();
    assert_eq!(list.len(), 6);
    for u in list {
        let i = friends.iter().position(|(f, _)| u["id"] == *f).unwrap();
        if i == 5 {
            assert_eq!(u["message"], "", "no conversation: {u}");
            continue;
        }
        assert_eq!(u["message"], format!("c{i}-{i}"), "{u}");
        // msgType 1: a sent it (even i), 0: a received it
        assert_eq!(u["msgType"], if i % 2 == 0 { 1 } else { 0 }, "{u}");
    }
    // loaded whole into redis, not only the newest message
    let all = chat(&app, &ta, friends[4].0, 0).await;
    let contents: Vec<&str> = all.iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, vec!["c4-0", "c4-1", "c4-2", "c4-3", "c4-4"]);
    // the same list again is the same, and once the loads' own invalidation messages have
    // come back (loading writes the keys), it is served from the near-cache
    let mut rts = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rt = app.state.cache.stats.round_trips.load(Ordering::Relaxed);
        let again = app
            .get("/douyin/relation/friend/list/", &[("token", ta.clone())])
            .await;
        assert_eq!(again["user_list"], v["user_list"]);
        rts.push(app.state.cache.stats.round_trips.load(Ordering::Relaxed) - rt);
    }
    assert_eq!(
        rts.last(),
        Some(&0),
        "a warm friend list went to redis: {rts:?}"
    );
    // a new message shows at once
    let (f3, tf3) = &friends[3];
    assert_eq!(code(&send_message(&app, tf3, a, "newest").await), 0);
    let v = app
        .get("/douyin/relation/friend/list/", &[("token", ta.clone())])
        .await;
    let u = v["user_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == *f3)
        .unwrap();
    assert_eq!(
        (u["message"].as_str(), u["msgType"].as_i64()),
        (Some("newest"), Some(0))
    );
    app.stop().await;
}

#[tokio::test]
async fn chat_polling_never_shows_a_message_twice_or_misses_one() {
    let app = spawn_app().await;
    let (a, ta) = app.register("chat_a").await;
    let (b, tb) = app.register("chat_b").await;
    assert_eq!(code(&follow(&app, &ta, b, "1").await), 0);
    assert_eq!(code(&follow(&app, &tb, a, "1").await), 0);

    assert_eq!(code(&send_message(&app, &ta, b, "hello b").await), 0);
    assert_eq!(code(&send_message(&app, &tb, a, "hi a").await), 0);
    // whole conversation, both directions, oldest first, create_time a number in ms
    let all = chat(&app, &ta, b, 0).await;
    let contents: Vec<&str> = all.iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, vec!["hello b", "hi a"]);
    assert_eq!(all[0]["from_user_id"], a);
    assert_eq!(all[0]["to_user_id"], b);
    let t0 = all[0]["create_time"].as_i64().unwrap();
    assert!(t0 > 1_700_000_000_000, "milliseconds: {t0}");
    let same = app
        .get(
            "/douyin/message/chat/",
            &[("token", tb.clone()), ("to_user_id", a.to_string())],
        )
        .await;
    assert_eq!(
        same["message_list"].as_array().unwrap().len(),
        2,
        "missing pre_msg_time means everything"
    );

    // b polls with the newest create_time it has: nothing new; then a's new messages only once
    let mut newest_b = all.last().unwrap()["create_time"].as_i64().unwrap();
    assert!(chat(&app, &tb, a, newest_b).await.is_empty());
    for i in 0..5 {
        assert_eq!(code(&send_message(&app, &ta, b, &format!("m{i}")).await), 0);
        assert_eq!(
            code(&send_message(&app, &tb, a, &format!("r{i}")).await),
            0,
            "b's own messages are never returned to b's poll"
        );
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let new = chat(&app, &tb, a, newest_b).await;
        for m in &new {
            assert_eq!(m["from_user_id"], a);
            newest_b = newest_b.max(m["create_time"].as_i64().unwrap());
            got.push(m["content"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(got, vec!["m0", "m1", "m2", "m3", "m4"]);

    // friend list shows the latest message and who sent it
    let v = app
        .get("/douyin/relation/friend/list/", &[("token", ta.clone())])
        .await;
    assert_eq!(v["user_list"][0]["message"], "r4");
    assert_eq!(v["user_list"][0]["msgType"], 0);
    let v = app
        .get("/douyin/relation/friend/list/", &[("token", tb.clone())])
        .await;
    assert_eq!(v["user_list"][0]["message"], "r4");
    assert_eq!(v["user_list"][0]["msgType"], 1);

    // errors
    assert_eq!(code(&send_message(&app, &ta, a, "me").await), 10001);
    assert_eq!(code(&send_message(&app, &ta, 4242, "who").await), 10006);
    assert_eq!(code(&send_message(&app, &ta, b, "   ").await), 10001);
    assert_eq!(
        code(&send_message(&app, &ta, b, &"x".repeat(1001)).await),
        10001
    );
    assert_eq!(
        code(&send_message(&app, &ta, b, &"好".repeat(1000)).await),
        0
    );
    let v = app
        .post_json(
            "/douyin/message/action/",
            json!({"token": ta, "to_user_id": b, "action_type": 2, "content": "x"}),
        )
        .await;
    assert_eq!(code(&v), 10001);
    let v = app
        .get("/douyin/message/chat/", &[("to_user_id", b.to_string())])
        .await;
    assert_eq!(code(&v), 10002);
    app.stop().await;
}

#[tokio::test]
async fn strangers_can_message_unless_configured_friends_only() {
    let app = spawn_app().await;
    let (_, ta) = app.register("open_a").await;
    let (b, _) = app.register("open_b").await;
    assert_eq!(code(&send_message(&app, &ta, b, "hello stranger").await), 0);
    app.stop().await;

    let app = spawn_with({
        let mut o = Opts::new();
        o.tweak = Box::new(|c| c.server.messages_friends_only = true);
        o
    })
    .await;
    let (a, ta) = app.register("closed_a").await;
    let (b, tb) = app.register("closed_b").await;
    assert_eq!(code(&send_message(&app, &ta, b, "hello").await), 10011);
    assert_eq!(code(&follow(&app, &ta, b, "1").await), 0);
    assert_eq!(
        code(&send_message(&app, &ta, b, "hello").await),
        10011,
        "a one-way follow is not friendship"
    );
    assert_eq!(code(&follow(&app, &tb, a, "1").await), 0);
    assert_eq!(code(&send_message(&app, &ta, b, "hello friend").await), 0);
    app.stop().await;
}

/// Every relation count equals the durable records, and lists match them.
async fn assert_relations_match_records(app: &TestApp, users: &[(i64, String)]) {
    for (u, token) in users {
        let following = app.state.store.following(*u).await.unwrap();
        let followers = app.state.store.followers(*u).await.unwrap();
        let info = app.user(*u).await;
        assert_eq!(
            info["follow_count"].as_i64().unwrap(),
            following.len() as i64,
            "user {u}"
        );
        assert_eq!(
            info["follower_count"].as_i64().unwrap(),
            followers.len() as i64,
            "user {u}"
        );
        let fl = app
            .get(
                "/douyin/relation/follow/list/",
                &[("user_id", u.to_string())],
            )
            .await;
        assert_eq!(
            ids(&fl["user_list"]),
            following.iter().map(|(_, id)| *id).collect::<Vec<_>>()
        );
        let fr = app
            .get(
                "/douyin/relation/follower/list/",
                &[("user_id", u.to_string())],
            )
            .await;
        assert_eq!(
            ids(&fr["user_list"]),
            followers.iter().map(|(_, id)| *id).collect::<Vec<_>>()
        );
        let friends = app
            .get("/douyin/relation/friend/list/", &[("token", token.clone())])
            .await;
        let mut got = ids(&friends["user_list"]);
        got.sort();
        let fset: std::collections::HashSet<i64> = followers.iter().map(|(_, id)| *id).collect();
        let mut want: Vec<i64> = following
            .iter()
            .map(|(_, id)| *id)
            .filter(|id| fset.contains(id))
            .collect();
        want.sort();
        assert_eq!(got, want, "friends of {u}");
    }
}

#[tokio::test]
async fn follow_storms_stay_exact_across_flush_and_restart() {
    let redis = OwnRedis::start().await;
    let mut o = Opts::new();
    let (dir, prefix) = (o.data_dir.clone(), o.prefix.clone());
    o.redis_url = redis.url.clone();
    let app = spawn_with(o).await;
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(app.register(&format!("fs{i}")).await);
    }
    let all: Vec<i64> = users.iter().map(|(id, _)| *id).collect();
    let mut tasks = Vec::new();
    for (n, (me, token)) in users.iter().enumerate() {
        // two connections per user, so one user's changes can cross each other
        for lane in 0..2u64 {
            let (c, url, token, all, me) = (
                app.client.clone(),
                app.url("/douyin/relation/action/"),
                token.clone(),
                all.clone(),
                *me,
            );
            tasks.push(tokio::spawn(async move {
                let mut seed = n as u64 * 31 + lane * 1_000_003 + 7;
                for _ in 0..10 {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let to = all[(seed >> 33) as usize % all.len()];
                    if to == me {
                        continue;
                    }
                    let action = if (seed >> 45).is_multiple_of(3) {
                        "2"
                    } else {
                        "1"
                    };
                    let v: Value = c
                        .post(&url)
                        .query(&[
                            ("token", token.as_str()),
                            ("to_user_id", &to.to_string()),
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
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_relations_match_records(&app, &users).await;
    // a conversation to carry across
    let (a, ta) = users[0].clone();
    let (b, _) = users[1].clone();
    assert_eq!(code(&send_message(&app, &ta, b, "persist me").await), 0);
    let before = chat(&app, &ta, b, 0).await;
    app.flush_redis().await;
    assert_relations_match_records(&app, &users).await;
    assert_eq!(chat(&app, &ta, b, 0).await, before);
    app.stop().await;

    let mut o = Opts::new();
    o.data_dir = dir;
    o.prefix = prefix;
    o.redis_url = redis.url.clone();
    let app = spawn_with(o).await;
    assert_relations_match_records(&app, &users).await;
    app.flush_redis().await;
    assert_eq!(chat(&app, &ta, b, 0).await, before);
    assert_relations_match_records(&app, &users).await;
    let _ = a;
    app.stop().await;
}

#[tokio::test]
async fn a_follow_storm_on_one_user_needs_no_reloads() {
    let app = spawn_app().await;
    let (star, _) = app.register("celebrity").await;
    let mut fans = Vec::new();
    for i in 0..40 {
        fans.push(app.register(&format!("storm_fan{i}")).await);
    }
    let _ = app.user(star).await;
    let reloads = || {
        app.state
            .cache
            .stats
            .reloads
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = reloads();
    let follows = fans
        .iter()
        .map(|(_, t)| {
            vec![
                ("token", t.clone()),
                ("to_user_id", star.to_string()),
                ("action_type", "1".to_string()),
            ]
        })
        .collect();
    for v in app
        .post_concurrently("/douyin/relation/action/", follows)
        .await
    {
        assert_eq!(code(&v), 0, "{v}");
    }
    // changes of different members commute: whatever order they reached Redis in, nothing was
    // dropped for a reload
    assert_eq!(reloads(), before);
    assert_eq!(app.user(star).await["follower_count"], 40);
    let list = app
        .get(
            "/douyin/relation/follower/list/",
            &[("user_id", star.to_string())],
        )
        .await;
    let mut got = ids(&list["user_list"]);
    got.sort();
    let mut want: Vec<i64> = fans.iter().map(|(id, _)| *id).collect();
    want.sort();
    assert_eq!(got, want);
    app.stop().await;
}
