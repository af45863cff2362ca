//! Invalidation: subscriptions to Redis's server-assisted client-side caching that drop
//! near-cache entries when their keys change anywhere, and the heartbeats that prove they
//! deliver.
//!
//! Redis keeps tracking state per node, so on a Redis Cluster every primary gets a subscription
//! of its own, with a heartbeat key in one of that primary's slots. Entries outlive the age
//! bound only while every primary's heartbeat has come back within it. A primary that
//! disappears, a new one, or a heartbeat slot that moved (MOVED) restarts all subscriptions on
//! the new topology, with the age bound in force meanwhile.

use super::{NearCache, NearKey};
use fred::prelude::*;
use fred::types::cluster::ClusterRouting;
use fred::types::config::Server;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the cluster's primaries are compared with the subscribed ones.
const TOPOLOGY_CHECK: Duration = Duration::from_secs(2);

/// Invalidation messages the subscriber's client holds for this task before it counts as
/// lagging (fred's default is 32). Missing messages can only be made good by dropping every
/// entry, and a burst of likes (12,000 a second, each invalidating several keys) overran 32
/// within a scheduling delay: the whole near-cache was dropped again and again (bench/NOTES.md).
/// About 100 ms of such a burst; fred sizes each of its event channels so, about 5 MB.
const INVALIDATION_BACKLOG: usize = 8192;

/// Drops every entry for `reason` (counted in `douyin_near_cache_clears_total`).
fn clear(near: &NearCache, reason: &'static str) {
    metrics::counter!("douyin_near_cache_clears_total", "reason" => reason).increment(1);
    near.clear();
}

/// The key kinds whose changes drop near-cache entries (see `parse_key`), and `nc:` for the
/// heartbeats.
const TRACKED: [&str; 12] = [
    "v:", "pc:", "u:", "pub:", "fav:", "fo:", "fr:", "feed:", "nc:", "ses:", "cm:", "cv:",
];

/// Keeps invalidation subscriptions for the near-cached keys (`CLIENT TRACKING ON BCAST
/// REDIRECT` with the video, play-count, user, user-list, session, comment, conversation and
/// feed key prefixes) on Redis at `url`, one per primary of a cluster, and applies their messages.
/// Everything cached is dropped whenever a subscription (re)starts or is lost, since messages
/// may have been missed meanwhile. Runs until aborted.
pub fn track(
    url: &str,
    prefix: &str,
    timeout: Duration,
    near: Arc<NearCache>,
) -> tokio::task::JoinHandle<()> {
    let (url, prefix) = (url.to_string(), prefix.to_string());
    tokio::spawn(async move {
        let config = match Config::from_url(&url) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "near-cache invalidation not started; entries expire after near.max_age_ms");
                return;
            }
        };
        let mut logged = false;
        loop {
            let res = if config.server.is_clustered() {
                track_cluster(&config, &prefix, timeout, &near).await
            } else {
                let (_stop_tx, stop) = watch::channel(false);
                let heartbeat = format!("{prefix}nc:heartbeat");
                let ready = || {
                    clear(&near, "subscribed");
                    near.channels.store(1, Ordering::Release);
                    near.tracking.store(true, Ordering::Release);
                    tracing::info!("near-cache subscribed to redis invalidation messages");
                };
                subscribe(
                    &config,
                    &prefix,
                    &heartbeat,
                    timeout,
                    &near,
                    stop,
                    ready,
                    || near.beat(),
                )
                .await
            };
            let was_up = near.tracking.swap(false, Ordering::AcqRel);
            near.channels.store(0, Ordering::Release);
            near.set_beat(0);
            clear(&near, "unsubscribed");
            match res {
                Err(e) if !logged || was_up => {
                    tracing::warn!(error = %e, "near-cache invalidation subscription is down; entries expire after near.max_age_ms");
                    logged = true;
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

fn build(config: &Config, timeout: Duration) -> Result<Client, String> {
    build_with(config, timeout, |_| {})
}

/// The subscriber's client: with room for a burst of invalidation messages.
fn build_subscriber(config: &Config, timeout: Duration) -> Result<Client, String> {
    build_with(config, timeout, |p| {
        p.broadcast_channel_capacity = INVALIDATION_BACKLOG
    })
}

fn build_with(
    config: &Config,
    timeout: Duration,
    tweak: impl FnOnce(&mut fred::types::config::PerformanceConfig),
) -> Result<Client, String> {
    Builder::from_config(config.clone())
        .with_connection_config(|c| {
            c.connection_timeout = timeout;
            c.internal_command_timeout = timeout;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = timeout;
            tweak(p);
        })
        .build()
        .map_err(|e| e.to_string())
}

async fn connect(c: &Client, timeout: Duration) -> Result<fred::types::ConnectHandle, String> {
    let handle = c.connect();
    tokio::time::timeout(timeout, c.wait_for_connect())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(handle)
}

/// A heartbeat key in one of `primary`'s slots, under the tracked `nc:` prefix (the same for
/// every instance, so any instance's heartbeat proves the channel for all).
fn heartbeat_key_on(prefix: &str, state: &ClusterRouting, primary: &Server) -> Option<String> {
    (0..100_000).find_map(|i| {
        let key = format!("{prefix}nc:hb:{{{i}}}");
        let slot = ClusterRouting::hash_key(key.as_bytes());
        (state.get_server(slot) == Some(primary)).then_some(key)
    })
}

/// One subscription per primary of the cluster, until one of them ends or the primaries
/// change.
async fn track_cluster(
    config: &Config,
    prefix: &str,
    timeout: Duration,
    near: &NearCache,
) -> Result<(), String> {
    let watcher = build(config, timeout)?;
    let watcher_conn = connect(&watcher, timeout).await?;
    let res = track_primaries(&watcher, config, prefix, timeout, near).await;
    let _ = watcher.quit().await;
    watcher_conn.abort();
    res
}

async fn track_primaries(
    watcher: &Client,
    config: &Config,
    prefix: &str,
    timeout: Duration,
    near: &NearCache,
) -> Result<(), String> {
    let state = watcher
        .cached_cluster_state()
        .ok_or("no cluster state from redis")?;
    let primaries = state.unique_primary_nodes();
    let n = primaries.len();
    let heartbeats = primaries
        .iter()
        .map(|p| heartbeat_key_on(prefix, &state, p).ok_or(format!("no heartbeat slot on {p}")))
        .collect::<Result<Vec<_>, _>>()?;
    let beats: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let ready = AtomicUsize::new(0);
    let (stop_tx, stop_rx) = watch::channel(false);
    let channels = primaries.iter().enumerate().map(|(i, p)| {
        let mut node = config.clone();
        node.server =
            fred::types::config::ServerConfig::new_centralized(p.host.to_string(), p.port);
        let (stop, beats, ready, heartbeat, stop_tx) =
            (stop_rx.clone(), &beats, &ready, &heartbeats[i], &stop_tx);
        async move {
            let on_ready = || {
                // anything cached before every channel was up may have missed its message
                clear(near, "subscribed");
                if ready.fetch_add(1, Ordering::AcqRel) + 1 == n {
                    near.channels.store(n, Ordering::Release);
                    near.tracking.store(true, Ordering::Release);
                    tracing::info!(
                        primaries = n,
                        "near-cache subscribed to the invalidation messages of every redis primary"
                    );
                }
            };
            let on_beat = || {
                beats[i].store(near.stamp(), Ordering::Release);
                let oldest = beats.iter().map(|b| b.load(Ordering::Acquire)).min();
                near.set_beat(oldest.unwrap_or(0));
            };
            let res = subscribe(
                &node, prefix, heartbeat, timeout, near, stop, on_ready, on_beat,
            )
            .await
            .map_err(|e| format!("primary {p}: {e}"));
            // one channel down: every channel restarts, on the topology as it is then
            let _ = stop_tx.send(true);
            res
        }
    });
    let topology = async {
        let mut stop = stop_rx.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TOPOLOGY_CHECK) => {}
                _ = stop.changed() => return Ok(()),
            }
            if watcher.sync_cluster().await.is_err() {
                continue;
            }
            let now = watcher
                .cached_cluster_state()
                .map(|s| s.unique_primary_nodes());
            if now.as_ref() != Some(&primaries) {
                let _ = stop_tx.send(true);
                return Err("the cluster's primaries changed".to_string());
            }
        }
    };
    let (results, topo) =
        futures_util::future::join(futures_util::future::join_all(channels), topology).await;
    results.into_iter().find(|r| r.is_err()).unwrap_or(topo)
}

/// One invalidation channel on one Redis node: a RESP2 subscriber of `__redis__:invalidate`
/// (unlike RESP3 push messages, that channel also carries the null message of a
/// FLUSHALL/FLUSHDB through fred) and a second connection ("owner") whose tracking redirects
/// there and which writes the heartbeat every `max_age / 4`. Calls `ready` once subscribed,
/// `beat` for every heartbeat that comes back; returns when a connection is lost, the
/// heartbeat fails, or `stop` turns true.
#[allow(clippy::too_many_arguments)]
async fn subscribe(
    config: &Config,
    prefix: &str,
    heartbeat: &str,
    timeout: Duration,
    near: &NearCache,
    mut stop: watch::Receiver<bool>,
    ready: impl FnOnce(),
    beat: impl Fn(),
) -> Result<(), String> {
    let sub = build_subscriber(config, timeout)?;
    let mut rx = sub.invalidation_rx();
    let mut sub_conn = connect(&sub, timeout).await?;
    let owner = build(config, timeout)?;
    let res = async {
        let id: i64 = sub.client_id().await.map_err(|e| e.to_string())?;
        sub.subscribe("__redis__:invalidate")
            .await
            .map_err(|e| format!("SUBSCRIBE: {e}"))?;
        let mut owner_conn = connect(&owner, timeout).await?;
        let prefixes: Vec<String> = TRACKED
            .iter()
            .map(|p| format!("{prefix}{p}"))
            .collect();
        owner
            .client_tracking::<(), _, _>("on", Some(id), prefixes, true, false, false, false)
            .await
            .map_err(|e| format!("CLIENT TRACKING: {e}"))?;
        ready();
        let ended = |r: Result<Result<(), fred::error::Error>, tokio::task::JoinError>| match r {
            Ok(Ok(())) => "connection closed".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        // The heartbeat: a write to a tracked key whose invalidation must come back, proving
        // the channel delivers (every instance's heartbeat proves it for all of them).
        let mut beats = tokio::time::interval((near.max_age() / 4).max(Duration::from_millis(10)));
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lag_warned = 0u64;
        loop {
            tokio::select! {
                _ = stop.changed() => break Ok(()),
                _ = beats.tick() => {
                    let set = owner
                        .set::<(), _, _>(heartbeat, "1", Some(fred::types::Expiration::EX(3600)), None, false)
                        .await;
                    if let Err(e) = set {
                        break Err(format!("heartbeat: {e}"));
                    }
                }
                msg = rx.recv() => match msg {
                    Ok(inv) => {
                        if inv.keys.is_empty() {
                            clear(near, "flushed");
                        }
                        for k in &inv.keys {
                            if k.as_str() == Some(heartbeat) {
                                beat();
                                continue;
                            }
                            match k.as_str().and_then(|k| parse_key(prefix, k)) {
                                Some(Parsed::Key(key)) => near.invalidate(key),
                                Some(Parsed::Feed) => near.invalidate_feed(),
                                None => {}
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        // at most one warning a minute: under a sustained overrun it repeats
                        let now = near.stamp();
                        if lag_warned == 0 || now.saturating_sub(lag_warned) >= 60_000 {
                            lag_warned = now;
                            tracing::warn!(missed = n, "near-cache invalidation messages overran the backlog; every entry dropped");
                        }
                        clear(near, "lagged");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        break Err("invalidation channel closed".to_string())
                    }
                },
                r = &mut sub_conn => break Err(ended(r)),
                r = &mut owner_conn => break Err(ended(r)),
            }
        }
    }
    .await;
    let _ = owner.quit().await;
    let _ = sub.quit().await;
    res
}

enum Parsed {
    Key(NearKey),
    Feed,
}

/// `<prefix>v:{123}` and `<prefix>pc:{123}` name video 123, `<prefix>u:{123}` user 123,
/// `<prefix>cv:{3_12}` the conversation of users 3 and 12, and so on.
fn parse_key(prefix: &str, key: &str) -> Option<Parsed> {
    let rest = key.strip_prefix(prefix)?;
    if rest.starts_with("feed:") {
        return Some(Parsed::Feed);
    }
    let (kind, id) = rest.split_once(':')?;
    let id = id.strip_prefix('{')?.strip_suffix('}')?;
    if kind == "cv" {
        let (a, b) = id.split_once('_')?;
        return Some(Parsed::Key(NearKey::conv(a.parse().ok()?, b.parse().ok()?)));
    }
    let id: i64 = id.parse().ok()?;
    match kind {
        "v" | "pc" => Some(Parsed::Key(NearKey::Video(id))),
        "u" => Some(Parsed::Key(NearKey::User(id))),
        "fav" => Some(Parsed::Key(NearKey::Likes(id))),
        "fo" => Some(Parsed::Key(NearKey::Follows(id))),
        "fr" => Some(Parsed::Key(NearKey::Followers(id))),
        "pub" => Some(Parsed::Key(NearKey::Works(id))),
        "ses" => Some(Parsed::Key(NearKey::Session(id))),
        "cm" => Some(Parsed::Key(NearKey::Comments(id))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_keys() {
        assert!(matches!(
            parse_key("dl:", "dl:v:{42}"),
            Some(Parsed::Key(NearKey::Video(42)))
        ));
        assert!(matches!(
            parse_key("dl:", "dl:pc:{42}"),
            Some(Parsed::Key(NearKey::Video(42)))
        ));
        assert!(matches!(
            parse_key("dl:", "dl:u:{7}"),
            Some(Parsed::Key(NearKey::User(7)))
        ));
        assert!(matches!(
            parse_key("dl:", "dl:feed:{feed}"),
            Some(Parsed::Feed)
        ));
        assert!(matches!(
            parse_key("dl:", "dl:fav:{7}"),
            Some(Parsed::Key(NearKey::Likes(7)))
        ));
        assert!(matches!(
            parse_key("dl:", "dl:fo:{7}"),
            Some(Parsed::Key(NearKey::Follows(7)))
        ));
        assert!(matches!(
            parse_key("dl:", "dl:ses:{7}"),
            Some(Parsed::Key(NearKey::Session(7)))
        ));
        assert!(matches!(
            parse_key("t:", "t:cm:{9}"),
            Some(Parsed::Key(NearKey::Comments(9)))
        ));
        assert!(matches!(
            parse_key("dl:", "dl:fr:{7}"),
            Some(Parsed::Key(NearKey::Followers(7)))
        ));
        assert!(matches!(
            parse_key("dl:", "dl:pub:{7}"),
            Some(Parsed::Key(NearKey::Works(7)))
        ));
        assert!(matches!(
            parse_key("dl:", "dl:cv:{3_12}"),
            Some(Parsed::Key(NearKey::Conv(3, 12)))
        ));
        assert!(parse_key("dl:", "dl:cv:{3}").is_none());
        assert!(parse_key("dl:", "dl:stg:fr:{7}").is_none());
        assert!(parse_key("dl:", "other:v:{1}").is_none());
        assert!(parse_key("dl:", "dl:v:{x}").is_none());
    }
}
