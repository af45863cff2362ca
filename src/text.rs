//! What user-written text we accept: names, titles, comments and messages are shown to other
//! people, so none may carry control characters (but a line break in multi-line text), bidi
//! overrides that reorder what others see, or be made of invisible characters only.

use crate::error::AppError;

/// Bidi embedding, override and isolate controls, and the directional marks.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters that render as nothing: zero-width spaces and joiners, the word joiner and
/// invisible operators, the BOM, the soft hyphen, the Hangul fillers and variation selectors.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(c,
            '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}'
            | '\u{180E}'
            | '\u{FE00}'..='\u{FE0F}'
        )
        || is_bidi_control(c)
}

/// Checks text shown to others: `what` names it in the error; `multiline` allows `\n`.
/// Returns the text trimmed of surrounding white space; `min`/`max` count characters.
pub fn check(
    what: &str,
    s: &str,
    min: usize,
    max: usize,
    multiline: bool,
) -> Result<String, AppError> {
    let s = s.trim();
    let n = s.chars().count();
    if n < min || n > max {
        return Err(AppError::param(if min > 0 {
            format!("{what} must be {min} to {max} characters")
        } else {
            format!("{what} must be at most {max} characters")
        }));
    }
    if s.chars()
        .any(|c| c.is_control() && !(multiline && c == '\n'))
    {
        return Err(AppError::param(format!(
            "{what} must not contain control characters"
        )));
    }
    if s.chars().any(is_bidi_control) {
        return Err(AppError::param(format!(
            "{what} must not contain bidirectional control characters"
        )));
    }
    if n > 0 && s.chars().all(is_invisible) {
        return Err(AppError::param(format!(
            "{what} must contain visible characters"
        )));
    }
    Ok(s.to_string())
}

/// Checks a username: as [`check`], and no invisible characters anywhere in it, so that two
/// names that look the same are the same name.
pub fn check_name(what: &str, s: &str, min: usize, max: usize) -> Result<String, AppError> {
    let s = check(what, s, min, max, false)?;
    if s.chars().any(|c| is_invisible(c) && c != ' ') {
        return Err(AppError::param(format!(
            "{what} must not contain invisible characters"
        )));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_passes_trimmed() {
        assert_eq!(
            check("t", "  你好 world ", 1, 20, false).unwrap(),
            "你好 world"
        );
        assert_eq!(check("t", "a\nb", 1, 20, true).unwrap(), "a\nb");
        assert_eq!(check("t", "", 0, 20, false).unwrap(), "");
        assert_eq!(check("t", "👍🏽", 1, 20, false).unwrap(), "👍🏽");
        assert_eq!(check_name("n", "ann lee", 1, 20).unwrap(), "ann lee");
    }

    #[test]
    fn hidden_or_misleading_text_is_refused() {
        for bad in ["a\u{0}b", "a\u{7}", "a\rb", "a\u{1b}[31m"] {
            assert!(check("t", bad, 1, 20, true).is_err(), "{bad:?}");
        }
        assert!(check("t", "a\nb", 1, 20, false).is_err());
        assert!(check("t", "evil\u{202E}gnp.exe", 1, 30, false).is_err());
        assert!(check("t", "\u{200B}\u{200B}", 1, 20, false).is_err());
        assert!(check("t", "\u{3164}", 1, 20, false).is_err());
        assert!(check_name("n", "ad\u{200B}min", 1, 20).is_err());
        assert!(check_name("n", "\u{2066}x", 1, 20).is_err());
        assert!(check("t", "abc", 1, 2, false).is_err());
    }
}
