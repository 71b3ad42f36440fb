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
exit "$fail"
