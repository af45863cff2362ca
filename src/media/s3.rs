//! Media in an S3-compatible bucket (`media.backend = "s3"`) through rust-s3: SigV4-signed
//! requests, multipart uploads for files of 8 MiB and more (rust-s3 aborts a failed one), and
//! the URLs clients fetch from: presigned GETs, or keys under a public base URL (a CDN).

use super::{content_type, key_id, valid_key, MediaStore};
use crate::config::S3Config;
use crate::error::AppError;
use async_trait::async_trait;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, BucketConfiguration, Region};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Objects are never rewritten under the same key: caches may keep them for good.
const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// Keys asked for per list request.
const LIST_PAGE: usize = 1000;

/// Media in an S3 bucket.
pub struct S3Media {
    bucket: Box<Bucket>,
    /// The same bucket as clients address it, for presigning (`None`: a public base URL).
    presign: Option<Box<Bucket>>,
    public_base: Option<String>,
    presign_secs: u32,
    upload_concurrency: usize,
}

fn unavailable(what: &str, e: S3Error) -> AppError {
    AppError::Unavailable(format!("media store (s3) {what}: {e}"))
}

fn status_of(e: &S3Error) -> Option<u16> {
    match e {
        S3Error::HttpFailWithBody(code, _) => Some(*code),
        _ => None,
    }
}

/// The access and secret key: from the configured files, else from the environment.
fn credentials(cfg: &S3Config) -> Result<Credentials, String> {
    let read = |what: &str, f: &PathBuf| {
        std::fs::read_to_string(f)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("media.s3.{what} {}: {e}", f.display()))
    };
    match (&cfg.access_key_file, &cfg.secret_key_file) {
        (Some(a), Some(s)) => {
            let (a, s) = (read("access_key_file", a)?, read("secret_key_file", s)?);
            Credentials::new(Some(&a), Some(&s), None, None, None).map_err(|e| e.to_string())
        }
        (None, None) => Credentials::from_env().map_err(|_| {
            "media.s3: no credentials: set access_key_file and secret_key_file, or \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                .to_string()
        }),
        _ => Err("media.s3: set both access_key_file and secret_key_file, or neither".into()),
    }
}

fn region(cfg: &S3Config, endpoint: &str) -> Result<Region, String> {
    if endpoint.is_empty() {
        cfg.region
            .parse()
            .map_err(|e| format!("media.s3.region {:?}: {e}", cfg.region))
    } else {
        Ok(Region::Custom {
            region: cfg.region.clone(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
        })
    }
}

fn bucket(cfg: &S3Config, endpoint: &str, creds: &Credentials) -> Result<Box<Bucket>, String> {
    let mut b = Bucket::new(&cfg.bucket, region(cfg, endpoint)?, creds.clone())
        .map_err(|e| format!("media.s3: {e}"))?;
    if cfg.path_style {
        b = b.with_path_style();
    }
    b.set_request_timeout(Some(Duration::from_secs(cfg.request_timeout_secs)));
    Ok(b)
}

impl S3Media {
    /// Connects to the bucket of `cfg`, creating it when it is missing and `create_bucket` is
    /// set. Fails with a clear message when the store cannot be reached or refuses the keys.
    pub async fn connect(cfg: &S3Config) -> Result<Self, String> {
        let creds = credentials(cfg)?;
        let main = bucket(cfg, &cfg.endpoint, &creds)?;
        let public_base = (!cfg.public_base_url.is_empty())
            .then(|| cfg.public_base_url.trim_end_matches('/').to_string());
        let presign = match (&public_base, cfg.presign_endpoint.as_str()) {
            (Some(_), _) => None,
            (None, "") => Some(main.clone()),
            (None, other) => Some(bucket(cfg, other, &creds)?),
        };
        let media = S3Media {
            bucket: main,
            presign,
            public_base,
            presign_secs: cfg.presign_secs,
            upload_concurrency: cfg.upload_concurrency,
        };
        let where_ = format!(
            "bucket {:?} at {}",
            cfg.bucket,
            if cfg.endpoint.is_empty() {
                "AWS"
            } else {
                &cfg.endpoint
            }
        );
        match media.probe().await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) && cfg.create_bucket => {
                media.create(cfg, &creds).await?;
                media
                    .probe()
                    .await
                    .map_err(|e| format!("media.s3: {where_} after creating it: {e}"))?;
                tracing::info!(bucket = %cfg.bucket, "created the media bucket");
            }
            Err(e) if status_of(&e) == Some(404) => {
                return Err(format!(
                    "media.s3: {where_} does not exist (create it, or set media.s3.create_bucket)"
                ))
            }
            Err(e) if matches!(status_of(&e), Some(401 | 403)) => {
                return Err(format!("media.s3: {where_} refused the credentials: {e}"))
            }
            Err(e) => return Err(format!("media.s3: {where_} cannot be reached: {e}")),
        }
        tracing::info!(
            bucket = %cfg.bucket,
            urls = if media.public_base.is_some() { "public" } else { "presigned" },
            "media in S3"
        );
        Ok(media)
    }

    /// One signed list request: proves the endpoint, the bucket and the keys.
    async fn probe(&self) -> Result<(), S3Error> {
        self.bucket
            .list_page("videos/".into(), None, None, None, Some(1))
            .await
            .map(|_| ())
    }

    async fn create(&self, cfg: &S3Config, creds: &Credentials) -> Result<(), String> {
        let region = region(cfg, &cfg.endpoint)?;
        let made = if cfg.path_style {
            Bucket::create_with_path_style(
                &cfg.bucket,
                region,
                creds.clone(),
                BucketConfiguration::default(),
            )
            .await
        } else {
            Bucket::create(
                &cfg.bucket,
                region,
                creds.clone(),
                BucketConfiguration::default(),
            )
            .await
        };
        match made {
            Ok(r) if r.success() => Ok(()),
            // another instance made it first
            Ok(r) if r.response_code == 409 => Ok(()),
            Ok(r) => Err(format!(
                "media.s3: creating bucket {:?} answered {}: {}",
                cfg.bucket, r.response_code, r.response_text
            )),
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(format!("media.s3: creating bucket {:?}: {e}", cfg.bucket)),
        }
    }

    /// The ids of `dir/` with `digits` digits in `lo..=hi` (which have that many digits):
    /// among keys of the same length, text order is number order, so the listing starts at
    /// `lo` and stops at the first such id past `hi`; keys of other lengths in between are
    /// skipped.
    async fn list_segment(
        &self,
        dir: &str,
        lo: i64,
        hi: i64,
        max: usize,
        out: &mut Vec<(i64, String)>,
    ) -> Result<(), AppError> {
        let digits = lo.to_string().len();
        let mut token: Option<String> = None;
        let start_after = format!("{dir}/{lo}");
        loop {
            let (page, _) = self
                .bucket
                .list_page(
                    format!("{dir}/"),
                    None,
                    token.clone(),
                    token.is_none().then(|| start_after.clone()),
                    Some(LIST_PAGE),
                )
                .await
                .map_err(|e| unavailable("list", e))?;
            for obj in page.contents {
                let Some(id) = key_id(&obj.key) else { continue };
                if id.to_string().len() != digits || id < lo {
                    continue;
                }
                if id > hi || out.len() >= max {
                    return Ok(());
                }
                if valid_key(&obj.key) {
                    out.push((id, obj.key));
                }
            }
            match page.next_continuation_token {
                Some(t) if page.is_truncated => token = Some(t),
                _ => return Ok(()),
            }
        }
    }
}

/// `lo..=hi` cut where the number of decimal digits changes.
fn digit_segments(lo: i64, hi: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut a = lo.max(0);
    while a <= hi {
        let digits = a.to_string().len() as u32;
        let top = 10i64
            .checked_pow(digits)
            .map_or(i64::MAX, |p| p - 1)
            .min(hi);
        out.push((a, top));
        if top == i64::MAX {
            break;
        }
        a = top + 1;
    }
    out
}

#[async_trait]
impl MediaStore for S3Media {
    fn backend(&self) -> &'static str {
        "s3"
    }

    async fn put_file(&self, key: &str, src: &Path) -> Result<(), AppError> {
        if !valid_key(key) {
            return Err(AppError::Internal(format!("bad media key {key:?}")));
        }
        let mut f = tokio::fs::File::open(src)
            .await
            .map_err(|e| AppError::Unavailable(format!("staging: {e}")))?;
        let put = self
            .bucket
            .put_object_stream_builder(key)
            .with_content_type(content_type(key))
            .with_cache_control(CACHE_CONTROL)
            .map_err(|e| AppError::Internal(format!("s3 header: {e}")))?
            .with_max_concurrent_chunks(self.upload_concurrency)
            .execute_stream(&mut f)
            .await
            .map_err(|e| unavailable("upload", e))?;
        if put.status_code() >= 300 {
            return Err(AppError::Unavailable(format!(
                "media store (s3) upload of {key}: status {}",
                put.status_code()
            )));
        }
        drop(f);
        let _ = tokio::fs::remove_file(src).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), AppError> {
        if !valid_key(key) {
            return Ok(());
        }
        match self.bucket.delete_object(key).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(unavailable("delete", e)),
        }
    }

    fn local_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }

    async fn fetch_url(&self, key: &str) -> Result<Option<String>, AppError> {
        if let Some(base) = &self.public_base {
            return Ok(Some(format!("{base}/{key}")));
        }
        let b = self.presign.as_ref().unwrap_or(&self.bucket);
        b.presign_get(key, self.presign_secs, None)
            .await
            .map(Some)
            .map_err(|e| unavailable("presign", e))
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, AppError> {
        if !valid_key(key) {
            return Ok(None);
        }
        match self.bucket.head_object(key).await {
            Ok((_, 404)) => Ok(None),
            Ok((head, code)) if code < 300 => {
                Ok(Some(head.content_length.unwrap_or(0).max(0) as u64))
            }
            Ok((_, code)) => Err(AppError::Unavailable(format!(
                "media store (s3) head of {key}: status {code}"
            ))),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(unavailable("head", e)),
        }
    }

    async fn keys_between(
        &self,
        dir: &str,
        lo: i64,
        hi: i64,
        max: usize,
    ) -> Result<Vec<(i64, String)>, AppError> {
        let mut out = Vec::new();
        for (a, b) in digit_segments(lo, hi) {
            if out.len() >= max {
                break;
            }
            self.list_segment(dir, a, b, max, &mut out).await?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_split_where_the_digits_change() {
        assert_eq!(digit_segments(5, 7), vec![(5, 7)]);
        assert_eq!(digit_segments(5, 12), vec![(5, 9), (10, 12)]);
        assert_eq!(
            digit_segments(98, 1001),
            vec![(98, 99), (100, 999), (1000, 1001)]
        );
        assert_eq!(digit_segments(3, 2), vec![]);
        assert_eq!(
            digit_segments(i64::MAX - 1, i64::MAX),
            vec![(i64::MAX - 1, i64::MAX)]
        );
    }
}
