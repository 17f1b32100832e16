//! The keep-newest-per-repository floor: which top-level images are "the N newest".
//!
//! Times are whole seconds, and a registry's pushes often land within the same second (the
//! real-registry fixture does, on a fast machine), so ties are common and must be broken by a
//! rule that does not depend on scan order, the machine or the run. The rule (documented in
//! `docs/retention.md` and the policy spec) ranks images by:
//!
//! 1. time, newest first (by the policy's time source);
//! 2. tagged before untagged (a tag is a statement that someone wants the image; an untagged
//!    image of the same second is more likely a build by-product);
//! 3. the smallest tag name of the image, in byte order (tagged images only);
//! 4. the digest, in byte order of its string form (`sha256:...`).
//!
//! The first N in that order are protected.

use std::cmp::Ordering;

use stowage_model::digest::Digest;
use stowage_model::inventory::BlobId;
use stowage_model::time::Timestamp;

/// One image as the floor ranks it.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    pub id: BlobId,
    pub time: Timestamp,
    /// The smallest tag name on the image, `None` when untagged.
    pub first_tag: Option<&'a str>,
    pub digest: Digest,
}

/// The floor's order: "newer" first (see the module documentation).
pub fn newest_first(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    b.time
        .cmp(&a.time)
        .then_with(|| match (a.first_tag, b.first_tag) {
            (Some(x), Some(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.digest.to_string().cmp(&b.digest.to_string()))
}

/// The floor's protections for one repository of floor `n`: each top-level image given as
/// (id, time by the policy's time source, smallest tag name), with the reason to record.
/// An image whose time is unknown cannot be ranked, so it is kept too (fail closed) without
/// taking a slot.
pub fn protect<'a>(
    units: impl Iterator<Item = (BlobId, Option<Timestamp>, Option<&'a str>)>,
    n: usize,
    digest: impl Fn(BlobId) -> Digest,
) -> Vec<(BlobId, String)> {
    let mut out = Vec::new();
    let mut ranked = Vec::new();
    for (id, time, first_tag) in units {
        match time {
            Some(time) => ranked.push(Candidate {
                id,
                time,
                first_tag,
                digest: digest(id),
            }),
            None => out.push((
                id,
                "protection/keep_newest_per_repository(time unknown)".to_string(),
            )),
        }
    }
    for id in newest(ranked, n) {
        out.push((id, format!("protection/keep_newest_per_repository({n})")));
    }
    out
}

/// The ids of the `n` newest candidates, in the floor's order.
pub fn newest(mut candidates: Vec<Candidate<'_>>, n: usize) -> Vec<BlobId> {
    candidates.sort_by(newest_first);
    candidates.into_iter().take(n).map(|c| c.id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn cand(id: u32, secs: i64, tag: Option<&'static str>, c: char) -> Candidate<'static> {
        Candidate {
            id,
            time: Timestamp::from_secs(secs),
            first_tag: tag,
            digest: d(c),
        }
    }

    #[test]
    fn keep_newest_tie_prefers_tagged_then_tag_name_then_digest() {
        // All in the same second: the tagged images come first, by tag name, then the
        // untagged ones by digest; input order never matters.
        let all = vec![
            cand(1, 100, None, 'a'),
            cand(2, 100, Some("b"), 'f'),
            cand(3, 100, Some("a"), 'e'),
            cand(4, 100, None, '0'),
            cand(5, 99, Some("0"), '1'),
        ];
        let mut rev = all.clone();
        rev.reverse();
        assert_eq!(newest(all.clone(), 5), vec![3, 2, 4, 1, 5]);
        assert_eq!(newest(rev, 5), newest(all.clone(), 5));
        // A newer time beats every tie-break.
        let mut newer = all;
        newer.push(cand(6, 101, None, 'f'));
        assert_eq!(newest(newer, 1), vec![6]);
    }
}
