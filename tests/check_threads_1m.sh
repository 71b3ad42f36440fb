#!/usr/bin/env bash
# check_threads_1m.sh LIBHOOK PROG [N] — per-coroutine-thread TLS is not leaked: PROG
# (tests/tlsleak/threads_1m.c) creates and joins N threads (default 1 000 000), each using malloc,
# __thread data and glibc's per-thread strerror buffer, and exits non-zero if a thread saw stale TLS
# or VmRSS at the end exceeds the 10 000-thread mark by more than 10% + 2 MiB. Run preloaded only
# (COHOOK_WORKERS=2): natively a million thread create/joins take minutes.
set -u
hook=$1 prog=$2 n=${3:-1000000} workers=2 t=${THREADS_1M_TIMEOUT:-240}
start=$(date +%s.%N)
COHOOK_WORKERS=$workers timeout -k 5 "$t" env LD_PRELOAD="$hook" "$prog" "$n"
rc=$?
wall=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
case $rc in
0) echo "ok: $n threads preloaded (COHOOK_WORKERS=$workers) in $wall s, RSS bounded" ;;
124 | 137) echo "FAIL: timed out after ${t}s ($n threads, COHOOK_WORKERS=$workers)"; exit 1 ;;
*) echo "FAIL: exit status $rc after $wall s ($n threads, COHOOK_WORKERS=$workers)"; exit 1 ;;
esac
