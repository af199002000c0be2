#!/usr/bin/env bash
# Lab: a receiver that cannot keep up: the window shuts, the sender's
# persist timer probes it (docs/labs/zero-window.md).
source "$(dirname "$0")/lab.sh"
lab_tund -app 8003=slow-read,rate=2K

step "tund sends to a kernel server that reads nothing (nc into a full pipe)"
in_ns sh -c "nc -d -l $HOST 8082 | sleep 8" &
sleep 0.3
m=$(mark)
tdial -send 4000000 -close never -hold 6s $HOST:8082 >/dev/null &
sleep 4

step "tund ss -i: tund's side is stuck with a full send queue and a zero window"
show tss -i -state established

step "The trace: the persist timer's window probes, backing off"
trace_since "$m" | grep 'window probe' | head -n 5

step "The other way: a kernel client sends to tund's slow reader (-app slow-read, 2 KiB/s)"
head -c 1000000 /dev/zero | in_ns timeout 4 nc $STACK 8003 &
sleep 2
echo "tund's receive buffer is full (Recv-Q), so its window is shut:"
show tss -state established
echo "and the kernel's data waits in its send queue (Send-Q), probing:"
show in_ns ss -tan dport = :8003
lab_wait
