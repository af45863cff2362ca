//! Versioned changes of cached counters and sets (`lua/entity_apply.lua`): every like, follow
//! and comment arrives as absolute counters with the version of its group, plus the member
//! change with that member's own version, so changes apply exactly once in any order.

use super::Cache;
use crate::error::AppError;
use crate::near::NearKey;
use crate::store::{UserCounters, VideoCounters};
use std::sync::Arc;

/// The separately versioned groups of a user's cached state.
#[derive(Clone, Copy, Debug)]
pub enum UserAspect {
    /// favorite_count and the liked-videos zset (applied in order).
    Likes,
    /// total_favorited (newest wins).
    Received,
    /// follow_count and the following zset (applied in order).
    Follows,
    /// follower_count and the followers zset (applied in order).
    Followers,
}

/// The separately versioned groups of a video's cached state.
#[derive(Clone, Copy, Debug)]
pub enum VideoAspect {
    /// favorite_count (newest wins).
    Favorites,
    /// comment_count and the comment zset (applied in order).
    Comments,
}

/// A change to a zset that goes with a versioned counter change.
#[derive(Clone, Copy, Debug)]
pub enum ZsetOp {
    None,
    /// Add `member` with `score`; `version` orders the changes of this one member.
    Add {
        member: i64,
        score: i64,
        version: i64,
    },
    Remove {
        member: i64,
        version: i64,
    },
}

/// One versioned change, ready to send (`lua/entity_apply.lua`): its keys, its arguments and
/// the near-cache entries it makes stale.
pub struct Change {
    keys: Vec<String>,
    args: Vec<String>,
    stale: [Option<NearKey>; 2],
    /// The version of a counters-only change (mode 'max', newest wins): a newer change of the
    /// same group makes it redundant, so a batch keeps only the newest (`batch.rs`).
    newest_wins: Option<i64>,
}

impl Change {
    /// Takes the change's keys and arguments, for the call that carries it (`batch.rs`); what
    /// it makes stale stays.
    pub(super) fn take_call(&mut self) -> (Vec<String>, Vec<String>) {
        (
            std::mem::take(&mut self.keys),
            std::mem::take(&mut self.args),
        )
    }

    /// How many keys and arguments the change has.
    pub(super) fn keys_len(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn args_len(&self) -> usize {
        self.args.len()
    }

    /// For a counters-only change: its version, and what names its group (the entity's hash
    /// and the group's version field, the first key and argument). None for the others.
    pub(super) fn newest_wins(&self) -> Option<(i64, &str, &str)> {
        let v = self.newest_wins?;
        Some((v, self.keys.first()?, self.args.first()?))
    }
}

#[cfg(test)]
impl Change {
    /// A change with these keys and arguments (`batch.rs`'s tests).
    pub(super) fn for_test(keys: &[&str], args: &[&str], newest_wins: Option<i64>) -> Self {
        Change {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            args: args.iter().map(|a| a.to_string()).collect(),
            stale: [None, None],
            newest_wins,
        }
    }
}

impl Cache {
    /// Applies a versioned change of one group of user `id`'s cached state.
    pub async fn apply_user(
        self: &Arc<Self>,
        id: i64,
        c: &UserCounters,
        aspect: UserAspect,
        op: ZsetOp,
    ) -> Result<(), AppError> {
        self.apply(vec![self.user_change(id, c, aspect, op)]).await
    }

    /// Applies a versioned change of one group of video `id`'s cached state.
    pub async fn apply_video(
        self: &Arc<Self>,
        id: i64,
        c: &VideoCounters,
        aspect: VideoAspect,
        op: ZsetOp,
    ) -> Result<(), AppError> {
        self.apply(vec![self.video_change(id, c, aspect, op)]).await
    }

    /// Applies `changes`: on a single Redis in one script call, shared with the changes other
    /// writes on this thread make at the same time (`batch.rs`; a like's three changes and
    /// those of the likes acknowledged with it cost one round trip); one call per change,
    /// concurrently, on a Redis Cluster (each entity has its own slot). Every change's
    /// near-cache entries are dropped afterwards, also on failure.
    pub async fn apply(self: &Arc<Self>, mut changes: Vec<Change>) -> Result<(), AppError> {
        let r = if !self.config.server.is_clustered() {
            super::batch::apply(self, &mut changes).await
        } else {
            futures_util::future::try_join_all(changes.iter().map(|c| {
                let mut args = vec![
                    "1".to_string(),
                    c.keys.len().to_string(),
                    c.args.len().to_string(),
                ];
                args.extend_from_slice(&c.args);
                self.eval(&self.scripts.entity_apply, c.keys.clone(), args)
            }))
            .await
            .map(|_| ())
        };
        for c in &changes {
            for k in c.stale.iter().flatten() {
                self.near.invalidate(*k);
            }
        }
        r
    }

    /// A versioned change of one group of user `id`'s cached state (see [`Cache::apply`]).
    pub fn user_change(&self, id: i64, c: &UserCounters, aspect: UserAspect, op: ZsetOp) -> Change {
        let all = self.keys.user_all(id);
        let mv = self.keys.user_member_versions(id);
        // (version field, base field, version, mode, counter, value, zset index in user_all)
        let (ver, base, version, mode, field, value, z) = match aspect {
            UserAspect::Likes => (
                "lver",
                "lbase",
                c.like_version,
                "set",
                "favorite_count",
                c.favorite_count,
                2,
            ),
            UserAspect::Received => (
                "rver",
                "",
                c.received_version,
                "max",
                "total_favorited",
                c.total_favorited,
                2,
            ),
            UserAspect::Follows => (
                "fover",
                "fobase",
                c.follow_version,
                "set",
                "follow_count",
                c.follow_count,
                3,
            ),
            UserAspect::Followers => (
                "frver",
                "frbase",
                c.follower_version,
                "set",
                "follower_count",
                c.follower_count,
                4,
            ),
        };
        let mut keys = vec![all[0].clone(), all[z].clone(), mv[z - 2].clone()];
        keys.extend((1..5).filter(|k| *k != z).map(|k| all[k].clone()));
        keys.push(all[5].clone());
        let set = match aspect {
            UserAspect::Likes => Some(NearKey::Likes(id)),
            UserAspect::Follows => Some(NearKey::Follows(id)),
            UserAspect::Followers => Some(NearKey::Followers(id)),
            UserAspect::Received => None,
        };
        Change {
            keys,
            args: change_args([ver, base, mode], version, (field, value), op),
            stale: [Some(NearKey::User(id)), set],
            newest_wins: (mode == "max").then_some(version),
        }
    }

    /// A versioned change of one group of video `id`'s cached state (see [`Cache::apply`]).
    pub fn video_change(
        &self,
        id: i64,
        c: &VideoCounters,
        aspect: VideoAspect,
        op: ZsetOp,
    ) -> Change {
        let all = self.keys.video_all(id);
        let (ver, base, version, mode, field, value) = match aspect {
            VideoAspect::Favorites => (
                "fver",
                "",
                c.favorite_version,
                "max",
                "favorite_count",
                c.favorite_count,
            ),
            VideoAspect::Comments => (
                "cver",
                "cbase",
                c.comment_version,
                "set",
                "comment_count",
                c.comment_count,
            ),
        };
        let keys = vec![
            all[0].clone(),
            all[2].clone(),
            self.keys.video_member_versions(id),
            all[1].clone(),
            all[3].clone(),
        ];
        let comments = matches!(aspect, VideoAspect::Comments).then_some(NearKey::Comments(id));
        Change {
            keys,
            args: change_args([ver, base, mode], version, (field, value), op),
            stale: [Some(NearKey::Video(id)), comments],
            newest_wins: (mode == "max").then_some(version),
        }
    }
}

/// One change's arguments (see `lua/entity_apply.lua`).
fn change_args(names: [&str; 3], version: i64, counter: (&str, i64), op: ZsetOp) -> Vec<String> {
    let [ver, base, mode] = names;
    let mut args = Vec::with_capacity(11);
    args.extend([
        ver.to_string(),
        base.to_string(),
        version.to_string(),
        mode.to_string(),
        "1".to_string(),
        counter.0.to_string(),
        counter.1.to_string(),
    ]);
    match op {
        ZsetOp::None => args.extend(["none".into(), String::new(), "0".into(), "0".into()]),
        ZsetOp::Add {
            member,
            score,
            version,
        } => args.extend([
            "add".into(),
            member.to_string(),
            score.to_string(),
            version.to_string(),
        ]),
        ZsetOp::Remove { member, version } => args.extend([
            "rem".into(),
            member.to_string(),
            "0".into(),
            version.to_string(),
        ]),
    }
    args
}
