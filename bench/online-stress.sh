#!/usr/bin/env bash
# Online GC stress benchmark (issue 18; not part of the timed benchmarks): the larger version of
# crates/stowage-cli/tests/online_apply.rs. A real registry keeps serving while a collector runs;
# clients push garbage images again (new repositories, the old repository, cross-repository
# mounts) and pull kept images; afterwards every push the client was told succeeded is pulled
# with `skopeo copy --all`. Prints one Markdown table: runs, pushes, broken, per collector.
#
#   bench/online-stress.sh                    20 runs per collector, 20 garbage images, 4 pushers
#   RUNS=40 IMAGES=50 PUSHERS=6 PUSHES=8 bench/online-stress.sh
#   COLLECTORS=today,registry-gc bench/online-stress.sh    the apply of before online (no new flags)
#
# Environment: RUNS, IMAGES (garbage images per run), KEPT (tagged images that stay), BULK (more
# tagged repositories, copies of a kept one, so scans take realistic time), PUSHERS,
# PUSHES (per pusher), PULLERS, SEED, SETTLE (the online apply's --settle), DELAY_MS (the slow
# hook of the burst+slow runs), COLLECTORS (comma list of online, offline, today, registry-gc;
# default online,offline,registry-gc). Runs rotate through four interleavings (pushes from the
# start, midway, in a burst when the blob phase begins, the burst with every removal slowed)
# and two registry caches (inmemory, none). The table also goes to bench/out/online-stress.md.
# The online collector's guarantee (0 broken) is asserted: the script fails if it is broken.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh >&2
OUT=${BENCH_DIR:-bench/out}
mkdir -p "$OUT"
REPORT="$(cd "$OUT" && pwd)/online-stress.md"
: >"$REPORT"
export STOWAGE_REQUIRE_REAL=1
export STOWAGE_STRESS_RUNS=${RUNS:-20}
export STOWAGE_STRESS_IMAGES=${IMAGES:-20}
export STOWAGE_STRESS_KEPT=${KEPT:-5}
export STOWAGE_STRESS_PUSHERS=${PUSHERS:-4}
export STOWAGE_STRESS_PUSHES=${PUSHES:-8}
export STOWAGE_STRESS_PULLERS=${PULLERS:-2}
export STOWAGE_STRESS_BULK=${BULK:-1000}
export STOWAGE_STRESS_SEED=${SEED:-18}
export STOWAGE_STRESS_SETTLE=${SETTLE:-2s}
export STOWAGE_STRESS_DELAY_MS=${DELAY_MS:-500}
export STOWAGE_STRESS_COLLECTORS=${COLLECTORS:-online,offline,registry-gc}
export STOWAGE_STRESS_REPORT=$REPORT
echo "online-stress: $STOWAGE_STRESS_RUNS runs x {$STOWAGE_STRESS_COLLECTORS}, $STOWAGE_STRESS_IMAGES garbage images, $STOWAGE_STRESS_PUSHERS pushers x $STOWAGE_STRESS_PUSHES pushes" >&2
rc=0
# cargo test, not nextest: a long bench run must not meet nextest's per-test timeout.
cargo test -p stowage-cli --test online_apply -- --exact --nocapture \
  no_successful_push_is_broken_by_an_online_apply >&2 || rc=$?
cat "$REPORT"
exit "$rc"
