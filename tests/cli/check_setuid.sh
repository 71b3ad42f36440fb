#!/usr/bin/env bash
# check_setuid.sh COHOOK — set-ID executables: refused for a user the kernel would run them in secure
# mode for (the loader then ignores LD_PRELOAD), allowed where it would not. Needs root (to make a
# set-user-ID file owned by another user, and to switch to an unprivileged one with setpriv); exits 77
# (CTest's SKIP_RETURN_CODE) with the reason where it cannot run.
set -u
cohook=$1
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root to make set-ID copies owned by another user"
command -v setpriv >/dev/null || skip "setpriv (util-linux) is not installed"
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
"${nobody[@]}" true 2>/dev/null || skip "cannot switch to uid 65534 with setpriv here"
"${nobody[@]}" test -x "$cohook" || skip "uid 65534 cannot execute $cohook (a directory above it is private)"
fail=0
# The set-ID bits must be honoured where the copies live: not on a nosuid mount.
dir=""
for parent in "${TMPDIR:-/tmp}" "$PWD"; do
  d=$(mktemp -d "$parent/cohook-setuid.XXXXXX") || continue
  if findmnt -no OPTIONS -T "$d" 2>/dev/null | grep -qw nosuid; then rmdir "$d"; continue; fi
  dir=$d
  break
done
[ -n "$dir" ] || skip "no directory on a mount without nosuid (tried ${TMPDIR:-/tmp} and $PWD)"
trap 'rm -rf "$dir"' EXIT
chmod 755 "$dir"
id_bin=$(type -P id)

. "$(dirname "$0")/lib.sh" # check()

# A set-user-ID root copy of id(1), and a set-group-ID root one.
cp "$id_bin" "$dir/suid-root" && chown root:root "$dir/suid-root" && chmod 4755 "$dir/suid-root"
cp "$id_bin" "$dir/sgid-root" && chown root:root "$dir/sgid-root" && chmod 2755 "$dir/sgid-root"
# The kernel must really honour the bits here, or the refusals below prove nothing.
[ "$("${nobody[@]}" "$dir/suid-root" -u)" = 0 ] || skip "the kernel ignores set-user-ID here (no_new_privs?)"

check "set-user-ID root, run by uid 65534: refused" 126 \
  "^cohook: $dir/suid-root: set-user-ID root, run by uid 65534: the loader ignores LD_PRELOAD in it; " "^$" \
  "${nobody[@]}" "$cohook" "$dir/suid-root" -u
[ "$(wc -l <"$dir/err")" = 1 ] || { echo "FAIL refusal is not one line"; fail=1; }
check "set-group-ID root, run by uid 65534: refused" 126 "^cohook: $dir/sgid-root: set-group-ID " "^$" \
  "${nobody[@]}" "$cohook" "$dir/sgid-root" -g
check "set-user-ID root, run by root: runs" 0 "^$" "^0$" "$cohook" "$dir/suid-root" -u
# Set-user-ID to someone else: even root's run is in secure mode (effective != real user).
cp "$id_bin" "$dir/suid-nobody" && chown 65534:65534 "$dir/suid-nobody" && chmod 4755 "$dir/suid-nobody"
check "set-user-ID uid 65534, run by root: refused" 126 "set-user-ID .*, run by uid 0: " "^$" "$cohook" "$dir/suid-nobody"
check "set-user-ID uid 65534, run by uid 65534: runs" 0 "^$" "^65534$" "${nobody[@]}" "$cohook" "$dir/suid-nobody" -u
# Set-group-ID without group execute is not set-group-ID for exec (it marks mandatory locking).
cp "$id_bin" "$dir/sgid-noexec" && chown root:root "$dir/sgid-noexec" && chmod 2745 "$dir/sgid-noexec"
check "set-group-ID bit without group execute: runs" 0 "^$" "^65534$" "${nobody[@]}" "$cohook" "$dir/sgid-noexec" -u

[ "$fail" = 0 ] && echo "== all set-ID checks passed"
exit "$fail"
