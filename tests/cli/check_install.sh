#!/usr/bin/env bash
# check_install.sh BUILD_DIR SOURCE_DIR LIBDIR CC THREADS_PROG — `cmake --install` into a temporary
# prefix (not the configured one), then use what was installed: every file in its place, libcohook.so
# with its versioned soname, a program built with `pkg-config --cflags --libs cohook` links against the
# installed library and runs, the installed cohook command preloads the installed libhook.so (also
# after the prefix is moved), and the installed man page renders without warnings.
set -u
build=$1 src=$2 libdir=$3 cc=$4 threads=$5
fail=0
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
p=$dir/prefix
bad() { echo "FAIL $*"; fail=1; }
ok() { echo "ok   $*"; }

if ! timeout 300 cmake --install "$build" --prefix "$p" >"$dir/install.log" 2>&1; then
  cat "$dir/install.log"
  echo "FAIL cmake --install $build --prefix $p"
  exit 1
fi
ok "cmake --install --prefix $p"

echo "== installed files"
files=(bin/cohook "$libdir/libhook.so" "$libdir/libcohook.so" include/cohook.h "$libdir/pkgconfig/cohook.pc"
       share/man/man1/cohook.1)
[ -f "$src/tools/gdb/cohook-gdb.py" ] && files+=(share/cohook/gdb/cohook-gdb.py)
for f in "${files[@]}"; do
  if [ -e "$p/$f" ]; then ok "$f"; else bad "$f not installed"; fi
done
[ -x "$p/bin/cohook" ] || bad "bin/cohook is not executable"
soname=$(readelf -d "$p/$libdir/libcohook.so" 2>/dev/null | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [[ "$soname" =~ ^libcohook\.so\.[0-9]+$ ]] && [ -L "$p/$libdir/libcohook.so" ] && [ -L "$p/$libdir/$soname" ] &&
   [ -f "$(readlink -f "$p/$libdir/$soname")" ] && [[ "$(readlink -f "$p/$libdir/$soname")" == */$soname.*.* ]]; then
  ok "libcohook.so -> $(readlink "$p/$libdir/libcohook.so") -> $(readlink "$p/$libdir/$soname") (soname $soname)"
else
  bad "libcohook.so soname/version links: soname '$soname'; $(ls -l "$p/$libdir"/libcohook* 2>&1)"
fi

echo "== a pkg-config consumer"
export PKG_CONFIG_PATH=$p/$libdir/pkgconfig
flags=$(pkg-config --cflags --libs cohook) || bad "pkg-config --cflags --libs cohook"
echo "     pkg-config: $flags"
[[ "$flags" == *"-I$p/"* && "$flags" == *"-L$p/"* && "$flags" == *-lcohook* ]] ||
  bad "pkg-config flags do not point into the prefix $p: $flags"
ver=$(pkg-config --modversion cohook)
[ "$ver" = "$("$p/bin/cohook" --version | sed -n 's/^cohook //p')" ] && ok "version $ver (pkg-config = cohook --version)" ||
  bad "pkg-config version '$ver' differs from cohook --version"
# shellcheck disable=SC2086 # pkg-config output is a list of words
if "$cc" -o "$dir/consumer" "$src/tests/cli/consumer.c" $flags; then
  out=$(LD_LIBRARY_PATH=$p/$libdir timeout -k 5 30 "$dir/consumer" 2>&1)
  rc=$?
  [ "$rc" = 0 ] && [ "$out" = "consumer ok" ] && ok "consumer runs: $out" || bad "consumer: exit $rc: $out"
  lib=$(LD_LIBRARY_PATH=$p/$libdir ldd "$dir/consumer" | awk '$1 ~ /^libcohook/ {print $3}')
  [[ "$lib" == "$p/"* ]] && ok "consumer uses $lib" || bad "consumer resolved libcohook to '$lib', not the prefix's"
else
  bad "the consumer does not build with: $flags"
fi

echo "== the installed command"
run_installed() { # PREFIX
  local c=$1/bin/cohook out
  out=$(timeout -k 5 30 "$c" --version | sed -n 's/^libhook.so: //p')
  [ "$out" = "$1/$libdir/libhook.so" ] && ok "$c finds $out" || bad "$c --version finds '$out', want $1/$libdir/libhook.so"
  out=$(timeout -k 5 30 "$c" -w 1 -- "$threads" 5)
  local rc=$?
  [ "$rc" = 5 ] && [[ "$out" =~ ^threads\ [1-8]$ ]] && ok "$c -w 1 -- threads: exit $rc, $out (33 natively)" ||
    bad "$c -w 1 -- threads: exit $rc, '$out'"
  timeout -k 5 30 "$c" cat /proc/self/maps | grep -qF " $1/$libdir/libhook.so" && ok "$1/$libdir/libhook.so preloaded" ||
    bad "$c did not preload $1/$libdir/libhook.so"
}
run_installed "$p"
mv "$p" "$dir/moved"
run_installed "$dir/moved"
mv "$dir/moved" "$p"

echo "== the installed man page"
warn=$(MANWIDTH=80 man --warnings -l "$p/share/man/man1/cohook.1" 2>&1 >/dev/null)
rc=$?
[ "$rc" = 0 ] && [ -z "$warn" ] && ok "man --warnings -l: no warnings" || bad "man -l: exit $rc: $warn"
warn=$(groff -man -ww -z "$p/share/man/man1/cohook.1" 2>&1)
[ -z "$warn" ] && ok "groff -man -ww: no warnings" || bad "groff -man -ww: $warn"
for s in NAME SYNOPSIS DESCRIPTION OPTIONS ENVIRONMENT "EXIT STATUS" EXAMPLES LIMITS; do
  grep -q "^\.SH \"\?$s\"\?$" "$p/share/man/man1/cohook.1" || bad "man page has no $s section"
done
for k in $(grep -oh '"COHOOK_[A-Z_][A-Z_]*"' "$src"/runtime/*.c | tr -d '"' | sort -u) COHOOK_STATS COHOOK_LOG COHOOK_TRACE COHOOK_HANDOFF_US \
         COHOOK_MAX_THREADS; do
  grep -q "^\.B $k$" "$p/share/man/man1/cohook.1" || bad "man page ENVIRONMENT does not describe $k"
done
page=$(MANPATH=$p/share/man man -w cohook 2>&1)
[ "$page" = "$p/share/man/man1/cohook.1" ] && ok "man -w cohook finds $page" || bad "man -w cohook: $page"

[ "$fail" = 0 ] && echo "== install checks passed"
exit "$fail"
