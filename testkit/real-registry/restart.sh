#!/usr/bin/env bash
# restart.sh: restart a registry that serve.sh started, on the SAME port and with the same
# settings, the way an operator restarts theirs after a GC (an `inmemory` blob descriptor cache
# only forgets deleted blobs when the process goes away).
#
# Usage:  testkit/real-registry/restart.sh SERVE_DIR
#   SERVE_DIR  the directory serve.sh wrote config.yml, registry.pid, port and serve.env to
#
# Stops the running registry (SIGTERM, SIGKILL after 10 s; only if /proc says it is the registry
# of SERVE_DIR/config.yml, since PIDs get reused), keeps its log as registry.log.N, starts it
# again with serve.sh, waits until it answers, and prints "PORT PID" like serve.sh. The new PID
# is in SERVE_DIR/registry.pid. Exit 0 only when the new registry answers on the old port.
# Usable as stowage apply's `--registry-restart 'bash testkit/real-registry/restart.sh DIR'`.
set -Eeuo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf 'restart.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$#" -eq 1 ] || die "usage: $0 SERVE_DIR"
DIR=$(cd "$1" && pwd) || die "$1 is not a directory"
for f in registry.pid port serve.env config.yml; do
  [ -f "$DIR/$f" ] || die "$DIR/$f is missing: was this registry started by serve.sh?"
done
pid=$(cat "$DIR/registry.pid") port=$(cat "$DIR/port")
[[ "$pid" =~ ^[0-9]+$ ]] || die "bad PID '$pid' in $DIR/registry.pid"
[[ "$port" =~ ^[0-9]+$ ]] || die "bad port '$port' in $DIR/port"

if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$DIR/config.yml"; then
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "registry PID $pid ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  kill -0 "$pid" 2>/dev/null && die "registry PID $pid did not stop"
else
  log "registry PID $pid is not running (or not ours); starting a new one"
fi
n=1
while [ -e "$DIR/registry.log.$n" ]; do n=$((n + 1)); done
[ ! -e "$DIR/registry.log" ] || mv "$DIR/registry.log" "$DIR/registry.log.$n"

# serve.env holds serve.sh's settings, %q-quoted by serve.sh itself.
# shellcheck disable=SC1091
. "$DIR/serve.env"
export STORAGE_SECTION_FILE LOG_FORMATTER NOTIFY_URL NOTIFY_SECRET BLOB_CACHE REDIS_ADDR
# The old socket may linger for a moment; serve.sh refuses a busy port, so retry briefly.
for _ in $(seq 50); do
  if PORT=$port SERVE_DIR=$DIR bash "$SCRIPT_DIR/serve.sh" "$SERVE_ROOT_ARG" 2>>"$DIR/restart.log"; then
    log "registry restarted on 127.0.0.1:$port, PID $(cat "$DIR/registry.pid")"
    exit 0
  fi
  sleep 0.1
done
die "could not restart the registry on 127.0.0.1:$port; see $DIR/restart.log"
