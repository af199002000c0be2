# Shared by the scripts: build tund, run it in a throwaway network
# namespace, and always tear everything down (also on failure or Ctrl-C).
# Nothing is ever sent outside that namespace.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NS=${NS:-tund-$$}
STACK=198.18.0.2
STACK6=fd00:7:5eed::2 # tund's default -addr6 (kernel side fd00:7:5eed::1/64)
HOSTCIDR=198.18.0.1/24
WORK=$(mktemp -d)
TUND_PID=
NGINX_PID=
EXTRA_NS= # more namespaces (space-separated) a script made, deleted on exit too

cleanup() {
  [ -z "$NGINX_PID" ] || kill "$NGINX_PID" 2>/dev/null || true
  if [ -n "$TUND_PID" ] && kill -0 "$TUND_PID" 2>/dev/null; then
    kill -INT "$TUND_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$TUND_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$TUND_PID" 2>/dev/null || true
  fi
  ip netns del "$NS" 2>/dev/null || true
  for ns in $EXTRA_NS; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
# INT and TERM exit (through the EXIT trap) instead of carrying on with
# the next command after the cleanup has run.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "$0: needs root (network namespaces and TUN devices)" >&2
    exit 1
  fi
  for t in ip curl nc ping go; do
    command -v "$t" >/dev/null || { echo "$0: needs $t on PATH" >&2; exit 1; }
  done
}

# start_tund [extra tund flags...]: build tund (once; or use $TUND_BIN,
# a tund binary already built) and run it in $NS.
start_tund() {
  if [ -n "${TUND_BIN:-}" ]; then
    cp "$TUND_BIN" "$WORK/tund"
  fi
  [ -x "$WORK/tund" ] || (cd "$ROOT" && go build -o "$WORK/tund" ./cmd/tund)
  ip netns add "$NS"
  # A control socket of the script's own, unless it names one: the
  # default (/run/tund/tund0.sock) belongs to any tund already running.
  local ctl=(-control "$WORK/ctl.sock") a
  for a in "$@"; do [ "$a" = -control ] && ctl=(); done
  "$WORK/tund" -netns "$NS" -addr "$STACK" -host "$HOSTCIDR" "${ctl[@]}" "$@" 2>"$WORK/tund.log" &
  TUND_PID=$!
  for _ in $(seq 100); do
    grep -q 'msg=serving' "$WORK/tund.log" 2>/dev/null && return 0
    kill -0 "$TUND_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "tund did not start:" >&2
  cat "$WORK/tund.log" >&2
  exit 1
}

# in_ns CMD...: run a command inside the namespace.
in_ns() { ip netns exec "$NS" "$@"; }

# start_nginx DIR [NAMESPACE ADDR:PORT]: the distribution's nginx serving
# DIR (sendfile), in NAMESPACE (default $NS) on ADDR:PORT (default
# 198.18.0.1:8081), its configuration, pid and temp files under
# $WORK/nginx; NGINX_PID, killed by cleanup. The namespace's loopback is
# brought up (nginx and its clients in the namespace talk over it).
start_nginx() {
  [ -x /usr/sbin/nginx ] || { echo "$0: needs /usr/sbin/nginx (apt install nginx)" >&2; exit 1; }
  local d=$WORK/nginx ns=${2:-$NS} addr=${3:-198.18.0.1:8081}
  mkdir -p "$d"
  cat >"$d/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
pid $d/nginx.pid; error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path $d/b; proxy_temp_path $d/p; fastcgi_temp_path $d/f;
  uwsgi_temp_path $d/u; scgi_temp_path $d/s;
  server { listen $addr; root $1; }
}
CONF
  ip -n "$ns" link set lo up
  # ip netns exec execs nginx: $! is nginx's own pid; its output goes to
  # a file, not to whatever reads the script's.
  ip netns exec "$ns" /usr/sbin/nginx -e stderr -p "$d" -c "$d/nginx.conf" >"$d/log" 2>&1 &
  NGINX_PID=$!
  for _ in $(seq 50); do
    ip netns exec "$ns" curl -s --max-time 1 -o /dev/null "http://$addr/" && return 0
    sleep 0.1
  done
  echo "$0: nginx did not start:" >&2
  cat "$d/log" >&2
  exit 1
}
