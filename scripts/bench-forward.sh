#!/usr/bin/env bash
# bench-forward.sh: how fast a real application's bytes cross tund.
# In a throwaway namespace, the distribution's nginx serves a file from
# memory (tmpfs, sendfile) on the kernel side, and curl, also in the
# namespace, downloads it three ways:
#   direct   curl → nginx over the namespace's own kernel TCP (no tund)
#   forward  curl → tund (-forward 8080=nginx) → nginx: tund's TCP on the
#            client's side, a kernel socket to nginx on the other
#   bytes    curl → tund's built-in /bytes/N (tund's TCP alone)
# Each is run -n times; the median and the spread are printed, in Gbit/s.
# Usage: sudo scripts/bench-forward.sh [-s SIZE_MiB] [-n RUNS] [-- extra tund flags]
source "$(dirname "$0")/lib.sh"
SIZE_MIB=1024 RUNS=5
while getopts s:n: opt; do
  case $opt in
    s) SIZE_MIB=$OPTARG ;; n) RUNS=$OPTARG ;;
    *) echo "usage: $0 [-s SIZE_MiB] [-n RUNS] [-- extra tund flags]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
need_root
case $SIZE_MIB in ''|*[!0-9]*) echo "$0: -s $SIZE_MIB: want a whole number of MiB" >&2; exit 2 ;; esac
case $RUNS in ''|*[!0-9]*|0) echo "$0: -n $RUNS: want a positive number of runs" >&2; exit 2 ;; esac

# The file lives in memory: the figure is the network's, not the disk's.
SHM=$(mktemp -d /dev/shm/tund-bench-forward.XXXXXX)
trap 'rm -rf "$SHM"; cleanup' EXIT
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$SHM/file"
start_tund -forward "8080=198.18.0.1:8081" "$@"
start_nginx "$SHM"

# run URL: one download, its rate in Gbit/s; the byte count must match.
run() {
  local out
  out=$(in_ns curl -sS --fail --max-time 120 -o /dev/null -w '%{size_download} %{speed_download}' "$1")
  set -- $out
  [ "$1" = "$((SIZE_MIB << 20))" ] || { echo "$0: got $1 bytes, want $((SIZE_MIB << 20))" >&2; exit 1; }
  awk -v b="$2" 'BEGIN { printf "%.2f\n", b * 8 / 1e9 }'
}
# stats: median, min and max of the numbers on stdin.
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "median %.2f  min %.2f  max %.2f\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }'; }

echo "$SIZE_MIB MiB, $RUNS runs each, Gbit/s"
for way in direct forward bytes; do
  case $way in
    direct) url="http://198.18.0.1:8081/file" ;;
    forward) url="http://$STACK:8080/file" ;;
    bytes) url="http://$STACK/bytes/$((SIZE_MIB << 20))" ;;
  esac
  run "$url" >/dev/null # warm up
  printf '%-8s ' "$way"
  for _ in $(seq "$RUNS"); do run "$url"; done | stats
done
