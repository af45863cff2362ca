//! The orphan reaper. A publish stores the cover and the video under keys named by the new
//! video's id, then records the video; a publish that fails in between deletes what it stored,
//! but one that dies with its process (or whose delete fails too) leaves objects that no video
//! names. The reaper walks the keys by id, in windows of time, and deletes those whose video the
//! durable store does not have, once the id is older than any publish could take
//! (`media.reap_grace_secs`). Every instance may run it: deleting twice is harmless.

use crate::error::AppError;
use crate::ids::{floor_for_ms, now_ms};
use crate::state::AppState;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The key prefixes a publish writes.
const DIRS: [&str; 2] = ["videos", "covers"];
/// Keys asked for per call.
const BATCH: usize = 500;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Keys looked at.
    pub checked: usize,
    /// Keys deleted because no video names them.
    pub removed: usize,
}

/// Deletes the objects with ids in `lo..=hi` whose video is not recorded. Stops at the first
/// error (the store or the media store down): the caller sweeps the same window again later.
pub async fn sweep(st: &AppState, lo: i64, hi: i64) -> Result<Sweep, AppError> {
    let mut done = Sweep::default();
    let mut known: HashMap<i64, bool> = HashMap::new();
    for dir in DIRS {
        let mut from = lo;
        while from <= hi {
            let keys = st.media.keys_between(dir, from, hi, BATCH).await?;
            let Some(&(last, _)) = keys.last() else { break };
            for (id, key) in keys {
                done.checked += 1;
                let exists = match known.get(&id) {
                    Some(&e) => e,
                    None => {
                        let e = st.store.video_exists(id).await?;
                        known.insert(id, e);
                        e
                    }
                };
                if !exists {
                    st.media.delete(&key).await?;
                    done.removed += 1;
                    metrics::counter!("douyin_media_orphans_removed_total").increment(1);
                    tracing::info!(key = %key, "removed a media object no video names");
                }
            }
            from = last + 1;
        }
    }
    Ok(done)
}

/// Sweeps every `media.reap_interval_secs`, each time the ids minted since the last sweep
/// (at start: `reap_lookback_secs` back) up to `reap_grace_secs` ago.
pub async fn run(st: Arc<AppState>) {
    let m = &st.cfg.media;
    if m.reap_interval_secs == 0 {
        return;
    }
    let grace_ms = (m.reap_grace_secs as i64).saturating_mul(1000);
    let mut lo = floor_for_ms(now_ms() - (m.reap_lookback_secs as i64).saturating_mul(1000));
    // let start-up traffic go first
    ntex::time::sleep(Duration::from_secs(m.reap_interval_secs.min(60))).await;
    loop {
        let hi = floor_for_ms(now_ms() - grace_ms) - 1;
        if hi >= lo {
            match sweep(&st, lo, hi).await {
                Ok(s) => {
                    if s.removed > 0 {
                        tracing::info!(checked = s.checked, removed = s.removed, "media reaper");
                    }
                    lo = hi + 1;
                }
                Err(e) => {
                    metrics::counter!("douyin_media_reaper_failures_total").increment(1);
                    tracing::warn!(error = %e, "media reaper: sweep failed; will retry");
                }
            }
        }
        ntex::time::sleep(Duration::from_secs(m.reap_interval_secs)).await;
    }
}
