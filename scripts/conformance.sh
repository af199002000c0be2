#!/usr/bin/env bash
# conformance.sh: run TCP test suites this project did not write against
# tund (tund drill -lenient: packetdrill scripts in virtual time, no root,
# no network) and write docs/conformance.md with every script's result and,
# for each that does not pass, why.
#
# Usage: scripts/conformance.sh FREEBSD_TESTSUITE [PACKETDRILL]
#   FREEBSD_TESTSUITE  a checkout of https://github.com/freebsd-net/tcp-testsuite
#   PACKETDRILL        a checkout of https://github.com/google/packetdrill
# Nothing is downloaded, and nothing of the suites is copied into this
# repository: give paths to checkouts made elsewhere, e.g.
#   git clone https://github.com/freebsd-net/tcp-testsuite /tmp/tcp-testsuite
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 FREEBSD_TESTSUITE [PACKETDRILL]" >&2
  exit 2
fi
for d in "$@"; do
  [ -d "$d" ] || { echo "$0: $d: not a directory" >&2; exit 2; }
done
args=(-freebsd "$1")
[ $# -eq 2 ] && args+=(-packetdrill "$2")
go run ./scripts/conformance "${args[@]}" -out docs/conformance.md
