#!/usr/bin/env bash
# System calls and time (not a test) of stowage's scan against the registry's own GC dry run,
# on one generated tree on the local disk (issue 22, "the floor"): `strace -c -f` counts every
# system call of `stowage gc`, `stowage gc -m` and `docker-registry garbage-collect --dry-run`
# (with and without --delete-untagged), then each runs once more without strace for its wall
# time. Warm page cache (each command runs once before it is counted).
#
#   bench/syscalls.sh [BLOBS] [SEED]        default: 100000 blobs, seed 1
#   PROFILE=realistic bench/syscalls.sh     the generator's default history instead of the
#                                           issue's CI shape (stowage-gen --profile ci)
#
# Needs strace, GNU time and docker-registry (scripts/install-test-deps.sh). Trees are generated
# once under bench/out/ (or $BENCH_DIR) by bench/lib.sh, shared with the other scripts.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
BLOBS=${1:-100000}
SEED=${2:-1}
OUT=${BENCH_DIR:-bench/out}
SCALE=
# The issue's CI-shaped tree (10 tags per repository, 2 moved, an OCI index every 10th tag,
# 60% of layers from a shared pool) unless told otherwise.
PROFILE=${PROFILE:-ci}
GEN_PROFILE=$PROFILE
for t in strace /usr/bin/time docker-registry; do
  command -v "$t" >/dev/null || { echo "bench: $t not found" >&2; exit 2; }
done
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_tree
CONFIG="$TREE.config.yml"
cat >"$CONFIG" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $(realpath "$TREE")
YML
echo "== $TREE (profile $PROFILE): $(find "$TREE/docker/registry/v2/blobs" -name data | wc -l) blobs; $(nproc) cores" >&2
printf '| command | system calls | top calls | wall (s, no strace) |\n|---|---:|---|---:|\n'
measure() {
  local name="$1"; shift
  "$@" >/dev/null 2>&1 || true # warm the page cache
  strace -c -f -o "$OUT/strace.txt" "$@" >/dev/null 2>&1 || true
  local total top wall
  # strace -c columns: % time, seconds, usecs/call, calls, [errors], syscall.
  total=$(awk '$NF=="total"{print $4}' "$OUT/strace.txt")
  top=$(awk 'NR>2 && $1 ~ /^[0-9.]+$/ && $NF!="total" {print $4, $NF}' "$OUT/strace.txt" \
    | sort -rn | head -4 | awk '{printf "%s%s %s", (NR>1?", ":""), $2, $1}')
  /usr/bin/time -f '%e' -o "$OUT/time.txt" "$@" >/dev/null 2>&1 || true
  wall=$(tail -1 "$OUT/time.txt")
  printf '| %s | %s | %s | %s |\n' "$name" "$total" "$top" "$wall"
}
measure "stowage gc" "$S" --storage "$TREE" --no-progress gc --grace 0s --format json
measure "stowage gc -m" "$S" --storage "$TREE" --no-progress gc -m --grace 0s --format json
measure "registry garbage-collect --dry-run" docker-registry garbage-collect --dry-run "$CONFIG"
measure "registry garbage-collect --dry-run -m" docker-registry garbage-collect --dry-run --delete-untagged "$CONFIG"
rm -f "$OUT/strace.txt" "$OUT/time.txt"
