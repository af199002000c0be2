#!/usr/bin/env bash
# Lab: the server's path, and a server that closes first piling up
# TIME-WAIT entries (docs/labs/server-path.md).
source "$(dirname "$0")/lab.sh"
lab_tund -msl 5s -app 8005=half-close

step "One connection to a server that closes first (-app half-close: a line, then its FIN)"
m=$(mark)
show in_ns nc -d $STACK 8005
sleep 0.2
trace_since "$m" | grep -v 'CLOSED → LISTEN'

step "100 more: every one leaves a TIME-WAIT entry on tund's side"
for i in $(seq 100); do
  in_ns nc -d $STACK 8005 >/dev/null
done
show tss -s

step "2MSL later (-msl 5s: 10 s) they are gone"
sleep 10.5
show tss -s
