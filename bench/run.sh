#!/usr/bin/env bash
# Benchmarks (not tests): stowage against a bare `find` and against the registry's own GC, on
# one generated tree, warm cache. Prints a table of times and ratios, and peak memory.
#
#   bench/run.sh [BLOBS] [SEED]        default: 100000 blobs, seed 1
#
# Needs: hyperfine, GNU time, docker-registry (scripts/install-test-deps.sh installs the
# registry; `apt-get install hyperfine time` the rest). Trees are generated once under
# bench/out/ (or $BENCH_DIR) and reused.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
BLOBS=${1:-100000}
SEED=${2:-1}
OUT=${BENCH_DIR:-bench/out}
SCALE=
for t in hyperfine /usr/bin/time docker-registry; do
  command -v "$t" >/dev/null || { echo "bench: $t not found (apt-get install hyperfine time; scripts/install-test-deps.sh)" >&2; exit 2; }
done

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_tree
ROOT="$TREE/docker/registry/v2"
CONFIG="$OUT/config-$BLOBS-$SEED.yml"
cat >"$CONFIG" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $(realpath "$TREE")
YML
echo "== tree: $(find "$ROOT" | wc -l) paths, $(find "$ROOT/blobs" -name data | wc -l) blobs, $(du -sh "$ROOT" | cut -f1)" >&2
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB" >&2

J="$OUT/hyperfine-$BLOBS-$SEED.json"
hyperfine --warmup 1 --runs "${RUNS:-3}" --export-json "$J" --style basic \
  -n find "find $ROOT -printf '%s %T@ %p\n' >/dev/null" \
  -n inventory "$S --storage $TREE --no-progress inventory --format ndjson >/dev/null" \
  -n gc "$S --storage $TREE --no-progress gc --grace 0s --format json >/dev/null" \
  -n gc-m "$S --storage $TREE --no-progress gc --delete-untagged --grace 0s --format json >/dev/null" \
  -n registry-gc "docker-registry garbage-collect --dry-run $CONFIG >/dev/null 2>&1" \
  -n registry-gc-m "docker-registry garbage-collect --dry-run --delete-untagged $CONFIG >/dev/null 2>&1" \
  >&2

rss() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1; }
RSS_INV=$(rss "$S" --storage "$TREE" --no-progress inventory --format ndjson)
RSS_GC=$(rss "$S" --storage "$TREE" --no-progress gc --grace 0s --format json)
RSS_REG=$(rss docker-registry garbage-collect --dry-run "$CONFIG")

python3 - "$J" "$BLOBS" "$RSS_INV" "$RSS_GC" "$RSS_REG" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
t = {r["command"]: r["mean"] for r in j["results"]}
blobs, rss_inv, rss_gc, rss_reg = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(f"| measure | time (mean) | ratio |")
print(f"|---|---:|---:|")
print(f"| find -printf | {t['find']:.2f} s | 1.00 |")
print(f"| stowage inventory | {t['inventory']:.2f} s | {t['inventory']/t['find']:.2f}x find |")
print(f"| stowage gc | {t['gc']:.2f} s | registry GC is {t['registry-gc']/t['gc']:.1f}x slower |")
print(f"| stowage gc --delete-untagged | {t['gc-m']:.2f} s | registry GC -m is {t['registry-gc-m']/t['gc-m']:.1f}x slower |")
print(f"| registry garbage-collect --dry-run | {t['registry-gc']:.2f} s | |")
print(f"| registry garbage-collect --dry-run -m | {t['registry-gc-m']:.2f} s | |")
print(f"| peak RSS inventory | {rss_inv/1024:.1f} MiB | {rss_inv*1024/blobs:.0f} bytes/blob |")
print(f"| peak RSS gc | {rss_gc/1024:.1f} MiB | {rss_gc*1024/blobs:.0f} bytes/blob |")
print(f"| peak RSS registry GC | {rss_reg/1024:.1f} MiB | {rss_reg*1024/blobs:.0f} bytes/blob |")
PY
