# scripts/lib.sh — helpers the scripts share; sourced (`. "$root/scripts/lib.sh"`), never run.
# Kept to what is byte-for-byte the same in each script that uses it: one definition, one behaviour.

# freeport: a TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for a bind to port 0;
# another process may take it before the caller binds it, as with any such probe)
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
