#!/usr/bin/env bash
# Lab: a listener that never accepts: the accept queue fills, then SYNs
# are dropped (docs/labs/accept-queue.md).
source "$(dirname "$0")/lab.sh"
lab_tund -app 8002=never-accept,backlog=2

step "Four clients connect to a listener whose backlog is 2 and nobody accepts"
# One at a time, 0.2 s apart: each finds the queue as the last one left
# it (clients racing in together is the variant in the lab's page).
for i in 1 2 3 4; do
  in_ns timeout 4 nc -d $STACK 8002 &
  sleep 0.2
done
sleep 1.5

step "tund's listener: Recv-Q (accept queue) 2 = Send-Q (backlog) 2"
show tss -state listen

step "The kernel's side: two connected, two still in SYN-SENT, retrying their SYN"
show in_ns ss -tan dport = :8002

step "The trace: the SYNs dropped because the accept queue is full"
grep '^trace .*accept queue full' "$WORK/tund.log" | head -n 4
lab_wait
