#!/usr/bin/env bash
# scripts/mariadb-profile.sh — one MariaDB server (native or preloaded) under scripts/mariadb.sh's
# sysbench load, with probes attached to mariadbd while the load runs. Findings: docs/mariadb-profile.md.
#
#   scripts/mariadb-profile.sh [--preloaded] [--time S] [--warm S] [--out DIR] PROBE...
#
# PROBEs run one after the other, the first --warm s (default 3) into the load:
#   syscalls  perf stat for 15 s: calls of each syscall of mariadbd (and EAGAIN returns), with the
#             transactions committed in the same window (Com_commit), and cpu (below) meanwhile
#   cpu       10 s: per OS thread CPU (utime+stime) and context switches, from /proc/PID/task
#   perf      perf record -g -F 499 for 10 s; perf report's top symbols and shared objects
#   gdb       4 snapshots 1 s apart: native, every thread's backtrace; preloaded, `info coroutines`
#             and every coroutine's backtrace (tools/gdb/cohook-gdb.py)
# Load: sysbench oltp_read_write, 4 tables x 20000 rows, 32 threads over TCP, per-second reports
# (sysbench.log). Preloaded: build/cohook (or $COHOOK_CMD), with any COHOOK_* knob of the environment (COHOOK_STATS,
# COHOOK_TRACE: their output goes to mariadbd's stderr, i.e. error.log, unless a file is given).
# With COHOOK_TRACE set, trace-stats.txt sums its lines up (run queues, switches, imbalance).
# Everything is kept in DIR (default results/profile-<mode>-<time>). Needs mariadb-server, sysbench,
# linux-perf (perf), gdb, python3. All traffic on 127.0.0.1; every step has a timeout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

mode=native secs=20 warm=3 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --preloaded) mode=preloaded ;;
    --time) secs=$2; shift ;;
    --warm) warm=$2; shift ;;
    --out) out=$2; shift ;;
    -*) echo "usage: scripts/mariadb-profile.sh [--preloaded] [--time S] [--warm S] [--out DIR] PROBE..." >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done
probes=("$@")
scripts/ensure-packages.sh scripts/mariadb-profile.sh mariadb-server mariadb-client sysbench linux-perf gdb python3
[ -n "$out" ] || out=$root/results/profile-$mode-$(date +%H%M%S)
mkdir -p "$out"
out=$(cd "$out" && pwd)
tmp=$(mktemp -d /tmp/cohook-mprof.XXXXXX)
mpid="" sbpid=""
SYSC="read write readv writev pread64 pwrite64 preadv2 pwritev2 recvfrom sendto recvmsg sendmsg poll ppoll
  epoll_wait epoll_pwait epoll_ctl futex sched_yield nanosleep clock_nanosleep fdatasync fsync io_uring_enter
  io_getevents io_submit rt_sigprocmask eventfd2 getpid gettid tgkill sched_getaffinity mmap munmap mprotect
  madvise clone clone3 fcntl setsockopt getsockopt accept4 close prctl ioctl lseek"
cleanup() {
  [ -z "$sbpid" ] || kill "$sbpid" 2>/dev/null || true
  if [ -n "$mpid" ]; then kill -9 "$mpid" 2>/dev/null || true; wait "$mpid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap 'cleanup || true' EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sock=$tmp/mysqld.sock
sql() { timeout -k 5 60 mariadb --no-defaults --socket="$sock" -uroot -N -B -e "$*"; }
timeout -k 5 180 mariadb-install-db --user=root --datadir="$tmp/data" --auth-root-authentication-method=socket \
  --skip-test-db >"$out/install.log" 2>&1
args=(--user=root --datadir="$tmp/data" --socket="$sock" --port="$port" --bind-address=127.0.0.1
  --pid-file="$tmp/mysqld.pid" --log-error="$out/error.log" --thread-handling=one-thread-per-connection)
if [ "$mode" = preloaded ]; then
  "${COHOOK_CMD:-build/cohook}" -- /usr/sbin/mariadbd "${args[@]}" >"$out/stdout.log" 2>&1 &
else
  /usr/sbin/mariadbd "${args[@]}" >"$out/stdout.log" 2>&1 &
fi
mpid=$!
for _ in $(seq 1 300); do
  timeout -k 2 5 mysqladmin --no-defaults --socket="$sock" -uroot --connect-timeout=2 ping >/dev/null 2>&1 && break
  kill -0 "$mpid" 2>/dev/null || { echo "mariadbd died"; tail "$out/error.log"; exit 1; }
  sleep 0.2
done
sql "CREATE DATABASE sbtest; CREATE USER sb@'127.0.0.1' IDENTIFIED BY 'sb'; GRANT ALL ON sbtest.* TO sb@'127.0.0.1';"
sb=(sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$port" --mysql-user=sb
  --mysql-password=sb --mysql-db=sbtest --tables=4 --table-size=20000)
timeout -k 5 300 "${sb[@]}" prepare >"$out/prepare.log" 2>&1
echo "== $mode mariadbd pid $mpid, $secs s of load, probes: ${probes[*]:-none} -> $out"
timeout -k 5 $((secs + 120)) "${sb[@]}" --threads=32 --time="$secs" --percentile=99 --report-interval=1 run \
  >"$out/sysbench.log" 2>&1 &
sbpid=$!
sleep "$warm"

commits() { sql "SHOW GLOBAL STATUS LIKE 'Com_commit'" | awk '{print $2}'; }
mark() { # time, label, Com_commit so far (the count first: the query can take a second under load)
  local c
  c=$(commits)
  echo "$(date +%s.%N) $1 $c" >>"$out/marks"
}

# per-OS-thread CPU ticks and context switches, a snapshot: tid comm utime stime vcsw nvcsw
tasks() {
  local t
  for t in /proc/"$mpid"/task/*; do
    local st comm
    st=$(cat "$t/stat" 2>/dev/null) || continue
    comm=$(tr ' ' _ <"$t/comm" 2>/dev/null)
    st=${st##*) }
    # shellcheck disable=SC2086
    set -- $st
    echo "$(basename "$t") $comm ${12} ${13} $(awk '/^voluntary_ctxt/ {v=$2} /^nonvoluntary_ctxt/ {n=$2} END {print v, n}' "$t/status" 2>/dev/null)"
  done
}
cpu_window() { # SECONDS LABEL
  tasks >"$out/tasks-$2-0"
  local t0 c0 t1 c1
  t0=$(date +%s.%N) c0=$(commits)
  sleep "$1"
  t1=$(date +%s.%N) c1=$(commits)
  tasks >"$out/tasks-$2-1"
  python3 - "$out/tasks-$2-0" "$out/tasks-$2-1" "$t0" "$t1" "$c0" "$c1" >"$out/cpu-$2.txt" <<'EOF'
import sys, collections
def load(p):
    d = {}
    for line in open(p):
        f = line.split()
        if len(f) >= 6: d[f[0]] = (f[1], int(f[2]), int(f[3]), int(f[4]), int(f[5]))
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
dt = float(sys.argv[4]) - float(sys.argv[3]); tx = int(sys.argv[6]) - int(sys.argv[5])
print("window %.2f s, %d commits (%.1f tx/s)" % (dt, tx, tx / dt))
g = collections.defaultdict(lambda: [0, 0, 0, 0, 0])
print("%-8s %-16s %7s %7s %9s %9s" % ("tid", "comm", "usr%", "sys%", "vcsw/s", "nvcsw/s"))
for tid, (comm, u, s, v, n) in sorted(b.items(), key=lambda kv: -(kv[1][1] + kv[1][2] - sum(a.get(kv[0], (0, 0, 0))[1:3]))):
    o = a.get(tid, (comm, 0, 0, 0, 0))
    du, ds, dv, dn = u - o[1], s - o[2], v - o[3], n - o[4]
    x = g[comm]; x[0] += 1; x[1] += du; x[2] += ds; x[3] += dv; x[4] += dn
    if du + ds + dv + dn: print("%-8s %-16s %7.1f %7.1f %9.0f %9.0f" % (tid, comm, du / dt, ds / dt, dv / dt, dn / dt))
print("by name: threads, usr%, sys%, voluntary and involuntary context switches per s and per transaction")
tu = ts = tv = tn = 0
for comm, (k, u, s, v, n) in sorted(g.items(), key=lambda kv: -(kv[1][1] + kv[1][2])):
    tu += u; ts += s; tv += v; tn += n
    print("  %-16s %3d %7.1f %7.1f %9.0f %9.0f %7.2f %7.2f" % (comm, k, u / dt, s / dt, v / dt, n / dt, v / max(tx, 1), n / max(tx, 1)))
print("  %-16s %3s %7.1f %7.1f %9.0f %9.0f %7.2f %7.2f" % ("total", "", tu / dt, ts / dt, tv / dt, tn / dt, tv / max(tx, 1), tn / max(tx, 1)))
EOF
}

for p in "${probes[@]}"; do
  case "$p" in
    syscalls)
      # In-kernel counters (perf stat on syscall tracepoints: no per-event work in user space, unlike
      # strace or perf trace, which cut native throughput to a third): calls of each syscall in SYSC,
      # all syscalls (raw_syscalls), and EAGAIN / ETIMEDOUT returns of the ones that can would-block.
      ev=(-e raw_syscalls:sys_enter)
      for c in $SYSC; do ev+=(-e "syscalls:sys_enter_$c"); done
      for c in read recvfrom recvmsg sendto write futex; do
        ev+=(-e "syscalls:sys_exit_$c" --filter 'ret == -11')
      done
      ev+=(-e syscalls:sys_exit_futex --filter 'ret == -110')
      timeout -k 5 40 perf stat -x, -o "$out/perf-stat.csv" "${ev[@]}" -p "$mpid" -- \
        bash -c "$(declare -f commits sql mark tasks cpu_window); out=$out sock=$sock mpid=$mpid; mark syscalls-start; cpu_window 15 syscalls; mark syscalls-end" \
        >/dev/null 2>&1 || true
      python3 - "$out/perf-stat.csv" "$out/marks" >"$out/syscalls.txt" <<'EOF'
import sys
rows = []
for line in open(sys.argv[1]):
    f = line.strip().split(",")
    if len(f) > 3 and f[2].startswith(("raw_syscalls", "syscalls")):
        rows.append((f[2], int(f[0]) if f[0].isdigit() else 0))
marks = [l.split() for l in open(sys.argv[2])]
s = [m for m in marks if m[1] == "syscalls-start"][-1]; e = [m for m in marks if m[1] == "syscalls-end"][-1]
tx = int(e[2]) - int(s[2]); dt = float(e[0]) - float(s[0])
print("window %.1f s, %d commits, %.1f tx/s" % (dt, tx, tx / dt))
seen = {}
errs = ["ret == -11"] * 6 + ["ret == -110"]
ei = 0
for name, n in rows:
    if name.startswith("syscalls:sys_exit_"):
        name = name.replace("syscalls:sys_exit_", "") + (" EAGAIN" if errs[ei] == "ret == -11" else " ETIMEDOUT"); ei += 1
    else:
        name = name.replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "ALL syscalls")
    seen[name] = n
listed = sum(n for k, n in seen.items() if " " not in k)
seen["(others)"] = seen["ALL syscalls"] - listed
print("%-22s %10s %10s %9s" % ("syscall", "calls", "per s", "per tx"))
for k, n in sorted(seen.items(), key=lambda kv: -kv[1]):
    if n: print("%-22s %10d %10.0f %9.2f" % (k, n, n / dt, n / max(tx, 1)))
EOF
      ;;
    cpu)
      cpu_window 10 cpu ;;
    perf)
      mark perf-start
      timeout -k 5 40 perf record -g -F 499 -p "$mpid" -o "$out/perf.data" -- sleep 10 >"$out/perf-record.log" 2>&1 || true
      mark perf-end
      timeout -k 5 300 perf report -i "$out/perf.data" --no-children --stdio --sort sym -g none --percent-limit 0.4 \
        >"$out/perf-sym.txt" 2>/dev/null || true
      timeout -k 5 300 perf report -i "$out/perf.data" --no-children --stdio --sort dso -g none \
        >"$out/perf-dso.txt" 2>/dev/null || true
      timeout -k 5 300 perf report -i "$out/perf.data" --no-children --stdio --sort comm,dso,sym -g caller,0.5,callee,function,percent \
        --percent-limit 1.5 >"$out/perf-callers.txt" 2>/dev/null || true
      ;;
    gdb)
      for i in 1 2 3 4; do
        mark "gdb-$i"
        g=(gdb -p "$mpid" -batch -nx -ex "set pagination off")
        if [ "$mode" = preloaded ]; then
          g+=(-ex "source $root/tools/gdb/cohook-gdb.py" -ex "info coroutines" -ex "info threads")
          ids=$(timeout -k 5 60 "${g[@]}" 2>/dev/null | sed -n 's/^[ *] *\([0-9][0-9]*\)  .*/\1/p' | head -200) || true
          for t in $ids; do g+=(-ex "echo === coroutine $t\n" -ex "coroutine $t bt 12"); done
          g+=(-ex "thread apply all bt 12")
        else
          g+=(-ex "info threads" -ex "thread apply all bt 12")
        fi
        timeout -k 5 120 "${g[@]}" 2>&1 | grep -vE '^\[New LWP|^Reading symbols|^warning:|^Downloading' >"$out/gdb-$i.txt" || true
        sleep 1
      done
      ;;
    *) echo "unknown probe $p" >&2 ;;
  esac
done

wait "$sbpid" || echo "sysbench: exit status $?"
sbpid=""
grep -E 'transactions:|queries:|ignored errors|reconnects|99th|avg:' "$out/sysbench.log" | tee "$out/summary.txt"
timeout -k 5 60 mysqladmin --no-defaults --socket="$sock" -uroot shutdown >/dev/null 2>&1 || true
for _ in $(seq 1 300); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.2; done
kill -9 "$mpid" 2>/dev/null || true
wait "$mpid" 2>/dev/null || true
mpid=""
# COHOOK_TRACE lines (in error.log): run queues, switches and imbalance while the load ran
if grep -q '^cohook: trace' "$out/error.log" 2>/dev/null; then
  python3 - "$out/error.log" >"$out/trace-stats.txt" <<'EOF'
import re, sys, statistics as st
rows = []
for line in open(sys.argv[1]):
    m = re.match(r"cohook: trace (\d+)ms: threads=(\d+) workers=\d+ (.*)", line)
    if not m: continue
    ws = [tuple(map(int, x)) for x in re.findall(r"w\d+\[runq=(-?\d+) parked=(\d+) switches=(\d+)\]", m.group(3))]
    rows.append((int(m.group(1)), int(m.group(2)), ws))
# the load: lines where at least 30 coroutines are parked or queued in total (32 connections)
load = [r for r in rows if sum(w[0] + w[1] for w in r[2]) >= 30]
print("trace lines %d, under load %d (%.1f s)" % (len(rows), len(load), len(load) / 10))
n = len(load[0][2])
for i in range(n):
    q = [r[2][i][0] for r in load]; sw = [r[2][i][2] for r in load]
    print("w%d runq: mean %.1f median %d max %d, zero in %d%%; switches/s: median %d mean %d" % (
        i, st.mean(q), st.median(q), max(q), 100 * sum(1 for x in q if x == 0) // len(q), st.median(sw) * 10, st.mean(sw) * 10))
imb = sum(1 for r in load if min(w[0] for w in r[2]) == 0 and max(w[0] for w in r[2]) >= 2)
print("imbalance (one runq=0, another >=2): %d of %d lines (%d%%)" % (imb, len(load), 100 * imb // len(load)))
tot = [sum(w[0] for w in r[2]) for r in load]
print("runnable total: mean %.1f median %d" % (st.mean(tot), st.median(tot)))
th = [r[1] for r in load]
print("OS threads: median %d max %d" % (st.median(th), max(th)))
EOF
  cat "$out/trace-stats.txt"
fi
echo "== done: $out"
