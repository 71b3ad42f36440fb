#!/usr/bin/env bash
# run_prog.sh HOOK PROG [ARGS...] — run a plain program natively and under LD_PRELOAD=HOOK, each in
# its own process with a timeout, and require the same stdout and the same exit status.
#
# Programs print only what must match (results, not timings) on stdout, diagnostics on stderr.
# PROG_TIMEOUT (seconds, default 60) bounds each run; PROG_WRAP (e.g. "valgrind -q") wraps the
# preloaded run.
set -u
hook=$1
shift
t=${PROG_TIMEOUT:-60}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

timeout -k 5 "$t" "$@" >"$dir/native.out" 2>"$dir/native.err"
rc_native=$?
# shellcheck disable=SC2086 # PROG_WRAP is a command line
timeout -k 5 "$t" env LD_PRELOAD="$hook" ${PROG_WRAP:-} "$@" >"$dir/hooked.out" 2>"$dir/hooked.err"
rc_hooked=$?

fail=0
if [ "$rc_native" = 124 ] || [ "$rc_native" = 137 ]; then echo "native run timed out after ${t}s"; fail=1; fi
if [ "$rc_hooked" = 124 ] || [ "$rc_hooked" = 137 ]; then echo "preloaded run timed out after ${t}s"; fail=1; fi
if [ "$rc_native" != "$rc_hooked" ]; then echo "exit status differs: native $rc_native, preloaded $rc_hooked"; fail=1; fi
if ! cmp -s "$dir/native.out" "$dir/hooked.out"; then
  echo "stdout differs (native <, preloaded >):"
  diff "$dir/native.out" "$dir/hooked.out" | head -40
  fail=1
fi
if [ "$fail" = 1 ]; then
  echo "--- native stderr";    head -c 4000 "$dir/native.err"
  echo "--- preloaded stderr"; head -c 4000 "$dir/hooked.err"
  exit 1
fi
lines=$(wc -l <"$dir/native.out")
echo "same output ($lines lines) and exit status ($rc_native) natively and preloaded: $*"
