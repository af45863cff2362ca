//! Counting changes exactly once on a `tallies` partition, with the changes that wait for the
//! same partition in this process folded into one conditional batch.
//!
//! A hot video's likes all move the video's (and its author's) counter partition. One
//! lightweight transaction per like would serialise them on that partition's Paxos rounds;
//! instead the first change to arrive leads: it takes every change queued for the partition,
//! reads the counter and the changes' markers, re-reads that each unmarked change is still
//! pending, and writes `count`, `version` (`IF version = v`) plus one marker per change
//! in one batch. Changes arriving meanwhile queue for the next round. A round costs the same
//! whether it carries one change or a hundred, so the partition's rate grows with its load.

use super::counted::{Grp, PairKind};
use super::rows::first_row;
use super::stmts::Stmts;
use super::{applied, unavailable};
use crate::store::{StoreError, StoreResult};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::CqlValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Most changes one round carries.
const MAX_ROUND: usize = 100;

/// Rounds a batch may lose to another instance's before the caller hears "unavailable".
const CAS_ATTEMPTS: usize = 64;

/// What proves a change is not finished yet (read after the counter). A plain quorum read is
/// enough: a change's markers are dropped only after the lightweight transaction that clears
/// its `pending` has committed, so a reader that finds a marker gone finds the clear too.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Guard {
    /// `pending` of the pair row still names the change.
    Pair(PairKind, i64, i64),
    /// `pending` of the comment row still names the change.
    Comment(i64),
}

struct Waiter {
    change: i64,
    delta: i64,
    guard: Guard,
    tx: oneshot::Sender<StoreResult<(i64, i64)>>,
}

#[derive(Default)]
struct Queue {
    leading: bool,
    waiting: Vec<Waiter>,
}

/// The counter side of the CQL store (cheap to clone: its rounds run as tasks of their own,
/// so a caller that gives up never strands the changes queued behind it).
#[derive(Clone)]
pub(crate) struct Tallier {
    s: Arc<Session>,
    q: Arc<Stmts>,
    queues: Arc<Mutex<HashMap<(i64, i8), Queue>>>,
}

impl Tallier {
    pub fn new(s: Arc<Session>, q: Arc<Stmts>) -> Tallier {
        Tallier {
            s,
            q,
            queues: Arc::default(),
        }
    }

    /// (count, version) of a counter group; (0, 0) when never counted.
    pub async fn read(&self, owner: i64, grp: Grp) -> StoreResult<(i64, i64)> {
        self.read_raw(owner, grp as i8).await
    }

    /// Counts change `change` (`delta`) in the group once, however often and by however many
    /// instances it is called, as long as `guard` shows it unfinished. Returns the group's
    /// (count, version) right after it.
    pub async fn count_once(
        &self,
        owner: i64,
        grp: Grp,
        change: i64,
        delta: i64,
        guard: Guard,
    ) -> StoreResult<(i64, i64)> {
        let key = (owner, grp as i8);
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut qs = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            let q = qs.entry(key).or_default();
            q.waiting.push(Waiter {
                change,
                delta,
                guard,
                tx,
            });
            !std::mem::replace(&mut q.leading, true)
        };
        if lead {
            let t = self.clone();
            tokio::spawn(async move { t.lead(key).await });
        }
        rx.await
            .map_err(|_| StoreError::Unavailable("cql: the counter round was dropped".into()))?
    }

    /// Runs rounds for the partition until nothing waits for it.
    async fn lead(&self, key: (i64, i8)) {
        loop {
            let round: Vec<Waiter> = {
                let mut qs = self.queues.lock().unwrap_or_else(|e| e.into_inner());
                let Some(q) = qs.get_mut(&key) else { return };
                if q.waiting.is_empty() {
                    qs.remove(&key);
                    return;
                }
                let n = q.waiting.len().min(MAX_ROUND);
                q.waiting.drain(..n).collect()
            };
            metrics::histogram!("douyin_store_counter_round_changes").record(round.len() as f64);
            let changes: Vec<(i64, i64, Guard)> =
                round.iter().map(|w| (w.change, w.delta, w.guard)).collect();
            match self.round(key, &changes).await {
                Ok(results) => {
                    for (w, r) in round.into_iter().zip(results) {
                        let _ = w.tx.send(Ok(r));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for w in round {
                        let _ = w.tx.send(Err(StoreError::Unavailable(msg.clone())));
                    }
                }
            }
        }
    }

    async fn marked(&self, owner: i64, grp: i8, changes: &[i64]) -> StoreResult<Vec<i64>> {
        let r = self
            .s
            .execute_unpaged(&self.q.get_markers, (owner, grp, changes))
            .await
            .map_err(unavailable)?;
        r.into_rows_result()
            .map_err(unavailable)?
            .rows::<(i64,)>()
            .map_err(unavailable)?
            .map(|r| r.map(|(c,)| c).map_err(unavailable))
            .collect()
    }

    async fn still_pending(&self, guard: Guard, change: i64) -> StoreResult<bool> {
        let (st, values) = match guard {
            Guard::Pair(kind, a, b) => (
                self.q.get_pair_pending.clone(),
                vec![
                    CqlValue::TinyInt(kind as i8),
                    CqlValue::BigInt(a),
                    CqlValue::BigInt(b),
                ],
            ),
            Guard::Comment(id) => (
                self.q.get_comment_pending.clone(),
                vec![CqlValue::BigInt(id)],
            ),
        };
        let row = first_row::<(Option<i64>,)>(&self.s, &st, values).await?;
        Ok(row.and_then(|r| r.0) == Some(change))
    }

    /// One round: every change of `changes` counted once; each one's (count, version) after
    /// it, in order.
    async fn round(
        &self,
        (owner, grp): (i64, i8),
        changes: &[(i64, i64, Guard)],
    ) -> StoreResult<Vec<(i64, i64)>> {
        let ids: Vec<i64> = changes.iter().map(|c| c.0).collect();
        for _ in 0..CAS_ATTEMPTS {
            // The counter first, then the markers: a change counted in the counter read was
            // counted with its marker in one write, so the later read finds the marker (or,
            // once it is dropped, the cleared `pending` below). Read at once, the markers
            // could come from before a concurrent round and the counter from after it, and
            // that change would be counted again on top of itself.
            let cur = self.read_raw(owner, grp).await?;
            let marked = self.marked(owner, grp, &ids).await?;
            // after the markers: a finisher that cleared a change (and may have dropped its
            // marker) did so before this read, so it shows here
            let mut live: Vec<usize> = Vec::new();
            let checks = futures_util::future::try_join_all(
                changes
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| !marked.contains(&c.0))
                    .map(|(i, c)| async move {
                        Ok::<_, StoreError>((i, self.still_pending(c.2, c.0).await?))
                    }),
            )
            .await?;
            let mut seen = std::collections::HashSet::new();
            for (i, pending) in checks {
                if pending && seen.insert(changes[i].0) {
                    live.push(i);
                }
            }
            if live.is_empty() {
                // Counted already, perhaps by a round that landed between the two reads above:
                // the counter read before the markers may not hold it yet, and a caller that
                // hands on an older count than its change's (to Redis) would leave it behind
                // for good if the round's own finisher died. Read it again: now it holds them.
                let now = self.read_raw(owner, grp).await?;
                return Ok(vec![now; changes.len()]);
            }
            // each live change in turn, as if they had come one by one
            let mut after = vec![cur; changes.len()];
            let mut state = cur;
            for &i in &live {
                state = (state.0 + changes[i].1, state.1 + 1);
                after[i] = state;
            }
            // a duplicate of a live change (two finishers of it here) gets its result
            for i in 0..changes.len() {
                if let Some(&j) = live.iter().find(|&&j| changes[j].0 == changes[i].0) {
                    after[i] = after[j];
                }
            }
            let mut b = Batch::new(BatchType::Logged);
            b.append_statement(self.q.cas_tally.clone());
            let mut values: Vec<Vec<Option<CqlValue>>> = vec![vec![
                Some(CqlValue::BigInt(state.0)),
                Some(CqlValue::BigInt(state.1)),
                Some(CqlValue::BigInt(owner)),
                Some(CqlValue::TinyInt(grp)),
                // IF version = null: a partition never counted before
                (cur.1 != 0).then_some(CqlValue::BigInt(cur.1)),
            ]];
            for &i in &live {
                b.append_statement(self.q.ins_marker.clone());
                values.push(vec![
                    Some(CqlValue::BigInt(owner)),
                    Some(CqlValue::TinyInt(grp)),
                    Some(CqlValue::BigInt(changes[i].0)),
                ]);
            }
            let r = self.s.batch(&b, values).await.map_err(unavailable)?;
            if applied(r)? {
                return Ok(after);
            }
            metrics::counter!("douyin_store_cas_retries_total", "what" => "counter").increment(1);
        }
        Err(StoreError::Unavailable(
            "cql: a counter kept changing under contention".into(),
        ))
    }

    async fn read_raw(&self, owner: i64, grp: i8) -> StoreResult<(i64, i64)> {
        let row = first_row::<(Option<i64>, Option<i64>)>(&self.s, &self.q.get_tally, (owner, grp))
            .await?;
        Ok(row.map_or((0, 0), |(c, v)| (c.unwrap_or(0), v.unwrap_or(0))))
    }

    /// Drops the markers of a finished change (nobody counts it again: whoever finishes it
    /// checks `pending` first).
    pub async fn unmark(&self, change: i64, groups: &[(i64, Grp)]) {
        for (owner, grp) in groups {
            if let Err(e) = self
                .s
                .execute_unpaged(&self.q.del_marker, (*owner, *grp as i8, change))
                .await
            {
                tracing::debug!(error = %e, "could not drop a counter marker; it stays harmless");
            }
        }
    }
}
