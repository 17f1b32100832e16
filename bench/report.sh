#!/usr/bin/env bash
# Benchmark of the HTML report (not a test): on one generated tree, how long `stowage report`
# takes, how big the page and the CSV are, and how long headless chromium takes to draw it.
#
#   bench/report.sh [BLOBS] [SEED] [TOP]      default: 100000 blobs, seed 1, --top 1000
#
# SIZE_SCALE=0.01 generates smaller files (stowage-gen --size-scale; the page size and drawing
# time do not depend on blob sizes, the disk does: 1M blobs at the default scale take ~26 GB).
#
# Needs chromium, node and testkit/browser/node_modules (scripts/install-test-deps.sh) and
# GNU time. Trees are generated once under bench/out/ (or $BENCH_DIR) and reused (bench/run.sh
# makes the same trees).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
BLOBS=${1:-100000}
SEED=${2:-1}
TOP=${3:-1000}
OUT=${BENCH_DIR:-bench/out}
SCALE=${SIZE_SCALE:-}
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_tree
NOW=2026-12-01T00:00:00Z
HTML="$OUT/report-$BLOBS-$SEED${SCALE:+-scale$SCALE}.html"
T0=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$OUT/report-rss" "$S" --storage "$TREE" --now "$NOW" --no-progress report --html "$HTML" --top "$TOP" 2>/dev/null || true
T1=$(date +%s.%N)
CSV="${HTML%.html}-blobs.csv"
python3 - "$TREE" "$HTML" "$CSV" "$T0" "$T1" "$(cat "$OUT/report-rss")" <<'PY'
import json, os, re, sys
tree, html, csv, t0, t1, rss = sys.argv[1:]
page = open(html, encoding="utf-8").read()
data = json.loads(re.search(r'id="stowage-data">(.*?)</script>', page, re.S).group(1))
s = data["summary"]
print(f"| blobs | repositories | tags | report time | peak RSS | page | of which data | CSV |")
print(f"|---:|---:|---:|---:|---:|---:|---:|---:|")
print(f"| {s['blobs']} | {s['repositories']} | {s['tags']} | {float(t1)-float(t0):.1f} s | {int(rss)/1024:.0f} MiB "
      f"| {os.path.getsize(html)/1e6:.2f} MB | {len(json.dumps(data))/1e6:.2f} MB | {os.path.getsize(csv)/1e6:.1f} MB |")
print(f"data parts (MB): " + ", ".join(f"{k} {len(json.dumps(v))/1e6:.2f}" for k, v in data.items() if len(json.dumps(v)) > 10000))
ages = data.get("image_ages") or {}
print("bytes by image age: " + ", ".join(f"{b['label']} {b['images']} images {int(b['bytes'])/2**20:.0f} MiB" for b in ages.get("buckets", [])))
PY
echo "== headless chromium, time until the treemap and the blob table are drawn" >&2
node testkit/browser/open-time.mjs "$HTML" 5
