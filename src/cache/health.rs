//! Whether Redis answers. A prober pings it on a connection of its own every
//! `redis.probe_interval_ms`; once a ping fails (an error, a refused or lost connection), or two
//! in a row take longer than `redis.probe_timeout_ms`, Redis counts as down: every Redis call
//! then fails at once as "unavailable", and calls already waiting are released with the same
//! answer, instead of each waiting out its own timeout (and queueing behind reconnection
//! attempts). The first ping that succeeds brings it back. So during an outage a request
//! answers within about interval + timeout (a hung Redis: interval + twice the timeout). On a
//! Redis Cluster every primary is pinged: without replicas one missing primary fails the
//! cluster.
//!
//! One slow ping is not enough: on a saturated machine (the load tester, Redis and the server
//! on two cores) a ping now and then took the whole 400 ms while Redis answered the next at
//! once, and every request that needed Redis answered "unavailable" meanwhile (bench/NOTES.md).
//! The prober runs on a thread of its own, with its own runtime, so that no work on the main
//! runtime (the invalidation subscriber, the outbox replayer) can delay its pings.

use crate::error::AppError;
use fred::prelude::*;
use fred::types::config::Options;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Redis's health as last probed (true: up).
pub struct Health {
    up: Arc<watch::Sender<bool>>,
    /// Stops the prober's thread (sent or dropped).
    prober: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

fn down() -> AppError {
    AppError::Unavailable("redis is not answering (probe failed)".into())
}

impl Health {
    /// Up until a probe says otherwise.
    pub fn new() -> Self {
        Health {
            up: Arc::new(watch::channel(true).0),
            prober: Mutex::new(None),
        }
    }

    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Waits until Redis counts as up, for at most `limit`; true when it does.
    pub async fn wait_up(&self, limit: Duration) -> bool {
        let mut rx = self.up.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|up| *up))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Runs `f` (a Redis call) unless Redis is down, and stops waiting for it when Redis goes
    /// down meanwhile.
    ///
    /// `f` is boxed at once: a fred command's future is several KB, and every async fn that
    /// held it by value (this one, `Cache::io`, their callers) kept its own copy of that space,
    /// so a like's handler future reached 70 KB, copied whole each time it moved (15% of the
    /// like scenario's CPU in memmove; bench/NOTES.md).
    pub fn guard<'a, F: Future + 'a>(
        &'a self,
        f: F,
    ) -> impl Future<Output = Result<F::Output, AppError>> + 'a {
        let f = Box::pin(f);
        async move {
            let mut rx = self.up.subscribe();
            if !*rx.borrow_and_update() {
                return Err(down());
            }
            tokio::select! {
                biased;
                r = f => Ok(r),
                _ = rx.wait_for(|up| !*up) => Err(down()),
            }
        }
    }

    /// Starts probing Redis at `config` on a thread of its own (stopped by [`Health::stop`]).
    pub fn start(&self, config: Config, interval: Duration, timeout: Duration) {
        let up = self.up.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let spawned = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|rt| {
                std::thread::Builder::new()
                    .name("redis-prober".into())
                    .spawn(move || {
                        rt.block_on(async move {
                            tokio::select! {
                                _ = stopped => {}
                                _ = probe_loop(config, interval, timeout, up) => {}
                            }
                        })
                    })
            });
        match spawned {
            Ok(_) => *self.prober.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop),
            Err(e) => tracing::error!(error = %e, "redis prober not started; health is not probed"),
        }
    }

    pub fn stop(&self) {
        if let Some(stop) = self.prober.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
    }
}

/// What one probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    Up,
    /// No answer within the timeout.
    Slow,
    /// An error: refused, lost or failing.
    Failed,
}

impl Probe {
    /// The worse of two findings.
    fn and(self, other: Probe) -> Probe {
        match (self, other) {
            (Probe::Failed, _) | (_, Probe::Failed) => Probe::Failed,
            (Probe::Slow, _) | (_, Probe::Slow) => Probe::Slow,
            _ => Probe::Up,
        }
    }
}

/// Whether Redis counts as up after `now`, given whether the probe before it was slow: down
/// on a failure or on a second slow probe in a row.
fn judge(now: Probe, slow_before: bool) -> bool {
    match now {
        Probe::Up => true,
        Probe::Failed => false,
        Probe::Slow => !slow_before,
    }
}

/// Pings Redis every `interval` (at once after a slow ping) and publishes whether it answers.
async fn probe_loop(
    config: Config,
    interval: Duration,
    timeout: Duration,
    up: Arc<watch::Sender<bool>>,
) {
    let client = match Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = timeout;
            c.internal_command_timeout = timeout;
        })
        .set_policy(ReconnectPolicy::new_constant(
            0,
            interval.as_millis() as u32,
        ))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "redis prober not built; health is not probed");
            return;
        }
    };
    // connect, retrying while Redis is away (the server may start it before Redis is back,
    // and a client whose first connection failed does not reconnect by itself)
    let _conn = loop {
        match client.init().await {
            Ok(conn) => break conn,
            Err(e) => {
                if up.send_replace(false) {
                    tracing::warn!(error = %e, "redis prober cannot connect; requests that need redis answer \"unavailable\"");
                }
                tokio::time::sleep(interval).await;
            }
        }
    };
    let opts = Options {
        timeout: Some(timeout),
        fail_fast: true,
        max_attempts: Some(1),
        ..Default::default()
    };
    let mut slow = false;
    loop {
        if !slow {
            tokio::time::sleep(interval).await;
        }
        let found = probe(&client, &opts, timeout).await;
        let ok = judge(found, slow);
        slow = found == Probe::Slow;
        if slow && ok {
            tracing::debug!("a redis probe timed out; probing again before judging");
        }
        let was = *up.borrow();
        if ok != was {
            up.send_replace(ok);
            if ok {
                tracing::info!("redis answers again");
            } else {
                tracing::warn!(?found, "redis stopped answering; requests that need it answer \"unavailable\" until it is back");
            }
        }
    }
}

async fn ping(client: &Client, opts: &Options, timeout: Duration) -> Probe {
    match tokio::time::timeout(timeout, client.with_options(opts).ping::<String>(None)).await {
        Ok(Ok(_)) => Probe::Up,
        Ok(Err(e)) if *e.kind() == fred::error::ErrorKind::Timeout => Probe::Slow,
        Ok(Err(_)) => Probe::Failed,
        Err(_) => Probe::Slow,
    }
}

/// One probe: a PING, or on a Redis Cluster a PING to every primary (without replicas a
/// missing primary fails the whole cluster; with them, its slots wait for the failover).
async fn probe(client: &Client, opts: &Options, timeout: Duration) -> Probe {
    if !client.is_clustered() {
        return ping(client, opts, timeout).await;
    }
    let first = ping_primaries(client, opts, timeout).await;
    if first == Probe::Up {
        return first;
    }
    // a failover or a resharding may have changed the primaries since the routing was read
    // (a PING has no key, so no MOVED updates it): read it again before judging
    match tokio::time::timeout(timeout, client.sync_cluster()).await {
        Ok(Ok(())) => ping_primaries(client, opts, timeout).await,
        Ok(Err(_)) => Probe::Failed,
        Err(_) => first.and(Probe::Slow),
    }
}

async fn ping_primaries(client: &Client, opts: &Options, timeout: Duration) -> Probe {
    let Some(state) = client.cached_cluster_state() else {
        return Probe::Failed;
    };
    let pings = state.unique_primary_nodes().into_iter().map(|server| {
        let opts = Options {
            cluster_node: Some(server),
            ..opts.clone()
        };
        async move { ping(client, &opts, timeout).await }
    });
    futures_util::future::join_all(pings)
        .await
        .into_iter()
        .fold(Probe::Up, Probe::and)
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_call_is_released_when_redis_goes_down() {
        let h = Health::new();
        assert_eq!(h.guard(async { 5 }).await.unwrap(), 5);
        let up = h.up.clone();
        let flip = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            up.send_replace(false);
        });
        let started = std::time::Instant::now();
        let r = h.guard(std::future::pending::<()>()).await;
        assert!(matches!(r, Err(AppError::Unavailable(_))));
        assert!(started.elapsed() < Duration::from_secs(2));
        flip.await.unwrap();
        // while down, calls fail without running
        assert!(h.guard(async { 1 }).await.is_err());
        h.up.send_replace(true);
        assert_eq!(h.guard(async { 2 }).await.unwrap(), 2);
    }

    #[test]
    fn one_slow_probe_is_forgiven_a_failure_or_a_second_slow_one_is_not() {
        assert!(judge(Probe::Up, false));
        assert!(judge(Probe::Up, true));
        assert!(judge(Probe::Slow, false), "one slow probe: still up");
        assert!(!judge(Probe::Slow, true), "two in a row: down");
        assert!(!judge(Probe::Failed, false), "an error: down at once");
        assert_eq!(Probe::Up.and(Probe::Slow), Probe::Slow);
        assert_eq!(Probe::Slow.and(Probe::Failed), Probe::Failed);
        assert_eq!(Probe::Up.and(Probe::Up), Probe::Up);
    }
}
