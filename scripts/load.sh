#!/usr/bin/env bash
# load.sh: tund under load, through a real TUN device, in a throwaway
# network namespace (nothing leaves it; every loop is bounded in count and
# time). Each phase gets a fresh tund, and scripts/load (run inside the
# namespace) prints what it measured:
#   - 10,000 connections held open at once, each echoing 1 KiB of
#     verified bytes, opened by 32 concurrent dialers: open time, SYNs
#     dropped or retransmitted, tund's memory per connection
#   - 100,000 short HTTP connections at full speed, closed by tund first:
#     connections per second, then tund's goroutines, live heap and RSS
#     once TIME-WAIT (2 x MSL) has expired, against the baseline
#   - 100,000 spoofed SYNs from the namespace's own subnet while a real
#     client keeps connecting: the real client's success rate and tund's
#     memory, with SYN cookies (the default) and without them
# The integration tests run the same modes at CI sizes
# (integration_test/load_test.go).
# Usage: sudo scripts/load.sh [-m MSL]   (needs root, ip, go; about 2 minutes,
# most of it waiting out TIME-WAIT)
source "$(dirname "$0")/lib.sh"
MSL=30s
while getopts m: opt; do
  case $opt in
    m) MSL=$OPTARG ;;
    *) echo "usage: $0 [-m MSL]" >&2; exit 2 ;;
  esac
done
need_root
(cd "$ROOT" && go build -o "$WORK/load" ./scripts/load)
BASE=$NS
CTL=$WORK/ctl.sock

# phase NAME [tund flags...] -- LOAD-MODE [load flags...]: run one phase
# with its own tund and namespace, and tear both down afterwards.
phase() {
  local name=$1; shift
  local tflags=()
  while [ "$1" != -- ]; do tflags+=("$1"); shift; done
  shift
  NS=$BASE-$name
  start_tund -control "$CTL" "${tflags[@]}"
  in_ns "$WORK/load" "$@" -pid "$TUND_PID" -control "$CTL" | sed 's/^/  /'
  kill -INT "$TUND_PID"; wait "$TUND_PID" 2>/dev/null || true; TUND_PID=
  ip netns del "$NS" 2>/dev/null || true
}

echo "tund load, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), go $(go env GOVERSION)"
echo "10,000 concurrent connections:"
phase conns -- conns -n 10000 -dialers 32 -size 1024 -limit 3m
echo "100,000 short connections (-msl $MSL: TIME-WAIT lasts twice that):"
phase churn -msl "$MSL" -- churn -n 100000 -dialers 32 -size 100 -settle 5m -limit 10m
echo "SYN flood, 100,000 spoofed SYNs at 20,000/s, SYN cookies on (default):"
phase flood -- flood -n 100000 -rate 20000 -every 50ms -after 3s -dial-timeout 10s -limit 3m
echo "the same flood with -syncookies=false (recycling stale half-open connections only):"
phase floodnc -syncookies=false -- flood -n 100000 -rate 20000 -every 50ms -after 3s -dial-timeout 10s -limit 3m
