//! Timestamps as nanoseconds since the Unix epoch, UTC.
//!
//! The pure crates never read the clock: "now" is always a parameter. Storage gives file
//! modification times (and birth times where the filesystem records them), object stores give
//! `LastModified`; all become a [`Timestamp`]. JSON output is RFC 3339 in UTC.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);

    pub fn from_system_time(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(d.as_nanos().min(i64::MAX as u128) as i64),
            Err(e) => Timestamp(-(e.duration().as_nanos().min(i64::MAX as u128) as i64)),
        }
    }

    pub fn from_secs(s: i64) -> Timestamp {
        Timestamp(s.saturating_mul(1_000_000_000))
    }

    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// Parse RFC 3339 (`2026-11-22T11:55:23Z`, as the registry writes `startedat`).
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let ts: jiff::Timestamp = s.trim().parse().ok()?;
        Some(Timestamp(ts.as_nanosecond().try_into().ok()?))
    }

    fn to_jiff(self) -> jiff::Timestamp {
        jiff::Timestamp::from_nanosecond(self.0 as i128).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// RFC 3339 in UTC, e.g. `2026-11-22T11:55:23Z`, with as many fractional digits as the
    /// time has (blob and link times are whole seconds, [`Secs`]; others, such as tag
    /// `current` links, carry nanoseconds; plans must round-trip them exactly, because apply
    /// compares them with the live storage).
    pub fn rfc3339(self) -> String {
        self.to_jiff().to_string()
    }

    /// `YYYY-MM-DD HH:MM` in the given time zone (for human tables).
    pub fn human(self, tz: &jiff::tz::TimeZone) -> String {
        self.to_jiff()
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    }

    /// Signed duration from `self` to `later`, in seconds.
    pub fn seconds_until(self, later: Timestamp) -> i64 {
        ((later.0 as i128 - self.0 as i128).div_euclid(1_000_000_000))
            .clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    pub fn saturating_sub_secs(self, secs: i64) -> Timestamp {
        Timestamp(self.0.saturating_sub(secs.saturating_mul(1_000_000_000)))
    }
}

/// A file time to the whole second in 4 bytes: 1970-01-01 to 2106-02-07.
///
/// The per-blob and per-link tables of a scan keep one or two times per row; at a million
/// blobs and two million links, 4 bytes instead of 8 per time is 12 MB (bench/README.md,
/// "Memory"). Registry files are written in the registry's lifetime, far inside that range;
/// times outside it are clamped (and `u32::MAX` is reserved for "none"). Times kept this way
/// are whole seconds everywhere they show (JSON, plans), so the re-checks of `apply`, which
/// compare a plan's times with a new scan's, compare like with like; a check "written after
/// T" must treat a time in T's own second as possibly after it ([`Secs::maybe_after`]).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Secs(u32);

impl Secs {
    /// No time (where an optional time is kept).
    pub const NONE: Secs = Secs(u32::MAX);

    /// Not stat-ed (yet): a scan that stats only what a plan may name
    /// (`ScanOptions::stat_candidates_only`) leaves the rest without a time. It reads as the
    /// latest time there is (2106), so every "written after T?" answers yes and every
    /// grace period holds such a file back: a plan made before its stat can only keep
    /// more, never delete more.
    pub const UNSTATED: Secs = Secs(u32::MAX - 1);

    /// The second `t` falls in, clamped to the range.
    pub fn new(t: Timestamp) -> Secs {
        Secs(t.secs().clamp(0, u32::MAX as i64 - 2) as u32)
    }

    pub fn from_opt(t: Option<Timestamp>) -> Secs {
        t.map_or(Secs::NONE, Secs::new)
    }

    /// The time (the epoch for [`Secs::NONE`]).
    pub fn get(self) -> Timestamp {
        if self == Secs::NONE {
            Timestamp::EPOCH
        } else {
            Timestamp::from_secs(self.0 as i64)
        }
    }

    pub fn get_opt(self) -> Option<Timestamp> {
        (self != Secs::NONE).then(|| self.get())
    }

    /// Whether the file may have been written after `t`: its second is `t`'s or later.
    pub fn maybe_after(self, t: Timestamp) -> bool {
        self != Secs::NONE && self.0 as i64 >= t.secs()
    }
}

impl fmt::Debug for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get_opt().fmt(f)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_jiff())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {s:?}")))
    }
}

/// Render a byte count for humans with binary units (`1.5 MiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Render an age in seconds compactly (`3d`, `5h`, `12m`, `40s`).
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secs_keep_the_second_and_clamp() {
        let t = Timestamp(1_700_000_000_500_000_000);
        assert_eq!(Secs::new(t).get(), Timestamp::from_secs(1_700_000_000));
        assert_eq!(Secs::new(Timestamp(-1)).get(), Timestamp::EPOCH);
        assert_eq!(
            Secs::new(Timestamp(i64::MAX)).get(),
            Timestamp::from_secs(u32::MAX as i64 - 2)
        );
        // No real time reads as "not stat-ed"; that one is after every real time.
        assert_ne!(Secs::new(Timestamp(i64::MAX)), Secs::UNSTATED);
        assert!(Secs::UNSTATED.maybe_after(Timestamp::from_secs(u32::MAX as i64 - 2)));
        assert!(Secs::UNSTATED > Secs::new(Timestamp(i64::MAX)));
        assert_eq!(Secs::from_opt(None).get_opt(), None);
        assert_eq!(
            Secs::from_opt(Some(t)).get_opt(),
            Some(Timestamp::from_secs(1_700_000_000))
        );
        // Written in the same second as t: maybe after it; a second earlier: not.
        assert!(Secs::new(t).maybe_after(t));
        assert!(Secs::new(Timestamp::from_secs(1_700_000_000)).maybe_after(t));
        assert!(!Secs::new(Timestamp::from_secs(1_699_999_999)).maybe_after(t));
        assert!(!Secs::NONE.maybe_after(t));
    }

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-11-22T11:55:23Z").unwrap();
        assert_eq!(t.rfc3339(), "2026-11-22T11:55:23Z");
        assert_eq!(t.secs(), 1_795_348_523);
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
        let precise = Timestamp(1_795_348_523_123_456_789);
        assert_eq!(precise.rfc3339(), "2026-11-22T11:55:23.123456789Z");
        assert_eq!(Timestamp::parse_rfc3339(&precise.rfc3339()), Some(precise));
    }

    #[test]
    fn bytes_and_ages() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(262_607), "256 KiB");
        assert_eq!(human_age(90), "90s");
        assert_eq!(human_age(3 * 86400 + 5), "3d");
    }
}
