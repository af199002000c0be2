#!/usr/bin/env bash
# bench-loss.sh: goodput under random loss, tund's sender against the
# Linux kernel's, with figures that can be trusted: several runs each,
# the median with its spread, and each run's retransmission timeouts.
#
# For each loss rate, nftables drops that share of TCP packets in both
# directions (numgen random; this kernel has no netem):
#   - tund: curl downloads from tund's /bytes/N over its TUN device, so
#     tund's sender (NewReno and CUBIC) does the loss recovery; its
#     timeouts and retransmissions come from `tund stats`;
#   - kernel: curl downloads the same number of bytes from nginx (a real
#     server, sendfile from a file in memory) across a veth pair between
#     two namespaces, the same nftables rules on the veth and GSO limited
#     to one segment so that every segment meets the dice; its timeouts
#     and D-SACKs are the namespace's TcpExt TCPTimeouts and
#     TCPDSACKRecv.
# Both senders use their defaults (the kernel: CUBIC, 200 ms minimum RTO);
# flags after -- go to tund (e.g. -- -rto-min 20ms). Beside goodput it
# reports, per MiB, retransmission timeouts and D-SACKs received: the
# segments the receiver got twice, most often sent again needlessly (a
# timeout that was too quick shows here).
# A run that does not finish within -t seconds is reported, not averaged.
# For reference it prints the Mathis bound, MSS/RTT · 1.22/√p, with the
# round trip tund measured without loss.
#
# Everything runs in throwaway namespaces; every transfer is bounded in
# size and time.
# Usage: sudo scripts/bench-loss.sh [-n RUNS] [-l "2 5 10"] [-s MiB] [-t SECONDS] [-v] [-- tund flags]
#   -s sets one size for every rate; by default 32 MiB at 2 % and less,
#   16 MiB at 5 % and less, 8 MiB above. -v prints tund's loss-recovery
#   counters (`tund stats`) after each set of runs, on stderr.
source "$(dirname "$0")/lib.sh"
RUNS=3 RATES="2 5 10" SIZE_MIB= LIMIT=120 VERBOSE=
while getopts n:l:s:t:v opt; do
  case $opt in
    n) RUNS=$OPTARG ;; l) RATES=$OPTARG ;; s) SIZE_MIB=$OPTARG ;; t) LIMIT=$OPTARG ;; v) VERBOSE=1 ;;
    *) echo "usage: $0 [-n RUNS] [-l \"2 5 10\"] [-s MiB] [-t SECONDS] [-v] [-- tund flags]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
TUND_FLAGS=("$@")
case $RUNS in ''|*[!0-9]*|0) echo "$0: -n $RUNS: want a positive number of runs" >&2; exit 2 ;; esac
case $SIZE_MIB$LIMIT in *[!0-9]*) echo "$0: -s and -t take whole numbers" >&2; exit 2 ;; esac
for pct in $RATES; do
  case $pct in ''|*[!0-9]*) echo "$0: -l: loss rate $pct: want whole percents" >&2; exit 2 ;; esac
  [ "$pct" -lt 100 ] || { echo "$0: -l: loss rate $pct: want less than 100" >&2; exit 2; }
done
need_root
command -v nft >/dev/null || { echo "$0: needs nft (nftables)" >&2; exit 1; }
[ -x /usr/sbin/nginx ] || { echo "$0: needs /usr/sbin/nginx (apt install nginx)" >&2; exit 1; }

VA=tund-veth-a-$$ VB=tund-veth-b-$$
cleanup_veth() {
  [ -z "$NGINX_PID" ] || kill "$NGINX_PID" 2>/dev/null || true
  NGINX_PID=
  ip netns del "$VA" 2>/dev/null || true
  ip netns del "$VB" 2>/dev/null || true
}
SHM=$(mktemp -d /dev/shm/tund-bench-loss.XXXXXX)
trap 'cleanup_veth; rm -rf "$SHM"; cleanup' EXIT

# loss NS IFACE PCT: drop PCT% of TCP packets through IFACE, both ways.
loss() {
  [ "$3" -gt 0 ] || return 0
  ip netns exec "$1" nft -f - <<NFT
table inet benchloss {
  chain in  { type filter hook input priority 0;  iifname "$2" meta l4proto tcp numgen random mod 100 < $3 drop; }
  chain out { type filter hook output priority 0; oifname "$2" meta l4proto tcp numgen random mod 100 < $3 drop; }
}
NFT
}

size_for() { # size_for PCT: MiB per transfer
  if [ -n "$SIZE_MIB" ]; then echo "$SIZE_MIB"
  elif [ "$1" -le 2 ]; then echo 32
  elif [ "$1" -le 5 ]; then echo 16
  else echo 8; fi
}

# download URL BYTES: one curl in $NS; prints "Mbit/s" or "timeout".
download() {
  local out
  out=$(in_ns curl -sS --max-time "$LIMIT" -o /dev/null -w '%{size_download} %{speed_download}' "$1" 2>/dev/null) || true
  set -- $out "$2"
  if [ "${1:-0}" != "$3" ]; then echo timeout; return; fi
  awk -v b="$2" 'BEGIN { printf "%.1f\n", b * 8 / 1e6 }'
}

# tund_counter NAME: a counter from `tund stats`.
tund_counter() { "$WORK/tund" stats -control "$WORK/ctl.sock" | awk -v n="$1" 'index($0, n) == 1 { print $NF }'; }

# kernel_counter GROUP NAME: a counter of $VB from /proc/net/{netstat,snmp}.
kernel_counter() {
  ip netns exec "$VB" cat /proc/net/netstat /proc/net/snmp | awk -v g="$1:" -v n="$2" '
    $1 == g && !h { for (i = 2; i <= NF; i++) col[$i] = i; h = 1; next }
    $1 == g && h { print $col[n]; exit }'
}

# summary MIB: median, spread and failures of "mbps rtos dsacks" lines on stdin.
summary() {
  awk -v mib="$1" '
    $1 == "timeout" { fail++; next }
    { n++; v[n] = $1; r[n] = $2 / mib; d[n] = $3 / mib }
    function med(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
      return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    END {
      if (n == 0) { printf "%-34s", "all " fail " runs timed out"; exit }
      lo = hi = v[1]; for (i = 2; i <= n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
      m = med(v, n); rt = med(r, n); ds = med(d, n)
      printf "%-40s", sprintf("%.1f [%.1f–%.1f]%s %.2f/%.2f", m, lo, hi, fail ? " +" fail " timed out" : "", rt, ds)
    }'
}

# Round trip over tund's link without loss, for the Mathis bound: the
# median of ten pings from the namespace.
NS=tund-bl-$$-rtt
start_tund -control "$WORK/ctl.sock"
RTT_MS=$(in_ns ping -c 10 -i 0.05 -q "$STACK" | awk -F'/' '/^rtt/ { print $5 }')
kill -INT "$TUND_PID"; wait "$TUND_PID" 2>/dev/null || true; TUND_PID=
ip netns del "$NS" 2>/dev/null || true

echo "loss bench, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), $RUNS runs each, loss both ways"
echo "goodput in Mbit/s: median [min–max], then per MiB (medians): retransmission timeouts / D-SACKs received"
echo "RTT without loss ${RTT_MS} ms; tund flags: ${TUND_FLAGS[*]:-(defaults)}"
printf '%-5s %-4s %-7s %-40s %-40s %-40s\n' loss MiB "Mathis" "tund newreno" "tund cubic" "kernel (nginx, veth)"
for pct in $RATES; do
  mib=$(size_for "$pct")
  bytes=$((mib << 20))
  mathis=$(awk -v p="$pct" -v rtt="$RTT_MS" 'BEGIN { if (p == 0) { print "-"; exit } printf "%.0f", 1448 * 8 / (rtt / 1000) * 1.22 / sqrt(p / 100) / 1e6 }')
  declare -A col=()
  for cc in newreno cubic; do
    NS=tund-bl-$$-$cc-$pct
    start_tund -cc "$cc" -control "$WORK/ctl.sock" "${TUND_FLAGS[@]}"
    loss "$NS" tund0 "$pct"
    col[$cc]=$(for _ in $(seq "$RUNS"); do
      t0=$(tund_counter "retransmission timeouts") d0=$(tund_counter "D-SACKs received")
      mbps=$(download "http://$STACK/bytes/$bytes" "$bytes")
      echo "$mbps $(( $(tund_counter "retransmission timeouts") - t0 )) $(( $(tund_counter "D-SACKs received") - d0 ))"
    done | summary "$mib")
    if [ -n "$VERBOSE" ]; then
      echo "tund $cc at $pct%:" >&2
      "$WORK/tund" stats -control "$WORK/ctl.sock" |
        grep -E 'retransmit|timeouts|recoveries|probes|D-SACK|spurious|segments out' >&2
    fi
    kill -INT "$TUND_PID"; wait "$TUND_PID" 2>/dev/null || true; TUND_PID=
    ip netns del "$NS" 2>/dev/null || true
  done

  cleanup_veth
  ip netns add "$VA"; ip netns add "$VB"
  ip link add va type veth peer name vb netns "$VB"
  ip link set va netns "$VA"
  # One segment per skb, so nftables judges every segment on its own as
  # it does on tund's TUN link (with GSO it would drop 64 KiB bursts).
  ip -n "$VA" link set va gso_max_segs 1; ip -n "$VB" link set vb gso_max_segs 1
  ip -n "$VA" addr add 10.77.0.1/24 dev va; ip -n "$VA" link set va up; ip -n "$VA" link set lo up
  ip -n "$VB" addr add 10.77.0.2/24 dev vb; ip -n "$VB" link set vb up; ip -n "$VB" link set lo up
  head -c "$bytes" /dev/zero >"$SHM/file"
  start_nginx "$SHM" "$VB" 10.77.0.2:8080
  loss "$VB" vb "$pct"
  col[kernel]=$(for _ in $(seq "$RUNS"); do
    t0=$(kernel_counter TcpExt TCPTimeouts) d0=$(kernel_counter TcpExt TCPDSACKRecv)
    mbps=$(NS=$VA download "http://10.77.0.2:8080/file" "$bytes")
    echo "$mbps $(( $(kernel_counter TcpExt TCPTimeouts) - t0 )) $(( $(kernel_counter TcpExt TCPDSACKRecv) - d0 ))"
  done | summary "$mib")
  cleanup_veth
  printf '%-5s %-4s %-7s %-40s %-40s %-40s\n' "$pct%" "$mib" "$mathis" "${col[newreno]}" "${col[cubic]}" "${col[kernel]}"
done
