//! The criteria of a rule, evaluated for the items of one repository: pull windows, time
//! sources, counts and ranks per group, calendar buckets and `when` conditions, each
//! three-valued (a criterion the data cannot decide is unknown, never guessed).

use super::units::Unit;
use super::*;

/// Everything a criterion may look at: the policy, the units of every repository, the
/// times and facts the caller read.
pub(super) struct Ctx<'a, 'g> {
    pub(super) p: &'a Compiled,
    pub(super) g: &'a Graph<'g>,
    pub(super) repos: &'a [Repo<'g>],
    pub(super) now: Timestamp,
    pub(super) created: &'a HashMap<BlobId, Timestamp>,
    pub(super) built: &'a HashMap<BlobId, Timestamp>,
    pub(super) facts: &'a HashMap<BlobId, ManifestFacts>,
    /// Last pull per image, per repository.
    pub(super) pulled: &'a [HashMap<BlobId, Timestamp>],
    pub(super) pulls_begin: Option<Timestamp>,
    /// The coverage pull-based decisions relied on, named in each of their reasons
    /// (" (pull data: SOURCE, covered FROM to TO)"); empty without pull data.
    pub(super) pull_note: String,
}

impl<'g> Ctx<'_, 'g> {
    pub(super) fn inv(&self) -> &'g stowage_model::inventory::Inventory {
        self.g.inv
    }

    pub(super) fn unit(&self, it: &Item) -> &Unit {
        &self.repos[it.repo as usize].units[it.unit]
    }

    /// A unit's time by time source `ts` (for the floor and the plan's records).
    pub(super) fn unit_time(&self, ts: TimeSource, ri: usize, u: &Unit) -> Option<Timestamp> {
        let repo = &self.repos[ri];
        match ts {
            TimeSource::Pushed => Some(u.pushed),
            TimeSource::TagUpdated => u
                .tags
                .iter()
                .filter_map(|&t| repo.tags[t as usize].current.map(|c| c.modified))
                .max()
                .or(Some(u.pushed)),
            TimeSource::Created => self.created.get(&u.digest).copied(),
            TimeSource::Pulled => self.pulled[ri].get(&u.digest).copied(),
            TimeSource::Built => self.built.get(&u.digest).copied(),
        }
    }

    /// Pulled within `window` of now: true when a pull is seen in it; false only when the
    /// data covers the whole window; otherwise unknown.
    pub(super) fn pulled_within(&self, it: &Item, window: i64) -> T3 {
        let u = self.unit(it);
        match self.pulled[it.repo as usize].get(&u.digest) {
            Some(t) if t.seconds_until(self.now) < window => T3::True,
            _ => match self.pulls_begin {
                Some(b) if b <= self.now.saturating_sub_secs(window) => T3::False,
                _ => T3::Unknown,
            },
        }
    }

    pub(super) fn item_time(&self, ts: TimeSource, it: &Item) -> Option<Timestamp> {
        let u = self.unit(it);
        let repo = &self.repos[it.repo as usize];
        match (ts, it.tag) {
            (TimeSource::TagUpdated, Some(t)) => repo.tags[t as usize].current.map(|c| c.modified),
            (TimeSource::TagUpdated, None) | (TimeSource::Pushed, _) => Some(u.pushed),
            (TimeSource::Created, _) => self.created.get(&u.digest).copied(),
            (TimeSource::Pulled, _) => self.pulled[it.repo as usize].get(&u.digest).copied(),
            (TimeSource::Built, _) => self.built.get(&u.digest).copied(),
        }
    }

    pub(super) fn tag_name(&self, it: &Item) -> Option<&'g str> {
        it.tag
            .map(|t| self.repos[it.repo as usize].tags[t as usize].name.as_str())
    }

    /// `None` for items the rule's `when` filter leaves out.
    pub(super) fn eval_rule(
        &self,
        rule: &RuleC,
        items: &[Item],
        unknown: &mut u64,
    ) -> Vec<Option<T3>> {
        let included: Vec<bool> = items
            .iter()
            .map(|it| rule.when.as_ref().is_none_or(|w| self.when(w, it)))
            .collect();
        // Groups: per repository, unless the rule counts across repositories.
        let mut groups: BTreeMap<(Option<u32>, Vec<String>), Vec<usize>> = BTreeMap::new();
        for (i, it) in items.iter().enumerate() {
            if !included[i] {
                continue;
            }
            let repo = (!rule.across_repositories).then_some(it.repo);
            let key: Vec<String> = rule
                .group_by
                .iter()
                .map(|g| {
                    it.captures
                        .iter()
                        .find(|(n, _)| n == g)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                })
                .collect();
            groups.entry((repo, key)).or_default().push(i);
        }
        let mut out: Vec<Option<T3>> = vec![None; items.len()];
        for members in groups.values() {
            let times: Vec<Option<Timestamp>> = members
                .iter()
                .map(|&i| self.item_time(rule.time_source, &items[i]))
                .collect();
            let reference = match self.p.relative_to {
                RelativeTo::Now => self.now,
                RelativeTo::GroupLatest => {
                    times.iter().flatten().max().copied().unwrap_or(self.now)
                }
            };
            // Counting leaves: per leaf, per member.
            let mut counted: Vec<Vec<T3>> = vec![vec![T3::False; members.len()]; rule.counters];
            let group = Group {
                items,
                members,
                times: &times,
                reference,
            };
            self.precount(&rule.crit, rule, &group, &mut counted);
            for (k, &i) in members.iter().enumerate() {
                let mut saw_unknown_time = false;
                let r = self.eval(
                    &rule.crit,
                    &items[i],
                    times[k],
                    reference,
                    &counted,
                    k,
                    &mut saw_unknown_time,
                );
                if r == T3::Unknown && saw_unknown_time {
                    *unknown += 1;
                }
                out[i] = Some(r);
            }
        }
        out
    }

    pub(super) fn precount(&self, c: &Crit, rule: &RuleC, gr: &Group<'_>, counted: &mut [Vec<T3>]) {
        match c {
            Crit::Last(n, slot) => {
                counted[*slot] = self.rank_last(*n, rule, gr.items, gr.members, gr.times);
            }
            Crit::Calendar(buckets, slot) => {
                counted[*slot] = self.calendar(buckets, None, gr);
            }
            Crit::CalendarWithin(buckets, slot) => {
                counted[*slot] = self.calendar(buckets, Some(gr.reference), gr);
            }
            Crit::All(cs) | Crit::Any(cs) => {
                for x in cs {
                    self.precount(x, rule, gr, counted);
                }
            }
            Crit::Not(x) => self.precount(x, rule, gr, counted),
            _ => {}
        }
    }

    pub(super) fn rank_last(
        &self,
        n: u64,
        rule: &RuleC,
        items: &[Item],
        members: &[usize],
        times: &[Option<Timestamp>],
    ) -> Vec<T3> {
        let mut res = vec![T3::False; members.len()];
        // Order key per member; None = unknown.
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum K {
            T(Timestamp),
            S(semver::Version),
            N(NatKey),
        }
        let mut known: Vec<(K, usize)> = Vec::new();
        for (k, &i) in members.iter().enumerate() {
            let it = &items[i];
            let tag = self.tag_name(it);
            let sv = tag.and_then(crate::values::parse_semver);
            if rule.prerelease == Prerelease::ExcludeFromCount
                && sv.as_ref().is_some_and(|v| !v.pre.is_empty())
            {
                continue; // neither counts nor is kept by this leaf
            }
            let key = match rule.order_by {
                OrderBy::Time => times[k].map(K::T),
                OrderBy::Semver => sv.map(K::S),
                OrderBy::Natural => tag.map(|t| K::N(NatKey(t.to_string()))),
            };
            match key {
                Some(key) => known.push((key, k)),
                None => res[k] = T3::Unknown,
            }
        }
        // Newest / highest first; ties broken by tag name then digest for determinism.
        known.sort_by(|a, b| {
            b.0.cmp(&a.0).then_with(|| {
                let (ia, ib) = (&items[members[a.1]], &items[members[b.1]]);
                self.tag_name(ib)
                    .cmp(&self.tag_name(ia))
                    .then(self.unit(ia).digest.cmp(&self.unit(ib).digest))
                    .then(ia.repo.cmp(&ib.repo))
            })
        });
        let mut digests: Vec<BlobId> = Vec::new();
        for (_, k) in known {
            // One image counts once, however many tags (or repositories) it has.
            let d = self.unit(&items[members[k]]).digest;
            let rank = match digests.iter().position(|x| *x == d) {
                Some(r) => r,
                None => {
                    digests.push(d);
                    digests.len() - 1
                }
            };
            res[k] = T3::from((rank as u64) < n);
        }
        res
    }

    /// Calendar buckets: the newest item of each period, for the newest `n` periods
    /// (`calendar`), or for every period within the window of the reference time
    /// (`calendar_within`, restic's `--keep-within-daily`: `within` is `Some(reference)` and
    /// each bucket's number is the window in seconds).
    pub(super) fn calendar(
        &self,
        buckets: &[(Bucket, i64)],
        within: Option<Timestamp>,
        gr: &Group<'_>,
    ) -> Vec<T3> {
        let (items, members, times) = (gr.items, gr.members, gr.times);
        let mut res = vec![T3::False; members.len()];
        let mut order: Vec<usize> = Vec::new();
        for k in 0..members.len() {
            if times[k].is_some() {
                order.push(k);
            } else {
                res[k] = T3::Unknown;
            }
        }
        order.sort_by(|&a, &b| {
            times[b].cmp(&times[a]).then_with(|| {
                self.tag_name(&items[members[b]])
                    .cmp(&self.tag_name(&items[members[a]]))
            })
        });
        // An image counts once, as `last:` counts it: the first of its tags in time order
        // stands for it in each pass, and when it is kept every tag of it (in every
        // repository of the group) is kept, not only the one that won the period.
        let digest = |k: usize| self.unit(&items[members[k]]).digest;
        let mut kept: std::collections::BTreeSet<BlobId> = std::collections::BTreeSet::new();
        for &(b, n) in buckets {
            let mut last: Option<(i64, i64)> = None;
            let mut count = 0i64;
            let mut seen: std::collections::BTreeSet<BlobId> = std::collections::BTreeSet::new();
            for &k in &order {
                let Some(t) = times[k] else { continue };
                if !seen.insert(digest(k)) {
                    continue;
                }
                let key = bucket_key(b, t, &self.p.tz);
                if last != Some(key) {
                    let take = match within {
                        Some(reference) => t.seconds_until(reference) < n,
                        None => n == -1 || count < n,
                    };
                    if take {
                        kept.insert(digest(k));
                        count += 1;
                    }
                    last = Some(key);
                }
            }
        }
        for (k, r) in res.iter_mut().enumerate() {
            if kept.contains(&digest(k)) {
                *r = T3::True;
            }
        }
        res
    }

    pub(super) fn when(&self, w: &WhenC, it: &Item) -> bool {
        if let Some(tp) = &w.tag {
            match self.tag_name(it) {
                Some(t) if tp.matches(t) != tp.negated => {}
                _ => return false,
            }
        }
        w.capture.iter().all(|(name, pat)| {
            it.captures
                .iter()
                .find(|(n, _)| n == name)
                .is_some_and(|(_, v)| pat.matches(v) != pat.negated)
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn eval(
        &self,
        c: &Crit,
        it: &Item,
        time: Option<Timestamp>,
        reference: Timestamp,
        counted: &[Vec<T3>],
        k: usize,
        unknown_time: &mut bool,
    ) -> T3 {
        let age = |unknown_time: &mut bool| -> Option<i64> {
            match time {
                Some(t) => Some(t.seconds_until(reference)),
                None => {
                    *unknown_time = true;
                    None
                }
            }
        };
        match c {
            Crit::Last(_, slot) | Crit::Calendar(_, slot) | Crit::CalendarWithin(_, slot) => {
                let r = counted[*slot][k];
                if r == T3::Unknown && time.is_none() {
                    *unknown_time = true;
                }
                r
            }
            Crit::Within(d) => age(unknown_time).map_or(T3::Unknown, |a| T3::from(a < *d)),
            Crit::OlderThan(d) => age(unknown_time).map_or(T3::Unknown, |a| T3::from(a >= *d)),
            Crit::PulledWithin(d) => self.pulled_within(it, *d),
            Crit::NotPulledWithin(d) => self.pulled_within(it, *d).not(),
            Crit::When(w) => T3::from(self.when(w, it)),
            Crit::All(cs) => {
                let mut r = T3::True;
                for x in cs {
                    match self.eval(x, it, time, reference, counted, k, unknown_time) {
                        T3::False => return T3::False,
                        T3::Unknown => r = T3::Unknown,
                        T3::True => {}
                    }
                }
                r
            }
            Crit::Any(cs) => {
                let mut r = T3::False;
                for x in cs {
                    match self.eval(x, it, time, reference, counted, k, unknown_time) {
                        T3::True => return T3::True,
                        T3::Unknown => r = T3::Unknown,
                        T3::False => {}
                    }
                }
                r
            }
            Crit::Not(x) => self
                .eval(x, it, time, reference, counted, k, unknown_time)
                .not(),
        }
    }
}

/// One group of a rule: its members (indices into `items`), their times, the reference
/// time ages are measured from.
pub(super) struct Group<'a> {
    pub(super) items: &'a [Item],
    pub(super) members: &'a [usize],
    pub(super) times: &'a [Option<Timestamp>],
    pub(super) reference: Timestamp,
}

#[derive(PartialEq, Eq)]
pub(super) struct NatKey(String);
impl PartialOrd for NatKey {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for NatKey {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        crate::values::natural_cmp(&self.0, &o.0)
    }
}

pub(super) fn bucket_key(b: Bucket, t: Timestamp, tz: &jiff::tz::TimeZone) -> (i64, i64) {
    let ts = jiff::Timestamp::from_nanosecond(t.0 as i128).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let z = ts.to_zoned(tz.clone());
    let y = z.year() as i64;
    let m = z.month() as i64;
    let d = z.day() as i64;
    match b {
        Bucket::Hourly => (y * 10000 + m * 100 + d, z.hour() as i64),
        Bucket::Daily => (y * 10000 + m * 100 + d, 0),
        Bucket::Weekly => {
            let w = z.date().iso_week_date();
            (w.year() as i64, w.week() as i64)
        }
        Bucket::Monthly => (y, m),
        Bucket::Quarterly => (y, (m - 1) / 3),
        Bucket::Yearly => (y, 0),
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum T3 {
    True,
    False,
    Unknown,
}

impl T3 {
    pub(super) fn from(b: bool) -> T3 {
        if b { T3::True } else { T3::False }
    }
    pub(super) fn not(self) -> T3 {
        match self {
            T3::True => T3::False,
            T3::False => T3::True,
            T3::Unknown => T3::Unknown,
        }
    }
}
