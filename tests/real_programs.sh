#!/usr/bin/env bash
# real_programs.sh LIBHOOK — everyday programs behave exactly the same with LD_PRELOAD=libhook.so:
# ls, cat, bash pipelines, python3 socket code, and curl/wget against a local HTTP server.
# Every run has a timeout; the server is bound to 127.0.0.1 and stopped at exit.
set -u
hook=$1
fail=0 n=0
dir=$(mktemp -d)
srv=""
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

# same NAME CMD...: run CMD natively and preloaded, compare stdout and exit status
same() {
  local name=$1
  shift
  n=$((n + 1))
  timeout -k 5 60 "$@" >"$dir/a" 2>"$dir/ae"
  local ra=$?
  timeout -k 5 60 env LD_PRELOAD="$hook" "$@" >"$dir/b" 2>"$dir/be"
  local rb=$?
  if [ "$ra" != "$rb" ] || ! cmp -s "$dir/a" "$dir/b"; then
    echo "FAIL $name: status native $ra preloaded $rb"
    diff "$dir/a" "$dir/b" | head -20
    head -c 2000 "$dir/be"
    fail=$((fail + 1))
  else
    echo "ok   $name ($(wc -c <"$dir/a") bytes of output, status $ra)"
  fi
}

mkdir -p "$dir/www/sub"
seq 1 200000 >"$dir/www/numbers.txt"
head -c 3000000 /dev/urandom >"$dir/www/blob.bin"
echo "<h1>hello</h1>" >"$dir/www/index.html"

same "ls -la /usr/bin"            ls -la --time-style=+ /usr/bin
same "ls missing (status 2)"      ls /nonexistent-cohook
same "cat file"                   cat "$dir/www/numbers.txt"
same "cat via stdin pipe"         bash -c "cat < '$dir/www/blob.bin' | cat | md5sum"
same "bash pipeline"              bash -c "seq 1 300000 | sort -rn | head -5; echo \${PIPESTATUS[*]}"
same "bash subshells and sleep"   bash -c 'for i in 3 2 1; do (sleep 0.$((i * 8)); echo $i) & done; wait; echo done'
same "bash read loop"             bash -c 'printf "a b\nc d\n" | while read x y; do echo "$y$x"; done'
same "exit status"                bash -c 'exit 7'
same "python3 threads+sockets"    python3 -c '
import socket, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
def serve():
    for _ in range(8):
        c, _ = s.accept()
        with c:
            data = b""
            while not data.endswith(b"\n"):
                data += c.recv(65536)
            c.sendall(data[::-1])
t = threading.Thread(target=serve); t.start()
for i in range(8):
    c = socket.create_connection(s.getsockname())
    msg = (str(i) * 100000).encode() + b"\n"
    c.sendall(msg); c.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        d = c.recv(65536)
        if not d: break
        got += d
    print(i, len(got), got == msg[::-1])
t.join()'
same "python3 selectors"          python3 -c '
import selectors, socket
a, b = socket.socketpair(); sel = selectors.DefaultSelector(); sel.register(a, selectors.EVENT_READ)
print(sel.select(timeout=0.05)); b.send(b"x"); print([k.fd == a.fileno() for k, _ in sel.select(timeout=1)])'

# A local HTTP server, natively (the clients are what is under test).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$dir/www" && exec python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
srv=$!
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
if command -v curl >/dev/null; then
  same "curl file"                curl -s "http://127.0.0.1:$port/numbers.txt"
  same "curl binary | md5sum"     bash -c "curl -s http://127.0.0.1:$port/blob.bin | md5sum"
  same "curl 404 (status 22)"     curl -sf "http://127.0.0.1:$port/missing"
  same "curl refused (status 7)"  curl -s "http://127.0.0.1:1/"
fi
if command -v wget >/dev/null; then
  same "wget -O-"                 wget -q -O- "http://127.0.0.1:$port/index.html"
fi
# And the server preloaded too, against a native client.
kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null
(cd "$dir/www" && exec env LD_PRELOAD="$hook" python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
srv=$!
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
n=$((n + 1))
if [ "$(curl -s "http://127.0.0.1:$port/blob.bin" | md5sum)" = "$(md5sum <"$dir/www/blob.bin")" ]; then
  echo "ok   preloaded python3 http.server serves a 3 MB file intact"
else
  echo "FAIL preloaded python3 http.server"; fail=$((fail + 1))
fi

echo "$((n - fail)) passed, $fail failed"
[ "$fail" = 0 ]
