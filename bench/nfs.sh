#!/usr/bin/env bash
# Network-filesystem benchmark (not a test): the same generated tree behind the project's own
# latency-injecting FUSE passthrough (crates/stowage-slowfs), a fresh mount (cold client cache)
# for every run, at 0.5 ms and 2 ms per operation. Times stowage inventory / gc / gc -m against
# `find -printf`, 32 `find`s in parallel over the blob shards and repositories, and the
# registry's own GC dry runs.
#
#   bench/nfs.sh [BLOBS] [DELAYS_US...]      default: 10000 blobs, delays 500 2000
#   REGISTRY_GC=0 bench/nfs.sh ...           skip the (slow) registry GC runs
set -Eeuo pipefail
cd "$(dirname "$0")/.."
BLOBS=${1:-10000}
shift || true
DELAYS=("$@")
[ ${#DELAYS[@]} -gt 0 ] || DELAYS=(500 2000)
OUT=${BENCH_DIR:-bench/out}
TREE="$OUT/nfs-tree-$BLOBS"
MNT="$OUT/nfs-mnt"
mkdir -p "$OUT" "$MNT"
command -v fusermount3 >/dev/null || { echo "bench: fusermount3 missing (apt-get install fuse3)" >&2; exit 2; }
cargo build --release --quiet -p stowage-cli -p stowage-gen -p stowage-slowfs
S=$PWD/target/release/stowage
G=$PWD/target/release/stowage-gen
F=$PWD/target/release/stowage-slowfs
[ -d "$TREE/docker" ] || "$G" --out "$TREE" --blobs "$BLOBS" --seed 7 --no-digest-only-repos >/dev/null
echo "tree: $(find "$TREE/docker" | wc -l) paths, $(find "$TREE/docker/registry/v2/blobs" -name data | wc -l) blobs" >&2

PID=
mount_fs() { # DELAY_US
  "$F" "$TREE" "$MNT" --delay-us "$1" >"$OUT/slowfs.out" 2>&1 &
  PID=$!
  for _ in $(seq 100); do grep -q ready "$OUT/slowfs.out" 2>/dev/null && return 0; sleep 0.1; done
  echo "slowfs did not come up" >&2; exit 1
}
umount_fs() { fusermount3 -u "$MNT" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; }
trap umount_fs EXIT

timed() { # NAME DELAY CMD...  (fresh mount, cold cache)
  local name=$1 delay=$2; shift 2
  mount_fs "$delay"
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || echo "  ($name exited $?)" >&2
  t1=$(date +%s.%N)
  umount_fs
  printf '| %s | %s µs | %.1f s |\n' "$name" "$delay" "$(echo "$t1 - $t0" | bc)"
}

parallel_find() {
  local r="$MNT/docker/registry/v2"
  { ls -d "$r"/blobs/sha256/*; ls -d "$r"/repositories/*; } | xargs -P 32 -I{} find {} -printf '%s %T@ %p\n'
}

CONFIG="$OUT/nfs-config.yml"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n' "$(realpath "$MNT")" >"$CONFIG"

echo "| command | delay | time |"
echo "|---|---:|---:|"
for d in "${DELAYS[@]}"; do
  timed "stowage inventory" "$d" "$S" --storage "$MNT" --no-progress inventory --format ndjson
  timed "stowage gc" "$d" "$S" --storage "$MNT" --no-progress gc --grace 0s --format json
  timed "stowage gc --delete-untagged" "$d" "$S" --storage "$MNT" --no-progress gc --delete-untagged --grace 0s --format json
  timed "find -printf" "$d" find "$MNT/docker/registry/v2" -printf '%s %T@ %p\n'
  timed "32 x find in parallel" "$d" parallel_find
  if [ "${REGISTRY_GC:-1}" = 1 ]; then
    timed "registry garbage-collect --dry-run" "$d" docker-registry garbage-collect --dry-run "$CONFIG"
    timed "registry garbage-collect --dry-run -m" "$d" docker-registry garbage-collect --dry-run --delete-untagged "$CONFIG"
  fi
done
