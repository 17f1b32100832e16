//! Limits on policy files, checked before the YAML parser sees the text.
//!
//! A policy file is small (a few KiB), and the YAML parser's cost is not linear on hostile
//! input: 40,000 levels of flow nesting (`[[[[...`) took 11.7 s. So a policy file is at most
//! [`MAX_POLICY_BYTES`], and a linear pre-scan refuses flow collections (`[`, `{`) nested
//! deeper than [`MAX_FLOW_DEPTH`] and block indentation deeper than [`MAX_INDENT`] columns.

/// Largest policy file: 1 MiB.
pub const MAX_POLICY_BYTES: usize = 1 << 20;
/// Deepest nesting of YAML flow collections.
pub const MAX_FLOW_DEPTH: usize = 64;
/// Deepest block indentation, in columns (a policy nests a dozen levels at most).
pub const MAX_INDENT: usize = 256;

/// Why a policy text is refused before parsing.
pub fn check(text: &str) -> Result<(), String> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(format!(
            "the policy file is {} bytes; at most {MAX_POLICY_BYTES} (1 MiB) are read",
            text.len()
        ));
    }
    for (n, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '-']).len();
        if indent > MAX_INDENT {
            return Err(format!(
                "line {}: indented {indent} columns; at most {MAX_INDENT}",
                n + 1
            ));
        }
    }
    if flow_depth(text) > MAX_FLOW_DEPTH {
        return Err(format!(
            "flow collections ([...] or {{...}}) nested more than {MAX_FLOW_DEPTH} deep"
        ));
    }
    Ok(())
}

/// Deepest nesting of `[`/`{` outside quoted strings and comments. Brackets in plain
/// scalars count too (over-counting only refuses a pathological file, never accepts one).
fn flow_depth(text: &str) -> usize {
    #[derive(PartialEq)]
    enum In {
        Plain,
        Single,
        Double,
        Comment,
    }
    let (mut st, mut d, mut max, mut prev, mut esc) = (In::Plain, 0usize, 0usize, '\n', false);
    for c in text.chars() {
        match st {
            In::Plain => match c {
                '\'' => st = In::Single,
                '"' => st = In::Double,
                '#' if prev.is_whitespace() => st = In::Comment,
                '[' | '{' => {
                    d += 1;
                    max = max.max(d);
                }
                ']' | '}' => d = d.saturating_sub(1),
                _ => {}
            },
            In::Single if c == '\'' => st = In::Plain,
            In::Double if esc => esc = false,
            In::Double if c == '\\' => esc = true,
            In::Double if c == '"' => st = In::Plain,
            In::Comment if c == '\n' => st = In::Plain,
            _ => {}
        }
        prev = c;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_limits_refuse_deep_flow_nesting_and_big_files_before_parsing() {
        let deep = format!("a: {}{}\n", "[".repeat(40_000), "]".repeat(40_000));
        assert!(check(&deep).unwrap_err().contains("nested more than 64"));
        let ok = format!("a: {}{}\n", "[".repeat(64), "]".repeat(64));
        assert!(check(&ok).is_ok());
        // Quoted and commented brackets do not count.
        let quoted = format!(
            "a: '{}' # {}\nb: \"{}\"\n",
            "[".repeat(100),
            "{".repeat(100),
            "[\\\"".repeat(100)
        );
        assert!(check(&quoted).is_ok());
        assert!(check(&"x".repeat(MAX_POLICY_BYTES + 1)).is_err());
        assert!(check(&format!("{}a: 1\n", " ".repeat(300))).is_err());
    }
}
