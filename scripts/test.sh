#!/usr/bin/env bash
# scripts/test.sh — the whole test suite, on a fresh Debian machine.
#
#   scripts/test.sh            normal build (warnings are errors) + ASan/UBSan build of the unit tests
#                              + the aarch64 context switch under qemu (when the tools can be had)
#   scripts/test.sh --quick    normal build only
#   scripts/test.sh --valgrind also run the unit tests under valgrind
#
# Installs what is missing with apt-get when run as root; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 valgrind=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    --valgrind) valgrind=1 ;;
    *) echo "usage: scripts/test.sh [--quick] [--valgrind]" >&2; exit 2 ;;
  esac
done

pkgs=(cmake make gcc g++ pkg-config libev-dev libcmocka-dev valgrind curl wget)
pkgs+=(libjemalloc2 libgoogle-perftools4 libmimalloc2.0) # tests/alloc: other allocators preloaded after ours
pkgs+=(man-db groff-base libc6-dev util-linux) # tests/cli: man page, gcc -static, setpriv
pkgs+=(gdb) # tests/gdb: the gdb extension (tools/gdb/cohook-gdb.py) on a live process and a core
pkgs+=(liburing-dev) # tests/progs/stall_uring.c: a thread waiting in io_uring_enter (issue 10)
[ "$quick" = 1 ] || pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
command -v python3 >/dev/null || pkgs+=(python3) # the real-programs test drives python3
scripts/ensure-packages.sh scripts/test.sh "${pkgs[@]}"

jobs=$(nproc)
fail=0

echo "== build (warnings are errors)"
cmake -S . -B build -DCOHOOK_WERROR=ON >/dev/null
cmake --build build -j"$jobs" >/dev/null
echo "== tests"
(cd build && ctest --output-on-failure -j"$jobs") || fail=1

if [ "$quick" = 0 ]; then
  echo "== ASan + UBSan build, unit tests"
  cmake -S . -B build-asan -DCOHOOK_WERROR=ON -DCOHOOK_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs" >/dev/null
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs" -L unit) || fail=1

  echo "== aarch64 context switch"
  scripts/test-arch.sh build/arch || fail=1
fi

if [ "$valgrind" = 1 ]; then
  echo "== unit tests under valgrind (the tests scale themselves down when they see it)"
  for t in build/tests/test_*; do
    if valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite "$t" >/dev/null 2>"$t.vg"; then
      echo "ok   $(basename "$t")"
    else
      echo "FAIL $(basename "$t") (valgrind log: $t.vg)"
      tail -20 "$t.vg"
      fail=1
    fi
  done
fi

if [ "$fail" = 0 ]; then echo "== all tests passed"; else echo "== FAILED"; fi
exit "$fail"
