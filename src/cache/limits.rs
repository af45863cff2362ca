//! Rate limits kept in Redis, so that every instance counts the same attempts: one counter per
//! (kind, subject) and fixed window, one key and so one slot (Redis Cluster safe).

use super::codec::script_int;
use super::Cache;
use crate::error::AppError;
use fred::types::Value;
use std::time::Duration;

impl Cache {
    /// Counts one attempt of `kind` by `subject` in the current `window`. Returns
    /// [`AppError::TooManyRequests`] (with the seconds until the window ends) once more than
    /// `limit` attempts were made in it; a `limit` of 0 means no limit.
    pub async fn count_attempt(
        &self,
        kind: &str,
        subject: &str,
        window: Duration,
        limit: u64,
    ) -> Result<(), AppError> {
        if limit == 0 {
            return Ok(());
        }
        let v = self
            .eval(
                &self.scripts.rate,
                vec![self.keys.rate(kind, subject)],
                vec![window.as_millis().to_string()],
            )
            .await?;
        let (n, ttl_ms) = match &v {
            Value::Array(a) if a.len() == 2 => (
                script_int(&a[0]).unwrap_or(0),
                script_int(&a[1]).unwrap_or(0),
            ),
            _ => return Err(AppError::Internal(format!("rate script answered {v:?}"))),
        };
        if n as u64 > limit {
            let secs = (ttl_ms.max(0) as u64).div_ceil(1000).max(1);
            return Err(AppError::TooManyRequests(secs));
        }
        Ok(())
    }
}
