# shellcheck shell=bash
# lib.sh: helpers shared by build.sh and serve.sh (sourced, not run).

# free_port: a port nothing listens on now, chosen by the kernel.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# port_free PORT: nothing listens on 127.0.0.1:PORT. Checked before starting, because a
# registry that cannot bind dies, and the readiness probe would then be answered by whatever
# holds the port (e.g. a KEEP_RUNNING registry of another fixture). SO_REUSEADDR as the
# registry itself sets it: connections in TIME_WAIT (a registry just stopped to be restarted on
# its port, see restart.sh) do not count, a listener does (Linux refuses that bind).
port_free() {
  python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

# await_registry PID LOGFILE ADDR -> 0 once PID logged "listening on ADDR" and /v2/ answers
# (so the answer is OUR process's), 1 if PID died first, 2 after 10 s.
await_registry() {
  local pid=$1 logfile=$2 addr=$3
  for _ in $(seq 200); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      return 1
    fi
    if grep -qF "listening on $addr" "$logfile" &&
       curl -fsS --max-time 1 -o /dev/null "http://$addr/v2/" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  return 2
}
