#!/usr/bin/env bash
# Run stowage's main job on the bundled sample registry (a real distribution 2.8 storage tree
# built by testkit/real-registry/build.sh): what the storage holds, per repository and per
# blob, and its integrity findings. Read-only.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
SAMPLE=target/sample
rm -rf "$SAMPLE" && mkdir -p "$SAMPLE"
tar -xzf fixtures/sample-registry.tar.gz -C "$SAMPLE"
# A debug build: minutes faster to compile than release, and the sample is small.
cargo build --quiet -p stowage-cli
BIN=target/debug/stowage
export STOWAGE_STORAGE="$SAMPLE/storage"
echo "== stowage du   (repositories: total, exclusive, shared bytes)"
"$BIN" du
echo
echo "== stowage inventory   (every blob: size, date, kind, who needs it)"
"$BIN" inventory
echo
echo "== stowage tags team/app/api --history"
"$BIN" tags team/app/api --history
echo
echo "== stowage check   (integrity findings)"
"$BIN" check || true
echo
echo "== stowage gc   (what garbage collection would free; read-only)"
"$BIN" gc
echo
echo "== stowage plan --policy examples/policies/signatures.yaml   (a retention plan; read-only)"
"$BIN" plan --policy examples/policies/signatures.yaml
echo
echo "Sample storage left in $SAMPLE/storage; try: $BIN --storage $SAMPLE/storage explain multiarch/tool:1.0"
