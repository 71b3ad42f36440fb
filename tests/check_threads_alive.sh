#!/usr/bin/env bash
# check_threads_alive.sh LIBHOOK PROG [N] — issue 10's scale point: N coroutine-threads (default
# 100 000) alive at the same time still work. PROG (tests/scale/threads_alive.c) holds all N at a
# condvar gate, then lets them sleep 100 ms and joins them; it exits non-zero unless all N were alive
# at once, saw their own TLS and were joined. Preloaded only (COHOOK_WORKERS=2): natively 100 000
# kernel threads exceed vm.max_map_count. Also required: under 30 s of wall time (about 2.5 s on the
# 2-core test VM, 0.8 GB RSS) and a handful of OS threads (parked coroutines need none of their own).
set -u
hook=$1 prog=$2 n=${3:-100000} workers=2 t=${THREADS_ALIVE_TIMEOUT:-60}
out=$(COHOOK_WORKERS=$workers timeout -k 5 "$t" env LD_PRELOAD="$hook" "$prog" "$n" 2>&1)
rc=$?
echo "$out"
case $rc in
0) ;;
124 | 137) echo "FAIL: timed out after ${t}s ($n threads, COHOOK_WORKERS=$workers)"; exit 1 ;;
*) echo "FAIL: exit status $rc ($n threads, COHOOK_WORKERS=$workers)"; exit 1 ;;
esac
fig() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$out"; }
alive=$(fig alive) wall=$(fig wall) thr=$(fig max_threads)
[ -n "$alive" ] && [ -n "$wall" ] && [ -n "$thr" ] || { echo "FAIL: no figures from the run"; exit 1; }
[ "$alive" = "$n" ] || { echo "FAIL: only $alive of $n threads alive at once"; exit 1; }
awk -v w="$wall" 'BEGIN { exit !(w < 30.0) }' || { echo "FAIL: wall $wall s is not under 30 s"; exit 1; }
# Workers, the main thread, the runtime's monitor and a few spare OS threads at most.
max=$((workers + 8))
[ "$thr" -le "$max" ] || { echo "FAIL: $thr OS threads, more than $max"; exit 1; }
echo "ok: $n threads alive at once in $wall s on $thr OS threads (COHOOK_WORKERS=$workers)"
