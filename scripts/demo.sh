#!/usr/bin/env bash
# scripts/demo.sh — the headline: unmodified legacy servers, native vs LD_PRELOAD=libhook.so, against
# a hand-written libev server, measured side by side in one run.
#
#   scripts/demo.sh           full run (about 3-4 minutes)
#   scripts/demo.sh --quick   shorter runs, for a first look (under a minute)
#   scripts/demo.sh --only echo|http|crawler|mariadb   one part only (with or without --quick)
#   scripts/demo.sh --mariadb  adds the MariaDB part (scripts/mariadb.sh: about 1-2 minutes more, and
#                              mariadb-server and sysbench installed on first use), off by default
#   scripts/demo.sh --variant COHOOK_X=VAL     one more preloaded row per measurement, with that knob
#                                              (before/after comparisons in one run, e.g. COHOOK_TLS=worker)
#
# Server pinned to CPU 0, load generator to CPU 1 (so the preloaded server gets one worker, like the
# single-threaded libev reference). Echo: demo/echo_server (one pthread per connection) natively and
# preloaded (started with the cohook command: `cohook -w 1 -- server`), demo/libev_echo, each at 100,
# 1 000 and 10 000 connections, measured with demo/loadgen (every byte verified). HTTP:
# demo/http_server natively and preloaded under wrk at 100 and 1 000 keep-alive connections. MariaDB
# (with --mariadb): scripts/mariadb.sh --aio native, sysbench oltp_read_write with 32 threads (its
# transactions/s in the req/s column), server and load not pinned. All traffic is on 127.0.0.1; every
# run is bounded in time.
#
# Prints one table and writes it as markdown, with a PNG plot, under results/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

quick=0 only="" variant="" mariadb=0
usage="usage: scripts/demo.sh [--quick] [--only echo|http|crawler|mariadb] [--mariadb] [--variant COHOOK_X=VALUE]"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) only=${2:-}; shift ;;
    --variant) variant=${2:-}; shift ;;
    --mariadb) mariadb=1 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
case "$only" in ""|echo|http|crawler) ;; mariadb) mariadb=1 ;;
  *) echo "demo.sh: --only $only: use echo, http, crawler or mariadb" >&2; exit 2 ;; esac
[ -z "$variant" ] || [[ "$variant" =~ ^COHOOK_[A-Z_]+=[^[:space:]]+$ ]] ||
  { echo "demo.sh: --variant $variant: give one knob as COHOOK_X=VALUE"; echo "$usage"; exit 2; } >&2
part() { [ -z "$only" ] || [ "$only" = "$1" ]; }
# The servers of one row: native, preloaded, the variant if asked for (preloaded with one more knob).
servers() { echo native preloaded ${variant:+variant} "$@"; }
label() { [ "$1" = variant ] && echo "preloaded,$variant" || echo "$1"; }
if [ "$quick" = 1 ]; then secs=1 warm=1 settle=0.2 crawl_n=20 db_secs=5; else secs=6 warm=2 settle=0.5 crawl_n=50 db_secs=20; fi

# ---- dependencies ---------------------------------------------------------------------------------
need=(cmake make gcc g++ pkg-config libev-dev libcmocka-dev wrk gnuplot-nox)
command -v python3 >/dev/null || need+=(python3)
scripts/ensure-packages.sh demo.sh "${need[@]}"
perf_ok=0 # perf with --control (Linux perf 5.10 or later) counts the syscalls/req column
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1 &&
   [[ "$(perf stat -h 2>&1)" == *--control* ]]; then perf_ok=1; fi

echo "== building (Release)"
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=Release -DCOHOOK_BUILD_TESTS=OFF >/dev/null
cmake --build build-demo -j"$(nproc)" --target hook cohook_cmd echo_server libev_echo http_server loadgen crawler >/dev/null
bin=build-demo/demo
# The preloaded runs go through the cohook command, as a user would start them. `-w 1` is what the
# pinning to one CPU gives by default anyway; it is spelled out so the table's "one worker" is visible.
cohook=$root/build-demo/cohook

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
out=results
mkdir -p "$out"
stamp=$(date -u +%Y-%m-%dT%H:%MZ)
tsv=$out/demo.tsv
: >"$tsv"
www=$(mktemp -d)
head -c 1024 /dev/urandom | base64 >"$www/index.html"
srv=""
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$www"; }
trap cleanup EXIT

. "$root/scripts/lib.sh" # freeport
mem_avail_kb() { awk '/MemAvailable/ {print $2}' /proc/meminfo; }

# start_server CMD... : starts CMD pinned to CPU 0, with @PORT@ in its arguments replaced by a free
# port; sets srv and port
start_server() {
  port=$(freeport)
  local args=()
  for a in "$@"; do args+=("${a//@PORT@/$port}"); done
  taskset -c 0 "${args[@]}" >"$out/server.log" 2>&1 &
  srv=$!
  for _ in $(seq 1 100); do grep -q "listening" "$out/server.log" 2>/dev/null && return 0; sleep 0.05; done
  echo "server did not start: $*" >&2
  cat "$out/server.log" >&2
  return 1
}

# sample the server's threads and the machine's available memory while the load runs
sampler() {
  local pid=$1 f=$2 base=$3 maxthr=0 t a
  local minavail=$base # own line: words of one `local` are expanded before any of them is assigned
  while kill -0 "$pid" 2>/dev/null; do
    t=$(awk '/^Threads:/ {print $2}' /proc/"$pid"/status 2>/dev/null || echo 0)
    a=$(mem_avail_kb)
    [ "${t:-0}" -gt "$maxthr" ] && maxthr=$t
    [ "$a" -lt "$minavail" ] && minavail=$a
    echo "$maxthr $((base - minavail))" >"$f"
    sleep 0.2
  done
}

# ---- syscalls per request -------------------------------------------------------------------------
# perf attaches to the server while it is idle, its counter disabled (-D -1), so that every thread the
# server makes afterwards inherits the counter; the counter is then enabled and disabled around the
# measured window through perf's control fifo. (Attaching `perf stat -p` while the load starts, as this
# script did until 2026-11-30, counts only the threads listed in /proc/PID/task when perf starts plus those
# made later by a thread already counted: a thread-per-connection server making its threads at that
# moment lost up to 60% of them, and the native HTTP server showed 3.95-6.99 syscalls per request
# instead of the 7.0 that `strace -f -c` and a perf attached beforehand both count.)
perf_attach() { # PID
  [ "$perf_ok" = 1 ] || return 0
  pdir=$(mktemp -d)
  mkfifo "$pdir/ctl" "$pdir/ack"
  perf stat -e raw_syscalls:sys_enter -p "$1" -D -1 --control "fifo:$pdir/ctl,$pdir/ack" -o "$pdir/out" \
    >/dev/null 2>&1 &
  perf_pid=$!
  # read-write opens of a fifo never block, even if perf never starts; perf_cmd then times out
  exec {perf_ctl}<>"$pdir/ctl" {perf_ack}<>"$pdir/ack"
}
# perf_cmd enable|disable: acknowledged by perf once done; a failure voids the window's count
perf_cmd() {
  [ "$perf_ok" = 1 ] || return 0
  { echo "$1" >&"$perf_ctl" && read -r -t 10 _ <&"$perf_ack"; } || echo "perf $1 not acknowledged" >"$pdir/failed"
}
perf_detach() { # sets sc to the count of the enabled window, or "-" (not in a subshell: perf is our child)
  sc="-"
  [ "$perf_ok" = 1 ] || return 0
  kill -INT "$perf_pid" 2>/dev/null
  wait "$perf_pid" 2>/dev/null || true
  exec {perf_ctl}>&- {perf_ack}>&-
  if [ -e "$pdir/failed" ]; then
    echo "  (no syscall count: $(cat "$pdir/failed"))"
  else
    sc=$(awk '/raw_syscalls/ {gsub(",","",$1); print $1}' "$pdir/out")
    [[ "$sc" =~ ^[0-9]+$ ]] || echo "  (no syscall count: perf said: $(grep -v '^#' "$pdir/out" | tr -s ' \n' ' '))"
  fi
  rm -rf "$pdir"
}

# established PORT: the server's established TCP connections on 127.0.0.1:PORT (/proc/net/tcp)
established() {
  awk -v p="$(printf ':%04X' "$1")" '$4 == "01" && substr($2, length($2) - 4) == p { n++ } END { print n + 0 }' /proc/net/tcp
}
# loadgen's warm-up starts when all its connections are up, which takes a while at 10 000: its
# measured window starts then, so the count's window waits for them too (at most 30 s).
wait_connected() { # PORT CONNS
  local deadline=$((SECONDS + 30))
  while [ "$(established "$1")" -lt "$2" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
}

# measure KIND NAME CONNS LOADCMD... : KIND is echo or http; the server is running as $srv
measure() {
  local kind=$1 name=$2 conns=$3
  shift 3
  local base samp res rps p99 errs rss thr mem sc req spr
  base=$(mem_avail_kb)
  samp=$(mktemp)
  echo "0 0" >"$samp"
  sampler "$srv" "$samp" "$base" &
  local sp=$!
  # perf counts the server's syscalls over the same window the load generator measures: after the
  # warm-up for echo (loadgen reports only the measured window), all of wrk's run for http.
  perf_attach "$srv"
  if [ "$kind" = echo ]; then
    (wait_connected "$port" "$conns"; sleep "$warm"; perf_cmd enable; sleep "$secs"; perf_cmd disable) &
    local pw=$!
    res=$(taskset -c 1 "$@" 2>&1 || true)
    wait "$pw" 2>/dev/null || true
  else
    perf_cmd enable
    res=$(taskset -c 1 "$@" 2>&1 || true)
    perf_cmd disable
  fi
  perf_detach
  if [ "$kind" = echo ]; then
    rps=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$res")
    p99=$(sed -n 's/.* p99_us=\([0-9.]*\).*/\1/p' <<<"$res")
    errs=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$res")
    local mism
    mism=$(sed -n 's/.* mismatches=\([0-9]*\).*/\1/p' <<<"$res")
    errs=$(( ${errs:-0} + ${mism:-0} ))
    req=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$res")
  else
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$res")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /ms$/) {sub("ms","",v); v*=1000} else if (v ~ /us$/) {sub("us","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000000}; print v}' <<<"$res")
    errs=$(awk '/Socket errors/ {gsub(",",""); s=$4+$6+$8+$10} /Non-2xx/ {n=$NF} END {print s+n+0}' <<<"$res")
    req=$(awk '/requests in/ {print $1}' <<<"$res")
  fi
  rss=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/"$srv"/status 2>/dev/null || echo "?")
  kill "$sp" 2>/dev/null
  wait "$sp" 2>/dev/null || true
  read -r thr mem <"$samp"
  spr="-"
  if [[ "$sc" =~ ^[0-9]+$ ]] && [ -n "${req:-}" ] && [ "${req:-0}" -gt 0 ]; then
    spr=$(awk -v s="$sc" -v r="$req" 'BEGIN { printf "%.2f", s / r }')
  fi
  rm -f "$samp"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$name" "$conns" "${rps:-0}" "${p99:-0}" \
    "${errs:-?}" "$rss" "$((mem / 1024))" "$thr" "$spr" >>"$tsv"
  printf '  %-5s %-10s %6s conns: %10s req/s  p99 %8s us  errors %s  rss %s MB  mem %s MB  threads %s  sys/req %s\n' \
    "$kind" "$name" "$conns" "${rps:-0}" "${p99:-0}" "${errs:-?}" "$rss" "$((mem / 1024))" "$thr" "$spr"
}

stop_server() {
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
  srv=""
  sleep "$settle" # let TIME_WAIT sockets and freed memory settle between runs
}

if part echo; then
echo "== echo: thread-per-connection server native, preloaded, and the libev reference"
for c in 100 1000 10000; do
  for v in $(servers libev); do
    case $v in
      native) start_server "$bin/echo_server" @PORT@ ;;
      preloaded) start_server "$cohook" -w 1 -- "$bin/echo_server" @PORT@ ;;
      variant) start_server env "$variant" "$cohook" -w 1 -- "$bin/echo_server" @PORT@ ;;
      libev) start_server "$bin/libev_echo" @PORT@ ;;
    esac
    measure echo "$(label "$v")" "$c" "$bin/loadgen" -p "$port" -c "$c" -s 64 -d "$secs" -w "$warm" -t 10
    stop_server
  done
done
fi

if part http; then
echo "== http: thread-per-connection static server under wrk (keep-alive)"
for c in 100 1000; do
  for v in $(servers); do
    case $v in
      native) start_server "$bin/http_server" @PORT@ "$www" ;;
      preloaded) start_server "$cohook" -w 1 -- "$bin/http_server" @PORT@ "$www" ;;
      variant) start_server env "$variant" "$cohook" -w 1 -- "$bin/http_server" @PORT@ "$www" ;;
    esac
    measure http "$(label "$v")" "$c" wrk -t1 -c"$c" -d"$((secs + 1))s" --latency "http://127.0.0.1:$port/index.html"
    stop_server
  done
done
fi

crawl="(not run)"
if part crawler; then
echo "== crawler: $crawl_n requests that each wait 100 ms server-side"
start_server "$bin/http_server" @PORT@ "$www"
crawl=$(for m in sequential threaded; do taskset -c 1 "$bin/crawler" "$m" "$crawl_n" 127.0.0.1 "$port" "/sleep?ms=100" 2>&1 | tail -1; done
  taskset -c 1 "$cohook" -w 1 -- "$bin/crawler" threaded "$crawl_n" 127.0.0.1 "$port" "/sleep?ms=100" 2>&1 | tail -1 | sed 's/^/preloaded /')
echo "$crawl" | sed 's/^/  /'
stop_server
fi

# MariaDB: scripts/mariadb.sh does it all (packages, its own datadirs, a server that never gets ready
# reported and stopped); its rows go into the table as kind "mariadb", conns = sysbench's threads.
# Only InnoDB's default AIO here; `scripts/mariadb.sh` alone runs --innodb-use-native-aio=0 as well.
if [ "$mariadb" = 1 ] && part mariadb; then
  echo "== mariadb: sysbench oltp_read_write, 32 threads, ${db_secs} s per server (scripts/mariadb.sh)"
  COHOOK_CMD=$cohook scripts/mariadb.sh --time "$db_secs" --aio native --tsv "$tsv" 2>&1 | sed 's/^/  /' ||
    true # its failures are in its rows and its output; the demo goes on
fi

# ---- the table -----------------------------------------------------------------------------------
md=$out/demo.md
{
  echo "# cohook demo — $stamp"
  echo
  echo "Machine: $(nproc) CPUs ($(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ //'))," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)." \
    "Server on CPU 0, load on CPU 1; ${secs} s measured after ${warm} s warm-up."
  echo
  echo "| test | server | conns | req/s | p99 µs | errors | server peak RSS MB | machine memory MB | OS threads | syscalls/req | vs native | vs libev |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' '
    { key = $1 "|" $3; rps[$2 "|" key] = $4; row[NR] = $0 }
    END {
      for (i = 1; i <= NR; i++) {
        split(row[i], f, "\t"); key = f[1] "|" f[3]
        vn = (f[2] ~ /^preloaded/ && rps["native|" key] > 0) ? sprintf("%.2fx", f[4] / rps["native|" key]) : ""
        vl = (f[2] ~ /^preloaded/ && rps["libev|" key] > 0) ? sprintf("%.2fx", f[4] / rps["libev|" key]) : ""
        printf "| %s | %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], vn, vl
      }
    }' "$tsv"
  echo
  if grep -q '^mariadb' "$tsv"; then
    echo "MariaDB (scripts/mariadb.sh): req/s is sysbench oltp_read_write transactions/s with 32 threads over" \
      "TCP, p99 its 99th-percentile transaction latency, errors its retried deadlocks plus reconnects;" \
      "server and sysbench not pinned, the preloaded server on the default workers (one per CPU)."
    echo
  fi
  echo "Crawler ($crawl_n URLs, each held 100 ms by the server):"
  echo
  echo '```'
  echo "$crawl"
  echo '```'
} >"$md"
echo
cat "$md"

# ---- the plot ------------------------------------------------------------------------------------
awk -F'\t' '$1 == "echo" { v[$3 "," $2] = $4; c[$3] = 1 }
  END { for (k in c) printf "%s %s %s %s\n", k, v[k ",native"] + 0, v[k ",preloaded"] + 0, v[k ",libev"] + 0 }' "$tsv" |
  sort -n >"$out/echo.dat"
gnuplot <<EOF 2>/dev/null || echo "(gnuplot failed: no plot)"
set terminal pngcairo size 900,500 noenhanced
set output "$out/echo.png"
set title "Echo server, 64-byte messages: requests/s by concurrent connections ($stamp)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "requests/s"
set yrange [0:*]
set key below
plot "$out/echo.dat" using 2:xtic(1) title "thread-per-connection, native", \
     "" using 3 title "same binary, cohook (LD_PRELOAD=libhook.so)", \
     "" using 4 title "hand-written libev server"
EOF
[ -f "$out/echo.png" ] && echo "plot: $out/echo.png"
echo "markdown: $md"
