#!/usr/bin/env bash
# plot-cc.sh: NewReno against CUBIC on a lossy link, as a picture.
# Runs tund twice in a throwaway namespace with -impair-out loss (default
# 1%) and -trace-json, downloads the same file with curl each time, and
# draws the sender's congestion window over time for both into an SVG.
# Usage: sudo scripts/plot-cc.sh [-l LOSS%] [-s BYTES] [-o out.svg]
source "$(dirname "$0")/lib.sh"
LOSS=1 SIZE=67108864 OUT=$PWD/cwnd.svg
while getopts l:s:o: opt; do
  case $opt in
    l) LOSS=$OPTARG ;; s) SIZE=$OPTARG ;; o) OUT=$OPTARG ;;
    *) echo "usage: $0 [-l LOSS%] [-s BYTES] [-o out.svg]" >&2; exit 2 ;;
  esac
done
need_root
for cc in newreno cubic; do
  NS=tund-plot-$$-$cc
  start_tund -cc "$cc" -impair-out "loss=$LOSS%" -trace-json "$WORK/$cc.jsonl" -sample-interval 2ms -control none
  in_ns curl -sS --max-time 120 -o /dev/null -w "$cc: %{size_download} bytes at %{speed_download} bytes/s\n" "http://$STACK/bytes/$SIZE"
  kill -INT "$TUND_PID"; wait "$TUND_PID" 2>/dev/null || true; TUND_PID=
  ip netns del "$NS" 2>/dev/null || true
done
(cd "$ROOT" && go run ./scripts/plot -o "$OUT" -metric cwnd -title "cwnd, $LOSS% loss stack→kernel" \
  newreno="$WORK/newreno.jsonl" cubic="$WORK/cubic.jsonl")
echo "wrote $OUT"
