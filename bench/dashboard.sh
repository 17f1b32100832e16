#!/usr/bin/env bash
# Dashboard request times (not a test): p50 and p90 of 21 requests to the JSON API of
# `stowage serve` on one generated tree, after its first scan. The issue-24 question: does a
# request still build anything (the dashboard keeps one analysed registry between requests)?
#
#   bench/dashboard.sh [BLOBS] [SEED]      default: 100000 blobs, seed 1
#   STOWAGE=/path/to/other/stowage bench/dashboard.sh    (another build, e.g. an older commit)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
BLOBS=${1:-100000}
SEED=${2:-1}
OUT=${BENCH_DIR:-bench/out}
SCALE=
# shellcheck source=bench/lib.sh
. bench/lib.sh
if [ -n "${STOWAGE:-}" ] && [ -d "$OUT/tree-$BLOBS-$SEED/docker" ]; then
  S=$STOWAGE TREE="$OUT/tree-$BLOBS-$SEED"  # another build on an existing tree: nothing to build
else
  bench_tree
  S=${STOWAGE:-$S}
fi
port=$((18000 + RANDOM % 1000))
"$S" --storage "$TREE" serve --listen "127.0.0.1:$port" --interval 24h >"$OUT/dashboard-serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/api/v1/repositories" && break
  sleep 1
done
# The repository with the most tags (the tags view's worst case).
repo=$(curl -sf "http://127.0.0.1:$port/api/v1/repositories" | python3 -c '
import json, sys
rows = [r for r in json.load(sys.stdin) if r["repository"]]
print(max(rows, key=lambda r: r["tags"])["name"])')
echo "| request | p50 | p90 |"
echo "|---|---:|---:|"
for route in "/api/v1/tags?repository=$repo" "/api/v1/blobs?offset=0&limit=50" \
  "/api/v1/blobs?offset=5000&limit=50&sort=size" "/api/v1/repositories"; do
  ts=$(for _ in $(seq 21); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port$route"; done | sort -n)
  python3 -c "import sys; v=[float(x) for x in sys.argv[2:]]; print(f'| \`{sys.argv[1]}\` | {v[10]*1000:.2f} ms | {v[18]*1000:.2f} ms |')" "$route" $ts
done
