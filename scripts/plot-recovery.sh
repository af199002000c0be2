#!/usr/bin/env bash
# plot-recovery.sh: a real application's loss recovery, as a picture.
# In a throwaway namespace the distribution's nginx serves a file on the
# kernel side; tund forwards its port 8080 to it (-forward) with random
# loss on what tund sends (-impair-out loss=N%) and records every packet
# (-pcap, taken where the stack sees them, so the lost ones are in it);
# curl downloads the file through tund. Then scripts/tsgraph draws the
# download's time-sequence graph, whole and zoomed on its first
# retransmission, and prints its retransmissions and stalls.
# Usage: sudo scripts/plot-recovery.sh [-l LOSS%] [-s SIZE_MiB] [-c CC] [-o OUT_PREFIX] [-- extra tund flags]
# Writes OUT_PREFIX.svg, OUT_PREFIX-zoom.svg and OUT_PREFIX.pcap.
source "$(dirname "$0")/lib.sh"
LOSS=2 SIZE_MIB=8 CC=cubic OUT=$PWD/recovery
while getopts l:s:c:o: opt; do
  case $opt in
    l) LOSS=$OPTARG ;; s) SIZE_MIB=$OPTARG ;; c) CC=$OPTARG ;; o) OUT=$OPTARG ;;
    *) echo "usage: $0 [-l LOSS%] [-s SIZE_MiB] [-c CC] [-o OUT_PREFIX] [-- extra tund flags]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
need_root
case $SIZE_MIB in ''|*[!0-9]*|0) echo "$0: -s $SIZE_MIB: want a whole number of MiB" >&2; exit 2 ;; esac

mkdir "$WORK/www"
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$WORK/www/file"
start_tund -forward "8080=198.18.0.1:8081" -cc "$CC" -impair-out "loss=$LOSS%" -pcap "$OUT.pcap" "$@"
start_nginx "$WORK/www"
in_ns curl -sS --fail --max-time 300 -o "$WORK/got" \
  -w "curl: %{size_download} bytes in %{time_total} s through tund's -forward to nginx, $LOSS% loss on tund's sends, $CC\n" \
  "http://$STACK:8080/file"
cmp -s "$WORK/got" "$WORK/www/file" || { echo "$0: the download differs from the file" >&2; exit 1; }
# Stop tund so the capture is flushed and closed.
kill -INT "$TUND_PID"; wait "$TUND_PID" 2>/dev/null || true; TUND_PID=
(cd "$ROOT" && go run ./scripts/tsgraph -o "$OUT.svg" -flow "$STACK:8080" \
  -title "nginx → curl through tund, $LOSS% loss on tund's sends${*:+ ($*)}, $CC" "$OUT.pcap")
(cd "$ROOT" && go run ./scripts/tsgraph -o "$OUT-zoom.svg" -flow "$STACK:8080" -zoom 6ms \
  -title "the first recovery, close up" "$OUT.pcap" >/dev/null)
# A second opinion on the count, from Wireshark's own TCP analysis.
if command -v tshark >/dev/null; then
  # tshark calls a segment sent again within about a round trip of the
  # original "out of order" rather than a retransmission.
  ts() { tshark -r "$OUT.pcap" -Y "tcp.srcport == 8080 && $1" 2>/dev/null | wc -l; }
  echo "tshark: $(ts tcp.analysis.retransmission) retransmissions ($(ts tcp.analysis.fast_retransmission) fast)," \
    "$(ts tcp.analysis.out_of_order) segments out of order, $(ts tcp.analysis.spurious_retransmission) spurious"
fi
echo "wrote $OUT.svg, $OUT-zoom.svg and $OUT.pcap"
