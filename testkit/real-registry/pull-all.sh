#!/usr/bin/env bash
# pull-all.sh: pull images from a registry with the REAL client (skopeo), to prove that what a
# cleaner left behind is still complete: every manifest, every child of an index/list, every
# config and layer blob must be served.
#
# Usage:  testkit/real-registry/pull-all.sh HOST:PORT REF...
#   REF is REPO:TAG or REPO@sha256:HEX, e.g. team/app/api:latest multiarch/tool:1.0
#
# Each REF is copied with `skopeo copy --all` (all children of an index/list) into its own fresh
# OCI layout in a temporary directory, which is removed at the end. Every REF is tried; the
# exit status is 1 if any failed, and the last stderr line names the FIRST failure:
#   pull-all.sh: 2 of 5 failed; first failure: multiarch/tool:1.0
# Per-REF results go to stdout as "ok REF" / "FAIL REF"; skopeo's error output goes to stderr.
set -Eeuo pipefail

log() { printf 'pull-all.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

[ "$#" -ge 2 ] || die "usage: $0 HOST:PORT REPO:TAG|REPO@DIGEST..."
HOST=$1; shift
command -v skopeo >/dev/null 2>&1 || die "skopeo not found; run scripts/install-test-deps.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stowage-pull.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Pin skopeo's host-wide configuration (trust policy, registries.conf, lookaside signature
# config) so a machine's own settings cannot change what is pulled or refuse it.
printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$WORK/policy.json"
: >"$WORK/registries.conf"
mkdir -p "$WORK/registries.d" "$WORK/tmp"
export CONTAINERS_REGISTRIES_CONF="$WORK/registries.conf"

n=0 failed=0 first=
for ref in "$@"; do
  n=$((n + 1))
  # --src-tls-verify=false: the registry speaks plain HTTP on loopback.
  if skopeo --policy "$WORK/policy.json" --registries.d "$WORK/registries.d" --tmpdir "$WORK/tmp" \
       copy --all --quiet --src-tls-verify=false --src-no-creds \
       "docker://$HOST/$ref" "oci:$WORK/pull-$n:x" >/dev/null 2>"$WORK/err"; then
    echo "ok $ref"
  else
    echo "FAIL $ref"
    sed "s|^|  $ref: |" "$WORK/err" >&2
    failed=$((failed + 1))
    [ -n "$first" ] || first=$ref
  fi
  rm -rf "$WORK/pull-$n"
done

if [ "$failed" -gt 0 ]; then
  log "$failed of $n failed; first failure: $first"
  exit 1
fi
log "all $n pulled"
