//! The one error type of the API, its stable numeric codes, and its rendering into the
//! `{status_code, status_msg}` envelope.
//!
//! Every `/douyin/` response is HTTP 200 with `Content-Type: application/json`; failures carry a
//! non-zero `status_code` from the table below (also in the README). Internal details (Redis or
//! store error text) are logged, never shown to the client.

use ntex::http::StatusCode;
use ntex::web::{HttpRequest, HttpResponse, WebResponseError};
use std::fmt;

/// Every failure the API can report. Codes are stable: clients may switch on them.
#[derive(Debug)]
pub enum AppError {
    /// 10001: a parameter is missing, malformed or out of range.
    InvalidParam(String),
    /// 10002: the request needs a token and has none.
    Unauthenticated,
    /// 10003: the token is malformed, forged or expired.
    InvalidToken,
    /// 10004: the username is taken.
    UserExists,
    /// 10005: unknown username or wrong password.
    WrongCredentials,
    /// 10006: no such user.
    UserNotFound,
    /// 10007: no such video.
    VideoNotFound,
    /// 10008: the upload or body is larger than allowed.
    PayloadTooLarge(u64),
    /// 10009: the upload is not a video we can serve.
    InvalidMedia(String),
    /// 10010: no such endpoint.
    RouteNotFound,
    /// 10011: the caller may not do this.
    Forbidden(String),
    /// 10012: a dependency (Redis, the durable store) is down or timing out.
    Unavailable(String),
    /// 10013: anything else; details are logged only.
    Internal(String),
    /// 10014: no such comment (on this video).
    CommentNotFound,
    /// 10015: the request body arrived too slowly or stalled.
    BodyTimeout,
    /// 10016: too many requests (a rate limit, or uploads at capacity); retry after the
    /// given number of seconds.
    TooManyRequests(u64),
}

impl AppError {
    /// The stable numeric code sent as `status_code`.
    pub fn code(&self) -> i32 {
        match self {
            AppError::InvalidParam(_) => 10001,
            AppError::Unauthenticated => 10002,
            AppError::InvalidToken => 10003,
            AppError::UserExists => 10004,
            AppError::WrongCredentials => 10005,
            AppError::UserNotFound => 10006,
            AppError::VideoNotFound => 10007,
            AppError::PayloadTooLarge(_) => 10008,
            AppError::InvalidMedia(_) => 10009,
            AppError::RouteNotFound => 10010,
            AppError::Forbidden(_) => 10011,
            AppError::Unavailable(_) => 10012,
            AppError::Internal(_) => 10013,
            AppError::CommentNotFound => 10014,
            AppError::BodyTimeout => 10015,
            AppError::TooManyRequests(_) => 10016,
        }
    }

    /// The message sent as `status_msg`: safe to show to users.
    pub fn message(&self) -> String {
        match self {
            AppError::InvalidParam(m) => m.clone(),
            AppError::Unauthenticated => "login required: pass a token".into(),
            AppError::InvalidToken => "invalid or expired token, please log in again".into(),
            AppError::UserExists => "username already exists".into(),
            AppError::WrongCredentials => "wrong username or password".into(),
            AppError::UserNotFound => "user not found".into(),
            AppError::VideoNotFound => "video not found".into(),
            AppError::PayloadTooLarge(limit) => {
                format!("upload too large: the limit is {limit} bytes")
            }
            AppError::InvalidMedia(m) => m.clone(),
            AppError::RouteNotFound => "no such endpoint".into(),
            AppError::Forbidden(m) => m.clone(),
            AppError::Unavailable(_) => "service temporarily unavailable, try again".into(),
            AppError::Internal(_) => "internal error".into(),
            AppError::CommentNotFound => "comment not found on this video".into(),
            AppError::BodyTimeout => {
                "the request body arrived too slowly or stalled; send it again".into()
            }
            AppError::TooManyRequests(secs) => {
                format!("too many requests: try again in {secs} seconds")
            }
        }
    }

    pub fn param(msg: impl Into<String>) -> Self {
        AppError::InvalidParam(msg.into())
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Unavailable(d) | AppError::Internal(d) => {
                write!(f, "{} ({})", self.message(), d)
            }
            _ => f.write_str(&self.message()),
        }
    }
}

impl std::error::Error for AppError {}

impl From<fred::error::Error> for AppError {
    fn from(e: fred::error::Error) -> Self {
        use fred::error::ErrorKind::*;
        match e.kind() {
            IO | Timeout | Canceled | Cluster | Backpressure | Routing => {
                AppError::Unavailable(format!("redis: {e}"))
            }
            _ => AppError::Internal(format!("redis: {e}")),
        }
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(m) => {
                AppError::Unavailable(format!("store: {m}"))
            }
            crate::store::StoreError::Corrupt(m) => AppError::Internal(format!("store: {m}")),
        }
    }
}

/// Renders the envelope body for `code`/`msg`, with register/login's `user_id`/`token` when asked.
pub fn envelope(code: i32, msg: &str, auth_fields: bool) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Env<'a> {
        status_code: i32,
        status_msg: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<&'a str>,
    }
    let env = Env {
        status_code: code,
        status_msg: msg,
        user_id: auth_fields.then_some(0),
        token: auth_fields.then_some(""),
    };
    simd_json::to_vec(&env).unwrap_or_default()
}

/// Envelope responses carry the app status code here so the request log can print it.
#[derive(Clone, Copy, Debug)]
pub struct EnvelopeCode(pub i32);

impl WebResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        StatusCode::OK
    }

    fn error_response(&self, req: &HttpRequest) -> HttpResponse {
        match self {
            AppError::Unavailable(d) => {
                tracing::warn!(error = %d, path = req.path(), "dependency unavailable")
            }
            AppError::Internal(d) => {
                tracing::error!(error = %d, path = req.path(), "internal error")
            }
            _ => {}
        }
        let path = req.path().trim_end_matches('/');
        let auth = path.ends_with("/user/register") || path.ends_with("/user/login");
        let resp = HttpResponse::Ok()
            .content_type("application/json")
            .body(envelope(self.code(), &self.message(), auth));
        resp.extensions_mut().insert(EnvelopeCode(self.code()));
        resp
    }
}
