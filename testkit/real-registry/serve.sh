#!/usr/bin/env bash
# serve.sh: start the REAL registry (docker-registry serve, 2.8.x) over an existing storage
# root, e.g. a fixture after stowage deleted things from it, so tests can check that what is
# left still pulls (see pull-all.sh).
#
# Usage:  testkit/real-registry/serve.sh STORAGE_ROOTDIR
#   STORAGE_ROOTDIR  the registry's `rootdirectory`: the directory that CONTAINS docker/registry/v2
#                    (for a build.sh fixture: TARGET_DIR/storage)
#
# Prints "PORT PID" on stdout and returns, leaving the registry running on 127.0.0.1:PORT.
# The caller stops it with `kill PID` (SIGTERM).
#
# Environment (optional):
#   PORT=NNNN     listen on this loopback port (default: a free one)
#   SERVE_DIR=D   where config.yml and registry.log go (default: a new mktemp dir, kept so the
#                 log can be read after a failure; its path is printed on stderr)
#   STORAGE_SECTION_FILE=F  serve the storage named by the YAML `storage:` section in F (e.g. the
#                 s3 driver) instead of a filesystem rootdirectory; pass - as STORAGE_ROOTDIR
#   LOG_FORMATTER=text|json  the registry's `log.formatter` (default: text). registry.log holds
#                 both its logrus lines (stderr) and its combined access log (stdout)
#   NOTIFY_URL=URL  add a `notifications` endpoint posting events to URL (stowage serve's
#                 /api/v1/notifications); NOTIFY_SECRET=S sends it as `X-Stowage-Secret: S`
#   PROXY_REMOTEURL=URL  run as a pull-through cache of URL (the `proxy.remoteurl` section):
#                 the scheduler keeps its TTL state in STORAGE_ROOTDIR/scheduler-state.json
#   BLOB_CACHE=none|inmemory|redis  the registry's `storage.cache.blobdescriptor` (default none:
#                 no cache section, as before). inmemory is Debian's default config; redis needs
#                 REDIS_ADDR=HOST:PORT (written as the `redis:` section)
#
# Besides config.yml and registry.log, $SERVE_DIR gets `registry.pid`, `port` and `serve.env`
# (this script's settings), which restart.sh uses to restart the registry on the SAME port.
#
# The config is read-write with delete enabled (so tests can also delete through the API), and
# upload purging is disabled: the purger would otherwise delete _uploads/ dirs whose `startedat`
# is older than a week, which is true of every upload in the committed sample fixture.
set -Eeuo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

log() { printf 'serve.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$#" -eq 1 ] || die "usage: $0 STORAGE_ROOTDIR"
if [ -n "${STORAGE_SECTION_FILE:-}" ]; then
  [ -f "$STORAGE_SECTION_FILE" ] || die "STORAGE_SECTION_FILE $STORAGE_SECTION_FILE is not a file"
  ROOT=$STORAGE_SECTION_FILE
else
[ -d "$1" ] || die "$1 is not a directory"
ROOT=$(cd "$1" && pwd)
if [ ! -d "$ROOT/docker/registry/v2" ]; then
  case $ROOT in
    */docker/registry/v2) die "$ROOT is the storage root itself; pass its rootdirectory ${ROOT%/docker/registry/v2}" ;;
    *) die "$ROOT has no docker/registry/v2 inside; pass the registry's rootdirectory" ;;
  esac
fi
fi
# The registry's AWS SDK cannot use a custom CA bundle with its own HTTP transport and panics
# at start-up when AWS_CA_BUNDLE is set; the test S3 endpoints are plain HTTP on loopback.
if [ -n "${STORAGE_SECTION_FILE:-}" ]; then unset AWS_CA_BUNDLE; fi
storage_section() {
  if [ -n "${STORAGE_SECTION_FILE:-}" ]; then cat "$STORAGE_SECTION_FILE"; return; fi
  cat <<EOF
storage:
  filesystem:
    rootdirectory: $ROOT
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
EOF
  cache_section
}
# storage.cache.blobdescriptor (indented under storage:) and, for redis, the top-level redis:
cache_section() {
  case ${BLOB_CACHE:-none} in
    none) ;;
    inmemory) printf '  cache:\n    blobdescriptor: inmemory\n' ;;
    redis)
      [ -n "${REDIS_ADDR:-}" ] || die "BLOB_CACHE=redis needs REDIS_ADDR=HOST:PORT"
      printf '  cache:\n    blobdescriptor: redis\n' ;;
    *) die "BLOB_CACHE must be none, inmemory or redis, got '${BLOB_CACHE}'" ;;
  esac
}
redis_section() {
  [ "${BLOB_CACHE:-none}" = redis ] || return 0
  printf 'redis:\n  addr: %s\n  db: 0\n' "$REDIS_ADDR"
}
proxy_section() {
  [ -n "${PROXY_REMOTEURL:-}" ] || return 0
  printf 'proxy:\n  remoteurl: %s\n' "$PROXY_REMOTEURL"
}
notifications_section() {
  [ -n "${NOTIFY_URL:-}" ] || return 0
  cat <<EOF
notifications:
  endpoints:
    - name: stowage
      url: $NOTIFY_URL
      timeout: 2s
      threshold: 5
      backoff: 1s
EOF
  if [ -n "${NOTIFY_SECRET:-}" ]; then
    printf '      headers:\n        X-Stowage-Secret: [%s]\n' "$NOTIFY_SECRET"
  fi
}
command -v docker-registry >/dev/null 2>&1 || die "docker-registry not found; run scripts/install-test-deps.sh"
command -v curl >/dev/null 2>&1 || die "curl not found; run scripts/install-test-deps.sh"
command -v python3 >/dev/null 2>&1 || die "python3 not found; run scripts/install-test-deps.sh"

if [ -n "${SERVE_DIR:-}" ]; then
  mkdir -p "$SERVE_DIR"
  DIR=$(cd "$SERVE_DIR" && pwd)
else
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/stowage-serve.XXXXXX")
fi
CONFIG="$DIR/config.yml" LOGFILE="$DIR/registry.log"

PID=
# Never leave a half-started registry behind: on any failure, stop the one we started.
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
}
trap on_exit EXIT
trap 'log "command failed at line $LINENO: $BASH_COMMAND"' ERR


# try_start PORT -> 0 when OUR process listens on PORT and /v2/ answers, 1 if it died
try_start() {
  cat >"$CONFIG" <<EOF
# Written by stowage testkit/real-registry/serve.sh
version: 0.1
log:
  level: info
  formatter: ${LOG_FORMATTER:-text}
$(storage_section)
$(proxy_section)
$(notifications_section)
$(redis_section)
http:
  addr: 127.0.0.1:$1
  secret: stowage-serve-not-a-secret
EOF
  # Output to a file (never our stdout): a caller reading "PORT PID" from a pipe must see EOF.
  docker-registry serve "$CONFIG" </dev/null >"$LOGFILE" 2>&1 &
  PID=$!
  local rc=0
  await_registry "$PID" "$LOGFILE" "127.0.0.1:$1" || rc=$?
  case $rc in
    0) return 0 ;;
    1) PID=; return 1 ;;
  esac
  die "registry PID $PID did not answer on 127.0.0.1:$1 within 10 s; see $LOGFILE"
}

if [ -n "${PORT:-}" ]; then
  [[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$PORT'"
  port_free "$PORT" || die "127.0.0.1:$PORT is already in use"
  try_start "$PORT" || die "registry exited at start-up; see $LOGFILE"
  port=$PORT
else
  started=0
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    port_free "$port" || continue
    if try_start "$port"; then started=1; break; fi
    grep -q 'address already in use' "$LOGFILE" || die "registry exited at start-up; see $LOGFILE"
  done
  [ "$started" = 1 ] || die "could not start the registry on a free port after 5 tries"
fi

printf '%s\n' "$PID" >"$DIR/registry.pid"
printf '%s\n' "$port" >"$DIR/port"
# restart.sh re-runs this script with exactly these settings (values are %q-quoted).
{
  printf 'SERVE_ROOT_ARG=%q\n' "$1"
  for v in STORAGE_SECTION_FILE LOG_FORMATTER NOTIFY_URL NOTIFY_SECRET BLOB_CACHE REDIS_ADDR PROXY_REMOTEURL; do
    [ -z "${!v:-}" ] || printf '%s=%q\n' "$v" "${!v}"
  done
} >"$DIR/serve.env"
log "registry PID $PID on http://127.0.0.1:$port over $ROOT (config and log in $DIR)"
printf '%s %s\n' "$port" "$PID"
