//! Every policy's votes: which items it selects, which of its keep and delete rules hold for
//! each, and what its `otherwise` says; plus the floor and emptying overrides of the policies
//! that match each repository. Order never matters: votes are only collected here, and
//! decided (keep wins) in `decide.rs`.

use super::*;

/// (repo, unit, Option<tag>): an item.
pub(super) type Key = (u32, usize, Option<u32>);

/// What the policies said, item by item.
#[derive(Default)]
pub(super) struct Votes {
    pub(super) keeps: BTreeMap<Key, Vec<String>>,
    pub(super) deletes: BTreeMap<Key, Vec<String>>,
    /// Policy ids that selected the item.
    pub(super) selected: BTreeMap<Key, Vec<String>>,
    /// Keep-newest floor per repository.
    pub(super) floor: Vec<u32>,
    /// Whether a repository may lose every image (policy side; the flag is checked later).
    pub(super) allow_empty: Vec<bool>,
    /// Selected items whose time was unknown.
    pub(super) unknown_time: u64,
}

pub(super) fn vote(ctx: &Ctx<'_, '_>) -> Votes {
    let p = ctx.p;
    let inv = ctx.inv();
    let n = inv.repositories.len();
    let mut v = Votes {
        floor: vec![p.keep_newest; n],
        ..Default::default()
    };
    // Per repository: the overrides of the policies that match it. Combined so that order
    // never matters and the safer value wins: the floor is the largest asked for (the global
    // one when some matching policy does not override it); emptying is allowed only if every
    // matching policy allows it.
    let mut floor_overridden: Vec<Option<u32>> = vec![None; n];
    let mut floor_plain: Vec<bool> = vec![false; n];
    let mut allow_empty_votes: Vec<Vec<bool>> = vec![Vec::new(); n];

    for pol in &p.policies {
        // Items of every repository in scope: rules that group across repositories count
        // them together; the others group per repository.
        let mut items: Vec<Item> = Vec::new();
        for (ri, repo) in inv.repositories.iter().enumerate() {
            if !pol.scope.matches(repo.name.as_str()) {
                continue;
            }
            match pol.keep_newest {
                Some(k) => {
                    floor_overridden[ri] = Some(floor_overridden[ri].map_or(k, |m| m.max(k)))
                }
                None => floor_plain[ri] = true,
            }
            allow_empty_votes[ri].push(pol.allow_empty.unwrap_or(p.allow_empty));
            items.extend(select_items(ctx, pol, ri));
        }
        if items.is_empty() {
            continue;
        }
        let key = |it: &Item| (it.repo, it.unit, it.tag);
        for it in &items {
            v.selected.entry(key(it)).or_default().push(pol.id.clone());
        }
        for (rules, is_keep) in [(&pol.keep, true), (&pol.delete, false)] {
            for rule in rules.iter() {
                let results = ctx.eval_rule(rule, &items, &mut v.unknown_time);
                let mut name = format!("{}/{}", pol.id, rule.id);
                if rule.uses_pulls() {
                    name.push_str(&ctx.pull_note);
                }
                for (it, r) in items.iter().zip(results) {
                    match (is_keep, r) {
                        (true, Some(T3::True)) => {
                            v.keeps.entry(key(it)).or_default().push(name.clone())
                        }
                        (true, Some(T3::Unknown)) => v
                            .keeps
                            .entry(key(it))
                            .or_default()
                            .push(format!("{name} (time or order unknown: kept)")),
                        (false, Some(T3::True)) => {
                            v.deletes.entry(key(it)).or_default().push(name.clone())
                        }
                        _ => {}
                    }
                }
            }
        }
        if pol.otherwise == Otherwise::Delete {
            let own = format!("{}/", pol.id);
            let mine = |m: &BTreeMap<Key, Vec<String>>, k: &Key| {
                m.get(k)
                    .is_some_and(|k| k.iter().any(|r| r.starts_with(&own)))
            };
            for it in &items {
                let k = key(it);
                if !mine(&v.keeps, &k) && !mine(&v.deletes, &k) {
                    v.deletes
                        .entry(k)
                        .or_default()
                        .push(format!("{}/otherwise", pol.id));
                }
            }
        }
    }
    for (ri, o) in floor_overridden.iter().enumerate() {
        if let Some(k) = o {
            v.floor[ri] = if floor_plain[ri] {
                (*k).max(p.keep_newest)
            } else {
                *k
            };
        }
    }
    v.allow_empty = allow_empty_votes
        .iter()
        .map(|a| {
            if a.is_empty() {
                p.allow_empty
            } else {
                a.iter().all(|&x| x)
            }
        })
        .collect();
    v
}
