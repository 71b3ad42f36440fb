#!/usr/bin/env bash
# scripts/varnish.sh — a real threaded server under the preload: Debian's Varnish Cache (varnishd:
# a manager process and a cache process with two pools of worker threads) in front of a local
# backend, natively and with LD_PRELOAD=libhook.so, in one run.
#
#   scripts/varnish.sh           10 s of load per mode
#   scripts/varnish.sh --quick   3 s of load per mode
#   HOOK=/path/to/libhook.so scripts/varnish.sh   (default: build/libhook.so, built if missing)
#
# For each mode: start varnishd in the foreground (-F, -j none as root, -n a temp working dir,
# -s malloc,64m, -a 127.0.0.1:PORT, -b the backend) — never as the system service; fetch every file
# twice through it with curl (a miss, then a hit) and compare the bodies with the originals byte for
# byte; then load it with wrk (-t2 -c200, keep-alive) while sampling the OS threads of all its
# processes (/proc/PID/task). The backend is python3's http.server on 127.0.0.1 serving a temp dir
# of files with known contents. All traffic is on 127.0.0.1; every wait is bounded.
#
# Prints one table: mode, requests/s, wrk errors (connect/read/write/timeout/non-2xx), peak OS
# threads of varnishd, body check. Exits non-zero if a varnishd does not start or dies, if any body
# differs, or if wrk reports any error.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

quick=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    *) echo "usage: scripts/varnish.sh [--quick]   (env HOOK: path to libhook.so)" >&2; exit 2 ;;
  esac
done
secs=10
[ "$quick" = 1 ] && secs=3

need=(varnish wrk curl)
command -v python3 >/dev/null || need+=(python3)
scripts/ensure-packages.sh scripts/varnish.sh "${need[@]}"

if [ -z "${HOOK:-}" ]; then
  HOOK=$root/build/libhook.so
  if [ ! -e "$HOOK" ]; then
    echo "== building build/libhook.so"
    cmake -S . -B build >/dev/null
    cmake --build build -j"$(nproc)" --target hook >/dev/null
  fi
fi
[ -e "$HOOK" ] || { echo "scripts/varnish.sh: HOOK=$HOOK: no such file" >&2; exit 2; }
HOOK=$(cd "$(dirname "$HOOK")" && pwd)/$(basename "$HOOK")
varnishd=$(command -v varnishd || echo /usr/sbin/varnishd)

tmp=$(mktemp -d /tmp/cohook-varnish.XXXXXX)
backend="" vpid="" sampler=""
# shellcheck disable=SC2317 # called from the trap
# every process this script started, by pid: the sampler, varnishd (manager and the processes it
# started), the backend
cleanup() {
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; fi
  stop_varnish
  if [ -n "$backend" ]; then
    kill "$backend" 2>/dev/null || true
    wait "$backend" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap 'cleanup || true' EXIT
trap 'exit 130' INT TERM

. "$root/scripts/lib.sh" # freeport

# varnishd's processes: the manager and its children (the cache process, VCL compilers)
vpids() {
  [ -n "$vpid" ] || return 0
  kill -0 "$vpid" 2>/dev/null && echo "$vpid"
  pgrep -P "$vpid" 2>/dev/null || true
}

stop_varnish() {
  [ -n "$vpid" ] || return 0
  local kids
  kids=$(pgrep -P "$vpid" 2>/dev/null || true)
  kill "$vpid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$vpid" 2>/dev/null || true
  wait "$vpid" 2>/dev/null || true
  # shellcheck disable=SC2086 # a list of pids
  [ -z "$kids" ] || kill -9 $kids 2>/dev/null || true
  vpid=""
  return 0
}

# "exit status N" or "killed by SIGxxx" for a status as the shell reports it
describe_status() {
  local s=$1
  if [ "$s" -gt 128 ]; then echo "killed by SIG$(kill -l $((s - 128)) 2>/dev/null || echo "$((s - 128))")"; else echo "exit status $s"; fi
}

# ---- the backend and its files ---------------------------------------------------------------------
www=$tmp/www
mkdir -p "$www/sub"
head -c 1024 /dev/urandom | base64 >"$www/index.html"
printf 'hello from the backend\n' >"$www/hello.txt"
head -c 100000 /dev/urandom >"$www/blob100k.bin"
head -c 1048576 /dev/urandom >"$www/sub/blob1m.bin"
seq 1 20000 >"$www/sub/numbers.txt"
: >"$www/empty.txt"
files=(index.html hello.txt blob100k.bin sub/blob1m.bin sub/numbers.txt empty.txt)

bport=$(freeport)
python3 -m http.server "$bport" --bind 127.0.0.1 --directory "$www" >"$tmp/backend.log" 2>&1 &
backend=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$bport/hello.txt" && break
  kill -0 "$backend" 2>/dev/null || { echo "backend did not start:"; cat "$tmp/backend.log"; exit 1; }
  sleep 0.1
done

# ---- one mode --------------------------------------------------------------------------------------
rows=()
fail=0

# run_mode NAME PRELOAD(empty or a path)
run_mode() {
  local mode=$1 preload=$2 port work log
  port=$(freeport)
  work=$tmp/work-$mode
  log=$tmp/varnishd-$mode.log
  echo "== $mode: varnishd on 127.0.0.1:$port${preload:+ (LD_PRELOAD=$preload)}"
  # shellcheck disable=SC2054 # malloc,64m is one argument
  local cmd=("$varnishd" -F -j none -T none -n "$work" -a "127.0.0.1:$port" -b "127.0.0.1:$bport"
    -s malloc,64m)
  if [ -n "$preload" ]; then
    env LD_PRELOAD="$preload" "${cmd[@]}" >"$log" 2>&1 &
  else
    "${cmd[@]}" >"$log" 2>&1 &
  fi
  vpid=$!

  # up when it answers HTTP (any status); dead if the manager exits or says its cache process died
  local up=0 st what
  local died='Child \([0-9]+\) (died|Panic)|Child not responding|Child start failed|[Cc]ould not'
  for _ in $(seq 1 300); do
    kill -0 "$vpid" 2>/dev/null || break
    grep -qE "$died" "$log" && break
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/hello.txt"; then up=1; break; fi
    sleep 0.1
  done
  if [ "$up" = 0 ]; then
    if ! kill -0 "$vpid" 2>/dev/null; then
      st=0
      wait "$vpid" || st=$?
      vpid=""
      what="died at start: $(describe_status "$st")"
    elif grep -qE "$died" "$log"; then
      what="died at start: its cache process died ($(grep -m1 -E "$died" "$log"))"
      stop_varnish
    else
      local kids
      kids=$(pgrep -P "$vpid" 2>/dev/null | tr '\n' ' ' || true)
      what="hung at start: no answer within 30 s (manager running, cache process: ${kids:-none})"
      stop_varnish
    fi
    echo "$mode varnishd $what; its log:"
    sed 's/^/    /' "$log" | tail -20
    rows+=("$mode|-|-|-|-|-|-|-|$what")
    fail=1
    return 0
  fi

  # bodies: a miss, then a hit, each byte for byte
  local body=OK f n
  for n in 1 2; do
    for f in "${files[@]}"; do
      if ! curl -sS --fail --max-time 10 -o "$tmp/got" "http://127.0.0.1:$port/$f" 2>"$tmp/curl.err" ||
        ! cmp -s "$tmp/got" "$www/$f"; then
        echo "$mode body differs or fetch failed: /$f (fetch $n) $(head -c 200 "$tmp/curl.err")"
        body=FAIL
      fi
    done
  done
  echo "   bodies of ${#files[@]} files, fetched twice: $body"

  # load, with the OS threads of all varnishd processes sampled
  echo 0 >"$tmp/threads"
  (
    most=0
    while :; do
      n=0
      for p in $(vpids); do
        t=$(find /proc/"$p"/task -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) || t=0
        n=$((n + t))
      done
      [ "$n" -gt "$most" ] && most=$n && echo "$most" >"$tmp/threads"
      sleep 0.2
    done
  ) &
  sampler=$!
  local out
  out=$(timeout -k 5 $((secs + 30)) wrk -t2 -c200 -d"${secs}s" --timeout 5s "http://127.0.0.1:$port/index.html" 2>&1 || true)
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  sampler=""
  local rps conn rd wr to non2xx threads alive=yes
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  read -r conn rd wr to < <(awk '/Socket errors/ {gsub(",",""); print $4, $6, $8, $10; f=1} END {if (!f) print 0, 0, 0, 0}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF; f=1} END {if (!f) print 0}' <<<"$out")
  threads=$(cat "$tmp/threads")
  kill -0 "$vpid" 2>/dev/null || alive=no
  [ -n "$(pgrep -P "$vpid" 2>/dev/null || true)" ] || alive=no
  echo "   wrk: ${rps:-?} req/s; errors connect $conn read $rd write $wr timeout $to non-2xx $non2xx;" \
    "OS threads $threads; varnishd still running: $alive"
  [ -n "$rps" ] || { echo "   wrk output:"; sed 's/^/    /' <<<"$out"; }
  if [ "$body" != OK ] || [ -z "$rps" ] || [ "$alive" = no ] ||
    [ $((conn + rd + wr + to + non2xx)) -gt 0 ]; then
    fail=1
  fi
  local note=$body
  if [ "$alive" = no ]; then
    note="$body, died under load"
    echo "   varnishd's log:"
    sed 's/^/    /' "$log" | tail -20
  fi
  rows+=("$mode|${rps:-?}|$conn|$rd|$wr|$to|$non2xx|$threads|$note")
  stop_varnish
}

run_mode native ""
run_mode preloaded "$HOOK"

echo
echo "varnishd $("$varnishd" -V 2>&1 | sed -n 's/.*(varnish-\([^ ]*\) .*/\1/p'), wrk -t2 -c200 -d${secs}s, $(nproc) CPUs"
printf '%-10s %10s %8s %6s %6s %8s %8s %11s  %s\n' mode req/s connect read write timeout non-2xx "OS threads" bodies
for r in "${rows[@]}"; do
  IFS='|' read -r m rps c rd w to nx th b <<<"$r"
  printf '%-10s %10s %8s %6s %6s %8s %8s %11s  %s\n' "$m" "$rps" "$c" "$rd" "$w" "$to" "$nx" "$th" "$b"
done
if [ "$fail" = 0 ]; then echo "== varnish: OK"; else echo "== varnish: FAILED"; fi
exit "$fail"
