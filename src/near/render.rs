//! The near-cache's pre-rendered JSON: a `Video` or `User` object split around the viewer's
//! flag (`is_favorite`, `is_follow`), so that a page is written by copying fragments into one
//! buffer.

use crate::model::{Urls, UserData, VideoData};
use std::io::Write;
use std::time::Instant;

/// A cached video: its data, and its JSON without the viewer's parts.
#[derive(Debug)]
pub struct VideoEntry {
    pub data: VideoData,
    /// `{"id":N,"is_favorite":`
    pub(super) head: Vec<u8>,
    /// `,"play_url":...,"desc":"..."}`: everything after the author.
    pub rest: Vec<u8>,
    pub(super) fetched: Instant,
}

/// A cached user: its data, and its JSON without `is_follow`.
#[derive(Debug)]
pub struct UserEntry {
    pub data: UserData,
    /// `{"id":N,"is_follow":`
    pub(super) head: Vec<u8>,
    /// `,"name":...}`: everything after `is_follow`.
    pub rest: Vec<u8>,
    pub(super) fetched: Instant,
}

impl VideoEntry {
    /// Renders `data`'s JSON fragments.
    pub fn new(data: VideoData, urls: &Urls) -> Self {
        VideoEntry {
            head: format!("{{\"id\":{},\"is_favorite\":", data.id).into_bytes(),
            rest: render_video_rest(&data, urls),
            data,
            fetched: Instant::now(),
        }
    }
}

impl UserEntry {
    /// Renders `data`'s JSON fragments.
    pub fn new(data: UserData) -> Self {
        UserEntry {
            head: user_head(data.id),
            rest: render_user_rest(&data),
            data,
            fetched: Instant::now(),
        }
    }
}

fn json_str(buf: &mut Vec<u8>, s: &str) {
    // serialising a &str cannot fail
    let _ = simd_json::to_writer(&mut *buf, s);
}

/// `,"play_url":..,"cover_url":..,"favorite_count":..,"comment_count":..,"play_count":..,
/// "title":..,"desc":..}`
fn render_video_rest(v: &VideoData, urls: &Urls) -> Vec<u8> {
    let mut b = Vec::with_capacity(160 + v.title.len() + v.desc.len() + 2 * urls.base.len());
    b.extend_from_slice(b",\"play_url\":");
    json_str(&mut b, &urls.play(v));
    b.extend_from_slice(b",\"cover_url\":");
    json_str(&mut b, &urls.cover(v));
    let _ = write!(
        b,
        ",\"favorite_count\":{},\"comment_count\":{},\"play_count\":{},\"title\":",
        v.favorite_count, v.comment_count, v.play_count
    );
    json_str(&mut b, &v.title);
    b.extend_from_slice(b",\"desc\":");
    json_str(&mut b, &v.desc);
    b.push(b'}');
    b
}

/// `,"name":..,"follow_count":..,...,"favorite_count":..}`
fn render_user_rest(u: &UserData) -> Vec<u8> {
    let mut b = Vec::with_capacity(200 + u.name.len() + u.signature.len() + u.avatar.len());
    b.extend_from_slice(b",\"name\":");
    json_str(&mut b, &u.name);
    let _ = write!(
        b,
        ",\"follow_count\":{},\"follower_count\":{},\"avatar\":",
        u.follow_count, u.follower_count
    );
    json_str(&mut b, &u.avatar);
    b.extend_from_slice(b",\"background_image\":");
    json_str(&mut b, &u.background_image);
    b.extend_from_slice(b",\"signature\":");
    json_str(&mut b, &u.signature);
    let _ = write!(
        b,
        ",\"total_favorited\":{},\"work_count\":{},\"favorite_count\":{}}}",
        u.total_favorited, u.work_count, u.favorite_count
    );
    b
}

fn user_head(id: i64) -> Vec<u8> {
    format!("{{\"id\":{id},\"is_follow\":").into_bytes()
}

pub(super) fn bool_json(b: bool) -> &'static [u8] {
    if b {
        b"true"
    } else {
        b"false"
    }
}

/// Appends a `User` object as seen by a viewer.
pub fn write_user(buf: &mut Vec<u8>, u: &UserEntry, is_follow: bool) {
    write_user_at(buf, u, is_follow);
}

/// Appends a `User` object as seen by a viewer; returns where its `is_follow` value starts in
/// `buf` (for renderings whose flags are set per viewer later).
pub(super) fn write_user_at(buf: &mut Vec<u8>, u: &UserEntry, is_follow: bool) -> usize {
    buf.extend_from_slice(&u.head);
    let at = buf.len();
    buf.extend_from_slice(bool_json(is_follow));
    // `rest` ends with the object's closing brace
    buf.extend_from_slice(&u.rest);
    at
}

#[cfg(test)]
mod tests {
    use super::super::test_support::user;
    use super::*;
    use crate::api::reply::User;

    #[test]
    fn rendered_user_equals_serialised_user() {
        let d = user();
        let e = UserEntry::new(d.clone());
        let mut buf = Vec::new();
        write_user(&mut buf, &e, true);
        let ours: simd_json::OwnedValue = simd_json::to_owned_value(&mut buf).unwrap();
        let mut want = simd_json::to_vec(&User::from_data(&d, true)).unwrap();
        let want: simd_json::OwnedValue = simd_json::to_owned_value(&mut want).unwrap();
        assert_eq!(ours, want);
    }
}
