//! Versioned changes sent together. The writes of one round of the group committer are
//! acknowledged at once and wake together on each HTTP worker; each would otherwise make a
//! script call of its own (a command written, a reply read and the script's fixed cost in
//! Redis, for every like). A change joins the batch open on its thread; a task of the batch's
//! own sends it once the thread's ready tasks have run, as one call of
//! `lua/entity_apply.lua` (which applies any number of changes, each exactly once), and hands
//! every caller the call's outcome. The task is spawned, so a request dropped while it waits
//! (its client hung up) never keeps the others' changes from Redis.
//!
//! On a single Redis only: on a Redis Cluster each entity has its own slot, and its changes go
//! one call each (`versioned.rs`).

use super::versioned::Change;
use super::Cache;
use crate::error::AppError;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The most changes one call carries (a like is three, so sixteen likes): a script blocks
/// Redis while it runs.
pub(super) const MAX_CHANGES: usize = 48;

type Outcome = Result<(), AppError>;

/// A batch being filled: the script's keys and arguments (each change's key count, argument
/// count and arguments, one change after another) and who waits for the call.
#[derive(Default)]
struct Open {
    keys: Vec<String>,
    args: Vec<String>,
    changes: usize,
    waiters: Vec<oneshot::Sender<Outcome>>,
    /// Taken by its task: later changes start a batch of their own.
    sent: bool,
}

impl Open {
    fn push(&mut self, changes: &mut [Change], tx: oneshot::Sender<Outcome>) {
        for c in changes {
            let (keys, args) = c.take_call();
            self.args.push(keys.len().to_string());
            self.args.push(args.len().to_string());
            self.args.extend(args);
            self.keys.extend(keys);
            self.changes += 1;
        }
        self.waiters.push(tx);
    }
}

thread_local! {
    /// The batch open on this thread, per cache (keyed by its address: tests run several apps
    /// in one process).
    static OPEN: RefCell<Vec<(usize, Arc<Mutex<Open>>)>> = const { RefCell::new(Vec::new()) };
}

/// Applies `changes` (their keys and arguments are taken) in the batch open on this thread, or
/// in a new one; returns the outcome of the call that carried them.
pub(super) async fn apply(cache: &Arc<Cache>, changes: &mut [Change]) -> Outcome {
    let (tx, rx) = oneshot::channel();
    let key = Arc::as_ptr(cache) as usize;
    let opened = OPEN.with(|open| {
        let mut open = open.borrow_mut();
        if let Some((_, batch)) = open.iter().find(|(k, _)| *k == key) {
            let mut b = batch.lock().unwrap_or_else(|e| e.into_inner());
            if !b.sent && b.changes + changes.len() <= MAX_CHANGES {
                b.push(changes, tx);
                return None;
            }
        }
        let mut b = Open::default();
        b.push(changes, tx);
        let batch = Arc::new(Mutex::new(b));
        // this cache's batch before, and any other cache's that is sent (a dropped app's)
        open.retain(|(k, b)| *k != key && !b.lock().unwrap_or_else(|e| e.into_inner()).sent);
        open.push((key, batch.clone()));
        Some(batch)
    });
    if let Some(batch) = opened {
        tokio::spawn(send(cache.clone(), batch));
    }
    rx.await.unwrap_or_else(|_| {
        Err(AppError::Unavailable(
            "a batch of changes was dropped".into(),
        ))
    })
}

/// The batch's task: lets the thread's ready tasks join first, then makes the call.
async fn send(cache: Arc<Cache>, batch: Arc<Mutex<Open>>) {
    tokio::task::yield_now().await;
    let b = {
        let mut b = batch.lock().unwrap_or_else(|e| e.into_inner());
        let taken = std::mem::take(&mut *b);
        b.sent = true;
        taken
    };
    metrics::histogram!("douyin_cache_apply_batch_changes").record(b.changes as f64);
    let mut args = Vec::with_capacity(b.args.len() + 1);
    args.push(b.changes.to_string());
    args.extend(b.args);
    let r = cache
        .eval(&cache.scripts.entity_apply, b.keys, args)
        .await
        .map(|_| ());
    for w in b.waiters {
        let _ = w.send(r.as_ref().map(|_| ()).map_err(shared));
    }
}

/// The call's error, for each of its callers.
fn shared(e: &AppError) -> AppError {
    match e {
        AppError::Unavailable(m) => AppError::Unavailable(m.clone()),
        AppError::Internal(m) => AppError::Internal(m.clone()),
        other => AppError::Internal(other.to_string()),
    }
}
