//! The near-cache's pre-rendered JSON: a `Video` or `User` object split around the viewer's
//! flag (`is_favorite`, `is_follow`), so that a page is written by copying fragments into one
//! buffer.

use crate::model::{Urls, UserData, VideoData};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

/// A cached video: its ids, and its JSON without the viewer's parts, in one allocation (its
/// data's strings are in the JSON, and nothing reads them apart: a video entry is a few small
/// allocations fewer for the bound, and for the allocator's slabs when likes and comments
/// drop and render entries again).
#[derive(Debug)]
pub struct VideoEntry {
    pub id: i64,
    pub author_id: i64,
    /// `{"id":N,"is_favorite":` (the head), then `,"play_url":...,"desc":"..."}` (the rest:
    /// everything after the author).
    json: Box<[u8]>,
    /// Where the rest starts.
    split: u32,
    pub(super) fetched: Instant,
}

/// A cached user: its data, and its JSON with `is_follow` false.
#[derive(Debug)]
pub struct UserEntry {
    pub data: UserData,
    /// `{"id":N,"is_follow":false,"name":...}`, one allocation shared with the cards of the
    /// user's videos (`pages.rs`): a long list's cards hold their author's JSON instead of a
    /// copy each.
    pub(super) json: Arc<[u8]>,
    /// Where in `json` the `is_follow` value starts.
    pub(super) follow: u32,
    pub(super) fetched: Instant,
}

impl VideoEntry {
    /// Renders `data`'s JSON fragments.
    pub fn new(data: &VideoData, urls: &Urls) -> Self {
        let (json, split) = render_video(data, urls);
        VideoEntry {
            id: data.id,
            author_id: data.author_id,
            json,
            split,
            fetched: Instant::now(),
        }
    }

    /// `{"id":N,"is_favorite":`
    pub(super) fn head(&self) -> &[u8] {
        &self.json[..self.split as usize]
    }

    /// `,"play_url":...,"desc":"..."}`: everything after the author.
    pub(super) fn rest(&self) -> &[u8] {
        &self.json[self.split as usize..]
    }

    /// The heap it holds besides itself (for the near-cache's bound).
    pub(super) fn heap(&self) -> usize {
        super::weigh::slice(&self.json)
    }
}

impl UserEntry {
    /// Renders `data`'s JSON.
    pub fn new(data: UserData) -> Self {
        let (json, follow) = render_user(&data);
        UserEntry {
            json,
            follow,
            data,
            fetched: Instant::now(),
        }
    }

    /// The length of its JSON (for sizing a buffer).
    pub fn json_len(&self) -> usize {
        self.json.len()
    }

    /// Its JSON up to its `is_follow` value, and after it.
    pub(super) fn around_flag(&self) -> (&[u8], &[u8]) {
        around_flag(&self.json, self.follow as usize)
    }
}

/// `json` rendered with a flag false at `at`: what comes before the flag's value, and after.
pub(super) fn around_flag(json: &[u8], at: usize) -> (&[u8], &[u8]) {
    (&json[..at], &json[at + FALSE..])
}

fn json_str(buf: &mut Vec<u8>, s: &str) {
    // serialising a &str cannot fail
    let _ = simd_json::to_writer(&mut *buf, s);
}

/// `{"id":N,"is_favorite":` then `,"play_url":..,"cover_url":..,"favorite_count":..,
/// "comment_count":..,"play_count":..,"title":..,"desc":..}`, and where the second part starts.
fn render_video(v: &VideoData, urls: &Urls) -> (Box<[u8]>, u32) {
    let mut b = Vec::with_capacity(
        200 + v.title.len() + v.desc.len() + v.play.len() + v.cover.len() + 2 * urls.base.len(),
    );
    let _ = write!(b, "{{\"id\":{},\"is_favorite\":", v.id);
    let split = b.len() as u32;
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
    (b.into_boxed_slice(), split)
}

/// `{"id":N,"is_follow":false,"name":..,...,"favorite_count":..}`, and where its
/// `is_follow` value starts.
fn render_user(u: &UserData) -> (Arc<[u8]>, u32) {
    let mut b = Vec::with_capacity(
        240 + u.name.len() + u.signature.len() + u.avatar.len() + u.background_image.len(),
    );
    let _ = write!(b, "{{\"id\":{},\"is_follow\":", u.id);
    let follow = b.len() as u32;
    b.extend_from_slice(b"false,\"name\":");
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
    (b.into(), follow)
}

/// The length of a flag's value as rendered before a viewer's flags are set.
pub(super) const FALSE: usize = b"false".len();

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
    let (head, rest) = u.around_flag();
    buf.extend_from_slice(head);
    let at = buf.len();
    buf.extend_from_slice(bool_json(is_follow));
    // `rest` ends with the object's closing brace
    buf.extend_from_slice(rest);
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
