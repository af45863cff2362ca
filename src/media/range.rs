//! The HTTP `Range` header of a media request (RFC 9110 §14): one byte range, or the whole file.
//!
//! Players send a single range (`bytes=100-`, `bytes=0-1023`, `bytes=-500`). A header we cannot
//! read, another unit, or several ranges is ignored and the whole file is sent (the RFC allows
//! it); a well-formed range that starts beyond the end is answered 416.

/// What to send for a file of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200 with the whole file.
    Full,
    /// 206 with `len` (at least 1) bytes from `start`.
    Partial { start: u64, len: u64 },
    /// 416: no byte of the range lies within the file.
    Unsatisfiable,
}

/// Parses one `Range` header value against a file of `size` bytes.
pub fn parse(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(h) = header else {
        return RangeAnswer::Full;
    };
    let h = h.trim();
    let Some((unit, spec)) = h.split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    if first.is_empty() {
        // suffix range: the last N bytes
        if !digits(last) {
            return RangeAnswer::Full;
        }
        let n: u64 = last.parse().unwrap_or(0);
        if n == 0 || size == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        let len = n.min(size);
        return RangeAnswer::Partial {
            start: size - len,
            len,
        };
    }
    if !digits(first) || !(last.is_empty() || digits(last)) {
        return RangeAnswer::Full;
    }
    let start: u64 = first.parse().unwrap_or(u64::MAX);
    let end: u64 = if last.is_empty() {
        u64::MAX
    } else {
        last.parse().unwrap_or(u64::MAX)
    };
    if end < start {
        return RangeAnswer::Full;
    }
    if start >= size {
        return RangeAnswer::Unsatisfiable;
    }
    let end = end.min(size - 1);
    RangeAnswer::Partial {
        start,
        len: end - start + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::RangeAnswer::*;
    use super::*;

    #[test]
    fn ranges_players_send() {
        assert_eq!(parse(None, 1000), Full);
        assert_eq!(
            parse(Some("bytes=100-199"), 1000),
            Partial {
                start: 100,
                len: 100
            }
        );
        assert_eq!(
            parse(Some("bytes=0-"), 1000),
            Partial {
                start: 0,
                len: 1000
            }
        );
        assert_eq!(
            parse(Some("bytes=900-5000"), 1000),
            Partial {
                start: 900,
                len: 100
            }
        );
        assert_eq!(
            parse(Some("bytes=-100"), 1000),
            Partial {
                start: 900,
                len: 100
            }
        );
        assert_eq!(
            parse(Some("bytes=-5000"), 1000),
            Partial {
                start: 0,
                len: 1000
            }
        );
        assert_eq!(
            parse(Some(" Bytes = 5-5 "), 10),
            Partial { start: 5, len: 1 }
        );
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(parse(Some("bytes=1000-"), 1000), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 1000), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-10"), 0), Unsatisfiable);
    }

    #[test]
    fn malformed_or_unsupported_headers_are_ignored() {
        for h in [
            "bytes=",
            "bytes=-",
            "bytes=1-2-3",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes",
            "",
            "bytes=+1-2",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(parse(Some(h), 1000), Full, "{h:?}");
        }
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;

    #[test]
    fn any_header_gives_a_range_inside_the_file() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        const PIECES: &[&str] = &[
            "bytes",
            "=",
            "-",
            ",",
            " ",
            "0",
            "1",
            "9",
            "18446744073709551615",
            "99999999999",
            "a",
            "Bytes",
            "items",
            "\u{0}",
            "+",
            "--",
        ];
        for _ in 0..50_000 {
            let h: String = (0..next() % 8)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            let size = [0, 1, 2, 100, 1 << 40][(next() % 5) as usize];
            match parse(Some(&h), size) {
                RangeAnswer::Partial { start, len } => {
                    assert!(
                        len >= 1 && start.checked_add(len).is_some_and(|e| e <= size),
                        "{h:?} {size}"
                    );
                }
                RangeAnswer::Full | RangeAnswer::Unsatisfiable => {}
            }
        }
    }
}
