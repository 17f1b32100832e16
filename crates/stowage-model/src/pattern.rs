//! Compiling user-supplied patterns (globs and regexes, from policy files and flags) with
//! limits, so that no pattern can panic, take seconds or gigabytes to compile.
//!
//! Every pattern stowage compiles goes through [`glob`] or [`regex`]. `globset` panics
//! ("regex compilation shouldn't fail") on a glob whose translated regex exceeds the regex
//! crate's limits (200 nested braces are enough), and compiling a 50 MB glob took 4.9 GB. So:
//! a pattern is at most [`MAX_PATTERN_LEN`] bytes; braces, classes and groups nest at most
//! [`MAX_NESTING`] deep; and a glob's translated regex is compiled first under our own,
//! stricter size and nesting limits (a clean error), before `globset` compiles it.

use std::fmt;

/// Longest pattern accepted, in bytes (a repository name is at most 255 bytes and a tag 128:
/// patterns over them need far less).
pub const MAX_PATTERN_LEN: usize = 1024;
/// Deepest nesting of glob braces `{}` and classes `[]`, or regex groups `()`.
pub const MAX_NESTING: usize = 16;
/// Compiled size limit of a pattern's automaton, in bytes.
pub const MAX_COMPILED: usize = 1 << 20;

/// A pattern that cannot be used: it is named (shortened and escaped) with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    #[error("{pattern}: too long ({len} bytes; at most {MAX_PATTERN_LEN})")]
    TooLong { pattern: Shown, len: usize },
    #[error("{pattern}: nested more than {MAX_NESTING} deep")]
    TooDeep { pattern: Shown },
    #[error("{pattern}: invalid {what}: {reason}")]
    Invalid {
        pattern: Shown,
        what: &'static str,
        reason: String,
    },
}

/// A pattern as shown in an error: at most 60 characters, control and other
/// terminal-dangerous characters escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown(String);

impl Shown {
    pub fn new(text: &str) -> Shown {
        let mut s: String = text.chars().take(60).collect();
        if s.len() < text.len() {
            s.push('…');
        }
        Shown(crate::escape::escape(&s).into_owned())
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// How a glob reads. The default is `globset::Glob::new`'s on Unix: `*` crosses `/`, `\`
/// escapes, case matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobOptions {
    /// `*` does not cross `/` (`**` does).
    pub literal_separator: bool,
    /// `\` escapes the next character.
    pub backslash_escape: bool,
    pub case_insensitive: bool,
}

impl Default for GlobOptions {
    fn default() -> GlobOptions {
        GlobOptions {
            literal_separator: false,
            backslash_escape: true,
            case_insensitive: false,
        }
    }
}

fn check_len(text: &str) -> Result<(), PatternError> {
    if text.len() > MAX_PATTERN_LEN {
        return Err(PatternError::TooLong {
            pattern: Shown::new(text),
            len: text.len(),
        });
    }
    Ok(())
}

/// Deepest nesting of `open`/`close` pairs, with `\` escaping the next character.
fn depth(text: &str, pairs: &[(char, char)]) -> usize {
    let (mut d, mut max, mut esc) = (0usize, 0usize, false);
    for c in text.chars() {
        if esc {
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if pairs.iter().any(|p| p.0 == c) {
            d += 1;
            max = max.max(d);
        } else if pairs.iter().any(|p| p.1 == c) {
            d = d.saturating_sub(1);
        }
    }
    max
}

/// Compile a glob (`globset` syntax) under the limits.
pub fn glob(text: &str, o: GlobOptions) -> Result<globset::Glob, PatternError> {
    check_len(text)?;
    if depth(text, &[('{', '}'), ('[', ']')]) > MAX_NESTING {
        return Err(PatternError::TooDeep {
            pattern: Shown::new(text),
        });
    }
    let invalid = |reason: String| PatternError::Invalid {
        pattern: Shown::new(text),
        what: "glob",
        reason,
    };
    let g = globset::GlobBuilder::new(text)
        .literal_separator(o.literal_separator)
        .backslash_escape(o.backslash_escape)
        .case_insensitive(o.case_insensitive)
        .build()
        .map_err(|e| invalid(e.kind().to_string()))?;
    // What globset will compile, compiled first under stricter limits: a failure here is an
    // error message, there a panic.
    regex::bytes::RegexBuilder::new(g.regex())
        .size_limit(MAX_COMPILED)
        .dfa_size_limit(MAX_COMPILED)
        .nest_limit(4 * MAX_NESTING as u32 + 8)
        .build()
        .map_err(|e| invalid(format!("too complex ({})", first_line(&e.to_string()))))?;
    Ok(g)
}

/// Compile a regex under the limits; `anchor` wraps it as `^(?:…)$`.
pub fn regex(text: &str, anchor: bool) -> Result<regex::Regex, PatternError> {
    check_len(text)?;
    if depth(text, &[('(', ')')]) > MAX_NESTING {
        return Err(PatternError::TooDeep {
            pattern: Shown::new(text),
        });
    }
    let src = if anchor {
        format!("^(?:{text})$")
    } else {
        text.to_string()
    };
    regex::RegexBuilder::new(&src)
        .size_limit(MAX_COMPILED)
        .dfa_size_limit(MAX_COMPILED)
        .nest_limit(2 * MAX_NESTING as u32 + 4)
        .build()
        .map_err(|e| PatternError::Invalid {
            pattern: Shown::new(text),
            what: "regex",
            reason: first_line(&e.to_string()),
        })
}

fn first_line(s: &str) -> String {
    // The regex crate's messages draw the pattern over several lines; the last line says why.
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pattern_limits_nested_braces_and_huge_globs_are_clean_errors() {
        let o = GlobOptions::default();
        // 200 nested braces panicked in globset; a 1 MiB glob too.
        let nested = "{a,".repeat(200) + &"}".repeat(200);
        assert!(matches!(
            glob(&nested, o),
            Err(PatternError::TooDeep { .. })
        ));
        let nested = "{a,".repeat(400) + &"}".repeat(400);
        assert!(matches!(
            glob(&nested, o),
            Err(PatternError::TooLong { .. })
        ));
        let huge = "a".repeat(1 << 20);
        let e = glob(&huge, o).unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
        // Within the limits, the worst case is an error or a glob, never a panic.
        for p in [
            "*".repeat(MAX_PATTERN_LEN),
            "[!a]*".repeat(200),
            "{".repeat(16),
        ] {
            if let Ok(g) = glob(&p, o) {
                g.compile_matcher();
            }
        }
        assert!(
            glob(
                "team/**",
                GlobOptions {
                    literal_separator: true,
                    ..o
                }
            )
            .unwrap()
            .compile_matcher()
            .is_match("team/a/b")
        );
        assert!(regex(&"(".repeat(40), true).is_err());
        assert!(regex("v\\d+", true).unwrap().is_match("v12"));
        assert!(!regex("v\\d+", true).unwrap().is_match("xv12"));
        // Names in errors are escaped.
        let e = glob("\u{1b}[2J{", o).unwrap_err().to_string();
        assert!(!e.contains('\u{1b}'), "{e}");
    }
}
