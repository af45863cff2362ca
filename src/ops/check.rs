//! The consistency check (`check`): every counter against the records it counts in the durable
//! store, and every counter cached in Redis against the durable one.

use crate::error::AppError;
use crate::state::AppState;

/// The outcome of [`check`].
#[derive(Debug, Default)]
pub struct CheckReport {
    pub users: usize,
    pub videos: usize,
    /// Active like records.
    pub likes: usize,
    /// Sum of the videos' durable favorite counts.
    pub video_favorites: i64,
    pub mismatches: usize,
    /// The first few disagreements, for people.
    pub examples: Vec<String>,
}

impl CheckReport {
    fn bad(&mut self, what: String) {
        self.mismatches += 1;
        if self.examples.len() < 20 {
            self.examples.push(what);
        }
    }

    pub fn to_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct J<'a> {
            users: usize,
            videos: usize,
            likes: usize,
            video_favorites: i64,
            mismatches: usize,
            examples: &'a [String],
        }
        simd_json::to_string(&J {
            users: self.users,
            videos: self.videos,
            likes: self.likes,
            video_favorites: self.video_favorites,
            mismatches: self.mismatches,
            examples: &self.examples,
        })
        .unwrap_or_default()
    }
}

/// Checks every user's and video's counters against the records they count in the durable
/// store, and the counters cached in Redis against the durable ones: lost or double-counted
/// updates show up as mismatches.
pub async fn check(st: &AppState) -> Result<CheckReport, AppError> {
    use std::collections::HashMap;
    let mut r = CheckReport::default();
    // likes given and received, counted from the like records
    let mut given: HashMap<i64, i64> = HashMap::new();
    let mut per_video: HashMap<i64, i64> = HashMap::new();
    let mut after = (0, 0);
    loop {
        let batch = st.store.scan_likes(after, 10_000).await?;
        let Some(last) = batch.last() else { break };
        after = *last;
        for (u, v) in &batch {
            *given.entry(*u).or_default() += 1;
            *per_video.entry(*v).or_default() += 1;
        }
        r.likes += batch.len();
    }
    let mut received: HashMap<i64, i64> = HashMap::new();
    let mut after = 0;
    loop {
        let batch = st.store.scan_videos(after, 1000).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        let ids: Vec<i64> = batch.iter().map(|v| v.id).collect();
        let cached = st.cache.cached_video_counters(&ids).await?;
        for (v, redis) in batch.iter().zip(cached) {
            r.videos += 1;
            let c = st.store.video_counters(v.id).await?;
            let likes = per_video.get(&v.id).copied().unwrap_or(0);
            *received.entry(v.author_id).or_default() += likes;
            r.video_favorites += c.favorite_count;
            if c.favorite_count != likes {
                r.bad(format!(
                    "video {}: favorite_count {} but {} like records",
                    v.id, c.favorite_count, likes
                ));
            }
            let comments = st.store.comment_ids_by_video(v.id).await?.len() as i64;
            if c.comment_count != comments {
                r.bad(format!(
                    "video {}: comment_count {} but {} comments",
                    v.id, c.comment_count, comments
                ));
            }
            if let Some((f, cm)) = redis {
                if (f, cm) != (c.favorite_count, c.comment_count) {
                    r.bad(format!(
                        "video {}: redis has favorites/comments {f}/{cm}, durable {}/{}",
                        v.id, c.favorite_count, c.comment_count
                    ));
                }
            }
        }
    }
    let mut after = 0;
    loop {
        let batch = st.store.scan_users(after, 1000).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        let ids: Vec<i64> = batch.iter().map(|u| u.id).collect();
        let cached = st.cache.cached_user_counters(&ids).await?;
        for (u, redis) in batch.iter().zip(cached) {
            r.users += 1;
            let c = st.store.user_counters(u.id).await?;
            let following = st.store.following(u.id).await?.len() as i64;
            let followers = st.store.followers(u.id).await?.len() as i64;
            let want = [
                ("favorite_count", given.get(&u.id).copied().unwrap_or(0)),
                ("total_favorited", received.get(&u.id).copied().unwrap_or(0)),
                ("follow_count", following),
                ("follower_count", followers),
            ];
            let have = [
                c.favorite_count,
                c.total_favorited,
                c.follow_count,
                c.follower_count,
            ];
            for ((name, w), h) in want.iter().zip(have) {
                if *w != h {
                    r.bad(format!("user {}: {name} {h} but {w} records", u.id));
                }
            }
            if let Some(cached) = redis {
                if cached != have {
                    r.bad(format!(
                        "user {}: redis has {cached:?}, durable {have:?} (favorite_count, total_favorited, follow_count, follower_count)",
                        u.id
                    ));
                }
            }
        }
    }
    Ok(r)
}
