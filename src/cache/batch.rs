//! Versioned changes sent together. The writes of one round of the group committer are
//! acknowledged at once and wake together on each HTTP worker; each would otherwise make a
//! script call of its own (a command written, a reply read and the script's fixed cost in
//! Redis, for every like). A change joins the batch open on its thread; a task of the batch's
//! own sends it once the thread's ready tasks have run, as one call of
//! `lua/entity_apply.lua` (which applies any number of changes, each exactly once), and hands
//! every caller the call's outcome. The task is spawned, so a request dropped while it waits
//! (its client hung up) never keeps the others' changes from Redis.
//!
//! A counters-only change (newest wins: a video's like count, an author's likes received)
//! goes once a batch: a newer change of the same group replaces the older in place, since its
//! counters are absolute values. Likes of one video that wake together then change it and its
//! author once, not once each (bench/NOTES.md, thirty-eighth session).
//!
//! On a single Redis only: on a Redis Cluster each entity has its own slot, and its changes go
//! one call each (`versioned.rs`).

use super::versioned::Change;
use super::Cache;
use crate::error::AppError;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The most changes one call carries (a like is three, or one when its video's and author's
/// are folded into another like's: sixteen to forty-eight likes): a script blocks Redis while
/// it runs.
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
    /// The counters-only changes carried (newest wins), so that a newer change of the same
    /// group replaces an older one in place and an older one is dropped: likes of one video
    /// that wake together change its count and its author's once each.
    newest: Vec<Newest>,
    /// Changes dropped or replaced that way, for the metric.
    coalesced: usize,
    /// Taken by its task: later changes start a batch of their own.
    sent: bool,
}

/// Where a counters-only change sits in a batch: its first key, its arguments and version.
struct Newest {
    key_at: usize,
    keys: usize,
    args_at: usize,
    args: usize,
    version: i64,
}

impl Open {
    fn push(&mut self, changes: &mut [Change], tx: oneshot::Sender<Outcome>) {
        for c in changes {
            if self.merge(c) {
                self.coalesced += 1;
                continue;
            }
            let version = c.newest_wins().map(|(v, _, _)| v);
            let (keys, args) = c.take_call();
            self.args.push(keys.len().to_string());
            self.args.push(args.len().to_string());
            if let Some(version) = version {
                self.newest.push(Newest {
                    key_at: self.keys.len(),
                    keys: keys.len(),
                    args_at: self.args.len(),
                    args: args.len(),
                    version,
                });
            }
            self.args.extend(args);
            self.keys.extend(keys);
            self.changes += 1;
        }
        self.waiters.push(tx);
    }

    /// Folds counters-only change `c` into the batch's change of the same group, if it has
    /// one: the newer of the two stays (their counters are absolute values, so applying the
    /// older as well changes nothing). Returns whether `c` needs no place of its own.
    fn merge(&mut self, c: &mut Change) -> bool {
        let Some((version, hash, field)) = c.newest_wins() else {
            return false;
        };
        let Some(n) = self
            .newest
            .iter_mut()
            .find(|n| self.keys[n.key_at] == hash && self.args[n.args_at] == field)
        else {
            return false;
        };
        let (keys, args) = (c.keys_len(), c.args_len());
        if keys != n.keys || args != n.args {
            return false;
        }
        if version > n.version {
            let (_, new_args) = c.take_call();
            n.version = version;
            for (slot, a) in self.args[n.args_at..n.args_at + args]
                .iter_mut()
                .zip(new_args)
            {
                *slot = a;
            }
        }
        true
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
    if b.coalesced > 0 {
        metrics::counter!("douyin_cache_apply_coalesced_total").increment(b.coalesced as u64);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [&str; 5] = ["v:1", "v:1:z", "v:1:mv", "v:1:x", "v:1:lease"];

    /// A video's favorite count at `version` (mode 'max'), as `video_change` makes it.
    fn count(hash: &str, version: i64, value: i64) -> Change {
        let (v, n) = (version.to_string(), value.to_string());
        let mut keys = KEYS;
        keys[0] = hash;
        let args = [
            "fver",
            "",
            &v,
            "max",
            "1",
            "favorite_count",
            &n,
            "none",
            "",
            "0",
            "0",
        ];
        Change::for_test(&keys, &args, Some(version))
    }

    fn push(b: &mut Open, c: Change) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        b.push(&mut [c], tx);
        rx
    }

    /// The (first key, version, value) of each change the batch carries, in order.
    fn carried(b: &Open) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let (mut a, mut k) = (0, 0);
        for _ in 0..b.changes {
            let nk: usize = b.args[a].parse().unwrap();
            let na: usize = b.args[a + 1].parse().unwrap();
            let args = &b.args[a + 2..a + 2 + na];
            out.push((b.keys[k].clone(), args[2].clone(), args[6].clone()));
            a += 2 + na;
            k += nk;
        }
        assert_eq!((a, k), (b.args.len(), b.keys.len()), "layout");
        out
    }

    #[test]
    fn a_batch_keeps_only_the_newest_counters_of_a_group() {
        let mut b = Open::default();
        let _w: Vec<_> = [(3, 10), (5, 12), (4, 11)]
            .into_iter()
            .map(|(v, n)| push(&mut b, count("v:1", v, n)))
            .collect();
        assert_eq!(b.changes, 1);
        assert_eq!(b.coalesced, 2);
        assert_eq!(b.waiters.len(), 3, "every caller still gets the outcome");
        assert_eq!(carried(&b), [("v:1".into(), "5".into(), "12".into())]);
    }

    #[test]
    fn other_groups_and_ordered_changes_keep_their_own_places() {
        let mut b = Open::default();
        let _a = push(&mut b, count("v:1", 7, 3));
        let _b = push(&mut b, count("v:2", 2, 1));
        // the same hash, another group (its own version field)
        let keys = KEYS;
        let other = [
            "cver",
            "",
            "1",
            "max",
            "1",
            "comment_count",
            "9",
            "none",
            "",
            "0",
            "0",
        ];
        let _c = push(&mut b, Change::for_test(&keys, &other, Some(1)));
        // an ordered change (mode 'set') of the same hash is never folded
        let set = [
            "fver",
            "",
            "8",
            "set",
            "1",
            "favorite_count",
            "4",
            "none",
            "",
            "0",
            "0",
        ];
        let _d = push(&mut b, Change::for_test(&keys, &set, None));
        let _e = push(&mut b, count("v:2", 1, 0));
        assert_eq!(b.changes, 4);
        assert_eq!(b.coalesced, 1);
        let got = carried(&b);
        assert_eq!(got[0], ("v:1".into(), "7".into(), "3".into()));
        assert_eq!(
            got[1],
            ("v:2".into(), "2".into(), "1".into()),
            "the older is dropped"
        );
        assert_eq!(got[2].1, "1");
        assert_eq!(got[3].1, "8");
    }
}
