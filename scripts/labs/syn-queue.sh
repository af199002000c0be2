#!/usr/bin/env bash
# Lab: half-open connections fill the SYN queue; then SYN cookies
# (docs/labs/syn-queue.md). Pass -syncookies=false to see the drops.
source "$(dirname "$0")/lab.sh"
lab_tund -app 8003=never-accept,backlog=2 "$@"

step "The kernel's ACKs that would finish the handshakes are dropped (nftables)"
show in_ns nft add table inet lab
show in_ns nft add chain inet lab out '{ type filter hook output priority 0 ; }'
show in_ns nft add rule inet lab out oifname tund0 tcp dport 8003 tcp flags == ack drop

step "Three clients connect: tund's side never sees the handshake end"
for i in 1 2 3; do
  in_ns timeout 3 nc -d $STACK 8003 &
  sleep 0.3
done
sleep 0.5

step "tund: two half-open connections fill the SYN queue (syn-queue 2/2)"
show tss

step "The trace: the third SYN found the SYN queue full"
grep '^trace .*SYN queue full' "$WORK/tund.log" | head -n 2
lab_wait
