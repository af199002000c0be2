#!/usr/bin/env bash
# Lab: the CLOSE-WAIT pile-up of an application that never closes
# (docs/labs/close-wait.md).
source "$(dirname "$0")/lab.sh"
lab_tund -app 8001=never-close

step "Three clients say hello and hang up; the application never closes"
for i in 1 2 3; do
  echo "hello $i" | in_ns timeout 0.5 nc -N $STACK 8001 || true
done

step "tund's side: CLOSE-WAIT, the hello still unread in Recv-Q"
show tss -state close-wait

step "The kernel's side: FIN-WAIT-2, waiting for a FIN that never comes"
show in_ns ss -tan state fin-wait-2 dport = :8001

step "The trace: each connection stops at CLOSE-WAIT"
grep '^trace .*:8001\|^trace .*CLOSE-WAIT' "$WORK/tund.log" | grep -v LISTEN | tail -n 3
