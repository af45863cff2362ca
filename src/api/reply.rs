//! The JSON objects of the contract (`User`, `Video`), the success envelope, and the date format
//! of comments.

use crate::error::EnvelopeCode;
use crate::model::UserData;
use ntex::web::HttpResponse;
use serde::Serialize;

/// The `User` object: every field of both specs.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub follow_count: i64,
    pub follower_count: i64,
    pub is_follow: bool,
    pub avatar: String,
    pub background_image: String,
    pub signature: String,
    pub total_favorited: i64,
    pub work_count: i64,
    pub favorite_count: i64,
}

impl User {
    pub fn from_data(u: &UserData, is_follow: bool) -> Self {
        User {
            id: u.id,
            name: u.name.clone(),
            follow_count: u.follow_count,
            follower_count: u.follower_count,
            is_follow,
            avatar: u.avatar.clone(),
            background_image: u.background_image.clone(),
            signature: u.signature.clone(),
            total_favorited: u.total_favorited,
            work_count: u.work_count,
            favorite_count: u.favorite_count,
        }
    }
}

/// The `Video` object: every field of both specs (`play_count` and `desc` from the extended one).
#[derive(Debug, Clone, Serialize)]
pub struct Video {
    pub id: i64,
    pub author: User,
    pub play_url: String,
    pub cover_url: String,
    pub favorite_count: i64,
    pub comment_count: i64,
    pub play_count: i64,
    pub is_favorite: bool,
    pub title: String,
    pub desc: String,
}

/// A reply with no fields beyond the envelope.
#[derive(Debug, Serialize)]
pub struct Empty {}

/// A success response: `{"status_code":0,"status_msg":"success", ...fields}`.
pub fn ok<T: Serialize>(fields: &T) -> HttpResponse {
    #[derive(Serialize)]
    struct Env<'a, T> {
        status_code: i32,
        status_msg: &'static str,
        #[serde(flatten)]
        fields: &'a T,
    }
    let body = simd_json::to_vec(&Env {
        status_code: 0,
        status_msg: "success",
        fields,
    })
    .unwrap_or_default();
    let resp = HttpResponse::Ok()
        .content_type("application/json")
        .body(body);
    resp.extensions_mut().insert(EnvelopeCode(0));
    resp
}

/// The start of a success body written by hand: `{"status_code":0,"status_msg":"success"`;
/// append `,"field":value` pairs, then pass it to [`ok_close`].
pub fn ok_open(capacity: usize) -> Vec<u8> {
    const HEAD: &[u8] = b"{\"status_code\":0,\"status_msg\":\"success\"";
    let mut body = Vec::with_capacity(HEAD.len() + capacity + 1);
    body.extend_from_slice(HEAD);
    body
}

/// Closes a body begun with [`ok_open`] and sends it. ntex copies a `Vec` once into its own
/// bytes; writing into ntex's `BytesMut` instead (no copy) measured slower on the favorite
/// list (bench/NOTES.md).
pub fn ok_close(mut body: Vec<u8>) -> HttpResponse {
    body.push(b'}');
    let resp = HttpResponse::Ok()
        .content_type("application/json")
        .body(body);
    resp.extensions_mut().insert(EnvelopeCode(0));
    resp
}
