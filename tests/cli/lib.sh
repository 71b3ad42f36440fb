# lib.sh — what the cli checks share (sourced; the caller sets $dir, a scratch directory, and fail=0).

# check NAME WANT_STATUS STDERR_REGEX STDOUT_REGEX CMD... : run CMD (bounded), compare its status,
# stderr and stdout ("" skips a stream's check; "^$" requires it empty). A mismatch sets fail=1.
check() {
  local name=$1 want=$2 epat=$3 opat=$4 rc
  shift 4
  timeout -k 5 30 "$@" >"$dir/out" 2>"$dir/err"
  rc=$?
  if [ "$rc" != "$want" ] ||
     { [ -n "$epat" ] && ! grep -qE -- "$epat" <(cat "$dir/err"; [ -s "$dir/err" ] || echo); } ||
     { [ -n "$opat" ] && ! grep -qE -- "$opat" <(cat "$dir/out"; [ -s "$dir/out" ] || echo); }; then
    echo "FAIL $name: exit $rc (want $want)"
    echo "     stdout: $(head -c 600 "$dir/out")"
    echo "     stderr: $(head -c 600 "$dir/err")"
    fail=1
  else
    echo "ok   $name (exit $rc)"
  fi
}
