#!/usr/bin/env bash
# check_gdb.sh LIBHOOK PARKED100 EXTENSION — the gdb extension (tools/gdb/cohook-gdb.py) against a live
# process: parked100 (100 named pthreads blocked in read, mutex, nanosleep and condvar waits) runs
# preloaded with 2 workers; gdb attaches by pid, in batch mode, and
#   1. `info coroutines` must list exactly those 100 coroutine-threads, each under its own name, in the
#      state its wait says: 40 "fd N" (readers), 30 "mutex ADDR" with ADDR the program's own mutex
#      (lockers), 20 "sleep until +S s" (sleepers), 10 "condvar ADDR" (waiters);
#   2. `coroutine N bt` of a parked reader must show the program's reader_main and the read frame,
#      and the current coroutine of a worker its own thread function (from its OS thread);
#   3. gdb must give back the registers it borrowed, even when `backtrace` fails halfway: the selected
#      thread's pc and sp are the same before and after, and once gdb has detached the program is still
#      running and silent (its main thread is stopped inside pause(): a changed register or system-call
#      restart state would make pause() return, which the program reports);
#   4. the same on a core dump of the process (the kernel's: it ends the program with SIGABRT).
# Exit 77 (skipped) only where gdb cannot run here at all: not installed, or ptrace not permitted.
set -u
hook=$1 prog=$2 ext=$3
command -v gdb >/dev/null || { echo "SKIP: gdb is not installed (scripts/test.sh installs it)"; exit 77; }
for f in "$hook" "$prog" "$ext"; do [ -e "$f" ] || { echo "FAIL: $f: no such file"; exit 1; }; done

dir=$(mktemp -d)
tpid=
cleanup() {
  [ -n "$tpid" ] && kill "$tpid" 2>/dev/null && wait "$tpid" 2>/dev/null
  [ -n "${KEEP_GDB_DIR:-}" ] && cp -r "$dir" /tmp/gdbkeep; rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}

# In $dir with core dumps on: part 4 ends it with SIGABRT for a kernel core dump.
(cd "$dir" && ulimit -c unlimited && exec timeout 60 env LD_PRELOAD="$hook" COHOOK_WORKERS=2 "$prog") \
  >"$dir/out" 2>"$dir/err" &
tpid=$!
for _ in $(seq 300); do
  grep -qx ready "$dir/out" && break
  kill -0 "$tpid" 2>/dev/null || break
  sleep 0.1
done
grep -qx ready "$dir/out" || fail "parked100 never said ready: $(cat "$dir/out" "$dir/err")"
pid=$(pgrep -P "$tpid" | head -n 1) # timeout's child: env exec'd the program
[ -n "$pid" ] || fail "cannot find parked100's pid (child of $tpid)"

# gdb_run NAME COMMAND...: one batch attach, output in $dir/NAME.
gdb_run() {
  local name=$1
  shift
  local args=()
  for c in "$@"; do args+=(-ex "$c"); done
  timeout 60 gdb -batch -nx -p "$pid" -ex "source $ext" "${args[@]}" >"$dir/$name" 2>&1
  if grep -q "ptrace: Operation not permitted" "$dir/$name"; then
    echo "SKIP: gdb may not attach here (ptrace: Operation not permitted; /proc/sys/kernel/yama/ptrace_scope" \
      "is $(cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || echo absent); run as root)"
    exit 77
  fi
}

# 1. The listing. A thread counts itself just before it blocks, so the last ones may still be on their
# way into the wait when the program says ready: look again (a fresh attach) until the states settle.
line_re='^[ *] +[0-9]+ +[0-9]+ +'
for attempt in 1 2 3 4 5; do
  gdb_run list 'info coroutines' 'print &held' 'print &never'
  n_all=$(grep -cE "$line_re" "$dir/list")
  n_fd=$(grep -cE "${line_re}reader-[0-9]{2} +fd [0-9]+( |$)" "$dir/list")
  n_mutex=$(grep -cE "${line_re}locker-[0-9]{2} +mutex 0x[0-9a-f]+" "$dir/list")
  n_sleep=$(grep -cE "${line_re}sleeper-[0-9]{2} +sleep until \+[0-9.]+ s" "$dir/list")
  n_cond=$(grep -cE "${line_re}waiter-[0-9]{2} +condvar 0x[0-9a-f]+" "$dir/list")
  [ "$n_all $n_fd $n_mutex $n_sleep $n_cond" = "100 40 30 20 10" ] && break
  sleep 1
done
echo "== info coroutines (attempt $attempt): $n_all listed; fd $n_fd, mutex $n_mutex, sleep $n_sleep, condvar $n_cond"
grep -E "$line_re" "$dir/list" | sed -n '1,3p;39,43p;69,73p;89,100p'
grep -E 'coroutines .* on [0-9]+ schedulers' "$dir/list"
[ "$n_all" = 100 ] || { cat "$dir/list"; fail "$n_all coroutines listed, expected 100"; }
[ "$n_fd $n_mutex $n_sleep $n_cond" = "40 30 20 10" ] ||
  { cat "$dir/list"; fail "states: fd $n_fd, mutex $n_mutex, sleep $n_sleep, condvar $n_cond; expected 40 30 20 10"; }
grep -qE '^100 coroutines \(100 coroutine-threads\)' "$dir/list" || fail "summary line missing or wrong"
# Every name once: reader-00..39, locker-00..29, sleeper-00..19, waiter-00..09.
names=$(grep -E "$line_re" "$dir/list" | awk '{print ($1 == "*") ? $4 : $3}' | sort -u)
expect=$(for k in reader:40 locker:30 sleeper:20 waiter:10; do
  for ((i = 0; i < ${k#*:}; i++)); do printf '%s-%02d\n' "${k%:*}" "$i"; done
done | sort)
[ "$names" = "$expect" ] || fail "names differ from the program's: $(diff <(echo "$expect") <(echo "$names") | head -5)"
# The objects are the program's own: gdb's `print &held` says "(pthread_mutex_t *) 0x... <held>".
held=$(sed -n 's/^\$1 = (pthread_mutex_t \*) \(0x[0-9a-f]*\) <held>$/\1/p' "$dir/list")
never=$(sed -n 's/^\$2 = (pthread_cond_t \*) \(0x[0-9a-f]*\) <never>$/\1/p' "$dir/list")
[ -n "$held" ] && [ -n "$never" ] || fail "gdb could not print &held / &never: $(grep '^\$' "$dir/list")"
# (A worker idle in its poll shows it on the stack of the coroutine that parked last: "(polling on LWP N)".)
[ "$(grep -cE "mutex $held, held by LWP $pid( \(polling on LWP [0-9]+\))?\$" "$dir/list")" = 30 ] ||
  fail "the lockers do not all wait on held ($held), owned by the main thread (LWP $pid)"
[ "$(grep -cE "condvar $never( |\$)" "$dir/list")" = 10 ] || fail "the waiters do not all wait on never ($never)"

# 2. Backtraces: a reader that is not current on its worker (saved registers), and a current coroutine
# (its OS thread's stack).
reader=$(grep -E "^  +[0-9]+ +[0-9]+ +reader-" "$dir/list" | awk 'NR == 1 {print $1}')
current=$(grep -E '^\* +[0-9]+' "$dir/list" | awk 'NR == 1 {print $2 " " $4}')
[ -n "$reader" ] || fail "no parked reader that is not current"
gdb_run bt 'print $pc' 'print $sp' "coroutine $reader bt" "coroutine $reader bt no_such_option" \
  'print $pc' 'print $sp' ${current:+"coroutine ${current% *} bt"} 'print $pc' 'print $sp'
echo "== coroutine $reader bt"
sed -n "/^Coroutine $reader /,/^Coroutine\|^\\$/p" "$dir/bt" | sed '$d' | head -30
rbt=$(sed -n "/^Coroutine $reader /,/^\\$/p" "$dir/bt")
grep -qE '^#[0-9]+ .* reader_main \(' <<<"$rbt" || fail "coroutine $reader's backtrace has no reader_main frame"
grep -qE '^#[0-9]+ +(0x[0-9a-f]+ in )?read \(' <<<"$rbt" || fail "coroutine $reader's backtrace has no read frame"
if [ -n "$current" ]; then
  fn="${current#* }"
  fn="${fn%-*}_main"
  cbt=$(sed -n "/^Coroutine ${current% *} /,/^\\$/p" "$dir/bt")
  echo "== coroutine ${current% *} bt (current on its worker): $(grep -cE '^#' <<<"$cbt") frames, $(grep -oE " $fn \(" <<<"$cbt" | head -1)"
  grep -qE "^#[0-9]+ .* $fn \(" <<<"$cbt" || { echo "$cbt"; fail "current coroutine ${current% *}'s backtrace has no $fn frame"; }
fi
grep -qiE 'no_such_option|No symbol' "$dir/bt" || fail "the failing backtrace did not fail: $(cat "$dir/bt")"

# 3. Registers given back: every `print $pc` / `print $sp` pair the same.
regs=$(grep -E '^\$[0-9]+ = ' "$dir/bt" | sed 's/^\$[0-9]* = //')
[ "$(sed -n '1p;3p;5p' <<<"$regs" | sort -u | wc -l)" = 1 ] && [ "$(sed -n '2p;4p;6p' <<<"$regs" | sort -u | wc -l)" = 1 ] ||
  fail "registers not restored: $(echo $regs)"
sleep 0.5
kill -0 "$pid" 2>/dev/null || fail "parked100 died after gdb detached: $(cat "$dir/out" "$dir/err")"
[ "$(cat "$dir/out")" = ready ] && [ ! -s "$dir/err" ] || fail "parked100 after gdb detached: $(cat "$dir/out" "$dir/err")"

# 4. A core dump of the same process: gdb cannot write a core's registers, so the extension gives it the
# saved context through a frame unwinder instead; the listing and a backtrace must agree. The kernel's
# dump, not gdb's gcore: gcore reads a mapping in one piece and loses whole stack slabs to their guard
# pages (MADV_GUARD_INSTALL markers fail the read), and the coroutines' control blocks live there.
kill -ABRT "$pid"
wait "$tpid" 2>/dev/null
tpid=
core=$(ls "$dir"/core* 2>/dev/null | head -n 1)
if [ -z "$core" ]; then
  echo "== core file: none written (core_pattern: $(cat /proc/sys/kernel/core_pattern)); that part skipped"
else
  timeout 60 gdb -batch -nx "$prog" "$core" -ex "source $ext" -ex 'info coroutines' -ex "coroutine $reader bt" \
    >"$dir/core.txt" 2>&1
  rm -f "$core"
  grep -qE '^100 coroutines \(100 coroutine-threads\)' "$dir/core.txt" || { cat "$dir/core.txt"; fail "core: listing differs"; }
  cbt=$(sed -n "/^Coroutine $reader /,\$p" "$dir/core.txt")
  grep -qE '^#[0-9]+ .* reader_main \(' <<<"$cbt" && grep -qE '^#[0-9]+ +(0x[0-9a-f]+ in )?read \(' <<<"$cbt" ||
    { echo "$cbt"; fail "core: coroutine $reader's backtrace lacks reader_main or read"; }
  echo "== core file: 100 coroutines listed, coroutine $reader bt: $(grep -cE '^#' <<<"$cbt") frames down to reader_main"
fi
echo "ok: 100 coroutine-threads listed with names and states; backtraces; registers given back"
