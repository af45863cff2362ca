use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn register_login_and_info() {
    let app = spawn_app().await;
    let (uid, token) = app.register("alice").await;
    assert!(uid > 0 && uid < (1i64 << 53));

    // login with form body, and the wrong password
    let v = app
        .post_form(
            "/douyin/user/login/",
            &[
                ("username", "alice".into()),
                ("password", "secret123".into()),
            ],
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    assert_eq!(v["user_id"], uid);
    let login_token = v["token"].as_str().unwrap().to_string();
    let v = app
        .post_form(
            "/douyin/user/login/",
            &[
                ("username", "alice".into()),
                ("password", "wrong-pass".into()),
            ],
        )
        .await;
    assert_eq!(code(&v), 10005);
    assert_eq!(v["token"], "");
    assert_eq!(v["user_id"], 0);
    let v = app
        .post_form(
            "/douyin/user/login/",
            &[
                ("username", "nobody".into()),
                ("password", "secret123".into()),
            ],
        )
        .await;
    assert_eq!(code(&v), 10005);

    // info: explicit id, id 0 = the caller, missing id = the caller, Bearer header
    for q in [
        vec![("user_id", uid.to_string()), ("token", token.clone())],
        vec![("user_id", "0".into()), ("token", login_token.clone())],
        vec![("token", token.clone())],
    ] {
        let v = app.get("/douyin/user/", &q).await;
        assert_eq!(code(&v), 0, "{v}");
        let u = &v["user"];
        assert_eq!(u["id"], uid);
        assert_eq!(u["name"], "alice");
        for f in [
            "follow_count",
            "follower_count",
            "total_favorited",
            "work_count",
            "favorite_count",
        ] {
            assert_eq!(u[f], 0, "{f}");
        }
        assert_eq!(u["is_follow"], false);
        for f in ["avatar", "background_image", "signature"] {
            assert!(u[f].is_string(), "{f}");
        }
    }
    let r = app
        .client
        .get(app.url("/douyin/user"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["user"]["id"], uid);
    // anonymous info of a user id works; of an unknown id is an error
    let v = app
        .get("/douyin/user/", &[("user_id", uid.to_string())])
        .await;
    assert_eq!(v["user"]["name"], "alice");
    let v = app
        .get("/douyin/user/", &[("user_id", "123456789".into())])
        .await;
    assert_eq!(code(&v), 10006);
    app.stop().await;
}

#[tokio::test]
async fn register_validates_and_rejects_duplicates() {
    let app = spawn_app().await;
    // extended spec: JSON body with profile fields
    let v = app
        .post_json(
            "/douyin/user/register/",
            json!({"username": "ocyss", "password": "230724", "avatar": "https://example.com/a.png", "background_image": "https://example.com/b.jpg", "signature": "此人巨懒"}),
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    let uid = v["user_id"].as_i64().unwrap();
    let v = app
        .get("/douyin/user/", &[("user_id", uid.to_string())])
        .await;
    assert_eq!(v["user"]["avatar"], "https://example.com/a.png");
    assert_eq!(v["user"]["signature"], "此人巨懒");

    let v = app
        .post_json(
            "/douyin/user/register/",
            json!({"username": "ocyss", "password": "another1"}),
        )
        .await;
    assert_eq!(code(&v), 10004);
    assert_eq!(v["token"], "");
    assert_eq!(v["user_id"], 0);

    for (u, p) in [
        ("", "secret123"),
        ("bob", ""),
        ("bob", "123"),
        (&"x".repeat(33) as &str, "secret123"),
    ] {
        let v = app
            .post_query(
                "/douyin/user/register",
                &[("username", u.into()), ("password", p.into())],
            )
            .await;
        assert_eq!(code(&v), 10001, "{u:?}/{p:?}: {v}");
        assert!(!v["status_msg"].as_str().unwrap().is_empty());
        assert_eq!(v["token"], "");
    }
    let v = app
        .post_json(
            "/douyin/user/register/",
            json!({"username": "carol", "password": "secret123", "avatar": "javascript:alert(1)"}),
        )
        .await;
    assert_eq!(code(&v), 10001);
    let r = app
        .client
        .post(app.url("/douyin/user/register/"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(code(&v), 10001);
    app.stop().await;
}

#[tokio::test]
async fn tokens_are_checked_everywhere() {
    let app = spawn_app().await;
    let (uid, _) = app.register("tok").await;
    let expired = app.state.auth.issue_with_times(uid, 1_000, 2_000).unwrap();
    for bad in [
        "garbage",
        expired.as_str(),
        "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.AAAA",
    ] {
        let v = app.get("/douyin/feed/", &[("token", bad.into())]).await;
        assert_eq!(code(&v), 10003, "{bad}");
        let v = app
            .get(
                "/douyin/user/",
                &[("user_id", uid.to_string()), ("token", bad.into())],
            )
            .await;
        assert_eq!(code(&v), 10003);
        let v = app
            .post_json(
                "/douyin/publish/actionUrl",
                json!({"token": bad, "url": "https://x.example/v.mp4", "title": "t"}),
            )
            .await;
        assert_eq!(code(&v), 10003);
    }
    // writes need a token
    let v = app
        .post_json(
            "/douyin/publish/actionUrl",
            json!({"url": "https://x.example/v.mp4", "title": "t"}),
        )
        .await;
    assert_eq!(code(&v), 10002);
    // a valid token of a user that does not exist cannot write
    let ghost = app.state.auth.issue(424242, 0).unwrap();
    let v = app
        .post_json(
            "/douyin/publish/actionUrl",
            json!({"token": ghost, "url": "https://x.example/v.mp4", "title": "t"}),
        )
        .await;
    assert_eq!(code(&v), 10003);
    app.stop().await;
}

#[tokio::test]
async fn parameters_come_from_anywhere_in_any_notation() {
    let app = spawn_app().await;
    let (uid, token) = app.register("params").await;
    // user_id as a float in scientific notation, as a quoted JSON string, as a urlencoded GET body
    let sci = format!("{:e}", uid as f64);
    let v = app.get("/douyin/user/", &[("user_id", sci.clone())]).await;
    assert_eq!(v["user"]["id"], uid, "{sci}: {v}");
    let r = app
        .client
        .get(app.url("/douyin/user/"))
        .header("content-type", "application/json")
        .body(json!({"user_id": uid.to_string(), "token": token}).to_string())
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["user"]["id"], uid);
    let r = app
        .client
        .get(app.url("/douyin/user"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("user_id={uid}"))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["user"]["id"], uid);
    // multipart text fields
    let form = reqwest::multipart::Form::new()
        .text("username", "params")
        .text("password", "secret123");
    let v = app.post_multipart("/douyin/user/login", form).await;
    assert_eq!(v["user_id"], uid);
    // wrong types and non-integers
    for bad in ["abc", "1.5", "1e400"] {
        let v = app.get("/douyin/user/", &[("user_id", bad.into())]).await;
        assert_eq!(code(&v), 10001, "{bad}");
        assert!(v["status_msg"].as_str().unwrap().contains("user_id"));
    }
    // unknown endpoint: still the envelope
    let v = app.get("/douyin/nope/", &[]).await;
    assert_eq!(code(&v), 10010);
    // CORS
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/douyin/feed/"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("Authorization"), "{allowed}");
    assert!(r.headers().contains_key("access-control-max-age"));
    // an API answer carries the origin a browser checks
    let r = app
        .client
        .get(app.url("/douyin/feed/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_registrations_share_fsyncs() {
    if crate::helpers::cql_enabled() {
        return; // group commit is the embedded store's; the CQL store has no fsyncs
    }
    let app = spawn_app().await;
    let before = app.state.store.stats();
    let registrations = (0..40)
        .map(|i| {
            vec![
                ("username", format!("gc{i}")),
                ("password", "secret123".to_string()),
            ]
        })
        .collect();
    for v in app
        .post_concurrently("/douyin/user/register/", registrations)
        .await
    {
        assert_eq!(v["status_code"], 0, "{v}");
    }
    let after = app.state.store.stats();
    let writes = after.durable_writes - before.durable_writes;
    let fsyncs = after.fsyncs - before.fsyncs;
    assert!(writes >= 40);
    assert!(
        fsyncs >= 1 && fsyncs <= writes,
        "{fsyncs} fsyncs for {writes} writes"
    );
    // the same name twice at once: exactly one wins
    let same = (0..8)
        .map(|_| {
            vec![
                ("username", "same".to_string()),
                ("password", "secret123".to_string()),
            ]
        })
        .collect();
    let codes: Vec<i64> = app
        .post_concurrently("/douyin/user/register/", same)
        .await
        .iter()
        .map(code)
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert_eq!(
        codes.iter().filter(|c| **c == 10004).count(),
        7,
        "{codes:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_loses_no_acknowledged_write() {
    let mut o = Opts::new();
    let (dir, prefix) = (o.data_dir.clone(), o.prefix.clone());
    // slow password hashing keeps the registrations in flight when the stop comes
    o.tweak = Box::new(|c| {
        c.auth.argon2_memory_kib = 32 * 1024;
        c.auth.argon2_iterations = 3;
    });
    let app = spawn_with(o).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let c = app.client.clone();
        let url = app.url("/douyin/user/register/");
        tasks.push(tokio::spawn(async move {
            let r = c
                .post(url)
                .query(&[
                    ("username", format!("sd{i}")),
                    ("password", "secret123".into()),
                ])
                .send()
                .await;
            match r {
                Ok(r) => r.json::<serde_json::Value>().await.ok(),
                Err(e) => {
                    eprintln!("request error: {e:?}");
                    None
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    app.stop().await;
    let mut acknowledged = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if let Some(v) = t.await.unwrap() {
            assert_eq!(v["status_code"], 0, "an answered request completed: {v}");
            acknowledged.push((i, v["user_id"].as_i64().unwrap()));
        }
    }
    assert_eq!(acknowledged.len(), 10, "every in-flight request finished");
    let mut o = Opts::new();
    o.data_dir = dir;
    o.prefix = prefix;
    let app = spawn_with(o).await;
    for (i, uid) in acknowledged {
        let v = app
            .post_query(
                "/douyin/user/login/",
                &[
                    ("username", format!("sd{i}")),
                    ("password", "secret123".into()),
                ],
            )
            .await;
        assert_eq!(v["user_id"], uid);
    }
    app.stop().await;
}

#[tokio::test]
async fn logout_revokes_one_token_or_all_and_survives_a_redis_flush() {
    let app = spawn_app().await;
    let (uid, first) = app.register("leaver").await;
    let login = || async {
        let v = app
            .post_query(
                "/douyin/user/login/",
                &[
                    ("username", "leaver".into()),
                    ("password", "secret123".into()),
                ],
            )
            .await;
        assert_eq!(code(&v), 0, "{v}");
        v["token"].as_str().unwrap().to_string()
    };
    let second = login().await;
    let info = |t: String| {
        let app = &app;
        async move {
            code(
                &app.get(
                    "/douyin/user/",
                    &[("user_id", uid.to_string()), ("token", t)],
                )
                .await,
            )
        }
    };
    let logout = |t: String, everywhere: bool| {
        let app = &app;
        async move {
            let mut q = vec![("token", t)];
            if everywhere {
                q.push(("everywhere", "1".into()));
            }
            code(&app.post_query("/douyin/user/logout/", &q).await)
        }
    };
    // one token out: that one is refused on reads and writes, the other still works
    assert_eq!(logout(first.clone(), false).await, 0);
    assert_eq!(info(first.clone()).await, 10003);
    assert_eq!(info(second.clone()).await, 0);
    let v = app
        .post_json(
            "/douyin/publish/actionUrl",
            json!({"token": first, "url": "https://cdn.example.com/x.mp4", "title": "x"}),
        )
        .await;
    assert_eq!(code(&v), 10003, "{v}");
    assert_eq!(logout(first.clone(), false).await, 10003, "already out");
    // what is revoked stays revoked when Redis loses everything
    app.flush_redis().await;
    assert_eq!(info(first.clone()).await, 10003);
    assert_eq!(info(second.clone()).await, 0);
    // everywhere: every token issued so far is refused; a new login works
    let third = login().await;
    assert_eq!(logout(second.clone(), true).await, 0);
    assert_eq!(info(second.clone()).await, 10003);
    assert_eq!(info(third.clone()).await, 10003);
    let fourth = login().await;
    assert_eq!(info(fourth.clone()).await, 0);
    app.flush_redis().await;
    assert_eq!(info(third).await, 10003);
    assert_eq!(info(fourth).await, 0);
    app.stop().await;
}
