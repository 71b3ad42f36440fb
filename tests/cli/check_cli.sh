#!/usr/bin/env bash
# check_cli.sh COHOOK CC THREADS_PROG — the cohook command, run for real: exit statuses passed through
# (0, 1, 42, killed by a signal), its own 125/126/127, the programs it refuses (static, static-pie,
# another architecture, a script whose interpreter is static), scripts preloaded through their
# interpreter, LD_PRELOAD kept, options mapped onto the COHOOK_* knobs, the runtime's own refusal of a
# bad value, and libhook.so found relative to a moved command. Each check prints ok/FAIL; any FAIL
# makes the exit status 1. (The set-ID refusals are in check_setuid.sh: they need root.)
set -u
ulimit -c 0 # the SIGSEGV case must not leave a core file
cohook=$1 cc=$2 threads=$3
fail=0
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
hook=$("$cohook" --version | sed -n 's/^libhook.so: \(\/.*\)/\1/p')
[ -n "$hook" ] && [ -f "$hook" ] || { echo "FAIL cohook --version names no libhook.so: $("$cohook" --version 2>&1)"; exit 1; }
echo "libhook.so: $hook"

. "$(dirname "$0")/lib.sh" # check()
one_line() { [ "$(wc -l <"$dir/err")" = 1 ] || { echo "FAIL $1: stderr is not one line: $(cat "$dir/err")"; fail=1; }; }

echo "== exit status passed through"
check "exit 0" 0 "^$" "" "$cohook" -- sh -c 'exit 0'
check "exit 1" 1 "^$" "" "$cohook" -- sh -c 'exit 1'
check "exit 42" 42 "^$" "" "$cohook" -- sh -c 'exit 42'
check "false(1)" 1 "^$" "" "$cohook" false
check "C program, exit 42" 42 "" "^threads [0-9]+$" "$cohook" -w 1 "$threads" 42
# Killed by a signal: the shell that started cohook reports 128+N, since exec replaced cohook.
check "killed by SIGTERM" 0 "" "^143$" sh -c "'$cohook' -- sh -c 'kill -TERM \$\$'; echo \$?"
check "killed by SIGKILL" 0 "" "^137$" sh -c "'$cohook' -- sh -c 'kill -KILL \$\$'; echo \$?"
check "killed by SIGSEGV" 0 "" "^139$" sh -c "'$cohook' -- sh -c 'kill -SEGV \$\$'; echo \$?"

echo "== arguments, preload, LD_PRELOAD kept"
check "arguments kept" 0 "" "^a\|b c\|\|-w\|--\|$" "$cohook" -- printf '%s|' a 'b c' '' -w --
check "options end at the program" 0 "" "^-w\|3\|$" "$cohook" printf '%s|' -w 3
check "LD_PRELOAD is libhook.so" 0 "" "^$hook$" "$cohook" sh -c 'printf "%s\n" "$LD_PRELOAD"'
check "libhook.so mapped in the program" 0 "" " $hook$" "$cohook" cat /proc/self/maps
# The threads really become coroutines: 33 OS threads natively, a handful with one worker.
check "threads natively" 0 "" "^threads 33$" "$threads"
check "threads preloaded (-w 1)" 0 "" "^threads [1-8]$" "$cohook" -w 1 "$threads"
printf 'int cohook_cli_extra;\n' >"$dir/extra.c"
"$cc" -shared -fPIC -o "$dir/libextra.so" "$dir/extra.c" || { echo "FAIL cannot build a test library"; fail=1; }
check "LD_PRELOAD kept after ours" 0 "" "^$hook:$dir/libextra.so$" \
  env LD_PRELOAD="$dir/libextra.so" "$cohook" sh -c 'printf "%s\n" "$LD_PRELOAD"'
check "both preloaded" 0 "" "$dir/libextra.so" env LD_PRELOAD="$dir/libextra.so" "$cohook" cat /proc/self/maps
check "nested cohook adds nothing" 0 "" "^$hook$" "$cohook" "$cohook" sh -c 'printf "%s\n" "$LD_PRELOAD"'
mkdir "$dir/other" && cp "$hook" "$dir/other/libhook.so"
check "another libhook.so in LD_PRELOAD refused" 125 "^cohook: LD_PRELOAD has $dir/other/libhook.so: .*; " "^$" \
  env LD_PRELOAD="$dir/other/libhook.so" "$cohook" true
one_line "another libhook.so"

echo "== options mapped onto the knobs"
knob() { # OPTION... VAR VALUE
  local var=${*: -2:1} val=${*: -1}
  check "${*:1:$#-2} -> $var=$val" 0 "" "^$val$" "$cohook" "${@:1:$#-2}" -- sh -c "printf '%s\n' \"\$$var\""
}
knob -w 3 COHOOK_WORKERS 3
knob --workers=5 COHOOK_WORKERS 5
knob --stack 1M COHOOK_STACK_SIZE 1M
knob --threads native COHOOK_THREADS native
knob --tls worker COHOOK_TLS worker
knob --stats COHOOK_STATS 1
knob --stats=/dev/null COHOOK_STATS /dev/null
knob --log warn COHOOK_LOG warn
knob --trace 60000 COHOOK_TRACE 60000
knob --handoff-us 5000 COHOOK_HANDOFF_US 5000
(cd "$dir" && check "--stats=FILE made absolute" 0 "" "^$dir/st.txt$" "$cohook" --stats=st.txt sh -c 'printf "%s\n" "$COHOOK_STATS"')

echo "== a bad knob value is refused by the runtime (status 1, one line)"
check "-w 0" 1 "^cohook: COHOOK_WORKERS=0: " "^$" "$cohook" -w 0 true
one_line "-w 0"
check "--threads green" 1 "^cohook: COHOOK_THREADS=green: " "^$" "$cohook" --threads green true
check "--stack 4K" 1 "^cohook: COHOOK_STACK_SIZE=4K: " "^$" "$cohook" --stack 4K true

echo "== cohook's own errors: 125 (with a usage line)"
check "unknown option" 125 "^usage: cohook " "^$" "$cohook" --bogus true
check "unknown short option" 125 "^cohook: -x: unknown option" "^$" "$cohook" -x true
check "missing value" 125 "^cohook: -w: needs a value; " "^$" "$cohook" -w
check "missing value (long)" 125 "^cohook: --workers: needs a value; " "^$" "$cohook" --workers
check "no program" 125 "^cohook: program: missing; " "^$" "$cohook" -w 2
check "empty --stats=" 125 "^usage: cohook " "^$" "$cohook" --stats= true
check "--help" 0 "^$" "^usage: cohook " "$cohook" --help
check "--version" 0 "^$" "^cohook [0-9]+\.[0-9]+" "$cohook" --version

echo "== 126: found but cannot run; 127: not found"
printf '#!/bin/sh\necho hi\n' >"$dir/noexec" && chmod 644 "$dir/noexec"
mkdir -p "$dir/p/adir"
cp "$dir/noexec" "$dir/p/noexec"
check "not executable" 126 "^cohook: $dir/noexec: not executable; " "^$" "$cohook" "$dir/noexec"
one_line "not executable"
check "a directory" 126 "^cohook: $dir: is a directory; " "^$" "$cohook" "$dir"
check "in PATH, not executable" 126 "^cohook: noexec: found as $dir/p/noexec, " "^$" env PATH="$dir/p" "$cohook" noexec
check "in PATH, a directory" 126 "^cohook: adir: found as " "^$" env PATH="$dir/p" "$cohook" adir
check "no such file" 127 "^cohook: $dir/none: no such file; " "^$" "$cohook" "$dir/none"
check "not in PATH" 127 "^cohook: cohook-no-such-program: not found in PATH; " "^$" "$cohook" cohook-no-such-program
one_line "not in PATH"
printf '#!%s/no-interp\n' "$dir" >"$dir/badinterp" && chmod 755 "$dir/badinterp"
check "script with a missing interpreter" 127 "interpreter $dir/no-interp: no such file" "^$" "$cohook" "$dir/badinterp"

echo "== refused: static, static-pie, another architecture"
printf 'int main(void) { return 7; }\n' >"$dir/static.c"
# A static link that fails is a failure of this test, not a skip: the refusal must be shown to work.
if ! "$cc" -static -o "$dir/static" "$dir/static.c"; then
  echo "FAIL gcc -static does not link here (install libc6-dev's static libc)"
  fail=1
else
  check "static binary runs natively" 7 "^$" "^$" "$dir/static"
  check "static binary refused" 126 "^cohook: $dir/static: statically linked: LD_PRELOAD cannot reach it; " "^$" \
    "$cohook" "$dir/static"
  one_line "static"
  check "static binary refused (through PATH)" 126 "^cohook: static: statically linked" "^$" \
    env PATH="$dir" "$cohook" static
  printf '#!%s/static\n' "$dir" >"$dir/static-script" && chmod 755 "$dir/static-script"
  check "script with a static interpreter refused" 126 \
    "^cohook: $dir/static-script: interpreter $dir/static: statically linked" "^$" "$cohook" "$dir/static-script"
fi
if ! "$cc" -static-pie -o "$dir/static-pie" "$dir/static.c"; then
  echo "FAIL gcc -static-pie does not link here"
  fail=1
else
  check "static-pie binary refused" 126 "statically linked" "^$" "$cohook" "$dir/static-pie"
fi
# Another architecture: a copy of a dynamic executable with its ELF machine (or class) patched.
ours=$(od -An -tu2 -j18 -N2 "$hook" | tr -d ' ')
if [ "$ours" = 62 ]; then other='\267\000' other_name=AArch64; else other='\076\000' other_name=x86-64; fi
cp "$(type -P true)" "$dir/foreign" && printf "$other" | dd of="$dir/foreign" bs=1 seek=18 conv=notrunc 2>/dev/null
check "another machine refused" 126 "^cohook: $dir/foreign: built for $other_name \(64-bit\), libhook.so for .*; " "^$" \
  "$cohook" "$dir/foreign"
one_line "another machine"
cp "$(type -P true)" "$dir/foreign32" && printf '\001' | dd of="$dir/foreign32" bs=1 seek=4 conv=notrunc 2>/dev/null
check "another word size refused" 126 "built for .*\(32-bit\)" "^$" "$cohook" "$dir/foreign32"

echo "== scripts run, their interpreter preloaded"
# $1 is the library to look for: the interpreter itself (PID $$) must have it mapped.
printf '#!/bin/sh\ngrep -qF -- "$1" /proc/$$/maps && echo preloaded\nexit 3\n' >"$dir/script.sh"
printf '#!/usr/bin/env sh\ngrep -qF -- "$1" /proc/$$/maps && echo preloaded\n' >"$dir/envscript.sh"
printf 'echo no-shebang\ngrep -qF -- "$1" /proc/$$/maps && echo preloaded\n' >"$dir/noshebang.sh"
chmod 755 "$dir/script.sh" "$dir/envscript.sh" "$dir/noshebang.sh"
check "#!/bin/sh script" 3 "^$" "^preloaded$" "$cohook" "$dir/script.sh" "$hook"
check "#!/bin/sh script through PATH" 3 "^$" "^preloaded$" env PATH="$dir:$PATH" "$cohook" script.sh "$hook"
check "#!/usr/bin/env sh script" 0 "^$" "^preloaded$" "$cohook" "$dir/envscript.sh" "$hook"
check "script without #! (run by /bin/sh)" 0 "^$" "preloaded" "$cohook" "$dir/noshebang.sh" "$hook"

echo "== libhook.so found relative to the command (a moved install), or not at all"
mkdir -p "$dir/reloc/bin" && cp "$cohook" "$dir/reloc/bin/cohook"
if "$dir/reloc/bin/cohook" --version | grep -q "^libhook.so: not found"; then
  check "libhook.so missing" 125 "^cohook: libhook.so: not found in $dir/reloc/bin, $dir/reloc/lib.*; " "^$" \
    "$dir/reloc/bin/cohook" true
  one_line "libhook.so missing"
else
  echo "note: not checking 'libhook.so missing': $("$dir/reloc/bin/cohook" --version | tail -1) (its configured directory)"
fi
mkdir -p "$dir/reloc/lib" && cp "$hook" "$dir/reloc/lib/libhook.so"
check "found in ../lib" 0 "" "^libhook.so: $dir/reloc/lib/libhook.so$" "$dir/reloc/bin/cohook" --version
check "../lib/libhook.so preloaded" 0 "" " $dir/reloc/lib/libhook.so$" "$dir/reloc/bin/cohook" cat /proc/self/maps
multiarch=$("$cc" -print-multiarch 2>/dev/null || true)
if [ -n "$multiarch" ]; then
  mkdir -p "$dir/reloc/lib/$multiarch" && mv "$dir/reloc/lib/libhook.so" "$dir/reloc/lib/$multiarch/"
  check "found in ../lib/$multiarch" 0 "" "^libhook.so: $dir/reloc/lib/$multiarch/libhook.so$" \
    "$dir/reloc/bin/cohook" --version
fi

[ "$fail" = 0 ] && echo "== all cohook command checks passed"
exit "$fail"
