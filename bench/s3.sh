#!/usr/bin/env bash
# Object-storage benchmark (not a test): a generated tree served as S3 by s3lite.py (a small
# S3-compatible server over a directory that charges every request a fixed delay, concurrent
# requests overlapping, and answers a prefix listing in time proportional to the page, as S3
# does). Times stowage inventory / gc / gc -m over S3 against the registry's own
# `garbage-collect --dry-run` with its s3 driver on the same bucket, and counts the requests
# each one issued (s3lite's own counters) and the requests per second achieved.
#
#   bench/s3.sh [BLOBS] [DELAY_MS]            default: 2000 blobs, 20 ms per request
#   S3LITE=/path/to/s3lite.py bench/s3.sh     default: ../shared/tools/s3lite.py
#   REGISTRY_GC=0 bench/s3.sh ...             skip the (slow) registry GC runs
#
# s3lite.py is the workspace's shared tool (no license of its own, so it is referenced, not
# copied here). The tree is kept small on purpose: the registry's GC issues one LIST per
# directory and one GET per link, one at a time, so at 20 ms per request its dry run over
# 2,000 blobs takes minutes.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
BLOBS=${1:-2000}
DELAY=${2:-20}
S3LITE=${S3LITE:-$(cd .. && pwd)/shared/tools/s3lite.py}
[ -f "$S3LITE" ] || { echo "bench: $S3LITE not found (set S3LITE)" >&2; exit 2; }
OUT=${BENCH_DIR:-bench/out}
ROOT="$OUT/s3-$BLOBS"            # s3lite root: ROOT/<bucket>/<key>
TREE="$ROOT/registry/reg"        # bucket "registry", rootdirectory "reg"
mkdir -p "$OUT"
cargo build --release --quiet -p stowage-cli -p stowage-gen
S=$PWD/target/release/stowage
G=$PWD/target/release/stowage-gen
[ -d "$TREE/docker" ] || "$G" --out "$TREE" --blobs "$BLOBS" --seed 7 --no-digest-only-repos >/dev/null
KEYS=$(find "$TREE/docker" -type f | wc -l)
echo "tree: $KEYS keys, $(find "$TREE/docker/registry/v2/blobs" -name data | wc -l) blobs, $(find "$TREE/docker/registry/v2/repositories" -name _manifests | wc -l) repositories" >&2

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 "$S3LITE" "$ROOT" --port "$PORT" --delay-ms "$DELAY" >"$OUT/s3lite.log" 2>&1 &
SPID=$!
trap 'kill "$SPID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/_stats" 2>/dev/null && break; sleep 0.1; done

# Any keys do: s3lite accepts every signature. AWS_CA_BUNDLE would make the registry panic.
unset AWS_CA_BUNDLE
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
CONFIG="$OUT/s3-config.yml"
cat >"$CONFIG" <<EOF
version: 0.1
log:
  level: error
storage:
  s3:
    accesskey: bench
    secretkey: bench-secret
    region: us-east-1
    regionendpoint: http://127.0.0.1:$PORT
    bucket: registry
    rootdirectory: /reg
    secure: false
    v4auth: true
EOF

total() { # total requests so far, the /_stats call itself excluded
  curl -fsS "http://127.0.0.1:$PORT/_stats" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(v for k,v in d.items() if k!="STATS"))'
}

timed() { # NAME CMD...
  local name=$1; shift
  local r0 t0 t1 r1
  r0=$(total)
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$OUT/s3-last.err" || echo "  ($name exited $?; see $OUT/s3-last.err)" >&2
  t1=$(date +%s.%N)
  r1=$(total)
  python3 -c 'import sys
n, s = int(sys.argv[2]), float(sys.argv[3])
print(f"| {sys.argv[1]} | {s:.1f} s | {n:,} | {n/s:,.0f} |")' "$name" "$((r1 - r0))" "$(echo "$t1 - $t0" | bc)"
}

echo "s3lite: $DELAY ms per request; $KEYS keys"
echo "| command | time | requests | requests/s |"
echo "|---|---:|---:|---:|"
timed "stowage inventory" "$S" --registry-config "$CONFIG" --no-progress inventory --format ndjson
timed "stowage gc" "$S" --registry-config "$CONFIG" --no-progress gc --grace 0s --format json
timed "stowage gc --delete-untagged" "$S" --registry-config "$CONFIG" --no-progress gc --delete-untagged --grace 0s --format json
registry_gc() { docker-registry garbage-collect --dry-run "$CONFIG" >"$OUT/s3-registry.out"; }
if [ "${REGISTRY_GC:-1}" = 1 ]; then
  timed "registry garbage-collect --dry-run" registry_gc
fi
# Same blobs? stowage's plan against the registry's dry run (both read the same bucket).
"$S" --registry-config "$CONFIG" --no-progress gc --grace 0s --format json |
  python3 -c 'import json,sys; print("\n".join(sorted(b["digest"] for b in json.load(sys.stdin)["blobs"])))' >"$OUT/s3-stowage-blobs.txt"
if [ "${REGISTRY_GC:-1}" = 1 ]; then
  sed -n 's/^blob eligible for deletion: //p' "$OUT/s3-registry.out" | sort >"$OUT/s3-registry-blobs.txt"
  if cmp -s "$OUT/s3-stowage-blobs.txt" "$OUT/s3-registry-blobs.txt"; then
    echo "plan: the same $(wc -l <"$OUT/s3-stowage-blobs.txt") blobs as the registry's GC" >&2
  else
    echo "plan DIFFERS from the registry's GC: diff $OUT/s3-stowage-blobs.txt $OUT/s3-registry-blobs.txt" >&2
  fi
fi
"$S" --registry-config "$CONFIG" --no-progress --verbose gc --grace 0s --format json 2>&1 >/dev/null |
  grep -E '^(storage|concurrency|s3 requests|scanned)' >&2
