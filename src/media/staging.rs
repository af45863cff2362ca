//! The staging area: where uploads are written while they arrive and while they are checked,
//! before the media store takes them. It bounds how many uploads and how many staged bytes
//! this instance holds at once, and removes what a killed process left behind.

use crate::error::AppError;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How long a client is told to wait when the staging area is full.
const RETRY_SECS: u64 = 5;

/// The staging directory and its admission counters.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    max_uploads: usize,
    max_bytes: u64,
    uploads: AtomicUsize,
    bytes: AtomicU64,
}

/// One admitted upload; its share of the staging area is released when it is dropped.
#[derive(Debug)]
pub struct StagingSlot {
    staging: Arc<Staging>,
    bytes: u64,
}

impl Drop for StagingSlot {
    fn drop(&mut self) {
        self.staging.uploads.fetch_sub(1, Ordering::AcqRel);
        self.staging.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl Staging {
    /// Creates `dir` if needed and empties it: nothing in it can belong to a live upload, since
    /// one data directory serves one process (the durable store locks it).
    pub fn open(dir: PathBuf, max_uploads: usize, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut removed = 0;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(files = removed, dir = %dir.display(), "removed staging files left by an earlier run");
        }
        Ok(Staging {
            dir,
            max_uploads: max_uploads.max(1),
            max_bytes,
            uploads: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Admits an upload of up to `bytes`, or answers 10016 when the staging area is full.
    pub fn admit(self: &Arc<Self>, bytes: u64) -> Result<StagingSlot, AppError> {
        if self.uploads.fetch_add(1, Ordering::AcqRel) >= self.max_uploads {
            self.uploads.fetch_sub(1, Ordering::AcqRel);
            return Err(AppError::TooManyRequests(RETRY_SECS));
        }
        let before = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        if before.saturating_add(bytes) > self.max_bytes {
            self.bytes.fetch_sub(bytes, Ordering::AcqRel);
            self.uploads.fetch_sub(1, Ordering::AcqRel);
            return Err(AppError::TooManyRequests(RETRY_SECS));
        }
        Ok(StagingSlot {
            staging: self.clone(),
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_is_bounded_and_released() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("upload-left-behind"), b"x").unwrap();
        let s = Arc::new(Staging::open(dir.path().to_path_buf(), 2, 100).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let a = s.admit(60).unwrap();
        assert!(matches!(s.admit(60), Err(AppError::TooManyRequests(_))));
        let b = s.admit(40).unwrap();
        assert!(matches!(s.admit(0), Err(AppError::TooManyRequests(_))));
        drop(a);
        drop(b);
        let _c = s.admit(100).unwrap();
    }
}
