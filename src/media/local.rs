//! Media on local disk (the default backend): files under the media directory, moved there
//! durably (fsync of the file and its directory), served at `/static/`.

use super::{key_id, valid_key, MediaStore};
use crate::error::AppError;
use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// Media on local disk.
pub struct LocalMedia {
    root: PathBuf,
}

impl LocalMedia {
    pub fn new(root: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("videos"))?;
        std::fs::create_dir_all(root.join("covers"))?;
        Ok(Self { root })
    }
}

#[async_trait]
impl MediaStore for LocalMedia {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn put_file(&self, key: &str, src: &Path) -> Result<(), AppError> {
        if !valid_key(key) {
            return Err(AppError::Internal(format!("bad media key {key:?}")));
        }
        let dest = self.root.join(key);
        let src = src.to_path_buf();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::File::open(&src)?.sync_all()?;
            if std::fs::rename(&src, &dest).is_err() {
                // Another filesystem: copy, then remove the source.
                std::fs::copy(&src, &dest)?;
                std::fs::File::open(&dest)?.sync_all()?;
                let _ = std::fs::remove_file(&src);
            }
            if let Some(parent) = dest.parent() {
                std::fs::File::open(parent)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| AppError::Internal(format!("media task: {e}")))?
        .map_err(|e| AppError::Unavailable(format!("media store: {e}")))
    }

    async fn delete(&self, key: &str) -> Result<(), AppError> {
        if let Some(p) = self.local_path(key) {
            let _ = tokio::fs::remove_file(p).await;
        }
        Ok(())
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        valid_key(key).then(|| self.root.join(key))
    }

    async fn fetch_url(&self, _key: &str) -> Result<Option<String>, AppError> {
        Ok(None)
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, AppError> {
        let Some(p) = self.local_path(key) else {
            return Ok(None);
        };
        match tokio::fs::metadata(p).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AppError::Unavailable(format!("media store: {e}"))),
        }
    }

    async fn keys_between(
        &self,
        dir: &str,
        lo: i64,
        hi: i64,
        max: usize,
    ) -> Result<Vec<(i64, String)>, AppError> {
        let path = self.root.join(dir);
        let dir = dir.to_string();
        tokio::task::spawn_blocking(move || -> std::io::Result<Vec<(i64, String)>> {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(&path)? {
                let name = entry?.file_name();
                let key = format!("{dir}/{}", name.to_string_lossy());
                if let Some(id) = key_id(&key).filter(|id| (lo..=hi).contains(id)) {
                    if valid_key(&key) {
                        found.push((id, key));
                    }
                }
            }
            found.sort_unstable();
            found.truncate(max);
            Ok(found)
        })
        .await
        .map_err(|e| AppError::Internal(format!("media task: {e}")))?
        .map_err(|e| AppError::Unavailable(format!("media store: {e}")))
    }
}
