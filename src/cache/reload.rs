//! Reload-on-miss machinery shared by every area: single-flight per key in this process, and
//! the reload lease that writers revoke so that a slow reload never installs stale data.

use super::codec::script_int;
use super::Cache;
use crate::error::AppError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Whether a reload loads what is missing or replaces what is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reload {
    /// Load only when a key is missing (a read's miss).
    IfMissing,
    /// Drop every key and load again (`rebuild-cache`).
    Replace,
}

/// How long a reload lease lives when its loader dies.
const LEASE_MS: u64 = 30_000;

/// Removes a single-flight entry when its last user is done with it.
struct FlightCleanup<'a> {
    flights: &'a Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    key: &'a str,
    lock: &'a Arc<tokio::sync::Mutex<()>>,
}

impl Drop for FlightCleanup<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        // the map's reference and ours: nobody else is waiting
        if map.get(self.key).is_some_and(|l| Arc::ptr_eq(l, self.lock))
            && Arc::strong_count(self.lock) <= 2
        {
            map.remove(self.key);
        }
    }
}

impl Cache {
    /// Runs `load` for `key` one task at a time in this process: concurrent misses queue
    /// behind the first, and each then finds the key loaded (one cheap check) instead of
    /// loading it again. The entry is removed by the last task out, also when a task is
    /// cancelled mid-load.
    pub(super) async fn single_flight<F, Fut>(&self, key: String, load: F) -> Result<(), AppError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), AppError>>,
    {
        let lock = {
            let mut map = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .clone()
        };
        let _cleanup = FlightCleanup {
            flights: &self.flights,
            key: &key,
            lock: &lock,
        };
        let _turn = lock.lock().await;
        load().await
    }

    pub(super) fn token() -> String {
        rand::random::<u64>().to_string()
    }

    /// Takes the reload lease `lease` unless every one of `keys` exists (false: nothing to
    /// load). [`Reload::Replace`] deletes `keys` and always takes it.
    pub(super) async fn take_lease(
        &self,
        lease: String,
        keys: &[String],
        token: &str,
        mode: Reload,
    ) -> Result<bool, AppError> {
        let mut k = vec![lease];
        k.extend_from_slice(keys);
        let mut args = vec![token.into(), LEASE_MS.to_string()];
        if mode == Reload::Replace {
            args.push("replace".into());
        }
        let v = self.eval(&self.scripts.lease, k, args).await?;
        Ok(script_int(&v) == Some(1))
    }
}
