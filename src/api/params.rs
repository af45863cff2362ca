//! Request parameters, read from wherever the client put them.
//!
//! The real client and the tools around it send the same parameter in the query string, in an
//! `x-www-form-urlencoded` body (also on GET), as multipart fields, or in a JSON body, with numbers
//! as `123`, `"123"` or `1.680703713e+09`. [`Params`] merges all of them (body first, then query)
//! so handlers ask for a name and a type and get a clear error when it is missing or malformed.

use crate::api::body::{self, BodyClock, BodyTiming};
use crate::config::LimitsConfig;
use crate::error::AppError;
use ntex::http::header;
use ntex::web::HttpRequest;
use ntex_multipart::{Multipart, MultipartError};

/// Largest text field of a multipart body.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;
/// The answer to a multipart body we cannot parse (the parser's own words name its internals).
const MULTIPART_MALFORMED: &str = "malformed multipart body";
/// The answer to a multipart body that ended before its closing boundary.
pub const MULTIPART_INCOMPLETE: &str =
    "malformed multipart body: it ended before its closing boundary";

/// Parameters of one request.
#[derive(Debug, Default)]
pub struct Params {
    /// Body parameters: lookups try them first.
    pairs: Vec<(String, String)>,
    /// Query-string parameters.
    query: Vec<(String, String)>,
    bearer: Option<String>,
}

/// What the body was, for endpoints that care (publish streams its file elsewhere).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum BodyKind {
    None,
    Form,
    Json,
    Multipart,
    Other,
}

pub fn body_kind(req: &HttpRequest) -> BodyKind {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("application/x-www-form-urlencoded") {
        BodyKind::Form
    } else if ct.starts_with("application/json") || ct.ends_with("+json") {
        BodyKind::Json
    } else if ct.starts_with("multipart/form-data") {
        BodyKind::Multipart
    } else if ct.is_empty() {
        BodyKind::None
    } else {
        BodyKind::Other
    }
}

impl Params {
    /// Query parameters and the bearer token only; the body is added with the `add_*` methods.
    pub fn from_query(req: &HttpRequest) -> Self {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Params {
            pairs: Vec::new(),
            query: parse_urlencoded(req.query_string().as_bytes()),
            bearer,
        }
    }

    /// Reads every parameter of the request: query, then the body by its content type, within
    /// the size, depth, field and time limits.
    pub async fn read(
        req: &HttpRequest,
        payload: ntex::web::types::Payload,
        max_body: usize,
        limits: &LimitsConfig,
    ) -> Result<Self, AppError> {
        let mut p = Self::from_query(req);
        let timing = BodyTiming::from_limits(limits);
        let depth = limits.json_max_depth;
        match body_kind(req) {
            BodyKind::Form => {
                let body = body::read_all(payload, max_body, timing).await?;
                p.pairs = parse_urlencoded(&body);
            }
            BodyKind::Json => {
                let body = body::read_all(payload, max_body, timing).await?;
                p.pairs = parse_json(body.to_vec(), depth)?;
            }
            BodyKind::Multipart => {
                let (payload, clock) = body::watch(payload, timing);
                let mut mp = Multipart::new(req.headers(), payload);
                let mut fields = 0;
                while let Some(field) = clock.next(&mut mp, MULTIPART_INCOMPLETE).await? {
                    let field = field.map_err(multipart_error)?;
                    fields += 1;
                    if fields > limits.multipart_max_fields {
                        return Err(AppError::param(format!(
                            "too many multipart fields: at most {}",
                            limits.multipart_max_fields
                        )));
                    }
                    let name = field.name().unwrap_or("").to_string();
                    let value =
                        read_text_field(field, MAX_FIELD_BYTES.min(max_body), &clock).await?;
                    p.pairs.push((name, value));
                }
            }
            BodyKind::None | BodyKind::Other => {
                // Some clients send urlencoded (or JSON) bodies without a content type.
                if payload_len(req) > 0 {
                    let body = body::read_all(payload, max_body, timing).await?;
                    if body.first() == Some(&b'{') {
                        p.pairs = parse_json(body.to_vec(), depth)?;
                    } else {
                        p.pairs = parse_urlencoded(&body);
                    }
                }
            }
        }
        Ok(p)
    }

    /// Adds a body parameter (used by the streaming multipart reader of publish).
    pub fn push(&mut self, name: String, value: String) {
        self.pairs.push((name, value));
    }

    /// The first non-empty value of `name`, body before query.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .chain(self.query.iter())
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, name: &str) -> Result<&str, AppError> {
        self.get(name)
            .ok_or_else(|| AppError::param(format!("missing parameter: {name}")))
    }

    /// An integer parameter in any common notation: `123`, `"123"`, `1.2e+09` (exact integers only).
    pub fn i64(&self, name: &str) -> Result<Option<i64>, AppError> {
        match self.get(name) {
            None => Ok(None),
            Some(s) => parse_int(s).map(Some).ok_or_else(|| {
                AppError::param(format!(
                    "parameter {name} must be an integer, got {:?}",
                    truncate(s)
                ))
            }),
        }
    }

    pub fn require_i64(&self, name: &str) -> Result<i64, AppError> {
        self.i64(name)?
            .ok_or_else(|| AppError::param(format!("missing parameter: {name}")))
    }

    /// `action_type`: true for 1 (do), false for 2 (undo).
    pub fn action_type(&self) -> Result<bool, AppError> {
        match self.require_i64("action_type")? {
            1 => Ok(true),
            2 => Ok(false),
            _ => Err(AppError::param("action_type must be 1 or 2")),
        }
    }

    /// The token: the `token` parameter, or `Authorization: Bearer`.
    pub fn token(&self) -> Option<&str> {
        self.get("token").or(self.bearer.as_deref())
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn payload_len(req: &HttpRequest) -> u64 {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Parses an integer written as an integer, a quoted integer, or a float/scientific number
/// denoting an exact integer below 2^53.
pub fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim().trim_matches('"').trim();
    if let Ok(v) = s.parse::<i64>() {
        return Some(v);
    }
    let f: f64 = s.parse().ok()?;
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        Some(f as i64)
    } else {
        None
    }
}

/// What to tell a client whose multipart body the parser refused, in our words (the parser's
/// own name its internals).
pub fn multipart_error(e: MultipartError) -> AppError {
    use MultipartError as E;
    AppError::param(match e {
        E::Incomplete => MULTIPART_INCOMPLETE,
        E::NoContentType | E::ParseContentType | E::IncompatibleContentType | E::Boundary => {
            "malformed multipart body: its Content-Type needs a boundary"
        }
        E::ContentDispositionMissing | E::ContentDispositionNameMissing => {
            "malformed multipart body: every part needs a Content-Disposition with a name"
        }
        E::Nested => "nested multipart bodies are not supported",
        E::Payload(_) => "the request body could not be read",
        _ => MULTIPART_MALFORMED,
    })
}

/// A multipart text field of at most `max` bytes, as UTF-8.
pub async fn read_text_field(
    mut field: ntex_multipart::Field,
    max: usize,
    clock: &BodyClock,
) -> Result<String, AppError> {
    let mut buf = Vec::new();
    while let Some(chunk) = clock.next(&mut field, MULTIPART_INCOMPLETE).await? {
        let chunk = chunk.map_err(multipart_error)?;
        if buf.len() + chunk.len() > max {
            return Err(AppError::PayloadTooLarge(max as u64));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| AppError::param("multipart text fields must be UTF-8"))
}

pub fn parse_urlencoded(s: &[u8]) -> Vec<(String, String)> {
    s.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |b| *b == b'=');
            let k = decode_component(it.next().unwrap_or_default());
            let v = decode_component(it.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

fn decode_component(s: &[u8]) -> String {
    // most components (ids, tokens, times) need no decoding: one copy, no scans of the copies
    if !s.iter().any(|b| matches!(b, b'%' | b'+')) {
        return match std::str::from_utf8(s) {
            Ok(t) => t.to_owned(),
            Err(_) => String::from_utf8_lossy(s).into_owned(),
        };
    }
    let plus: Vec<u8> = s
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    String::from_utf8_lossy(&urlencoding::decode_binary(&plus)).into_owned()
}

/// The deepest nesting of arrays and objects in `body`, read as JSON text (brackets inside
/// strings do not count); it stops counting past `limit`.
fn json_depth(body: &[u8], limit: usize) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_str, mut escaped) = (false, false);
    for &b in body {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
                if max > limit {
                    return max;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Flattens a top-level JSON object into name/value strings (numbers keep their text form).
/// Bodies nested deeper than `max_depth` are refused before parsing: the parser and the value
/// it builds are recursive, and a deep enough body would overflow a worker's stack.
pub fn parse_json(mut body: Vec<u8>, max_depth: usize) -> Result<Vec<(String, String)>, AppError> {
    use simd_json::prelude::*;
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Vec::new());
    }
    if json_depth(&body, max_depth) > max_depth {
        return Err(AppError::param(format!(
            "the JSON body is nested too deeply: at most {max_depth} levels"
        )));
    }
    let v: simd_json::OwnedValue = simd_json::to_owned_value(&mut body)
        .map_err(|_| AppError::param("malformed JSON body: expected an object of parameters"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| AppError::param("the JSON body must be an object"))?;
    let mut out = Vec::with_capacity(obj.len());
    for (k, v) in obj.iter() {
        let s = match v {
            simd_json::OwnedValue::String(s) => s.clone(),
            simd_json::OwnedValue::Static(simd_json::StaticNode::Null) => continue,
            simd_json::OwnedValue::Static(n) => match n {
                simd_json::StaticNode::I64(i) => i.to_string(),
                simd_json::StaticNode::U64(u) => u.to_string(),
                simd_json::StaticNode::F64(f) => {
                    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                        (*f as i64).to_string()
                    } else {
                        f.to_string()
                    }
                }
                simd_json::StaticNode::Bool(b) => b.to_string(),
                simd_json::StaticNode::Null => continue,
            },
            other => other.encode(),
        };
        out.push((k.to_string(), s));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_in_any_notation() {
        assert_eq!(parse_int("123"), Some(123));
        assert_eq!(parse_int("\"123\""), Some(123));
        assert_eq!(parse_int(" -5 "), Some(-5));
        assert_eq!(parse_int("1.680703713e+09"), Some(1_680_703_713));
        assert_eq!(parse_int("1680703713000.0"), Some(1_680_703_713_000));
        assert_eq!(parse_int("1.5"), None);
        assert_eq!(parse_int("abc"), None);
        assert_eq!(parse_int("1e300"), None);
        assert_eq!(parse_int(""), None);
    }

    #[test]
    fn urlencoded_decodes_plus_and_percent_and_utf8() {
        let p = parse_urlencoded(b"a=1&title=hello+world&name=%E4%BD%A0%E5%A5%BD&empty=&flag");
        assert_eq!(p[0], ("a".into(), "1".into()));
        assert_eq!(p[1], ("title".into(), "hello world".into()));
        assert_eq!(p[2], ("name".into(), "你好".into()));
        assert_eq!(p[3], ("empty".into(), "".into()));
        assert_eq!(p[4], ("flag".into(), "".into()));
        // raw UTF-8 and invalid bytes, with and without anything to decode
        let p = parse_urlencoded("a=你好".as_bytes());
        assert_eq!(p[0], ("a".into(), "你好".into()));
        let p = parse_urlencoded(b"b=x\xffy&c=\xff%20");
        assert_eq!(p[0], ("b".into(), "x\u{fffd}y".into()));
        assert_eq!(p[1], ("c".into(), "\u{fffd} ".into()));
    }

    #[test]
    fn json_numbers_strings_and_floats() {
        let p = parse_json(
            br#"{"a":1,"b":"2","c":1.680703713e+09,"d":true,"e":null,"f":[1]}"#.to_vec(),
            32,
        )
        .unwrap();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("a").as_deref(), Some("1"));
        assert_eq!(get("b").as_deref(), Some("2"));
        assert_eq!(get("c").as_deref(), Some("1680703713"));
        assert_eq!(get("d").as_deref(), Some("true"));
        assert_eq!(get("e"), None);
        assert_eq!(get("f").as_deref(), Some("[1]"));
        assert!(parse_json(b"[1,2]".to_vec(), 32).is_err());
        assert!(parse_json(b"{oops".to_vec(), 32).is_err());
    }

    #[test]
    fn deep_json_is_refused_before_parsing() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let e = parse_json(deep.into_bytes(), 32).unwrap_err();
        assert!(e.message().contains("nested too deeply"), "{}", e.message());
        // brackets inside strings are text, not nesting
        let p = parse_json(br#"{"t":"[[[[[[[[[[\"{{{{{{{{"}"#.to_vec(), 3).unwrap();
        assert_eq!(p[0].1, "[[[[[[[[[[\"{{{{{{{{");
        assert!(parse_json(br#"{"a":[[[1]]]}"#.to_vec(), 4).is_ok());
        assert!(parse_json(br#"{"a":[[[1]]]}"#.to_vec(), 3).is_err());
    }

    #[test]
    fn malformed_json_says_so_without_parser_internals() {
        let e = parse_json(b"{\"a\":".to_vec(), 32).unwrap_err();
        assert_eq!(
            e.message(),
            "malformed JSON body: expected an object of parameters"
        );
    }
}

/// Random inputs for the parsers (the project's own fuzzing, deterministic and quick): none
/// may panic, and what they accept keeps its invariants.
#[cfg(test)]
mod fuzz {
    use super::*;

    /// xorshift64*: a reproducible stream of pseudo-random numbers.
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Bytes that look like JSON, urlencoded text or garbage, in random proportions.
    fn input(r: &mut Rng) -> Vec<u8> {
        const PIECES: &[&[u8]] = &[
            b"{",
            b"}",
            b"[",
            b"]",
            b"\"",
            b":",
            b",",
            b"\\",
            b"\\u",
            b"d83d",
            b"1",
            b"-",
            b"e+",
            b".5",
            b"null",
            b"true",
            b"\"token\"",
            b"\"video_id\"",
            b"=",
            b"&",
            b"%",
            b"%E4",
            b"+",
            b"\xff",
            b"\x00",
            b" ",
            b"\n",
        ];
        let n = r.below(64);
        let mut out = Vec::new();
        for _ in 0..n {
            if r.below(4) == 0 {
                out.push(r.next() as u8);
            } else {
                out.extend_from_slice(PIECES[r.below(PIECES.len())]);
            }
        }
        out
    }

    #[test]
    fn parsers_take_any_bytes() {
        let mut r = Rng(0x5eed_1234_abcd_ef01);
        for _ in 0..30_000 {
            let b = input(&mut r);
            let depth = json_depth(&b, 8);
            match parse_json(b.clone(), 8) {
                Ok(pairs) => {
                    assert!(depth <= 8);
                    for (k, v) in pairs {
                        let _ = (k.len(), v.len());
                    }
                }
                Err(e) => assert_eq!(e.code(), 10001),
            }
            let _ = parse_urlencoded(&b);
            let _ = parse_int(&String::from_utf8_lossy(&b));
        }
    }

    #[test]
    fn deep_nesting_of_any_shape_is_measured_not_parsed() {
        let mut r = Rng(42);
        for _ in 0..200 {
            let depth = 33 + r.below(50_000);
            let mut b = b"{\"a\":".to_vec();
            for _ in 0..depth {
                b.extend_from_slice(if r.below(2) == 0 { b"[" } else { b"{\"k\":" });
            }
            let e = parse_json(b, 32).unwrap_err();
            assert!(e.message().contains("nested too deeply"));
        }
    }
}
