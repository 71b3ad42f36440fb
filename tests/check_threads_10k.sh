#!/usr/bin/env bash
# check_threads_10k.sh LIBHOOK PROG — issue 4's proof: 10 000 pthreads that sleep(1) finish in under
# 2 s of wall time preloaded, on at most COHOOK_WORKERS + 5 OS threads (main, monitor, spawner, a spare, and one a handoff left stuck). The native run is printed for
# the record (it needs thousands of OS threads), not judged.
set -u
hook=$1 prog=$2 workers=2
native=$(timeout 120 "$prog" 2>&1 >/dev/null | grep wall=)
hooked=$(COHOOK_WORKERS=$workers timeout 60 env LD_PRELOAD="$hook" "$prog" 2>&1 >/dev/null | grep wall=)
echo "native:    $native"
echo "preloaded: $hooked (COHOOK_WORKERS=$workers)"
wall=$(sed -n 's/.*wall=\([0-9.]*\).*/\1/p' <<<"$hooked")
thr=$(sed -n 's/.*max_threads=\([0-9]*\).*/\1/p' <<<"$hooked")
[ -n "$wall" ] && [ -n "$thr" ] || { echo "FAIL: no figures from the preloaded run"; exit 1; }
awk -v w="$wall" 'BEGIN { exit !(w < 2.0) }' || { echo "FAIL: wall $wall s is not under 2 s"; exit 1; }
# workers + main + the handoff's monitor, spawner and one reserve spare (runtime/handoff.c), + the OS
# thread a handoff left in a system call (the reserve is made up again at once, before it comes back)
[ "$thr" -le $((workers + 5)) ] || { echo "FAIL: $thr OS threads, more than $((workers + 5))"; exit 1; }
echo "ok: under 2 s on $thr OS threads"
