//! The one grammar of durations and byte sizes, for command-line flags and policy files alike
//! (they had drifted: only the policy copy accepted `PB`/`PiB`).
//!
//! - Durations are humantime's: `30d`, `24h`, `2w`, `90min`, `1h 30m` (`m` is minutes; a
//!   month is `30d` or humantime's `1M`, 30.44 days). In seconds.
//! - Sizes are a number (a fraction allowed) and an optional unit, case-insensitive:
//!   decimal `B`, `K`/`KB`, `M`/`MB`, `G`/`GB`, `T`/`TB`, `P`/`PB`; binary `KiB` .. `PiB`.
//!   In bytes, rounded; a size beyond `u64` is refused, not wrapped.
//!
//! ```
//! use stowage_model::units::{parse_bytes, parse_duration};
//! assert_eq!(parse_duration("2w").unwrap(), 14 * 86_400);
//! assert_eq!(parse_bytes("1.5 GiB").unwrap(), 3 << 29);
//! ```

/// A duration or size that does not parse; the message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    #[error("{text:?} is not a duration ({why}); write e.g. 30d, 24h, 2w")]
    Duration { text: String, why: String },
    #[error("{text:?} is not a size; write e.g. 500, 10MiB, 2TB")]
    Size { text: String },
    #[error(
        "{text:?}: unknown size unit {unit:?} (B, KB, KiB, MB, MiB, GB, GiB, TB, TiB, PB, PiB)"
    )]
    SizeUnit { text: String, unit: String },
    #[error("{text:?} is too large")]
    TooLarge { text: String },
}

/// A duration in seconds.
pub fn parse_duration(text: &str) -> Result<i64, UnitError> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| UnitError::Duration {
        text: text.into(),
        why: e.to_string(),
    })?;
    i64::try_from(d.as_secs()).map_err(|_| UnitError::TooLarge { text: text.into() })
}

/// A byte size in bytes.
pub fn parse_bytes(text: &str) -> Result<u64, UnitError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| UnitError::Size { text: text.into() })?;
    const KI: f64 = 1024.0;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "p" | "pb" => 1e15,
        "kib" => KI,
        "mib" => KI * KI,
        "gib" => KI * KI * KI,
        "tib" => KI * KI * KI * KI,
        "pib" => KI * KI * KI * KI * KI,
        other => {
            return Err(UnitError::SizeUnit {
                text: text.into(),
                unit: other.into(),
            });
        }
    };
    let bytes = (n * mult).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(UnitError::TooLarge { text: text.into() });
    }
    Ok(bytes as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_duration("1h 30m").unwrap(), 5_400);
        assert_eq!(parse_duration(" 2w ").unwrap(), 14 * 86_400);
        assert!(matches!(
            parse_duration("soon"),
            Err(UnitError::Duration { .. })
        ));
    }

    #[test]
    fn sizes_in_every_unit_flags_and_policies_accept() {
        for (text, bytes) in [
            ("500", 500u64),
            ("10MiB", 10 << 20),
            ("1.5 GB", 1_500_000_000),
            ("2TiB", 2 << 40),
            ("3PB", 3_000_000_000_000_000),
            ("1pib", 1 << 50),
            ("20k", 20_000),
        ] {
            assert_eq!(parse_bytes(text).unwrap(), bytes, "{text}");
        }
        assert!(matches!(parse_bytes("ten"), Err(UnitError::Size { .. })));
        assert!(matches!(
            parse_bytes("5 parsecs"),
            Err(UnitError::SizeUnit { .. })
        ));
        assert!(matches!(
            parse_bytes("99999999999PiB"),
            Err(UnitError::TooLarge { .. })
        ));
        assert!(parse_bytes("-5").is_err());
    }
}
