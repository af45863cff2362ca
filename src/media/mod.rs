//! Media: where video files and covers live, and how uploads are checked.
//!
//! [`MediaStore`] hides the backend: [`local::LocalMedia`] (the default) keeps files under a
//! directory served at `/static/`; [`s3::S3Media`] keeps them in an S3-compatible bucket, and
//! `/static/` answers with a redirect to it. Keys are always built by the server
//! (`videos/<id>.<ext>`, `covers/<id>.jpg`): client file names are never used. [`reaper`]
//! removes objects whose publish never completed.

pub mod local;
pub mod probe;
pub mod range;
pub mod reaper;
pub mod s3;
pub mod staging;

use crate::config::MediaConfig;
use crate::error::AppError;
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A place to keep media. Every backend passes the same suite (`tests/api/media_store.rs`).
#[async_trait]
pub trait MediaStore: Send + Sync + 'static {
    /// The backend's name, for logs.
    fn backend(&self) -> &'static str;
    /// Moves the finished local file `src` into the store under `key`, durably; `src` is
    /// consumed.
    async fn put_file(&self, key: &str, src: &Path) -> Result<(), AppError>;
    /// Removes `key`; removing what is not there succeeds.
    async fn delete(&self, key: &str) -> Result<(), AppError>;
    /// The file behind `key` when it is on this machine's disk (served at /static/).
    fn local_path(&self, key: &str) -> Option<PathBuf>;
    /// For a store off this machine: the URL a client fetches `key` from (presigned, or under
    /// the public base URL). `None` for local files.
    async fn fetch_url(&self, key: &str) -> Result<Option<String>, AppError>;
    /// The size of `key` in bytes, `None` when it does not exist.
    async fn size(&self, key: &str) -> Result<Option<u64>, AppError>;
    /// The keys under `dir/` whose id (the file name before the dot) is in `lo..=hi`, in
    /// ascending id order, at most `max` of them.
    async fn keys_between(
        &self,
        dir: &str,
        lo: i64,
        hi: i64,
        max: usize,
    ) -> Result<Vec<(i64, String)>, AppError>;
}

/// Opens the backend `cfg.backend` names (`local` in `dir`, or `s3`).
pub async fn open(cfg: &MediaConfig, dir: &Path) -> Result<Arc<dyn MediaStore>, String> {
    Ok(match cfg.backend.as_str() {
        "s3" => Arc::new(s3::S3Media::connect(&cfg.s3).await?),
        _ => Arc::new(
            local::LocalMedia::new(dir.to_path_buf())
                .map_err(|e| format!("media dir {}: {e}", dir.display()))?,
        ),
    })
}

/// The id a media key names: `videos/123.mp4` -> 123.
pub fn key_id(key: &str) -> Option<i64> {
    let file = key.rsplit('/').next()?;
    let stem = file.split('.').next()?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// True for keys the server could have made: `dir/name.ext` of `[A-Za-z0-9_-]` with one dot.
pub fn valid_key(key: &str) -> bool {
    let mut parts = key.split('/');
    let (Some(dir), Some(file), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    let mut f = file.splitn(2, '.');
    matches!((f.next(), f.next()), (Some(n), Some(e)) if ok(n) && ok(e)) && ok(dir)
}

/// Content-Type of a media key, by its extension.
pub fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next().unwrap_or("") {
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_escape_the_media_dir() {
        assert!(valid_key("videos/123.mp4"));
        assert!(valid_key("covers/123.jpg"));
        for bad in [
            "../etc/passwd",
            "videos/../../x.mp4",
            "/etc/passwd",
            "videos/a.b.c",
            "videos/.mp4",
            "a/b/c.mp4",
            "videos/x",
            "videos/%2e.mp4",
            "",
        ] {
            assert!(!valid_key(bad), "{bad}");
        }
    }

    #[test]
    fn key_ids() {
        assert_eq!(key_id("videos/123.mp4"), Some(123));
        assert_eq!(key_id("covers/7.jpg"), Some(7));
        for bad in [
            "videos/x.mp4",
            "videos/.mp4",
            "videos/-1.mp4",
            "videos/+1.mp4",
        ] {
            assert_eq!(key_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("videos/1.mp4"), "video/mp4");
        assert_eq!(content_type("covers/1.jpg"), "image/jpeg");
        assert_eq!(content_type("x/y.bin"), "application/octet-stream");
    }
}
