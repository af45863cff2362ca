//! The data the layers share: users, videos, comments and messages as Redis and the
//! near-cache hold them (a record plus its counters), and the media URLs built from them. It sits
//! below the cache, the near-cache and the API, so none of them imports another for its types.

use crate::store::{CommentRecord, MessageRecord, UserCounters, UserRecord};
use serde::{Deserialize, Serialize};

/// A user as cached: profile plus counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserData {
    pub id: i64,
    pub name: String,
    pub avatar: String,
    pub background_image: String,
    pub signature: String,
    pub follow_count: i64,
    pub follower_count: i64,
    pub total_favorited: i64,
    pub work_count: i64,
    pub favorite_count: i64,
}

/// A video as cached: data plus counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VideoData {
    pub id: i64,
    pub author_id: i64,
    pub title: String,
    pub desc: String,
    pub play: String,
    pub cover: String,
    pub favorite_count: i64,
    pub comment_count: i64,
    pub play_count: i64,
}

/// A comment as cached.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommentData {
    pub id: i64,
    pub user_id: i64,
    pub video_id: i64,
    pub content: String,
    pub reply_id: i64,
    pub created_ms: i64,
}

impl UserData {
    /// A user from its durable record, counters and number of videos.
    pub fn from_record(u: &UserRecord, c: &UserCounters, work_count: i64) -> Self {
        UserData {
            id: u.id,
            name: u.name.clone(),
            avatar: u.avatar.clone(),
            background_image: u.background_image.clone(),
            signature: u.signature.clone(),
            follow_count: c.follow_count,
            follower_count: c.follower_count,
            total_favorited: c.total_favorited,
            work_count,
            favorite_count: c.favorite_count,
        }
    }
}

impl From<&CommentRecord> for CommentData {
    fn from(c: &CommentRecord) -> Self {
        CommentData {
            id: c.id,
            user_id: c.user_id,
            video_id: c.video_id,
            content: c.content.clone(),
            reply_id: c.reply_id,
            created_ms: c.created_ms,
        }
    }
}

/// A chat message as cached (a member of the conversation zset).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageData {
    pub id: i64,
    pub from: i64,
    pub to: i64,
    pub content: String,
}

impl From<&MessageRecord> for MessageData {
    fn from(m: &MessageRecord) -> Self {
        MessageData {
            id: m.id,
            from: m.from_user_id,
            to: m.to_user_id,
            content: m.content.clone(),
        }
    }
}

/// Builds absolute media URLs from the public base URL.
#[derive(Debug, Clone)]
pub struct Urls {
    /// e.g. `http://192.168.1.5:8080`, no trailing slash.
    pub base: String,
    /// Where covers are fetched: `<base>/static`, or the public base URL in front of an S3
    /// bucket (covers do not count plays, so they need not pass through the server).
    pub covers: String,
}

impl Urls {
    /// URLs for a server at `base` whose covers are served at `<base>/static`.
    pub fn new(base: String) -> Self {
        let covers = format!("{base}/static");
        Urls { base, covers }
    }

    fn is_absolute(s: &str) -> bool {
        s.starts_with("http://") || s.starts_with("https://")
    }

    /// play_url: a local file under /static/ (counted when fetched), or for a video published
    /// by URL our /play/ endpoint, which counts and redirects.
    pub fn play(&self, v: &VideoData) -> String {
        if Self::is_absolute(&v.play) {
            format!("{}/play/{}", self.base, v.id)
        } else {
            format!("{}/static/{}", self.base, v.play)
        }
    }

    pub fn cover(&self, v: &VideoData) -> String {
        if v.cover.is_empty() || Self::is_absolute(&v.cover) {
            v.cover.clone()
        } else {
            format!("{}/{}", self.covers, v.cover)
        }
    }
}

/// "MM-DD" of Unix millisecond `ms` at `offset_minutes` from UTC.
pub fn month_day(ms: i64, offset_minutes: i32) -> String {
    let days = (ms + offset_minutes as i64 * 60_000).div_euclid(86_400_000);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::month_day;

    #[test]
    fn month_day_in_a_time_zone() {
        // 2023-04-05T22:29:01Z
        assert_eq!(month_day(1_680_733_741_000, 0), "04-05");
        assert_eq!(month_day(1_680_733_741_000, 480), "04-06");
        assert_eq!(month_day(0, 0), "01-01");
        assert_eq!(month_day(951_782_400_000, 0), "02-29"); // 2000-02-29
        assert_eq!(month_day(1_735_689_599_000, 0), "12-31"); // 2024-12-31T23:59:59Z
    }
}
