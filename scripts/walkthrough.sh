#!/usr/bin/env bash
# walkthrough.sh: walk connections through the RFC 9293 state diagram with
# real tools and print what tund saw: its -trace lines and `tund ss`.
# Everything runs in a throwaway network namespace. Needs root.
# The output is what docs/life-of-a-connection.md quotes.
source "$(dirname "$0")/lib.sh"
need_root
CTL=$WORK/ctl.sock
start_tund -trace -msl 5s -control "$CTL" "$@"
step() { printf '\n### %s\n\n' "$*"; }
# trace_since N: the trace lines printed after line N of the log, with
# the peer's ephemeral port made stable for the docs.
mark() { wc -l < "$WORK/tund.log"; }
trace_since() { tail -n +"$(( $1 + 1 ))" "$WORK/tund.log" | grep '^trace ' || true; }
ss() { "$WORK/tund" ss -control "$CTL" "$@"; }

step "The listeners tund opened at start"
grep '^trace ' "$WORK/tund.log"

step "1. The client closes first: curl http://$STACK/bytes/100"
m=$(mark)
in_ns curl -sS --max-time 10 -o /dev/null http://$STACK/bytes/100
sleep 0.2
trace_since "$m"

step "2. The server closes first: curl -H 'Connection: close' http://$STACK/bytes/100"
echo "(usually; curl closes as soon as it has the whole response, so now and then the FINs"
echo " cross, FIN-WAIT-1 → CLOSING → TIME-WAIT, or curl is first: see docs/labs/)"
echo
m=$(mark)
in_ns curl -sS --max-time 10 -o /dev/null -H 'Connection: close' http://$STACK/bytes/100
sleep 0.2
trace_since "$m"
echo
echo '$ tund ss'
ss

step "3. Half-close: nc -N $STACK 7 sends, shuts down its side, still reads the echo"
m=$(mark)
echo hello | in_ns timeout 5 nc -N $STACK 7
sleep 0.2
trace_since "$m"

step "4. A connection that stays open: nc $STACK 9 (discard) for a second, seen by tund ss -i"
m=$(mark)
in_ns timeout 1 nc $STACK 9 < /dev/zero >/dev/null 2>&1 &
NC=$!
sleep 0.5
echo '$ tund ss -i -state established'
ss -i -state established
wait $NC || true  # timeout ends nc with status 124
sleep 0.2
trace_since "$m"

step "5. Ten short connections where the server closes first, then tund ss -s"
for _ in $(seq 10); do
  in_ns curl -sS --max-time 10 -o /dev/null -H 'Connection: close' http://$STACK/bytes/10
done
sleep 0.2
echo '$ tund ss -s'
ss -s
echo "(2MSL = 10 s with -msl 5s; waiting...)"
sleep 10.5
echo '$ tund ss -s'
ss -s
grep -c 'TIME-WAIT → CLOSED on 2MSL timeout' "$WORK/tund.log" | sed 's/$/ TIME-WAIT entries expired/'
