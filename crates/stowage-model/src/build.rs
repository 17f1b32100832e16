//! When an image was built, from its config blob: the config's `created` and the dates of
//! its build steps (`history[].created`).
//!
//! Why: file dates say when a blob was written to *this* storage. After `cp -a`, rsync, a
//! restore or an object-store sync every blob was "created" on the copy day, so a registry
//! copied or migrated has no meaningful file ages. The build date travels inside the image
//! and survives any copy. It is a claim of the builder, so it is judged, never guessed: a
//! config that cannot be read, has no date, carries a reproducible-build placeholder (1970,
//! 1980) or a date after the analysis's `now` gives an [`Unknown`] with its reason.

use std::collections::HashMap;

use serde::Serialize;

use crate::inventory::BlobId;
use crate::time::Timestamp;

/// What one image config says about its build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfigDates {
    /// The config's `created`.
    pub created: Option<Timestamp>,
    /// Entries of `history` (build steps, empty layers included).
    pub steps: u32,
    /// The oldest and newest `history[].created`.
    pub first_step: Option<Timestamp>,
    pub last_step: Option<Timestamp>,
}

/// Why an image has no build date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    /// The manifest names no config blob (Docker schema 1, an empty index).
    NoConfig,
    /// The config blob is not in the storage or could not be read.
    Unreadable,
    /// The config is not a JSON object.
    NotJson,
    /// Neither `created` nor a dated build step.
    NoCreated,
    /// A date before 2013 (Docker's first release): a reproducible-build placeholder such
    /// as 1970-01-01 or 1980-01-01.
    Placeholder,
    /// A date more than a day after the analysis's `now`.
    Future,
}

impl Unknown {
    pub fn as_str(self) -> &'static str {
        match self {
            Unknown::NoConfig => "no_config",
            Unknown::Unreadable => "config_unreadable",
            Unknown::NotJson => "config_not_json",
            Unknown::NoCreated => "no_created",
            Unknown::Placeholder => "placeholder_date",
            Unknown::Future => "future_date",
        }
    }

    /// In words, for tables and `explain`.
    pub fn describe(self) -> &'static str {
        match self {
            Unknown::NoConfig => "no config blob (schema 1 or empty index)",
            Unknown::Unreadable => "config blob missing or unreadable",
            Unknown::NotJson => "config is not JSON",
            Unknown::NoCreated => "config has no created date",
            Unknown::Placeholder => "placeholder date (reproducible build)",
            Unknown::Future => "date in the future",
        }
    }
}

/// Which field a build date comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The config's `created`.
    Created,
    /// No usable `created`: the newest dated build step.
    History,
}

/// An image's build date, or why it has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildDate {
    Known { at: Timestamp, source: Source },
    Unknown(Unknown),
}

impl BuildDate {
    pub fn at(self) -> Option<Timestamp> {
        match self {
            BuildDate::Known { at, .. } => Some(at),
            BuildDate::Unknown(_) => None,
        }
    }
}

/// Dates before this are placeholders (2013-01-01T00:00:00Z; Docker appeared in March 2013).
pub const PLAUSIBLE_SINCE: Timestamp = Timestamp(1_356_998_400 * 1_000_000_000);

/// Read the dates of an image config (any JSON; only `created` and `history` are looked at).
pub fn parse_config(bytes: &[u8]) -> Result<ConfigDates, Unknown> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| Unknown::NotJson)?;
    let obj = v.as_object().ok_or(Unknown::NotJson)?;
    let date = |v: Option<&serde_json::Value>| v?.as_str().and_then(Timestamp::parse_rfc3339);
    let mut d = ConfigDates {
        created: date(obj.get("created")),
        ..ConfigDates::default()
    };
    if let Some(h) = obj.get("history").and_then(|h| h.as_array()) {
        d.steps = u32::try_from(h.len()).unwrap_or(u32::MAX);
        for at in h.iter().filter_map(|s| date(s.get("created"))) {
            d.first_step = Some(d.first_step.map_or(at, |f| f.min(at)));
            d.last_step = Some(d.last_step.map_or(at, |l| l.max(at)));
        }
    }
    Ok(d)
}

impl ConfigDates {
    /// The build date judged at `now`: `created` when plausible, else the newest plausible
    /// build step, else why neither is.
    pub fn date(&self, now: Timestamp) -> BuildDate {
        let judge = |t: Timestamp| {
            if t < PLAUSIBLE_SINCE {
                Err(Unknown::Placeholder)
            } else if t.seconds_until(now) < -86_400 {
                Err(Unknown::Future)
            } else {
                Ok(t)
            }
        };
        let mut why = Unknown::NoCreated;
        for (t, source) in [
            (self.created, Source::Created),
            (self.last_step, Source::History),
        ] {
            match t.map(judge) {
                Some(Ok(at)) => return BuildDate::Known { at, source },
                Some(Err(e)) if why == Unknown::NoCreated => why = e,
                _ => {}
            }
        }
        BuildDate::Unknown(why)
    }
}

/// The build of one manifest (for an index: its newest platform).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Build {
    pub date: BuildDate,
    /// The config's own dates (for an index: those of the platform the date is from).
    pub config: ConfigDates,
}

/// Build dates of every manifest of a scan that has a config or platform children.
#[derive(Clone, Debug, Default)]
pub struct BuildDates {
    pub by_manifest: HashMap<BlobId, Build>,
    /// When they were judged (placeholders and future dates depend on it).
    pub now: Timestamp,
}

impl BuildDates {
    pub fn get(&self, id: BlobId) -> Option<&Build> {
        self.by_manifest.get(&id)
    }

    /// The build date of manifest `id`; a manifest never looked at (not read, not a
    /// manifest) has none.
    pub fn date(&self, id: BlobId) -> BuildDate {
        self.get(id)
            .map_or(BuildDate::Unknown(Unknown::NoConfig), |b| b.date)
    }

    /// Images without a build date, by reason (sorted).
    pub fn unknown_counts(&self) -> Vec<(Unknown, u64)> {
        let mut m: std::collections::BTreeMap<Unknown, u64> = Default::default();
        for b in self.by_manifest.values() {
            if let BuildDate::Unknown(u) = b.date {
                *m.entry(u).or_default() += 1;
            }
        }
        m.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn created_wins_and_history_is_the_fallback() {
        let now = t("2026-01-01T00:00:00Z");
        let d = parse_config(br#"{"created":"2024-03-01T10:00:00Z","history":[{"created":"2024-02-01T00:00:00Z"},{"created_by":"x"},{"created":"2024-03-01T09:59:00Z"}]}"#).unwrap();
        assert_eq!(d.steps, 3);
        assert_eq!(d.first_step, Some(t("2024-02-01T00:00:00Z")));
        assert_eq!(d.last_step, Some(t("2024-03-01T09:59:00Z")));
        assert_eq!(
            d.date(now),
            BuildDate::Known {
                at: t("2024-03-01T10:00:00Z"),
                source: Source::Created
            }
        );
        let d = parse_config(br#"{"history":[{"created":"2024-02-01T00:00:00Z"}]}"#).unwrap();
        assert_eq!(
            d.date(now),
            BuildDate::Known {
                at: t("2024-02-01T00:00:00Z"),
                source: Source::History
            }
        );
    }

    #[test]
    fn placeholders_future_and_missing_dates_are_unknown_never_guessed() {
        let now = t("2026-01-01T00:00:00Z");
        let u = |j: &[u8]| parse_config(j).map(|d| d.date(now));
        assert_eq!(
            u(br#"{"created":"1970-01-01T00:00:00Z"}"#),
            Ok(BuildDate::Unknown(Unknown::Placeholder))
        );
        assert_eq!(
            u(br#"{"created":"1980-01-01T00:00:01Z","history":[{"created":"1980-01-01T00:00:01Z"}]}"#),
            Ok(BuildDate::Unknown(Unknown::Placeholder))
        );
        assert_eq!(
            u(br#"{"created":"2027-01-01T00:00:00Z"}"#),
            Ok(BuildDate::Unknown(Unknown::Future))
        );
        assert_eq!(
            u(br#"{"architecture":"amd64"}"#),
            Ok(BuildDate::Unknown(Unknown::NoCreated))
        );
        assert_eq!(
            u(br#"{"created":"yesterday"}"#),
            Ok(BuildDate::Unknown(Unknown::NoCreated))
        );
        assert_eq!(u(b"not json"), Err(Unknown::NotJson));
        assert_eq!(u(b"[1]"), Err(Unknown::NotJson));
    }
}
