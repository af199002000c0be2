#!/usr/bin/env bash
# bench.sh: tund side by side with gVisor's netstack and the kernel's own
# TCP, in one run, on this machine; it prints a markdown table of medians
# (docs/performance.md explains every row) and the per-run values under it.
#
# Columns (every one serves the same echo :7, discard :9 and HTTP
# GET /bytes/N :80 to the same clients, which are kernel sockets and real
# tools run inside a throwaway network namespace):
#   gVisor       scripts/gvisorhttp: gVisor's netstack on a TUN device,
#                configured for speed as runsc does (its start-up line,
#                printed under the table, lists every option set)
#   tund         tund's defaults (offloads on, once tund has them)
#   tund -offload=false   only if this tund has the flag, else "n/a"
#   tund IPv6    with -cols tund6: tund's defaults, every client over IPv6
#                (to fd00:7:5eed::2): what the family costs
#   kernel       scripts/gvisorhttp -kernel: the kernel's TCP across a veth
#                pair between two namespaces, default offloads (the ceiling)
# Sections (-only picks some):
#   download  curl GET /bytes/N, MTU 1500 and 9000: Gbit/s, and the server's
#             CPU seconds per GiB (utime+stime from /proc/PID/stat)
#   upload    scripts/upload (Go) and nc into discard, MTU 1500: Gbit/s and
#             the server's CPU seconds per GiB
#   conns     short HTTP connections/s, 8 concurrent clients (scripts/load churn)
#   echo      64-byte echo round trip p50/p99 over one connection
#             (scripts/echolat), server and client on different CPUs and
#             on the same CPU (taskset)
#   rss       server RSS per idle connection with 10,000 and 5,000 held on
#             echo (scripts/load conns, a fresh server for each)
#   parallel  32 parallel downloads (scripts/pardl): aggregate Gbit/s,
#             Jain's fairness index of the flows' rates, and the packets
#             the link dropped on the way to the stack and from it
#   tunraw    the raw TUN's no-offload ceiling: scripts/tunwrite writes
#             1500-byte UDP packets into a TUN as fast as it can; they go to
#             the namespace's own address and an nftables rule drops them
# Nothing leaves the namespaces; each is deleted afterwards (also on
# failure or Ctrl-C); every transfer and loop is bounded in size and time.
# The machine is shared and noisy: compare columns of the same run.
#
# Usage: sudo scripts/bench.sh [-n ROUNDS] [-quick] [-only SECTIONS] [-cols COLUMNS]
#                               [-tundflags FLAGS] [-gvisorflags FLAGS] [-scale "FLAG V,..."]
#                               [-perf DIR]
#   -n ROUNDS   rounds; each figure is the median (default 3, -quick 1)
#   -quick      1 round, 256 MiB transfers, 1,000 held connections, shorter
#               windows: about a minute
#   -only LIST  comma-separated sections: download,upload,conns,echo,rss,parallel,tunraw
#   -cols LIST  comma-separated columns: gvisor,tund,tund6,tundoff,kernel
#               (default all but tund6)
#   -tundflags FLAGS  more flags for both tund columns, e.g. "-cc cubic"
#   -gvisorflags FLAGS  more flags for scripts/gvisorhttp's gVisor column,
#               e.g. "-gro=false" to see what one of its options is worth
#   -scale "FLAG V1,V2,..."  a scaling table as well: tund (offloads on,
#               -tundflags too) with FLAG set to each value, e.g.
#               -scale "-queues 1,2,4": download MTU 1500, Go upload and 32
#               parallel downloads for each, medians of the same rounds
#   -perf DIR   in round 1, record the server with perf (perf record -g)
#               during each download and Go upload: DIR/COLUMN-FIGURE.perf.data
#               and the top symbols in DIR/COLUMN-FIGURE.txt (the profiler
#               costs throughput: profile in a run of its own)
# Needs root, go, ip, curl, nc (OpenBSD), taskset, nft (and perf for -perf).
source "$(dirname "$0")/lib.sh"
PERF_PID=
# lib.sh's cleanup (the server, the namespaces, the work directory), after
# stopping a profiler that is still recording.
bench_cleanup() {
  if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID" 2>/dev/null || true; fi
  cleanup
}
trap bench_cleanup EXIT

usage() {
  sed -n 's/^# \{0,1\}//; /^Usage:/,/^Needs/p' "$0" >&2
  exit "${1:-2}"
}
ROUNDS= QUICK=0 TUNDFLAGS= GVISORFLAGS= PERF_DIR= SCALE=
SECTIONS=download,upload,conns,echo,rss,parallel,tunraw
COLS=gvisor,tund,tundoff,kernel
while [ $# -gt 0 ]; do
  case $1 in
    -n) ROUNDS=${2:-}; shift 2 || usage ;;
    -quick|--quick) QUICK=1; shift ;;
    -only) SECTIONS=${2:-}; shift 2 || usage ;;
    -cols) COLS=${2:-}; shift 2 || usage ;;
    -tundflags) TUNDFLAGS=${2:-}; shift 2 || usage ;;
    -gvisorflags) GVISORFLAGS=${2:-}; shift 2 || usage ;;
    -scale) SCALE=${2:-}; shift 2 || usage ;;
    -perf) PERF_DIR=${2:-}; shift 2 || usage ;;
    -h|-help|--help) usage 0 ;;
    *) echo "$0: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$ROUNDS" ] || { [ "$QUICK" = 1 ] && ROUNDS=1 || ROUNDS=3; }
case $ROUNDS in ''|*[!0-9]*|0) echo "$0: -n $ROUNDS: not a positive number" >&2; exit 2 ;; esac
for s in ${SECTIONS//,/ }; do
  case $s in download|upload|conns|echo|rss|parallel|tunraw) ;; *) echo "$0: unknown section $s" >&2; exit 2 ;; esac
done
for c in ${COLS//,/ }; do
  case $c in gvisor|tund|tund6|tundoff|kernel) ;; *) echo "$0: unknown column $c" >&2; exit 2 ;; esac
done
want() { case ",$SECTIONS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
need_root
for t in taskset nft ${PERF_DIR:+perf}; do command -v "$t" >/dev/null || { echo "$0: needs $t on PATH" >&2; exit 1; }; done
if [ -n "$PERF_DIR" ]; then
  mkdir -p "$PERF_DIR"
  PERF_DIR=$(cd "$PERF_DIR" && pwd)
fi
read -ra TUNDFLAGS_A <<<"$TUNDFLAGS"
read -ra GVISORFLAGS_A <<<"$GVISORFLAGS"
SCALE_FLAG= SCALE_VALS=()
if [ -n "$SCALE" ]; then
  read -r SCALE_FLAG vals rest <<<"$SCALE"
  case $SCALE_FLAG in -*) ;; *) echo "$0: -scale \"$SCALE\": want \"-flag V1,V2,...\"" >&2; exit 2 ;; esac
  [ -n "$vals" ] && [ -z "$rest" ] || { echo "$0: -scale \"$SCALE\": want \"-flag V1,V2,...\"" >&2; exit 2; }
  IFS=, read -ra SCALE_VALS <<<"$vals"
fi
SCALE_EXTRA=() # set while a scaling run's tund starts

if [ "$QUICK" = 1 ]; then
  DL=$((256 << 20)) UP=$((256 << 20)) CONNS=3000 ECHO_N=3000 HOLD="1000" PAR_WINDOW=2s RAW_DUR=2s
else
  DL=$((1 << 30)) UP=$((1 << 30)) CONNS=20000 ECHO_N=20000 HOLD="10000 5000" PAR_WINDOW=5s RAW_DUR=5s
fi
MTUS="1500 9000"
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
# 10,000 held connections need as many descriptors in the holder and in the
# kernel column's server (Go raises its soft limit to the hard one anyway).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for n in $HOLD; do
  if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((n + 1000)) ]; then
    echo "$0: holding $n connections needs more than $(ulimit -n) open files (ulimit -n)" >&2
    exit 1
  fi
done

echo "building..." >&2
(
  cd "$ROOT"
  go build -o "$WORK/tund" ./cmd/tund
  for p in gvisorhttp echolat upload pardl tunwrite load; do go build -o "$WORK/$p" "./scripts/$p"; done
)
OFFLOAD_FLAG=0
TUND_HELP=$("$WORK/tund" -h 2>&1 || true) # -h exits 2
grep -q -- '^ *-offload' <<<"$TUND_HELP" && OFFLOAD_FLAG=1
if [ "$OFFLOAD_FLAG" = 0 ]; then
  COLS=$(echo ",$COLS," | sed 's/,tundoff,/,/; s/^,//; s/,$//')
fi

RESULTS=$WORK/results # one line per measurement: key column round value
touch "$RESULTS"
rec() { [ -n "$4" ] && echo "$1 $2 $3 $4" >>"$RESULTS"; echo "  $1 $2 round $3: ${4:-failed}" >&2; }
# jnum KEY: the number after "KEY": in the JSON object on stdin.
jnum() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" | head -1; }
# cpu_ticks PID: user+system CPU time of a process, in clock ticks.
cpu_ticks() { { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null || echo; } | awk '{print $12 + $13}'; }
# cpu_per_gib TICKS0 TICKS1 BYTES: CPU seconds per GiB moved.
cpu_per_gib() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.3f", (b - a) / hz / (n / 2^30) }'; }
# devstat NS:DEV:STAT...: the sum of those interface counters.
devstat() {
  local sum=0 x v
  for x in "$@"; do
    IFS=: read -r ns dev st <<<"$x"
    v=$(ip netns exec "$ns" cat "/sys/class/net/$dev/statistics/$st" 2>/dev/null || echo 0)
    sum=$((sum + v))
  done
  echo "$sum"
}

# srv_start COLUMN MTU: a fresh server of that column in fresh namespaces.
# Sets NS (where the clients run), TUND_PID (the server process, whatever
# the column: lib.sh's cleanup stops it), DROPS_IN / DROPS_OUT (the link
# counters of packets dropped toward the server and from it).
SEQ=0
srv_start() {
  local col=$1 mtu=$2
  SEQ=$((SEQ + 1))
  NS=tb-$$-$SEQ
  # Where the clients go: the stack's IPv4 address, or for tund6 its IPv6
  # one (TARGET in brackets, for HOST:PORT and URLs; TARGET_HOST bare).
  TARGET=$STACK TARGET_HOST=$STACK
  if [ "$col" = tund6 ]; then TARGET=[$STACK6] TARGET_HOST=$STACK6; fi
  case $col in
    tund|tund6|tundoff)
      local extra=("${TUNDFLAGS_A[@]}" "${SCALE_EXTRA[@]}")
      [ "$col" = tundoff ] && extra+=(-offload=false)
      start_tund -mtu "$mtu" -control "$WORK/ctl-$SEQ.sock" "${extra[@]}"
      DROPS_IN="$NS:tund0:tx_dropped" DROPS_OUT="$NS:tund0:rx_dropped"
      # What the device really got: tund falls back to no offloads, with a
      # log line, where the kernel refuses them.
      local off
      off=$(sed -n 's/.*msg="TUN device ready".* offload=\([a-z]*\).*/\1/p' "$WORK/tund.log" | head -1)
      echo "$col ${off:-?}" >>"$WORK/offload-seen"
      ;;
    gvisor)
      ip netns add "$NS"
      "$WORK/gvisorhttp" -netns "$NS" -tun gv0 -addr "$STACK" -mtu "$mtu" "${GVISORFLAGS_A[@]}" >"$WORK/gvisor.log" 2>&1 &
      TUND_PID=$!
      wait_serving "$WORK/gvisor.log"
      [ -s "$WORK/gvisor.config" ] || sed -n 's/^config: //p' "$WORK/gvisor.log" | sed 's/, MTU [0-9]*,/,/' >"$WORK/gvisor.config"
      ip -n "$NS" addr add "$HOSTCIDR" dev gv0
      ip -n "$NS" link set gv0 mtu "$mtu" up
      ip -n "$NS" link set lo up
      DROPS_IN="$NS:gv0:tx_dropped" DROPS_OUT="$NS:gv0:rx_dropped"
      ;;
    kernel)
      local sns=$NS-k
      EXTRA_NS=$sns
      ip netns add "$NS"
      ip netns add "$sns"
      ip -n "$sns" link add ks type veth peer name kc netns "$NS"
      ip -n "$sns" addr add "$STACK/24" dev ks
      ip -n "$NS" addr add "$HOSTCIDR" dev kc
      ip -n "$sns" link set ks mtu "$mtu" up
      ip -n "$NS" link set kc mtu "$mtu" up
      ip -n "$sns" link set lo up
      ip -n "$NS" link set lo up
      ip netns exec "$sns" "$WORK/gvisorhttp" -kernel -addr "$STACK" >"$WORK/kernel.log" 2>&1 &
      TUND_PID=$!
      wait_serving "$WORK/kernel.log"
      [ -s "$WORK/kernel.config" ] || sed -n 's/^config: //p' "$WORK/kernel.log" >"$WORK/kernel.config"
      DROPS_IN="$NS:kc:tx_dropped $sns:ks:rx_dropped" DROPS_OUT="$sns:ks:tx_dropped $NS:kc:rx_dropped"
      ;;
  esac
  # The clients' congestion control: the kernel sends the uploads (and
  # the kernel column's downloads).
  KCC=${KCC:-$(ip netns exec "$NS" sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null || echo '?')}
}
wait_serving() {
  for _ in $(seq 100); do
    grep -q '^serving' "$1" 2>/dev/null && return 0
    kill -0 "$TUND_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "server did not start:" >&2
  cat "$1" >&2
  exit 1
}
srv_stop() {
  perf_stop
  kill -INT "$TUND_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$TUND_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$TUND_PID" 2>/dev/null || true
  wait "$TUND_PID" 2>/dev/null || true
  TUND_PID=
  ip netns del "$NS" 2>/dev/null || true
  for ns in $EXTRA_NS; do ip netns del "$ns" 2>/dev/null || true; done
  EXTRA_NS=
}

# perf_start NAME ROUND / perf_stop: with -perf, profile the server (round 1).
perf_start() {
  [ -n "$PERF_DIR" ] && [ "$2" = 1 ] || return 0
  PERF_NAME=$PERF_DIR/$1
  timeout -s INT 120 perf record -q -F 999 -g -p "$TUND_PID" -o "$PERF_NAME.perf.data" >/dev/null 2>&1 &
  PERF_PID=$!
  sleep 0.5 # let it attach
}
perf_stop() {
  [ -n "$PERF_PID" ] || return 0
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
  PERF_PID=
  perf report -i "$PERF_NAME.perf.data" --no-children --sort dso,symbol -g none --percent-limit 0.5 2>/dev/null |
    grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -40 >"$PERF_NAME.txt" || true
  echo "  profile: $PERF_NAME.perf.data, top symbols in $PERF_NAME.txt" >&2
}

# The sections. Each takes the column and the round; the server is running.
do_download() { # MTU
  local c0 c1 out speed size
  perf_start "$1-download-$3" "$2"
  c0=$(cpu_ticks "$TUND_PID")
  out=$(in_ns curl -sS --max-time 60 -o /dev/null -w '%{speed_download} %{size_download}' "http://$TARGET/bytes/$DL" 2>/dev/null) || true
  c1=$(cpu_ticks "$TUND_PID")
  perf_stop
  read -r speed size <<<"${out:-0 0}"
  if [ "${size%.*}" != "$DL" ]; then
    echo "  download MTU $3 on $1: got ${size:-0} of $DL bytes" >&2
    return
  fi
  rec "dl$3" "$1" "$2" "$(awk -v s="$speed" 'BEGIN { printf "%.2f", s * 8 / 1e9 }')"
  rec "cpu_dl$3" "$1" "$2" "$(cpu_per_gib "$c0" "$c1" "$size")"
}

do_upload() {
  local c0 c1 out t0 t1
  perf_start "$1-upload" "$2"
  c0=$(cpu_ticks "$TUND_PID")
  out=$(in_ns "$WORK/upload" -addr "$TARGET:9" -bytes "$UP" -limit 60s -json) || true
  c1=$(cpu_ticks "$TUND_PID")
  perf_stop
  if [ -n "$out" ]; then
    rec up_go "$1" "$2" "$(jnum gbit_per_second <<<"$out" | awk '{printf "%.2f", $1}')"
    rec cpu_up "$1" "$2" "$(cpu_per_gib "$c0" "$c1" "$UP")"
  fi
  [ "${3:-}" != go ] || return 0
  t0=$(date +%s%N)
  if head -c "$UP" /dev/zero | in_ns timeout 60 nc -N "$TARGET_HOST" 9; then
    t1=$(date +%s%N)
    rec up_nc "$1" "$2" "$(awk -v n="$UP" -v ns=$((t1 - t0)) 'BEGIN { printf "%.2f", n * 8 / ns }')"
  fi
}

do_conns() {
  local out
  out=$(in_ns "$WORK/load" churn -addr "$TARGET:80" -n "$CONNS" -dialers 8 -size 100 -limit 60s -json -dev none) || true
  if [ "$(jnum done <<<"$out")" != "$CONNS" ]; then
    echo "  conns on $1: $(jnum done <<<"$out") of $CONNS requests answered" >&2
  fi
  rec cps "$1" "$2" "$(jnum per_second <<<"$out" | awk '{printf "%.0f", $1}')"
}

do_echo() {
  local all=0-$((NCPU - 1)) out
  taskset -a -p -c 0 "$TUND_PID" >/dev/null
  if [ "$NCPU" -ge 2 ]; then
    out=$(in_ns taskset -c 1 "$WORK/echolat" -addr "$TARGET:7" -n "$ECHO_N" -size 64 -limit 30s -json) || true
    rec rtt_split_p50 "$1" "$2" "$(jnum p50_us <<<"$out" | awk '{printf "%.0f", $1}')"
    rec rtt_split_p99 "$1" "$2" "$(jnum p99_us <<<"$out" | awk '{printf "%.0f", $1}')"
  fi
  out=$(in_ns taskset -c 0 "$WORK/echolat" -addr "$TARGET:7" -n "$ECHO_N" -size 64 -limit 30s -json) || true
  rec rtt_same_p50 "$1" "$2" "$(jnum p50_us <<<"$out" | awk '{printf "%.0f", $1}')"
  rec rtt_same_p99 "$1" "$2" "$(jnum p99_us <<<"$out" | awk '{printf "%.0f", $1}')"
  taskset -a -p -c "$all" "$TUND_PID" >/dev/null
}

do_rss() { # N
  local out
  out=$(in_ns "$WORK/load" conns -addr "$TARGET:7" -n "$3" -dialers 32 -size 64 -pid "$TUND_PID" -dev none -limit 120s -json) || true
  if [ "$(jnum verified <<<"$out")" != "$3" ]; then
    echo "  rss on $1: $(jnum verified <<<"$out") of $3 connections held and echoed" >&2
    return
  fi
  rec "rss$3" "$1" "$2" "$(jnum rss_per_conn <<<"$out" | awk '{printf "%.1f", $1 / 1024}')"
}

do_parallel() {
  local in0 out0 out
  in0=$(devstat $DROPS_IN) out0=$(devstat $DROPS_OUT)
  out=$(in_ns "$WORK/pardl" -addr "$TARGET:80" -flows 32 -warmup 1s -window "$PAR_WINDOW" -limit 60s -json) || true
  [ -n "$out" ] || return 0
  rec par_gbps "$1" "$2" "$(jnum aggregate_gbit_per_second <<<"$out" | awk '{printf "%.2f", $1}')"
  rec par_jain "$1" "$2" "$(jnum jain <<<"$out" | awk '{printf "%.3f", $1}')"
  rec par_drop_in "$1" "$2" $(($(devstat $DROPS_IN) - in0))
  rec par_drop_out "$1" "$2" $(($(devstat $DROPS_OUT) - out0))
}

# do_tunraw ROUND: the raw TUN ceiling, in a namespace of its own.
do_tunraw() {
  local out
  SEQ=$((SEQ + 1))
  NS=tb-$$-$SEQ
  ip netns add "$NS"
  ip -n "$NS" tuntap add dev tw0 mode tun
  ip -n "$NS" addr add "$HOSTCIDR" dev tw0
  ip -n "$NS" link set tw0 up
  in_ns nft -f - <<'NFT'
table ip tunwrite {
  chain in {
    type filter hook input priority -300;
    udp dport 9 drop
  }
}
NFT
  out=$(in_ns "$WORK/tunwrite" -tun tw0 -src "$STACK" -dst "${HOSTCIDR%/*}" -port 9 -size 1500 -duration "$RAW_DUR" -json) || true
  rec raw_pps - "$1" "$(jnum packets_per_second <<<"$out" | awk '{printf "%.0f", $1}')"
  rec raw_gbps - "$1" "$(jnum gbit_per_second <<<"$out" | awk '{printf "%.2f", $1}')"
  ip netns del "$NS"
}

START=$(date +%s)
REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+changes')"
echo "tund bench, $NCPU cores, $(date -u +%Y-%m-%dT%H:%MZ), $(go env GOVERSION), kernel $(uname -r), tund $REV, $ROUNDS round(s)$([ "$QUICK" = 1 ] && echo ', quick')" >&2
read -ra cols <<<"${COLS//,/ }"
for r in $(seq "$ROUNDS"); do
  want tunraw && do_tunraw "$r"
  # Rotate the columns' order from round to round, so that none always
  # runs first (or last) on a machine whose load drifts.
  for i in $(seq 0 $((${#cols[@]} - 1))); do
    col=${cols[$(((i + r - 1) % ${#cols[@]}))]}
    echo "round $r/$ROUNDS: $col" >&2
    if want rss; then
      for n in $HOLD; do srv_start "$col" 1500; do_rss "$col" "$r" "$n"; srv_stop; done
    fi
    if want download || want upload || want conns || want parallel || want echo; then
      srv_start "$col" 1500
      if want download; then do_download "$col" "$r" 1500; fi
      if want upload; then do_upload "$col" "$r"; fi
      if want conns; then do_conns "$col" "$r"; fi
      if want parallel; then do_parallel "$col" "$r"; fi
      if want echo; then do_echo "$col" "$r"; fi # last: it pins the server to a CPU
      srv_stop
    fi
    if want download; then
      srv_start "$col" 9000; do_download "$col" "$r" 9000; srv_stop
    fi
  done
  for v in "${SCALE_VALS[@]}"; do
    echo "round $r/$ROUNDS: tund $SCALE_FLAG $v" >&2
    SCALE_EXTRA=("$SCALE_FLAG" "$v")
    srv_start tund 1500
    SCALE_EXTRA=()
    do_download "scale:$v" "$r" 1500
    do_upload "scale:$v" "$r" go
    do_parallel "scale:$v" "$r"
    srv_stop
  done
done
ELAPSED=$(($(date +%s) - START))

# The table: medians.
# med KEY COL: the median of that figure, or nothing.
med() {
  awk -v k="$1" -v c="$2" '$1 == k && $2 == c { print $4 }' "$RESULTS" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
# cell COL KEY...: the medians of those figures, " / " between them.
cell() {
  local col=$1 out= v k
  shift
  if [ "$col" = tundoff ] && [ "$OFFLOAD_FLAG" = 0 ]; then echo "n/a"; return; fi
  for k in "$@"; do
    v=$(med "$k" "$col")
    out+="${out:+ / }${v:-–}"
  done
  echo "$out"
}
# ratio KEY...: tund's median over gVisor's, for each figure.
ratio() {
  local out= k a b
  for k in "$@"; do
    a=$(med "$k" tund) b=$(med "$k" gvisor)
    out+="${out:+ / }$(awk -v a="$a" -v b="$b" 'BEGIN { if (a != "" && b != "" && b != 0) printf "%.2f×", a / b; else printf "–" }')"
  done
  echo "$out"
}
row() { # LABEL KEY...
  local label=$1
  shift
  [ -n "$(awk -v k="$1" '$1 == k && $2 ~ /^(gvisor|tund|tund6|tundoff|kernel)$/' "$RESULTS" | head -1)" ] || return 0
  echo "| $label | $(cell gvisor "$@") | $(cell tund "$@")$(v6cell "$@") | $(cell tundoff "$@") | $(cell kernel "$@") | $(ratio "$@") |"
}
# v6cell KEY...: the tund IPv6 column's cell, with its separator, when
# that column was asked for.
v6cell() {
  case ",$COLS," in *,tund6,*) echo " | $(cell tund6 "$@")" ;; esac
}

echo
echo "tund bench, $NCPU cores, $(date -u +%Y-%m-%d), $(go env GOVERSION), kernel $(uname -r), tund $REV; median of $ROUNDS round(s)$([ "$QUICK" = 1 ] && echo ' (-quick)'), $((ELAPSED / 60)) min $((ELAPSED % 60)) s"
echo
case ",$COLS," in
  *,tund6,*)
    echo "| figure | gVisor | tund | tund IPv6 | tund -offload=false | kernel (veth) | tund/gVisor |"
    echo "|---|---|---|---|---|---|---|" ;;
  *)
    echo "| figure | gVisor | tund | tund -offload=false | kernel (veth) | tund/gVisor |"
    echo "|---|---|---|---|---|---|" ;;
esac
row "download, curl, MTU 1500 (Gbit/s)" dl1500
row "download, curl, MTU 9000 (Gbit/s)" dl9000
row "upload, Go client / nc, MTU 1500 (Gbit/s)" up_go up_nc
row "short connections/s, 8 clients" cps
row "echo RTT p50 / p99, split CPUs (µs)" rtt_split_p50 rtt_split_p99
row "echo RTT p50 / p99, same CPU (µs)" rtt_same_p50 rtt_same_p99
for n in $HOLD; do
  row "RSS per idle connection, $(sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$n") held on echo (KiB)" "rss$n"
done
row "CPU s per GiB, download MTU 1500 / 9000" cpu_dl1500 cpu_dl9000
row "CPU s per GiB, upload (Go client)" cpu_up
row "32 parallel downloads: Gbit/s in all" par_gbps
row "32 parallel downloads: Jain's fairness" par_jain
row "32 parallel downloads: packets dropped to / from the stack" par_drop_in par_drop_out
RAW_PPS=$(med raw_pps -) RAW_GBPS=$(med raw_gbps -)
if [ -n "$RAW_PPS" ]; then
  echo
  echo "Raw TUN, no offloads: one writer of 1500-byte packets reaches $RAW_PPS packets/s = $RAW_GBPS Gbit/s (median)."
fi

if [ ${#SCALE_VALS[@]} -gt 0 ]; then
  echo
  echo "| tund $SCALE_FLAG | download MTU 1500 (Gbit/s) | upload, Go client (Gbit/s) | 32 parallel downloads (Gbit/s) | Jain's fairness | packets dropped to / from the stack |"
  echo "|---|---|---|---|---|---|"
  for v in "${SCALE_VALS[@]}"; do
    echo "| $v | $(cell "scale:$v" dl1500) | $(cell "scale:$v" up_go) | $(cell "scale:$v" par_gbps) | $(cell "scale:$v" par_jain) | $(cell "scale:$v" par_drop_in par_drop_out) |"
  done
fi

# The issue's targets, where this run has the figures.
target() { # DESCRIPTION A OP B: "met" if A OP B
  [ -n "$2" ] && [ -n "$4" ] || return 0
  local ok
  ok=$(awk -v a="$2" -v b="$4" -v op="$3" 'BEGIN { print ((op == ">=" && a >= b) || (op == "<=" && a <= b) || (op == "<" && a < b)) ? "met" : "NOT met" }')
  echo "- $1: $2 $3 $4: $ok"
}
times() { [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a * b }'; }
targets() {
target "download MTU 1500 >= 2x the raw TUN ceiling (Gbit/s)" "$(med dl1500 tund)" ">=" "$(times 2 "$RAW_GBPS")"
[ "$OFFLOAD_FLAG" = 0 ] || target "download MTU 1500 >= 3x tund -offload=false" "$(med dl1500 tund)" ">=" "$(times 3 "$(med dl1500 tundoff)")"
target "download MTU 9000 >= 1.5x gVisor" "$(med dl9000 tund)" ">=" "$(times 1.5 "$(med dl9000 gvisor)")"
target "upload (Go client) >= 1.5x gVisor" "$(med up_go tund)" ">=" "$(times 1.5 "$(med up_go gvisor)")"
target "upload (nc) >= 1.5x gVisor" "$(med up_nc tund)" ">=" "$(times 1.5 "$(med up_nc gvisor)")"
for n in $HOLD; do
  [ "$n" = 10000 ] || continue
  target "RSS per idle connection, 10,000 held <= 6 KiB" "$(med rss10000 tund)" "<=" 6
  target "RSS per idle connection, 10,000 held <= half gVisor's (KiB)" "$(med rss10000 tund)" "<=" "$(times 0.5 "$(med rss10000 gvisor)")"
done
target "connections/s >= 2.5x gVisor" "$(med cps tund)" ">=" "$(times 2.5 "$(med cps gvisor)")"
target "echo p99 below gVisor's, split CPUs (µs)" "$(med rtt_split_p99 tund)" "<" "$(med rtt_split_p99 gvisor)"
target "echo p99 below gVisor's, same CPU (µs)" "$(med rtt_same_p99 tund)" "<" "$(med rtt_same_p99 gvisor)"
}
TARGETS=$(targets)
if [ -n "$TARGETS" ]; then
  echo
  echo "Targets (issue 12):"
  echo "$TARGETS"
fi

echo
echo "Per-run values, round by round (a failed run leaves its value out):"
awk '{ k = $1 " " $2; if (!(k in v)) order[++n] = k; v[k] = v[k] " " $4 } END { for (i = 1; i <= n; i++) print "  " order[i] ":" v[order[i]] }' "$RESULTS"
echo
echo "Sizes: download $((DL >> 20)) MiB, upload $((UP >> 20)) MiB, $CONNS short connections, $ECHO_N echo round trips, window ${PAR_WINDOW} for 32 flows, raw TUN ${RAW_DUR}."
for f in gvisor kernel; do
  [ -s "$WORK/$f.config" ] && echo "$f server: $(cat "$WORK/$f.config")"
done
if [ -s "$WORK/offload-seen" ]; then
  echo "tund's TUN offloads as its log reported them: $(sort "$WORK/offload-seen" | uniq -c | awk '{ printf "%s%s offload=%s x%d", (NR > 1 ? ", " : ""), $2, $3, $1 }')."
  if grep -q '^tund false' "$WORK/offload-seen"; then
    echo "WARNING: the tund column ran without offloads at least once (the kernel refused them): its figures are not tund's offload figures."
  fi
fi
echo "The kernel's TCP (the clients, the uploads' sender) uses ${KCC:-?} congestion control."
[ -z "$TUNDFLAGS" ] || echo "tund ran with $TUNDFLAGS."
[ -z "$GVISORFLAGS" ] || echo "gvisorhttp ran with $GVISORFLAGS."
[ "$OFFLOAD_FLAG" = 1 ] || echo "tund has no -offload flag yet: its column is tund's defaults, and tund -offload=false is n/a."
exit 0
