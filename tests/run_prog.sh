#!/usr/bin/env bash
# run_prog.sh HOOK PROG [ARGS...] — run a plain program once natively and twice under
# LD_PRELOAD=HOOK (COHOOK_WORKERS=1, then COHOOK_WORKERS=2), each in its own process with a timeout,
# and require each preloaded run to give the native run's stdout and exit status.
#
# Programs print only what must match (results, not timings) on stdout, diagnostics on stderr.
# PROG_TIMEOUT (seconds, default 60) bounds each run; PROG_WRAP (e.g. "valgrind -q") wraps the
# preloaded runs. PROG_PRELOAD_AFTER (a library path, or empty) is preloaded after HOOK in the
# preloaded runs and alone in the native run, so that both use the same allocator (tests/alloc/).
set -u
# The dynamic loader looks a preload without a slash up in the library path, and a preload it
# cannot find is skipped with a warning: make both absolute, and refuse missing ones.
for f in "$1" ${PROG_PRELOAD_AFTER:+"$PROG_PRELOAD_AFTER"}; do
  [ -e "$f" ] || { echo "run_prog.sh: $f: no such file" >&2; exit 2; }
done
# The program itself must be there: a missing one "exits 127" natively and preloaded alike.
[ -x "$2" ] || { echo "run_prog.sh: $2: no such executable (did it build?)" >&2; exit 2; }
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
hook=$(abs "$1")
shift
t=${PROG_TIMEOUT:-60}
after=${PROG_PRELOAD_AFTER:-}
[ -z "$after" ] || after=$(abs "$after")
worker_counts=(1 2)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# "139 (SIGSEGV)" for a status that timeout(1) reports for a signal, the number otherwise
status() {
  local s=$1
  if [ "$s" -gt 128 ] && [ "$s" -lt 160 ] && [ "$s" != 124 ]; then
    echo "$s (SIG$(kill -l $((s - 128)) 2>/dev/null || echo '?'))"
  else
    echo "$s"
  fi
}

# bounded NAME CMD...: CMD under timeout, stdout and stderr to $dir/NAME.out and .err; sets rc.
# timeout(1) makes a process group of its own: whatever the program left behind (a forked child
# of a run that crashed) is killed with it afterwards.
bounded() {
  local name=$1
  shift
  timeout -k 5 "$t" "$@" <&0 >"$dir/$name.out" 2>"$dir/$name.err" &
  local pid=$!
  wait "$pid"
  rc=$?
  kill -KILL -- "-$pid" 2>/dev/null
  return 0
}

if [ -n "$after" ]; then
  bounded native env LD_PRELOAD="$after" "$@"
else
  bounded native "$@"
fi
rc_native=$rc

fail=0
if [ "$rc_native" = 124 ] || [ "$rc_native" = 137 ]; then echo "native run timed out after ${t}s"; fail=1; fi
bad=()
for w in "${worker_counts[@]}"; do
  # shellcheck disable=SC2086 # PROG_WRAP is a command line
  bounded "hooked$w" env LD_PRELOAD="$hook${after:+ $after}" COHOOK_WORKERS="$w" ${PROG_WRAP:-} "$@"
  wfail=0
  what="preloaded run with COHOOK_WORKERS=$w"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "$what timed out after ${t}s"; wfail=1; fi
  if grep -q "cannot be preloaded" "$dir/hooked$w.err"; then echo "$what: the loader did not preload"; wfail=1; fi
  if [ "$rc_native" != "$rc" ]; then
    echo "$what: exit status differs: native $(status "$rc_native"), preloaded $(status "$rc")"
    wfail=1
  fi
  if ! cmp -s "$dir/native.out" "$dir/hooked$w.out"; then
    echo "$what: stdout differs (native <, preloaded >):"
    diff "$dir/native.out" "$dir/hooked$w.out" | head -40
    wfail=1
  fi
  if [ "$wfail" = 1 ]; then
    echo "--- stderr of the $what"
    head -c 4000 "$dir/hooked$w.err"
    bad+=("$w")
    fail=1
  fi
done

if [ "$fail" = 1 ]; then
  echo "--- native stderr"
  head -c 4000 "$dir/native.err"
  echo "FAIL (differs with COHOOK_WORKERS=${bad[*]:-none}${after:+; PROG_PRELOAD_AFTER=$after}): $*"
  exit 1
fi
lines=$(wc -l <"$dir/native.out")
echo "same output ($lines lines) and exit status ($rc_native) natively and preloaded" \
  "(COHOOK_WORKERS=${worker_counts[*]}${after:+, allocator $after}): $*"
