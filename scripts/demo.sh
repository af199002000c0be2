#!/usr/bin/env bash
# demo.sh: run tund in a throwaway network namespace and talk to it with
# ping, curl and nc, then tear everything down. Needs root.
source "$(dirname "$0")/lib.sh"
need_root
start_tund "$@"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step ping -c 3 $STACK
in_ns ping -c 3 -i 0.2 $STACK

step curl http://$STACK/
in_ns curl -sS --max-time 10 http://$STACK/ | sed -e 's/<[^>]*>/ /g' | grep -v '^ *$'

step "curl -o /dev/null http://$STACK/bytes/104857600"
in_ns curl -sS --max-time 60 -o /dev/null -w 'downloaded %{size_download} bytes at %{speed_download} bytes/s\n' \
  http://$STACK/bytes/104857600

step "echo: 1 MiB of random bytes through nc $STACK 7, checksums compared"
head -c 1048576 /dev/urandom > "$WORK/in"
in_ns timeout 30 nc -N $STACK 7 < "$WORK/in" > "$WORK/out"
sha256sum "$WORK/in" "$WORK/out" | sed "s|$WORK/||"
cmp -s "$WORK/in" "$WORK/out" && echo "echo: identical"

step "discard: nc $STACK 9"
in_ns timeout 30 nc -N $STACK 9 < "$WORK/in" && echo "discard: sent 1 MiB"

step "chargen: nc $STACK 19 (first 3 lines)"
in_ns timeout 2 nc $STACK 19 2>/dev/null | head -n 3 || true

step curl http://$STACK/stats
in_ns curl -sS --max-time 10 http://$STACK/stats

echo; echo "tund's log:"; cat "$WORK/tund.log"
