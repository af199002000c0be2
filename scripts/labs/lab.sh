# Shared by the labs (scripts/labs/*.sh): tund in a throwaway namespace
# (scripts/lib.sh: deleted on exit, also on failure or Ctrl-C), and small
# helpers that print each command before its output, as the lab pages in
# docs/labs/ show them. Nothing leaves the namespace.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
need_root
CTL=$WORK/ctl.sock
HOST=198.18.0.1

# lab_tund FLAGS...: tund with -trace and a control socket of its own.
lab_tund() { start_tund -trace -control "$CTL" "$@"; }

# labserver ARGS: the labs' kernel-side server (scripts/labserver), run in
# the namespace in the background.
labserver() {
  [ -x "$WORK/labserver" ] || (cd "$ROOT" && go build -o "$WORK/labserver" ./scripts/labserver)
  in_ns "$WORK/labserver" "$@" &
  sleep 0.3
}

# step TEXT: a heading.
step() { printf '\n## %s\n\n' "$*"; }

# show CMD...: print "$ CMD" and run it (in the namespace if it starts
# with in_ns).
show() {
  local shown=("$@") line="$" a
  [ "$1" = in_ns ] && shown=("${@:2}")
  for a in "${shown[@]}"; do
    case "$a" in *[\ \;\{\}]*) line+=" '$a'" ;; *) line+=" $a" ;; esac
  done
  echo "$line"
  "$@"
}

# tss ARGS: tund ss on this lab's tund.
tss() { "$WORK/tund" ss -control "$CTL" "$@"; }

# tdial ARGS: tund dial through this lab's tund.
tdial() { "$WORK/tund" dial -control "$CTL" "$@"; }

# mark / trace_since N: the trace lines tund printed after line N of its log.
mark() { wc -l < "$WORK/tund.log"; }
trace_since() { tail -n +"$(( $1 + 1 ))" "$WORK/tund.log" | grep '^trace ' || true; }

# lab_wait: wait for the lab's background commands (clients, servers),
# not for tund, which runs until the cleanup stops it.
lab_wait() {
  local p
  for p in $(jobs -p); do
    [ "$p" = "$TUND_PID" ] || wait "$p" || true
  done
}

# wait_for SECONDS CMD...: run CMD every 0.1 s until it succeeds.
wait_for() {
  local n=$(( $1 * 10 )); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "lab: timed out waiting for: $*" >&2
  return 1
}
