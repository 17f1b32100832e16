#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs what the tests need (the real
# registry, skopeo, cargo-nextest if missing), then runs every test of the workspace.
# This is the README's test command; .ci/run calls exactly this.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

# No source file over 800 lines, but for those still being split (scripts/long-files.allow).
echo "==> source files over 800 lines" >&2
bash scripts/check-long-files.sh

bash scripts/install-test-deps.sh

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi

export TZ=UTC
# The object-store tests skip (loudly) when their S3 server is missing; here it was just
# installed, so a missing one is a failure, not a skip.
export STOWAGE_REQUIRE_REAL=1
echo "==> cargo fmt --check, cargo clippy (warnings are errors)" >&2
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo nextest run --workspace" >&2
cargo nextest run --workspace --profile ci
echo "==> doc tests" >&2
cargo test --workspace --doc --quiet
