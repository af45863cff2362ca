//! Sessions in Redis: per user, the token generation and the ids of tokens logged out one by
//! one (`ses:{uid}`), checked on every request that carries a token; from the near-cache when
//! warm, else one round trip, else loaded from the durable store.

use super::{Cache, RELOAD_ATTEMPTS};
use crate::error::AppError;
use crate::near::{NearKey, SessionEntry};
use crate::store::SessionState;
use fred::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

fn args(s: &SessionState) -> Vec<String> {
    let revoked: Vec<String> = s.revoked.iter().map(|(id, _)| id.to_string()).collect();
    vec![
        s.version.to_string(),
        s.generation.to_string(),
        revoked.join(","),
    ]
}

/// (generation, revoked ids) of a session hash; None when it is not loaded.
fn parse(h: &HashMap<String, String>) -> Option<(i64, Vec<u64>)> {
    h.get("ver")?;
    let generation = h.get("gen").and_then(|g| g.parse().ok()).unwrap_or(0);
    let revoked = h
        .get("rvk")
        .map(|r| r.split(',').filter_map(|id| id.parse().ok()).collect())
        .unwrap_or_default();
    Some((generation, revoked))
}

impl Cache {
    /// User `id`'s session: which tokens are still good.
    pub async fn session(&self, id: i64) -> Result<Arc<SessionEntry>, AppError> {
        if let Some(e) = self.near.session(id) {
            return Ok(e);
        }
        let key = self.keys.session(id);
        for _ in 0..RELOAD_ATTEMPTS {
            let t = self.near.begin();
            self.rt();
            let c = self.client();
            let h: HashMap<String, String> = self.io_retry(|| c.hgetall(key.as_str())).await?;
            if let Some((generation, revoked)) = parse(&h) {
                return Ok(self.near.install_session(id, generation, revoked, t));
            }
            let s = self.store.session(id).await?;
            let installed = self
                .eval(&self.scripts.session_set, vec![key.clone()], args(&s))
                .await?;
            if matches!(installed, fred::types::Value::Integer(1)) {
                let revoked = s.revoked.iter().map(|(id, _)| *id).collect();
                return Ok(self.near.install_session(id, s.generation, revoked, t));
            }
        }
        Err(AppError::Unavailable(format!(
            "session of user {id}: not loaded after reload"
        )))
    }

    /// User `id`'s session for a read: from their bundle with their lists when it is current
    /// (`near/viewers.rs`: the page's flags then need no lookups of their own), else as
    /// [`Self::session`]. Writes go to [`Self::session`] directly: a write changes what the
    /// bundle holds, so a writer's bundle is seldom current and the lookup would be wasted.
    pub async fn reader_session(&self, id: i64) -> Result<Arc<SessionEntry>, AppError> {
        if let Some(s) = self.near.viewer(id).and_then(|v| v.session()) {
            return Ok(s);
        }
        self.session(id).await
    }

    /// Installs a changed session (newest version wins) and drops this instance's copy.
    pub async fn session_changed(&self, id: i64, s: &SessionState) -> Result<(), AppError> {
        let r = self
            .eval(
                &self.scripts.session_set,
                vec![self.keys.session(id)],
                args(s),
            )
            .await;
        self.near.invalidate(NearKey::Session(id));
        r.map(|_| ())
    }
}
