#!/usr/bin/env bash
# The storage-tree mutator's long run (not a benchmark of speed): mutants of the committed
# real-registry sample, each scanned as inventory, planned as `gc -m` and checked, asserting no
# panic, no hang, no write, a finding naming the mutated path and nothing planned that the
# tags need (crates/stowage-scan/tests/mutants.rs). CI runs 300 with seed 25.
#
#   bench/mutants.sh [MUTANTS] [SEED...]      default: 5000 mutants, seeds 25 1 2
#
# Each seed is a separate deterministic series; a failure prints its mutant number, seed,
# mutation and path, and `STOWAGE_MUTANTS=<n+1> STOWAGE_MUTANTS_SEED=<seed>` replays it.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000}
shift || true
SEEDS=("${@:-25 1 2}")
# shellcheck disable=SC2206
SEEDS=(${SEEDS[*]})
cargo test -q -p stowage-scan --test mutants --no-run
for seed in "${SEEDS[@]}"; do
  STOWAGE_MUTANTS=$N STOWAGE_MUTANTS_SEED=$seed \
    cargo test -q -p stowage-scan --test mutants -- --nocapture 2>&1 | grep -E 'mutants \(|panicked|FAILED|test result'
done
