#!/usr/bin/env bash
# Lab: why TIME-WAIT exists: the last ACK is lost, the peer resends its
# FIN, TIME-WAIT answers it (docs/labs/time-wait.md).
source "$(dirname "$0")/lab.sh"
lab_tund -msl 2s

step "Lose tund's second bare ACK to port 8080 (the first finishes the handshake)"
# nftables counts bytes: a bare ACK with timestamps is 52 bytes, so the
# rule drops the packets after the first 52 bytes and up to 104.
show in_ns nft add table inet lab
show in_ns nft add chain inet lab in '{ type filter hook input priority 0 ; }'
show in_ns nft add rule inet lab in iifname tund0 tcp dport 8080 'tcp flags == ack' meta length 52 quota over 52 bytes quota until 52 bytes drop

step "A kernel server that closes when the client does (nc -d -l)"
in_ns nc -d -l $HOST 8080 >/dev/null &
sleep 0.3

step "tund connects, sends, closes first; the server closes; tund's last ACK is lost"
m=$(mark)
show tdial -send 1000 -close first $HOST:8080
sleep 1.5

step "The trace: the server's FIN again, re-ACKed, and the 2MSL wait started over"
trace_since "$m" | grep -v 'CLOSED → LISTEN'

step "The kernel's side saw its FIN answered at last and closed cleanly"
show in_ns ss -tan dport = :8080 or sport = :8080
show in_ns nft list chain inet lab in
lab_wait
