#!/usr/bin/env bash
# inventory-scale.sh OBJECTS... - scale runs from a provider inventory report (issue 22).
#
# For each OBJECTS (e.g. 1000000 10000000 100000000): stowage-gen --inventory writes a
# CI-shaped registry as its bucket's S3 Inventory (about 2.75 objects per blob: links,
# tags, uploads; FORMAT=parquet for Parquet data files) plus a pack of the manifests and tag
# links a scan reads (no tree), in groups of a million objects (--shards: the generator's
# memory is one group's); then inventory, du, gc and
# gc -m run from the report (no listing at all) under /usr/bin/time: wall time and peak RSS,
# and peak RSS per blob. Nothing is asserted; the numbers go to bench/scale.md.
#
# Needs a release build: cargo build --release -p stowage-cli -p stowage-gen (BIN: another
# directory of the two binaries, e.g. a copy of an older build to compare with). COMMANDS
# picks the commands (default "inventory du gc gc-m").
# Disk: about 110 bytes of gzip'd report and the manifests' bytes per blob, under $OUT
# (default /tmp/stowage-scale), removed at the end unless KEEP=1.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${BIN:-$here/target/release}"
commands=" ${COMMANDS:-inventory du gc gc-m} "
out="${OUT:-/tmp/stowage-scale}"
now=2026-11-01T00:00:00Z
printf '| objects | blobs | report rows | command | wall (s) | peak RSS (MiB) | bytes/blob |\n|---:|---:|---:|---|---:|---:|---:|\n'
for objects in "$@"; do
  blobs=$((objects * 100 / 275))
  dir="$out/gen-$objects"
  if [ ! -f "$dir/inventory/manifest.json" ]; then
    rm -rf "$dir"; mkdir -p "$out"
    /usr/bin/time -f "gen: %e s, %M KB" "$bin/stowage-gen" --inventory --out "$dir" --blobs "$blobs" \
      --inventory-format "${FORMAT:-csv}" --shards $(( objects > 1000000 ? objects / 1000000 : 1 )) \
      >"$dir.summary.json" 2>"$dir.gen.txt" || { cat "$dir.gen.txt" >&2; exit 1; }
    tail -1 "$dir.gen.txt" >&2
  fi
  rows=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['objects'])" "$dir.summary.json")
  nblobs=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['blobs'])" "$dir.summary.json")
  run() {
    local name="$1"; shift
    /usr/bin/time -f "%e %M" -o "$out/time.txt" "$bin/stowage" --storage "$dir/inventory/reads.pack" \
      --from-inventory "$dir/inventory/manifest.json" --no-cache --no-progress --verbose --now "$now" "$@" \
      >/dev/null 2>"$out/err.txt" || { [ $? -le 1 ] || { cat "$out/err.txt" >&2; exit 1; }; }
    # The listing's disk and the scan's figures (--verbose) beside the table.
    grep -E "^(inventory report|peak memory|scanned in)" "$out/err.txt" | sed "s/^/$name: /" >&2 || true
    read -r wall kb <"$out/time.txt"
    printf '| %s | %s | %s | %s | %s | %d | %d |\n' "$objects" "$nblobs" "$rows" "$name" "$wall" \
      $((kb / 1024)) $((kb * 1024 / nblobs))
  }
  case "$commands" in *" inventory "*) run "inventory --format ndjson" inventory --format ndjson ;; esac
  case "$commands" in *" du "*) run "du" du ;; esac
  case "$commands" in *" gc "*) run "gc" gc --format json ;; esac
  case "$commands" in *" gc-m "*) run "gc -m" gc -m --format json ;; esac
done
[ "${KEEP:-0}" = 1 ] || rm -rf "$out"
