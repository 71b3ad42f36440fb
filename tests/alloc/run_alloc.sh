#!/usr/bin/env bash
# run_alloc.sh [--alloc NAME[,NAME...]] [--lockmalloc PATH] HOOK PROG... — cohook with another
# allocator preloaded after it: each plain program PROG (tests/progs) through tests/run_prog.sh
# with PROG_PRELOAD_AFTER set to the allocator's library, so that the native run and the preloaded
# runs (COHOOK_WORKERS=1 and 2) use the same malloc. One line per (allocator, program); exits 1 if
# any differ.
#
# Allocators (default: all): jemalloc (Debian libjemalloc2), tcmalloc (libtcmalloc-minimal4, which
# libgoogle-perftools4 pulls in, else libgoogle-perftools4's full libtcmalloc), mimalloc
# (libmimalloc2.0), lockmalloc (tests/alloc/lockmalloc.c: glibc's malloc behind a pthread mutex,
# run with LOCKMALLOC_STRICT=1, so that a malloc entered again from inside its own lock call fails
# the run). A Debian allocator whose package is not installed is skipped: exit 77 if every chosen one
# was skipped (ctest's SKIP_RETURN_CODE).
#
# Environment: PROG_TIMEOUT (seconds per run, default 20 here: each run takes under 3 s), passed
# on to run_prog.sh.
set -u
export PROG_TIMEOUT=${PROG_TIMEOUT:-20}
here=$(cd "$(dirname "$0")" && pwd)
allocs=jemalloc,tcmalloc,mimalloc,lockmalloc
lockmalloc=""
while [ $# -gt 0 ]; do
  case "$1" in
    --alloc) allocs=$2; shift 2 ;;
    --lockmalloc) lockmalloc=$2; shift 2 ;;
    -*) echo "usage: run_alloc.sh [--alloc NAME[,NAME...]] [--lockmalloc PATH] HOOK PROG..." >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "usage: run_alloc.sh [--alloc NAME[,NAME...]] [--lockmalloc PATH] HOOK PROG..." >&2; exit 2; }
hook=$1
shift
[ -n "$lockmalloc" ] || lockmalloc=$(dirname "$hook")/tests/alloc/lockmalloc.so

# pkg_lib PACKAGE FILENAME: the path of FILENAME as the installed package lists it, or nothing
pkg_lib() {
  dpkg -L "$1" 2>/dev/null | grep -E "/$2\$" | while read -r f; do [ -e "$f" ] && echo "$f"; done | head -1
}

# lib_of NAME: the library to preload for allocator NAME, or nothing (and why, on stderr)
lib_of() {
  local f=""
  case "$1" in
    jemalloc) f=$(pkg_lib libjemalloc2 'libjemalloc\.so\.2') ;;
    tcmalloc)
      f=$(pkg_lib libtcmalloc-minimal4 'libtcmalloc_minimal\.so\.4')
      [ -n "$f" ] || f=$(pkg_lib libgoogle-perftools4 'libtcmalloc\.so\.4') ;;
    mimalloc) f=$(pkg_lib libmimalloc2.0 'libmimalloc\.so\.2') ;;
    lockmalloc) [ -e "$lockmalloc" ] && f=$(cd "$(dirname "$lockmalloc")" && pwd)/$(basename "$lockmalloc") ;;
  esac
  echo "$f"
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
fail=0 ran=0 skipped=0
IFS=, read -r -a names <<<"$allocs"
for a in "${names[@]}"; do
  case "$a" in
    jemalloc | tcmalloc | mimalloc | lockmalloc) ;;
    *) echo "run_alloc.sh: unknown allocator '$a' (jemalloc, tcmalloc, mimalloc, lockmalloc)" >&2; exit 2 ;;
  esac
done
for a in "${names[@]}"; do
  lib=$(lib_of "$a")
  if [ -z "$lib" ]; then
    case "$a" in
      jemalloc) why="package libjemalloc2 not installed" ;;
      tcmalloc) why="packages libtcmalloc-minimal4 / libgoogle-perftools4 not installed" ;;
      mimalloc) why="package libmimalloc2.0 not installed" ;;
      lockmalloc) why="$lockmalloc not built" ;;
    esac
    echo "SKIP $a: $why"
    skipped=$((skipped + 1))
    continue
  fi
  ran=$((ran + 1))
  for prog in "$@"; do
    name=$(basename "$prog")
    t0=$(date +%s.%N)
    if [ "$a" = lockmalloc ]; then
      PROG_PRELOAD_AFTER=$lib LOCKMALLOC_STRICT=1 LOCKMALLOC_REPORT=1 "$here/../run_prog.sh" "$hook" "$prog" >"$log" 2>&1
    else
      PROG_PRELOAD_AFTER=$lib "$here/../run_prog.sh" "$hook" "$prog" >"$log" 2>&1
    fi
    rc=$?
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" = 0 ]; then
      printf 'ok   %-10s %-28s %5ss\n' "$a" "$name" "$secs"
    else
      # the first line that says how it differed, then the whole report indented
      printf 'FAIL %-10s %-28s %5ss  %s\n' "$a" "$name" "$secs" "$(grep -m1 -E 'differs|timed out' "$log")"
      sed 's/^/    | /' "$log" | head -80
      fail=1
    fi
  done
done
if [ "$ran" = 0 ]; then
  echo "run_alloc.sh: no allocator available (${allocs})"
  exit 77
fi
[ "$fail" = 0 ] && echo "all programs the same natively and preloaded with: ${allocs} (skipped: $skipped)"
exit "$fail"
