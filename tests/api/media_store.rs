//! The media store trait suite: one set of tests run against every backend (local files in a
//! temp dir, and a bucket of its own on the real S3 server of `S3_TEST_DIR`; see
//! deploy/local.sh), plus the S3 start-up errors.

use crate::helpers::{rand_u64, s3_config_in, s3_enabled};
use douyin_lite::config::S3Config;
use douyin_lite::media::{local::LocalMedia, s3::S3Media, MediaStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn tmp_dir(prefix: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep()
}

fn s3_settings() -> S3Config {
    let dir = std::env::var("S3_TEST_DIR").unwrap();
    s3_config_in(Path::new(&dir), &tmp_dir("s3-"))
}

/// Every backend the suite runs against, each empty.
async fn backends() -> Vec<(&'static str, Arc<dyn MediaStore>)> {
    let mut out: Vec<(&'static str, Arc<dyn MediaStore>)> = vec![(
        "local",
        Arc::new(LocalMedia::new(tmp_dir("media-")).unwrap()),
    )];
    if s3_enabled() {
        out.push((
            "s3",
            Arc::new(S3Media::connect(&s3_settings()).await.unwrap()),
        ));
    }
    out
}

/// A file of `len` bytes that are not all alike, in a temp dir.
fn file_of(len: usize) -> (PathBuf, Vec<u8>) {
    let mut x = rand_u64() | 1;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let p = tmp_dir("src-").join("upload");
    std::fs::write(&p, &bytes).unwrap();
    (p, bytes)
}

/// What a client gets for `key`: status, content type and body, with an optional Range.
async fn fetch(m: &dyn MediaStore, key: &str, range: Option<&str>) -> (u16, String, Vec<u8>) {
    if let Some(p) = m.local_path(key) {
        // local files are served by /static/ (its own tests); here, the bytes on disk
        return match std::fs::read(p) {
            Ok(b) => (200, douyin_lite::media::content_type(key).into(), b),
            Err(_) => (404, String::new(), vec![]),
        };
    }
    let url = m.fetch_url(key).await.unwrap().expect("a remote URL");
    let mut req = reqwest::Client::new().get(url);
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn put_fetch_size_delete() {
    for (name, m) in backends().await {
        let (src, bytes) = file_of(70_000);
        let key = "videos/1234567.mp4";
        assert_eq!(m.size(key).await.unwrap(), None, "{name}");
        m.put_file(key, &src).await.unwrap();
        assert!(!src.exists(), "{name}: the staged file is consumed");
        assert_eq!(m.size(key).await.unwrap(), Some(70_000), "{name}");
        let (status, ct, body) = fetch(&*m, key, None).await;
        assert_eq!((status, ct.as_str()), (200, "video/mp4"), "{name}");
        assert!(body == bytes, "{name}: the bytes come back as they went in");
        if m.local_path(key).is_none() {
            // a player seeking in the object
            let (status, _, body) = fetch(&*m, key, Some("bytes=1000-1999")).await;
            assert_eq!(status, 206, "{name}");
            assert!(body == bytes[1000..2000], "{name}");
        }
        m.delete(key).await.unwrap();
        assert_eq!(m.size(key).await.unwrap(), None, "{name}");
        assert_eq!(fetch(&*m, key, None).await.0, 404, "{name}");
        // deleting what is not there succeeds
        m.delete(key).await.unwrap();
    }
}

#[tokio::test]
async fn large_files_go_up_in_parts() {
    for (name, m) in backends().await {
        // above rust-s3's 8 MiB part size: a multipart upload of two parts
        let len = 9 * 1024 * 1024 + 123;
        let (src, bytes) = file_of(len);
        let key = "videos/42.mp4";
        m.put_file(key, &src).await.unwrap();
        assert_eq!(m.size(key).await.unwrap(), Some(len as u64), "{name}");
        let (status, _, body) = fetch(&*m, key, None).await;
        assert_eq!(status, 200, "{name}");
        assert!(body == bytes, "{name}: the parts are joined in order");
    }
}

#[tokio::test]
async fn keys_between_walks_ids_across_digit_counts() {
    for (name, m) in backends().await {
        for id in [5, 9, 10, 99, 100, 1000, 12_345] {
            let (src, _) = file_of(10);
            m.put_file(&format!("videos/{id}.mp4"), &src).await.unwrap();
        }
        let (src, _) = file_of(10);
        m.put_file("videos/abc.mp4", &src).await.unwrap();
        let (src, _) = file_of(10);
        m.put_file("covers/99.jpg", &src).await.unwrap();
        let ids = |v: Vec<(i64, String)>| v.into_iter().map(|(i, _)| i).collect::<Vec<_>>();
        let got = m.keys_between("videos", 9, 1000, 100).await.unwrap();
        assert_eq!(ids(got.clone()), vec![9, 10, 99, 100, 1000], "{name}");
        assert_eq!(got[0].1, "videos/9.mp4", "{name}");
        assert_eq!(
            ids(m.keys_between("videos", 9, 1000, 2).await.unwrap()),
            vec![9, 10],
            "{name}: at most max, the lowest first"
        );
        assert_eq!(
            ids(m.keys_between("videos", 0, i64::MAX, 100).await.unwrap()),
            vec![5, 9, 10, 99, 100, 1000, 12_345],
            "{name}: names that are not ids are left out"
        );
        assert_eq!(
            ids(m.keys_between("covers", 0, i64::MAX, 100).await.unwrap()),
            vec![99],
            "{name}"
        );
        assert!(m
            .keys_between("videos", 11, 98, 100)
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn s3_start_up_fails_clearly() {
    if !s3_enabled() {
        return;
    }
    let good = s3_settings();
    // a bucket that is missing, and may not be created
    let mut cfg = good.clone();
    cfg.create_bucket = false;
    let e = S3Media::connect(&cfg).await.err().unwrap();
    assert!(e.contains("does not exist"), "{e}");
    // created when allowed, and found by the next start
    S3Media::connect(&good).await.unwrap();
    let mut again = good.clone();
    again.create_bucket = false;
    S3Media::connect(&again).await.unwrap();
    // a wrong secret: the signature is checked
    let dir = tmp_dir("creds-");
    std::fs::write(dir.join("secret"), "not-the-secret").unwrap();
    let mut cfg = good.clone();
    cfg.secret_key_file = Some(dir.join("secret"));
    let e = S3Media::connect(&cfg).await.err().unwrap();
    assert!(e.contains("refused the credentials"), "{e}");
    // nothing listening
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = good.clone();
    cfg.endpoint = format!("http://127.0.0.1:{port}");
    cfg.request_timeout_secs = 2;
    let e = S3Media::connect(&cfg).await.err().unwrap();
    assert!(e.contains("cannot be reached"), "{e}");
    // no key files and no environment
    let mut cfg = good;
    cfg.access_key_file = None;
    cfg.secret_key_file = None;
    if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        let e = S3Media::connect(&cfg).await.err().unwrap();
        assert!(e.contains("no credentials"), "{e}");
    }
}
