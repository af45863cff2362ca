//! Whether Redis answers. A prober pings it on a connection of its own every
//! `redis.probe_interval_ms`; once a ping fails or takes longer than `redis.probe_timeout_ms`,
//! Redis counts as down: every Redis call then fails at once as "unavailable", and calls
//! already waiting are released with the same answer, instead of each waiting out its own
//! timeout (and queueing behind reconnection attempts). The first ping that succeeds brings
//! it back. So during an outage a request answers within about interval + timeout. On a Redis
//! Cluster every primary is pinged: without replicas one missing primary fails the cluster.

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
    prober: Mutex<Option<tokio::task::JoinHandle<()>>>,
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

    /// Starts probing Redis at `config` (stopped by [`Health::stop`]).
    pub fn start(&self, config: Config, interval: Duration, timeout: Duration) {
        let up = self.up.clone();
        let task = tokio::spawn(async move {
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
            // connect, retrying while Redis is away (the server may start it before Redis
            // is back, and a client whose first connection failed does not reconnect by itself)
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
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let ok = probe(&client, &opts, timeout).await;
                let was = *up.borrow();
                if ok != was {
                    up.send_replace(ok);
                    if ok {
                        tracing::info!("redis answers again");
                    } else {
                        tracing::warn!("redis stopped answering; requests that need it answer \"unavailable\" until it is back");
                    }
                }
            }
        });
        *self.prober.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    pub fn stop(&self) {
        if let Some(t) = self.prober.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

async fn ping(client: &Client, opts: &Options, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, client.with_options(opts).ping::<String>(None))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// One probe: a PING, or on a Redis Cluster a PING to every primary (without replicas a
/// missing primary fails the whole cluster; with them, its slots wait for the failover).
async fn probe(client: &Client, opts: &Options, timeout: Duration) -> bool {
    if !client.is_clustered() {
        return ping(client, opts, timeout).await;
    }
    if ping_primaries(client, opts, timeout).await {
        return true;
    }
    // a failover or a resharding may have changed the primaries since the routing was read
    // (a PING has no key, so no MOVED updates it): read it again before judging
    let synced = tokio::time::timeout(timeout, client.sync_cluster()).await;
    matches!(synced, Ok(Ok(()))) && ping_primaries(client, opts, timeout).await
}

async fn ping_primaries(client: &Client, opts: &Options, timeout: Duration) -> bool {
    let Some(state) = client.cached_cluster_state() else {
        return false;
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
        .all(|ok| ok)
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
}
