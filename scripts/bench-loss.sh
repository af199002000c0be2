#!/usr/bin/env bash
# bench-loss.sh: goodput under random loss, tund against the Linux kernel.
#
# For each loss rate, nftables drops that share of TCP packets in both
# directions (numgen random; this kernel has no netem):
#   - tund: curl downloads from tund's /bytes/N over its TUN device, so
#     tund's sender (NewReno, then CUBIC) does the loss recovery;
#   - kernel: the same download from a kernel sender across a veth pair
#     between two namespaces, with the same nftables rules on the veth,
#     and GSO limited to one segment so every segment meets the dice.
# It prints goodput and the tund/kernel ratio. Everything runs in
# throwaway namespaces; every transfer is bounded in size and time.
# Usage: sudo scripts/bench-loss.sh [-n ROUNDS] [-s BYTES]
source "$(dirname "$0")/lib.sh"
ROUNDS=2
SIZE=67108864 # 64 MiB per transfer
while getopts n:s: opt; do
  case $opt in
    n) ROUNDS=$OPTARG ;;
    s) SIZE=$OPTARG ;;
    *) echo "usage: $0 [-n ROUNDS] [-s BYTES]" >&2; exit 2 ;;
  esac
done
case $ROUNDS$SIZE in *[!0-9]*) echo "$0: -n and -s take numbers" >&2; exit 2 ;; esac
need_root
command -v nft >/dev/null || { echo "$0: needs nft (nftables)" >&2; exit 1; }

VA=tund-veth-a-$$ VB=tund-veth-b-$$
cleanup_veth() { ip netns del "$VA" 2>/dev/null || true; ip netns del "$VB" 2>/dev/null || true; }
trap 'cleanup_veth; cleanup' EXIT INT TERM

# loss NS IFACE PCT: drop PCT% of TCP packets through IFACE, both ways.
loss() {
  ip netns exec "$1" nft -f - <<NFT
table inet benchloss {
  chain in  { type filter hook input priority 0;  iifname "$2" meta l4proto tcp numgen random mod 100 < $3 drop; }
  chain out { type filter hook output priority 0; oifname "$2" meta l4proto tcp numgen random mod 100 < $3 drop; }
}
NFT
}

# best_of CMD...: run a download command ROUNDS times, print the best bytes/s.
best_of() {
  local best=0 bps
  for _ in $(seq "$ROUNDS"); do
    bps=$("$@" 2>/dev/null || echo 0)
    best=$(echo "$bps $best" | awk '{print ($1 > $2) ? $1 : $2}')
  done
  echo "$best"
}

tund_download() {
  in_ns curl -sS --max-time 120 -o /dev/null -w '%{speed_download}' "http://$STACK/bytes/$SIZE"
}

kernel_download() {
  # A kernel sender in $VB serves SIZE bytes once; curl in $VA fetches them.
  ip netns exec "$VB" timeout 130 sh -c "{ printf 'HTTP/1.0 200 OK\r\nContent-Length: $SIZE\r\n\r\n'; head -c $SIZE /dev/zero; } | nc -N -l 10.77.0.2 8080" >/dev/null 2>&1 &
  local srv=$!
  for _ in $(seq 50); do ip netns exec "$VB" ss -ltnH | grep -q ':8080' && break; sleep 0.05; done
  ip netns exec "$VA" curl -sS --max-time 120 -o /dev/null -w '%{speed_download}' "http://10.77.0.2:8080/"
  wait "$srv" 2>/dev/null || true
}

echo "tund loss bench, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), $((SIZE >> 20)) MiB per transfer, best of $ROUNDS"
printf '%-6s %-22s %-22s %-22s %s\n' loss "tund newreno" "tund cubic" "kernel (veth)" "ratio newreno/cubic"
for pct in 0 1 5; do
  declare -A got=()
  for cc in newreno cubic; do
    NS=tund-bl-$$-$cc-$pct
    start_tund -cc "$cc" -control none
    [ "$pct" -gt 0 ] && loss "$NS" tund0 "$pct"
    got[$cc]=$(best_of tund_download)
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
  [ "$pct" -gt 0 ] && loss "$VB" vb "$pct"
  got[kernel]=$(best_of kernel_download)
  cleanup_veth
  echo "$pct ${got[newreno]} ${got[cubic]} ${got[kernel]}" | awk '{
    k = ($4 > 0) ? $4 : 1
    printf "%-6s %-22s %-22s %-22s %.3f / %.3f\n", $1 "%", sprintf("%.1f Mbit/s", $2*8/1e6), sprintf("%.1f Mbit/s", $3*8/1e6), sprintf("%.1f Mbit/s", $4*8/1e6), $2/k, $3/k }'
done
