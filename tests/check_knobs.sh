#!/usr/bin/env bash
# check_knobs.sh LIBHOOK — every COHOOK_* knob: a bad value stops the program before main with one line
# on stderr naming the knob and the value, and exit status 1; good values run it normally.
set -u
hook=$1
fail=0
bad() { # KNOB VALUE
  local err rc
  err=$(env "$1=$2" LD_PRELOAD="$hook" /bin/true 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" != 1 ] || [ "$(printf '%s\n' "$err" | wc -l)" != 1 ] || [[ "$err" != "cohook: $1=$2: "* ]]; then
    echo "FAIL $1=$2: exit $rc, stderr: $err"
    fail=1
  else
    echo "ok   $1=$2 -> $err"
  fi
}
good() { # KNOB VALUE
  local err
  if ! err=$(env "$1=$2" LD_PRELOAD="$hook" /bin/true 2>&1) || [ -n "$err" ]; then
    echo "FAIL $1=$2 refused: $err"
    fail=1
  else
    echo "ok   $1=$2 accepted"
  fi
}
bad COHOOK_WORKERS 0; bad COHOOK_WORKERS banana; bad COHOOK_WORKERS ""; good COHOOK_WORKERS 3
bad COHOOK_STACK_SIZE 4K; bad COHOOK_STACK_SIZE lots; good COHOOK_STACK_SIZE 1M
bad COHOOK_THREADS green; good COHOOK_THREADS native; good COHOOK_THREADS coroutine
bad COHOOK_TLS shared; good COHOOK_TLS worker; good COHOOK_TLS coroutine
bad COHOOK_STATS ""; bad COHOOK_STATS /nonexistent-dir/stats.txt; good COHOOK_STATS 0
bad COHOOK_LOG loud; good COHOOK_LOG off; good COHOOK_LOG warn; good COHOOK_LOG debug
bad COHOOK_TRACE -5; bad COHOOK_TRACE 1s; bad COHOOK_TRACE 3600001; good COHOOK_TRACE 0; good COHOOK_TRACE 100
bad COHOOK_HANDOFF_US 99; bad COHOOK_HANDOFF_US 10000001; bad COHOOK_HANDOFF_US 5ms; good COHOOK_HANDOFF_US 5000
bad COHOOK_MAX_THREADS 0; bad COHOOK_MAX_THREADS many; good COHOOK_MAX_THREADS 100
bad COHOOK_HANDOFF no; good COHOOK_HANDOFF off; good COHOOK_HANDOFF on
bad COHOOK_STEAL yes; good COHOOK_STEAL off; good COHOOK_STEAL on

# A COHOOK_* variable that is no knob: one warning naming the closest knob, and the program runs on.
typo() { # VARIABLE SUGGESTION
  local err rc want="cohook: $1 is not a cohook setting (did you mean $2?); it is ignored"
  err=$(env "$1=4" LD_PRELOAD="$hook" /bin/true 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" != 0 ] || [ "$err" != "$want" ]; then
    echo "FAIL $1=4: exit $rc, stderr: $err (want: $want)"
    fail=1
  else
    echo "ok   $1=4 -> $err"
  fi
}
typo COHOOK_WORKER COHOOK_WORKERS; typo COHOOK_STAT COHOOK_STATS; typo COHOOK_TRACE_MS COHOOK_TRACE
typo COHOOK_STACKSIZE COHOOK_STACK_SIZE; typo COHOOK_HANDOFFUS COHOOK_HANDOFF_US
exit "$fail"
