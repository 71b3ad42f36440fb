#!/usr/bin/env bash
# check_boundary.sh OBJDIR EXPORTS SRCDIR — the runtime/hook boundary (runtime/platform.h):
#   1. no runtime object file references a name that libhook.so exports (tests/exports.txt): in the
#      preload such a reference would bind to our own hook, so the runtime would call into the hook
#      layer it sits below (a write() on a fatal path could park; sigaction() would record our own
#      handler as the program's);
#   2. nothing under runtime/ calls dlsym: what the runtime needs from libc comes through the platform
#      table that each product fills.
set -euo pipefail
objdir=$1 exports=$2 src=$3
objs=$(find "$objdir" -name '*.o' | sort)
[ -n "$objs" ] || { echo "no runtime objects under $objdir"; exit 1; }
bad=$(for o in $objs; do nm -u "$o" | awk -v f="$(basename "$o")" '{sub(/@.*/, "", $2); print $2, f}'; done |
      sort | join - <(sort -u "$exports") || true)
fail=0
if [ -n "$bad" ]; then
  echo "runtime objects reference names that libhook.so exports (use sys.h or the platform table):"
  echo "$bad"
  fail=1
fi
if grep -rnE --include='*.[chS]' 'dl(v)?sym[[:space:]]*\(' "$src/runtime"; then
  echo "dlsym under runtime/: the platform table (runtime/platform.h) is the one way to libc's own functions"
  fail=1
fi
[ "$fail" = 0 ] && echo "boundary holds: $(echo "$objs" | wc -l) runtime objects reference no exported name; no dlsym under runtime/"
exit "$fail"
