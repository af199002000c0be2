#!/usr/bin/env bash
# Lab: the client's path through the diagram, on tund's side
# (docs/labs/client-path.md). "client-path.sh second": the server closes
# first instead (CLOSE-WAIT, LAST-ACK on tund's side).
source "$(dirname "$0")/lab.sh"
lab_tund -msl 2s

if [ "${1:-first}" = second ]; then
  step "A kernel server that sends 100 bytes and closes at once"
  labserver -listen $HOST:8080 -close at-once -send 100
  step "tund dials it and waits for the server to close first"
  m=$(mark)
  show tdial -close second $HOST:8080
  sleep 0.3
  step "The trace: ESTABLISHED, CLOSE-WAIT (the server's FIN), LAST-ACK, CLOSED"
  trace_since "$m" | grep -v 'CLOSED → LISTEN'
  lab_wait
  exit 0
fi

step "A kernel server in tund's namespace: it reads to the client's FIN, waits 1 s, closes"
labserver -listen $HOST:8080 -close after-eof -linger 1s

step "tund dials it, sends 1000 bytes and, 200 ms later, closes first"
m=$(mark)
show tdial -send 1000 -close first -hold 200ms $HOST:8080
sleep 0.3

step "tund ss: tund's side waits in FIN-WAIT-2 for the server's FIN"
show tss -state fin-wait-2
sleep 1.2

step "tund ss: the server closed; tund's side holds TIME-WAIT, its timer running"
show tss -state time-wait

step "The trace: SYN-SENT, ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT"
trace_since "$m" | grep -v 'CLOSED → LISTEN'

step "2MSL later (-msl 2s: 4 s) the entry is gone"
sleep 4
trace_since "$m" | grep '2MSL timeout'
lab_wait
