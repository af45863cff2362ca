//! /openapi.json: the OpenAPI 3.1 document describes exactly the routes the server serves and
//! every status code it answers with (schemathesis fuzzes the server against it in CI:
//! deploy/schemathesis.sh).

use crate::helpers::*;
use douyin_lite::error::AppError;
use serde_json::Value;
use std::collections::BTreeSet;

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_route_table() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|p| match p.trim_end_matches('/') {
            "" => "/".to_string(),
            p => p.to_string(),
        })
        .collect();
    let served: BTreeSet<String> = douyin_lite::api::ctx::registered().into_iter().collect();
    assert_eq!(
        documented, served,
        "documented (left) and served (right) paths differ"
    );
    // every route has a metrics label of its own (labels stay a fixed set: others are "other")
    for path in &served {
        let sample = path
            .replace("{dir}", "videos")
            .replace("{file}", "1.mp4")
            .replace("{id}", "1");
        assert_ne!(
            douyin_lite::ops::metrics::route_label(&sample),
            "other",
            "{path} has no metrics label"
        );
    }
    // every envelope answer documents every status code the API can send
    let every = [
        AppError::InvalidParam(String::new()),
        AppError::Unauthenticated,
        AppError::InvalidToken,
        AppError::UserExists,
        AppError::WrongCredentials,
        AppError::UserNotFound,
        AppError::VideoNotFound,
        AppError::PayloadTooLarge(0),
        AppError::InvalidMedia(String::new()),
        AppError::RouteNotFound,
        AppError::Forbidden(String::new()),
        AppError::Unavailable(String::new()),
        AppError::Internal(String::new()),
        AppError::CommentNotFound,
        AppError::BodyTimeout,
        AppError::TooManyRequests(1),
    ];
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/douyin/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let codes: BTreeSet<i64> = op["responses"]["200"]["content"]["application/json"]
                ["schema"]["properties"]["status_code"]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path}: no status_code enum"))
                .iter()
                .map(|c| c.as_i64().unwrap())
                .collect();
            assert!(codes.contains(&0));
            for e in &every {
                assert!(
                    codes.contains(&(e.code() as i64)),
                    "{method} {path} lacks {}",
                    e.code()
                );
            }
        }
    }
    app.stop().await;
}
