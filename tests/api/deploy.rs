//! The deployment files that can be checked without a container engine: every metric the
//! Grafana dashboard queries exists in /metrics of a live instance.

use crate::helpers::*;
use std::collections::BTreeSet;

/// The metric families named in `text` (`douyin_...`), histogram series mapped to their family.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("douyin_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        let name = &text[start..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.insert(family.to_string());
        i = end;
    }
    out
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported() {
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/dashboards/douyin-lite.json"
    ))
    .unwrap();
    let parsed: serde_json::Value =
        serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let exprs: Vec<String> = parsed["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    let wanted = metric_names(&exprs.join("\n"));
    assert!(wanted.len() >= 10, "{wanted:?}");

    // a live instance that has served reads, writes and an error
    let app = spawn_app().await;
    let (_, token) = app.register("dashboard_user").await;
    app.get("/douyin/feed/", &[("token", token.clone())]).await;
    app.get("/douyin/user/", &[("user_id", "424242".into())])
        .await;
    let vid = publish_url(&app, &token, "dashboard").await;
    let liked = like(&app, &token, vid, "1").await;
    assert_eq!(code(&liked), 0, "{liked}");
    let text = app.metrics_text().await;
    let exported: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let mut missing: Vec<&String> = wanted.difference(&exported).collect();
    // the group-commit panel is the embedded store's, the counter-round panel the CQL store's
    let other_store: &[&str] = if crate::helpers::cql_enabled() {
        &["douyin_store_fsync", "douyin_store_group_commit"]
    } else {
        &["douyin_store_counter_round", "douyin_store_cas_retries"]
    };
    missing.retain(|m| !other_store.iter().any(|p| m.starts_with(p)));
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics lacks: {missing:?}"
    );
    app.stop().await;
}
