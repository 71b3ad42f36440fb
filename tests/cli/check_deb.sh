#!/usr/bin/env bash
# check_deb.sh BUILD_DIR SOURCE_DIR — `cpack -G DEB` makes a package: its control fields, its file list,
# and its contents run from wherever it is unpacked (dpkg-deb -x: the command finds the unpacked
# libhook.so relative to itself). As root, and when no cohook package is installed already, it is also
# installed system-wide with apt-get (dependencies from the archive, as on a fresh Debian), used, and
# removed again; set COHOOK_DEB_INSTALL=0 to leave the system alone.
set -u
build=$1 src=$2
fail=0
dir=$(mktemp -d)
removed=1
cleanup() {
  [ "$removed" = 1 ] || apt-get remove -y -qq -o DPkg::Lock::Timeout=120 cohook >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
bad() { echo "FAIL $*"; fail=1; }
ok() { echo "ok   $*"; }

if ! (cd "$build" && timeout 300 cpack -G DEB -B "$dir/out") >"$dir/cpack.log" 2>&1; then
  cat "$dir/cpack.log"
  echo "FAIL cpack -G DEB"
  exit 1
fi
debs=("$dir"/out/cohook_*.deb)
[ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ] || { ls -l "$dir/out"; echo "FAIL cpack made no single cohook_*.deb"; exit 1; }
deb=${debs[0]}
ok "cpack -G DEB: $(basename "$deb")"

echo "== control fields"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = cohook ] && ok "Package: cohook" || bad "Package: $(field Package)"
[[ "$(field Depends)" == *libev4* ]] && ok "Depends: $(field Depends)" || bad "Depends lacks libev4: $(field Depends)"
[ -n "$(field Maintainer)" ] && ok "Maintainer: $(field Maintainer)" || bad "no Maintainer"
[ -n "$(field Description)" ] || bad "no Description"
arch=$(dpkg --print-architecture)
[ "$(field Architecture)" = "$arch" ] && ok "Architecture: $arch" || bad "Architecture: $(field Architecture), want $arch"
version=$("$build/cohook" --version | sed -n 's/^cohook //p')
[ "$(field Version)" = "$version" ] && ok "Version: $version" || bad "Version: $(field Version), want $version"

echo "== files"
dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$dir/list"
want=(/usr/bin/cohook /usr/lib/libhook.so /usr/lib/libcohook.so /usr/lib/libcohook.so.0 /usr/include/cohook.h
      /usr/lib/pkgconfig/cohook.pc /usr/share/man/man1/cohook.1)
[ -f "$src/tools/gdb/cohook-gdb.py" ] && want+=(/usr/share/cohook/gdb/cohook-gdb.py)
for f in "${want[@]}"; do
  grep -qx -- "$f" "$dir/list" && ok "$f" || bad "$f not in the package"
done
grep -qx -- "/usr/lib/libcohook.so.$version" "$dir/list" || bad "/usr/lib/libcohook.so.$version not in the package"
if grep -v -e '/$' "$dir/list" | grep -v -e '^/usr/bin/' -e '^/usr/lib/' -e '^/usr/include/' -e '^/usr/share/' >"$dir/odd"; then
  bad "files outside /usr/{bin,lib,include,share}: $(tr '\n' ' ' <"$dir/odd")"
fi

echo "== unpacked anywhere, it runs"
dpkg-deb -x "$deb" "$dir/root"
out=$("$dir/root/usr/bin/cohook" --version | sed -n 's/^libhook.so: //p')
[ "$out" = "$dir/root/usr/lib/libhook.so" ] && ok "unpacked cohook finds $out" || bad "unpacked cohook finds '$out'"
timeout -k 5 30 "$dir/root/usr/bin/cohook" -w 1 cat /proc/self/maps | grep -qF " $dir/root/usr/lib/libhook.so" &&
  ok "unpacked libhook.so preloaded" || bad "unpacked cohook did not preload its libhook.so"

echo "== installed system-wide, used, removed"
if [ "$(id -u)" != 0 ]; then
  echo "note: not installing system-wide: not root"
elif [ "${COHOOK_DEB_INSTALL:-1}" = 0 ]; then
  echo "note: not installing system-wide: COHOOK_DEB_INSTALL=0"
elif ! { exec 9>/run/lock/cohook-check-deb.lock && flock -w 300 9; }; then
  # one system-wide install at a time: another build tree's run of this test may be at it
  echo "note: not installing system-wide: could not take /run/lock/cohook-check-deb.lock"
elif dpkg -s cohook >/dev/null 2>&1 || [ -e /usr/bin/cohook ] || [ -e /usr/lib/libhook.so ]; then
  echo "note: not installing system-wide: a cohook is installed already (left alone)"
else
  removed=0
  if timeout 300 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       -o DPkg::Lock::Timeout=120 "$deb" >"$dir/apt.log" 2>&1; then
    ok "apt-get install $(basename "$deb")"
    [ "$(/usr/bin/cohook --version | sed -n 's/^libhook.so: //p')" = /usr/lib/libhook.so ] &&
      ok "/usr/bin/cohook finds /usr/lib/libhook.so" || bad "/usr/bin/cohook --version: $(/usr/bin/cohook --version 2>&1)"
    out=$(cd / && timeout -k 5 30 cohook -w 1 -- sh -c 'grep -qF " /usr/lib/libhook.so" /proc/$$/maps && echo preloaded; exit 9')
    rc=$?
    [ "$rc" = 9 ] && [ "$out" = preloaded ] && ok "cohook -w 1 -- sh: preloaded, exit 9" || bad "installed cohook: exit $rc, '$out'"
    [ "$(PKG_CONFIG_PATH= pkg-config --modversion cohook 2>&1)" = "$version" ] && ok "pkg-config finds cohook $version" ||
      bad "pkg-config --modversion cohook: $(pkg-config --modversion cohook 2>&1)"
  else
    cat "$dir/apt.log"
    bad "apt-get install $deb"
  fi
  if timeout 300 apt-get remove -y -qq -o DPkg::Lock::Timeout=120 cohook >"$dir/apt.log" 2>&1; then
    removed=1
    [ ! -e /usr/bin/cohook ] && [ ! -e /usr/lib/libhook.so ] && ok "apt-get remove cohook: files gone" ||
      bad "apt-get remove left files behind"
  else
    cat "$dir/apt.log"
    bad "apt-get remove cohook"
  fi
fi

[ "$fail" = 0 ] && echo "== package checks passed"
exit "$fail"
