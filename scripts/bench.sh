#!/usr/bin/env bash
# bench.sh — build the switch benchmark in an optimised tree and run it.
#
# Configures a Release build in build-bench/ (separate from the debug/CI tree, so that its flags never
# leak into test builds), builds only the bench_switch target, and runs it pinned to CPU 0 when taskset
# is available: a migration between CPUs in the middle of a run costs more than the switch being timed.
#
# Usage: scripts/bench.sh           (extra arguments are passed to cmake at configure time)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-bench"

log="$build/bench-build.log"
mkdir -p "$build"
# Quiet unless it fails: the figures are the output that matters.
if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" &&
  cmake --build "$build" --target bench_switch bench_threads hook -j "$(nproc 2>/dev/null || echo 2)"; } >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "bench: building bench_switch failed (full log: $log; is add_subdirectory(bench) in tests/CMakeLists.txt?)" >&2
  exit 1
fi
bin="$build/tests/bench/bench_switch"

if command -v taskset >/dev/null; then
  echo "(pinned to CPU 0 with taskset)"
  taskset -c 0 "$bin"
else
  echo "(taskset not found: running unpinned, expect more noise)"
  "$bin"
fi

# Threads: the same plain pthread program natively and preloaded, side by side in this run.
echo
echo "== pthreads: native vs LD_PRELOAD=libhook.so (ns per operation, median of 7 runs)"
threads="$build/tests/bench/bench_threads"
hook="$build/libhook.so"
native=$("$threads")
hooked=$(LD_PRELOAD="$hook" "$threads")
hooked1=$(COHOOK_WORKERS=1 LD_PRELOAD="$hook" "$threads")
printf '%-13s %12s %14s %10s %16s %10s\n' case native preloaded ratio "preloaded(1 wkr)" ratio
for c in create+join mutex condvar; do
  n=$(awk -v c="$c" '$2 == c {print $3}' <<<"$native")
  h=$(awk -v c="$c" '$2 == c {print $3}' <<<"$hooked")
  h1=$(awk -v c="$c" '$2 == c {print $3}' <<<"$hooked1")
  awk -v c="$c" -v n="$n" -v h="$h" -v h1="$h1" \
    'BEGIN { printf "%-13s %9.1f ns %11.1f ns %9.3fx %13.1f ns %9.3fx\n", c, n, h, h / n, h1, h1 / n }'
done
echo "(ratio = preloaded / native time: below 1 means faster preloaded; 2 workers unless noted)"
