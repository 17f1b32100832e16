#!/usr/bin/env bash
# Migration benchmark (not a test, issue 21): copy a generated registry from the filesystem to
# S3 served by s3lite.py at a fixed delay per request (a network round trip), with
# `stowage migrate` (64 copies in flight, every blob's sha256 checked on the way, journaled)
# against `aws s3 sync` (awscli from PyPI: what operators use today; no check, no order), at
# its default 10 requests in flight and at 64. Then a re-run with nothing changed (the cost
# of a cut-over's second pass): `stowage migrate --incremental` against `aws s3 sync` again.
# Prints objects/s and bytes/s; nothing is asserted.
#
#   bench/migrate.sh [BLOBS] [DELAY_MS]        default: 10000 blobs, 20 ms per request
#   S3LITE=/path/to/s3lite.py bench/migrate.sh default: ../shared/tools/s3lite.py
#
#   PROFILE=debug bench/migrate.sh            use target/debug (built here) instead of release
#
# Needs: python3, awscli (`pip install awscli`), a release build (made here).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
BLOBS=${1:-10000}
DELAY=${2:-20}
S3LITE=${S3LITE:-$(cd .. && pwd)/shared/tools/s3lite.py}
[ -f "$S3LITE" ] || { echo "bench: $S3LITE not found (set S3LITE)" >&2; exit 2; }
command -v aws >/dev/null || { echo "bench: aws not found (pip install awscli)" >&2; exit 2; }
OUT=${BENCH_DIR:-bench/out}
SRC="$OUT/migrate-src-$BLOBS"
ROOT="$OUT/migrate-s3"               # s3lite root: ROOT/<bucket>/<key>, emptied per run
mkdir -p "$OUT"
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
  cargo build --release --quiet -p stowage-cli -p stowage-gen
else
  cargo build --quiet -p stowage-cli -p stowage-gen
fi
S=$PWD/target/$PROFILE/stowage
G=$PWD/target/$PROFILE/stowage-gen
[ -d "$SRC/docker" ] || "$G" --out "$SRC" --blobs "$BLOBS" --seed 7 --no-digest-only-repos >/dev/null
rm -rf "$ROOT"; mkdir -p "$ROOT/stowage" "$ROOT/sync10" "$ROOT/sync64"
# What both copy: everything below docker/ but uploads in progress (stowage leaves them out).
FILES=$(find "$SRC/docker" -type f -not -path '*/_uploads/*' | wc -l)
BYTES=$(find "$SRC/docker" -type f -not -path '*/_uploads/*' -printf '%s\n' | awk '{s+=$1} END {print s}')
echo "tree: $FILES files, $BYTES bytes (uploads excluded), $(find "$SRC/docker/registry/v2/blobs" -name data | wc -l) blobs" >&2

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 "$S3LITE" "$ROOT" --port "$PORT" --delay-ms "$DELAY" >"$OUT/s3lite-migrate.log" 2>&1 &
SPID=$!
trap 'kill "$SPID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/_stats" 2>/dev/null && break; sleep 0.1; done
unset AWS_CA_BUNDLE
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
EP="http://127.0.0.1:$PORT"
AWSCFG="$OUT/aws-config"

row() { # name seconds objects bytes
  python3 -c 'import sys; n,s,o,b=sys.argv[1],float(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4]); print(f"| {n} | {s:.1f} | {o} | {o/s:.0f} | {b/s/1e6:.2f} |")' "$@"
}
secs() { python3 -c 'import sys,time; print(time.time())'; }
echo "s3lite: $DELAY ms per request"
echo "| copy | seconds | objects | objects/s | MB/s |"
echo "|---|---:|---:|---:|---:|"

J="$OUT/migrate.journal"; rm -f "$J"
t0=$(secs)
"$S" --no-progress --format json migrate --from "$SRC" --to s3://stowage/reg --to-endpoint "$EP" \
  --journal "$J" --yes >"$OUT/migrate-report.json"
t1=$(secs)
read -r objs bytes < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["blobs_copied"]["objects"]+r["links_copied"]["objects"], r["blobs_copied"]["bytes"]+r["links_copied"]["bytes"])' "$OUT/migrate-report.json")
row "stowage migrate (64 in flight, sha256 checked)" "$(python3 -c "print($t1-$t0)")" "$objs" "$bytes"

for n in 10 64; do
  printf '[default]\ns3 =\n  max_concurrent_requests = %s\n' "$n" >"$AWSCFG"
  t0=$(secs)
  AWS_CONFIG_FILE="$AWSCFG" aws --endpoint-url "$EP" s3 sync --quiet --exclude '*/_uploads/*' \
    "$SRC/docker" "s3://sync$n/reg/docker"
  t1=$(secs)
  row "aws s3 sync ($n in flight)" "$(python3 -c "print($t1-$t0)")" "$FILES" "$BYTES"
done

t0=$(secs)
"$S" --no-progress --format json migrate --from "$SRC" --to s3://stowage/reg --to-endpoint "$EP" \
  --journal "$J" --yes --incremental >"$OUT/migrate-report-2.json"
t1=$(secs)
row "stowage migrate --incremental, nothing changed" "$(python3 -c "print($t1-$t0)")" "$FILES" "$BYTES"
t0=$(secs)
AWS_CONFIG_FILE="$AWSCFG" aws --endpoint-url "$EP" s3 sync --quiet --exclude '*/_uploads/*' \
  "$SRC/docker" "s3://sync64/reg/docker"
t1=$(secs)
row "aws s3 sync again (64 in flight), nothing changed" "$(python3 -c "print($t1-$t0)")" "$FILES" "$BYTES"
[ "${KEEP:-0}" = 1 ] || rm -rf "$ROOT"
