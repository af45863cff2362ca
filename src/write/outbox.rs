//! The outbox: finishing a durable write on the Redis side, and replaying the entries that a
//! crash or a Redis outage left behind.

use crate::error::AppError;
use crate::state::AppState;
use crate::store::{OutboxEntry, OutboxOp};
use std::future::Future;
use std::time::Duration;

/// A new outbox entry for `op`, with an id of its own (its time orders replays).
pub fn entry(st: &AppState, op: OutboxOp) -> OutboxEntry {
    OutboxEntry {
        id: st.ids.next_id(),
        op,
    }
}

/// Runs the Redis side of a durable write, then marks its outbox entry done. On failure the
/// entry stays and the replayer applies it later; the write itself is already durable, so
/// the request still succeeds.
pub async fn finish(
    st: &AppState,
    entry: &OutboxEntry,
    redis_side: impl Future<Output = Result<(), AppError>>,
) {
    match redis_side.await {
        Ok(()) => {
            if let Err(e) = st.store.outbox_done(entry.id).await {
                tracing::warn!(error = %e, "could not clear an outbox entry; it will be replayed");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, op = ?entry.op, "redis update failed; queued for replay")
        }
    }
}

/// Replays outbox entries older than `min_age` (all of them at start-up).
pub async fn replay(st: &AppState, min_age: Duration) -> Result<usize, AppError> {
    let cutoff = crate::ids::now_ms() - min_age.as_millis() as i64;
    let mut n = 0;
    for e in st.store.pending_outbox(1000).await? {
        if crate::ids::time_ms(e.id) > cutoff {
            break;
        }
        st.store.complete(&e).await?;
        st.cache.replay(&e.op).await?;
        st.store.outbox_done(e.id).await?;
        n += 1;
    }
    if n > 0 {
        tracing::info!(entries = n, "replayed outbox entries into redis");
    }
    Ok(n)
}
