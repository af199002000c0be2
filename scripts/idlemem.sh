#!/usr/bin/env bash
# idlemem.sh: what an idle connection costs tund serving echo. A fresh
# tund runs in a throwaway network namespace; scripts/load (inside it)
# opens N connections to the echo service, moves SIZE verified bytes
# through each, and with all of them held open and idle reads tund's RSS
# (VmRSS from /proc) and live heap after a garbage collection, against
# the same before the first dial. Nothing leaves the namespace; the run is
# bounded in count (N) and time (-limit).
# Usage: sudo scripts/idlemem.sh [-n N] [-s SIZE] [-r RUNS] [-- tund flags...]
source "$(dirname "$0")/lib.sh"
N=10000 SIZE=1024 RUNS=1
while getopts n:s:r: opt; do
  case $opt in
    n) N=$OPTARG ;;
    s) SIZE=$OPTARG ;;
    r) RUNS=$OPTARG ;;
    *) echo "usage: $0 [-n N] [-s SIZE] [-r RUNS] [-- tund flags...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ "${1:-}" = -- ] && shift
need_root
(cd "$ROOT" && go build -o "$WORK/load" ./scripts/load)
CTL=$WORK/ctl.sock
BASE=$NS
for run in $(seq "$RUNS"); do
  NS=$BASE-$run
  start_tund -control "$CTL" "$@"
  in_ns "$WORK/load" conns -n "$N" -dialers 32 -size "$SIZE" -limit 3m -pid "$TUND_PID" -control "$CTL"
  kill -INT "$TUND_PID"; wait "$TUND_PID" 2>/dev/null || true; TUND_PID=
  ip netns del "$NS" 2>/dev/null || true
done
NS=$BASE
