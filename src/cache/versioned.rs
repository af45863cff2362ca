//! Versioned changes of cached counters and sets (`lua/entity_apply.lua`): every like, follow
//! and comment arrives as absolute counters with the version of its group, plus the member
//! change with that member's own version, so changes apply exactly once in any order.

use super::Cache;
use crate::error::AppError;
use crate::near::NearKey;
use crate::store::{UserCounters, VideoCounters};

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

impl Cache {
    /// Applies a versioned change of one group of user `id`'s cached state.
    pub async fn apply_user(
        &self,
        id: i64,
        c: &UserCounters,
        aspect: UserAspect,
        op: ZsetOp,
    ) -> Result<(), AppError> {
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
        let r = self
            .apply(keys, [ver, base, mode], version, &[(field, value)], op)
            .await;
        self.near.invalidate(NearKey::User(id));
        match aspect {
            UserAspect::Likes => self.near.invalidate(NearKey::Likes(id)),
            UserAspect::Follows => self.near.invalidate(NearKey::Follows(id)),
            UserAspect::Received | UserAspect::Followers => {}
        }
        r
    }

    /// Applies a versioned change of one group of video `id`'s cached state.
    pub async fn apply_video(
        &self,
        id: i64,
        c: &VideoCounters,
        aspect: VideoAspect,
        op: ZsetOp,
    ) -> Result<(), AppError> {
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
        let r = self
            .apply(keys, [ver, base, mode], version, &[(field, value)], op)
            .await;
        self.near.invalidate(NearKey::Video(id));
        if matches!(aspect, VideoAspect::Comments) {
            self.near.invalidate(NearKey::Comments(id));
        }
        r
    }

    async fn apply(
        &self,
        keys: Vec<String>,
        names: [&str; 3],
        version: i64,
        fields: &[(&str, i64)],
        op: ZsetOp,
    ) -> Result<(), AppError> {
        let [ver, base, mode] = names;
        let mut args = Vec::with_capacity(9 + fields.len() * 2);
        args.extend([
            ver.to_string(),
            base.to_string(),
            version.to_string(),
            mode.to_string(),
            fields.len().to_string(),
        ]);
        for (f, v) in fields {
            args.push(f.to_string());
            args.push(v.to_string());
        }
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
        self.eval(&self.scripts.entity_apply, keys, args).await?;
        Ok(())
    }
}
