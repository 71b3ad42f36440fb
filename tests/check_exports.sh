#!/usr/bin/env bash
# check_exports.sh LIBHOOK EXPECTED — libhook.so must export exactly the intercepted libc names and
# the public cohook_* API (tests/exports.txt), nothing more: a stray exported symbol of ours could
# hijack a same-named function of the host program. Also: nothing but cohook_* may be exported that
# libc does not define itself.
set -euo pipefail
lib=$1 expected=$2
actual=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort)
if ! diff <(echo "$actual") "$expected" >/dev/null; then
  echo "exported symbols differ from $expected (< actual, > expected):"
  diff <(echo "$actual") "$expected" || true
  exit 1
fi
libc=$(ldd "$lib" | awk '/libc\.so/ {print $3}')
stray=$(comm -23 <(echo "$actual" | grep -v '^cohook_') <(nm -D --defined-only "$libc" | awk '{print $3}' | sed 's/@.*//' | sort -u))
if [ -n "$stray" ]; then
  echo "exported names that libc does not define (not interceptions): $stray"
  exit 1
fi
echo "libhook.so exports $(echo "$actual" | wc -l) symbols: the intercepted libc names and cohook_*"
