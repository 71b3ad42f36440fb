#!/usr/bin/env bash
# scripts/mariadb.sh — a real database under the preload: Debian's MariaDB server (mariadbd, one OS
# thread per connection, InnoDB's own background and I/O threads) under sysbench's OLTP read-write
# load, natively and started with the cohook command, in one run.
#
#   scripts/mariadb.sh                    60 s of load per server, with InnoDB's native AIO and without
#   scripts/mariadb.sh --time 10          10 s of load per server
#   scripts/mariadb.sh --aio native|off   one InnoDB I/O variant only (default: both)
#   COHOOK_CMD=/path/to/cohook scripts/mariadb.sh   (default: build/cohook, built if missing; any
#                                                   COHOOK_* knob in the environment reaches the preload)
#   scripts/mariadb.sh --pin              the server on CPU 0, sysbench on CPU 1 (as scripts/demo.sh runs
#                                         its servers and load), both modes alike
#   scripts/mariadb.sh --tsv FILE         also append the rows to FILE in scripts/demo.sh's format
#   COHOOK_LOG=warn scripts/mariadb.sh    a server that hangs preloaded shows the preload's stall reports
#
# For each variant (aio=native: the default configuration, where InnoDB submits its reads and writes
# through io_uring or libaio; aio=off: the same plus --innodb-use-native-aio=0, InnoDB's simulated AIO
# threads) and each mode (native, preloaded):
#   - a fresh datadir under a temp dir (mariadb-install-db, natively), never the system's /var/lib/mysql;
#   - mariadbd as root (--user=root) with the default configuration (/etc/mysql) plus
#     --thread-handling=one-thread-per-connection, on 127.0.0.1:<a free port> and a private socket;
#     ready when `mysqladmin ping` answers, within READY_TIMEOUT s (default 60). A server that never
#     gets ready is reported (its OS threads' syscalls and kernel stacks, and with gdb its coroutines'
#     backtraces through tools/gdb/cohook-gdb.py, saved under results/) and stopped; the run goes on;
#   - sysbench oltp_read_write prepare (4 tables x 20 000 rows), then run (32 threads, --time s) over
#     TCP: transactions/s, ignored errors (deadlocks, which sysbench retries: they happen natively
#     too), reconnects, and sysbench's own exit status (a fatal SQL error ends it non-zero);
#   - CHECK TABLE sbtest1..4 EXTENDED: each must say OK;
#   - the peak of mariadbd's OS threads (/proc/PID/status Threads:) from start to shutdown;
#   - mysqladmin shutdown, a bounded wait, then SIGKILL ("clean" or not).
# All traffic is on 127.0.0.1; every step has a timeout.
#
# Prints one table: variant, native and preloaded transactions/s and their ratio, then native/preloaded
# pairs of errors, reconnects, CHECK TABLE, peak OS threads. Exits non-zero if any server failed to
# start, died, failed sysbench, reconnected, failed a CHECK TABLE or did not shut down cleanly.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

secs=60 aio=both tsv="" ready_timeout=${READY_TIMEOUT:-60} pin_srv=() pin_load=()
usage="usage: scripts/mariadb.sh [--time SECONDS] [--aio both|native|off] [--pin] [--tsv FILE]"
while [ $# -gt 0 ]; do
  case "$1" in
    --time) secs=${2:-}; shift ;;
    --aio) aio=${2:-}; shift ;;
    --tsv) tsv=${2:-}; shift ;;
    --pin) pin_srv=(taskset -c 0) pin_load=(taskset -c 1) ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || { echo "mariadb.sh: --time $secs: give whole seconds (> 0)" >&2; exit 2; }
[[ "$ready_timeout" =~ ^[1-9][0-9]*$ ]] || { echo "mariadb.sh: READY_TIMEOUT=$ready_timeout: whole seconds" >&2; exit 2; }
case "$aio" in
  both) variants=(native off) ;;
  native|off) variants=("$aio") ;;
  *) echo "mariadb.sh: --aio $aio: use both, native or off" >&2; exit 2 ;;
esac
[ -z "$tsv" ] || [ -d "$(dirname "$tsv")" ] || { echo "mariadb.sh: --tsv $tsv: no such directory" >&2; exit 2; }

threads=32 tables=4 table_size=20000

# ---- dependencies and the cohook command -------------------------------------------------------------
need=(mariadb-server mariadb-client sysbench)
command -v python3 >/dev/null || need+=(python3)
if [ -z "${COHOOK_CMD:-}" ] && { [ ! -x build/cohook ] || [ ! -e build/libhook.so ]; }; then
  need+=(cmake make gcc g++ pkg-config libev-dev libcmocka-dev)
fi
scripts/ensure-packages.sh scripts/mariadb.sh "${need[@]}"

if [ -z "${COHOOK_CMD:-}" ]; then
  COHOOK_CMD=$root/build/cohook
  if [ ! -x "$COHOOK_CMD" ] || [ ! -e build/libhook.so ]; then
    echo "== building build/cohook and build/libhook.so"
    cmake -S . -B build >/dev/null
    cmake --build build -j"$(nproc)" --target hook cohook_cmd >/dev/null
  fi
fi
[ -x "$COHOOK_CMD" ] || { echo "mariadb.sh: COHOOK_CMD=$COHOOK_CMD: not an executable" >&2; exit 2; }
mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)
[ -x "$mariadbd" ] || { echo "mariadb.sh: no mariadbd (package mariadb-server)" >&2; exit 2; }
have_gdb=0
command -v gdb >/dev/null && have_gdb=1

results=$root/results
mkdir -p "$results"
tmp=$(mktemp -d /tmp/cohook-mariadb.XXXXXX)
mpid="" sampler=""
# shellcheck disable=SC2317 # called from the trap
# every process this script started, by pid: the thread sampler and mariadbd
cleanup() {
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; fi
  if [ -n "$mpid" ]; then
    kill -9 "$mpid" 2>/dev/null || true
    wait "$mpid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap 'cleanup || true' EXIT
trap 'exit 130' INT TERM

. "$root/scripts/lib.sh" # freeport

# "exit status N" or "killed by SIGxxx" for a status as the shell reports it
describe_status() {
  local s=$1
  if [ "$s" -gt 128 ]; then echo "killed by SIG$(kill -l $((s - 128)) 2>/dev/null || echo "$((s - 128))")"; else echo "exit status $s"; fi
}

# ---- diagnostics of a server that hangs ----------------------------------------------------------------
# diagnose PID MODE FILE WHAT: what every OS thread of PID is doing (kernel side: the syscall it is in and
# its wait channel, its kernel stack; with gdb: every OS thread's backtrace and, preloaded, every
# coroutine's) into FILE, and a summary on stdout. Run with COHOOK_LOG=warn, the preload's stall
# reports (in mariadbd's error log, where it sends its stderr) are shown too.
diagnose() {
  local pid=$1 mode=$2 file=$3 what=$4 t
  {
    echo "# mariadbd pid $pid ($mode): $what — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "## OS threads: tid, name, syscall (number and arguments, or running), wait channel"
    for t in /proc/"$pid"/task/*; do
      echo "$(basename "$t") $(cat "$t/comm" 2>/dev/null) [$(cat "$t/syscall" 2>/dev/null)] $(cat "$t/wchan" 2>/dev/null)"
    done
    echo "## the last lines of its error log"
    tail -15 "$dir/error.log" 2>/dev/null
    echo "## kernel stacks"
    for t in /proc/"$pid"/task/*; do
      echo "-- $(basename "$t") $(cat "$t/comm" 2>/dev/null)"
      cat "$t/stack" 2>/dev/null || echo "(unreadable)"
    done
  } >"$file" 2>&1
  if [ "$have_gdb" = 1 ]; then
    local g=(gdb -p "$pid" -batch -nx -ex "set pagination off")
    if [ "$mode" = preloaded ] && [ -e tools/gdb/cohook-gdb.py ]; then
      g+=(-ex "source tools/gdb/cohook-gdb.py" -ex "info coroutines")
    fi
    g+=(-ex "thread apply all bt 30")
    { echo "## gdb"; timeout -k 5 60 "${g[@]}" 2>&1 | grep -vE '^\[New LWP|^Reading symbols|^warning:' || true; } >>"$file"
    if [ "$mode" = preloaded ] && [ -e tools/gdb/cohook-gdb.py ]; then
      # every coroutine's backtrace: the ids from `info coroutines`
      local ids
      ids=$(sed -n 's/^[ *] *\([0-9][0-9]*\)  .*/\1/p' "$file" | head -200)
      if [ -n "$ids" ]; then
        g=(gdb -p "$pid" -batch -nx -ex "set pagination off" -ex "source tools/gdb/cohook-gdb.py")
        for t in $ids; do g+=(-ex "echo === coroutine $t\n" -ex "coroutine $t bt 30"); done
        { echo "## coroutines' backtraces"; timeout -k 5 120 "${g[@]}" 2>&1 | grep -vE '^\[New LWP|^Reading symbols|^warning:' || true; } >>"$file"
      fi
    fi
  fi
  echo "   OS threads of mariadbd (name: wait channel, syscall number):"
  for t in /proc/"$pid"/task/*; do
    echo "     $(cat "$t/comm" 2>/dev/null): $(cat "$t/wchan" 2>/dev/null), $(cut -d' ' -f1 "$t/syscall" 2>/dev/null)"
  done | sort | uniq -c | sed 's/^ *\([0-9]*\)  */    \1 x /'
  if grep -q '^   *Id  *LWP' "$file"; then
    echo "   its coroutines (gdb, tools/gdb/cohook-gdb.py):"
    sed -n '/^   *Id  *LWP/,/coroutines (.*) on [0-9]* schedulers/p' "$file" | head -40 | sed 's/^/     /'
  fi
  # the preload's own stall reports (COHOOK_LOG=warn), on mariadbd's stderr: its error log
  if grep -qh '^cohook:' "$dir/error.log" "$dir/stdout.log" 2>/dev/null; then
    echo "   the preload's reports (COHOOK_LOG):"
    grep -h '^cohook:' "$dir/error.log" "$dir/stdout.log" 2>/dev/null | tail -5 | cut -c1-400 | sed 's/^/     /'
  fi
  echo "   full dump (kernel stacks, backtraces): $file"
}

# ---- the server --------------------------------------------------------------------------------------
# stop_server [hung]: mysqladmin shutdown, up to 60 s for mariadbd to exit, then SIGKILL; sets
# down=clean or what happened. A server that does not answer (hung) gets SIGTERM and 10 s instead.
stop_server() {
  down=clean
  [ -n "$mpid" ] || return 0
  if kill -0 "$mpid" 2>/dev/null; then
    local i tries=600
    if [ "${1:-}" = hung ]; then
      kill "$mpid" 2>/dev/null || true
      down="SIGTERM"
      tries=100
    else
      timeout -k 5 60 mysqladmin --no-defaults --socket="$sock" -uroot --connect-timeout=5 shutdown \
        >>"$dir/client.log" 2>&1 || down="mysqladmin shutdown failed"
    fi
    for i in $(seq 1 "$tries"); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$mpid" 2>/dev/null; then
      down="$([ "$down" = clean ] && echo "mysqladmin shutdown" || echo "$down"), still running $((tries / 10)) s later: SIGKILL"
      kill -9 "$mpid" 2>/dev/null || true
    fi
  fi
  local st=0
  wait "$mpid" 2>/dev/null || st=$?
  [ "$down" = clean ] && [ "$st" != 0 ] && down="exited with $(describe_status "$st")"
  mpid=""
  return 0
}

# sample mariadbd's OS threads into $dir/threads (the peak so far) until it exits or is killed
sample_threads() {
  local pid=$1 f=$2 most=0 t
  while kill -0 "$pid" 2>/dev/null; do
    t=$(awk '/^Threads:/ {print $2}' /proc/"$pid"/status 2>/dev/null || echo 0)
    [ "${t:-0}" -gt "$most" ] && most=$t && echo "$most" >"$f"
    sleep 0.2
  done
}

sql() { # SQL...: as root over the private socket (unix_socket authentication), 300 s at most
  timeout -k 5 300 mariadb --no-defaults --socket="$sock" -uroot -N -B -e "$*"
}

# ---- one run -------------------------------------------------------------------------------------------
fail=0
declare -A R # R[variant,mode,field]: tps errors reconnects check threads p99 rss note

# run VARIANT MODE
run() {
  local variant=$1 mode=$2 port out st what
  dir=$tmp/$variant-$mode
  sock=$dir/mysqld.sock
  mkdir -p "$dir"
  local k="$variant,$mode"
  R[$k,tps]="-" R[$k,errors]="-" R[$k,reconnects]="-" R[$k,check]="-" R[$k,threads]="-" R[$k,p99]="-"
  R[$k,rss]="-" R[$k,note]=""
  port=$(freeport)
  local args=(--user=root --datadir="$dir/data" --socket="$sock" --port="$port" --bind-address=127.0.0.1
    --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" --thread-handling=one-thread-per-connection)
  [ "$variant" = off ] && args+=(--innodb-use-native-aio=0)
  echo "== aio=$variant $mode: mariadbd on 127.0.0.1:$port$([ "$variant" = off ] && echo " with --innodb-use-native-aio=0")"

  if ! timeout -k 5 180 mariadb-install-db --user=root --datadir="$dir/data" \
    --auth-root-authentication-method=socket --skip-test-db >"$dir/install.log" 2>&1; then
    echo "   mariadb-install-db failed:"
    tail -20 "$dir/install.log" | sed 's/^/    /'
    R[$k,note]="mariadb-install-db failed"
    fail=1
    return 0
  fi

  if [ "$mode" = preloaded ]; then
    "${pin_srv[@]}" "$COHOOK_CMD" -- "$mariadbd" "${args[@]}" >"$dir/stdout.log" 2>&1 &
  else
    "${pin_srv[@]}" "$mariadbd" "${args[@]}" >"$dir/stdout.log" 2>&1 &
  fi
  mpid=$!
  echo 0 >"$dir/threads"
  sample_threads "$mpid" "$dir/threads" &
  sampler=$!

  # ready: mysqladmin ping answers; dead: mariadbd exited
  local ready=0 deadline=$((SECONDS + ready_timeout)) t0=$SECONDS
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$mpid" 2>/dev/null || break
    if timeout -k 2 5 mysqladmin --no-defaults --socket="$sock" -uroot --connect-timeout=2 ping \
      >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.2
  done
  if [ "$ready" = 0 ]; then
    if ! kill -0 "$mpid" 2>/dev/null; then
      st=0
      wait "$mpid" || st=$?
      mpid=""
      what="died at start: $(describe_status "$st")"
      echo "   mariadbd $what; the last lines of its error log:"
      tail -8 "$dir/error.log" 2>/dev/null | sed 's/^/    /'
    else
      what="never ready: no answer to mysqladmin ping within ${ready_timeout} s"
      echo "   mariadbd $what; the last lines of its error log:"
      tail -8 "$dir/error.log" 2>/dev/null | sed 's/^/    /'
      diagnose "$mpid" "$mode" "$results/mariadb-hang-aio=$variant-$mode.txt" "$what"
      stop_server hung
      what="$what (stopped: $down)"
    fi
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    sampler=""
    R[$k,threads]=$(cat "$dir/threads")
    R[$k,note]=$what
    fail=1
    return 0
  fi
  echo "   ready after $((SECONDS - t0)) s"

  # the sysbench user, over TCP from 127.0.0.1 (root authenticates by unix socket only)
  local note="" hung=""
  if ! sql "CREATE DATABASE sbtest; CREATE USER sb@'127.0.0.1' IDENTIFIED BY 'sb';
            GRANT ALL ON sbtest.* TO sb@'127.0.0.1';" >>"$dir/client.log" 2>&1; then
    note="creating the sysbench user failed"
  fi
  local sb=("${pin_load[@]}" sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$port"
    --mysql-user=sb --mysql-password=sb --mysql-db=sbtest --tables="$tables" --table-size="$table_size")
  if [ -z "$note" ]; then
    local p0=$SECONDS
    st=0
    timeout -k 5 600 "${sb[@]}" prepare >"$dir/prepare.log" 2>&1 || st=$?
    if [ "$st" != 0 ]; then
      note="sysbench prepare: $(describe_status "$st")"
      [ "$st" = 124 ] && hung="sysbench prepare timed out (600 s)" && note=$hung
      tail -5 "$dir/prepare.log" | sed 's/^/    /'
    else
      echo "   prepared $tables x $table_size rows in $((SECONDS - p0)) s"
    fi
  fi

  if [ -z "$note" ]; then
    st=0
    timeout -k 5 $((secs + 120)) "${sb[@]}" --threads="$threads" --time="$secs" --percentile=99 \
      --report-interval=0 run >"$dir/run.log" 2>&1 || st=$?
    out=$(cat "$dir/run.log")
    R[$k,tps]=$(sed -n 's/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.*/\1/p' <<<"$out")
    R[$k,errors]=$(sed -n 's/^ *ignored errors: *\([0-9]*\).*/\1/p' <<<"$out")
    R[$k,reconnects]=$(sed -n 's/^ *reconnects: *\([0-9]*\).*/\1/p' <<<"$out")
    R[$k,p99]=$(sed -n 's/^ *99th percentile: *\([0-9.]*\).*/\1/p' <<<"$out")
    : "${R[$k,tps]:=-}" "${R[$k,errors]:=-}" "${R[$k,reconnects]:=-}" "${R[$k,p99]:=-}"
    echo "   sysbench run: ${R[$k,tps]} transactions/s, ignored errors ${R[$k,errors]}," \
      "reconnects ${R[$k,reconnects]}, p99 ${R[$k,p99]} ms, $(describe_status "$st")"
    if [ "$st" != 0 ] || [ "${R[$k,tps]}" = - ]; then
      note="sysbench run: $(describe_status "$st")"
      [ "$st" = 124 ] && hung="sysbench run timed out ($((secs + 120)) s)" && note=$hung
      { grep -iE 'fatal|error|alert' "$dir/run.log" || tail -3 "$dir/run.log"; } | head -5 | sed 's/^/    /'
    elif [ "${R[$k,reconnects]}" != 0 ]; then
      note="reconnects"
    fi
  fi

  # CHECK TABLE, if the server is still there and answered so far
  if [ -z "$hung" ] && kill -0 "$mpid" 2>/dev/null && [ "$note" != "creating the sysbench user failed" ]; then
    local i list=""
    for i in $(seq 1 "$tables"); do list+="${list:+, }sbtest.sbtest$i"; done
    st=0
    sql "CHECK TABLE $list EXTENDED" >"$dir/check.log" 2>&1 || st=$?
    local ok
    ok=$(awk -F'\t' '$3 == "status" && $4 == "OK"' "$dir/check.log" | wc -l)
    R[$k,check]="$ok/$tables"
    echo "   CHECK TABLE ... EXTENDED: $ok of $tables OK$([ "$st" != 0 ] && echo " (mariadb: $(describe_status "$st"))")"
    if [ "$ok" != "$tables" ]; then
      sed 's/^/    /' "$dir/check.log" | head -10
      note="${note:+$note; }CHECK TABLE: $ok/$tables OK"
      [ "$st" = 124 ] && hung="CHECK TABLE timed out (300 s)"
    fi
  fi

  local alive=1
  kill -0 "$mpid" 2>/dev/null || alive=0
  if [ "$alive" = 0 ]; then
    note="${note:+$note; }mariadbd died"
    echo "   mariadbd died; last lines of its error log:"
    tail -15 "$dir/error.log" | sed 's/^/    /'
  elif [ -n "$hung" ]; then
    echo "   $hung: mariadbd stopped answering"
    diagnose "$mpid" "$mode" "$results/mariadb-hang-aio=$variant-$mode.txt" "$hung"
  fi
  R[$k,rss]=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/"$mpid"/status 2>/dev/null || echo "-")

  if [ -n "$hung" ]; then stop_server hung; else stop_server; fi
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  sampler=""
  R[$k,threads]=$(cat "$dir/threads")
  echo "   peak OS threads ${R[$k,threads]}; shutdown: $down"
  [ "$down" = clean ] || note="${note:+$note; }shutdown: $down"
  R[$k,note]=$note
  [ -z "$note" ] || fail=1
  return 0
}

for v in "${variants[@]}"; do
  run "$v" native
  run "$v" preloaded
done

# ---- the table -----------------------------------------------------------------------------------------
echo
echo "$("$mariadbd" --version | sed 's/.*Ver \([^ ]*\) .*/MariaDB \1/'), $(sysbench --version)," \
  "oltp_read_write $tables x $table_size rows, $threads threads, ${secs} s; $(nproc) CPUs;" \
  "preloaded: $(basename "$COHOOK_CMD") $("$COHOOK_CMD" -V 2>/dev/null | head -1 | sed 's/^cohook //')" \
  "$(env | grep '^COHOOK_' | grep -v '^COHOOK_CMD=' | sort | tr '\n' ' ' || true)"
echo "(errors: ignored errors, i.e. deadlocks sysbench retried; each column native/preloaded)"
printf '%-10s %11s %14s %6s %9s %11s %10s %11s\n' variant "native tps" "preloaded tps" ratio errors reconnects "check ok" "OS threads"
for v in "${variants[@]}"; do
  n="$v,native" p="$v,preloaded"
  ratio=-
  if [[ "${R[$n,tps]}" =~ ^[0-9.]+$ ]] && [[ "${R[$p,tps]}" =~ ^[0-9.]+$ ]]; then
    ratio=$(awk -v a="${R[$p,tps]}" -v b="${R[$n,tps]}" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
  fi
  printf '%-10s %11s %14s %6s %9s %11s %10s %11s\n' "aio=$v" "${R[$n,tps]}" "${R[$p,tps]}" "$ratio" \
    "${R[$n,errors]}/${R[$p,errors]}" "${R[$n,reconnects]}/${R[$p,reconnects]}" \
    "${R[$n,check]}|${R[$p,check]}" "${R[$n,threads]}/${R[$p,threads]}"
done
for v in "${variants[@]}"; do
  for m in native preloaded; do
    [ -z "${R[$v,$m,note]}" ] || echo "  aio=$v $m: ${R[$v,$m,note]}"
  done
done

# rows in scripts/demo.sh's format: kind name conns req/s p99_us errors rss_MB mem_MB threads sys/req
if [ -n "$tsv" ]; then
  for v in "${variants[@]}"; do
    kind=mariadb
    [ "$v" = off ] && kind=mariadb-noaio
    for m in native preloaded; do
      k="$v,$m"
      tps=${R[$k,tps]} p99=${R[$k,p99]} e=${R[$k,errors]} r=${R[$k,reconnects]} errs=-
      [[ "$tps" =~ ^[0-9.]+$ ]] || tps=0
      if [[ "$p99" =~ ^[0-9.]+$ ]]; then p99=$(awk -v x="$p99" 'BEGIN { printf "%.0f", x * 1000 }'); else p99=0; fi
      [[ "$e" =~ ^[0-9]+$ ]] && [[ "$r" =~ ^[0-9]+$ ]] && errs=$((e + r))
      case "${R[$k,note]}" in
        "") ;;
        "never ready"*) errs="$errs (never ready)" ;;
        *) errs="$errs (${R[$k,note]})" ;;
      esac
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$m" "$threads" "$tps" "$p99" "$errs" \
        "${R[$k,rss]}" "-" "${R[$k,threads]}" "-" >>"$tsv"
    done
  done
fi

if [ "$fail" = 0 ]; then echo "== mariadb: OK"; else echo "== mariadb: FAILED"; fi
exit "$fail"
