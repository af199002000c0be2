#!/usr/bin/env bash
# bench.sh: first performance figures for tund, measured in a throwaway
# network namespace (nothing leaves it), every loop bounded in count and
# time:
#   - bulk download with curl (Gbit/s), at MTU 1500 and 9000
#   - connections per second: short HTTP requests, one connection each
#   - echo round-trip latency (p50/p90/p99) over one connection, next to
#     ping's ICMP round trip through the same TUN device
#   - bulk upload into the stack (its receive window at work) against the
#     receive buffer size: fixed -rcvbuf sizes, and autotuning
#   - the same 1 GiB download from gVisor's netstack on a TUN device in the
#     same kind of namespace (scripts/gvisorhttp), for comparison
# Usage: sudo scripts/bench.sh [-n ROUNDS]   (needs root, curl, nc, go)
source "$(dirname "$0")/lib.sh"
ROUNDS=3
while getopts n: opt; do
  case $opt in
    n) ROUNDS=$OPTARG ;;
    *) echo "usage: $0 [-n ROUNDS]" >&2; exit 2 ;;
  esac
done
case $ROUNDS in ''|*[!0-9]*) echo "$0: -n $ROUNDS: not a number" >&2; exit 2 ;; esac
need_root
(cd "$ROOT" && go build -o "$WORK/echolat" ./scripts/echolat && go build -o "$WORK/gvisorhttp" ./scripts/gvisorhttp)

SIZE=1073741824 # 1 GiB per download
download() {
  local best=0
  for _ in $(seq "$ROUNDS"); do
    bps=$(in_ns curl -sS --max-time 60 -o /dev/null -w '%{speed_download}' "http://$STACK/bytes/$SIZE")
    best=$(echo "$bps $best" | awk '{print ($1 > $2) ? $1 : $2}')
    echo "$bps" | awk '{printf "    run: %.2f Gbit/s\n", $1*8/1e9}'
  done
  echo "$best" | awk -v m="$1" '{printf "  curl 1 GiB download, MTU %s: best %.2f Gbit/s\n", m, $1*8/1e9}'
}

echo "tund bench, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), go $(go env GOVERSION)"
for mtu in 1500 9000; do
  NS=tund-bench-$$-$mtu
  start_tund -mtu "$mtu"
  download "$mtu"
  if [ "$mtu" = 1500 ]; then
    # Connections per second: curl fetches N URLs in one process; the
    # Connection: close header makes every request a new connection.
    N=2000
    start=$(date +%s.%N)
    in_ns curl -sS --max-time 120 -o /dev/null -H 'Connection: close' "http://$STACK/bytes/[1-$N]"
    end=$(date +%s.%N)
    echo "$N $start $end" | awk '{printf "  short HTTP requests, one connection each: %d in %.2f s = %.0f conn/s\n", $1, $3-$2, $1/($3-$2)}'
    echo "  echo latency, 64-byte messages:"
    in_ns "$WORK/echolat" -addr "$STACK:7" -n 20000 -size 64 -limit 30s | sed 's/^/    /'
    echo "  ping through the same TUN (kernel ICMP, for reference):"
    in_ns ping -q -c 200 -i 0.002 "$STACK" | tail -1 | sed 's/^/    /'
  fi
  kill -INT "$TUND_PID"; wait "$TUND_PID" 2>/dev/null || true; TUND_PID=
  ip netns del "$NS" 2>/dev/null || true
done

# Upload throughput against the receive buffer: the kernel sends 256 MiB
# to the discard service; the stack's receive buffer is the window the
# kernel may fill. Fixed sizes, then autotuning (tund's default).
UP=268435456
echo "  upload 256 MiB into the stack (nc to discard) by receive buffer:"
for rb in 8K 16K 64K 256K 1M 4M auto; do
  NS=tund-bench-$$-rb-$rb
  start_tund -rcvbuf "$rb"
  best=0
  for _ in $(seq "$ROUNDS"); do
    start=$(date +%s.%N)
    head -c "$UP" /dev/zero | in_ns timeout 60 nc -N "$STACK" 9
    end=$(date +%s.%N)
    gbps=$(echo "$UP $start $end" | awk '{printf "%.2f", $1*8/($3-$2)/1e9}')
    best=$(echo "$gbps $best" | awk '{print ($1 > $2) ? $1 : $2}')
  done
  printf "    -rcvbuf %-5s best %s Gbit/s\n" "$rb" "$best"
  kill -INT "$TUND_PID"; wait "$TUND_PID" 2>/dev/null || true; TUND_PID=
  ip netns del "$NS" 2>/dev/null || true
done

# gVisor's netstack serving the same /bytes/N over a TUN device it opens in
# its own namespace, with its default options (SACK on).
NS=tund-bench-$$-gvisor
ip netns add "$NS"
"$WORK/gvisorhttp" -netns "$NS" -tun gv0 -addr "$STACK" >"$WORK/gvisor.log" 2>&1 &
TUND_PID=$! # so lib.sh's cleanup stops it on any exit
for _ in $(seq 100); do grep -q serving "$WORK/gvisor.log" 2>/dev/null && break; sleep 0.1; done
ip -n "$NS" addr add "$HOSTCIDR" dev gv0
ip -n "$NS" link set gv0 up
ip -n "$NS" link set lo up
best=0
for _ in $(seq "$ROUNDS"); do
  bps=$(in_ns curl -sS --max-time 60 -o /dev/null -w '%{speed_download}' "http://$STACK/bytes/$SIZE")
  best=$(echo "$bps $best" | awk '{print ($1 > $2) ? $1 : $2}')
done
echo "$best" | awk '{printf "  gVisor netstack, same curl 1 GiB download over a TUN, MTU 1500: best %.2f Gbit/s\n", $1*8/1e9}'
kill -INT "$TUND_PID"; wait "$TUND_PID" 2>/dev/null || true; TUND_PID=
ip netns del "$NS" 2>/dev/null || true
