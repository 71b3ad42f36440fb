#!/usr/bin/env bash
# check_stats_echo.sh COHOOK ECHO_SERVER LOADGEN — issue 12: `cohook --stats=FILE -- echo_server` under
# load. The stats block written at the server's exit must count what the run did: at least one
# coroutine-thread per connection (and that many alive at once), reads that had to wait, switches,
# and no more OS threads than workers + monitor + spawner + its reserve spare + the program's own main
# thread + one a handoff left in a system call (runtime/handoff.c: the spawner keeps one spare OS thread
# ready for a handoff, and makes up the reserve at once when a handoff takes it).
set -u
cohook=$1 server=$2 loadgen=$3 conns=200 workers=2
dir=$(mktemp -d)
srv=""
trap '[ -n "$srv" ] && kill -KILL "$srv" 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; [ -f "$dir/stats.txt" ] && sed 's/^/  | /' "$dir/stats.txt"; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
timeout 60 "$cohook" --stats="$dir/stats.txt" -w "$workers" -- "$server" "$port" >"$dir/server.log" 2>&1 &
srv=$!
for _ in $(seq 1 100); do grep -q listening "$dir/server.log" && break; sleep 0.05; done
grep -q listening "$dir/server.log" || fail "the server did not start: $(cat "$dir/server.log")"
res=$(timeout 30 "$loadgen" -p "$port" -c "$conns" -d 1 -w 0 -t 10 2>&1 | grep '^RESULT')
kill -TERM "$srv"
wait "$srv"
rc=$?
srv=""
echo "load: $res"
[ "$rc" = 0 ] || fail "the server exited with $rc after SIGTERM"
grep -q " errors=0 " <<<"$res" || fail "the load had errors: $res"
req=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$res")
[ -s "$dir/stats.txt" ] || fail "no stats block in the file"
[ "$(grep -c '^cohook stats: pid' "$dir/stats.txt")" = 1 ] || fail "not exactly one stats block"
made=$(sed -n 's/^  coroutine-threads *made \([0-9]*\), peak alive \([0-9]*\)$/\1/p' "$dir/stats.txt")
peak=$(sed -n 's/^  coroutine-threads *made \([0-9]*\), peak alive \([0-9]*\)$/\2/p' "$dir/stats.txt")
waited=$(awk '$1 == "read" {print $3}' "$dir/stats.txt")
calls=$(awk '$1 == "read" {print $2}' "$dir/stats.txt")
switches=$(awk '$1 == "switches" {print $2}' "$dir/stats.txt")
osthr=$(sed -n 's/^  os threads *peak \([0-9]*\);.*/\1/p' "$dir/stats.txt")
echo "stats: made=$made peak=$peak read calls=$calls waited=$waited switches=$switches os_threads=$osthr requests=$req"
[ -n "$made" ] && [ "$made" -ge "$conns" ] || fail "coroutine-threads made ($made) < connections ($conns)"
[ -n "$peak" ] && [ "$peak" -ge "$conns" ] || fail "peak alive ($peak) < connections ($conns)"
[ -n "$waited" ] && [ "$waited" -gt 0 ] || fail "no read waited"
[ -n "$calls" ] && [ "$calls" -ge "$req" ] || fail "read calls ($calls) < requests served ($req)"
[ -n "$switches" ] && [ "$switches" -gt 0 ] || fail "no switches"
[ -n "$osthr" ] && [ "$osthr" -le $((workers + 5)) ] || fail "$osthr OS threads, more than workers + monitor + spawner + spare + main + one stuck"
echo "ok"
