//! The storage's filesystem and "days until full": its free bytes divided by the blob
//! store's growth per day, fitted (least squares) over the last 30 days of the history.
//!
//! ```
//! use stowage_model::series::HistorySeries;
//! use stowage_model::time::Timestamp;
//! let h = HistorySeries {
//!     times: vec![Timestamp::from_secs(0), Timestamp::from_secs(86_400)],
//!     blob_bytes: vec![1000, 2000],
//!     repositories: vec![],
//! };
//! let c = stowage_report::capacity::Capacity::new(10_000, 5_000, Some(&h));
//! assert_eq!(c.days_until_full, Some(5.0));
//! ```

use serde::{Deserialize, Serialize};
use stowage_model::series::HistorySeries;

/// The filesystem holding the storage.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Capacity {
    pub size_bytes: u64,
    pub free_bytes: u64,
    /// Blob store growth per day over the last 30 days of history (None: under two
    /// snapshots in that window).
    pub growth_bytes_per_day: Option<f64>,
    /// `free_bytes / growth` when the store grows; None when it does not, or is unknown.
    pub days_until_full: Option<f64>,
}

/// The window the growth is fitted over.
const WINDOW_SECS: i64 = 30 * 86_400;

impl Capacity {
    pub fn new(size_bytes: u64, free_bytes: u64, history: Option<&HistorySeries>) -> Capacity {
        let growth = history.and_then(growth_per_day);
        Capacity {
            size_bytes,
            free_bytes,
            growth_bytes_per_day: growth,
            days_until_full: growth
                .filter(|g| *g > 0.0)
                .map(|g| ((free_bytes as f64 / g) * 10.0).round() / 10.0),
        }
    }
}

/// Least-squares slope of the blob bytes over the last [`WINDOW_SECS`], per day.
fn growth_per_day(h: &HistorySeries) -> Option<f64> {
    let last = h.times.last()?.secs();
    let pts: Vec<(f64, f64)> = h
        .times
        .iter()
        .zip(&h.blob_bytes)
        .filter(|(t, _)| last - t.secs() <= WINDOW_SECS)
        .map(|(t, b)| ((t.secs() - last) as f64 / 86_400.0, *b as f64))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let (mx, my) = pts
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (sxy, sxx) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stowage_model::time::Timestamp;

    #[test]
    fn shrinking_or_flat_is_never_full() {
        let h = HistorySeries {
            times: (0..5).map(|d| Timestamp::from_secs(d * 86_400)).collect(),
            blob_bytes: vec![5, 5, 5, 5, 5],
            repositories: vec![],
        };
        assert_eq!(Capacity::new(100, 50, Some(&h)).days_until_full, None);
        assert_eq!(Capacity::new(100, 50, None).days_until_full, None);
        // Only the last 30 days count: an old jump does not.
        let h = HistorySeries {
            times: vec![
                Timestamp::from_secs(0),
                Timestamp::from_secs(100 * 86_400),
                Timestamp::from_secs(110 * 86_400),
            ],
            blob_bytes: vec![0, 1_000_000, 1_000_100],
            repositories: vec![],
        };
        assert_eq!(Capacity::new(100, 50, Some(&h)).days_until_full, Some(5.0));
    }
}
