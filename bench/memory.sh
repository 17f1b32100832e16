#!/usr/bin/env bash
# Peak memory (not a test): peak resident set of stowage's main commands on one generated tree,
# per blob. The issue's goal is `inventory` at most 150 bytes per blob.
#
#   bench/memory.sh [BLOBS] [SEED]        default: 100000 blobs, seed 1
#   SIZE_SCALE=0.001 bench/memory.sh 1000000    (1M blobs in ~5.5 GB of files, ~30 GB of blocks)
#
# Peak RSS is GNU time's %M: everything resident (binary, stacks, allocator overhead), not only
# the heap. The cache state does not change it; the first run on a new tree is slow (cold).
# Trees are generated once under bench/out/ (or $BENCH_DIR), named as bench/report.sh names them.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
BLOBS=${1:-100000}
SEED=${2:-1}
OUT=${BENCH_DIR:-bench/out}
SCALE=${SIZE_SCALE:-}
command -v /usr/bin/time >/dev/null || { echo "bench: GNU time not found (apt-get install time)" >&2; exit 2; }
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_tree
blobs=$(find "$TREE/docker/registry/v2/blobs" -name data | wc -l)
echo "== $TREE: $blobs blobs; $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB" >&2
echo "| command | peak RSS | per blob | output |"
echo "|---|---:|---:|---:|"
for cmd in "inventory --format ndjson" "du --format json" "gc --grace 0s --format json" \
  "gc --delete-untagged --grace 0s --format json"; do
  # shellcheck disable=SC2086
  kb=$(/usr/bin/time -f '%M' "$S" --storage "$TREE" --no-progress $cmd 2>&1 >"$OUT/memory-out" | tail -1)
  bytes=$(stat -c %s "$OUT/memory-out")
  python3 -c "import sys; kb,b,o=map(int,sys.argv[1:4]); print(f'| \`stowage {sys.argv[4]}\` | {kb:,} kB ({kb/1024:.1f} MiB) | {kb*1024/b:.0f} B | {o/1e6:.1f} MB |')" \
    "$kb" "$blobs" "$bytes" "$cmd"
done
rm -f "$OUT/memory-out"
