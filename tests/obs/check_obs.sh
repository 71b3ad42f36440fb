#!/usr/bin/env bash
# check_obs.sh LIBHOOK OBS_PROG — what a preloaded program says about itself (issue 12): stall
# reports (COHOOK_LOG), the scheduler trace (COHOOK_TRACE) and the stats at exit (COHOOK_STATS), each
# checked on a real run of tests/obs/obs_prog.c. Every run is bounded; a failure prints the stderr.
set -u
hook=$1 prog=$2
for f in "$hook" "$prog"; do [ -e "$f" ] || { echo "check_obs.sh: $f: no such file (did it build?)"; exit 2; }; done
fail=0
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# run NAME ENV... -- ARGS: run the program preloaded; its stdout must be "done" and its status 0.
run() {
  local name=$1
  shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  timeout -k 5 60 env "${envs[@]}" LD_PRELOAD="$hook" "$prog" "$@" >"$dir/$name.out" 2>"$dir/$name.err"
  local rc=$?
  if [ "$rc" != 0 ] || [ "$(cat "$dir/$name.out")" != done ]; then
    echo "FAIL $name: exit $rc, stdout: $(cat "$dir/$name.out")"
    sed 's/^/  stderr: /' "$dir/$name.err"
    fail=1
    return 1
  fi
}
# expect NAME WHAT COND: report a check on run NAME
expect() {
  if eval "$3"; then
    echo "ok   $1: $2"
  else
    echo "FAIL $1: $2"
    sed 's/^/  stderr: /' "$dir/$1.err"
    fail=1
  fi
}
stalls() { grep -c '^cohook: stall: ' "$dir/$1.err"; }

# 1. A thread computes for 200 ms in spin_200ms while others exist: one line, naming the function.
for w in 1 2; do
  n=spin_w$w
  run $n COHOOK_LOG=warn COHOOK_WORKERS=$w -- spin &&
    expect $n "exactly one stall line, naming spin_200ms" \
      '[ "$(stalls $n)" = 1 ] && grep "^cohook: stall: " "$dir/$n.err" | grep -q "running; at spin_200ms+"' &&
    expect $n "nothing else on stderr" '[ "$(wc -l <"$dir/$n.err")" = 1 ]'
done
# Without COHOOK_LOG: not a word.
run spin_quiet COHOOK_WORKERS=1 -- spin && expect spin_quiet "no output without COHOOK_LOG" '[ ! -s "$dir/spin_quiet.err" ]'
# debug: the stall, and its end.
# (Its scheduler has other work, the sleepers' timers: it is handed to another OS thread, which debug
# says instead of the stall's end, unless no timer was due before the spin ended.)
run spin_debug COHOOK_LOG=debug COHOOK_WORKERS=1 -- spin &&
  expect spin_debug "debug reports the stall and when it ended, or its handoff" \
    '{ [ "$(stalls spin_debug)" = 2 ] && grep -q "switched again after about" "$dir/spin_debug.err"; } ||
     { [ "$(stalls spin_debug)" = 1 ] && grep -q "^cohook: handoff: worker 0.s scheduler went to another OS thread" "$dir/spin_debug.err"; }'

# 2. A thread blocked 200 ms in a system call the hooks cannot see: its name and the caller.
for w in 1 2; do
  n=syscall_w$w
  run $n COHOOK_LOG=warn COHOOK_WORKERS=$w -- syscall &&
    expect $n "one stall line: in system call nanosleep, from blocked_in_syscall" \
      '[ "$(stalls $n)" = 1 ] && grep "^cohook: stall: " "$dir/$n.err" | grep "in system call nanosleep" | grep -q "blocked_in_syscall+"'
done

# 3. COHOOK_TRACE=100 over a ~1 s run: 8 to 12 lines, every one of the documented format.
run trace COHOOK_TRACE=100 COHOOK_WORKERS=2 -- run1s
fmt='^cohook: trace [0-9]+ms: threads=[0-9]+ workers=[0-9]+( w[0-9]+\[runq=[0-9]+ parked=[0-9]+ switches=[0-9]+\])*$'
expect trace "8 to 12 trace lines ($(grep -c '^cohook: trace' "$dir/trace.err"))" \
  'n=$(grep -cE "$fmt" "$dir/trace.err"); [ "$n" -ge 8 ] && [ "$n" -le 12 ]'
expect trace "every stderr line is a trace line with two workers" \
  '[ "$(grep -cvE "$fmt" "$dir/trace.err")" = 0 ] && grep -q "workers=2 w0\[.* w1\[" "$dir/trace.err"'

# 4. COHOOK_STATS=1: one block at exit with the counts this run must have.
run stats COHOOK_STATS=1 COHOOK_WORKERS=2 -- run1s
num() { grep -E "$2" "$dir/$1.err" | head -1 | awk -v f="$3" '{print $f}'; }
expect stats "one block" '[ "$(grep -c "^cohook stats: pid" "$dir/stats.err")" = 1 ]'
expect stats "4 coroutine-threads made, 4 alive at the peak" \
  'grep -q "coroutine-threads   made 4, peak alive 4$" "$dir/stats.err"'
expect stats "sleeps that waited, joins, mutex calls, switches" \
  '[ "$(num stats "^    sleep " 3)" -gt 100 ] && [ "$(num stats "^    join " 2)" = 4 ] &&
   [ "$(num stats "^    sync " 2)" -gt 100 ] && [ "$(num stats "^  switches " 2)" -gt 100 ]'
# =path: appended to the file (a relative path is the starting directory's), nothing on stderr.
( cd "$dir" && run stats_file COHOOK_STATS=stats.txt -- run1s && run stats_file2 COHOOK_STATS=stats.txt -- spin )
expect stats_file "two runs appended two blocks to the file, stderr quiet" \
  '[ "$(grep -c "^cohook stats: pid" "$dir/stats.txt")" = 2 ] && [ ! -s "$dir/stats_file.err" ]'
# fork(): the child reports its own counts, once, labelled; the parent its own, once.
run stats_fork COHOOK_STATS=1 -- fork
expect stats_fork "one block from the child, one from the parent" \
  '[ "$(grep -c "^cohook stats: pid" "$dir/stats_fork.err")" = 2 ] &&
   [ "$(grep -c "^cohook stats: pid [0-9]* (fork child of [0-9]*)" "$dir/stats_fork.err")" = 1 ]'

# 5. The monitor costs next to nothing while the program idles: under 1% of a CPU over 2 s.
timeout -k 5 30 env COHOOK_LOG=warn COHOOK_STATS=1 LD_PRELOAD="$hook" "$prog" idle >/dev/null 2>&1 &
tpid=$!
sleep 0.5
pid=$(pgrep -P "$tpid" | head -1) # timeout(1)'s child: the program
mon=$(grep -l '^cohook-monitor$' /proc/"${pid:-0}"/task/*/comm 2>/dev/null | head -1)
if [ -n "$mon" ]; then
  t=$(dirname "$mon")
  a=$(awk '{print $1}' "$t/schedstat")
  sleep 2
  b=$(awk '{print $1}' "$t/schedstat")
  us=$(( (b - a) / 1000 ))
  if [ "$us" -lt 20000 ]; then echo "ok   idle: monitor used $us us of CPU in 2 s"
  else echo "FAIL idle: monitor used $us us of CPU in 2 s (over 1%)"; fail=1; fi
else
  echo "FAIL idle: no cohook-monitor thread"
  fail=1
fi
kill "$tpid" 2>/dev/null
wait "$tpid" 2>/dev/null
exit "$fail"
