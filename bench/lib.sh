# Sourced by the bench scripts (not run): builds the release binaries and generates the tree
# once. In: BLOBS, SEED, OUT, SCALE (may be empty). Sets S, G (the binaries) and TREE.
# Trees are named by size, seed and scale, so every script reuses the others' trees.
bench_tree() {
  TREE="$OUT/tree-$BLOBS-$SEED${SCALE:+-scale$SCALE}"
  mkdir -p "$OUT"
  cargo build --release --quiet -p stowage-cli -p stowage-gen
  S=${CARGO_TARGET_DIR:-target}/release/stowage
  G=${CARGO_TARGET_DIR:-target}/release/stowage-gen
  if [ ! -d "$TREE/docker" ]; then
    echo "== generating $BLOBS blobs (seed $SEED) into $TREE" >&2
    # No never-tagged repositories: registry 2.8 `garbage-collect --delete-untagged` aborts on
    # them, which would leave nothing to compare with.
    "$G" --out "$TREE" --blobs "$BLOBS" --seed "$SEED" --no-digest-only-repos \
      ${SCALE:+--size-scale "$SCALE"} >"$OUT/gen-$BLOBS-$SEED${SCALE:+-scale$SCALE}.json"
  fi
}
