//! Media: where video files and covers live, and how uploads are checked.
//!
//! [`MediaStore`] hides the backend: [`local::LocalMedia`] (the default) keeps files under a directory
//! served at `/static/`; S3 through rust-s3 comes with the cluster work. Keys are always built by
//! the server (`videos/<id>.<ext>`, `covers/<id>.jpg`): client file names are never used.

pub mod local;
pub mod probe;
pub mod range;
pub mod staging;

use crate::error::AppError;
use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// A place to keep media.
#[async_trait]
pub trait MediaStore: Send + Sync + 'static {
    /// Moves the finished local file `src` into the store under `key`, durably.
    async fn put_file(&self, key: &str, src: &Path) -> Result<(), AppError>;
    /// Removes `key` (cleanup after a failed publish).
    async fn delete(&self, key: &str) -> Result<(), AppError>;
    /// The file behind `key` when it is on this machine's disk (served at /static/).
    fn local_path(&self, key: &str) -> Option<PathBuf>;
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
    fn content_types() {
        assert_eq!(content_type("videos/1.mp4"), "video/mp4");
        assert_eq!(content_type("covers/1.jpg"), "image/jpeg");
        assert_eq!(content_type("x/y.bin"), "application/octet-stream");
    }
}
