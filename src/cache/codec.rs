//! Converting between Redis values and our types: hash fields of users, videos and comments,
//! id lists and scored pairs with and without the loaded marker, and chat messages as zset
//! members.

use crate::model::{CommentData, MessageData, UserData, VideoData};
use crate::store::{CommentRecord, UserCounters, UserRecord, VideoCounters, VideoRecord};
use fred::types::Value;
use std::collections::HashMap;

pub(super) fn hash_str(h: &mut HashMap<String, String>, k: &str) -> String {
    h.remove(k).unwrap_or_default()
}

pub(super) fn hash_i64(h: &HashMap<String, String>, k: &str) -> i64 {
    h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

pub(super) fn script_int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        _ => None,
    }
}

/// The (member, score) pairs of a zset fetched with scores (a flat member, score, ... array),
/// in their order, loaded marker "0" included if fetched.
pub(super) fn scored_pairs(items: Vec<Value>) -> Vec<(i64, i64)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(m), Some(sc)) = (it.next(), it.next()) {
        let m = m
            .as_i64()
            .or_else(|| m.as_string().and_then(|s| s.parse().ok()));
        let sc = sc
            .as_f64()
            .or_else(|| sc.as_string().and_then(|s| s.parse().ok()));
        if let (Some(m), Some(sc)) = (m, sc) {
            out.push((m, sc as i64));
        }
    }
    out
}

/// The members of a whole zset fetched without scores, without its loaded marker "0"; None
/// when the marker is missing (the zset is not loaded).
pub(super) fn ids_with_marker(items: Vec<Value>) -> Option<Vec<i64>> {
    let mut marked = false;
    let mut ids = Vec::with_capacity(items.len());
    for v in items {
        let id = match v {
            Value::Integer(i) => Some(i),
            other => other.as_string().and_then(|s| s.parse().ok()),
        };
        match id {
            Some(0) => marked = true,
            Some(id) => ids.push(id),
            None => {}
        }
    }
    marked.then_some(ids)
}

pub(super) fn ids_of(items: Vec<Value>) -> Vec<i64> {
    items
        .into_iter()
        .filter_map(|v| match v {
            Value::Integer(i) => Some(i),
            other => other.as_string().and_then(|s| s.parse().ok()),
        })
        .filter(|id| *id > 0)
        .collect()
}

pub(super) fn user_fields(u: &UserRecord, c: &UserCounters, work_count: i64) -> Vec<String> {
    vec![
        "name".into(),
        u.name.clone(),
        "avatar".into(),
        u.avatar.clone(),
        "background_image".into(),
        u.background_image.clone(),
        "signature".into(),
        u.signature.clone(),
        "follow_count".into(),
        c.follow_count.to_string(),
        "follower_count".into(),
        c.follower_count.to_string(),
        "total_favorited".into(),
        c.total_favorited.to_string(),
        "favorite_count".into(),
        c.favorite_count.to_string(),
        "work_count".into(),
        work_count.to_string(),
        "lver".into(),
        c.like_version.to_string(),
        "lbase".into(),
        c.like_version.to_string(),
        "rver".into(),
        c.received_version.to_string(),
        "fover".into(),
        c.follow_version.to_string(),
        "fobase".into(),
        c.follow_version.to_string(),
        "frver".into(),
        c.follower_version.to_string(),
        "frbase".into(),
        c.follower_version.to_string(),
    ]
}

/// A video's hash fields, `viewers` its distinct viewers so far: `pn` counts them, and `ph`
/// marks a count past [`EXACT_VIEWERS`](super::EXACT_VIEWERS), where `pn` is only its floor (see
/// [`play_count`]).
pub(super) fn video_fields(v: &VideoRecord, c: &VideoCounters, viewers: usize) -> Vec<String> {
    let mut f = vec![
        "author".into(),
        v.author_id.to_string(),
        "title".into(),
        v.title.clone(),
        "desc".into(),
        v.desc.clone(),
        "play".into(),
        v.play.clone(),
        "cover".into(),
        v.cover.clone(),
        "favorite_count".into(),
        c.favorite_count.to_string(),
        "comment_count".into(),
        c.comment_count.to_string(),
        "fver".into(),
        c.favorite_version.to_string(),
        "cver".into(),
        c.comment_version.to_string(),
        "cbase".into(),
        c.comment_version.to_string(),
        "pn".into(),
        viewers.to_string(),
    ];
    if viewers > super::EXACT_VIEWERS {
        f.extend(["ph".into(), "1".into()]);
    }
    f
}

/// A video's play count from its hash and its HyperLogLog's estimate `estimate`: exact while
/// the hash has `pn` without `ph`, else the estimate but never below the floor `pn` (a hash
/// written before `pn` existed has the estimate alone).
pub(super) fn play_count(h: &HashMap<String, String>, estimate: i64) -> i64 {
    match h.get("pn").and_then(|n| n.parse::<i64>().ok()) {
        Some(n) if h.contains_key("ph") => n.max(estimate),
        Some(n) => n,
        None => estimate,
    }
}

pub(super) fn comment_fields(c: &CommentRecord) -> Vec<String> {
    vec![
        "user".into(),
        c.user_id.to_string(),
        "video".into(),
        c.video_id.to_string(),
        "content".into(),
        c.content.clone(),
        "reply".into(),
        c.reply_id.to_string(),
        "created".into(),
        c.created_ms.to_string(),
    ]
}

pub(super) fn comment_from_hash(id: i64, mut h: HashMap<String, String>) -> CommentData {
    CommentData {
        id,
        user_id: hash_i64(&h, "user"),
        video_id: hash_i64(&h, "video"),
        reply_id: hash_i64(&h, "reply"),
        created_ms: hash_i64(&h, "created"),
        content: hash_str(&mut h, "content"),
    }
}

pub(super) fn user_from_hash(id: i64, mut h: HashMap<String, String>) -> UserData {
    UserData {
        id,
        follow_count: hash_i64(&h, "follow_count"),
        follower_count: hash_i64(&h, "follower_count"),
        total_favorited: hash_i64(&h, "total_favorited"),
        work_count: hash_i64(&h, "work_count"),
        favorite_count: hash_i64(&h, "favorite_count"),
        name: hash_str(&mut h, "name"),
        avatar: hash_str(&mut h, "avatar"),
        background_image: hash_str(&mut h, "background_image"),
        signature: hash_str(&mut h, "signature"),
    }
}

/// A video from its hash and its HyperLogLog's estimate (see [`play_count`]).
pub(super) fn video_from_hash(id: i64, mut h: HashMap<String, String>, estimate: i64) -> VideoData {
    VideoData {
        id,
        author_id: hash_i64(&h, "author"),
        favorite_count: hash_i64(&h, "favorite_count"),
        comment_count: hash_i64(&h, "comment_count"),
        play_count: play_count(&h, estimate),
        title: hash_str(&mut h, "title"),
        desc: hash_str(&mut h, "desc"),
        play: hash_str(&mut h, "play"),
        cover: hash_str(&mut h, "cover"),
    }
}

pub(super) fn message_member(m: &MessageData) -> String {
    simd_json::to_string(m).unwrap_or_default()
}

pub(super) fn parse_messages(items: Vec<Value>) -> Vec<MessageData> {
    items
        .into_iter()
        .filter_map(|v| v.into_string())
        .filter_map(|s| {
            let mut b = s.into_bytes();
            simd_json::from_slice::<MessageData>(&mut b).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::play_count;
    use std::collections::HashMap;

    fn hash(fields: &[(&str, &str)]) -> HashMap<String, String> {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_play_count_is_exact_then_an_estimate_with_a_floor() {
        // few viewers: the exact count, whatever the HyperLogLog says
        assert_eq!(play_count(&hash(&[("pn", "2")]), 1), 2);
        // past the exact range: the estimate, never below the floor
        assert_eq!(play_count(&hash(&[("pn", "129"), ("ph", "1")]), 127), 129);
        assert_eq!(play_count(&hash(&[("pn", "129"), ("ph", "1")]), 300), 300);
        // a hash from before the exact count: the estimate alone
        assert_eq!(play_count(&hash(&[("title", "t")]), 7), 7);
    }
}
