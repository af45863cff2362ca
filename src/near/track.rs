//! Invalidation: a subscription to Redis's server-assisted client-side caching that drops
//! near-cache entries when their keys change anywhere, and the heartbeat that proves it delivers.

use super::{NearCache, NearKey};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Keeps a RESP3 connection subscribed to invalidation messages for the near-cached keys
/// (`CLIENT TRACKING ON BCAST REDIRECT` with the video, play-count, user and feed key prefixes) and
/// applies them. Everything cached is dropped whenever the subscription (re)starts or is lost,
/// since messages may have been missed meanwhile. Runs until aborted.
pub fn track(
    url: &str,
    prefix: &str,
    timeout: Duration,
    near: Arc<NearCache>,
) -> tokio::task::JoinHandle<()> {
    let (url, prefix) = (url.to_string(), prefix.to_string());
    tokio::spawn(async move {
        let mut logged = false;
        loop {
            let res = subscribe(&url, &prefix, timeout, &near).await;
            let was_up = near.tracking.swap(false, Ordering::AcqRel);
            near.clear();
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

async fn subscribe(
    url: &str,
    prefix: &str,
    timeout: Duration,
    near: &NearCache,
) -> Result<(), String> {
    use fred::prelude::*;
    // Invalidations are redirected to a RESP2 subscriber of `__redis__:invalidate`: unlike
    // RESP3 push messages, that channel also carries the null message of a FLUSHALL/FLUSHDB
    // through fred. The tracking itself belongs to a second connection ("owner").
    let config = Config::from_url(url).map_err(|e| e.to_string())?;
    let build = || {
        Builder::from_config(config.clone())
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
            })
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .build()
            .map_err(|e| e.to_string())
    };
    let connect = |c: &Client| {
        let handle = c.connect();
        let c = c.clone();
        async move {
            tokio::time::timeout(timeout, c.wait_for_connect())
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(handle)
        }
    };
    let sub = build()?;
    let mut rx = sub.invalidation_rx();
    let mut sub_conn = connect(&sub).await?;
    let id: i64 = sub.client_id().await.map_err(|e| e.to_string())?;
    sub.subscribe("__redis__:invalidate")
        .await
        .map_err(|e| format!("SUBSCRIBE: {e}"))?;
    let owner = build()?;
    let mut owner_conn = connect(&owner).await?;
    let prefixes: Vec<String> = ["v:", "pc:", "u:", "fav:", "fo:", "feed:", "nc:", "ses:"]
        .iter()
        .map(|p| format!("{prefix}{p}"))
        .collect();
    owner
        .client_tracking::<(), _, _>("on", Some(id), prefixes, true, false, false, false)
        .await
        .map_err(|e| format!("CLIENT TRACKING: {e}"))?;
    // anything cached before now may have missed its invalidation
    near.clear();
    near.tracking.store(true, Ordering::Release);
    tracing::info!("near-cache subscribed to redis invalidation messages");
    let ended = |r: Result<Result<(), fred::error::Error>, tokio::task::JoinError>| match r {
        Ok(Ok(())) => "connection closed".to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    // The heartbeat: a write to a tracked key whose invalidation must come back, proving the
    // subscription delivers (every instance's heartbeat proves it for all of them).
    let heartbeat = format!("{prefix}nc:heartbeat");
    let mut beats = tokio::time::interval((near.max_age() / 4).max(Duration::from_millis(10)));
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            _ = beats.tick() => {
                let set = owner
                    .set::<(), _, _>(&heartbeat, "1", Some(fred::types::Expiration::EX(3600)), None, false)
                    .await;
                if let Err(e) = set {
                    break Err(format!("heartbeat: {e}"));
                }
            }
            msg = rx.recv() => match msg {
                Ok(inv) => {
                    if inv.keys.is_empty() {
                        near.clear();
                    }
                    for k in &inv.keys {
                        if k.as_str() == Some(heartbeat.as_str()) {
                            near.beat();
                            continue;
                        }
                        match k.as_str().and_then(|k| parse_key(prefix, k)) {
                            Some(Parsed::Key(key)) => near.invalidate(key),
                            Some(Parsed::Feed) => near.invalidate_feed(),
                            None => {}
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => near.clear(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    break Err("invalidation channel closed".to_string())
                }
            },
            r = &mut sub_conn => break Err(ended(r)),
            r = &mut owner_conn => break Err(ended(r)),
        }
    };
    let _ = owner.quit().await;
    let _ = sub.quit().await;
    result
}

enum Parsed {
    Key(NearKey),
    Feed,
}

/// `<prefix>v:{123}` and `<prefix>pc:{123}` name video 123, `<prefix>u:{123}` user 123.
fn parse_key(prefix: &str, key: &str) -> Option<Parsed> {
    let rest = key.strip_prefix(prefix)?;
    if rest.starts_with("feed:") {
        return Some(Parsed::Feed);
    }
    let (kind, id) = rest.split_once(':')?;
    let id: i64 = id.strip_prefix('{')?.strip_suffix('}')?.parse().ok()?;
    match kind {
        "v" | "pc" => Some(Parsed::Key(NearKey::Video(id))),
        "u" => Some(Parsed::Key(NearKey::User(id))),
        "fav" => Some(Parsed::Key(NearKey::Likes(id))),
        "fo" => Some(Parsed::Key(NearKey::Follows(id))),
        "ses" => Some(Parsed::Key(NearKey::Session(id))),
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
        assert!(parse_key("dl:", "dl:fr:{7}").is_none());
        assert!(parse_key("dl:", "other:v:{1}").is_none());
        assert!(parse_key("dl:", "dl:v:{x}").is_none());
    }
}
