//! The spill file's encoding and merge.

use super::*;

fn etag_strategy() -> impl proptest::strategy::Strategy<Value = Option<String>> {
    use proptest::prelude::*;
    prop_oneof![
        Just(None),
        Just(Some(String::new())),
        "[0-9a-f]{32}".prop_map(Some),
        "[0-9a-f]{32}".prop_map(|h| Some(format!("\"{h}\""))),
        "[0-9A-F]{32}".prop_map(Some),
        "[0-9a-f]{32}-[0-9]{1,3}".prop_map(|h| Some(format!("\"{h}\""))),
        ".{0,40}".prop_map(Some),
    ]
}

proptest::proptest! {
    /// Every row comes back as it went in, through front-coded keys that share any
    /// part (down to the middle of a multi-byte character), any size and date, and
    /// every form of ETag (an empty one reads as none, as before).
    #[test]
    fn rows_round_trip_through_the_encoding(
        mut keys in proptest::collection::vec("(docker/registry/v2/)?[a-cé/]{0,12}[0-9a-f]{0,8}", 1..60),
        sizes in proptest::collection::vec(proptest::prelude::any::<u64>(), 60),
        dates in proptest::collection::vec(proptest::prelude::any::<i64>(), 60),
        etags in proptest::collection::vec(etag_strategy(), 60),
    ) {
        keys.sort();
        let (mut out, mut prev) = (Vec::new(), Vec::new());
        for (i, k) in keys.iter().enumerate() {
            encode(&mut out, &mut prev, k, sizes[i], dates[i], etags[i].as_deref());
        }
        let (mut r, mut prev) = (&out[..], Vec::new());
        for (i, k) in keys.iter().enumerate() {
            let e = decode_from(&mut r, &mut prev).unwrap().unwrap();
            proptest::prop_assert_eq!(&e.key, k);
            proptest::prop_assert_eq!((e.size, e.modified), (sizes[i], dates[i]));
            proptest::prop_assert_eq!(e.etag, etags[i].clone().filter(|e| !e.is_empty()));
        }
        proptest::prop_assert!(decode_from(&mut r, &mut prev).unwrap().is_none());
    }
}

#[test]
fn runs_merge_sorted_and_the_last_row_of_a_key_wins() {
    let mut b = Builder::new().unwrap();
    // Force several runs and blocks: spill by hand between pushes.
    for round in 0..3i64 {
        for i in (0..12000u64).rev() {
            // A long ETag: rows big enough to fill several blocks.
            b.push(&format!("k/{i:06}"), i, round, Some(&"e".repeat(80)))
                .unwrap();
        }
        b.spill().unwrap();
    }
    b.push("k/000007", 99, 9, None).unwrap();
    let s = b.finish().unwrap();
    assert_eq!(s.len(), 12000);
    assert!(s.index.len() > 3, "several blocks");
    let mut c = s.seek("k/000005").unwrap();
    let mut keys = Vec::new();
    while let Some(e) = c.peek() {
        keys.push((e.key.to_owned(), e.size, e.modified));
        c.advance().unwrap();
    }
    assert_eq!(keys.len(), 11995);
    assert_eq!(keys[0], ("k/000005".into(), 5, 2));
    assert_eq!(keys[2], ("k/000007".into(), 99, 9));
    assert!(keys.windows(2).all(|w| w[0].0 < w[1].0));
    let mut c = s.seek("k/").unwrap();
    c.skip_to("k/011999").unwrap();
    assert_eq!(c.peek().unwrap().key, "k/011999");
    c.advance().unwrap();
    assert!(c.peek().is_none());
    assert!(s.seek("l").unwrap().peek().is_none());
}

/// Past [`MAX_RUNS`] runs the runs so far are merged into one, and the result is what a
/// single merge would give: every key once, with its last pushed row.
#[test]
fn past_the_most_runs_the_runs_become_one_and_the_last_row_still_wins() {
    let mut b = Builder::new().unwrap();
    let mut want = std::collections::BTreeMap::new();
    // Written only before the runs become one: the merge into one keeps the later row.
    for round in [0i64, 10] {
        b.push("old/x", 0, round, None).unwrap();
        b.spill().unwrap();
    }
    want.insert("old/x".to_string(), 10);
    for round in 0..(MAX_RUNS as i64 + 40) {
        for i in 0..4i64 {
            let k = (round * 3 + i) % 50;
            let key = format!("k/{k:03}");
            b.push(
                &key,
                k as u64,
                round,
                Some("\"0123456789abcdef0123456789abcdef\""),
            )
            .unwrap();
            want.insert(key, round);
        }
        b.spill().unwrap();
        assert!(b.runs.len() < MAX_RUNS, "{} runs open", b.runs.len());
    }
    let s = b.finish().unwrap();
    let (file, peak) = s.disk_bytes();
    assert!(
        file > 0 && peak > file,
        "the runs and the file: {file} / {peak}"
    );
    let mut c = s.seek("").unwrap();
    let mut got = std::collections::BTreeMap::new();
    while let Some(e) = c.peek() {
        if e.key != "old/x" {
            assert_eq!(e.etag, Some("\"0123456789abcdef0123456789abcdef\""));
        }
        got.insert(e.key.to_owned(), e.modified);
        c.advance().unwrap();
    }
    assert_eq!(got, want);
}

/// The chunk's budget starts at [`CHUNK_BYTES`] and grows with what was spilled.
#[test]
fn the_chunk_budget_grows_with_the_report() {
    let mut b = Builder::new().unwrap();
    assert_eq!(b.budget(), CHUNK_BYTES);
    b.gathered = 128 * CHUNK_BYTES as u64 * 3;
    assert_eq!(b.budget(), 3 * CHUNK_BYTES);
    b.gathered = u64::MAX;
    assert_eq!(b.budget(), 1 << 30);
}

/// Within one chunk, of a key pushed many times among others the last push wins (the sort
/// is not stable; the tie is broken by the place), with no run written.
#[test]
fn in_one_chunk_the_last_push_of_a_key_wins() {
    let mut b = Builder::new().unwrap();
    for i in 0..150i64 {
        if i % 3 == 0 {
            b.push("k/dup", i as u64, i, None).unwrap();
        }
        b.push(&format!("k/{:03}", (i * 37) % 150), 0, i, None)
            .unwrap();
    }
    assert!(b.runs.is_empty());
    let s = b.finish().unwrap();
    assert_eq!(s.len(), 151);
    let c = s.seek("k/dup").unwrap();
    let e = c.peek().unwrap();
    assert_eq!((e.key, e.size, e.modified), ("k/dup", 147, 147));
}

/// Pushing past the budget writes runs by itself, and nothing is lost at the chunks'
/// edges: every key once, in order, with its row.
#[test]
fn pushing_past_the_budget_spills_and_loses_no_row() {
    let mut b = Builder::new().unwrap();
    let n = 3 * CHUNK_BYTES / 100;
    let key = |i: usize| {
        format!(
            "docker/registry/v2/blobs/sha256/{:02x}/{:064x}/data",
            i % 256,
            i
        )
    };
    for i in 0..n {
        b.push(&key(i), i as u64, -(i as i64), None).unwrap();
    }
    assert!(b.runs.len() >= 2, "{} runs", b.runs.len());
    let s = b.finish().unwrap();
    assert_eq!(s.len(), n);
    let mut want: Vec<(String, usize)> = (0..n).map(|i| (key(i), i)).collect();
    want.sort();
    let mut c = s.seek("").unwrap();
    for (k, i) in want {
        let e = c.peek().unwrap();
        assert_eq!(
            (e.key, e.size, e.modified),
            (k.as_str(), i as u64, -(i as i64))
        );
        c.advance().unwrap();
    }
    assert!(c.peek().is_none());
}
