#!/usr/bin/env bash
# test-arch.sh — build and run tests/arch/ctx_selftest.c against the context switch of each architecture
# we can run here: natively, and for aarch64 through a static cross-build under qemu-user when the cross
# compiler and qemu-aarch64 are installed. The self-test links nothing but one ctx_<arch>.S file, which
# is what makes the qemu run cheap (no libev or cmocka for the target needed).
#
# Usage: scripts/test-arch.sh [BUILD_DIR]    (default: build/arch)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-build/arch}
mkdir -p "$out"

src="$root/tests/arch/ctx_selftest.c"
cflags=(-std=gnu11 -O2 -Wall -Wextra -Werror)

native_ctx() {
  case "$(uname -m)" in
    x86_64 | amd64) echo "$root/runtime/ctx_x86_64.S" ;;
    aarch64 | arm64) echo "$root/runtime/ctx_aarch64.S" ;;
    *) echo "test-arch: no context switch for $(uname -m)" >&2; return 1 ;;
  esac
}

echo "== native ($(uname -m))"
cc=${CC:-cc}
"$cc" "${cflags[@]}" -o "$out/ctx_selftest" "$src" "$(native_ctx)" -lm
"$out/ctx_selftest"

# On an aarch64 host the native run above already covered ctx_aarch64.S.
case "$(uname -m)" in aarch64 | arm64) exit 0 ;; esac

echo "== aarch64 (qemu-user)"
missing=()
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(aarch64-linux-gnu-gcc)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-aarch64)
if ((${#missing[@]})); then
  echo "skipped: aarch64 self-test, not installed: ${missing[*]} (Debian: gcc-aarch64-linux-gnu qemu-user)"
  exit 0
fi
# -static: qemu-user then needs no aarch64 sysroot for the dynamic loader and libc.
aarch64-linux-gnu-gcc -static "${cflags[@]}" -o "$out/ctx_selftest-aarch64" "$src" \
  "$root/runtime/ctx_aarch64.S" -lm
qemu-aarch64 "$out/ctx_selftest-aarch64"
