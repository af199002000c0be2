#!/usr/bin/env bash
# Lab: simultaneous close, through CLOSING (docs/labs/simultaneous-close.md).
source "$(dirname "$0")/lab.sh"
# The kernel's packets reach tund 50 ms late: long enough for both FINs
# to be on the wire before either side hears of the other's.
lab_tund -msl 2s -impair-in delay=50ms

step "A kernel server that closes the moment it accepts (nc -N, nothing to send)"
in_ns nc -N -l $HOST 8081 </dev/null >/dev/null &
sleep 0.3

step "tund connects and closes 10 ms later, without waiting for the server"
m=$(mark)
show tdial -close both -hold 10ms $HOST:8081
sleep 0.5

step "The trace: both FINs crossed, so tund went through CLOSING"
trace_since "$m" | grep -v 'CLOSED → LISTEN'
lab_wait
