#!/usr/bin/env bash
# fuzz.sh: run every fuzz target of tund, one after the other, each for a
# bounded time, and fail if any finds a crash (the failing input is written
# under that package's testdata/fuzz/<Target>/ by go test; rerun it with
# `go test ./PKG -run '<Target>/<file>'`). Pure Go, no root, no network:
# the stack target runs two stacks over an in-memory link.
#
# Usage: scripts/fuzz.sh [DURATION [TARGET-REGEXP]]
#   DURATION  per target, as go test -fuzztime takes it, in s, m or h
#             (default 10m); each run is also killed at DURATION + 5m
#   TARGET    only the targets whose "pkg/Name" matches (default all)
# CI (.ci/run) runs `scripts/fuzz.sh 10s` after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10m}
FILTER=${2:-.}
case $DURATION in
  *[0-9]s) secs=${DURATION%s} ;;
  *[0-9]m) secs=$((${DURATION%m} * 60)) ;;
  *[0-9]h) secs=$((${DURATION%h} * 3600)) ;;
  *) echo "$0: duration $DURATION: want a number and s, m or h" >&2; exit 2 ;;
esac
case $secs in ''|*[!0-9]*) echo "$0: duration $DURATION: want a number and s, m or h" >&2; exit 2 ;; esac

# package target [extra go test flags]
TARGETS=(
  "./tcp FuzzParse"
  "./tcp FuzzConn"
  "./tcp FuzzConnPair"
  # Each run of the stack target takes milliseconds and its coverage moves
  # with goroutine scheduling: minimizing every new input for the default
  # 60 s would leave no time to fuzz.
  "./stack FuzzStackDemux -fuzzminimizetime=10x"
  "./ip FuzzParse"
  "./ip FuzzParse6"
  "./tun FuzzParseImpairment"
  "./tun FuzzSoftwareGSO"
)

# Go's fuzzing coordinator (before Go 1.27, golang/go#75804) can report a
# bare "context deadline exceeded" as the -fuzztime deadline passes, with
# no failing input: that run is a flake of the tool, not a finding. A run
# fails when the target wrote a failing input, or failed any other way.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=() flaked=()
for t in "${TARGETS[@]}"; do
  read -r pkg name extra <<<"$t"
  [[ "${pkg#./}/$name" =~ $FILTER ]] || continue
  echo "== $pkg $name for $DURATION"
  # shellcheck disable=SC2086 # $extra is a list of flags
  if ! timeout --kill-after=30s "$((secs + 300))s" \
      go test -run='^$' -fuzz="^$name\$" -fuzztime="$DURATION" $extra "$pkg" 2>&1 | tee "$log"; then
    if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
      echo "fuzz.sh: $pkg $name: the fuzzing coordinator's deadline race (golang/go#75804), no failing input: not a finding"
      flaked+=("$pkg $name")
    else
      failed+=("$pkg $name")
    fi
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
  exit 1
fi
note=""
[ ${#flaked[@]} -gt 0 ] && note=" (stopped by the coordinator race: ${flaked[*]})"
echo "fuzz.sh: every target ran $DURATION without a failure$note"
