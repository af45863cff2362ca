//! The group committer: one thread that runs the store's writes (each an atomic batch with its
//! outbox entry), then one `fsync` for every write it ran since the last, and only then
//! acknowledges them. A write costs one hand-off to this thread and a share of an fsync; the
//! read-modify-writes of counters run here one after another, without contending for a lock.
//!
//! Finished outbox entries are removed here too, in batches, with no fsync of their own (an
//! entry that survives a crash is replayed, which is harmless).

use super::{unavailable, Inner, StoreError, StoreResult};
use fjall::PersistMode;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Weak};
use std::time::Duration;
use tokio::sync::oneshot;

/// What runs once the fsync covering a write is done (or failed).
type AfterSync = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A write: runs on the committer thread; returns what to do after the fsync when the write
/// changed anything (None: it has answered already).
type Job = Box<dyn FnOnce(&Inner) -> Option<AfterSync> + Send>;

pub(super) enum Msg {
    /// Answer once everything written so far is on disk.
    Sync(oneshot::Sender<Result<(), String>>),
    Run(Job),
}

/// How long an idle committer waits before removing finished outbox entries anyway.
const IDLE_TIDY: Duration = Duration::from_millis(200);

impl super::EmbeddedStore {
    /// Runs write `f` on the committer thread. When `changed` says it wrote something, waits
    /// for the fsync that covers it (shared with every write of the same round; the write is
    /// counted as durable once that fsync succeeds); otherwise answers at once.
    pub(super) async fn commit<T, F, C>(&self, f: F, changed: C) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
        C: FnOnce(&T) -> bool + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |inner: &Inner| {
            let res = catch_unwind(AssertUnwindSafe(|| f(inner)))
                .unwrap_or_else(|_| Err(unavailable("a store write panicked")));
            match res {
                Ok(v) if changed(&v) => Some(Box::new(move |synced: Result<(), String>| {
                    let _ = tx.send(synced.map(|()| v).map_err(StoreError::Unavailable));
                }) as AfterSync),
                other => {
                    let _ = tx.send(other);
                    None
                }
            }
        });
        self.send(Msg::Run(job))?;
        rx.await
            .map_err(|_| unavailable("group committer stopped"))?
    }

    /// Waits until everything committed so far is on disk, sharing the fsync with every other
    /// writer waiting at the same time.
    pub(super) async fn sync(&self) -> StoreResult<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Sync(tx))?;
        rx.await
            .map_err(|_| unavailable("group committer stopped"))?
            .map_err(StoreError::Unavailable)
    }

    fn send(&self, m: Msg) -> StoreResult<()> {
        let guard = self.0.sync_tx.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .ok_or_else(|| unavailable("store is closed"))?
            .send(m)
            .map_err(|_| unavailable("group committer stopped"))
    }
}

/// Removes the outbox entries marked finished since the last call (one batch, no fsync).
pub(super) fn tidy_outbox(inner: &Inner) {
    let done = std::mem::take(&mut *inner.outbox_done.lock().unwrap_or_else(|e| e.into_inner()));
    if done.is_empty() {
        return;
    }
    let mut b = inner.db.batch();
    for id in done {
        b.remove(&inner.outbox, super::be(id).to_vec());
    }
    if let Err(e) = b.commit() {
        tracing::warn!(error = %e, "could not remove finished outbox entries; they will be replayed");
    }
}

/// The committer thread's loop: until the store closes, take every waiting message, run the
/// writes, fsync once if any wrote or any waiter asks, then answer them all.
pub(super) fn run(store: Weak<Inner>, rx: mpsc::Receiver<Msg>) {
    loop {
        let first = match rx.recv_timeout(IDLE_TIDY) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(inner) = store.upgrade() {
                    tidy_outbox(&inner);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut msgs = vec![first];
        while let Ok(m) = rx.try_recv() {
            msgs.push(m);
        }
        let Some(inner) = store.upgrade() else { return };
        let mut after: Vec<AfterSync> = Vec::with_capacity(msgs.len());
        let mut writes = 0;
        for m in msgs {
            match m {
                Msg::Sync(w) => after.push(Box::new(move |r| {
                    let _ = w.send(r);
                })),
                Msg::Run(job) => {
                    if let Some(a) = job(&inner) {
                        writes += 1;
                        after.push(a);
                    }
                }
            }
        }
        tidy_outbox(&inner);
        if after.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let res = inner
            .db
            .persist(PersistMode::SyncAll)
            .map_err(|e| e.to_string());
        inner.fsyncs.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!("douyin_store_fsync_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("douyin_store_group_commit_writes").record(after.len() as f64);
        match &res {
            // counted once on disk, as before the writes moved to this thread
            Ok(()) => {
                inner.durable_writes.fetch_add(writes, Ordering::Relaxed);
            }
            Err(e) => tracing::error!(error = %e, "durable store fsync failed"),
        }
        for a in after {
            a(res.clone());
        }
    }
}
