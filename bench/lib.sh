# Sourced by the bench scripts (not run): builds the release binaries and generates the tree
# once. In: BLOBS, SEED, OUT, SCALE (may be empty), GEN_PROFILE (stowage-gen --profile; empty
# or `realistic` for the default history; not PROFILE, which bench/migrate.sh uses for the
# cargo profile). Sets S, G (the binaries) and TREE.
# Trees are named by size, seed, scale and profile (a non-default profile only), so every
# script reuses the others' trees and two profiles' trees are never mixed up.
bench_tree() {
  local prof=${GEN_PROFILE:-}
  [ "$prof" = realistic ] && prof=
  local name="$BLOBS-$SEED${SCALE:+-scale$SCALE}${prof:+-$prof}"
  TREE="$OUT/tree-$name"
  mkdir -p "$OUT"
  cargo build --release --quiet -p stowage-cli -p stowage-gen
  S=${CARGO_TARGET_DIR:-target}/release/stowage
  G=${CARGO_TARGET_DIR:-target}/release/stowage-gen
  if [ ! -d "$TREE/docker" ]; then
    echo "== generating $BLOBS blobs (seed $SEED${prof:+, profile $prof}) into $TREE" >&2
    # No never-tagged repositories: registry 2.8 `garbage-collect --delete-untagged` aborts on
    # them, which would leave nothing to compare with.
    "$G" --out "$TREE" --blobs "$BLOBS" --seed "$SEED" --no-digest-only-repos \
      ${SCALE:+--size-scale "$SCALE"} ${prof:+--profile "$prof"} >"$OUT/gen-$name.json"
  fi
}
