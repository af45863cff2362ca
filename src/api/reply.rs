//! The JSON objects of the contract (`User`, `Video`), the success envelope, and the date format
//! of comments.

use crate::error::EnvelopeCode;
use crate::model::UserData;
use ntex::util::Bytes;
use ntex::web::HttpResponse;
use ntex_bytes::{StorageExt, StorageVTable};
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
        .body(body_bytes(body));
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

/// Closes a body begun with [`ok_open`] and sends it, without copying it (see [`body_bytes`]).
pub fn ok_close(mut body: Vec<u8>) -> HttpResponse {
    body.push(b'}');
    let resp = HttpResponse::Ok()
        .content_type("application/json")
        .body(body_bytes(body));
    resp.extensions_mut().insert(EnvelopeCode(0));
    resp
}

/// A finished body as ntex's `Bytes`, without copying it. ntex's `From<Vec<u8>>` copies the
/// bytes into storage of its own (a second allocation and a copy of the whole body: 60 KB for a
/// favorite list); wrapped as external storage, the `Vec` itself is what ntex writes to the
/// socket (a body over 4 KiB goes out as a page of its own) and frees once written.
pub fn body_bytes(body: Vec<u8>) -> Bytes {
    if body.is_empty() {
        return Bytes::new();
    }
    Bytes::from_ext(VecBody(body))
}

/// A body `Vec` boxed, so that its capacity is known when ntex drops it.
struct VecBody(Vec<u8>);

/// The data of the boxed `Vec` at `addr`.
unsafe fn vec_body_ptr(addr: *const u8, _len: usize) -> *const u8 {
    // SAFETY: `addr` is the `Box<Vec<u8>>` made by `create`, alive until `vec_body_drop`.
    unsafe { (*addr.cast::<Vec<u8>>()).as_ptr() }
}

fn vec_body_len(_addr: *const u8, len: usize) -> usize {
    len
}

/// No second handle: a clone copies the bytes (none is made on the way to the socket).
fn vec_body_clone(_addr: *const u8, _len: usize) -> Option<(*const u8, usize)> {
    None
}

unsafe fn vec_body_drop(addr: *const u8, _len: usize) {
    // SAFETY: ntex calls `drop` exactly once for the pair `create` returned.
    drop(unsafe { Box::from_raw(addr.cast::<Vec<u8>>().cast_mut()) });
}

static VEC_BODY: StorageVTable =
    StorageVTable::new(vec_body_ptr, vec_body_len, vec_body_clone, vec_body_drop);

// SAFETY: the pair is a leaked `Box<Vec<u8>>` and the `Vec`'s length. Its bytes are never
// changed or moved while boxed (the `Vec` is not touched but through `as_ptr`), and
// `vec_body_drop` frees the box once, as `StorageExt` requires. `Vec<u8>` is `Send + Sync`.
unsafe impl StorageExt for VecBody {
    fn create(self) -> (*const u8, usize, &'static StorageVTable) {
        let len = self.0.len();
        (Box::into_raw(Box::new(self.0)).cast::<u8>(), len, &VEC_BODY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_handed_over_without_a_copy() {
        let body: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let at = body.as_ptr();
        let expected = body.clone();
        let bytes = body_bytes(body);
        assert_eq!(bytes.as_ptr(), at, "the Vec's own bytes are sent");
        assert_eq!(&bytes[..], &expected[..]);

        // ntex's writer takes the whole body, or what a partial write left of it.
        let mut rest = bytes.clone();
        assert_eq!(&rest[..], &expected[..]);
        rest.advance_to(65_000);
        assert_eq!(&rest[..], &expected[65_000..]);
        let head = bytes.slice(..10);
        assert_eq!(&head[..], &expected[..10]);
        drop(bytes);
        assert_eq!(
            &rest[..],
            &expected[65_000..],
            "copies outlive the original"
        );
    }

    #[test]
    fn small_and_empty_bodies() {
        assert!(body_bytes(Vec::new()).is_empty());
        let b = body_bytes(b"{}".to_vec());
        assert_eq!(&b[..], b"{}");
        let r = ok_close(ok_open(0));
        assert_eq!(r.status(), ntex::http::StatusCode::OK);
    }
}
